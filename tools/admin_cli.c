/*
 * admin_cli.c: `atlasctl rebuild`, the operator's forced full rebuild (DESIGN §7, issue 6).
 *
 * On a running daemon it POSTs /admin/rebuild and, with --wait, follows /status until the
 * rebuild that answers the request has published (printing the snapshot id as the last line of
 * stdout). With --offline it takes the store's owner lock and runs the same work in-process:
 * recompute S from the profiles, repair drift, full kNN, MDE, layout, publish. It lives in
 * daemon/ because the refresh pipeline does; atlasctl reaches it through tools/cli.h.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cJSON.h>

#include "algo/atl.h"
#include "pipeline/refresh.h"
#include "store/store.h"
#include "tools/cli.h"
#include "tools/fetch.h"

#define DEFAULT_URL "http://127.0.0.1:8477"

typedef struct rebuild_args {
    const char *db, *url, *token, *snapshots;
    int offline, verify_only, cold, wait, json, no_publish;
    uint64_t mem_mb, keep, seed, timeout_s, http_timeout_s;
} rebuild_args_t;

/* Every request to the daemon is small (the rebuild request, /status): answered whole within
 * --http-timeout, or the daemon is taken as hung. */
static fetch_limits_t http_limits(const rebuild_args_t *a)
{
    return (fetch_limits_t){(long)a->http_timeout_s, (long)a->http_timeout_s};
}

static void print_verify(const rebuild_args_t *a, const store_rebuild_result_t *res, double secs)
{
    uint64_t diffs = res->s_diffs + res->stats_diffs;
    if (a->json)
        return;
    printf("recomputed  %" PRIu64 " S entries, %" PRIu64 " item stats in %u pass(es), %.2f s\n",
           res->s_entries, res->stats_items, res->passes, secs);
    printf("differences %" PRIu64 " in S, %" PRIu64 " in item stats%s\n", res->s_diffs,
           res->stats_diffs, diffs ? (a->verify_only ? "" : " (repaired)") : "");
    if (diffs)
        printf("first       %s\n", res->first_diff);
}

/* --json: the pipeline's one serialisation of the result (refresh_result_json), the verification
 * of S included; without a publish only verify and seconds carry figures. */
static void print_json(const rebuild_args_t *a, const store_rebuild_result_t *v, double t_verify,
                       double secs, refresh_result_t *r)
{
    char buf[REFRESH_JSON_MAX];
    r->full = 1;
    r->verify = *v, r->verified = 1, r->verify_only = a->verify_only;
    r->t_verify = t_verify, r->t_total = secs;
    if (!r->id[0])
        r->stability_median = r->stability_p95 = -1; /* nothing published */
    if (refresh_result_json(r, 0, buf, sizeof(buf)) >= 0)
        printf("%s\n", buf);
}

/* The pipeline's full run on the store: publish into --snapshots (or DB/snapshots). "Nothing to
 * lay out yet" (ATL_ENOTFOUND) is not a failure: r->id stays empty. */
static int publish_offline(const rebuild_args_t *a, store_t *s, cli_progress_t *prog,
                           refresh_result_t *r)
{
    char snapdir[4096], err[1024];
    snprintf(snapdir, sizeof(snapdir), "%s", a->snapshots ? a->snapshots : "");
    if (!a->snapshots)
        snprintf(snapdir, sizeof(snapdir), "%s/snapshots", a->db);
    refresh_opts_t o;
    refresh_opts_default(&o);
    o.snapdir = snapdir, o.keep = (unsigned)a->keep, o.seed = a->seed;
    o.full = 1, o.cold = a->cold;
    o.progress = cli_progress_cb, o.progress_ud = prog;
    int rc = refresh_run(s, NULL, &o, r, err, sizeof(err));
    cli_progress_done(prog);
    if (rc == ATL_ENOTFOUND) {
        fprintf(stderr, "atlasctl rebuild: not published: %s\n", err);
        r->id[0] = '\0';
        return 0;
    }
    if (rc != 0) {
        fprintf(stderr, "atlasctl rebuild: %s\n", err[0] ? err : atl_strerror(rc));
        return rc;
    }
    fprintf(stderr,
            "published %s: %u items; knn %.1f s, mde %.1f s (%u iterations%s), layout %.1f s, "
            "read %.1f s, publish %.1f s\n",
            r->id, r->items, r->t_knn, r->t_mde, r->mde_iterations, r->warm ? ", warm" : "",
            r->t_layout, r->t_read, r->t_publish);
    if (r->stability_items)
        fprintf(stderr,
                "stability: the %u items whose kNN rows did not change moved median %.3f%%, p95 "
                "%.3f%% of the map's width\n",
                r->stability_items, 100 * r->stability_median, 100 * r->stability_p95);
    return 0;
}

static int rebuild_offline(rebuild_args_t *a)
{
    char err[1024];
    int lock = -1;
    /* before the lock: a directory that is no store would get atlasd.lock, then data.mdb */
    if (cli_store_check("rebuild", a->db) != 0)
        return CLI_EXIT_FAIL;
    if (store_lock(a->db, &lock, err, sizeof(err)) != 0) {
        fprintf(stderr, "atlasctl rebuild: %s\n", err);
        return CLI_EXIT_FAIL;
    }
    store_t *s;
    int publishing = !a->no_publish && !(a->verify_only && !a->snapshots);
    if (cli_store_open("rebuild", a->db, a->verify_only && !publishing, &s) != 0) {
        store_unlock(lock);
        return CLI_EXIT_FAIL;
    }
    cli_progress_t prog;
    cli_progress_init(&prog, "rebuild");
    store_prefetch_result_t pre; /* the S check walks the whole store (the refresh after it
                                  * finds the file cached) */
    double t_pre = cli_store_prefetch("rebuild", s, &prog, &pre);
    double t_check = pipeline_now();
    store_rebuild_opts_t ro;
    store_rebuild_opts_default(&ro);
    ro.verify_only = a->verify_only;
    ro.mem_bytes = (size_t)a->mem_mb << 20;
    ro.progress = cli_progress_cb, ro.progress_ud = &prog;
    store_rebuild_result_t res;
    int rc = store_rebuild(s, &ro, &res), code = CLI_EXIT_OK;
    double secs = pipeline_now() - t_check;
    if (rc != 0) {
        cli_progress_done(&prog);
        fprintf(stderr, "atlasctl rebuild: %s\n", atl_strerror(rc));
        code = CLI_EXIT_FAIL;
        goto out;
    }
    uint64_t diffs = res.s_diffs + res.stats_diffs;
    if (diffs && a->verify_only) {
        cli_progress_done(&prog);
        print_verify(a, &res, secs);
        if (a->json)
            print_json(a, &res, secs, t_pre + secs,
                       &(refresh_result_t){.prefetched = 1, .prefetch = pre, .t_prefetch = t_pre});
        fprintf(stderr, "atlasctl rebuild: verification failed: %s\n", res.first_diff);
        code = CLI_EXIT_FAIL;
        goto out;
    }
    refresh_result_t r = {0};
    if (publishing && publish_offline(a, s, &prog, &r) != 0) {
        code = CLI_EXIT_FAIL;
        goto out;
    }
    if (!publishing)
        cli_progress_done(&prog); /* publish_offline() finished it */
    double t_verify = secs;
    r.prefetched = 1, r.prefetch = pre, r.t_prefetch = t_pre; /* the refresh's own found the
                                                               * file cached */
    secs = pipeline_now() - prog.start;
    print_verify(a, &res, secs);
    if (a->json)
        print_json(a, &res, t_verify, secs, &r);
    else if (r.id[0])
        printf("%s\n", r.id); /* the snapshot id is the last line of stdout */
out:
    store_close(s);
    store_unlock(lock);
    return code;
}

static cJSON *get_status(const rebuild_args_t *a, char *err, size_t errlen)
{
    char full[2048];
    uint8_t *body;
    size_t len;
    const char *url = a->url;
    const fetch_limits_t lim = http_limits(a);
    fetch_url_build(full, sizeof(full), url, "/status");
    if (fetch_get(full, &lim, &body, &len, err, errlen) != 0)
        return NULL;
    cJSON *o = cJSON_ParseWithLength((const char *)body, len);
    free(body);
    if (!o)
        snprintf(err, errlen, "%.400s did not answer JSON", url);
    return o;
}

static double num(const cJSON *o, const char *name)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
    return cJSON_IsNumber(v) ? v->valuedouble : 0;
}

static const char *str(const cJSON *o, const char *name)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
    return cJSON_IsString(v) ? v->valuestring : "";
}

/* Follow /status until the rebuild answering @p request has finished. */
/* The answered rebuild from /status (last_rebuild): JSON, or the verification, the timings and
 * the snapshot id as the last line. */
static void print_rebuild(const rebuild_args_t *a, const cJSON *b)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(b, "verify");
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(b, "seconds");
    if (a->json) {
        char *txt = cJSON_PrintUnformatted(b);
        printf("%s\n", txt);
        free(txt);
        return;
    }
    printf("verified    %.0f S entries: %.0f differences in S, %.0f in item stats%s\n",
           num(v, "s_entries"), num(v, "s_diffs"), num(v, "stats_diffs"),
           num(v, "s_diffs") + num(v, "stats_diffs") > 0 ? " (repaired)" : "");
    if (num(v, "s_diffs") + num(v, "stats_diffs") > 0)
        printf("first       %s\n", str(v, "first_diff"));
    printf("rebuilt     %.0f items in %.1f s (verify %.1f, read %.1f, knn %.1f, mde %.1f, layout "
           "%.1f, publish %.1f)\n",
           num(b, "items"), num(t, "total"), num(t, "verify"), num(t, "read"), num(t, "knn"),
           num(t, "mde"), num(t, "layout"), num(t, "publish"));
    printf("%s\n", str(b, "snapshot")); /* last line: the snapshot id */
}

static int wait_rebuild(const rebuild_args_t *a, uint64_t request)
{
    char err[512];
    cli_progress_t prog;
    cli_progress_init(&prog, "rebuild");
    for (;;) {
        cJSON *st = get_status(a, err, sizeof(err));
        if (!st) {
            cli_progress_done(&prog);
            fprintf(stderr, "atlasctl rebuild: lost the daemon: %s\n", err);
            return CLI_EXIT_FAIL;
        }
        const cJSON *r = cJSON_GetObjectItemCaseSensitive(st, "refresh");
        const cJSON *asked = cJSON_GetObjectItemCaseSensitive(r, "rebuild_requested");
        if (cJSON_IsNumber(asked) && asked->valuedouble < (double)request) {
            /* the daemon counts requests from its start: fewer than ours means it restarted and
             * our request is gone (waiting on, we would wait forever, or take a later rebuild
             * of someone else's for ours) */
            cli_progress_done(&prog);
            fprintf(stderr,
                    "atlasctl rebuild: the daemon restarted and request %" PRIu64
                    " was lost (it now counts %.0f); run atlasctl rebuild again\n",
                    request, asked->valuedouble);
            cJSON_Delete(st);
            return CLI_EXIT_FAIL;
        }
        if ((uint64_t)num(r, "rebuild_answered") >= request) {
            const cJSON *b = cJSON_GetObjectItemCaseSensitive(r, "last_rebuild");
            int ok = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(b, "ok"));
            cli_progress_cb(&prog, "done", 1.0);
            cli_progress_done(&prog);
            int code = CLI_EXIT_OK;
            if (!ok) {
                fprintf(stderr, "atlasctl rebuild: the daemon's rebuild failed: %s\n",
                        str(b, "error"));
                code = CLI_EXIT_FAIL;
            } else {
                print_rebuild(a, b);
            }
            cJSON_Delete(st);
            return code;
        }
        if (strcmp(str(r, "kind"), "rebuild") == 0)
            cli_progress_cb(&prog, str(r, "stage"), num(r, "fraction"));
        else if (strcmp(str(r, "kind"), "warm-up") == 0)
            cli_progress_update(&prog, 0,
                                "queued behind the daemon's warm-up (reading its store "
                                "ahead)");
        else if (str(r, "kind")[0])
            cli_progress_update(&prog, 0, "queued behind a %s", str(r, "kind"));
        else
            cli_progress_update(&prog, 0, "queued");
        cJSON_Delete(st);
        if (a->timeout_s && pipeline_now() - prog.start > (double)a->timeout_s) {
            cli_progress_done(&prog);
            fprintf(stderr, "atlasctl rebuild: not finished after %" PRIu64 " s (still running)\n",
                    a->timeout_s);
            return CLI_EXIT_FAIL;
        }
        nanosleep(&(struct timespec){0, 250 * 1000 * 1000}, NULL);
    }
}

static int rebuild_online(rebuild_args_t *a)
{
    char url[2048], err[512];
    uint8_t *body = NULL;
    size_t len = 0;
    int status = 0;
    const fetch_limits_t lim = http_limits(a);
    fetch_url_build(url, sizeof(url), a->url, "/admin/rebuild%s", a->cold ? "?cold=1" : "");
    if (fetch_request("POST", url, a->token, &lim, &status, &body, &len, err, sizeof(err)) != 0) {
        fprintf(stderr, "atlasctl rebuild: %s (is atlasd running? or use --offline --db DIR)\n",
                err);
        return CLI_EXIT_FAIL;
    }
    cJSON *o = status == 202 ? cJSON_ParseWithLength((const char *)body, len) : NULL;
    const cJSON *req = cJSON_GetObjectItemCaseSensitive(o, "request");
    if (status != 202 || !cJSON_IsNumber(req)) {
        fprintf(stderr, "atlasctl rebuild: the daemon refused: HTTP %d: %.*s", status, (int)len,
                body ? (const char *)body : "");
        if (!len || body[len - 1] != '\n')
            fputc('\n', stderr);
        free(body);
        cJSON_Delete(o);
        return CLI_EXIT_FAIL;
    }
    uint64_t request = (uint64_t)req->valuedouble;
    free(body);
    cJSON_Delete(o);
    fprintf(stderr, "rebuild request %" PRIu64 " accepted by %s%s\n", request, a->url,
            a->cold ? " (cold)" : "");
    if (!a->wait) {
        printf("%" PRIu64 "\n", request);
        return CLI_EXIT_OK;
    }
    return wait_rebuild(a, request);
}

int cmd_rebuild(int argc, char **argv)
{
    rebuild_args_t a = {.url = DEFAULT_URL,
                        .mem_mb = 2048,
                        .keep = 10,
                        .seed = 42,
                        .http_timeout_s = FETCH_TIMEOUT_DEFAULT_S};
    const cli_opt_t opts[] = {
        {"url", CLI_STR, &a.url, "URL", "the daemon (default " DEFAULT_URL ")"},
        {"token", CLI_STR, &a.token, "T",
         "bearer token (the daemon's admin-token; not needed from its own host)"},
        {"wait", CLI_FLAG, &a.wait, NULL,
         "wait until the rebuilt snapshot is published; print its id as the last line"},
        {"timeout", CLI_U64, &a.timeout_s, "S", "with --wait, give up after S seconds (0: never)"},
        {"http-timeout", CLI_U64, &a.http_timeout_s, "S",
         "fail when the daemon has not answered a request in S seconds (default 30)"},
        {"cold", CLI_FLAG, &a.cold, NULL, "no warm start: random MDE start, fresh layout"},
        {"offline", CLI_FLAG, &a.offline, NULL, "work on a store directly (no daemon running)"},
        {"db", CLI_STR, &a.db, "DIR", "store directory (with --offline)"},
        {"verify", CLI_FLAG, &a.verify_only, NULL,
         "with --offline: only compare S with a recomputation; exit 1 on any difference"},
        {"mem-mb", CLI_U64, &a.mem_mb, "MB", "memory for one recomputed block of S (default 2048)"},
        {"snapshots", CLI_STR, &a.snapshots, "DIR",
         "with --offline: publish into DIR (default DB/snapshots, as the daemon)"},
        {"no-publish", CLI_FLAG, &a.no_publish, NULL,
         "with --offline: only verify and repair S, publish nothing"},
        {"keep", CLI_U64, &a.keep, "N", "snapshots to keep (default 10)"},
        {"seed", CLI_U64, &a.seed, "N", "random seed of MDE and the layout (default 42)"},
        {"json", CLI_FLAG, &a.json, NULL, "print the result as JSON"},
    };
    /* keep lands in an unsigned, mem-mb is shifted into bytes */
    const cli_range_t ranges[] = {
        {"keep", 1, 100000}, {"mem-mb", 1, 1 << 24}, {"http-timeout", 1, 86400}};
    const cli_cmd_t cmd = {
        "rebuild",
        "[--url URL] [--token T] [--wait] [--cold]   |   --offline --db DIR [--verify] [--cold]",
        "Force a full rebuild: recompute S from the profiles and repair any drift from the\n"
        "incremental S, recompute every kNN row, MDE (warm unless --cold), the 2-D layout, and\n"
        "publish a snapshot. Against a running daemon by default; --offline on a stopped one.",
        opts,
        ATL_ARRAY_LEN(opts),
        ranges,
        ATL_ARRAY_LEN(ranges)};
    int rc = cli_parse(&cmd, argc, argv, NULL, NULL);
    if (rc != 0)
        return cli_exit(rc);
    if (a.offline && !a.db) {
        fprintf(stderr, "atlasctl rebuild: --offline needs --db DIR (see --help)\n");
        return CLI_EXIT_USAGE;
    }
    if (!a.offline && (a.db || a.verify_only || a.no_publish || a.snapshots)) {
        fprintf(stderr, "atlasctl rebuild: --db, --verify, --snapshots and --no-publish go with "
                        "--offline (see --help)\n");
        return CLI_EXIT_USAGE;
    }
    return a.offline ? rebuild_offline(&a) : rebuild_online(&a);
}
