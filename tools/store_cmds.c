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

#include "algo/item.h"
#include "algo/weight.h"
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
    if (rc != 0)
        return cli_exit(rc);
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

int cmd_debug_poke(int argc, char **argv)
{
    const char *db = NULL;
    const cli_opt_t opts[] = {{"db", CLI_STR, &db, "DIR", "store directory (required)"}};
    const cli_cmd_t cmd = {
        "debug-poke", "--db DIR ROW_ITEM COL_ITEM DELTA",
        "Testing aid: add DELTA (in S units, e.g. 0.5) to S[ROW_ITEM][COL_ITEM] in that one\n"
        "direction only, as a corrupted store would have it. `rebuild` must find and repair it.\n"
        "Safe beside a running daemon (LMDB serialises writers).",
        opts, ATL_ARRAY_LEN(opts)};
    const char **rest;
    size_t n_rest;
    int rc = cli_parse(&cmd, argc, argv, &rest, &n_rest);
    if (rc != 0)
        return cli_exit(rc);
    uint64_t a, b;
    char *end = NULL;
    double delta = n_rest == 3 ? strtod(rest[2], &end) : 0;
    if (!db || n_rest != 3 || item_key_parse(rest[0], strlen(rest[0]), &a) != 0 ||
        item_key_parse(rest[1], strlen(rest[1]), &b) != 0 || !end || *end || delta == 0) {
        fprintf(stderr, "atlasctl debug-poke: give --db DIR, two item ids and a non-zero DELTA\n");
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
