/*
 * store_cmds.c: `atlasctl stats` and `atlasctl rebuild --offline`, the commands that read or
 * check a store directly (no daemon).
 */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "algo/item.h"
#include "algo/weight.h"
#include "store/store.h"
#include "tools/cli.h"

int cmd_stats(int argc, char **argv)
{
    const char *db = NULL;
    int json = 0, no_digest = 0;
    const cli_opt_t opts[] = {
        {"db", CLI_NEED, &db, "DIR", "store directory"},
        {"json", CLI_FLAG, &json, NULL, "print JSON: users items retained pairs bytes digest"},
        {"no-digest", CLI_FLAG, &no_digest, NULL, "skip the digest (a full read of S)"},
    };
    const cli_cmd_t cmd = {
        "stats", "--db DIR [--json]", "Counts and the canonical content digest of a store.",
        opts,    ATL_ARRAY_LEN(opts), NULL,
        0};
    int rc = cli_parse(&cmd, argc, argv, NULL, NULL);
    if (rc != 0)
        return cli_exit(rc);
    store_t *s;
    store_stats_t st;
    store_counters_t c;
    if (cli_store_open("stats", db, 1, &s) != 0)
        return CLI_EXIT_FAIL;
    if (!no_digest) /* the digest reads all of S */
        cli_store_prefetch("stats", s, NULL, NULL);
    if ((rc = store_stats_get(s, !no_digest, &st)) != 0 || (rc = store_counters_get(s, &c))) {
        fprintf(stderr, "atlasctl stats: %s\n", atl_strerror(rc));
        store_close(s);
        return CLI_EXIT_FAIL;
    }
    store_close(s);
    if (json) {
        printf("{\"users\":%" PRIu64 ",\"items\":%" PRIu64 ",\"retained\":%" PRIu64
               ",\"pairs\":%" PRIu64 ",\"bytes\":%" PRIu64 ",\"live_bytes\":%" PRIu64
               ",\"digest\":\"%s\","
               "\"profile_entries\":%" PRIu64 ",\"dirty\":%" PRIu64 ",\"events_applied\":%" PRIu64
               ",\"batches\":%" PRIu64 "}\n",
               st.users, st.items, st.retained, st.pairs, st.bytes, st.live_bytes, st.digest,
               st.profile_entries, st.dirty, c.events_applied, c.batches);
        return CLI_EXIT_OK;
    }
    printf("users            %" PRIu64 "\n", st.users);
    printf("items            %" PRIu64 "\n", st.items);
    printf("retained         %" PRIu64 "\n", st.retained);
    printf("pairs            %" PRIu64 "\n", st.pairs);
    printf("profile entries  %" PRIu64 "\n", st.profile_entries);
    printf("dirty rows       %" PRIu64 "\n", st.dirty);
    printf("events applied   %" PRIu64 "\n", c.events_applied);
    printf("bytes            %" PRIu64 " (%.1f MiB; %.1f MiB live; map %.1f MiB)\n", st.bytes,
           (double)st.bytes / 1048576.0, (double)st.live_bytes / 1048576.0,
           (double)st.map_size_bytes / 1048576.0);
    if (st.pairs)
        printf("bytes per pair   %.1f (live store / pairs)\n",
               (double)st.live_bytes / (double)st.pairs);
    if (!no_digest)
        printf("digest           %s\n", st.digest);
    return CLI_EXIT_OK;
}

/* The compacted copy of the open store @p s into @p tmp, renamed over DB/data.mdb (@p to). */
static int compact_copy(store_t *s, const char *tmp, const char *from, const char *to)
{
    int rc = store_compact_copy(s, tmp);
    if (rc != 0) {
        fprintf(stderr, "atlasctl compact: writing the compacted copy into %s failed: %s\n", tmp,
                atl_strerror(rc));
        return rc;
    }
    if (rename(from, to) != 0) {
        rc = -errno;
        fprintf(stderr, "atlasctl compact: cannot move %s over %s: %s\n", from, to, strerror(-rc));
    }
    return rc;
}

/* Compact DIR in place: copy it compacted into DIR/compact.tmp, then rename the copy over
 * DIR/data.mdb. Needs the owner lock (no daemon, no import) for the rename to be safe. Whatever
 * fails, no partial copy stays behind (it would fill the disk a retry needs). */
static int compact(const char *db)
{
    char err[1024], tmp[4000], from[4096], to[4096];
    int lock = -1, rc;
    /* before the lock: store_lock() would leave atlasd.lock in a directory that is no store */
    if ((rc = cli_store_check("compact", db)) != 0)
        return rc;
    if ((rc = store_lock(db, &lock, err, sizeof(err))) != 0) {
        fprintf(stderr, "atlasctl compact: %s\n", err);
        return rc;
    }
    snprintf(tmp, sizeof(tmp), "%s/compact.tmp", db);
    snprintf(from, sizeof(from), "%s/data.mdb", tmp);
    snprintf(to, sizeof(to), "%s/data.mdb", db);
    store_t *s = NULL;
    store_stats_t before, after;
    double t0 = pipeline_now();
    unlink(from); /* a copy a killed compact left */
    if (mkdir(tmp, 0755) != 0 && errno != EEXIST) {
        rc = -errno;
        fprintf(stderr, "atlasctl compact: cannot create %s: %s\n", tmp, strerror(-rc));
        goto out;
    }
    if ((rc = cli_store_open("compact", db, 1, &s)) != 0)
        goto out;
    if ((rc = store_stats_get(s, 0, &before)) != 0) {
        fprintf(stderr, "atlasctl compact: reading %s: %s\n", db, atl_strerror(rc));
        goto out;
    }
    rc = compact_copy(s, tmp, from, to);
    store_close(s);
    s = NULL;
    if (rc != 0 || (rc = cli_store_open("compact", db, 1, &s)) != 0)
        goto out;
    if ((rc = store_stats_get(s, 0, &after)) != 0) {
        fprintf(stderr, "atlasctl compact: reading %s: %s\n", db, atl_strerror(rc));
        goto out;
    }
    printf("compacted %s: %.1f MiB -> %.1f MiB (%.1f MiB live) in %.1f s\n", db,
           (double)before.bytes / 1048576.0, (double)after.bytes / 1048576.0,
           (double)after.live_bytes / 1048576.0, pipeline_now() - t0);
out:
    store_close(s);
    unlink(from); /* gone after the rename; a partial copy otherwise */
    rmdir(tmp);
    store_unlock(lock);
    return rc;
}

int cmd_compact(int argc, char **argv)
{
    const char *db = NULL;
    const cli_opt_t opts[] = {{"db", CLI_NEED, &db, "DIR", "store directory"}};
    const cli_cmd_t cmd = {
        "compact",
        "--db DIR",
        "Rewrite a stopped daemon's store without the pages on LMDB's free list (mdb_copy -c):\n"
        "after a backfill in batches the file is several times its live data. Needs free disk\n"
        "for one copy of the live data.",
        opts,
        ATL_ARRAY_LEN(opts),
        NULL,
        0};
    int rc = cli_parse(&cmd, argc, argv, NULL, NULL);
    if (rc != 0)
        return cli_exit(rc);
    return compact(db) == 0 ? CLI_EXIT_OK : CLI_EXIT_FAIL;
}

int cmd_debug_poke(int argc, char **argv)
{
    const char *db = NULL;
    const cli_opt_t opts[] = {{"db", CLI_NEED, &db, "DIR", "store directory"}};
    const cli_cmd_t cmd = {
        "debug-poke",
        "--db DIR ROW_ITEM COL_ITEM DELTA",
        "Testing aid: add DELTA (in S units, e.g. 0.5) to S[ROW_ITEM][COL_ITEM] in that one\n"
        "direction only, as a corrupted store would have it. `rebuild` must find and repair it.\n"
        "Safe beside a running daemon (LMDB serialises writers).",
        opts,
        ATL_ARRAY_LEN(opts),
        NULL,
        0};
    const char **rest;
    size_t n_rest;
    int rc = cli_parse(&cmd, argc, argv, &rest, &n_rest);
    if (rc != 0)
        return cli_exit(rc);
    uint64_t a, b;
    double delta = 0;
    if (n_rest != 3 || item_key_parse(rest[0], strlen(rest[0]), &a) != 0 ||
        item_key_parse(rest[1], strlen(rest[1]), &b) != 0 || cli_f64_parse(rest[2], &delta) != 0 ||
        delta == 0 || fabs(delta) * WEIGHT_ONE > 9e18) {
        fprintf(stderr, "atlasctl debug-poke: give --db DIR, two item ids and a finite non-zero "
                        "DELTA (in S units)\n");
        free(rest);
        return CLI_EXIT_USAGE;
    }
    free(rest);
    store_t *s;
    if (cli_store_open("debug-poke", db, 0, &s) != 0)
        return CLI_EXIT_FAIL;
    rc = store_debug_poke_cooc(s, a, b, (int64_t)llround(delta * WEIGHT_ONE));
    store_close(s);
    if (rc != 0) {
        fprintf(stderr, "atlasctl debug-poke: %s\n", atl_strerror(rc));
        return CLI_EXIT_FAIL;
    }
    return CLI_EXIT_OK;
}
