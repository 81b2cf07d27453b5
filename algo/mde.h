/*
 * mde.h: minimum-distortion embedding with PyMDE `preserve_neighbors` semantics (DESIGN §5;
 * Agrawal, Ali, Boyd, "Minimum-Distortion Embedding", 2021, §4.2 and §6).
 *
 * Edges: the kNN edges with weights w in {1, 2}, penalty f(d) = w d (Linear), and as many
 * repulsive pairs as kNN edges (repulsive_fraction 1), penalty f(d) = -log(1 - exp(-d)).
 * Objective: the average distortion F(X) = (1/p) sum_k f_k(||x_i - x_j||) over all p edges.
 * Constraint: Centered (X has column means 0; F is translation invariant, so its gradient is
 * already in the tangent space and projection is re-centring after each step).
 * Solver: L-BFGS (memory 10) with PyTorch's strong-Wolfe line search (c1 1e-4, c2 0.9, 25
 * evaluations), one inner iteration per step as PyMDE runs it; stops at max_iter or when the
 * gradient norm at the start of an iteration is <= eps; memory is reset after a zero step.
 *
 * Repulsive pairs are sampled per item with an RNG stream seeded by (seed, item key), so an
 * unchanged item keeps the same repulsive partners (by position in the key-sorted item list)
 * across refreshes, which keeps a warm start close to its optimum.
 *
 * Usage (SCS style): mde_init(&m, &opts, n, &knn_edges, keys); mde_coords_random(&m, X) or
 * mde_coords_warm(&m, X, placed); mde_run(&m, X, &result); mde_destroy(&m).
 */
#ifndef ATL_MDE_H
#define ATL_MDE_H

#include <stddef.h>
#include <stdint.h>

#include "algo/atl.h"
#include "algo/graph.h"

#define MDE_MAX_DIM 16

typedef struct mde_opts {
    uint32_t dim;              /* embedding dimension (default 3) */
    uint32_t max_iter;         /* default 2000 */
    double eps;                /* gradient-norm tolerance (default 1e-5) */
    double ftol;               /* also stop when F fell by <= ftol * F over the last 10
                                * iterations (0 = off, PyMDE; ~1e-5 for warm refreshes) */
    uint32_t memory;           /* L-BFGS memory (default 10) */
    double repulsive_fraction; /* repulsive pairs per kNN edge (default 1) */
    uint64_t seed;             /* default 42 */
    unsigned n_threads;        /* default 2; results are identical for a given count */
    double *trace;             /* if set, F after each iteration (max_iter entries) */
    atl_progress_cb progress;  /* stage "mde", fraction of max_iter; may cancel */
    void *progress_ud;
    double (*clock)(void); /* if set, a monotonic clock in seconds, safe to call from any thread:
                            * mde_run() times its passes with it (mde_result_t.passes; algo/
                            * reads no clock itself) */
} mde_opts_t;

/*
 * Where mde_run()'s time went (mde_opts_t.clock set; zeros otherwise): seconds summed over the
 * run, and how many times each pass ran. mde_kernel_eval() adds to the evaluation's figures
 * too; the next mde_run() starts them from zero.
 */
typedef struct mde_passes {
    double eval_s;   /* the 3-D single-precision evaluation kernel on the pool's threads */
    double wait_s;   /* of eval_s: the spread of the threads' ends, the earliest thread waiting
                      * for the latest (0 when one thread ran every chunk) */
    double reduce_s; /* the 3-D gradient's reduction from the threads' buffers */
    double exact_s;  /* evaluations in double precision (other dimensions, 3-D after the switch
                      * of mde_t.exact, and the returned distortion), on the calling thread */
    double pair_s;   /* L-BFGS: the new pair (s, y), the gradient's dots with the history and,
                      * in 3-D, the last accepted step of x */
    double dir_s;    /* L-BFGS: forming the direction from the history (and the first trial) */
    uint32_t n_eval, n_reduce, n_exact, n_pair, n_dir;
} mde_passes_t;

typedef struct mde_result {
    uint32_t iterations;
    uint32_t evaluations; /* objective+gradient evaluations */
    double distortion;    /* F at the returned X */
    double grad_norm;     /* at the returned X */
    size_t n_attractive, n_repulsive;
    mde_passes_t passes; /* with mde_opts_t.clock */
} mde_result_t;

typedef struct mde {
    mde_opts_t o;
    uint32_t n;
    size_t m, m_attr; /* all edges; the first m_attr are attractive */
    uint32_t *ei, *ej;
    float *w;              /* > 0 attractive weight, < 0 repulsive */
    size_t nx;             /* n * dim */
    double *buf;           /* workspace, see mde.c */
    void *hist;            /* L-BFGS pairs (s, y), (memory + 1) x 2 x n x dim, float or bfloat16
                            * (see mde.c, hist_bf16) */
    uint32_t *perm, *inv;  /* internal (locality) order of items: perm[new] = old */
    int exact;             /* dim 3: mde_run evaluates in double from here on. Near an optimum
                            * the single-precision F cannot resolve the line search's steps
                            * (x rounded to float moves each distance by ~1e-7 of itself): a
                            * line search that fails or takes many evaluations switches. */
    double *xo;            /* x in internal order during mde_run (and mde_kernel_load) */
    struct par_pool *pool; /* n_threads - 1 workers kept for the evaluations */
    float *xp, *gp;        /* dim 3: x padded to 4 floats a row, and one padded gradient
                            * buffer per thread (NULL for other dimensions) */
    uint32_t *oi, *oj;     /* dim 3: ei and ej as offsets of rows in xp and gp (4 floats a
                            * row), what fastmath__mde_eval3 takes */
    size_t *cut;           /* dim 3: chunk c of an evaluation takes the attractive edges
                            * [cut[c], cut[c + 1]) and the repulsive ones [cut[nc + 1 + c],
                            * cut[nc + 2 + c]), nc = min(n_threads, 64) chunks (see mde.c,
                            * balance_chunks; set by mde_init() for the rep_by_j it chose) */
    int rep_by_j;          /* the 3-D evaluation (only) takes the repulsive edges as (j, i),
                            * see mde.c, repulsive_by_j */
    double xp_t;           /* xp holds x + xp_t d for the iteration's direction d (the direction
                            * pass padded the line search's first trial), else NaN */
    double *vpart;         /* per-chunk sums of the vector passes (see mde.c) */
    size_t *merged;        /* merged attractive edges the double evaluation found (mde.c) */
    double *merged_u;      /* the last least-norm solution for them (mde.c, merged_warm_start) */
    size_t vec_chunk;      /* elements a chunk of the L-BFGS passes (whole rows), see mde.c */
    size_t row_chunk;      /* rows a chunk of the padding and the gradient's reduction */
    double *gram;          /* L-BFGS: dot products among the stored pairs */
    mde_passes_t *passes;  /* mde_opts_t.clock: accumulated during mde_run() */
} mde_t;

void mde_opts_default(mde_opts_t *o);

/**
 * Set up the problem: copies @p knn (edges i != j, weights > 0) and samples repulsive pairs.
 * @param[in] keys  per-item stable keys for repulsive sampling streams (NULL: use indices).
 * @return 0, -EINVAL (dim 0 or > MDE_MAX_DIM, bad edge, 3-D with n > 2^30), -ENOMEM. On error
 * nothing to destroy.
 */
int mde_init(mde_t *m, const mde_opts_t *o, uint32_t n, const graph_edges_t *knn,
             const uint64_t *keys);

/** Seeded standard normal coordinates, centred (the cold start). */
void mde_coords_random(const mde_t *m, double *x);

/**
 * Warm start: rows with placed[i] != 0 keep @p x; others go to the mean of their placed kNN
 * neighbours (propagating through unplaced ones) plus small seeded noise; items with no placed
 * neighbour at all get seeded normal coordinates. Then centre.
 * @return 0, or -ENOMEM (@p x unchanged).
 */
int mde_coords_warm(const mde_t *m, double *x, const uint8_t *placed);

/**
 * Minimise F from @p x (n x dim, row-major) in place.
 * @return 0, -EINVAL (non-finite input), -ENOMEM, ATL_ECANCELED (x holds the last iterate).
 */
int mde_run(mde_t *m, double *x, mde_result_t *res);

/** F(x): the average distortion. */
double mde_distortion(const mde_t *m, const double *x);

/** F(x) and its gradient into @p grad (n x dim). For tests. */
double mde_eval(const mde_t *m, const double *x, double *grad);

/** Edge sets for mde_kernel_eval() (bits) */
enum { MDE_KERNEL_ATTRACTIVE = 1, MDE_KERNEL_REPULSIVE = 2 };

/**
 * For benchmarks of the 3-D evaluation kernel alone (`atlasctl embed --kernel-evals`): @p x
 * (n x 3, the caller's order) into the kernel's single-precision rows (mde_t.xo and xp, which
 * mde_run() sets anew). Not concurrently with mde_run() or mde_kernel_eval() on the same @p m.
 * @param[in] x  n x 3 coordinates, unchanged.
 * @return 0, or -EINVAL (not 3-D, or a non-finite coordinate).
 */
int mde_kernel_load(mde_t *m, const double *x);

/**
 * One evaluation by the 3-D single-precision kernel, as mde_run() makes it, of the edges in
 * @p which at the rows mde_kernel_load() set (all zero before it), on @p m's pool, without the
 * gradient's reduction: the per-thread gradients keep adding up (mde_run() clears them
 * first). Not concurrently with mde_run() or mde_kernel_load() on the same @p m.
 * @param which  MDE_KERNEL_ATTRACTIVE, MDE_KERNEL_REPULSIVE or both (or-ed).
 * @return the sum of those edges' penalties (not averaged; +inf if a repulsive pair
 * coincides), or NAN (not 3-D, or @p which is none of those).
 */
double mde_kernel_eval(mde_t *m, int which);

void mde_destroy(mde_t *m);

#endif
