/*
 * Fuzz target for the HTTP request path (issue 10.21): the request line and headers as h2o
 * parses them (picohttpparser's phr_parse_request, which h2o exports), then what atlasd does
 * with them: the Range and If-None-Match headers of the snapshot routes (httpparse.c) and the
 * route's query parameters. A satisfiable range must lie inside the file.
 */
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <strings.h>

#include "daemon/httpparse.h"

/* picohttpparser, as bundled in libh2o (its header is not installed) */
struct phr_header {
    const char *name;
    size_t name_len;
    const char *value;
    size_t value_len;
};

int phr_parse_request(const char *buf, size_t len, const char **method, size_t *method_len,
                      const char **path, size_t *path_len, int *minor_version,
                      struct phr_header *headers, size_t *num_headers, size_t last_len);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_value(const char *name, size_t nl, const char *v, size_t vl)
{
    static const long long sizes[] = {0, 1, 62, 4096, 123456789};
    static const char etag[] =
        "\"c950acc255703e116b234c541f043898caba43105bc2e8e8b53959ea34e6d855\"";
    if (nl == 5 && strncasecmp(name, "range", 5) == 0) {
        for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
            long long a = -1, b = -1;
            int r = httpparse_range(v, vl, sizes[i], &a, &b);
            if (r == 0 && !(a >= 0 && a <= b && b < sizes[i]))
                __builtin_trap();
            if (r != 0 && r != 1 && r != -EINVAL)
                __builtin_trap();
        }
    }
    if (nl == 13 && strncasecmp(name, "if-none-match", 13) == 0) {
        int m = httpparse_etag_match(v, vl, etag);
        if (m != 0 && m != 1)
            __builtin_trap();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *method, *path;
    size_t method_len, path_len, num_headers = 32;
    int minor;
    struct phr_header headers[32];
    int r = phr_parse_request((const char *)data, size, &method, &method_len, &path, &path_len,
                              &minor, headers, &num_headers, 0);
    if (r > 0) {
        for (size_t i = 0; i < num_headers; i++)
            if (headers[i].name)
                check_value(headers[i].name, headers[i].name_len, headers[i].value,
                            headers[i].value_len);
    }
    /* the header parsers also see raw bytes directly (values h2o would pass on) */
    check_value("range", 5, (const char *)data, size);
    check_value("if-none-match", 13, (const char *)data, size);
    return 0;
}
