/*
 * http.c: h2o 2.2 on the daemon's libuv loop. See http.h and shared/reference/HTTP_NOTES.md
 * for the shape (register paths, accept on a uv_tcp listener) and the shutdown sequence
 * h2o needs before h2o_context_dispose() (no connection or timeout may remain).
 * Keep every h2o call in this file: its API changed in later releases.
 */
#include "daemon/http.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <h2o.h>

#include "daemon/log.h"

struct http_server {
    uv_loop_t *loop;
    http_routes_t routes;
    h2o_globalconf_t config;
    h2o_context_t ctx;
    h2o_accept_ctx_t accept_ctx;
    uv_tcp_t listener;
    int listening, port;
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
    if (s->routes.healthy(s->routes.ud))
        send_text(req, 200, "OK", "text/plain", H2O_STRLIT("ok\n"));
    else
        send_text(req, 503, "Service Unavailable", "text/plain", H2O_STRLIT("unhealthy\n"));
    return 0;
}

static int on_status(h2o_handler_t *self, h2o_req_t *req)
{
    http_server_t *s = ((route_handler_t *)self)->srv;
    if (!method_ok(req))
        return 0;
    cJSON *o = cJSON_CreateObject();
    s->routes.status(s->routes.ud, o);
    char *body = cJSON_Print(o);
    cJSON_Delete(o);
    size_t n = strlen(body);
    body = realloc(body, n + 2);
    body[n++] = '\n';
    send_text(req, 200, "OK", "application/json", body, n);
    free(body);
    return 0;
}

static int on_metrics(h2o_handler_t *self, h2o_req_t *req)
{
    http_server_t *s = ((route_handler_t *)self)->srv;
    if (!method_ok(req))
        return 0;
    text_buf_t b = {0};
    s->routes.metrics(s->routes.ud, &b);
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

static void add_route(http_server_t *s, h2o_hostconf_t *host, const char *path,
                      int (*fn)(h2o_handler_t *, h2o_req_t *))
{
    h2o_pathconf_t *pc = h2o_config_register_path(host, path, 0);
    route_handler_t *h = (route_handler_t *)h2o_create_handler(pc, sizeof(*h));
    h->super.on_req = fn;
    h->srv = s;
}

static void on_accept(uv_stream_t *listener, int status)
{
    http_server_t *s = listener->data;
    if (status != 0)
        return;
    uv_tcp_t *conn = malloc(sizeof(*conn));
    if (!conn)
        abort();
    uv_tcp_init(listener->loop, conn);
    if (uv_accept(listener, (uv_stream_t *)conn) != 0) {
        uv_close((uv_handle_t *)conn, (uv_close_cb)free);
        return;
    }
    h2o_socket_t *sock = h2o_uv_socket_create((uv_stream_t *)conn, (uv_close_cb)free);
    h2o_accept(&s->accept_ctx, sock);
}

static int parse_addr(const char *addr, struct sockaddr_in *out)
{
    char host[64];
    const char *colon = strrchr(addr, ':');
    if (!colon || (size_t)(colon - addr) >= sizeof(host))
        return -1;
    memcpy(host, addr, (size_t)(colon - addr));
    host[colon - addr] = '\0';
    char *end;
    long port = strtol(colon + 1, &end, 10);
    if (*end || port < 0 || port > 65535)
        return -1;
    return uv_ip4_addr(host[0] ? host : "0.0.0.0", (int)port, out) == 0 ? 0 : -1;
}

int http_start(uv_loop_t *loop, const char *addr, const http_routes_t *routes, http_server_t **out,
               char *errbuf, size_t errlen)
{
    struct sockaddr_in sa;
    if (parse_addr(addr, &sa) != 0) {
        snprintf(errbuf, errlen, "http: \"%s\" is not an IPv4 HOST:PORT", addr);
        return -1;
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
    add_route(s, host, "/", on_not_found);
    h2o_context_init(&s->ctx, loop, &s->config);
    s->accept_ctx.ctx = &s->ctx;
    s->accept_ctx.hosts = s->config.hosts;
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
        return -1;
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
    return !h2o_linklist_is_empty(&s->ctx.http1._conns) ||
           !h2o_linklist_is_empty(&s->ctx.http2._conns);
}

void http_free(http_server_t *s, uint64_t deadline_ms)
{
    if (!s)
        return;
    http_stop(s);
    uint64_t end = uv_now(s->loop) + deadline_ms;
    while (conns_open(s) && uv_now(s->loop) < end) {
        h2o_timeout_run(s->loop, &s->ctx.http1.req_timeout, UINT64_MAX);
        uv_run(s->loop, UV_RUN_NOWAIT);
        uv_update_time(s->loop);
    }
    if (conns_open(s)) {
        /* h2o_context_dispose() asserts on open connections: leak the context instead of
         * crashing at exit; the process is about to end */
        LOG_WARN("http", "connections still open at shutdown", "");
        return;
    }
    h2o_context_dispose(&s->ctx);
    h2o_config_dispose(&s->config);
    uv_run(s->loop, UV_RUN_NOWAIT);
    free(s);
}
