/*
 * snapshots.c: `atlasctl snapshots list|verify|export` on a snapshot directory or file.
 * verify re-checks the sha256 and byte count against the manifest beside the file (when there
 * is one; one that cannot be read or parsed fails the check) and parses every row (count,
 * string bounds, finite coordinates, mods bits).
 */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cJSON.h>

#include "algo/corpus.h"
#include "algo/item.h"
#include "store/store.h"
#include "tools/cli.h"
#include "tools/fetch.h"

static uint8_t *read_all(const char *path, size_t *len)
{
    uint8_t *buf = cli_read_file(path, len);
    if (!buf)
        fprintf(stderr, "atlasctl snapshots: cannot read %s: %s\n", path, strerror(errno));
    return buf;
}

/* DIR + ID ("latest" resolved through the latest file) -> path of the corpus file. */
static int resolve(const char *dir, const char *id, char *path, size_t len)
{
    char name[64];
    if (strcmp(id, "latest") == 0) {
        if (store_snapshot_latest(dir, name, sizeof(name)) != 0) {
            fprintf(stderr, "atlasctl snapshots: no latest snapshot in %s\n", dir);
            return ATL_ENOTFOUND;
        }
        id = name;
    }
    if (!store_snapshot_id_valid(id, strlen(id))) {
        fprintf(stderr, "atlasctl snapshots: \"%s\" is not a snapshot id\n", id);
        return -EINVAL;
    }
    snprintf(path, len, "%s/%s", dir, id);
    return 0;
}

/* Whether @p s is a sha256 in hex as manifests write it: 64 digits 0-9a-f. */
static int is_sha256_hex(const char *s)
{
    size_t n = strspn(s, "0123456789abcdef");
    return n == 64 && s[n] == '\0';
}

/* "sha256" and "bytes" of the parsed manifest @p o, or why not (a static string). */
static const char *manifest_fields(const cJSON *o, char sha[65], uint64_t *bytes)
{
    const cJSON *s = cJSON_GetObjectItemCaseSensitive(o, "sha256");
    const cJSON *b = cJSON_GetObjectItemCaseSensitive(o, "bytes");
    if (!cJSON_IsObject(o))
        return "not a JSON object";
    if (!cJSON_IsString(s) || !is_sha256_hex(s->valuestring))
        return "no \"sha256\" of 64 hex digits";
    if (!cJSON_IsNumber(b) || b->valuedouble < 0 || b->valuedouble > 9007199254740992.0 ||
        b->valuedouble != floor(b->valuedouble))
        return "no \"bytes\" count";
    memcpy(sha, s->valuestring, 65);
    *bytes = (uint64_t)b->valuedouble;
    return NULL;
}

/*
 * The "sha256" and "bytes" of the manifest beside @p path (PATH.json).
 * @return 1 and both; 0 when there is no manifest; -1 after printing why the manifest cannot be
 *         used (unreadable, not JSON, a field missing or malformed). A damaged manifest is not
 *         "no manifest": that would let a corrupted corpus beside it verify.
 */
static int manifest_of(const char *path, char sha[65], uint64_t *bytes)
{
    char mp[4200];
    snprintf(mp, sizeof(mp), "%s.json", path);
    size_t len;
    uint8_t *m = cli_read_file(mp, &len);
    if (!m && errno == ENOENT)
        return 0;
    if (!m) {
        fprintf(stderr, "%s: cannot read the manifest: %s\n", mp, strerror(errno));
        return -1;
    }
    cJSON *o = cJSON_ParseWithLength((const char *)m, len);
    free(m);
    const char *why = manifest_fields(o, sha, bytes);
    cJSON_Delete(o);
    if (why) {
        fprintf(stderr, "%s: damaged manifest: %s\n", mp, why);
        return -1;
    }
    return 1;
}

static int verify_file(const char *path)
{
    size_t len;
    uint8_t *buf = read_all(path, &len);
    if (!buf)
        return CLI_EXIT_FAIL;
    char err[256], sha[65], got[65];
    uint64_t bytes;
    uint32_t n;
    int rc = corpus_decode(buf, len, NULL, &n, err, sizeof(err)), m = 0;
    if (rc != 0)
        fprintf(stderr, "%s: not a well-formed corpus: %s\n", path, err);
    else if ((m = manifest_of(path, sha, &bytes)) < 0)
        rc = ATL_ECORRUPT;
    else if (m > 0) {
        store_sha256_hex(buf, len, got);
        if (bytes != len || strcmp(sha, got) != 0) {
            fprintf(stderr,
                    "%s: does not match its manifest (bytes %zu vs %" PRIu64
                    ", sha256 %.16s... vs %.16s...)\n",
                    path, len, bytes, got, sha);
            rc = ATL_ECORRUPT;
        }
    }
    free(buf);
    if (rc == 0)
        printf("%s: ok, %u rows, %zu bytes\n", path, n, len);
    return rc == 0 ? CLI_EXIT_OK : CLI_EXIT_FAIL;
}

static void print_string(const char *s, uint16_t len)
{
    for (uint16_t i = 0; i < len; i++)
        putchar(s[i] == '\t' || s[i] == '\n' ? ' ' : s[i]);
}

/* Export a corpus held in @p buf (consumed). */
static int export_buffer(const char *name, uint8_t *buf, size_t len, int json)
{
    char err[256], id[ITEM_ID_MAX];
    uint32_t n;
    const char *path = name;
    if (corpus_decode(buf, len, NULL, &n, err, sizeof(err)) != 0) {
        fprintf(stderr, "%s: not a well-formed corpus: %s\n", path, err);
        free(buf);
        return CLI_EXIT_FAIL;
    }
    corpus_row_t *rows = xcalloc((size_t)n + 1, sizeof(*rows));
    corpus_decode(buf, len, rows, &n, err, sizeof(err));
    if (!json)
        printf("item_id\tx\ty\tavg_pp\tstars\tnum_users\tyear\tlength\tbpm\tar\tcs\tod\taim\t"
               "speed\tbeatmapset_id\ttitle\tversion\tcreator\n");
    for (uint32_t i = 0; i < n; i++) {
        const corpus_row_t *r = &rows[i];
        item_key_format(item_key_make((uint32_t)r->beatmap_id, item_mods_from_legacy(r->mods)), id);
        if (json)
            printf("{\"item_id\":\"%s\",\"x\":%.6g,\"y\":%.6g,\"avg_pp\":%.6g,\"num_users\":%u}\n",
                   id, (double)r->x, (double)r->y, (double)r->avg_pp, r->num_users);
        else {
            printf("%s\t%.6g\t%.6g\t%.6g\t%.4g\t%u\t%u\t%u\t%u\t%g\t%g\t%g\t%.4g\t%.4g\t%u\t", id,
                   (double)r->x, (double)r->y, (double)r->avg_pp, (double)r->stars, r->num_users,
                   r->year, r->total_length, r->bpm, (double)r->ar, (double)r->cs, (double)r->od,
                   (double)r->aim, (double)r->speed, r->beatmapset_id);
            print_string(r->title, r->title_len);
            putchar('\t');
            print_string(r->version, r->version_len);
            putchar('\t');
            print_string(r->creator, r->creator_len);
            putchar('\n');
        }
    }
    free(rows);
    free(buf);
    return CLI_EXIT_OK; /* main() checks the writes to stdout */
}

static int export_file(const char *path, int json)
{
    size_t len;
    uint8_t *buf = read_all(path, &len);
    return buf ? export_buffer(path, buf, len, json) : CLI_EXIT_FAIL;
}

/* --url BASE: GET BASE/snapshots/<id> from a running atlasd (or a mirror of its paths). A
 * snapshot may be large: only a stall of @p stall_s seconds ends the download. */
static int export_url(const char *base, const char *id, long stall_s, int json)
{
    const fetch_limits_t lim = {stall_s, 0};
    char url[4096], err[512];
    if (strcmp(id, "latest") != 0 && !store_snapshot_id_valid(id, strlen(id))) {
        fprintf(stderr, "atlasctl snapshots: \"%s\" is not a snapshot id\n", id);
        return CLI_EXIT_USAGE;
    }
    fetch_url_build(url, sizeof(url), base, "/snapshots/%s", id);
    uint8_t *buf;
    size_t len;
    if (fetch_get(url, &lim, &buf, &len, err, sizeof(err)) != 0) {
        fprintf(stderr, "atlasctl snapshots: GET %s: %s\n", url, err);
        return CLI_EXIT_FAIL;
    }
    return export_buffer(url, buf, len, json);
}

static int list_dir(const char *dir)
{
    char **ids;
    size_t n;
    int rc = store_snapshot_ids(dir, &ids, &n);
    if (rc != 0) {
        fprintf(stderr, "atlasctl snapshots: cannot list %s: %s\n", dir, strerror(-rc));
        return CLI_EXIT_FAIL;
    }
    printf("id\titems\tbytes\tsha256\n");
    for (size_t i = 0; i < n; i++) {
        char path[4096], sha[65] = "", err[64];
        uint64_t bytes = 0;
        uint32_t items = 0;
        snprintf(path, sizeof(path), "%s/%s", dir, ids[i]);
        size_t len;
        uint8_t *buf = read_all(path, &len);
        if (buf && corpus_decode(buf, len, NULL, &items, err, sizeof(err)) != 0)
            items = 0;
        if (manifest_of(path, sha, &bytes) < 0) /* said why on stderr; listed all the same */
            snprintf(sha, sizeof(sha), "-");
        printf("%s\t%u\t%" PRIu64 "\t%s\n", ids[i], items, bytes, sha);
        free(buf);
        free(ids[i]);
    }
    free(ids);
    return CLI_EXIT_OK;
}

int cmd_snapshots(int argc, char **argv)
{
    const char *dir = NULL, *url = NULL, *id = "latest", *format = "tsv";
    uint64_t timeout_s = FETCH_TIMEOUT_DEFAULT_S;
    const cli_opt_t opts[] = {
        {"dir", CLI_STR, &dir, "DIR", "snapshot directory"},
        {"url", CLI_STR, &url, "URL", "export: a running atlasd, e.g. http://127.0.0.1:8477"},
        {"id", CLI_STR, &id, "ID", "snapshot id or latest (default latest)"},
        {"format", CLI_STR, &format, "FMT", "export format: tsv (default) or json"},
        {"http-timeout", CLI_U64, &timeout_s, "S",
         "export --url: fail when no data arrives for S seconds (default 30)"},
    };
    const cli_range_t ranges[] = {{"http-timeout", 1, 86400}};
    const cli_cmd_t cmd = {"snapshots",
                           "list --dir DIR | verify (FILE | --dir DIR [--id ID]) | "
                           "export (--dir DIR | --url URL) [--id ID] [--format tsv|json]",
                           "List, verify or export corpus snapshots.",
                           opts,
                           ATL_ARRAY_LEN(opts),
                           ranges,
                           ATL_ARRAY_LEN(ranges)};
    const char **rest;
    size_t n_rest;
    int rc = cli_parse(&cmd, argc, argv, &rest, &n_rest);
    if (rc != 0)
        return cli_exit(rc);
    const char *verb = n_rest ? rest[0] : "";
    char path[4096];
    rc = CLI_EXIT_USAGE;
    if (strcmp(verb, "list") == 0 && dir && n_rest == 1)
        rc = list_dir(dir);
    else if (strcmp(verb, "verify") == 0 && n_rest == 2)
        rc = verify_file(rest[1]);
    else if (strcmp(verb, "verify") == 0 && dir && n_rest == 1)
        rc = resolve(dir, id, path, sizeof(path)) ? CLI_EXIT_FAIL : verify_file(path);
    else if (strcmp(verb, "export") == 0 && url && !dir && n_rest == 1 &&
             (!strcmp(format, "tsv") || !strcmp(format, "json")))
        rc = export_url(url, id, (long)timeout_s, !strcmp(format, "json"));
    else if (strcmp(verb, "export") == 0 && dir && n_rest == 1 &&
             (!strcmp(format, "tsv") || !strcmp(format, "json")))
        rc = resolve(dir, id, path, sizeof(path)) ? CLI_EXIT_FAIL
                                                  : export_file(path, !strcmp(format, "json"));
    else
        fprintf(stderr, "atlasctl snapshots: expected list, verify or export (see --help)\n");
    free(rest);
    return rc;
}
