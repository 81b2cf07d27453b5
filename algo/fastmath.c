/*
 * fastmath.c: the inner loops of MDE (and of the UMAP SGD: its edge visits), kept in their own
 * translation unit so that they alone are compiled with -ffast-math (see CMakeLists.txt): GCC
 * then vectorises sqrt, exp and log across edges (glibc's libmvec) and the sums of the L-BFGS
 * vector work. The hot functions are built twice with target_clones (x86-64-v3 = AVX2 + FMA,
 * and the portable baseline); the loader picks one per machine, so a machine always runs the
 * same code and results stay deterministic for a given seed, input and thread count.
 * Non-finite results are possible only at d = 0, which callers keep away from these loops.
 *
 * Repulsive penalty f(d) = -log(1 - e^-d) (PyMDE penalties.Log, exponent 1); coef = f'(d) / d =
 * -e^-d / ((1 - e^-d) d). The 3-D evaluation runs in single precision (see below); the other
 * dimensions' blocks in double, with log(1 - e) for log1p(-e), which has no vector variant: at
 * the smallest distances that occur (1e-6) its relative error is about 1e-10.
 */
#include "algo/fastmath.h"

#include <float.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

void fastmath__mde_repulsive_block(const double *restrict d, double *restrict f,
                                   double *restrict coef, size_t n)
{
    for (size_t k = 0; k < n; k++) {
        double em = exp(-d[k]);
        f[k] = -log(1.0 - em);
        coef[k] = -em / ((1.0 - em) * d[k]);
    }
}

/* ---- 3-D evaluation ---------------------------------------------------------------------- */

/*
 * F and gradient for 3-D embeddings over a run of edges, in single precision, on points padded
 * to 4 floats (16 bytes, the 4th lane 0) so that a point is one 128-bit vector: a gather is one
 * load, a scatter one load-add-store per endpoint. Single precision because at full scale the
 * evaluation waits on its random gathers and scatters: 16-byte rows halve the points' and the
 * gradient's footprint (2.4 MB together at 73.6k points, about the L2 cache), and the penalties
 * run 16 lanes wide. The solver keeps x, the gradient and F in double: a point is rounded to
 * float only to be evaluated (6e-8 relative), and F is summed in double from float terms. Far
 * from an optimum that is far below the decreases the line search compares (measured: the
 * same distortion to 3 digits after 2000 iterations, full and small scale); near one it is
 * not, and mde.c goes on in double (mde_t.exact).
 * Built three times (target_clones: AVX-512, AVX2 + FMA, baseline); the ifunc resolver picks
 * one at load time, so a given machine always runs the same code (deterministic).
 *
 * Three passes per block: gather differences and squared distances; distances, penalties and
 * coef = f'(d) / d, vectorised across edges (sqrt, expm1 and log through libmvec; expm1 keeps
 * 1 - e^-d accurate at small d); scatter coef (x_i - x_j), the i side accumulated in a
 * register while i repeats (attractive edges are sorted by i; repulsive ones by blocks of i,
 * then j, and mde.c passes them as (j, i) where j's runs are long: mde.c, repulsive_by_j).
 * Endpoints come as row offsets (4 x the point's index), so an address is a base plus an
 * index, without a shift; the pass stores -coef, so that j's row takes an add whose load folds
 * into it. The scatter was ~17 instructions an edge of the ~41 (callgrind, AVX2 clone); these
 * two, the branch laid out for a repeating i and the scatter two edges an iteration took the
 * evaluation from 677M to 534M instructions over 200 iterations of the small graph (its MDE run
 * 0.83-0.87 of the time; at full scale, where rows miss the cache, no change).
 * Coincident points (d = 0) contribute no gradient and no attractive penalty; a repulsive one
 * is counted in *n_inf (its penalty is +inf, which -ffast-math must not see). A d^2 below D2_MIN
 * (points ~1e-19 apart) is raised to it first: -ffast-math's square root, x rsqrt14(x), reads a
 * subnormal as 0 and made d infinite or NaN, and so did the reciprocal of u d ~ d^2 in the baseline
 * build (test_mde).
 */
#define D2_MIN (4 * FLT_MIN) /* u d ~ d^2 (1 - d / 2) stays a normal float */
typedef float v4f __attribute__((vector_size(16)));
typedef int32_t v4i __attribute__((vector_size(16)));
typedef uint64_t v4du __attribute__((vector_size(32)));
#ifdef __clang__
#define SHUF4(a, b, i, j, k, l) __builtin_shufflevector(a, b, i, j, k, l)
#else
#define SHUF4(a, b, i, j, k, l) __builtin_shuffle(a, b, (v4i){i, j, k, l})
#endif

#define BLOCK3 256

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && !defined(ATL_NO_CLONES) &&  \
    !defined(__SANITIZE_THREAD__) /* TSan instruments the ifunc resolver, which runs before it */
#define MDE_CLONES __attribute__((target_clones("arch=x86-64-v3", "default")))
/* the evaluation and the L-BFGS passes that do most arithmetic a byte also for x86-64-v4
 * (AVX-512): on the 2-core AMD EPYC (Zen 5) this was measured on, 14% less time an evaluation (8
 * lanes for exp and the penalties' arithmetic) and 14% less in the pair pass */
#define MDE_CLONES_EVAL                                                                            \
    __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define MDE_CLONES
#define MDE_CLONES_EVAL
#endif

/*
 * The sum of -log(u) over a block's BLOCK3 values of u = 1 - e^-d in (0, 1] (1 for the padding
 * and for d = 0): the log of products, one logarithm for REP_FACTORS terms. A product of
 * REP_FACTORS of them stays a normal double: u >= 1 - e^-(smallest d) ~ 4e-23 when d^2 is the
 * smallest float above 0, and 8 such factors are 1e-180 > DBL_MIN. The logarithms were a
 * sixth of the evaluation's time at full scale (libmvec's logf on every repulsive edge); the
 * products are one multiplication each, in double, so the sum is also more accurate.
 */
#define REP_FACTORS 8

static inline double repulsive_penalty_sum(const float *restrict u)
{
    enum { LANES = BLOCK3 / REP_FACTORS };

    double prod[LANES], s = 0;
    for (int j = 0; j < LANES; j++)
        prod[j] = (double)u[j];
    for (int r = 1; r < REP_FACTORS; r++)
        for (int j = 0; j < LANES; j++)
            prod[j] *= (double)u[r * LANES + j];
    for (int j = 0; j < LANES; j++)
        s -= log(prod[j]);
    return s;
}

/*
 * One edge of the scatter, t = -coef (x_i - x_j): added to j's row; i's side summed in *acc
 * (minus the sum) while i repeats, subtracted from i's row when i changes.
 */
static inline __attribute__((always_inline)) void
scatter_edge(float *restrict gp, uint32_t i, uint32_t j, v4f t, uint32_t *cur, v4f *acc)
{
    if (__builtin_expect(i != *cur, 0)) {
        *(v4f *)(gp + (size_t)*cur) -= *acc;
        *acc = (v4f){0, 0, 0, 0};
        *cur = i;
    }
    *acc += t;
    *(v4f *)(gp + (size_t)j) += t;
}

MDE_CLONES_EVAL
double fastmath__mde_eval3(const float *restrict xp, float *restrict gp,
                           const uint32_t *restrict oi, const uint32_t *restrict oj,
                           const float *restrict w, size_t n, int repulsive, size_t *restrict n_inf)
{
    v4f diff[BLOCK3];
    float d2[BLOCK3], coef[BLOCK3], fb[BLOCK3];
    double f = 0;
    size_t inf = 0;
    for (size_t k0 = 0; k0 < n; k0 += BLOCK3) {
        size_t nb = n - k0 < BLOCK3 ? n - k0 : BLOCK3, nb_f = nb; /* terms in fb to add */
        const uint32_t *bi = oi + k0, *bj = oj + k0;
        size_t q4 = 0;
        for (; q4 + 4 <= nb; q4 += 4) { /* four edges' squared distances by a 4x4 transpose */
            v4f s[4];
            for (int e = 0; e < 4; e++) {
                v4f t = *(const v4f *)(xp + (size_t)bi[q4 + e]) -
                        *(const v4f *)(xp + (size_t)bj[q4 + e]);
                diff[q4 + e] = t;
                s[e] = t * t;
            }
            /* lanes (x + y) + (z + 0), as the scalar tail below */
            v4f u01 = SHUF4(s[0], s[1], 0, 4, 2, 6) + SHUF4(s[0], s[1], 1, 5, 3, 7);
            v4f u23 = SHUF4(s[2], s[3], 0, 4, 2, 6) + SHUF4(s[2], s[3], 1, 5, 3, 7);
            v4f q = SHUF4(u01, u23, 0, 1, 4, 5) + SHUF4(u01, u23, 2, 3, 6, 7);
            memcpy(d2 + q4, &q, sizeof(q));
        }
        for (size_t k = q4; k < nb; k++) {
            v4f t = *(const v4f *)(xp + (size_t)bi[k]) - *(const v4f *)(xp + (size_t)bj[k]);
            diff[k] = t;
            t *= t;
            d2[k] = (t[0] + t[1]) + (t[2] + t[3]);
        }
        if (repulsive) {
            for (size_t k = 0; k < nb; k++) {
                float q = d2[k], z = q > 0 ? 1.0f : 0.0f;
                float d = sqrtf(q > 0 ? fmaxf(q, D2_MIN) : 1.0f); /* D2_MIN: see above */
                float u = -expm1f(-d), em = 1.0f - u;             /* u = 1 - e^-d */
                fb[k] = q > 0 ? u : 1.0f;
                coef[k] = z * (em / (u * d)); /* -coef: see the scatter */
            }
            for (size_t k = nb; k < BLOCK3; k++)
                fb[k] = 1.0f;
            for (size_t k = 0; k < nb; k++)
                inf += !(d2[k] > 0);
            f += repulsive_penalty_sum(fb);
            nb_f = 0;
        } else {
            const float *bw = w + k0;
            for (size_t k = 0; k < nb; k++) {
                float q = d2[k], z = q > 0 ? 1.0f : 0.0f;
                float d = sqrtf(q > 0 ? fmaxf(q, D2_MIN) : 1.0f), wk = bw[k];
                fb[k] = z * wk * d;
                coef[k] = -(z * wk / d); /* -coef: see the scatter */
            }
        }
        for (size_t k = 0; k < nb_f; k++)
            f += (double)fb[k];
        /* scatter: the i side stays in a register while i repeats */
        uint32_t cur = bi[0];
        v4f acc = {0, 0, 0, 0}; /* minus the i side's sum */
        size_t k = 0;
        for (; k + 2 <= nb; k += 2) { /* two an iteration: 4% fewer instructions */
            scatter_edge(gp, bi[k], bj[k], diff[k] * coef[k], &cur, &acc);
            scatter_edge(gp, bi[k + 1], bj[k + 1], diff[k + 1] * coef[k + 1], &cur, &acc);
        }
        for (; k < nb; k++)
            scatter_edge(gp, bi[k], bj[k], diff[k] * coef[k], &cur, &acc);
        *(v4f *)(gp + (size_t)cur) -= acc;
    }
    *n_inf += inf;
    return f;
}

/* ---- L-BFGS vector work ------------------------------------------------------------------ */

/*
 * bfloat16, the upper 16 bits of a float (a float's range, 8 significant bits), for the L-BFGS
 * history while the evaluation is single precision (mde.c, hist_bf16): the two passes an
 * iteration stream the history whole, and at full scale it is most of their bytes. Rounded to
 * nearest, ties to even; a NaN stays a NaN.
 */
static inline uint16_t bf16_round(float v)
{
    uint32_t b;
    memcpy(&b, &v, sizeof(b));
    if ((b & 0x7fffffffu) > 0x7f800000u) /* a NaN stays one (the bias could carry it away) */
        return (uint16_t)(b >> 16 | 0x40u);
    b += 0x7fffu + ((b >> 16) & 1u);
    return (uint16_t)(b >> 16);
}

/* a bfloat16 value as the float it is */
static inline float bf16_valuef(uint16_t h)
{
    uint32_t b = (uint32_t)h << 16;
    float v;
    memcpy(&v, &b, sizeof(v));
    return v;
}

/* the same, widened to double */
static inline double bf16_value(uint16_t h)
{
    return (double)bf16_valuef(h);
}

/*
 * The vector loops of mde.c's L-BFGS and line search (more below: the passes of its
 * coefficient-space two-loop). Their sums must be reassociated to be vectorised (-ffast-math
 * here): the order is fixed by the code the clone was built for, so a machine always gets the
 * same result.
 */
MDE_CLONES
double fastmath__mde_dot(const double *restrict a, const double *restrict b, size_t n)
{
    double s = 0;
    for (size_t k = 0; k < n; k++)
        s += a[k] * b[k];
    return s;
}

/* out = x + t d */
MDE_CLONES
void fastmath__mde_axpy_to(double *restrict out, const double *restrict x, double t,
                           const double *restrict d, size_t n)
{
    for (size_t k = 0; k < n; k++)
        out[k] = x[k] + t * d[k];
}

/* dim 3: pad rows of @p x into @p xp (4 floats each, 4th 0), a row one store (see
 * fastmath__mde_pad3_step) */
MDE_CLONES
void fastmath__mde_pad3(const double *restrict x, float *restrict xp, size_t n)
{
    for (size_t v = 0; v < n; v++) {
        v4f r = {(float)x[3 * v], (float)x[3 * v + 1], (float)x[3 * v + 2], 0};
        *(v4f *)(xp + 4 * v) = r;
    }
}

/* dim 3, rows [0, n): x += t (d - mean), a step and the Centered projection in one: with x
 * centred and @p mean d's column means, x + t d - mean(x + t d) */
MDE_CLONES
void fastmath__mde_step3(double *restrict x, double t, const double *restrict d,
                         const double *restrict mean, size_t n)
{
    double m0 = mean[0], m1 = mean[1], m2 = mean[2];
    for (size_t v = 0; v < n; v++) {
        x[3 * v] += t * (d[3 * v] - m0);
        x[3 * v + 1] += t * (d[3 * v + 1] - m1);
        x[3 * v + 2] += t * (d[3 * v + 2] - m2);
    }
}

/* dim 3, rows [0, n): acc[c] += sum of column c */
MDE_CLONES
void fastmath__mde_colsum3(const double *restrict d, size_t n, double *restrict acc)
{
    double s0 = 0, s1 = 0, s2 = 0;
    for (size_t v = 0; v < n; v++)
        s0 += d[3 * v], s1 += d[3 * v + 1], s2 += d[3 * v + 2];
    acc[0] += s0, acc[1] += s1, acc[2] += s2;
}

/* ---- UMAP negative sampling -------------------------------------------------------------- */

/* Negatives are taken 8 at a time (one AVX2 vector of floats): an edge draws about
 * negative_sample_rate (5) per visit, so the lanes past the draws are padding with y_o = y_j,
 * which pushes nothing. */
#define NEG_BATCH 8

static float clip4f(float v)
{
    v = v < 4 ? v : 4;
    return v > -4 ? v : -4;
}

typedef float v8sf __attribute__((vector_size(32)));
typedef int32_t v8si __attribute__((vector_size(32)));
#ifdef __clang__
#define SHUF8(a, b, ...) __builtin_shufflevector(a, b, __VA_ARGS__)
#else
#define SHUF8(a, b, ...) __builtin_shuffle(a, b, (v8si){__VA_ARGS__})
#endif

/* y_o of a negative sample o: live if the part owns it, else from the snapshot; both floats of
 * the point in one 64-bit word */
static inline uint64_t umap_point(const float *y, const float *snap, uint32_t lo, uint32_t span,
                                  uint32_t o)
{
    uint64_t p;
    memcpy(&p, (o - lo < span ? y : snap) + 2 * (size_t)o, sizeof(p));
    return p;
}

/* The batch's points: lane 0 y_k (@p pk) if @p first, then @p nb draws, y_j (@p pj) past them */
static inline __attribute__((always_inline)) void
umap_draws(uint64_t *restrict p, uint64_t pj, const float *y, const float *snap, uint32_t lo,
           uint32_t span, uint64_t n, rng_t *restrict rl, int first, uint64_t pk, int nb)
{
    p[0] = pk;
#pragma GCC unroll 4
    for (int v = first; v < NEG_BATCH; v += 2) { /* Lemire's multiply-shift; bias < n / 2^32 */
        int w = v - first;                       /* the batch's draws w and w + 1 */
        uint64_t bits = w < nb ? rng_next_inline(rl) : 0;
        p[v] = w < nb ? umap_point(y, snap, lo, span, (uint32_t)(((bits >> 32) * n) >> 32)) : pj;
        if (v + 1 < NEG_BATCH)
            p[v + 1] = w + 1 < nb ? umap_point(y, snap, lo, span,
                                               (uint32_t)(((bits & 0xffffffffu) * n) >> 32))
                                  : pj;
    }
}

/*
 * The forces of one batch of 8 lanes of an edge visit on y_j (@p pj) from the points @p p (if
 * @p first, lane 0 is the attraction of y_k and lanes 1-7 draws, else lanes 0-7 are draws;
 * lanes past the draws hold y_j itself: no force). With q = |y_j - y_o|^2 and pw = q^(b-1), a
 * draw pushes y_j away with c = 2b / ((0.001 + q) (1 + a q pw)) and the attraction pulls it in
 * with c = -2ab pw / (1 + a q pw), each component clipped to [-4, 4]. The draws' sum into
 * g[0..1], the attraction's force into g[2..3]. Coincident points (q = 0) give no force: c is
 * finite. Inlined with @p first constant.
 */
static inline __attribute__((always_inline)) void
umap_forces(const uint64_t *restrict p, uint64_t pj, int first, float a, float b, float *restrict g)
{
    /* x and y differences of the 8 lanes, from the points' 64-bit words in registers (scalar
     * stores into a vector's memory stall its load) */
    v8sf xj = (v8sf)(v4du){pj, pj, pj, pj};
    v8sf da = xj - (v8sf)(v4du){p[0], p[1], p[2], p[3]};
    v8sf db = xj - (v8sf)(v4du){p[4], p[5], p[6], p[7]};
    v8sf sx = SHUF8(da, db, 0, 2, 4, 6, 8, 10, 12, 14);
    v8sf sy = SHUF8(da, db, 1, 3, 5, 7, 9, 11, 13, 15);
    float fx[NEG_BATCH], fy[NEG_BATCH], gx = 0, gy = 0;
    for (int v = 0; v < NEG_BATCH; v++) {
        float q = sx[v] * sx[v] + sy[v] * sy[v];
        float pw = fastmath__powf_pos(q, b - 1), t = 1 + a * q * pw;
        float c = first && v == 0 ? -2 * a * b * pw / t : 2 * b / ((0.001f + q) * t);
        float keep = first && v == 0 ? 0.0f : 1.0f;
        fx[v] = clip4f(c * sx[v]), fy[v] = clip4f(c * sy[v]);
        gx += keep * fx[v], gy += keep * fy[v];
    }
    g[0] = gx, g[1] = gy, g[2] = fx[0], g[3] = fy[0];
}

/* one batch on y_j as it is at its start, added to it; the attraction's force into att (yj is
 * not restrict: a draw may be j itself, read through y) */
static inline __attribute__((always_inline)) void
umap_batch(float *yj, const float *y, const float *snap, uint32_t lo, uint32_t span, uint64_t n,
           rng_t *restrict rl, int first, uint64_t pk, int nb, float a, float b, float alpha,
           float *restrict att)
{
    uint64_t pj, p[NEG_BATCH];
    memcpy(&pj, yj, sizeof(pj));
    umap_draws(p, pj, y, snap, lo, span, n, rl, first, pk, nb);
    float g[4];
    umap_forces(p, pj, first, a, b, g);
    if (first)
        att[0] = g[2], att[1] = g[3];
    yj[0] += alpha * g[0], yj[1] += alpha * g[1];
}

/*
 * The rest of a visit after its first batch (forces @p g from umap_forces, on y_j as it was,
 * @p pj): y_j moved by the draws and the attraction, y_k by the attraction, then the draws
 * past the first 7 in batches of 8.
 */
static inline __attribute__((always_inline)) void
umap_finish(const fastmath_umap_t *u, rng_t *restrict rl, const fastmath_umap_rec_t *rec,
            const uint8_t *restrict movable, int mj, int m, int nb, const float *restrict g)
{
    float *y = u->y, alpha = u->alpha, att[2];
    uint32_t lo = u->lo, span = u->hi - u->lo, j = rec->head, k = rec->tail;
    float *yj = y + 2 * (size_t)j, ax = alpha * g[2], ay = alpha * g[3];
    if (mj) /* a fixed y_j drew nothing (nb = 0) and keeps its bits */
        yj[0] += alpha * g[0], yj[1] += alpha * g[1], yj[0] += ax, yj[1] += ay;
    if (!movable || movable[k]) {
        float *wk = k - lo < span ? y + 2 * (size_t)k : u->dl + 2 * (size_t)k;
        wk[0] -= ax, wk[1] -= ay;
    }
    for (int s0 = nb; s0 < m; s0 += NEG_BATCH)
        umap_batch(yj, y, u->snap, lo, span, u->n, rl, 0, 0,
                   m - s0 < NEG_BATCH ? m - s0 : NEG_BATCH, u->a, u->b, alpha, att);
}

/*
 * Visits in UMAP_STREAMS interleaved streams: record i of the run with records i + h, i + 2h,
 * ... (h = cnt / UMAP_STREAMS, the rest one by one at the end). A visit is a chain of ~150
 * cycles of dependent arithmetic (two polynomials for q^(b-1), two divisions, a sum of 8 lanes)
 * ending in y_j's update, and the next visit of a run sorted by head mostly starts from that
 * y_j: one visit at a time, the core waited on that chain. The streams' first batches are
 * computed side by side from the positions as they are at the step's start, then applied in
 * stream order. The records of one step lie h apart in head order, so their heads mostly
 * differ; where a point is the head of one and the head or tail of the other, both forces are
 * taken from its old position (as in Hogwild-style parallel SGD). Measured at full scale (73.6k
 * points, 171M samples, 844M draws, 2 threads): 2 streams took 0.93x the whole run's time, 4
 * the same as 2; the same 2-D label purity over 3 seeds.
 */
#define UMAP_STREAMS 2

/* a visit's first batch read (nothing written): y_j into *pj, its points into *p, whether y_j
 * moves, its draws m and how many of them the first batch takes (nb) */
static inline __attribute__((always_inline)) void
umap_first(const fastmath_umap_t *u, rng_t *restrict rl, const fastmath_umap_rec_t *rec,
           uint16_t neg, const uint8_t *restrict movable, int *restrict mj, int *restrict m,
           int *restrict nb, uint64_t *restrict pj, uint64_t *restrict p)
{
    uint32_t lo = u->lo, span = u->hi - u->lo;
    *mj = !movable || movable[rec->head];
    *m = *mj ? neg : 0;
    *nb = *m < NEG_BATCH - 1 ? *m : NEG_BATCH - 1;
    memcpy(pj, u->y + 2 * (size_t)rec->head, sizeof(*pj));
    umap_draws(p, *pj, u->y, u->snap, lo, span, u->n, rl, 1,
               umap_point(u->y, u->snap, lo, span, rec->tail), *nb);
}

MDE_CLONES
void fastmath__umap_edges(const fastmath_umap_t *u, rng_t *restrict r,
                          const fastmath_umap_rec_t *restrict rec, const uint16_t *restrict neg,
                          size_t cnt, const uint8_t *restrict movable)
{
    rng_t rl = *r; /* in registers for the whole run of edges */
    size_t h = cnt / UMAP_STREAMS;
    for (size_t i = 0; i < cnt; i++) {
        size_t streams = i < h ? UMAP_STREAMS : 1, at = i < h ? i : i + (UMAP_STREAMS - 1) * h;
        if (at >= cnt)
            break;
        int mj[UMAP_STREAMS], m[UMAP_STREAMS], nb[UMAP_STREAMS];
        uint64_t pj[UMAP_STREAMS], p[UMAP_STREAMS][NEG_BATCH];
        float g[UMAP_STREAMS][4];
        if (streams == UMAP_STREAMS) { /* constant trip counts: the compiler interleaves */
#pragma GCC unroll 4
            for (size_t s = 0; s < UMAP_STREAMS; s++)
                umap_first(u, &rl, rec + at + s * h, neg[at + s * h], movable, &mj[s], &m[s],
                           &nb[s], &pj[s], p[s]);
#pragma GCC unroll 4
            for (size_t s = 0; s < UMAP_STREAMS; s++)
                umap_forces(p[s], pj[s], 1, u->a, u->b, g[s]);
#pragma GCC unroll 4
            for (size_t s = 0; s < UMAP_STREAMS; s++)
                umap_finish(u, &rl, rec + at + s * h, movable, mj[s], m[s], nb[s], g[s]);
        } else {
            umap_first(u, &rl, rec + at, neg[at], movable, &mj[0], &m[0], &nb[0], &pj[0], p[0]);
            umap_forces(p[0], pj[0], 1, u->a, u->b, g[0]);
            umap_finish(u, &rl, rec + at, movable, mj[0], m[0], nb[0], g[0]);
        }
    }
    *r = rl;
}

/* ---- UMAP fuzzy set: smooth kNN distances -------------------------------------------------- */

/* sum over c in [1, k) of e_c = exp(-r_c / sigma), r_c = max(d[c] - rho, 0), and *slope = the
 * sum of e_c r_c (exp through libmvec, 4 at a time with AVX2) */
MDE_CLONES
double fastmath__umap_psum(const double *restrict d, uint32_t k, double rho, double sigma,
                           double *restrict slope)
{
    double s = 0, sr = 0, inv = 1 / sigma;
    for (uint32_t c = 1; c < k; c++) {
        double r = d[c] - rho;
        r = r > 0 ? r : 0;
        double e = exp(-r * inv);
        s += e;
        sr += e * r;
    }
    *slope = sr;
    return s;
}

/* w[c] = exp(-(d[c] - rho) / sigma), 1 where d[c] <= rho or sigma = 0, for c in [0, k) */
MDE_CLONES
void fastmath__umap_memberships(const double *restrict d, uint32_t k, double rho, double sigma,
                                double *restrict w)
{
    double inv = sigma > 0 ? 1 / sigma : 0;
    for (uint32_t c = 0; c < k; c++) {
        double r = d[c] - rho;
        w[c] = exp(-(r > 0 ? r : 0) * inv);
    }
}

/* 1 + the position of v in row[0, n) (entries distinct), 0 if absent: a sum without a branch,
 * so it vectorises (a kNN row's ~150 entries, 8 to an AVX2 compare) */
MDE_CLONES
uint32_t fastmath__find_u32(const uint32_t *restrict row, uint32_t n, uint32_t v)
{
    uint32_t at = 0;
    for (uint32_t x = 0; x < n; x++)
        at += row[x] == v ? x + 1 : 0;
    return at;
}

/* ---- L-BFGS in coefficient space: the vector passes (mde.c) ------------------------------ */

/*
 * The passes' loops, written once for either format of the stored pairs (T, read by VALUE,
 * written by ROUND): float, or bfloat16 (bf16_round) while the evaluation is single precision
 * (mde.c). Each public function below picks one by its @p bf16 argument; the loops are inlined
 * into each target clone.
 *
 * pair: the new pair and its dots over elements [0, n): s = t d, y = g - gp rounded to the
 * format (if @p s is not NULL), then acc += {s.s, s.y, y.y, g.s, g.y, g.g, sum |g|}, the dots of
 * s and y as they are stored (rounded), so the Gram matrix describes what is stored.
 * gdots4: acc += {g.s_0, g.y_0, .., g.s_3, g.y_3} over [0, n), the new gradient's dots with four
 * stored pairs, b = {s_0, y_0, .., s_3, y_3} (those of the new pair follow from the Gram matrix:
 * mde.c, derive_pair_dots); gdots1: acc += {g.s, g.y}, one pair.
 * axpy: d += c b; axpy4_init: d = c0 g + c[0] b[0] + .. + c[3] b[3] (the direction's first four
 * vectors with g's term); axpy4: d += c[0] b[0] + .. + c[3] b[3] (one read and write of d for four
 * vectors).
 * ACC is the type gdots and axpy4 multiply and add the stored vectors in (read by VALUEA): double
 * for float pairs (mde_t.exact, near an optimum), float for bfloat16 ones. A bfloat16 value has 8
 * significant bits, so float's 24 lose nothing of it; a dot then sums VEC_CHUNK / lanes products
 * in each float lane (16 lanes in the AVX-512 clone, 4 in the baseline; chunks are added in
 * double), and the four-vector combination is rounded to float once before it is added to d.
 * Float's range is double's only up to 3e38: a product beyond it (gradients ~1e19 and more, at
 * points ~1e-19 apart) makes a dot infinite, the direction then not a descent direction, and
 * mde.c falls back to steepest descent with the memory dropped, as for any such direction. Twice
 * the lanes of double and no float-to-double conversion of every stored value: on the 2-core Zen 5,
 * 3 alternating pairs, the pair pass 0.55-0.59 -> 0.41-0.51 ms and the direction pass 0.55-0.58 ->
 * 0.43-0.49 ms an iteration at full scale (MDE 8.0-8.2 -> 7.2-7.8 s, distortion 0.279742 ->
 * 0.279456); on the small graph the MDE 0.42-0.47 -> 0.39-0.41 s (0.286916 -> 0.286202).
 */
#define INLINE static inline __attribute__((always_inline))
#define LBFGS_PASSES_DEFINE(sfx, T, VALUE, ROUND, ACC, VALUEA)                                     \
    INLINE void pair_##sfx(T *restrict s, T *restrict y, double t, const double *restrict d,       \
                           const double *restrict g, const double *restrict gp, size_t n,          \
                           double *restrict acc)                                                   \
    {                                                                                              \
        double ss = 0, sy = 0, yy = 0, gs = 0, gy = 0, gg = 0, l1 = 0;                             \
        if (s) {                                                                                   \
            for (size_t k = 0; k < n; k++) {                                                       \
                T sh = ROUND((float)(t * d[k])), yh = ROUND((float)(g[k] - gp[k]));                \
                double sk = VALUE(sh), yk = VALUE(yh), gk = g[k];                                  \
                s[k] = sh, y[k] = yh;                                                              \
                ss += sk * sk, sy += sk * yk, yy += yk * yk;                                       \
                gs += gk * sk, gy += gk * yk, gg += gk * gk, l1 += fabs(gk);                       \
            }                                                                                      \
        } else {                                                                                   \
            for (size_t k = 0; k < n; k++)                                                         \
                gg += g[k] * g[k], l1 += fabs(g[k]);                                               \
        }                                                                                          \
        acc[0] += ss, acc[1] += sy, acc[2] += yy, acc[3] += gs, acc[4] += gy, acc[5] += gg;        \
        acc[6] += l1;                                                                              \
    }                                                                                              \
    INLINE void gdots4_##sfx(const void *const *b, const double *restrict g, size_t n,             \
                             double *restrict acc)                                                 \
    {                                                                                              \
        const T *restrict b0 = b[0], *restrict b1 = b[1], *restrict b2 = b[2],                     \
                          *restrict b3 = b[3], *restrict b4 = b[4], *restrict b5 = b[5],           \
                          *restrict b6 = b[6], *restrict b7 = b[7];                                \
        ACC a0 = 0, a1 = 0, a2 = 0, a3 = 0, a4 = 0, a5 = 0, a6 = 0, a7 = 0;                        \
        for (size_t k = 0; k < n; k++) {                                                           \
            ACC gk = (ACC)g[k];                                                                    \
            a0 += gk * VALUEA(b0[k]), a1 += gk * VALUEA(b1[k]), a2 += gk * VALUEA(b2[k]);          \
            a3 += gk * VALUEA(b3[k]), a4 += gk * VALUEA(b4[k]), a5 += gk * VALUEA(b5[k]);          \
            a6 += gk * VALUEA(b6[k]), a7 += gk * VALUEA(b7[k]);                                    \
        }                                                                                          \
        acc[0] += (double)a0, acc[1] += (double)a1, acc[2] += (double)a2, acc[3] += (double)a3;    \
        acc[4] += (double)a4, acc[5] += (double)a5, acc[6] += (double)a6, acc[7] += (double)a7;    \
    }                                                                                              \
    INLINE void gdots1_##sfx(const T *restrict s, const T *restrict y, const double *restrict g,   \
                             size_t n, double *restrict acc)                                       \
    {                                                                                              \
        ACC a0 = 0, a1 = 0;                                                                        \
        for (size_t k = 0; k < n; k++)                                                             \
            a0 += (ACC)g[k] * VALUEA(s[k]), a1 += (ACC)g[k] * VALUEA(y[k]);                        \
        acc[0] += (double)a0, acc[1] += (double)a1;                                                \
    }                                                                                              \
    INLINE void axpy_##sfx(double *restrict d, double c, const T *restrict b, size_t n)            \
    {                                                                                              \
        for (size_t k = 0; k < n; k++)                                                             \
            d[k] += c * VALUE(b[k]);                                                               \
    }                                                                                              \
    INLINE void axpy4_init_##sfx(double *restrict d, double c0, const double *restrict g,          \
                                 const double *restrict c, const void *const *b, size_t n)         \
    {                                                                                              \
        const T *restrict b0 = b[0], *restrict b1 = b[1], *restrict b2 = b[2],                     \
                          *restrict b3 = b[3];                                                     \
        ACC c1 = (ACC)c[0], c2 = (ACC)c[1], c3 = (ACC)c[2], c4 = (ACC)c[3];                        \
        for (size_t k = 0; k < n; k++)                                                             \
            d[k] = c0 * g[k] + (double)((c1 * VALUEA(b0[k]) + c2 * VALUEA(b1[k])) +                \
                                        (c3 * VALUEA(b2[k]) + c4 * VALUEA(b3[k])));                \
    }                                                                                              \
    INLINE void axpy4_##sfx(double *restrict d, const double *restrict c, const void *const *b,    \
                            size_t n)                                                              \
    {                                                                                              \
        const T *restrict b0 = b[0], *restrict b1 = b[1], *restrict b2 = b[2],                     \
                          *restrict b3 = b[3];                                                     \
        ACC c0 = (ACC)c[0], c1 = (ACC)c[1], c2 = (ACC)c[2], c3 = (ACC)c[3];                        \
        for (size_t k = 0; k < n; k++)                                                             \
            d[k] += (double)((c0 * VALUEA(b0[k]) + c1 * VALUEA(b1[k])) +                           \
                             (c2 * VALUEA(b2[k]) + c3 * VALUEA(b3[k])));                           \
    }

static inline float f32_round(float v)
{
    return v;
}

static inline double f32_value(float v)
{
    return v;
}

LBFGS_PASSES_DEFINE(f32, float, f32_value, f32_round, double, f32_value)
LBFGS_PASSES_DEFINE(bf16, uint16_t, bf16_value, bf16_round, float, bf16_valuef)

MDE_CLONES_EVAL
void fastmath__lbfgs_pair(void *restrict s, void *restrict y, int bf16, double t,
                          const double *restrict d, const double *restrict g,
                          const double *restrict gp, size_t n, double *restrict acc)
{
    if (bf16)
        pair_bf16(s, y, t, d, g, gp, n, acc);
    else
        pair_f32(s, y, t, d, g, gp, n, acc);
}

MDE_CLONES_EVAL
void fastmath__lbfgs_gdots4(const void *const *b, int bf16, const double *restrict g, size_t n,
                            double *restrict acc)
{
    if (bf16)
        gdots4_bf16(b, g, n, acc);
    else
        gdots4_f32(b, g, n, acc);
}

MDE_CLONES_EVAL
void fastmath__lbfgs_gdots1(const void *s, const void *y, int bf16, const double *restrict g,
                            size_t n, double *restrict acc)
{
    if (bf16)
        gdots1_bf16(s, y, g, n, acc);
    else
        gdots1_f32(s, y, g, n, acc);
}

/* d = c g over [0, n), then d += c b for the stored vectors b */
MDE_CLONES
void fastmath__lbfgs_scale(double *restrict d, double c, const double *restrict g, size_t n)
{
    for (size_t k = 0; k < n; k++)
        d[k] = c * g[k];
}

MDE_CLONES
void fastmath__lbfgs_axpy(double *restrict d, double c, const void *b, int bf16, size_t n)
{
    if (bf16)
        axpy_bf16(d, c, b, n);
    else
        axpy_f32(d, c, b, n);
}

MDE_CLONES_EVAL
void fastmath__lbfgs_axpy4_init(double *restrict d, double c0, const double *restrict g,
                                const double *restrict c, const void *const *b, int bf16, size_t n)
{
    if (bf16)
        axpy4_init_bf16(d, c0, g, c, b, n);
    else
        axpy4_init_f32(d, c0, g, c, b, n);
}

MDE_CLONES_EVAL
void fastmath__lbfgs_axpy4(double *restrict d, const double *restrict c, const void *const *b,
                           int bf16, size_t n)
{
    if (bf16)
        axpy4_bf16(d, c, b, n);
    else
        axpy4_f32(d, c, b, n);
}

/* acc += {g.d, sum |d|}; acc[2] = max(acc[2], max |d|) */
MDE_CLONES
void fastmath__lbfgs_dir_stats(const double *restrict d, const double *restrict g, size_t n,
                               double *restrict acc)
{
    double gd = 0, l1 = 0, mx = 0;
    for (size_t k = 0; k < n; k++) {
        double v = fabs(d[k]);
        gd += g[k] * d[k], l1 += v;
        mx = v > mx ? v : mx;
    }
    acc[0] += gd, acc[1] += l1;
    acc[2] = mx > acc[2] ? mx : acc[2];
}

/*
 * dim 3, rows [0, n): xp = pad(x + t d), a row one 16-byte store. Both threads read every row of
 * xp in an evaluation, so a write must first take its cache line from the other core; GCC's
 * vectorised loop stored a row as four scalar pieces, which filled the store queue four times
 * as fast while those lines came: the direction pass that pads took 0.55-0.62 ms an iteration
 * at full scale, 0.39-0.43 this way (3 alternating pairs; the same bits).
 */
MDE_CLONES
void fastmath__mde_pad3_step(const double *restrict x, double t, const double *restrict d,
                             float *restrict xp, size_t n)
{
    for (size_t v = 0; v < n; v++) {
        v4f r = {(float)(x[3 * v] + t * d[3 * v]), (float)(x[3 * v + 1] + t * d[3 * v + 1]),
                 (float)(x[3 * v + 2] + t * d[3 * v + 2]), 0};
        *(v4f *)(xp + 4 * v) = r;
    }
}

/* dim 3, rows [0, n) of @p n_buf padded buffers @p stride rows apart: grad = scale * sum, and
 * the rows cleared for the next evaluation (while in cache: no separate pass); returns grad . d
 * (d may be NULL: 0) */
MDE_CLONES
double fastmath__mde_reduce3_dot(float *restrict gp, size_t n_buf, size_t stride, size_t n,
                                 double scale, double *restrict grad, const double *restrict d)
{
    double s0 = 0;
    const v4f zero = {0, 0, 0, 0};
    for (size_t v = 0; v < n; v++) {
        v4f s = *(const v4f *)(gp + 4 * v);
        *(v4f *)(gp + 4 * v) = zero;
        for (size_t c = 1; c < n_buf; c++) {
            s += *(const v4f *)(gp + 4 * (c * stride + v));
            *(v4f *)(gp + 4 * (c * stride + v)) = zero;
        }
        double a = scale * (double)s[0], b = scale * (double)s[1], c = scale * (double)s[2];
        grad[3 * v] = a, grad[3 * v + 1] = b, grad[3 * v + 2] = c;
        if (d)
            s0 += a * d[3 * v] + b * d[3 * v + 1] + c * d[3 * v + 2];
    }
    return s0;
}
