/*
 * delta.h: an accumulator of sparse matrix deltas (row, col, value), merged by key.
 *
 * This is the in-memory half of the "profile diff -> pair deltas -> S" boundary (DESIGN §10):
 * a batch appends one term per affected (row, col), then delta_list_compact() sorts by
 * (row, col) with an LSD radix sort and sums equal keys, dropping zero sums. The store then
 * applies the result in key order, one cursor walk. Compaction also runs automatically when
 * the buffer fills, so memory is bounded by the number of distinct keys, not of terms.
 */
#ifndef ATL_DELTA_H
#define ATL_DELTA_H

#include <stddef.h>
#include <stdint.h>

typedef struct delta_entry {
    uint64_t key; /* (row << 32) | col */
    int64_t value;
} delta_entry_t;

typedef struct delta_list {
    delta_entry_t *v;
    size_t n, cap;
    size_t n_sorted; /* prefix of v that is sorted, merged and zero-free */
    delta_entry_t *tmp;
    size_t tmp_cap;
} delta_list_t;

/** Initialise an empty list. */
void delta_list_init(delta_list_t *d);

/** Release the list's memory; the list is empty and reusable afterwards. */
void delta_list_destroy(delta_list_t *d);

/** Drop all entries, keeping the memory. */
void delta_list_clear(delta_list_t *d);

/**
 * Add @p value to the entry (row, col). Zero values are ignored.
 * @return 0, or -ENOMEM (the list is unchanged).
 */
int delta_list_add(delta_list_t *d, uint32_t row, uint32_t col, int64_t value);

/**
 * Sort by key, sum duplicates, drop zero sums. Afterwards v[0..n) is strictly increasing.
 * @return 0, or -ENOMEM (the list is unchanged).
 */
int delta_list_compact(delta_list_t *d);

/** Row of a key. */
static inline uint32_t delta_key_row(uint64_t key)
{
    return (uint32_t)(key >> 32);
}

/** Column of a key. */
static inline uint32_t delta_key_col(uint64_t key)
{
    return (uint32_t)key;
}

#endif
