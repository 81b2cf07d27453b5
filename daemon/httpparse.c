/*
 * httpparse.c: Range and If-None-Match parsing for the snapshot routes. See httpparse.h.
 * Inputs are attacker-controlled header bytes: every read is bounded by the given length, and
 * numbers are parsed from a bounded, NUL-terminated copy.
 */
#include "daemon/httpparse.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

int httpparse_range(const char *v, size_t len, long long size, long long *a_out, long long *b_out)
{
    char spec[128];
    if (len >= sizeof(spec) || len < 7 || memcmp(v, "bytes=", 6) != 0 || memchr(v, ',', len) ||
        memchr(v, '\0', len) || size < 0)
        return -EINVAL;
    memcpy(spec, v + 6, len - 6);
    spec[len - 6] = '\0';
    long long a, b;
    char *dash = strchr(spec, '-'), *end;
    if (!dash)
        return -EINVAL;
    *dash = '\0';
    errno = 0;
    if (spec[0] == '\0') { /* suffix: the last n bytes */
        long long n = strtoll(dash + 1, &end, 10);
        if (*end || n < 0 || !dash[1] || errno)
            return -EINVAL;
        /* the last 0 bytes: unsatisfiable (RFC 7233 2.1), not the whole file */
        if (n == 0 || size == 0)
            return 1;
        a = n >= size ? 0 : size - n, b = size - 1;
    } else {
        a = strtoll(spec, &end, 10);
        if (*end || a < 0 || errno)
            return -EINVAL;
        b = dash[1] ? strtoll(dash + 1, &end, 10) : size - 1;
        if (dash[1] && (*end || b < a || errno))
            return -EINVAL;
        if (a >= size)
            return 1;
        if (b >= size)
            b = size - 1;
    }
    *a_out = a, *b_out = b;
    return 0;
}

int httpparse_etag_match(const char *v, size_t len, const char *etag)
{
    size_t i = 0, elen = strlen(etag);
    while (i < len) {
        while (i < len && (v[i] == ' ' || v[i] == ','))
            i++;
        size_t j = i;
        while (j < len && v[j] != ',')
            j++;
        size_t a = i, b = j;
        while (b > a && v[b - 1] == ' ')
            b--;
        if (b - a >= 2 && v[a] == 'W' && v[a + 1] == '/')
            a += 2;
        if ((b - a == 1 && v[a] == '*') || (b - a == elen && !memcmp(v + a, etag, elen)))
            return 1;
        i = j;
    }
    return 0;
}
