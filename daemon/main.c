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
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <systemd/sd-daemon.h>
#include <unistd.h>

#include <uv.h>

#include "algo/item.h"
#include "daemon/config.h"
#include "daemon/http.h"
#include "daemon/ingest.h"
#include "daemon/log.h"
#include "daemon/sched.h"
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
    uv_timer_t watchdog; /* feeds systemd's watchdog from the loop */
    int loop_ready, stopping, exit_code;
    store_stats_t stats; /* cached: counting users and retained items walks two tables */
    uint64_t stats_time_ms;
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
    uv_close((uv_handle_t *)&d->watchdog, NULL);
}

static void on_watchdog(uv_timer_t *t)
{
    (void)t;
    sd_notify(0, "WATCHDOG=1");
}

/* READY=1 and, if systemd asked for one (WatchdogSec=), the watchdog timer at half its period */
static void notify_ready(daemon_state_t *d)
{
    uint64_t usec = 0;
    if (sd_watchdog_enabled(0, &usec) > 0 && usec >= 2000) {
        uv_timer_start(&d->watchdog, on_watchdog, 0, usec / 2000);
        LOG_INFO("main", "systemd watchdog fed from the loop", "interval_ms=%llu",
                 (unsigned long long)(usec / 2000));
    }
    sd_notify(0, "READY=1\nSTATUS=consuming");
}

static void part_stopped(daemon_state_t *d)
{
    if (--d->parts_running > 0)
        return;
    uv_timer_stop(&d->deadline);
    uv_stop(&d->loop); /* h2o's own handles keep the loop alive; http_free() ends them */
}

static void on_ingest_stopped(void *ud)
{
    LOG_INFO("main", "ingestion stopped", "");
    part_stopped(ud);
}

static void on_sched_stopped(void *ud)
{
    LOG_INFO("main", "refresh scheduler stopped", "");
    part_stopped(ud);
}

static void on_deadline(uv_timer_t *t)
{
    daemon_state_t *d = t->data;
    LOG_ERROR("main", "graceful shutdown timed out; exiting", "timeout_ms=%lld",
              (long long)d->cfg.shutdown_timeout_ms);
    d->exit_code = 1;
    uv_stop(&d->loop);
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
    LOG_INFO("main", "shutting down", "signal=%d", signum);
    sd_notify(0, "STOPPING=1");
    http_stop(d->http);
    uv_timer_start(&d->deadline, on_deadline, (uint64_t)d->cfg.shutdown_timeout_ms, 0);
    if (d->sched)
        sched_stop(d->sched, on_sched_stopped, d);
    ingest_stop(d->ingest, on_ingest_stopped, d);
}

static int healthy(void *ud)
{
    daemon_state_t *d = ud;
    cJSON *o = cJSON_CreateObject();
    ingest_status(d->ingest, o);
    const cJSON *st = cJSON_GetObjectItem(o, "state");
    int ok = cJSON_IsString(st) && strcmp(st->valuestring, "consuming") == 0;
    cJSON_Delete(o);
    return ok;
}

/* Store counts for /status and /metrics, recomputed at most every 5 s (they walk the profile
 * and stats tables, which at full scale takes long enough to delay the loop). */
static const store_stats_t *store_stats(daemon_state_t *d)
{
    uint64_t now = uv_now(&d->loop);
    if (d->stats_time_ms == 0 || now - d->stats_time_ms >= 5000) {
        store_stats_t st;
        if (store_stats_get(d->store, 0, &st) == 0) {
            d->stats = st;
            d->stats_time_ms = now ? now : 1;
        }
    }
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
    store_stats_t st;
    if (store_stats_get(d->store, 0, &st) == 0)
        text_buf_printf(b,
                        "# TYPE atlasd_lmdb_bytes gauge\natlasd_lmdb_bytes %llu\n"
                        "# TYPE atlasd_items gauge\natlasd_items %llu\n"
                        "# TYPE atlasd_retained_items gauge\natlasd_retained_items %llu\n",
                        (unsigned long long)st.bytes, (unsigned long long)st.items,
                        (unsigned long long)st.retained);
    if (d->sched)
        sched_metrics(d->sched, b);
}

static int start(daemon_state_t *d, char *err, size_t errlen)
{
    store_opts_t so;
    store_opts_default(&so);
    so.map_size_bytes = (uint64_t)d->cfg.map_size_mb << 20;
    so.no_sync = !d->cfg.durable;
    if (mkdir(d->cfg.db, 0755) != 0 && errno != EEXIST) {
        snprintf(err, errlen, "cannot create %s: %s", d->cfg.db, strerror(errno));
        return -1;
    }
    if (store_lock(d->cfg.db, &d->lock_fd, err, errlen) != 0)
        return -1;
    int rc = store_open(d->cfg.db, &so, &d->store);
    if (rc != 0) {
        snprintf(err, errlen, "cannot open store %s: %s", d->cfg.db, atl_strerror(rc));
        return -1;
    }
    uv_loop_init(&d->loop);
    d->loop_ready = 1;
    uv_signal_init(&d->loop, &d->sig_term);
    uv_signal_init(&d->loop, &d->sig_int);
    uv_signal_init(&d->loop, &d->sig_hup);
    uv_timer_init(&d->loop, &d->deadline);
    uv_timer_init(&d->loop, &d->watchdog);
    uv_unref((uv_handle_t *)&d->watchdog);
    d->sig_term.data = d->sig_int.data = d->sig_hup.data = d->deadline.data = d;
    uv_signal_start(&d->sig_term, on_signal, SIGTERM);
    uv_signal_start(&d->sig_int, on_signal, SIGINT);
    uv_signal_start(&d->sig_hup, on_signal, SIGHUP);
    if (!d->cfg.snapshots[0]) {
        free(d->cfg.snapshots);
        size_t len = strlen(d->cfg.db) + sizeof("/snapshots");
        d->cfg.snapshots = malloc(len);
        if (!d->cfg.snapshots)
            abort();
        snprintf(d->cfg.snapshots, len, "%s/snapshots", d->cfg.db);
    }
    if (ingest_start(&d->loop, &d->cfg, d->store, &d->ingest, err, errlen) != 0)
        return -1;
    d->parts_running = 1;
    if (sched_start(&d->loop, &d->cfg, d->store, &d->sched, err, errlen) != 0)
        return -1;
    d->parts_running = 2;
    /* viewer: empty = the files of this build, "none" = no viewer */
    const char *viewer = !d->cfg.viewer[0]                    ? ATL_VIEWER_DIR
                         : strcmp(d->cfg.viewer, "none") == 0 ? NULL
                                                              : d->cfg.viewer;
    http_routes_t routes = {.snapshots_dir = d->cfg.snapshots,
                            .cors_origin = d->cfg.cors_origin,
                            .viewer_dir = viewer,
                            .status = status,
                            .metrics = metrics,
                            .healthy = healthy,
                            .admin_rebuild = admin_rebuild,
                            .item = item,
                            .admin_token = d->cfg.admin_token,
                            .ud = d};
    if (http_start(&d->loop, d->cfg.http, &routes, &d->http, err, errlen) != 0)
        return -1;
    return 0;
}

int main(int argc, char **argv)
{
    static daemon_state_t d;
    d.lock_fd = -1;
    char err[1024], line[4096];
    config_init(&d.cfg);
    int rc = config_parse_args(&d.cfg, argc, argv, err, sizeof(err));
    if (rc != 0) {
        if (rc < 0)
            fprintf(stderr, "atlasd: %s\n", err);
        config_destroy(&d.cfg);
        return rc > 0 ? 0 : 2;
    }
    log_level_t lvl;
    if (log_level_parse(d.cfg.log_level, &lvl) != 0) {
        fprintf(stderr, "atlasd: log-level must be error, warn, info or debug\n");
        config_destroy(&d.cfg);
        return 2;
    }
    log_level_current = lvl;
    if ((rc = reopen_log(d.cfg.log_file)) != 0) {
        fprintf(stderr, "atlasd: cannot open log %s: %s\n", d.cfg.log_file, strerror(-rc));
        config_destroy(&d.cfg);
        return 1;
    }
    signal(SIGPIPE, SIG_IGN);
    config_log(&d.cfg, line, sizeof(line));
    LOG_INFO("main", "starting", "%s", line);
    if (start(&d, err, sizeof(err)) != 0) {
        LOG_ERROR("main", "startup failed", "err=\"%s\"", err);
        fprintf(stderr, "atlasd: %s\n", err);
        d.exit_code = 1;
        if (d.ingest) { /* consumer started: close it properly */
            d.stopping = 1;
            if (d.sched)
                sched_stop(d.sched, on_sched_stopped, &d);
            ingest_stop(d.ingest, on_ingest_stopped, &d);
            uv_run(&d.loop, UV_RUN_DEFAULT);
        }
    } else {
        notify_ready(&d);
        uv_run(&d.loop, UV_RUN_DEFAULT); /* until on_ingest_stopped() or the deadline */
    }
    http_free(d.http, 2000);
    if (d.loop_ready) {
        close_own_handles(&d);
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
