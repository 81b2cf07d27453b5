/*
 * daemon_faults.c: the fault switches of `atlasd-faults`, a test build of atlasd (daemon/main.c
 * linked with tests/fault and `-Wl,--wrap=store_event_decode,--wrap=store_batch_commit`; see
 * tests/tests.cmake). Integration tests flip them with files in the directory named by the
 * environment variable ATL_FAULT_DIR, checked at every call:
 *   decode-oom   every allocation of an event decode fails (cJSON's included): out of memory
 *                while decoding a valid event (issue 10.2);
 *   commit-fail  every batch commit fails with -EIO before touching the store (a disk error:
 *                the batch stays pending; issue 10.10's failed flush at a revoke);
 *   commit-slow  every batch commit first sleeps 3 s (a long fsync or a writer lock held by
 *                a refresh), so tests can act while a commit is in flight.
 * The atlasd binary has none of this.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "store/store.h"
#include "tests/fault/fault.h"

int __real_store_event_decode(const void *buf, size_t len, const store_decode_opts_t *o,
                              store_event_t *out, store_reject_t *why, char *errbuf, size_t errlen);
int __wrap_store_event_decode(const void *buf, size_t len, const store_decode_opts_t *o,
                              store_event_t *out, store_reject_t *why, char *errbuf, size_t errlen);
int __real_store_batch_commit(store_t *s, store_batch_t *b);
int __wrap_store_batch_commit(store_t *s, store_batch_t *b);

static int switch_on(const char *name)
{
    const char *dir = getenv("ATL_FAULT_DIR");
    char path[4096];
    if (!dir)
        return 0;
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    return access(path, F_OK) == 0;
}

/* cJSON allocates through the wrapped malloc from the start (the store's decoder installs its
 * own hooks later, which call the wrapped malloc too) */
__attribute__((constructor)) static void faults_init(void)
{
    fault_cjson_hooks();
}

int __wrap_store_event_decode(const void *buf, size_t len, const store_decode_opts_t *o,
                              store_event_t *out, store_reject_t *why, char *errbuf, size_t errlen)
{
    int oom = switch_on("decode-oom");
    fault_thread_fail_all(oom);
    int rc = __real_store_event_decode(buf, len, o, out, why, errbuf, errlen);
    fault_thread_fail_all(0);
    return rc;
}

int __wrap_store_batch_commit(store_t *s, store_batch_t *b)
{
    if (switch_on("commit-slow"))
        sleep(3);
    if (switch_on("commit-fail"))
        return -EIO;
    return __real_store_batch_commit(s, b);
}
