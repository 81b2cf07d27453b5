/*
 * refresh_loop.c: the incremental refresh offline, for profiling (not a test, not installed).
 *
 * Opens a store (taking its owner lock: stop atlasd first), runs one refresh to build the
 * in-memory state, then N times: commits a batch of hiscore rows from a JSONL file (each row's
 * pp replaced by 200 + (line * 37 + salt) % 500, the salt the time and iteration, dated a day after
 * the store's newest update, as bench/freshness.sh does) and runs an incremental refresh, printing
 * its result JSON. With --fresh, each batch takes the next N hiscore rows of the file instead of
 * the first N again (new plays every batch, as a live feed brings: more of the map moves). With
 * --check, a from-scratch refresh with the same kNN bound follows and its kNN
 * rows are compared with the incremental ones (exit 1 if they differ). The store is changed in
 * place.
 *
 * usage: bench_refresh --db DIR --batch FILE [--events N] [--iters N] [--fresh] [--check]
 *        [--check-graph]
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "pipeline/refresh.h"
#include "store/store.h"
#include "tools/cli.h"

static int die(const char *what, int rc)
{
    fprintf(stderr, "bench_refresh: %s: %s\n", what, atl_strerror(rc));
    return 1;
}

static int commit_batch(store_t *s, FILE *f, unsigned events, unsigned iter, int64_t when,
                        int fresh)
{
    store_decode_opts_t d;
    store_decode_opts_default(&d);
    d.max_future_s = 315360000;
    store_batch_t *b;
    store_event_t *e = malloc(sizeof(*e));
    char line[65536], err[256];
    unsigned n = 0;
    int rc = e ? store_batch_new(&b) : -ENOMEM;
    if (rc != 0) {
        free(e);
        return rc;
    }
    if (!fresh)
        rewind(f);
    while (rc == 0 && n < events && fgets(line, sizeof(line), f)) {
        if (store_event_decode(line, strlen(line), &d, e, NULL, err, sizeof(err)) != 0 ||
            e->kind != STORE_EVENT_HISCORE || e->u.hiscore.mode != 0)
            continue;
        n++;
        e->u.hiscore.pp = (float)(200 + (n * 37 + iter) % 500);
        e->u.hiscore.update_time = when;
        e->skip = STORE_SKIP_NONE;
        rc = store_batch_add(b, e);
    }
    if (rc == 0)
        rc = store_batch_commit(s, b);
    store_batch_free(b);
    free(e);
    return rc;
}

static int run(store_t *s, refresh_state_t *st, const refresh_opts_t *o, const char *what)
{
    refresh_result_t r;
    char err[512], json[REFRESH_JSON_MAX];
    int rc = refresh_run(s, st, o, &r, err, sizeof(err));
    if (rc != 0) {
        fprintf(stderr, "bench_refresh: %s: %s\n", what, err);
        return rc;
    }
    if (refresh_result_json(&r, 0, json, sizeof(json)) > 0)
        printf("%s %s\n", what, json);
    fflush(stdout);
    return 0;
}

static int check_full(store_t *s, const char *snapdir, double max_distance)
{
    store_coords_t inc = {0}, full = {0};
    refresh_opts_t o;
    refresh_opts_default(&o);
    o.snapdir = snapdir, o.full = 1, o.max_distance = max_distance;
    int rc = store_coords_load(s, &inc);
    if (rc == 0)
        rc = run(s, NULL, &o, "from-scratch");
    if (rc == 0)
        rc = store_coords_load(s, &full);
    if (rc == 0) {
        int same = inc.n == full.n && inc.k == full.k &&
                   memcmp(inc.keys, full.keys, inc.n * sizeof(uint64_t)) == 0 &&
                   memcmp(inc.knn, full.knn, (size_t)inc.n * inc.k * sizeof(uint64_t)) == 0;
        printf("check: incremental kNN rows %s the from-scratch ones (%u items)\n",
               same ? "EQUAL" : "DIFFER from", inc.n);
        rc = same ? 0 : ATL_EDIFF;
    }
    store_coords_free(&inc), store_coords_free(&full);
    return rc;
}

int main(int argc, char **argv)
{
    const char *db = NULL, *batch = NULL;
    unsigned events = 1000, iters = 3;
    int check = 0, check_graph = 0, fresh = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--db") && i + 1 < argc)
            db = argv[++i];
        else if (!strcmp(argv[i], "--batch") && i + 1 < argc)
            batch = argv[++i];
        else if (!strcmp(argv[i], "--events") && i + 1 < argc)
            events = (unsigned)atoi(argv[++i]);
        else if (!strcmp(argv[i], "--iters") && i + 1 < argc)
            iters = (unsigned)atoi(argv[++i]);
        else if (!strcmp(argv[i], "--check"))
            check = 1;
        else if (!strcmp(argv[i], "--fresh"))
            fresh = 1;
        else if (!strcmp(argv[i], "--check-graph"))
            check_graph = 1;
        else {
            fprintf(stderr, "usage: bench_refresh --db DIR --batch FILE [--events N] [--iters N] "
                            "[--fresh] [--check] [--check-graph]\n");
            return 2;
        }
    }
    if (!db || !batch) {
        fprintf(stderr, "bench_refresh: --db and --batch are required\n");
        return 2;
    }
    FILE *f = fopen(batch, "r");
    if (!f) {
        perror(batch);
        return 1;
    }
    char lockerr[256], snapdir[4096];
    int lock = -1, rc;
    if ((rc = store_lock(db, &lock, lockerr, sizeof(lockerr))) != 0) {
        fprintf(stderr, "bench_refresh: %s\n", lockerr);
        return 1;
    }
    store_opts_t so;
    store_opts_default(&so);
    store_t *s;
    if ((rc = store_open(db, &so, &s)) != 0)
        return die("opening the store", rc);
    snprintf(snapdir, sizeof(snapdir), "%s/snapshots", db);
    refresh_state_t *st = refresh_state_new();
    refresh_opts_t o;
    refresh_opts_default(&o);
    o.snapdir = snapdir;
    o.check_graph = check_graph;
    if ((rc = run(s, st, &o, "state")) != 0)
        return 1;
    double maxd = 0;
    for (unsigned it = 0; it < iters; it++) {
        store_counters_t c;
        if ((rc = store_counters_get(s, &c)) != 0)
            return die("counters", rc);
        double t0 = pipeline_now();
        if ((rc = commit_batch(s, f, events, (unsigned)time(NULL) + it,
                               c.newest_update_time + 86400, fresh)) != 0)
            return die("committing the batch", rc);
        printf("batch %u events committed in %.3f s\n", events, pipeline_now() - t0);
        refresh_result_t r;
        char err[512], json[REFRESH_JSON_MAX];
        if ((rc = refresh_run(s, st, &o, &r, err, sizeof(err))) != 0) {
            fprintf(stderr, "bench_refresh: refresh: %s\n", err);
            return 1;
        }
        maxd = r.max_distance;
        if (refresh_result_json(&r, 0, json, sizeof(json)) > 0)
            printf("refresh %s\n", json);
        fflush(stdout);
    }
    if (check && (rc = check_full(s, snapdir, maxd)) != 0)
        return 1;
    refresh_state_free(st);
    store_close(s);
    store_unlock(lock);
    fclose(f);
    return 0;
}
