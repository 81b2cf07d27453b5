/*
 * atlasctl.c: the operator CLI's entry point: `atlasctl <command> [options]` (DESIGN §7).
 */
#include <stdio.h>
#include <string.h>

#include "algo/atl.h"
#include "tools/cli.h"

static const struct {
    const char *name;
    int (*fn)(int, char **);
    const char *summary;
} commands[] = {
    {"gen", cmd_gen, "write a synthetic osu!track hiscore stream"},
    {"import", cmd_import, "backfill JSONL/CSV dumps into a store"},
    {"stats", cmd_stats, "counts and content digest of a store"},
    {"compact", cmd_compact, "rewrite a store without its free pages (mdb_copy -c)"},
    {"rebuild", cmd_rebuild, "forced full rebuild on a daemon (--url) or a store (--offline)"},
    {"embed", cmd_embed, "prune, exact kNN and MDE on any graph (S.tsv)"},
    {"export-graph", cmd_export_graph, "dump a store's retained S as S.tsv"},
    {"snapshots", cmd_snapshots, "list, verify or export corpus snapshots"},
    {"status", cmd_status, "what a daemon (--url) or a store (--db) holds"},
    {"inspect", cmd_inspect, "an item's stats, neighbours and top co-occurring items"},
    {"kafka-mock", cmd_kafka_mock, "run an embedded mock Kafka cluster (tests, demo)"},
    {"produce", cmd_produce, "replay a JSONL/CSV dump into Kafka"},
    {"consume", cmd_consume, "print a topic (e.g. the dead-letter topic) as JSON lines"},
    {"debug-poke", cmd_debug_poke, "testing aid: add DELTA to one direction of one S entry"},
};

static void usage(FILE *f)
{
    fprintf(f, "usage: atlasctl <command> [options]\n\ncommands:\n");
    for (size_t i = 0; i < ATL_ARRAY_LEN(commands); i++)
        fprintf(f, "  %-10s %s\n", commands[i].name, commands[i].summary);
    fprintf(f, "\n`atlasctl <command> --help` describes each one.\n"
               "exit codes: 0 ok, 1 failure, 2 usage error\n");
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return CLI_EXIT_USAGE;
    }
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "help") == 0) {
        usage(stdout);
        return cli_stdout_close("--help", CLI_EXIT_OK);
    }
    /* every command's stdout is checked here, once: a full disk is a failure, not exit 0 */
    for (size_t i = 0; i < ATL_ARRAY_LEN(commands); i++)
        if (strcmp(argv[1], commands[i].name) == 0)
            return cli_stdout_close(argv[1], commands[i].fn(argc - 1, argv + 1));
    fprintf(stderr, "atlasctl: unknown command \"%s\"\n\n", argv[1]);
    usage(stderr);
    return CLI_EXIT_USAGE;
}
