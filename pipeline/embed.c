/*
 * embed.c: T -> kNN -> MDE (-> 2-D layout) on any graph (see embed.h). The stages call algo/ in
 * exactly the order `atlasctl embed` always has, so a seeded run gives the same bytes; the MDE
 * stage is the one the refresh runs too (embed_mde()).
 */
#include "pipeline/embed.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "algo/layout.h"
#include "algo/par.h"
#include "pipeline/clock.h"

static int graph_from_distances(const embed_edges_t *e, const uint32_t *rank, uint32_t n,
                                graph_t *t)
{
    graph_edges_t ge;
    int rc = 0;
    graph_edges_init(&ge);
    for (size_t x = 0; x < e->m && rc == 0; x++)
        if (e->v[x] > 0 && graph_edges_add(&ge, rank[e->i[x]], rank[e->j[x]], (float)e->v[x]))
            rc = -ENOMEM;
    if (rc == 0)
        rc = graph_build(n, &ge, t);
    graph_edges_destroy(&ge);
    return rc;
}

/* Rows [row0, row1) of the CSR of S through one pruner. */
typedef struct prune_half {
    const uint64_t *ptr;
    const uint32_t *cols;
    const double *s;
    uint32_t row0, row1;
    graph_pruner_t p;
} prune_half_t;

static int prune_half_cb(void *ud, unsigned tid, size_t begin, size_t end)
{
    (void)tid;
    prune_half_t *h = ud;
    int rc = 0;
    for (size_t q = begin; q < end && rc == 0; q++)
        for (uint32_t i = h[q].row0; i < h[q].row1 && rc == 0; i++)
            rc = graph_pruner_row(&h[q].p, i, h[q].cols + h[q].ptr[i], h[q].s + h[q].ptr[i],
                                  h[q].ptr[i + 1] - h[q].ptr[i]);
    return rc;
}

/* The symmetric CSR of S by rank, from the edge list's two halves at once (par_scatter_rows:
 * every row holds its entries in the order of one pass over the list) */
typedef struct csr_src {
    const embed_edges_t *e;
    const uint32_t *rank;
    uint32_t *cols; /* the halves write disjoint slots */
    double *s;
} csr_src_t;

static int csr_half_cb(void *ud, unsigned part, int fill, uint64_t *at)
{
    const csr_src_t *c = ud;
    size_t x0 = part ? c->e->m / 2 : 0, x1 = part ? c->e->m : c->e->m / 2;
    for (size_t x = x0; x < x1; x++) {
        uint32_t i = c->rank[c->e->i[x]], j = c->rank[c->e->j[x]];
        if (!fill) {
            at[i]++, at[j]++;
            continue;
        }
        double v = c->e->v[x];
        c->cols[at[i]] = j, c->s[at[i]++] = v;
        c->cols[at[j]] = i, c->s[at[j]++] = v;
    }
    return 0;
}

/*
 * Symmetric CSR of S by rank, then the rows pruned into T: the rows in two halves of about equal
 * entries (on two threads unless @p threads is 1), the second half's kept edges appended after the
 * first's (the order of one pass: graph_build's input, so T, is the same).
 */
int embed_graph_from_edges(const embed_edges_t *e, const uint32_t *rank, uint32_t n, uint32_t top,
                           int no_prune, unsigned threads, graph_t *t)
{
    if (no_prune)
        return graph_from_distances(e, rank, n, t);
    threads = threads > 1 ? 2 : 1;
    uint64_t *ptr = calloc((size_t)n + 1, sizeof(*ptr));
    uint32_t *cols = malloc((2 * e->m + 1) * sizeof(*cols));
    double *s = malloc((2 * e->m + 1) * sizeof(*s));
    prune_half_t h[2];
    memset(h, 0, sizeof(h));
    int rc = ptr && cols && s ? 0 : -ENOMEM;
    csr_src_t c = {e, rank, cols, s};
    if (rc == 0)
        rc = par_scatter_rows(n, 2, threads, csr_half_cb, NULL, &c, ptr);
    if (rc != 0)
        goto out;
    uint32_t mid = 0;
    while (mid < n && ptr[mid] < ptr[n] / 2)
        mid++;
    for (int q = 0; q < 2; q++) {
        h[q].ptr = ptr, h[q].cols = cols, h[q].s = s;
        h[q].row0 = q ? mid : 0, h[q].row1 = q ? n : mid;
        if (rc == 0)
            rc = graph_pruner_init(&h[q].p, top, GRAPH_MIN_S_DEFAULT);
    }
    if (rc == 0)
        rc = par_for(2, 1, threads, prune_half_cb, h);
    graph_pruner_t *both[2] = {&h[0].p, &h[1].p};
    if (rc == 0)
        rc = graph_pruners_finish(both, 2, n, t);
out:
    graph_pruner_destroy(&h[0].p);
    graph_pruner_destroy(&h[1].p);
    free(ptr);
    free(cols);
    free(s);
    return rc;
}

static int prune_row_cb(void *ud, unsigned tid, uint32_t row, const uint32_t *cols, const double *s,
                        size_t n)
{
    graph_pruner_t *p = ud;
    return graph_pruner_row(&p[tid], row, cols, s, n);
}

int embed_graph_from_store(store_t *s, uint32_t top, unsigned threads, uint64_t **keys, uint32_t *n,
                           graph_t *t)
{
    graph_pruner_t p[2];
    graph_pruner_t *both[2] = {&p[0], &p[1]};
    uint64_t *k = NULL;
    uint32_t nk = 0;
    threads = threads > 1 ? 2 : 1;
    memset(p, 0, sizeof(p)); /* both destroyed below, whichever init failed */
    int rc = graph_pruner_init(&p[0], top, GRAPH_MIN_S_DEFAULT);
    if (rc == 0)
        rc = graph_pruner_init(&p[1], top, GRAPH_MIN_S_DEFAULT);
    if (rc == 0 &&
        (rc = store_retained_rows_par(s, NULL, 0, GRAPH_MIN_S_DEFAULT, threads, NULL, prune_row_cb,
                                      p, &k, &nk)) == 0 &&
        nk < 2)
        rc = ATL_ENOTFOUND;
    if (rc == 0)
        rc = graph_pruners_finish(both, 2, nk, t);
    graph_pruner_destroy(&p[0]);
    graph_pruner_destroy(&p[1]);
    if (rc != 0) {
        free(k);
        return rc;
    }
    *keys = k;
    *n = nk;
    return 0;
}

int embed_mde(const knn_t *knn, const uint64_t *keys, const mde_opts_t *mo, int warm,
              const uint8_t *placed, double warm_ftol, double *x, mde_result_t *res)
{
    graph_edges_t ke;
    mde_t m = {0};
    int rc;
    graph_edges_init(&ke);
    if ((rc = knn_edges(knn, &ke)) == 0 && (rc = mde_init(&m, mo, knn->n, &ke, keys)) == 0) {
        if (warm) {
            rc = mde_coords_warm(&m, x, placed); /* -ENOMEM reaches the caller (10.15) */
            if (warm_ftol > 0)
                m.o.ftol = warm_ftol;
        } else {
            mde_coords_random(&m, x);
        }
        if (rc == 0)
            rc = mde_run(&m, x, res);
    }
    mde_destroy(&m);
    graph_edges_destroy(&ke);
    return rc;
}

void embed_opts_default(embed_opts_t *o)
{
    memset(o, 0, sizeof(*o));
    o->k = 10;
    o->n_threads = 2;
    mde_opts_default(&o->mde);
}

int embed_run(const graph_t *t, const uint64_t *keys, const embed_opts_t *o, embed_result_t *r)
{
    knn_opts_t ko;
    mde_opts_t mo = o->mde;
    uint32_t n = t->n, dim = mo.dim;
    double t0 = pipeline_now();
    int rc;
    memset(r, 0, sizeof(*r));
    graph_edges_init(&r->knn_edges);
    knn_opts_default(&ko);
    ko.k = o->k;
    ko.n_threads = o->n_threads;
    ko.progress = o->progress, ko.progress_ud = o->progress_ud;
    if ((rc = knn_build(t, &ko, &r->knn)) != 0 || (rc = knn_edges(&r->knn, &r->knn_edges)) != 0)
        return rc;
    r->t_knn = pipeline_now() - t0;
    if (!(r->x = calloc((size_t)n * dim + 1, sizeof(*r->x))))
        return -ENOMEM;
    if (o->init)
        memcpy(r->x, o->init, (size_t)n * dim * sizeof(*r->x));
    mo.n_threads = o->n_threads;
    mo.progress = o->progress, mo.progress_ud = o->progress_ud;
    t0 = pipeline_now();
    rc = embed_mde(&r->knn, keys, &mo, o->init != NULL, o->placed, 0, r->x, &r->mde);
    r->t_mde = pipeline_now() - t0;
    return rc;
}

void embed_result_destroy(embed_result_t *r)
{
    knn_destroy(&r->knn);
    graph_edges_destroy(&r->knn_edges);
    free(r->x);
    memset(r, 0, sizeof(*r));
}

int embed_layout(const double *x, uint32_t n, uint32_t dim, uint64_t seed, uint32_t epochs,
                 unsigned n_threads, atl_progress_cb progress, void *progress_ud, double *y)
{
    layout_opts_t lo;
    layout_opts_default(&lo);
    lo.seed = seed;
    lo.n_epochs = epochs;
    lo.n_threads = n_threads;
    lo.progress = progress;
    lo.progress_ud = progress_ud;
    return layout_umap(x, n, dim, &lo, y, NULL, NULL);
}
