/*
 * Reading the data file in file order before a walk of the whole store (store_prefetch).
 *
 * A forced rebuild checks S against a recomputation in block passes (28 of them at the real
 * scale), each walking the profiles and a share of S, and a full refresh reads every retained
 * row. The walks visit pages in key order. After a bulk load the pages lie nearly in that order
 * and store__readahead() keeps the disk streaming; in a store grown by batches, or when the walk
 * jumps between S's blocks, they lie at random, and every page whose memory was reclaimed is one
 * 4 KiB read. Measured at the real scale (osu!track's 92.3M rows, a 15.7 GB file) with the file
 * dropped from the page cache: the S check took 305 s instead of ~31 s warm, while the same file
 * read in order ran at ~420 MB/s (36 s). So when the part of the file not in the page cache fits
 * in the memory the kernel says is available (MemAvailable, and the room under the process's
 * cgroup limits: memlimit.c; unknown: nothing is read), it is read
 * in order first: piece by piece (8 MiB), the runs of pages mincore() finds missing (a warm store
 * costs one mincore() a piece). When it does not fit, nothing is read: the walk would push out
 * what was read before it came to it.
 */
#define _DEFAULT_SOURCE /* mincore */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <lmdb.h>

#include "internal.h"

#define PIECE ((size_t)8 << 20)
/* left to the rest of the machine (the walk's own memory comes on top of the file) */
#define MEM_RESERVE ((uint64_t)256 << 20)

/* Pages of [off, off + len) of the mapping @p map that are not in the page cache (all of them
 * when mincore() fails: then the piece is read, which is never wrong). */
static size_t pages_missing(const char *map, size_t off, size_t len, size_t page,
                            unsigned char *vec)
{
    size_t n = (len + page - 1) / page, missing = 0;
    if (mincore((void *)(map + off), len, vec) != 0) {
        memset(vec, 0, n); /* read_missing() follows vec: every page (it held the last piece's) */
        return n;
    }
    for (size_t k = 0; k < n; k++)
        missing += !(vec[k] & 1);
    return missing;
}

/* Read the runs of pages of the piece [off, off + len) that @p vec (its mincore()) marks
 * missing, into @p buf; count them in out->read_bytes. An I/O error stops the reading (the walk
 * will meet it and say so) and is kept in out->read_error. */
static void read_missing(int fd, size_t off, size_t len, size_t page, const unsigned char *vec,
                         char *buf, store_prefetch_result_t *out)
{
    size_t n = (len + page - 1) / page;
    for (size_t k = 0; k < n;) {
        if (vec[k] & 1) {
            k++;
            continue;
        }
        size_t end = k;
        while (end < n && !(vec[end] & 1))
            end++;
        size_t from = k * page, to = end * page < len ? end * page : len;
        while (from < to) {
            ssize_t r = pread(fd, buf, to - from, (off_t)(off + from));
            if (r < 0 && errno == EINTR)
                continue;
            if (r <= 0) {
                out->read_error = r < 0 ? -errno : -EIO;
                return;
            }
            from += (size_t)r;
            out->read_bytes += (uint64_t)r;
        }
        k = end;
    }
}

void store_prefetch_opts_default(store_prefetch_opts_t *o)
{
    memset(o, 0, sizeof(*o));
}

int store_prefetch(store_t *s, const store_prefetch_opts_t *o, store_prefetch_result_t *out)
{
    store_prefetch_opts_t def;
    if (!o)
        store_prefetch_opts_default(&def), o = &def;
    memset(out, 0, sizeof(*out));
    int fd;
    struct stat st;
    if (mdb_env_get_fd(s->env, &fd) != 0)
        return ATL_ESTORE;
    if (fstat(fd, &st) != 0)
        return -errno;
    size_t size = (size_t)st.st_size, page = (size_t)sysconf(_SC_PAGESIZE);
    out->file_bytes = size;
    if (size == 0)
        return 0;
    /* our own view of the file, only for mincore(): LMDB's map may be remapped meanwhile */
    char *map = mmap(NULL, size, PROT_READ, MAP_SHARED, fd, 0);
    int map_errno = errno; /* before the allocations below can change it */
    size_t n_pieces = (size + PIECE - 1) / PIECE;
    unsigned char *vec = malloc(PIECE / page), *has_missing = malloc(n_pieces);
    char *buf = malloc(PIECE);
    int rc = 0;
    if (map == MAP_FAILED) { /* no address space for the view: only the speed-up is lost */
        out->read_error = -map_errno;
        goto out;
    }
    if (!vec || !has_missing || !buf) {
        rc = -ENOMEM;
        goto out;
    }
    uint64_t missing = 0;
    for (size_t q = 0; q < n_pieces; q++) {
        size_t off = q * PIECE,
               m = pages_missing(map, off, size - off < PIECE ? size - off : PIECE, page, vec);
        has_missing[q] = m > 0;
        missing += m;
    }
    out->missing_bytes = missing * page;
    uint64_t avail = o->mem_available ? o->mem_available : store__mem_available();
    if (out->missing_bytes == 0)
        goto out;
    if (out->missing_bytes + MEM_RESERVE > avail) {
        out->skipped = 1;
        goto out;
    }
    for (size_t q = 0; q < n_pieces; q++) {
        size_t off = q * PIECE, len = size - off < PIECE ? size - off : PIECE;
        if (!has_missing[q] || pages_missing(map, off, len, page, vec) == 0)
            continue;
        read_missing(fd, off, len, page, vec, buf, out);
        if (out->read_error)
            goto out;
        if (o->progress && o->progress(o->progress_ud, "prefetch", (double)(off + len) / size)) {
            rc = ATL_ECANCELED;
            goto out;
        }
    }
out:
    if (map != MAP_FAILED)
        munmap(map, size);
    free(vec);
    free(has_missing);
    free(buf);
    return rc;
}
