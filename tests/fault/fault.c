/*
 * fault.c: the allocation wrappers behind fault.h. The linker turns each call to malloc & co.
 * in the test executable into a call to __wrap_malloc & co. here; __real_malloc is the libc
 * (or sanitizer) allocator. Unarmed, a wrapper is one relaxed atomic load and the real call.
 */
#include "tests/fault/fault.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cJSON.h>

void *__real_malloc(size_t n);
void *__real_calloc(size_t n, size_t size);
void *__real_realloc(void *p, size_t n);
char *__real_strdup(const char *s);
char *__real_strndup(const char *s, size_t n);
int __real_posix_memalign(void **p, size_t align, size_t n);
void *__real_aligned_alloc(size_t align, size_t n);
void *__wrap_malloc(size_t n);
void *__wrap_calloc(size_t n, size_t size);
void *__wrap_realloc(void *p, size_t n);
char *__wrap_strdup(const char *s);
char *__wrap_strndup(const char *s, size_t n);
int __wrap_posix_memalign(void **p, size_t align, size_t n);
void *__wrap_aligned_alloc(size_t align, size_t n);

static atomic_int armed;
static atomic_long left, counted;
static atomic_int fired;
static void *_Atomic last_site;
static _Thread_local int thread_fail_all;

void fault_arm(long nth)
{
    atomic_store(&counted, 0);
    atomic_store(&fired, 0);
    atomic_store(&left, nth);
    atomic_store(&armed, 1);
}

void fault_thread_fail_all(int on)
{
    thread_fail_all = on;
}

int fault_disarm(void)
{
    atomic_store(&armed, 0);
    return atomic_load(&fired);
}

long fault_count(void)
{
    return atomic_load(&counted);
}

void *fault_last_site(void)
{
    return atomic_load(&last_site);
}

/* Whether this allocation is the one to fail. */
static int fail_now(void *site)
{
    int fail = thread_fail_all;
    if (!fail && atomic_load_explicit(&armed, memory_order_relaxed)) {
        atomic_fetch_add(&counted, 1);
        fail = atomic_fetch_sub(&left, 1) == 0;
    }
    if (fail) {
        atomic_store(&fired, 1);
        atomic_store(&last_site, site);
    }
    return fail;
}

#define SITE __builtin_extract_return_addr(__builtin_return_address(0))

void *__wrap_malloc(size_t n)
{
    return fail_now(SITE) ? NULL : __real_malloc(n);
}

void *__wrap_calloc(size_t n, size_t size)
{
    return fail_now(SITE) ? NULL : __real_calloc(n, size);
}

void *__wrap_realloc(void *p, size_t n)
{
    return fail_now(SITE) ? NULL : __real_realloc(p, n);
}

char *__wrap_strdup(const char *s)
{
    return fail_now(SITE) ? NULL : __real_strdup(s);
}

char *__wrap_strndup(const char *s, size_t n)
{
    return fail_now(SITE) ? NULL : __real_strndup(s, n);
}

int __wrap_posix_memalign(void **p, size_t align, size_t n)
{
    return fail_now(SITE) ? 12 /* ENOMEM */ : __real_posix_memalign(p, align, n);
}

void *__wrap_aligned_alloc(size_t align, size_t n)
{
    return fail_now(SITE) ? NULL : __real_aligned_alloc(align, n);
}

static void *cjson_malloc(size_t n)
{
    return fail_now(SITE) ? NULL : __real_malloc(n);
}

void fault_cjson_hooks(void)
{
    cJSON_Hooks h = {cjson_malloc, free};
    cJSON_InitHooks(&h);
}

/* sanitizer builds (ASan, UBSan, TSan) can name a code address; others print it raw */
void __sanitizer_symbolize_pc(void *pc, const char *fmt, char *out, size_t len)
    __attribute__((weak));

static void site_name(void *site, char *buf, size_t len)
{
    if (site && __sanitizer_symbolize_pc)
        __sanitizer_symbolize_pc((char *)site - 1, "%F %L", buf, len);
    else
        snprintf(buf, len, "%p", site);
}

long fault_each(int (*run)(void *ud), void *ud, const char *what)
{
    for (long n = 0;; n++) {
        fault_arm(n);
        int rc = run(ud);
        int hit = fault_disarm();
        if (!hit) {
            if (rc != 0) {
                fprintf(stderr, "%s: failed (%d) with no allocation failing (%ld made)\n", what, rc,
                        fault_count());
                abort();
            }
            fprintf(stderr, "%s: each of %ld allocations failed in turn, every one reported\n",
                    what, n);
            return n;
        }
        if (rc >= 0) {
            char site[512];
            site_name(fault_last_site(), site, sizeof(site));
            fprintf(stderr, "%s: allocation #%ld failed (%s) and the call returned %d\n", what, n,
                    site, rc);
            abort();
        }
    }
}
