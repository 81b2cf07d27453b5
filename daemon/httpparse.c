/*
 * httpparse.c: Range and If-None-Match parsing for the snapshot routes. See httpparse.h.
 * Inputs are attacker-controlled header bytes: every read is bounded by the given length, and
 * numbers are parsed from a bounded, NUL-terminated copy, as digits of any length (saturating:
 * strtoll's overflow once turned a valid range into a malformed one).
 */
#include "daemon/httpparse.h"

#include <errno.h>
#include <limits.h>
#include <string.h>

/* A byte position: digits only (RFC 9110 1*DIGIT, no sign, no white space), saturating at
 * LLONG_MAX. Positions are unbounded in the grammar: one past any file size is still a position,
 * not an error (an end past the file means "to the end", RFC 9110 14.1.2). */
static int parse_pos(const char *s, long long *out)
{
    long long v = 0;
    if (!*s)
        return -EINVAL;
    for (; *s; s++) {
        if (*s < '0' || *s > '9')
            return -EINVAL;
        int d = *s - '0';
        v = v > (LLONG_MAX - d) / 10 ? LLONG_MAX : v * 10 + d;
    }
    *out = v;
    return 0;
}

/* Compare two digit strings as numbers of any length: <0, 0 or >0. */
static int cmp_digits(const char *x, const char *y)
{
    while (*x == '0' && x[1])
        x++;
    while (*y == '0' && y[1])
        y++;
    size_t lx = strlen(x), ly = strlen(y);
    return lx != ly ? (lx < ly ? -1 : 1) : strcmp(x, y);
}

int httpparse_range(const char *v, size_t len, long long size, long long *a_out, long long *b_out)
{
    char spec[128];
    if (len >= sizeof(spec) || len < 7 || memcmp(v, "bytes=", 6) != 0 || memchr(v, ',', len) ||
        memchr(v, '\0', len) || size < 0)
        return -EINVAL;
    memcpy(spec, v + 6, len - 6);
    spec[len - 6] = '\0';
    long long a, b;
    char *dash = strchr(spec, '-');
    if (!dash)
        return -EINVAL;
    *dash = '\0';
    if (spec[0] == '\0') { /* suffix: the last n bytes, all of them if n is past the size */
        long long n;
        if (parse_pos(dash + 1, &n) != 0)
            return -EINVAL;
        /* the last 0 bytes: unsatisfiable (RFC 7233 2.1), not the whole file */
        if (n == 0 || size == 0)
            return 1;
        a = n >= size ? 0 : size - n, b = size - 1;
    } else {
        if (parse_pos(spec, &a) != 0)
            return -EINVAL;
        b = size - 1;
        if (dash[1] && (parse_pos(dash + 1, &b) != 0 || cmp_digits(dash + 1, spec) < 0))
            return -EINVAL;
        if (a >= size)
            return 1;
        if (b >= size) /* an end past the file, however many digits: to the end */
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
