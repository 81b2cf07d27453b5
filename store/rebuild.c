/*
 * rebuild.c: whole-store reads: counts, the canonical digest, and the offline rebuild of S and
 * item stats from the profiles (the "incremental state == full rebuild" check of DESIGN §3).
 *
 * Digest: every logical entry (profile entry, item stats, S entry) is named by item ids, not
 * dense indices, hashed with XXH3-128, and the hashes are summed lane-wise mod 2^64. A sum is a
 * multiset hash: independent of iteration order and of the order items got their indices, and
 * computed in one streaming pass with O(items) memory. It is a consistency check, not a MAC.
 *
 * Rebuild: the profiles are read once, sequentially, into memory (8 bytes per entry); S is then
 * recomputed row block by row block with algo/cooc (exact integer sums, per-row dense
 * accumulators, on opts->n_threads threads) and each block is compared with the stored rows in
 * one sequential walk of S, a page of duplicates at a time, recording expected - stored for
 * every difference. (It used to walk every profile in LMDB once per pass and merge the pair
 * terms of a pass through a sorted delta list: 72-93 s of a full-scale rebuild.) Repair applies
 * the corrections with the same code path as ingestion.
 *
 * Symmetry halves the work: a first run recomputes the upper triangle only (S[r][t], t > r:
 * COOC_UPPER) and compares it entry by entry, while the walk adds every stored entry, named by
 * its pair (min, max) and its value, to one multiset hash for each side of the diagonal. S is
 * right iff the upper triangle is right and the lower one holds the same (pair, value)
 * multiset, i.e. the two sums agree (up to a 128-bit hash collision, as the digest). A store
 * that fails either test is compared again with full rows, which names every difference in
 * both directions for the report and the repair: the drifted store pays for both runs.
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lmdb.h>
/* xxhash's header-only mode: every stored entry of S (600M at full scale) is hashed on the
 * walk's one thread, and the library call costs 18 ns a 16-byte hash here against 3.7 inline */
#define XXH_INLINE_ALL
#include <xxhash.h>

#include "algo/cooc.h"
#include "algo/delta.h"
#include "algo/item.h"
#include "algo/weight.h"
#include "store/internal.h"

typedef struct digest {
    uint64_t lo, hi;
} digest_t;

static void digest_add(digest_t *d, const void *buf, size_t len)
{
    XXH128_hash_t h = XXH3_128bits(buf, len);
    d->lo += h.low64;
    d->hi += h.high64;
}

/* Call @p fn for every run of duplicates of every key of a DUPFIXED database, in key order. */
typedef int (*dup_fn)(uint32_t key, const void *recs, size_t n, void *ud);

static int for_each_dups(MDB_txn *txn, MDB_dbi dbi, size_t rec_size, uint32_t from, dup_fn fn,
                         void *ud)
{
    MDB_cursor *cur;
    MDB_val k = {sizeof(from), &from}, v;
    store__ra_t ra = {0};
    int rc = mdb_cursor_open(txn, dbi, &cur);
    if (rc != 0)
        return rc;
    rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
    while (rc == 0) {
        uint32_t key;
        memcpy(&key, k.mv_data, sizeof(key));
        for (rc = mdb_cursor_get(cur, &k, &v, MDB_GET_MULTIPLE); rc == 0;
             rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT_MULTIPLE)) {
            store__readahead(&ra, v.mv_data);
            if ((rc = fn(key, v.mv_data, v.mv_size / rec_size, ud)) != 0)
                goto out;
        }
        if (rc != MDB_NOTFOUND)
            goto out;
        rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT_NODUP);
    }
out:
    mdb_cursor_close(cur);
    return rc == MDB_NOTFOUND ? 0 : rc;
}

/* ---- stats and digest -------------------------------------------------------------------- */

typedef struct stats_walk {
    const uint64_t *keys;
    uint32_t n_keys;
    digest_t d;
    uint64_t users;
    uint32_t last_user;
    int with_digest;
} stats_walk_t;

static int walk_profile(uint32_t user, const void *recs, size_t n, void *ud)
{
    stats_walk_t *w = ud;
    if (w->users == 0 || user != w->last_user)
        w->users++;
    w->last_user = user;
    if (!w->with_digest)
        return 0;
    for (size_t i = 0; i < n; i++) {
        profile_rec_t r;
        memcpy(&r, (const char *)recs + i * sizeof(r), sizeof(r));
        if (r.item >= w->n_keys)
            return MDB_CORRUPTED;

        struct __attribute__((packed)) {
            char tag;
            uint32_t user;
            uint64_t item;
            float pp;
            int64_t t;
        } e = {'P', user, w->keys[r.item], r.pp, r.update_time};

        digest_add(&w->d, &e, sizeof(e));
    }
    return 0;
}

static int walk_cooc(uint32_t row, const void *recs, size_t n, void *ud)
{
    stats_walk_t *w = ud;
    for (size_t i = 0; i < n; i++) {
        cooc_rec_t r;
        memcpy(&r, (const char *)recs + i * sizeof(r), sizeof(r));
        if (row >= w->n_keys || r.col >= w->n_keys)
            return MDB_CORRUPTED;

        struct __attribute__((packed)) {
            char tag;
            uint64_t a, b;
            int64_t s;
        } e = {'S', w->keys[row], w->keys[r.col], r.s};

        digest_add(&w->d, &e, sizeof(e));
    }
    return 0;
}

static int walk_stats(store_t *s, MDB_txn *txn, stats_walk_t *w, uint64_t *retained)
{
    MDB_cursor *cur;
    MDB_val k, v;
    int rc = mdb_cursor_open(txn, s->stats, &cur);
    if (rc != 0)
        return rc;
    *retained = 0;
    for (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0;
         rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        uint32_t item;
        stats_rec_t r;
        memcpy(&item, k.mv_data, sizeof(item));
        memcpy(&r, v.mv_data, sizeof(r));
        *retained += weight_retained(r.num_users, r.sum_pp);
        if (!w->with_digest)
            continue;
        if (item >= w->n_keys) {
            rc = MDB_CORRUPTED;
            break;
        }

        struct __attribute__((packed)) {
            char tag;
            uint64_t item;
            uint32_t n;
            int64_t sum;
        } e = {'I', w->keys[item], r.num_users, r.sum_pp};

        digest_add(&w->d, &e, sizeof(e));
    }
    mdb_cursor_close(cur);
    return rc == MDB_NOTFOUND ? 0 : rc;
}

/* Pages on LMDB's freelist (database 0): each record is an array of page numbers whose first
 * element is its length (as mdb_stat -f counts them). */
static int count_free_pages(MDB_txn *txn, uint64_t *out)
{
    MDB_cursor *cur;
    MDB_val k, v;
    int rc = mdb_cursor_open(txn, 0, &cur);
    if (rc != 0)
        return rc;
    *out = 0;
    for (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0;
         rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        size_t n;
        memcpy(&n, v.mv_data, sizeof(n));
        *out += n;
    }
    mdb_cursor_close(cur);
    return rc == MDB_NOTFOUND ? 0 : rc;
}

static int stats_body(store_t *s, MDB_txn *txn, int with_digest, store_stats_t *out)
{
    stats_walk_t w = {.with_digest = with_digest};
    MDB_stat st;
    int rc;
    memset(out, 0, sizeof(*out));
    if ((rc = store__item_keys_load(s, txn, (uint64_t **)&w.keys, &w.n_keys)) != 0)
        return rc;
    out->items = w.n_keys;
    if ((rc = for_each_dups(txn, s->profiles, sizeof(profile_rec_t), 0, walk_profile, &w)) ||
        (rc = walk_stats(s, txn, &w, &out->retained)))
        goto out;
    if (with_digest && (rc = for_each_dups(txn, s->cooc, sizeof(cooc_rec_t), 0, walk_cooc, &w)))
        goto out;
    out->users = w.users;
    if ((rc = mdb_stat(txn, s->profiles, &st)) != 0)
        goto out;
    out->profile_entries = st.ms_entries;
    if ((rc = mdb_stat(txn, s->cooc, &st)) != 0)
        goto out;
    out->pairs = st.ms_entries / 2;
    if ((rc = mdb_stat(txn, s->dirty, &st)) != 0)
        goto out;
    out->dirty = st.ms_entries;
    mdb_env_stat(s->env, &st);
    out->bytes = store__used_bytes(s, &out->map_size_bytes);
    uint64_t free_pages = 0;
    if ((rc = count_free_pages(txn, &free_pages)) != 0)
        goto out;
    out->live_bytes = out->bytes - free_pages * st.ms_psize;
    if (with_digest)
        snprintf(out->digest, sizeof(out->digest), "%016" PRIx64 "%016" PRIx64, w.d.hi, w.d.lo);
out:
    free((void *)w.keys);
    return rc;
}

int store_stats_get(store_t *s, int with_digest, store_stats_t *out)
{
    MDB_txn *txn;
    store_stats_t tmp;
    int rc = store__read_begin(s, &txn);
    if (rc != 0)
        return rc;
    rc = stats_body(s, txn, with_digest, &tmp);
    store__read_end(s, txn);
    if (rc == 0)
        *out = tmp;
    return store__err(rc);
}

/* ---- rebuild ----------------------------------------------------------------------------- */

void store_rebuild_opts_default(store_rebuild_opts_t *o)
{
    memset(o, 0, sizeof(*o));
    o->mem_bytes = (size_t)2 << 30;
    o->n_threads = 2;
}

typedef struct rebuild {
    store_t *s;
    const store_rebuild_opts_t *opts;
    store_rebuild_result_t res;
    uint64_t *keys;
    uint32_t n_items;
    delta_list_t corrections;
    uint32_t *num_users;
    int64_t *sum_pp;
    /* item stats corrections, expected - stored in the snapshot they were computed from
     * (a delta, like S's: applied to whatever the write transaction reads, so a batch
     * committed while the rebuild read is kept) */
    int64_t *d_users, *d_sum_pp;
    /* the upper-triangle run: stored entries hashed by side of the diagonal */
    int upper;
    digest_t side[2]; /* [0] col > row, [1] col < row, each named (min, max, value) */
    /* the profiles in CSR form (cooc_profiles_t) */
    uint64_t *user_start;
    uint32_t *item;
    float *pp;
    uint32_t n_users;
    uint64_t n_entries, cap_entries;
} rebuild_t;

static int rebuild_profile_chunk(uint32_t user, const void *recs, size_t n, void *ud)
{
    rebuild_t *r = ud;
    (void)user;
    if (r->n_entries + n > r->cap_entries)
        return MDB_CORRUPTED; /* more entries than the table's count */
    for (size_t i = 0; i < n; i++) {
        profile_rec_t p;
        memcpy(&p, (const char *)recs + i * sizeof(p), sizeof(p));
        if (p.item >= r->n_items)
            return MDB_CORRUPTED;
        r->item[r->n_entries + i] = p.item;
        r->pp[r->n_entries + i] = p.pp;
        r->num_users[p.item]++;
        r->sum_pp[p.item] += weight_pp_fixed(p.pp);
    }
    r->n_entries += n;
    return 0;
}

/* Profiles of one user come in several GET_MULTIPLE chunks: a new user starts at a new key. */
typedef struct user_walk {
    rebuild_t *r;
    uint32_t last;
    int any;
} user_walk_t;

static int rebuild_user_chunk(uint32_t user, const void *recs, size_t n, void *ud)
{
    user_walk_t *w = ud;
    rebuild_t *r = w->r;
    if (!w->any || user != w->last) {
        if (r->n_users >= r->cap_entries + 1)
            return MDB_CORRUPTED;
        r->user_start[r->n_users++] = r->n_entries;
    }
    w->any = 1;
    w->last = user;
    return rebuild_profile_chunk(user, recs, n, r);
}

/* Read every profile once, sequentially, into memory (16 bytes per entry is 8 here). */
static int load_profiles(rebuild_t *r, MDB_txn *txn)
{
    MDB_stat st;
    int rc = mdb_stat(txn, r->s->profiles, &st);
    if (rc != 0)
        return rc;
    r->cap_entries = st.ms_entries;
    r->user_start = malloc((st.ms_entries + 2) * sizeof(*r->user_start));
    r->item = malloc((st.ms_entries + 1) * sizeof(*r->item));
    r->pp = malloc((st.ms_entries + 1) * sizeof(*r->pp));
    if (!r->user_start || !r->item || !r->pp)
        return ENOMEM;
    user_walk_t w = {r, 0, 0};
    if ((rc = for_each_dups(txn, r->s->profiles, sizeof(profile_rec_t), 0, rebuild_user_chunk,
                            &w)) != 0)
        return rc;
    r->user_start[r->n_users] = r->n_entries;
    return 0;
}

static void note_diff(rebuild_t *r, const char *what, uint32_t a, uint32_t b, double stored,
                      double expected)
{
    if (r->res.first_diff[0])
        return;
    char ia[ITEM_ID_MAX], ib[ITEM_ID_MAX];
    item_key_format(r->keys[a], ia);
    if (b == UINT32_MAX)
        snprintf(r->res.first_diff, sizeof(r->res.first_diff), "%s[%s]: stored %.6f, expected %.6f",
                 what, ia, stored, expected);
    else
        snprintf(r->res.first_diff, sizeof(r->res.first_diff),
                 "%s[%s][%s]: stored %.6f, expected %.6f", what, ia,
                 item_key_format(r->keys[b], ib), stored, expected);
}

static int diff(rebuild_t *r, uint32_t row, uint32_t col, int64_t stored, int64_t expected)
{
    if (row >= r->n_items || col >= r->n_items)
        return MDB_CORRUPTED;
    r->res.s_diffs++;
    note_diff(r, "S", row, col, weight_to_double(stored), weight_to_double(expected));
    return delta_list_add(&r->corrections, row, col, expected - stored) ? ENOMEM : 0;
}

/* The stored records of S, walked a page of duplicates at a time (GET_MULTIPLE). k and v live
 * with the cursor: on a key with a single record, GET_MULTIPLE succeeds without writing v (LMDB
 * 0.9: there is no duplicate sub-page to return), so v must still hold the record the cursor
 * was positioned on. A fresh MDB_val there read garbage: a first row of one entry was skipped,
 * or repaired by adding its value again. */
typedef struct stored {
    MDB_cursor *cur;
    MDB_val k, v;
    uint32_t row;
    const char *recs;
    size_t n, i;
    int end;
    store__ra_t ra;
} stored_t;

static int stored_fill(stored_t *st, int op)
{
    for (;;) {
        int rc = mdb_cursor_get(st->cur, &st->k, &st->v, op);
        if (rc == MDB_NOTFOUND && op == MDB_NEXT_MULTIPLE) {
            op = MDB_NEXT_NODUP;
            continue;
        }
        if (rc == MDB_NOTFOUND) {
            st->end = 1;
            return 0;
        }
        if (rc != 0)
            return rc;
        if (op == MDB_NEXT_NODUP || op == MDB_SET_RANGE) {
            memcpy(&st->row, st->k.mv_data, sizeof(st->row));
            op = MDB_GET_MULTIPLE;
            continue;
        }
        st->recs = st->v.mv_data;
        st->n = st->v.mv_size / sizeof(cooc_rec_t);
        store__readahead(&st->ra, st->v.mv_data);
        st->i = 0;
        if (st->n > 0)
            return 0;
        op = MDB_NEXT_MULTIPLE;
    }
}

static int stored_next(stored_t *st)
{
    if (++st->i < st->n)
        return 0;
    return stored_fill(st, MDB_NEXT_MULTIPLE);
}

/* The upper-triangle run: hash a stored entry into its side's sum; 1 if it is below the
 * diagonal (compared through the hash only), 0 if it is to be compared with the recomputation. */
static int hash_side(rebuild_t *r, uint32_t row, const cooc_rec_t *s)
{
    if (!r->upper)
        return 0;

    struct {
        uint32_t a, b;
        int64_t s;
    } named = {row < s->col ? row : s->col, row < s->col ? s->col : row, s->s};

    int lower = s->col < row;
    digest_add(&r->side[lower], &named, sizeof(named));
    return lower;
}

/* Compare rows [lo, hi) of the block with the stored rows (the cursor is at or past lo). */
static int compare_block(rebuild_t *r, const cooc_block_t *blk, stored_t *st, uint32_t hi)
{
    int rc = 0;
    for (size_t c = 0; rc == 0 && c < blk->n_chunks; c++) {
        const cooc_chunk_t *ch = &blk->chunks[c];
        for (uint32_t row = ch->lo; rc == 0 && row < ch->hi; row++) {
            uint64_t i = ch->row_start[row - ch->lo], e = ch->row_start[row - ch->lo + 1];
            r->res.s_entries += (r->upper ? 2 : 1) * (e - i);
            /* stored rows before this one have no expected entries */
            while (rc == 0 && !st->end && st->row < row) {
                cooc_rec_t s;
                memcpy(&s, st->recs + st->i * sizeof(s), sizeof(s));
                if (hash_side(r, st->row, &s) || (rc = diff(r, st->row, s.col, s.s, 0)) == 0)
                    rc = stored_next(st);
            }
            while (rc == 0 && (i < e || (!st->end && st->row == row))) {
                cooc_rec_t s = {UINT32_MAX, 0};
                int have = !st->end && st->row == row;
                if (have) {
                    memcpy(&s, st->recs + st->i * sizeof(s), sizeof(s));
                    if (hash_side(r, row, &s)) {
                        rc = stored_next(st);
                        continue;
                    }
                }
                uint32_t ecol = i < e ? ch->col[i] : UINT32_MAX;
                if (have && s.col < ecol) {
                    rc = diff(r, row, s.col, s.s, 0);
                } else if (!have || ecol < s.col) {
                    rc = diff(r, row, ecol, 0, ch->s[i]);
                    i++;
                    continue;
                } else {
                    if (s.s != ch->s[i])
                        rc = diff(r, row, ecol, s.s, ch->s[i]);
                    i++;
                }
                if (rc == 0)
                    rc = stored_next(st);
            }
        }
    }
    /* stored rows of the block's range past its last expected row */
    while (rc == 0 && !st->end && st->row < hi) {
        cooc_rec_t s;
        memcpy(&s, st->recs + st->i * sizeof(s), sizeof(s));
        if (hash_side(r, st->row, &s) || (rc = diff(r, st->row, s.col, s.s, 0)) == 0)
            rc = stored_next(st);
    }
    return rc;
}

static int compare_stats(rebuild_t *r, MDB_txn *txn)
{
    for (uint32_t item = 0; item < r->n_items; item++) {
        stats_rec_t rec = {0, 0, 0};
        MDB_val k = {sizeof(item), &item}, v;
        int rc = mdb_get(txn, r->s->stats, &k, &v);
        if (rc == 0)
            memcpy(&rec, v.mv_data, sizeof(rec));
        else if (rc != MDB_NOTFOUND)
            return rc;
        r->res.stats_items += r->num_users[item] > 0;
        r->d_users[item] = (int64_t)r->num_users[item] - (int64_t)rec.num_users;
        r->d_sum_pp[item] = r->sum_pp[item] - rec.sum_pp;
        if (rec.num_users != r->num_users[item] || rec.sum_pp != r->sum_pp[item]) {
            r->res.stats_diffs++;
            note_diff(
                r, rec.num_users != r->num_users[item] ? "num_users" : "sum_pp", item, UINT32_MAX,
                rec.num_users != r->num_users[item] ? rec.num_users : weight_to_double(rec.sum_pp),
                rec.num_users != r->num_users[item] ? r->num_users[item]
                                                    : weight_to_double(r->sum_pp[item]));
        }
    }
    return 0;
}

/*
 * Recompute S row block by row block from the in-memory profiles (algo/cooc, on
 * opts->n_threads threads; a block holds at most mem_bytes / 12 weight terms) and compare each
 * block with the stored rows in one sequential walk of S.
 */
/* The next block of rows from @p lo: as many as fit the budget of weight terms (one at least). */
static uint32_t block_end(const cooc_index_t *ix, uint32_t lo, uint32_t n_items, uint64_t budget,
                          uint64_t *terms)
{
    uint32_t hi = lo;
    *terms = 0;
    while (hi < n_items && (hi == lo || *terms + cooc_index_row_terms(ix, hi) <= budget))
        *terms += cooc_index_row_terms(ix, hi++);
    return hi;
}

/* A block computed on its own thread while the walk compares the one before. */
typedef struct next_block {
    const cooc_index_t *ix;
    uint32_t lo, hi;
    unsigned threads;
    cooc_block_t *blk;
    int rc;
} next_block_t;

static void *next_block_run(void *ud)
{
    next_block_t *b = ud;
    b->rc = cooc_block_compute(b->ix, b->lo, b->hi, b->threads, b->blk);
    return NULL;
}

/*
 * Recompute S block by block and compare each block with the stored rows. The walk of S (one
 * thread: its cursor and the symmetry hash) compares block k while block k + 1 is computed on
 * n_threads others, so the comparison no longer waits for the computation nor the reverse: the
 * two cores stay busy (two blocks in memory instead of one).
 */
static int rebuild_passes(rebuild_t *r, MDB_txn *txn)
{
    cooc_index_t *ix = NULL;
    cooc_block_t blk[2];
    stored_t st = {0};
    uint32_t lo = 0;
    cooc_profiles_t p = {r->n_users, r->n_items, r->user_start, r->item, r->pp};
    int rc = cooc_index_new(&p, r->upper ? COOC_UPPER : 0, &ix);
    if (rc != 0)
        return rc == -EINVAL ? MDB_CORRUPTED : rc == -EOVERFLOW ? EOVERFLOW : ENOMEM;
    cooc_block_init(&blk[0]);
    cooc_block_init(&blk[1]);
    uint64_t budget = r->opts->mem_bytes / 12 ? r->opts->mem_bytes / 12 : 1, total = 0, done = 0;
    unsigned threads = r->opts->n_threads ? r->opts->n_threads : 1;
    for (uint32_t row = 0; row < r->n_items; row++)
        total += cooc_index_row_terms(ix, row);
    if ((rc = mdb_cursor_open(txn, r->s->cooc, &st.cur)) != 0)
        goto out;
    st.k = (MDB_val){sizeof(lo), &lo};
    rc = mdb_cursor_get(st.cur, &st.k, &st.v, MDB_SET_RANGE);
    if (rc == 0) {
        memcpy(&st.row, st.k.mv_data, sizeof(st.row));
        rc = stored_fill(&st, MDB_GET_MULTIPLE);
    } else if (rc == MDB_NOTFOUND) {
        st.end = 1;
        rc = 0;
    }
    r->res.passes = 0;
    uint64_t terms, next_terms = 0;
    uint32_t hi = block_end(ix, lo, r->n_items, budget, &terms);
    if (rc == 0 && lo < r->n_items && cooc_block_compute(ix, lo, hi, threads, &blk[0]) != 0)
        rc = ENOMEM;
    for (unsigned cur = 0; rc == 0 && lo < r->n_items; cur ^= 1) {
        next_block_t nb = {ix, hi, hi, threads, &blk[cur ^ 1], 0};
        pthread_t th;
        int started = 0;
        if (hi < r->n_items) {
            nb.hi = block_end(ix, hi, r->n_items, budget, &next_terms);
            started = pthread_create(&th, NULL, next_block_run, &nb) == 0;
        }
        /* the last block also owns stored rows past the last item (corrupt, but reported) */
        rc = compare_block(r, &blk[cur], &st, hi == r->n_items ? UINT32_MAX : hi);
        if (started)
            pthread_join(th, NULL);
        else if (rc == 0 && nb.lo < nb.hi) /* no thread: compute it here */
            next_block_run(&nb);
        if (rc == 0 && nb.rc != 0)
            rc = ENOMEM;
        if (rc != 0)
            break;
        r->res.passes++;
        done += terms;
        lo = hi, hi = nb.hi, terms = next_terms;
        if (r->opts->progress &&
            r->opts->progress(r->opts->progress_ud, "rebuild",
                              0.999 * (double)done / (double)(total ? total : 1)))
            rc = ATL_ECANCELED;
    }
    /* stored rows when there is no item at all */
    while (rc == 0 && !st.end) {
        cooc_rec_t s;
        memcpy(&s, st.recs + st.i * sizeof(s), sizeof(s));
        if (st.row >= r->n_items || s.col >= r->n_items) {
            rc = MDB_CORRUPTED;
            break;
        }
        if (hash_side(r, st.row, &s) || (rc = diff(r, st.row, s.col, s.s, 0)) == 0)
            rc = stored_next(&st);
    }
out:
    mdb_cursor_close(st.cur);
    cooc_block_destroy(&blk[0]);
    cooc_block_destroy(&blk[1]);
    cooc_index_free(ix);
    return rc;
}

/* The upper triangle with the symmetry hash first; full rows only if S is not clean. */
static int rebuild_compare(rebuild_t *r, MDB_txn *txn)
{
    int rc = load_profiles(r, txn);
    if (rc != 0)
        return rc;
    unsigned passes = 0;
    if (!r->opts->full_rows) {
        r->upper = 1;
        rc = rebuild_passes(r, txn);
        r->upper = 0;
        if (rc != 0)
            return rc;
        if (r->res.s_diffs == 0 && r->side[0].lo == r->side[1].lo && r->side[0].hi == r->side[1].hi)
            return compare_stats(r, txn);
        /* report and repair from full rows: the result and the corrections start afresh */
        passes = r->res.passes;
        memset(&r->res, 0, sizeof(r->res));
        delta_list_clear(&r->corrections);
    }
    if ((rc = rebuild_passes(r, txn)) != 0)
        return rc;
    r->res.passes += passes;
    return compare_stats(r, txn);
}

static int repair_txn(store_t *s, MDB_txn *txn, void *ud)
{
    rebuild_t *r = ud;
    delta_list_t dirty;
    store_counters_t c;
    int rc;
    delta_list_init(&dirty);
    if ((rc = store__cooc_apply(s, txn, &r->corrections, &dirty, INT64_MIN)) != 0)
        goto out;
    /* item stats: the corrections are deltas, added to what this transaction reads */
    for (uint32_t item = 0; item < r->n_items; item++) {
        if (r->d_users[item] == 0 && r->d_sum_pp[item] == 0)
            continue;
        stats_rec_t rec = {0, 0, 0};
        MDB_val k = {sizeof(item), &item}, v;
        if ((rc = mdb_get(txn, s->stats, &k, &v)) == 0)
            memcpy(&rec, v.mv_data, sizeof(rec));
        else if (rc != MDB_NOTFOUND)
            goto out;
        int64_t users = (int64_t)rec.num_users + r->d_users[item];
        if (users < 0 || users > UINT32_MAX) {
            rc = MDB_CORRUPTED;
            goto out;
        }
        rec.num_users = (uint32_t)users;
        rec.sum_pp += r->d_sum_pp[item];
        if (rec.num_users == 0 && rec.sum_pp == 0) {
            rc = mdb_del(txn, s->stats, &k, NULL);
            rc = rc == MDB_NOTFOUND ? 0 : rc;
        } else {
            v.mv_size = sizeof(rec);
            v.mv_data = &rec;
            rc = mdb_put(txn, s->stats, &k, &v, 0);
        }
        if (rc != 0 || (rc = delta_list_add(&dirty, item, 0, 1) ? ENOMEM : 0) != 0)
            goto out;
    }
    if ((rc = delta_list_compact(&dirty) ? ENOMEM : 0) || (rc = store__counters_read(s, txn, &c)) ||
        (rc = store__dirty_mark(s, txn, &dirty, ++c.batches)))
        goto out;
    rc = store__counters_write(s, txn, &c);
out:
    delta_list_destroy(&dirty);
    return rc;
}

int store_rebuild(store_t *s, const store_rebuild_opts_t *o, store_rebuild_result_t *out)
{
    rebuild_t r = {.s = s, .opts = o};
    MDB_txn *txn = NULL;
    int rc;
    delta_list_init(&r.corrections);
    if ((rc = store__read_begin(s, &txn)) != 0 ||
        (rc = store__item_keys_load(s, txn, &r.keys, &r.n_items)) != 0)
        goto out;
    r.num_users = calloc(r.n_items + 1, sizeof(*r.num_users));
    r.sum_pp = calloc(r.n_items + 1, sizeof(*r.sum_pp));
    r.d_users = calloc(r.n_items + 1, sizeof(*r.d_users));
    r.d_sum_pp = calloc(r.n_items + 1, sizeof(*r.d_sum_pp));
    if (!r.num_users || !r.sum_pp || !r.d_users || !r.d_sum_pp) {
        rc = ENOMEM;
        goto out;
    }
    if ((rc = rebuild_compare(&r, txn)) != 0)
        goto out;
    store__read_end(s, txn);
    txn = NULL;
    if (!o->verify_only && (r.res.s_diffs || r.res.stats_diffs) &&
        (rc = delta_list_compact(&r.corrections) ? ENOMEM : 0) == 0)
        rc = store__write(s, repair_txn, &r);
    if (rc == 0 && o->progress)
        o->progress(o->progress_ud, "rebuild", 1.0);
out:
    if (txn)
        store__read_end(s, txn);
    if (rc == 0)
        *out = r.res;
    free(r.keys);
    free(r.num_users);
    free(r.sum_pp);
    free(r.d_users);
    free(r.d_sum_pp);
    free(r.user_start);
    free(r.item);
    free(r.pp);
    delta_list_destroy(&r.corrections);
    return store__err(rc);
}

static int lookup_index(store_t *s, MDB_txn *txn, uint64_t key, uint32_t *out)
{
    MDB_val k = {sizeof(key), &key}, v;
    int rc = mdb_get(txn, s->item_ids, &k, &v);
    if (rc == 0)
        memcpy(out, v.mv_data, sizeof(*out));
    return rc;
}

int store_cooc_get(store_t *s, uint64_t a, uint64_t b, int64_t *out)
{
    MDB_txn *txn;
    MDB_cursor *cur = NULL;
    uint32_t row, col;
    int rc = store__read_begin(s, &txn);
    if (rc != 0)
        return rc;
    if ((rc = lookup_index(s, txn, a, &row)) || (rc = lookup_index(s, txn, b, &col)) ||
        (rc = mdb_cursor_open(txn, s->cooc, &cur)))
        goto out;
    cooc_rec_t rec = {col, 0};
    MDB_val k = {sizeof(row), &row}, v = {sizeof(rec), &rec};
    rc = mdb_cursor_get(cur, &k, &v, MDB_GET_BOTH);
    if (rc == 0)
        memcpy(&rec, v.mv_data, sizeof(rec));
    else if (rc == MDB_NOTFOUND)
        rc = 0;
    if (rc == 0)
        *out = rec.s;
out:
    mdb_cursor_close(cur);
    store__read_end(s, txn);
    return store__err(rc);
}

typedef struct top_entry {
    uint32_t col;
    int64_t s;
} top_entry_t;

static int cmp_top(const void *a, const void *b)
{
    const top_entry_t *x = a, *y = b;
    if (x->s != y->s)
        return x->s > y->s ? -1 : 1;
    return (x->col > y->col) - (x->col < y->col);
}

typedef struct top_key {
    uint64_t key;
    int64_t s;
} top_key_t;

static int cmp_top_key(const void *a, const void *b)
{
    const top_key_t *x = a, *y = b;
    if (x->s != y->s)
        return x->s > y->s ? -1 : 1;
    return (x->key > y->key) - (x->key < y->key);
}

/* The row's entries by S, and item keys for the first k only (issue 10.5: it loaded every item
 * key of the store for each GET /items/<id>, on the daemon's loop). Ties go by dense index. */
int store_cooc_top(store_t *s, uint64_t item, uint32_t k, uint64_t *keys, double *sv,
                   uint32_t *n_out)
{
    MDB_txn *txn;
    MDB_cursor *cur = NULL;
    uint32_t row;
    top_entry_t *e = NULL;
    size_t n = 0, cap = 0;
    int rc = store__read_begin(s, &txn);
    if (rc != 0)
        return rc;
    if ((rc = lookup_index(s, txn, item, &row)) || (rc = mdb_cursor_open(txn, s->cooc, &cur)))
        goto out;
    MDB_val kv = {sizeof(row), &row}, v;
    rc = mdb_cursor_get(cur, &kv, &v, MDB_SET);
    for (rc = rc ? rc : mdb_cursor_get(cur, &kv, &v, MDB_GET_MULTIPLE); rc == 0;
         rc = mdb_cursor_get(cur, &kv, &v, MDB_NEXT_MULTIPLE)) {
        size_t m = v.mv_size / sizeof(cooc_rec_t);
        if (n + m > cap) {
            cap = (n + m) * 2;
            top_entry_t *t = realloc(e, cap * sizeof(*e));
            if (!t) {
                rc = ENOMEM;
                goto out;
            }
            e = t;
        }
        for (size_t i = 0; i < m; i++) {
            cooc_rec_t r;
            memcpy(&r, (const char *)v.mv_data + i * sizeof(r), sizeof(r));
            e[n++] = (top_entry_t){r.col, r.s};
        }
    }
    if (rc == MDB_NOTFOUND)
        rc = 0;
    if (rc != 0)
        goto out;
    if (n > 0) /* an item with no co-occurrence has no array (qsort(NULL) is UB) */
        qsort(e, n, sizeof(*e), cmp_top);
    uint32_t w = (uint32_t)(n < k ? n : k);
    size_t end = w; /* ties at the cut are ordered by item key, as replicas must agree */
    while (end > 0 && end < n && e[end].s == e[w - 1].s)
        end++;
    top_key_t *tk = malloc((end + 1) * sizeof(*tk));
    if (!tk) {
        rc = ENOMEM;
        goto out;
    }
    for (size_t i = 0; i < end && rc == 0; i++) {
        MDB_val ik = {sizeof(e[i].col), &e[i].col}, iv;
        if ((rc = mdb_get(txn, s->item_keys, &ik, &iv)) == 0 && iv.mv_size != sizeof(uint64_t))
            rc = MDB_CORRUPTED;
        if (rc == 0) {
            memcpy(&tk[i].key, iv.mv_data, sizeof(uint64_t));
            tk[i].s = e[i].s;
        }
    }
    if (rc == 0) {
        qsort(tk, end, sizeof(*tk), cmp_top_key);
        for (uint32_t i = 0; i < w; i++) {
            keys[i] = tk[i].key;
            sv[i] = weight_to_double(tk[i].s);
        }
        *n_out = w;
    }
    free(tk);
out:
    mdb_cursor_close(cur);
    store__read_end(s, txn);
    free(e);
    return store__err(rc);
}

int store_item_stats_get(store_t *s, uint64_t item, uint32_t *num_users, int64_t *sum_pp)
{
    MDB_txn *txn;
    uint32_t idx;
    stats_rec_t rec = {0, 0, 0};
    int rc = store__read_begin(s, &txn);
    if (rc != 0)
        return rc;
    if ((rc = lookup_index(s, txn, item, &idx)) == 0) {
        MDB_val k = {sizeof(idx), &idx}, v;
        rc = mdb_get(txn, s->stats, &k, &v);
        if (rc == 0)
            memcpy(&rec, v.mv_data, sizeof(rec));
        else if (rc == MDB_NOTFOUND)
            rc = 0;
    }
    store__read_end(s, txn);
    if (rc == 0) {
        *num_users = rec.num_users;
        *sum_pp = rec.sum_pp;
    }
    return store__err(rc);
}

/* ---- testing aid ------------------------------------------------------------------------- */

typedef struct poke {
    uint64_t row_item, col_item;
    int64_t delta;
} poke_t;

static int poke_txn(store_t *s, MDB_txn *txn, void *ud)
{
    poke_t *p = ud;
    uint32_t row, col;
    delta_list_t d;
    int rc;
    if ((rc = lookup_index(s, txn, p->row_item, &row)) ||
        (rc = lookup_index(s, txn, p->col_item, &col)))
        return rc;
    delta_list_init(&d);
    rc = delta_list_add(&d, row, col, p->delta) ? ENOMEM
                                                : store__cooc_apply(s, txn, &d, NULL, INT64_MIN);
    delta_list_destroy(&d);
    return rc;
}

int store_debug_poke_cooc(store_t *s, uint64_t row_item, uint64_t col_item, int64_t delta)
{
    poke_t p = {row_item, col_item, delta};
    return store__write(s, poke_txn, &p);
}
