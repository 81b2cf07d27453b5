/*
 * sortdef.h: sorts written once for any element type.
 *
 * A stable LSD radix sort by a 64-bit key (the store's bulk rows, delta entries, rows of T). A
 * sort by bytes skips every byte all keys share, so ids below 2^24 in both halves of a key
 * cost 6 passes, not 8.
 *
 * ATL_RADIX_SORT_DEFINE(name, type, key) defines
 *     static void name(type *v, type *tmp, size_t n);
 * sorting v[0, n) ascending by key(element) (an expression of the element `e`, a uint64_t),
 * stably, with tmp a scratch array of n elements.
 *
 * A Shell sort with Ciura's gaps, for short arrays sorted often (a kNN row's ~150 entries: no
 * scratch, no call per comparison). ATL_SHELL_SORT_DEFINE(name, type, less) defines
 *     static void name(type *v, uint32_t n);
 * sorting v[0, n) ascending by less(const type *a, const type *b) (a function or macro).
 *
 * A quickselect (a row of T's first entries, a kNN query's nearest candidates, a k-d node's
 * lower half). ATL_SELECT_DEFINE(name, type, less, cmp) defines
 *     static void name(type *v, size_t n, size_t keep);
 * moving the @p keep first of v[0, n) by less() to v[0, keep), in any order. Keys must be
 * distinct (the order total). Hoare's partition around a median-of-three pivot, O(n) on
 * average; a range still wide after 64 rounds is sorted with qsort(cmp) (cmp agreeing with
 * less) instead, so hostile input costs O(n log n) at worst; a short range ends in an
 * insertion sort.
 */
#ifndef ATL_SORTDEF_H
#define ATL_SORTDEF_H

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define ATL_RADIX_SORT_DEFINE(name, type, key)                                                     \
    static void name(type *v, type *tmp, size_t n)                                                 \
    {                                                                                              \
        uint64_t or_all = 0, and_all = ~(uint64_t)0;                                               \
        for (size_t i = 0; i < n; i++) {                                                           \
            const type e = v[i];                                                                   \
            or_all |= (key), and_all &= (key);                                                     \
        }                                                                                          \
        type *src = v, *dst = tmp;                                                                 \
        for (unsigned shift = 0; shift < 64; shift += 8) {                                         \
            if ((((or_all ^ and_all) >> shift) & 0xff) == 0)                                       \
                continue; /* every key has this byte */                                            \
            size_t count[256] = {0}, sum = 0;                                                      \
            for (size_t i = 0; i < n; i++) {                                                       \
                const type e = src[i];                                                             \
                count[((key) >> shift) & 0xff]++;                                                  \
            }                                                                                      \
            for (int d = 0; d < 256; d++) {                                                        \
                size_t c = count[d];                                                               \
                count[d] = sum;                                                                    \
                sum += c;                                                                          \
            }                                                                                      \
            for (size_t i = 0; i < n; i++) {                                                       \
                const type e = src[i];                                                             \
                dst[count[((key) >> shift) & 0xff]++] = e;                                         \
            }                                                                                      \
            type *t = src;                                                                         \
            src = dst;                                                                             \
            dst = t;                                                                               \
        }                                                                                          \
        if (src != v)                                                                              \
            memcpy(v, src, n * sizeof(*v));                                                        \
    }

#define ATL_SHELL_SORT_DEFINE(name, type, less)                                                    \
    static void name(type *v, uint32_t n)                                                          \
    {                                                                                              \
        static const uint32_t gaps[] = {701, 301, 132, 57, 23, 10, 4, 1};                          \
        for (size_t g = 0; g < sizeof(gaps) / sizeof(gaps[0]); g++) {                              \
            uint32_t h = gaps[g];                                                                  \
            for (uint32_t i = h; i < n; i++) {                                                     \
                type x = v[i];                                                                     \
                uint32_t j = i;                                                                    \
                for (; j >= h && less(&x, &v[j - h]); j -= h)                                      \
                    v[j] = v[j - h];                                                               \
                v[j] = x;                                                                          \
            }                                                                                      \
        }                                                                                          \
    }

#define ATL_SELECT_DEFINE(name, type, less, cmp)                                                   \
    static void name(type *v, size_t n, size_t keep)                                               \
    {                                                                                              \
        size_t lo = 0, hi = n; /* v[0, lo) precede v[lo, hi), which precede v[hi, n) */            \
        type t;                                                                                    \
        for (int round = 0; hi - lo > 16 && keep > lo && keep < hi; round++) {                     \
            if (round == 64) {                                                                     \
                qsort(v + lo, hi - lo, sizeof(*v), cmp);                                           \
                return;                                                                            \
            }                                                                                      \
            size_t mid = lo + (hi - lo) / 2;                                                       \
            if (less(&v[mid], &v[lo]))                                                             \
                t = v[mid], v[mid] = v[lo], v[lo] = t;                                             \
            if (less(&v[hi - 1], &v[lo]))                                                          \
                t = v[hi - 1], v[hi - 1] = v[lo], v[lo] = t;                                       \
            if (less(&v[hi - 1], &v[mid]))                                                         \
                t = v[hi - 1], v[hi - 1] = v[mid], v[mid] = t;                                     \
            type piv = v[mid]; /* the median: v[lo] before it, v[hi - 1] after */                  \
            size_t i = lo, j = hi - 1;                                                             \
            for (;;) {                                                                             \
                while (less(&v[i], &piv))                                                          \
                    i++;                                                                           \
                while (less(&piv, &v[j]))                                                          \
                    j--;                                                                           \
                if (i >= j)                                                                        \
                    break;                                                                         \
                t = v[i], v[i] = v[j], v[j] = t;                                                   \
                i++, j--;                                                                          \
            }                                                                                      \
            /* v[lo, j] do not follow the pivot, v[j + 1, hi) do not precede it */                 \
            if (keep <= j + 1)                                                                     \
                hi = j + 1;                                                                        \
            else                                                                                   \
                lo = j + 1;                                                                        \
        }                                                                                          \
        for (size_t i = lo + 1; i < hi; i++) { /* a short range: insertion sort */                 \
            type x = v[i];                                                                         \
            size_t k = i;                                                                          \
            for (; k > lo && less(&x, &v[k - 1]); k--)                                             \
                v[k] = v[k - 1];                                                                   \
            v[k] = x;                                                                              \
        }                                                                                          \
    }

#endif
