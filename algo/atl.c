/*
 * atl.c: error strings for the project codes of atl.h and for -errno; number parsing.
 */
#include "algo/atl.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

const char *atl_strerror(int code)
{
    switch (code) {
    case 0:
        return "success";
    case ATL_ECORRUPT:
        return "store is corrupt";
    case ATL_EBADEVENT:
        return "invalid event";
    case ATL_ECONFIG:
        return "invalid configuration";
    case ATL_EVERSION:
        return "store format version mismatch";
    case ATL_EMAPFULL:
        return "store map is full and could not grow";
    case ATL_ENOTFOUND:
        return "not found";
    case ATL_ELOCKED:
        return "store is in use by another process";
    case ATL_ECANCELED:
        return "canceled";
    case ATL_ESTORE:
        return "storage engine error";
    case ATL_EDIFF:
        return "verification found a difference";
    case ATL_ENOTSTORE:
        return "not an atlasd store (an LMDB file of another program)";
    default:
        break;
    }
    if (code < 0 && code > -4096)
        return strerror(-code);
    return "unknown error";
}

int atl_array_grow(void **p, size_t *cap, size_t need, size_t elem_size, size_t initial)
{
    if (need <= *cap)
        return 0;
    size_t c = *cap ? *cap : (initial ? initial : 1);
    while (c < need)
        c *= 2;
    void *q = realloc(*p, c * elem_size);
    if (!q)
        return -ENOMEM;
    *p = q;
    *cap = c;
    return 0;
}

int atl_cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

/*
 * Plain digits with an optional fraction, at most 2^53 as an integer w and at most 22 fraction
 * digits f: w and 10^f are exact doubles, so the one division w / 10^f is the correctly rounded
 * value, as strtod's (Clinger, "How to read floating point numbers accurately", PLDI 1990).
 * Anything else (signs, exponents, more digits, spaces) goes to strtod.
 */
int atl_parse_double(const char *s, size_t len, double *out)
{
    static const double pow10[23] = {1e0,  1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,
                                     1e8,  1e9,  1e10, 1e11, 1e12, 1e13, 1e14, 1e15,
                                     1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22};
    uint64_t w = 0;
    size_t i = 0, digits = 0, frac = 0;
    int dot = 0;
    for (; i < len; i++) {
        if (s[i] >= '0' && s[i] <= '9') {
            if (digits++ == 18)
                break; /* w could pass 2^53 */
            w = w * 10 + (uint64_t)(s[i] - '0');
            frac += (size_t)dot;
        } else if (s[i] == '.' && !dot) {
            dot = 1;
        } else {
            break;
        }
    }
    if (i == len && digits > 0 && w <= (1ull << 53) && frac <= 22) {
        *out = (double)w / pow10[frac];
        return 0;
    }
    char tmp[128];
    if (len == 0 || len >= sizeof(tmp))
        return -EINVAL;
    memcpy(tmp, s, len);
    tmp[len] = '\0';
    char *end;
    *out = strtod(tmp, &end);
    return *end == '\0' && end != tmp ? 0 : -EINVAL;
}
