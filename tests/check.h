/*
 * check.h: assertions for tests that print both sides on failure (libuv ASSERT_EQ model).
 * A failed check aborts the test process with a file:line message; exit code 77 means skip.
 */
#ifndef ATL_CHECK_H
#define ATL_CHECK_H

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "%s:%d: CHECK(%s) failed\n", __FILE__, __LINE__, #cond);               \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

/* CHECK_EQ compares integers (as long long): a floating value would be truncated (0.28 == 0.29),
 * a check that cannot fail, so it does not compile; use CHECK(a == b) or CHECK_NEAR */
#define CHECK_INTEGRAL(x)                                                                          \
    _Static_assert(_Generic((x), float : 0, double : 0, long double : 0, default : 1),             \
                   "CHECK_EQ on a floating value: use CHECK(a == b) or CHECK_NEAR")

#define CHECK_EQ(a, b)                                                                             \
    do {                                                                                           \
        CHECK_INTEGRAL(a);                                                                         \
        CHECK_INTEGRAL(b);                                                                         \
        long long _a = (long long)(a), _b = (long long)(b);                                        \
        if (_a != _b) {                                                                            \
            fprintf(stderr, "%s:%d: CHECK_EQ(%s, %s) failed: %lld != %lld\n", __FILE__, __LINE__,  \
                    #a, #b, _a, _b);                                                               \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

#define CHECK_STREQ(a, b)                                                                          \
    do {                                                                                           \
        const char *_a = (a), *_b = (b);                                                           \
        if (strcmp(_a, _b) != 0) {                                                                 \
            fprintf(stderr, "%s:%d: CHECK_STREQ(%s, %s) failed: \"%s\" != \"%s\"\n", __FILE__,     \
                    __LINE__, #a, #b, _a, _b);                                                     \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

#define CHECK_NEAR(a, b, tol)                                                                      \
    do {                                                                                           \
        double _a = (double)(a), _b = (double)(b);                                                 \
        if (!(_a - _b <= (tol) && _b - _a <= (tol))) {                                             \
            fprintf(stderr, "%s:%d: CHECK_NEAR(%s, %s, %g) failed: %.9g vs %.9g\n", __FILE__,      \
                    __LINE__, #a, #b, (double)(tol), _a, _b);                                      \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

/* An API call that must return 0; prints the error text otherwise. */
#define E(expr)                                                                                    \
    do {                                                                                           \
        int _rc = (expr);                                                                          \
        if (_rc != 0) {                                                                            \
            fprintf(stderr, "%s:%d: %s failed: %d\n", __FILE__, __LINE__, #expr, _rc);             \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

/* A fresh temporary directory under $TMPDIR; the caller removes it with check_rmdir(). */
static inline char *check_tmpdir(const char *tag)
{
    const char *base = getenv("TMPDIR");
    char *p = malloc(4096);
    snprintf(p, 4096, "%s/atl-%s-XXXXXX", base ? base : "/tmp", tag);
    if (!mkdtemp(p)) {
        perror("mkdtemp");
        abort();
    }
    return p;
}

static inline void check_rmdir(char *p)
{
    char cmd[4200];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", p);
    if (system(cmd) != 0)
        fprintf(stderr, "warning: could not remove %s\n", p);
    free(p);
}

#endif
