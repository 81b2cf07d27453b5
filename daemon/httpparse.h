/*
 * httpparse.h: the request-header parsing of the snapshot routes (Range, If-None-Match), as pure
 * functions without h2o, so they are fuzzed (tests/fuzz/fuzz_http.c) and unit-testable.
 */
#ifndef ATL_HTTPPARSE_H
#define ATL_HTTPPARSE_H

#include <stddef.h>

/**
 * One byte range of a file of @p size bytes: `bytes=a-b`, `bytes=a-`, `bytes=-n` (RFC 9110
 * 14.1.2; positions are digits of any length). An end past the file means to its end, a suffix
 * longer than the file the whole file.
 * @param[in] v, len the header value (not NUL-terminated).
 * @param[out] a, b  the inclusive range to send (b clamped to size - 1), on 0.
 * @return 0, 1 when unsatisfiable (answer 416: a first byte past the end, or the last 0 bytes),
 *         or -EINVAL for a header to ignore (multi-range, malformed: RFC 7233 lets a server
 *         answer with the whole file).
 */
int httpparse_range(const char *v, size_t len, long long size, long long *a, long long *b);

/**
 * Whether an If-None-Match value (a list of entity tags, weak ones compared weakly, or `*`)
 * matches @p etag (quoted, as sent in ETag). @return 1 or 0.
 */
int httpparse_etag_match(const char *v, size_t len, const char *etag);

#endif
