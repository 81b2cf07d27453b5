/*
 * inspect.c: `atlasctl status` (a running daemon's /status, or a store's counts) and
 * `atlasctl inspect ITEM` (an item's stats, metadata, top co-occurring items, and its
 * coordinates and kNN neighbours in the latest snapshot).
 */
#include <errno.h>
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
#include "tools/fetch.h"

static void print_field(const cJSON *o, const char *name, const char *label)
{
    const cJSON *f = cJSON_GetObjectItemCaseSensitive(o, name);
    if (cJSON_IsNumber(f))
        printf("%-20s %.15g\n", label, f->valuedouble);
    else if (cJSON_IsString(f))
        printf("%-20s %s\n", label, f->valuestring[0] ? f->valuestring : "-");
}

/* A daemon's /status as the table `status --url` prints. */
static void print_status_table(const cJSON *o)
{
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
    const cJSON *f = cJSON_GetObjectItemCaseSensitive(o, "freshness");
    print_field(f, "latest_snapshot", "latest snapshot");
    print_field(f, "newest_event_time", "newest event (map)");
    print_field(f, "refresh_lag_seconds", "refresh lag s");
    print_field(f, "items_dirty", "dirty items");
    const cJSON *r = cJSON_GetObjectItemCaseSensitive(o, "refresh");
    if (r) {
        const cJSON *run = cJSON_GetObjectItemCaseSensitive(r, "running");
        const cJSON *kind = cJSON_GetObjectItemCaseSensitive(r, "kind");
        const char *stage = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(r, "stage"));
        if (cJSON_IsTrue(run))
            printf("%-20s %s: %s %.0f%%\n", "refresh",
                   cJSON_IsString(kind) ? kind->valuestring : "", stage ? stage : "",
                   100 * cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(r, "fraction")));
        else
            printf("%-20s idle\n", "refresh");
        print_field(r, "refreshes", "refreshes");
        print_field(r, "rebuilds", "rebuilds");
        print_field(r, "failures", "refresh failures");
        print_field(r, "last_error", "last refresh error");
    }
}

static int status_url(const char *url, const fetch_limits_t *lim, int json)
{
    char full[4096], err[512];
    uint8_t *body;
    size_t len;
    fetch_url_build(full, sizeof(full), url, "/status");
    if (fetch_get(full, lim, &body, &len, err, sizeof(err)) != 0) {
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
    print_status_table(o);
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
    uint64_t timeout_s = FETCH_TIMEOUT_DEFAULT_S;
    int json = 0;
    const cli_opt_t opts[] = {
        {"url", CLI_STR, &url, "URL", "a running atlasd, e.g. http://127.0.0.1:8477"},
        {"db", CLI_STR, &db, "DIR", "or a store directly"},
        {"json", CLI_FLAG, &json, NULL, "print JSON"},
        {"http-timeout", CLI_U64, &timeout_s, "S",
         "with --url, fail when the daemon has not answered in S seconds (default 30)"},
    };
    const cli_range_t ranges[] = {{"http-timeout", 1, 86400}};
    const cli_cmd_t cmd = {"status",
                           "(--url URL | --db DIR) [--json]",
                           "Show what a daemon or a store holds and how ingestion is going.",
                           opts,
                           ATL_ARRAY_LEN(opts),
                           ranges,
                           ATL_ARRAY_LEN(ranges)};
    int rc = cli_parse(&cmd, argc, argv, NULL, NULL);
    if (rc != 0)
        return cli_exit(rc);
    if (!url == !db) {
        fprintf(stderr, "atlasctl status: give exactly one of --url and --db\n");
        return CLI_EXIT_USAGE;
    }
    /* /status is small and answered from memory: a whole answer within the limit */
    const fetch_limits_t lim = {(long)timeout_s, (long)timeout_s};
    return url ? status_url(url, &lim, json) : status_db(db, json);
}

static const char *jstr(const cJSON *o, const char *name)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
    return cJSON_IsString(v) ? v->valuestring : "";
}

static double jnum(const cJSON *o, const char *name)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
    return cJSON_IsNumber(v) ? v->valuedouble : 0;
}

/* The table of one item, from the JSON of store_item_json() (a store or GET /items/<id>). */
/* The three numbers of a map's "xyz". @return 0, or -EPROTO when it is not that (an answer from
 * another version, or through a proxy that rewrote it: it used to be read blindly, a crash). */
static int xyz3(const cJSON *x, double out[3])
{
    if (!cJSON_IsArray(x) || cJSON_GetArraySize(x) != 3)
        return -EPROTO;
    for (int c = 0; c < 3; c++) {
        const cJSON *v = cJSON_GetArrayItem(x, c);
        if (!cJSON_IsNumber(v))
            return -EPROTO;
        out[c] = v->valuedouble;
    }
    return 0;
}

/* Print an item's JSON. @return 0, or -EPROTO (not JSON, or a map without its coordinates) */
static int print_item(const char *json, size_t len)
{
    cJSON *o = cJSON_ParseWithLength(json, len);
    if (!o) {
        fprintf(stderr, "atlasctl inspect: the answer is not JSON\n");
        return -EPROTO;
    }
    const cJSON *b = cJSON_GetObjectItemCaseSensitive(o, "beatmap"), *e;
    printf("item                 %s\n", jstr(o, "item"));
    printf("beatmap              %s [%s] by %s (set %.0f)\n", jstr(b, "title"), jstr(b, "version"),
           jstr(b, "creator"), jnum(b, "beatmapset_id"));
    printf("players              %.0f\n", jnum(o, "players"));
    printf("average pp           %.2f\n", jnum(o, "avg_pp"));
    printf("retained             %s\n",
           cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(o, "retained")) ? "yes" : "no");
    printf("stars                %.2f\n", jnum(b, "stars"));
    printf("top co-occurring items (S):\n");
    cJSON_ArrayForEach(e, cJSON_GetObjectItemCaseSensitive(o, "top_cooccurring"))
        printf("  %-18s %.3f\n", jstr(e, "item"), jnum(e, "s"));
    const cJSON *m = cJSON_GetObjectItemCaseSensitive(o, "map");
    if (!cJSON_IsObject(m)) {
        printf("map position         not on the last published map\n");
    } else {
        double x[3];
        if (xyz3(cJSON_GetObjectItemCaseSensitive(m, "xyz"), x) != 0) {
            fprintf(stderr, "atlasctl inspect: the answer's \"map\" has no \"xyz\" of three "
                            "numbers\n");
            cJSON_Delete(o);
            return -EPROTO;
        }
        printf("snapshot             %s\n", jstr(m, "snapshot"));
        printf("map position         %.4f %.4f\n", jnum(m, "x"), jnum(m, "y"));
        printf("3-D coordinates      %.4f %.4f %.4f\n", x[0], x[1], x[2]);
        printf("kNN neighbours, nearest first in T (3-D distance):\n");
        cJSON_ArrayForEach(e, cJSON_GetObjectItemCaseSensitive(m, "neighbours"))
            printf("  %-18s %.4f\n", jstr(e, "item"), jnum(e, "distance_3d"));
    }
    cJSON_Delete(o);
    return 0;
}

static int inspect_db(const char *db, uint64_t key, uint32_t k, char **json, size_t *len)
{
    store_t *s;
    char id[ITEM_ID_MAX];
    int rc = cli_store_open("inspect", db, 1, &s);
    if (rc != 0)
        return rc;
    rc = store_item_json(s, key, k, json);
    store_close(s);
    if (rc != 0) {
        fprintf(stderr, "atlasctl inspect: %s: %s\n", item_key_format(key, id),
                rc == ATL_ENOTFOUND ? "no such item in the store" : atl_strerror(rc));
        return rc;
    }
    *len = strlen(*json);
    return 0;
}

static int inspect_url(const char *url, const fetch_limits_t *lim, uint64_t key, uint32_t k,
                       char **json, size_t *len)
{
    char full[4096], id[ITEM_ID_MAX], err[512];
    int status = 0;
    uint8_t *body = NULL;
    fetch_url_build(full, sizeof(full), url, "/items/%s?k=%u", item_key_format(key, id), k);
    int rc = fetch_request("GET", full, NULL, lim, &status, &body, len, err, sizeof(err));
    if (rc != 0) {
        fprintf(stderr, "atlasctl inspect: GET %s: %s\n", full, err);
        return rc;
    }
    if (status != 200) {
        fprintf(stderr, "atlasctl inspect: %s: %s\n", id,
                status == 404 ? "no such item in the store" : "the daemon refused");
        free(body);
        return status == 404 ? ATL_ENOTFOUND : -EPROTO;
    }
    *json = (char *)body;
    return 0;
}

int cmd_inspect(int argc, char **argv)
{
    const char *db = NULL, *url = NULL;
    uint64_t k = 20, timeout_s = FETCH_TIMEOUT_DEFAULT_S;
    int json = 0;
    const cli_opt_t opts[] = {
        {"db", CLI_STR, &db, "DIR", "a store directory (works beside a running daemon)"},
        {"url", CLI_STR, &url, "URL", "or a running atlasd, e.g. http://127.0.0.1:8477"},
        {"k", CLI_U64, &k, "N", "top co-occurring items to list (default 20)"},
        {"json", CLI_FLAG, &json, NULL, "print JSON"},
        {"http-timeout", CLI_U64, &timeout_s, "S",
         "with --url, fail when the daemon has not answered in S seconds (default 30)"},
    };
    const cli_range_t ranges[] = {{"k", 1, 10000}, {"http-timeout", 1, 86400}};
    const cli_cmd_t cmd = {
        "inspect",
        "ITEM (--db DIR | --url URL) [--k N] [--json]",
        "An item's stats, metadata, top co-occurring items and its place in the last\n"
        "published map (coordinates, kNN neighbours with distances). ITEM is an item id such\n"
        "as 856861_DT.",
        opts,
        ATL_ARRAY_LEN(opts),
        ranges,
        ATL_ARRAY_LEN(ranges)};
    const char **rest;
    size_t n_rest;
    int rc = cli_parse(&cmd, argc, argv, &rest, &n_rest);
    if (rc != 0)
        return cli_exit(rc);
    uint64_t key;
    if (!db == !url || n_rest != 1 || item_key_parse(rest[0], strlen(rest[0]), &key) != 0) {
        fprintf(stderr, "atlasctl inspect: %s (see --help)\n",
                !db == !url
                    ? "give exactly one of --db and --url"
                    : (n_rest != 1 ? "give one ITEM" : "ITEM is not an item id like 856861_DT"));
        free(rest);
        return CLI_EXIT_USAGE;
    }
    free(rest);
    char *text = NULL;
    size_t len = 0;
    const fetch_limits_t lim = {(long)timeout_s, (long)timeout_s}; /* one item: a small answer */
    if ((db ? inspect_db(db, key, (uint32_t)k, &text, &len)
            : inspect_url(url, &lim, key, (uint32_t)k, &text, &len)) != 0)
        return CLI_EXIT_FAIL;
    int bad = 0;
    if (json)
        printf("%.*s\n", (int)len, text);
    else
        bad = print_item(text, len) != 0;
    free(text);
    return bad ? CLI_EXIT_FAIL : CLI_EXIT_OK;
}
