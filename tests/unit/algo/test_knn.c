/*
 * kNN: exact equality with a brute-force all-pairs Dijkstra (no early stop, no bound) followed
 * by a sort on (distance, index), on random graphs with many ties (distances on a 1/8 grid, so
 * path sums are exact in floating point); incremental row updates; edge weights; pruning.
 */
#include <errno.h>
#include <math.h>
#include <string.h>

#include "algo/graph.h"
#include "algo/knn.h"
#include "algo/rng.h"
#include "tests/check.h"
#include "tests/fault/fault.h"

/* Plain O(n^2) Dijkstra from s over the whole graph. */
static void all_distances(const graph_t *g, uint32_t s, double *dist)
{
    uint8_t *done = calloc(g->n, 1);
    for (uint32_t v = 0; v < g->n; v++)
        dist[v] = INFINITY;
    dist[s] = 0;
    for (;;) {
        uint32_t u = UINT32_MAX;
        for (uint32_t v = 0; v < g->n; v++)
            if (!done[v] && isfinite(dist[v]) && (u == UINT32_MAX || dist[v] < dist[u]))
                u = v;
        if (u == UINT32_MAX)
            break;
        done[u] = 1;
        for (uint64_t e = g->row_ptr[u]; e < g->row_ptr[u + 1]; e++)
            if (dist[u] + g->dist[e] < dist[g->col[e]])
                dist[g->col[e]] = dist[u] + g->dist[e];
    }
    free(done);
}

static void check_against_brute(const graph_t *g, const knn_t *r)
{
    double *dist = malloc(g->n * sizeof(double));
    for (uint32_t s = 0; s < g->n; s++) {
        all_distances(g, s, dist);
        uint32_t got = 0;
        double last_d = -1;
        uint32_t last_v = 0;
        /* select the k best by (dist, index) by repeated scan */
        for (uint32_t x = 0; x < r->k; x++) {
            uint32_t best = UINT32_MAX;
            for (uint32_t v = 0; v < g->n; v++) {
                if (v == s || !(dist[v] <= r->max_distance))
                    continue;
                if (dist[v] < last_d || (dist[v] == last_d && v <= last_v && x > 0))
                    continue;
                if (best == UINT32_MAX || dist[v] < dist[best] ||
                    (dist[v] == dist[best] && v < best))
                    best = v;
            }
            if (best == UINT32_MAX)
                break;
            CHECK_EQ(r->nbr[(size_t)s * r->k + x], best);
            CHECK_NEAR(r->dist[(size_t)s * r->k + x], dist[best], 1e-6);
            last_d = dist[best];
            last_v = best;
            got++;
        }
        CHECK_EQ(r->count[s], got);
    }
    free(dist);
}

static void random_graph(uint64_t seed, uint32_t n, uint32_t avg_deg, graph_t *g)
{
    rng_t r;
    rng_init(&r, seed);
    graph_edges_t e;
    graph_edges_init(&e);
    for (uint32_t k = 0; k < n * avg_deg / 2; k++) {
        uint32_t i = (uint32_t)rng_below(&r, n), j = (uint32_t)rng_below(&r, n);
        float d = (float)(1 + rng_below(&r, 12)) / 8.0f; /* coarse: many equal path lengths */
        if (i != j)
            E(graph_edges_add(&e, i, j, d));
    }
    E(graph_build(n, &e, g));
    graph_edges_destroy(&e);
}

/* graph_update() gives graph_build()'s graph after rows changed, an item left and one came. */
static void test_graph_update(void)
{
    enum { N0 = 300, DEG = 8, GONE = 17, NEW_AT = 100 };

    rng_t r;
    rng_init(&r, 77);
    uint32_t own0[N0][DEG], own1[N0 + 1][DEG + 1], c1[N0 + 1];
    float d0[N0][DEG], d1[N0 + 1][DEG + 1];
    graph_edges_t e0, e1, ea;
    graph_edges_init(&e0), graph_edges_init(&e1), graph_edges_init(&ea);
    for (uint32_t i = 0; i < N0; i++)
        for (uint32_t q = 0; q < DEG; q++) {
            own0[i][q] = (uint32_t)rng_below(&r, N0);
            d0[i][q] = (float)(1 + rng_below(&r, 4)); /* many ties */
            E(graph_edges_add(&e0, i, own0[i][q], d0[i][q]));
        }
    graph_t old, want, got = {0};
    E(graph_build(N0, &e0, &old));
    /* item GONE leaves; a new item enters at NEW_AT: every later index shifts */
    uint32_t new_of_old[N0], old_of_new[N0 + 1], n = 0;
    for (uint32_t p = 0; p < N0; p++) {
        if (p == NEW_AT)
            old_of_new[n++] = KNN_NONE;
        new_of_old[p] = p == GONE ? KNN_NONE : n;
        if (p != GONE)
            old_of_new[n++] = p;
    }
    uint8_t aff[N0 + 1] = {0};
    for (uint32_t i = 0; i < n; i++) {
        uint32_t p = old_of_new[i];
        c1[i] = 0;
        if (p == KNN_NONE) { /* the new item lists a few others */
            for (uint32_t q = 0; q < DEG; q++, c1[i]++)
                own1[i][q] = (uint32_t)rng_below(&r, n), d1[i][q] = 2.0f;
            continue;
        }
        int changed = rng_below(&r, 10) == 0;
        for (uint32_t q = 0; q < DEG; q++) {
            uint32_t c = new_of_old[own0[p][q]];
            if (c == KNN_NONE || (changed && q == 0))
                continue; /* the gone item, or an entry dropped */
            own1[i][c1[i]] = c;
            d1[i][c1[i]++] = changed && q == 1 ? d0[p][q] + 1 : d0[p][q];
        }
        if (changed) /* and one added */
            own1[i][c1[i]] = (uint32_t)rng_below(&r, n), d1[i][c1[i]++] = 3.0f;
        if (changed || c1[i] != DEG) { /* the rows whose entries changed, and their columns */
            aff[i] = 1;
            for (uint32_t q = 0; q < DEG; q++)
                if (new_of_old[own0[p][q]] != KNN_NONE)
                    aff[new_of_old[own0[p][q]]] = 1;
            for (uint32_t q = 0; q < c1[i]; q++)
                aff[own1[i][q]] = 1;
        }
    }
    for (uint32_t q = 0; q < DEG; q++) /* rows the gone item listed */
        if (new_of_old[own0[GONE][q]] != KNN_NONE)
            aff[new_of_old[own0[GONE][q]]] = 1;
    for (uint32_t i = 0; i < n; i++)
        if (old_of_new[i] == KNN_NONE)
            for (uint32_t q = 0, a = aff[i] = 1; q < c1[i]; q++)
                aff[own1[i][q]] = (uint8_t)a;
    for (uint32_t i = 0; i < n; i++)
        for (uint32_t q = 0; q < c1[i]; q++) {
            E(graph_edges_add(&e1, i, own1[i][q], d1[i][q]));
            if (aff[i])
                E(graph_edges_add(&ea, i, own1[i][q], d1[i][q]));
            if (aff[own1[i][q]])
                E(graph_edges_add(&ea, own1[i][q], i, d1[i][q]));
        }
    E(graph_build(n, &e1, &want));
    E(graph_update(&old, old_of_new, new_of_old, n, aff, &ea, &got));
    CHECK_EQ(got.n, want.n);
    CHECK(memcmp(got.row_ptr, want.row_ptr, (n + 1) * sizeof(uint64_t)) == 0);
    CHECK(memcmp(got.col, want.col, want.row_ptr[n] * sizeof(uint32_t)) == 0);
    CHECK(memcmp(got.dist, want.dist, want.row_ptr[n] * sizeof(float)) == 0);
    /* into a recycled graph's buffers: too small (replaced), then large enough (written over,
     * stale entries and all) */
    for (int round = 0; round < 2; round++) {
        graph_t spare = {0};
        if (round == 0) {
            graph_edges_t tiny;
            graph_edges_init(&tiny);
            E(graph_edges_add(&tiny, 0, 1, 1.0f));
            E(graph_build(2, &tiny, &spare));
            graph_edges_destroy(&tiny);
        } else {
            E(graph_build(n, &e1, &spare));
            for (uint64_t k = 0; k < spare.row_ptr[n]; k++)
                spare.col[k] = UINT32_MAX, spare.dist[k] = -1;
        }
        uint32_t *col_before = spare.col;
        E(graph_update(&old, old_of_new, new_of_old, n, aff, &ea, &spare));
        CHECK(round == 0 || spare.col == col_before);
        CHECK_EQ(spare.n, want.n);
        CHECK(memcmp(spare.row_ptr, want.row_ptr, (n + 1) * sizeof(uint64_t)) == 0);
        CHECK(memcmp(spare.col, want.col, want.row_ptr[n] * sizeof(uint32_t)) == 0);
        CHECK(memcmp(spare.dist, want.dist, want.row_ptr[n] * sizeof(float)) == 0);
        graph_destroy(&spare);
    }
    /* graph_update_delta(): the same graph from the edges' new states at affected rows (each
     * edge between two affected rows: present at its distance, or gone), every other entry
     * carried over */
    graph_edges_t ed;
    graph_edges_init(&ed);
    for (uint32_t i = 0; i < n; i++) {
        uint32_t p = old_of_new[i];
        for (uint64_t k = want.row_ptr[i]; aff[i] && k < want.row_ptr[i + 1]; k++)
            if (aff[want.col[k]] && (k % 3 != 0 || want.col[k] < i)) /* some edges twice */
                E(graph_edges_add(&ed, i, want.col[k], want.dist[k]));
        for (uint64_t k = p == KNN_NONE ? 0 : old.row_ptr[p];
             aff[i] && p != KNN_NONE && k < old.row_ptr[p + 1]; k++) {
            uint32_t c = new_of_old[old.col[k]];
            int still = 0;
            for (uint64_t q = want.row_ptr[i]; c != KNN_NONE && q < want.row_ptr[i + 1]; q++)
                still |= want.col[q] == c;
            if (c != KNN_NONE && !still && aff[c])
                E(graph_edges_add(&ed, i, c, 0)); /* gone */
        }
    }
    for (int round = 0; round < 2; round++) {
        graph_t dg = {0};
        if (round == 1)
            E(graph_build(n, &e1, &dg)); /* buffers to reuse */
        E(graph_update_delta(&old, old_of_new, new_of_old, n, aff, &ed, &dg));
        CHECK_EQ(dg.n, want.n);
        CHECK(memcmp(dg.row_ptr, want.row_ptr, (n + 1) * sizeof(uint64_t)) == 0);
        CHECK(memcmp(dg.col, want.col, want.row_ptr[n] * sizeof(uint32_t)) == 0);
        CHECK(memcmp(dg.dist, want.dist, want.row_ptr[n] * sizeof(float)) == 0);
        graph_destroy(&dg);
    }
    uint32_t rebuilt = 0;
    for (uint32_t i = 0; i < n; i++)
        rebuilt += aff[i];
    CHECK(rebuilt < n); /* some rows were carried over */
    /* an unaffected row that cannot be carried over is refused */
    for (uint32_t i = 0; i < n; i++)
        if (old_of_new[i] == KNN_NONE)
            aff[i] = 0; /* the new item's row */
    graph_t bad = {0};
    CHECK_EQ(graph_update(&old, old_of_new, new_of_old, n, aff, &ea, &bad), -EINVAL);
    CHECK_EQ(graph_update_delta(&old, old_of_new, new_of_old, n, aff, &ed, &bad), -EINVAL);
    graph_edges_destroy(&ed);
    graph_destroy(&old), graph_destroy(&want), graph_destroy(&got);
    graph_edges_destroy(&e0), graph_edges_destroy(&e1), graph_edges_destroy(&ea);
}

/* Rebuild @p g with a few edges added, removed or moved (1/8 grid: ties), into @p out. */
static void perturb(const graph_t *g, rng_t *r, uint32_t n_changes, graph_t *out)
{
    graph_edges_t e;
    graph_edges_init(&e);
    for (uint32_t i = 0; i < g->n; i++)
        for (uint64_t x = g->row_ptr[i]; x < g->row_ptr[i + 1]; x++) {
            uint32_t j = g->col[x];
            if (j < i)
                continue;
            float d = g->dist[x];
            if (rng_below(r, g->n * 4) < n_changes) {
                uint64_t what = rng_below(r, 3);
                if (what == 0)
                    continue;                                             /* removed */
                d = what == 1 ? d + 0.125f : (d > 0.2f ? d - 0.125f : d); /* farther, nearer */
            }
            E(graph_edges_add(&e, i, j, d));
        }
    for (uint32_t c = 0; c < n_changes; c++) { /* added */
        uint32_t i = (uint32_t)rng_below(r, g->n), j = (uint32_t)rng_below(r, g->n);
        if (i != j)
            E(graph_edges_add(&e, i, j, (float)(1 + rng_below(r, 12)) / 8.0f));
    }
    E(graph_build(g->n, &e, out));
    graph_edges_destroy(&e);
}

/*
 * knn_rows_affected(): after a few edges of T change, the rows it leaves alone keep their lists
 * exactly: the kept rows plus the recomputed ones equal a from-scratch kNN of the new graph, on
 * graphs full of equal distances (1/8 grid) and with a tight bound (short rows), while most rows
 * are left alone. (Dropping the neighbours' test, or comparing with < instead of <=, fails it.)
 */
static void test_rows_affected(void)
{
    size_t kept = 0, total = 0;
    for (uint64_t seed = 1; seed <= 40; seed++) {
        graph_t g0, g1;
        rng_t r;
        rng_init(&r, seed * 7919);
        random_graph(seed + 100, 400, 6, &g0);
        perturb(&g0, &r, 1 + (uint32_t)(seed % 6), &g1);
        knn_opts_t o;
        knn_opts_default(&o);
        o.k = seed % 3 == 0 ? 4 : 10;
        o.max_distance = seed % 4 == 0 ? 0.5 : 0;
        knn_t before, want;
        E(knn_build(&g0, &o, &before));
        o.max_distance = before.max_distance;
        E(knn_build(&g1, &o, &want));
        uint32_t *ident = malloc(g0.n * sizeof(uint32_t)), *rows = malloc(g0.n * sizeof(uint32_t));
        double *change = malloc(g0.n * sizeof(double));
        uint8_t *need = calloc(g0.n, 1);
        for (uint32_t i = 0; i < g0.n; i++)
            ident[i] = i;
        for (uint32_t i = 0; i < g0.n; i++)
            change[i] = graph_row_change_min(&g0, i, ident, &g1, i);
        size_t n_need = knn_rows_affected(&before, change, need), n_rows = 0;
        for (uint32_t i = 0; i < g0.n; i++)
            if (need[i])
                rows[n_rows++] = i;
        CHECK_EQ(n_rows, n_need);
        size_t changed;
        E(knn_update_rows(&g1, &o, rows, n_rows, &before, &changed));
        for (uint32_t i = 0; i < g0.n; i++) {
            CHECK_EQ(before.count[i], want.count[i]);
            CHECK(memcmp(before.nbr + (size_t)i * o.k, want.nbr + (size_t)i * o.k,
                         o.k * sizeof(uint32_t)) == 0);
        }
        kept += g0.n - n_rows, total += g0.n;
        free(ident), free(rows), free(change), free(need);
        knn_destroy(&before), knn_destroy(&want);
        graph_destroy(&g0), graph_destroy(&g1);
    }
    fprintf(stderr, "rows_affected: %zu of %zu rows kept\n", kept, total);
    CHECK(kept > total / 2);
}

typedef struct oom_knn {
    const graph_t *g;
    knn_opts_t o;
} oom_knn_t;

static int oom_knn_run(void *ud)
{
    oom_knn_t *c = ud;
    knn_t r;
    int rc = knn_build(c->g, &c->o, &r);
    if (rc == 0)
        knn_destroy(&r);
    return rc;
}

/* Every allocation failure of knn_build with the automatic bound is an error (issue 10.15:
 * knn_auto_max_distance returned the bound 0 on a failed malloc, and every row came out empty
 * with knn_build returning 0). */
static void test_oom(void)
{
    graph_t g;
    random_graph(7, 200, 5, &g);
    oom_knn_t c = {.g = &g};
    knn_opts_default(&c.o);
    c.o.k = 10;
    c.o.max_distance = 0; /* automatic: the 75th percentile of the edge distances, times 3 */
    c.o.n_threads = 2;
    CHECK(fault_each(oom_knn_run, &c, "knn_build (automatic bound)") > 3);
    graph_destroy(&g);
}

typedef struct oom_graph {
    uint32_t n;
    graph_edges_t e;
} oom_graph_t;

/* A failed graph_build leaves T empty (its out-parameter is written only on success): the
 * copy of T's rows on two threads failed after T's arrays were allocated and returned the
 * error with them still in T, which a caller that frees T only on success leaked. */
static int oom_graph_run(void *ud)
{
    const oom_graph_t *c = ud;
    graph_t t;
    memset(&t, 0, sizeof(t));
    int rc = graph_build(c->n, &c->e, &t);
    if (rc == 0)
        graph_destroy(&t);
    else
        CHECK(!t.row_ptr && !t.col && !t.dist);
    return rc;
}

static void test_graph_build_oom(void)
{
    oom_graph_t c = {.n = 300};
    rng_t r;
    rng_init(&r, 11);
    graph_edges_init(&c.e);
    for (uint32_t k = 0; k < 2000; k++) {
        uint32_t i = (uint32_t)rng_below(&r, c.n), j = (uint32_t)rng_below(&r, c.n);
        if (i != j)
            E(graph_edges_add(&c.e, i, j, (float)(1 + rng_below(&r, 12)) / 8.0f));
    }
    CHECK(fault_each(oom_graph_run, &c, "graph_build") > 5);
    graph_edges_destroy(&c.e);
}

/* graph_build: both directions, duplicates keep the smallest distance whichever comes first,
 * no self loops, rows by (distance, column). */
static void test_graph_build_rows(void)
{
    graph_edges_t e;
    graph_edges_init(&e);
    E(graph_edges_add(&e, 0, 3, 2.0f));
    E(graph_edges_add(&e, 3, 0, 1.5f));
    E(graph_edges_add(&e, 0, 3, 3.0f));
    E(graph_edges_add(&e, 0, 2, 1.5f));
    E(graph_edges_add(&e, 2, 0, 1.5f));
    E(graph_edges_add(&e, 1, 1, 1.0f));
    E(graph_edges_add(&e, 1, 0, 0.5f));
    E(graph_edges_add(&e, 0, 1, 0.75f));
    graph_t g;
    E(graph_build(4, &e, &g));
    const uint64_t ptr[] = {0, 3, 4, 5, 6};
    const uint32_t col[] = {1, 2, 3, 0, 0, 0};
    const float dist[] = {0.5f, 1.5f, 1.5f, 0.5f, 1.5f, 1.5f};
    for (int i = 0; i <= 4; i++)
        CHECK_EQ(g.row_ptr[i], ptr[i]);
    for (int k = 0; k < 6; k++) {
        CHECK_EQ(g.col[k], col[k]);
        CHECK(g.dist[k] == dist[k]);
    }
    graph_destroy(&g);
    graph_edges_destroy(&e);

    /* long rows (past the insertion sort) against a dense reference: minimum per pair, rows
     * strictly increasing by (distance, column) */
    enum { N = 120 };

    static float ref[N][N];
    rng_t r;
    rng_init(&r, 77);
    graph_edges_init(&e);
    for (int k = 0; k < 6000; k++) {
        uint32_t i = (uint32_t)rng_below(&r, N), j = (uint32_t)rng_below(&r, N);
        float d = (float)(1 + rng_below(&r, 50)) / 16.0f; /* many equal distances */
        E(graph_edges_add(&e, i, j, d));
        if (i != j && (ref[i][j] == 0 || d < ref[i][j]))
            ref[i][j] = ref[j][i] = d;
    }
    E(graph_build(N, &e, &g));
    for (uint32_t i = 0; i < N; i++) {
        uint32_t want = 0;
        for (uint32_t j = 0; j < N; j++)
            want += ref[i][j] > 0;
        CHECK_EQ(g.row_ptr[i + 1] - g.row_ptr[i], want);
        CHECK(want > 32);
        for (uint64_t k = g.row_ptr[i]; k < g.row_ptr[i + 1]; k++) {
            CHECK(g.dist[k] == ref[i][g.col[k]]);
            CHECK(k == g.row_ptr[i] || g.dist[k - 1] < g.dist[k] ||
                  (g.dist[k - 1] == g.dist[k] && g.col[k - 1] < g.col[k]));
        }
    }
    graph_destroy(&g);
    graph_edges_destroy(&e);
}

/* @p a and @p b hold the same bits (then both are destroyed) */
static void check_same_graph(graph_t *a, graph_t *b)
{
    CHECK_EQ(a->n, b->n);
    for (uint32_t i = 0; i <= a->n; i++)
        CHECK_EQ(a->row_ptr[i], b->row_ptr[i]);
    for (uint64_t k = 0; k < a->row_ptr[a->n]; k++) {
        CHECK_EQ(a->col[k], b->col[k]);
        CHECK(a->dist[k] == b->dist[k]);
    }
    graph_destroy(a);
    graph_destroy(b);
}

/* graph_build_rows on rows (self loops, duplicates, equal distances, empty rows) gives the bits
 * of graph_build on the same edges listed row by row; an invalid entry is -EINVAL either way */
static void test_graph_build_from_rows(void)
{
    enum { N = 150, MAXC = 90 };

    static uint32_t colv[N][MAXC], cnt[N];
    static float distv[N][MAXC];
    uint32_t *col[N];
    float *dist[N];
    rng_t r;
    rng_init(&r, 91);
    graph_edges_t e;
    graph_edges_init(&e);
    for (uint32_t i = 0; i < N; i++) {
        cnt[i] = i % 17 == 0 ? 0 : (uint32_t)rng_below(&r, MAXC);
        col[i] = colv[i], dist[i] = distv[i];
        for (uint32_t q = 0; q < cnt[i]; q++) {
            colv[i][q] = (uint32_t)rng_below(&r, N);
            distv[i][q] = (float)(1 + rng_below(&r, 40)) / 8.0f;
            E(graph_edges_add(&e, i, colv[i][q], distv[i][q]));
        }
    }
    graph_t a, b;
    E(graph_build(N, &e, &a));
    E(graph_build_rows(N, cnt, col, dist, &b));
    CHECK(a.row_ptr[N] > 5000);
    check_same_graph(&a, &b);
    graph_edges_destroy(&e);
    float bad[] = {0.0f, NAN, -1.0f};
    for (int t = 0; t < 4; t++) { /* a column past n, a zero, NaN or negative distance */
        uint32_t c0 = colv[1][0];
        float d0 = distv[1][0];
        if (t == 3)
            colv[1][0] = N;
        else
            distv[1][0] = bad[t];
        CHECK_EQ(graph_build_rows(N, cnt, col, dist, &a), -EINVAL);
        colv[1][0] = c0, distv[1][0] = d0;
    }
}

/* Two pruners fed the rows of a random S in a shuffled order and split give, together, the
 * bits of graph_build on the rows pruned one by one in order; a row fed twice or past n is
 * -EINVAL. */
static void test_pruners(void)
{
    enum { N = 200, MAXC = 120, TOP = 25 };

    static uint32_t cols[N][MAXC], out_col[MAXC], order[N];
    static double s[N][MAXC];
    static float out_dist[MAXC];
    static graph_prune_slot_t scratch[MAXC];
    size_t len[N];
    rng_t r;
    rng_init(&r, 123);
    graph_edges_t e;
    graph_edges_init(&e);
    for (uint32_t i = 0; i < N; i++) {
        len[i] = (size_t)rng_below(&r, MAXC);
        for (size_t q = 0; q < len[i]; q++)
            cols[i][q] = (uint32_t)rng_below(&r, N), s[i][q] = (double)rng_below(&r, 30) / 4;
        size_t k = graph_prune_row(cols[i], s[i], len[i], TOP, 2.0, out_col, out_dist, scratch);
        for (size_t q = 0; q < k; q++)
            E(graph_edges_add(&e, i, out_col[q], out_dist[q]));
        order[i] = i;
    }
    for (uint32_t i = N - 1; i > 0; i--) { /* Fisher-Yates */
        uint32_t j = (uint32_t)rng_below(&r, i + 1), t = order[i];
        order[i] = order[j], order[j] = t;
    }
    graph_pruner_t p[2];
    graph_pruner_t *both[2] = {&p[0], &p[1]};
    E(graph_pruner_init(&p[0], TOP, 2.0));
    E(graph_pruner_init(&p[1], TOP, 2.0));
    for (uint32_t q = 0; q < N; q++) {
        uint32_t i = order[q];
        E(graph_pruner_row(&p[q % 3 == 0], i, cols[i], s[i], len[i]));
    }
    graph_t a, b;
    E(graph_build(N, &e, &a));
    E(graph_pruners_finish(both, 2, N, &b));
    CHECK(a.row_ptr[N] > 2000);
    check_same_graph(&a, &b);
    CHECK_EQ(graph_pruners_finish(both, 2, N - 1, &a), -EINVAL); /* row N - 1 past n */
    E(graph_pruner_row(&p[0], order[0], cols[order[0]], s[order[0]], len[order[0]]));
    CHECK_EQ(graph_pruners_finish(both, 2, N, &a), -EINVAL); /* a row twice */
    graph_pruner_destroy(&p[0]);
    graph_pruner_destroy(&p[1]);
    graph_edges_destroy(&e);
}

/* graph_prune_row against a full sort: random rows with many equal S (ties go to the lower
 * column), sorted and reversed input, every keep from 0 to past the candidates. */
static int by_prune_order(const void *x, const void *y)
{
    const double *a = x, *b = y; /* (s, col) pairs */
    if (a[0] != b[0])
        return a[0] > b[0] ? -1 : 1;
    return (a[1] > b[1]) - (a[1] < b[1]);
}

static void test_prune_random(void)
{
    enum { MAXN = 3000 };

    static uint32_t cols[MAXN], out_col[MAXN];
    static double s[MAXN], ref[MAXN][2];
    static float out_d[MAXN];
    static graph_prune_slot_t scratch[MAXN];
    static uint8_t want[1 << 20];
    rng_t r;
    rng_init(&r, 5);
    for (int round = 0; round < 300; round++) {
        size_t n = 1 + (size_t)rng_below(&r, MAXN);
        for (size_t i = 0; i < n; i++) {
            cols[i] = (uint32_t)(i * 1031 % (1u << 20)); /* distinct */
            s[i] = round % 3 == 0 ? 1.5 + (double)rng_below(&r, 8) / 2 : 1 + rng_uniform(&r) * 50;
            if (round % 5 == 1)
                s[i] = 3 + (double)i; /* ascending */
            if (round % 5 == 2)
                s[i] = 3 + (double)(n - i); /* descending */
        }
        size_t m = 0;
        for (size_t i = 0; i < n; i++)
            if (s[i] > 2.0)
                ref[m][0] = s[i], ref[m][1] = cols[i], m++;
        qsort(ref, m, sizeof(ref[0]), by_prune_order);
        size_t keep = (size_t)rng_below(&r, m + 20);
        size_t k = graph_prune_row(cols, s, n, keep, 2.0, out_col, out_d, scratch);
        CHECK_EQ(k, keep < m ? keep : m);
        for (size_t i = 0; i < k; i++)
            want[(uint32_t)ref[i][1]] = 1;
        for (size_t i = 0; i < k; i++) {
            CHECK(want[out_col[i]]);
            want[out_col[i]] = 0; /* each once */
        }
    }
}

/*
 * A refresh writes each new T into the buffers of the T before last (two buffers, swapped),
 * and at full scale T grows by about a thousand entries a refresh. Buffers sized exactly were
 * too small every other time: reallocated (and faulted in again, ~0.23 s). Now a buffer that
 * has to grow (and graph_build's) gets headroom: here T grows by 2 entries a round, and from
 * the second round on no update allocates T's arrays (three allocations fewer than round 1's
 * into an empty buffer; each buffer's arrays where they were); with exact sizes every round
 * reallocated two of them.
 */
static void test_buffer_headroom(void)
{
    enum { N = 2000, ROUNDS = 6 };

    static uint32_t ident[N];
    static uint8_t aff[N];
    graph_edges_t e, d;
    graph_edges_init(&e);
    rng_t r;
    rng_init(&r, 77);
    for (uint32_t i = 0; i < N; i++) {
        ident[i] = i;
        E(graph_edges_add(&e, i, (i + 1) % N, 1 + (float)rng_uniform(&r)));
        E(graph_edges_add(&e, i, (uint32_t)rng_below(&r, N), 1 + (float)rng_uniform(&r)));
    }
    graph_t buf[2] = {{0}, {0}};
    E(graph_build(N, &e, &buf[0]));
    long counts[ROUNDS + 1];
    uint32_t *cols[2] = {buf[0].col, NULL};
    for (int round = 1; round <= ROUNDS; round++) {
        graph_t *old = &buf[(round + 1) % 2], *out = &buf[round % 2];
        graph_edges_init(&d);
        memset(aff, 0, sizeof(aff));
        for (int q = 0; q < 2; q++) { /* a new edge between two far rows: T grows by 2 */
            uint32_t a = (uint32_t)(round * 97 + q * 1000) % N, b = (a + N / 2 + 3) % N;
            E(graph_edges_add(&d, a, b, 0.5f));
            aff[a] = aff[b] = 1;
        }
        uint64_t before = old->row_ptr[N];
        fault_arm(1L << 40); /* count only */
        E(graph_update_delta(old, ident, ident, N, aff, &d, out));
        counts[round] = fault_count();
        fault_disarm();
        CHECK(out->row_ptr[N] == before + 4); /* both directions of 2 new edges */
        if (round >= 2) { /* round 1 allocated the empty buffer's three arrays */
            CHECK_EQ(counts[round], counts[1] - 3);
            CHECK(out->col == cols[round % 2]);
        }
        cols[round % 2] = out->col;
        graph_edges_destroy(&d);
    }
    graph_destroy(&buf[0]), graph_destroy(&buf[1]);
    graph_edges_destroy(&e);
}

int main(void)
{
    test_buffer_headroom();
    test_graph_build_rows();
    test_graph_build_from_rows();
    test_pruners();
    test_oom();
    test_graph_build_oom();
    test_graph_update();
    test_rows_affected();
    for (uint64_t seed = 1; seed <= 4; seed++) {
        graph_t g;
        random_graph(seed, 300 + 50 * (uint32_t)seed, 3 + (uint32_t)seed * 2, &g);
        knn_opts_t o;
        knn_opts_default(&o);
        o.k = seed == 4 ? 25 : 10;
        o.n_threads = (unsigned)(1 + seed % 2);
        if (seed == 3)
            o.max_distance = 0.6; /* tight bound: many short rows */
        knn_t r;
        E(knn_build(&g, &o, &r));
        check_against_brute(&g, &r);
        if (seed == 3)
            CHECK(knn_short_rows(&r) > 0);

        /* same result with another thread count */
        knn_t r2;
        o.n_threads = 3;
        E(knn_build(&g, &o, &r2));
        CHECK(memcmp(r.nbr, r2.nbr, (size_t)g.n * o.k * sizeof(uint32_t)) == 0);

        /* incremental: scramble some rows, recompute them, back to the exact result */
        uint32_t rows[] = {0, 5, 17, 42};
        for (size_t i = 0; i < 4; i++)
            r2.nbr[(size_t)rows[i] * o.k] = KNN_NONE - 1;
        size_t changed;
        E(knn_update_rows(&g, &o, rows, 4, &r2, &changed));
        CHECK_EQ(changed, 4);
        CHECK(memcmp(r.nbr, r2.nbr, (size_t)g.n * o.k * sizeof(uint32_t)) == 0);
        E(knn_update_rows(&g, &o, rows, 4, &r2, &changed));
        CHECK_EQ(changed, 0);

        /* edges: i < j, weight 2 exactly when mutual */
        graph_edges_t e;
        E(knn_edges(&r, &e));
        for (size_t x = 0; x < e.m; x++) {
            CHECK(e.i[x] < e.j[x]);
            int ij = 0, ji = 0;
            for (uint32_t y = 0; y < r.count[e.i[x]]; y++)
                ij |= r.nbr[(size_t)e.i[x] * o.k + y] == e.j[x];
            for (uint32_t y = 0; y < r.count[e.j[x]]; y++)
                ji |= r.nbr[(size_t)e.j[x] * o.k + y] == e.i[x];
            CHECK(ij || ji);
            CHECK_EQ((int)e.w[x], ij + ji);
        }
        graph_edges_destroy(&e);
        knn_destroy(&r);
        knn_destroy(&r2);
        graph_destroy(&g);
    }

    /* 75th percentile with interpolation: distances 1..8 -> q = 6.25, bound 18.75 */
    graph_edges_t e;
    graph_edges_init(&e);
    for (uint32_t i = 0; i < 8; i++)
        E(graph_edges_add(&e, i, i + 1, (float)(i + 1)));
    graph_t g;
    E(graph_build(9, &e, &g));
    double md;
    E(knn_auto_max_distance(&g, &md));
    CHECK_NEAR(md, 18.75, 1e-9);
    graph_destroy(&g);
    graph_edges_destroy(&e);

    /* the selection-based quantile equals the sorted one, with many ties and odd sizes */
    for (uint32_t trial = 0; trial < 40; trial++) {
        rng_t rr;
        rng_init(&rr, 100 + trial);
        uint32_t n = 2 + trial * 7;
        graph_edges_init(&e);
        for (uint32_t i = 0; i + 1 < n; i++)
            for (uint32_t j = i + 1; j < n && j < i + 4; j++)
                E(graph_edges_add(&e, i, j, (float)(1 + rng_below(&rr, trial % 3 ? 5 : 1000))));
        E(graph_build(n, &e, &g));
        size_t m = graph_n_edges(&g), w = 0;
        float *d = malloc(m * sizeof(*d));
        for (uint32_t i = 0; i < g.n; i++)
            for (uint64_t x = g.row_ptr[i]; x < g.row_ptr[i + 1]; x++)
                if (g.col[x] > i)
                    d[w++] = g.dist[x];
        for (size_t a = 1; a < w; a++) /* insertion sort: the reference */
            for (size_t b = a; b > 0 && d[b] < d[b - 1]; b--) {
                float t = d[b];
                d[b] = d[b - 1], d[b - 1] = t;
            }
        double pos = 0.75 * (double)(w - 1), frac = pos - (double)(size_t)pos;
        size_t lo = (size_t)pos;
        double q = lo + 1 < w ? d[lo] + frac * (d[lo + 1] - d[lo]) : d[lo];
        double md;
        E(knn_auto_max_distance(&g, &md));
        CHECK_NEAR(md, 3 * q, 1e-9);
        free(d);
        graph_destroy(&g);
        graph_edges_destroy(&e);
    }

    /* pruning: top `keep` by S (ties by column), only S > 2, distance 1/ln S */
    uint32_t cols[] = {9, 3, 7, 1, 5}, out_col[5];
    graph_prune_slot_t scratch[5];
    double s[] = {5.0, 2.0, 10.0, 5.0, 2.5};
    float out_d[5];
    size_t k = graph_prune_row(cols, s, 5, 3, 2.0, out_col, out_d, scratch);
    CHECK_EQ(k, 3);
    int seen10 = 0, seen1 = 0, seen9 = 0;
    for (size_t i = 0; i < k; i++) {
        seen10 |= out_col[i] == 7;
        seen1 |= out_col[i] == 1;
        seen9 |= out_col[i] == 9;
        if (out_col[i] == 7)
            CHECK_NEAR(out_d[i], 1 / log(10.0), 1e-6);
    }
    CHECK(seen10 && seen1 && seen9);
    CHECK_EQ(graph_prune_row(cols, s, 5, 10, 2.0, out_col, out_d, scratch), 4); /* 2.0 dropped */
    test_prune_random();
    return 0;
}
