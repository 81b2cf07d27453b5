/*
 * http_get.c: blocking HTTP/1.1 requests for the commands that talk to a daemon (snapshots
 * export --url, status --url, rebuild --url). Response parsing (status line, headers, chunked
 * bodies) is http-parser's; this file only opens the TCP connection and feeds it the bytes. Plain
 * HTTP: the daemon serves no TLS, and a public mirror behind nginx can be fetched with curl.
 */
#include <errno.h>
#include <http_parser.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "tools/cli.h"

typedef struct get_state {
    uint8_t *body;
    size_t len, cap;
    int done;
} get_state_t;

static int on_body(http_parser *p, const char *at, size_t n)
{
    get_state_t *g = p->data;
    if (g->len + n > g->cap) {
        g->cap = (g->len + n) * 2;
        g->body = xrealloc(g->body, g->cap);
    }
    memcpy(g->body + g->len, at, n);
    g->len += n;
    return 0;
}

static int on_complete(http_parser *p)
{
    ((get_state_t *)p->data)->done = 1;
    return 0;
}

static int connect_to(const char *host, const char *port, char *err, size_t errlen)
{
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *res, *ai;
    int rc = getaddrinfo(host, port, &hints, &res), fd = -1;
    if (rc != 0) {
        snprintf(err, errlen, "%s: %s", host, gai_strerror(rc));
        return -1;
    }
    for (ai = res; ai && fd < 0; ai = ai->ai_next) {
        fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
        if (fd >= 0 && connect(fd, ai->ai_addr, ai->ai_addrlen) != 0) {
            close(fd);
            fd = -1;
        }
    }
    freeaddrinfo(res);
    if (fd < 0)
        snprintf(err, errlen, "cannot connect to %s:%s: %s", host, port, strerror(errno));
    return fd;
}

int http_get(const char *url, uint8_t **body, size_t *len, char *err, size_t errlen)
{
    int status = 0;
    if (http_request("GET", url, NULL, &status, body, len, err, errlen) != 0)
        return -1;
    if (status != 200) {
        snprintf(err, errlen, "HTTP %d", status);
        free(*body);
        return -1;
    }
    return 0;
}

int http_request(const char *method, const char *url, const char *bearer, int *status,
                 uint8_t **body, size_t *len, char *err, size_t errlen)
{
    struct http_parser_url u;
    http_parser_url_init(&u);
    if (http_parser_parse_url(url, strlen(url), 0, &u) != 0 || !(u.field_set & (1 << UF_HOST)) ||
        strncmp(url, "http://", 7) != 0) {
        snprintf(err, errlen, "\"%s\" is not an http:// URL", url);
        return -1;
    }
    char host[256], port[16] = "80", path[2048] = "/";
    snprintf(host, sizeof(host), "%.*s", u.field_data[UF_HOST].len,
             url + u.field_data[UF_HOST].off);
    if (u.field_set & (1 << UF_PORT))
        snprintf(port, sizeof(port), "%u", u.port);
    if (u.field_set & (1 << UF_PATH))
        snprintf(path, sizeof(path), "%.*s", u.field_data[UF_PATH].len,
                 url + u.field_data[UF_PATH].off);
    if (u.field_set & (1 << UF_QUERY))
        snprintf(path + strlen(path), sizeof(path) - strlen(path), "?%.*s",
                 u.field_data[UF_QUERY].len, url + u.field_data[UF_QUERY].off);
    char auth[1200] = "";
    if (bearer && bearer[0])
        snprintf(auth, sizeof(auth), "Authorization: Bearer %.1000s\r\n", bearer);
    int fd = connect_to(host, port, err, errlen);
    if (fd < 0)
        return -1;
    char req[4000];
    int n = snprintf(req, sizeof(req),
                     "%s %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: atlasctl\r\n%s"
                     "Content-Length: 0\r\nConnection: close\r\n\r\n",
                     method, path, host, auth);
    if (write(fd, req, (size_t)n) != n) {
        snprintf(err, errlen, "sending the request failed: %s", strerror(errno));
        close(fd);
        return -1;
    }
    http_parser parser;
    http_parser_settings settings;
    get_state_t g = {0};
    http_parser_init(&parser, HTTP_RESPONSE);
    http_parser_settings_init(&settings);
    settings.on_body = on_body;
    settings.on_message_complete = on_complete;
    parser.data = &g;
    char buf[65536];
    ssize_t r;
    int rc = 0;
    while (!g.done && (r = read(fd, buf, sizeof(buf))) >= 0) {
        size_t used = http_parser_execute(&parser, &settings, buf, (size_t)r);
        if (parser.http_errno != HPE_OK || (r > 0 && used != (size_t)r)) {
            snprintf(err, errlen, "malformed response: %s",
                     http_errno_description(parser.http_errno));
            rc = -1;
            break;
        }
        if (r == 0)
            break;
    }
    close(fd);
    if (rc == 0 && !g.done) {
        snprintf(err, errlen, "the connection closed before the response was complete");
        rc = -1;
    }
    *status = (int)parser.status_code;
    if (rc != 0) {
        free(g.body);
        return -1;
    }
    *body = g.body ? g.body : xmalloc(1);
    *len = g.len;
    return 0;
}
