/*
 * The refresh scheduler's thread-pool handoff (issue 10.17), the part of the daemon that runs
 * without Kafka, so it also runs under ThreadSanitizer (librdkafka's own threads cannot: gcc's
 * TSan does not intercept the C11 thrd_create it uses). The loop reads /status (the worker's
 * stage and fraction) every few milliseconds while a refresh runs on the pool, then stops the
 * scheduler while a refresh is running (sched_stop logged the stage without its mutex).
 */
#include <stdlib.h>
#include <time.h>

#include <cJSON.h>
#include <uv.h>

#include "daemon/config.h"
#include "daemon/sched.h"
#include "store/store.h"
#include "tests/check.h"

typedef struct run {
    sched_t *s;
    store_t *store;
    uv_timer_t poll;
    int polls, published, added, stopped, stop_requested;
} run_t;

static void add_plays(store_t *st, uint32_t first_user, uint32_t n_users, float pp_base)
{
    store_batch_t *b;
    E(store_batch_new(&b));
    for (uint32_t u = first_user; u < first_user + n_users; u++)
        for (uint32_t m = 0; m < 6; m++) {
            store_event_t e;
            memset(&e, 0, sizeof(e));
            e.kind = STORE_EVENT_HISCORE;
            e.u.hiscore.user = u;
            e.u.hiscore.beatmap_id = 100 + (u % 2) * 10 + (m + u) % 8;
            e.u.hiscore.pp = pp_base + (float)((u * 7 + m * 13) % 150);
            e.u.hiscore.update_time = 1600000000 + (int64_t)pp_base;
            E(store_batch_add(b, &e));
        }
    E(store_batch_commit(st, b));
    store_batch_free(b);
}

static void on_stopped(void *ud)
{
    ((run_t *)ud)->stopped = 1;
}

static void on_poll(uv_timer_t *t)
{
    run_t *r = t->data;
    cJSON *o = cJSON_CreateObject();
    sched_status(r->s, o);
    const cJSON *rf = cJSON_GetObjectItem(o, "refresh");
    r->polls++;
    if (cJSON_GetObjectItem(rf, "last"))
        r->published = 1;
    int running = cJSON_IsTrue(cJSON_GetObjectItem(rf, "running"));
    cJSON_Delete(o);
    if (r->published && !r->added) { /* new data: the next tick starts a second refresh */
        r->added = 1;
        add_plays(r->store, 1, 20, 560);
        return;
    }
    /* stop while that (stalled) refresh is running */
    if (r->added && running && !r->stop_requested) {
        r->stop_requested = 1;
        /* let the worker update its stage after our last locked read, so an unlocked read in
         * sched_stop is a data race TSan sees every time (it did before the fix) */
        nanosleep(&(struct timespec){0, 120 * 1000 * 1000}, NULL);
        sched_stop(r->s, on_stopped, r);
        uv_close((uv_handle_t *)&r->poll, NULL);
    }
}

int main(void)
{
    char *dir = check_tmpdir("sched");
    store_opts_t so;
    store_opts_default(&so);
    so.no_sync = 1;
    store_t *st;
    E(store_open(dir, &so, &st));
    /* two groups of maps played by their own users: a small retained graph */
    add_plays(st, 1, 60, 500);

    atl_config_t cfg;
    config_init(&cfg);
    char snaps[4200];
    snprintf(snaps, sizeof(snaps), "%s/snapshots", dir);
    free(cfg.snapshots);
    cfg.snapshots = strdup(snaps);
    cfg.refresh_interval_s = 1;

    uv_loop_t loop;
    uv_loop_init(&loop);
    run_t r = {0};
    r.store = st;
    char err[256];
    /* every refresh stalls 300 ms first (the worker updates its stage meanwhile): the first
     * one publishes, the second is stopped while it runs */
    setenv("ATL_TEST_REFRESH_STALL_MS", "300", 1);
    E(sched_start(&loop, &cfg, st, &r.s, err, sizeof(err)));
    uv_timer_init(&loop, &r.poll);
    r.poll.data = &r;
    uv_timer_start(&r.poll, on_poll, 2, 2);
    uv_run(&loop, UV_RUN_DEFAULT);
    CHECK(r.published);
    CHECK(r.stopped);
    CHECK(r.polls > 10);
    sched_free(r.s);
    CHECK_EQ(uv_loop_close(&loop), 0);
    config_destroy(&cfg);
    store_close(st);
    check_rmdir(dir);
    printf("test_sched: %d status reads beside the worker\n", r.polls);
    return 0;
}
