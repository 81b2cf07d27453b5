/*
 * sched.c: refresh scheduling on the loop, refresh work on libuv's thread pool.
 *
 * Freshness bookkeeping: every tick notes the first time each new batch sequence was seen
 * (a ring of observations). The refresh lag is the age of the oldest change not in the latest
 * snapshot: the first observation of a sequence beyond the one the last snapshot reflects.
 *
 * Warm-up: at start the store's file is read into the page cache in file order (store_prefetch,
 * on the thread pool) before any refresh runs. After a reboot, or once an idle daemon's pages
 * were reclaimed, the first batches and the first refresh (which reads every row) would
 * otherwise fault the B-tree in 4 KiB at a time; the refresh would prefetch the same file itself.
 * Refreshes and rebuilds asked for meanwhile wait (pending) and start when it ends.
 */
#include "daemon/sched.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "daemon/log.h"
#include "daemon/thread_prio.h"
#include "pipeline/clock.h"
#include "pipeline/refresh.h"

#define TICK_MS        1000
#define POKE_MIN_MS    100    /* a commit's early tick: at most one per this many ms */
#define RETRY_AFTER_MS 5000   /* after a failed refresh; doubled for each failure in a row before */
#define RETRY_MAX_MS   300000 /* ... up to this (see retry_after_ms) */
#define RELOG_AFTER_MS 600000 /* a refresh failing the same way again: an error line this often */
#define N_OBS          512

typedef struct obs {
    uint64_t seq;
    int64_t when; /* unix seconds */
} obs_t;

struct sched {
    uv_loop_t *loop;
    const atl_config_t *cfg;
    store_t *store;
    uv_timer_t tick;
    uv_work_t work;
    /* the tick's reads (counters, dirty count) on the thread pool: the loop opens no
     * transaction (issue 10.5); written by the worker, read in tick_after_cb */
    uv_work_t tick_work;
    store_counters_t tick_counters;
    uint64_t tick_dirty;
    int tick_busy, tick_rc;
    uint64_t last_tick_ms; /* loop time of the last tick (timer or sched_poke) */
    refresh_state_t *state;
    /* the warm-up (see the file comment); warm_* written by the worker, read in warm_after_cb */
    uv_work_t warm_work;
    int warming;
    int warm_rc;
    double warm_s;
    store_prefetch_result_t warm;

    /* written by the worker, read by /status */
    pthread_mutex_t mu;
    char stage[16];
    double frac;
    atomic_int cancel;

    /* loop-thread state */
    int running, run_full, run_cold;
    uint64_t run_covers; /* rebuild requests the running rebuild answers */
    int pending, pending_full, pending_cold;
    uint64_t requested;  /* rebuild requests accepted */
    uint64_t answered;   /* requests answered by a finished rebuild (success or failure) */
    refresh_opts_t opts; /* of the running refresh */
    refresh_result_t res;
    int rc;
    char err[512];
    int64_t run_started; /* unix seconds */
    uint64_t run_started_ms;

    refresh_result_t last; /* the last published refresh */
    int64_t last_finished;
    int last_ok;
    char last_err[512];
    uint64_t last_end_ms; /* loop time the last run ended (0: never) */
    refresh_result_t last_rebuild;
    int last_rebuild_ok;
    char last_rebuild_err[512];
    uint64_t n_refreshes, n_rebuilds, n_failures;
    /* refreshes failed in a row, the error of the last one logged, and when (log_failure) */
    uint64_t fail_streak, fail_logged_ms;
    int fail_logged_rc;

    int have_map;
    uint64_t published_seq, seq_now, dirty_now;
    /* a refresh found nothing to lay out (fewer than 2 retained items) at batch sequence
     * idle_seq: wait for new data instead of retrying every tick (issue 10.13) */
    uint64_t run_seq, idle_seq;
    int idle;
    char idle_reason[512];
    int64_t newest_ingested;
    obs_t obs[N_OBS];
    unsigned n_obs, obs_head;

    int stopping, tick_closed;
    void (*done_cb)(void *ud);
    void *done_ud;
};

static int64_t unix_now(void)
{
    return (int64_t)time(NULL);
}

static int on_progress(void *ud, const char *stage, double frac)
{
    sched_t *s = ud;
    pthread_mutex_lock(&s->mu);
    snprintf(s->stage, sizeof(s->stage), "%s", stage);
    s->frac = frac < 0 ? 0 : frac > 1 ? 1 : frac;
    pthread_mutex_unlock(&s->mu);
    return atomic_load(&s->cancel) ? 1 : 0;
}

/* Test aid: hold the job the milliseconds environment variable @p env says (none: 0), or until
 * a stop, in steps of 50 ms, each reported as @p stage's progress when @p stage is set */
static void test_hold(sched_t *s, const char *env, const char *stage)
{
    const char *v = getenv(env);
    long ms = v ? strtol(v, NULL, 10) : 0;
    for (long t = 0; t < ms && !atomic_load(&s->cancel); t += 50) {
        if (stage)
            on_progress(s, stage, (double)t / (double)ms);
        nanosleep(&(struct timespec){0, 50 * 1000 * 1000}, NULL);
    }
}

/* Test aid: ATL_TEST_REFRESH_STALL_MS holds every refresh that long before it reads anything,
 * so a test can observe the daemon while a refresh is running. */
static void test_stall(sched_t *s)
{
    /* ATL_TEST_REFRESH_HANG_MS: a refresh that ignores its cancel flag (a stuck one) */
    const char *hang = getenv("ATL_TEST_REFRESH_HANG_MS");
    if (hang) {
        long ms = strtol(hang, NULL, 10);
        nanosleep(&(struct timespec){ms / 1000, (ms % 1000) * 1000000L}, NULL);
    }
    test_hold(s, "ATL_TEST_REFRESH_STALL_MS", "stall");
}

static void refresh_main(void *ud)
{
    sched_t *s = ud;
    test_stall(s);
    if (atomic_load(&s->cancel)) {
        s->rc = ATL_ECANCELED;
        return;
    }
    s->rc = refresh_run(s->store, s->state, &s->opts, &s->res, s->err, sizeof(s->err));
}

static void work_cb(uv_work_t *w)
{
    /* the refresh and the threads it starts yield to the loop, on a thread of their own: the
     * pool thread keeps the loop's priority for the uv_async_send() that ends the job
     * (thread_prio.h) */
    thread_prio_run_background(10, refresh_main, w->data);
}

static void finish_stop(sched_t *s)
{
    if (s->stopping && !s->running && !s->warming && !s->tick_busy && s->tick_closed &&
        s->done_cb) {
        void (*cb)(void *) = s->done_cb;
        s->done_cb = NULL;
        cb(s->done_ud);
    }
}

/* Oldest observed change beyond @p seq, or 0. */
static int64_t oldest_after(const sched_t *s, uint64_t seq)
{
    int64_t best = 0;
    for (unsigned i = 0; i < s->n_obs; i++)
        if (s->obs[i].seq > seq && (best == 0 || s->obs[i].when < best))
            best = s->obs[i].when;
    return best;
}

static void start_run(sched_t *s, int full, int cold);

/* A job on the pool ended (a run or the warm-up): /status idle again; then stop, or start what
 * was asked for meanwhile. */
static void job_ended(sched_t *s)
{
    pthread_mutex_lock(&s->mu);
    snprintf(s->stage, sizeof(s->stage), "idle");
    s->frac = 0;
    pthread_mutex_unlock(&s->mu);
    if (s->stopping) {
        finish_stop(s);
        return;
    }
    if (s->pending) {
        int pf = s->pending_full, pc = s->pending_cold;
        s->pending = s->pending_full = s->pending_cold = 0;
        start_run(s, pf, pc);
    }
}

/*
 * How long after a failed refresh the next one may start: RETRY_AFTER_MS, doubled for every
 * earlier failure in a row, at most RETRY_MAX_MS, whatever triggers it (the interval included).
 * A refresh that fails for a reason that lasts (a full disk, an unwritable snapshot directory)
 * otherwise ran again every refresh-interval: at full scale ~20 s of CPU a minute for nothing.
 * An operator's forced rebuild does not wait.
 */
static uint64_t retry_after_ms(const sched_t *s)
{
    uint64_t ms = RETRY_AFTER_MS;
    for (uint64_t k = 1; k < s->fail_streak && ms < RETRY_MAX_MS; k++)
        ms *= 2;
    return ms < RETRY_MAX_MS ? ms : RETRY_MAX_MS;
}

/*
 * A failed refresh is retried (after retry_after_ms()), and on a full disk it
 * fails the same way each time: one error line per RELOG_AFTER_MS while the error stays the
 * same (the others at debug), with the count, then one line when a refresh succeeds again. A
 * forced rebuild's failure answers an operator's request and is always logged.
 */
static void log_failure(sched_t *s, int full)
{
    uint64_t now = uv_now(s->loop);
    s->fail_streak += !full;
    if (full || s->fail_streak == 1 || s->rc != s->fail_logged_rc ||
        now - s->fail_logged_ms >= RELOG_AFTER_MS) {
        LOG_ERROR("refresh", full ? "rebuild failed" : "refresh failed",
                  "err=\"%s\" failures_in_a_row=%" PRIu64, s->last_err, s->fail_streak);
        if (!full)
            s->fail_logged_rc = s->rc, s->fail_logged_ms = now;
    } else {
        LOG_DEBUG("refresh", "refresh failed again", "err=\"%s\" failures_in_a_row=%" PRIu64,
                  s->last_err, s->fail_streak);
    }
}

static void after_cb(uv_work_t *w, int status)
{
    sched_t *s = w->data;
    int full = s->run_full;
    double secs = (double)(uv_now(s->loop) - s->run_started_ms) / 1000.0;
    s->running = 0;
    s->last_end_ms = uv_now(s->loop);
    if (status == UV_ECANCELED)
        s->rc = ATL_ECANCELED;
    if (s->rc == 0) {
        s->last = s->res;
        s->last_ok = 1;
        s->last_finished = unix_now();
        s->have_map = 1;
        s->published_seq = s->res.seq;
        full ? s->n_rebuilds++ : s->n_refreshes++;
        if (s->fail_streak > 0)
            LOG_INFO("refresh", "publishing succeeded again", "failures_in_a_row=%" PRIu64,
                     s->fail_streak);
        s->fail_streak = 0;
        LOG_INFO(
            "refresh", full ? "rebuild published" : "refresh published",
            "snapshot=%s items=%u incremental=%d dirty=%u rows_read=%u graph_rows=%u knn_rows=%u "
            "mde_iterations=%u warm=%d stability_p95=%.4f seconds=%.1f prefetch=%.1f "
            "prefetch_read_mb=%.0f prefetch_skipped=%d verify=%.1f read=%.1f graph=%.1f knn=%.1f "
            "mde=%.1f layout=%.1f publish=%.1f s_diffs=%" PRIu64,
            s->res.id, s->res.items, s->res.incremental, s->res.dirty, s->res.rows_read,
            s->res.graph_rows, s->res.knn_rows, s->res.mde_iterations, s->res.warm,
            s->res.stability_p95, secs, s->res.t_prefetch, (double)s->res.prefetch.read_bytes / 1e6,
            s->res.prefetch.skipped, s->res.t_verify, s->res.t_read, s->res.t_graph, s->res.t_knn,
            s->res.t_mde, s->res.t_layout, s->res.t_publish, s->res.verify.s_diffs);
    } else if (s->rc == ATL_ENOTFOUND && !full) {
        if (!s->idle || strcmp(s->idle_reason, s->err) != 0)
            LOG_INFO("refresh", "nothing to publish until new data arrives", "detail=\"%s\"",
                     s->err);
        s->idle = 1;
        s->idle_seq = s->run_seq;
        snprintf(s->idle_reason, sizeof(s->idle_reason), "%s", s->err);
    } else {
        s->n_failures++;
        s->last_ok = 0;
        snprintf(s->last_err, sizeof(s->last_err), "%s", s->err[0] ? s->err : atl_strerror(s->rc));
        if (s->rc == ATL_ECANCELED)
            LOG_INFO("refresh", "refresh cancelled", "full=%d", full);
        else
            log_failure(s, full);
    }
    if (full) {
        s->answered = s->run_covers;
        s->last_rebuild = s->res;
        s->last_rebuild_ok = s->rc == 0;
        snprintf(s->last_rebuild_err, sizeof(s->last_rebuild_err), "%s",
                 s->rc == 0 ? "" : s->last_err);
    }
    job_ended(s);
}

static void start_run(sched_t *s, int full, int cold)
{
    refresh_opts_default(&s->opts);
    s->opts.snapdir = s->cfg->snapshots;
    s->opts.keep = (unsigned)s->cfg->snapshots_keep;
    s->opts.seed = (uint64_t)s->cfg->seed;
    s->opts.full = full;
    s->opts.verify = full;
    s->opts.cold = cold;
    s->opts.if_dirty = !full;
    s->opts.lag_origin = oldest_after(s, s->published_seq);
    s->opts.progress = on_progress;
    s->opts.progress_ud = s;
    s->run_full = full, s->run_cold = cold;
    s->run_seq = s->seq_now;
    s->run_covers = full ? s->requested : 0;
    s->run_started = unix_now();
    s->run_started_ms = uv_now(s->loop);
    s->err[0] = '\0';
    memset(&s->res, 0, sizeof(s->res));
    s->work.data = s;
    pthread_mutex_lock(&s->mu);
    snprintf(s->stage, sizeof(s->stage), "%s", full ? "verify" : "read");
    s->frac = 0;
    pthread_mutex_unlock(&s->mu);
    int rc = uv_queue_work(s->loop, &s->work, work_cb, after_cb);
    if (rc != 0) {
        LOG_ERROR("refresh", "cannot queue the refresh", "err=%s", uv_err_name(rc));
        return;
    }
    s->running = 1;
    /* the counts are the last tick's; the published line has what the run consumed */
    LOG_INFO("refresh", full ? "rebuild started" : "refresh started",
             "dirty_seen=%" PRIu64 " seq_seen=%" PRIu64 " cold=%d", s->dirty_now, s->seq_now, cold);
}

static void request(sched_t *s, int full, int cold)
{
    if (s->running || s->warming) {
        s->pending = 1;
        s->pending_full |= full;
        s->pending_cold |= cold;
        return;
    }
    start_run(s, full, cold);
}

static void note_sequence(sched_t *s, uint64_t seq)
{
    if (seq == s->seq_now)
        return;
    s->seq_now = seq;
    s->obs[s->obs_head] = (obs_t){seq, unix_now()};
    s->obs_head = (s->obs_head + 1) % N_OBS;
    if (s->n_obs < N_OBS)
        s->n_obs++;
}

static void tick_work_cb(uv_work_t *w)
{
    sched_t *s = w->data;
    s->tick_rc = store_counters_get(s->store, &s->tick_counters);
    if (s->tick_rc == 0)
        s->tick_rc = store_dirty_count(s->store, &s->tick_dirty);
}

static void tick_after_cb(uv_work_t *w, int status);

/* Read the counters and the dirty count off the loop; tick_after_cb decides. */
static void tick_now(sched_t *s)
{
    if (s->stopping || s->tick_busy)
        return;
    s->tick_work.data = s;
    s->last_tick_ms = uv_now(s->loop);
    if (uv_queue_work(s->loop, &s->tick_work, tick_work_cb, tick_after_cb) == 0)
        s->tick_busy = 1;
}

static void on_tick(uv_timer_t *t)
{
    tick_now(t->data);
}

void sched_poke(sched_t *s)
{
    if (uv_now(s->loop) - s->last_tick_ms >= POKE_MIN_MS)
        tick_now(s);
}

/* The tick's decision, on the loop, with what the worker read. */
static void tick_after_cb(uv_work_t *w, int status)
{
    sched_t *s = w->data;
    s->tick_busy = 0;
    if (s->stopping) {
        finish_stop(s);
        return;
    }
    if (status != 0 || s->tick_rc != 0)
        return;
    const store_counters_t c = s->tick_counters;
    uint64_t dirty = s->tick_dirty;
    note_sequence(s, c.batches);
    s->dirty_now = dirty;
    s->newest_ingested = c.newest_update_time;
    if (dirty == 0)
        return;
    if (s->idle && c.batches == s->idle_seq)
        return; /* nothing to lay out, and nothing new since */
    s->idle = 0;
    uint64_t now = uv_now(s->loop), since = s->last_end_ms ? now - s->last_end_ms : UINT64_MAX;
    if (!s->last_ok && s->last_end_ms && since < retry_after_ms(s))
        return; /* failed recently */
    int due =
        !s->have_map ||
        (s->cfg->refresh_interval_s > 0 && since >= (uint64_t)s->cfg->refresh_interval_s * 1000) ||
        (s->cfg->refresh_dirty_threshold > 0 && dirty >= (uint64_t)s->cfg->refresh_dirty_threshold);
    if (due && !((s->running || s->warming) && s->pending))
        request(s, 0, 0);
}

/* ---- warm-up ------------------------------------------------------------------------------- */

static void warm_main(void *ud)
{
    sched_t *s = ud;
    /* ATL_TEST_WARMUP_STALL_MS: a test asks for a rebuild, or stops the daemon, meanwhile */
    test_hold(s, "ATL_TEST_WARMUP_STALL_MS", NULL);
    if (atomic_load(&s->cancel)) {
        s->warm_rc = ATL_ECANCELED;
        return;
    }
    store_prefetch_opts_t o;
    store_prefetch_opts_default(&o);
    o.progress = on_progress, o.progress_ud = s;
    double t0 = pipeline_now();
    s->warm_rc = store_prefetch(s->store, &o, &s->warm);
    s->warm_s = pipeline_now() - t0;
}

static void warm_work_cb(uv_work_t *w)
{
    thread_prio_run_background(10, warm_main, w->data); /* as a refresh: yields to the loop */
}

static void warm_after_cb(uv_work_t *w, int status)
{
    sched_t *s = w->data;
    s->warming = 0;
    const store_prefetch_result_t *r = &s->warm;
    int rc = status != 0 ? ATL_ECANCELED : s->warm_rc;
    if (rc == ATL_ECANCELED)
        LOG_INFO("refresh", "reading the store ahead cancelled", "read_mb=%.0f",
                 (double)r->read_bytes / 1e6);
    else if (rc != 0 || r->read_error)
        LOG_WARN("refresh", "reading the store ahead stopped", "err=\"%s\" read_mb=%.0f",
                 atl_strerror(rc ? rc : r->read_error), (double)r->read_bytes / 1e6);
    else
        LOG_INFO("refresh",
                 r->skipped ? "store not read ahead: larger than the memory available"
                            : "store read ahead",
                 "file_mb=%.1f missing_mb=%.1f read_mb=%.1f seconds=%.1f",
                 (double)r->file_bytes / 1e6, (double)r->missing_bytes / 1e6,
                 (double)r->read_bytes / 1e6, s->warm_s);
    job_ended(s);
}

/* Queue the warm-up; on failure the daemon only goes without it. */
static void warm_start(sched_t *s)
{
    s->warm_work.data = s;
    pthread_mutex_lock(&s->mu);
    snprintf(s->stage, sizeof(s->stage), "prefetch");
    pthread_mutex_unlock(&s->mu);
    int rc = uv_queue_work(s->loop, &s->warm_work, warm_work_cb, warm_after_cb);
    if (rc != 0) {
        LOG_WARN("refresh", "cannot queue the store's warm-up", "err=%s", uv_err_name(rc));
        pthread_mutex_lock(&s->mu);
        snprintf(s->stage, sizeof(s->stage), "idle");
        pthread_mutex_unlock(&s->mu);
        return;
    }
    s->warming = 1;
}

int sched_start(uv_loop_t *loop, const atl_config_t *cfg, store_t *store, sched_t **out,
                char *errbuf, size_t errlen)
{
    sched_t *s = calloc(1, sizeof(*s));
    if (!s || !(s->state = refresh_state_new())) {
        free(s);
        snprintf(errbuf, errlen, "out of memory");
        return -ENOMEM;
    }
    s->loop = loop, s->cfg = cfg, s->store = store;
    s->last_ok = 1;
    pthread_mutex_init(&s->mu, NULL);
    snprintf(s->stage, sizeof(s->stage), "idle");
    store_coords_t c;
    if (store_coords_load(store, &c) == 0) {
        char id[64];
        s->have_map = c.n > 0 && store_snapshot_latest(cfg->snapshots, id, sizeof(id)) == 0;
        if (s->have_map) /* what /status reports until this process publishes */
            snprintf(s->last.id, sizeof(s->last.id), "%s", c.snapshot);
        store_coords_free(&c);
    }
    store_counters_t cnt;
    store_dirty_count(store, &s->dirty_now);
    if (store_counters_get(store, &cnt) == 0)
        s->published_seq = s->seq_now = cnt.batches; /* unknown lag before this start */
    uv_timer_init(loop, &s->tick);
    s->tick.data = s;
    uv_timer_start(&s->tick, on_tick, TICK_MS, TICK_MS);
    warm_start(s);
    LOG_INFO("refresh", "scheduler started", "interval_s=%lld dirty_threshold=%lld have_map=%d",
             (long long)cfg->refresh_interval_s, (long long)cfg->refresh_dirty_threshold,
             s->have_map);
    *out = s;
    return 0;
}

uint64_t sched_request_rebuild(sched_t *s, int cold)
{
    uint64_t id = ++s->requested;
    LOG_INFO("refresh", "rebuild requested", "request=%" PRIu64 " cold=%d running=%d", id, cold,
             s->running);
    request(s, 1, cold);
    return id;
}

/* The pipeline's one serialisation of a result (refresh_result_json), grafted into @p o. */
static void add_result(cJSON *o, const refresh_result_t *r)
{
    char buf[REFRESH_JSON_MAX];
    cJSON *j = refresh_result_json(r, 0, buf, sizeof(buf)) >= 0 ? cJSON_Parse(buf) : NULL;
    while (j && j->child) {
        cJSON *item = cJSON_DetachItemViaPointer(j, j->child);
        cJSON_AddItemToObject(o, item->string, item);
    }
    cJSON_Delete(j);
}

static void iso_time(int64_t t, char out[32])
{
    time_t tt = (time_t)t;
    struct tm tm;
    out[0] = '\0';
    if (t > 0 && gmtime_r(&tt, &tm))
        strftime(out, 32, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

void sched_status(sched_t *s, cJSON *obj)
{
    char when[32];
    cJSON *r = cJSON_AddObjectToObject(obj, "refresh");
    pthread_mutex_lock(&s->mu);
    cJSON_AddBoolToObject(r, "running", s->running);
    cJSON_AddStringToObject(r, "stage", s->stage);
    cJSON_AddNumberToObject(r, "fraction", s->frac);
    pthread_mutex_unlock(&s->mu);
    cJSON_AddStringToObject(r, "kind",
                            s->running   ? (s->run_full ? "rebuild" : "refresh")
                            : s->warming ? "warm-up"
                                         : "");
    cJSON_AddBoolToObject(r, "pending", s->pending);
    cJSON_AddNumberToObject(r, "interval_seconds", (double)s->cfg->refresh_interval_s);
    cJSON_AddNumberToObject(r, "dirty_threshold", (double)s->cfg->refresh_dirty_threshold);
    cJSON_AddNumberToObject(r, "refreshes", (double)s->n_refreshes);
    cJSON_AddNumberToObject(r, "rebuilds", (double)s->n_rebuilds);
    cJSON_AddNumberToObject(r, "failures", (double)s->n_failures);
    cJSON_AddNumberToObject(r, "failures_in_a_row", (double)s->fail_streak);
    cJSON_AddNumberToObject(r, "retry_after_seconds",
                            s->last_ok ? 0 : (double)retry_after_ms(s) / 1000.0);
    cJSON_AddNumberToObject(r, "rebuild_requested", (double)s->requested);
    cJSON_AddNumberToObject(r, "rebuild_answered", (double)s->answered);
    if (s->last.id[0]) {
        cJSON *l = cJSON_AddObjectToObject(r, "last");
        add_result(l, &s->last);
        iso_time(s->last_finished, when);
        cJSON_AddStringToObject(l, "finished", when);
    }
    if (!s->last_ok)
        cJSON_AddStringToObject(r, "last_error", s->last_err);
    if (s->idle)
        cJSON_AddStringToObject(r, "waiting", s->idle_reason);
    if (s->answered > 0) {
        cJSON *b = cJSON_AddObjectToObject(r, "last_rebuild");
        cJSON_AddNumberToObject(b, "request", (double)s->answered);
        cJSON_AddBoolToObject(b, "ok", s->last_rebuild_ok);
        if (s->last_rebuild_ok)
            add_result(b, &s->last_rebuild);
        else
            cJSON_AddStringToObject(b, "error", s->last_rebuild_err);
    }
    cJSON *f = cJSON_AddObjectToObject(obj, "freshness");
    int64_t origin = oldest_after(s, s->published_seq);
    cJSON_AddStringToObject(f, "latest_snapshot", s->last.id);
    iso_time(s->last.newest_update_time, when);
    cJSON_AddStringToObject(f, "newest_event_time", when); /* reflected in the latest snapshot */
    iso_time(s->newest_ingested, when);
    cJSON_AddStringToObject(f, "newest_event_time_ingested", when);
    cJSON_AddNumberToObject(f, "refresh_lag_seconds", origin ? (double)(unix_now() - origin) : 0.0);
    cJSON_AddNumberToObject(f, "items_dirty", (double)s->dirty_now);
    cJSON_AddNumberToObject(f, "batch_seq_ingested", (double)s->seq_now);
    cJSON_AddNumberToObject(f, "batch_seq_published", (double)s->published_seq);
}

void sched_metrics(sched_t *s, text_buf_t *b)
{
    int64_t origin = oldest_after(s, s->published_seq);
    text_buf_printf(
        b,
        "# HELP atlasd_refreshes_total Published refreshes and forced rebuilds.\n# TYPE "
        "atlasd_refreshes_total counter\n"
        "atlasd_refreshes_total{kind=\"refresh\"} %" PRIu64 "\n"
        "atlasd_refreshes_total{kind=\"rebuild\"} %" PRIu64 "\n"
        "# HELP atlasd_refresh_failures_total Refreshes or rebuilds that failed.\n# TYPE "
        "atlasd_refresh_failures_total counter\n"
        "atlasd_refresh_failures_total %" PRIu64 "\n"
        "# HELP atlasd_refresh_running 1 while a refresh or rebuild runs.\n# TYPE "
        "atlasd_refresh_running gauge\natlasd_refresh_running %d\n"
        "# HELP atlasd_refresh_lag_seconds Age of the oldest ingested change not yet in a "
        "published snapshot.\n# TYPE atlasd_refresh_lag_seconds gauge\natlasd_refresh_lag_seconds "
        "%lld\n"
        "# HELP atlasd_dirty_items Items changed since the last published snapshot.\n# TYPE "
        "atlasd_dirty_items gauge\natlasd_dirty_items %" PRIu64 "\n"
        "# HELP atlasd_last_refresh_seconds Duration of the last refresh or rebuild.\n# TYPE "
        "atlasd_last_refresh_seconds gauge\natlasd_last_refresh_seconds %.3f\n",
        s->n_refreshes, s->n_rebuilds, s->n_failures, s->running,
        origin ? (long long)(unix_now() - origin) : 0LL, s->dirty_now, s->last.t_total);
}

static void on_tick_closed(uv_handle_t *h)
{
    sched_t *s = h->data;
    s->tick_closed = 1;
    finish_stop(s);
}

void sched_stop(sched_t *s, void (*done_cb)(void *ud), void *ud)
{
    s->stopping = 1;
    s->done_cb = done_cb, s->done_ud = ud;
    atomic_store(&s->cancel, 1);
    if (s->running) {
        char stage[sizeof(s->stage)];
        pthread_mutex_lock(&s->mu); /* the worker writes it (on_progress) */
        memcpy(stage, s->stage, sizeof(stage));
        pthread_mutex_unlock(&s->mu);
        LOG_INFO("refresh", "cancelling the running refresh", "stage=%s", stage);
    } else if (s->warming) {
        LOG_INFO("refresh", "cancelling the store's warm-up", "");
    }
    uv_timer_stop(&s->tick);
    uv_close((uv_handle_t *)&s->tick, on_tick_closed);
}

void sched_free(sched_t *s)
{
    if (!s)
        return;
    refresh_state_free(s->state);
    pthread_mutex_destroy(&s->mu);
    free(s);
}
