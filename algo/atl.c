/*
 * atl.c: error strings for the project codes of atl.h and for -errno.
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
