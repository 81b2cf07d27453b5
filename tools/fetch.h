/*
 * fetch.h: atlasctl's HTTP client (libcurl) for the commands that talk to a daemon or a mirror:
 * `status --url`, `inspect --url`, `snapshots export --url`, `rebuild --url`. http:// and
 * https:// (TLS verified against the system's CA store), proxies from the usual environment
 * variables (http_proxy, https_proxy, no_proxy), redirects followed (up to 5).
 *
 * Blocking, one request per call, no state kept between calls; safe from any one thread.
 */
#ifndef ATL_TOOLS_FETCH_H
#define ATL_TOOLS_FETCH_H

#include <stddef.h>
#include <stdint.h>

/**
 * The URL of @p path (printf format, starting with '/') on the daemon or mirror at @p base: the
 * trailing slashes of @p base are dropped first, so `--url http://host:8477/` asks for
 * `/status`, not `//status` (a path no route matches). Every `--url` command builds its URLs
 * here. Cut to fit @p len (like snprintf).
 * @return @p buf.
 */
char *fetch_url_build(char *buf, size_t len, const char *base, const char *path, ...)
    __attribute__((format(printf, 4, 5)));

/* The default of every --url command's --http-timeout, in seconds. */
#define FETCH_TIMEOUT_DEFAULT_S 30

/*
 * How long a request may wait on the other side: a server that accepts the connection and then
 * sends nothing must not hang atlasctl. Connecting has a limit of its own (30 s).
 */
typedef struct fetch_limits {
    long stall_s; /* fail when no byte arrives for this long (> 0; libcurl's low-speed limit) */
    long total_s; /* fail when the whole request takes longer; 0: no limit, for downloads of any
                   * size that keep arriving (a snapshot) */
} fetch_limits_t;

/**
 * GET @p url and require HTTP 200.
 * @param[in]  lim  time limits (see fetch_limits_t).
 * @param[out] body malloc'd response body (one spare byte after the end; the caller frees) and
 *                  its length; written only on success.
 * @return 0; -EINVAL (not an http(s) URL), -ETIMEDOUT (a limit of @p lim passed), -EIO
 *         (connection, TLS or protocol failure) or -EPROTO (a status other than 200:
 *         "HTTP 404"), each with a message in @p err.
 */
int fetch_get(const char *url, const fetch_limits_t *lim, uint8_t **body, size_t *len, char *err,
              size_t errlen);

/**
 * A request with an empty body (GET, POST, ...), optionally with
 * `Authorization: Bearer @p bearer`; any HTTP status is a success of the transfer.
 * @param[out] status the final HTTP status; @p lim, @p body and @p len as fetch_get().
 * @return 0, -EINVAL, -ETIMEDOUT or -EIO (message in @p err).
 */
int fetch_request(const char *method, const char *url, const char *bearer,
                  const fetch_limits_t *lim, int *status, uint8_t **body, size_t *len, char *err,
                  size_t errlen);

#endif
