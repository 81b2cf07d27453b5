/*
 * HTTP answers when memory runs out (issue 10.12): the server runs on a libuv loop in the main
 * thread with stub routes; a client thread sends GET /status, GET /snapshots and POST
 * /admin/rebuild on one keep-alive connection, each with the n-th allocation of its handling
 * failing, for n = 0, 1, ... (tests/fault). Every answer whose printing (cJSON_Print, the
 * realloc for the final newline, the object itself) or snapshot listing failed must be a
 * complete 500 "out of memory"; before, a failed cJSON_Print was passed to strlen (a crash), a
 * failed realloc aborted, and a failed listing answered an empty list. The connection stays
 * usable after each one.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cJSON.h>
#include <uv.h>

#include "daemon/http.h"
#include "daemon/log.h"
#include "tests/check.h"
#include "tests/fault/fault.h"

enum { N_FIELDS = 40 };

static atomic_int stub_failed; /* a stub route's own cJSON_Add* failed (it answers what it has) */

static void fill(cJSON *o, const char *what)
{
    if (!o)
        return;
    for (int i = 0; i < N_FIELDS; i++) { /* enough to make cJSON_Print grow its buffer */
        char key[32];
        snprintf(key, sizeof(key), "%s_field_%d", what, i);
        if (!cJSON_AddNumberToObject(o, key, i * 1000.5))
            stub_failed = 1;
    }
}

static void on_status_cb(void *ud, cJSON *out)
{
    (void)ud;
    fill(out, "status");
}

static void on_metrics_cb(void *ud, text_buf_t *out)
{
    (void)ud, (void)out;
}

static const char *on_health_cb(void *ud)
{
    (void)ud;
    return "consuming";
}

static int on_admin_cb(void *ud, int cold, cJSON *out)
{
    (void)ud, (void)cold;
    fill(out, "rebuild");
    return 202;
}

typedef struct client {
    int port, done, ok;
    uv_async_t *wake;
    long failures[3];
} client_t;

/* One request on @p fd, its answer into @p buf (NUL-terminated). @return the status, or -1. */
static int request(int fd, const char *req, char *buf, size_t cap, const char **body)
{
    size_t len = strlen(req), got = 0;
    if (write(fd, req, len) != (ssize_t)len)
        return -1;
    for (;;) {
        ssize_t r = read(fd, buf + got, cap - 1 - got);
        if (r <= 0)
            return -1;
        got += (size_t)r;
        buf[got] = '\0';
        char *end = strstr(buf, "\r\n\r\n");
        const char *cl = strstr(buf, "Content-Length:");
        if (end && cl && got >= (size_t)(end + 4 - buf) + strtoul(cl + 15, NULL, 10)) {
            *body = end + 4;
            return atoi(buf + 9);
        }
        if (got + 1 >= cap)
            return -1;
    }
}

static void *client_main(void *ud)
{
    client_t *c = ud;
    static char buf[1 << 16];
    const char *body;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)c->port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    CHECK(connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0);
    /* accepted and served once: later allocations are the requests' own */
    CHECK_EQ(request(fd, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n", buf, sizeof(buf), &body), 200);
    const char *reqs[] = {"GET /status HTTP/1.1\r\nHost: x\r\n\r\n",
                          "GET /snapshots HTTP/1.1\r\nHost: x\r\n\r\n",
                          "POST /admin/rebuild HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n"};
    const char *names[] = {"GET /status", "GET /snapshots", "POST /admin/rebuild"};
    const int ok_status[] = {200, 200, 202};
    const char *want[] = {"\"status_field_39\"", "[]", "\"rebuild_field_39\""};
    for (int r = 0; r < 3; r++) {
        for (long n = 0;; n++) {
            stub_failed = 0;
            fault_arm(n);
            int st = request(fd, reqs[r], buf, sizeof(buf), &body);
            int fired = fault_disarm();
            if (fired && !stub_failed) {
                if (st != 500 || strcmp(body, "out of memory\n") != 0) {
                    fprintf(stderr, "%s: allocation #%ld failed, answer %d: %.200s\n", names[r], n,
                            st, buf);
                    abort();
                }
                continue;
            }
            if (fired)
                continue; /* the stub's field went missing: its business, not the server's */
            CHECK_EQ(st, ok_status[r]);
            cJSON *j = cJSON_Parse(body);
            CHECK(j != NULL);
            cJSON_Delete(j);
            CHECK(strstr(body, want[r]) != NULL);
            c->failures[r] = n;
            break;
        }
    }
    close(fd);
    c->ok = 1;
    uv_async_send(c->wake);
    return NULL;
}

static void on_wake(uv_async_t *a)
{
    uv_stop(a->loop);
}

int main(void)
{
    uv_loop_t loop;
    E(uv_loop_init(&loop));
    log_level_current = LOG_LEVEL_WARN;
    char *snaps = check_tmpdir("http-snaps"), path[4200];
    /* two snapshots without manifests: listed (an allocation each), not parsed */
    for (int i = 0; i < 2; i++) {
        snprintf(path, sizeof(path), "%s/corpus_%d", snaps, 1600000000 + i);
        FILE *f = fopen(path, "w");
        CHECK(f != NULL);
        fclose(f);
    }
    http_routes_t routes = {.snapshots_dir = snaps,
                            .cors_origin = "*",
                            .status = on_status_cb,
                            .metrics = on_metrics_cb,
                            .health = on_health_cb,
                            .admin_rebuild = on_admin_cb};
    http_server_t *srv;
    char err[256];
    E(http_start(&loop, "127.0.0.1:0", &routes, &srv, err, sizeof(err)));
    fault_cjson_hooks(); /* cJSON's allocations (the objects, cJSON_Print) count */
    uv_async_t wake;
    E(uv_async_init(&loop, &wake, on_wake));
    client_t c = {.port = http_port(srv), .wake = &wake};
    pthread_t th;
    E(pthread_create(&th, NULL, client_main, &c));
    uv_run(&loop, UV_RUN_DEFAULT);
    E(pthread_join(th, NULL));
    CHECK(c.ok);
    fprintf(stderr, "allocations failed in turn: /status %ld, /snapshots %ld, /admin %ld\n",
            c.failures[0], c.failures[1], c.failures[2]);
    CHECK(c.failures[0] >= 3 && c.failures[1] >= 5 && c.failures[2] >= 3);
    uv_close((uv_handle_t *)&wake, NULL);
    http_free(srv, 1000);
    uv_run(&loop, UV_RUN_DEFAULT);
    CHECK_EQ(uv_loop_close(&loop), 0);
    check_rmdir(snaps);
    return 0;
}
