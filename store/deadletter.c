/*
 * deadletter.c: dead letters kept in the store until the broker has them (issue 10.8).
 *
 * A rejected message's source offset is stored with its batch, so its dead letter must be as
 * durable as that offset: otherwise a crash between the commit and the broker's acknowledgement
 * loses it (measured: 21 of 40 lost with the dead-letter topic's leader down). The batch writes
 * each dead letter into the `dlq` table in its own transaction; the daemon produces it after the
 * commit and deletes it when the delivery report says it arrived; whatever is still in the table
 * at start is produced again. At-least-once: a crash after delivery, before the delete, sends a
 * duplicate. A batch dropped before its commit (a revoke with a failed commit) takes its dead
 * letters with it, so the re-read messages are not dead-lettered twice (issue 10.10).
 *
 * Record layout (little-endian, unaligned): i32 partition, i64 offset, u64 original_len,
 * u16 topic_len, u16 reason_len, u32 error_len, u32 key_len, u32 value_len, then the bytes of
 * topic, reason, error, key, value. Ids are a counter in meta ("dlq_next"), never reused.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <lmdb.h>

#include "store/internal.h"

#define HDR_BYTES (4 + 8 + 8 + 2 + 2 + 4 + 4 + 4)
#define ERR_MAX   1024
#define TOPIC_MAX 255

static size_t put(char *p, const void *v, size_t n)
{
    if (n)
        memcpy(p, v, n);
    return n;
}

static size_t record_len(const char *p)
{
    uint16_t tl, rl;
    uint32_t el, kl, vl;
    memcpy(&tl, p + 20, 2), memcpy(&rl, p + 22, 2);
    memcpy(&el, p + 24, 4), memcpy(&kl, p + 28, 4), memcpy(&vl, p + 32, 4);
    return HDR_BYTES + (size_t)tl + rl + el + kl + vl;
}

int store_batch_add_dead_letter(store_batch_t *b, const store_dead_letter_t *dl, size_t max_value)
{
    size_t tl = strnlen(dl->topic, TOPIC_MAX), rl = strnlen(dl->reason, 64),
           el = strnlen(dl->error, ERR_MAX), kl = dl->key_len > 65536 ? 65536 : dl->key_len,
           vl = dl->value_len > max_value ? max_value : dl->value_len;
    size_t need = HDR_BYTES + tl + rl + el + kl + vl;
    if (atl_array_grow((void **)&b->dl_buf, &b->dl_cap, b->dl_len + need, 1, 4096) ||
        atl_array_grow((void **)&b->dl_at, &b->cap_dl, b->n_dl + 1, sizeof(*b->dl_at), 16) ||
        atl_array_grow((void **)&b->dl_ids, &b->cap_dl_ids, b->n_dl + 1, sizeof(*b->dl_ids), 16))
        return -ENOMEM;
    char *p = b->dl_buf + b->dl_len;
    uint16_t t16 = (uint16_t)tl, r16 = (uint16_t)rl;
    uint32_t e32 = (uint32_t)el, k32 = (uint32_t)kl, v32 = (uint32_t)vl;
    uint64_t orig = dl->value_len;
    size_t o = 0;
    o += put(p + o, &dl->partition, 4);
    o += put(p + o, &dl->offset, 8);
    o += put(p + o, &orig, 8);
    o += put(p + o, &t16, 2);
    o += put(p + o, &r16, 2);
    o += put(p + o, &e32, 4);
    o += put(p + o, &k32, 4);
    o += put(p + o, &v32, 4);
    o += put(p + o, dl->topic, tl);
    o += put(p + o, dl->reason, rl);
    o += put(p + o, dl->error, el);
    o += put(p + o, dl->key, kl);
    o += put(p + o, dl->value, vl);
    b->dl_at[b->n_dl] = b->dl_len;
    b->dl_ids[b->n_dl] = 0;
    b->n_dl++;
    b->dl_len += o;
    return 0;
}

size_t store_batch_dead_letter_count(const store_batch_t *b)
{
    return b->n_dl;
}

size_t store_batch_dead_letter_bytes(const store_batch_t *b)
{
    return b->dl_len;
}

/* The views of a record; strings are not NUL-terminated in it, so they are copied to @p strs
 * (topic, reason, error; each NUL-terminated). */
static void record_view(const char *p, store_dead_letter_t *out, char *strs, size_t strs_cap)
{
    uint16_t tl, rl;
    uint32_t el, kl, vl;
    memcpy(&out->partition, p, 4);
    memcpy(&out->offset, p + 4, 8);
    memcpy(&out->original_len, p + 12, 8);
    memcpy(&tl, p + 20, 2), memcpy(&rl, p + 22, 2);
    memcpy(&el, p + 24, 4), memcpy(&kl, p + 28, 4), memcpy(&vl, p + 32, 4);
    const char *q = p + HDR_BYTES;
    size_t need = (size_t)tl + rl + el + 3;
    if (need > strs_cap) { /* cannot happen: the limits above bound it */
        tl = rl = 0, el = 0;
    }
    memcpy(strs, q, tl), strs[tl] = '\0';
    out->topic = strs;
    memcpy(strs + tl + 1, q + tl, rl), strs[tl + 1 + rl] = '\0';
    out->reason = strs + tl + 1;
    memcpy(strs + tl + rl + 2, q + tl + rl, el), strs[tl + rl + 2 + el] = '\0';
    out->error = strs + tl + rl + 2;
    q += (size_t)tl + rl + el;
    out->key = q, out->key_len = kl;
    out->value = q + kl, out->value_len = vl;
}

/* strings of the last record viewed through store_batch_dead_letter_get (one thread: the
 * daemon's loop, which owns its batch) */
static _Thread_local char view_strs[TOPIC_MAX + 64 + ERR_MAX + 8];

void store_batch_dead_letter_get(const store_batch_t *b, size_t i, store_dead_letter_t *out,
                                 uint64_t *id)
{
    record_view(b->dl_buf + b->dl_at[i], out, view_strs, sizeof(view_strs));
    *id = b->dl_ids[i];
}

int store__dead_letters_put(store_t *s, MDB_txn *txn, store_batch_t *b)
{
    if (b->n_dl == 0)
        return 0;
    if (!s->dlq)
        return MDB_INCOMPATIBLE;
    MDB_val mk = {strlen("dlq_next"), "dlq_next"}, v;
    uint64_t next = 1;
    int rc = mdb_get(txn, s->meta, &mk, &v);
    if (rc == 0 && v.mv_size == sizeof(next))
        memcpy(&next, v.mv_data, sizeof(next));
    else if (rc != MDB_NOTFOUND && rc != 0)
        return rc;
    for (size_t i = 0; i < b->n_dl; i++) {
        uint64_t id = next++;
        const char *p = b->dl_buf + b->dl_at[i];
        MDB_val k = {sizeof(id), &id}, d = {record_len(p), (void *)p};
        if ((rc = mdb_put(txn, s->dlq, &k, &d, 0)) != 0)
            return rc;
        b->dl_ids[i] = id; /* rewritten by a rerun after map growth: same values */
    }
    v.mv_size = sizeof(next);
    v.mv_data = &next;
    return mdb_put(txn, s->meta, &mk, &v, 0);
}

int store_dead_letters_each(store_t *s, store_dead_letter_cb cb, void *ud)
{
    MDB_txn *txn;
    MDB_cursor *cur = NULL;
    MDB_val k, v;
    char strs[sizeof(view_strs)];
    if (!s->dlq)
        return 0;
    int rc = store__read_begin(s, &txn);
    if (rc != 0)
        return rc;
    if ((rc = mdb_cursor_open(txn, s->dlq, &cur)) == 0) {
        for (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0;
             rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
            uint64_t id;
            store_dead_letter_t dl;
            if (k.mv_size != sizeof(id) || v.mv_size < HDR_BYTES ||
                record_len(v.mv_data) != v.mv_size) {
                rc = MDB_CORRUPTED;
                break;
            }
            memcpy(&id, k.mv_data, sizeof(id));
            record_view(v.mv_data, &dl, strs, sizeof(strs));
            if ((rc = cb(ud, id, &dl)) != 0)
                break;
        }
        if (rc == MDB_NOTFOUND)
            rc = 0;
    }
    mdb_cursor_close(cur);
    store__read_end(s, txn);
    return store__err(rc);
}

typedef struct del {
    const uint64_t *ids;
    size_t n;
} del_t;

static int delete_txn(store_t *s, MDB_txn *txn, void *ud)
{
    const del_t *d = ud;
    for (size_t i = 0; i < d->n; i++) {
        uint64_t id = d->ids[i];
        MDB_val k = {sizeof(id), &id};
        int rc = mdb_del(txn, s->dlq, &k, NULL);
        if (rc != 0 && rc != MDB_NOTFOUND)
            return rc;
    }
    return 0;
}

int store_dead_letters_delete(store_t *s, const uint64_t *ids, size_t n)
{
    del_t d = {ids, n};
    if (n == 0 || !s->dlq)
        return 0;
    return store__write(s, delete_txn, &d);
}
