/*
 * ingest.h: the Kafka -> LMDB path of atlasd (DESIGN §2, §4), driven from the libuv loop.
 *
 * Exactly-once state: every batch is one store transaction that also records the next offset
 * of each topic/partition it consumed; on assignment the consumer seeks to the offsets in the
 * store (Kafka's committed offsets are written afterwards, for lag monitoring only). After a
 * crash anywhere, the restart resumes from the store's offsets and re-applies nothing twice.
 * One store per daemon: two daemons of one consumer group each own a disjoint set of users'
 * partitions, and so each hold a partial, consistent state of their own (DESIGN §10).
 *
 * All functions run on the loop thread.
 */
#ifndef ATL_INGEST_H
#define ATL_INGEST_H

#include <cJSON.h>
#include <uv.h>

#include "daemon/config.h"
#include "daemon/text_buf.h"
#include "store/store.h"

typedef struct ingest ingest_t;

/**
 * Create the consumer (and the dead-letter producer), subscribe, and start consuming.
 * @return 0 and *out; ATL_ECONFIG (no brokers, a bad kafka.* property, subscribe failed),
 *         -ENOMEM or -errno; each with a message in errbuf.
 */
int ingest_start(uv_loop_t *loop, const atl_config_t *cfg, store_t *store, ingest_t **out,
                 char *errbuf, size_t errlen);

/**
 * Graceful stop: commit the pending batch, close the consumer (serving its queue until it is
 * closed), flush the dead-letter producer, close every handle; then call @p done_cb.
 */
void ingest_stop(ingest_t *ig, void (*done_cb)(void *ud), void *ud);

/** Call @p cb(@p ud) on the loop after each batch the writer committed (NULL: none). */
void ingest_on_commit(ingest_t *ig, void (*cb)(void *ud), void *ud);

/** Free after done_cb ran (or if never started); NULL is a no-op. */
void ingest_free(ingest_t *ig);

/** The ingestion state: consuming, rebalancing (no assignment yet since the start or the last
 * revoke), stalled, brokers_down, offset_out_of_range, offset_unreadable or stopping. Static
 * string; loop thread only. */
const char *ingest_state(const ingest_t *ig);

/** Add the status fields (partitions, offsets, lag, rates, last error, broker state). */
void ingest_status(ingest_t *ig, cJSON *obj);

/** Append Prometheus text for the ingestion metrics to @p out. */
void ingest_metrics(ingest_t *ig, text_buf_t *out);

/**
 * The "now" a message's update_time is checked against (bad_time beyond it plus the tolerance):
 * the earlier of its Kafka timestamp @p ts_ms (-1: none) and the clock @p wall_s. The timestamp
 * alone gives a live consumer and a replica reading the log later the same decision (DESIGN
 * §10); the clock bounds it, because a producer sets it (CreateTime) and may set the far future.
 */
int64_t ingest_reference_now(int64_t ts_ms, int64_t wall_s);

#endif
