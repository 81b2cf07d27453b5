/*
 * What store_open() does with a data file it did not write, or wrote in another format: it
 * uses it or refuses it, and a refusal changes nothing in the file.
 *  - a newer (or older) format version is ATL_EVERSION read-only and writable, and
 *    store_open_strerror() names both versions;
 *  - an LMDB file of another program (its own named databases, keys in the main database, a
 *    key "meta" that is not a database) is ATL_ENOTSTORE, and a writable open adds none of our
 *    tables to it (before: import and atlasd created them and stamped a version into it);
 *  - a "meta" table without a format version is refused, not stamped;
 *  - a data.mdb cut short (a copy that stopped, a full disk) is ATL_ECORRUPT (before: SIGBUS in
 *    LMDB reading past the end of the file);
 *  - an empty data.mdb read-only is ATL_ENOTFOUND (before: "Bad file descriptor");
 *  - a new store and a store of this version open as before.
 */
#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <lmdb.h>

#include "store/store.h"
#include "tests/check.h"

static char root[64];

static void run(const char *cmd)
{
    CHECK(system(cmd) == 0);
}

static store_t *try_open(const char *dir, int read_only, int *rc)
{
    store_opts_t o;
    store_opts_default(&o);
    o.read_only = read_only;
    o.map_size_bytes = 16 << 20;
    store_t *s = NULL;
    *rc = store_open(dir, &o, &s);
    return s;
}

static void open_must_fail(const char *dir, int want)
{
    for (int ro = 1; ro >= 0; ro--) {
        int rc;
        store_t *s = try_open(dir, ro, &rc);
        if (rc != want)
            fprintf(stderr, "%s read_only=%d: %d (%s), want %d\n", dir, ro, rc, atl_strerror(rc),
                    want);
        CHECK_EQ(rc, want);
        CHECK(s == NULL);
    }
}

/* A fresh store of this build with a few events in it. */
static void make_store(const char *dir)
{
    CHECK(mkdir(dir, 0755) == 0);
    int rc;
    store_t *s = try_open(dir, 0, &rc);
    E(rc);
    store_batch_t *b;
    E(store_batch_new(&b));
    for (uint32_t u = 1; u <= 400; u++)
        for (uint32_t m = 0; m < 8; m++) {
            store_event_t e;
            memset(&e, 0, sizeof(e));
            e.kind = STORE_EVENT_HISCORE;
            e.u.hiscore.user = u;
            e.u.hiscore.beatmap_id = 100 + (u * 7 + m * 13) % 60;
            e.u.hiscore.pp = 100 + (float)m;
            e.u.hiscore.update_time = 1600000000 + u;
            E(store_batch_add(b, &e));
        }
    E(store_batch_commit(s, b));
    store_batch_free(b);
    store_close(s);
}

/* Put @p key = @p val (len bytes) into named database @p db (NULL: the main one) of @p dir, or
 * delete @p key when @p val is NULL. */
static void lmdb_write(const char *dir, const char *db, const char *key, const void *val,
                       size_t len)
{
    MDB_env *env;
    MDB_txn *txn;
    MDB_dbi dbi;
    CHECK(mdb_env_create(&env) == 0);
    CHECK(mdb_env_set_maxdbs(env, 16) == 0);
    CHECK(mdb_env_open(env, dir, 0, 0644) == 0);
    CHECK(mdb_txn_begin(env, NULL, 0, &txn) == 0);
    CHECK(mdb_dbi_open(txn, db, val ? MDB_CREATE : 0, &dbi) == 0);
    MDB_val k = {strlen(key), (void *)key}, v = {len, (void *)val};
    CHECK((val ? mdb_put(txn, dbi, &k, &v, 0) : mdb_del(txn, dbi, &k, NULL)) == 0);
    CHECK(mdb_txn_commit(txn) == 0);
    mdb_env_close(env);
}

static void lmdb_put(const char *dir, const char *db, const char *key, const void *val, size_t len)
{
    lmdb_write(dir, db, key, val, len);
}

static void lmdb_del(const char *dir, const char *db, const char *key)
{
    lmdb_write(dir, db, key, NULL, 0);
}

/* The names in the main database of @p dir, ", "-separated, into @p out. */
static void main_names(const char *dir, char *out, size_t len)
{
    MDB_env *env;
    MDB_txn *txn;
    MDB_dbi dbi;
    MDB_cursor *c;
    MDB_val k, v;
    out[0] = '\0';
    CHECK(mdb_env_create(&env) == 0);
    CHECK(mdb_env_open(env, dir, MDB_RDONLY, 0644) == 0);
    CHECK(mdb_txn_begin(env, NULL, MDB_RDONLY, &txn) == 0);
    CHECK(mdb_dbi_open(txn, NULL, 0, &dbi) == 0);
    CHECK(mdb_cursor_open(txn, dbi, &c) == 0);
    for (int op = MDB_FIRST; mdb_cursor_get(c, &k, &v, op) == 0; op = MDB_NEXT)
        snprintf(out + strlen(out), len - strlen(out), "%s%.*s", out[0] ? ", " : "", (int)k.mv_size,
                 (const char *)k.mv_data);
    mdb_cursor_close(c);
    mdb_txn_abort(txn);
    mdb_env_close(env);
}

/* A store in ROOT/NAME stamped with format @p version: refused, and the message names that
 * version, this build's and @p word ("newer" or "older"). */
static void version_refused(const char *name, uint32_t version, const char *word)
{
    char dir[128], msg[512], want[64];
    snprintf(dir, sizeof(dir), "%s/%s", root, name);
    make_store(dir);
    lmdb_put(dir, "meta", "format_version", &version, sizeof(version));
    open_must_fail(dir, ATL_EVERSION);
    store_open_strerror(dir, ATL_EVERSION, msg, sizeof(msg));
    fprintf(stderr, "%s: %s\n", name, msg);
    snprintf(want, sizeof(want), "format version %u", version);
    CHECK(strstr(msg, want) && strstr(msg, "version 1") && strstr(msg, word));
}

static void test_version(void)
{
    char dir[128];
    version_refused("newer", STORE_FORMAT_VERSION + 1, "newer");
    version_refused("older", 0, "older");

    /* a version that is not a u32 is damage */
    snprintf(dir, sizeof(dir), "%s/garbled", root);
    make_store(dir);
    lmdb_put(dir, "meta", "format_version", "x", 1);
    open_must_fail(dir, ATL_ECORRUPT);

    /* our tables but no version: refused, and not stamped by a writable open */
    snprintf(dir, sizeof(dir), "%s/unversioned", root);
    make_store(dir);
    lmdb_del(dir, "meta", "format_version");
    open_must_fail(dir, ATL_ENOTSTORE);
    open_must_fail(dir, ATL_ENOTSTORE);
}

/* Another program's LMDB file in ROOT/NAME, holding KEY (in named database DB, or the main one
 * when NULL): refused as not a store, and the main database still names only @p names. */
static void foreign_refused(const char *name, const char *db, const char *key, const char *names)
{
    char dir[128], got[1024];
    snprintf(dir, sizeof(dir), "%s/%s", root, name);
    CHECK(mkdir(dir, 0755) == 0);
    lmdb_put(dir, db, key, "v1", 2);
    open_must_fail(dir, ATL_ENOTSTORE);
    main_names(dir, got, sizeof(got));
    CHECK_STREQ(got, names); /* nothing of ours added */
}

static void test_foreign(void)
{
    char dir[128], msg[512];
    /* a named database of its own, a key in the main one, "meta" as a plain key of the main
     * database (LMDB: MDB_INCOMPATIBLE), a "meta" of its own: no format version, its own keys */
    foreign_refused("foreign", "users", "hello", "users");
    foreign_refused("foreign-main", NULL, "k1", "k1");
    foreign_refused("foreign-meta", NULL, "meta", "meta");
    foreign_refused("foreign-meta-db", "meta", "schema", "meta");
    snprintf(dir, sizeof(dir), "%s/foreign", root);
    store_open_strerror(dir, ATL_ENOTSTORE, msg, sizeof(msg));
    fprintf(stderr, "foreign: %s\n", msg);
    CHECK(strstr(msg, "not an atlasd store") != NULL);
}

static void test_truncated(void)
{
    char dir[128], cmd[512];
    snprintf(dir, sizeof(dir), "%s/trunc", root);
    make_store(dir);
    struct stat st;
    char path[160];
    snprintf(path, sizeof(path), "%s/data.mdb", dir);
    CHECK(stat(path, &st) == 0);
    CHECK(st.st_size > 16 * 4096);
    /* cut the file after its meta pages and a little more: the tree's pages are gone */
    snprintf(cmd, sizeof(cmd), "truncate -s %lld %s", (long long)(st.st_size / 2), path);
    run(cmd);
    open_must_fail(dir, ATL_ECORRUPT);
    CHECK(stat(path, &st) == 0);
}

static void test_empty_and_new(void)
{
    char dir[128], path[160];
    int rc;
    /* a data.mdb of 0 bytes (its creator died before LMDB wrote a page): nothing in it */
    snprintf(dir, sizeof(dir), "%s/zero", root);
    CHECK(mkdir(dir, 0755) == 0);
    snprintf(path, sizeof(path), "%s/data.mdb", dir);
    int fd = open(path, O_CREAT | O_WRONLY, 0644);
    CHECK(fd >= 0);
    close(fd);
    store_t *s = try_open(dir, 1, &rc);
    CHECK_EQ(rc, ATL_ENOTFOUND);
    CHECK(s == NULL);
    /* writable, it becomes a new store (what LMDB does with it), and stays one */
    s = try_open(dir, 0, &rc);
    E(rc);
    store_close(s);
    s = try_open(dir, 1, &rc);
    E(rc);
    store_close(s);

    /* a store of this build, both ways */
    snprintf(dir, sizeof(dir), "%s/current", root);
    make_store(dir);
    for (int ro = 1; ro >= 0; ro--) {
        s = try_open(dir, ro, &rc);
        E(rc);
        store_stats_t st;
        E(store_stats_get(s, 0, &st));
        CHECK(st.items > 0);
        store_close(s);
    }
}

int main(int argc, char **argv)
{
    static const struct {
        const char *name;
        void (*fn)(void);
    } tests[] = {{"version", test_version},
                 {"foreign", test_foreign},
                 {"truncated", test_truncated},
                 {"empty", test_empty_and_new}};

    snprintf(root, sizeof(root), "/tmp/atl-format-XXXXXX");
    CHECK(mkdtemp(root) != NULL);
    for (size_t i = 0; i < sizeof(tests) / sizeof(tests[0]); i++)
        if (argc < 2 || strcmp(argv[1], tests[i].name) == 0) /* one by name, or all */
            tests[i].fn();
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", root);
    run(cmd);
    fprintf(stderr, "test_format: ok\n");
    return 0;
}
