/*
 * The memory a walk of the store may count on: the machine's (/proc/meminfo, sysconf) and the
 * limits of the cgroup (v2) the process runs in.
 *
 * A daemon under systemd's MemoryMax= or MemoryHigh=, or in a container with a memory limit,
 * sees the host's MemAvailable and physical memory. Read ahead by that measure, a 15 GB store
 * under a 4 GB limit is read whole and evicted again as it is read: the reading is lost and
 * pushes out pages still in use. So the room under every limit on the way from the process's
 * cgroup to the root counts too (review of the read-ahead, session 20). Only cgroup v2 (the
 * unified hierarchy, Debian's default since 11): a v1 hierarchy is not looked at.
 */
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "internal.h"

/* The number in file @p dir/@p name into *out ("max": UINT64_MAX). @return 1, or 0 when the
 * file cannot be read (no such limit here) */
static int read_limit(const char *dir, const char *name, uint64_t *out)
{
    char path[PATH_MAX + 32], word[32];
    if (snprintf(path, sizeof(path), "%s/%s", dir, name) >= (int)sizeof(path))
        return 0;
    FILE *f = fopen(path, "r");
    if (!f)
        return 0;
    int ok = fscanf(f, "%31s", word) == 1;
    fclose(f);
    if (!ok)
        return 0;
    if (strcmp(word, "max") == 0) {
        *out = UINT64_MAX;
        return 1;
    }
    return sscanf(word, "%" SCNu64, out) == 1;
}

/* The cgroup v2 path of the process ("0::PATH" in @p self_file) into @p path */
static int self_cgroup(const char *self_file, char *path, size_t cap)
{
    FILE *f = fopen(self_file, "r");
    if (!f)
        return 0;
    char line[PATH_MAX + 16];
    int found = 0;
    while (!found && fgets(line, sizeof(line), f)) {
        if (strncmp(line, "0::", 3) != 0)
            continue;
        line[strcspn(line, "\n")] = '\0';
        found = snprintf(path, cap, "%s", line + 3) < (int)cap;
    }
    fclose(f);
    return found;
}

uint64_t store__cgroup_limit(const char *root, const char *self_file, uint64_t *room)
{
    char rel[PATH_MAX], dir[PATH_MAX + PATH_MAX];
    uint64_t limit = UINT64_MAX, left = UINT64_MAX;
    if (self_cgroup(self_file, rel, sizeof(rel))) {
        for (;;) { /* the process's cgroup, then each parent up to the (namespace's) root */
            size_t len = strlen(rel);
            while (len > 1 && rel[len - 1] == '/')
                rel[--len] = '\0';
            snprintf(dir, sizeof(dir), "%s%s", root, strcmp(rel, "/") == 0 ? "" : rel);
            uint64_t max = UINT64_MAX, high = UINT64_MAX, cur = 0;
            read_limit(dir, "memory.max", &max);
            read_limit(dir, "memory.high", &high);
            uint64_t lim = max < high ? max : high;
            if (lim != UINT64_MAX) { /* current unknown: 0 */
                read_limit(dir, "memory.current", &cur);
                limit = lim < limit ? lim : limit;
                uint64_t r = lim > cur ? lim - cur : 0;
                left = r < left ? r : left;
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
