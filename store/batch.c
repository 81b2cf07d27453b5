/*
 * batch.c: applying a batch of events in one write transaction (DESIGN §3, §4).
 *
 * Profile diff -> pair deltas -> S. For each user of the batch (in user order; a user's events
 * in arrival order) the profile is read once, each hiscore row is compared with the entry it
 * would replace, and a row that wins (newer update_time; on a tie the higher pp, so the final
 * state is the maximum under that order and does not depend on arrival order) produces
 *     S[s][t] += W(pp1, pp_t) - W(pp0, pp_t)   and the same for S[t][s]
 * for every other entry t of the profile, W being the fixed-point pair weight (W(pp0, .) = 0
 * when the entry is new). Summing these telescoping integer terms gives exactly the sum of
 * W over the current profiles, i.e. a full rebuild. The pair deltas of the whole batch are
 * merged in memory (algo/delta) and applied in key order; items whose stats changed, and rows
 * with an S entry changed that was or is above T's cut of 2 (store__cooc_apply), are marked
 * dirty with the batch sequence number, so a refresh can clear exactly what it consumed.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <lmdb.h>

#include "algo/delta.h"
#include "algo/graph.h"
#include "algo/item.h"
#include "algo/weight.h"
#include "store/internal.h"

int store_batch_new(store_batch_t **out)
{
    store_batch_t *b = calloc(1, sizeof(*b));
    if (!b)
        return -ENOMEM;
    delta_list_init(&b->pairs);
    delta_list_init(&b->stats);
    delta_list_init(&b->dirty);
    *out = b;
    return 0;
}

void store_batch_free(store_batch_t *b)
{
    if (!b)
        return;
    free(b->events);
    free(b->offsets);
    free(b->dl_buf);
    free(b->dl_at);
    free(b->dl_ids);
    free(b->order);
    free(b->prof);
    free(b->prof_changed);
    delta_list_destroy(&b->pairs);
    delta_list_destroy(&b->stats);
    delta_list_destroy(&b->dirty);
    free(b);
}

void store_batch_clear(store_batch_t *b)
{
    b->n = 0;
    b->n_offsets = 0;
    b->n_dl = 0;
    b->dl_len = 0;
    memset(b->skipped, 0, sizeof(b->skipped));
    memset(b->rejected, 0, sizeof(b->rejected));
}

size_t store_batch_len(const store_batch_t *b)
{
    return b->n;
}

int store_batch_add(store_batch_t *b, const store_event_t *ev)
{
    if (ev->kind == STORE_EVENT_HISCORE && ev->skip != STORE_SKIP_NONE) {
        b->skipped[ev->skip]++;
        return 0;
    }
    if (atl_array_grow((void **)&b->events, &b->cap, b->n + 1, sizeof(*b->events), 1024))
        return -ENOMEM;
    /* copy only the used part of the string pool */
    memcpy(&b->events[b->n], ev, offsetof(store_event_t, strings) + ev->strings_used);
    b->n++;
    return 0;
}

void store_batch_count_reject(store_batch_t *b, store_reject_t why)
{
    if (why > STORE_REJECT_NONE && why < STORE_REJECT_COUNT)
        b->rejected[why]++;
}

int store_batch_set_offset(store_batch_t *b, const char *topic, int32_t partition,
                           int64_t next_offset)
{
    if (strlen(topic) > STORE_TOPIC_NAME_MAX)
        return -EINVAL;
    for (size_t i = 0; i < b->n_offsets; i++) {
        if (b->offsets[i].partition == partition && strcmp(b->offsets[i].topic, topic) == 0) {
            b->offsets[i].next_offset = next_offset;
            return 0;
        }
    }
    if (atl_array_grow((void **)&b->offsets, &b->cap_offsets, b->n_offsets + 1, sizeof(*b->offsets),
                       8))
        return -ENOMEM;
    batch_offset_t *o = &b->offsets[b->n_offsets++];
    strcpy(o->topic, topic);
    o->partition = partition;
    o->next_offset = next_offset;
    return 0;
}

int store_batch_get_offset(const store_batch_t *b, const char *topic, int32_t partition,
                           int64_t *out)
{
    for (size_t i = 0; i < b->n_offsets; i++) {
        if (b->offsets[i].partition == partition && strcmp(b->offsets[i].topic, topic) == 0) {
            *out = b->offsets[i].next_offset;
            return 0;
        }
    }
    return ATL_ENOTFOUND;
}

/* ---- transaction body -------------------------------------------------------------------- */

typedef struct apply_ctx {
    store_batch_t *b;
    store_counters_t counters;
    MDB_cursor *prof_cur;
} apply_ctx_t;

/* Hiscore events ordered by (user, arrival): sort (user << 32 | index) keys. */
static int sort_hiscores(store_batch_t *b, size_t *n_out)
{
    uint64_t *keys = malloc((b->n ? b->n : 1) * sizeof(*keys));
    uint32_t *order = realloc(b->order, (b->n ? b->n : 1) * sizeof(*order));
    if (order)
        b->order = order;
    if (!keys || !order) {
        free(keys);
        return ENOMEM;
    }
    size_t n = 0;
    for (size_t i = 0; i < b->n; i++)
        if (b->events[i].kind == STORE_EVENT_HISCORE)
            keys[n++] = ((uint64_t)b->events[i].u.hiscore.user << 32) | i;
    qsort(keys, n, sizeof(*keys), atl_cmp_u64);
    for (size_t i = 0; i < n; i++)
        order[i] = (uint32_t)keys[i];
    free(keys);
    *n_out = n;
    return 0;
}

/* Dense index of an item, assigning the next one (forever) if it is new. */
static int item_index(store_t *s, MDB_txn *txn, store_batch_t *b, uint64_t key, uint32_t *out)
{
    MDB_val k = {sizeof(key), &key}, v;
    int rc = mdb_get(txn, s->item_ids, &k, &v);
    if (rc == 0) {
        memcpy(out, v.mv_data, sizeof(*out));
        return 0;
    }
    if (rc != MDB_NOTFOUND)
        return rc;
    uint32_t idx = b->next_item++;
    MDB_val iv = {sizeof(idx), &idx}, kv = {sizeof(key), &key};
    if ((rc = mdb_put(txn, s->item_ids, &k, &iv, MDB_NOOVERWRITE)) ||
        (rc = mdb_put(txn, s->item_keys, &iv, &kv, MDB_NOOVERWRITE)))
        return rc;
    *out = idx;
    return 0;
}

static int ensure_prof(store_batch_t *b, size_t n)
{
    if (n <= b->prof_cap)
        return 0;
    size_t cap = b->prof_cap ? b->prof_cap : 256;
    while (cap < n)
        cap *= 2;
    profile_rec_t *p = realloc(b->prof, cap * sizeof(*p));
    if (!p)
        return ENOMEM;
    b->prof = p;
    uint8_t *c = realloc(b->prof_changed, cap);
    if (!c)
        return ENOMEM;
    b->prof_changed = c;
    b->prof_cap = cap;
    return 0;
}

/* Read a user's whole profile (sorted by item) into b->prof. */
static int profile_load(apply_ctx_t *a, uint32_t user, size_t *n_out)
{
    store_batch_t *b = a->b;
    MDB_val k = {sizeof(user), &user}, v;
    size_t n = 0;
    int rc = mdb_cursor_get(a->prof_cur, &k, &v, MDB_SET);
    if (rc == MDB_NOTFOUND) {
        *n_out = 0;
        return 0;
    }
    if (rc != 0)
        return rc;
    for (rc = mdb_cursor_get(a->prof_cur, &k, &v, MDB_GET_MULTIPLE); rc == 0;
         rc = mdb_cursor_get(a->prof_cur, &k, &v, MDB_NEXT_MULTIPLE)) {
        size_t m = v.mv_size / sizeof(profile_rec_t);
        if ((rc = ensure_prof(b, n + m)) != 0)
            return rc;
        memcpy(b->prof + n, v.mv_data, m * sizeof(profile_rec_t));
        n += m;
    }
    if (rc != MDB_NOTFOUND)
        return rc;
    *n_out = n;
    return 0;
}

/* Position of @p item in the sorted profile, or where it would be inserted. */
static size_t profile_find(const profile_rec_t *p, size_t n, uint32_t item)
{
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (p[mid].item < item)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

/* Pair and stats deltas of replacing entry @p at (or inserting at) position i. */
static int emit_deltas(store_batch_t *b, size_t n, size_t i, int existed, const profile_rec_t *nw)
{
    const profile_rec_t *old = &b->prof[i];
    uint32_t s = nw->item;
    for (size_t j = 0; j < n; j++) {
        if (existed && j == i)
            continue;
        const profile_rec_t *t = &b->prof[j];
        int64_t dw = weight_pair(nw->pp, t->pp) - (existed ? weight_pair(old->pp, t->pp) : 0);
        if (dw != 0 && (delta_list_add(&b->pairs, s, t->item, dw) ||
                        delta_list_add(&b->pairs, t->item, s, dw)))
            return ENOMEM;
    }
    int64_t dsum = weight_pp_fixed(nw->pp) - (existed ? weight_pp_fixed(old->pp) : 0);
    if (delta_list_add(&b->stats, s, 0, existed ? 0 : 1) || delta_list_add(&b->stats, s, 1, dsum))
        return ENOMEM;
    return 0;
}

static int profile_store(apply_ctx_t *a, uint32_t user, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (!a->b->prof_changed[i])
            continue;
        profile_rec_t rec = a->b->prof[i];
        MDB_val k = {sizeof(user), &user}, v = {sizeof(rec), &rec};
        int rc = mdb_cursor_get(a->prof_cur, &k, &v, MDB_GET_BOTH);
        unsigned flags = 0;
        if (rc == 0)
            flags = MDB_CURRENT;
        else if (rc != MDB_NOTFOUND)
            return rc;
        v.mv_data = &rec;
        v.mv_size = sizeof(rec);
        if ((rc = mdb_cursor_put(a->prof_cur, &k, &v, flags)) != 0)
            return rc;
    }
    return 0;
}

static int apply_user(store_t *s, MDB_txn *txn, apply_ctx_t *a, const uint32_t *ev_idx, size_t m)
{
    store_batch_t *b = a->b;
    uint32_t user = b->events[ev_idx[0]].u.hiscore.user;
    size_t n;
    int rc = profile_load(a, user, &n);
    if (rc != 0)
        return rc;
    if ((rc = ensure_prof(b, n + m)) != 0)
        return rc;
    memset(b->prof_changed, 0, n + m);
    for (size_t e = 0; e < m; e++) {
        const store_hiscore_t *h = &b->events[ev_idx[e]].u.hiscore;
        uint64_t key = item_key_make(h->beatmap_id, item_mods_from_legacy(h->mods_legacy));
        uint32_t item;
        if ((rc = item_index(s, txn, b, key, &item)) != 0)
            return rc;
        a->counters.events_applied++;
        if (h->update_time > a->counters.newest_update_time)
            a->counters.newest_update_time = h->update_time;
        size_t i = profile_find(b->prof, n, item);
        int existed = i < n && b->prof[i].item == item;
        profile_rec_t nw = {item, h->pp, h->update_time};
        if (existed &&
            !profile_row_wins(h->update_time, h->pp, b->prof[i].update_time, b->prof[i].pp))
            continue;
        if ((rc = emit_deltas(b, n, i, existed, &nw)) != 0)
            return rc;
        if (!existed) {
            memmove(b->prof + i + 1, b->prof + i, (n - i) * sizeof(*b->prof));
            memmove(b->prof_changed + i + 1, b->prof_changed + i, n - i);
            n++;
        }
        b->prof[i] = nw;
        b->prof_changed[i] = 1;
        a->counters.events_changed++;
    }
    return profile_store(a, user, n);
}

static int apply_stats(store_t *s, MDB_txn *txn, store_batch_t *b)
{
    delta_list_t *d = &b->stats;
    for (size_t i = 0; i < d->n;) {
        uint32_t item = delta_key_row(d->v[i].key);
        int64_t dn = 0, dsum = 0;
        for (; i < d->n && delta_key_row(d->v[i].key) == item; i++) {
            if (delta_key_col(d->v[i].key) == 0)
                dn = d->v[i].value;
            else
                dsum = d->v[i].value;
        }
        stats_rec_t rec = {0, 0, 0};
        MDB_val k = {sizeof(item), &item}, v;
        int rc = mdb_get(txn, s->stats, &k, &v);
        if (rc == 0)
            memcpy(&rec, v.mv_data, sizeof(rec));
        else if (rc != MDB_NOTFOUND)
            return rc;
        rec.num_users = (uint32_t)((int64_t)rec.num_users + dn);
        rec.sum_pp += dsum;
        v.mv_size = sizeof(rec);
        v.mv_data = &rec;
        if ((rc = mdb_put(txn, s->stats, &k, &v, 0)) != 0)
            return rc;
        if (delta_list_add(&b->dirty, item, 0, 1))
            return ENOMEM;
    }
    return 0;
}

static int apply_metadata(store_t *s, MDB_txn *txn, const store_event_t *ev)
{
    if (ev->kind == STORE_EVENT_DIFFICULTY) {
        const store_difficulty_t *d = &ev->u.difficulty;
        difficulty_rec_t rec = {d->stars, d->aim, d->speed};
        MDB_val k = {sizeof(d->item), (void *)&d->item}, v = {sizeof(rec), &rec};
        return mdb_put(txn, s->difficulty, &k, &v, 0);
    }
    const store_beatmap_t *m = &ev->u.beatmap;
    char buf[sizeof(beatmap_rec_t) + sizeof(ev->strings)];
    beatmap_rec_t rec = {m->beatmap_id,
                         m->beatmapset_id,
                         m->total_length,
                         m->hit_length,
                         m->bpm,
                         m->cs,
                         m->od,
                         m->ar,
                         m->hp,
                         m->stars,
                         m->approved_date,
                         m->last_update,
                         m->mode,
                         m->title.len,
                         m->artist.len,
                         m->version.len,
                         m->creator.len,
                         0};
    size_t off = sizeof(rec);
    memcpy(buf, &rec, sizeof(rec));
    const store_str_t *strs[] = {&m->title, &m->artist, &m->version, &m->creator};
    for (size_t i = 0; i < ATL_ARRAY_LEN(strs); i++) {
        memcpy(buf + off, ev->strings + strs[i]->off, strs[i]->len);
        off += strs[i]->len;
    }
    uint32_t id = m->beatmap_id;
    MDB_val k = {sizeof(id), &id}, v = {off, buf};
    return mdb_put(txn, s->beatmaps, &k, &v, 0);
}

static int write_offsets(store_t *s, MDB_txn *txn, const store_batch_t *b)
{
    for (size_t i = 0; i < b->n_offsets; i++) {
        const batch_offset_t *o = &b->offsets[i];
        char key[sizeof(o->topic) + sizeof(int32_t)];
        size_t tl = strlen(o->topic);
        memcpy(key, o->topic, tl + 1);
        memcpy(key + tl + 1, &o->partition, sizeof(o->partition));
        MDB_val k = {tl + 1 + sizeof(int32_t), key},
                v = {sizeof(o->next_offset), (void *)&o->next_offset};
        int rc = mdb_put(txn, s->offsets, &k, &v, 0);
        if (rc != 0)
            return rc;
    }
    return 0;
}

static int read_next_item(store_t *s, MDB_txn *txn, uint32_t *out)
{
    MDB_stat st;
    int rc = mdb_stat(txn, s->item_keys, &st);
    if (rc == 0)
        *out = (uint32_t)st.ms_entries; /* indices are dense: 0 .. entries-1 */
    return rc;
}

static int apply_hiscores(store_t *s, MDB_txn *txn, apply_ctx_t *a)
{
    store_batch_t *b = a->b;
    size_t n;
    int rc = sort_hiscores(b, &n);
    if (rc != 0)
        return rc;
    if ((rc = mdb_cursor_open(txn, s->profiles, &a->prof_cur)) != 0)
        return rc;
    for (size_t i = 0; i < n && rc == 0;) {
        size_t j = i + 1;
        uint32_t user = b->events[b->order[i]].u.hiscore.user;
        while (j < n && b->events[b->order[j]].u.hiscore.user == user)
            j++;
        rc = apply_user(s, txn, a, b->order + i, j - i);
        i = j;
    }
    mdb_cursor_close(a->prof_cur);
    a->prof_cur = NULL;
    return rc;
}

static int batch_txn(store_t *s, MDB_txn *txn, void *ud)
{
    apply_ctx_t a = {.b = ud};
    store_batch_t *b = a.b;
    int rc;
    delta_list_clear(&b->pairs);
    delta_list_clear(&b->stats);
    delta_list_clear(&b->dirty);
    if ((rc = store__counters_read(s, txn, &a.counters)) ||
        (rc = read_next_item(s, txn, &b->next_item)) || (rc = apply_hiscores(s, txn, &a)))
        return rc;
    if (delta_list_compact(&b->pairs) || delta_list_compact(&b->stats))
        return ENOMEM;
    if ((rc = store__cooc_apply(s, txn, &b->pairs, &b->dirty,
                                store__s_above(GRAPH_MIN_S_DEFAULT))) ||
        (rc = apply_stats(s, txn, b)))
        return rc;
    a.counters.batches++;
    if (delta_list_compact(&b->dirty))
        return ENOMEM;
    if ((rc = store__dirty_mark(s, txn, &b->dirty, a.counters.batches)) != 0)
        return rc;
    for (size_t i = 0; i < b->n; i++) {
        if (b->events[i].kind == STORE_EVENT_HISCORE)
            continue;
        if ((rc = apply_metadata(s, txn, &b->events[i])) != 0)
            return rc;
        a.counters.metadata_applied++;
    }
    for (int i = 0; i < 3; i++)
        a.counters.events_skipped[i] += b->skipped[i];
    for (int i = 0; i < STORE_REJECT_COUNT; i++)
        a.counters.events_rejected[i] += b->rejected[i];
    if ((rc = write_offsets(s, txn, b)) != 0 || (rc = store__dead_letters_put(s, txn, b)) != 0)
        return rc;
    return store__counters_write(s, txn, &a.counters);
}

int store_batch_commit(store_t *s, store_batch_t *b)
{
    return store__write(s, batch_txn, b);
}
