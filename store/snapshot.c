/*
 * snapshot.c: publishing corpus snapshots (DESIGN §6). A snapshot is `corpus_<unix-ts>` (the
 * name the atlas CDN uses) plus `corpus_<unix-ts>.json`, its manifest, in one directory, and a
 * `latest` file naming the newest. Every file is written to a temporary name, fsynced and
 * renamed, and `latest` moves only after both are in place, so a reader never sees a partial
 * file: it opens either the old snapshot or the new one. The last `keep` snapshots are kept.
 * `latest` is a regular file, not a symlink: HTTP servers follow symlinks (HTTP_NOTES).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cJSON.h>
#include <openssl/evp.h>

#include "store/store.h"

static int write_durably(const char *dir, const char *name, const void *buf, size_t len)
{
    char tmp[4096], dst[4096];
    snprintf(tmp, sizeof(tmp), "%s/.tmp-%s", dir, name);
    snprintf(dst, sizeof(dst), "%s/%s", dir, name);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        return -errno;
    const char *p = buf;
    size_t left = len;
    while (left > 0) {
        ssize_t w = write(fd, p, left);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            int e = -errno;
            close(fd);
            unlink(tmp);
            return e;
        }
        p += w, left -= (size_t)w;
    }
    /* close even when fsync fails (EIO, ENOSPC on NFS): a descriptor leaked per failed publish
     * would run the daemon out of them on a disk that keeps failing */
    int e = fsync(fd) == 0 ? 0 : -errno;
    if (close(fd) != 0 && e == 0)
        e = -errno;
    if (e != 0) {
        unlink(tmp);
        return e;
    }
    if (rename(tmp, dst) != 0) {
        e = -errno;
        unlink(tmp);
        return e;
    }
    return 0;
}

static int sync_dir(const char *dir)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    int rc = fsync(fd) == 0 ? 0 : -errno;
    close(fd);
    return rc;
}

void store_sha256_hex(const void *buf, size_t len, char out[65])
{
    unsigned char md[32];
    unsigned int mdlen = 0;
    EVP_Digest(buf, len, md, &mdlen, EVP_sha256(), NULL);
    for (unsigned i = 0; i < 32; i++)
        snprintf(out + 2 * i, 3, "%02x", md[i]);
}

/* One '_'-separated field of a snapshot id as a number of any length: <0, 0 or >0. *a and *b
 * move to the end of their fields. */
static int cmp_field(const char **a, const char **b)
{
    size_t la = strcspn(*a, "_"), lb = strcspn(*b, "_");
    const char *x = *a, *y = *b;
    *a += la, *b += lb;
    while (la > 1 && *x == '0')
        x++, la--;
    while (lb > 1 && *y == '0')
        y++, lb--;
    if (la != lb)
        return la < lb ? -1 : 1;
    return memcmp(x, y, la);
}

/*
 * Snapshot ids in publishing order: `corpus_<seconds>[_<k>]`, each '_'-separated field compared
 * as a number (corpus_T_10 after corpus_T_9, where strcmp puts it before corpus_T_2), an id that
 * ends first before one that goes on (corpus_T before corpus_T_2). Retention deletes the start
 * of this order, so it must be the order of publishing.
 */
static int cmp_id(const void *pa, const void *pb)
{
    const char *x = *(char *const *)pa, *y = *(char *const *)pb;
    const char *a = x + 7, *b = y + 7; /* after "corpus_": store_snapshot_id_valid() */
    for (;;) {
        int c = cmp_field(&a, &b);
        if (c != 0)
            return c;
        if (!*a || !*b) {
            if (*a != *b)
                return *a ? 1 : -1;
            return strcmp(x, y); /* equal as numbers (leading zeros): any fixed order */
        }
        a++, b++;
    }
}

int store_snapshot_id_valid(const char *id, size_t len)
{
    if (len < 8 || len > 40 || memcmp(id, "corpus_", 7) != 0)
        return 0;
    for (size_t i = 7; i < len; i++)
        if (!((id[i] >= '0' && id[i] <= '9') || id[i] == '_'))
            return 0;
    return 1;
}

int store_snapshot_latest(const char *dir, char *id, size_t id_len)
{
    char path[4096], buf[64] = "";
    snprintf(path, sizeof(path), "%s/latest", dir);
    FILE *f = fopen(path, "r");
    if (!f)
        return -errno;
    int ok = fgets(buf, sizeof(buf), f) != NULL;
    fclose(f);
    buf[strcspn(buf, "\r\n")] = '\0';
    if (!ok || !store_snapshot_id_valid(buf, strlen(buf)) || strlen(buf) >= id_len)
        return -EINVAL;
    memcpy(id, buf, strlen(buf) + 1);
    return 0;
}

/* Snapshot ids in the directory, oldest first (cmp_id: by timestamp, then same-second suffix). */
int store_snapshot_ids(const char *dir, char ***ids_out, size_t *n_out)
{
    DIR *d = opendir(dir);
    if (!d)
        return -errno;
    char **ids = NULL;
    size_t n = 0, cap = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        /* the .json and .coords beside each snapshot are not ids */
        if (!store_snapshot_id_valid(e->d_name, strlen(e->d_name)))
            continue;
        char **t = n < cap ? ids : realloc(ids, (cap = cap ? cap * 2 : 16) * sizeof(*ids));
        char *id = t ? strdup(e->d_name) : NULL;
        if (t)
            ids = t;
        if (!id) { /* a truncated list would let retention delete the wrong snapshots */
            closedir(d);
            while (n > 0)
                free(ids[--n]);
            free(ids);
            return -ENOMEM;
        }
        ids[n++] = id;
    }
    closedir(d);
    if (n > 0)
        qsort(ids, n, sizeof(*ids), cmp_id);
    *ids_out = ids;
    *n_out = n;
    return 0;
}

/* Delete snapshot @p id's files (missing ones are no error): the manifest and sidecars first,
 * the corpus last, so that a crash half-way leaves a corpus, which is listed and retention
 * deletes later, never a manifest without its corpus (sweep_orphans). */
static void unlink_snapshot(const char *dir, const char *id)
{
    char path[4096];
    snprintf(path, sizeof(path), "%s/%s.json", dir, id);
    unlink(path);
    snprintf(path, sizeof(path), "%s/%s.coords", dir, id); /* sidecars of old versions */
    unlink(path);
    snprintf(path, sizeof(path), "%s/%s", dir, id);
    unlink(path);
}

/*
 * Delete the manifests and sidecars whose corpus is gone and whose id comes before @p newest
 * (a crash between the unlinks of an older version, or an operator's rm of a corpus): they are
 * no snapshot, so retention, which lists corpora, never reached them. Best effort.
 */
static void sweep_orphans(const char *dir, const char *newest)
{
    DIR *d = opendir(dir);
    if (!d)
        return;
    const char *nb = newest;
    struct dirent *e;
    while ((e = readdir(d))) {
        size_t len = strlen(e->d_name), id_len = 0;
        if (len > 5 && strcmp(e->d_name + len - 5, ".json") == 0)
            id_len = len - 5;
        else if (len > 7 && strcmp(e->d_name + len - 7, ".coords") == 0)
            id_len = len - 7;
        if (id_len == 0 || id_len >= 64 || !store_snapshot_id_valid(e->d_name, id_len))
            continue;
        char id[64], path[4096];
        struct stat st;
        memcpy(id, e->d_name, id_len);
        id[id_len] = '\0';
        const char *ia = id;
        snprintf(path, sizeof(path), "%s/%s", dir, id);
        if (cmp_id(&ia, &nb) < 0 && stat(path, &st) != 0 && errno == ENOENT) {
            snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
            unlink(path);
        }
    }
    closedir(d);
}

/* Delete all but the newest @p keep of @p ids (sorted, listed before @p newest was published:
 * it counts as one of the kept), and free the list. */
static void retain(const char *dir, char **ids, size_t n, const char *newest, unsigned keep)
{
    size_t total = n + 1;
    for (size_t i = 0; i < n; i++) {
        if (i + keep < total && strcmp(ids[i], newest) != 0)
            unlink_snapshot(dir, ids[i]);
        free(ids[i]);
    }
    free(ids);
    if (keep != UINT_MAX) /* a failed publish deletes nothing */
        sweep_orphans(dir, newest);
}

int store_snapshot_publish(const char *dir, const uint8_t *corpus, size_t len, uint32_t items,
                           const char *extra_json, unsigned keep, store_snapshot_info_t *out,
                           char *errbuf, size_t errlen)
{
    store_snapshot_info_t info;
    struct stat st;
    char path[4096];
    int rc;
    memset(&info, 0, sizeof(info));
    if (mkdir(dir, 0755) != 0 && errno != EEXIST) {
        snprintf(errbuf, errlen, "cannot create %s: %s", dir, strerror(errno));
        return -errno;
    }
    info.created = (int64_t)time(NULL);
    /* one snapshot per second at most by name: later ones in the same second get a suffix */
    snprintf(info.id, sizeof(info.id), "corpus_%lld", (long long)info.created);
    for (int k = 2; snprintf(path, sizeof(path), "%s/%s", dir, info.id), stat(path, &st) == 0; k++)
        snprintf(info.id, sizeof(info.id), "corpus_%lld_%d", (long long)info.created, k);
    info.items = items;
    info.bytes = len;
    store_sha256_hex(corpus, len, info.sha256);
    cJSON *m = extra_json ? cJSON_Parse(extra_json) : cJSON_CreateObject();
    if (!m || !cJSON_IsObject(m)) {
        cJSON_Delete(m);
        snprintf(errbuf, errlen, "manifest fields are not a JSON object");
        return -EINVAL;
    }
    /* the snapshots to retain are listed before the new one goes live, so that running out of
     * memory there fails the publish instead of going unnoticed (issue 10.15) */
    char **ids = NULL, *manifest = NULL;
    size_t n_ids = 0;
    if (!cJSON_AddStringToObject(m, "id", info.id) ||
        !cJSON_AddNumberToObject(m, "created", (double)info.created) ||
        !cJSON_AddNumberToObject(m, "items", items) ||
        !cJSON_AddStringToObject(m, "sha256", info.sha256) ||
        !cJSON_AddNumberToObject(m, "bytes", (double)len) || !(manifest = cJSON_Print(m)))
        rc = -ENOMEM;
    else
        rc = store_snapshot_ids(dir, &ids, &n_ids);
    cJSON_Delete(m);
    if (rc != 0) {
        free(manifest);
        snprintf(errbuf, errlen, "publishing %s: %s", info.id, strerror(-rc));
        return rc;
    }
    char mname[80];
    const char *step = "the corpus";
    snprintf(mname, sizeof(mname), "%s.json", info.id);
    if ((rc = write_durably(dir, info.id, corpus, len)) == 0 && (step = "its manifest") &&
        (rc = write_durably(dir, mname, manifest, strlen(manifest))) == 0 && (step = "latest"))
        rc = write_durably(dir, "latest", info.id, strlen(info.id));
    if (rc != 0) {
        /* `latest` still names the previous snapshot: remove what was written of this one. A
         * corpus left without its manifest or `latest` (ENOSPC half-way) would hold the space
         * that filled the disk, count as a snapshot for retention, and be listed as newest. */
        unlink_snapshot(dir, info.id);
    } else if ((rc = sync_dir(dir)) != 0) {
        step = "the directory"; /* `latest` names the new snapshot already: it stays */
    }
    if (rc != 0) {
        snprintf(errbuf, errlen, "publishing %s in %s failed writing %s: %s", info.id, dir, step,
                 strerror(-rc));
        free(manifest);
        retain(dir, ids, n_ids, info.id, UINT_MAX); /* deletes nothing: frees the list */
        return rc;
    }
    free(manifest);
    retain(dir, ids, n_ids, info.id, keep ? keep : 1);
    *out = info;
    return 0;
}

/* Whether snapshot @p id is complete: its manifest parses and its sha256 and size match. */
static int snapshot_complete(const char *dir, const char *id)
{
    char path[4200];
    struct stat st;
    int ok = 0;
    snprintf(path, sizeof(path), "%s/%s.json", dir, id);
    FILE *f = fopen(path, "rb");
    char *mbuf = NULL;
    uint8_t *cbuf = NULL;
    cJSON *m = NULL;
    if (!f || fstat(fileno(f), &st) != 0 || st.st_size > STORE_MANIFEST_MAX_BYTES ||
        !(mbuf = malloc((size_t)st.st_size + 1)) ||
        fread(mbuf, 1, (size_t)st.st_size, f) != (size_t)st.st_size)
        goto out;
    mbuf[st.st_size] = '\0';
    fclose(f);
    m = cJSON_Parse(mbuf);
    const cJSON *sha = cJSON_GetObjectItemCaseSensitive(m, "sha256");
    const cJSON *bytes = cJSON_GetObjectItemCaseSensitive(m, "bytes");
    snprintf(path, sizeof(path), "%s/%s", dir, id);
    f = fopen(path, "rb");
    if (!cJSON_IsString(sha) || !cJSON_IsNumber(bytes) || !f || fstat(fileno(f), &st) != 0 ||
        (double)st.st_size != bytes->valuedouble || !(cbuf = malloc((size_t)st.st_size + 1)) ||
        fread(cbuf, 1, (size_t)st.st_size, f) != (size_t)st.st_size)
        goto out;
    char hex[65];
    store_sha256_hex(cbuf, (size_t)st.st_size, hex);
    ok = strcmp(hex, sha->valuestring) == 0;
out:
    if (f)
        fclose(f);
    cJSON_Delete(m);
    free(mbuf), free(cbuf);
    return ok;
}

int store_snapshot_repair(const char *dir, char *repaired, size_t len)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    repaired[0] = '\0';
    if (!d)
        return errno == ENOENT ? 0 : -errno;
    while ((e = readdir(d))) /* leftovers of a publish that was killed */
        if (strncmp(e->d_name, ".tmp-", 5) == 0) {
            char path[4200];
            snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
            unlink(path);
        }
    closedir(d);
    char id[64];
    if (store_snapshot_latest(dir, id, sizeof(id)) == 0 && snapshot_complete(dir, id))
        return 0;
    /* no (valid) latest: a kill between the manifest and `latest` of the first publish left a
     * complete snapshot nobody points at; or `latest` names one whose files are gone or damaged
     * (deleted by hand, a disk error), so every download of it would be a 404 until the next
     * publish. Point at the newest complete one. */
    char **ids;
    size_t n;
    int rc = store_snapshot_ids(dir, &ids, &n);
    if (rc != 0)
        return rc;
    for (size_t i = n; i-- > 0 && !repaired[0];)
        if (snapshot_complete(dir, ids[i])) {
            if ((rc = write_durably(dir, "latest", ids[i], strlen(ids[i]))) == 0 &&
                (rc = sync_dir(dir)) == 0)
                snprintf(repaired, len, "%s", ids[i]);
            break;
        }
    for (size_t i = 0; i < n; i++)
        free(ids[i]);
    free(ids);
    return rc;
}
