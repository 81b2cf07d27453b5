/*
 * graph.h: weighted undirected graphs in CSR form, and the pruned co-occurrence graph T.
 *
 * T (DESIGN §3): for each retained row, the 700 largest S among retained columns with S > 2,
 * as distance 1/ln(S); the edge set is made symmetric (an edge kept by either row). S is
 * symmetric, so both directions of an edge carry the same distance.
 */
#ifndef ATL_GRAPH_H
#define ATL_GRAPH_H

#include <stddef.h>
#include <stdint.h>

#define GRAPH_TOP_DEFAULT   700
#define GRAPH_MIN_S_DEFAULT 2.0
#define GRAPH_BUILD_THREADS 2 /* rows are sorted in parallel; the result does not depend on it */

/** CSR adjacency: neighbours of i are col[row_ptr[i] .. row_ptr[i+1]), sorted by distance, then
 * by index (the kNN search relies on that order). */
typedef struct graph {
    uint32_t n;
    uint64_t *row_ptr; /* n + 1 */
    uint32_t *col;
    float *dist;
    uint32_t row_cap; /* graph_update(): rows (+ 1) and entries its buffers can hold */
    uint64_t cap;
} graph_t;

/** An undirected edge list (each edge once, any orientation). */
typedef struct graph_edges {
    uint32_t *i, *j;
    float *w;
    size_t m, cap;
} graph_edges_t;

void graph_edges_init(graph_edges_t *e);
void graph_edges_destroy(graph_edges_t *e);
/** Append an edge. @return 0 or -ENOMEM. */
int graph_edges_add(graph_edges_t *e, uint32_t i, uint32_t j, float w);

/**
 * Select the pruned T entries of one row: the @p keep largest @p s (ties: lower column first)
 * among entries with s > @p min_s, written as (column, 1/ln(s)) to @p out_col / @p out_dist.
 * @p cols/@p s are the row's S entries over retained columns (any order; not modified).
 * @p scratch must hold @p n entries.
 * @return the number written (<= keep), in no particular order.
 */
typedef struct graph_prune_slot {
    uint64_t s_bits; /* a positive double's bits order as the double does */
    uint32_t col;
} graph_prune_slot_t;

size_t graph_prune_row(const uint32_t *cols, const double *s, size_t n, size_t keep, double min_s,
                       uint32_t *out_col, float *out_dist, graph_prune_slot_t *scratch);

/**
 * Build a symmetric CSR graph on @p n nodes from an edge list: each edge (i, j, dist) is stored
 * in both directions; duplicates keep the smallest distance; self loops are dropped.
 * @return 0, -EINVAL (index >= n, distance not finite or <= 0), -ENOMEM.
 * The result is owned by the caller: graph_destroy().
 */
int graph_build(uint32_t n, const graph_edges_t *e, graph_t *out);

/**
 * graph_build() on the edges (i, col[i][q], dist[i][q]) for i < n, q < cnt[i], in that order,
 * read from the rows in place: the same graph, without an edge list of them (at full scale
 * ~50M edges, 0.6 GB of fresh pages a first refresh or rebuild took time to fault in).
 */
int graph_build_rows(uint32_t n, const uint32_t *cnt, uint32_t *const *col, float *const *dist,
                     graph_t *out);

/**
 * Builds T row by row (DESIGN §3): feed each row's S entries over retained columns, then
 * finish into a symmetric CSR graph. Rows may come in any order, each at most once; several
 * pruners (one a thread) may share the rows and finish together. Each row's kept entries are
 * stored as they come (no edge list); T does not depend on the order the rows came in.
 */
typedef struct graph_pruner {
    size_t top;
    double min_s;
    graph_prune_slot_t *scratch; /* one row's candidates */
    size_t cap;
    uint32_t *col; /* every fed row's kept entries, in the order the rows came */
    float *dist;
    size_t kept, kept_cap;
    uint32_t *row; /* the rows fed, and where each one's entries start in col and dist */
    size_t *start;
    size_t n_rows, rows_cap;
} graph_pruner_t;

/** @return 0 or -EINVAL (top 0). */
int graph_pruner_init(graph_pruner_t *p, size_t top, double min_s);

/** Prune one row and keep its entries. @return 0 or -ENOMEM. */
int graph_pruner_row(graph_pruner_t *p, uint32_t row, const uint32_t *cols, const double *s,
                     size_t n);

/** Build T on @p n nodes from the rows fed so far to the @p np pruners @p p together
 * (graph_build_rows()). @return 0, -EINVAL (a row >= n or fed twice, or what graph_build()
 * rejects), -ENOMEM. */
int graph_pruners_finish(graph_pruner_t *const *p, unsigned np, uint32_t n, graph_t *out);

/** graph_pruners_finish() of one pruner. */
int graph_pruner_finish(graph_pruner_t *p, uint32_t n, graph_t *out);

void graph_pruner_destroy(graph_pruner_t *p);

/**
 * The graph graph_build() would return after some rows changed, rebuilding only those: a row with
 * affected[i] set takes its adjacency from @p e, which must hold, for every affected row i, every
 * directed entry (i, j, dist) of its new adjacency (duplicates keep the smallest distance); every
 * other row is row old_of_new[i] of @p old, columns renumbered through @p new_of_old (an
 * increasing map, so rows keep their (distance, column) order). Rows that are new, or that had a
 * neighbour which is gone, must be affected.
 * @param[in,out] out zeroed, or a graph no longer needed (the one before @p old, say) whose
 *                buffers are written over when large enough: at full scale a fresh T is 574 MB
 *                of pages the kernel must clear first, a tenth of an incremental refresh.
 * @return 0, -EINVAL (an unaffected row that cannot be carried over, bad entry), -ENOMEM;
 *         on failure @p out is released.
 */
int graph_update(const graph_t *old, const uint32_t *old_of_new, const uint32_t *new_of_old,
                 uint32_t n, const uint8_t *affected, const graph_edges_t *e, graph_t *out);

/**
 * A lower bound on the distance of every entry that differs between row @p p of @p old, columns
 * renumbered through @p new_of_old (a column mapped to UINT32_MAX is an item that left: its
 * entry differs), and row @p i of @p t: the distance at the first position where the two rows,
 * both in (distance, column) order, part (an increasing renumbering keeps that order). Entries
 * before it are equal; every later entry of either row is no nearer.
 * @return that distance, or INFINITY when the rows are equal. Cost: the common prefix.
 */
double graph_row_change_min(const graph_t *old, uint32_t p, const uint32_t *new_of_old,
                            const graph_t *t, uint32_t i);

/**
 * The graph graph_build() would return after some edges changed, given the changes: every row
 * not flagged in @p affected is row old_of_new[i] of @p old renumbered through @p new_of_old (an
 * increasing map), as in graph_update(); an affected row is its old row renumbered (empty for a
 * new item), without the entries of items that left and without every column a delta names at
 * it, plus the deltas that say the edge is there. A delta (i, j, dist) of @p delta states the
 * edge's state now, for both rows i and j: present at dist (> 0), or gone (dist 0); both rows
 * must be affected. Several deltas of one edge must agree. Cost: the affected rows and the
 * deltas (no edge list of the affected rows' whole adjacency, no sort of it), plus the copy.
 * @param[in,out] out as for graph_update(): its buffers are reused when large enough.
 * @return 0, -EINVAL (an unaffected row that cannot be carried over, a delta at an unaffected
 *         row or out of range, a distance < 0 or not finite), -ENOMEM; on failure @p out is
 *         released.
 */
int graph_update_delta(const graph_t *old, const uint32_t *old_of_new, const uint32_t *new_of_old,
                       uint32_t n, const uint8_t *affected, const graph_edges_t *delta,
                       graph_t *out);

/** The capacity a growing T buffer gets for @p need entries (or rows): need + need / 64 + 4096
 * (T's size drifts a little between refreshes; see graph.c). */
uint64_t graph_cap_ahead(uint64_t need);

/** Free a graph's arrays; a zeroed graph is fine. */
void graph_destroy(graph_t *g);

/** Number of undirected edges. */
size_t graph_n_edges(const graph_t *g);

#endif
