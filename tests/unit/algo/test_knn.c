/*
 * kNN: exact equality with a brute-force all-pairs Dijkstra (no early stop, no bound) followed
 * by a sort on (distance, index), on random graphs with many ties (distances on a 1/8 grid, so
 * path sums are exact in floating point); incremental row updates; edge weights; pruning.
 */
#include <math.h>

#include "algo/graph.h"
#include "algo/knn.h"
#include "algo/rng.h"
#include "tests/check.h"

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

int main(void)
{
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
    CHECK_NEAR(knn_auto_max_distance(&g), 18.75, 1e-9);
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
        CHECK_NEAR(knn_auto_max_distance(&g), 3 * q, 1e-9);
        free(d);
        graph_destroy(&g);
        graph_edges_destroy(&e);
    }

    /* pruning: top `keep` by S (ties by column), only S > 2, distance 1/ln S */
    uint32_t cols[] = {9, 3, 7, 1, 5}, out_col[5], scratch[5];
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
    return 0;
}
