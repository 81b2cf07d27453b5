/*
 * delta.c: sorted, merged accumulation of matrix deltas. See delta.h.
 *
 * Invariant: v[0..n_sorted) is sorted, merged and zero-free; v[n_sorted..n) is raw appended
 * terms. Compaction radix-sorts the whole array by the 64-bit key (only the bytes that vary are
 * sorted, so row/col ids below 2^24 cost 6 passes), then merges in one linear pass. Summation
 * order does not matter: values are integers.
 */
#include "algo/delta.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "algo/sortdef.h"

void delta_list_init(delta_list_t *d)
{
    memset(d, 0, sizeof(*d));
}

void delta_list_destroy(delta_list_t *d)
{
    free(d->v);
    free(d->tmp);
    delta_list_init(d);
}

void delta_list_clear(delta_list_t *d)
{
    d->n = 0;
    d->n_sorted = 0;
}

static int ensure_tmp(delta_list_t *d, size_t n)
{
    if (d->tmp_cap >= n)
        return 0;
    delta_entry_t *t = realloc(d->tmp, n * sizeof(*t));
    if (!t)
        return -ENOMEM;
    d->tmp = t;
    d->tmp_cap = n;
    return 0;
}

ATL_RADIX_SORT_DEFINE(radix_sort, delta_entry_t, e.key)

int delta_list_compact(delta_list_t *d)
{
    if (d->n_sorted == d->n)
        return 0;
    if (ensure_tmp(d, d->n) != 0)
        return -ENOMEM;
    radix_sort(d->v, d->tmp, d->n);
    size_t out = 0;
    for (size_t i = 0; i < d->n;) {
        uint64_t key = d->v[i].key;
        int64_t sum = 0;
        while (i < d->n && d->v[i].key == key)
            sum += d->v[i++].value;
        if (sum != 0)
            d->v[out++] = (delta_entry_t){key, sum};
    }
    d->n = d->n_sorted = out;
    return 0;
}

int delta_list_add(delta_list_t *d, uint32_t row, uint32_t col, int64_t value)
{
    if (value == 0)
        return 0;
    if (d->n == d->cap) {
        /* Merge first; grow only if merging did not free at least half the buffer. */
        if (d->cap > 0 && delta_list_compact(d) != 0)
            return -ENOMEM;
        if (d->n * 2 >= d->cap) {
            size_t cap = d->cap ? d->cap * 2 : 4096;
            delta_entry_t *v = realloc(d->v, cap * sizeof(*v));
            if (!v)
                return -ENOMEM;
            d->v = v;
            d->cap = cap;
        }
    }
    d->v[d->n++] = (delta_entry_t){((uint64_t)row << 32) | col, value};
    return 0;
}
