/*
 * main.c: atlasd. Wires config, store, ingestion and HTTP on one libuv loop, and owns the
 * process life cycle: SIGTERM/SIGINT commit the last batch, close the Kafka consumer and every
 * handle, and exit 0 with uv_loop_close() == 0; SIGHUP reopens the log file.
 *
 * Under systemd (Type=notify) it reports READY=1 once the store is open and the consumer and
 * HTTP server started, and STOPPING=1 at shutdown; with WatchdogSec= a loop timer sends
 * WATCHDOG=1 at half the interval, so a loop that stops turning gets the service restarted.
 * Outside systemd (no NOTIFY_SOCKET) every sd_notify() call is a no-op.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <systemd/sd-daemon.h>
#include <time.h>
#include <unistd.h>

#include <uv.h>

#include "algo/item.h"
#include "daemon/config.h"
#include "daemon/http.h"
#include "daemon/ingest.h"
#include "daemon/log.h"
#include "daemon/loopmon.h"
#include "daemon/sched.h"
#include "daemon/thread_prio.h"
#include "store/store.h"

typedef struct daemon_state {
    atl_config_t cfg;
    uv_loop_t loop;
    store_t *store;
    ingest_t *ingest;
    http_server_t *http;
    sched_t *sched;
    int lock_fd;
    int parts_running; /* ingestion and the scheduler, until each has stopped */
    uv_signal_t sig_term, sig_int, sig_hup;
    uv_timer_t deadline;
    uv_timer_t sd_watchdog; /* feeds systemd's watchdog from the loop */
    loopmon_t loopmon;      /* busy time per loop iteration, in /metrics */
    int loop_ready, stopping, exit_code;
    uint64_t stop_at_ms; /* uv_now() when the shutdown began */
    /* store counts for /status and /metrics: counting users and retained items walks two
     * tables, so a worker recounts them every STATS_PERIOD_MS and the loop only reads the copy */
    store_stats_t stats, stats_next;
    uv_timer_t stats_timer;
    uv_work_t stats_work;
    int stats_busy, stats_rc;
} daemon_state_t;

static int reopen_log(const char *path)
{
    if (!path[0])
        return 0;
    int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (fd < 0)
        return -errno;
    dup2(fd, STDERR_FILENO);
    close(fd);
    return 0;
}

static void close_own_handles(daemon_state_t *d)
{
    uv_close((uv_handle_t *)&d->sig_term, NULL);
    uv_close((uv_handle_t *)&d->sig_int, NULL);
    uv_close((uv_handle_t *)&d->sig_hup, NULL);
    uv_close((uv_handle_t *)&d->deadline, NULL);
    uv_close((uv_handle_t *)&d->sd_watchdog, NULL);
    uv_close((uv_handle_t *)&d->stats_timer, NULL);
    loopmon_destroy(&d->loopmon);
}

static void on_sd_watchdog(uv_timer_t *t)
{
    (void)t;
    sd_notify(0, "WATCHDOG=1");
}

/* READY=1 and, if systemd asked for one (WatchdogSec=), the watchdog timer at half its period */
static void notify_ready(daemon_state_t *d)
{
    uint64_t usec = 0;
    if (sd_watchdog_enabled(0, &usec) > 0 && usec >= 2000) {
        uv_timer_start(&d->sd_watchdog, on_sd_watchdog, 0, usec / 2000);
        LOG_INFO("main", "systemd watchdog fed from the loop", "interval_ms=%llu",
                 (unsigned long long)(usec / 2000));
    }
    sd_notify(0, "READY=1\nSTATUS=consuming");
}

/* The deadline stays armed: the HTTP drain after uv_run (http_free) counts within it. */
static void part_stopped(daemon_state_t *d)
{
    if (--d->parts_running > 0)
        return;
    uv_stop(&d->loop); /* h2o's own handles keep the loop alive; http_free() ends them */
}

static void on_ingest_stopped(void *ud)
{
    LOG_INFO("main", "ingestion stopped", "");
    part_stopped(ud);
}

/* A committed batch may make a refresh due now: the scheduler need not wait for its tick. */
static void on_batch_committed(void *ud)
{
    sched_poke(ud);
}

static void on_sched_stopped(void *ud)
{
    LOG_INFO("main", "refresh scheduler stopped", "");
    part_stopped(ud);
}

/*
 * The shutdown deadline is hard (issue 10.7). Past it something is stuck (a refresh that does
 * not see its cancel flag, a blocked call), and waiting for it to end cleanly - uv_stop() then
 * another uv_run(), which waits for every thread-pool job - is what kept the process alive.
 * Nothing is lost by leaving at once: every committed batch is in LMDB (crash-safe by design),
 * a batch not committed is re-read from the stored offsets, and a publish is atomic. The loop
 * timer exits; a watchdog thread covers a loop thread that is itself blocked.
 */
static void on_deadline(uv_timer_t *t)
{
    daemon_state_t *d = t->data;
    LOG_ERROR("main", "graceful shutdown timed out; exiting now", "timeout_ms=%lld",
              (long long)d->cfg.shutdown_timeout_ms);
    fflush(stderr);
    _exit(1);
}

static void *watchdog_main(void *ud)
{
    int64_t ms = *(const int64_t *)ud + 2000;
    struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
    LOG_ERROR("main", "shutdown deadline passed with the loop blocked; exiting now", "");
    fflush(stderr);
    _exit(1);
}

static void start_watchdog(daemon_state_t *d)
{
    pthread_t th;
    pthread_attr_t a;
    pthread_attr_init(&a);
    pthread_attr_setdetachstate(&a, PTHREAD_CREATE_DETACHED);
    if (pthread_create(&th, &a, watchdog_main, &d->cfg.shutdown_timeout_ms) != 0)
        LOG_WARN("main", "no shutdown watchdog thread", "");
    pthread_attr_destroy(&a);
}

static void on_signal(uv_signal_t *h, int signum)
{
    daemon_state_t *d = h->data;
    if (signum == SIGHUP) {
        int rc = reopen_log(d->cfg.log_file);
        LOG_INFO("main", "SIGHUP: log reopened", "ok=%d", rc == 0);
        return;
    }
    if (d->stopping)
        return;
    d->stopping = 1;
    d->stop_at_ms = uv_now(&d->loop);
    LOG_INFO("main", "shutting down", "signal=%d", signum);
    sd_notify(0, "STOPPING=1");
    http_stop(d->http);
    uv_timer_start(&d->deadline, on_deadline, (uint64_t)d->cfg.shutdown_timeout_ms, 0);
    start_watchdog(d);
    if (d->sched)
        sched_stop(d->sched, on_sched_stopped, d);
    ingest_stop(d->ingest, on_ingest_stopped, d);
}

/*
 * Kafka static membership (issue 10.6): a restarted daemon that presents the same
 * group.instance.id gets its partitions back at once, instead of waiting for the group to
 * notice the old member's session ended (measured on the mock: median 6.5 s, up to 12 s).
 * The id is stable per store: made once and kept in DB/instance-id, beside (not inside) the
 * LMDB file, so a store copied with mdb_copy to a second member gets its own.
 */
static int instance_id(daemon_state_t *d, char *err, size_t errlen)
{
    if (d->cfg.group_instance_id[0])
        return 0; /* configured, or "none" */
    char path[4200], id[64] = "";
    snprintf(path, sizeof(path), "%s/instance-id", d->cfg.db);
    FILE *f = fopen(path, "r");
    if (f) {
        if (!fgets(id, sizeof(id), f))
            id[0] = '\0';
        fclose(f);
        id[strcspn(id, "\r\n")] = '\0';
    }
    if (!id[0]) {
        unsigned char rnd[8];
        FILE *r = fopen("/dev/urandom", "rb");
        size_t got = r ? fread(rnd, 1, sizeof(rnd), r) : 0;
        if (r)
            fclose(r);
        if (got != sizeof(rnd)) {
            snprintf(err, errlen, "cannot read /dev/urandom for the group instance id");
            return -EIO;
        }
        int n = snprintf(id, sizeof(id), "atlasd-");
        for (size_t i = 0; i < sizeof(rnd); i++)
            n += snprintf(id + n, sizeof(id) - (size_t)n, "%02x", rnd[i]);
        if (!(f = fopen(path, "w")) || fprintf(f, "%s\n", id) < 0 || fclose(f) != 0) {
            int e = errno ? -errno : -EIO;
            snprintf(err, errlen, "cannot write %.900s: %s", path, strerror(-e));
            return e;
        }
    }
    free(d->cfg.group_instance_id);
    if (!(d->cfg.group_instance_id = strdup(id)))
        abort();
    return 0;
}

static const char *health(void *ud)
{
    daemon_state_t *d = ud;
    return ingest_state(d->ingest);
}

#define STATS_PERIOD_MS 5000

/* Store counts for /status and /metrics (issue 10.5): counted on the thread pool, never on the
 * loop (at full scale the walk takes long enough to delay ingestion and every request). */
static void stats_count(void *ud)
{
    daemon_state_t *d = ud;
    d->stats_rc = store_stats_get(d->store, 0, &d->stats_next);
}

static void stats_work_cb(uv_work_t *w)
{
    thread_prio_run_background(10, stats_count, w->data); /* see thread_prio.h */
}

static void stats_after_cb(uv_work_t *w, int status)
{
    daemon_state_t *d = w->data;
    d->stats_busy = 0;
    if (status == 0 && d->stats_rc == 0)
        d->stats = d->stats_next;
}

static void on_stats_timer(uv_timer_t *t)
{
    daemon_state_t *d = t->data;
    if (d->stats_busy || d->stopping)
        return;
    d->stats_work.data = d;
    if (uv_queue_work(&d->loop, &d->stats_work, stats_work_cb, stats_after_cb) == 0)
        d->stats_busy = 1;
}

static const store_stats_t *store_stats(daemon_state_t *d)
{
    return &d->stats;
}

static void status(void *ud, cJSON *o)
{
    daemon_state_t *d = ud;
    cJSON_AddStringToObject(o, "service", "atlasd");
    ingest_status(d->ingest, o);
    const store_stats_t *st = store_stats(d);
    cJSON *s = cJSON_AddObjectToObject(o, "store");
    cJSON_AddNumberToObject(s, "users", (double)st->users);
    cJSON_AddNumberToObject(s, "items", (double)st->items);
    cJSON_AddNumberToObject(s, "retained", (double)st->retained);
    cJSON_AddNumberToObject(s, "pairs", (double)st->pairs);
    cJSON_AddNumberToObject(s, "bytes", (double)st->bytes);
    cJSON_AddNumberToObject(s, "live_bytes", (double)st->live_bytes);
    cJSON_AddNumberToObject(s, "dirty", (double)st->dirty);
    if (d->sched)
        sched_status(d->sched, o);
}

static int item(void *ud, const char *id, size_t id_len, unsigned k, char **json)
{
    daemon_state_t *d = ud;
    uint64_t key;
    if (item_key_parse(id, id_len, &key) != 0)
        return 400;
    int rc = store_item_json(d->store, key, k, json);
    if (rc == ATL_ENOTFOUND)
        return 404;
    if (rc != 0) {
        LOG_WARN("http", "item lookup failed", "err=\"%s\"", atl_strerror(rc));
        return 503;
    }
    return 200;
}

static int admin_rebuild(void *ud, int cold, cJSON *out)
{
    daemon_state_t *d = ud;
    if (!d->sched || d->stopping)
        return 503;
    cJSON_AddNumberToObject(out, "request", (double)sched_request_rebuild(d->sched, cold));
    cJSON_AddBoolToObject(out, "cold", cold);
    return 202;
}

static void metrics(void *ud, text_buf_t *b)
{
    daemon_state_t *d = ud;
    ingest_metrics(d->ingest, b);
    const store_stats_t st = *store_stats(d);
    if (st.items > 0)
        text_buf_printf(b,
                        "# HELP atlasd_lmdb_bytes Bytes used by the LMDB store.\n# TYPE "
                        "atlasd_lmdb_bytes gauge\natlasd_lmdb_bytes %llu\n"
                        "# HELP atlasd_items Items (beatmap and mods) in the store.\n# TYPE "
                        "atlasd_items gauge\natlasd_items %llu\n"
                        "# HELP atlasd_retained_items Items that pass the retention rule (on the "
                        "map).\n# TYPE atlasd_retained_items gauge\natlasd_retained_items %llu\n",
                        (unsigned long long)st.bytes, (unsigned long long)st.items,
                        (unsigned long long)st.retained);
    if (d->sched)
        sched_metrics(d->sched, b);
    loopmon_metrics(&d->loopmon, b);
    uint64_t reads, writes, resizes;
    store_nowait_txns_get(d->store, &reads, &writes, &resizes);
    text_buf_printf(b,
                    "# HELP atlasd_loop_store_transactions_total LMDB transactions begun and map "
                    "resizes done on the event-loop thread (none once serving: they run on the "
                    "writer and the thread pool).\n# TYPE atlasd_loop_store_transactions_total "
                    "counter\n"
                    "atlasd_loop_store_transactions_total{kind=\"read\"} %llu\n"
                    "atlasd_loop_store_transactions_total{kind=\"write\"} %llu\n"
                    "atlasd_loop_store_transactions_total{kind=\"resize\"} %llu\n",
                    (unsigned long long)reads, (unsigned long long)writes,
                    (unsigned long long)resizes);
}

/* A directory setting @p name = @p dir: created if missing (one level, as the store and a publish
 * create theirs), then it must be a directory this process can write. */
static int dir_check(const char *name, const char *dir, char *err, size_t errlen)
{
    struct stat st;
    const char *why = NULL;
    if (mkdir(dir, 0755) != 0 && errno != EEXIST)
        why = strerror(errno);
    else if (stat(dir, &st) != 0)
        why = strerror(errno);
    else if (!S_ISDIR(st.st_mode))
        why = "not a directory";
    else if (access(dir, W_OK | X_OK) != 0)
        why = strerror(errno);
    if (!why)
        return 0;
    snprintf(err, errlen, "%s = %.900s: %s", name, dir, why);
    return ATL_ECONFIG;
}

/*
 * The paths of the configuration, checked before anything is locked, opened or joined: a store,
 * snapshot or viewer directory that cannot be used is a configuration error (exit 2) naming its
 * setting. (Before, an unwritable snapshot directory was found by the first publish, after the
 * group was joined and a refresh had run; a viewer path with a typo served 404 at / for ever.)
 */
static int paths_check(daemon_state_t *d, char *err, size_t errlen)
{
    int rc;
    if ((rc = dir_check("db", d->cfg.db, err, errlen)) != 0)
        return rc;
    if (!d->cfg.snapshots[0]) {
        free(d->cfg.snapshots);
        size_t len = strlen(d->cfg.db) + sizeof("/snapshots");
        d->cfg.snapshots = malloc(len);
        if (!d->cfg.snapshots)
            abort();
        snprintf(d->cfg.snapshots, len, "%s/snapshots", d->cfg.db);
    }
    if ((rc = dir_check("snapshots", d->cfg.snapshots, err, errlen)) != 0)
        return rc;
    struct stat st;
    if (!d->cfg.viewer[0]) { /* the build's own files: gone when only the binary was installed */
        if (stat(ATL_VIEWER_DIR, &st) != 0 || !S_ISDIR(st.st_mode))
            LOG_WARN("main", "the build's viewer directory is missing: / answers 404",
                     "viewer=\"%s\"", ATL_VIEWER_DIR);
    } else if (strcmp(d->cfg.viewer, "none") != 0 &&
               (stat(d->cfg.viewer, &st) != 0 || !S_ISDIR(st.st_mode) ||
                access(d->cfg.viewer, R_OK | X_OK) != 0)) {
        snprintf(err, errlen, "viewer = %.900s: not a readable directory", d->cfg.viewer);
        return ATL_ECONFIG;
    }
    return 0;
}

static int start(daemon_state_t *d, char *err, size_t errlen)
{
    store_opts_t so;
    store_opts_default(&so);
    so.map_size_bytes = (uint64_t)d->cfg.map_size_mb << 20;
    so.no_sync = !d->cfg.durable;
    int rc;
    if ((rc = paths_check(d, err, errlen)) != 0)
        return rc;
    if ((rc = store_lock(d->cfg.db, &d->lock_fd, err, errlen)) != 0 ||
        (rc = instance_id(d, err, errlen)) != 0)
        return rc;
    if ((rc = store_open(d->cfg.db, &so, &d->store)) != 0) {
        char why[512];
        store_open_strerror(d->cfg.db, rc, why, sizeof(why));
        snprintf(err, errlen, "cannot open store %s: %s", d->cfg.db, why);
        return rc;
    }
    int empty; /* S rows without items: a bulk import stopped midway; ingesting on top of it
                * would never be exact again (atlasctl import refuses it the same way) */
    if ((rc = store_bulk_empty(d->store, &empty)) != 0) {
        snprintf(err, errlen,
                 rc == ATL_ECORRUPT
                     ? "the store %s holds S rows but no items: a bulk import was interrupted; "
                       "delete it and import again"
                     : "cannot check the store %s: %s",
                 d->cfg.db, atl_strerror(rc));
        return rc;
    }
    store_nowait_thread_set(d->store); /* this thread runs the loop: it never waits on readers */
    store_stats_get(d->store, 0, &d->stats); /* once before serving; then on the thread pool */
    uv_loop_init(&d->loop);
    d->loop_ready = 1;
    loopmon_init(&d->loopmon, &d->loop);
    uv_signal_init(&d->loop, &d->sig_term);
    uv_signal_init(&d->loop, &d->sig_int);
    uv_signal_init(&d->loop, &d->sig_hup);
    uv_timer_init(&d->loop, &d->deadline);
    uv_timer_init(&d->loop, &d->sd_watchdog);
    uv_unref((uv_handle_t *)&d->sd_watchdog);
    uv_timer_init(&d->loop, &d->stats_timer);
    d->stats_timer.data = d;
    uv_timer_start(&d->stats_timer, on_stats_timer, STATS_PERIOD_MS, STATS_PERIOD_MS);
    d->sig_term.data = d->sig_int.data = d->sig_hup.data = d->deadline.data = d;
    uv_signal_start(&d->sig_term, on_signal, SIGTERM);
    uv_signal_start(&d->sig_int, on_signal, SIGINT);
    uv_signal_start(&d->sig_hup, on_signal, SIGHUP);
    char repaired[64];
    int rrc = store_snapshot_repair(d->cfg.snapshots, repaired, sizeof(repaired));
    if (rrc != 0)
        LOG_WARN("main", "cannot check the snapshot directory", "dir=\"%s\" err=\"%s\"",
                 d->cfg.snapshots, atl_strerror(rrc));
    else if (repaired[0])
        LOG_WARN("main", "latest was missing (a publish was interrupted); repaired", "latest=%s",
                 repaired);
    if ((rc = ingest_start(&d->loop, &d->cfg, d->store, &d->ingest, err, errlen)) != 0)
        return rc;
    d->parts_running = 1;
    if ((rc = sched_start(&d->loop, &d->cfg, d->store, &d->sched, err, errlen)) != 0)
        return rc;
    d->parts_running = 2;
    ingest_on_commit(d->ingest, on_batch_committed, d->sched);
    /* viewer: empty = the files of this build, "none" = no viewer */
    const char *viewer = !d->cfg.viewer[0]                    ? ATL_VIEWER_DIR
                         : strcmp(d->cfg.viewer, "none") == 0 ? NULL
                                                              : d->cfg.viewer;
    http_routes_t routes = {.snapshots_dir = d->cfg.snapshots,
                            .cors_origin = d->cfg.cors_origin,
                            .viewer_dir = viewer,
                            .status = status,
                            .metrics = metrics,
                            .health = health,
                            .admin_rebuild = admin_rebuild,
                            .item = item,
                            .admin_token = d->cfg.admin_token,
                            .write_timeout_ms = (uint64_t)d->cfg.http_write_timeout_ms,
                            .ud = d};
    return http_start(&d->loop, d->cfg.http, &routes, &d->http, err, errlen);
}

#define HTTP_DRAIN_MAX_MS 2000 /* responses in progress get this long at most to finish */

/*
 * How long HTTP responses in progress may still run once ingestion and the scheduler have
 * stopped: what is left of shutdown-timeout-ms, less a margin (a quarter of it, at most 1 s)
 * for cutting the connections left and the rest of the teardown, and HTTP_DRAIN_MAX_MS at most.
 * (It used to be 2 s on top of the timeout, and past the deadline the watchdog exited 1.)
 */
static uint64_t http_drain_ms(daemon_state_t *d)
{
    uint64_t timeout = (uint64_t)d->cfg.shutdown_timeout_ms, margin = timeout / 4;
    if (margin > 1000)
        margin = 1000;
    uv_update_time(&d->loop);
    uint64_t spent = d->stopping && d->stop_at_ms ? uv_now(&d->loop) - d->stop_at_ms : 0;
    uint64_t left = spent + margin < timeout ? timeout - margin - spent : 0;
    return left < HTTP_DRAIN_MAX_MS ? left : HTTP_DRAIN_MAX_MS;
}

/*
 * Signals before the loop's handlers exist (uv_signal_start in start()): opening the store,
 * checking it and counting it can take a while on a large store, and SIGTERM, SIGINT and SIGHUP
 * used to kill the process there by their default action (a `systemctl reload` at that moment
 * left the service dead: systemd counts a death by SIGHUP as a clean exit, no restart). Now
 * SIGHUP is ignored until the loop's handler replaces this one, and SIGTERM/SIGINT are noted and
 * stop the daemon as soon as it runs, the same graceful way (exit 0). SA_RESTART: a blocking
 * open() (a log file on a FIFO) goes on.
 */
static volatile sig_atomic_t early_signal;

static void on_early_signal(int signum)
{
    if (signum != SIGHUP)
        early_signal = signum;
}

static void early_signals_catch(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_early_signal;
    sa.sa_flags = SA_RESTART;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);
}

int main(int argc, char **argv)
{
    static daemon_state_t d;
    d.lock_fd = -1;
    char err[1024], line[4096];
    early_signals_catch();
    config_init(&d.cfg);
    int rc = config_parse_args(&d.cfg, argc, argv, err, sizeof(err));
    if (rc != 0) {
        if (rc != CONFIG_PARSE_DONE)
            fprintf(stderr, "atlasd: %s\n", err);
        config_destroy(&d.cfg);
        return rc == CONFIG_PARSE_DONE ? 0 : 2;
    }
    log_level_t lvl = LOG_LEVEL_INFO;
    (void)log_level_parse(d.cfg.log_level, &lvl); /* config_parse_args refused any other value */
    log_level_current = lvl;
    if ((rc = reopen_log(d.cfg.log_file)) != 0) {
        fprintf(stderr, "atlasd: log-file = %s: %s\n", d.cfg.log_file, strerror(-rc));
        config_destroy(&d.cfg);
        return 2; /* a path of the configuration, like the directories (paths_check) */
    }
    signal(SIGPIPE, SIG_IGN);
    config_log(&d.cfg, line, sizeof(line));
    LOG_INFO("main", "starting", "%s", line);
    if ((rc = start(&d, err, sizeof(err))) != 0) {
        LOG_ERROR("main", "startup failed", "err=\"%s\"", err);
        fprintf(stderr, "atlasd: %s\n", err);
        d.exit_code = rc == ATL_ECONFIG ? 2 : 1; /* a path, a Kafka property: the configuration */
        if (d.ingest) {                          /* consumer started: close it properly */
            d.stopping = 1;
            if (d.sched)
                sched_stop(d.sched, on_sched_stopped, &d);
            ingest_stop(d.ingest, on_ingest_stopped, &d);
            uv_run(&d.loop, UV_RUN_DEFAULT);
        }
    } else {
        notify_ready(&d);
        if (early_signal) /* asked to stop while starting: now that it can, cleanly */
            on_signal(early_signal == SIGINT ? &d.sig_int : &d.sig_term, early_signal);
        uv_run(&d.loop, UV_RUN_DEFAULT); /* until on_ingest_stopped() or the deadline */
    }
    if (http_free(d.http, d.loop_ready ? http_drain_ms(&d) : 0) != 0) {
        /* h2o's handles would keep the loop alive: nothing more to close cleanly */
        LOG_ERROR("main", "exit without closing the loop", "code=1");
        fflush(stderr);
        _exit(1);
    }
    if (d.loop_ready) {
        close_own_handles(&d);
        /* closing the loop's signal handles restored the default actions: a SIGTERM or SIGINT
         * sent again during the rest of the teardown (store close) killed it, exit 143 */
        early_signals_catch();
        uv_run(&d.loop, UV_RUN_DEFAULT);
        ingest_free(d.ingest);
        sched_free(d.sched);
        int lc = uv_loop_close(&d.loop);
        if (lc != 0) {
            LOG_WARN("main", "loop closed with handles left", "err=%s", uv_err_name(lc));
            d.exit_code = d.exit_code ? d.exit_code : 1;
        }
    }
    store_close(d.store);
    store_unlock(d.lock_fd);
    LOG_INFO("main", "exit", "code=%d", d.exit_code);
    config_destroy(&d.cfg);
    return d.exit_code;
}
