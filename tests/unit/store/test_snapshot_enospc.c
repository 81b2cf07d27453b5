/*
 * test_snapshot_enospc.c: publishing a snapshot on a full filesystem (a 64 KiB tmpfs, so the
 * ENOSPC is the kernel's, not a simulation). Whichever write runs out of space (the corpus, its
 * manifest or `latest`), the publish fails with -ENOSPC and leaves the directory as it was:
 * `latest` names the previous snapshot, which is complete, and nothing of the new one stays (no
 * `.tmp-*`, no corpus or manifest that `latest` does not name, which retention would count as a
 * snapshot and which would keep the disk full). Once space is back the next publish succeeds.
 * Mounting needs CAP_SYS_ADMIN: without it the test is skipped (exit 77).
 */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/statvfs.h>
#include <sys/wait.h>
#include <unistd.h>

#include "store/store.h"
#include "tests/check.h"

static char *mnt;

static uint64_t free_bytes(void)
{
    struct statvfs st;
    CHECK_EQ(statvfs(mnt, &st), 0);
    return (uint64_t)st.f_bavail * st.f_frsize;
}

/* The names in the directory other than `latest` and the snapshot @p keep's two files. */
static int n_strays(const char *dir, const char *keep)
{
    char json[80];
    snprintf(json, sizeof(json), "%s.json", keep);
    DIR *d = opendir(dir);
    CHECK(d != NULL);
    struct dirent *e;
    int n = 0;
    while ((e = readdir(d))) {
        const char *x = e->d_name;
        if (strcmp(x, ".") && strcmp(x, "..") && strcmp(x, "latest") && strcmp(x, keep) &&
            strcmp(x, json)) {
            fprintf(stderr, "left behind: %s\n", x);
            n++;
        }
    }
    closedir(d);
    return n;
}

/* Publish a corpus of the filesystem's free bytes plus @p extra; expect -ENOSPC and the
 * directory unchanged. */
static void publish_full(const char *dir, const char *prev, int64_t extra, const char *what)
{
    uint64_t len = (uint64_t)((int64_t)free_bytes() + extra);
    uint8_t *corpus = calloc(1, len);
    CHECK(corpus != NULL);
    store_snapshot_info_t info;
    char err[512], id[64];
    int rc = store_snapshot_publish(dir, corpus, len, 1, "{\"x\":1}", 10, &info, err, sizeof(err));
    free(corpus);
    fprintf(stderr, "%s: rc=%d %s\n", what, rc, rc ? err : "");
    CHECK_EQ(rc, -ENOSPC);
    CHECK(strstr(err, "No space left on device") != NULL);
    E(store_snapshot_latest(dir, id, sizeof(id)));
    CHECK_STREQ(id, prev);
    CHECK_EQ(n_strays(dir, prev), 0);
    char **ids;
    size_t n;
    E(store_snapshot_ids(dir, &ids, &n));
    CHECK_EQ(n, 1); /* before the fix: 2, the new corpus without its manifest or `latest` */
    CHECK_STREQ(ids[0], prev);
    free(ids[0]), free(ids);
}

/* The cases, in a child process: a failed CHECK aborts it, and the parent still unmounts. */
static int run(void)
{
    char dir[4200], repaired[64];
    snprintf(dir, sizeof(dir), "%s/snapshots", mnt);
    store_snapshot_info_t first, next;
    char err[512];
    E(store_snapshot_publish(dir, (const uint8_t *)"first", 5, 1, NULL, 10, &first, err,
                             sizeof(err)));
    /* the corpus itself does not fit: its temporary file goes */
    publish_full(dir, first.id, 1, "the corpus does not fit");
    /* the corpus fits exactly, its manifest does not */
    publish_full(dir, first.id, 0, "the manifest does not fit");
    /* corpus and manifest fit (one page is plenty for the manifest), `latest` does not */
    publish_full(dir, first.id, -4096, "latest does not fit");
    E(store_snapshot_repair(dir, repaired, sizeof(repaired)));
    CHECK_STREQ(repaired, ""); /* what a failed publish left needs no repair */
    /* space is back */
    CHECK_EQ(mount("tmpfs", mnt, "tmpfs", MS_REMOUNT, "size=1m"), 0);
    E(store_snapshot_publish(dir, (const uint8_t *)"again", 5, 1, NULL, 10, &next, err,
                             sizeof(err)));
    char **ids, id[64];
    size_t n;
    E(store_snapshot_ids(dir, &ids, &n));
    CHECK_EQ(n, 2);
    CHECK_STREQ(ids[0], first.id);
    CHECK_STREQ(ids[1], next.id);
    free(ids[0]), free(ids[1]), free(ids);
    E(store_snapshot_latest(dir, id, sizeof(id)));
    CHECK_STREQ(id, next.id);
    return 0;
}

int main(void)
{
    mnt = check_tmpdir("snap-enospc");
    if (mount("tmpfs", mnt, "tmpfs", 0, "size=64k") != 0) {
        printf("skipped: cannot mount a tmpfs to fill (%s); needs CAP_SYS_ADMIN\n",
               strerror(errno));
        check_rmdir(mnt);
        return 77;
    }
    fflush(stdout);
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0)
        _exit(run());
    int status = 0;
    CHECK_EQ(waitpid(pid, &status, 0), pid);
    CHECK_EQ(umount2(mnt, MNT_DETACH), 0);
    check_rmdir(mnt);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    printf("ok\n");
    return 0;
}
