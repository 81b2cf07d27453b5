/*
 * fetch.c: blocking HTTP(S) requests through libcurl (see fetch.h). libcurl brings what a
 * deployment behind TLS, a proxy or a redirecting front end needs; this file only sets the
 * request up and collects the body. Every request is its own easy handle: no shared state.
 */
#include "tools/fetch.h"

#include <curl/curl.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tools/cli.h"

typedef struct body_buf {
    uint8_t *data;
    size_t len, cap;
} body_buf_t;

static size_t on_data(char *at, size_t size, size_t nmemb, void *ud)
{
    body_buf_t *b = ud;
    size_t n = size * nmemb;
    if (b->len + n + 1 > b->cap) {
        b->cap = (b->len + n + 1) * 2;
        b->data = xrealloc(b->data, b->cap);
    }
    memcpy(b->data + b->len, at, n);
    b->len += n;
    return n;
}

char *fetch_url_build(char *buf, size_t len, const char *base, const char *path, ...)
{
    size_t bl = strlen(base);
    while (bl > 0 && base[bl - 1] == '/')
        bl--;
    int n = snprintf(buf, len, "%.*s", (int)bl, base);
    if (n >= 0 && (size_t)n < len) {
        va_list ap;
        va_start(ap, path);
        vsnprintf(buf + n, len - (size_t)n, path, ap);
        va_end(ap);
    }
    return buf;
}

static int is_http_url(const char *url)
{
    return strncmp(url, "http://", 7) == 0 || strncmp(url, "https://", 8) == 0;
}

/* The limits of @p lim on handle @p c. Less than 1 byte a second over stall_s seconds is a
 * stall; it covers the wait for the answer as well as a body that stops arriving. */
static void set_limits(CURL *c, const fetch_limits_t *lim)
{
    curl_easy_setopt(c, CURLOPT_LOW_SPEED_LIMIT, 1L);
    curl_easy_setopt(c, CURLOPT_LOW_SPEED_TIME, lim->stall_s);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, lim->total_s);
}

/* The message of a request that ran into a limit: which one, by the time it took. */
static void timeout_message(CURL *c, const fetch_limits_t *lim, const char *curl_err, char *err,
                            size_t errlen)
{
    double secs = 0, connected = 0;
    curl_easy_getinfo(c, CURLINFO_TOTAL_TIME, &secs);
    curl_easy_getinfo(c, CURLINFO_CONNECT_TIME, &connected);
    if (connected <= 0) /* the connection itself timed out: libcurl's words say so */
        snprintf(err, errlen, "%s", curl_err[0] ? curl_err : "connection timed out");
    else if (lim->total_s > 0 && secs >= (double)lim->total_s - 0.5)
        snprintf(err, errlen, "timed out: no complete answer within %ld s (--http-timeout)",
                 lim->total_s);
    else
        snprintf(err, errlen, "timed out: no data for %ld s (--http-timeout)", lim->stall_s);
}

/* Method, headers and body collection on a fresh handle. */
static void set_up(CURL *c, const char *method, const char *url, struct curl_slist *headers,
                   body_buf_t *b, char *curl_err)
{
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(c, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 1L);
    curl_easy_setopt(c, CURLOPT_MAXREDIRS, 5L);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, 30L);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_USERAGENT, "atlasctl");
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, b);
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, curl_err);
    if (strcmp(method, "POST") == 0) {
        curl_easy_setopt(c, CURLOPT_POST, 1L);
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, "");
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, 0L);
    } else if (strcmp(method, "GET") != 0) {
        curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    }
}

int fetch_request(const char *method, const char *url, const char *bearer,
                  const fetch_limits_t *lim, int *status, uint8_t **body, size_t *len, char *err,
                  size_t errlen)
{
    char auth[1100], curl_err[CURL_ERROR_SIZE] = "";
    struct curl_slist *headers = NULL;
    body_buf_t b = {0};
    int rc = 0;
    if (!is_http_url(url)) {
        snprintf(err, errlen, "\"%s\" is not an http:// or https:// URL", url);
        return -EINVAL;
    }
    CURL *c = curl_easy_init();
    if (!c) {
        snprintf(err, errlen, "libcurl could not start");
        return -EIO;
    }
    if (bearer && bearer[0]) {
        snprintf(auth, sizeof(auth), "Authorization: Bearer %.1000s", bearer);
        headers = curl_slist_append(headers, auth);
    }
    set_up(c, method, url, headers, &b, curl_err);
    set_limits(c, lim);
    CURLcode cc = curl_easy_perform(c);
    if (cc == CURLE_OPERATION_TIMEDOUT) {
        timeout_message(c, lim, curl_err, err, errlen);
        rc = -ETIMEDOUT;
    } else if (cc != CURLE_OK) {
        snprintf(err, errlen, "%s", curl_err[0] ? curl_err : curl_easy_strerror(cc));
        rc = -EIO;
    } else {
        long code = 0;
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code);
        *status = (int)code;
        *body = b.data ? b.data : xmalloc(1);
        *len = b.len;
        b.data = NULL;
    }
    free(b.data);
    curl_slist_free_all(headers);
    curl_easy_cleanup(c);
    return rc;
}

int fetch_get(const char *url, const fetch_limits_t *lim, uint8_t **body, size_t *len, char *err,
              size_t errlen)
{
    int status = 0, rc = fetch_request("GET", url, NULL, lim, &status, body, len, err, errlen);
    if (rc != 0)
        return rc;
    if (status != 200) {
        snprintf(err, errlen, "HTTP %d", status);
        free(*body);
        return -EPROTO;
    }
    return 0;
}
