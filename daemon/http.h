/*
 * http.h: the daemon's HTTP server (h2o on the daemon's libuv loop; HTTP/1.1 only, no TLS:
 * put nginx in front for the world, see deploy/). Routes: /healthz, /status (JSON),
 * /metrics (Prometheus text), and the corpus snapshots: /snapshots (JSON list of manifests),
 * /snapshots/latest and /snapshots/<id> (the bytes; strong ETag = sha256, If-None-Match,
 * Range, If-Range, HEAD, CORS; Cache-Control `no-cache` on latest, `immutable` on ids),
 * /snapshots/<id>/manifest; POST /admin/rebuild (loopback or a bearer token). A response that
 * makes no progress for write_timeout_ms is cut. All callbacks run on the loop thread, except
 * `item` (the thread pool).
 */
#ifndef ATL_HTTP_H
#define ATL_HTTP_H

#include <cJSON.h>
#include <uv.h>

#include "daemon/text_buf.h"

typedef struct http_routes {
    const char *snapshots_dir; /* served under /snapshots */
    const char *cors_origin;   /* Access-Control-Allow-Origin of snapshot responses */
    const char *viewer_dir;    /* static files of the map viewer, served at / (NULL: none) */
    void (*status)(void *ud, cJSON *out);       /* fill the /status object */
    void (*metrics)(void *ud, text_buf_t *out); /* append Prometheus text */
    /* the ingestion state: "consuming" answers /healthz 200 "ok", anything else (e.g.
     * "rebalancing", "stalled", "brokers_down") 503 with the state as the body */
    const char *(*health)(void *ud);
    /* POST /admin/rebuild[?cold=1]: fill the JSON answer, return the HTTP status. Admitted from
     * loopback, or with `Authorization: Bearer <admin_token>` when a token is configured;
     * otherwise 401 (token configured, missing or wrong) or 403 (no token configured). */
    int (*admin_rebuild)(void *ud, int cold, cJSON *out);
    /* GET /items/<item id>[?k=N]: malloc'd JSON in *json (store_item_json), or an HTTP status
     * other than 200 (400 bad id, 404 unknown). Called on a thread-pool thread, never the loop
     * (it reads the store); it must touch nothing the loop owns. */
    int (*item)(void *ud, const char *id, size_t id_len, unsigned k, char **json);
    const char *admin_token;
    /* a connection whose pending write has not moved for this long (the client stopped
     * reading) is closed (0: never; the daemon's `http-write-timeout-ms`) */
    uint64_t write_timeout_ms;
    void *ud;
} http_routes_t;

typedef struct http_server http_server_t;

/**
 * Listen on @p addr ("IPV4:PORT" as config_http_addr_parse() reads it, port 0 = ephemeral; the
 * bound port is logged).
 * @return 0 and *out, or ATL_ECONFIG (not an IPv4 HOST:PORT) or -errno (cannot listen), with a
 *         message in errbuf.
 */
int http_start(uv_loop_t *loop, const char *addr, const http_routes_t *routes, http_server_t **out,
               char *errbuf, size_t errlen);

/** The bound port. */
int http_port(const http_server_t *s);

/** Stop accepting and ask open connections to finish (non-blocking). */
void http_stop(http_server_t *s);

/**
 * After uv_run returned: let the responses in progress finish for up to @p drain_ms (the loop
 * runs meanwhile, blocking until something happens), then cut the connections still open
 * (shutdown(), a reset to the client) and wait a moment for h2o to close them; dispose of h2o's
 * context, close every handle and free @p s. NULL is a no-op.
 * @return 0, or -EBUSY if connections were still open after that (not expected): the context is
 *         leaked then, and its handles keep the loop alive, so the caller must not run the
 *         loop to its end (exit instead).
 */
int http_free(http_server_t *s, uint64_t drain_ms);

#endif
