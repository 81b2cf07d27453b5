/*
 * internal.h: what the files of store/ share. Never included outside store/.
 *
 * On-disk layout (all integers native-endian; a store is not portable across endianness, as
 * LMDB files themselves are not):
 *   meta        string key -> value: "format_version" u32, "next_item" u32, "counters"
 *   item_ids    u64 item key -> u32 dense index            (MDB_INTEGERKEY)
 *   item_keys   u32 dense index -> u64 item key            (MDB_INTEGERKEY)
 *   stats       u32 index -> stats_rec_t                   (MDB_INTEGERKEY)
 *   profiles    u32 user -> profile_rec_t dups             (INTEGERKEY, DUPSORT, DUPFIXED)
 *   cooc        u32 row  -> cooc_rec_t dups (col, S)       (INTEGERKEY, DUPSORT, DUPFIXED)
 *   dirty       u32 index -> u64 batch sequence            (MDB_INTEGERKEY)
 *   beatmaps    u32 beatmap id -> beatmap_rec_t + strings  (MDB_INTEGERKEY)
 *   difficulty  u64 item key -> difficulty_rec_t           (MDB_INTEGERKEY)
 *   offsets     "topic\0" + i32 partition -> i64 next offset
 *   coords      u64 item key -> coords_rec_t + k u64 neighbour keys (MDB_INTEGERKEY): the
 *               published state a refresh warm-starts from; meta "coords_snapshot" names it
 *
 * Why S is a row key with fixed-size duplicates: DUPFIXED packs the (col, S) records of a row
 * side by side on leaf pages with no per-entry node header, 12 bytes per direction, about 25
 * bytes per unordered pair with page overhead, against about 52 for a (row,col) -> S key per
 * entry. At the ~236M pairs of the 2026 atlas that is ~6 GiB instead of ~12 GiB. Duplicates
 * are ordered by col only (a custom dupsort comparator), so a record can be overwritten in
 * place with MDB_CURRENT when its S changes. Profiles use the same scheme keyed by item.
 */
#ifndef ATL_STORE_INTERNAL_H
#define ATL_STORE_INTERNAL_H

#include <pthread.h>
#include <stdint.h>

#include <lmdb.h>

#include "algo/delta.h"
#include "store/store.h"

typedef struct __attribute__((packed)) profile_rec {
    uint32_t item;
    float pp;
    int64_t update_time;
} profile_rec_t;

_Static_assert(sizeof(profile_rec_t) == 16, "profile record is 16 bytes on disk");

/* The one rule by which a hiscore row replaces a profile entry: a newer update_time, or on a tie
 * the higher pp, so the final state does not depend on arrival order. Batches (batch.c) and the
 * bulk load (bulk.c) both fold with it; their digests are equal only because they share it. */
static inline int profile_row_wins(int64_t t, float pp, int64_t old_t, float old_pp)
{
    return t > old_t || (t == old_t && pp > old_pp);
}

typedef struct __attribute__((packed)) cooc_rec {
    uint32_t col;
    int64_t s; /* fixed point, WEIGHT_ONE = 1.0 */
} cooc_rec_t;

_Static_assert(sizeof(cooc_rec_t) == 12, "cooc record is 12 bytes on disk");

typedef struct stats_rec {
    uint32_t num_users;
    uint32_t reserved;
    int64_t sum_pp; /* fixed point */
} stats_rec_t;

_Static_assert(sizeof(stats_rec_t) == 16, "stats record is 16 bytes on disk");

typedef struct beatmap_rec {
    uint32_t beatmap_id, beatmapset_id, total_length, hit_length;
    float bpm, cs, od, ar, hp, stars;
    int64_t approved_date, last_update;
    int32_t mode;
    uint16_t title_len, artist_len, version_len, creator_len;
    uint32_t reserved;
    /* then the four strings, in that order */
} beatmap_rec_t;

_Static_assert(sizeof(beatmap_rec_t) == 72, "beatmap record header is 72 bytes on disk");

typedef struct difficulty_rec {
    float stars, aim, speed;
} difficulty_rec_t;

_Static_assert(sizeof(difficulty_rec_t) == 12, "difficulty record is 12 bytes on disk");

struct store {
    MDB_env *env;
    MDB_dbi meta, item_ids, item_keys, stats, profiles, cooc, dirty, beatmaps, difficulty, offsets;
    MDB_dbi coords; /* 0 in a read-only store written before coordinates were stored */
    MDB_dbi dlq;    /* u64 id -> dead letter not yet delivered; 0 when absent read-only */
    store_opts_t opts;
    /* Held shared by long read snapshots, exclusively while the map is resized: LMDB requires
     * that no transaction is active in this process during mdb_env_set_mapsize(). */
    pthread_rwlock_t resize_lock;
    /* the thread that must never wait for resize_lock (the daemon's loop), or none */
    pthread_t nowait_thread;
    int has_nowait_thread;
    /* LMDB's mdb_env_set_mapsize() failed after unmapping the map: the environment has no map
     * and every transaction would fault; they fail with ATL_ESTORE instead (grow_locked) */
    int map_lost;
    /* transactions begun there and map resizes done there (store_nowait_txns_get) */
    uint64_t nowait_reads, nowait_writes, nowait_resizes;
};

/** Translate an LMDB return code into an atl.h code (0 stays 0). */
int store__err(int mdb_rc);

/** Write transaction body; may be run again after the map grows, so it must be restartable. */
typedef int (*store__txn_fn)(store_t *s, MDB_txn *txn, void *ud);

/** Run @p fn in a write transaction, growing the map and retrying on MDB_MAP_FULL. */
int store__write(store_t *s, store__txn_fn fn, void *ud);

/**
 * Begin a read transaction (retrying once after another process grew the map). It holds the
 * map-resize lock shared until store__read_end(): every transaction must end that way.
 */
int store__read_begin(store_t *s, MDB_txn **out);

/**
 * store__read_begin() for a helper thread while its caller holds the read transaction
 * @p caller: never waits (a resize waiting for the caller's transaction would wait for the
 * helper too), and only of the caller's snapshot. @return 0, EBUSY (the resize lock is not
 * free for readers now), EAGAIN (a commit came between: another snapshot), or an LMDB error;
 * on any error the caller does the helper's work itself.
 */
int store__read_try_begin(store_t *s, MDB_txn *caller, MDB_txn **out);

/** End a read transaction (NULL: no-op) and release the resize lock. */
void store__read_end(store_t *s, MDB_txn *txn);

/**
 * Readahead for a walk over most of S or of the profiles. The store is opened with
 * MDB_NORDAHEAD, right for its random reads; but a walk in key order of a bulk-loaded table
 * reads its pages in file order, a few streams at once (a DUPSORT table's leaves and its
 * duplicates' pages lie apart; S's rows were written block by block), and without readahead
 * each 4 KiB page whose memory was reclaimed is one major fault (a forced rebuild at full scale
 * after the idle store's pages were reclaimed: 2.1M faults, 170-210 s instead of 17). A walk calls
 * store__readahead() with each pointer it gets from the map; for each of up to 8 streams that
 * advance in order it advises (posix_madvise WILLNEED) a window ahead that doubles from 256 KiB
 * to 32 MiB. A pointer far from every stream starts a new one, in the place of the stream used
 * longest ago; after 64 such jumps, if they outnumber the windows in order (a store grown by
 * batches, whose pages are out of order), it stops advising and leaves the walk to its faults,
 * unless the walk reads nearly every page anyway (`all`: a full refresh reads the retained rows in
 * key order, each row in order but the rows scattered; one advice at a row's start then reads the
 * row in one I/O instead of a fault a page).
 */
#define STORE_RA_STREAMS 8

typedef struct store__ra_stream {
    const char *start;  /* the start of its last two windows */
    const char *at;     /* where its last window was advised from */
    const char *end;    /* that window's end */
    size_t len;         /* its length */
    unsigned long used; /* the call that last continued it */
} store__ra_stream_t;

typedef struct store__ra {
    store__ra_stream_t w[STORE_RA_STREAMS];
    unsigned long tick;    /* calls */
    unsigned jumps, grows; /* windows after a jump, windows in order */
    int off;               /* out of order too often: no more advice */
    int all; /* the walk reads nearly every page anyway: advise even when out of order */
} store__ra_t;

void store__readahead(store__ra_t *ra, const void *at);

/* Set the map to @p size bytes (resize_lock held exclusively): the address space is checked
 * first, so that a failed mdb_env_set_mapsize() cannot leave the store without a map.
 * @return 0, an errno value (ENOMEM), an MDB code or ATL_ESTORE (map_lost). */
int store__map_resize(store_t *s, uint64_t size);

/** Bytes of the data file in use (up to its last page), and the map's size in *map_size (may be
 * NULL). Reads the meta pages: call with resize_lock held (a transaction holds it). */
uint64_t store__used_bytes(store_t *s, uint64_t *map_size);

/**
 * The smallest memory limit of the cgroups named in @p self_file (a /proc/self/cgroup) and of
 * their parents, under @p root (/sys/fs/cgroup): v2's memory.max and memory.high, v1's
 * memory.limit_in_bytes (under ROOT/memory); and in *room (may be NULL) the smallest limit - use
 * among them. UINT64_MAX for both when none is set or none can be read (see memlimit.c).
 */
uint64_t store__cgroup_limit(const char *root, const char *self_file, uint64_t *room);

/** MemAvailable in bytes, at most the room under the process's cgroup limits; 0 when unknown. */
uint64_t store__mem_available(void);

/** Physical memory in bytes, at most the process's cgroup limit. */
uint64_t store__mem_total(void);

/** Whether the data file takes at most half the memory (store__mem_total) (then a walk that reads
 * every page may read ahead without pushing out what it still needs). */
int store__fits_in_ram(store_t *s);

/** Read a u64 counter block from meta. */
int store__counters_read(store_t *s, MDB_txn *txn, store_counters_t *out);

/** Write the counters. */
int store__counters_write(store_t *s, MDB_txn *txn, const store_counters_t *c);

/** Load the item key of every dense index: *out has *n entries, free() it. */
int store__item_keys_load(store_t *s, MDB_txn *txn, uint64_t **out, uint32_t *n);

/**
 * Apply merged pair deltas (sorted by key) to S in key order; entries that reach 0 are deleted.
 * When @p dirty_rows is not NULL, a row is added to it (row, col 0) if one of its entries had or
 * now has S above @p above (fixed point, see store__s_above(); INT64_MIN: every row touched).
 */
struct delta_list;
int store__cooc_apply(store_t *s, MDB_txn *txn, const struct delta_list *d,
                      struct delta_list *dirty_rows, int64_t above);

/** S > @p min_s as a test of the stored fixed point: S = f / 2^16 exactly, so S > min_s iff
 *  f > the value returned (floor(min_s 2^16); 0 for min_s <= 0). */
int64_t store__s_above(double min_s);

/** store_offsets_json() inside @p txn. */
int store__offsets_json(store_t *s, MDB_txn *txn, char **out);

/** Mark every row of @p rows (merged) dirty with sequence @p seq. */
int store__dirty_mark(store_t *s, MDB_txn *txn, const struct delta_list *rows, uint64_t seq);

typedef struct batch_offset {
    char topic[STORE_TOPIC_NAME_MAX + 1];
    int32_t partition;
    int64_t next_offset;
} batch_offset_t;

/* A batch of events (batch.c), and its dead letters (deadletter.c). */
struct store_batch {
    store_event_t *events;
    size_t n, cap;
    batch_offset_t *offsets;
    size_t n_offsets, cap_offsets;
    uint64_t skipped[3];
    uint64_t rejected[STORE_REJECT_COUNT];
    /* dead letters: records serialised back to back in dl_buf (see deadletter.c), their
     * offsets in dl_at, and the ids the commit gave them */
    char *dl_buf;
    size_t dl_len, dl_cap;
    size_t *dl_at;
    uint64_t *dl_ids;
    size_t n_dl, cap_dl, cap_dl_ids;
    /* scratch, rebuilt by every (re)run of the transaction */
    uint32_t *order;
    profile_rec_t *prof;
    uint8_t *prof_changed;
    size_t prof_cap;
    delta_list_t pairs, stats, dirty;
    uint32_t next_item;
};

/** Store the batch's dead letters (ids from the meta key "dlq_next"), in its transaction. */
int store__dead_letters_put(store_t *s, MDB_txn *txn, struct store_batch *b);

/** Test aid: the allocator behind the event decoder's cJSON hooks (NULL: malloc). A failure it
 * returns makes store_event_decode() return -ENOMEM. Not thread-safe; call before decoding. */
void store__json_alloc_set(void *(*fn)(size_t));

#endif
