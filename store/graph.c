/*
 * graph.c: reading the retained part of S for the refresh and for export (DESIGN §3, §5).
 *
 * The retained list is sorted by item key, never by dense index, so every stage downstream
 * sees the same input order whatever order items were first seen in: stores that are digest-
 * equal produce identical graphs, embeddings and snapshots (DESIGN §10).
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
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

/* Ask for every cache line of a page of duplicates at once: scanned in order, its lines came
 * from memory one or two at a time (the page is 4 KiB anywhere in the map, which the hardware
 * prefetcher does not run ahead into), and reading a refresh's dirty rows waited on them. */
static void prefetch_page(const MDB_val *v)
{
    const char *p = v->mv_data;
    for (size_t off = 0; off < v->mv_size; off += 64)
        __builtin_prefetch(p + off, 0, 0);
}

/* Append the entries of a page of duplicates with S above @p above and a retained column. */
static int keep_entries(row_buf_t *rb, const MDB_val *v, const uint32_t *pos, uint32_t n_items,
                        int64_t above)
{
    size_t m = v->mv_size / sizeof(cooc_rec_t);
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
        memcpy(&rec, (const char *)v->mv_data + i * sizeof(rec), sizeof(rec));
        uint32_t p = pos[rec.col < n_items ? rec.col : n_items];
        rb->cols[kept] = p;
        rb->s[kept] = weight_to_double(rec.s);
        kept += (rec.s > above) & (p != UINT32_MAX);
    }
    rb->n = kept;
    return 0;
}

/* Row @p idx's entries that keep_entries() keeps, into @p rb. Each page of duplicates is asked
 * for one page ahead of its scan: pointers into the map stay valid for the whole read-only
 * transaction. */
static int row_read(MDB_cursor *cur, uint32_t idx, const uint32_t *pos, uint32_t n_items,
                    int64_t above, row_buf_t *rb, store__ra_t *ra)
{
    MDB_val k = {sizeof(idx), &idx}, v, next;
    rb->n = 0;
    int rc = mdb_cursor_get(cur, &k, &v, MDB_SET);
    if (rc == MDB_NOTFOUND)
        return 0;
    if (rc == 0 && (rc = mdb_cursor_get(cur, &k, &v, MDB_GET_MULTIPLE)) == 0) {
        if (ra)
            store__readahead(ra, v.mv_data);
        prefetch_page(&v);
    }
    while (rc == 0) {
        int rn = mdb_cursor_get(cur, &k, &next, MDB_NEXT_MULTIPLE);
        if (rn == 0) {
            if (ra)
                store__readahead(ra, next.mv_data);
            prefetch_page(&next);
        }
        rc = keep_entries(rb, &v, pos, n_items, above);
        if (rc == 0)
            rc = rn, v = next;
    }
    return rc == MDB_NOTFOUND ? 0 : rc;
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

/* One read snapshot's retained items: what every row read needs. */
typedef struct retained {
    MDB_txn *txn;
    uint64_t *all;
    uint32_t n_items, n_ret, *pos;
    keyed_t *ret;
} retained_t;

static int retained_open(store_t *s, retained_t *r)
{
    memset(r, 0, sizeof(*r));
    int rc = store__read_begin(s, &r->txn); /* holds off map resizes until it ends */
    if (rc == 0)
        rc = store__item_keys_load(s, r->txn, &r->all, &r->n_items);
    if (rc == 0 && !(r->pos = malloc(((size_t)r->n_items + 1) * sizeof(*r->pos))))
        rc = ENOMEM;
    if (rc == 0)
        rc = load_retained(s, r->txn, r->all, r->n_items, &r->ret, &r->n_ret, r->pos);
    return rc;
}

/* The retained keys for the caller, then everything released. */
static int retained_close(store_t *s, retained_t *r, int rc, uint64_t **keys, uint32_t *n)
{
    uint64_t *out = NULL;
    if (rc == 0 && !(out = malloc(((size_t)r->n_ret + 1) * sizeof(*out))))
        rc = ENOMEM;
    if (rc == 0) {
        for (uint32_t i = 0; i < r->n_ret; i++)
            out[i] = r->ret[i].key;
        *keys = out;
        *n = r->n_ret;
    }
    store__read_end(s, r->txn);
    free(r->all), free(r->pos), free(r->ret);
    return store__err(rc);
}

/* ---- rows on several threads ------------------------------------------------------------- */

#define ROWS_BLOCK 32 /* consecutive rows one thread reads: neighbouring rows share pages */

typedef struct rows_job {
    store_t *s;
    const retained_t *r;
    const uint32_t *sel; /* positions of the rows to read */
    size_t n_sel;
    int64_t above;
    unsigned n_threads;
    store_row_par_cb cb;
    void *ud;
    atomic_int stop; /* set by the first thread that fails */
} rows_job_t;

/* The blocks of part @p part, read in @p txn as thread @p tid. */
static int read_part(rows_job_t *j, MDB_txn *txn, unsigned part, unsigned tid)
{
    MDB_cursor *cur = NULL;
    row_buf_t rb = {0};
    /* readahead when reading most rows (a full refresh), not a refresh's scattered few; even
     * for out-of-order pages while the file fits in half the memory */
    store__ra_t ra = {0}, *rap = NULL;
    if (j->n_sel * 2 >= j->r->n_ret)
        ra.all = store__fits_in_ram(j->s), rap = &ra;
    int rc = mdb_cursor_open(txn, j->s->cooc, &cur);
    for (size_t b = (size_t)part * ROWS_BLOCK; rc == 0 && b < j->n_sel;
         b += (size_t)ROWS_BLOCK * j->n_threads)
        for (size_t q = b; rc == 0 && q < b + ROWS_BLOCK && q < j->n_sel; q++) {
            if (atomic_load_explicit(&j->stop, memory_order_relaxed))
                goto out;
            uint32_t i = j->sel[q];
            if ((rc = row_read(cur, j->r->ret[i].idx, j->r->pos, j->r->n_items, j->above, &rb,
                               rap)) == 0)
                rc = j->cb(j->ud, tid, i, rb.cols, rb.s, rb.n);
        }
out:
    if (rc != 0)
        atomic_store(&j->stop, 1);
    mdb_cursor_close(cur);
    free(rb.cols);
    free(rb.s);
    return rc;
}

typedef struct rows_part {
    rows_job_t *job;
    unsigned tid;
    int read; /* its blocks were read (in a transaction of the caller's snapshot) */
    int rc;
} rows_part_t;

static void *rows_helper(void *ud)
{
    rows_part_t *p = ud;
    MDB_txn *txn;
    if (store__read_try_begin(p->job->s, p->job->r->txn, &txn) != 0)
        return NULL;
    p->rc = read_part(p->job, txn, p->tid, p->tid);
    p->read = 1;
    store__read_end(p->job->s, txn);
    return NULL;
}

int store_retained_rows_par(store_t *s, const uint64_t *only, uint32_t n_only, double min_s,
                            unsigned n_threads, store_rows_begin_cb begin, store_row_par_cb cb,
                            void *ud, uint64_t **keys, uint32_t *n)
{
    enum { MAX_THREADS = 16 };

    n_threads = n_threads < 1 ? 1 : n_threads > MAX_THREADS ? MAX_THREADS : n_threads;
    retained_t r;
    uint32_t *sel = NULL, at = 0;
    size_t n_sel = 0;
    int rc = retained_open(s, &r);
    if (rc == 0 && !(sel = malloc(((size_t)r.n_ret + 1) * sizeof(*sel))))
        rc = ENOMEM;
    for (uint32_t i = 0; rc == 0 && i < r.n_ret; i++)
        if (selected(only, n_only, &at, r.ret[i].key))
            sel[n_sel++] = i;
    if (rc == 0 && begin)
        rc = begin(ud, r.n_ret);
    if (rc == 0) {
        rows_job_t job = {s, &r, sel, n_sel, store__s_above(min_s), n_threads, cb, ud, 0};
        rows_part_t parts[MAX_THREADS];
        pthread_t th[MAX_THREADS];
        int started[MAX_THREADS] = {0};
        for (unsigned t = 1; t < n_threads && n_sel > ROWS_BLOCK; t++) {
            parts[t] = (rows_part_t){&job, t, 0, 0};
            started[t] = pthread_create(&th[t], NULL, rows_helper, &parts[t]) == 0;
        }
        rc = read_part(&job, r.txn, 0, 0);
        for (unsigned t = 1; t < n_threads; t++) {
            if (started[t])
                pthread_join(th[t], NULL);
            if (started[t] && parts[t].read) {
                if (rc == 0)
                    rc = parts[t].rc;
            } else if (rc == 0) { /* no helper, or another snapshot: the caller reads it */
                rc = read_part(&job, r.txn, t, 0);
            }
        }
    }
    free(sel);
    return retained_close(s, &r, rc, keys, n);
}

/* store_retained_rows(): the parallel read on the caller's thread alone, rows in order. */
typedef struct one_thread {
    store_row_cb cb;
    void *ud;
} one_thread_t;

static int one_thread_row(void *ud, unsigned tid, uint32_t row, const uint32_t *cols,
                          const double *s, size_t n)
{
    const one_thread_t *o = ud;
    (void)tid;
    return o->cb(o->ud, row, cols, s, n);
}

int store_retained_rows(store_t *s, double min_s, store_row_cb cb, void *ud, uint64_t **keys,
                        uint32_t *n)
{
    one_thread_t o = {cb, ud};
    return store_retained_rows_par(s, NULL, 0, min_s, 1, NULL, one_thread_row, &o, keys, n);
}
