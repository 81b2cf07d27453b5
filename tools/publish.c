/*
 * publish.c: the whole pipeline offline, from a store to a published snapshot (DESIGN §1):
 * retained graph -> T -> exact kNN -> MDE (3-D, cold) -> UMAP (2-D) -> export frame -> corpus
 * rows joined with metadata -> atomic snapshot with manifest. Used by
 * `atlasctl rebuild --offline --snapshots DIR`. (Warm starts from stored coordinates and the
 * daemon's timed refresh are the next steps of issues 5 and 6.)
 */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "algo/corpus.h"
#include "algo/item.h"
#include "algo/knn.h"
#include "algo/layout.h"
#include "algo/mde.h"
#include "algo/quality.h"
#include "store/store.h"
#include "tools/cli.h"
#include "tools/embed.h"

#define COORDS_MAGIC "ATLCRD02" /* + u32 n, u32 dim 3, n keys, n x 3 f64, u32 k, n x k keys */

void prev_free(prev_state_t *p)
{
    free(p->keys2), free(p->keys3), free(p->framed), free(p->y2), free(p->x3), free(p->knn);
    memset(p, 0, sizeof(*p));
}

/* Rows of a corpus are in the order we wrote them: sorted by item key. */
void load_prev(const char *snapdir, prev_state_t *p)
{
    char path[4096], err[128];
    size_t len;
    memset(p, 0, sizeof(*p));
    if (store_snapshot_latest(snapdir, p->id, sizeof(p->id)) != 0) {
        p->id[0] = '\0';
        return;
    }
    snprintf(path, sizeof(path), "%s/%s", snapdir, p->id);
    uint8_t *buf = cli_read_file(path, &len);
    uint32_t n;
    if (buf && corpus_decode(buf, len, NULL, &n, err, sizeof(err)) == 0) {
        corpus_row_t *rows = xcalloc((size_t)n + 1, sizeof(*rows));
        corpus_decode(buf, len, rows, &n, err, sizeof(err));
        p->keys2 = xmalloc(((size_t)n + 1) * sizeof(*p->keys2));
        p->framed = xmalloc(((size_t)n * 2 + 1) * sizeof(double));
        p->y2 = xmalloc(((size_t)n * 2 + 1) * sizeof(double));
        for (uint32_t i = 0; i < n; i++) {
            p->keys2[i] =
                item_key_make((uint32_t)rows[i].beatmap_id, item_mods_from_legacy(rows[i].mods));
            p->framed[2 * i] = rows[i].x, p->framed[2 * i + 1] = rows[i].y;
            /* undo layout_frame: out = (-2.5 y, -2.5 x) about the box centre */
            p->y2[2 * i] = -rows[i].y / 2.5, p->y2[2 * i + 1] = -rows[i].x / 2.5;
        }
        p->n2 = n;
        free(rows);
    }
    free(buf);
    snprintf(path, sizeof(path), "%s/%s.coords", snapdir, p->id);
    buf = cli_read_file(path, &len);
    uint32_t dim = 0;
    if (buf && len >= 16 && !memcmp(buf, COORDS_MAGIC, 8)) {
        memcpy(&n, buf + 8, 4);
        memcpy(&dim, buf + 12, 4);
        size_t base = 16 + (size_t)n * 8 + (size_t)n * 3 * 8;
        uint32_t k = 0;
        if (dim == 3 && len >= base + 4)
            memcpy(&k, buf + base, 4);
        if (dim == 3 && k <= KNN_MAX_K && len == base + 4 + (size_t)n * k * 8) {
            p->keys3 = xmalloc(((size_t)n + 1) * sizeof(*p->keys3));
            p->x3 = xmalloc(((size_t)n * 3 + 1) * sizeof(double));
            p->knn = xmalloc(((size_t)n * k + 1) * sizeof(*p->knn));
            memcpy(p->keys3, buf + 16, (size_t)n * 8);
            memcpy(p->x3, buf + 16 + (size_t)n * 8, (size_t)n * 3 * 8);
            memcpy(p->knn, buf + base + 4, (size_t)n * k * 8);
            p->n3 = n;
            p->k = k;
        }
    }
    free(buf);
}

/* Position in a sorted key array, or UINT32_MAX. */
uint32_t find_key(const uint64_t *keys, uint32_t n, uint64_t key)
{
    uint32_t lo = 0, hi = n;
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        if (keys[mid] < key)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < n && keys[lo] == key ? lo : UINT32_MAX;
}

/* Row i's neighbours as item keys, sorted (0 past the count): comparable across snapshots. */
static void knn_row_keys(const knn_t *knn, const uint64_t *keys, uint32_t i, uint64_t *out)
{
    for (uint32_t q = 0; q < knn->k; q++)
        out[q] = q < knn->count[i] ? keys[knn->nbr[(size_t)i * knn->k + q]] : 0;
    qsort(out, knn->count[i], sizeof(*out), atl_cmp_u64);
}

static uint8_t *coords_file(const uint64_t *keys, const double *x, const knn_t *knn, uint32_t n,
                            size_t *len)
{
    size_t base = 16 + (size_t)n * 8 + (size_t)n * 3 * 8;
    *len = base + 4 + (size_t)n * knn->k * 8;
    uint8_t *b = xmalloc(*len);
    uint32_t dim = 3, k = knn->k;
    memcpy(b, COORDS_MAGIC, 8);
    memcpy(b + 8, &n, 4);
    memcpy(b + 12, &dim, 4);
    memcpy(b + 16, keys, (size_t)n * 8);
    memcpy(b + 16 + (size_t)n * 8, x, (size_t)n * 3 * 8);
    memcpy(b + base, &k, 4);
    uint64_t row[KNN_MAX_K]; /* the file offsets are not 8-byte aligned: copy each row */
    for (uint32_t i = 0; i < n; i++) {
        knn_row_keys(knn, keys, i, row);
        memcpy(b + base + 4 + (size_t)i * k * 8, row, (size_t)k * 8);
    }
    return b;
}

/* Items shared with the previous snapshot whose kNN rows are the same item set. */
static uint32_t unchanged_knn(const prev_state_t *p, const knn_t *knn, const uint64_t *keys,
                              uint32_t n, const uint8_t *shared, uint8_t *mask)
{
    uint64_t row[KNN_MAX_K];
    uint32_t c = 0;
    for (uint32_t i = 0; i < n; i++) {
        mask[i] = 0;
        uint32_t at =
            shared[i] && p->knn && p->k == knn->k ? find_key(p->keys3, p->n3, keys[i]) : UINT32_MAX;
        if (at == UINT32_MAX)
            continue;
        knn_row_keys(knn, keys, i, row);
        mask[i] = memcmp(row, p->knn + (size_t)at * p->k, knn->k * sizeof(uint64_t)) == 0;
        c += mask[i];
    }
    return c;
}

typedef struct stage_times {
    double read, knn, mde, layout, corpus;
} stage_times_t;

typedef struct stability {
    const char *previous;
    uint32_t shared, unchanged;       /* shared items; of those, with the same kNN rows */
    double median, p95;               /* over the unchanged ones (the DESIGN §9 figure) */
    double shared_median, shared_p95; /* over every shared item */
} stability_t;

static char *manifest_fields(const store_counters_t *c, const stage_times_t *t,
                             const mde_result_t *mr, const knn_t *knn, uint64_t seed,
                             const stability_t *sb, const char *offsets)
{
    size_t cap = 2048 + strlen(offsets);
    char *buf = xmalloc(cap);
    int k = snprintf(buf, cap,
                     "{\"kafka_offsets\":%s,\"previous\":\"%s\",\"stability\":{\"shared_items\":%u,"
                     "\"unchanged_knn_items\":%u,\"median\":%.6f,\"p95\":%.6f,"
                     "\"shared_median\":%.6f,\"shared_p95\":%.6f},",
                     offsets, sb->previous, sb->shared, sb->unchanged, sb->median, sb->p95,
                     sb->shared_median, sb->shared_p95);
    snprintf(buf + k, cap - (size_t)k,
             "\"events_applied\":%" PRIu64 ",\"newest_update_time\":%" PRId64
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
    prev_state_t prev;
    load_prev(snapdir, &prev);
    uint8_t *placed = xcalloc((size_t)n + 1, 1);
    uint32_t n_placed3 = 0, n_placed2 = 0;
    for (uint32_t i = 0; i < n && prev.n3; i++) {
        uint32_t at = find_key(prev.keys3, prev.n3, keys[i]);
        if (at != UINT32_MAX) {
            memcpy(x + 3 * (size_t)i, prev.x3 + 3 * (size_t)at, 3 * sizeof(double));
            placed[i] = 1, n_placed3++;
        }
    }
    if (n_placed3 > 0) { /* warm: previous coordinates, new items beside their neighbours */
        mde_coords_warm(&m, x, placed);
        m.o.ftol = 1e-4;
    } else {
        mde_coords_random(&m, x);
    }
    if ((rc = mde_run(&m, x, &mr)) != 0)
        goto out;
    st.mde = cli_now() - t0;
    layout_opts_t lo;
    layout_opts_default(&lo);
    lo.seed = seed, lo.progress = cli_progress_cb, lo.progress_ud = &prog;
    t0 = cli_now();
    double *prev_y = xcalloc((size_t)n * 2 + 1, sizeof(double));
    double *prev_f = xcalloc((size_t)n * 2 + 1, sizeof(double));
    memset(placed, 0, n);
    for (uint32_t i = 0; i < n && prev.n2; i++) {
        uint32_t at = find_key(prev.keys2, prev.n2, keys[i]);
        if (at != UINT32_MAX) {
            memcpy(prev_y + 2 * (size_t)i, prev.y2 + 2 * (size_t)at, 2 * sizeof(double));
            memcpy(prev_f + 2 * (size_t)i, prev.framed + 2 * (size_t)at, 2 * sizeof(double));
            placed[i] = 1, n_placed2++;
        }
    }
    stability_t sb = {prev.id, n_placed2, 0, -1, -1, -1, -1};
    if (n_placed2 >= 2) { /* warm from the previous map, then rotate/reflect onto it */
        memcpy(y, prev_y, (size_t)n * 2 * sizeof(double));
        rc = layout_umap(x, n, 3, &lo, y, placed, NULL);
        if (rc == 0)
            layout_align(y, prev_y, n, placed);
    } else {
        rc = layout_umap(x, n, 3, &lo, y, NULL, NULL);
    }
    if (rc != 0) {
        free(prev_y), free(prev_f), free(placed), prev_free(&prev);
        goto out;
    }
    layout_frame(y, n, y);
    if (n_placed2 >= 2) { /* how far shared items moved, as a fraction of the map's width */
        double lo_x = INFINITY, hi_x = -INFINITY, lo_y = INFINITY, hi_y = -INFINITY;
        for (uint32_t i = 0; i < n; i++) {
            lo_x = fmin(lo_x, y[2 * i]), hi_x = fmax(hi_x, y[2 * i]);
            lo_y = fmin(lo_y, y[2 * i + 1]), hi_y = fmax(hi_y, y[2 * i + 1]);
        }
        double width = fmax(hi_x - lo_x, hi_y - lo_y);
        quality_displacement(prev_f, y, n, 2, placed, width, &sb.shared_median, &sb.shared_p95);
        uint8_t *same = xcalloc((size_t)n + 1, 1);
        sb.unchanged = unchanged_knn(&prev, &knn, keys, n, placed, same);
        if (sb.unchanged > 0)
            quality_displacement(prev_f, y, n, 2, same, width, &sb.median, &sb.p95);
        free(same);
    }
    free(prev_y), free(prev_f), free(placed);
    st.layout = cli_now() - t0;
    t0 = cli_now();
    store_counters_t c;
    rows = xcalloc((size_t)n + 1, sizeof(*rows));
    if ((rc = cli_store_open("rebuild", db, 1, &s)) != 0 ||
        (rc = store_corpus_rows(s, keys, y, n, rows, &arena)) != 0 ||
        (rc = store_counters_get(s, &c)) != 0)
        goto out;
    size_t len = corpus_size(rows, n);
    buf = xmalloc(len);
    if ((rc = corpus_encode(rows, n, buf)) != 0)
        goto out;
    st.corpus = cli_now() - t0;
    cli_progress_done(&prog);
    char *offsets = NULL;
    if ((rc = store_offsets_json(s, &offsets)) != 0) {
        prev_free(&prev);
        goto out;
    }
    char *fields = manifest_fields(&c, &st, &mr, &knn, seed, &sb, offsets);
    free(offsets);
    size_t clen;
    uint8_t *cbuf = coords_file(keys, x, &knn, n, &clen);
    store_snapshot_info_t info;
    rc = store_snapshot_publish(snapdir, buf, len, n, fields, cbuf, clen, keep, &info, err,
                                sizeof(err));
    free(fields);
    free(cbuf);
    if (rc == 0 && sb.shared_median >= 0)
        fprintf(stderr,
                "stability: of %u items shared with %s, the %u whose kNN rows did not change "
                "moved median %.3f%%, p95 %.3f%% of the map's width (all shared: %.3f%%, "
                "%.3f%%)\n",
                sb.shared, sb.previous, sb.unchanged, 100 * sb.median, 100 * sb.p95,
                100 * sb.shared_median, 100 * sb.shared_p95);
    prev_free(&prev);
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
