/*
 * embed.h: the embedding stages of the pipeline on any graph: T (pruned from S, from a store or
 * from an edge list) -> exact shortest-path kNN -> MDE, and the 2-D layout of the result. The
 * refresh (refresh.h) runs the same MDE stage on the store's incremental T; `atlasctl embed`
 * runs all of them on a file or a store, for side-by-side comparisons with PyMDE.
 *
 * Plain calls: no I/O besides the store, no globals; progress and cancellation through
 * atl_progress_cb. Runs on any thread.
 */
#ifndef ATL_PIPELINE_EMBED_H
#define ATL_PIPELINE_EMBED_H

#include <stddef.h>
#include <stdint.h>

#include "algo/atl.h"
#include "algo/graph.h"
#include "algo/knn.h"
#include "algo/mde.h"
#include "store/store.h"

/** An edge list over node ranks 0..n-1: S values (or T distances), each unordered pair once. */
typedef struct embed_edges {
    const uint32_t *i, *j;
    const double *v;
    size_t m;
} embed_edges_t;

/**
 * T from an edge list: S pruned per row as the daemon prunes it (top @p top per row, S > 2,
 * distance 1/ln S), or with @p no_prune the edges are T's distances themselves. S's rows are
 * gathered and pruned on @p threads threads (1 or 2); T is the same for either.
 * @param[in]  rank node rank of each edge endpoint id (e->i[x], e->j[x] index it).
 * @param[out] t    written on success.
 * @return 0, -EINVAL, -ENOMEM, -EAGAIN (no thread).
 */
int embed_graph_from_edges(const embed_edges_t *e, const uint32_t *rank, uint32_t n, uint32_t top,
                           int no_prune, unsigned threads, graph_t *t);

/**
 * T from a store's retained graph, each row pruned as it streams out of one read snapshot,
 * the rows read and pruned on @p threads threads (1 or 2; T is the same for either).
 * @param[out] keys retained item keys, sorted (malloc'd; the caller frees), and their count.
 * @return 0, ATL_ENOTFOUND (fewer than 2 retained items), or a store error.
 */
int embed_graph_from_store(store_t *s, uint32_t top, unsigned threads, uint64_t **keys, uint32_t *n,
                           graph_t *t);

/**
 * The MDE stage: kNN edges -> MDE from a random start, or warm from @p x where @p placed says
 * (unplaced rows start beside their placed neighbours; mde_coords_warm()).
 * @param[in]     mo        options; with @p warm and @p warm_ftol > 0, ftol becomes warm_ftol.
 * @param[in,out] x         n x mo->dim; the start (placed rows) in, the embedding out.
 * @return 0, -EINVAL, -ENOMEM, ATL_ECANCELED.
 */
int embed_mde(const knn_t *knn, const uint64_t *keys, const mde_opts_t *mo, int warm,
              const uint8_t *placed, double warm_ftol, double *x, mde_result_t *res);

typedef struct embed_opts {
    uint32_t k;               /* neighbours per item (default 10) */
    unsigned n_threads;       /* default 2 */
    mde_opts_t mde;           /* dim, max_iter, seed, ftol, ... */
    const double *init;       /* warm start (n x dim by rank), or NULL: random */
    const uint8_t *placed;    /* with init: rows that have a start */
    atl_progress_cb progress; /* stages knn, mde */
    void *progress_ud;
} embed_opts_t;

void embed_opts_default(embed_opts_t *o);

/** What embed_run() computed; release with embed_result_destroy(). */
typedef struct embed_result {
    knn_t knn;
    graph_edges_t knn_edges;
    double *x; /* n x dim, by rank */
    mde_result_t mde;
    double t_knn, t_mde; /* seconds */
} embed_result_t;

/**
 * kNN and MDE on T (ranks 0..t->n-1, @p keys their stable keys for repulsive sampling).
 * @param[out] r initialised here; release with embed_result_destroy() whatever the return.
 * @return 0, -EINVAL, -ENOMEM, ATL_ECANCELED.
 */
int embed_run(const graph_t *t, const uint64_t *keys, const embed_opts_t *o, embed_result_t *r);

void embed_result_destroy(embed_result_t *r);

/**
 * The 2-D layout of @p x (UMAP, cold, seeded), in UMAP's own coordinates (frame it for the
 * frontend's view with algo/frame.h), on @p n_threads SGD threads (the result is identical for
 * a given count), @p epochs epochs (0: UMAP's 500 up to 10,000 points, else 200).
 * @param[out] y n x 2. @return 0, -EINVAL, -ENOMEM, ATL_ECANCELED.
 */
int embed_layout(const double *x, uint32_t n, uint32_t dim, uint64_t seed, uint32_t epochs,
                 unsigned n_threads, atl_progress_cb progress, void *progress_ud, double *y);

#endif
