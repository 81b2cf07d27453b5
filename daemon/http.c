/*
 * http.c: h2o 2.2 on the daemon's libuv loop. See http.h and shared/reference/HTTP_NOTES.md
 * for the shape (register paths, accept on a uv_tcp listener) and the shutdown sequence
 * h2o needs before h2o_context_dispose() (no connection or timeout may remain).
 * Keep every h2o call in this file: its API changed in later releases.
 *
 * Connections are ours as well as h2o's: each accepted uv_tcp_t sits in an http_conn_t on the
 * server's list until its handle is closed. h2o 2.2 times out reading a request only; while it
 * writes a response nothing watches the client, so one that stops reading would hold its
 * socket and the open snapshot file forever. A sweep timer closes any connection whose pending
 * write has not moved for write_timeout_ms, and the shutdown closes what is left at its
 * deadline, the same way: SO_LINGER 0 and shutdown(), after which the pending write fails and
 * h2o closes the connection itself (nothing of h2o's is freed behind its back).
 */
#include "daemon/http.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/sockios.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <h2o.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "algo/atl.h"
#include "daemon/config.h"
#include "daemon/httpparse.h"
#include "daemon/log.h"
#include "store/store.h"

#define CLOSE_WAIT_MS         250   /* after the shutdown deadline, for h2o to close what was cut */
#define TIMEOUT_LOG_PERIOD_MS 10000 /* write timeouts are logged at most this often */

typedef struct http_conn http_conn_t;

struct http_server {
    uv_loop_t *loop;
    http_routes_t routes;
    int item_jobs; /* GET /items lookups queued or running on the thread pool */
    h2o_globalconf_t config;
    h2o_context_t ctx;
    h2o_accept_ctx_t accept_ctx;
    uv_tcp_t listener;
    int listening, port;
    http_conn_t *conns; /* every accepted connection until its handle is closed */
    unsigned n_conns;
    uv_timer_t sweep; /* the write timeout (started only with write_timeout_ms > 0) */
    uv_timer_t drain; /* wakes the shutdown's drain at its deadline */
    uint64_t write_timeouts, timeouts_logged_ms;
};

/* An accepted connection. `tcp` comes first: h2o's close callback gets &tcp. */
struct http_conn {
    uv_tcp_t tcp;
    http_server_t *srv;
    h2o_socket_t *sock;
    http_conn_t *prev, *next;
    size_t acked;         /* bytes the client had acknowledged at the last sweep */
    uint64_t progress_ms; /* when that last grew, or no write was pending */
    int cut;              /* shut down by us: h2o closes it on its next turn */
};

typedef struct route_handler {
    h2o_handler_t super;
    http_server_t *srv;
} route_handler_t;

static void send_text(h2o_req_t *req, int status, const char *reason, const char *type,
                      const char *body, size_t len)
{
    req->res.status = status;
    req->res.reason = reason;
    req->res.content_length = len;
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE, NULL, type, strlen(type));
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CACHE_CONTROL, NULL,
                   H2O_STRLIT("no-store"));
    h2o_send_inline(req, body, len);
}

static int method_ok(h2o_req_t *req)
{
    if (h2o_memis(req->method.base, req->method.len, H2O_STRLIT("GET")) ||
        h2o_memis(req->method.base, req->method.len, H2O_STRLIT("HEAD")))
        return 1;
    send_text(req, 405, "Method Not Allowed", "text/plain", H2O_STRLIT("method not allowed\n"));
    return 0;
}

static int on_healthz(h2o_handler_t *self, h2o_req_t *req)
{
    http_server_t *s = ((route_handler_t *)self)->srv;
    if (!method_ok(req))
        return 0;
    const char *state = s->routes.health(s->routes.ud);
    if (strcmp(state, "consuming") == 0) {
        send_text(req, 200, "OK", "text/plain", H2O_STRLIT("ok\n"));
    } else {
        char body[64];
        int n = snprintf(body, sizeof(body), "%s\n", state);
        send_text(req, 503, "Service Unavailable", "text/plain", body, (size_t)n);
    }
    return 0;
}

/* @p o printed (and deleted) as the body; a failed allocation answers 500, never crashes. */
static void send_cjson(h2o_req_t *req, int status, const char *reason, cJSON *o, int formatted)
{
    char *body = o ? (formatted ? cJSON_Print(o) : cJSON_PrintUnformatted(o)) : NULL;
    cJSON_Delete(o);
    size_t n = body ? strlen(body) : 0;
    char *nb = body ? realloc(body, n + 2) : NULL;
    if (!nb) {
        free(body);
        send_text(req, 500, "Internal Server Error", "text/plain", H2O_STRLIT("out of memory\n"));
        return;
    }
    nb[n++] = '\n';
    send_text(req, status, reason, "application/json", nb, n);
    free(nb);
}

static int on_status(h2o_handler_t *self, h2o_req_t *req)
{
    http_server_t *s = ((route_handler_t *)self)->srv;
    if (!method_ok(req))
        return 0;
    cJSON *o = cJSON_CreateObject();
    if (o)
        s->routes.status(s->routes.ud, o);
    send_cjson(req, 200, "OK", o, 1);
    return 0;
}

static int on_metrics(h2o_handler_t *self, h2o_req_t *req)
{
    http_server_t *s = ((route_handler_t *)self)->srv;
    if (!method_ok(req))
        return 0;
    text_buf_t b = {0};
    s->routes.metrics(s->routes.ud, &b);
    text_buf_printf(&b,
                    "# HELP atlasd_http_connections Open HTTP connections.\n"
                    "# TYPE atlasd_http_connections gauge\natlasd_http_connections %u\n"
                    "# HELP atlasd_http_write_timeouts_total HTTP connections closed because their "
                    "response made no progress for http-write-timeout-ms (the client stopped "
                    "reading).\n# TYPE atlasd_http_write_timeouts_total counter\n"
                    "atlasd_http_write_timeouts_total %llu\n",
                    s->n_conns, (unsigned long long)s->write_timeouts);
    send_text(req, 200, "OK", "text/plain; version=0.0.4", b.p ? b.p : "", b.len);
    free(b.p);
    return 0;
}

static int on_not_found(h2o_handler_t *self, h2o_req_t *req)
{
    (void)self;
    send_text(req, 404, "Not Found", "text/plain", H2O_STRLIT("not found\n"));
    return 0;
}

/* ---- admin ------------------------------------------------------------------------------ */

static int peer_is_loopback(h2o_req_t *req)
{
    struct sockaddr_storage ss;
    socklen_t len = req->conn->callbacks->get_peername(req->conn, (struct sockaddr *)&ss);
    if (len == 0)
        return 0;
    if (ss.ss_family == AF_INET)
        return (ntohl(((struct sockaddr_in *)&ss)->sin_addr.s_addr) >> 24) == 127;
    if (ss.ss_family == AF_INET6)
        return IN6_IS_ADDR_LOOPBACK(&((struct sockaddr_in6 *)&ss)->sin6_addr);
    return 0;
}

/* Constant-time token check: compare SHA-256 digests (equal length whatever the input) with
 * CRYPTO_memcmp, so neither the content nor the length of the token leaks through timing. */
static int token_matches(const char *want, const char *got, size_t got_len)
{
    unsigned char a[32], b[32];
    unsigned int la = 0, lb = 0;
    EVP_Digest(want, strlen(want), a, &la, EVP_sha256(), NULL);
    EVP_Digest(got, got_len, b, &lb, EVP_sha256(), NULL);
    return la == 32 && lb == 32 && CRYPTO_memcmp(a, b, 32) == 0;
}

/* 0 when admitted, else the HTTP status to refuse with. */
static int admin_check(http_server_t *s, h2o_req_t *req)
{
    const char *token = s->routes.admin_token;
    ssize_t at = h2o_find_header(&req->headers, H2O_TOKEN_AUTHORIZATION, -1);
    if (at >= 0) { /* a credential presented is checked even from loopback */
        h2o_iovec_t v = req->headers.entries[at].value;
        if (token && token[0] && v.len > 7 && h2o_lcstris(v.base, 7, H2O_STRLIT("bearer ")) &&
            token_matches(token, v.base + 7, v.len - 7))
            return 0;
        return 401;
    }
    if (peer_is_loopback(req))
        return 0;
    return token && token[0] ? 401 : 403;
}

static int query_flag(h2o_req_t *req, const char *name)
{
    if (req->query_at == SIZE_MAX)
        return 0;
    char q[256];
    size_t len = req->path.len - req->query_at;
    if (len >= sizeof(q))
        len = sizeof(q) - 1;
    memcpy(q, req->path.base + req->query_at, len);
    q[len] = '\0';
    char want1[64], want2[64];
    snprintf(want1, sizeof(want1), "%s=1", name);
    snprintf(want2, sizeof(want2), "%s=true", name);
    for (char *save = NULL, *t = strtok_r(q + 1, "&", &save); t; t = strtok_r(NULL, "&", &save))
        if (strcmp(t, want1) == 0 || strcmp(t, want2) == 0 || strcmp(t, name) == 0)
            return 1;
    return 0;
}

static int on_admin(h2o_handler_t *self, h2o_req_t *req)
{
    http_server_t *s = ((route_handler_t *)self)->srv;
    int deny = admin_check(s, req);
    if (deny == 401) {
        h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_WWW_AUTHENTICATE, NULL,
                       H2O_STRLIT("Bearer realm=\"atlasd admin\""));
        send_text(req, 401, "Unauthorized", "text/plain",
                  H2O_STRLIT("admin calls need a valid bearer token from other hosts\n"));
        return 0;
    }
    if (deny == 403) {
        send_text(req, 403, "Forbidden", "text/plain",
                  H2O_STRLIT("admin calls are accepted from loopback only (no admin-token set)\n"));
        return 0;
    }
    if (!h2o_memis(req->path_normalized.base, req->path_normalized.len,
                   H2O_STRLIT("/admin/rebuild"))) {
        send_text(req, 404, "Not Found", "text/plain", H2O_STRLIT("not found\n"));
        return 0;
    }
    if (!h2o_memis(req->method.base, req->method.len, H2O_STRLIT("POST"))) {
        h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_ALLOW, NULL, H2O_STRLIT("POST"));
        send_text(req, 405, "Method Not Allowed", "text/plain", H2O_STRLIT("use POST\n"));
        return 0;
    }
    cJSON *o = cJSON_CreateObject();
    int st = s->routes.admin_rebuild && o
                 ? s->routes.admin_rebuild(s->routes.ud, query_flag(req, "cold"), o)
                 : 503;
    send_cjson(req, st, st == 202 ? "Accepted" : "Service Unavailable", o, 0);
    return 0;
}

static unsigned query_uint(h2o_req_t *req, const char *name, unsigned dflt)
{
    if (req->query_at == SIZE_MAX)
        return dflt;
    size_t nl = strlen(name);
    const char *q = req->path.base + req->query_at + 1, *end = req->path.base + req->path.len;
    while (q < end) {
        const char *amp = memchr(q, '&', (size_t)(end - q));
        const char *stop = amp ? amp : end;
        if ((size_t)(stop - q) > nl + 1 && memcmp(q, name, nl) == 0 && q[nl] == '=') {
            unsigned v = 0;
            for (const char *p = q + nl + 1; p < stop && *p >= '0' && *p <= '9' && v < 100000; p++)
                v = v * 10 + (unsigned)(*p - '0');
            return v;
        }
        q = stop + 1;
    }
    return dflt;
}

/*
 * GET /items/<id> reads the item's S row, stats and neighbours: several read transactions and
 * work that grows with the item's co-occurrences, so it runs on libuv's thread pool and the
 * response is sent from the after-work callback (issue 10.5). The job owns its copy of the
 * id; the request is reached through a token in the request's pool, whose dispose callback
 * (the connection closed first) clears the job's pointer, so a late answer is dropped.
 */
#define ITEM_JOBS_MAX 64 /* queued lookups; beyond, 429 at once (the pool also runs refreshes) */

typedef struct item_job item_job_t;

typedef struct item_token {
    item_job_t *job; /* NULL once answered */
} item_token_t;

struct item_job {
    uv_work_t work;
    http_server_t *srv;
    h2o_req_t *req; /* NULL if the request went away */
    item_token_t *token;
    char id[64];
    size_t id_len;
    unsigned k;
    int status;
    char *json;
};

static void send_item(h2o_req_t *req, int st, char *json)
{
    if (st == 200) {
        send_text(req, 200, "OK", "application/json", json, strlen(json));
    } else {
        const char *why = st == 400   ? "bad item id or k\n"
                          : st == 404 ? "no such item\n"
                          : st == 429 ? "too many item lookups at once; try again\n"
                                      : "the store could not be read\n";
        send_text(req, st,
                  st == 400   ? "Bad Request"
                  : st == 404 ? "Not Found"
                  : st == 429 ? "Too Many Requests"
                              : "Service Unavailable",
                  "text/plain", why, strlen(why));
    }
}

static void item_token_dispose(void *p)
{
    item_token_t *t = p;
    if (t->job)
        t->job->req = NULL;
}

static void item_work_cb(uv_work_t *w)
{
    item_job_t *j = w->data;
    j->status = j->srv->routes.item(j->srv->routes.ud, j->id, j->id_len, j->k, &j->json);
}

static void item_after_cb(uv_work_t *w, int status)
{
    item_job_t *j = w->data;
    j->srv->item_jobs--;
    if (j->req) {
        j->token->job = NULL;
        send_item(j->req, status == 0 ? j->status : 503, j->json);
    }
    free(j->json);
    free(j);
}

static int on_item(h2o_handler_t *self, h2o_req_t *req)
{
    http_server_t *s = ((route_handler_t *)self)->srv;
    if (!method_ok(req))
        return 0;
    h2o_iovec_t p = req->path_normalized;
    const size_t pre = sizeof("/items/") - 1;
    unsigned k = query_uint(req, "k", 20);
    if (!(p.len > pre && p.len - pre < 64 && s->routes.item)) {
        send_item(req, 404, NULL);
        return 0;
    }
    if (k < 1 || k > 10000) {
        send_item(req, 400, NULL);
        return 0;
    }
    if (s->item_jobs >= ITEM_JOBS_MAX) {
        send_item(req, 429, NULL);
        return 0;
    }
    item_job_t *j = calloc(1, sizeof(*j));
    if (!j)
        abort();
    j->srv = s, j->req = req, j->k = k;
    j->id_len = p.len - pre;
    memcpy(j->id, p.base + pre, j->id_len);
    j->token = h2o_mem_alloc_shared(&req->pool, sizeof(*j->token), item_token_dispose);
    j->token->job = j;
    j->work.data = j;
    if (uv_queue_work(s->loop, &j->work, item_work_cb, item_after_cb) != 0) {
        free(j);
        send_item(req, 503, NULL);
        return 0;
    }
    s->item_jobs++;
    return 0;
}

/* ---- snapshots -------------------------------------------------------------------------- */

static void add_cors(http_server_t *s, h2o_req_t *req)
{
    const char *o = s->routes.cors_origin;
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_ACCESS_CONTROL_ALLOW_ORIGIN, NULL, o,
                   strlen(o));
    h2o_add_header_by_str(&req->pool, &req->res.headers,
                          H2O_STRLIT("access-control-expose-headers"), 0, NULL,
                          H2O_STRLIT("ETag, Content-Length, Content-Range, Accept-Ranges"));
}

/*
 * A whole manifest as a malloc'd NUL-terminated string in *out: up to STORE_MANIFEST_MAX_BYTES,
 * the limit store/ reads too (a manifest lists every Kafka partition consumed: a fixed 8 KiB
 * buffer cut those of ~330 partitions, and their snapshots were then 404). Manifests are
 * written once and renamed into place, so the size read first is the size.
 * @return 0, -errno, -EFBIG (over the limit) or -ENOMEM.
 */
static int read_manifest(const char *path, char **out)
{
    struct stat st;
    char *buf = NULL;
    size_t got = 0;
    int rc = 0, fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    if (fstat(fd, &st) != 0) {
        rc = -errno;
        goto out;
    }
    if (st.st_size > STORE_MANIFEST_MAX_BYTES) {
        rc = -EFBIG;
        goto out;
    }
    if (!(buf = malloc((size_t)st.st_size + 1))) {
        rc = -ENOMEM;
        goto out;
    }
    while (got < (size_t)st.st_size) {
        ssize_t n = read(fd, buf + got, (size_t)st.st_size - got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            rc = n < 0 ? -errno : -EIO;
            goto out;
        }
        got += (size_t)n;
    }
    buf[got] = '\0';
    *out = buf;
    buf = NULL;
out:
    free(buf);
    close(fd);
    return rc;
}

/* The sha256 recorded in a snapshot's manifest, as a strong ETag ("<hex>").
 * @return 0, -errno (no manifest), -ENOMEM, or ATL_ECORRUPT (no sha256 in it). */
static int snapshot_etag(const char *path, char etag[68])
{
    char mp[4200], *buf;
    snprintf(mp, sizeof(mp), "%s.json", path);
    int rc = read_manifest(mp, &buf);
    if (rc != 0)
        return rc;
    cJSON *m = cJSON_Parse(buf);
    free(buf);
    const cJSON *sha = cJSON_GetObjectItemCaseSensitive(m, "sha256");
    int ok = cJSON_IsString(sha) && strlen(sha->valuestring) == 64;
    if (ok)
        snprintf(etag, 68, "\"%s\"", sha->valuestring);
    cJSON_Delete(m);
    return ok ? 0 : ATL_ECORRUPT;
}

/*
 * Cache-Control of a snapshot answer (200, 206, 304 and HEAD alike): `latest` and its manifest
 * move with every publish, so caches must revalidate (the ETag is the sha256: a 304 costs
 * nothing); an id never changes content. Errors keep send_text's no-store.
 */
static void add_cache_control(h2o_req_t *req, int latest)
{
    if (latest)
        h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CACHE_CONTROL, NULL,
                       H2O_STRLIT("no-cache"));
    else
        h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CACHE_CONTROL, NULL,
                       H2O_STRLIT("public, max-age=31536000, immutable"));
}

/* Last-Modified as h2o_file_send() writes it for the same file. */
static void add_last_modified(h2o_req_t *req, time_t mtime)
{
    struct tm gmt;
    char *buf = h2o_mem_alloc_pool(&req->pool, H2O_TIMESTR_RFC1123_LEN + 1);
    gmtime_r(&mtime, &gmt);
    h2o_time2str_rfc1123(buf, &gmt);
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_LAST_MODIFIED, NULL, buf,
                   H2O_TIMESTR_RFC1123_LEN);
}

/* An error after the snapshot's headers were added: drop those that describe the file. */
static void send_snapshot_error(h2o_req_t *req, int status, const char *reason, const char *body,
                                size_t len)
{
    const h2o_token_t *drop[] = {H2O_TOKEN_CACHE_CONTROL, H2O_TOKEN_ETAG, H2O_TOKEN_LAST_MODIFIED,
                                 H2O_TOKEN_ACCEPT_RANGES};
    for (size_t i = 0; i < ATL_ARRAY_LEN(drop); i++) {
        ssize_t at;
        while ((at = h2o_find_header(&req->res.headers, drop[i], -1)) >= 0)
            h2o_delete_header(&req->res.headers, at);
    }
    send_text(req, status, reason, "text/plain", body, len);
}

/* If-None-Match: a list of tags, weak ones compared weakly, or "*". */
static int none_match_hits(h2o_req_t *req, const char *etag)
{
    ssize_t at = h2o_find_header(&req->headers, H2O_TOKEN_IF_NONE_MATCH, -1);
    if (at < 0)
        return 0;
    h2o_iovec_t v = req->headers.entries[at].value;
    return httpparse_etag_match(v.base, v.len, etag);
}

/*
 * A byte range streamed from the snapshot file in 8 KiB pread chunks, the next one when h2o
 * asks for it (proceed): the loop holds one chunk per client, whatever the slice's size, and
 * each step is short. Ranges are rare (resumed downloads), so small chunks cost little, and the
 * integration test's small snapshot already spans several. Snapshot files are never rewritten; the
 * open descriptor keeps a slice readable even if retention deletes the file meanwhile.
 */
typedef struct range_gen {
    h2o_generator_t super;
    int fd;
    off_t pos, end; /* the next byte to send, one past the last */
    char buf[8192];
} range_gen_t;

static void range_gen_dispose(void *p)
{
    range_gen_t *g = p;
    if (g->fd >= 0)
        close(g->fd);
}

static void range_gen_proceed(h2o_generator_t *self, h2o_req_t *req)
{
    range_gen_t *g = (range_gen_t *)self;
    size_t want = sizeof(g->buf);
    if ((off_t)want > g->end - g->pos)
        want = (size_t)(g->end - g->pos);
    ssize_t n = pread(g->fd, g->buf, want, g->pos);
    if (n <= 0) {
        LOG_WARN("http", "snapshot range read failed", "byte=%lld err=\"%s\"", (long long)g->pos,
                 n < 0 ? strerror(errno) : "file shorter than at open");
        h2o_send(req, NULL, 0, H2O_SEND_STATE_ERROR);
        return;
    }
    g->pos += n;
    h2o_iovec_t v = h2o_iovec_init(g->buf, (size_t)n);
    h2o_send(req, &v, 1, g->pos == g->end ? H2O_SEND_STATE_FINAL : H2O_SEND_STATE_IN_PROGRESS);
}

static void range_gen_stop(h2o_generator_t *self, h2o_req_t *req)
{
    (void)self;
    (void)req; /* the pool's dispose closes the file */
}

/*
 * One byte range (`bytes=a-b`, `bytes=a-`, `bytes=-n`) as 206, or 416 when unsatisfiable.
 * h2o_file_send() ignores Range (only h2o's directory handler parses it), so ranges are served
 * here, streamed by range_gen_t. @return 0 if a response was sent, -EINVAL to fall back to the
 * whole file (a multi-range or malformed header, which RFC 7233 allows a server to ignore).
 */
static int send_range(h2o_req_t *req, const char *path, h2o_iovec_t v)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat st;
    if (fd < 0)
        return -EINVAL;
    if (fstat(fd, &st) != 0) {
        close(fd);
        return -EINVAL;
    }
    long long size = st.st_size, a = 0, b = 0;
    int r = httpparse_range(v.base, v.len, size, &a, &b);
    if (r < 0) {
        close(fd);
        return r;
    }
    char *cr = h2o_mem_alloc_pool(&req->pool, 64);
    if (r == 1) {
        close(fd);
        int n = snprintf(cr, 64, "bytes */%lld", size);
        h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_RANGE, NULL, cr, (size_t)n);
        send_snapshot_error(req, 416, "Range Not Satisfiable", H2O_STRLIT(""));
        return 0;
    }
    int n = snprintf(cr, 64, "bytes %lld-%lld/%lld", a, b, size);
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_RANGE, NULL, cr, (size_t)n);
    req->res.status = 206;
    req->res.reason = "Partial Content";
    req->res.content_length = (size_t)(b - a + 1);
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE, NULL,
                   H2O_STRLIT("application/octet-stream"));
    add_last_modified(req, st.st_mtime); /* Cache-Control: the caller's, as on the 200 */
    if (h2o_memis(req->method.base, req->method.len, H2O_STRLIT("HEAD"))) {
        close(fd); /* headers only, with the length a GET would have */
        h2o_send_inline(req, "", 0);
        return 0;
    }
    range_gen_t *g = h2o_mem_alloc_shared(&req->pool, sizeof(*g), range_gen_dispose);
    g->super.proceed = range_gen_proceed;
    g->super.stop = range_gen_stop;
    g->fd = fd;
    g->pos = (off_t)a;
    g->end = (off_t)b + 1;
    h2o_start_response(req, &g->super);
    range_gen_proceed(&g->super, req);
    return 0;
}

/* The file (or its manifest) of snapshot @p id; @p latest: asked for as /snapshots/latest. */
static void send_snapshot_file(http_server_t *s, h2o_req_t *req, const char *id, size_t idlen,
                               int manifest, int latest)
{
    char path[4096], etag[68];
    snprintf(path, sizeof(path), "%s/%.*s%s", s->routes.snapshots_dir, (int)idlen, id,
             manifest ? ".json" : "");
    char base[4096];
    snprintf(base, sizeof(base), "%s/%.*s", s->routes.snapshots_dir, (int)idlen, id);
    int rc = snapshot_etag(base, etag);
    if (rc == -ENOMEM) {
        send_text(req, 500, "Internal Server Error", "text/plain", H2O_STRLIT("out of memory\n"));
        return;
    }
    if (rc != 0) {
        send_text(req, 404, "Not Found", "text/plain", H2O_STRLIT("no such snapshot\n"));
        return;
    }
    add_cache_control(req, latest);
    if (!manifest) {
        h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_ETAG, NULL, etag, strlen(etag));
        if (none_match_hits(req, etag)) {
            req->res.status = 304;
            req->res.reason = "Not Modified";
            h2o_send_inline(req, "", 0);
            return;
        }
        /* h2o ignores If-Range: a stale validator must get the whole file, not a slice of the
         * new one spliced onto an old download (HTTP_NOTES) */
        ssize_t ir = h2o_find_header(&req->headers, H2O_TOKEN_IF_RANGE, -1);
        if (ir >= 0 && !h2o_memis(req->headers.entries[ir].value.base,
                                  req->headers.entries[ir].value.len, etag, strlen(etag))) {
            ssize_t r;
            while ((r = h2o_find_header(&req->headers, H2O_TOKEN_RANGE, -1)) >= 0)
                h2o_delete_header(&req->headers, r);
        }
    }
    const char *type = manifest ? "application/json" : "application/octet-stream";
    ssize_t rg = manifest ? -1 : h2o_find_header(&req->headers, H2O_TOKEN_RANGE, -1);
    if (rg >= 0) {
        h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_ACCEPT_RANGES, NULL,
                       H2O_STRLIT("bytes"));
        if (send_range(req, path, req->headers.entries[rg].value) == 0)
            return;
        h2o_delete_header(&req->res.headers,
                          h2o_find_header(&req->res.headers, H2O_TOKEN_ACCEPT_RANGES, -1));
    }
    if (h2o_memis(req->method.base, req->method.len, H2O_STRLIT("HEAD"))) {
        /* h2o_file_send() sends the body whatever the method: a keep-alive client would read
         * it as the next response. Headers only, with the length a GET would have. */
        struct stat st;
        if (stat(path, &st) != 0) {
            send_snapshot_error(req, 404, "Not Found", H2O_STRLIT("no such snapshot\n"));
            return;
        }
        h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_ACCEPT_RANGES, NULL,
                       H2O_STRLIT("bytes"));
        add_last_modified(req, st.st_mtime);
        req->res.status = 200;
        req->res.reason = "OK";
        req->res.content_length = (size_t)st.st_size;
        h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE, NULL, type,
                       strlen(type));
        h2o_send_inline(req, "", 0);
        return;
    }
    /* whole file: h2o streams it in pread chunks, never holding it in memory */
    if (h2o_file_send(req, 200, "OK", path, h2o_iovec_init(type, strlen(type)),
                      H2O_FILE_FLAG_NO_ETAG) != 0)
        send_snapshot_error(req, 404, "Not Found", H2O_STRLIT("no such snapshot\n"));
}

static void send_snapshot_list(http_server_t *s, h2o_req_t *req)
{
    char **ids;
    size_t n;
    cJSON *arr = cJSON_CreateArray();
    int rc = store_snapshot_ids(s->routes.snapshots_dir, &ids, &n);
    if (rc != 0 && rc != -ENOENT) { /* not "none yet": an error, not an empty list */
        cJSON_Delete(arr);
        if (rc == -ENOMEM)
            send_text(req, 500, "Internal Server Error", "text/plain",
                      H2O_STRLIT("out of memory\n"));
        else
            send_text(req, 500, "Internal Server Error", "text/plain",
                      H2O_STRLIT("cannot list the snapshots\n"));
        return;
    }
    int oom = 0;
    if (rc == 0) {
        for (size_t i = n; i-- > 0;) { /* newest first */
            char path[4200], *buf = NULL;
            snprintf(path, sizeof(path), "%s/%s.json", s->routes.snapshots_dir, ids[i]);
            int mrc = oom ? -ENOMEM : read_manifest(path, &buf);
            cJSON *m = mrc == 0 ? cJSON_Parse(buf) : NULL;
            oom |= mrc == -ENOMEM;
            free(buf);
            if (m)
                cJSON_AddItemToArray(arr, m);
            free(ids[i]);
        }
        free(ids);
    }
    if (oom) { /* a list without that snapshot would look complete */
        cJSON_Delete(arr);
        send_text(req, 500, "Internal Server Error", "text/plain", H2O_STRLIT("out of memory\n"));
        return;
    }
    send_cjson(req, 200, "OK", arr, 0);
}

static int on_snapshots(h2o_handler_t *self, h2o_req_t *req)
{
    http_server_t *s = ((route_handler_t *)self)->srv;
    add_cors(s, req);
    if (h2o_memis(req->method.base, req->method.len, H2O_STRLIT("OPTIONS"))) {
        h2o_add_header_by_str(&req->pool, &req->res.headers,
                              H2O_STRLIT("access-control-allow-methods"), 0, NULL,
                              H2O_STRLIT("GET, HEAD, OPTIONS"));
        h2o_add_header_by_str(&req->pool, &req->res.headers,
                              H2O_STRLIT("access-control-allow-headers"), 0, NULL,
                              H2O_STRLIT("Range, If-None-Match, If-Range"));
        req->res.status = 204;
        req->res.reason = "No Content";
        h2o_send_inline(req, "", 0);
        return 0;
    }
    if (!method_ok(req))
        return 0;
    h2o_iovec_t p = req->path_normalized;
    const char *rest = p.base + strlen("/snapshots");
    size_t len = p.len - strlen("/snapshots");
    while (len > 0 && rest[0] == '/')
        rest++, len--;
    while (len > 0 && rest[len - 1] == '/')
        len--;
    if (len == 0) {
        send_snapshot_list(s, req);
        return 0;
    }
    int manifest = len > 9 && !memcmp(rest + len - 9, "/manifest", 9);
    size_t idlen = manifest ? len - 9 : len;
    char latest[64];
    int is_latest = idlen == 6 && !memcmp(rest, "latest", 6);
    if (is_latest) {
        if (store_snapshot_latest(s->routes.snapshots_dir, latest, sizeof(latest)) != 0) {
            send_text(req, 404, "Not Found", "text/plain", H2O_STRLIT("no snapshot yet\n"));
            return 0;
        }
        rest = latest;
        idlen = strlen(latest);
    }
    /* only a snapshot id names a file: no path (.., %2e, /) can leave the directory */
    if (!store_snapshot_id_valid(rest, idlen)) {
        send_text(req, 404, "Not Found", "text/plain", H2O_STRLIT("no such snapshot\n"));
        return 0;
    }
    send_snapshot_file(s, req, rest, idlen, manifest, is_latest);
    return 0;
}

static void add_route(http_server_t *s, h2o_hostconf_t *host, const char *path,
                      int (*fn)(h2o_handler_t *, h2o_req_t *))
{
    h2o_pathconf_t *pc = h2o_config_register_path(host, path, 0);
    route_handler_t *h = (route_handler_t *)h2o_create_handler(pc, sizeof(*h));
    h->super.on_req = fn;
    h->srv = s;
}

/* ---- connections: accept, write timeout, shutdown ------------------------------------------ */

static void conn_unlink_cb(uv_handle_t *h)
{
    http_conn_t *c = (http_conn_t *)h; /* tcp is the first member */
    http_server_t *s = c->srv;
    if (c->prev)
        c->prev->next = c->next;
    else
        s->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    s->n_conns--;
    free(c);
}

static void on_accept(uv_stream_t *listener, int status)
{
    http_server_t *s = listener->data;
    if (status != 0)
        return;
    http_conn_t *c = calloc(1, sizeof(*c));
    if (!c)
        abort();
    uv_tcp_init(listener->loop, &c->tcp);
    if (uv_accept(listener, (uv_stream_t *)&c->tcp) != 0) {
        uv_close((uv_handle_t *)&c->tcp, (uv_close_cb)free);
        return;
    }
    c->srv = s;
    c->progress_ms = uv_now(s->loop);
    c->next = s->conns;
    if (s->conns)
        s->conns->prev = c;
    s->conns = c;
    s->n_conns++;
    c->sock = h2o_uv_socket_create((uv_stream_t *)&c->tcp, conn_unlink_cb);
    h2o_accept(&s->accept_ctx, c->sock);
}

/*
 * Cut a connection: SO_LINGER 0 then shutdown(). The pending write fails (EPIPE) on the loop's
 * next turn and h2o closes the connection as after any write error; the close sends a reset,
 * so the kernel drops the unsent bytes now instead of keeping them for a client that does not
 * read. @return 1 if cut, 0 if already cut or closing.
 */
static int conn_cut(http_conn_t *c)
{
    if (c->cut || uv_is_closing((uv_handle_t *)&c->tcp))
        return 0;
    int fd = h2o_socket_get_fd(c->sock);
    if (fd < 0)
        return 0;
    struct linger lg = {.l_onoff = 1, .l_linger = 0};
    setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
    shutdown(fd, SHUT_RDWR);
    c->cut = 1;
    return 1;
}

/*
 * Bytes of the connection the client has acknowledged: those h2o handed to libuv, less those
 * libuv still queues and those in the kernel's send queue, unsent or unacknowledged
 * (SIOCOUTQ). It grows whenever the client reads, however slowly; the bytes the kernel takes
 * would not: it wakes libuv to write more only once half its buffer (megabytes) has drained.
 */
static size_t conn_acked(http_conn_t *c)
{
    int fd = h2o_socket_get_fd(c->sock), outq = 0;
    if (fd < 0 || ioctl(fd, SIOCOUTQ, &outq) != 0 || outq < 0)
        outq = 0;
    return c->sock->bytes_written - c->tcp.write_queue_size - (size_t)outq;
}

/*
 * The write timeout: a connection with a write pending whose acknowledged bytes have not grown
 * for write_timeout_ms is cut. No write pending (reading a request, a lookup on the thread
 * pool) is no stall: h2o's request timeout covers reading, and the lookup ends by itself.
 */
static void on_sweep(uv_timer_t *t)
{
    http_server_t *s = t->data;
    uint64_t now = uv_now(s->loop);
    unsigned cut = 0;
    for (http_conn_t *c = s->conns; c; c = c->next) {
        if (c->cut || uv_is_closing((uv_handle_t *)&c->tcp))
            continue;
        size_t acked = conn_acked(c);
        if (!h2o_socket_is_writing(c->sock) || acked != c->acked) {
            c->acked = acked;
            c->progress_ms = now;
        } else if (now - c->progress_ms >= s->routes.write_timeout_ms) {
            cut += (unsigned)conn_cut(c);
        }
    }
    if (cut == 0)
        return;
    s->write_timeouts += cut;
    if (s->timeouts_logged_ms == 0 || now - s->timeouts_logged_ms >= TIMEOUT_LOG_PERIOD_MS) {
        s->timeouts_logged_ms = now;
        LOG_INFO("http", "write timeout: connection closed",
                 "n=%u total=%llu timeout_ms=%llu open=%u", cut,
                 (unsigned long long)s->write_timeouts,
                 (unsigned long long)s->routes.write_timeout_ms, s->n_conns);
    }
}

static void on_drain_timer(uv_timer_t *t)
{
    (void)t; /* only wakes uv_run(UV_RUN_ONCE) in drain() */
}

/*
 * Run the loop until every connection is closed or @p ms have passed. Each turn blocks in
 * uv_run(UV_RUN_ONCE) until something happens (at the latest the drain timer): no busy wait.
 * Connections that went back to waiting for a request are closed at once (h2o asks them to
 * close after their response once shutdown is requested, but a request read before that keeps
 * its keep-alive).
 */
static void drain(http_server_t *s, uint64_t ms)
{
    uint64_t end = uv_now(s->loop) + ms;
    uv_timer_start(&s->drain, on_drain_timer, ms, 0);
    for (;;) {
        h2o_timeout_run(s->loop, &s->ctx.http1.req_timeout, UINT64_MAX);
        if (s->n_conns == 0 || uv_now(s->loop) >= end)
            break;
        uv_run(s->loop, UV_RUN_ONCE);
    }
    uv_timer_stop(&s->drain);
}

int http_start(uv_loop_t *loop, const char *addr, const http_routes_t *routes, http_server_t **out,
               char *errbuf, size_t errlen)
{
    struct sockaddr_in sa;
    if (config_http_addr_parse(addr, &sa) != 0) { /* the config checked it: a caller's slip */
        snprintf(errbuf, errlen, "http: \"%s\" is not an IPv4 HOST:PORT", addr);
        return ATL_ECONFIG;
    }
    http_server_t *s = calloc(1, sizeof(*s));
    if (!s)
        abort();
    s->loop = loop;
    s->routes = *routes;
    h2o_config_init(&s->config);
    s->config.max_request_entity_size = 64 * 1024; /* admin bodies are small (HTTP_NOTES) */
    s->config.http1.upgrade_to_http2 = 0;
    s->config.server_name = h2o_iovec_init(H2O_STRLIT("atlasd"));
    h2o_hostconf_t *host =
        h2o_config_register_host(&s->config, h2o_iovec_init(H2O_STRLIT("default")), 65535);
    /* first match wins: specific paths first, the catch-all last */
    add_route(s, host, "/healthz", on_healthz);
    add_route(s, host, "/status", on_status);
    add_route(s, host, "/metrics", on_metrics);
    add_route(s, host, "/snapshots", on_snapshots);
    add_route(s, host, "/admin", on_admin);
    add_route(s, host, "/items", on_item);
    if (s->routes.viewer_dir && s->routes.viewer_dir[0]) {
        /* the viewer: static files, last so every named route above wins */
        h2o_pathconf_t *pc = h2o_config_register_path(host, "/", 0);
        h2o_file_register(pc, s->routes.viewer_dir, NULL, NULL, 0);
    } else {
        add_route(s, host, "/", on_not_found);
    }
    h2o_context_init(&s->ctx, loop, &s->config);
    s->accept_ctx.ctx = &s->ctx;
    s->accept_ctx.hosts = s->config.hosts;
    uv_timer_init(loop, &s->sweep);
    uv_timer_init(loop, &s->drain);
    s->sweep.data = s->drain.data = s;
    if (s->routes.write_timeout_ms > 0) {
        uint64_t every = s->routes.write_timeout_ms / 4; /* cut within 1.25-1.5 x the timeout */
        every = every < 50 ? 50 : every > 1000 ? 1000 : every;
        uv_timer_start(&s->sweep, on_sweep, every, every);
        uv_unref((uv_handle_t *)&s->sweep);
    }
    uv_tcp_init(loop, &s->listener);
    s->listener.data = s;
    int rc = uv_tcp_bind(&s->listener, (struct sockaddr *)&sa, 0);
    if (rc == 0)
        rc = uv_listen((uv_stream_t *)&s->listener, 128, on_accept);
    if (rc != 0) {
        snprintf(errbuf, errlen, "http: cannot listen on %s: %s", addr, uv_strerror(rc));
        s->listening = 1; /* the handle is initialised: http_free closes it */
        http_stop(s);
        uv_run(loop, UV_RUN_NOWAIT);
        http_free(s, 0);
        return rc; /* libuv's codes are -errno */
    }
    struct sockaddr_in bound;
    int len = sizeof(bound);
    uv_tcp_getsockname(&s->listener, (struct sockaddr *)&bound, &len);
    s->port = ntohs(bound.sin_port);
    s->listening = 1;
    LOG_INFO("http", "listening", "addr=%s port=%d", addr, s->port);
    *out = s;
    return 0;
}

int http_port(const http_server_t *s)
{
    return s->port;
}

void http_stop(http_server_t *s)
{
    if (!s || !s->listening)
        return;
    s->listening = 0;
    uv_close((uv_handle_t *)&s->listener, NULL);
    h2o_context_request_shutdown(&s->ctx);
    /* close idle keep-alive connections now rather than at their timeout */
    h2o_timeout_run(s->loop, &s->ctx.http1.req_timeout, UINT64_MAX);
    h2o_timeout_unlink(&s->ctx.http2._graceful_shutdown_timeout);
}

static int conns_open(http_server_t *s)
{
    return s->n_conns > 0 || !h2o_linklist_is_empty(&s->ctx.http1._conns) ||
           !h2o_linklist_is_empty(&s->ctx.http2._conns);
}

int http_free(http_server_t *s, uint64_t drain_ms)
{
    if (!s)
        return 0;
    http_stop(s);
    uv_timer_stop(&s->sweep);
    drain(s, drain_ms);
    if (conns_open(s)) {
        /* responses still in progress at the deadline (a client that stopped reading, or one
         * too slow for it): cut them, and let h2o close them */
        unsigned n = 0;
        for (http_conn_t *c = s->conns; c; c = c->next)
            n += (unsigned)conn_cut(c);
        LOG_INFO("http", "shutdown deadline: connections closed", "n=%u", n);
        drain(s, CLOSE_WAIT_MS);
    }
    if (conns_open(s)) {
        /* h2o_context_dispose() asserts on open connections: leak the context instead of
         * crashing; its handles keep the loop alive, so the caller must not run it again */
        LOG_ERROR("http", "connections still open at shutdown", "n=%u", s->n_conns);
        return -EBUSY;
    }
    h2o_context_dispose(&s->ctx);
    h2o_config_dispose(&s->config);
    uv_close((uv_handle_t *)&s->sweep, NULL);
    uv_close((uv_handle_t *)&s->drain, NULL);
    uv_run(s->loop, UV_RUN_NOWAIT); /* the closes above and h2o's own, before freeing s */
    free(s);
    return 0;
}
