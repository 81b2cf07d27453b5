/*
 * text_buf.h: a growing text buffer filled with printf formats (Prometheus /metrics text). Its
 * own header so the HTTP server and the scheduler need not include the Kafka consumer's.
 */
#ifndef ATL_DAEMON_TEXT_BUF_H
#define ATL_DAEMON_TEXT_BUF_H

#include <stddef.h>

/** Zero-initialise; p is malloc'd (the owner frees it), NUL-terminated once anything is written. */
typedef struct text_buf {
    char *p;
    size_t len, cap;
} text_buf_t;

/** Append a printf-formatted string, growing the buffer; aborts on OOM (STYLE R3, daemon/). */
void text_buf_printf(text_buf_t *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
