/*
 * text_buf.c: the growing printf buffer of text_buf.h: format into the free space, and when it
 * does not fit, grow (doubling) and format again.
 */
#include "daemon/text_buf.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

void text_buf_printf(text_buf_t *b, const char *fmt, ...)
{
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(b->p ? b->p + b->len : NULL, b->cap - b->len, fmt, ap);
        va_end(ap);
        if (n < 0)
            return;
        if (b->len + (size_t)n < b->cap) {
            b->len += (size_t)n;
            return;
        }
        b->cap = (b->cap + (size_t)n + 1) * 2;
        char *p = realloc(b->p, b->cap);
        if (!p)
            abort(); /* daemon/: abort on OOM (STYLE R3) */
        b->p = p;
    }
}
