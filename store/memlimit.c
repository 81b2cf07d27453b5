/*
 * The memory a walk of the store may count on: the machine's (/proc/meminfo, sysconf) and the
 * limits of the cgroups (v2, v1's memory controller) the process runs in.
 *
 * A daemon under systemd's MemoryMax= or MemoryHigh=, or in a container with a memory limit,
 * sees the host's MemAvailable and physical memory. Read ahead by that measure, a 15 GB store
 * under a 4 GB limit is read whole and evicted again as it is read: the reading is lost and
 * pushes out pages still in use. So the room under every limit on the way from the process's
 * cgroup to the root counts too (review of the read-ahead, session 20): cgroup v2 (the unified
 * hierarchy, Debian's default since 11: memory.max, memory.high) and v1's memory controller
 * (memory.limit_in_bytes; hosts and containers still run it).
 */
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "internal.h"

/* The number in file @p dir/@p name into *out ("max": UINT64_MAX); *out unchanged when the file
 * cannot be read (no such limit here) */
static void read_limit(const char *dir, const char *name, uint64_t *out)
{
    char path[PATH_MAX + 32], word[32];
    if (snprintf(path, sizeof(path), "%s/%s", dir, name) >= (int)sizeof(path))
        return;
    FILE *f = fopen(path, "r");
    if (!f)
        return;
    int ok = fscanf(f, "%31s", word) == 1;
    fclose(f);
    if (ok && strcmp(word, "max") == 0)
        *out = UINT64_MAX;
    else if (ok)
        sscanf(word, "%" SCNu64, out);
}

/* Whether the controller list @p ctl ("cpu,memory") names "memory" */
static int lists_memory(const char *ctl, size_t len)
{
    for (const char *p = ctl; p < ctl + len;) {
        size_t n = strcspn(p, ",:");
        if (n == 6 && strncmp(p, "memory", 6) == 0)
            return 1;
        p += n + 1;
    }
    return 0;
}

/* The process's cgroup paths from @p self_file (a /proc/self/cgroup): v2's ("0::PATH") into
 * @p v2, the v1 memory controller's ("N:...memory...:PATH") into @p v1; "" where there is none */
static void self_cgroups(const char *self_file, char *v2, char *v1, size_t cap)
{
    v2[0] = v1[0] = '\0';
    FILE *f = fopen(self_file, "r");
    if (!f)
        return;
    char line[PATH_MAX + 64];
    while (fgets(line, sizeof(line), f)) {
        line[strcspn(line, "\n")] = '\0';
        char *ctl = strchr(line, ':'), *path = ctl ? strchr(ctl + 1, ':') : NULL;
        if (!path || path[1] != '/' || strlen(path + 1) >= cap)
            continue;
        if (strncmp(line, "0::", 3) == 0)
            snprintf(v2, cap, "%s", path + 1);
        else if (lists_memory(ctl + 1, (size_t)(path - ctl - 1)))
            snprintf(v1, cap, "%s", path + 1);
    }
    fclose(f);
}

/* The files that hold a cgroup's limits and use: v2 and v1 */
typedef struct limit_files {
    const char *limit[2], *current;
} limit_files_t;

static const limit_files_t V2 = {{"memory.max", "memory.high"}, "memory.current"};
static const limit_files_t V1 = {{"memory.limit_in_bytes", NULL}, "memory.usage_in_bytes"};

/* The cgroup @p rel under @p root and each parent up to the (namespace's) root: the smallest
 * limit into *limit, the smallest limit - use into *left (each only lowered) */
static void walk_up(const char *root, char *rel, const limit_files_t *fl, uint64_t *limit,
                    uint64_t *left)
{
    char dir[PATH_MAX + PATH_MAX];
    for (;;) {
        size_t len = strlen(rel);
        while (len > 1 && rel[len - 1] == '/')
            rel[--len] = '\0';
        snprintf(dir, sizeof(dir), "%s%s", root, strcmp(rel, "/") == 0 ? "" : rel);
        uint64_t lim = UINT64_MAX, cur = 0;
        for (int k = 0; k < 2 && fl->limit[k]; k++) {
            uint64_t v = UINT64_MAX;
            read_limit(dir, fl->limit[k], &v);
            lim = v < lim ? v : lim;
        }
        /* v1 says "no limit" with a number near 2^63: it is never below the machine's memory,
         * so the callers' minimum with it drops it */
        if (lim != UINT64_MAX) { /* use unknown: 0 */
            read_limit(dir, fl->current, &cur);
            *limit = lim < *limit ? lim : *limit;
            uint64_t r = lim > cur ? lim - cur : 0;
            *left = r < *left ? r : *left;
        }
        char *slash = strrchr(rel, '/');
        if (!slash || strcmp(rel, "/") == 0)
            break;
        if (slash == rel)
            rel[1] = '\0'; /* "/a" -> "/" */
        else
            *slash = '\0';
    }
}

uint64_t store__cgroup_limit(const char *root, const char *self_file, uint64_t *room)
{
    char v2[PATH_MAX], v1[PATH_MAX], root_v1[PATH_MAX + 16];
    uint64_t limit = UINT64_MAX, left = UINT64_MAX;
    self_cgroups(self_file, v2, v1, sizeof(v2));
    if (v2[0])
        walk_up(root, v2, &V2, &limit, &left);
    if (v1[0] && snprintf(root_v1, sizeof(root_v1), "%s/memory", root) < (int)sizeof(root_v1))
        walk_up(root_v1, v1, &V1, &limit, &left);
    if (room)
        *room = left;
    return limit;
}

uint64_t store__mem_available(void)
{
    FILE *f = fopen("/proc/meminfo", "r");
    if (!f)
        return 0;
    char line[128];
    uint64_t kb = 0;
    while (fgets(line, sizeof(line), f))
        if (sscanf(line, "MemAvailable: %" SCNu64 " kB", &kb) == 1)
            break;
    fclose(f);
    uint64_t room;
    store__cgroup_limit("/sys/fs/cgroup", "/proc/self/cgroup", &room);
    return kb * 1024 < room ? kb * 1024 : room;
}

uint64_t store__mem_total(void)
{
    double ram = (double)sysconf(_SC_PHYS_PAGES) * (double)sysconf(_SC_PAGESIZE);
    uint64_t total = ram > 0 ? (uint64_t)ram : 0;
    uint64_t limit = store__cgroup_limit("/sys/fs/cgroup", "/proc/self/cgroup", NULL);
    return limit < total ? limit : total;
}
