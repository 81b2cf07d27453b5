/*
 * sched.h: when the daemon refreshes the map (issue 6). A 1-second tick on the loop watches the
 * store's dirty count and batch sequence; a refresh starts when the interval has passed with
 * items dirty, when the dirty count reaches the threshold, when no map exists yet, or when an
 * operator forces a rebuild. The refresh itself (pipeline/refresh.h) runs on libuv's thread pool
 * (uv_queue_work) on LMDB read snapshots, so ingestion and HTTP keep serving meanwhile. One runs
 * at a time; triggers during a run queue at most one more (a forced rebuild wins over a plain
 * refresh and absorbs every request made before it starts).
 *
 * All functions run on the loop thread.
 */
#ifndef ATL_DAEMON_SCHED_H
#define ATL_DAEMON_SCHED_H

#include <cJSON.h>
#include <uv.h>

#include "daemon/config.h"
#include "daemon/text_buf.h"
#include "store/store.h"

typedef struct sched sched_t;

/** Start the tick. @return 0 and *out, or -ENOMEM with a message in errbuf. */
int sched_start(uv_loop_t *loop, const atl_config_t *cfg, store_t *store, sched_t **out,
                char *errbuf, size_t errlen);

/**
 * Ask for a forced rebuild (S verified and repaired, every row re-read, full kNN; @p cold: no
 * warm start). @return the request number, which /status reports as done once a rebuild that
 * started after the request has finished.
 */
uint64_t sched_request_rebuild(sched_t *s, int cold);

/** Add the "refresh" and "freshness" objects to /status. */
void sched_status(sched_t *s, cJSON *obj);

/** Append Prometheus text. */
void sched_metrics(sched_t *s, text_buf_t *out);

/**
 * A batch was committed (on the loop): tick now instead of at the next timer tick, so a refresh
 * that this batch makes due (interval elapsed, or the dirty threshold reached) starts without
 * waiting up to a second. Ticks at most every 100 ms this way; each reads two counters off the
 * loop.
 */
void sched_poke(sched_t *s);

/**
 * Stop: cancel a running refresh at its next progress report, close the tick. The loop must
 * keep running until @p done_cb (called once the worker has returned and handles are closed).
 */
void sched_stop(sched_t *s, void (*done_cb)(void *ud), void *ud);

/** Free after done_cb; NULL is a no-op. */
void sched_free(sched_t *s);

#endif
