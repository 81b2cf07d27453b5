/*
 * atl.h: the base header shared by every layer of atlasd.
 *
 * Error convention (STYLE R3): a fallible function returns 0 on success, -errno for system
 * failures, or one of the project codes below. Project codes live in a reserved range (like
 * LMDB's -30800..-30780) so they never collide with -errno. store/ translates every LMDB code
 * into one of these at its boundary, so no layer above it ever sees an MDB_* value.
 */
#ifndef ATL_H
#define ATL_H

#include <stddef.h>

#define ATL_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

enum atl_error {
    ATL_ECORRUPT = -20001,  /* on-disk state fails a consistency check */
    ATL_EBADEVENT = -20002, /* an input event failed validation */
    ATL_ECONFIG = -20003,   /* invalid configuration or arguments */
    ATL_EVERSION = -20004,  /* store format version is not ours */
    ATL_EMAPFULL = -20005,  /* LMDB map is full and could not grow */
    ATL_ENOTFOUND = -20006, /* a looked-up key does not exist */
    ATL_ELOCKED = -20007,   /* the store is held by another process */
    ATL_ECANCELED = -20008, /* a progress callback asked to stop */
    ATL_ESTORE = -20009,    /* any other storage-engine failure */
    ATL_EDIFF = -20010,     /* verification found a difference */
    ATL_ENOTSTORE = -20011, /* an LMDB file, but another program's (or without our version) */
};

/**
 * Human-readable text for any code returned by an atlasd function: project codes, and -errno.
 * @return a static string; never NULL.
 */
const char *atl_strerror(int code);

/**
 * Make room for @p need elements of @p elem_size bytes in the heap array *p of capacity *cap,
 * doubling (from @p initial) as needed. On failure *p and *cap are unchanged.
 * @return 0 or -ENOMEM.
 */
int atl_array_grow(void **p, size_t *cap, size_t need, size_t elem_size, size_t initial);

/**
 * The number in s[0 .. len) (no NUL needed) as a double, exactly as strtod() reads it, which
 * must take the whole field. Plain decimals (digits, an optional fraction) are converted without
 * strtod: a tenth of its cost on the millions of values of an S.tsv.
 * @return 0, or -EINVAL (not a number, or something after it).
 */
int atl_parse_double(const char *s, size_t len, double *out);

/** qsort comparator for uint64_t values, ascending. */
int atl_cmp_u64(const void *a, const void *b);

/**
 * Progress callback for long algo/ and store/ work (STYLE R5).
 * @param ud    caller's pointer, passed through unchanged.
 * @param stage a static stage name such as "knn" or "mde".
 * @param frac  fraction done in [0, 1].
 * @return 0 to continue, non-zero to cancel (the caller then returns ATL_ECANCELED).
 */
typedef int (*atl_progress_cb)(void *ud, const char *stage, double frac);

#endif
