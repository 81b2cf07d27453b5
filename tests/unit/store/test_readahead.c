/*
 * Readahead of the store's walks (store__readahead, store/internal.h): after the data file's
 * pages are dropped from the page cache, a verifying rebuild (the S check of a forced rebuild)
 * and a read of every retained row (a full refresh) take far fewer major page faults than the
 * file has pages. Before the readahead, the store (opened with MDB_NORDAHEAD) took one fault a
 * 4 KiB page: at full scale 2.1M faults and 170-210 s for the S check instead of 17 s.
 *
 * store_prefetch (store/prefetch.c) reads the dropped file back in file order, when the missing
 * part fits in the memory available: afterwards the file is resident, the same walk takes no
 * major fault, and a second prefetch reads nothing; with too little memory available it reads
 * nothing and says it skipped; a progress callback can cancel it.
 *
 * The pages are dropped with posix_fadvise(DONTNEED), which needs no privilege; where that
 * cannot drop them (tmpfs, whose pages never leave memory), the test says so and passes without
 * measuring.
 *
 * The prefetch's system calls fail on demand (the executable is linked with --wrap=mincore,
 * --wrap=mmap and --wrap=pread: the store library's calls come here first): a failed read or a
 * failed view of the file is reported, not returned, and a failed mincore() reads the piece
 * whole (it read what the last piece's residency said, garbage for this one: review, session 20).
 * store__cgroup_limit() is checked on a made-up cgroup tree.
 */
#define _DEFAULT_SOURCE /* mincore */
#include <errno.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "algo/rng.h"
#include "store/internal.h"
#include "store/store.h"
#include "tests/check.h"

/* the wrapped calls: mincore() passes its first mincore_ok calls while mincore_fail is set, then
 * fails (EAGAIN) leaving vec saying "resident" (what it held is undefined); mmap() and pread()
 * fail (ENODEV, EIO) while their flag is set */
static int mincore_fail, mmap_fail, pread_fail;
static size_t mincore_ok;

int __real_mincore(void *addr, size_t len, unsigned char *vec);
int __wrap_mincore(void *addr, size_t len, unsigned char *vec);
void *__real_mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off);
void *__wrap_mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off);
ssize_t __real_pread(int fd, void *buf, size_t n, off_t off);
ssize_t __wrap_pread(int fd, void *buf, size_t n, off_t off);

int __wrap_mincore(void *addr, size_t len, unsigned char *vec)
{
    if (!mincore_fail || mincore_ok > 0) {
        mincore_ok -= mincore_ok > 0;
        return __real_mincore(addr, len, vec);
    }
    long page = sysconf(_SC_PAGESIZE);
    memset(vec, 1, (len + (size_t)page - 1) / (size_t)page);
    errno = EAGAIN;
    return -1;
}

void *__wrap_mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off)
{
    if (mmap_fail) {
        errno = ENODEV;
        return MAP_FAILED;
    }
    return __real_mmap(addr, len, prot, flags, fd, off);
}

ssize_t __wrap_pread(int fd, void *buf, size_t n, off_t off)
{
    if (pread_fail) {
        errno = EIO;
        return -1;
    }
    return __real_pread(fd, buf, n, off);
}

enum { N_USERS = 1500, N_MAPS = 1200, PLAYS = 50 };

/* no_sync to write (the pages are synced before they are dropped), read-only to measure */
static store_t *open_store(const char *dir, int read_only)
{
    store_opts_t o;
    store_opts_default(&o);
    o.no_sync = !read_only, o.read_only = read_only;
    store_t *s;
    E(store_open(dir, &o, &s));
    return s;
}

static void bulk_load(const char *dir)
{
    store_t *s = open_store(dir, 0);
    store_bulk_t *b;
    E(store_bulk_new(&b));
    rng_t r;
    rng_init(&r, 7);
    for (uint32_t u = 1; u <= N_USERS; u++)
        for (int q = 0; q < PLAYS; q++) {
            store_event_t e;
            memset(&e, 0, sizeof(e));
            e.kind = STORE_EVENT_HISCORE;
            e.u.hiscore.user = u;
            e.u.hiscore.beatmap_id = 1 + (uint32_t)rng_below(&r, N_MAPS);
            e.u.hiscore.pp = (float)(100 + rng_below(&r, 500));
            e.u.hiscore.update_time = 1600000000 + q;
            E(store_bulk_add(b, &e));
        }
    store_bulk_opts_t bo;
    store_bulk_opts_default(&bo);
    bo.block_bytes = 2u << 20; /* several S blocks, as at full scale: several streams */
    E(store_bulk_commit(s, b, &bo, NULL));
    store_bulk_free(b);
    store_close(s);
}

/* The data file's pages in the page cache (after dropping them when @p drop), and its size in
 * pages in *pages. */
static size_t resident_pages(const char *dir, size_t *pages, int drop)
{
    char path[4200];
    snprintf(path, sizeof(path), "%s/data.mdb", dir);
    int fd = open(path, O_RDONLY);
    CHECK(fd >= 0);
    struct stat st;
    CHECK(fstat(fd, &st) == 0);
    long psz = sysconf(_SC_PAGESIZE);
    *pages = (size_t)(st.st_size + psz - 1) / (size_t)psz;
    if (drop) {
        CHECK(fdatasync(fd) == 0); /* written without sync: dirty pages are not dropped */
        CHECK(posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED) == 0);
    }
    void *m = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_SHARED, fd, 0);
    CHECK(m != MAP_FAILED);
    unsigned char *vec = malloc(*pages);
    CHECK(vec && mincore(m, (size_t)st.st_size, vec) == 0);
    size_t resident = 0;
    for (size_t q = 0; q < *pages; q++)
        resident += vec[q] & 1;
    free(vec);
    munmap(m, (size_t)st.st_size);
    close(fd);
    return resident;
}

/* Drop the data file's pages from the page cache. @return its pages still resident after that,
 * and its size in pages in *pages. */
static size_t drop_pages(const char *dir, size_t *pages)
{
    return resident_pages(dir, pages, 1);
}

static long major_faults(void)
{
    struct rusage ru;
    CHECK(getrusage(RUSAGE_SELF, &ru) == 0);
    return ru.ru_majflt;
}

/* The S check (verify only) on @p s: its result in *rr, @return the major faults it took */
static long verify_faults(store_t *s, store_rebuild_result_t *rr)
{
    store_rebuild_opts_t ro;
    store_rebuild_opts_default(&ro);
    ro.verify_only = 1;
    long f0 = major_faults();
    E(store_rebuild(s, &ro, rr));
    return major_faults() - f0;
}

static int count_row(void *ud, uint32_t row, const uint32_t *cols, const double *s, size_t n)
{
    (void)row, (void)cols, (void)s;
    *(size_t *)ud += n;
    return 0;
}

static int cancel_at_half(void *ud, const char *stage, double frac)
{
    CHECK(strcmp(stage, "prefetch") == 0);
    *(double *)ud = frac;
    return frac >= 0.5;
}

static void check_prefetch(const char *dir)
{
    size_t pages;
    long psz = sysconf(_SC_PAGESIZE);

    /* too little memory available: nothing read */
    drop_pages(dir, &pages);
    store_t *s = open_store(dir, 1);
    store_prefetch_opts_t po;
    store_prefetch_opts_default(&po);
    po.mem_available = 1 << 20;
    store_prefetch_result_t pr;
    E(store_prefetch(s, &po, &pr));
    CHECK_EQ(pr.skipped, 1);
    CHECK_EQ(pr.read_bytes, 0);
    CHECK(pr.missing_bytes * 2 > pr.file_bytes);
    store_close(s);
    CHECK(resident_pages(dir, &pages, 0) * 4 < pages); /* still out of the cache */

    /* a failed read is reported, not returned; so is a failed view of the file for mincore() */
    s = open_store(dir, 1);
    po.mem_available = UINT64_MAX; /* the machine's own memory is not this test's subject */
    pread_fail = 1;
    E(store_prefetch(s, &po, &pr));
    pread_fail = 0;
    CHECK_EQ(pr.read_error, -EIO);
    CHECK_EQ(pr.read_bytes, 0);
    CHECK(pr.missing_bytes * 2 > pr.file_bytes);
    mmap_fail = 1;
    E(store_prefetch(s, &po, &pr));
    mmap_fail = 0;
    CHECK_EQ(pr.read_error, -ENODEV);
    CHECK_EQ(pr.read_bytes, 0);

    /* mincore() fails for every piece of the reading pass (the first pass, one call a piece,
     * found them missing): each such piece is read whole */
    size_t n_pieces = (size_t)((pr.file_bytes + (8u << 20) - 1) / (8u << 20));
    mincore_fail = 1, mincore_ok = n_pieces;
    E(store_prefetch(s, &po, &pr));
    mincore_fail = 0;
    printf("mincore failing: %.1f of %.1f MB missing, %.1f MB read\n",
           (double)pr.missing_bytes / 1e6, (double)pr.file_bytes / 1e6,
           (double)pr.read_bytes / 1e6);
    CHECK_EQ(pr.read_error, 0);
    CHECK(pr.missing_bytes * 2 > pr.file_bytes);
    CHECK(pr.read_bytes >= pr.missing_bytes);
    store_close(s);
    drop_pages(dir, &pages);

    /* cancelled half-way */
    s = open_store(dir, 1);
    double frac = 0;
    po.progress = cancel_at_half, po.progress_ud = &frac;
    CHECK_EQ(store_prefetch(s, &po, &pr), ATL_ECANCELED);
    CHECK(frac >= 0.5 && frac < 1);
    CHECK(pr.read_bytes > 0 && pr.read_bytes < pr.file_bytes);
    store_close(s);

    /* the whole file, then a walk without a major fault, then nothing more to read */
    size_t left = drop_pages(dir, &pages);
    s = open_store(dir, 1);
    po.progress = NULL;
    E(store_prefetch(s, &po, &pr));
    printf("prefetch: %zu of %zu pages missing, %.1f MB read\n", pages - left, pages,
           (double)pr.read_bytes / 1e6);
    CHECK_EQ(pr.skipped, 0);
    CHECK_EQ(pr.read_error, 0);
    CHECK_EQ(pr.file_bytes, (uint64_t)pages * (uint64_t)psz);
    CHECK(pr.missing_bytes >= (uint64_t)(pages - left) * (uint64_t)psz * 9 / 10);
    CHECK(pr.read_bytes > 0); /* the kernel may read some pieces ahead of the reads */
    CHECK(resident_pages(dir, &pages, 0) * 100 >= pages * 99);
    store_rebuild_result_t rr;
    long f_verify = verify_faults(s, &rr);
    printf("verify after the prefetch: %ld major faults\n", f_verify);
    CHECK(f_verify * 100 < (long)pages);
    E(store_prefetch(s, NULL, &pr));
    CHECK_EQ(pr.missing_bytes, 0);
    CHECK_EQ(pr.read_bytes, 0);
    store_close(s);
}

/* write @p text to @p dir/@p name */
static void put(const char *dir, const char *name, const char *text)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    CHECK(f != NULL);
    fputs(text, f);
    CHECK(fclose(f) == 0);
}

/* A made-up cgroup v2 tree: ROOT/sys/atl with limits, the process in ROOT/sys/atl */
static void check_cgroup_limit(void)
{
    char *root = check_tmpdir("cgroup"), self[512], sys[512], atl[512];
    snprintf(self, sizeof(self), "%s/self", root);
    snprintf(sys, sizeof(sys), "%s/sys", root);
    snprintf(atl, sizeof(atl), "%s/sys/atl", root);
    CHECK(mkdir(sys, 0700) == 0 && mkdir(atl, 0700) == 0);
    uint64_t room = 0;

    /* no cgroup v2 line (a v1 hierarchy), then no limit anywhere: unlimited */
    put(root, "self", "4:memory:/sys/atl\n");
    CHECK_EQ(store__cgroup_limit(root, self, &room), UINT64_MAX);
    CHECK_EQ(room, UINT64_MAX);
    put(root, "self", "4:memory:/other\n0::/sys/atl\n");
    put(atl, "memory.max", "max\n");
    CHECK_EQ(store__cgroup_limit(root, self, &room), UINT64_MAX);
    CHECK_EQ(room, UINT64_MAX);

    /* systemd's MemoryMax=1G on the service: 1 GiB less what it uses */
    put(atl, "memory.max", "1073741824\n");
    put(atl, "memory.current", "268435456\n");
    CHECK_EQ(store__cgroup_limit(root, self, &room), (uint64_t)1 << 30);
    CHECK_EQ(room, (uint64_t)768 << 20);

    /* MemoryHigh= lower still; a parent's limit with less room left; the namespace's root */
    put(atl, "memory.high", "805306368\n"); /* 768 MiB: room 512 MiB */
    CHECK_EQ(store__cgroup_limit(root, self, &room), (uint64_t)768 << 20);
    CHECK_EQ(room, (uint64_t)512 << 20);
    put(sys, "memory.max", "2147483648\n");
    put(sys, "memory.current", "1879048192\n"); /* 256 MiB left */
    CHECK_EQ(store__cgroup_limit(root, self, &room), (uint64_t)768 << 20);
    CHECK_EQ(room, (uint64_t)256 << 20);
    put(root, "memory.max", "536870912\n"); /* a container's limit, 512 MiB, current unknown */
    CHECK_EQ(store__cgroup_limit(root, self, &room), (uint64_t)512 << 20);
    CHECK_EQ(room, (uint64_t)256 << 20);

    /* over its limit (memory.current can pass memory.high): no room; a trailing slash */
    put(atl, "memory.current", "900000000\n");
    put(root, "self", "0::/sys/atl/\n");
    CHECK_EQ(store__cgroup_limit(root, self, &room), (uint64_t)512 << 20);
    CHECK_EQ(room, 0);

    /* the process at the root of its namespace (a container) */
    put(root, "self", "0::/\n");
    CHECK_EQ(store__cgroup_limit(root, self, NULL), (uint64_t)512 << 20);

    /* cgroup v1's memory controller (this VM's kind: a hybrid hierarchy, v2 at the root): its
     * "no limit" (2^63 less a page) counts as a limit no machine reaches; a real one below */
    char mem[512], job[512], v1[512];
    snprintf(mem, sizeof(mem), "%s/memory", root);
    snprintf(job, sizeof(job), "%s/memory/jobs", root);
    snprintf(v1, sizeof(v1), "%s/memory/jobs/j1", root);
    CHECK(mkdir(mem, 0700) == 0 && mkdir(job, 0700) == 0 && mkdir(v1, 0700) == 0);
    put(root, "memory.max", "max\n");
    put(root, "self", "9:name=systemd:/\n5:cpu,memory:/jobs/j1\n0::/\n");
    put(v1, "memory.limit_in_bytes", "9223372036854771712\n");
    put(v1, "memory.usage_in_bytes", "12146278400\n");
    CHECK_EQ(store__cgroup_limit(root, self, &room), (uint64_t)9223372036854771712u);
    CHECK(room > ((uint64_t)1 << 62));
    put(job, "memory.limit_in_bytes", "4294967296\n");
    put(job, "memory.usage_in_bytes", "3221225472\n"); /* 1 GiB left */
    CHECK_EQ(store__cgroup_limit(root, self, &room), (uint64_t)4 << 30);
    CHECK_EQ(room, (uint64_t)1 << 30);
    put(root, "self", "5:cpuacct:/jobs/j1\n0::/\n"); /* no memory controller: not looked at */
    CHECK_EQ(store__cgroup_limit(root, self, &room), UINT64_MAX);
    CHECK(store__mem_available() > 0); /* this machine's, whatever its limits */
    CHECK(store__mem_total() > 0);
    check_rmdir(root);
}

int main(void)
{
    setvbuf(stdout, NULL, _IONBF, 0);
    check_cgroup_limit();
    char *dir = check_tmpdir("readahead");
    bulk_load(dir);
    size_t pages;
    if (drop_pages(dir, &pages) * 4 > pages) {
        printf("test_readahead: the page cache keeps %s (tmpfs?): not measured\n", dir);
        check_rmdir(dir);
        return 0;
    }
    store_t *s = open_store(dir, 1);
    store_rebuild_result_t rr;
    long f_verify = verify_faults(s, &rr);
    CHECK_EQ(rr.s_diffs, 0);
    CHECK(rr.s_entries > 1000000); /* 12 MB of S records alone */
    printf("verify: %zu pages, %ld major faults\n", pages, f_verify);
    CHECK(f_verify * 8 < (long)pages);

    store_close(s);
    drop_pages(dir, &pages);
    s = open_store(dir, 1);
    size_t entries = 0;
    uint64_t *keys = NULL;
    uint32_t n = 0;
    long f0 = major_faults();
    E(store_retained_rows(s, 0, count_row, &entries, &keys, &n));
    long f_rows = major_faults() - f0;
    printf("retained rows: %u rows, %zu entries, %ld major faults\n", n, entries, f_rows);
    CHECK(n > N_MAPS / 2 && entries > 500000);
    CHECK(f_rows * 8 < (long)pages);
    free(keys);
    store_close(s);
    check_prefetch(dir);
    check_rmdir(dir);
    printf("test_readahead: ok\n");
    return 0;
}
