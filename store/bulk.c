/*
 * bulk.c: bulk load of hiscore rows into an empty store (`atlasctl import`'s backfill path).
 *
 * The incremental path (batch.c) reads a profile, emits pair deltas and applies them to S at
 * random places, batch after batch: once S outgrows RAM every batch pages the file in and out,
 * and random inserts leave S's leaf pages ~55% full while copy-on-write leaves old pages on the
 * free list. Into an EMPTY store the final state is known up front, so this path:
 *   1. keeps every row in memory (24 bytes each) and folds them into final profiles: rows are
 *      sorted by (user, item) with a stable radix sort, so each (user, item)'s rows stay in
 *      arrival order and are replayed with the incremental rule (a row wins if newer, on a tie
 *      if its pp is higher): the same final entry, and the same events_changed count;
 *   2. computes S row by row from the profiles (algo/cooc: the same integer weight terms) and
 *      appends each block of rows to S with MDB_APPEND / MDB_APPENDDUP, so pages are written
 *      sequentially and full, one transaction per block;
 *   3. writes items, profiles, stats, dirty marks and counters in a last transaction, also
 *      appending in key order.
 * The result is digest-equal to the incremental import of the same rows (a test). S is written
 * before everything else: a store interrupted in step 2 has S rows but no items, which
 * store_bulk_commit() refuses (and so does a second bulk load); delete such a store.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <lmdb.h>

#include "algo/cooc.h"
#include "algo/item.h"
#include "algo/sortdef.h"
#include "algo/weight.h"
#include "store/internal.h"

typedef struct bulk_row {
    uint64_t key; /* user << 32 | dense item index */
    int64_t t;
    float pp;
    uint32_t reserved;
} bulk_row_t;

struct store_bulk {
    bulk_row_t *rows;
    size_t n, cap;
    /* item key -> dense index (open addressing; slot holds index + 1, 0 = empty) */
    uint64_t *hkey;
    uint32_t *hval;
    size_t hcap;
    uint64_t *item_keys; /* dense index -> item key, in order of first appearance */
    size_t n_items, item_cap;
};

int store_bulk_new(store_bulk_t **out)
{
    store_bulk_t *b = calloc(1, sizeof(*b));
    if (!b)
        return -ENOMEM;
    *out = b;
    return 0;
}

void store_bulk_free(store_bulk_t *b)
{
    if (!b)
        return;
    free(b->rows);
    free(b->hkey);
    free(b->hval);
    free(b->item_keys);
    free(b);
}

size_t store_bulk_len(const store_bulk_t *b)
{
    return b->n;
}

static size_t hash_slot(uint64_t key, size_t cap)
{
    key ^= key >> 33;
    key *= 0xff51afd7ed558ccdULL;
    key ^= key >> 33;
    return (size_t)key & (cap - 1);
}

static int hash_grow(store_bulk_t *b)
{
    size_t cap = b->hcap ? b->hcap * 2 : 1024;
    uint64_t *k = calloc(cap, sizeof(*k));
    uint32_t *v = calloc(cap, sizeof(*v));
    if (!k || !v) {
        free(k);
        free(v);
        return -ENOMEM;
    }
    for (size_t i = 0; i < b->hcap; i++) {
        if (!b->hval[i])
            continue;
        size_t j = hash_slot(b->hkey[i], cap);
        while (v[j])
            j = (j + 1) & (cap - 1);
        k[j] = b->hkey[i];
        v[j] = b->hval[i];
    }
    free(b->hkey);
    free(b->hval);
    b->hkey = k;
    b->hval = v;
    b->hcap = cap;
    return 0;
}

static int item_index(store_bulk_t *b, uint64_t key, uint32_t *out)
{
    if ((b->n_items + 1) * 2 > b->hcap && hash_grow(b) != 0)
        return -ENOMEM;
    size_t j = hash_slot(key, b->hcap);
    for (; b->hval[j]; j = (j + 1) & (b->hcap - 1))
        if (b->hkey[j] == key) {
            *out = b->hval[j] - 1;
            return 0;
        }
    if (b->n_items >= UINT32_MAX - 1 || atl_array_grow((void **)&b->item_keys, &b->item_cap,
                                                       b->n_items + 1, sizeof(uint64_t), 1024))
        return -ENOMEM;
    b->item_keys[b->n_items] = key;
    b->hkey[j] = key;
    b->hval[j] = (uint32_t)++b->n_items;
    *out = (uint32_t)(b->n_items - 1);
    return 0;
}

int store_bulk_add(store_bulk_t *b, const store_event_t *ev)
{
    if (ev->kind != STORE_EVENT_HISCORE || ev->skip != STORE_SKIP_NONE)
        return -EINVAL;
    const store_hiscore_t *h = &ev->u.hiscore;
    uint32_t item;
    int rc =
        item_index(b, item_key_make(h->beatmap_id, item_mods_from_legacy(h->mods_legacy)), &item);
    if (rc != 0)
        return rc;
    if (atl_array_grow((void **)&b->rows, &b->cap, b->n + 1, sizeof(*b->rows), 1 << 16))
        return -ENOMEM;
    b->rows[b->n++] = (bulk_row_t){((uint64_t)h->user << 32) | item, h->update_time, h->pp, 0};
    return 0;
}

/* ---- folding rows into profiles ----------------------------------------------------------- */

ATL_RADIX_SORT_DEFINE(radix_rows, bulk_row_t, e.key)

/* Stable LSD radix sort by key (algo/sortdef.h). */
static int rows_sort(bulk_row_t *v, size_t n)
{
    if (n < 2)
        return 0;
    bulk_row_t *tmp = malloc(n * sizeof(*tmp));
    if (!tmp)
        return -ENOMEM;
    radix_rows(v, tmp, n);
    free(tmp);
    return 0;
}

typedef struct folded {
    uint32_t n_users;
    uint32_t *user_id;    /* dense user -> user id */
    uint64_t *user_start; /* n_users + 1 */
    uint32_t *item;
    float *pp;
    int64_t *t;
    uint64_t n_entries, changed;
    int64_t newest;
} folded_t;

static void folded_destroy(folded_t *f)
{
    free(f->user_id);
    free(f->user_start);
    free(f->item);
    free(f->pp);
    free(f->t);
    memset(f, 0, sizeof(*f));
}

/* Replay each (user, item)'s rows (sorted, in arrival order) with batch.c's rule. */
static int rows_fold(store_bulk_t *b, folded_t *f)
{
    size_t n = b->n, users = 0, entries = 0;
    for (size_t i = 0; i < n; i++) {
        users += i == 0 || (b->rows[i].key >> 32) != (b->rows[i - 1].key >> 32);
        entries += i == 0 || b->rows[i].key != b->rows[i - 1].key;
    }
    f->user_id = malloc((users ? users : 1) * sizeof(*f->user_id));
    f->user_start = malloc((users + 1) * sizeof(*f->user_start));
    f->item = malloc((entries ? entries : 1) * sizeof(*f->item));
    f->pp = malloc((entries ? entries : 1) * sizeof(*f->pp));
    f->t = malloc((entries ? entries : 1) * sizeof(*f->t));
    if (!f->user_id || !f->user_start || !f->item || !f->pp || !f->t)
        return -ENOMEM;
    uint32_t u = 0;
    uint64_t e = 0;
    f->user_start[0] = 0;
    for (size_t i = 0; i < n;) {
        const bulk_row_t *r = &b->rows[i];
        uint32_t user = (uint32_t)(r->key >> 32);
        if (u == 0 || f->user_id[u - 1] != user) {
            if (u > 0)
                f->user_start[u] = e;
            f->user_id[u++] = user;
        }
        float pp = r->pp;
        int64_t t = r->t;
        size_t j = i + 1;
        f->changed++;
        for (; j < n && b->rows[j].key == r->key; j++) {
            const bulk_row_t *q = &b->rows[j];
            if (profile_row_wins(q->t, q->pp, t, pp)) {
                t = q->t;
                pp = q->pp;
                f->changed++;
            }
        }
        for (size_t k = i; k < j; k++)
            if (b->rows[k].t > f->newest)
                f->newest = b->rows[k].t;
        f->item[e] = (uint32_t)r->key;
        f->pp[e] = pp;
        f->t[e] = t;
        e++;
        i = j;
    }
    f->user_start[u] = e;
    f->n_users = u;
    f->n_entries = e;
    return 0;
}

/* ---- writing ------------------------------------------------------------------------------ */

/* Grow the map until @p extra bytes fit after the last used page (no transaction open). */
static int map_reserve(store_t *s, uint64_t extra)
{
    for (;;) {
        MDB_envinfo info;
        MDB_stat st;
        mdb_env_info(s->env, &info);
        mdb_env_stat(s->env, &st);
        if ((uint64_t)(info.me_last_pgno + 1) * st.ms_psize + extra <= info.me_mapsize)
            return 0;
        pthread_rwlock_wrlock(&s->resize_lock);
        int rc = store__map_resize(s, info.me_mapsize * 2);
        pthread_rwlock_unlock(&s->resize_lock);
        if (rc != 0)
            return rc;
    }
}

/* Append one key's records (sorted, distinct, the key past every stored key) in one put:
 * MDB_APPEND also makes the main tree split at its end when the key's node (a sub-page of
 * duplicates) grows, so those pages fill up too (with MDB_APPENDDUP alone they split in the
 * middle and stay about half full). */
static int put_dups(MDB_cursor *cur, uint32_t key, const void *recs, size_t size, size_t n)
{
    MDB_val k = {sizeof(key), &key};
    MDB_val mv[2] = {{size, (void *)recs}, {n, NULL}};
    return mdb_cursor_put(cur, &k, mv, MDB_APPEND | MDB_APPENDDUP | MDB_MULTIPLE);
}

typedef struct block_write {
    const cooc_block_t *blk;
    cooc_rec_t *buf;
    size_t buf_cap;
} block_write_t;

static int block_txn(store_t *s, MDB_txn *txn, void *ud)
{
    block_write_t *w = ud;
    MDB_cursor *cur;
    int rc = mdb_cursor_open(txn, s->cooc, &cur);
    for (size_t c = 0; rc == 0 && c < w->blk->n_chunks; c++) {
        const cooc_chunk_t *ch = &w->blk->chunks[c];
        for (uint32_t r = ch->lo; rc == 0 && r < ch->hi; r++) {
            uint64_t b = ch->row_start[r - ch->lo], e = ch->row_start[r - ch->lo + 1];
            if (e == b)
                continue;
            if (e - b > w->buf_cap) {
                cooc_rec_t *nb = realloc(w->buf, (e - b) * sizeof(*nb));
                if (!nb) {
                    rc = ENOMEM;
                    break;
                }
                w->buf = nb;
                w->buf_cap = e - b;
            }
            for (uint64_t i = b; i < e; i++)
                w->buf[i - b] = (cooc_rec_t){ch->col[i], ch->s[i]};
            rc = put_dups(cur, r, w->buf, sizeof(cooc_rec_t), e - b);
        }
    }
    mdb_cursor_close(cur);
    return rc;
}

typedef struct final_write {
    const store_bulk_t *b;
    const folded_t *f;
    const cooc_index_t *ix;
    uint64_t events;
    int64_t newest;
} final_write_t;

static int cmp_key_idx(const void *a, const void *b)
{
    const uint64_t *x = a, *y = b;
    return (x[0] > y[0]) - (x[0] < y[0]);
}

static int write_items(store_t *s, MDB_txn *txn, const store_bulk_t *b)
{
    uint64_t *pairs = malloc((b->n_items ? b->n_items : 1) * 2 * sizeof(*pairs));
    if (!pairs)
        return ENOMEM;
    int rc = 0;
    for (uint32_t i = 0; rc == 0 && i < b->n_items; i++) {
        MDB_val k = {sizeof(i), &i}, v = {sizeof(uint64_t), &b->item_keys[i]};
        rc = mdb_put(txn, s->item_keys, &k, &v, MDB_APPEND);
        pairs[2 * i] = b->item_keys[i];
        pairs[2 * i + 1] = i;
    }
    if (rc == 0 && b->n_items > 0)
        qsort(pairs, b->n_items, 2 * sizeof(*pairs), cmp_key_idx);
    for (size_t i = 0; rc == 0 && i < b->n_items; i++) {
        uint32_t idx = (uint32_t)pairs[2 * i + 1];
        MDB_val k = {sizeof(uint64_t), &pairs[2 * i]}, v = {sizeof(idx), &idx};
        rc = mdb_put(txn, s->item_ids, &k, &v, MDB_APPEND);
    }
    free(pairs);
    return rc;
}

static int write_profiles(store_t *s, MDB_txn *txn, const folded_t *f)
{
    MDB_cursor *cur;
    profile_rec_t *buf = NULL;
    size_t cap = 0;
    int rc = mdb_cursor_open(txn, s->profiles, &cur);
    for (uint32_t u = 0; rc == 0 && u < f->n_users; u++) {
        uint64_t b = f->user_start[u], e = f->user_start[u + 1];
        if (e - b > cap) {
            profile_rec_t *nb = realloc(buf, (e - b) * sizeof(*nb));
            if (!nb) {
                rc = ENOMEM;
                break;
            }
            buf = nb;
            cap = e - b;
        }
        for (uint64_t i = b; i < e; i++)
            buf[i - b] = (profile_rec_t){f->item[i], f->pp[i], f->t[i]};
        rc = put_dups(cur, f->user_id[u], buf, sizeof(profile_rec_t), e - b);
    }
    mdb_cursor_close(cur);
    free(buf);
    return rc;
}

static int write_stats_dirty(store_t *s, MDB_txn *txn, const final_write_t *w, uint64_t seq)
{
    uint32_t n_items = (uint32_t)w->b->n_items;
    int64_t *sum = calloc(n_items ? n_items : 1, sizeof(*sum));
    uint32_t *users = calloc(n_items ? n_items : 1, sizeof(*users));
    int rc = (!sum || !users) ? ENOMEM : 0;
    for (uint64_t e = 0; rc == 0 && e < w->f->n_entries; e++) {
        users[w->f->item[e]]++;
        sum[w->f->item[e]] += weight_pp_fixed(w->f->pp[e]);
    }
    for (uint32_t i = 0; rc == 0 && i < n_items; i++) {
        if (users[i] == 0 && sum[i] == 0)
            continue;
        stats_rec_t rec = {users[i], 0, sum[i]};
        MDB_val k = {sizeof(i), &i}, v = {sizeof(rec), &rec}, dv = {sizeof(seq), &seq};
        if ((rc = mdb_put(txn, s->stats, &k, &v, MDB_APPEND)) == 0)
            rc = mdb_put(txn, s->dirty, &k, &dv, MDB_APPEND);
    }
    free(sum);
    free(users);
    return rc;
}

static int final_txn(store_t *s, MDB_txn *txn, void *ud)
{
    final_write_t *w = ud;
    store_counters_t c;
    int rc;
    if ((rc = store__counters_read(s, txn, &c)) || (rc = write_items(s, txn, w->b)) ||
        (rc = write_profiles(s, txn, w->f)) || (rc = write_stats_dirty(s, txn, w, c.batches + 1)))
        return rc;
    c.batches++;
    c.events_applied += w->events;
    c.events_changed += w->f->changed;
    if (w->f->newest > c.newest_update_time)
        c.newest_update_time = w->f->newest;
    return store__counters_write(s, txn, &c);
}

/* 0 if items, profiles and S are all empty; -ENOTEMPTY otherwise; ATL_ECORRUPT for S rows
 * without any item (what an interrupted bulk load leaves: no other path writes S first). */
static int check_empty(store_t *s)
{
    MDB_txn *txn;
    MDB_stat a, b, c;
    int rc = store__read_begin(s, &txn);
    if (rc != 0)
        return rc;
    if ((rc = mdb_stat(txn, s->item_keys, &a)) == 0 && (rc = mdb_stat(txn, s->profiles, &b)) == 0)
        rc = mdb_stat(txn, s->cooc, &c);
    store__read_end(s, txn);
    if (rc != 0)
        return store__err(rc);
    if (c.ms_entries && !a.ms_entries)
        return ATL_ECORRUPT; /* S without items: an interrupted bulk load */
    return a.ms_entries || b.ms_entries || c.ms_entries ? -ENOTEMPTY : 0;
}

int store_bulk_empty(store_t *s, int *empty)
{
    int rc = check_empty(s);
    if (rc != 0 && rc != -ENOTEMPTY)
        return rc;
    *empty = rc == 0;
    return 0;
}

void store_bulk_opts_default(store_bulk_opts_t *o)
{
    memset(o, 0, sizeof(*o));
    o->n_threads = 2;
    o->block_bytes = (size_t)256 << 20; /* ~22M weight terms: a transaction stays below LMDB's
                                         * dirty-page limit (128k pages), so nothing spills */
}

static int progress(const store_bulk_opts_t *o, const char *stage, double frac)
{
    return o->progress && o->progress(o->progress_ud, stage, frac) ? ATL_ECANCELED : 0;
}

/* Append S block by block: each block's rows hold at most block_bytes of weight terms. */
static int write_cooc(store_t *s, const store_bulk_opts_t *o, const cooc_index_t *ix,
                      uint32_t n_items, uint64_t *entries)
{
    cooc_block_t blk;
    block_write_t w = {&blk, NULL, 0};
    uint64_t budget = o->block_bytes / 12 ? o->block_bytes / 12 : 1, total_terms = 0, done = 0;
    int rc = 0;
    for (uint32_t r = 0; r < n_items; r++)
        total_terms += cooc_index_row_terms(ix, r);
    cooc_block_init(&blk);
    *entries = 0;
    for (uint32_t lo = 0; lo < n_items && rc == 0;) {
        uint32_t hi = lo;
        uint64_t terms = 0;
        while (hi < n_items && (hi == lo || terms + cooc_index_row_terms(ix, hi) <= budget))
            terms += cooc_index_row_terms(ix, hi++);
        if ((rc = cooc_block_compute(ix, lo, hi, o->n_threads, &blk)) != 0)
            break;
        /* page overhead is small for appended pages: reserve 1.25x the records, + a margin */
        if ((rc = store__err(map_reserve(s, blk.entries * 15 + ((uint64_t)64 << 20)))) != 0 ||
            (rc = store__write(s, block_txn, &w)) != 0)
            break;
        *entries += blk.entries;
        done += terms;
        lo = hi;
        rc = progress(o, "bulk S", (double)done / (double)(total_terms ? total_terms : 1));
    }
    cooc_block_destroy(&blk);
    free(w.buf);
    return rc;
}

int store_bulk_commit(store_t *s, store_bulk_t *b, const store_bulk_opts_t *o,
                      store_bulk_result_t *out)
{
    store_bulk_opts_t def;
    if (!o) {
        store_bulk_opts_default(&def);
        o = &def;
    }
    folded_t f;
    cooc_index_t *ix = NULL;
    store_bulk_result_t res = {0};
    memset(&f, 0, sizeof(f));
    int rc = check_empty(s);
    if (rc != 0)
        return rc;
    if ((rc = progress(o, "bulk fold", 0)) || (rc = rows_sort(b->rows, b->n)) ||
        (rc = rows_fold(b, &f)))
        goto out;
    res.rows = b->n;
    res.profile_entries = f.n_entries;
    res.users = f.n_users;
    res.items = b->n_items;
    /* the rows are no longer needed: give their memory back before S is computed */
    free(b->rows);
    b->rows = NULL;
    b->n = b->cap = 0;
    cooc_profiles_t p = {f.n_users, (uint32_t)b->n_items, f.user_start, f.item, f.pp};
    if ((rc = cooc_index_new(&p, 0, &ix)) != 0 ||
        (rc = write_cooc(s, o, ix, (uint32_t)b->n_items, &res.s_entries)) != 0)
        goto out;
    final_write_t w = {b, &f, ix, res.rows, f.newest};
    if ((rc = store__err(
             map_reserve(s, f.n_entries * 24 + b->n_items * 96 + ((uint64_t)64 << 20)))) != 0 ||
        (rc = store__write(s, final_txn, &w)) != 0)
        goto out;
    rc = progress(o, "bulk", 1.0);
out:
    cooc_index_free(ix);
    folded_destroy(&f);
    if (rc == 0 && out)
        *out = res;
    return rc;
}
