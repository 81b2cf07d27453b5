/*
 * store.c: the LMDB environment, transactions with map growth, and shared helpers.
 *
 * Map growth: a write transaction that fails with MDB_MAP_FULL is aborted, the map is doubled
 * with mdb_env_set_mapsize() under the exclusive resize lock (no read snapshot may be open in
 * this process then, LMDB's rule), and the transaction function is run again from the start.
 * Transaction functions are therefore written to be restartable: they only read their inputs.
 * If another process grew the map, mdb_txn_begin() returns MDB_MAP_RESIZED; adopting the new
 * size with mdb_env_set_mapsize(env, 0) and retrying is LMDB's documented answer.
 */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <lmdb.h>

#include "algo/delta.h"
#include "algo/weight.h"
#include "store/internal.h"

#define MAX_DBS      16
#define MAP_SIZE_MAX ((uint64_t)1 << 40)

int store__err(int rc)
{
    switch (rc) {
    case 0:
        return 0;
    case MDB_NOTFOUND:
        return ATL_ENOTFOUND;
    case MDB_MAP_FULL:
        return ATL_EMAPFULL;
    case MDB_CORRUPTED:
    case MDB_PAGE_NOTFOUND:
    case MDB_INVALID:
        return ATL_ECORRUPT;
    case MDB_VERSION_MISMATCH:
        return ATL_EVERSION;
    default:
        break;
    }
    if (rc > 0) /* LMDB passes errno values through as positive numbers */
        return -rc;
    if (rc >= MDB_KEYEXIST && rc <= MDB_LAST_ERRCODE)
        return ATL_ESTORE;
    return rc; /* already an atl.h code or -errno */
}

void store_opts_default(store_opts_t *o)
{
    o->map_size_bytes = (uint64_t)1 << 30;
    o->read_only = 0;
    o->no_sync = 0;
}

/* Duplicates of profiles and cooc are ordered by their leading u32 (item or col) only. */
static int cmp_leading_u32(const MDB_val *a, const MDB_val *b)
{
    uint32_t x, y;
    memcpy(&x, a->mv_data, sizeof(x));
    memcpy(&y, b->mv_data, sizeof(y));
    return (x > y) - (x < y);
}

static int open_db(MDB_txn *txn, const char *name, unsigned flags, MDB_dbi *dbi)
{
    int rc = mdb_dbi_open(txn, name, flags, dbi);
    if (rc == 0 && (flags & MDB_DUPSORT))
        rc = mdb_set_dupsort(txn, *dbi, cmp_leading_u32);
    return rc;
}

/* The key of the store's format version in "meta" (check_format, stamp_version, version_peek) */
static MDB_val version_key(void)
{
    static const char key[] = "format_version";
    return (MDB_val){sizeof(key) - 1, (void *)key};
}

/*
 * What the data file holds, before any of our tables is opened or created: a store writes
 * "meta" with its "format_version" in the transaction that creates it, so a file is
 *  - ours, of this version: open it;
 *  - ours, of another version (ATL_EVERSION; store_open_strerror() names both): refuse it, even
 *    read-only, since its records may not be laid out as this build reads them;
 *  - new (LMDB's main database is empty): create the tables and stamp the version;
 *  - anything else: another program's LMDB file, or a "meta" without a version
 *    (ATL_ENOTSTORE). Before, a writable open created our tables in it and stamped it as ours.
 * Sets *fresh when the file is new; s->meta is opened unless the file is new and read-only.
 */
static int check_format(store_t *s, MDB_txn *txn, int *fresh)
{
    MDB_val k = version_key(), v;
    MDB_dbi main_dbi;
    MDB_stat st;
    uint32_t ver;
    *fresh = 0;
    int rc = mdb_dbi_open(txn, "meta", 0, &s->meta);
    if (rc == MDB_INCOMPATIBLE) /* a key "meta" in the main database that is not a table */
        return ATL_ENOTSTORE;
    if (rc == MDB_NOTFOUND) {
        if ((rc = mdb_dbi_open(txn, NULL, 0, &main_dbi)) || (rc = mdb_stat(txn, main_dbi, &st)))
            return rc;
        if (st.ms_entries != 0)
            return ATL_ENOTSTORE;
        *fresh = 1;
        return s->opts.read_only ? MDB_NOTFOUND : 0; /* read-only: nothing to read */
    }
    if (rc != 0)
        return rc;
    if ((rc = mdb_get(txn, s->meta, &k, &v)) == MDB_NOTFOUND)
        return ATL_ENOTSTORE;
    if (rc != 0)
        return rc;
    if (v.mv_size != sizeof(ver))
        return MDB_CORRUPTED;
    memcpy(&ver, v.mv_data, sizeof(ver));
    return ver == STORE_FORMAT_VERSION ? 0 : ATL_EVERSION;
}

static int stamp_version(store_t *s, MDB_txn *txn)
{
    uint32_t ver = STORE_FORMAT_VERSION;
    MDB_val k = version_key(), v = {sizeof(ver), &ver};
    int rc = open_db(txn, "meta", MDB_CREATE, &s->meta);
    return rc ? rc : mdb_put(txn, s->meta, &k, &v, 0);
}

/* Stores written before coordinates were kept have no coords table; read-only, it stays 0. */
static int open_coords(store_t *s, MDB_txn *txn, unsigned flags)
{
    int rc = open_db(txn, "coords", flags, &s->coords);
    if (rc == MDB_NOTFOUND && s->opts.read_only) {
        s->coords = 0;
        return 0;
    }
    if (rc != 0)
        return rc;
    /* dead letters not yet delivered (newer than coords; same rule for old stores) */
    rc = open_db(txn, "dlq", flags, &s->dlq);
    if (rc == MDB_NOTFOUND && s->opts.read_only) {
        s->dlq = 0;
        return 0;
    }
    return rc;
}

static int open_dbs(store_t *s)
{
    MDB_txn *txn = NULL;
    unsigned c = s->opts.read_only ? 0 : MDB_CREATE;
    unsigned ik = c | MDB_INTEGERKEY, dup = ik | MDB_DUPSORT | MDB_DUPFIXED;
    int fresh, rc = mdb_txn_begin(s->env, NULL, s->opts.read_only ? MDB_RDONLY : 0, &txn);
    if (rc != 0)
        return rc;
    if ((rc = check_format(s, txn, &fresh)) || (fresh && (rc = stamp_version(s, txn))) ||
        (rc = open_db(txn, "item_ids", ik, &s->item_ids)) ||
        (rc = open_db(txn, "item_keys", ik, &s->item_keys)) ||
        (rc = open_db(txn, "stats", ik, &s->stats)) ||
        (rc = open_db(txn, "profiles", dup, &s->profiles)) ||
        (rc = open_db(txn, "cooc", dup, &s->cooc)) || (rc = open_db(txn, "dirty", ik, &s->dirty)) ||
        (rc = open_db(txn, "beatmaps", ik, &s->beatmaps)) ||
        (rc = open_db(txn, "difficulty", ik, &s->difficulty)) ||
        (rc = open_db(txn, "offsets", c, &s->offsets)) || (rc = open_coords(s, txn, ik))) {
        mdb_txn_abort(txn);
        return rc;
    }
    return mdb_txn_commit(txn);
}

/*
 * The data file holds every page its newest meta page counts (LMDB writes the pages of a
 * commit before its meta page); a file cut short (a copy that stopped, a disk that filled
 * under a no-sync commit) has pages past its end, and LMDB reading one through the map dies
 * of SIGBUS. Checked once at open: the file only grows while the store is open.
 */
static int check_file_size_env(MDB_env *env)
{
    MDB_envinfo info;
    MDB_stat st;
    mdb_filehandle_t fd;
    struct stat fst;
    int rc;
    /* the meta page first, the size second: a writer beside us (the daemon) commits pages
     * before their meta page, so the file is never shorter than a meta page already read */
    if ((rc = mdb_env_info(env, &info)) || (rc = mdb_env_stat(env, &st)) ||
        (rc = mdb_env_get_fd(env, &fd)))
        return rc;
    if (fstat(fd, &fst) != 0)
        return errno;
    return (uint64_t)fst.st_size < ((uint64_t)info.me_last_pgno + 1) * st.ms_psize ? MDB_CORRUPTED
                                                                                   : 0;
}

/* A data.mdb of 0 bytes: LMDB would write its first pages into it, which a read-only open
 * cannot (EBADF). Nothing was ever stored in it. */
static int data_file_empty(const char *dir)
{
    char path[4096];
    struct stat st;
    snprintf(path, sizeof(path), "%s/data.mdb", dir);
    return stat(path, &st) == 0 && S_ISREG(st.st_mode) && st.st_size == 0;
}

int store_open(const char *dir, const store_opts_t *o, store_t **out)
{
    store_t *s = calloc(1, sizeof(*s));
    int rc;
    if (!s)
        return -ENOMEM;
    if (o)
        s->opts = *o;
    else
        store_opts_default(&s->opts);
    pthread_rwlock_init(&s->resize_lock, NULL);
    /* MDB_NORDAHEAD: S is read at random; with readahead every 4 KiB page fault pulls in
     * 128 KiB, which once the file outgrows RAM (full scale) re-reads the file many times over
     * (measured: over 200 GB read while loading the 12 GB retained graph). */
    unsigned flags = MDB_NOTLS | MDB_NORDAHEAD | (s->opts.read_only ? MDB_RDONLY : 0) |
                     (s->opts.no_sync ? MDB_NOSYNC : 0);
    if ((rc = mdb_env_create(&s->env)) || (rc = mdb_env_set_maxdbs(s->env, MAX_DBS)) ||
        (rc = mdb_env_set_maxreaders(s->env, 126)))
        goto out;
    if (!s->opts.read_only && (rc = mdb_env_set_mapsize(s->env, s->opts.map_size_bytes)))
        goto out;
    if (s->opts.read_only && data_file_empty(dir)) {
        rc = MDB_NOTFOUND;
        goto out;
    }
    if ((rc = mdb_env_open(s->env, dir, flags, 0644)) != 0)
        goto out;
    if (s->opts.read_only) {
        /* a smaller configured size would fail; adopt the file's size */
        if ((rc = mdb_env_set_mapsize(s->env, 0)))
            goto out;
    }
    if ((rc = check_file_size_env(s->env)) == 0)
        rc = open_dbs(s);
out:
    if (rc != 0) {
        int err = store__err(rc);
        store_close(s);
        return err;
    }
    *out = s;
    return 0;
}

/* The format version recorded in @p dir's store, without taking its lock (a message only).
 * @return 0, MDB_NOTFOUND (no version recorded) or an LMDB error. */
static int version_peek(const char *dir, uint32_t *out)
{
    MDB_env *env = NULL;
    MDB_txn *txn = NULL;
    MDB_dbi dbi;
    MDB_val k = version_key(), v;
    int rc;
    if ((rc = mdb_env_create(&env)) || (rc = mdb_env_set_maxdbs(env, MAX_DBS)) ||
        (rc = mdb_env_open(env, dir, MDB_RDONLY | MDB_NOLOCK | MDB_NOTLS, 0644)) ||
        (rc = check_file_size_env(env)) || (rc = mdb_txn_begin(env, NULL, MDB_RDONLY, &txn)) ||
        (rc = mdb_dbi_open(txn, "meta", 0, &dbi)) || (rc = mdb_get(txn, dbi, &k, &v)))
        goto out;
    if (v.mv_size != sizeof(*out))
        rc = MDB_CORRUPTED;
    else
        memcpy(out, v.mv_data, sizeof(*out));
out:
    if (txn)
        mdb_txn_abort(txn);
    if (env)
        mdb_env_close(env);
    return rc;
}

void store_open_strerror(const char *dir, int rc, char *buf, size_t len)
{
    uint32_t ver, ours = STORE_FORMAT_VERSION;
    if (rc == ATL_EVERSION && version_peek(dir, &ver) == 0 && ver != ours)
        snprintf(buf, len,
                 ver > ours ? "store format version %u, newer than this build's version %u: "
                              "it was written by a newer atlasd; run that release (or a later "
                              "one) on it. The store was not changed"
                            : "store format version %u, older than this build's version %u, "
                              "which cannot convert it: run the release that wrote it, or "
                              "import the events into a new store. The store was not changed",
                 ver, ours);
    else if (rc == ATL_EVERSION)
        snprintf(buf, len,
                 "%s/lock.mdb was made by another LMDB library version (the store's format "
                 "is version %u, this build's): stop every program using the store, delete "
                 "lock.mdb and try again",
                 dir, ours);
    else if (rc == ATL_ENOTSTORE)
        snprintf(buf, len,
                 "not an atlasd store: data.mdb is an LMDB file without an atlasd format "
                 "version (another program's, or damaged); check the path. It was not changed");
    else if (rc == ATL_ECORRUPT)
        snprintf(buf, len,
                 "store is corrupt: data.mdb is damaged, cut short or not an LMDB file. It was "
                 "not changed; restore a copy or import into a new store");
    else if (rc == ATL_ENOTFOUND)
        snprintf(buf, len, "the store is empty: nothing was ever written to it");
    else
        snprintf(buf, len, "%s", atl_strerror(rc));
}

void store_close(store_t *s)
{
    if (!s)
        return;
    if (s->env)
        mdb_env_close(s->env);
    pthread_rwlock_destroy(&s->resize_lock);
    free(s);
}

int store_compact_copy(store_t *s, const char *out_dir)
{
    pthread_rwlock_rdlock(&s->resize_lock); /* no map resize under the copy's read txn */
    int rc = mdb_env_copy2(s->env, out_dir, MDB_CP_COMPACT);
    pthread_rwlock_unlock(&s->resize_lock);
    return store__err(rc);
}

int store_sync(store_t *s)
{
    return store__err(mdb_env_sync(s->env, 1));
}

/*
 * Map growth and transactions. LMDB allows mdb_env_set_mapsize() only while no transaction of
 * this process is active, and the daemon reads (refresh, on the thread pool) while it writes
 * (ingestion, on its writer thread). So every transaction holds resize_lock shared for its whole
 * life, and a resize takes it exclusively, after the thread asking has ended its own transaction.
 */
/* whether the calling thread is the no-wait one (store_nowait_thread_set) */
static int on_nowait_thread(const store_t *s)
{
    return s->has_nowait_thread && pthread_equal(pthread_self(), s->nowait_thread);
}

/*
 * mdb_env_set_mapsize() unmaps the map, then maps the new size; when that mmap fails (no address
 * space: RLIMIT_AS, systemd's LimitAS=) the environment is left without a map and the next
 * transaction faults (SIGSEGV, LMDB 0.9.24; test_map_grow). So the growth is first reserved
 * with a mapping of our own (PROT_NONE, nothing touched): the address space the larger map
 * adds must be there, else the growth fails with ENOMEM and the map stays as it is. Should
 * LMDB fail all the same (another thread took the space meanwhile), the store is marked
 * map_lost and every later transaction fails (ATL_ESTORE) instead of faulting.
 * Call with resize_lock held exclusively (or no other thread using the store).
 */
int store__map_resize(store_t *s, uint64_t size)
{
    MDB_envinfo info;
    if (s->map_lost)
        return ATL_ESTORE;
    mdb_env_info(s->env, &info);
    mdb_filehandle_t fd;
    if (size > info.me_mapsize && mdb_env_get_fd(s->env, &fd) == 0) {
        /* the data file, never touched (no pages, nothing committed): POSIX has no anonymous map */
        size_t more = (size_t)(size - info.me_mapsize);
        void *probe = mmap(NULL, more, PROT_NONE, MAP_SHARED, fd, 0);
        if (probe == MAP_FAILED)
            return errno;
        munmap(probe, more);
    }
    if (on_nowait_thread(s)) /* only that thread writes the count: the loop reads it */
        s->nowait_resizes++;
    int rc = mdb_env_set_mapsize(s->env, (size_t)size);
    if (rc != 0)
        s->map_lost = 1; /* past its checks, its only failure is the mmap, after the munmap */
    return rc;
}

static int grow_locked(store_t *s)
{
    MDB_envinfo info;
    if (s->map_lost)
        return ATL_ESTORE;
    mdb_env_info(s->env, &info);
    uint64_t size = (uint64_t)info.me_mapsize * 2;
    return size > MAP_SIZE_MAX ? MDB_MAP_FULL : store__map_resize(s, size);
}

/* Grow after MDB_MAP_FULL. The no-wait thread (the daemon's loop) never blocks here: with a
 * reader active it gets MDB_MAP_FULL back and retries its commit later (see
 * store_nowait_thread_set); every other thread waits for the readers to finish. */
static int grow_map(store_t *s)
{
    if (on_nowait_thread(s)) {
        if (pthread_rwlock_trywrlock(&s->resize_lock) != 0)
            return MDB_MAP_FULL;
    } else {
        pthread_rwlock_wrlock(&s->resize_lock);
    }
    int rc = grow_locked(s);
    pthread_rwlock_unlock(&s->resize_lock);
    return rc;
}

void store_nowait_thread_set(store_t *s)
{
    s->nowait_thread = pthread_self();
    s->has_nowait_thread = 1;
}

void store_nowait_txns_get(const store_t *s, uint64_t *reads, uint64_t *writes, uint64_t *resizes)
{
    *reads = s->nowait_reads;
    *writes = s->nowait_writes;
    *resizes = s->nowait_resizes;
}

uint64_t store__used_bytes(store_t *s, uint64_t *map_size)
{
    MDB_envinfo info;
    MDB_stat st;
    mdb_env_info(s->env, &info);
    mdb_env_stat(s->env, &st);
    if (map_size)
        *map_size = info.me_mapsize;
    return (uint64_t)(info.me_last_pgno + 1) * st.ms_psize;
}

int store_map_grow_ahead(store_t *s, double min_free_frac)
{
    if (s->opts.read_only)
        return 0;
    /* the lock first: mdb_env_info() reads the meta pages inside the map, which another
     * thread's grow_map() may be unmapping (a segfault seen under bench/healthz.sh) */
    if (pthread_rwlock_trywrlock(&s->resize_lock) != 0)
        return -EBUSY;
    if (s->map_lost) {
        pthread_rwlock_unlock(&s->resize_lock);
        return ATL_ESTORE;
    }
    uint64_t map_size;
    double used = (double)store__used_bytes(s, &map_size);
    int rc = used < (1.0 - min_free_frac) * (double)map_size ? 0 : grow_locked(s);
    int grew = rc == 0 && used >= (1.0 - min_free_frac) * (double)map_size;
    pthread_rwlock_unlock(&s->resize_lock);
    return rc == 0 ? grew : store__err(rc);
}

/* Begin a transaction holding resize_lock shared; on failure the lock is released. */
static int txn_begin(store_t *s, unsigned flags, MDB_txn **out)
{
    if (on_nowait_thread(s))
        (flags & MDB_RDONLY) ? s->nowait_reads++ : s->nowait_writes++;
    for (int attempt = 0;; attempt++) {
        pthread_rwlock_rdlock(&s->resize_lock);
        if (s->map_lost) {
            pthread_rwlock_unlock(&s->resize_lock);
            return ATL_ESTORE; /* no map to read: restart the process */
        }
        int rc = mdb_txn_begin(s->env, NULL, flags, out);
        if (rc == 0)
            return 0;
        pthread_rwlock_unlock(&s->resize_lock);
        if (rc != MDB_MAP_RESIZED || attempt > 0)
            return rc;
        /* another process grew the file: adopt its size, then retry */
        pthread_rwlock_wrlock(&s->resize_lock);
        if (on_nowait_thread(s)) /* only that thread writes the count: the loop reads it */
            s->nowait_resizes++;
        rc = s->map_lost ? ATL_ESTORE : mdb_env_set_mapsize(s->env, 0);
        if (rc != 0)
            s->map_lost = 1; /* the new size could not be mapped: the map is gone */
        pthread_rwlock_unlock(&s->resize_lock);
        if (rc != 0)
            return rc;
    }
}

/*
 * LMDB reports a short write of its pages as EIO ("TODO: Use which error code?" in
 * mdb_page_flush), and a write that runs out of disk space half-way is a short write: on a full
 * disk every commit failed with "Input/output error", which sends an operator looking for a
 * hardware fault. When the store's filesystem has (almost) nothing left, say so instead.
 */
#define DISK_FULL_BYTES ((uint64_t)16 << 20)

static int commit_error(store_t *s, int rc)
{
    const char *path;
    struct statvfs st;
    if (rc == EIO && mdb_env_get_path(s->env, &path) == 0 && statvfs(path, &st) == 0 &&
        (uint64_t)st.f_bavail * st.f_frsize < DISK_FULL_BYTES)
        return ENOSPC;
    return rc;
}

int store__write(store_t *s, store__txn_fn fn, void *ud)
{
    if (s->opts.read_only)
        return -EROFS;
    for (;;) {
        MDB_txn *txn = NULL;
        int rc = txn_begin(s, 0, &txn);
        if (rc != 0)
            return store__err(rc);
        rc = fn(s, txn, ud);
        if (rc == 0)
            rc = commit_error(s, mdb_txn_commit(txn));
        else
            mdb_txn_abort(txn);
        pthread_rwlock_unlock(&s->resize_lock);
        if (rc == MDB_MAP_FULL || rc == ATL_EMAPFULL) {
            if ((rc = grow_map(s)) != 0)
                return store__err(rc);
            continue;
        }
        return store__err(rc);
    }
}

int store__read_begin(store_t *s, MDB_txn **out)
{
    return store__err(txn_begin(s, MDB_RDONLY, out));
}

int store__read_try_begin(store_t *s, MDB_txn *caller, MDB_txn **out)
{
    if (pthread_rwlock_tryrdlock(&s->resize_lock) != 0)
        return EBUSY;
    int rc = s->map_lost ? ATL_ESTORE : mdb_txn_begin(s->env, NULL, MDB_RDONLY, out);
    if (rc != 0) {
        pthread_rwlock_unlock(&s->resize_lock);
        return rc;
    }
    if (mdb_txn_id(*out) != mdb_txn_id(caller)) {
        store__read_end(s, *out);
        return EAGAIN;
    }
    return 0;
}

void store__read_end(store_t *s, MDB_txn *txn)
{
    if (!txn)
        return;
    mdb_txn_abort(txn);
    pthread_rwlock_unlock(&s->resize_lock);
}

int store__counters_read(store_t *s, MDB_txn *txn, store_counters_t *out)
{
    MDB_val k = {strlen("counters"), "counters"}, v;
    int rc = mdb_get(txn, s->meta, &k, &v);
    memset(out, 0, sizeof(*out));
    if (rc == MDB_NOTFOUND)
        return 0;
    if (rc != 0)
        return rc;
    memcpy(out, v.mv_data, v.mv_size < sizeof(*out) ? v.mv_size : sizeof(*out));
    return 0;
}

int store__counters_write(store_t *s, MDB_txn *txn, const store_counters_t *c)
{
    MDB_val k = {strlen("counters"), "counters"}, v = {sizeof(*c), (void *)c};
    return mdb_put(txn, s->meta, &k, &v, 0);
}

int store_counters_get(store_t *s, store_counters_t *out)
{
    MDB_txn *txn;
    int rc = store__read_begin(s, &txn);
    if (rc != 0)
        return rc;
    rc = store__counters_read(s, txn, out);
    store__read_end(s, txn);
    return store__err(rc);
}

int store_offset_get(store_t *s, const char *topic, int32_t partition, int64_t *out)
{
    char key[STORE_TOPIC_NAME_MAX + 1 + sizeof(partition)];
    size_t tl = strlen(topic);
    if (tl > STORE_TOPIC_NAME_MAX)
        return -EINVAL;
    memcpy(key, topic, tl + 1);
    memcpy(key + tl + 1, &partition, sizeof(partition));
    MDB_val k = {tl + 1 + sizeof(partition), key}, v;
    MDB_txn *txn;
    int rc = store__read_begin(s, &txn);
    if (rc != 0)
        return rc;
    rc = mdb_get(txn, s->offsets, &k, &v);
    if (rc == 0 && v.mv_size == sizeof(*out))
        memcpy(out, v.mv_data, sizeof(*out));
    else if (rc == 0)
        rc = MDB_CORRUPTED;
    store__read_end(s, txn);
    return store__err(rc);
}

int store_offsets_json(store_t *s, char **out)
{
    MDB_txn *txn;
    int rc = store__read_begin(s, &txn);
    if (rc != 0)
        return rc;
    rc = store__offsets_json(s, txn, out);
    store__read_end(s, txn);
    return rc;
}

int store__offsets_json(store_t *s, MDB_txn *txn, char **out)
{
    MDB_cursor *cur = NULL;
    MDB_val k, v;
    size_t cap = 256, len = 0;
    char *buf = malloc(cap), prev[256] = "";
    int rc = 0;
    if (!buf)
        return -ENOMEM;
    buf[len++] = '{';
    if ((rc = mdb_cursor_open(txn, s->offsets, &cur)) == 0) {
        /* keys are "topic\0" + i32 partition, so one topic's partitions are adjacent */
        for (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0;
             rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
            const char *topic = k.mv_data;
            size_t tl = strnlen(topic, k.mv_size);
            int32_t part;
            int64_t off;
            if (tl + 1 + sizeof(part) != k.mv_size || v.mv_size != sizeof(off) ||
                tl > STORE_TOPIC_NAME_MAX)
                continue;
            memcpy(&part, topic + tl + 1, sizeof(part));
            memcpy(&off, v.mv_data, sizeof(off));
            if (len + tl + 64 > cap) {
                char *nb = realloc(buf, cap = (len + tl + 64) * 2);
                if (!nb) {
                    rc = ENOMEM;
                    break;
                }
                buf = nb;
            }
            int same = strlen(prev) == tl && memcmp(prev, topic, tl) == 0;
            if (!same) {
                len +=
                    (size_t)sprintf(buf + len, "%s\"%.*s\":{", prev[0] ? "}," : "", (int)tl, topic);
                memcpy(prev, topic, tl);
                prev[tl] = '\0';
            } else {
                buf[len++] = ',';
            }
            len += (size_t)sprintf(buf + len, "\"%d\":%lld", (int)part, (long long)off);
        }
        if (rc == MDB_NOTFOUND)
            rc = 0;
    }
    mdb_cursor_close(cur);
    if (rc == 0) {
        if (prev[0])
            buf[len++] = '}';
        buf[len++] = '}';
        buf[len] = '\0';
        *out = buf;
    } else {
        free(buf);
    }
    return store__err(rc);
}

int store__item_keys_load(store_t *s, MDB_txn *txn, uint64_t **out, uint32_t *n)
{
    MDB_stat st;
    MDB_cursor *cur = NULL;
    MDB_val k, v;
    int rc = mdb_stat(txn, s->item_keys, &st);
    if (rc != 0)
        return rc;
    uint64_t *keys = calloc(st.ms_entries ? st.ms_entries : 1, sizeof(*keys));
    if (!keys)
        return ENOMEM;
    if ((rc = mdb_cursor_open(txn, s->item_keys, &cur)) != 0)
        goto out;
    for (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0;
         rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        uint32_t idx;
        memcpy(&idx, k.mv_data, sizeof(idx));
        if (idx >= st.ms_entries || v.mv_size != sizeof(uint64_t)) {
            rc = MDB_CORRUPTED;
            goto out;
        }
        memcpy(&keys[idx], v.mv_data, sizeof(uint64_t));
    }
    if (rc == MDB_NOTFOUND)
        rc = 0;
out:
    mdb_cursor_close(cur);
    if (rc != 0) {
        free(keys);
        return rc;
    }
    *out = keys;
    *n = (uint32_t)st.ms_entries;
    return 0;
}

int64_t store__s_above(double min_s)
{
    if (!(min_s > 0))
        return 0;
    double f = floor(min_s * WEIGHT_ONE);
    return f >= 0x1p62 ? INT64_MAX : (int64_t)f;
}

/* Apply one (row, col, delta) at the cursor: update in place, insert, or delete at zero. The
 * entry's S before, into *old (0 if it was absent). */
static int cooc_apply_one(MDB_cursor *cur, uint32_t row, uint32_t col, int64_t delta,
                          int64_t *old_s)
{
    cooc_rec_t rec = {col, 0};
    MDB_val k = {sizeof(row), &row}, v = {sizeof(rec), &rec};
    int rc = mdb_cursor_get(cur, &k, &v, MDB_GET_BOTH);
    *old_s = 0;
    if (rc == MDB_NOTFOUND) {
        rec.s = delta;
        v.mv_data = &rec;
        v.mv_size = sizeof(rec);
        return mdb_cursor_put(cur, &k, &v, MDB_NODUPDATA);
    }
    if (rc != 0)
        return rc;
    cooc_rec_t old;
    memcpy(&old, v.mv_data, sizeof(old));
    *old_s = old.s;
    rec.s = old.s + delta;
    if (rec.s == 0)
        return mdb_cursor_del(cur, 0);
    v.mv_data = &rec;
    v.mv_size = sizeof(rec);
    return mdb_cursor_put(cur, &k, &v, MDB_CURRENT);
}

/*
 * A row is dirty when its T (the refresh's largest S above GRAPH_MIN_S_DEFAULT) may have
 * changed: when an entry had or now has S above the cut. Entries that stay at or below it
 * (most of a batch's: 3 in 4 stored entries are) leave T as it was, and marking their rows sent
 * each refresh to read thousands of whole rows for nothing. The rows of items whose stats
 * changed are marked apart (apply_stats), and the refresh reads the rows that may keep an item
 * new to the retained set by itself.
 */
int store__cooc_apply(store_t *s, MDB_txn *txn, const delta_list_t *d, delta_list_t *dirty_rows,
                      int64_t above)
{
    MDB_cursor *cur;
    int rc = mdb_cursor_open(txn, s->cooc, &cur);
    if (rc != 0)
        return rc;
    uint32_t last_row = UINT32_MAX;
    for (size_t i = 0; i < d->n && rc == 0; i++) {
        uint32_t row = delta_key_row(d->v[i].key);
        int64_t old_s, delta = d->v[i].value;
        rc = cooc_apply_one(cur, row, delta_key_col(d->v[i].key), delta, &old_s);
        if (rc == 0 && dirty_rows && row != last_row && (old_s > above || old_s + delta > above)) {
            if (delta_list_add(dirty_rows, row, 0, 1))
                rc = ENOMEM;
            last_row = row;
        }
    }
    mdb_cursor_close(cur);
    return rc;
}

int store__dirty_mark(store_t *s, MDB_txn *txn, const delta_list_t *rows, uint64_t seq)
{
    for (size_t i = 0; i < rows->n; i++) {
        uint32_t row = delta_key_row(rows->v[i].key);
        MDB_val k = {sizeof(row), &row}, v = {sizeof(seq), &seq};
        int rc = mdb_put(txn, s->dirty, &k, &v, 0);
        if (rc != 0)
            return rc;
    }
    return 0;
}

int store_lock(const char *dir, int *fd_out, char *errbuf, size_t errlen)
{
    char path[4096], pid[32] = "";
    snprintf(path, sizeof(path), "%s/atlasd.lock", dir);
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) {
        int e = -errno;
        snprintf(errbuf, errlen, "cannot open %s: %s", path, strerror(errno));
        return e;
    }
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
        int e = errno == EWOULDBLOCK ? -EBUSY : -errno;
        ssize_t r = pread(fd, pid, sizeof(pid) - 1, 0);
        pid[r > 0 ? r : 0] = '\0';
        pid[strcspn(pid, "\n")] = '\0';
        snprintf(errbuf, errlen,
                 "the store %s is in use by another process (pid %s): stop atlasd first", dir,
                 pid[0] ? pid : "unknown");
        close(fd);
        return e;
    }
    int n = snprintf(pid, sizeof(pid), "%ld\n", (long)getpid());
    if (ftruncate(fd, 0) != 0 || pwrite(fd, pid, (size_t)n, 0) != n) {
        /* the pid is informative only; the lock itself holds */
    }
    *fd_out = fd;
    return 0;
}

void store_unlock(int fd)
{
    if (fd >= 0)
        close(fd);
}

/* ---- readahead for walks (internal.h) -------------------------------------------------------- */

#define RA_MIN   ((size_t)256 << 10)
#define RA_MAX   ((size_t)32 << 20)
#define RA_PIECE ((size_t)128 << 10)

void store__readahead(store__ra_t *ra, const void *at)
{
    const char *p = at;
    if (ra->off)
        return;
    /* the stream @p continues: inside its last two windows, or at most RA_MAX past them (a
     * thread of a parallel walk skips the other threads' rows; some of S's streams advance by
     * a few MiB at a time); a pointer behind them is a new stream, it was not advised */
    store__ra_stream_t *w = NULL;
    ra->tick++;
    for (unsigned q = 0; q < STORE_RA_STREAMS && !w; q++)
        if (ra->w[q].end && p >= ra->w[q].start && p < ra->w[q].end + RA_MAX)
            w = &ra->w[q];
    if (w)
        w->used = ra->tick;
    if (w && p < w->at + (w->end > w->at ? (size_t)(w->end - w->at) / 2 : 0))
        return; /* not yet half way through its window */
    if (!w && ++ra->jumps >= 64 && ra->jumps > ra->grows && !ra->all) {
        ra->off = 1; /* pages out of order (a store grown by batches): leave it to the faults */
        return;
    }
    ra->grows += w != NULL;
    const char *from = w && p < w->end ? w->end : p;
    size_t len = w ? (w->len * 2 < RA_MAX ? w->len * 2 : RA_MAX) : RA_MIN;
    if (!w) { /* a new stream, in the place of the one used longest ago */
        w = &ra->w[0];
        for (unsigned q = 1; q < STORE_RA_STREAMS; q++)
            if (ra->w[q].used < w->used)
                w = &ra->w[q];
        w->used = ra->tick;
        w->end = NULL;
    }
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    const char *base = (const char *)((uintptr_t)from & ~(uintptr_t)(page - 1));
    /* in pieces: Linux reads at most the device's readahead size (read_ahead_kb, often 128 KiB
     * to 8 MiB) a call. Advice only: an error (past the map) changes nothing the walk needs. */
    for (size_t off = 0, total = len + (size_t)(from - base); off < total; off += RA_PIECE)
        (void)posix_madvise((void *)(base + off), total - off < RA_PIECE ? total - off : RA_PIECE,
                            POSIX_MADV_WILLNEED);
    const char *prev = w->end && w->at < base ? w->at : base;
    w->start = (const char *)((uintptr_t)prev & ~(uintptr_t)(page - 1));
    w->at = p, w->end = from + len, w->len = len;
}

int store__fits_in_ram(store_t *s)
{
    double ram = (double)store__mem_total();
    return ram > 0 && (double)store__used_bytes(s, NULL) * 2 <= ram;
}
