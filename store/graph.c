/*
 * graph.c: reading the retained part of S for the refresh and for export (DESIGN §3, §5).
 *
 * The retained list is sorted by item key, never by dense index, so every stage downstream
 * sees the same input order whatever order items were first seen in: stores that are digest-
 * equal produce identical graphs, embeddings and snapshots (DESIGN §10).
 */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <lmdb.h>

#include "algo/weight.h"
#include "store/internal.h"

typedef struct keyed {
    uint64_t key;
    uint32_t idx;
} keyed_t;

static int cmp_keyed(const void *a, const void *b)
{
    uint64_t x = ((const keyed_t *)a)->key, y = ((const keyed_t *)b)->key;
    return (x > y) - (x < y);
}

/* Retained items sorted by key, and pos[idx] = position or UINT32_MAX (n_items + 1 entries). */
static int load_retained(store_t *s, MDB_txn *txn, const uint64_t *all_keys, uint32_t n_items,
                         keyed_t **out, uint32_t *n_out, uint32_t *pos)
{
    MDB_cursor *cur;
    MDB_val k, v;
    keyed_t *r = malloc(((size_t)n_items + 1) * sizeof(*r));
    uint32_t n = 0;
    int rc;
    if (!r)
        return ENOMEM;
    if ((rc = mdb_cursor_open(txn, s->stats, &cur)) != 0) {
        free(r);
        return rc;
    }
    for (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0;
         rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        uint32_t idx;
        stats_rec_t st;
        memcpy(&idx, k.mv_data, sizeof(idx));
        memcpy(&st, v.mv_data, sizeof(st));
        if (idx < n_items && weight_retained(st.num_users, st.sum_pp))
            r[n++] = (keyed_t){all_keys[idx], idx};
    }
    mdb_cursor_close(cur);
    if (rc != MDB_NOTFOUND) {
        free(r);
        return rc;
    }
    qsort(r, n, sizeof(*r), cmp_keyed);
    for (uint32_t i = 0; i <= n_items; i++) /* pos[n_items]: a sentinel (row_read) */
        pos[i] = UINT32_MAX;
    for (uint32_t i = 0; i < n; i++)
        pos[r[i].idx] = i;
    *out = r;
    *n_out = n;
    return 0;
}

typedef struct row_buf {
    uint32_t *cols;
    double *s;
    size_t n, cap;
} row_buf_t;

/* S > min_s as a fixed-point test: S = f / 2^16 exactly, so S > min_s iff f > floor(min_s 2^16). */
static int64_t min_s_fixed(double min_s)
{
    if (!(min_s > 0))
        return 0;
    double f = floor(min_s * WEIGHT_ONE);
    return f >= 0x1p62 ? INT64_MAX : (int64_t)f;
}

static int row_read(store_t *s, MDB_cursor *cur, uint32_t idx, const uint32_t *pos,
                    uint32_t n_items, int64_t above, row_buf_t *rb)
{
    MDB_val k = {sizeof(idx), &idx}, v;
    rb->n = 0;
    int rc = mdb_cursor_get(cur, &k, &v, MDB_SET);
    if (rc == MDB_NOTFOUND)
        return 0;
    for (rc = rc ? rc : mdb_cursor_get(cur, &k, &v, MDB_GET_MULTIPLE); rc == 0;
         rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT_MULTIPLE)) {
        size_t m = v.mv_size / sizeof(cooc_rec_t);
        if (rb->n + m > rb->cap) {
            size_t cap = (rb->n + m) * 2;
            uint32_t *c = realloc(rb->cols, cap * sizeof(*c));
            double *d = c ? realloc(rb->s, cap * sizeof(*d)) : NULL;
            if (c)
                rb->cols = c;
            if (!d)
                return ENOMEM;
            rb->s = d;
            rb->cap = cap;
        }
        /* without a branch: 3 in 4 entries fail the S test, at random (it was 7 in 10 branch
         * mispredictions of reading T); pos[n_items] is the sentinel for a corrupt column */
        size_t kept = rb->n;
        for (size_t i = 0; i < m; i++) {
            cooc_rec_t rec;
            memcpy(&rec, (const char *)v.mv_data + i * sizeof(rec), sizeof(rec));
            uint32_t p = pos[rec.col < n_items ? rec.col : n_items];
            rb->cols[kept] = p;
            rb->s[kept] = weight_to_double(rec.s);
            kept += (rec.s > above) & (p != UINT32_MAX);
        }
        rb->n = kept;
    }
    (void)s;
    return rc == MDB_NOTFOUND ? 0 : rc;
}

int store_retained_rows(store_t *s, double min_s, store_row_cb cb, void *ud, uint64_t **keys,
                        uint32_t *n)
{
    return store_retained_rows_of(s, NULL, 0, min_s, cb, ud, keys, n);
}

/* Whether sorted @p only (NULL: everything) holds @p key; *at walks forward with the rows. */
static int selected(const uint64_t *only, uint32_t n_only, uint32_t *at, uint64_t key)
{
    if (!only)
        return 1;
    while (*at < n_only && only[*at] < key)
        (*at)++;
    return *at < n_only && only[*at] == key;
}

int store_retained_rows_of(store_t *s, const uint64_t *only, uint32_t n_only, double min_s,
                           store_row_cb cb, void *ud, uint64_t **keys, uint32_t *n)
{
    const int64_t above = min_s_fixed(min_s);
    uint32_t at = 0;
    MDB_txn *txn = NULL;
    MDB_cursor *cur = NULL;
    uint64_t *all = NULL, *out = NULL;
    uint32_t n_items = 0, n_ret = 0, *pos = NULL;
    keyed_t *ret = NULL;
    row_buf_t rb = {0};
    int rc = store__read_begin(s, &txn); /* holds off map resizes until it ends */
    if (rc != 0)
        return rc;
    if ((rc = store__item_keys_load(s, txn, &all, &n_items)) != 0)
        goto out;
    if (!(pos = malloc(((size_t)n_items + 1) * sizeof(*pos)))) {
        rc = ENOMEM;
        goto out;
    }
    if ((rc = load_retained(s, txn, all, n_items, &ret, &n_ret, pos)) != 0 ||
        (rc = mdb_cursor_open(txn, s->cooc, &cur)) != 0)
        goto out;
    for (uint32_t i = 0; i < n_ret && rc == 0; i++) {
        if (!selected(only, n_only, &at, ret[i].key))
            continue;
        if ((rc = row_read(s, cur, ret[i].idx, pos, n_items, above, &rb)) == 0)
            rc = cb(ud, i, rb.cols, rb.s, rb.n);
    }
    if (rc == 0 && !(out = malloc(((size_t)n_ret + 1) * sizeof(*out))))
        rc = ENOMEM;
    if (rc == 0) {
        for (uint32_t i = 0; i < n_ret; i++)
            out[i] = ret[i].key;
        *keys = out;
        *n = n_ret;
    }
out:
    mdb_cursor_close(cur);
    store__read_end(s, txn);
    free(all);
    free(pos);
    free(ret);
    free(rb.cols);
    free(rb.s);
    return store__err(rc);
}
