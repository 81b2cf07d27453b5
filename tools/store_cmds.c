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
