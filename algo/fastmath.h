/*
 * fastmath.h: the vectorised inner kernels of mde.c and layout.c (internal to algo/), in one
 * module because they are the only code built with -ffast-math: the prefix names that room.
 */
#ifndef ATL_FASTMATH_H
#define ATL_FASTMATH_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "algo/rng.h"

/** f[k] = -log(1 - e^-d[k]) and coef[k] = f'(d[k]) / d[k], for d[k] > 0. */
void fastmath__mde_repulsive_block(const double *restrict d, double *restrict f,
                                   double *restrict coef, size_t n);

/**
 * 3-D F and gradient over edges k < @p n (endpoints @p oi / @p oj given as row offsets, 4 x the
 * point's index; attractive weights @p w, or all repulsive), in single precision on points
 * padded to 4 floats (@p xp, 16-byte aligned); adds coef (x_i - x_j) to row i of @p gp and
 * subtracts it from row j. @return the sum of the penalties, without the repulsive edges of
 * coincident points, which are counted in *n_inf instead (+inf each).
 */
double fastmath__mde_eval3(const float *restrict xp, float *restrict gp,
                           const uint32_t *restrict oi, const uint32_t *restrict oj,
                           const float *restrict w, size_t n, int repulsive,
                           size_t *restrict n_inf);

/* L-BFGS vector work (vectorised; sums in a fixed order per machine), see fastmath.c */
double fastmath__mde_dot(const double *restrict a, const double *restrict b, size_t n);
void fastmath__mde_axpy_to(double *restrict out, const double *restrict x, double t,
                           const double *restrict d, size_t n);
void fastmath__mde_step3(double *restrict x, double t, const double *restrict d,
                         const double *restrict mean, size_t n);
void fastmath__mde_colsum3(const double *restrict d, size_t n, double *restrict acc);
void fastmath__mde_pad3(const double *restrict x, float *restrict xp, size_t n);

/* L-BFGS in coefficient space (mde.c): the passes over a chunk of the vectors. The stored pairs
 * are float, or with @p bf16 bfloat16 (a float's upper 16 bits; see fastmath.c) */
void fastmath__lbfgs_pair(void *restrict s, void *restrict y, int bf16, double t,
                          const double *restrict d, const double *restrict g,
                          const double *restrict gp, size_t n, double *restrict acc);
void fastmath__lbfgs_gdots4(const void *const *b, int bf16, const double *restrict g, size_t n,
                            double *restrict acc);
void fastmath__lbfgs_gdots1(const void *s, const void *y, int bf16, const double *restrict g,
                            size_t n, double *restrict acc);
void fastmath__lbfgs_scale(double *restrict d, double c, const double *restrict g, size_t n);
void fastmath__lbfgs_axpy(double *restrict d, double c, const void *b, int bf16, size_t n);
void fastmath__lbfgs_axpy4_init(double *restrict d, double c0, const double *restrict g,
                                const double *restrict c, const void *const *b, int bf16, size_t n);
void fastmath__lbfgs_axpy4(double *restrict d, const double *restrict c, const void *const *b,
                           int bf16, size_t n);
void fastmath__lbfgs_dir_stats(const double *restrict d, const double *restrict g, size_t n,
                               double *restrict acc);
void fastmath__mde_pad3_step(const double *restrict x, double t, const double *restrict d,
                             float *restrict xp, size_t n);
double fastmath__mde_reduce3_dot(float *restrict gp, size_t n_buf, size_t stride, size_t n,
                                 double scale, double *restrict grad, const double *restrict d);

/* One part of a UMAP SGD epoch (layout.c): points [lo, hi) are read and written live in @p y,
 * the others read from @p snap and moved through @p dl (see layout.c). */
typedef struct fastmath_umap {
    float *y; /* positions in single precision, as umap-learn's float32 embedding */
    const float *snap;
    float *dl;
    uint32_t lo, hi, n;
    float a, b, alpha;
} fastmath_umap_t;

/* An edge of the UMAP SGD's calendar (layout.c): head, tail, and the schedule's fields, which
 * the kernel does not read. */
typedef struct fastmath_umap_rec {
    uint32_t head, tail;
    float eps;  /* period in epochs */
    uint32_t k; /* the sample due next is the k-th */
} fastmath_umap_rec_t;

/**
 * Visits of edges @p rec[0 .. cnt), two side by side: record i with record i + h (h = cnt / 2;
 * an odd run's last record alone at the end), both first batches computed from the positions
 * at the step's start (random bits drawn for the first of the two, then the second), then each
 * applied in turn (fastmath.c says why). A visit of edge (j, k): the attraction (y_j moved if
 * movable[j], y_k if movable[k]; @p movable NULL: all move) by alpha clip4(c (y_j - y_k)), c =
 * -2ab d2^(b-1) / (1 + a d2^b), then @p neg[i] negative samples (none if y_j is fixed) drawn
 * uniformly from [0, n) with @p r (two per 64 bits), each pushing y_j by alpha clip4(c (y_j -
 * y_o)), c = 2b / ((0.001 + d2) (1 + a d2^b)), taken 8 at a time from y_j as it is at the start
 * of each 8 (the first 8: the attraction and 7 draws). Positions and coefficients in single
 * precision, as umap-learn's.
 */
void fastmath__umap_edges(const fastmath_umap_t *u, rng_t *restrict r,
                          const fastmath_umap_rec_t *restrict rec, const uint16_t *restrict neg,
                          size_t cnt, const uint8_t *restrict movable);

/** UMAP's smooth kNN distances (layout.c): sum over c in [1, k) of e_c = exp(-r_c / sigma),
 * r_c = max(d[c] - rho, 0), with *slope = sum of e_c r_c (the sum's derivative in sigma is
 * slope / sigma^2); the memberships w[c] = exp(-max(d[c] - rho, 0) / sigma) for c in [0, k) (1
 * if sigma is 0); vectorised, sums in a fixed order per machine. */
double fastmath__umap_psum(const double *restrict d, uint32_t k, double rho, double sigma,
                           double *restrict slope);
void fastmath__umap_memberships(const double *restrict d, uint32_t k, double rho, double sigma,
                                double *restrict w);

/** 1 + the position of @p v in row[0, n) (whose entries are distinct), 0 if absent. */
uint32_t fastmath__find_u32(const uint32_t *restrict row, uint32_t n, uint32_t v);

/*
 * x^b for x > 0 in single precision (relative error ~2e-7, as umap-learn's float32 SGD), from
 * an exponent/mantissa split, log(m) by atanh series and 2^f by Taylor series: a dozen
 * multiplies that GCC vectorises, instead of a libm pow (~120 instructions). x is clamped to
 * [1e-30, 1e30] and the result to [2^-126, 2^126].
 */
static inline float fastmath__powf_pos(float x, float b)
{
    x = x < 1e-30f ? 1e-30f : (x > 1e30f ? 1e30f : x);
    uint32_t bits;
    memcpy(&bits, &x, sizeof(bits));
    int32_t e = (int32_t)(bits >> 23) - 127;
    uint32_t mb = (bits & 0x7fffffu) | 0x3f800000u;
    float mf;
    memcpy(&mf, &mb, sizeof(mf));
    int big = mf > 1.41421356f;
    mf = big ? mf * 0.5f : mf;
    e += big;
    float t = (mf - 1.0f) / (mf + 1.0f), t2 = t * t;
    float ln_m = 2.0f * t * (1.0f + t2 * (1.0f / 3 + t2 * (1.0f / 5 + t2 * (1.0f / 7))));
    float y = b * ((float)e + ln_m * 1.44269504f); /* b log2 x */
    y = y < -126.0f ? -126.0f : (y > 126.0f ? 126.0f : y);
    int32_t k = (int32_t)(y + (y >= 0 ? 0.5f : -0.5f));
    float g = (y - (float)k) * 0.693147181f; /* |g| <= ln2 / 2 */
    float p =
        1.0f +
        g * (1.0f +
             g * (0.5f +
                  g * (1.0f / 6 +
                       g * (1.0f / 24 + g * (1.0f / 120 + g * (1.0f / 720 + g * (1.0f / 5040)))))));
    uint32_t pb;
    memcpy(&pb, &p, sizeof(pb));
    pb += (uint32_t)k << 23;
    memcpy(&p, &pb, sizeof(p));
    return p;
}

#endif
