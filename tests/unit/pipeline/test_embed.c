/*
 * pipeline/embed tests: the embedding stages on a small planted graph.
 *  - T from an edge list: pruned S has every node, --no-prune keeps the distances given;
 *  - embed_run is deterministic for a seed, and a warm start from its own result converges in
 *    fewer iterations and barely moves the points;
 *  - a progress callback that asks to stop cancels with ATL_ECANCELED;
 *  - refresh_result_json() is one well-formed JSON object, with first_diff escaped.
 */
#include <errno.h>
#include <math.h>

#include <cJSON.h>

#include "pipeline/embed.h"
#include "pipeline/refresh.h"
#include "tests/check.h"

enum { N_GROUPS = 4, PER_GROUP = 15, N = N_GROUPS * PER_GROUP };

/* Strong S inside a group, weak S to the next group: a graph with clear structure. */
static size_t planted_edges(uint32_t *ei, uint32_t *ej, double *ev)
{
    size_t m = 0;
    for (uint32_t i = 0; i < N; i++)
        for (uint32_t j = i + 1; j < N; j++) {
            int same = i / PER_GROUP == j / PER_GROUP;
            int next = (i / PER_GROUP + 1) % N_GROUPS == j / PER_GROUP;
            if (!same && !(next && (i + j) % 7 == 0))
                continue;
            ei[m] = i, ej[m] = j, ev[m] = same ? 40.0 + (double)((i * 31 + j) % 17) : 3.5;
            m++;
        }
    return m;
}

static int stop_at_mde(void *ud, const char *stage, double frac)
{
    (void)ud, (void)frac;
    return strcmp(stage, "mde") == 0;
}

static void test_run(void)
{
    static uint32_t ei[N * N], ej[N * N], rank[N];
    static double ev[N * N];
    uint64_t keys[N];
    size_t m = planted_edges(ei, ej, ev);
    for (uint32_t i = 0; i < N; i++)
        rank[i] = i, keys[i] = 1000 + i;
    embed_edges_t e = {ei, ej, ev, m};
    graph_t t = {0}, tn = {0};
    E(embed_graph_from_edges(&e, rank, N, GRAPH_TOP_DEFAULT, 0, 2, &t));
    CHECK_EQ(t.n, N);
    CHECK(graph_n_edges(&t) > 0);
    /* rows pruned in two halves (on one thread or two): the T of one pruner fed every row in
     * order, entry for entry (a top of 5, so that pruning drops entries in both halves) */
    graph_t t1 = {0}, t2 = {0}, ref = {0};
    E(embed_graph_from_edges(&e, rank, N, 5, 0, 1, &t1));
    E(embed_graph_from_edges(&e, rank, N, 5, 0, 2, &t2));
    graph_pruner_t p;
    E(graph_pruner_init(&p, 5, GRAPH_MIN_S_DEFAULT));
    for (uint32_t i = 0; i < N; i++) {
        static uint32_t cols[N];
        static double sv[N];
        size_t k = 0;
        for (size_t x = 0; x < m; x++)
            if (ei[x] == i || ej[x] == i)
                cols[k] = ei[x] == i ? ej[x] : ei[x], sv[k++] = ev[x];
        E(graph_pruner_row(&p, i, cols, sv, k));
    }
    E(graph_pruner_finish(&p, N, &ref));
    graph_pruner_destroy(&p);
    size_t entries = ref.row_ptr[N];
    CHECK(entries > 0);
    for (int q = 0; q < 2; q++) {
        const graph_t *g = q ? &t2 : &t1;
        CHECK_EQ(g->row_ptr[N], entries);
        CHECK(memcmp(g->row_ptr, ref.row_ptr, (N + 1) * sizeof(*g->row_ptr)) == 0);
        CHECK(memcmp(g->col, ref.col, entries * sizeof(*g->col)) == 0);
        CHECK(memcmp(g->dist, ref.dist, entries * sizeof(*g->dist)) == 0);
    }
    graph_destroy(&t1);
    graph_destroy(&t2);
    graph_destroy(&ref);
    E(embed_graph_from_edges(&e, rank, N, GRAPH_TOP_DEFAULT, 1, 2, &tn));
    CHECK_EQ(tn.n, N);
    graph_destroy(&tn);

    embed_opts_t o;
    embed_opts_default(&o);
    o.mde.max_iter = 300;
    o.mde.seed = 7;
    embed_result_t a, b, w;
    E(embed_run(&t, keys, &o, &a));
    E(embed_run(&t, keys, &o, &b));
    CHECK_EQ(a.knn.n, N);
    CHECK(memcmp(a.x, b.x, (size_t)N * 3 * sizeof(double)) == 0); /* deterministic */
    for (size_t i = 0; i < (size_t)N * 3; i++)
        CHECK(isfinite(a.x[i]));

    uint8_t placed[N];
    memset(placed, 1, sizeof(placed));
    o.init = a.x, o.placed = placed;
    E(embed_run(&t, keys, &o, &w));
    CHECK(w.mde.iterations <= a.mde.iterations);
    CHECK(w.mde.distortion <= a.mde.distortion + 1e-9);

    embed_result_t c;
    o.init = NULL, o.placed = NULL;
    o.progress = stop_at_mde;
    CHECK_EQ(embed_run(&t, keys, &o, &c), ATL_ECANCELED);
    embed_result_destroy(&c);

    double y[2 * N];
    E(embed_layout(a.x, N, 3, 7, 0, 2, NULL, NULL, y));
    for (size_t i = 0; i < 2 * N; i++)
        CHECK(isfinite(y[i]));
    embed_result_destroy(&a);
    embed_result_destroy(&b);
    embed_result_destroy(&w);
    graph_destroy(&t);
}

static void test_result_json(void)
{
    refresh_result_t r;
    memset(&r, 0, sizeof(r));
    snprintf(r.id, sizeof(r.id), "corpus_1700000000");
    r.full = 1, r.items = 218, r.seq = 12, r.events_applied = 43762;
    r.stability_median = r.stability_p95 = -1;
    r.verified = 1, r.verify.s_entries = 5, r.verify.s_diffs = 1;
    snprintf(r.verify.first_diff, sizeof(r.verify.first_diff), "S[\"a\\b\"]\n");
    char buf[REFRESH_JSON_MAX];
    int n = refresh_result_json(&r, 0, buf, sizeof(buf));
    CHECK(n > 0 && (size_t)n == strlen(buf));
    cJSON *o = cJSON_Parse(buf);
    CHECK(o != NULL);
    CHECK_STREQ(cJSON_GetObjectItemCaseSensitive(o, "kind")->valuestring, "rebuild");
    CHECK_STREQ(cJSON_GetObjectItemCaseSensitive(o, "snapshot")->valuestring, r.id);
    CHECK(cJSON_GetObjectItemCaseSensitive(o, "events_applied")->valuedouble == 43762);
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, "verify");
    CHECK_STREQ(cJSON_GetObjectItemCaseSensitive(v, "first_diff")->valuestring,
                r.verify.first_diff);
    CHECK(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(v, "repaired")));
    cJSON_Delete(o);
    /* the manifest's form has no snapshot id yet, and a short buffer is refused */
    CHECK(refresh_result_json(&r, REFRESH_JSON_MANIFEST, buf, sizeof(buf)) > 0);
    CHECK(strstr(buf, "\"snapshot\"") == NULL);
    CHECK_EQ(refresh_result_json(&r, 0, buf, 64), -ENOSPC);
}

int main(void)
{
    test_run();
    test_result_json();
    printf("test_embed: ok\n");
    return 0;
}
