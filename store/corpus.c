/*
 * corpus.c: the rows of a corpus file (DESIGN §6) for given items and 2-D positions, joined in
 * one read snapshot from item stats, beatmap metadata and difficulty records. Missing metadata
 * is 0 / empty; a nomod item without a difficulty record takes its stars from the beatmap row's
 * difficultyrating; the release year is that of approved_date, else of last_update.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <lmdb.h>

#include "algo/item.h"
#include "algo/weight.h"
#include "store/internal.h"

static uint16_t year_of(int64_t t)
{
    if (t <= 0)
        return 0;
    time_t tt = (time_t)t;
    struct tm tm;
    if (!gmtime_r(&tt, &tm))
        return 0;
    return (uint16_t)(tm.tm_year + 1900);
}

static uint16_t clamp_u16(double v)
{
    return v <= 0 ? 0 : (v >= 65535 ? 65535 : (uint16_t)(v + 0.5));
}

static int item_stats(store_t *s, MDB_txn *txn, uint64_t key, stats_rec_t *out)
{
    MDB_val k = {sizeof(key), &key}, v;
    memset(out, 0, sizeof(*out));
    int rc = mdb_get(txn, s->item_ids, &k, &v);
    if (rc != 0)
        return rc == MDB_NOTFOUND ? 0 : rc;
    uint32_t idx;
    memcpy(&idx, v.mv_data, sizeof(idx));
    MDB_val ik = {sizeof(idx), &idx};
    rc = mdb_get(txn, s->stats, &ik, &v);
    if (rc == 0)
        memcpy(out, v.mv_data, sizeof(*out));
    return rc == MDB_NOTFOUND ? 0 : rc;
}

/* Fill metadata fields of @p r; strings are appended to the arena at *used. */
static int join_beatmap(store_t *s, MDB_txn *txn, uint64_t key, corpus_row_t *r, char *arena,
                        size_t *used, float *stars_fallback)
{
    uint32_t id = item_key_beatmap(key);
    MDB_val k = {sizeof(id), &id}, v;
    int rc = mdb_get(txn, s->beatmaps, &k, &v);
    if (rc == MDB_NOTFOUND)
        return 0;
    if (rc != 0)
        return rc;
    beatmap_rec_t b;
    if (v.mv_size < sizeof(b))
        return MDB_CORRUPTED;
    memcpy(&b, v.mv_data, sizeof(b));
    size_t strs = (size_t)b.title_len + b.artist_len + b.version_len + b.creator_len;
    if (v.mv_size != sizeof(b) + strs)
        return MDB_CORRUPTED;
    const char *p = (const char *)v.mv_data + sizeof(b);
    r->beatmapset_id = b.beatmapset_id;
    r->total_length = clamp_u16(b.total_length);
    r->bpm = clamp_u16(b.bpm);
    r->ar = b.ar, r->cs = b.cs, r->od = b.od;
    r->year = year_of(b.approved_date ? b.approved_date : b.last_update);
    *stars_fallback = b.stars;
    /* strings: title, (artist skipped: the frontend does not show it), version, creator */
    r->title = arena + *used;
    memcpy(arena + *used, p, b.title_len);
    *used += b.title_len;
    r->version = arena + *used;
    memcpy(arena + *used, p + b.title_len + b.artist_len, b.version_len);
    *used += b.version_len;
    r->creator = arena + *used;
    memcpy(arena + *used, p + b.title_len + b.artist_len + b.version_len, b.creator_len);
    *used += b.creator_len;
    r->title_len = b.title_len, r->version_len = b.version_len, r->creator_len = b.creator_len;
    return 0;
}

static int join_difficulty(store_t *s, MDB_txn *txn, uint64_t key, corpus_row_t *r)
{
    MDB_val k = {sizeof(key), &key}, v;
    int rc = mdb_get(txn, s->difficulty, &k, &v);
    if (rc != 0)
        return rc;
    difficulty_rec_t d;
    memcpy(&d, v.mv_data, sizeof(d));
    r->stars = d.stars, r->aim = d.aim, r->speed = d.speed;
    return 0;
}

/* a beatmap's strings fit the decoder's 2048-byte pool: that bounds a row's share of the arena */
#define ROW_STRINGS    sizeof(((store_event_t *)0)->strings)
#define CORPUS_PAR_MIN 4096 /* rows from which a second thread reads half of them */

typedef struct corpus_job {
    store_t *s;
    const uint64_t *keys;
    const double *xy;
    corpus_row_t *rows;
    char *arena;
    MDB_txn *txn; /* the caller's snapshot */
} corpus_job_t;

/* Rows [lo, hi) in @p txn, their strings from arena + lo * ROW_STRINGS on (rows [0, lo) take
 * at most that much, so two ranges never overlap). */
static int join_rows(const corpus_job_t *j, MDB_txn *txn, uint32_t lo, uint32_t hi)
{
    size_t used = (size_t)lo * ROW_STRINGS;
    int rc = 0;
    for (uint32_t i = lo; i < hi && rc == 0; i++) {
        corpus_row_t *r = &j->rows[i];
        uint64_t key = j->keys[i];
        stats_rec_t st;
        float stars_fallback = 0;
        memset(r, 0, sizeof(*r));
        r->beatmap_id = (int32_t)item_key_beatmap(key);
        r->mods = item_mods_to_legacy(item_key_mods(key));
        r->x = (float)j->xy[2 * (size_t)i];
        r->y = (float)j->xy[2 * (size_t)i + 1];
        if ((rc = item_stats(j->s, txn, key, &st)) != 0)
            break;
        r->num_users = st.num_users;
        r->avg_pp = st.num_users ? (float)(weight_to_double(st.sum_pp) / st.num_users) : 0;
        if ((rc = join_beatmap(j->s, txn, key, r, j->arena, &used, &stars_fallback)) != 0)
            break;
        rc = join_difficulty(j->s, txn, key, r);
        if (rc == MDB_NOTFOUND) {
            rc = 0;
            if (item_key_mods(key) == 0)
                r->stars = stars_fallback;
        }
    }
    return rc;
}

typedef struct corpus_half {
    const corpus_job_t *job;
    uint32_t lo, hi;
    int read; /* joined in a transaction of the caller's snapshot */
    int rc;
} corpus_half_t;

static void *corpus_helper(void *ud)
{
    corpus_half_t *h = ud;
    MDB_txn *txn;
    if (store__read_try_begin(h->job->s, h->job->txn, &txn) != 0)
        return NULL;
    h->rc = join_rows(h->job, txn, h->lo, h->hi);
    h->read = 1;
    store__read_end(h->job->s, txn);
    return NULL;
}

/*
 * Four lookups a row (~0.1 s at full scale, in every refresh): from CORPUS_PAR_MIN rows a
 * helper thread joins the second half in a read transaction of the same snapshot (else, or
 * if it cannot start one now, the caller joins it after its own half).
 */
int store_corpus_rows(store_t *s, const uint64_t *keys, const double *xy, uint32_t n,
                      corpus_row_t *rows, char **arena_out)
{
    char *arena = malloc((size_t)n * ROW_STRINGS + 1);
    corpus_job_t job = {s, keys, xy, rows, arena, NULL};
    int rc = arena ? store__read_begin(s, &job.txn) : -ENOMEM;
    if (rc != 0) {
        free(arena);
        return rc;
    }
    uint32_t half = n >= CORPUS_PAR_MIN ? n / 2 : n;
    corpus_half_t h = {&job, half, n, 0, 0};
    pthread_t th;
    int started = half < n && pthread_create(&th, NULL, corpus_helper, &h) == 0;
    rc = join_rows(&job, job.txn, 0, half);
    if (started)
        pthread_join(th, NULL);
    if (rc == 0)
        rc = h.read ? h.rc : join_rows(&job, job.txn, half, n);
    store__read_end(s, job.txn);
    if (rc != 0) {
        free(arena);
        return store__err(rc);
    }
    *arena_out = arena;
    return 0;
}
