/*
 * par.h: a minimal parallel-for over pthreads for algo/ (STYLE R1 allows pthreads).
 *
 * Work is split into chunks handed out through an atomic counter, so threads balance uneven
 * rows; results must not depend on which thread ran a chunk (every user here writes disjoint
 * outputs or per-thread buffers reduced in a fixed order), which keeps output identical for
 * any thread count.
 */
#ifndef ATL_PAR_H
#define ATL_PAR_H

#include <stddef.h>
#include <stdint.h>

/**
 * Body of a parallel loop: process items [begin, end) as thread @p tid (0 .. n_threads-1).
 * @return 0, or non-zero to stop handing out chunks (the first such value is returned).
 */
typedef int (*par_body_cb)(void *ud, unsigned tid, size_t begin, size_t end);

/**
 * Run @p body over [0, n) in chunks of @p chunk on @p n_threads threads (1 = calling thread).
 * @return 0, the first non-zero body result, or -ENOMEM / -EAGAIN if threads could not start.
 */
int par_for(size_t n, size_t chunk, unsigned n_threads, par_body_cb body, void *ud);

/**
 * One part of a scatter into rows (par_scatter_rows): with @p fill 0, add each of the part's
 * items to its row's count in at[row]; with @p fill 1, write each item at slot at[row]++ of its
 * row. @return 0 or a negative error (the first part's error in part order is returned).
 */
typedef int (*par_scatter_cb)(void *ud, unsigned part, int fill, uint64_t *at);

/**
 * Items into rows from @p n_parts parts at once, on @p n_threads threads: each part counts its
 * items a row, then writes them from its own offset in each row, an earlier part's before a
 * later one's, so every row holds its items in the order of one pass over the parts in turn
 * (whatever the thread count). @p row_start gets the @p n_rows + 1 row starts; @p before_fill
 * (may be NULL) is called between the passes with the total, to make room for the items.
 * @return 0, a part's error, before_fill's, -ENOMEM or -EAGAIN.
 */
int par_scatter_rows(uint32_t n_rows, unsigned n_parts, unsigned n_threads, par_scatter_cb cb,
                     int (*before_fill)(void *ud, uint64_t total), void *ud, uint64_t *row_start);

/*
 * A pool of threads kept for many short loops (an MDE evaluation per iteration, an SGD epoch):
 * the caller's thread takes chunks too and never waits for a worker that has not started one,
 * so on a busy machine a loop costs no more than on one thread, instead of a scheduling
 * delay per call. As with par_for(), results must not depend on which thread ran a chunk.
 */
typedef struct par_pool par_pool_t;

/** A pool of @p n_threads - 1 workers (NULL for n_threads <= 1: par_pool_for runs inline).
 * @return 0 and *out, -ENOMEM or -EAGAIN. */
int par_pool_new(unsigned n_threads, par_pool_t **out);

/** Stop and join the workers; NULL is a no-op. */
void par_pool_free(par_pool_t *p);

/**
 * Run @p body over [0, n) in chunks of @p chunk on the pool and the calling thread (@p p NULL:
 * on the calling thread). One loop at a time per pool. @return 0 or the first non-zero body
 * result (the remaining chunks are skipped).
 */
int par_pool_for(par_pool_t *p, size_t n, size_t chunk, par_body_cb body, void *ud);

#endif
