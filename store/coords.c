/*
 * coords.c: what a refresh leaves behind for the next one (DESIGN §4, §5): per retained item its
 * 3-D MDE coordinates, its 2-D layout position (before and after the export frame) and its kNN
 * row as item keys, plus the dirty marks it consumed. Stored and cleared in ONE transaction
 * after the snapshot is published, so a crash anywhere leaves either the old state with its
 * dirty marks (the next refresh redoes the work) or the new state without them.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <lmdb.h>

#include "store/internal.h"

#define COORDS_SNAPSHOT_KEY "coords_snapshot"

typedef struct coords_rec {
    double x3[3], y2[2], framed[2];
    uint32_t k, reserved;
    /* then k u64 neighbour keys, nearest first */
} coords_rec_t;

_Static_assert(sizeof(coords_rec_t) == 64, "coords record header is 64 bytes on disk");

void store_coords_free(store_coords_t *c)
{
    free(c->keys), free(c->x3), free(c->y2), free(c->framed), free(c->knn);
    memset(c, 0, sizeof(*c));
}

int store_coords_alloc(store_coords_t *c, uint32_t n, uint32_t k)
{
    memset(c, 0, sizeof(*c));
    c->n = n, c->k = k;
    c->keys = calloc((size_t)n + 1, sizeof(*c->keys));
    c->x3 = calloc((size_t)n * 3 + 1, sizeof(double));
    c->y2 = calloc((size_t)n * 2 + 1, sizeof(double));
    c->framed = calloc((size_t)n * 2 + 1, sizeof(double));
    c->knn = calloc((size_t)n * k + 1, sizeof(*c->knn));
    if (!c->keys || !c->x3 || !c->y2 || !c->framed || !c->knn) {
        store_coords_free(c);
        return -ENOMEM;
    }
    return 0;
}

static int coords_read(store_t *s, MDB_txn *txn, store_coords_t *c)
{
    MDB_stat st;
    MDB_cursor *cur = NULL;
    MDB_val k, v;
    int rc = mdb_stat(txn, s->coords, &st);
    uint32_t n = 0, kk = 0;
    if (rc != 0)
        return rc;
    if ((rc = mdb_cursor_open(txn, s->coords, &cur)) != 0)
        return rc;
    /* every record has the same k; take it from the first */
    if ((rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST)) == 0 && v.mv_size >= sizeof(coords_rec_t)) {
        coords_rec_t r;
        memcpy(&r, v.mv_data, sizeof(r));
        kk = r.k;
    }
    if (rc == MDB_NOTFOUND) {
        mdb_cursor_close(cur);
        return 0;
    }
    if (rc == 0 && (kk > 4096 || store_coords_alloc(c, (uint32_t)st.ms_entries, kk) != 0))
        rc = kk > 4096 ? MDB_CORRUPTED : ENOMEM;
    for (; rc == 0; rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        coords_rec_t r;
        if (n >= c->n || k.mv_size != sizeof(uint64_t) ||
            v.mv_size != sizeof(r) + (size_t)kk * sizeof(uint64_t)) {
            rc = MDB_CORRUPTED;
            break;
        }
        memcpy(&r, v.mv_data, sizeof(r));
        memcpy(&c->keys[n], k.mv_data, sizeof(uint64_t));
        memcpy(c->x3 + 3 * (size_t)n, r.x3, sizeof(r.x3));
        memcpy(c->y2 + 2 * (size_t)n, r.y2, sizeof(r.y2));
        memcpy(c->framed + 2 * (size_t)n, r.framed, sizeof(r.framed));
        memcpy(c->knn + (size_t)n * kk, (const char *)v.mv_data + sizeof(r),
               (size_t)kk * sizeof(uint64_t));
        n++;
    }
    mdb_cursor_close(cur);
    if (rc == MDB_NOTFOUND && n == c->n)
        rc = 0;
    if (rc != 0 && rc != MDB_NOTFOUND)
        return rc;
    MDB_val mk = {strlen(COORDS_SNAPSHOT_KEY), COORDS_SNAPSHOT_KEY};
    if (mdb_get(txn, s->meta, &mk, &v) == 0 && v.mv_size < sizeof(c->snapshot)) {
        memcpy(c->snapshot, v.mv_data, v.mv_size);
        c->snapshot[v.mv_size] = '\0';
    }
    return rc == MDB_NOTFOUND ? MDB_CORRUPTED : 0;
}

int store_coords_load(store_t *s, store_coords_t *c)
{
    MDB_txn *txn;
    memset(c, 0, sizeof(*c));
    if (!s->coords)
        return 0;
    int rc = store__read_begin(s, &txn);
    if (rc != 0)
        return rc;
    rc = coords_read(s, txn, c);
    store__read_end(s, txn);
    if (rc != 0)
        store_coords_free(c);
    return store__err(rc);
}

int store_dirty_get(store_t *s, uint64_t *seq, uint64_t **keys, uint32_t *n,
                    store_counters_t *counters, char **offsets)
{
    MDB_txn *txn;
    MDB_cursor *cur = NULL;
    MDB_val k, v;
    MDB_stat st;
    store_counters_t c;
    uint64_t *all = NULL, *out = NULL;
    uint32_t n_items = 0, m = 0;
    int rc = store__read_begin(s, &txn);
    if (rc != 0)
        return rc;
    char *off = NULL;
    if ((rc = store__counters_read(s, txn, &c)) || (rc = mdb_stat(txn, s->dirty, &st)) ||
        (rc = store__item_keys_load(s, txn, &all, &n_items)) ||
        (offsets && (rc = store__offsets_json(s, txn, &off))))
        goto out;
    if (!(out = malloc((st.ms_entries + 1) * sizeof(*out)))) {
        rc = ENOMEM;
        goto out;
    }
    if ((rc = mdb_cursor_open(txn, s->dirty, &cur)) != 0)
        goto out;
    for (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0 && m < st.ms_entries;
         rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        uint32_t idx;
        memcpy(&idx, k.mv_data, sizeof(idx));
        if (idx < n_items)
            out[m++] = all[idx];
    }
    if (rc == MDB_NOTFOUND || rc == 0)
        rc = 0;
    qsort(out, m, sizeof(*out), atl_cmp_u64);
    *seq = c.batches;
    *keys = out, *n = m;
    out = NULL;
    if (counters)
        *counters = c;
    if (offsets)
        *offsets = off, off = NULL;
out:
    mdb_cursor_close(cur);
    store__read_end(s, txn);
    free(all), free(out), free(off);
    return store__err(rc);
}

int store_dirty_count(store_t *s, uint64_t *n)
{
    MDB_txn *txn;
    MDB_stat st;
    int rc = store__read_begin(s, &txn);
    if (rc != 0)
        return rc;
    rc = mdb_stat(txn, s->dirty, &st);
    store__read_end(s, txn);
    *n = rc == 0 ? st.ms_entries : 0;
    return store__err(rc);
}

typedef struct commit_args {
    const store_coords_t *c;
    uint64_t seq;
    uint64_t cleared;
} commit_args_t;

/* Dirty marks carry the sequence of the last batch that set them: those <= seq were read by
 * the refresh; a row marked again since carries a larger one and stays. */
static int dirty_clear(store_t *s, MDB_txn *txn, uint64_t seq, uint64_t *cleared)
{
    MDB_cursor *cur;
    MDB_val k, v;
    int rc = mdb_cursor_open(txn, s->dirty, &cur);
    if (rc != 0)
        return rc;
    *cleared = 0;
    for (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0;
         rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        uint64_t mark;
        memcpy(&mark, v.mv_data, sizeof(mark));
        if (mark <= seq) {
            if ((rc = mdb_cursor_del(cur, 0)) != 0)
                break;
            (*cleared)++;
        }
    }
    mdb_cursor_close(cur);
    return rc == MDB_NOTFOUND ? 0 : rc;
}

static int commit_txn(store_t *s, MDB_txn *txn, void *ud)
{
    commit_args_t *a = ud;
    const store_coords_t *c = a->c;
    size_t len = sizeof(coords_rec_t) + (size_t)c->k * sizeof(uint64_t);
    uint8_t *buf = malloc(len);
    int rc = buf ? mdb_drop(txn, s->coords, 0) : ENOMEM;
    for (uint32_t i = 0; rc == 0 && i < c->n; i++) {
        coords_rec_t r = {.k = c->k};
        memcpy(r.x3, c->x3 + 3 * (size_t)i, sizeof(r.x3));
        memcpy(r.y2, c->y2 + 2 * (size_t)i, sizeof(r.y2));
        memcpy(r.framed, c->framed + 2 * (size_t)i, sizeof(r.framed));
        memcpy(buf, &r, sizeof(r));
        memcpy(buf + sizeof(r), c->knn + (size_t)i * c->k, (size_t)c->k * sizeof(uint64_t));
        MDB_val k = {sizeof(uint64_t), (void *)&c->keys[i]}, v = {len, buf};
        rc = mdb_put(txn, s->coords, &k, &v, MDB_APPEND); /* keys are sorted */
    }
    free(buf);
    if (rc == 0) {
        MDB_val mk = {strlen(COORDS_SNAPSHOT_KEY), COORDS_SNAPSHOT_KEY};
        MDB_val mv = {strlen(c->snapshot), (void *)c->snapshot};
        rc = mdb_put(txn, s->meta, &mk, &mv, 0);
    }
    return rc ? rc : dirty_clear(s, txn, a->seq, &a->cleared);
}

int store_refresh_commit(store_t *s, const store_coords_t *c, uint64_t seq, uint64_t *cleared)
{
    for (uint32_t i = 1; i < c->n; i++)
        if (c->keys[i] <= c->keys[i - 1])
            return -EINVAL;
    if (!s->coords)
        return -EROFS;
    commit_args_t a = {c, seq, 0};
    int rc = store__write(s, commit_txn, &a);
    if (rc == 0 && cleared)
        *cleared = a.cleared;
    return rc;
}

int store_coords_item(store_t *s, uint64_t key, store_item_coords_t *out)
{
    MDB_txn *txn;
    MDB_val k = {sizeof(key), &key}, v;
    memset(out, 0, sizeof(*out));
    if (!s->coords)
        return ATL_ENOTFOUND;
    int rc = store__read_begin(s, &txn);
    if (rc != 0)
        return rc;
    rc = mdb_get(txn, s->coords, &k, &v);
    coords_rec_t r;
    if (rc == 0 && v.mv_size >= sizeof(r)) {
        memcpy(&r, v.mv_data, sizeof(r));
        if (v.mv_size != sizeof(r) + (size_t)r.k * sizeof(uint64_t))
            rc = MDB_CORRUPTED;
    } else if (rc == 0) {
        rc = MDB_CORRUPTED;
    }
    if (rc == 0) {
        memcpy(out->x3, r.x3, sizeof(r.x3));
        memcpy(out->framed, r.framed, sizeof(r.framed));
        out->k = r.k < STORE_ITEM_KNN_MAX ? r.k : STORE_ITEM_KNN_MAX;
        memcpy(out->knn, (const char *)v.mv_data + sizeof(r), out->k * sizeof(uint64_t));
        MDB_val mk = {strlen(COORDS_SNAPSHOT_KEY), COORDS_SNAPSHOT_KEY};
        if (mdb_get(txn, s->meta, &mk, &v) == 0 && v.mv_size < sizeof(out->snapshot)) {
            memcpy(out->snapshot, v.mv_data, v.mv_size);
            out->snapshot[v.mv_size] = '\0';
        }
    }
    store__read_end(s, txn);
    return rc == MDB_NOTFOUND ? ATL_ENOTFOUND : store__err(rc);
}
