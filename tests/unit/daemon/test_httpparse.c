/*
 * The Range and If-None-Match parsing of the snapshot routes (daemon/httpparse.c), exact values.
 * RFC 9110 14.1.2: a last-byte-pos past the representation, however many digits it has, means
 * "to the end" (206 with the rest), and a suffix longer than the representation means all of it
 * (206 with the whole file). Before, numbers past LLONG_MAX overflowed strtoll, the header was
 * taken as malformed and the whole file came back as 200.
 */
#include <errno.h>

#include "daemon/httpparse.h"
#include "tests/check.h"

/* httpparse_range() on a NUL-terminated header value. */
static int range(const char *v, long long size, long long *a, long long *b)
{
    *a = *b = -7;
    return httpparse_range(v, strlen(v), size, a, b);
}

static void expect_range(const char *v, long long size, long long want_a, long long want_b)
{
    long long a, b;
    int r = range(v, size, &a, &b);
    if (r != 0)
        fprintf(stderr, "range \"%s\" of %lld bytes: %d\n", v, size, r);
    CHECK_EQ(r, 0);
    CHECK_EQ(a, want_a);
    CHECK_EQ(b, want_b);
}

static void expect_result(const char *v, long long size, int want)
{
    long long a, b;
    int r = range(v, size, &a, &b);
    if (r != want)
        fprintf(stderr, "range \"%s\" of %lld bytes\n", v, size);
    CHECK_EQ(r, want);
}

static void test_range_plain(void)
{
    expect_range("bytes=0-3", 100, 0, 3);
    expect_range("bytes=1-", 100, 1, 99);
    expect_range("bytes=-5", 100, 95, 99);
    expect_range("bytes=90-200", 100, 90, 99);
    expect_range("bytes=99-99", 100, 99, 99);
    expect_result("bytes=100-", 100, 1); /* first byte past the end: 416 */
    expect_result("bytes=-0", 100, 1);   /* the last 0 bytes: 416 */
    expect_result("bytes=5-4", 100, -EINVAL);
    expect_result("bytes=0-3,5-6", 100, -EINVAL); /* multi-range: the whole file */
    expect_result("bytes=x-3", 100, -EINVAL);
    expect_result("bytes=3-x", 100, -EINVAL);
    expect_result("bytes=-", 100, -EINVAL);
    expect_result("bytes=--5", 100, -EINVAL);
    expect_result("items=1-3", 100, -EINVAL);
}

/* Numbers too large for long long are still numbers (RFC 9110: 1*DIGIT, no bound). */
static void test_range_overlong(void)
{
    const long long size = 20000000;
    expect_range("bytes=19999999-99999999999999999999", size, 19999999, 19999999);
    expect_range("bytes=0-99999999999999999999999999999999999", size, 0, size - 1);
    expect_range("bytes=10-9223372036854775807", size, 10, size - 1);
    expect_range("bytes=10-9223372036854775808", size, 10, size - 1);
    expect_range("bytes=-99999999999999999999", size, 0, size - 1);
    expect_range("bytes=-9223372036854775808", size, 0, size - 1);
    expect_range("bytes=-20000000", size, 0, size - 1);
    expect_range("bytes=-20000001", size, 0, size - 1);
    expect_range("bytes=0-00000000000000000000000000000003", size, 0, 3);
    /* a first byte past the end, however long, is unsatisfiable (416), not malformed */
    expect_result("bytes=99999999999999999999-", size, 1);
    expect_result("bytes=99999999999999999999-99999999999999999999", size, 1);
    /* ... but a range whose end is before its start stays malformed */
    expect_result("bytes=99999999999999999999-5", size, -EINVAL);
    expect_result("bytes=99999999999999999999-99999999999999999998", size, -EINVAL);
    /* an empty file: nothing is satisfiable */
    expect_result("bytes=-99999999999999999999", 0, 1);
    expect_result("bytes=0-99999999999999999999", 0, 1);
}

static void test_etag_match(void)
{
    const char *etag = "\"abc\"";
    CHECK(httpparse_etag_match("\"abc\"", 5, etag));
    CHECK(httpparse_etag_match("W/\"x\", \"abc\"", 12, etag));
    CHECK(httpparse_etag_match("*", 1, etag));
    CHECK(!httpparse_etag_match("\"abd\"", 5, etag));
}

int main(void)
{
    test_range_plain();
    test_range_overlong();
    test_etag_match();
    return 0;
}
