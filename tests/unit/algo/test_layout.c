/*
 * 2-D layout: the a/b fit against umap-learn's values (UMAP_SPEC §4), planted clusters
 * separated in 2-D (kNN label purity; umap-learn measured 0.988 on this setup, §12),
 * determinism, a warm start + Procrustes that keeps an unchanged input in place, exact
 * Procrustes recovery of a known rotation/reflection (the frame: test_frame.c), the SGD's
 * calendar schedule against umap-learn's clocks; a partial layout that computes only the kNN
 * rows it reads gives the bits of one that computes every row; the SGD kernel against a plain
 * statement of its visits.
 */
#include <errno.h>
#include <math.h>

#include "algo/fastmath.h"
#include "algo/layout.h"
#include "algo/quality.h"
#include "algo/rng.h"
#include "tests/check.h"
#include "tests/fault/fault.h"

enum { C = 5, PER = 400, N = C * PER };

typedef struct oom_layout {
    const double *x, *y; /* input (N x 3) and a converged layout of it */
    const uint8_t *placed;
    double *yw;
} oom_layout_t;

static int oom_layout_run(void *ud)
{
    oom_layout_t *c = ud;
    layout_opts_t o;
    layout_opts_default(&o);
    o.n_neighbors = 10;
    o.n_epochs = 2;
    o.warm_epochs = 2;
    layout_result_t res;
    memcpy(c->yw, c->y, sizeof(double) * 200 * 2);
    return layout_umap(c->x, 200, 3, &o, c->yw, c->placed, &res);
}

/* Every allocation failure of a warm layout reaches the caller (issue 10.15: init_warm returned
 * nothing when its malloc failed; the unplaced points kept whatever coordinates they had and
 * layout_umap returned 0). 200 points, 20 of them new. */
static void test_oom(const double *x, const double *y)
{
    static uint8_t placed[200];
    static double yw[200 * 2];
    memset(placed, 1, sizeof(placed));
    for (int i = 0; i < 200; i += 10)
        placed[i] = 0;
    oom_layout_t c = {x, y, placed, yw};
    CHECK(fault_each(oom_layout_run, &c, "warm layout_umap") > 3);
}

/*
 * The calendar's schedule (layout__sample_epoch, layout__sample_negatives) against umap-learn's
 * clock loop (UMAP_SPEC §6: next += eps when due, negatives m = (int)((n - next_neg) / eps_neg),
 * next_neg += m eps_neg), for 2,000 periods in [1, n_epochs] and n_epochs 200 and 500: every
 * edge is sampled exactly as often and in the same epochs, with the same negatives per sample;
 * only where a period makes the negatives' clock land on whole epochs (eps = 1.5: eps / 5 =
 * 0.3) do umap-learn's accumulated sums round across a boundary, moving one negative between
 * neighbouring samples, and their total over the run then differs by at most 1.
 */
static void test_schedule(void)
{
    rng_t r;
    rng_init(&r, 5);
    uint64_t total = 0, moved = 0;
    for (int t = 0; t < 2000; t++) {
        uint32_t n_epochs = t % 2 ? 200 : 500;
        /* periods: 1, whole and half numbers, and random ones (most edges have eps in 1-20) */
        int exact = t == 0 || t % 7 < 2;
        float eps = t == 0       ? 1.0f
                    : t % 7 == 0 ? (float)(1 + t % 40)
                    : t % 7 == 1 ? (float)(1 + t % 40) + 0.5f
                                 : (float)(1 + (n_epochs - 1) * rng_uniform(&r) * rng_uniform(&r));
        double e = eps, en = e / 5, next = e, next_neg = en;
        uint32_t k = 1, visits = 0;
        int64_t neg_old = 0, neg_new = 0;
        for (uint32_t ep = 0; ep < n_epochs; ep++) {
            if (!(next <= ep))
                continue;
            int m = (int)((ep - next_neg) / en);
            next_neg += m * en;
            next += e;
            CHECK_EQ(layout__sample_epoch(eps, k), ep);
            uint32_t mn = layout__sample_negatives(eps, k, 5);
            if (!exact)
                CHECK_EQ(mn, (uint32_t)m);
            moved += mn != (uint32_t)m;
            neg_old += m, neg_new += mn;
            k++, visits++;
        }
        CHECK(layout__sample_epoch(eps, k) >= n_epochs); /* and no further sample */
        CHECK(neg_new - neg_old <= 1 && neg_old - neg_new <= 1);
        total += visits;
    }
    fprintf(stderr, "schedule: %llu samples, %llu with a negative moved by rounding\n",
            (unsigned long long)total, (unsigned long long)moved);
    CHECK(total > 20000);
    CHECK(moved * 10 < total); /* only in the whole and half-epoch periods */
}

/*
 * A partial warm layout computes only the kNN rows it reads (the moving points', their
 * neighbours', and those of points whose k nearest hold a moving point); its result equals,
 * bit for bit, that of computing every row (knn_every_row). Clusters plus outliers: an outlier
 * lists points of the nearest cluster that do not list it, so the rows found by the bound pass
 * matter (skipping that pass fails this test). Also with most points moving (every row).
 */
static void test_partial_rows(void)
{
    enum { NP = 1500, NOUT = 100 };

    static double x[NP * 3], y[NP * 2], ya[NP * 2], yb[NP * 2];
    static uint8_t placed[NP], movable[NP];
    rng_t r;
    rng_init(&r, 5);
    for (int i = 0; i < NP; i++) {
        int out = i >= NP - NOUT;
        for (int d = 0; d < 3; d++)
            x[i * 3 + d] =
                out ? -30 + 70 * rng_uniform(&r) : 10 * (i % C) + (d == 1 ? 5 : 0) + rng_normal(&r);
    }
    layout_opts_t o;
    layout_opts_default(&o);
    o.n_neighbors = 15;
    E(layout_umap(x, NP, 3, &o, y, NULL, NULL));
    memset(placed, 1, sizeof(placed));
    for (int round = 0; round < 8; round++) {
        memset(movable, 0, sizeof(movable));
        if (round == 7) {
            for (int i = 0; i < NP; i += 2)
                movable[i] = 1; /* most points: every row is computed */
        } else {
            /* an outlier's nearest cluster point, and two other points */
            int o_i = NP - NOUT + (int)rng_below(&r, NOUT), best = 0;
            double bd = INFINITY;
            for (int i = 0; i < NP - NOUT; i++) {
                double d = 0;
                for (int c = 0; c < 3; c++)
                    d += (x[i * 3 + c] - x[o_i * 3 + c]) * (x[i * 3 + c] - x[o_i * 3 + c]);
                if (d < bd)
                    bd = d, best = i;
            }
            movable[best] = 1;
            movable[rng_below(&r, NP)] = movable[rng_below(&r, NP)] = 1;
        }
        o.movable = movable;
        layout_result_t ra, rb;
        memcpy(ya, y, sizeof(y)), memcpy(yb, y, sizeof(y));
        o.knn_every_row = 0;
        E(layout_umap(x, NP, 3, &o, ya, placed, &ra));
        o.knn_every_row = 1;
        E(layout_umap(x, NP, 3, &o, yb, placed, &rb));
        CHECK_EQ(ra.edges, rb.edges);
        CHECK(memcmp(ya, yb, sizeof(ya)) == 0);
    }
}

/*
 * sigma (UMAP_SPEC §2) meets umap-learn's test, |psum - log2 k| < 1e-5, on rows of many shapes:
 * uniform and clustered distances, a duplicate point (rho skips zeros), rows whose root lies
 * below the floor, k 15 and 150, scales 0.02-55. Newton's steps inside umap-learn's bracket take
 * 8 sums a row on average, at most 14, where its bisection took 22 on average, up to 38 (and
 * fails the bounds below). A row of equal distances (psum stays k - 1 > log2 k for every sigma)
 * ends after 64 halvings at the floor, as umap-learn's does.
 */
static void test_smooth_row(void)
{
    enum { K = 150 };

    double d[K], rho, sigma;
    uint32_t sums_max = 0, sums_total = 0, rows = 0;
    rng_t r;
    rng_init(&r, 11);
    for (int shape = 0; shape < 4; shape++)
        for (uint32_t k = 15; k <= K; k += 135)
            for (int t = 0; t < 50; t++, rows++) {
                double scale = exp(8 * rng_uniform(&r) - 4); /* 0.02 .. 55 */
                d[0] = 0;
                for (uint32_t c = 1; c < k; c++) {
                    double u = rng_uniform(&r);
                    d[c] = scale * (shape == 0   ? u
                                    : shape == 1 ? u * u * u
                                    : shape == 2 ? (c < k / 3 ? 0.1 * u : 1 + u)
                                                 : (c == 1 ? 0 : u));
                }
                for (uint32_t c = 1; c < k; c++) /* ascending */
                    for (uint32_t b = c; b > 1 && d[b] < d[b - 1]; b--) {
                        double tmp = d[b];
                        d[b] = d[b - 1], d[b - 1] = tmp;
                    }
                uint32_t sums = layout__smooth_row(d, k, 1, &rho, &sigma);
                double slope, psum = fastmath__umap_psum(d, k, rho, sigma, &slope);
                double mean = 0;
                for (uint32_t c = 0; c < k; c++)
                    mean += d[c];
                int floored = sigma == 1e-3 * (mean / k); /* the root lies below the floor */
                CHECK(rho > 0 && (shape != 3 || rho == d[2]));
                CHECK(fabs(psum - log2((double)k)) < 1e-5 ||
                      (floored && psum > log2((double)k) - 1e-5));
                sums_max = sums > sums_max ? sums : sums_max, sums_total += sums;
            }
    CHECK(sums_max <= 16);
    CHECK(sums_total < 10 * rows);
    for (uint32_t c = 0; c < K; c++)
        d[c] = c ? 2.0 : 0;
    CHECK_EQ(layout__smooth_row(d, K, 1, &rho, &sigma), 64);
    CHECK(rho == 2.0 && sigma == 1e-3 * (2.0 * (K - 1) / K));
}

/* The k-d order as the sorting build made it (qsort of each node by (coordinate, index)), the
 * oracle for kd_order's selection build. */
typedef struct ref_key {
    double v;
    uint32_t i;
} ref_key_t;

static int ref_cmp(const void *a, const void *b)
{
    const ref_key_t *p = a, *q = b;
    if (p->v != q->v)
        return p->v < q->v ? -1 : 1;
    return (p->i > q->i) - (p->i < q->i);
}

static void ref_build(const double *x, uint32_t dim, uint32_t *perm, ref_key_t *keys, uint32_t lo,
                      uint32_t hi, double *splits, uint32_t *n_splits)
{
    uint32_t id = (*n_splits)++;
    splits[id] = -(double)INFINITY;
    if (hi - lo <= 16)
        return;
    uint32_t best = 0;
    double width = -1;
    for (uint32_t d = 0; d < dim; d++) {
        double mn = INFINITY, mx = -INFINITY;
        for (uint32_t i = lo; i < hi; i++)
            mn = fmin(mn, x[perm[i] * dim + d]), mx = fmax(mx, x[perm[i] * dim + d]);
        if (mx - mn > width)
            width = mx - mn, best = d;
    }
    for (uint32_t i = lo; i < hi; i++)
        keys[i - lo] = (ref_key_t){x[perm[i] * dim + best], perm[i]};
    qsort(keys, hi - lo, sizeof(*keys), ref_cmp);
    for (uint32_t i = lo; i < hi; i++)
        perm[i] = keys[i - lo].i;
    uint32_t mid = lo + (hi - lo) / 2;
    splits[id] = x[perm[mid] * dim + best];
    ref_build(x, dim, perm, keys, lo, mid, splits, n_splits);
    ref_build(x, dim, perm, keys, mid, hi, splits, n_splits);
}

/* kd_order (median by selection, only leaves sorted) gives the order and the split coordinates
 * the sorting build gave (a wrong split would make range queries skip points), on points with
 * many equal coordinates (ties by index), in 2 and 3 dimensions, sizes around the leaf size and
 * powers of two. With the leaves left unsorted, or the median not moved to the upper half's
 * front, it fails. */
static void test_kd_order(void)
{
    enum { NMAX = 5000 };

    static double x[NMAX * 3];
    static uint32_t perm[NMAX], ref[NMAX];
    static double splits[2 * NMAX], ref_splits[2 * NMAX];
    static ref_key_t keys[NMAX];
    static const uint32_t sizes[] = {2, 16, 17, 33, 64, 100, 1024, 4999, 5000};
    rng_t r;
    rng_init(&r, 21);
    for (uint32_t dim = 2; dim <= 3; dim++)
        for (size_t s = 0; s < sizeof(sizes) / sizeof(*sizes); s++) {
            uint32_t n = sizes[s];
            for (uint32_t q = 0; q < n * dim; q++) /* a coarse grid: ties everywhere */
                x[q] = (double)rng_below(&r, 12) + (q % dim == 0 ? 0.5 * rng_below(&r, 2) : 0);
            for (uint32_t i = 0; i < n; i++)
                ref[i] = i;
            uint32_t n_ref = 0, n_splits = 0;
            ref_build(x, dim, ref, keys, 0, n, ref_splits, &n_ref);
            E(layout__kd_order(x, n, dim, perm, splits, &n_splits));
            CHECK(memcmp(perm, ref, n * sizeof(*perm)) == 0);
            CHECK(n_splits == n_ref && memcmp(splits, ref_splits, n_ref * sizeof(double)) == 0);
        }
}

/* ---- the SGD kernel against a plain statement of its visits ------------------------------- */

enum { KN = 48, KREC = 41 }; /* an odd run: the last record is visited alone */

static float ref_clip(float v)
{
    return v > 4 ? 4 : (v < -4 ? -4 : v);
}

/* the force of point o on y_j: attraction (c = -2ab q^(b-1) / (1 + a q^b)) or repulsion (c =
 * 2b / ((0.001 + q)(1 + a q^b))), each component clipped to [-4, 4] */
static void ref_force(const float *yj, const float *yo, int attract, float a, float b, float *f)
{
    float dx = yj[0] - yo[0], dy = yj[1] - yo[1], q = dx * dx + dy * dy;
    float pw = powf(q < 1e-30f ? 1e-30f : q, b - 1), t = 1 + a * q * pw;
    float c = attract ? -2 * a * b * pw / t : 2 * b / ((0.001f + q) * t);
    f[0] = ref_clip(c * dx), f[1] = ref_clip(c * dy);
}

/* where point o is read: live if the part owns it, else the snapshot */
static const float *ref_point(const fastmath_umap_t *u, uint32_t o)
{
    return (o >= u->lo && o < u->hi ? u->y : u->snap) + 2 * (size_t)o;
}

/* a batch's cnt draws into o[]: two per 64 random bits, the high half first */
static void ref_draws(rng_t *r, uint32_t n, int cnt, uint32_t *o)
{
    for (int w = 0; w < cnt; w += 2) {
        uint64_t bits = rng_next(r);
        o[w] = (uint32_t)(((bits >> 32) * n) >> 32);
        if (w + 1 < cnt)
            o[w + 1] = (uint32_t)(((bits & 0xffffffffu) * n) >> 32);
    }
}

/* the draws' summed push on y_j from the points o[0 .. cnt), read now */
static void ref_push(const fastmath_umap_t *u, const float *yj, const uint32_t *o, int cnt,
                     float *g)
{
    g[0] = g[1] = 0;
    for (int w = 0; w < cnt; w++) {
        float f[2];
        ref_force(yj, ref_point(u, o[w]), 0, u->a, u->b, f);
        g[0] += f[0], g[1] += f[1];
    }
}

/*
 * The visits as the header states them: records i and i + h (h = cnt / 2) side by side, both
 * first batches (the attraction and up to 7 draws) from the positions at the step's start,
 * the random bits drawn for the first record then the second, then each applied in turn with
 * its further draws 8 at a time from its y_j as it is then.
 */
static void ref_edges(const fastmath_umap_t *u, rng_t *r, const fastmath_umap_rec_t *rec,
                      const uint16_t *neg, size_t cnt, const uint8_t *movable)
{
    size_t h = cnt / 2;
    for (size_t i = 0; i < cnt - h; i++) {
        size_t at[2] = {i < h ? i : 2 * h, i + h}, ns = i < h ? 2 : 1;
        float yj[2][2], att[2][2], g[2][2];
        int m[2], nb[2];
        for (size_t s = 0; s < ns; s++) {
            const fastmath_umap_rec_t *e = rec + at[s];
            uint32_t o[7];
            m[s] = !movable || movable[e->head] ? neg[at[s]] : 0;
            nb[s] = m[s] < 7 ? m[s] : 7;
            memcpy(yj[s], u->y + 2 * (size_t)e->head, sizeof(yj[s]));
            ref_force(yj[s], ref_point(u, e->tail), 1, u->a, u->b, att[s]);
            ref_draws(r, u->n, nb[s], o);
            ref_push(u, yj[s], o, nb[s], g[s]);
        }
        for (size_t s = 0; s < ns; s++) {
            const fastmath_umap_rec_t *e = rec + at[s];
            float *pj = u->y + 2 * (size_t)e->head, ax = u->alpha * att[s][0],
                  ay = u->alpha * att[s][1];
            if (!movable || movable[e->head]) /* the draws' push, then the attraction */
                for (int d = 0; d < 2; d++)
                    pj[d] += u->alpha * g[s][d], pj[d] += d ? ay : ax;
            if (!movable || movable[e->tail]) {
                int own = e->tail >= u->lo && e->tail < u->hi;
                float *pk = (own ? u->y : u->dl) + 2 * (size_t)e->tail;
                pk[0] -= ax, pk[1] -= ay;
            }
            for (int s0 = nb[s]; s0 < m[s]; s0 += 8) {
                int c = m[s] - s0 < 8 ? m[s] - s0 : 8;
                uint32_t o[8];
                float gp[2], now[2] = {pj[0], pj[1]};
                ref_draws(r, u->n, c, o);
                ref_push(u, now, o, c, gp);
                pj[0] += u->alpha * gp[0], pj[1] += u->alpha * gp[1];
            }
        }
    }
}

/* the kernel and the reference on records @p rec[0, cnt), all points moving and then some
 * fixed: @return the largest difference of a position or a delta */
static double umap_case(const fastmath_umap_rec_t *rec, const uint16_t *neg, size_t cnt)
{
    static float y0[2 * KN], y[2][2 * KN], snap[2 * KN], dl[2][2 * KN];
    uint8_t movable[KN];
    rng_t r;
    rng_init(&r, 7);
    for (int i = 0; i < 2 * KN; i++)
        y0[i] = (float)(4 * rng_uniform(&r)), snap[i] = (float)(4 * rng_uniform(&r));
    for (int i = 0; i < KN; i++)
        movable[i] = i % 7 != 3;
    double worst = 0;
    for (int pass = 0; pass < 2; pass++) {
        const uint8_t *mv = pass ? movable : NULL;
        rng_t r0, r1;
        rng_init(&r0, 11 + pass), rng_init(&r1, 11 + pass);
        memset(dl, 0, sizeof(dl));
        memcpy(y[0], y0, sizeof(y0)), memcpy(y[1], y0, sizeof(y0));
        fastmath_umap_t u0 = {y[0], snap, dl[0], 12, 36, KN, 1.577f, 0.895f, 0.5f};
        fastmath_umap_t u1 = {y[1], snap, dl[1], 12, 36, KN, 1.577f, 0.895f, 0.5f};
        fastmath__umap_edges(&u0, &r0, rec, neg, cnt, mv);
        ref_edges(&u1, &r1, rec, neg, cnt, mv);
        for (int i = 0; i < 2 * KN; i++) {
            worst = fmax(worst, fabs((double)y[0][i] - y[1][i]));
            worst = fmax(worst, fabs((double)dl[0][i] - dl[1][i]));
            if (pass && !movable[i / 2])
                CHECK(y[0][i] == y0[i] && y[1][i] == y0[i]); /* a fixed point keeps its bits */
        }
        CHECK(rng_next(&r0) == rng_next(&r1)); /* the same draws */
    }
    return worst;
}

/*
 * fastmath__umap_edges against ref_edges on a part owning points [12, 36) of 48: heads in runs
 * as the calendar has them, tails anywhere, 0-19 draws (more than one batch), runs of odd and
 * even length, of 1 and 2 records, and one where every record has the same head and each tail
 * is a head of the other stream. The kernel's q^(b-1) is a polynomial and its sums are
 * vectorised, so the positions agree to float rounding (~3e-6), not bit for bit; the kernel of
 * before, one visit at a time in order, is 8.4 off on the first run, one with 4 streams 6.7,
 * and one that wrote the second stream's y_j from its old position 2.3 on the 2 records.
 */
static void test_umap_edges(void)
{
    fastmath_umap_rec_t rec[KREC];
    uint16_t neg[KREC];
    rng_t r;
    rng_init(&r, 5);
    for (int q = 0; q < KREC; q++) {
        rec[q].head = 12 + (uint32_t)(q / 3) % 24; /* runs of 3 */
        rec[q].tail = (uint32_t)(rng_next(&r) % KN);
        rec[q].eps = 1, rec[q].k = 1;
        neg[q] = (uint16_t)(rng_next(&r) % 20);
    }
    size_t lens[] = {KREC, KREC - 1, 2, 1};
    for (size_t c = 0; c < sizeof(lens) / sizeof(lens[0]); c++) {
        double worst = umap_case(rec, neg, lens[c]);
        fprintf(stderr, "umap_edges: %zu records, kernel vs reference %.2e\n", lens[c], worst);
        CHECK(worst < 1e-4);
    }
    for (int shape = 0; shape < 2; shape++) {
        /* 0: one head, which both streams move from the same position; 1: each stream's tail is
         * the other's head (4 records: 8 pull the two points onto each other, where the draws'
         * clipped pushes turn rounding into differences of 1e-3) */
        int cnt = shape ? 4 : 16;
        for (int q = 0; q < cnt; q++)
            rec[q].head = shape == 0 || q < cnt / 2 ? 20 : 21,
            rec[q].tail = shape == 0 ? 21 + (uint32_t)q % 3 : (q < cnt / 2 ? 21 : 20);
        double worst = umap_case(rec, neg, (size_t)cnt);
        fprintf(stderr, "umap_edges: shared heads (%d), kernel vs reference %.2e\n", shape, worst);
        CHECK(worst < 1e-4);
    }
}

int main(void)
{
    test_umap_edges();
    test_partial_rows();
    test_smooth_row();
    test_kd_order();
    test_schedule();
    double a, b;
    E(layout_fit_ab(0.25, 1.0, &a, &b));
    CHECK_NEAR(a, 1.121436342691746, 1e-3);
    CHECK_NEAR(b, 1.0574998766588604, 1e-3);
    E(layout_fit_ab(0.1, 1.0, &a, &b));
    CHECK_NEAR(a, 1.5769434601962196, 2e-3);
    CHECK_NEAR(b, 0.8950608779914887, 2e-3);

    /* five Gaussian clusters in 3-D, s.d. 0.5, centres uniform in [0, 10]^3 */
    static double x[N * 3], y[N * 2], y2[N * 2], yw[N * 2];
    static int32_t lab[N];
    rng_t r;
    rng_init(&r, 0);
    double centre[C][3];
    for (int c = 0; c < C; c++)
        for (int d = 0; d < 3; d++)
            centre[c][d] = 10 * rng_uniform(&r);
    for (int i = 0; i < N; i++) {
        lab[i] = i / PER;
        for (int d = 0; d < 3; d++)
            x[i * 3 + d] = centre[lab[i]][d] + 0.5 * rng_normal(&r);
    }
    layout_opts_t o;
    layout_opts_default(&o);
    o.n_neighbors = 30;
    layout_result_t res;
    E(layout_umap(x, N, 3, &o, y, NULL, &res));
    CHECK_EQ(res.epochs, 500);
    double p;
    E(quality_label_purity(y, N, 2, lab, 10, N, 1, &p));
    fprintf(stderr, "layout: %llu edges, 2-D purity %.4f\n", (unsigned long long)res.edges, p);
    CHECK(p > 0.95);
    layout_result_t res1 = res;
    CHECK(res.samples > res.edges * 10 && res.negatives > 4 * res.samples);
    E(layout_umap(x, N, 3, &o, y2, NULL, &res));
    CHECK(memcmp(y, y2, sizeof(y)) == 0); /* same seed, same bits */
    CHECK(res.samples == res1.samples && res.negatives == res1.negatives);
    o.n_threads = 1; /* one part (the serial algorithm): deterministic too, and as good */
    E(layout_umap(x, N, 3, &o, y2, NULL, &res));
    CHECK(res.samples == res1.samples);
    E(quality_label_purity(y2, N, 2, lab, 10, N, 1, &p));
    CHECK(p > 0.95);
    E(layout_umap(x, N, 3, &o, yw, NULL, &res));
    CHECK(memcmp(y2, yw, sizeof(y2)) == 0);
    o.n_threads = 2;

    test_oom(x, y);

    /* warm start from the cold layout on unchanged input, aligned: points barely move */
    memcpy(yw, y, sizeof(y));
    static uint8_t placed[N];
    memset(placed, 1, sizeof(placed));
    E(layout_umap(x, N, 3, &o, yw, placed, &res));
    E(layout_align(yw, y, N, NULL));
    double mn = INFINITY, mx = -INFINITY, med, p95;
    for (int i = 0; i < N; i++)
        mn = fmin(mn, y[2 * i]), mx = fmax(mx, y[2 * i]);
    E(quality_displacement(y, yw, N, 2, NULL, mx - mn, &med, &p95));
    fprintf(stderr, "warm: %u epochs, moved median %.4f p95 %.4f of the width\n", res.epochs, med,
            p95);
    CHECK(med < 0.01);
    CHECK(p95 < 0.02);

    /* a partial warm run: one point displaced and free, with two others; every other point
     * keeps its position bit for bit, and the displaced one is pulled back */
    static uint8_t movable[N];
    memcpy(yw, y, sizeof(y));
    yw[0] += 0.1 * (mx - mn); /* a tenth of the width off its place */
    movable[0] = movable[1] = movable[2] = 1;
    o.movable = movable;
    uint64_t all_edges = res.edges;
    E(layout_umap(x, N, 3, &o, yw, placed, &res));
    o.movable = NULL;
    /* only the edges with a moving end are built: 3 points' of the graph's */
    fprintf(stderr, "partial: %llu of %llu edges\n", (unsigned long long)res.edges,
            (unsigned long long)all_edges);
    CHECK(res.edges > 0 && res.edges * 50 < all_edges);
    for (int i = 3; i < N; i++)
        CHECK(yw[2 * i] == y[2 * i] && yw[2 * i + 1] == y[2 * i + 1]);
    double back = hypot(yw[0] - y[0], yw[1] - y[1]);
    fprintf(stderr, "partial: the displaced point ended %.3f of the width from where it was\n",
            back / (mx - mn));
    CHECK(back < 0.08 * (mx - mn));        /* pulled back towards its neighbours */
    CHECK(yw[2] != y[2] || yw[3] != y[3]); /* a movable neighbour moved too */

    /* Procrustes recovers a rotation + reflection + translation exactly */
    double th = 0.7;
    for (int i = 0; i < N; i++) {
        double u = y[2 * i], v = -y[2 * i + 1]; /* reflect */
        y2[2 * i] = cos(th) * u - sin(th) * v + 3;
        y2[2 * i + 1] = sin(th) * u + cos(th) * v - 8;
    }
    E(layout_align(y2, y, N, NULL));
    for (int i = 0; i < 2 * N; i++)
        CHECK_NEAR(y2[i], y[i], 1e-9);
    CHECK_EQ(layout_align(y2, y, N, (uint8_t[N]){1}), -EINVAL); /* one shared row */
    return 0;
}
