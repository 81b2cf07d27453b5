/*
 * Fuzz target for the time parser (issue 10.21): ISO 8601 / MySQL DATETIME text either parses
 * to a time within 1970..9999 or fails with -EINVAL; no input crashes or reads past its end.
 */
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "store/store.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *s = malloc(size + 1);
    if (!s)
        return 0;
    memcpy(s, data, size);
    s[size] = '\0';
    int64_t t = 0;
    int rc = store_time_parse(s, &t);
    free(s);
    if (rc != 0 && rc != -EINVAL)
        __builtin_trap();
    /* 1970-01-01 minus a 23:59 offset .. 9999-12-31T23:59:60 plus one */
    if (rc == 0 && (t < -86400 || t > 253402387200LL))
        __builtin_trap();
    return 0;
}
