/*
 * knn.h: exact k nearest neighbours by shortest-path distance in T (DESIGN §5).
 *
 * For each source, a Dijkstra that stops once k nodes are settled or the next distance exceeds
 * max_distance. Ties are broken by node index (lower first), so the result is exact and unique:
 * equal to sorting all nodes within max_distance by (distance, index) and keeping k. PyMDE runs a
 * full bounded Dijkstra per node (an hour at 56k items); the early stop, plus skipping
 * relaxations past an upper bound on the k-th distance, makes it seconds.
 *
 * The kNN edge set is undirected: (i, j) with weight 2 if i and j are in each other's lists,
 * else 1 (PyMDE preserve_neighbors).
 */
#ifndef ATL_KNN_H
#define ATL_KNN_H

#include <stddef.h>
#include <stdint.h>

#include "algo/atl.h"
#include "algo/graph.h"

#define KNN_MAX_K 256
#define KNN_NONE  UINT32_MAX

typedef struct knn_opts {
    uint32_t k;          /* neighbours per item, 1..KNN_MAX_K (default 10) */
    double max_distance; /* <= 0: 3 x the 75th percentile of T's distances (default) */
    unsigned n_threads;  /* default 2 */
    atl_progress_cb progress;
    void *progress_ud;
} knn_opts_t;

/** Neighbour lists: row i holds count[i] (<= k) neighbours nbr[i*k ..], nearest first. */
typedef struct knn {
    uint32_t n, k;
    uint32_t *nbr; /* n*k, KNN_NONE past count */
    float *dist;   /* n*k shortest-path distances */
    uint32_t *count;
    double max_distance; /* the bound used */
} knn_t;

void knn_opts_default(knn_opts_t *o);

/**
 * 75th percentile of the distances of T's undirected edges (each edge once), with linear
 * interpolation between order statistics (as numpy/torch quantile), times 3.
 * @param[out] out the bound, or 0 for a graph without edges.
 * @return 0, or -ENOMEM (before, a failed allocation returned the bound 0, which silently
 *         emptied every kNN row).
 */
int knn_auto_max_distance(const graph_t *t, double *out);

/**
 * Compute every row. @p out is initialised here; release with knn_destroy().
 * @return 0, -EINVAL (k out of range), -ENOMEM, ATL_ECANCELED.
 * Deterministic for any thread count. Cost ~ O(n * k * deg * log) with early stopping.
 */
int knn_build(const graph_t *t, const knn_opts_t *o, knn_t *out);

/**
 * Recompute only @p rows (indices into t) of an existing result built on a graph of the same
 * size, with the same k and max_distance (taken from @p inout).
 * @param[out] n_changed rows whose neighbour list differs from before.
 * @return 0, -EINVAL, -ENOMEM, ATL_ECANCELED.
 */
int knn_update_rows(const graph_t *t, const knn_opts_t *o, const uint32_t *rows, size_t n_rows,
                    knn_t *inout, size_t *n_changed);

/**
 * Which rows of a kNN result can change when edges of T change, exactly (a row not flagged has
 * the same list on the new graph). Row s keeps its list if every changed edge (a, b, w) (added,
 * removed, or its distance changed: both distances count) has d(s, a) + w > D and
 * d(s, b) + w > D, D being the k-th distance of s (max_distance for a short row): a path through
 * such an edge is longer than D, so no distance up to D changes, none beyond it drops to D, and
 * the list (sorted by (distance, index), an order an increasing renumbering keeps) stays. Only
 * ends within the list (or s itself) can fail that test: any other node lies at D or beyond. The
 * test is made with a relative margin of 1e-5 (stored distances are rounded to float), so it only
 * errs towards recomputing.
 * @param[in] carried    the result on the graph before, renumbered onto the new graph's nodes,
 *                       with the max_distance of both.
 * @param[in] change_min per node of the new graph, a lower bound on the distance of every edge
 *                       at it that was added, removed or changed (graph_row_change_min());
 *                       INFINITY for none.
 * @param[in,out] need   per row, 1 for rows to recompute anyway (new items, a neighbour that
 *                       left); the rows whose list may change are set too.
 * @return the number of rows set in @p need.
 */
size_t knn_rows_affected(const knn_t *carried, const double *change_min, uint8_t *need);

/** Free a result; a zeroed one is fine. */
void knn_destroy(knn_t *k);

/** Number of rows with fewer than k neighbours. */
size_t knn_short_rows(const knn_t *k);

/**
 * The undirected kNN edge list: (i < j) once, weight 2 when mutual, else 1, sorted by (i, j).
 * @return 0 or -ENOMEM. Free with graph_edges_destroy().
 */
int knn_edges(const knn_t *k, graph_edges_t *out);

#endif
