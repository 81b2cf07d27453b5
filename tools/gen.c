/*
 * gen.c: `atlasctl gen`, a synthetic osu!track hiscore stream with planted structure (DESIGN §8).
 *
 * The model, chosen so a good atlas visibly separates what was planted and a test can measure it:
 *  - beatmaps belong to one of 12 style groups (jump, stream, tech, farm, ...) and to a mapper
 *    of that group; popularity is a power law (Zipf over a random permutation, farm boosted);
 *  - each group has a style (gen_style_t): aim/speed balance (jump aim-heavy, stream speed-heavy),
 *    BPM, drain length, AR/CS/OD offsets, star level and era of release; every beatmap draws its
 *    fields around its group's (AR/CS/OD/BPM integers, as in osu!track's beatmaps table);
 *  - each beatmap has mod variants (nomod always; DT, HR, DTHR often; EZ, HT, FL rarely) whose
 *    aim and speed difficulty scale by the mod (DT speed more than aim, HR aim more than speed)
 *    and whose star rating follows from aim and speed by osu!'s formula, so stars, aim, speed
 *    and the pp of plays (which follow stars) agree, and variants sit apart;
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

/*
 * Style groups. ratio: aim / speed difficulty of the nomod beatmap (the frontend colours
 * 0.85-1.6); stars: centre of the nomod star rating; bpm, length in seconds (drain); AR and OD
 * offsets from the star level's typical value, CS centre; year: centre of the release years.
 */
typedef struct gen_style {
    const char *name;
    double weight;
    uint8_t related[2]; /* styles that share players: a player's other picks lean to them */
    double ratio, ratio_sd, stars;
    double bpm, bpm_sd;
    double len, len_sd, len_min, len_max;
    double ar, cs, od;
    double year, year_sd;
} gen_style_t;

static const gen_style_t styles[N_GROUPS] = {
    {"farm", 3.0, {1, 5}, 1.38, 0.08, 5.0, 185, 15, 95, 25, 45, 200, 0.5, 4.0, 0.0, 2016.5, 2.5},
    {"jump", 2.0, {0, 5}, 1.50, 0.10, 4.9, 195, 20, 140, 45, 60, 300, 0.6, 4.0, 0.0, 2018.5, 3.0},
    {"stream", 1.3, {6, 4}, 0.90, 0.06, 4.7, 205, 22, 170, 50, 60, 360, 0.0, 4.0, 0.5, 2019.5, 3.0},
    {"tech", 0.7, {10, 4}, 1.12, 0.10, 4.6, 180, 25, 160, 50, 60, 360, 0.0, 4.3, 0.5, 2020.5, 2.5},
    {"alt", 0.4, {2, 3}, 0.97, 0.07, 4.5, 215, 25, 150, 45, 60, 360, 0.0, 4.0, 0.3, 2019.5, 3.0},
    {"aim-control",
     0.8,
     {1, 9},
     1.32,
     0.09,
     4.5,
     165,
     20,
     150,
     45,
     60,
     360,
     0.3,
     5.2,
     0.0,
     2020.5,
     3.0},
    {"speed", 1.0, {2, 8}, 0.86, 0.05, 4.9, 235, 20, 120, 40, 45, 300, 0.3, 3.8, 0.5, 2019.5, 3.0},
    {"low-ar",
     0.4,
     {11, 9},
     1.18,
     0.10,
     4.2,
     170,
     20,
     140,
     45,
     60,
     300,
     -2.2,
     3.5,
     -0.5,
     2012.5,
     2.5},
    {"marathon",
     0.3,
     {2, 6},
     0.98,
     0.08,
     4.6,
     185,
     20,
     480,
     150,
     300,
     1000,
     0.0,
     4.0,
     0.0,
     2017.5,
     4.0},
    {"flow", 1.0, {11, 5}, 1.26, 0.08, 4.5, 180, 18, 150, 40, 60, 300, 0.2, 4.0, 0.0, 2014.5, 3.0},
    {"slider",
     0.5,
     {3, 11},
     1.20,
     0.10,
     4.3,
     150,
     25,
     150,
     45,
     60,
     300,
     -0.3,
     4.0,
     -0.3,
     2013.5,
     3.0},
    {"classic",
     0.8,
     {7, 9},
     1.05,
     0.08,
     4.0,
     170,
     20,
     130,
     40,
     60,
     300,
     -0.8,
     4.0,
     -0.5,
     2010.5,
     2.0},
};

/* Variants: mods5, presence probability, aim and speed difficulty factors, star factor on top
 * of the aim/speed formula (flashlight's own skill), relative popularity. */
static const struct {
    uint32_t mods5;
    double p, aim, speed, fl, pop;
} variants[] = {
    {0, 1.0, 1.0, 1.0, 1.0, 1.0},
    {ITEM_MOD_DT, 0.55, 1.37, 1.46, 1.0, 0.6},
    {ITEM_MOD_HR, 0.35, 1.09, 1.02, 1.0, 0.35},
    {ITEM_MOD_DT | ITEM_MOD_HR, 0.12, 1.49, 1.49, 1.0, 0.15},
    {ITEM_MOD_EZ, 0.03, 0.80, 0.98, 1.0, 0.05},
    {ITEM_MOD_HT, 0.04, 0.76, 0.72, 1.0, 0.05},
    {ITEM_MOD_FL, 0.03, 1.00, 1.00, 1.12, 0.05},
};

static const char *const title_a[] = {
    "Crimson", "Silver",  "Endless", "Broken", "Neon",  "Distant", "Falling", "Electric",
    "Hidden",  "Golden",  "Frozen",  "Wild",   "Last",  "Paper",   "Velvet",  "Burning",
    "Hollow",  "Shining", "Quiet",   "Lunar",  "Solar", "Fading",  "Rising",  "Scarlet"};
static const char *const title_b[] = {
    "Horizon", "Requiem", "Daydream", "Machine", "Garden", "Signal",  "Flame",  "Harmony",
    "Rain",    "Paradox", "Memory",   "Runner",  "Empire", "Voyage",  "Heart",  "Storm",
    "Lights",  "Mirage",  "Tides",    "Skyline", "Echoes", "Phantom", "Spiral", "Dawn"};
static const char *const mapper_a[] = {"Kei", "Sot", "Ren", "Mio", "Aru", "Val", "Nyx", "Tor",
                                       "Lum", "Oki", "Fen", "Ziv", "Hal", "Ise", "Cro", "Yun"};
static const char *const mapper_b[] = {"ra", "shi", "ko", "vex", "ne", "lan", "to", "mi"};

/* osu! (2021-) star rating from aim and speed difficulty: each skill's performance
 * (5 max(1, d / 0.0675) - 4)^3 / 1e5, combined as a 1.1-norm, then cbrt-scaled. */
static double stars_of(double aim, double speed)
{
    double pa = pow(5 * fmax(1, aim / 0.0675) - 4, 3) / 100000;
    double ps = pow(5 * fmax(1, speed / 0.0675) - 4, 3) / 100000;
    double base = pow(pow(pa, 1.1) + pow(ps, 1.1), 1 / 1.1);
    return base < 1e-5 ? 0 : cbrt(1.12) * 0.027 * (cbrt(100000 / pow(2, 1 / 1.1) * base) + 4);
}

/* The aim difficulty a with stars_of(a, a / ratio) == stars (bisection; monotone in a). */
static double aim_for(double stars, double ratio)
{
    double lo = 0, hi = 10;
    for (int i = 0; i < 60; i++) {
        double mid = (lo + hi) / 2;
        if (stars_of(mid, mid / ratio) < stars)
            lo = mid;
        else
            hi = mid;
    }
    return (lo + hi) / 2;
}

static double clampd(double v, double lo, double hi)
{
    return v < lo ? lo : (v > hi ? hi : v);
}

/* pop_exponent: beatmap popularity ~ 1 / (rank + 10)^e; the demo's flatter tail keeps more
 * beatmaps above the retention threshold for the same number of rows. */
typedef struct gen_scale {
    const char *name;
    uint64_t users, beatmaps;
    double rows_per_user, pop_exponent;
} gen_scale_t;

/* real: ~92M rows, the size of osu!track's table; the full scale's beatmaps, more players */
static const gen_scale_t scales[] = {
    {"tiny", 2000, 400, 30, 1.0},       {"demo", 17000, 3200, 40, 0.3},
    {"small", 30000, 8000, 60, 1.0},    {"full", 450000, 100000, 90, 1.0},
    {"real", 1020000, 100000, 90, 1.0},
};

typedef struct gen_beatmap {
    uint32_t id, set_id, mapper;
    uint8_t group;
    float stars, aim, speed; /* nomod */
    uint16_t bpm, length;
    uint8_t ar, cs, od;
    int64_t approved;
} gen_beatmap_t;

typedef struct gen_item {
    uint32_t beatmap; /* index into beatmaps */
    uint8_t mods5, group;
    float stars, aim, speed;
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
    double pop_exponent;
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

/* One beatmap's fields around its group's style. */
static void beatmap_fields(gen_beatmap_t *m, rng_t *r)
{
    const gen_style_t *st = &styles[m->group];
    double s = clampd(st->stars + 1.2 * rng_normal(r), 1.5, 9.5);
    double ratio = clampd(st->ratio + st->ratio_sd * rng_normal(r), 0.7, 2.2);
    double aim = aim_for(s, ratio);
    m->aim = (float)aim, m->speed = (float)(aim / ratio);
    m->stars = (float)stars_of(aim, aim / ratio);
    m->bpm = (uint16_t)lround(clampd(st->bpm + st->bpm_sd * rng_normal(r), 80, 320));
    m->length =
        (uint16_t)lround(clampd(st->len + st->len_sd * rng_normal(r), st->len_min, st->len_max));
    /* harder maps are faster to read and stricter: AR/OD grow with stars (integers, like the
     * table), CS is the group's habit */
    m->ar = (uint8_t)lround(clampd(7.6 + 0.55 * (s - 4) + st->ar + 0.5 * rng_normal(r), 4, 10));
    m->od = (uint8_t)lround(clampd(7.0 + 0.6 * (s - 4) + st->od + 0.6 * rng_normal(r), 4, 10));
    m->cs = (uint8_t)lround(clampd(st->cs + 0.5 * rng_normal(r), 2, 7));
    double year = clampd(st->year + st->year_sd * rng_normal(r), 2007.8, 2025.9);
    m->approved = (int64_t)((year - 1970) * 365.2425 * 86400);
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
        beatmap_fields(m, &r);
        double pop = 1.0 / pow(perm[b] + 10.0, g->pop_exponent) * (m->group == 0 ? 3.0 : 1.0);
        for (size_t v = 0; v < ATL_ARRAY_LEN(variants); v++) {
            if (v > 0 && rng_uniform(&r) >= variants[v].p)
                continue;
            gen_item_t *it = &g->items[g->n_items++];
            it->beatmap = b;
            it->mods5 = (uint8_t)variants[v].mods5;
            it->group = m->group;
            it->aim = (float)(m->aim * variants[v].aim);
            it->speed = (float)(m->speed * variants[v].speed);
            it->stars = v == 0 ? m->stars : (float)(stars_of(it->aim, it->speed) * variants[v].fl);
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
    /* Few beatmaps leave some groups without items (`--items 10` fills at most 10 of 12): such a
     * group's plays go to the next group that has items. Some group has: every beatmap has its
     * nomod item. Sizes that fill every group draw exactly as before. */
    while (g->g_n[k] == 0)
        k = (k + 1) % N_GROUPS;
    uint32_t n = g->g_n[k];
    uint32_t lo = lower_stars(g, k, target - 0.7), hi = lower_stars(g, k, target + 0.7);
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
    uint8_t main_g = pick_group(g, &r);
    uint8_t second =
        rng_uniform(&r) < 0.7 ? styles[main_g].related[rng_below(&r, 2)] : pick_group(g, &r);
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
            int grp = v < p_main ? main_g
                      : v < p_main + 0.15
                          ? second
                          : (rng_uniform(&r) < 0.5 ? styles[main_g].related[rng_below(&r, 2)]
                                                   : pick_group(g, &r));
            double target = s0 + growth * frac + 0.6 * rng_normal(&r);
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

static const char *version_name(double stars)
{
    return stars < 2.7
               ? "Normal"
               : (stars < 4.0 ? "Hard"
                              : (stars < 5.3 ? "Insane" : (stars < 6.5 ? "Extra" : "Extreme")));
}

static int write_beatmaps(const gen_t *g, FILE *f)
{
    char ad[32], id[ITEM_ID_MAX];
    for (uint32_t b = 0; b < g->n_beatmaps; b++) {
        const gen_beatmap_t *m = &g->beatmaps[b];
        uint32_t set = m->set_id, who = m->mapper;
        format_time(ad, sizeof(ad), m->approved, 0);
        fprintf(f,
                "{\"beatmap_id\":%u,\"beatmapset_id\":%u,\"title\":\"%s %s\","
                "\"artist\":\"Artist %u\",\"version\":\"%s\",\"creator\":\"%s%s%u\","
                "\"bpm\":%u,\"total_length\":%u,\"hit_length\":%u,\"diff_size\":%u,"
                "\"diff_overall\":%u,\"diff_approach\":%u,\"diff_drain\":5,"
                "\"difficultyrating\":%.2f,\"approved_date\":\"%s\",\"last_update\":\"%s\","
                "\"mode\":0}\n",
                m->id, set, title_a[(set * 7u) % ATL_ARRAY_LEN(title_a)],
                title_b[(set * 13u / 3u) % ATL_ARRAY_LEN(title_b)], set % 997,
                version_name(m->stars), mapper_a[(who * 5u) % ATL_ARRAY_LEN(mapper_a)],
                mapper_b[(who / 3u) % ATL_ARRAY_LEN(mapper_b)], who % 1000, m->bpm, m->length,
                m->length - m->length / 20, m->cs, m->od, m->ar, (double)m->stars, ad, ad);
    }
    for (uint32_t i = 0; i < g->n_items; i++) {
        const gen_item_t *it = &g->items[i];
        item_key_format(item_key_make(g->beatmaps[it->beatmap].id, it->mods5), id);
        fprintf(f, "{\"score_id\":\"%s\",\"stars\":%.3f,\"aim\":%.3f,\"speed\":%.3f}\n", id,
                (double)it->stars, (double)it->aim, (double)it->speed);
    }
    return ferror(f) ? -1 : 0;
}

static int write_labels(const gen_t *g, FILE *f)
{
    char id[ITEM_ID_MAX];
    for (uint32_t i = 0; i < g->n_items; i++) {
        const gen_item_t *it = &g->items[i];
        item_key_format(item_key_make(g->beatmaps[it->beatmap].id, it->mods5), id);
        fprintf(f, "%s\t%s\n", id, styles[it->group].name);
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
        g->group_cum[k] = cum += styles[k].weight;
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
        {"scale", CLI_STR, &scale, "NAME", "tiny | demo | small | full | real (default tiny)"},
        {"seed", CLI_U64, &seed, "N", "random seed (default 42)"},
        {"users", CLI_U64, &users, "N", "number of players (default: the scale's)"},
        {"items", CLI_U64, &items, "N", "number of beatmaps (default: the scale's)"},
        {"out", CLI_NEED, &out, "FILE", "hiscore rows (- for stdout)"},
        {"format", CLI_STR, &format, "FMT", "jsonl (default) or csv (the table's columns)"},
        {"labels", CLI_STR, &labels, "FILE", "write item_id<TAB>group for every item"},
        {"beatmaps", CLI_STR, &beatmaps, "FILE", "write beatmap and difficulty rows as JSONL"},
    };
    /* 0 in users and items means "not given": the scale's size */
    const cli_range_t ranges[] = {{"users", 1, 50000000}, {"items", 1, 20000000}};
    const cli_cmd_t cmd = {"gen",
                           "--out FILE.jsonl [options]",
                           "Write a synthetic osu!track hiscore stream with planted style groups.",
                           opts,
                           ATL_ARRAY_LEN(opts),
                           ranges,
                           ATL_ARRAY_LEN(ranges)};
    int rc = cli_parse(&cmd, argc, argv, NULL, NULL);
    if (rc != 0)
        return cli_exit(rc);
    const gen_scale_t *sc = NULL;
    for (size_t i = 0; i < ATL_ARRAY_LEN(scales); i++)
        if (strcmp(scales[i].name, scale) == 0)
            sc = &scales[i];
    int csv = strcmp(format, "csv") == 0;
    if (!sc || (!csv && strcmp(format, "jsonl") != 0)) {
        fprintf(stderr, "atlasctl gen: %s (see --help)\n",
                !sc ? "--scale must be tiny, demo, small, full or real"
                    : "--format must be jsonl or csv");
        return CLI_EXIT_USAGE;
    }
    gen_t g = {.seed = seed, .pop_exponent = sc->pop_exponent};
    g.n_beatmaps = (uint32_t)(items ? items : sc->beatmaps);
    uint32_t n_users = (uint32_t)(users ? users : sc->users);
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
