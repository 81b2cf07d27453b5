/*
 * Store property tests (DESIGN §3, §4):
 *  - random event sequences (out of order, repeated rows, replaced entries, ties) applied in
 *    random batches give bit-for-bit the state of the offline rebuild (verify finds nothing);
 *  - the digest is independent of arrival order and of batch boundaries; replaying changes
 *    nothing;
 *  - S and item stats equal a brute-force reference computed here from the final profiles;
 *  - a corrupted S entry is found by verify and repaired;
 *  - a tiny map grows instead of failing;
 *  - a batch marks dirty the items whose stats changed and the rows with an entry above T's
 *    cut (S > 2) before or after, not the rows whose changed entries stay at or below it;
 *  - a repairing rebuild keeps a batch committed while it read (issue 10.1: its corrections are
 *    deltas against its snapshot, not absolute values);
 *  - snapshot listing and publishing report every allocation failure (issue 10.15: a truncated
 *    list came back as success, and retention could then delete the wrong snapshots);
 *  - snapshot ids of one second list in publishing order (corpus_T_10 after corpus_T_9), so
 *    retention keeps the newest.
 */
#include <errno.h>
#include <math.h>
#include <sys/stat.h>
#include <unistd.h>

#include "algo/corpus.h"
#include "algo/item.h"
#include "algo/rng.h"
#include "algo/weight.h"
#include "store/store.h"
#include "tests/check.h"
#include "tests/fault/fault.h"

enum { N_USERS = 25, N_MAPS = 30, N_EVENTS = 3000 };

static const uint32_t mods_choices[] = {0, 64, 576, 16, 8, 80, 2};

static store_event_t events[N_EVENTS];

static void make_events(uint64_t seed)
{
    rng_t r;
    rng_init(&r, seed);
    for (int i = 0; i < N_EVENTS; i++) {
        store_event_t *e = &events[i];
        memset(e, 0, sizeof(*e));
        e->kind = STORE_EVENT_HISCORE;
        e->u.hiscore.user = 1 + (uint32_t)rng_below(&r, N_USERS);
        e->u.hiscore.beatmap_id = 100 + (uint32_t)rng_below(&r, N_MAPS);
        e->u.hiscore.mods_legacy = mods_choices[rng_below(&r, 7)];
        /* coarse pp and times: many exact ties, to exercise the tie rule */
        e->u.hiscore.pp = (float)(75 + 5 * (int)rng_below(&r, 60));
        e->u.hiscore.update_time = 1600000000 + 3600 * (int64_t)rng_below(&r, 40);
        if (i > 10 && rng_uniform(&r) < 0.05)
            *e = events[rng_below(&r, (uint64_t)i)]; /* an exact replay */
    }
}

static store_t *open_store(const char *dir, uint64_t map_size)
{
    store_opts_t o;
    store_opts_default(&o);
    o.no_sync = 1;
    if (map_size)
        o.map_size_bytes = map_size;
    store_t *s;
    E(store_open(dir, &o, &s));
    return s;
}

/* Apply events in the order given by perm, in random batch sizes. */
static void apply(store_t *s, const int *perm, int n, uint64_t seed)
{
    rng_t r;
    rng_init(&r, seed);
    store_batch_t *b;
    E(store_batch_new(&b));
    for (int i = 0; i < n; i++) {
        E(store_batch_add(b, &events[perm[i]]));
        if (rng_uniform(&r) < 0.02 || i == n - 1) {
            E(store_batch_commit(s, b));
            store_batch_clear(b);
        }
    }
    store_batch_free(b);
}

static void digest(store_t *s, char out[33])
{
    store_stats_t st;
    E(store_stats_get(s, 1, &st));
    memcpy(out, st.digest, 33);
}

static void verify_clean(store_t *s)
{
    store_rebuild_opts_t o;
    store_rebuild_result_t res;
    store_rebuild_opts_default(&o);
    o.verify_only = 1;
    E(store_rebuild(s, &o, &res));
    if (res.s_diffs || res.stats_diffs)
        fprintf(stderr, "diff: %s\n", res.first_diff);
    CHECK_EQ(res.s_diffs, 0);
    CHECK_EQ(res.stats_diffs, 0);
    CHECK(res.s_entries > 0);
    store_rebuild_result_t full; /* the upper triangle + symmetry counts what full rows count */
    o.full_rows = 1;
    E(store_rebuild(s, &o, &full));
    CHECK_EQ(full.s_diffs, 0);
    CHECK_EQ(full.s_entries, res.s_entries);
}

/* One direction of one pair corrupted: the symmetry run sends it to full rows whichever side
 * of the diagonal it is on, and the report equals that of full rows alone; then repaired. */
static void corrupt_and_repair(store_t *s, uint64_t ka, uint64_t kb, const char *clean)
{
    char d[33];
    E(store_debug_poke_cooc(s, ka, kb, 12345));
    digest(s, d);
    CHECK(strcmp(clean, d) != 0);
    store_rebuild_opts_t o;
    store_rebuild_result_t res, full;
    store_rebuild_opts_default(&o);
    o.verify_only = 1;
    o.mem_bytes = 4096; /* many row-range passes */
    E(store_rebuild(s, &o, &res));
    CHECK_EQ(res.s_diffs, 1);
    CHECK(res.passes > 1);
    CHECK(strstr(res.first_diff, "S[") != NULL);
    o.full_rows = 1;
    E(store_rebuild(s, &o, &full));
    CHECK_EQ(full.s_diffs, 1);
    CHECK_STREQ(full.first_diff, res.first_diff);
    CHECK_EQ(full.s_entries, res.s_entries);
    CHECK(res.passes > full.passes); /* both runs counted */
    o.full_rows = 0;
    o.verify_only = 0;
    E(store_rebuild(s, &o, &res));
    CHECK_EQ(res.s_diffs, 1);
    verify_clean(s);
    digest(s, d);
    CHECK_STREQ(clean, d);
}

/* Reference: final profile entry = max over rows by (update_time, pp). */
typedef struct ref_entry {
    int present;
    float pp;
    int64_t t;
} ref_entry_t;

static ref_entry_t ref[N_USERS + 1][N_MAPS][32];

static void check_reference(store_t *s)
{
    memset(ref, 0, sizeof(ref));
    for (int i = 0; i < N_EVENTS; i++) {
        const store_hiscore_t *h = &events[i].u.hiscore;
        ref_entry_t *e = &ref[h->user][h->beatmap_id - 100][item_mods_from_legacy(h->mods_legacy)];
        if (!e->present || h->update_time > e->t || (h->update_time == e->t && h->pp > e->pp))
            *e = (ref_entry_t){1, h->pp, h->update_time};
    }
    /* spot-check every pair of a few items and every item's stats */
    for (int a = 0; a < N_MAPS; a++) {
        for (uint32_t ma = 0; ma < 32; ma++) {
            uint64_t ka = item_key_make(100 + (uint32_t)a, ma);
            uint32_t nu = 0, got_n;
            int64_t sum = 0, got_sum;
            for (int u = 1; u <= N_USERS; u++)
                if (ref[u][a][ma].present) {
                    nu++;
                    sum += weight_pp_fixed(ref[u][a][ma].pp);
                }
            int rc = store_item_stats_get(s, ka, &got_n, &got_sum);
            if (nu == 0) {
                CHECK(rc == ATL_ENOTFOUND || (rc == 0 && got_n == 0));
                continue;
            }
            E(rc);
            CHECK_EQ(got_n, nu);
            CHECK_EQ(got_sum, sum);
            if (a % 7 != 0)
                continue;
            for (int b = 0; b < N_MAPS; b++)
                for (uint32_t mb = 0; mb < 32; mb++) {
                    if (a == b && ma == mb)
                        continue;
                    int64_t want = 0, got;
                    for (int u = 1; u <= N_USERS; u++)
                        if (ref[u][a][ma].present && ref[u][b][mb].present)
                            want += weight_pair(ref[u][a][ma].pp, ref[u][b][mb].pp);
                    int grc = store_cooc_get(s, ka, item_key_make(100 + (uint32_t)b, mb), &got);
                    if (grc == ATL_ENOTFOUND) {
                        CHECK_EQ(want, 0);
                        continue;
                    }
                    E(grc);
                    CHECK_EQ(got, want);
                }
        }
    }
}

typedef struct concurrent {
    store_t *s;
    const int *perm;
    int from, n, done;
} concurrent_t;

/* Rebuild progress: on the first call (inside the rebuild's read snapshot), commit a batch. */
static int commit_during_rebuild(void *ud, const char *stage, double frac)
{
    (void)stage, (void)frac;
    concurrent_t *c = ud;
    if (!c->done) {
        c->done = 1;
        store_batch_t *b;
        E(store_batch_new(&b));
        for (int i = c->from; i < c->from + c->n; i++)
            E(store_batch_add(b, &events[c->perm[i]]));
        E(store_batch_commit(c->s, b));
        store_batch_free(b);
    }
    return 0;
}

/* A repairing rebuild while batches commit: afterwards nothing differs from a plain import. */
static void test_rebuild_with_commits(const int *ident, const char *want_digest)
{
    char *dir = check_tmpdir("store-rb");
    store_t *s = open_store(dir, 0);
    char d[33];
    apply(s, ident, N_EVENTS / 2, 7);
    /* a corrupted S entry, so the rebuild has something to repair */
    const store_hiscore_t *h = &events[0].u.hiscore, *g = NULL;
    for (int i = 1; i < N_EVENTS / 2 && !g; i++)
        if (events[i].u.hiscore.user == h->user &&
            (events[i].u.hiscore.beatmap_id != h->beatmap_id))
            g = &events[i].u.hiscore;
    CHECK(g != NULL);
    E(store_debug_poke_cooc(s, item_key_make(h->beatmap_id, item_mods_from_legacy(h->mods_legacy)),
                            item_key_make(g->beatmap_id, item_mods_from_legacy(g->mods_legacy)),
                            777));
    concurrent_t c = {s, ident, N_EVENTS / 2, N_EVENTS - N_EVENTS / 2, 0};
    store_rebuild_opts_t o;
    store_rebuild_result_t res;
    store_rebuild_opts_default(&o);
    o.progress = commit_during_rebuild;
    o.progress_ud = &c;
    E(store_rebuild(s, &o, &res));
    CHECK(c.done);
    CHECK(res.s_diffs >= 1);
    verify_clean(s); /* failed before: "num_users[...]: stored 2, expected 3" */
    digest(s, d);
    CHECK_STREQ(d, want_digest);
    store_close(s);
    check_rmdir(dir);
}

typedef struct seen {
    uint64_t ids[8];
    char values[8][32];
    uint64_t orig[8];
    int n;
} seen_t;

static int collect_dl(void *ud, uint64_t id, const store_dead_letter_t *dl)
{
    seen_t *s = ud;
    CHECK(s->n < 8);
    CHECK_STREQ(dl->topic, "t");
    CHECK_STREQ(dl->reason, "not_json");
    s->ids[s->n] = id;
    s->orig[s->n] = dl->original_len;
    snprintf(s->values[s->n], sizeof(s->values[0]), "%.*s", (int)dl->value_len,
             (const char *)dl->value);
    s->n++;
    return 0;
}

/* Dead letters are stored with their batch, kept across a reopen until deleted (issue 10.8). */
static void test_dead_letters(void)
{
    char *dir = check_tmpdir("store-dl");
    store_t *s = open_store(dir, 0);
    store_batch_t *b;
    E(store_batch_new(&b));
    const char *vals[] = {"not json 1", "not json but long"};
    for (int i = 0; i < 2; i++) {
        store_dead_letter_t dl = {"t",        3,         100 + i,         "k",
                                  vals[i],    1,         strlen(vals[i]), strlen(vals[i]),
                                  "not_json", "not JSON"};
        E(store_batch_add_dead_letter(b, &dl, 12));
    }
    E(store_batch_set_offset(b, "t", 3, 102));
    E(store_batch_commit(s, b));
    CHECK_EQ(store_batch_dead_letter_count(b), 2);
    store_dead_letter_t got;
    uint64_t id0, id1;
    store_batch_dead_letter_get(b, 0, &got, &id0);
    CHECK_EQ(got.offset, 100);
    CHECK_EQ(got.partition, 3);
    store_batch_dead_letter_get(b, 1, &got, &id1);
    CHECK(id1 > id0 && id0 > 0);
    CHECK_EQ(got.value_len, 12); /* truncated */
    CHECK_EQ(got.original_len, strlen(vals[1]));
    store_batch_free(b);
    E(store_dead_letters_delete(s, &id0, 1));
    store_close(s);
    s = open_store(dir, 0);
    seen_t seen = {0};
    E(store_dead_letters_each(s, collect_dl, &seen));
    CHECK_EQ(seen.n, 1);
    CHECK_EQ(seen.ids[0], id1);
    CHECK_STREQ(seen.values[0], "not json but");
    CHECK_EQ(seen.orig[0], strlen(vals[1]));
    /* ids are never reused: the next batch's dead letter gets a new one */
    E(store_batch_new(&b));
    store_dead_letter_t dl = {"t", 3, 102, NULL, "x", 0, 1, 1, "not_json", ""};
    E(store_batch_add_dead_letter(b, &dl, 12));
    E(store_batch_commit(s, b));
    store_batch_dead_letter_get(b, 0, &got, &id0);
    CHECK(id0 > id1);
    store_batch_free(b);
    store_close(s);
    check_rmdir(dir);
}

enum { N_SNAPS = 40 };

/* Snapshot files corpus_<t> (+ .json) for N_SNAPS seconds, `latest` at the newest. */
static void make_snapshots(const char *dir)
{
    char path[4200];
    for (int i = 0; i < N_SNAPS; i++) {
        for (int j = 0; j < 2; j++) {
            snprintf(path, sizeof(path), "%s/corpus_%d%s", dir, 1600000000 + i, j ? ".json" : "");
            FILE *f = fopen(path, "w");
            CHECK(f != NULL);
            fputs(j ? "{}" : "x", f);
            fclose(f);
        }
    }
    snprintf(path, sizeof(path), "%s/latest", dir);
    FILE *f = fopen(path, "w");
    CHECK(f != NULL);
    fprintf(f, "corpus_%d\n", 1600000000 + N_SNAPS - 1);
    fclose(f);
}

static int oom_ids_run(void *ud)
{
    char **ids;
    size_t n;
    int rc = store_snapshot_ids(ud, &ids, &n);
    if (rc != 0)
        return rc;
    CHECK_EQ(n, N_SNAPS); /* all of them, in order */
    for (size_t i = 0; i < n; i++) {
        char want[32];
        snprintf(want, sizeof(want), "corpus_%d", 1600000000 + (int)i);
        CHECK_STREQ(ids[i], want);
        free(ids[i]);
    }
    free(ids);
    return 0;
}

static int oom_publish_run(void *ud)
{
    const char *dir = ud;
    store_snapshot_info_t info;
    char err[256], id[64], path[4200];
    int rc = store_snapshot_publish(dir, (const uint8_t *)"corpus", 6, 1, "{\"x\":1}", 3, &info,
                                    err, sizeof(err));
    if (rc == 0)
        return 0;
    /* a failed publish changed nothing: every snapshot is there, latest unchanged */
    CHECK_EQ(oom_ids_run(ud), 0);
    E(store_snapshot_latest(dir, id, sizeof(id)));
    snprintf(path, sizeof(path), "corpus_%d", 1600000000 + N_SNAPS - 1);
    CHECK_STREQ(id, path);
    return rc;
}

/* Every allocation failure of store_snapshot_ids and of a publish (its manifest, the retention
 * list) is an error that leaves the snapshots as they were (issue 10.15). */
static void test_snapshots_oom(void)
{
    char *dir = check_tmpdir("store-snaps");
    make_snapshots(dir);
    fault_cjson_hooks(); /* the manifest's cJSON allocations count too */
    CHECK(fault_each(oom_ids_run, dir, "store_snapshot_ids") > 3);
    CHECK(fault_each(oom_publish_run, dir, "store_snapshot_publish") > 3);
    char **ids; /* the publish that succeeded kept the newest 3: its own and two */
    size_t n;
    E(store_snapshot_ids(dir, &ids, &n));
    CHECK_EQ(n, 3);
    CHECK_EQ(strncmp(ids[0], "corpus_16000000", 15), 0);
    for (size_t i = 0; i < n; i++)
        free(ids[i]);
    free(ids);
    check_rmdir(dir);
}

/* Create an empty snapshot file (and its manifest) named @p id in @p dir. */
static void touch_snapshot(const char *dir, const char *id)
{
    char path[4200];
    for (int j = 0; j < 2; j++) {
        snprintf(path, sizeof(path), "%s/%s%s", dir, id, j ? ".json" : "");
        FILE *f = fopen(path, "w");
        CHECK(f != NULL);
        fputs(j ? "{}" : "x", f);
        fclose(f);
    }
}

/* Ids of one second (corpus_T, corpus_T_2, ... corpus_T_12: more than 9 publishes in a second)
 * list in publishing order, the suffix compared as a number: corpus_T_10 after corpus_T_9, not
 * before corpus_T_2 as strcmp has it. Retention then deletes the oldest, never a newer one. */
static void test_snapshot_order(void)
{
    char *dir = check_tmpdir("store-order");
    const long long t = 1600000000;
    char id[64], want[64];
    snprintf(id, sizeof(id), "corpus_%lld", t - 1);
    touch_snapshot(dir, id);
    snprintf(id, sizeof(id), "corpus_%lld", t);
    touch_snapshot(dir, id);
    for (int k = 12; k >= 2; k--) {
        snprintf(id, sizeof(id), "corpus_%lld_%d", t, k);
        touch_snapshot(dir, id);
    }
    char **ids;
    size_t n;
    E(store_snapshot_ids(dir, &ids, &n));
    CHECK_EQ(n, 13);
    snprintf(want, sizeof(want), "corpus_%lld", t - 1);
    CHECK_STREQ(ids[0], want);
    snprintf(want, sizeof(want), "corpus_%lld", t);
    CHECK_STREQ(ids[1], want);
    for (size_t i = 2; i < n; i++) {
        snprintf(want, sizeof(want), "corpus_%lld_%d", t, (int)i);
        CHECK_STREQ(ids[i], want);
    }
    for (size_t i = 0; i < n; i++)
        free(ids[i]);
    free(ids);
    /* a publish keeping 3 keeps itself and the two newest of that second */
    store_snapshot_info_t info;
    char err[256];
    E(store_snapshot_publish(dir, (const uint8_t *)"corpus", 6, 1, NULL, 3, &info, err,
                             sizeof(err)));
    E(store_snapshot_ids(dir, &ids, &n));
    CHECK_EQ(n, 3);
    snprintf(want, sizeof(want), "corpus_%lld_11", t);
    CHECK_STREQ(ids[0], want);
    snprintf(want, sizeof(want), "corpus_%lld_12", t);
    CHECK_STREQ(ids[1], want);
    CHECK_STREQ(ids[2], info.id);
    for (size_t i = 0; i < n; i++)
        free(ids[i]);
    free(ids);
    check_rmdir(dir);
}

/* A manifest whose corpus is gone (a crash between the two unlinks of an old snapshot, or an
 * operator's rm of the corpus) is not a snapshot, so retention never listed it and it stayed
 * for good; a publish now removes such manifests older than itself, and keeps the others. */
static void test_snapshot_orphan_manifest(void)
{
    char *dir = check_tmpdir("store-orphan");
    char id[64], path[4200];
    const long long t = 1600000000;
    for (int k = 0; k < 3; k++) {
        snprintf(id, sizeof(id), "corpus_%lld", t + k);
        touch_snapshot(dir, id);
    }
    snprintf(path, sizeof(path), "%s/corpus_%lld", dir, t + 1);
    CHECK(unlink(path) == 0); /* corpus_(t+1).json is now an orphan */
    snprintf(path, sizeof(path), "%s/corpus_%lld.json", dir, t - 5);
    FILE *f = fopen(path, "w"); /* an older orphan, of an old version's sidecar kind too */
    CHECK(f != NULL);
    fputs("{}", f);
    fclose(f);
    store_snapshot_info_t info;
    char err[256];
    struct stat st;
    E(store_snapshot_publish(dir, (const uint8_t *)"corpus", 6, 1, NULL, 10, &info, err,
                             sizeof(err)));
    snprintf(path, sizeof(path), "%s/corpus_%lld.json", dir, t + 1);
    CHECK(stat(path, &st) != 0 && errno == ENOENT);
    snprintf(path, sizeof(path), "%s/corpus_%lld.json", dir, t - 5);
    CHECK(stat(path, &st) != 0 && errno == ENOENT);
    for (int k = 0; k < 3; k += 2) { /* complete snapshots keep both files (keep 10) */
        snprintf(path, sizeof(path), "%s/corpus_%lld.json", dir, t + k);
        CHECK(stat(path, &st) == 0);
        snprintf(path, sizeof(path), "%s/corpus_%lld", dir, t + k);
        CHECK(stat(path, &st) == 0);
    }
    snprintf(path, sizeof(path), "%s/%s.json", dir, info.id);
    CHECK(stat(path, &st) == 0);
    check_rmdir(dir);
}

/* `latest` naming a snapshot whose corpus is gone is repaired to the newest complete one (it was
 * left alone, so /snapshots/latest answered 404 until the next publish); a good one is kept */
static void test_snapshot_repair_latest(void)
{
    char *dir = check_tmpdir("store-repair");
    store_snapshot_info_t a, b;
    char err[256], repaired[64], id[64], path[4200];
    E(store_snapshot_publish(dir, (const uint8_t *)"first", 5, 1, NULL, 10, &a, err, sizeof(err)));
    E(store_snapshot_publish(dir, (const uint8_t *)"second", 6, 1, NULL, 10, &b, err, sizeof(err)));
    E(store_snapshot_repair(dir, repaired, sizeof(repaired)));
    CHECK_STREQ(repaired, ""); /* complete: left alone */
    snprintf(path, sizeof(path), "%s/%s", dir, b.id);
    CHECK_EQ(unlink(path), 0);
    E(store_snapshot_repair(dir, repaired, sizeof(repaired)));
    CHECK_STREQ(repaired, a.id);
    E(store_snapshot_latest(dir, id, sizeof(id)));
    CHECK_STREQ(id, a.id);
    check_rmdir(dir);
}

/* ---- store_retained_rows: the min_s filter ----------------------------------------------- */

typedef struct row_entries {
    uint32_t n, row[64], col[64];
    double s[64];
} row_entries_t;

static int collect_rows(void *ud, uint32_t row, const uint32_t *cols, const double *s, size_t n)
{
    row_entries_t *e = ud;
    for (size_t q = 0; q < n; q++) {
        CHECK(e->n < 64);
        e->row[e->n] = row, e->col[e->n] = cols[q], e->s[e->n] = s[q];
        e->n++;
    }
    return 0;
}

static void hiscore_at(store_batch_t *b, uint32_t user, uint32_t map, float pp, int64_t t)
{
    store_event_t e;
    memset(&e, 0, sizeof(e));
    e.kind = STORE_EVENT_HISCORE;
    e.u.hiscore.user = user, e.u.hiscore.beatmap_id = map, e.u.hiscore.pp = pp;
    e.u.hiscore.update_time = t;
    E(store_batch_add(b, &e));
}

static void hiscore(store_batch_t *b, uint32_t user, uint32_t map, float pp)
{
    hiscore_at(b, user, map, pp, 1600000000);
}

/*
 * Corpus rows of 5,000 beatmaps (metadata with titles of 0-60 bytes, plays on every other one)
 * read in one call, where a helper thread joins the second half with its strings in the
 * arena's second half, encode to the same bytes as the rows read 1,000 at a time (one thread).
 */
static void test_corpus_rows_parallel(void)
{
    enum { NB = 5000, CHUNK = 1000 };

    static uint64_t keys[NB];
    static double xy[2 * NB];
    static corpus_row_t all[NB], part[NB];
    static const char pad[] = "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx";
    char *dir = check_tmpdir("corpus"), line[1024], err[256], *arena_all, *arenas[NB / CHUNK];
    store_t *s = open_store(dir, 0);
    store_decode_opts_t o;
    store_decode_opts_default(&o);
    store_batch_t *b;
    store_event_t *e = calloc(1, sizeof(*e));
    CHECK(e != NULL);
    E(store_batch_new(&b));
    for (int i = 0; i < NB; i++) {
        snprintf(line, sizeof(line),
                 "{\"beatmap_id\":%d,\"beatmapset_id\":%d,\"title\":\"%.*s\",\"artist\":\"A\","
                 "\"version\":\"V%d\",\"creator\":\"C%d\",\"bpm\":%d,\"total_length\":%d,"
                 "\"hit_length\":1,\"diff_size\":4,\"diff_overall\":7,\"diff_approach\":8,"
                 "\"diff_drain\":5,\"difficultyrating\":%.2f,\"approved_date\":\"2025-11-25 "
                 "01:20:16\",\"last_update\":\"2025-11-25 01:20:16\",\"mode\":0}",
                 1000 + i, 10 + i / 3, i % 61, pad, i % 7, i, 100 + i % 150, 30 + i % 400,
                 1 + (i % 90) / 10.0);
        E(store_event_decode(line, strlen(line), &o, e, NULL, err, sizeof(err)));
        E(store_batch_add(b, e));
        if (i % 2 == 0)
            hiscore(b, 1 + (uint32_t)(i % 7), 1000 + (uint32_t)i, 100 + (float)(i % 300));
        keys[i] = item_key_make(1000 + (uint32_t)i, 0);
        xy[2 * i] = i, xy[2 * i + 1] = -i;
    }
    E(store_batch_commit(s, b));
    store_batch_free(b);
    E(store_corpus_rows(s, keys, xy, NB, all, &arena_all));
    for (int c = 0; c < NB / CHUNK; c++)
        E(store_corpus_rows(s, keys + c * CHUNK, xy + 2 * c * CHUNK, CHUNK, part + c * CHUNK,
                            &arenas[c]));
    size_t len = corpus_size(all, NB);
    CHECK_EQ(len, corpus_size(part, NB));
    uint8_t *ba = malloc(len), *bp = malloc(len);
    CHECK(ba && bp);
    E(corpus_encode(all, NB, ba));
    E(corpus_encode(part, NB, bp));
    CHECK(memcmp(ba, bp, len) == 0);
    CHECK(all[NB - 1].title_len == (NB - 1) % 61 && all[NB - 2].num_users == 1);
    free(ba), free(bp), free(arena_all), free(e);
    for (int c = 0; c < NB / CHUNK; c++)
        free(arenas[c]);
    store_close(s);
    check_rmdir(dir);
}

/* Users 1-3 play maps 200 and 201, users 7-9 maps 205 and 206 (S 6 each), user 4 plays 200 at
 * 600 pp and 202 at 700 (S(200, 202) = 1.43). Then user 4's 202 becomes 650 (S 1.69: still at
 * most 2) and user 7's 206 becomes 590 (S(205, 206) 5.93): 202 and 206 are dirty (their stats
 * changed) and so is 205 (an entry above 2), but not 200, whose T cannot have changed. Marking
 * every row touched made each refresh read thousands of whole rows for nothing. */
static void test_dirty_above_min_s(void)
{
    char *dir = check_tmpdir("dirty");
    store_t *s = open_store(dir, 0);
    store_batch_t *b;
    E(store_batch_new(&b));
    for (uint32_t u = 1; u <= 3; u++)
        hiscore(b, u, 200, 600), hiscore(b, u, 201, 600);
    for (uint32_t u = 7; u <= 9; u++)
        hiscore(b, u, 205, 600), hiscore(b, u, 206, 600);
    hiscore(b, 4, 200, 600), hiscore(b, 4, 202, 700);
    E(store_batch_commit(s, b));
    store_batch_clear(b);
    uint64_t seq, *keys;
    uint32_t n;
    E(store_dirty_get(s, &seq, &keys, &n, NULL, NULL));
    CHECK_EQ(n, 5);
    free(keys);
    store_coords_t none = {0};
    E(store_refresh_commit(s, &none, seq, NULL)); /* the marks consumed */
    hiscore_at(b, 4, 202, 650, 1600000000 + 60);
    hiscore_at(b, 7, 206, 590, 1600000000 + 60);
    E(store_batch_commit(s, b));
    store_batch_free(b);
    E(store_dirty_get(s, &seq, &keys, &n, NULL, NULL));
    uint64_t want[3];
    uint32_t maps[3] = {202, 205, 206};
    for (int i = 0; i < 3; i++)
        want[i] = item_key_make(maps[i], item_mods_from_legacy(0));
    qsort(want, 3, sizeof(*want), atl_cmp_u64);
    CHECK_EQ(n, 3);
    for (uint32_t i = 0; i < n && i < 3; i++)
        CHECK_EQ(keys[i], want[i]);
    free(keys);
    store_close(s);
    check_rmdir(dir);
}

/* A first row of S with a single entry: user 1 plays 100 and 101, user 2 plays 200, 201, 202
 * (S[100][101] = 2 is row 100's only entry). The rebuild's first read of S left the cursor's
 * record in a variable it never passed to GET_MULTIPLE, which on a single record returns without
 * writing it: the row was read as garbage. Verify reported "S[100_][101_]: stored 0, expected
 * 2" on a correct store, and the repair added 2 more, every time. */
static void test_rebuild_single_entry_row(void)
{
    char *dir = check_tmpdir("single");
    store_t *s = open_store(dir, 0);
    store_batch_t *b;
    E(store_batch_new(&b));
    hiscore(b, 1, 100, 200), hiscore(b, 1, 101, 200);
    hiscore(b, 2, 200, 200), hiscore(b, 2, 201, 200), hiscore(b, 2, 202, 200);
    E(store_batch_commit(s, b));
    store_batch_free(b);
    char before[33], after[33];
    digest(s, before);
    verify_clean(s);
    store_rebuild_opts_t o;
    store_rebuild_result_t res;
    store_rebuild_opts_default(&o);
    E(store_rebuild(s, &o, &res)); /* repairing: must find nothing to repair */
    CHECK_EQ(res.s_diffs, 0);
    digest(s, after);
    CHECK_STREQ(before, after);
    store_close(s);
    check_rmdir(dir);
}

/* S exactly 2 (one user, equal pp) is left out by min_s 2 (S > min_s), S below 2 too, S 4 kept;
 * min_s 0 gives every entry. Five users of pp 600 on each map alone make the maps retained. */
static void test_retained_min_s(void)
{
    char *dir = check_tmpdir("retained");
    store_t *s = open_store(dir, 0);
    store_batch_t *b;
    E(store_batch_new(&b));
    for (uint32_t m = 0; m < 5; m++)
        for (uint32_t u = 0; u < 5; u++)
            hiscore(b, 1000 + 10 * m + u, 100 + m, 600);
    hiscore(b, 1, 100, 600), hiscore(b, 1, 101, 600); /* S(100, 101) = 2 */
    hiscore(b, 2, 100, 600), hiscore(b, 2, 102, 700); /* S(100, 102) = 1.43 */
    hiscore(b, 3, 101, 600), hiscore(b, 3, 102, 600); /* S(101, 102) = 2 + 2 */
    hiscore(b, 4, 101, 600), hiscore(b, 4, 102, 600);
    hiscore(b, 5, 103, 600), hiscore(b, 5, 104, 600); /* S(103, 104) = 2 */
    E(store_batch_commit(s, b));
    store_batch_free(b);
    row_entries_t all = {0}, above = {0};
    uint64_t *keys = NULL;
    uint32_t n = 0;
    E(store_retained_rows(s, 0, collect_rows, &all, &keys, &n));
    CHECK_EQ(n, 5);
    free(keys);
    E(store_retained_rows(s, 2.0, collect_rows, &above, &keys, &n));
    CHECK_EQ(n, 5);
    free(keys);
    CHECK_EQ(all.n, 8);
    uint32_t at_two = 0, k = 0;
    for (uint32_t q = 0; q < all.n; q++) {
        at_two += all.s[q] == 2.0;
        if (!(all.s[q] > 2.0))
            continue;
        CHECK(k < above.n);
        CHECK_EQ(above.row[k], all.row[q]);
        CHECK_EQ(above.col[k], all.col[q]);
        CHECK(above.s[k] == all.s[q]);
        k++;
    }
    CHECK_EQ(at_two, 4);
    CHECK_EQ(k, 2);
    CHECK_EQ(above.n, 2);
    CHECK(above.s[0] == 4.0);
    store_close(s);
    check_rmdir(dir);
}

int main(void)
{
    test_corpus_rows_parallel();
    test_snapshots_oom();
    test_snapshot_order();
    test_snapshot_repair_latest();
    test_rebuild_single_entry_row();
    test_dead_letters();
    test_retained_min_s();
    test_snapshot_orphan_manifest();
    test_dirty_above_min_s();
    static int perm[N_EVENTS], ident[N_EVENTS];
    char d1[33], d2[33], d3[33], d4[33];
    for (int seed = 1; seed <= 3; seed++) {
        make_events((uint64_t)seed);
        for (int i = 0; i < N_EVENTS; i++)
            perm[i] = ident[i] = i;
        rng_t r;
        rng_init(&r, 1000 + (uint64_t)seed);
        for (int i = N_EVENTS; i > 1; i--) {
            int j = (int)rng_below(&r, (uint64_t)i), t = perm[i - 1];
            perm[i - 1] = perm[j];
            perm[j] = t;
        }
        char *dir1 = check_tmpdir("store1"), *dir2 = check_tmpdir("store2"),
             *dir3 = check_tmpdir("store3");
        store_t *s1 = open_store(dir1, 0), *s2 = open_store(dir2, 0);
        store_t *s3 = open_store(dir3, 64 * 1024); /* forces several map growths */
        apply(s1, ident, N_EVENTS, 1);
        apply(s2, perm, N_EVENTS, 2);
        apply(s3, ident, N_EVENTS, 3);
        digest(s1, d1);
        digest(s2, d2);
        digest(s3, d3);
        CHECK_STREQ(d1, d2); /* arrival order and batching do not matter */
        CHECK_STREQ(d1, d3); /* map growth lost nothing */
        verify_clean(s1);
        verify_clean(s2);
        check_reference(s1);
        test_rebuild_with_commits(ident, d1);

        apply(s1, perm, N_EVENTS, 4); /* replaying everything changes nothing */
        digest(s1, d4);
        CHECK_STREQ(d1, d4);

        /* corruption in one direction of one pair: found, then repaired */
        const store_hiscore_t *h = &events[0].u.hiscore;
        uint64_t ka = item_key_make(h->beatmap_id, item_mods_from_legacy(h->mods_legacy)), kb = 0;
        for (int i = 1; i < N_EVENTS && !kb; i++)
            if (events[i].u.hiscore.user == h->user) {
                const store_hiscore_t *g = &events[i].u.hiscore;
                uint64_t k = item_key_make(g->beatmap_id, item_mods_from_legacy(g->mods_legacy));
                kb = k != ka ? k : 0;
            }
        CHECK(kb != 0);
        corrupt_and_repair(s2, ka, kb, d1); /* one side of the diagonal, */
        corrupt_and_repair(s2, kb, ka, d1); /* then the other */

        store_stats_t st;
        E(store_stats_get(s3, 0, &st));
        CHECK(st.map_size_bytes > 64 * 1024);
        CHECK(st.users > 0 && st.pairs > 0);
        store_close(s1);
        store_close(s2);
        store_close(s3);
        check_rmdir(dir1);
        check_rmdir(dir2);
        check_rmdir(dir3);
    }
    return 0;
}
