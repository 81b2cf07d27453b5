/*
 * store.h: atlasd's persistent state, the only public header of store/ (the lmdb.h model).
 *
 * One LMDB environment in a directory holds (DESIGN §4): items (id <-> dense index), item stats,
 * profiles, the co-occurrence matrix S, dirty rows, beatmap metadata and difficulty, Kafka
 * offsets, counters and a format version. No MDB_* type or code crosses this header: every
 * LMDB code is translated into an atl.h code.
 *
 * Exactness: S, item stats and profiles are integers or stored floats only, and every batch is
 * one write transaction, so the incremental state equals store_rebuild()'s recomputation bit
 * for bit, whatever the batch boundaries or arrival order (see DESIGN §3 and store.c).
 *
 * Thread-safety: a store_t may be shared by threads; write functions serialise on LMDB's writer
 * lock. A batch object belongs to one thread at a time.
 */
#ifndef ATL_STORE_H
#define ATL_STORE_H

#include <stddef.h>
#include <stdint.h>

#include "algo/atl.h"
#include "algo/corpus.h"

#define STORE_FORMAT_VERSION 1u

typedef struct store store_t;

typedef struct store_opts {
    uint64_t map_size_bytes; /* initial map size; grows x2 on demand (default 1 GiB) */
    int read_only;           /* open without write access */
    int no_sync;             /* skip fsync per commit (bulk import); store_sync() at the end */
} store_opts_t;

/** Fill @p o with defaults. */
void store_opts_default(store_opts_t *o);

/**
 * Open (creating if needed) the store in directory @p dir, which must exist. A store is created
 * only in a new LMDB file (none, 0 bytes, or an empty main database); a refusal changes nothing.
 * @return 0 and *out; -errno; ATL_EVERSION if the store was written in another format version
 *         (or lock.mdb by another LMDB library), read-only or not; ATL_ENOTSTORE for an LMDB
 *         file of another program (or one without a format version); ATL_ECORRUPT for a
 *         damaged data file or one shorter than its pages; ATL_ENOTFOUND read-only when
 *         nothing was ever stored; ATL_ESTORE for other LMDB failures.
 * The handle must be released with store_close().
 */
int store_open(const char *dir, const store_opts_t *o, store_t **out);

/**
 * The operator's message for store_open(@p dir) failing with @p rc (NUL-terminated in @p buf):
 * for ATL_EVERSION the store's format version and this build's, newer or older, and what to
 * run instead; for the other refusals what the file is. Reads the directory without its lock.
 */
void store_open_strerror(const char *dir, int rc, char *buf, size_t len);

/** Close the store; a NULL argument is a no-op. */
void store_close(store_t *s);

/** Flush to disk (for stores opened with no_sync). @return 0 or an error code. */
int store_sync(store_t *s);

/**
 * Make the calling thread one that never waits for map growth (the daemon's event loop, issue
 * 10.4): when its write transaction finds the map full while another thread holds a read
 * snapshot, the write fails with ATL_EMAPFULL at once (the caller retries later) instead of
 * waiting for the reader. Call once, before other threads use the store.
 */
void store_nowait_thread_set(store_t *s);

/**
 * How many read and write transactions the no-wait thread (store_nowait_thread_set) has begun
 * since the store was opened, and how many map resizes it did. The daemon's loop should do none
 * once serving (issue 10.5: a transaction there can wait for LMDB's writer lock or the
 * map-resize lock, and a read can be unbounded; a resize unmaps and maps the whole store, which
 * took 168 ms at full scale); the daemon publishes these counts and a test checks they stay
 * put. Call from the no-wait thread only (the counts are its own, unsynchronised).
 */
void store_nowait_txns_get(const store_t *s, uint64_t *reads, uint64_t *writes, uint64_t *resizes);

/**
 * Grow the map ahead of need, without waiting: if less than @p min_free_frac of the map is
 * free (counting pages past the file's end only; freed pages are a bonus) and no transaction
 * is open in this process, double it. Meant for the writing thread between its commits, so
 * that commits rarely find the map full while a long reader (refresh, rebuild) holds it. Not
 * for an event loop: the check is cheap, but a growth unmaps and maps the whole store (168 ms
 * with 9.5 GB resident).
 * @return 1 if the map grew, 0 if not needed, ATL_EBUSY-like -EBUSY if readers or writers
 *         are active (try again later), or an error.
 */
int store_map_grow_ahead(store_t *s, double min_free_frac);

/* ---- events (DESIGN §2) ------------------------------------------------------------------ */

typedef enum store_event_kind {
    STORE_EVENT_HISCORE = 1,
    STORE_EVENT_BEATMAP = 2,
    STORE_EVENT_DIFFICULTY = 3,
} store_event_kind_t;

/** Why a message was rejected; names (store_reject_name) are stable metric labels. */
typedef enum store_reject {
    STORE_REJECT_NONE = 0,
    STORE_REJECT_OVERSIZE,
    STORE_REJECT_BAD_UTF8,
    STORE_REJECT_NOT_JSON,
    STORE_REJECT_NOT_OBJECT,
    STORE_REJECT_UNKNOWN_KIND,
    STORE_REJECT_MISSING_FIELD,
    STORE_REJECT_WRONG_TYPE,
    STORE_REJECT_BAD_VALUE,
    STORE_REJECT_DUPLICATE_KEY,
    STORE_REJECT_BAD_TIME,
    STORE_REJECT_COUNT
} store_reject_t;

/** Why a valid hiscore row does not enter any profile. */
typedef enum store_skip {
    STORE_SKIP_NONE = 0,
    STORE_SKIP_MODE,   /* mode != 0 */
    STORE_SKIP_LOW_PP, /* pp below min_pp */
} store_skip_t;

typedef struct store_hiscore {
    uint32_t user;
    uint32_t beatmap_id;
    uint32_t mods_legacy; /* osu! API v1 bitmask as received */
    int mode;
    float pp;
    int64_t update_time; /* unix seconds, UTC */
} store_hiscore_t;

typedef struct store_str {
    uint16_t off, len; /* into store_event_t.strings */
} store_str_t;

typedef struct store_beatmap {
    uint32_t beatmap_id, beatmapset_id;
    uint32_t total_length, hit_length;
    float bpm, cs, od, ar, hp, stars;
    int64_t approved_date, last_update; /* unix seconds, 0 when absent */
    int mode;
    store_str_t title, artist, version, creator;
} store_beatmap_t;

typedef struct store_difficulty {
    uint64_t item; /* item key (algo/item.h) */
    float stars, aim, speed;
} store_difficulty_t;

typedef struct store_event {
    store_event_kind_t kind;
    store_skip_t skip; /* hiscores only */

    union {
        store_hiscore_t hiscore;
        store_beatmap_t beatmap;
        store_difficulty_t difficulty;
    } u;

    size_t strings_used;
    char strings[2048]; /* UTF-8 bytes of the beatmap strings, not NUL-terminated */
} store_event_t;

/**
 * The topic a message came from (DESIGN §2). It decides which kinds of row the message may be:
 * guessing the kind from the keys present lets a hiscore row that lost its "user" pass as a
 * beatmap row (which replaces that beatmap's stored metadata) and a row with "user" on the
 * beatmaps topic pass as a play.
 */
typedef enum store_topic {
    STORE_TOPIC_ANY = 0,  /* kind from the keys present: file import, where kinds mix (default) */
    STORE_TOPIC_HISCORES, /* always a hiscore_updates row: without "user" it is missing_field */
    STORE_TOPIC_BEATMAPS, /* a beatmaps row or a difficulty record; with "user" unknown_kind */
} store_topic_t;

typedef struct store_decode_opts {
    store_topic_t topic; /* where the message came from (default STORE_TOPIC_ANY) */
    size_t max_bytes;    /* larger messages are rejected (default 65536) */
    double min_pp;       /* hiscores below are valid but skipped (default 75) */
    /* an update_time more than max_future_s past now_s is bad_time (default 86400): a time in
     * the far future would pin its profile entry forever (every later real update is "older") */
    int64_t max_future_s;
    int64_t now_s; /* the reference "now", unix seconds; 0: the wall clock at decode time */
} store_decode_opts_t;

/** Fill @p o with defaults. */
void store_decode_opts_default(store_decode_opts_t *o);

/**
 * Decode and validate one message (a JSON object of one of the kinds of DESIGN §2).
 *
 * The kind follows @p o->topic: STORE_TOPIC_HISCORES always decodes a hiscore row (no "user" is
 * missing_field); STORE_TOPIC_BEATMAPS rejects a row with "user" (unknown_kind), else a row with
 * "score_id" is a difficulty record and one with "beatmap_id" a beatmap row; STORE_TOPIC_ANY
 * picks hiscore, difficulty, beatmap by the first of "user", "score_id", "beatmap_id" present.
 * On every topic a beatmap row needs beatmapset_id and title (it replaces the stored record).
 * A Debezium envelope or schema wrapper is unwrapped first; its keys (schema, payload, before,
 * after, source, op) must each appear once (duplicate_key). A string or key holding an escaped
 * NUL (\u0000) is bad_value.
 *
 * @param[in]  o      options; o->topic must be a store_topic_t.
 * @param[out] out    the event; written only on success.
 * @param[out] why    on ATL_EBADEVENT, the rejection class; may be NULL.
 * @param[out] errbuf on failure, a message naming the field and value.
 * @return 0, ATL_EBADEVENT, -ENOMEM, or -EINVAL (o->topic out of range: a caller bug, not a
 *         bad message). Never crashes on any input.
 */
int store_event_decode(const void *buf, size_t len, const store_decode_opts_t *o,
                       store_event_t *out, store_reject_t *why, char *errbuf, size_t errlen);

/* A CSV cell as the JSON value store_event_decode_fields() decodes it as: empty, NULL and \N
 * are null; numbers are numbers; anything else a string (NULL without memory). `atlasctl
 * produce` sends CSV rows as these values, so they type alike on both paths. */
struct cJSON *store_cell_value(const char *s);

/**
 * Decode a row given as column names and text cells (CSV import). Empty cells, NULL and \N are
 * SQL NULL; cells that parse as numbers are numbers. Same validation, topic rule and results as
 * store_event_decode().
 */
int store_event_decode_fields(const char *const *names, const char *const *values, size_t n,
                              const store_decode_opts_t *o, store_event_t *out, store_reject_t *why,
                              char *errbuf, size_t errlen);

/** Stable name of a rejection class, e.g. "missing_field". */
const char *store_reject_name(store_reject_t r);

/**
 * Parse `2024-05-01T12:03:10Z` (ISO 8601, optional fraction and offset) or `2024-05-01 12:03:10`
 * (MySQL DATETIME, UTC) into unix seconds. @return 0 or -EINVAL.
 */
int store_time_parse(const char *s, int64_t *out);

/* ---- batches: the only write path for events --------------------------------------------- */

typedef struct store_batch store_batch_t;

/** Counters persisted in the store, updated in the same transaction as the data. */
typedef struct store_counters {
    uint64_t events_applied;    /* valid hiscores that reached a profile comparison */
    uint64_t events_changed;    /* of those, rows that changed a profile entry */
    uint64_t events_skipped[3]; /* by store_skip_t (index 0 unused) */
    uint64_t events_rejected[STORE_REJECT_COUNT]; /* by store_reject_t (index 0 unused) */
    uint64_t metadata_applied;                    /* beatmap and difficulty upserts */
    uint64_t batches;           /* committed batches; also the dirty-mark sequence */
    int64_t newest_update_time; /* max update_time of applied hiscores */
} store_counters_t;

/** @return 0 and a new empty batch in *out, or -ENOMEM. Free with store_batch_free(). */
int store_batch_new(store_batch_t **out);

/** Free a batch; NULL is a no-op. */
void store_batch_free(store_batch_t *b);

/** Empty the batch (events, offsets, counts), keeping its memory. */
void store_batch_clear(store_batch_t *b);

/** Number of events in the batch. */
size_t store_batch_len(const store_batch_t *b);

/**
 * Copy a decoded event into the batch. Skipped hiscores are only counted.
 * @return 0 or -ENOMEM.
 */
int store_batch_add(store_batch_t *b, const store_event_t *ev);

/** Count a rejected message in this batch (persisted with it). */
void store_batch_count_reject(store_batch_t *b, store_reject_t why);

/* ---- dead letters (issue 10.8: at-least-once, durable) -------------------------------- */

/** A rejected message on its way to the dead-letter topic. */
typedef struct store_dead_letter {
    const char *topic; /* source topic, partition and offset */
    int32_t partition;
    int64_t offset;
    const void *key, *value; /* the original bytes (value maybe truncated, see below) */
    size_t key_len, value_len;
    uint64_t original_len; /* the value's length before truncation (== value_len if none) */
    const char *reason, *error;
} store_dead_letter_t;

/**
 * Add a dead letter to the batch: it is written durably in the batch's own transaction, so the
 * source offset and the dead letter commit together, and the caller produces it only after the
 * commit and deletes it (store_dead_letters_delete) once the broker acknowledged it; pending
 * ones are produced again after a restart. The value is copied, truncated to @p max_value
 * bytes (original_len keeps the real length). @return 0 or -ENOMEM.
 */
int store_batch_add_dead_letter(store_batch_t *b, const store_dead_letter_t *dl, size_t max_value);

/** Dead letters in the batch; after a successful commit each has its store id. */
size_t store_batch_dead_letter_count(const store_batch_t *b);

/** Bytes the batch's dead letters hold (their values and names). */
size_t store_batch_dead_letter_bytes(const store_batch_t *b);

/** The i-th dead letter of a committed batch and its id; its strings are valid until the next
 * call on this thread, its bytes until the batch is cleared. */
void store_batch_dead_letter_get(const store_batch_t *b, size_t i, store_dead_letter_t *out,
                                 uint64_t *id);

/** Called for each pending dead letter in id order; pointers valid during the call only.
 * Non-zero stops the walk and is returned. */
typedef int (*store_dead_letter_cb)(void *ud, uint64_t id, const store_dead_letter_t *dl);

/** Walk the pending (not yet delivered) dead letters. @return 0, the callback's value, or an
 * error. */
int store_dead_letters_each(store_t *s, store_dead_letter_cb cb, void *ud);

/** Delete delivered dead letters (ids that are gone already are ignored). @return 0 or error. */
int store_dead_letters_delete(store_t *s, const uint64_t *ids, size_t n);

/* The longest topic name Kafka allows (its Topic.MAX_NAME_LENGTH): every offset key fits. */
#define STORE_TOPIC_NAME_MAX 249

/**
 * Record that after this batch, @p topic / @p partition resumes at @p next_offset.
 * @return 0, -EINVAL (topic longer than STORE_TOPIC_NAME_MAX bytes), or -ENOMEM.
 */
int store_batch_set_offset(store_batch_t *b, const char *topic, int32_t partition,
                           int64_t next_offset);

/**
 * The offset store_batch_set_offset() recorded for @p topic / @p partition in this batch (after
 * a commit: what the store now holds for it, without reading it back).
 * @return 0 and *out, or ATL_ENOTFOUND (the batch has no offset for that partition).
 */
int store_batch_get_offset(const store_batch_t *b, const char *topic, int32_t partition,
                           int64_t *out);

/**
 * Apply the batch in ONE write transaction: profiles, item stats, S (deltas merged in memory,
 * applied in key order), dirty rows, metadata, offsets and counters. On MDB_MAP_FULL the map is
 * doubled and the transaction retried. The batch is left intact (call store_batch_clear()).
 * @return 0, ATL_EMAPFULL, ATL_ESTORE, -ENOMEM; on error nothing was written.
 */
int store_batch_commit(store_t *s, store_batch_t *b);

/* ---- reading ----------------------------------------------------------------------------- */

/**
 * Next offset stored for a topic/partition. @return 0 and *out, ATL_ENOTFOUND, or an error.
 */
int store_offset_get(store_t *s, const char *topic, int32_t partition, int64_t *out);

/**
 * Every stored next offset, as a JSON object text {"topic":{"partition":offset,...},...}
 * (malloc'd; the caller frees). @return 0 or an error.
 */
int store_offsets_json(store_t *s, char **out);

/** The persisted counters. @return 0 or an error. */
int store_counters_get(store_t *s, store_counters_t *out);

typedef struct store_stats {
    uint64_t users, items, retained, pairs, profile_entries, dirty;
    uint64_t bytes;          /* bytes of the data file in use (up to the last page) */
    uint64_t live_bytes;     /* bytes minus LMDB's free pages (reusable copy-on-write pages) */
    uint64_t map_size_bytes; /* current map size */
    char digest[33];         /* 128-bit hex; "" unless requested */
} store_stats_t;

/**
 * Counts over the store and, with @p with_digest, a digest of the canonical content of profiles,
 * item stats and S: keyed by item ids, not dense indices, and independent of insertion order, so
 * two stores hold the same state exactly when their digests are equal.
 * @return 0 or an error code.
 */
int store_stats_get(store_t *s, int with_digest, store_stats_t *out);

/**
 * S[a][b] of two items (item keys), in fixed point (WEIGHT_ONE = 1.0); 0 when absent.
 * @return 0 and *out, ATL_ENOTFOUND if either item is unknown, or an error.
 */
int store_cooc_get(store_t *s, uint64_t a, uint64_t b, int64_t *out);

/**
 * The @p k largest entries of an item's S row, largest first (ties: lower item key first).
 * @param[out] keys, s  at least k entries each; *n_out the number written.
 * @return 0, ATL_ENOTFOUND if the item is unknown, or an error.
 */
int store_cooc_top(store_t *s, uint64_t item, uint32_t k, uint64_t *keys, double *sv,
                   uint32_t *n_out);

/**
 * num_users and fixed-point sum of pp of an item (item key).
 * @return 0, ATL_ENOTFOUND if the item is unknown, or an error.
 */
int store_item_stats_get(store_t *s, uint64_t item, uint32_t *num_users, int64_t *sum_pp);

/**
 * One row of S restricted to retained items: @p row and @p cols are positions in the retained
 * list (sorted by item key), @p s the co-occurrence as a double. Arrays are valid during the
 * call only. @return 0 to continue, non-zero to stop (returned by the caller).
 */
typedef int (*store_row_cb)(void *ud, uint32_t row, const uint32_t *cols, const double *s,
                            size_t n);

/**
 * In one read snapshot: the retained items (DESIGN §3 rule) sorted by item key, then every
 * retained row of S over retained columns, in that order, through @p cb: the entries with
 * S > @p min_s only (0: every stored entry; the refresh's 2 drops ~75% of them before any work).
 * @param[out] keys  malloc'd retained item keys (caller frees); @p n their count.
 * @return 0, the callback's non-zero value, or an error.
 */
int store_retained_rows(store_t *s, double min_s, store_row_cb cb, void *ud, uint64_t **keys,
                        uint32_t *n);

/** store_retained_rows_par(): called once, before any row, with the number of retained items. */
typedef int (*store_rows_begin_cb)(void *ud, uint32_t n_retained);

/** store_retained_rows_par()'s row callback: as store_row_cb, run by thread @p tid
 * (0 .. n_threads - 1), concurrently with the other threads' calls (never two calls of one tid
 * at once, never one row twice). */
typedef int (*store_row_par_cb)(void *ud, unsigned tid, uint32_t row, const uint32_t *cols,
                                const double *s, size_t n);

/**
 * store_retained_rows() reading only the rows whose item key is in @p only (sorted, @p n_only
 * keys; keys that are not retained are ignored; NULL: every row), on @p n_threads threads: the
 * caller's, and helpers that read in their own read transactions of the same snapshot (the
 * same LMDB transaction id as the caller's, else a helper reads nothing and the caller reads
 * its share). Rows go in blocks of 32, block b to thread b mod n_threads (one thread: in
 * order); @p keys still receives every retained item. @p begin may be NULL. The first error
 * stops every thread and is returned.
 */
int store_retained_rows_par(store_t *s, const uint64_t *only, uint32_t n_only, double min_s,
                            unsigned n_threads, store_rows_begin_cb begin, store_row_par_cb cb,
                            void *ud, uint64_t **keys, uint32_t *n);

/**
 * Corpus rows (DESIGN §6) for @p n items (item keys) at 2-D positions @p xy (n x 2, already in
 * the export frame), joined in one read snapshot from item stats and the metadata topics.
 * @param[out] rows       n rows; their strings point into *arena_out.
 * @param[out] arena_out  malloc'd string storage; the caller frees it after using the rows.
 * @return 0, -ENOMEM, or an error.
 */
int store_corpus_rows(store_t *s, const uint64_t *keys, const double *xy, uint32_t n,
                      corpus_row_t *rows, char **arena_out);

/* ---- snapshots (files, not LMDB: the persistence of published results) ------------------ */

/*
 * The largest snapshot manifest (`corpus_<ts>.json`) read back: by store/ (checking a snapshot
 * at start) and by the daemon (its ETag, the snapshot list, the manifest route), so the two
 * readers cannot disagree. A manifest names every Kafka partition ever consumed, ~30 bytes
 * each: 1 MiB is some 35,000 partitions.
 */
#define STORE_MANIFEST_MAX_BYTES (1 << 20)

typedef struct store_snapshot_info {
    char id[48];     /* corpus_<unix-ts>[_k] */
    int64_t created; /* unix seconds */
    uint32_t items;
    uint64_t bytes;
    char sha256[65];
} store_snapshot_info_t;

/**
 * Publish a corpus atomically into @p dir (created if missing): the file and its JSON manifest
 * (@p extra_json object fields plus id, created, items, sha256, bytes) are each written to a
 * temporary name, fsynced and renamed, then `latest` is moved to the new id; snapshots beyond
 * the newest @p keep are deleted. On failure the previous snapshot stays `latest`.
 * @return 0 and *out, or -errno / -EINVAL with a message in errbuf.
 */
/**
 * Repair what a publish killed midway leaves (issue 10.19): remove `.tmp-*` files, and when
 * there is no valid `latest`, or it names a snapshot that is not complete (its files missing,
 * or the manifest's sha256 and size not matching the file), point it at the newest complete
 * snapshot. A `latest` naming a complete snapshot is left alone.
 * @param[out] repaired the id `latest` now names when it was written, else "".
 * @return 0 (also for a missing directory), or -errno.
 */
int store_snapshot_repair(const char *dir, char *repaired, size_t len);

int store_snapshot_publish(const char *dir, const uint8_t *corpus, size_t len, uint32_t items,
                           const char *extra_json, unsigned keep, store_snapshot_info_t *out,
                           char *errbuf, size_t errlen);

/**
 * Whether @p id (@p len bytes, not necessarily NUL-terminated) is a snapshot id:
 * `corpus_` then digits and underscores, at most 40 bytes. Nothing else names a snapshot, so a
 * valid id never leaves its directory.
 */
int store_snapshot_id_valid(const char *id, size_t len);

/**
 * The id in @p dir's `latest` file. @return 0 and @p id, -errno, or -EINVAL if it does not
 * hold a valid id.
 */
int store_snapshot_latest(const char *dir, char *id, size_t id_len);

/** Snapshot ids in @p dir, oldest first; free each and the array. @return 0 or -errno. */
int store_snapshot_ids(const char *dir, char ***ids, size_t *n);

/** Lower-case hex SHA-256 of a buffer (OpenSSL). */
void store_sha256_hex(const void *buf, size_t len, char out[65]);

/* ---- refresh state: coordinates and dirty marks (DESIGN §4, §5) ------------------------- */

/** What the last refresh published, per retained item (sorted by key). */
typedef struct store_coords {
    uint32_t n, k;
    uint64_t *keys;    /* n, ascending */
    double *x3;        /* n x 3 MDE coordinates */
    double *y2;        /* n x 2 layout positions before the export frame */
    double *framed;    /* n x 2 positions as published in the corpus */
    uint64_t *knn;     /* n x k neighbour item keys, nearest first, 0 past the row's count */
    char snapshot[48]; /* the snapshot these belong to ("" if unknown) */
} store_coords_t;

/** Allocate zeroed arrays for @p n items with @p k neighbours. @return 0 or -ENOMEM. */
int store_coords_alloc(store_coords_t *c, uint32_t n, uint32_t k);

/** Free the arrays (a zeroed struct is fine). */
void store_coords_free(store_coords_t *c);

#define STORE_ITEM_KNN_MAX 64

/** One item's place in the last published map. */
typedef struct store_item_coords {
    double x3[3], framed[2];
    uint32_t k;
    uint64_t knn[STORE_ITEM_KNN_MAX]; /* neighbour item keys, nearest first (0: none) */
    char snapshot[48];
} store_item_coords_t;

/** @return 0 and *out; ATL_ENOTFOUND when the item is not on the stored map; or an error. */
int store_coords_item(store_t *s, uint64_t key, store_item_coords_t *out);

/**
 * Everything `inspect` shows about an item, as a JSON text (malloc'd): players, average pp,
 * retention, metadata, its @p k top co-occurring items by S, and its place in the last
 * published map (position, 3-D coordinates, kNN neighbours with 3-D distances).
 * @return 0, ATL_ENOTFOUND for an unknown item, or an error.
 */
int store_item_json(store_t *s, uint64_t key, uint32_t k, char **out);

/** Load the stored coordinates (n = 0 when none were stored yet). @return 0 or an error. */
int store_coords_load(store_t *s, store_coords_t *c);

/**
 * In one read snapshot: the current batch sequence (counters.batches) and the keys of every
 * dirty item, sorted (every mark set by a batch up to *seq is in the list), and, when asked
 * for (NULL: not), the counters and the Kafka offsets as store_offsets_json() gives them: what
 * a refresh that starts there can claim to reflect.
 * @return 0 and malloc'd *keys (and *offsets) the caller frees, or an error.
 */
int store_dirty_get(store_t *s, uint64_t *seq, uint64_t **keys, uint32_t *n,
                    store_counters_t *counters, char **offsets);

/** Number of dirty items. @return 0 or an error. */
int store_dirty_count(store_t *s, uint64_t *n);

/**
 * After a snapshot is published: in ONE write transaction, replace the stored coordinates with
 * @p c (keys strictly ascending) and clear every dirty mark set by a batch up to @p seq (marks
 * set later stay). @return 0 (cleared marks in *cleared), -EINVAL, -EROFS, or an error.
 */
int store_refresh_commit(store_t *s, const store_coords_t *c, uint64_t seq, uint64_t *cleared);

/**
 * Take the exclusive owner lock of store directory @p dir (flock on `DIR/atlasd.lock`, which
 * records the owner's pid): the daemon holds it while running, and offline writers (import,
 * rebuild --offline) refuse to run without it. Released when the process exits.
 * @return 0 and the lock's fd in *fd; -EBUSY with "held by pid N" in errbuf; or -errno.
 */
int store_lock(const char *dir, int *fd, char *errbuf, size_t errlen);

typedef struct store_prefetch_opts {
    uint64_t mem_available;   /* bytes the file may take in the page cache; 0: MemAvailable of
                               * /proc/meminfo (tests set it) */
    atl_progress_cb progress; /* stage "prefetch" */
    void *progress_ud;
} store_prefetch_opts_t;

typedef struct store_prefetch_result {
    uint64_t file_bytes;    /* the data file's size */
    uint64_t missing_bytes; /* of it not in the page cache before */
    uint64_t read_bytes;    /* read now (the pages found missing; the kernel may read
                             * more ahead of the reads) */
    int skipped;            /* 1: the missing part exceeds the memory available: nothing read */
    int read_error;         /* -errno of a failed read (reading stopped there; the walk will
                             * meet the error itself), else 0 */
} store_prefetch_result_t;

/** Fill @p o with defaults. */
void store_prefetch_opts_default(store_prefetch_opts_t *o);

/**
 * Before a walk of the whole store (a forced rebuild's S check, a full refresh, an export):
 * read the data file into the page cache in file order, when the part not cached fits in the
 * memory available (see store/prefetch.c for why and the figures). Never changes the store;
 * any thread, while other threads read and write. A failed read is reported in
 * out->read_error, not returned: the prefetch is only ever a help.
 * @return 0, ATL_ECANCELED (the progress callback asked to stop), -ENOMEM (no memory for its
 * buffers), or another error reading the environment (ATL_ESTORE, -errno of fstat()).
 */
int store_prefetch(store_t *s, const store_prefetch_opts_t *o, store_prefetch_result_t *out);

/** Release a lock taken with store_lock(). */
void store_unlock(int fd);

/**
 * Write a compacted copy of @p s into directory @p out_dir (which must exist and hold no
 * data.mdb): LMDB's mdb_env_copy2(MDB_CP_COMPACT), i.e. `mdb_copy -c`. Pages on the free list
 * are left out and the rest renumbered, so the copy is the live data; leaf pages keep their
 * fill. Readers and writers may run meanwhile (the copy is of one read snapshot).
 * @return 0 or an error code.
 */
int store_compact_copy(store_t *s, const char *out_dir);

/* ---- bulk load (import into an empty store) ------------------------------------------------ */

/*
 * A bulk load takes every hiscore row of a backfill in memory (24 bytes a row), folds them into
 * final profiles and writes S, profiles, item stats and items appended in key order (full,
 * sequentially written pages, no copy-on-write garbage). Only into an empty store (no items,
 * profiles or S); the result is digest-equal to importing the same rows batch by batch.
 */
typedef struct store_bulk store_bulk_t;

typedef struct store_bulk_opts {
    unsigned n_threads; /* threads computing S (default 2) */
    size_t block_bytes; /* weight terms of one S block (one transaction), x12 (default 256 MiB) */
    atl_progress_cb progress;
    void *progress_ud;
} store_bulk_opts_t;

typedef struct store_bulk_result {
    uint64_t rows, users, items, profile_entries, s_entries;
} store_bulk_result_t;

/** Fill @p o with defaults. */
void store_bulk_opts_default(store_bulk_opts_t *o);

/** @return 0 and a new empty bulk load in *out, or -ENOMEM. Free with store_bulk_free(). */
int store_bulk_new(store_bulk_t **out);

/** Free a bulk load; NULL is a no-op. */
void store_bulk_free(store_bulk_t *b);

/**
 * Add one hiscore event that is not skipped (others: -EINVAL; route metadata, skips and rejects
 * through an ordinary batch). Events are taken in arrival order. @return 0, -EINVAL, -ENOMEM.
 */
int store_bulk_add(store_bulk_t *b, const store_event_t *ev);

/** Rows added so far. */
size_t store_bulk_len(const store_bulk_t *b);

/** Whether @p s has no items, profiles or S (a bulk load may go into it). @return 0,
 * ATL_ECORRUPT for a store an interrupted bulk load left (S rows, no items), or an error. */
int store_bulk_empty(store_t *s, int *empty);

/**
 * Write the bulk load into @p s (empty: -ENOTEMPTY otherwise), in several transactions: S
 * first, block by block, then items, profiles, stats, dirty marks and counters. The rows'
 * memory is released on the way; the bulk load is spent afterwards (free it). Not atomic: an
 * interrupted bulk load leaves S without items, and a store that is not empty is refused.
 * @return 0 (counts in *out when not NULL), -ENOTEMPTY, ATL_ECANCELED, -ENOMEM or a store error.
 */
int store_bulk_commit(store_t *s, store_bulk_t *b, const store_bulk_opts_t *o,
                      store_bulk_result_t *out);

/* ---- rebuild ----------------------------------------------------------------------------- */

typedef struct store_rebuild_opts {
    int verify_only;    /* compare only; never write */
    int full_rows;      /* compare full rows at once, not the upper triangle + symmetry first */
    size_t mem_bytes;   /* weight terms of one recomputed block of S, x12 (default 2 GiB) */
    unsigned n_threads; /* threads recomputing S (default 2) */
    atl_progress_cb progress;
    void *progress_ud;
} store_rebuild_opts_t;

typedef struct store_rebuild_result {
    uint64_t s_entries;   /* entries (both directions) of the recomputed S */
    uint64_t s_diffs;     /* entries that differed */
    uint64_t stats_items; /* items with stats in the recomputation */
    uint64_t stats_diffs;
    unsigned passes;      /* row blocks recomputed */
    char first_diff[256]; /* description of the first difference, "" if none */
} store_rebuild_result_t;

/**
 * Recompute S and item stats from the profiles alone and compare them with the incrementally
 * maintained tables. Unless verify_only, every difference is repaired (in one transaction) and
 * the repaired rows are marked dirty.
 * @return 0 (differences are reported in *out, not as an error), ATL_ECANCELED, or an error.
 */
int store_rebuild(store_t *s, const store_rebuild_opts_t *o, store_rebuild_result_t *out);

/** Fill @p o with defaults. */
void store_rebuild_opts_default(store_rebuild_opts_t *o);

/**
 * Testing aid: add @p delta to S[row_item][col_item] in one direction only (to simulate
 * corruption). Items are item keys. @return 0, ATL_ENOTFOUND, or an error.
 */
int store_debug_poke_cooc(store_t *s, uint64_t row_item, uint64_t col_item, int64_t delta);

#endif
