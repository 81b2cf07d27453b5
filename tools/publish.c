/*
 * publish.c: the whole pipeline offline, from a store to a published snapshot (DESIGN §1):
 * retained graph -> T -> exact kNN -> MDE (3-D, cold) -> UMAP (2-D) -> export frame -> corpus
 * rows joined with metadata -> atomic snapshot with manifest. Used by
 * `atlasctl rebuild --offline --snapshots DIR`. (Warm starts from stored coordinates and the
 * daemon's timed refresh are the next steps of issues 5 and 6.)
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "algo/corpus.h"
#include "algo/knn.h"
#include "algo/layout.h"
#include "algo/mde.h"
#include "store/store.h"
#include "tools/cli.h"
#include "tools/embed.h"

typedef struct stage_times {
    double read, knn, mde, layout, corpus;
} stage_times_t;

static char *manifest_fields(const store_counters_t *c, const stage_times_t *t,
                             const mde_result_t *mr, const knn_t *knn, uint64_t seed)
{
    char *buf = xmalloc(1024);
    snprintf(buf, 1024,
             "{\"events_applied\":%" PRIu64 ",\"newest_update_time\":%" PRId64
             ",\"parameters\":{\"k\":%u,\"max_distance\":%.6g,\"dim\":3,\"mde_iterations\":%u,"
             "\"n_neighbors\":150,\"min_dist\":0.25,\"seed\":%" PRIu64 ",\"top\":700},"
             "\"distortion\":%.6f,\"timings\":{\"read\":%.3f,\"knn\":%.3f,\"mde\":%.3f,"
             "\"layout\":%.3f,\"corpus\":%.3f}}",
             c->events_applied, c->newest_update_time, knn->k, knn->max_distance, mr->iterations,
             seed, mr->distortion, t->read, t->knn, t->mde, t->layout, t->corpus);
    return buf;
}

int publish_snapshot(const char *db, const char *snapdir, unsigned keep, uint64_t seed,
                     char *id_out, size_t id_len)
{
    embed_args_t a = {.db = db,
                      .k = 10,
                      .dim = 3,
                      .max_iter = 2000,
                      .seed = seed,
                      .threads = 2,
                      .top = GRAPH_TOP_DEFAULT};
    name_table_t names = {0};
    uint64_t *keys = NULL;
    uint32_t n = 0;
    graph_t t = {0};
    knn_t knn = {0};
    graph_edges_t ke;
    mde_t m = {0};
    mde_result_t mr = {0};
    stage_times_t st = {0};
    double *x = NULL, *y = NULL, t0 = cli_now(), t1;
    corpus_row_t *rows = NULL;
    char *arena = NULL, err[512];
    uint8_t *buf = NULL;
    store_t *s = NULL;
    cli_progress_t prog;
    int rc;
    graph_edges_init(&ke);
    cli_progress_init(&prog, "publish");
    if ((rc = embed_load_store_graph(&a, &names, &keys, &n, &t, &t1)) != 0)
        goto out;
    st.read = cli_now() - t0;
    knn_opts_t ko;
    knn_opts_default(&ko);
    ko.progress = cli_progress_cb, ko.progress_ud = &prog;
    t0 = cli_now();
    if ((rc = knn_build(&t, &ko, &knn)) != 0 || (rc = knn_edges(&knn, &ke)) != 0)
        goto out;
    st.knn = cli_now() - t0;
    mde_opts_t mo;
    mde_opts_default(&mo);
    mo.seed = seed, mo.progress = cli_progress_cb, mo.progress_ud = &prog;
    x = xmalloc(((size_t)n * 3 + 1) * sizeof(*x));
    y = xmalloc(((size_t)n * 2 + 1) * sizeof(*y));
    t0 = cli_now();
    if ((rc = mde_init(&m, &mo, n, &ke, keys)) != 0)
        goto out;
    mde_coords_random(&m, x);
    if ((rc = mde_run(&m, x, &mr)) != 0)
        goto out;
    st.mde = cli_now() - t0;
    layout_opts_t lo;
    layout_opts_default(&lo);
    lo.seed = seed, lo.progress = cli_progress_cb, lo.progress_ud = &prog;
    t0 = cli_now();
    if ((rc = layout_umap(x, n, 3, &lo, y, NULL, NULL)) != 0)
        goto out;
    layout_frame(y, n, y);
    st.layout = cli_now() - t0;
    t0 = cli_now();
    store_opts_t so;
    store_opts_default(&so);
    so.read_only = 1;
    store_counters_t c;
    rows = xcalloc((size_t)n + 1, sizeof(*rows));
    if ((rc = store_open(db, &so, &s)) != 0 ||
        (rc = store_corpus_rows(s, keys, y, n, rows, &arena)) != 0 ||
        (rc = store_counters_get(s, &c)) != 0)
        goto out;
    size_t len = corpus_size(rows, n);
    buf = xmalloc(len);
    if ((rc = corpus_encode(rows, n, buf)) != 0)
        goto out;
    st.corpus = cli_now() - t0;
    cli_progress_done(&prog);
    char *fields = manifest_fields(&c, &st, &mr, &knn, seed);
    store_snapshot_info_t info;
    rc = store_snapshot_publish(snapdir, buf, len, n, fields, keep, &info, err, sizeof(err));
    free(fields);
    if (rc != 0) {
        fprintf(stderr, "atlasctl: %s\n", err);
        goto out;
    }
    fprintf(stderr,
            "published %s: %u items, %zu bytes, sha256 %.16s...; read %.1f s, knn %.1f s, "
            "mde %.1f s, layout %.1f s\n",
            info.id, n, len, info.sha256, st.read, st.knn, st.mde, st.layout);
    snprintf(id_out, id_len, "%s", info.id);
out:
    if (rc != 0 && rc != -1)
        fprintf(stderr, "atlasctl: publishing failed: %s\n", atl_strerror(rc));
    store_close(s);
    mde_destroy(&m);
    graph_edges_destroy(&ke);
    knn_destroy(&knn);
    graph_destroy(&t);
    names_free(&names);
    free(keys), free(x), free(y), free(rows), free(arena), free(buf);
    return rc;
}
