/*
 * inspect.c: `atlasctl status` (a running daemon's /status, or a store's counts) and
 * `atlasctl inspect ITEM` (an item's stats, metadata, top co-occurring items, and its
 * coordinates and kNN neighbours in the latest snapshot).
 */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cJSON.h>

#include "algo/item.h"
#include "algo/weight.h"
#include "store/store.h"
#include "tools/cli.h"

static void print_field(const cJSON *o, const char *name, const char *label)
{
    const cJSON *f = cJSON_GetObjectItemCaseSensitive(o, name);
    if (cJSON_IsNumber(f))
        printf("%-20s %.15g\n", label, f->valuedouble);
    else if (cJSON_IsString(f))
        printf("%-20s %s\n", label, f->valuestring[0] ? f->valuestring : "-");
}

static int status_url(const char *url, int json)
{
    char full[4096], err[512];
    uint8_t *body;
    size_t len;
    snprintf(full, sizeof(full), "%s/status", url);
    if (http_get(full, &body, &len, err, sizeof(err)) != 0) {
        fprintf(stderr, "atlasctl status: GET %s: %s\n", full, err);
        return CLI_EXIT_FAIL;
    }
    if (json) {
        fwrite(body, 1, len, stdout);
        free(body);
        return CLI_EXIT_OK;
    }
    cJSON *o = cJSON_ParseWithLength((const char *)body, len);
    free(body);
    if (!o) {
        fprintf(stderr, "atlasctl status: %s did not return JSON\n", full);
        return CLI_EXIT_FAIL;
    }
    static const char *const fields[][2] = {{"state", "state"},
                                            {"events_applied", "events applied"},
                                            {"events_changed", "events changed"},
                                            {"events_skipped", "events skipped"},
                                            {"events_rejected", "events rejected"},
                                            {"messages_consumed", "messages consumed"},
                                            {"events_per_second", "events/s"},
                                            {"lag", "consumer lag"},
                                            {"brokers_up", "brokers up"},
                                            {"dead_letters", "dead letters"},
                                            {"last_error", "last error"}};
    for (size_t i = 0; i < ATL_ARRAY_LEN(fields); i++)
        print_field(o, fields[i][0], fields[i][1]);
    const cJSON *st = cJSON_GetObjectItemCaseSensitive(o, "store");
    print_field(st, "items", "items");
    print_field(st, "retained", "retained items");
    print_field(st, "pairs", "pairs");
    cJSON_Delete(o);
    return CLI_EXIT_OK;
}

static int status_db(const char *db, int json)
{
    store_t *s;
    store_stats_t st;
    store_counters_t c;
    if (cli_store_open("status", db, 1, &s) != 0)
        return CLI_EXIT_FAIL;
    int rc = store_stats_get(s, 0, &st);
    if (rc == 0)
        rc = store_counters_get(s, &c);
    store_close(s);
    if (rc != 0) {
        fprintf(stderr, "atlasctl status: %s\n", atl_strerror(rc));
        return CLI_EXIT_FAIL;
    }
    char latest[64] = "-", dir[4096];
    snprintf(dir, sizeof(dir), "%s/snapshots", db);
    if (store_snapshot_latest(dir, latest, sizeof(latest)) != 0)
        strcpy(latest, "-");
    if (json) {
        printf("{\"events_applied\":%" PRIu64 ",\"newest_update_time\":%" PRId64
               ",\"users\":%" PRIu64 ",\"items\":%" PRIu64 ",\"retained\":%" PRIu64
               ",\"pairs\":%" PRIu64 ",\"dirty\":%" PRIu64 ",\"latest_snapshot\":\"%s\"}\n",
               c.events_applied, c.newest_update_time, st.users, st.items, st.retained, st.pairs,
               st.dirty, latest);
        return CLI_EXIT_OK;
    }
    printf("%-20s %" PRIu64 "\n%-20s %" PRId64 "\n%-20s %" PRIu64 "\n%-20s %" PRIu64
           "\n%-20s %" PRIu64 "\n%-20s %" PRIu64 "\n%-20s %" PRIu64 "\n%-20s %s\n",
           "events applied", c.events_applied, "newest update", c.newest_update_time, "users",
           st.users, "items", st.items, "retained items", st.retained, "pairs", st.pairs,
           "dirty rows", st.dirty, "latest snapshot", latest);
    return CLI_EXIT_OK;
}

int cmd_status(int argc, char **argv)
{
    const char *url = NULL, *db = NULL;
    int json = 0;
    const cli_opt_t opts[] = {
        {"url", CLI_STR, &url, "URL", "a running atlasd, e.g. http://127.0.0.1:8477"},
        {"db", CLI_STR, &db, "DIR", "or a store directly"},
        {"json", CLI_FLAG, &json, NULL, "print JSON"},
    };
    const cli_cmd_t cmd = {"status", "(--url URL | --db DIR) [--json]",
                           "Show what a daemon or a store holds and how ingestion is going.", opts,
                           ATL_ARRAY_LEN(opts)};
    int rc = cli_parse(&cmd, argc, argv, NULL, NULL);
    if (rc != CLI_EXIT_OK)
        return rc < 0 ? CLI_EXIT_OK : rc;
    if (!url == !db) {
        fprintf(stderr, "atlasctl status: give exactly one of --url and --db\n");
        return CLI_EXIT_USAGE;
    }
    return url ? status_url(url, json) : status_db(db, json);
}

/* Position of @p key in sorted @p keys, or UINT32_MAX. */
static uint32_t key_at(const uint64_t *keys, uint32_t n, uint64_t key)
{
    const uint64_t *p = bsearch(&key, keys, n, sizeof(*keys), atl_cmp_u64);
    return p ? (uint32_t)(p - keys) : UINT32_MAX;
}

/* The item's place in the last published map: the coordinates the store keeps for it. */
static void inspect_map(store_t *s, uint64_t key)
{
    store_coords_t c;
    char id[ITEM_ID_MAX];
    if (store_coords_load(s, &c) != 0 || c.n == 0) {
        printf("map                  none published yet\n");
        return;
    }
    uint32_t at = key_at(c.keys, c.n, key);
    printf("snapshot             %s\n", c.snapshot);
    if (at == UINT32_MAX) {
        printf("map position         not on the map (not retained when it was published)\n");
        store_coords_free(&c);
        return;
    }
    const double *x = c.x3 + 3 * (size_t)at;
    printf("map position         %.4f %.4f\n", c.framed[2 * at], c.framed[2 * at + 1]);
    printf("3-D coordinates      %.4f %.4f %.4f\n", x[0], x[1], x[2]);
    printf("kNN neighbours, nearest first in T (3-D distance):\n");
    for (uint32_t q = 0; q < c.k; q++) {
        uint64_t nk = c.knn[(size_t)at * c.k + q];
        uint32_t j = nk ? key_at(c.keys, c.n, nk) : UINT32_MAX;
        if (j == UINT32_MAX)
            continue;
        const double *y = c.x3 + 3 * (size_t)j;
        double d = sqrt((x[0] - y[0]) * (x[0] - y[0]) + (x[1] - y[1]) * (x[1] - y[1]) +
                        (x[2] - y[2]) * (x[2] - y[2]));
        printf("  %-18s %.4f\n", item_key_format(nk, id), d);
    }
    store_coords_free(&c);
}

int cmd_inspect(int argc, char **argv)
{
    const char *db = NULL;
    uint64_t k = 20;
    const cli_opt_t opts[] = {
        {"db", CLI_STR, &db, "DIR", "store directory (required)"},
        {"k", CLI_U64, &k, "N", "top co-occurring items to list (default 20)"},
    };
    const cli_cmd_t cmd = {
        "inspect", "ITEM --db DIR [--k N]",
        "An item's stats, metadata, top co-occurring items and its place in the\n"
        "latest snapshot. ITEM is an item id such as 856861_DT.",
        opts, ATL_ARRAY_LEN(opts)};
    const char **rest;
    size_t n_rest;
    int rc = cli_parse(&cmd, argc, argv, &rest, &n_rest);
    if (rc != CLI_EXIT_OK)
        return rc < 0 ? CLI_EXIT_OK : rc;
    uint64_t key;
    if (!db || n_rest != 1 || k == 0 || k > 10000 ||
        item_key_parse(rest[0], strlen(rest[0]), &key) != 0) {
        fprintf(stderr, "atlasctl inspect: %s (see --help)\n",
                !db ? "--db is required"
                    : (n_rest != 1
                           ? "give one ITEM"
                           : (k == 0 || k > 10000 ? "--k 1..10000"
                                                  : "ITEM is not an item id like 856861_DT")));
        free(rest);
        return CLI_EXIT_USAGE;
    }
    free(rest);
    store_t *s;
    if (cli_store_open("inspect", db, 1, &s) != 0)
        return CLI_EXIT_FAIL;
    uint32_t nu;
    int64_t sum;
    char id[ITEM_ID_MAX], *arena = NULL;
    if ((rc = store_item_stats_get(s, key, &nu, &sum)) != 0) {
        fprintf(stderr, "atlasctl inspect: %s: %s\n", item_key_format(key, id),
                rc == ATL_ENOTFOUND ? "no such item in the store" : atl_strerror(rc));
        store_close(s);
        return CLI_EXIT_FAIL;
    }
    corpus_row_t row;
    double zero[2] = {0, 0};
    uint64_t *keys = xmalloc(k * sizeof(*keys));
    double *sv = xmalloc(k * sizeof(*sv));
    uint32_t n = 0;
    if ((rc = store_corpus_rows(s, &key, zero, 1, &row, &arena)) == 0)
        rc = store_cooc_top(s, key, (uint32_t)k, keys, sv, &n);
    if (rc != 0) {
        store_close(s);
        fprintf(stderr, "atlasctl inspect: %s\n", atl_strerror(rc));
        free(keys), free(sv), free(arena);
        return CLI_EXIT_FAIL;
    }
    printf("item                 %s\n", item_key_format(key, id));
    printf("beatmap              %.*s [%.*s] by %.*s (set %u)\n", row.title_len,
           row.title ? row.title : "", row.version_len, row.version ? row.version : "",
           row.creator_len, row.creator ? row.creator : "", row.beatmapset_id);
    printf("players              %u\n", nu);
    printf("average pp           %.2f\n", nu ? weight_to_double(sum) / nu : 0.0);
    printf("retained             %s\n", weight_retained(nu, sum) ? "yes" : "no");
    printf("stars                %.2f\n", (double)row.stars);
    printf("top co-occurring items (S):\n");
    for (uint32_t i = 0; i < n; i++)
        printf("  %-18s %.3f\n", item_key_format(keys[i], id), sv[i]);
    inspect_map(s, key);
    store_close(s);
    free(keys), free(sv), free(arena);
    return CLI_EXIT_OK;
}
