/*
 * ingest.c: librdkafka's high-level consumer on the libuv loop. See ingest.h.
 *
 * Loop integration (no thread blocks): rd_kafka_poll_set_consumer() routes every event
 * (messages, rebalances, logs through log.queue, errors, statistics) to the consumer queue, whose
 * IO event writes to an eventfd watched by uv_poll. librdkafka signals only when the queue goes
 * from empty to non-empty, so the drain runs rd_kafka_consumer_poll(rk, 0) until the queue is
 * empty; when it stops early (a time budget per callback, so HTTP stays responsive, or a stalled
 * store) it re-arms itself with a uv_idle handle.
 *
 * Batching: decoded events go into one store batch, committed when it holds batch-max-events
 * or batch-max-ms after its first event. Invalid messages are copied to the dead-letter topic
 * with the reason in headers, counted, and their offset still advances. If the store fails, the
 * batch is kept, draining pauses and the commit is retried every second.
 */
#include "daemon/ingest.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include <librdkafka/rdkafka.h>

#include "daemon/log.h"
#include "daemon/thread_prio.h"
#include "kafkaconf/kafkaconf.h"

/* One drain callback decodes messages for at most this long, then yields to the rest of the
 * loop (HTTP) and goes on in the next iteration: decoding ~10-60 us a message, the former cap
 * of 20000 messages a callback kept the loop busy 30-600 ms whenever a backlog arrived, the
 * /healthz latency spikes of issue 10.4 (measured with atlasd_loop_busy_seconds). */
#define DRAIN_BUDGET_NS (3 * 1000 * 1000)
#define N_BUCKETS       12
#define MAX_PARTS       1024

static const double bucket_s[N_BUCKETS - 1] = {0.001, 0.002, 0.005, 0.01, 0.025, 0.05,
                                               0.1,   0.25,  0.5,   1.0,  2.5};

typedef struct part_state {
    char topic[STORE_TOPIC_NAME_MAX + 1];
    int32_t partition;
    int64_t next_offset; /* committed to the store */
    int64_t lag;         /* from librdkafka statistics; -1 unknown */
} part_state_t;

struct ingest {
    uv_loop_t *loop;
    const atl_config_t *cfg;
    store_t *store;
    store_batch_t *batch;
    store_decode_opts_t dopts;
    store_event_t ev;
    rd_kafka_t *rk, *dlq;
    rd_kafka_queue_t *queue;
    int efd;
    uv_poll_t poll;
    uv_idle_t idle;
    uv_timer_t batch_timer, retry_timer, tick;
    int n_handles;
    int stopping, closing_consumer, stalled;
    int resubmit; /* ig->inflight failed and waits to be committed again (on_retry or
                   * commit_wait): set once the writer's failure was read, cleared when it is
                   * handed back, so a batch is never given to the writer twice */
    int assigned; /* the group gave us an assignment (maybe empty) since the start/revoke */
    rd_kafka_message_t *held; /* a message that could not be decoded for lack of memory */
    int discarding; /* at the close, a message was left unapplied (held, or out of memory):
                     * nothing polled after it is applied (its offset would pass it); all of it
                     * is read again at the next start */
    /* the writer thread: it commits w_job (owned by it until it sets w_job back to NULL) */
    pthread_t w_thread;
    pthread_mutex_t w_mu;
    pthread_cond_t w_cv;
    clockid_t w_clock; /* w_cv's (CLOCK_MONOTONIC unless the platform refused it) */
    store_batch_t *w_job;
    int w_rc, w_quit, w_started;
    double w_seconds;
    /* the store's counters as the writer read them after its last commit, and the loop's copy
     * (/status, /metrics): the loop itself never opens a transaction (issue 10.5) */
    store_counters_t w_counters, counters;
    int w_counters_ok;
    /* the writer's "done" signal: an eventfd the loop polls, not a uv_async_t, whose
     * uv_async_send() the loop spins on while a (low-priority, preempted) sender is inside it */
    int w_efd;
    void (*on_commit)(void *ud); /* ingest_on_commit() */
    void *on_commit_ud;
    uv_poll_t w_done;
    store_batch_t *inflight, *spare; /* being (or to be re-) committed; the free one */
    int flush_wanted;
    void (*done_cb)(void *);
    void *done_ud;
    part_state_t parts[MAX_PARTS];
    int n_parts;
    /* metrics */
    uint64_t consumed, batch_events, batches, dlq_sent, dlq_failed, rebalances, kafka_errors;
    uint64_t offsets_lost;       /* partitions whose stored offset fell out of the log (README) */
    uint64_t offsets_unreadable; /* partitions left unassigned: their stored offset unreadable */
    uint64_t tombstones;         /* messages with a null value, skipped */
    uint64_t map_full_waits, dlq_truncated;
    uint64_t backlog_batches; /* batches past batch-max-events (batch_cap) */
    uint64_t map_grown;       /* by the writer (writer_grow_ahead), under w_mu */
    uint64_t *dlq_done;       /* delivered dead letters, to delete from the store */
    size_t n_dlq_done, cap_dlq_done;
    /* their deletion on the thread pool (a write transaction: never on the loop) */
    uv_work_t del_work;
    uint64_t *del_ids;
    size_t n_del_ids, cap_del_ids;
    int del_busy, del_rc;
    uint64_t dlq_max_id; /* the highest dead-letter id produced so far */
    int resend_busy;     /* a resend_job_t reads pending dead letters on the thread pool */
    int64_t dlq_in_flight;
    int dlq_resend;
    uint64_t rejected[STORE_REJECT_COUNT];
    uint64_t hist[N_BUCKETS];
    double hist_sum_s;
    int brokers_up, brokers_known;
    char last_error[256];
    double last_error_time, started;
    double rate_t0;
    double last_stats_s, last_resend_s; /* on_tick's periodic work, monotonic seconds */
    uint64_t rate_n0;
    double rate; /* events/s over the last stats window */
};

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void set_error(ingest_t *ig, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void set_error(ingest_t *ig, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(ig->last_error, sizeof(ig->last_error), fmt, ap);
    va_end(ap);
    ig->last_error_time = now_s();
}

static part_state_t *part_find(ingest_t *ig, const char *topic, int32_t partition, int create)
{
    for (int i = 0; i < ig->n_parts; i++)
        if (ig->parts[i].partition == partition && strcmp(ig->parts[i].topic, topic) == 0)
            return &ig->parts[i];
    if (!create || ig->n_parts == MAX_PARTS)
        return NULL;
    part_state_t *p = &ig->parts[ig->n_parts++];
    snprintf(p->topic, sizeof(p->topic), "%s", topic);
    p->partition = partition;
    p->next_offset = -1;
    p->lag = -1;
    return p;
}

/* ---- committing a batch ------------------------------------------------------------------ */

static void kafka_commit_async(ingest_t *ig)
{
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(ig->n_parts + 1);
    for (int i = 0; i < ig->n_parts; i++)
        if (ig->parts[i].next_offset >= 0)
            rd_kafka_topic_partition_list_add(l, ig->parts[i].topic, ig->parts[i].partition)
                ->offset = ig->parts[i].next_offset;
    if (l->cnt > 0)
        rd_kafka_commit(ig->rk, l, 1); /* for lag monitoring only; the store is the truth */
    rd_kafka_topic_partition_list_destroy(l);
}

static void observe_latency(ingest_t *ig, double s)
{
    int b = 0;
    while (b < N_BUCKETS - 1 && s > bucket_s[b])
        b++;
    ig->hist[b]++;
    ig->hist_sum_s += s;
}

static void on_retry(uv_timer_t *t);
static void dlq_send_batch(ingest_t *ig, store_batch_t *b);

/*
 * The writer also grows the map ahead of need: every GROW_AHEAD_MS while idle and before each
 * commit, keeping half the map free, so commits seldom find it full while a long reader holds
 * it. It never waits (-EBUSY while any transaction is open: the next try). Until session 22
 * the loop's tick did this, but a growth unmaps and maps the whole store: 168 ms of the loop at
 * full scale (9.5 GB resident), past /healthz's 100 ms bound. Called and returns with w_mu held;
 * releases it while growing.
 */
#define GROW_AHEAD_MS 100

static void writer_grow_ahead(ingest_t *ig)
{
    pthread_mutex_unlock(&ig->w_mu);
    int grew = store_map_grow_ahead(ig->store, 0.5) == 1;
    if (grew)
        LOG_INFO("ingest", "map grown ahead of need", "");
    pthread_mutex_lock(&ig->w_mu);
    ig->map_grown += (uint64_t)grew;
}

/* Wait on w_cv for at most GROW_AHEAD_MS (on w_cv's clock). @return whether the time ran out. */
static int writer_timed_wait(ingest_t *ig)
{
    struct timespec until;
    clock_gettime(ig->w_clock, &until);
    until.tv_nsec += GROW_AHEAD_MS * 1000000L;
    if (until.tv_nsec >= 1000000000L)
        until.tv_sec++, until.tv_nsec -= 1000000000L;
    return pthread_cond_timedwait(&ig->w_cv, &ig->w_mu, &until) == ETIMEDOUT;
}

/*
 * Batch commits run on a writer thread (issue 10.4): a commit takes hundreds of milliseconds at
 * scale (S deltas, fsync) and may wait for LMDB's writer lock or for map growth behind a long
 * reader, none of which the loop may wait for (HTTP and Kafka polling live there). The loop
 * fills one batch while the writer commits the other; when the filling batch is full and the
 * other is still being committed, draining pauses (the loop keeps serving). A failed commit is
 * retried before anything newer is committed, so stored offsets never skip a batch. At a
 * revoke and at shutdown the loop waits for the writer (commit_wait): rare, and required.
 */
static void *writer_main(void *ud)
{
    ingest_t *ig = ud;
    thread_prio_background(5); /* the loop first (thread_prio.h) */
    pthread_mutex_lock(&ig->w_mu);
    for (;;) {
        while (!ig->w_job && !ig->w_quit)
            if (writer_timed_wait(ig) && !ig->w_job && !ig->w_quit)
                writer_grow_ahead(ig);
        if (!ig->w_job)
            break;
        writer_grow_ahead(ig);
        store_batch_t *b = ig->w_job;
        pthread_mutex_unlock(&ig->w_mu);
        double t0 = now_s();
        int rc = store_batch_commit(ig->store, b);
        double secs = now_s() - t0;
        store_counters_t c;
        int c_ok = rc == 0 && store_counters_get(ig->store, &c) == 0;
        pthread_mutex_lock(&ig->w_mu);
        ig->w_rc = rc;
        ig->w_seconds = secs;
        if ((ig->w_counters_ok = c_ok))
            ig->w_counters = c;
        ig->w_job = NULL;
        pthread_cond_broadcast(&ig->w_cv);
        pthread_mutex_unlock(&ig->w_mu);
        static const uint64_t one = 1;
        if (write(ig->w_efd, &one, sizeof(one)) < 0) {
            /* cannot fail: the counter would have to reach 2^64 - 1 */
        }
        pthread_mutex_lock(&ig->w_mu);
    }
    pthread_mutex_unlock(&ig->w_mu);
    return NULL;
}

/*
 * Whether the filling batch is full: batch-max-events messages, or DLQ_BATCH_BYTES of dead
 * letters. Each dead letter keeps up to max-message-bytes of its message; without the second
 * bound a flood of large invalid messages (16 MiB each at the largest setting) would hold
 * batch-max-events of them, twice (the batch committing and the one filling): tens of GB.
 */
#define DLQ_BATCH_BYTES ((size_t)64 << 20)

/*
 * The filling batch's events at most: batch-max-events, and while the previous batch is still
 * being committed, batch-backlog-events if larger (a group commit). A commit copies every page
 * of S its events touch; on the full-scale store one of 5,000 changed plays took ~3.5 s and one
 * of 100,000 ~21 s, so a backlog drained at 1.4k events/s in batches of 5,000 and at 2.6-4.2k/s
 * growing to 100,000 (bench/ingest.sh --db, README). Without a backlog the writer is idle when
 * a batch fills, and batches stay at batch-max-events. Off by default: a stop or a revoke
 * commits both batches before it returns (commit_wait), which with two grown batches at full
 * scale takes longer than shutdown-timeout-ms's default.
 */
static uint64_t batch_cap(const ingest_t *ig)
{
    uint64_t cap = (uint64_t)ig->cfg->batch_max_events;
    uint64_t backlog = (uint64_t)ig->cfg->batch_backlog_events;
    return ig->inflight && backlog > cap ? backlog : cap;
}

static int batch_full(const ingest_t *ig)
{
    return ig->batch_events >= batch_cap(ig) ||
           store_batch_dead_letter_bytes(ig->batch) >= DLQ_BATCH_BYTES;
}

static void commit_submit(ingest_t *ig, store_batch_t *b)
{
    ig->inflight = b;
    pthread_mutex_lock(&ig->w_mu);
    ig->w_job = b;
    pthread_cond_signal(&ig->w_cv);
    pthread_mutex_unlock(&ig->w_mu);
}

/* the writer's growths ahead of need (loop thread) */
static uint64_t writer_map_grown(ingest_t *ig)
{
    pthread_mutex_lock(&ig->w_mu);
    uint64_t n = ig->map_grown;
    pthread_mutex_unlock(&ig->w_mu);
    return n;
}

static int writer_busy(ingest_t *ig)
{
    pthread_mutex_lock(&ig->w_mu);
    int busy = ig->w_job != NULL;
    pthread_mutex_unlock(&ig->w_mu);
    return busy;
}

static int flush(ingest_t *ig);
static void on_idle(uv_idle_t *h);

/* The writer finished ig->inflight (loop thread). @return its result. */
static int commit_finish(ingest_t *ig)
{
    store_batch_t *b = ig->inflight;
    pthread_mutex_lock(&ig->w_mu);
    int rc = ig->w_rc;
    double secs = ig->w_seconds;
    if (rc == 0 && ig->w_counters_ok)
        ig->counters = ig->w_counters;
    pthread_mutex_unlock(&ig->w_mu);
    if (rc != 0) {
        set_error(ig, "store commit failed: %s", atl_strerror(rc));
        if (!ig->stalled)
            LOG_ERROR("ingest", "store commit failed; pausing consumption and retrying",
                      "err=\"%s\" events=%zu", atl_strerror(rc), store_batch_len(b));
        ig->stalled = 1;
        ig->resubmit = 1;
        if (!ig->stopping)
            uv_timer_start(&ig->retry_timer, on_retry, 1000, 0);
        return rc; /* ig->inflight stays: it is committed again first */
    }
    if (ig->stalled)
        LOG_INFO("ingest", "store commit succeeded again", "events=%zu", store_batch_len(b));
    ig->stalled = 0;
    observe_latency(ig, secs);
    ig->batches++;
    for (int i = 0; i < ig->n_parts; i++) { /* what this batch just wrote: no read-back */
        int64_t off;
        if (store_batch_get_offset(b, ig->parts[i].topic, ig->parts[i].partition, &off) == 0)
            ig->parts[i].next_offset = off;
    }
    LOG_DEBUG("ingest", "batch committed", "n=%zu seconds=%.4f", store_batch_len(b), secs);
    dlq_send_batch(ig, b);
    store_batch_clear(b);
    ig->spare = b;
    ig->inflight = NULL;
    kafka_commit_async(ig);
    return 0;
}

void ingest_on_commit(ingest_t *ig, void (*cb)(void *ud), void *ud)
{
    ig->on_commit = cb;
    ig->on_commit_ud = ud;
}

static void on_commit_done(uv_poll_t *h, int status, int events)
{
    (void)status, (void)events;
    ingest_t *ig = h->data;
    uint64_t v;
    if (read(ig->w_efd, &v, sizeof(v)) < 0 && errno != EAGAIN)
        LOG_WARN("ingest", "eventfd read failed", "err=\"%s\"", strerror(errno));
    if (!ig->inflight || ig->resubmit || writer_busy(ig))
        return; /* a stale wake-up: its result was read already */
    if (commit_finish(ig) != 0)
        return;
    if (ig->on_commit)
        ig->on_commit(ig->on_commit_ud);
    int full = batch_full(ig);
    if (ig->flush_wanted || full) {
        ig->flush_wanted = 0;
        flush(ig);
    }
    if (!ig->held && !ig->stopping)
        uv_idle_start(&ig->idle, on_idle); /* draining may have paused for this commit */
}

/* Hand the filling batch to the writer, unless it is busy (then when it is done). @return 0. */
static int flush(ingest_t *ig)
{
    uv_timer_stop(&ig->batch_timer);
    if (ig->inflight) {
        ig->flush_wanted = 1;
        return 0;
    }
    if (store_batch_len(ig->batch) == 0 && ig->batch_events == 0)
        return 0;
    store_batch_t *b = ig->batch;
    ig->batch = ig->spare;
    ig->spare = NULL;
    ig->backlog_batches += ig->batch_events > (uint64_t)ig->cfg->batch_max_events;
    ig->batch_events = 0;
    commit_submit(ig, b);
    return 0;
}

static void writer_wait(ingest_t *ig)
{
    pthread_mutex_lock(&ig->w_mu);
    while (ig->w_job)
        pthread_cond_wait(&ig->w_cv, &ig->w_mu);
    pthread_mutex_unlock(&ig->w_mu);
}

/* Wait for the writer and commit what is pending, on the loop (a revoke, the shutdown).
 * @return 0, or the store's error (the failed batch stays in ig->inflight). */
static int commit_wait(ingest_t *ig)
{
    int rc;
    writer_wait(ig);
    if (ig->inflight) {
        if (ig->resubmit) { /* it failed before: once more now */
            ig->resubmit = 0;
            commit_submit(ig, ig->inflight);
            writer_wait(ig);
        }
        if ((rc = commit_finish(ig)) != 0)
            return rc;
    }
    ig->flush_wanted = 0;
    flush(ig);
    writer_wait(ig);
    return ig->inflight ? commit_finish(ig) : 0;
}

/* ---- messages ---------------------------------------------------------------------------- */

/*
 * Dead letters (issue 10.8-10.10). A rejected message's dead letter is written into its batch
 * (store_batch_add_dead_letter: durable with the source offset, in the same transaction) and
 * produced only after that commit; the delivery report deletes it from the store. Pending ones
 * (a crash, a failed delivery) are produced again at start and after failures, when none is in
 * flight. A batch dropped uncommitted (a revoke whose commit failed) takes its dead letters
 * with it: the re-read messages are rejected and dead-lettered once, not twice.
 */
#define DLQ_TRUNCATED_BYTES 8192 /* what is left of a value the topic does not accept */

static int dlq_produce(ingest_t *ig, uint64_t id, const store_dead_letter_t *dl, size_t value_len)
{
    char part[16], off[24], orig[24];
    snprintf(part, sizeof(part), "%" PRId32, dl->partition);
    snprintf(off, sizeof(off), "%" PRId64, dl->offset);
    snprintf(orig, sizeof(orig), "%" PRIu64, dl->original_len);
    int truncated = value_len < dl->original_len;
    rd_kafka_headers_t *h = rd_kafka_headers_new(7);
    rd_kafka_header_add(h, "atlasd-reason", -1, dl->reason, -1);
    rd_kafka_header_add(h, "atlasd-error", -1, dl->error, -1);
    rd_kafka_header_add(h, "atlasd-source-topic", -1, dl->topic, -1);
    rd_kafka_header_add(h, "atlasd-source-partition", -1, part, -1);
    rd_kafka_header_add(h, "atlasd-source-offset", -1, off, -1);
    if (truncated) /* the value is the first bytes of a message of this many bytes */
        rd_kafka_header_add(h, "atlasd-truncated", -1, orig, -1);
    rd_kafka_resp_err_t e = rd_kafka_producev(
        ig->dlq, RD_KAFKA_V_TOPIC(ig->cfg->topic_dlq), RD_KAFKA_V_KEY(dl->key, dl->key_len),
        RD_KAFKA_V_VALUE((void *)dl->value, value_len), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
        RD_KAFKA_V_HEADERS(h), RD_KAFKA_V_OPAQUE((void *)(uintptr_t)id), RD_KAFKA_V_END);
    if (e) {
        rd_kafka_headers_destroy(h);
        ig->dlq_failed++;
        ig->dlq_resend = 1;
        set_error(ig, "dead-letter produce failed: %s", rd_kafka_err2str(e));
        return -1;
    }
    ig->dlq_in_flight++;
    return 0;
}

/* dlq_produce and remember the highest id produced (the resend's limit, below). */
static int dlq_produce_id(ingest_t *ig, uint64_t id, const store_dead_letter_t *dl,
                          size_t value_len)
{
    if (id > ig->dlq_max_id)
        ig->dlq_max_id = id;
    return dlq_produce(ig, id, dl, value_len);
}

/* After a commit: send the batch's dead letters. */
static void dlq_send_batch(ingest_t *ig, store_batch_t *b)
{
    for (size_t i = 0; ig->dlq && i < store_batch_dead_letter_count(b); i++) {
        store_dead_letter_t dl;
        uint64_t id;
        store_batch_dead_letter_get(b, i, &dl, &id);
        dlq_produce_id(ig, id, &dl, dl.value_len);
    }
}

static int resend_cb(void *ud, uint64_t id, const store_dead_letter_t *dl)
{
    dlq_produce_id(ud, id, dl, dl->value_len);
    return 0;
}

/* At start, before the loop serves: produce every dead letter a crash left undelivered. */
static void dlq_resend_at_start(ingest_t *ig)
{
    if (!ig->dlq)
        return;
    int rc = store_dead_letters_each(ig->store, resend_cb, ig);
    if (rc != 0) {
        ig->dlq_resend = 1;
        set_error(ig, "reading pending dead letters: %s", atl_strerror(rc));
    }
}

/*
 * After a failed delivery, once nothing is in flight and every delivered one is deleted (so
 * nothing is in flight twice): the pending dead letters are read on the thread pool (copies:
 * their number is unbounded, the loop reads nothing) and produced again on the loop. Dead
 * letters of batches committed after the job was queued (ids above the highest produced then)
 * are skipped: their commit produces them.
 */
typedef struct resend_item {
    uint64_t id;
    store_dead_letter_t dl; /* its pointers point into bytes */
    char bytes[];
} resend_item_t;

typedef struct resend_job {
    uv_work_t work;
    ingest_t *ig;
    uint64_t id_limit;
    resend_item_t **items;
    size_t n, cap;
    int rc;
} resend_job_t;

static char *copy_in(char **p, const void *src, size_t len)
{
    char *at = *p;
    if (len)
        memcpy(at, src, len);
    *p += len;
    return at;
}

static int resend_copy_cb(void *ud, uint64_t id, const store_dead_letter_t *dl)
{
    resend_job_t *j = ud;
    if (id > j->id_limit)
        return 0;
    size_t lt = strlen(dl->topic) + 1, lr = strlen(dl->reason) + 1, le = strlen(dl->error) + 1;
    resend_item_t *it = malloc(sizeof(*it) + lt + lr + le + dl->key_len + dl->value_len);
    if (!it || atl_array_grow((void **)&j->items, &j->cap, j->n + 1, sizeof(*j->items), 16)) {
        free(it);
        return -ENOMEM;
    }
    char *p = it->bytes;
    it->id = id;
    it->dl = *dl;
    it->dl.topic = copy_in(&p, dl->topic, lt);
    it->dl.reason = copy_in(&p, dl->reason, lr);
    it->dl.error = copy_in(&p, dl->error, le);
    it->dl.key = dl->key_len ? copy_in(&p, dl->key, dl->key_len) : NULL;
    it->dl.value = copy_in(&p, dl->value, dl->value_len);
    j->items[j->n++] = it;
    return 0;
}

static void resend_work_cb(uv_work_t *w)
{
    resend_job_t *j = w->data;
    j->rc = store_dead_letters_each(j->ig->store, resend_copy_cb, j);
}

static void resend_after_cb(uv_work_t *w, int status)
{
    resend_job_t *j = w->data;
    ingest_t *ig = j->ig;
    ig->resend_busy = 0;
    if (status != 0 || j->rc != 0) {
        ig->dlq_resend = 1;
        set_error(ig, "reading pending dead letters: %s",
                  atl_strerror(status != 0 ? status : j->rc));
    }
    for (size_t i = 0; i < j->n; i++) {
        if (!ig->stopping && status == 0 && j->rc == 0)
            dlq_produce_id(ig, j->items[i]->id, &j->items[i]->dl, j->items[i]->dl.value_len);
        free(j->items[i]);
    }
    free(j->items);
    free(j);
}

static void dlq_resend_pending(ingest_t *ig)
{
    resend_job_t *j = calloc(1, sizeof(*j));
    if (!j)
        abort();
    j->ig = ig;
    j->id_limit = ig->dlq_max_id;
    j->work.data = j;
    ig->dlq_resend = 0;
    if (uv_queue_work(ig->loop, &j->work, resend_work_cb, resend_after_cb) != 0) {
        ig->dlq_resend = 1;
        free(j);
        return;
    }
    ig->resend_busy = 1;
}

/* Deleting delivered dead letters is a write transaction: it may wait for LMDB's writer lock
 * (a batch commit, a refresh's or a rebuild's write), so it runs on the thread pool. The ids
 * move to the job; a failed deletion gives them back, tried again at the next tick. */
static void del_work_cb(uv_work_t *w)
{
    ingest_t *ig = w->data;
    ig->del_rc = store_dead_letters_delete(ig->store, ig->del_ids, ig->n_del_ids);
}

static void del_after_cb(uv_work_t *w, int status)
{
    ingest_t *ig = w->data;
    ig->del_busy = 0;
    if (status == 0 && ig->del_rc == 0) {
        ig->n_del_ids = 0;
        return;
    }
    if (atl_array_grow((void **)&ig->dlq_done, &ig->cap_dlq_done, ig->n_dlq_done + ig->n_del_ids,
                       sizeof(*ig->dlq_done), 64))
        abort();
    memcpy(ig->dlq_done + ig->n_dlq_done, ig->del_ids, ig->n_del_ids * sizeof(*ig->del_ids));
    ig->n_dlq_done += ig->n_del_ids;
    ig->n_del_ids = 0;
}

static void dlq_flush_deletes(ingest_t *ig)
{
    if (ig->n_dlq_done == 0 || ig->del_busy)
        return;
    uint64_t *spare = ig->del_ids; /* swap the arrays: no copy */
    size_t spare_cap = ig->cap_del_ids;
    ig->del_ids = ig->dlq_done, ig->cap_del_ids = ig->cap_dlq_done;
    ig->n_del_ids = ig->n_dlq_done;
    ig->dlq_done = spare, ig->cap_dlq_done = spare_cap, ig->n_dlq_done = 0;
    ig->del_work.data = ig;
    if (uv_queue_work(ig->loop, &ig->del_work, del_work_cb, del_after_cb) == 0)
        ig->del_busy = 1;
    else
        del_after_cb(&ig->del_work, -1); /* back to dlq_done */
}

/* At shutdown (the loop may wait then): what is left, at once. */
static void dlq_flush_deletes_now(ingest_t *ig)
{
    if (ig->n_dlq_done > 0 &&
        store_dead_letters_delete(ig->store, ig->dlq_done, ig->n_dlq_done) == 0)
        ig->n_dlq_done = 0;
}

static void on_batch_timer(uv_timer_t *t)
{
    flush(t->data);
}

/* What a topic carries: a hiscore row on the beatmaps topic, or the reverse, is rejected rather
 * than taken for the other kind (one topic for both: either) */
static store_topic_t topic_kind(const atl_config_t *cfg, const char *topic)
{
    if (strcmp(cfg->topic_hiscores, cfg->topic_beatmaps) == 0)
        return STORE_TOPIC_ANY;
    return strcmp(topic, cfg->topic_hiscores) == 0 ? STORE_TOPIC_HISCORES : STORE_TOPIC_BEATMAPS;
}

int64_t ingest_reference_now(int64_t ts_ms, int64_t wall_s)
{
    if (ts_ms < 0) /* no timestamp */
        return wall_s;
    return ts_ms / 1000 < wall_s ? ts_ms / 1000 : wall_s;
}

/* @return 0 (the message is consumed), or -ENOMEM: it was not, the caller keeps it to retry. */
static int handle_message(ingest_t *ig, rd_kafka_message_t *m)
{
    if (m->err == RD_KAFKA_RESP_ERR__AUTO_OFFSET_RESET) {
        /* auto.offset.reset=error: the store's offset is below the log start (retention deleted
         * events it never applied) or past the end (topic recreated). Skipping ahead would make
         * the store silently inexact, so librdkafka stops fetching the partition and we say so
         * loudly; the operator decides (README "Offsets out of range"). */
        ig->offsets_lost++;
        ig->kafka_errors++;
        set_error(ig, "offset out of range, partition stopped: %s [%" PRId32 "]: %s",
                  m->rkt ? rd_kafka_topic_name(m->rkt) : "?", m->partition,
                  rd_kafka_message_errstr(m));
        LOG_ERROR("ingest", "stored offset out of range: partition stopped, store not exact",
                  "topic=%s partition=%" PRId32 " offset=%" PRId64 " err=\"%s\"",
                  m->rkt ? rd_kafka_topic_name(m->rkt) : "?", m->partition, m->offset,
                  rd_kafka_message_errstr(m));
        return 0;
    }
    if (m->err) {
        if (m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF) {
            ig->kafka_errors++;
            set_error(ig, "consumer: %s", rd_kafka_message_errstr(m));
            LOG_WARN("ingest", "consumer error", "err=\"%s\"", rd_kafka_message_errstr(m));
        }
        return 0;
    }
    const char *topic = rd_kafka_topic_name(m->rkt);
    store_reject_t why = STORE_REJECT_NONE;
    char err[256] = "";
    rd_kafka_timestamp_type_t tst;
    ig->dopts.now_s = ingest_reference_now(rd_kafka_message_timestamp(m, &tst), time(NULL));
    ig->dopts.topic = topic_kind(ig->cfg, topic);
    if (!m->payload) { /* a tombstone (Debezium after a delete): nothing to apply */
        ig->consumed++;
        ig->tombstones++;
        goto done;
    }
    int rc = store_event_decode(m->payload ? m->payload : "", m->len, &ig->dopts, &ig->ev, &why,
                                err, sizeof(err));
    if (rc == -ENOMEM) { /* not the message's fault: stall, never dead-letter (issue 10.2) */
        set_error(ig, "decoding %s[%" PRId32 "]@%" PRId64 ": out of memory", topic, m->partition,
                  m->offset);
        return -ENOMEM;
    }
    ig->consumed++;
    if (rc == 0) {
        if (store_batch_add(ig->batch, &ig->ev) != 0) {
            LOG_ERROR("ingest", "out of memory adding to batch", "");
            abort();
        }
    } else {
        ig->rejected[why]++;
        store_batch_count_reject(ig->batch, why);
        if (ig->dlq) {
            store_dead_letter_t dl = {
                topic,  m->partition,           m->offset, m->key, m->payload, m->key_len, m->len,
                m->len, store_reject_name(why), err};
            if (store_batch_add_dead_letter(ig->batch, &dl, (size_t)ig->cfg->max_message_bytes))
                abort(); /* daemon/: abort on OOM (STYLE R3) */
        }
        LOG_DEBUG("ingest", "message rejected",
                  "topic=%s partition=%" PRId32 " offset=%" PRId64 " reason=%s err=\"%s\"", topic,
                  m->partition, m->offset, store_reject_name(why), err);
    }
done:
    if (store_batch_set_offset(ig->batch, topic, m->partition, m->offset + 1) != 0)
        abort();
    part_find(ig, topic, m->partition, 1);
    if (ig->batch_events++ == 0)
        uv_timer_start(&ig->batch_timer, on_batch_timer, (uint64_t)ig->cfg->batch_max_ms, 0);
    if (batch_full(ig))
        flush(ig);
    return 0;
}

static void on_idle(uv_idle_t *h);

/* Keep @p m to decode again after a pause (its offset is not passed; nothing after it is read). */
static void hold(ingest_t *ig, rd_kafka_message_t *m)
{
    if (!ig->held)
        LOG_ERROR("ingest", "out of memory decoding a message; pausing consumption and retrying",
                  "partition=%" PRId32 " offset=%" PRId64, m->partition, m->offset);
    ig->held = m;
    uv_idle_stop(&ig->idle);
    uv_timer_start(&ig->retry_timer, on_retry, 1000, 0);
}

static void drop_held(ingest_t *ig)
{
    if (ig->held)
        rd_kafka_message_destroy(ig->held);
    ig->held = NULL;
}

/* At the close: @p m stays unapplied, and so does everything after it (see ig->discarding). */
static void start_discarding(ingest_t *ig, const rd_kafka_message_t *m)
{
    if (!ig->discarding)
        LOG_WARN("ingest",
                 "a message is left unapplied at the close; it and what follows are "
                 "read again at the next start",
                 "partition=%" PRId32 " offset=%" PRId64, m->partition, m->offset);
    ig->discarding = 1;
}

static void finish_stop(ingest_t *ig);

/* Draining pauses while a full batch waits for the writer (it resumes in on_commit_done). */
static int paused(const ingest_t *ig)
{
    return ig->stalled || ig->held || (ig->inflight && batch_full(ig));
}

static void drain(ingest_t *ig)
{
    uint64_t t0 = uv_hrtime();
    for (unsigned i = 1; !paused(ig); i++) {
        if (i % 16 == 0 && uv_hrtime() - t0 >= DRAIN_BUDGET_NS)
            break;
        rd_kafka_message_t *m = rd_kafka_consumer_poll(ig->rk, 0);
        if (!m) {
            uv_idle_stop(&ig->idle);
            goto closed_check;
        }
        if (ig->discarding) {
            rd_kafka_message_destroy(m);
            continue;
        }
        if (handle_message(ig, m) == -ENOMEM) {
            if (!ig->closing_consumer) {
                hold(ig, m);
                break;
            }
            start_discarding(ig, m);
        }
        rd_kafka_message_destroy(m);
    }
    if (!paused(ig))
        uv_idle_start(&ig->idle, on_idle); /* more queued: come back next loop iteration */
    else
        uv_idle_stop(&ig->idle);
closed_check:
    if (ig->closing_consumer && rd_kafka_consumer_closed(ig->rk))
        finish_stop(ig);
}

static void on_idle(uv_idle_t *h)
{
    drain(h->data);
}

static void on_readable(uv_poll_t *h, int status, int events)
{
    (void)events;
    ingest_t *ig = h->data;
    uint64_t v;
    if (status == 0 && read(ig->efd, &v, sizeof(v)) < 0 && errno != EAGAIN)
        LOG_WARN("ingest", "eventfd read failed", "err=\"%s\"", strerror(errno));
    drain(ig);
}

static void on_retry(uv_timer_t *t)
{
    ingest_t *ig = t->data;
    if (ig->resubmit) { /* a failed commit: again, before anything newer (the writer is idle:
                         * its failure was the last thing it did) */
        ig->resubmit = 0;
        commit_submit(ig, ig->inflight); /* on_commit_done resumes draining */
    }
    if (ig->held) {
        rd_kafka_message_t *m = ig->held;
        ig->held = NULL;
        if (handle_message(ig, m) == -ENOMEM) {
            ig->held = m;
            uv_timer_start(&ig->retry_timer, on_retry, 1000, 0);
            return;
        }
        LOG_INFO("ingest", "decoding succeeded again", "offset=%" PRId64, m->offset);
        rd_kafka_message_destroy(m);
    }
    if (!paused(ig))
        uv_idle_start(&ig->idle, on_idle);
}

/* ---- librdkafka callbacks (served by rd_kafka_consumer_poll on the loop thread) ----------- */

/*
 * The partitions of an assignment to consume, each from the offset the store committed with its
 * data (the start of the partition if it never had one). A partition whose stored offset cannot
 * be read (a store error, a corrupt value) is left out and reported: starting it from the
 * beginning would count its events twice. @return a new list (librdkafka aborts without memory).
 */
static rd_kafka_topic_partition_list_t *assignable(ingest_t *ig,
                                                   const rd_kafka_topic_partition_list_t *parts)
{
    rd_kafka_topic_partition_list_t *ok = rd_kafka_topic_partition_list_new(parts->cnt + 1);
    for (int i = 0; i < parts->cnt; i++) {
        const rd_kafka_topic_partition_t *p = &parts->elems[i];
        int64_t off;
        int rc = store_offset_get(ig->store, p->topic, p->partition, &off);
        if (rc == ATL_ENOTFOUND) {
            off = RD_KAFKA_OFFSET_BEGINNING;
        } else if (rc != 0) {
            ig->offsets_unreadable++;
            set_error(ig,
                      "stored offset of %s [%" PRId32 "] unreadable (%s): partition not consumed",
                      p->topic, p->partition, atl_strerror(rc));
            LOG_ERROR("ingest", "stored offset unreadable: partition not consumed",
                      "topic=%s partition=%" PRId32 " err=\"%s\"", p->topic, p->partition,
                      atl_strerror(rc));
            continue;
        }
        part_state_t *ps = part_find(ig, p->topic, p->partition, 1);
        if (ps && rc == 0)
            ps->next_offset = off;
        rd_kafka_topic_partition_list_add(ok, p->topic, p->partition)->offset = off;
    }
    return ok;
}

static void on_rebalance(rd_kafka_t *rk, rd_kafka_resp_err_t err,
                         rd_kafka_topic_partition_list_t *parts, void *opaque)
{
    ingest_t *ig = opaque;
    ig->rebalances++;
    if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
        rd_kafka_topic_partition_list_t *ok = assignable(ig, parts);
        rd_kafka_resp_err_t ae = rd_kafka_assign(rk, ok);
        if (ae != RD_KAFKA_RESP_ERR_NO_ERROR) {
            ig->kafka_errors++;
            set_error(ig, "assigning partitions: %s", rd_kafka_err2str(ae));
            LOG_ERROR("ingest", "assigning partitions failed", "err=\"%s\"", rd_kafka_err2str(ae));
        }
        rd_kafka_topic_partition_list_destroy(ok);
        ig->assigned = 1;
        LOG_INFO("ingest", "partitions assigned", "n=%d seconds_since_start=%.1f", parts->cnt,
                 now_s() - ig->started);
        return;
    }
    /* revoke (eager protocols): commit what we hold for them first (waiting for the writer) */
    if (commit_wait(ig) != 0) {
        /* cannot commit: drop the batches; their messages are re-read from the store's offsets,
         * their dead letters (never sent: they go out after a commit) with them */
        store_batch_clear(ig->inflight);
        ig->spare = ig->inflight;
        ig->inflight = NULL;
        store_batch_clear(ig->batch);
        ig->batch_events = 0;
        ig->stalled = ig->resubmit = 0;
        uv_timer_stop(&ig->retry_timer);
    }
    if (ig->held) { /* re-read from the store's offsets by whoever gets the partition */
        drop_held(ig);
        uv_timer_stop(&ig->retry_timer);
    }
    rd_kafka_assign(rk, NULL);
    ig->assigned = 0;
    ig->n_parts = 0;
    LOG_INFO("ingest", "partitions revoked", "n=%d err=\"%s\"", parts->cnt, rd_kafka_err2name(err));
}

static void on_error(rd_kafka_t *rk, int err, const char *reason, void *opaque)
{
    (void)rk;
    ingest_t *ig = opaque;
    ig->kafka_errors++;
    set_error(ig, "kafka: %s: %s", rd_kafka_err2name(err), reason);
    if (err == RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN)
        ig->brokers_up = 0;
    LOG_WARN("kafka", "client error", "err=%s reason=\"%s\"", rd_kafka_err2name(err), reason);
}

static void on_log(const rd_kafka_t *rk, int level, const char *fac, const char *buf)
{
    (void)rk;
    log_level_t l = level <= 3   ? LOG_LEVEL_ERROR
                    : level == 4 ? LOG_LEVEL_WARN
                    : level <= 6 ? LOG_LEVEL_INFO
                                 : LOG_LEVEL_DEBUG;
    LOG_AT(l, "kafka", "librdkafka", "fac=%s text=\"%s\"", fac, buf);
}

/* Statistics JSON: brokers that are UP, and the consumer lag of each assigned partition. */
static int on_stats(rd_kafka_t *rk, char *json, size_t len, void *opaque)
{
    (void)rk;
    ingest_t *ig = opaque;
    cJSON *root = cJSON_ParseWithLength(json, len);
    if (!root)
        return 0;
    int up = 0, known = 0;
    cJSON *b;
    cJSON_ArrayForEach(b, cJSON_GetObjectItem(root, "brokers"))
    {
        cJSON *id = cJSON_GetObjectItem(b, "nodeid"), *state = cJSON_GetObjectItem(b, "state");
        cJSON *src = cJSON_GetObjectItem(b, "source");
        if (!cJSON_IsNumber(id) || id->valuedouble < 0 || !cJSON_IsString(state))
            continue;
        /* librdkafka's "GroupCoordinator" is a logical alias of one of the brokers: counting it
         * made a 3-broker cluster look like 4 */
        if (cJSON_IsString(src) && strcmp(src->valuestring, "logical") == 0)
            continue;
        known++;
        up += strcmp(state->valuestring, "UP") == 0;
    }
    ig->brokers_up = up;
    ig->brokers_known = known;
    cJSON *t;
    cJSON_ArrayForEach(t, cJSON_GetObjectItem(root, "topics"))
    {
        cJSON *p;
        cJSON_ArrayForEach(p, cJSON_GetObjectItem(t, "partitions"))
        {
            cJSON *pid = cJSON_GetObjectItem(p, "partition"),
                  *lag = cJSON_GetObjectItem(p, "consumer_lag");
            if (!cJSON_IsNumber(pid) || pid->valuedouble < 0 || !cJSON_IsNumber(lag))
                continue;
            part_state_t *ps = part_find(ig, t->string, (int32_t)pid->valuedouble, 0);
            if (ps)
                ps->lag = (int64_t)lag->valuedouble;
        }
    }
    cJSON_Delete(root);
    return 0;
}

/* ---- periodic work ----------------------------------------------------------------------- */

static void on_tick(uv_timer_t *t)
{
    ingest_t *ig = t->data;
    if (ig->dlq) {
        rd_kafka_poll(ig->dlq, 0); /* delivery reports of dead letters */
        dlq_flush_deletes(ig);
        if (ig->dlq_resend && ig->dlq_in_flight == 0 && ig->n_dlq_done == 0 && !ig->del_busy &&
            !ig->resend_busy && !ig->stopping) {
            if (now_s() - ig->last_resend_s >= 5) {
                ig->last_resend_s = now_s();
                dlq_resend_pending(ig);
            }
        }
    }
    if (ig->closing_consumer) {
        drain(ig); /* keep serving the queue until the consumer is closed */
        return;
    }
    double now = now_s();
    if (now - ig->rate_t0 >= 10) {
        ig->rate = (double)(ig->consumed - ig->rate_n0) / (now - ig->rate_t0);
        ig->rate_t0 = now;
        ig->rate_n0 = ig->consumed;
    }
    if (ig->cfg->stats_interval_s > 0 &&
        now - ig->last_stats_s >= (double)ig->cfg->stats_interval_s) {
        if (ig->last_stats_s > 0) {
            const store_counters_t c = ig->counters;
            LOG_INFO("stats", "ingestion",
                     "consumed=%" PRIu64 " applied=%" PRIu64 " batches=%" PRIu64
                     " rate=%.0f brokers_up=%d stalled=%d",
                     ig->consumed, c.events_applied, ig->batches, ig->rate, ig->brokers_up,
                     ig->stalled);
        }
        ig->last_stats_s = now;
    }
}

static void dlq_delivered(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
    (void)rk;
    ingest_t *ig = opaque;
    uint64_t id = (uint64_t)(uintptr_t)m->_private;
    ig->dlq_in_flight--;
    if (m->err == RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE) {
        /* the topic takes less than max-message-bytes: send what fits, saying so (10.9) */
        const rd_kafka_headers_t *hs = NULL;
        store_dead_letter_t dl = {0};
        const void *v;
        size_t vl;
        char strs[4][256] = {"", "", "", ""};
        const char *names[4] = {"atlasd-source-topic", "atlasd-reason", "atlasd-error",
                                "atlasd-truncated"};
        if (rd_kafka_message_headers(m, (rd_kafka_headers_t **)&hs) == 0)
            for (int q = 0; q < 4; q++)
                if (rd_kafka_header_get_last(hs, names[q], &v, &vl) == 0 && v)
                    snprintf(strs[q], sizeof(strs[q]), "%.*s", (int)vl, (const char *)v);
        dl.topic = strs[0], dl.reason = strs[1], dl.error = strs[2];
        if (rd_kafka_header_get_last(hs, "atlasd-source-partition", &v, &vl) == 0 && v)
            dl.partition = (int32_t)strtol(v, NULL, 10);
        if (rd_kafka_header_get_last(hs, "atlasd-source-offset", &v, &vl) == 0 && v)
            dl.offset = strtoll(v, NULL, 10);
        dl.key = m->key, dl.key_len = m->key_len;
        dl.value = m->payload, dl.value_len = m->len;
        dl.original_len = strs[3][0] ? strtoull(strs[3], NULL, 10) : m->len;
        if (m->len > DLQ_TRUNCATED_BYTES) {
            ig->dlq_truncated++;
            if (dlq_produce(ig, id, &dl, DLQ_TRUNCATED_BYTES) == 0)
                return;
        }
    }
    if (m->err) {
        ig->dlq_failed++;
        ig->dlq_resend = 1; /* it stays in the store: produced again later */
        set_error(ig, "dead-letter delivery failed: %s", rd_kafka_err2str(m->err));
        return;
    }
    ig->dlq_sent++;
    if (atl_array_grow((void **)&ig->dlq_done, &ig->cap_dlq_done, ig->n_dlq_done + 1,
                       sizeof(*ig->dlq_done), 64))
        abort();
    ig->dlq_done[ig->n_dlq_done++] = id;
}

/* ---- set-up and tear-down ---------------------------------------------------------------- */

static rd_kafka_conf_t *base_conf(ingest_t *ig, char *errbuf, size_t errlen)
{
    static const char *const kv[] = {"log.queue", "true"};
    rd_kafka_conf_t *conf;
    if (kafkaconf_new(ig->cfg->brokers, kv, ATL_ARRAY_LEN(kv), &conf, errbuf, errlen) != 0)
        return NULL;
    rd_kafka_conf_set_log_cb(conf, on_log);
    rd_kafka_conf_set_error_cb(conf, on_error);
    rd_kafka_conf_set_opaque(conf, ig);
    return conf;
}

static int make_consumer(ingest_t *ig, char *errbuf, size_t errlen)
{
    rd_kafka_conf_t *conf = base_conf(ig, errbuf, errlen);
    char e[512];
    if (!conf)
        return ATL_ECONFIG;
    /* our defaults first, so kafka.* settings can override them */
    if (kafkaconf_set(conf, "group.id", ig->cfg->group, errbuf, errlen) ||
        (ig->cfg->group_instance_id[0] && strcmp(ig->cfg->group_instance_id, "none") != 0 &&
         kafkaconf_set(conf, "group.instance.id", ig->cfg->group_instance_id, errbuf, errlen)) ||
        kafkaconf_set(conf, "enable.auto.commit", "false", errbuf, errlen) ||
        kafkaconf_set(conf, "enable.auto.offset.store", "false", errbuf, errlen) ||
        /* a stored offset out of the log is an error, never a silent skip (see above) */
        kafkaconf_set(conf, "auto.offset.reset", "error", errbuf, errlen) ||
        /* a subscribed topic that does not exist yet is found within 10 s once created */
        kafkaconf_set(conf, "topic.metadata.refresh.interval.ms", "10000", errbuf, errlen) ||
        kafkaconf_set(conf, "partition.assignment.strategy", "range,roundrobin", errbuf, errlen) ||
        kafkaconf_set(conf, "session.timeout.ms", "6000", errbuf, errlen) ||
        kafkaconf_set(conf, "statistics.interval.ms", "2000", errbuf, errlen))
        goto bad;
    for (size_t i = 0; i < ig->cfg->n_kafka; i++)
        if (kafkaconf_set(conf, ig->cfg->kafka_keys[i], ig->cfg->kafka_values[i], errbuf, errlen))
            goto bad;
    rd_kafka_conf_set_rebalance_cb(conf, on_rebalance);
    rd_kafka_conf_set_stats_cb(conf, on_stats);
    if (!(ig->rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, e, sizeof(e)))) {
        snprintf(errbuf, errlen, "kafka consumer: %s", e);
        goto bad;
    }
    rd_kafka_set_log_queue(ig->rk, NULL); /* logs to the main queue, served by our poll */
    rd_kafka_poll_set_consumer(ig->rk);
    return 0;
bad:
    rd_kafka_conf_destroy(conf);
    return ATL_ECONFIG;
}

static int make_dlq(ingest_t *ig, char *errbuf, size_t errlen)
{
    if (!ig->cfg->topic_dlq[0])
        return 0;
    rd_kafka_conf_t *conf = base_conf(ig, errbuf, errlen);
    char e[512];
    if (!conf)
        return ATL_ECONFIG;
    for (size_t i = 0; i < ig->cfg->n_kafka; i++) {
        const char *k = ig->cfg->kafka_keys[i];
        /* consumer-only properties would make the producer fail: pass the common ones */
        if (!kafkaconf_key_is_common(k))
            continue;
        if (kafkaconf_set(conf, k, ig->cfg->kafka_values[i], errbuf, errlen))
            goto bad;
    }
    /* room for the largest dead letter (max-message-bytes of value, plus key and headers);
     * librdkafka's default of 1 MB silently lost bigger ones (issue 10.9) */
    char mmb[32];
    snprintf(mmb, sizeof(mmb), "%lld",
             (long long)(ig->cfg->max_message_bytes + 65536 + 70000 > 1000000
                             ? ig->cfg->max_message_bytes + 65536 + 70000
                             : 1000000));
    if (kafkaconf_set(conf, "message.max.bytes", mmb, errbuf, errlen))
        goto bad;
    rd_kafka_conf_set_dr_msg_cb(conf, dlq_delivered);
    if (!(ig->dlq = rd_kafka_new(RD_KAFKA_PRODUCER, conf, e, sizeof(e)))) {
        snprintf(errbuf, errlen, "kafka producer: %s", e);
        goto bad;
    }
    return 0;
bad:
    rd_kafka_conf_destroy(conf);
    return ATL_ECONFIG;
}

int ingest_start(uv_loop_t *loop, const atl_config_t *cfg, store_t *store, ingest_t **out,
                 char *errbuf, size_t errlen)
{
    ingest_t *ig = calloc(1, sizeof(*ig));
    int rc = ATL_ECONFIG;
    if (!ig)
        abort();
    ig->loop = loop;
    ig->cfg = cfg;
    ig->store = store;
    ig->efd = ig->w_efd = -1;
    ig->started = ig->rate_t0 = now_s();
    store_decode_opts_default(&ig->dopts);
    ig->dopts.max_bytes = (size_t)cfg->max_message_bytes;
    ig->dopts.min_pp = cfg->min_pp;
    ig->dopts.max_future_s = cfg->max_future_s;
    if (!cfg->brokers[0]) {
        snprintf(errbuf, errlen, "no Kafka brokers configured (--brokers)");
        goto bad;
    }
    pthread_mutex_init(&ig->w_mu, NULL);
    pthread_condattr_t ca; /* the writer's timed waits (writer_timed_wait) */
    pthread_condattr_init(&ca);
    ig->w_clock =
        pthread_condattr_setclock(&ca, CLOCK_MONOTONIC) == 0 ? CLOCK_MONOTONIC : CLOCK_REALTIME;
    rc = pthread_cond_init(&ig->w_cv, &ca);
    pthread_condattr_destroy(&ca);
    if (rc != 0) {
        snprintf(errbuf, errlen, "the writer's condition variable: %s", strerror(rc));
        rc = -rc;
        goto bad;
    }
    if ((rc = store_counters_get(store, &ig->counters)) != 0) { /* then the writer's copies */
        snprintf(errbuf, errlen, "reading the store's counters: %s", atl_strerror(rc));
        goto bad;
    }
    if ((rc = store_batch_new(&ig->batch)) != 0 || (rc = store_batch_new(&ig->spare)) != 0 ||
        (rc = make_consumer(ig, errbuf, errlen)) != 0 || (rc = make_dlq(ig, errbuf, errlen)) != 0)
        goto bad;
    rd_kafka_topic_partition_list_t *topics = rd_kafka_topic_partition_list_new(2);
    rd_kafka_topic_partition_list_add(topics, cfg->topic_hiscores, RD_KAFKA_PARTITION_UA);
    rd_kafka_topic_partition_list_add(topics, cfg->topic_beatmaps, RD_KAFKA_PARTITION_UA);
    rd_kafka_resp_err_t err = rd_kafka_subscribe(ig->rk, topics);
    rd_kafka_topic_partition_list_destroy(topics);
    if (err) {
        snprintf(errbuf, errlen, "subscribe: %s", rd_kafka_err2str(err));
        rc = ATL_ECONFIG;
        goto bad;
    }
    ig->queue = rd_kafka_queue_get_consumer(ig->rk);
    if ((ig->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) < 0 ||
        (ig->w_efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) < 0) {
        rc = -errno;
        snprintf(errbuf, errlen, "eventfd: %s", strerror(-rc));
        goto bad;
    }
    static const uint64_t one = 1; /* an eventfd takes 8-byte writes */
    rd_kafka_queue_io_event_enable(ig->queue, ig->efd, &one, sizeof(one));
    uv_poll_init(loop, &ig->poll, ig->efd);
    uv_idle_init(loop, &ig->idle);
    uv_timer_init(loop, &ig->batch_timer);
    uv_timer_init(loop, &ig->retry_timer);
    uv_timer_init(loop, &ig->tick);
    uv_poll_init(loop, &ig->w_done, ig->w_efd);
    ig->w_done.data = ig;
    uv_poll_start(&ig->w_done, UV_READABLE, on_commit_done);
    ig->n_handles = 6;
    if (pthread_create(&ig->w_thread, NULL, writer_main, ig) != 0)
        abort();
    ig->w_started = 1;
    ig->poll.data = ig->idle.data = ig->batch_timer.data = ig->retry_timer.data = ig->tick.data =
        ig;
    uv_poll_start(&ig->poll, UV_READABLE, on_readable);
    uv_timer_start(&ig->tick, on_tick, 100, 100);
    uv_idle_start(&ig->idle, on_idle); /* events may already be queued */
    dlq_resend_at_start(ig);           /* dead letters a crash left undelivered */
    LOG_INFO("ingest", "consuming", "brokers=\"%s\" group=%s instance=%s topics=%s,%s",
             cfg->brokers, cfg->group, cfg->group_instance_id, cfg->topic_hiscores,
             cfg->topic_beatmaps);
    *out = ig;
    return 0;
bad:
    ingest_free(ig);
    return rc;
}

static void on_handle_closed(uv_handle_t *h)
{
    ingest_t *ig = h->data;
    if (--ig->n_handles == 0 && ig->done_cb)
        ig->done_cb(ig->done_ud);
}

static void finish_stop(ingest_t *ig)
{
    ig->closing_consumer = 0;
    if (commit_wait(ig) != 0)
        LOG_ERROR("ingest", "last batch could not be committed; it will be re-read at start",
                  "events=%zu", store_batch_len(ig->batch));
    LOG_INFO("ingest", "consumer closed", "batches=%" PRIu64, ig->batches);
    if (ig->dlq && rd_kafka_flush(ig->dlq, 5000) != RD_KAFKA_RESP_ERR_NO_ERROR)
        LOG_WARN("ingest", "dead letters not all delivered at shutdown; sent again at start",
                 "pending=%d", rd_kafka_outq_len(ig->dlq));
    if (ig->dlq)
        dlq_flush_deletes_now(ig);
    uv_close((uv_handle_t *)&ig->poll, on_handle_closed);
    uv_close((uv_handle_t *)&ig->idle, on_handle_closed);
    uv_close((uv_handle_t *)&ig->batch_timer, on_handle_closed);
    uv_close((uv_handle_t *)&ig->retry_timer, on_handle_closed);
    uv_close((uv_handle_t *)&ig->tick, on_handle_closed);
    uv_close((uv_handle_t *)&ig->w_done, on_handle_closed);
}

void ingest_stop(ingest_t *ig, void (*done_cb)(void *ud), void *ud)
{
    if (ig->stopping)
        return;
    ig->stopping = 1;
    ig->done_cb = done_cb;
    ig->done_ud = ud;
    if (commit_wait(ig) != 0)
        LOG_ERROR("ingest", "batch could not be committed; retried at the close, else re-read",
                  "events=%zu", store_batch_len(ig->batch));
    ig->stalled = 0; /* keep serving the queue so the close can complete */
    if (ig->held) {  /* its offset was not stored: it is read again at the next start */
        start_discarding(ig, ig->held);
        drop_held(ig);
    }
    uv_timer_stop(&ig->retry_timer);
    rd_kafka_error_t *e = rd_kafka_consumer_close_queue(ig->rk, ig->queue);
    if (e) {
        LOG_WARN("ingest", "consumer close", "err=\"%s\"", rd_kafka_error_string(e));
        rd_kafka_error_destroy(e);
    }
    ig->closing_consumer = 1;
    drain(ig);
}

void ingest_free(ingest_t *ig)
{
    if (!ig)
        return;
    drop_held(ig); /* before its client is destroyed */
    free(ig->dlq_done);
    free(ig->del_ids);
    if (ig->w_started) {
        pthread_mutex_lock(&ig->w_mu);
        ig->w_quit = 1;
        pthread_cond_signal(&ig->w_cv);
        pthread_mutex_unlock(&ig->w_mu);
        pthread_join(ig->w_thread, NULL); /* it finishes a job it holds first */
    }
    pthread_mutex_destroy(&ig->w_mu);
    pthread_cond_destroy(&ig->w_cv);
    store_batch_free(ig->spare);
    store_batch_free(ig->inflight);
    if (ig->queue)
        rd_kafka_queue_destroy(ig->queue);
    if (ig->rk)
        rd_kafka_destroy(ig->rk);
    if (ig->dlq)
        rd_kafka_destroy(ig->dlq);
    if (ig->efd >= 0)
        close(ig->efd);
    if (ig->w_efd >= 0)
        close(ig->w_efd);
    store_batch_free(ig->batch);
    free(ig);
}

/* ---- reporting --------------------------------------------------------------------------- */

const char *ingest_state(const ingest_t *ig)
{
    return ig->stopping                                   ? "stopping"
           : ig->offsets_lost                             ? "offset_out_of_range"
           : ig->offsets_unreadable                       ? "offset_unreadable"
           : ig->stalled || ig->held                      ? "stalled"
           : ig->brokers_up == 0 && ig->brokers_known > 0 ? "brokers_down"
           : !ig->assigned                                ? "rebalancing"
                                                          : "consuming";
}

void ingest_status(ingest_t *ig, cJSON *o)
{
    const store_counters_t c = ig->counters; /* as of the last commit (no read on the loop) */
    uint64_t rejected = 0,
             skipped = c.events_skipped[STORE_SKIP_MODE] + c.events_skipped[STORE_SKIP_LOW_PP];
    for (int i = 1; i < STORE_REJECT_COUNT; i++)
        rejected += c.events_rejected[i];
    cJSON_AddNumberToObject(o, "events_applied", (double)c.events_applied);
    cJSON_AddNumberToObject(o, "events_changed", (double)c.events_changed);
    cJSON_AddNumberToObject(o, "events_skipped", (double)skipped);
    cJSON_AddNumberToObject(o, "events_rejected", (double)rejected);
    cJSON_AddNumberToObject(o, "metadata_applied", (double)c.metadata_applied);
    cJSON_AddNumberToObject(o, "newest_update_time", (double)c.newest_update_time);
    cJSON_AddNumberToObject(o, "messages_consumed", (double)ig->consumed);
    cJSON_AddNumberToObject(o, "batches", (double)ig->batches);
    cJSON_AddNumberToObject(o, "events_per_second", ig->rate);
    cJSON_AddNumberToObject(o, "dead_letters", (double)ig->dlq_sent);
    cJSON_AddNumberToObject(o, "dead_letter_failures", (double)ig->dlq_failed);
    cJSON_AddNumberToObject(o, "brokers_up", ig->brokers_up);
    cJSON_AddNumberToObject(o, "brokers_known", ig->brokers_known);
    cJSON_AddNumberToObject(o, "offsets_out_of_range", (double)ig->offsets_lost);
    cJSON_AddNumberToObject(o, "offsets_unreadable", (double)ig->offsets_unreadable);
    cJSON_AddNumberToObject(o, "tombstones", (double)ig->tombstones);
    cJSON_AddStringToObject(o, "state", ingest_state(ig));
    cJSON_AddStringToObject(o, "last_error", ig->last_error);
    cJSON_AddNumberToObject(o, "last_error_time", ig->last_error_time);
    cJSON *parts = cJSON_AddArrayToObject(o, "partitions");
    int64_t total_lag = 0;
    for (int i = 0; i < ig->n_parts; i++) {
        cJSON *p = cJSON_CreateObject();
        cJSON_AddStringToObject(p, "topic", ig->parts[i].topic);
        cJSON_AddNumberToObject(p, "partition", ig->parts[i].partition);
        cJSON_AddNumberToObject(p, "next_offset", (double)ig->parts[i].next_offset);
        cJSON_AddNumberToObject(p, "lag", (double)ig->parts[i].lag);
        total_lag += ig->parts[i].lag > 0 ? ig->parts[i].lag : 0;
        cJSON_AddItemToArray(parts, p);
    }
    cJSON_AddNumberToObject(o, "lag", (double)total_lag);
}

void ingest_metrics(ingest_t *ig, text_buf_t *b)
{
    const store_counters_t c = ig->counters;
    text_buf_printf(
        b,
        "# HELP atlasd_messages_consumed_total Kafka messages consumed (hiscore rows, metadata, "
        "rejected, tombstones).\n# TYPE atlasd_messages_consumed_total counter\n"
        "atlasd_messages_consumed_total %" PRIu64 "\n",
        ig->consumed);
    text_buf_printf(b,
                    "# HELP atlasd_events_applied_total Hiscore events applied to the store.\n# "
                    "TYPE atlasd_events_applied_total counter\n"
                    "atlasd_events_applied_total %" PRIu64 "\n",
                    c.events_applied);
    text_buf_printf(b,
                    "# HELP atlasd_events_changed_total Applied events that changed a profile "
                    "entry.\n# TYPE atlasd_events_changed_total counter\n"
                    "atlasd_events_changed_total %" PRIu64 "\n",
                    c.events_changed);
    text_buf_printf(b,
                    "# HELP atlasd_events_skipped_total Valid events skipped by rule (other game "
                    "modes, pp below min-pp).\n# TYPE atlasd_events_skipped_total counter\n"
                    "atlasd_events_skipped_total{reason=\"mode\"} %" PRIu64 "\n"
                    "atlasd_events_skipped_total{reason=\"low_pp\"} %" PRIu64 "\n",
                    c.events_skipped[STORE_SKIP_MODE], c.events_skipped[STORE_SKIP_LOW_PP]);
    text_buf_printf(b, "# HELP atlasd_events_rejected_total Invalid messages dead-lettered, by "
                       "rejection class.\n# TYPE atlasd_events_rejected_total counter\n");
    for (int i = 1; i < STORE_REJECT_COUNT; i++)
        text_buf_printf(b, "atlasd_events_rejected_total{reason=\"%s\"} %" PRIu64 "\n",
                        store_reject_name(i), c.events_rejected[i]);
    text_buf_printf(b,
                    "# HELP atlasd_dead_letters_total Dead letters delivered to the dead-letter "
                    "topic.\n# TYPE atlasd_dead_letters_total counter\n"
                    "atlasd_dead_letters_total %" PRIu64 "\n",
                    ig->dlq_sent);
    text_buf_printf(
        b,
        "# HELP atlasd_dead_letter_failures_total Dead-letter deliveries that failed (kept in the "
        "store and re-sent).\n# TYPE atlasd_dead_letter_failures_total counter\n"
        "atlasd_dead_letter_failures_total %" PRIu64 "\n"
        "# HELP atlasd_dead_letters_truncated_total Dead letters sent truncated to the topic's "
        "maximum message size.\n# TYPE atlasd_dead_letters_truncated_total counter\n"
        "atlasd_dead_letters_truncated_total %" PRIu64 "\n"
        "# HELP atlasd_dead_letters_in_flight Dead letters produced and not yet acknowledged.\n# "
        "TYPE atlasd_dead_letters_in_flight gauge\n"
        "atlasd_dead_letters_in_flight %" PRId64 "\n",
        ig->dlq_failed, ig->dlq_truncated, ig->dlq_in_flight);
    text_buf_printf(b, "# HELP atlasd_batch_commit_seconds Time to commit one batch to LMDB.\n# "
                       "TYPE atlasd_batch_commit_seconds histogram\n");
    uint64_t cum = 0;
    for (int i = 0; i < N_BUCKETS; i++) {
        cum += ig->hist[i];
        if (i < N_BUCKETS - 1)
            text_buf_printf(b, "atlasd_batch_commit_seconds_bucket{le=\"%g\"} %" PRIu64 "\n",
                            bucket_s[i], cum);
        else
            text_buf_printf(b, "atlasd_batch_commit_seconds_bucket{le=\"+Inf\"} %" PRIu64 "\n",
                            cum);
    }
    text_buf_printf(
        b, "atlasd_batch_commit_seconds_sum %.6f\natlasd_batch_commit_seconds_count %" PRIu64 "\n",
        ig->hist_sum_s, cum);
    text_buf_printf(b, "# HELP atlasd_consumer_lag Messages between the consumed offset and the "
                       "partition's high watermark.\n# TYPE atlasd_consumer_lag gauge\n");
    for (int i = 0; i < ig->n_parts; i++)
        text_buf_printf(b, "atlasd_consumer_lag{topic=\"%s\",partition=\"%d\"} %" PRId64 "\n",
                        ig->parts[i].topic, ig->parts[i].partition, ig->parts[i].lag);
    text_buf_printf(b,
                    "# HELP atlasd_brokers_up Kafka brokers the client is connected to.\n# TYPE "
                    "atlasd_brokers_up gauge\natlasd_brokers_up %d\n",
                    ig->brokers_up);
    text_buf_printf(
        b,
        "# HELP atlasd_map_grown_ahead_total LMDB map growths done ahead of need by the writer "
        "thread.\n# TYPE atlasd_map_grown_ahead_total counter\n"
        "atlasd_map_grown_ahead_total %" PRIu64 "\n"
        "# HELP atlasd_backlog_batches_total Batches that grew past batch-max-events while the "
        "previous one committed (a backlog).\n# TYPE atlasd_backlog_batches_total counter\n"
        "atlasd_backlog_batches_total %" PRIu64 "\n"
        "# HELP atlasd_commit_map_full_total Commits that found the LMDB map full and grew it.\n# "
        "TYPE atlasd_commit_map_full_total counter\n"
        "atlasd_commit_map_full_total %" PRIu64 "\n"
        "# HELP atlasd_tombstones_total Empty Kafka messages (tombstones) skipped.\n# TYPE "
        "atlasd_tombstones_total counter\n"
        "atlasd_tombstones_total %" PRIu64 "\n"
        "# HELP atlasd_offsets_out_of_range_total Partitions whose stored offset fell below the "
        "log start (data lost to retention).\n# TYPE atlasd_offsets_out_of_range_total counter\n"
        "atlasd_offsets_out_of_range_total %" PRIu64 "\n"
        "# HELP atlasd_offsets_unreadable_total Partitions not consumed because their stored "
        "offset could not be read.\n# TYPE atlasd_offsets_unreadable_total counter\n"
        "atlasd_offsets_unreadable_total %" PRIu64 "\n",
        writer_map_grown(ig), ig->backlog_batches, ig->map_full_waits, ig->tombstones,
        ig->offsets_lost, ig->offsets_unreadable);
}
