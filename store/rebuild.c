/*
 * rebuild.c: whole-store reads: counts, the canonical digest, and the offline rebuild of S and
 * item stats from the profiles (the "incremental state == full rebuild" check of DESIGN §3).
 *
 * Digest: every logical entry (profile entry, item stats, S entry) is named by item ids, not
 * dense indices, hashed with XXH3-128, and the hashes are summed lane-wise mod 2^64. A sum is a
 * multiset hash: independent of iteration order and of the order items got their indices, and
 * computed in one streaming pass with O(items) memory. It is a consistency check, not a MAC.
 *
 * Rebuild: S is recomputed in passes over row ranges so its memory stays within a budget at full
 * scale (~472M directed entries); each pass walks every profile, accumulates the pair terms of
 * rows in range into a merged delta list, then walks the stored rows of that range side by side
 * and records expected - stored for every difference. Repair applies those corrections with the
 * same code path as ingestion.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lmdb.h>
#include <xxhash.h>

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
    int rc = mdb_cursor_open(txn, dbi, &cur);
    if (rc != 0)
        return rc;
    rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
    while (rc == 0) {
        uint32_t key;
        memcpy(&key, k.mv_data, sizeof(key));
        for (rc = mdb_cursor_get(cur, &k, &v, MDB_GET_MULTIPLE); rc == 0;
             rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT_MULTIPLE)) {
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
    MDB_envinfo info;
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
    mdb_env_info(s->env, &info);
    out->bytes = (uint64_t)(info.me_last_pgno + 1) * st.ms_psize;
    uint64_t free_pages = 0;
    if ((rc = count_free_pages(txn, &free_pages)) != 0)
        goto out;
    out->live_bytes = out->bytes - free_pages * st.ms_psize;
    out->map_size_bytes = info.me_mapsize;
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
}

typedef struct rebuild {
    store_t *s;
    const store_rebuild_opts_t *opts;
    store_rebuild_result_t res;
    uint64_t *keys;
    uint32_t n_items;
    uint32_t lo, hi; /* row range of this pass */
    delta_list_t expected, corrections;
    uint32_t *num_users;
    int64_t *sum_pp;
    /* item stats corrections, expected - stored in the snapshot they were computed from
     * (a delta, like S's: applied to whatever the write transaction reads, so a batch
     * committed while the rebuild read is kept) */
    int64_t *d_users, *d_sum_pp;
    int count_stats;
    /* the current user's profile, gathered across GET_MULTIPLE chunks */
    profile_rec_t *prof;
    size_t n_prof, cap_prof;
    uint32_t user;
    int have_user;
    uint64_t users_done, users_total; /* users_done counts within the current pass */
    unsigned pass;
} rebuild_t;

static int rebuild_flush_user(rebuild_t *r)
{
    const profile_rec_t *p = r->prof;
    for (size_t i = 0; i < r->n_prof; i++) {
        if (p[i].item >= r->n_items)
            return MDB_CORRUPTED;
        if (r->count_stats) {
            r->num_users[p[i].item]++;
            r->sum_pp[p[i].item] += weight_pp_fixed(p[i].pp);
        }
        if (p[i].item < r->lo || p[i].item >= r->hi)
            continue;
        for (size_t j = 0; j < r->n_prof; j++) {
            if (j == i)
                continue;
            if (delta_list_add(&r->expected, p[i].item, p[j].item, weight_pair(p[i].pp, p[j].pp)))
                return ENOMEM;
        }
    }
    r->n_prof = 0;
    r->users_done++;
    return 0;
}

static int rebuild_profile_chunk(uint32_t user, const void *recs, size_t n, void *ud)
{
    rebuild_t *r = ud;
    int rc;
    if (r->have_user && user != r->user && (rc = rebuild_flush_user(r)) != 0)
        return rc;
    r->have_user = 1;
    r->user = user;
    if (r->n_prof + n > r->cap_prof) {
        size_t cap = (r->n_prof + n) * 2;
        profile_rec_t *p = realloc(r->prof, cap * sizeof(*p));
        if (!p)
            return ENOMEM;
        r->prof = p;
        r->cap_prof = cap;
    }
    memcpy(r->prof + r->n_prof, recs, n * sizeof(profile_rec_t));
    r->n_prof += n;
    if (r->opts->progress && (r->users_done & 4095) == 0 &&
        r->opts->progress(
            r->opts->progress_ud, "rebuild",
            (r->pass + (double)r->users_done / (double)(r->users_total ? r->users_total : 1)) /
                r->res.passes * 0.999))
        return ATL_ECANCELED;
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

/* Walk the stored rows [lo, hi) beside the expected entries; record expected - stored. */
static int compare_cooc(rebuild_t *r, MDB_txn *txn)
{
    MDB_cursor *cur;
    uint32_t lo = r->lo;
    MDB_val k = {sizeof(lo), &lo}, v;
    const delta_list_t *e = &r->expected;
    size_t i = 0;
    int rc = mdb_cursor_open(txn, r->s->cooc, &cur);
    if (rc != 0)
        return rc;
    rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
    for (;;) {
        uint64_t skey = UINT64_MAX;
        int64_t sval = 0;
        if (rc == 0) {
            uint32_t row;
            cooc_rec_t rec;
            memcpy(&row, k.mv_data, sizeof(row));
            memcpy(&rec, v.mv_data, sizeof(rec));
            if (row < r->hi) {
                skey = ((uint64_t)row << 32) | rec.col;
                sval = rec.s;
            }
        } else if (rc != MDB_NOTFOUND) {
            break;
        }
        uint64_t ekey = i < e->n ? e->v[i].key : UINT64_MAX;
        if (skey == UINT64_MAX && ekey == UINT64_MAX) {
            rc = 0;
            break;
        }
        uint64_t key = skey < ekey ? skey : ekey;
        int64_t stored = skey == key ? sval : 0, expected = ekey == key ? e->v[i].value : 0;
        if (stored != expected) {
            r->res.s_diffs++;
            note_diff(r, "S", delta_key_row(key), delta_key_col(key), weight_to_double(stored),
                      weight_to_double(expected));
            if (delta_list_add(&r->corrections, delta_key_row(key), delta_key_col(key),
                               expected - stored)) {
                rc = ENOMEM;
                break;
            }
        }
        if (ekey == key)
            i++;
        if (skey == key)
            rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
    }
    r->res.s_entries += e->n;
    mdb_cursor_close(cur);
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
 * Row ranges of the passes, balanced by the stored entries of each row (a proxy for what the
 * recomputation will hold): items are indexed in order of first appearance, so the popular,
 * long rows cluster at low indices and equal index ranges would be very unequal in memory.
 * Each pass gets at most mem_bytes / 48 entries (16 bytes an entry, x2 for the growing merge
 * buffer and x1 for the radix scratch), or a single row if that row alone is larger.
 * @return 0 and bounds[0..passes] (bounds[0] = 0, bounds[passes] = n_items), or an error.
 */
static int pass_bounds(rebuild_t *r, MDB_txn *txn, uint32_t **out, unsigned *passes)
{
    uint64_t *count = calloc((size_t)r->n_items + 1, sizeof(*count));
    uint32_t *b = malloc(((size_t)r->n_items + 2) * sizeof(*b));
    MDB_cursor *cur = NULL;
    MDB_val k, v;
    int rc = (!count || !b) ? ENOMEM : mdb_cursor_open(txn, r->s->cooc, &cur);
    for (rc = rc ? rc : mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0;
         rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT_NODUP)) {
        uint32_t row;
        size_t c;
        memcpy(&row, k.mv_data, sizeof(row));
        if ((rc = mdb_cursor_count(cur, &c)) != 0)
            break;
        if (row < r->n_items)
            count[row] = c;
    }
    mdb_cursor_close(cur);
    if (rc == MDB_NOTFOUND)
        rc = 0;
    if (rc != 0) {
        free(count);
        free(b);
        return rc;
    }
    uint64_t budget = r->opts->mem_bytes / 48 ? r->opts->mem_bytes / 48 : 1, acc = 0;
    unsigned n = 0;
    b[n++] = 0;
    for (uint32_t row = 0; row < r->n_items; row++) {
        if (acc + count[row] > budget && row > b[n - 1]) {
            b[n++] = row;
            acc = 0;
        }
        acc += count[row];
    }
    b[n] = r->n_items;
    free(count);
    *out = b;
    *passes = n;
    return 0;
}

static int rebuild_passes(rebuild_t *r, MDB_txn *txn)
{
    uint32_t *bounds;
    unsigned passes;
    int rc = pass_bounds(r, txn, &bounds, &passes);
    if (rc != 0)
        return rc;
    r->res.passes = passes;
    for (unsigned p = 0; p < passes && rc == 0; p++) {
        r->lo = bounds[p];
        r->hi = bounds[p + 1];
        r->count_stats = p == 0;
        r->have_user = 0;
        r->n_prof = 0;
        r->pass = p;
        r->users_done = 0;
        delta_list_clear(&r->expected);
        if ((rc = for_each_dups(txn, r->s->profiles, sizeof(profile_rec_t), 0,
                                rebuild_profile_chunk, r)) != 0)
            break;
        if (r->have_user && (rc = rebuild_flush_user(r)) != 0)
            break;
        if (delta_list_compact(&r->expected)) {
            rc = ENOMEM;
            break;
        }
        rc = compare_cooc(r, txn);
    }
    free(bounds);
    return rc ? rc : compare_stats(r, txn);
}

static int repair_txn(store_t *s, MDB_txn *txn, void *ud)
{
    rebuild_t *r = ud;
    delta_list_t dirty;
    store_counters_t c;
    int rc;
    delta_list_init(&dirty);
    if ((rc = store__cooc_apply(s, txn, &r->corrections, &dirty)) != 0)
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
    store_stats_t st;
    int rc;
    delta_list_init(&r.expected);
    delta_list_init(&r.corrections);
    if ((rc = store_stats_get(s, 0, &st)) != 0)
        goto out;
    r.users_total = st.users;
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
    if ((rc = rebuild_passes(&r, txn)) != 0)
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
    free(r.prof);
    delta_list_destroy(&r.expected);
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
    rc = delta_list_add(&d, row, col, p->delta) ? ENOMEM : store__cooc_apply(s, txn, &d, NULL);
    delta_list_destroy(&d);
    return rc;
}

int store_debug_poke_cooc(store_t *s, uint64_t row_item, uint64_t col_item, int64_t delta)
{
    poke_t p = {row_item, col_item, delta};
    return store__write(s, poke_txn, &p);
}
