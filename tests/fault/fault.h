/*
 * fault.h: allocation-failure injection for tests (issue 10 items 2, 12, 15).
 *
 * A test executable registered with atl_fault_inject() (tests/tests.cmake) is linked with
 * `-Wl,--wrap=malloc,--wrap=calloc,...`: every call to the allocator from code linked into it
 * (the atl_* static libraries and the test) goes through fault.c first, which can fail the n-th
 * one. Calls made inside shared libraries (libc's own, LMDB, librdkafka, h2o) are not wrapped,
 * with one exception: cJSON allocates through the hooks fault_cjson_hooks() installs (or the
 * store's decoder hooks, which call the wrapped malloc). The wrap is resolved at link time, so
 * it works under ASan/UBSan and TSan (their interceptors sit behind __real_malloc) and needs no
 * LD_PRELOAD; nothing of it is in the atlasd binary.
 *
 * Typical use, every allocation of a call path failing in turn:
 *
 *     for (long n = 0;; n++) {
 *         fault_arm(n);
 *         int rc = function_under_test(...);
 *         if (!fault_disarm()) { CHECK_EQ(rc, 0); break; }   // ran out of allocations to fail
 *         CHECK(rc < 0);                                     // the failure reached the caller
 *     }
 *
 * Counting is process-wide and thread-safe (atomics): allocations of worker threads count too,
 * in whatever order they happen.
 */
#ifndef ATL_TESTS_FAULT_H
#define ATL_TESTS_FAULT_H

#include <stddef.h>

/** Fail the @p nth (0-based) wrapped allocation from now on, once; the others succeed. */
void fault_arm(long nth);

/**
 * Fail every wrapped allocation made on the calling thread while @p on is non-zero (a window
 * of "no memory at all" for one thread; other threads are untouched).
 */
void fault_thread_fail_all(int on);

/** Stop counting. @return 1 if the armed allocation failed (it was reached), else 0. */
int fault_disarm(void);

/** Wrapped allocations counted since the last fault_arm(). */
long fault_count(void);

/** The return address of the allocation that failed last (to find it: addr2line -e BIN). */
void *fault_last_site(void);

/**
 * The loop above as a function: run(ud) with its 0th, 1st, 2nd ... allocation failing, until a
 * run reaches no armed allocation (it must then return 0). Every run whose allocation failed
 * must return a negative code: a 0 (the failure swallowed) prints @p what, the allocation's
 * number and its site, and aborts. run(ud) cleans up after itself.
 * @return the number of allocations failed in turn.
 */
long fault_each(int (*run)(void *ud), void *ud, const char *what);

/** Route cJSON's allocations through the wrapped malloc (cJSON_InitHooks), so they count. */
void fault_cjson_hooks(void);

#endif
