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

#endif
