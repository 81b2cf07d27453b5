/*
 * store_cmds.c: `atlasctl stats` and `atlasctl rebuild --offline`, the commands that read or
 * check a store directly (no daemon).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "store/store.h"
#include "tools/cli.h"

int cmd_stats(int argc, char **argv)
{
    const char *db = NULL;
    int json = 0, no_digest = 0;
    const cli_opt_t opts[] = {
        {"db", CLI_STR, &db, "DIR", "store directory (required)"},
        {"json", CLI_FLAG, &json, NULL, "print JSON: users items retained pairs bytes digest"},
        {"no-digest", CLI_FLAG, &no_digest, NULL, "skip the digest (a full read of S)"},
    };
    const cli_cmd_t cmd = {"stats", "--db DIR [--json]",
                           "Counts and the canonical content digest of a store.", opts,
                           ATL_ARRAY_LEN(opts)};
    int rc = cli_parse(&cmd, argc, argv, NULL, NULL);
    if (rc != CLI_EXIT_OK)
        return rc < 0 ? CLI_EXIT_OK : rc;
    if (!db) {
        fprintf(stderr, "atlasctl stats: --db is required (see --help)\n");
        return CLI_EXIT_USAGE;
    }
    store_t *s;
    store_stats_t st;
    store_counters_t c;
    if (cli_store_open("stats", db, 1, &s) != 0)
        return CLI_EXIT_FAIL;
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

int cmd_rebuild(int argc, char **argv)
{
    const char *db = NULL;
    int offline = 0, verify = 0, json = 0;
    uint64_t mem_mb = 2048, keep = 10, seed = 42;
    const char *snapshots = NULL;
    const cli_opt_t opts[] = {
        {"offline", CLI_FLAG, &offline, NULL, "work on a store directly (no daemon running)"},
        {"db", CLI_STR, &db, "DIR", "store directory (with --offline)"},
        {"verify", CLI_FLAG, &verify, NULL,
         "only compare with the incremental tables; exit 1 on any difference"},
        {"mem-mb", CLI_U64, &mem_mb, "MB", "memory budget for recomputed S (default 2048)"},
        {"json", CLI_FLAG, &json, NULL, "print the result as JSON"},
        {"snapshots", CLI_STR, &snapshots, "DIR",
         "then run kNN, MDE and the 2-D layout and publish a corpus snapshot in DIR"},
        {"keep", CLI_U64, &keep, "N", "snapshots to keep in DIR (default 10)"},
        {"seed", CLI_U64, &seed, "N", "random seed of MDE and the layout (default 42)"},
    };
    const cli_cmd_t cmd = {
        "rebuild", "--offline --db DIR [--verify] [--snapshots DIR]",
        "Recompute S and item stats from the profiles alone, compare them with the incrementally\n"
        "maintained tables, and repair any difference (or, with --verify, only report it).",
        opts, ATL_ARRAY_LEN(opts)};
    int rc = cli_parse(&cmd, argc, argv, NULL, NULL);
    if (rc != CLI_EXIT_OK)
        return rc < 0 ? CLI_EXIT_OK : rc;
    if (!offline || !db || mem_mb == 0) {
        fprintf(stderr, "atlasctl rebuild: %s (see --help)\n",
                !offline ? "only --offline is available in this version"
                         : (!db ? "--db is required" : "--mem-mb must be positive"));
        return CLI_EXIT_USAGE;
    }
    store_t *s;
    if (cli_store_open("rebuild", db, verify, &s) != 0)
        return CLI_EXIT_FAIL;
    cli_progress_t prog;
    cli_progress_init(&prog, "rebuild");
    store_rebuild_opts_t ro;
    store_rebuild_opts_default(&ro);
    ro.verify_only = verify;
    ro.mem_bytes = (size_t)mem_mb << 20;
    ro.progress = cli_progress_cb;
    ro.progress_ud = &prog;
    store_rebuild_result_t res;
    rc = store_rebuild(s, &ro, &res);
    cli_progress_done(&prog);
    store_close(s);
    if (rc != 0) {
        fprintf(stderr, "atlasctl rebuild: %s\n", atl_strerror(rc));
        return CLI_EXIT_FAIL;
    }
    double secs = cli_now() - prog.start;
    uint64_t diffs = res.s_diffs + res.stats_diffs;
    if (json) {
        printf("{\"s_entries\":%" PRIu64 ",\"s_diffs\":%" PRIu64 ",\"stats_items\":%" PRIu64
               ",\"stats_diffs\":%" PRIu64 ",\"passes\":%u,\"seconds\":%.3f,\"repaired\":%s}\n",
               res.s_entries, res.s_diffs, res.stats_items, res.stats_diffs, res.passes, secs,
               !verify && diffs ? "true" : "false");
    } else {
        printf("recomputed  %" PRIu64 " S entries, %" PRIu64 " item stats in %u pass(es), %.2f s\n",
               res.s_entries, res.stats_items, res.passes, secs);
        printf("differences %" PRIu64 " in S, %" PRIu64 " in item stats%s\n", res.s_diffs,
               res.stats_diffs, diffs ? (verify ? "" : " (repaired)") : "");
        if (diffs)
            printf("first       %s\n", res.first_diff);
    }
    if (diffs && verify) {
        fprintf(stderr, "atlasctl rebuild: verification failed: %s\n", res.first_diff);
        return CLI_EXIT_FAIL;
    }
    if (snapshots) {
        char id[64];
        if (publish_snapshot(db, snapshots, (unsigned)keep, seed, id, sizeof(id)) != 0)
            return CLI_EXIT_FAIL;
        printf("%s\n", id); /* the snapshot id is the last line of stdout */
    }
    return CLI_EXIT_OK;
}
