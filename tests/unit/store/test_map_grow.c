/*
 * test_map_grow.c: growing the LMDB map when the address space for the larger map is not there
 * (RLIMIT_AS, e.g. systemd's LimitAS=, or a 32-bit-like squeeze). LMDB's mdb_env_set_mapsize()
 * unmaps the map before mapping it at the new size; when that mmap fails the environment is
 * left with no map, and the next transaction dereferences it (SIGSEGV, checked with LMDB 0.9.24).
 * The store must instead fail the growth with -ENOMEM, keep working at the old size, and grow
 * once the address space is back.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "store/store.h"
#include "tests/check.h"

/* The process's mapped bytes (VmSize). */
static uint64_t vm_bytes(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    unsigned long long kb = 0;
    CHECK(f != NULL);
    while (fgets(line, sizeof(line), f))
        if (sscanf(line, "VmSize: %llu kB", &kb) == 1)
            break;
    fclose(f);
    CHECK(kb > 0);
    return (uint64_t)kb << 10;
}

static void commit_one(store_t *s, uint32_t user)
{
    store_batch_t *b;
    store_event_t e;
    E(store_batch_new(&b));
    memset(&e, 0, sizeof(e));
    e.kind = STORE_EVENT_HISCORE;
    e.u.hiscore.user = user, e.u.hiscore.beatmap_id = 100 + user, e.u.hiscore.pp = 500;
    e.u.hiscore.update_time = 1600000000;
    E(store_batch_add(b, &e));
    E(store_batch_commit(s, b));
    store_batch_free(b);
}

int main(void)
{
    char *dir = check_tmpdir("map-grow");
    store_opts_t o;
    store_t *s;
    store_counters_t c;
    struct rlimit old, low;
    store_opts_default(&o);
    o.map_size_bytes = (uint64_t)64 << 20;
    o.no_sync = 1;
    E(store_open(dir, &o, &s));
    commit_one(s, 1);
    /* room for small mappings, not for a map 64 MiB larger */
    CHECK_EQ(getrlimit(RLIMIT_AS, &old), 0);
    low = old;
    low.rlim_cur = vm_bytes() + ((uint64_t)16 << 20);
    CHECK_EQ(setrlimit(RLIMIT_AS, &low), 0);
    int rc = store_map_grow_ahead(s, 1.0); /* grow whatever is free */
    CHECK_EQ(setrlimit(RLIMIT_AS, &old), 0);
    printf("grow with the address space short: %d (%s)\n", rc, atl_strerror(rc));
    CHECK_EQ(rc, -ENOMEM);
    /* the store still works at its old size (before the fix: SIGSEGV in mdb_txn_begin) */
    commit_one(s, 2);
    E(store_counters_get(s, &c));
    CHECK_EQ(c.batches, 2);
    CHECK_EQ(c.events_applied, 2);
    /* and grows once the address space is back */
    CHECK_EQ(store_map_grow_ahead(s, 1.0), 1);
    commit_one(s, 3);
    E(store_counters_get(s, &c));
    CHECK_EQ(c.batches, 3);
    store_close(s);
    check_rmdir(dir);
    printf("ok\n");
    return 0;
}
