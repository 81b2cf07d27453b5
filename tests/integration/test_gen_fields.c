/*
 * `atlasctl gen`'s corpus fields are believable per style group and per map (issue 14: the
 * aim/speed ratio used to be 1.142-1.143 on every row, so the frontend's Aim/Speed filter and
 * colour showed nothing). Runs `atlasctl gen --users 2000 --items 3000` and checks, with the
 * bounds stated here:
 *  - aim/speed ratio of nomod maps: 5th-95th percentile spans at least 0.95..1.40 (the frontend
 *    colours 0.85-1.6), s.d. >= 0.15; jump, farm and aim-control groups aim-heavy (mean >= 1.25),
 *    stream and speed speed-heavy (mean <= 1.0), jump - stream >= 0.4; within a group
 *    0.03 <= s.d. <= 0.15 (varied, yet the groups stay apart);
 *  - stars: nomod stars = the beatmap's difficultyrating (0.01); every variant's stars = osu!'s
 *    formula of its aim and speed (0.02; FL x1.12); DT/nomod in [1.3, 1.5], HR in [1.01, 1.12],
 *    EZ and HT below nomod;
 *  - AR, CS, OD, BPM and length are integers; AR in 4..10, CS 2..7, OD 4..10; mean AR of maps
 *    >= 6 stars > mean AR of maps < 4 stars + 0.8, and the same for OD; low-ar's mean AR <= jump's
 *    - 1.5; BPM 80..320 with s.d. >= 15, speed's mean >= slider's + 50; marathon mean length
 *    >= 300 s, farm <= 130 s;
 *  - release years in 2007..2026 with s.d. >= 2.5; classic's mean <= 2012, tech's >= 2018;
 *  - pp follows stars: median of pp / (7.5 stars^2.15) over mode-0 plays in [0.8, 1.05], and the
 *    5th-95th percentile within [0.6, 1.5]; mean pp of plays of >= 6-star items > 2x that of
 *    < 4-star items;
 *  - plays per item: power law (the most played item >= 10x the median item).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cJSON.h>

#include "tests/check.h"

#define MAX_ITEMS 20000
#define N_GROUPS  12

static const char *const groups[N_GROUPS] = {"farm",     "jump",        "stream", "tech",
                                             "alt",      "aim-control", "speed",  "low-ar",
                                             "marathon", "flow",        "slider", "classic"};

typedef struct item {
    char id[32];
    int group;
    double stars, aim, speed;
    int users;
} item_t;

static item_t items[MAX_ITEMS];
static int n_items;

typedef struct stat {
    double sum, sq;
    int n;
} stat_t;

static void add(stat_t *s, double v)
{
    s->sum += v, s->sq += v * v, s->n++;
}

static double mean(const stat_t *s)
{
    return s->n ? s->sum / s->n : NAN;
}

static double sd(const stat_t *s)
{
    return s->n > 1 ? sqrt(fmax(0, s->sq / s->n - mean(s) * mean(s))) : 0;
}

static int cmp_d(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double pct(double *v, int n, double p)
{
    qsort(v, (size_t)n, sizeof(double), cmp_d);
    return v[(int)(p * (n - 1))];
}

static int group_of(const char *name)
{
    for (int g = 0; g < N_GROUPS; g++)
        if (strcmp(groups[g], name) == 0)
            return g;
    return -1;
}

static int cmp_item(const void *a, const void *b)
{
    return strcmp(((const item_t *)a)->id, ((const item_t *)b)->id);
}

static item_t *find(const char *id)
{
    item_t key;
    snprintf(key.id, sizeof(key.id), "%s", id);
    return bsearch(&key, items, (size_t)n_items, sizeof(item_t), cmp_item);
}

static double stars_of(double aim, double speed)
{
    double pa = pow(5 * fmax(1, aim / 0.0675) - 4, 3) / 100000;
    double ps = pow(5 * fmax(1, speed / 0.0675) - 4, 3) / 100000;
    double base = pow(pow(pa, 1.1) + pow(ps, 1.1), 1 / 1.1);
    return cbrt(1.12) * 0.027 * (cbrt(100000 / pow(2, 1 / 1.1) * base) + 4);
}

static double num(const cJSON *o, const char *k)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    CHECK(cJSON_IsNumber(v));
    return v->valuedouble;
}

static int is_int(double v)
{
    return v == floor(v);
}

static char line[1 << 16];

/* Labels, then difficulty rows (items), then beatmap rows. */
static void read_items(const char *dir, stat_t *ratio_g, double *ratios, int *n_ratios)
{
    char path[4200];
    snprintf(path, sizeof(path), "%s/labels.tsv", dir);
    FILE *f = fopen(path, "r");
    CHECK(f);
    char id[64], grp[64];
    while (fscanf(f, "%63s %63s", id, grp) == 2) {
        CHECK(n_items < MAX_ITEMS);
        snprintf(items[n_items].id, sizeof(items[n_items].id), "%s", id);
        items[n_items].group = group_of(grp);
        CHECK(items[n_items].group >= 0);
        n_items++;
    }
    fclose(f);
    qsort(items, (size_t)n_items, sizeof(item_t), cmp_item);
    snprintf(path, sizeof(path), "%s/bm.jsonl", dir);
    CHECK((f = fopen(path, "r")));
    while (fgets(line, sizeof(line), f)) {
        cJSON *o = cJSON_Parse(line);
        CHECK(o);
        const cJSON *sid = cJSON_GetObjectItemCaseSensitive(o, "score_id");
        if (cJSON_IsString(sid)) {
            item_t *it = find(sid->valuestring);
            CHECK(it);
            it->stars = num(o, "stars"), it->aim = num(o, "aim"), it->speed = num(o, "speed");
            const char *mods = strchr(it->id, '_') + 1;
            double want = stars_of(it->aim, it->speed) * (strchr(mods, 'F') ? 1.12 : 1.0);
            CHECK_NEAR(it->stars, want, 0.02);
            if (!*mods) {
                double r = it->aim / it->speed;
                add(&ratio_g[it->group], r);
                ratios[(*n_ratios)++] = r;
            }
        }
        cJSON_Delete(o);
    }
    fclose(f);
}

static void check_variants(void)
{
    for (int i = 0; i < n_items; i++) {
        const char *mods = strchr(items[i].id, '_') + 1;
        if (!*mods)
            continue;
        char base[32];
        snprintf(base, sizeof(base), "%.*s", (int)(mods - items[i].id), items[i].id);
        const item_t *nm = find(base);
        CHECK(nm);
        double q = items[i].stars / nm->stars;
        if (strcmp(mods, "DT") == 0)
            CHECK(q >= 1.3 && q <= 1.5);
        else if (strcmp(mods, "HR") == 0)
            CHECK(q >= 1.01 && q <= 1.12);
        else if (strcmp(mods, "EZ") == 0 || strcmp(mods, "HT") == 0)
            CHECK(q < 1);
    }
}

int main(void)
{
    char *dir = check_tmpdir("genfields"), cmd[8400];
    snprintf(cmd, sizeof(cmd),
             "'%s' gen --users 2000 --items 3000 --out '%s/rows.jsonl' --beatmaps '%s/bm.jsonl' "
             "--labels '%s/labels.tsv' 2>/dev/null",
             ATL_ATLASCTL, dir, dir, dir);
    CHECK_EQ(system(cmd), 0);
    static double ratios[MAX_ITEMS], buf[1 << 20];
    stat_t ratio_g[N_GROUPS] = {{0}}, ar_g[N_GROUPS] = {{0}}, bpm_g[N_GROUPS] = {{0}};
    stat_t len_g[N_GROUPS] = {{0}}, year_g[N_GROUPS] = {{0}}, bpm = {0}, year = {0};
    stat_t ar_lo = {0}, ar_hi = {0}, od_lo = {0}, od_hi = {0}, pp_lo = {0}, pp_hi = {0};
    int n_ratios = 0;
    read_items(dir, ratio_g, ratios, &n_ratios);
    CHECK(n_ratios > 1000);
    check_variants();

    /* aim/speed */
    double p5 = pct(ratios, n_ratios, 0.05), p95 = pct(ratios, n_ratios, 0.95);
    stat_t all = {0};
    for (int i = 0; i < n_ratios; i++)
        add(&all, ratios[i]);
    fprintf(stderr, "aim/speed: p5 %.3f p95 %.3f sd %.3f; jump %.3f stream %.3f\n", p5, p95,
            sd(&all), mean(&ratio_g[1]), mean(&ratio_g[2]));
    CHECK(p5 <= 0.95 && p95 >= 1.40 && sd(&all) >= 0.15);
    CHECK(mean(&ratio_g[1]) >= 1.25 && mean(&ratio_g[0]) >= 1.25 && mean(&ratio_g[5]) >= 1.25);
    CHECK(mean(&ratio_g[2]) <= 1.0 && mean(&ratio_g[6]) <= 1.0);
    CHECK(mean(&ratio_g[1]) - mean(&ratio_g[2]) >= 0.4);
    for (int g = 0; g < N_GROUPS; g++)
        CHECK(ratio_g[g].n < 5 || (sd(&ratio_g[g]) >= 0.03 && sd(&ratio_g[g]) <= 0.15));

    /* beatmap rows */
    char path[4200];
    snprintf(path, sizeof(path), "%s/bm.jsonl", dir);
    FILE *f = fopen(path, "r");
    CHECK(f);
    while (fgets(line, sizeof(line), f)) {
        cJSON *o = cJSON_Parse(line);
        if (cJSON_GetObjectItemCaseSensitive(o, "beatmap_id")) {
            char id[32];
            snprintf(id, sizeof(id), "%.0f_", num(o, "beatmap_id"));
            const item_t *it = find(id);
            CHECK(it);
            double ar = num(o, "diff_approach"), cs = num(o, "diff_size"),
                   od = num(o, "diff_overall");
            double b = num(o, "bpm"), len = num(o, "total_length"), st = num(o, "difficultyrating");
            CHECK(is_int(ar) && is_int(cs) && is_int(od) && is_int(b) && is_int(len));
            CHECK(ar >= 4 && ar <= 10 && cs >= 2 && cs <= 7 && od >= 4 && od <= 10);
            CHECK(b >= 80 && b <= 320);
            CHECK_NEAR(st, it->stars, 0.01);
            const cJSON *ad = cJSON_GetObjectItemCaseSensitive(o, "approved_date");
            CHECK(cJSON_IsString(ad));
            int y = atoi(ad->valuestring);
            CHECK(y >= 2007 && y <= 2026);
            add(&ar_g[it->group], ar), add(&bpm_g[it->group], b), add(&len_g[it->group], len);
            add(&year_g[it->group], y), add(&bpm, b), add(&year, y);
            if (it->stars >= 6)
                add(&ar_hi, ar), add(&od_hi, od);
            if (it->stars < 4)
                add(&ar_lo, ar), add(&od_lo, od);
        }
        cJSON_Delete(o);
    }
    fclose(f);
    fprintf(stderr, "AR <4* %.2f >=6* %.2f; OD %.2f %.2f; bpm sd %.1f; years sd %.2f\n",
            mean(&ar_lo), mean(&ar_hi), mean(&od_lo), mean(&od_hi), sd(&bpm), sd(&year));
    CHECK(mean(&ar_hi) > mean(&ar_lo) + 0.8 && mean(&od_hi) > mean(&od_lo) + 0.8);
    CHECK(mean(&ar_g[7]) <= mean(&ar_g[1]) - 1.5);
    CHECK(sd(&bpm) >= 15 && mean(&bpm_g[6]) >= mean(&bpm_g[10]) + 50);
    CHECK(mean(&len_g[8]) >= 300 && mean(&len_g[0]) <= 130);
    CHECK(sd(&year) >= 2.5 && mean(&year_g[11]) <= 2012 && mean(&year_g[3]) >= 2018);

    /* plays: pp against stars, players per item */
    snprintf(path, sizeof(path), "%s/rows.jsonl", dir);
    CHECK((f = fopen(path, "r")));
    int n_pp = 0;
    while (fgets(line, sizeof(line), f)) {
        cJSON *o = cJSON_Parse(line);
        CHECK(o);
        int mods = (int)num(o, "mods");
        if ((int)num(o, "mode") == 0) {
            char id[32];
            int k = snprintf(id, sizeof(id), "%.0f_", num(o, "beatmap_id"));
            if (mods & (64 | 512))
                k += snprintf(id + k, sizeof(id) - (size_t)k, "DT");
            if (mods & 2)
                k += snprintf(id + k, sizeof(id) - (size_t)k, "EZ");
            if (mods & 1024)
                k += snprintf(id + k, sizeof(id) - (size_t)k, "FL");
            if (mods & 16)
                k += snprintf(id + k, sizeof(id) - (size_t)k, "HR");
            if (mods & 256)
                snprintf(id + k, sizeof(id) - (size_t)k, "HT");
            item_t *it = find(id);
            CHECK(it);
            double pp = num(o, "pp");
            it->users++;
            if (n_pp < (int)(sizeof(buf) / sizeof(buf[0])))
                buf[n_pp++] = pp / (7.5 * pow(it->stars, 2.15));
            if (it->stars >= 6)
                add(&pp_hi, pp);
            if (it->stars < 4)
                add(&pp_lo, pp);
        }
        cJSON_Delete(o);
    }
    fclose(f);
    double med = pct(buf, n_pp, 0.5), q5 = pct(buf, n_pp, 0.05), q95 = pct(buf, n_pp, 0.95);
    fprintf(stderr, "pp/(7.5 stars^2.15): median %.3f p5 %.3f p95 %.3f; pp <4* %.0f >=6* %.0f\n",
            med, q5, q95, mean(&pp_lo), mean(&pp_hi));
    CHECK(med >= 0.8 && med <= 1.05 && q5 >= 0.6 && q95 <= 1.5);
    CHECK(mean(&pp_hi) > 2 * mean(&pp_lo));
    int nu = 0;
    for (int i = 0; i < n_items; i++)
        if (items[i].users > 0)
            buf[nu++] = items[i].users;
    double top = pct(buf, nu, 1.0), mid = pct(buf, nu, 0.5);
    fprintf(stderr, "plays per item: median %.0f, max %.0f\n", mid, top);
    CHECK(top >= 10 * mid);
    check_rmdir(dir);
    return 0;
}
