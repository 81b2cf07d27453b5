/*
 * layout.h: the 2-D map (DESIGN §5): UMAP of the 3-D MDE coordinates, warm-startable, then
 * aligned onto the previous snapshot (framing for the frontend's view: algo/frame.h).
 *
 * UMAP as umap-learn 0.5 fit_transform (McInnes, Healy, Melville 2018; shared/reference/
 * UMAP_SPEC.md): exact kNN (k-d tree; k includes the point itself), smooth kNN distances by
 * binary search, fuzzy union, a/b fitted to min_dist, edges pruned below max/N, SGD with 5
 * negative samples per positive; the SGD runs on n_threads with the edges partitioned by head
 * (see layout.c), so that a seed and a thread count reproduce a run bit for bit. Cold start
 * from PCA of the input (allowed by DESIGN; umap-learn's default is spectral). Warm start
 * (UMAP_SPEC §9 "fresh clock"): previous positions as they are, new points at the weighted mean
 * of their placed neighbours, warm_epochs epochs from warm_alpha.
 */
#ifndef ATL_LAYOUT_H
#define ATL_LAYOUT_H

#include <stdint.h>

#include "algo/atl.h"

typedef struct layout_opts {
    uint32_t n_neighbors;          /* k including the point itself (default 150) */
    double min_dist;               /* default 0.25 */
    double spread;                 /* default 1 */
    uint32_t n_epochs;             /* cold; 0 = 500 if n <= 10000 else 200 */
    uint32_t warm_epochs;          /* default 40 */
    double warm_alpha;             /* initial learning rate of a warm run (default 0.05) */
    uint32_t negative_sample_rate; /* default 5 (1..10000) */
    uint64_t seed;
    unsigned n_threads; /* SGD threads (default 2): the result is identical for a given count */
    /* warm runs only: if set, only points with movable[i] move; the others keep their place
     * (their edges still pull and push the movable ones). NULL: every point moves. */
    const uint8_t *movable;
    /* testing aid: a partial layout computes every point's k nearest as a full one does, not
     * only the rows it reads (the result is the same, bit for bit) */
    int knn_every_row;
    atl_progress_cb progress; /* stage "layout" */
    void *progress_ud;
} layout_opts_t;

typedef struct layout_result {
    double a, b;
    uint64_t edges; /* directed edges optimised */
    uint32_t epochs;
    uint64_t samples, negatives; /* positive samples (edge visits) and negative samples drawn */
} layout_result_t;

void layout_opts_default(layout_opts_t *o);

/**
 * Fit a, b of 1/(1 + a x^(2b)) to the UMAP target curve for min_dist/spread (least squares on
 * 300 points of [0, 3 spread], Gauss-Newton). min_dist 0.25 gives a = 1.1214, b = 1.0575.
 * @return 0 or -EINVAL.
 */
int layout_fit_ab(double min_dist, double spread, double *a, double *b);

/**
 * Lay out @p n points of dimension @p dim (row-major @p x) in 2-D into @p y (n x 2).
 * @param[in] placed  NULL for a cold run; else rows with placed[i] != 0 start at y[i] (warm).
 * @return 0, -EINVAL (n < 2, bad options, non-finite input), -ENOMEM, ATL_ECANCELED.
 * Deterministic for a seed and o->n_threads.
 */
int layout_umap(const double *x, uint32_t n, uint32_t dim, const layout_opts_t *o, double *y,
                const uint8_t *placed, layout_result_t *res);

/*
 * Internal (layout.c's SGD, and its tests): the schedule of an edge of period @p eps >= 1
 * epochs (UMAP_SPEC §6). Its k-th sample (k >= 1) falls in epoch ceil(k eps) (k eps is exact in
 * double for a float eps and k < 2^29), and draws floor(e r / eps) - floor(p r / eps)
 * negatives, e its epoch, p the previous sample's, r = @p neg_rate (the first sample:
 * floor(e r / eps) - 1): umap-learn's clock arithmetic (next += eps, next_neg += m eps / r)
 * without the rounding its sums accumulate.
 */
uint32_t layout__sample_epoch(float eps, uint32_t k);
uint32_t layout__sample_negatives(float eps, uint32_t k, uint32_t neg_rate);

/* Internal (tests): the points' order of layout_umap's k-d tree (leaves of <= 16 points left
 * to right; each node split at the median of its widest dimension by (coordinate, index), a
 * leaf's points in that order of its parent's dimension), and its nodes' split coordinates in
 * pre-order (-inf for a leaf), at most 2 n of them (*n_splits). @return 0 or -ENOMEM. */
int layout__kd_order(const double *x, uint32_t n, uint32_t dim, uint32_t *perm, double *splits,
                     uint32_t *n_splits);

/* Internal (tests): UMAP's rho and sigma of a kNN row @p d (k distances ascending, d[0] = 0 the
 * point itself; UMAP_SPEC §2); @return the sums of k exps it took. */
uint32_t layout__smooth_row(const double *d, uint32_t k, double mean_all, double *rho,
                            double *sigma);

/**
 * Rotate/reflect @p y (n x 2) about its centroid, without scaling, to best match @p prev on the
 * rows with mask[i] set (orthogonal Procrustes, 2x2 SVD in closed form), and translate so
 * those rows' centroids coincide. @return 0 or -EINVAL (fewer than 2 shared rows).
 */
int layout_align(double *y, const double *prev, uint32_t n, const uint8_t *mask);

#endif
