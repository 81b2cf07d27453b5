/*
 * gen.c: `atlasctl gen`, a synthetic osu!track hiscore stream with planted structure (DESIGN §8).
 *
 * The model, chosen so a good atlas visibly separates what was planted and a test can measure it:
 *  - beatmaps belong to one of 12 style groups (jump, stream, tech, farm, ...) and to a mapper
 *    of that group; popularity is a power law (Zipf over a random permutation, farm boosted);
 *  - each beatmap has mod variants (nomod always; DT, HR, DTHR often; EZ, HT, FL rarely) whose
 *    effective star rating differs (DT x1.4, HR x1.08, ...), so variants sit apart;
 *  - each player has a main and a secondary favourite group, a starting skill and a growth, and
 *    plays items of effective difficulty near their current skill; pp ~ 7.5 * stars^2.15 * perf;
 *  - a player's rows spread over their active years, with improvements (same item, newer time,
 *    higher pp), pp reworks (same item, newer time, other pp), exact replays of a row, other game
 *    modes and low-pp plays (both skipped by the store), HD/NC/NF bits (ignored by item ids);
 *  - the stream is sorted by update_time; times alternate between ISO 8601 and MySQL DATETIME.
 * Everything derives from --seed through per-user and per-beatmap RNG streams: same seed, same
 * bytes. Labels: item_id<TAB>group for every item.
 */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "algo/atl.h"
#include "algo/item.h"
#include "algo/rng.h"
#include "tools/cli.h"

#define N_GROUPS   12
#define EPOCH_2014 1388534400 /* 2014-01-01T00:00:00Z */
#define SPAN_S     (12.75 * 365.25 * 86400)

static const char *const group_names[N_GROUPS] = {"farm",     "jump",        "stream", "tech",
                                                  "alt",      "aim-control", "speed",  "low-ar",
                                                  "marathon", "flow",        "slider", "classic"};
static const double group_weight[N_GROUPS] = {3.0, 2.0, 1.3, 0.7, 0.4, 0.8,
                                              1.0, 0.4, 0.3, 1.0, 0.5, 0.8};

/* Variants: mods5, presence probability, effective-stars factor, relative popularity. */
static const struct {
    uint32_t mods5;
    double p, stars, pop;
} variants[] = {
    {0, 1.0, 1.0, 1.0},
    {ITEM_MOD_DT, 0.55, 1.40, 0.6},
    {ITEM_MOD_HR, 0.35, 1.08, 0.35},
    {ITEM_MOD_DT | ITEM_MOD_HR, 0.12, 1.50, 0.15},
    {ITEM_MOD_EZ, 0.03, 0.80, 0.05},
    {ITEM_MOD_HT, 0.04, 0.75, 0.05},
    {ITEM_MOD_FL, 0.03, 1.15, 0.05},
};

typedef struct gen_scale {
    const char *name;
    uint64_t users, beatmaps;
    double rows_per_user;
} gen_scale_t;

static const gen_scale_t scales[] = {
    {"tiny", 2000, 400, 30},
    {"small", 30000, 8000, 60},
    {"full", 450000, 100000, 90},
};

typedef struct gen_beatmap {
    uint32_t id, set_id, mapper;
    uint8_t group;
    float stars, bpm, cs, od, ar;
    uint16_t length;
    int64_t approved;
} gen_beatmap_t;

typedef struct gen_item {
    uint32_t beatmap; /* index into beatmaps */
    uint8_t mods5, group;
    float stars;
    double weight;
} gen_item_t;

typedef struct gen_row {
    uint32_t user, item, time, seq; /* seq: generation order, the sort's final tie-break */
    float pp;
    uint16_t mods;
    uint8_t mode, pad;
} gen_row_t;

typedef struct gen {
    uint64_t seed;
    gen_beatmap_t *beatmaps;
    uint32_t n_beatmaps;
    gen_item_t *items;
    uint32_t n_items;
    /* per group: item indices sorted by stars, and prefix sums of their weights */
    uint32_t *g_items[N_GROUPS];
    double *g_prefix[N_GROUPS];
    uint32_t g_n[N_GROUPS];
    double group_cum[N_GROUPS];
    gen_row_t *rows;
    size_t n_rows, cap_rows;
} gen_t;

static uint8_t pick_group(const gen_t *g, rng_t *r)
{
    double u = rng_uniform(r) * g->group_cum[N_GROUPS - 1];
    uint8_t k = 0;
    while (k < N_GROUPS - 1 && u >= g->group_cum[k])
        k++;
    return k;
}

static void make_beatmaps(gen_t *g)
{
    rng_t r;
    rng_init(&r, g->seed ^ 0xbea7ull);
    uint32_t *perm = xmalloc(g->n_beatmaps * sizeof(*perm));
    for (uint32_t i = 0; i < g->n_beatmaps; i++)
        perm[i] = i;
    for (uint32_t i = g->n_beatmaps; i > 1; i--) { /* Fisher-Yates: popularity rank */
        uint32_t j = (uint32_t)rng_below(&r, i), t = perm[i - 1];
        perm[i - 1] = perm[j];
        perm[j] = t;
    }
    g->items = xmalloc(g->n_beatmaps * ATL_ARRAY_LEN(variants) * sizeof(*g->items));
    uint32_t id = 50000;
    for (uint32_t b = 0; b < g->n_beatmaps; b++) {
        gen_beatmap_t *m = &g->beatmaps[b];
        id += 1 + (uint32_t)rng_below(&r, 60);
        m->id = id;
        m->set_id = id / 4 + 1000;
        m->group = pick_group(g, &r);
        m->mapper = m->group * 1000 + (uint32_t)rng_below(&r, 1 + g->n_beatmaps / 400);
        double s = 4.6 + 1.3 * rng_normal(&r);
        m->stars = (float)(s < 1.5 ? 1.5 : (s > 9.5 ? 9.5 : s));
        m->bpm = (float)(120 + 10 * (int)rng_below(&r, 16));
        m->cs = (float)(3 + rng_below(&r, 3));
        m->od = (float)(7 + rng_below(&r, 4));
        m->ar = (float)(m->group == 7 ? 7 + rng_below(&r, 2) : 8 + rng_below(&r, 3));
        m->length = (uint16_t)(m->group == 8 ? 300 + rng_below(&r, 600) : 60 + rng_below(&r, 240));
        m->approved =
            EPOCH_2014 - 4 * 365 * 86400LL + (int64_t)(rng_uniform(&r) * 16.5 * 365 * 86400);
        double pop = 1.0 / pow(perm[b] + 10.0, 1.0) * (m->group == 0 ? 3.0 : 1.0);
        for (size_t v = 0; v < ATL_ARRAY_LEN(variants); v++) {
            if (v > 0 && rng_uniform(&r) >= variants[v].p)
                continue;
            gen_item_t *it = &g->items[g->n_items++];
            it->beatmap = b;
            it->mods5 = (uint8_t)variants[v].mods5;
            it->group = m->group;
            it->stars = (float)(m->stars * variants[v].stars);
            it->weight = pop * variants[v].pop;
        }
    }
    free(perm);
}

/* A float's bits as an unsigned key with the same order (negatives flipped whole, others with the
 * sign bit set): items sort as packed (stars, index) keys, so qsort needs no context. */
static uint64_t stars_key(float stars, uint32_t i)
{
    uint32_t b;
    memcpy(&b, &stars, sizeof(b));
    b = b & 0x80000000u ? ~b : b | 0x80000000u;
    return (uint64_t)b << 32 | i;
}

/* @p idx ordered by the stars of the items it names, then by index. */
static void sort_by_stars(const gen_item_t *items, uint32_t *idx, uint32_t n)
{
    uint64_t *keys = xmalloc(((size_t)n + 1) * sizeof(*keys));
    for (uint32_t j = 0; j < n; j++)
        keys[j] = stars_key(items[idx[j]].stars, idx[j]);
    qsort(keys, n, sizeof(*keys), atl_cmp_u64);
    for (uint32_t j = 0; j < n; j++)
        idx[j] = (uint32_t)keys[j];
    free(keys);
}

static void index_groups(gen_t *g)
{
    for (int k = 0; k < N_GROUPS; k++) {
        g->g_items[k] = xmalloc(g->n_items * sizeof(uint32_t));
        g->g_n[k] = 0;
    }
    for (uint32_t i = 0; i < g->n_items; i++)
        g->g_items[g->items[i].group][g->g_n[g->items[i].group]++] = i;
    for (int k = 0; k < N_GROUPS; k++) {
        sort_by_stars(g->items, g->g_items[k], g->g_n[k]);
        g->g_prefix[k] = xmalloc((g->g_n[k] + 1) * sizeof(double));
        g->g_prefix[k][0] = 0;
        for (uint32_t j = 0; j < g->g_n[k]; j++)
            g->g_prefix[k][j + 1] = g->g_prefix[k][j] + g->items[g->g_items[k][j]].weight;
    }
}

/* First position in group k whose stars >= s. */
static uint32_t lower_stars(const gen_t *g, int k, double s)
{
    uint32_t lo = 0, hi = g->g_n[k];
    while (lo < hi) {
        uint32_t mid = (lo + hi) / 2;
        if (g->items[g->g_items[k][mid]].stars < s)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

/* An item of group k near effective difficulty @p target, by popularity. */
static uint32_t pick_item(const gen_t *g, rng_t *r, int k, double target)
{
    uint32_t n = g->g_n[k];
    uint32_t lo = lower_stars(g, k, target - 0.35), hi = lower_stars(g, k, target + 0.35);
    if (lo >= hi) {
        uint32_t at = lo < n ? lo : n - 1;
        return g->g_items[k][at];
    }
    const double *w = g->g_prefix[k];
    double u = w[lo] + rng_uniform(r) * (w[hi] - w[lo]);
    uint32_t a = lo, b = hi - 1;
    while (a < b) {
        uint32_t mid = (a + b) / 2;
        if (w[mid + 1] <= u)
            a = mid + 1;
        else
            b = mid;
    }
    return g->g_items[k][a];
}

static void push_row(gen_t *g, const gen_row_t *row)
{
    if (g->n_rows == g->cap_rows) {
        g->cap_rows = g->cap_rows ? g->cap_rows * 2 : 1 << 16;
        g->rows = xrealloc(g->rows, g->cap_rows * sizeof(*g->rows));
    }
    g->rows[g->n_rows] = *row;
    g->rows[g->n_rows].seq = (uint32_t)g->n_rows;
    g->n_rows++;
}

static uint16_t legacy_mods(rng_t *r, uint32_t mods5)
{
    uint32_t l = item_mods_to_legacy(mods5);
    if ((l & ITEM_LEGACY_DT) && rng_uniform(r) < 0.2)
        l |= ITEM_LEGACY_NC;
    if (rng_uniform(r) < 0.3)
        l |= 8; /* HD */
    if (rng_uniform(r) < 0.02)
        l |= 1; /* NF */
    return (uint16_t)l;
}

typedef struct played {
    uint32_t item;
    float pp;
} played_t;

static void make_user(gen_t *g, uint32_t user, double rows_per_user, played_t **hist, size_t *cap)
{
    rng_t r;
    rng_init(&r, g->seed ^ (0x5eedull << 32) ^ user);
    double sigma = 0.8;
    double n = rows_per_user * exp(sigma * rng_normal(&r) - sigma * sigma / 2);
    size_t n_rows = n < 3 ? 3 : (n > 5000 ? 5000 : (size_t)n);
    double start = rng_uniform(&r) * 0.8 * SPAN_S;
    double dur = (0.1 + 0.9 * rng_uniform(&r)) * (SPAN_S - start);
    double s0 = 3.2 + 0.9 * rng_normal(&r);
    s0 = s0 < 2.0 ? 2.0 : (s0 > 7.0 ? 7.0 : s0);
    double growth = 2.2 * rng_uniform(&r);
    uint8_t main_g = pick_group(g, &r), second = pick_group(g, &r);
    double p_main = 0.4 + 0.4 * rng_uniform(&r);
    size_t n_hist = 0;
    if (*cap < n_rows) {
        *cap = n_rows;
        *hist = xrealloc(*hist, *cap * sizeof(**hist));
    }
    for (size_t k = 0; k < n_rows; k++) {
        double frac = (k + rng_uniform(&r)) / (double)n_rows;
        gen_row_t row = {user, 0, (uint32_t)(start + frac * dur), 0, 0, 0, 0, 0};
        double u = rng_uniform(&r);
        if (n_hist > 0 && u < 0.13) { /* improvement (10%) or pp rework (3%) of an earlier play */
            played_t *p = &(*hist)[rng_below(&r, n_hist)];
            double f = u < 0.10 ? 1.0 + 0.08 * rng_uniform(&r) : 0.85 + 0.25 * rng_uniform(&r);
            p->pp = (float)(p->pp * f);
            row.item = p->item;
            row.pp = p->pp;
        } else {
            double v = rng_uniform(&r);
            int grp = v < p_main ? main_g : (v < p_main + 0.15 ? second : pick_group(g, &r));
            double target = s0 + growth * frac + 0.4 * rng_normal(&r);
            row.item = pick_item(g, &r, grp, target);
            double st = g->items[row.item].stars;
            row.pp = (float)(7.5 * pow(st, 2.15) * (0.82 + 0.18 * rng_uniform(&r)));
            (*hist)[n_hist++] = (played_t){row.item, row.pp};
        }
        row.mods = legacy_mods(&r, g->items[row.item].mods5);
        if (rng_uniform(&r) < 0.02)
            row.mode = (uint8_t)(1 + rng_below(&r, 3));
        push_row(g, &row);
        if (rng_uniform(&r) < 0.01)
            push_row(g, &row); /* osu!track saw the same row twice */
    }
}

static int cmp_row_time(const void *a, const void *b)
{
    const gen_row_t *x = a, *y = b;
    if (x->time != y->time)
        return x->time < y->time ? -1 : 1;
    return (x->seq > y->seq) - (x->seq < y->seq);
}

static void format_time(char *buf, size_t len, int64_t t, int iso)
{
    time_t tt = (time_t)t;
    struct tm tm;
    gmtime_r(&tt, &tm);
    strftime(buf, len, iso ? "%Y-%m-%dT%H:%M:%SZ" : "%Y-%m-%d %H:%M:%S", &tm);
}

static int write_rows_csv(const gen_t *g, FILE *f)
{
    char ut[32];
    fprintf(f, "user,beatmap_id,score,pp,mods,rank,score_time,update_time,mode,is_classic\n");
    for (size_t i = 0; i < g->n_rows; i++) {
        const gen_row_t *r = &g->rows[i];
        format_time(ut, sizeof(ut), EPOCH_2014 + (int64_t)r->time, 0);
        fprintf(f, "%" PRIu32 ",%" PRIu32 ",%" PRIu64 ",%.3f,%u,A,\"%s\",%s,%u,1\n", r->user,
                g->beatmaps[g->items[r->item].beatmap].id, (uint64_t)(r->pp * 31337.0f),
                (double)r->pp, r->mods, ut, ut, r->mode);
    }
    return ferror(f) ? -1 : 0;
}

static int write_rows(const gen_t *g, FILE *f)
{
    static const char *const ranks[] = {"A", "S", "SH", "X", "XH"};
    char ut[32], st[32];
    for (size_t i = 0; i < g->n_rows; i++) {
        const gen_row_t *r = &g->rows[i];
        const gen_item_t *it = &g->items[r->item];
        int64_t t = EPOCH_2014 + (int64_t)r->time;
        format_time(ut, sizeof(ut), t, r->user % 2 == 0);
        format_time(st, sizeof(st), t - (r->user * 7919 + r->item) % 259200, 1);
        fprintf(f,
                "{\"user\":%" PRIu32 ",\"beatmap_id\":%" PRIu32 ",\"score\":%" PRIu64
                ",\"pp\":%.3f,\"mods\":%u,\"rank\":\"%s\",\"score_time\":\"%s\","
                "\"update_time\":\"%s\",\"mode\":%u,\"is_classic\":%u}\n",
                r->user, g->beatmaps[it->beatmap].id, (uint64_t)(r->pp * 31337.0f), (double)r->pp,
                r->mods, ranks[(r->user + r->item) % 5], st, ut, r->mode, (r->user % 3) != 0);
    }
    return ferror(f) ? -1 : 0;
}

static int write_beatmaps(const gen_t *g, FILE *f)
{
    char ad[32], id[ITEM_ID_MAX];
    for (uint32_t b = 0; b < g->n_beatmaps; b++) {
        const gen_beatmap_t *m = &g->beatmaps[b];
        format_time(ad, sizeof(ad), m->approved, 0);
        fprintf(f,
                "{\"beatmap_id\":%u,\"beatmapset_id\":%u,\"title\":\"%s song %u\","
                "\"artist\":\"Artist %u\",\"version\":\"%s\",\"creator\":\"mapper%u\","
                "\"bpm\":%.0f,\"total_length\":%u,\"hit_length\":%u,\"diff_size\":%.0f,"
                "\"diff_overall\":%.0f,\"diff_approach\":%.0f,\"diff_drain\":5,"
                "\"difficultyrating\":%.2f,\"approved_date\":\"%s\",\"last_update\":\"%s\","
                "\"mode\":0}\n",
                m->id, m->set_id, group_names[m->group], m->id, m->set_id % 997,
                m->stars > 6 ? "Extra" : "Insane", m->mapper, (double)m->bpm, m->length,
                m->length - 5, (double)m->cs, (double)m->od, (double)m->ar, (double)m->stars, ad,
                ad);
    }
    for (uint32_t i = 0; i < g->n_items; i++) {
        const gen_item_t *it = &g->items[i];
        item_key_format(item_key_make(g->beatmaps[it->beatmap].id, it->mods5), id);
        fprintf(f, "{\"score_id\":\"%s\",\"stars\":%.3f,\"aim\":%.3f,\"speed\":%.3f}\n", id,
                (double)it->stars, (double)it->stars * 0.48, (double)it->stars * 0.42);
    }
    return ferror(f) ? -1 : 0;
}

static int write_labels(const gen_t *g, FILE *f)
{
    char id[ITEM_ID_MAX];
    for (uint32_t i = 0; i < g->n_items; i++) {
        const gen_item_t *it = &g->items[i];
        item_key_format(item_key_make(g->beatmaps[it->beatmap].id, it->mods5), id);
        fprintf(f, "%s\t%s\n", id, group_names[it->group]);
    }
    return ferror(f) ? -1 : 0;
}

static int write_file(const char *path, const gen_t *g, int (*fn)(const gen_t *, FILE *))
{
    FILE *f = strcmp(path, "-") == 0 ? stdout : fopen(path, "w");
    if (!f) {
        int rc = -errno;
        fprintf(stderr, "atlasctl gen: cannot open %s: %s\n", path, atl_strerror(rc));
        return rc;
    }
    int rc = fn(g, f);
    if (f != stdout ? fclose(f) != 0 : fflush(f) != 0)
        rc = -errno;
    if (rc != 0)
        fprintf(stderr, "atlasctl gen: write to %s failed: %s\n", path, atl_strerror(rc));
    return rc;
}

static void gen_free(gen_t *g)
{
    for (int k = 0; k < N_GROUPS; k++) {
        free(g->g_items[k]);
        free(g->g_prefix[k]);
    }
    free(g->beatmaps);
    free(g->items);
    free(g->rows);
}

/* Beatmaps, items by group, then every player's rows, sorted by update time. */
static void generate(gen_t *g, uint32_t n_users, double rows_per_user, cli_progress_t *prog)
{
    double cum = 0;
    for (int k = 0; k < N_GROUPS; k++)
        g->group_cum[k] = cum += group_weight[k];
    g->beatmaps = xcalloc(g->n_beatmaps, sizeof(*g->beatmaps));
    make_beatmaps(g);
    index_groups(g);
    played_t *hist = NULL;
    size_t hist_cap = 0;
    for (uint32_t u = 0; u < n_users; u++) {
        make_user(g, 1000 + u * 3, rows_per_user, &hist, &hist_cap);
        cli_progress_update(prog, 0, "%u/%u players, %zu rows", u + 1, n_users, g->n_rows);
    }
    free(hist);
    qsort(g->rows, g->n_rows, sizeof(*g->rows), cmp_row_time);
}

int cmd_gen(int argc, char **argv)
{
    const char *scale = "tiny", *out = NULL, *labels = NULL, *beatmaps = NULL, *format = "jsonl";
    uint64_t seed = 42, users = 0, items = 0;
    const cli_opt_t opts[] = {
        {"scale", CLI_STR, &scale, "NAME", "tiny | small | full (default tiny)"},
        {"seed", CLI_U64, &seed, "N", "random seed (default 42)"},
        {"users", CLI_U64, &users, "N", "number of players (overrides the scale)"},
        {"items", CLI_U64, &items, "N", "number of beatmaps (overrides the scale)"},
        {"out", CLI_STR, &out, "FILE", "hiscore rows (required; - for stdout)"},
        {"format", CLI_STR, &format, "FMT", "jsonl (default) or csv (the table's columns)"},
        {"labels", CLI_STR, &labels, "FILE", "write item_id<TAB>group for every item"},
        {"beatmaps", CLI_STR, &beatmaps, "FILE", "write beatmap and difficulty rows as JSONL"},
    };
    const cli_cmd_t cmd = {"gen", "--out FILE.jsonl [options]",
                           "Write a synthetic osu!track hiscore stream with planted style groups.",
                           opts, ATL_ARRAY_LEN(opts)};
    int rc = cli_parse(&cmd, argc, argv, NULL, NULL);
    if (rc != 0)
        return cli_exit(rc);
    const gen_scale_t *sc = NULL;
    for (size_t i = 0; i < ATL_ARRAY_LEN(scales); i++)
        if (strcmp(scales[i].name, scale) == 0)
            sc = &scales[i];
    int csv = strcmp(format, "csv") == 0;
    if (!sc || !out || (!csv && strcmp(format, "jsonl") != 0)) {
        fprintf(
            stderr, "atlasctl gen: %s (see --help)\n",
            !out ? "--out is required"
                 : (!sc ? "--scale must be tiny, small or full" : "--format must be jsonl or csv"));
        return CLI_EXIT_USAGE;
    }
    if ((users && users > 50000000) || (items && items > 20000000)) {
        fprintf(stderr, "atlasctl gen: --users at most 50000000, --items at most 20000000\n");
        return CLI_EXIT_USAGE;
    }
    gen_t g = {.seed = seed};
    g.n_beatmaps = (uint32_t)(items ? items : sc->beatmaps);
    uint32_t n_users = (uint32_t)(users ? users : sc->users);
    if (g.n_beatmaps == 0 || n_users == 0) {
        fprintf(stderr, "atlasctl gen: --users and --items must be positive\n");
        return CLI_EXIT_USAGE;
    }
    cli_progress_t prog;
    cli_progress_init(&prog, "gen");
    generate(&g, n_users, sc->rows_per_user, &prog);
    cli_progress_update(&prog, 1, "writing %zu rows", g.n_rows);
    rc = write_file(out, &g, csv ? write_rows_csv : write_rows);
    if (rc == 0 && labels)
        rc = write_file(labels, &g, write_labels);
    if (rc == 0 && beatmaps)
        rc = write_file(beatmaps, &g, write_beatmaps);
    cli_progress_done(&prog);
    if (rc == 0)
        fprintf(stderr, "gen: %u players, %u beatmaps, %u items, %zu rows (seed %" PRIu64 ")\n",
                n_users, g.n_beatmaps, g.n_items, g.n_rows, seed);
    gen_free(&g);
    return rc == 0 ? CLI_EXIT_OK : CLI_EXIT_FAIL;
}
