/*
 * cooc.h: co-occurrence rows S[r][.] computed exactly from the profiles (DESIGN §3), row by row.
 *
 * The profiles are given as a CSR by user (each user's entries sorted by item). An index adds
 * the transpose (for each item, the users that hold it and their pp), so one row of S is
 *     S[r][t] = sum over users u holding r and t (t != r) of weight_pair(pp_u(r), pp_u(t)),
 * accumulated in a dense per-thread array over the columns the row touches (Gustavson's
 * sparse product). Rows come out in key order with their columns sorted and zero sums
 * dropped: exactly the entries an incremental store holds, ready to be appended to S or
 * compared with it in one sequential walk. Work is sum over users of n_u^2 weight terms and
 * O(n_items) memory per thread; no merge buffer, whatever the number of S entries.
 */
#ifndef ATL_COOC_H
#define ATL_COOC_H

#include <stddef.h>
#include <stdint.h>

/** Profiles in CSR form: user u's entries are [user_start[u], user_start[u + 1]). */
typedef struct cooc_profiles {
    uint32_t n_users, n_items;
    const uint64_t *user_start; /* n_users + 1 */
    const uint32_t *item;       /* entry -> dense item index (< n_items), increasing per user */
    const float *pp;            /* entry -> pp */
} cooc_profiles_t;

/** The transposed profiles (owned; the cooc_profiles_t arrays must outlive it). */
typedef struct cooc_index cooc_index_t;

/* cooc_index_new() flags */
enum {
    /* rows hold only the columns t > r: the upper triangle of S, half the terms (a check of
     * the other half is symmetry: store/rebuild.c) */
    COOC_UPPER = 1,
};

/**
 * Build the index of @p p for full rows, or for the upper triangle with COOC_UPPER.
 * @return 0 and *out; -EINVAL (an item out of range, a user's items not increasing, a pp not
 *         finite or negative), -EOVERFLOW (a row's sum cannot share a 64-bit accumulator word
 *         with its stamp: over ~5e8 users of one item) or -ENOMEM.
 */
int cooc_index_new(const cooc_profiles_t *p, unsigned flags, cooc_index_t **out);

/** Free the index; NULL is a no-op. */
void cooc_index_free(cooc_index_t *ix);

/** Weight terms row @p r costs (sum of the profile lengths of its users): a cost estimate. */
uint64_t cooc_index_row_terms(const cooc_index_t *ix, uint32_t r);

/** Number of users holding item @p r. */
uint32_t cooc_index_row_users(const cooc_index_t *ix, uint32_t r);

/** A chunk of consecutive computed rows [lo, hi): row r's entries are
 * [row_start[r - lo], row_start[r - lo + 1]) of col/s, columns increasing, s != 0. col and s
 * point into the arena of the thread that computed the chunk (valid until the next
 * cooc_block_compute() or cooc_block_destroy() of the block). */
typedef struct cooc_chunk {
    uint32_t lo, hi;
    uint64_t *row_start;
    uint32_t *col;
    int64_t *s;
    size_t n;
    size_t off;   /* internal: the chunk's first entry in its arena */
    unsigned tid; /* internal: the thread (arena) that computed it */
} cooc_chunk_t;

/** One computing thread's entries, for all the chunks it computed, kept across calls. */
typedef struct cooc_arena {
    uint32_t *col;
    int64_t *s;
    size_t n, cap;
} cooc_arena_t;

/** Rows [lo, hi) computed by cooc_block_compute(), as consecutive chunks. */
typedef struct cooc_block {
    cooc_chunk_t *chunks;
    size_t n_chunks;
    uint64_t entries;
    cooc_arena_t *arenas;
    size_t n_arenas;
} cooc_block_t;

/** Initialise an empty block (memory is kept across cooc_block_compute() calls). */
void cooc_block_init(cooc_block_t *b);

/** Release the block's memory. */
void cooc_block_destroy(cooc_block_t *b);

/**
 * Compute rows [lo, hi) on @p n_threads threads into @p b (replacing what it held). The result
 * does not depend on the thread count.
 * @return 0, -EINVAL (a bad range) or -ENOMEM / -EAGAIN.
 */
int cooc_block_compute(const cooc_index_t *ix, uint32_t lo, uint32_t hi, unsigned n_threads,
                       cooc_block_t *b);

#endif
