/*
 * fastmath.h: the vectorised inner kernels of mde.c and layout.c (internal to algo/), in one
 * module because they are the only code built with -ffast-math: the prefix names that room.
 */
#ifndef ATL_FASTMATH_H
#define ATL_FASTMATH_H

#include <stddef.h>
#include <stdint.h>

/** f[k] = -log(1 - e^-d[k]) and coef[k] = f'(d[k]) / d[k], for d[k] > 0. */
void fastmath__mde_repulsive_block(const double *restrict d, double *restrict f,
                                   double *restrict coef, size_t n);

/**
 * 3-D F and gradient over edges k < @p n (endpoints @p ei / @p ej, attractive weights @p w, or
 * all repulsive), on points padded to 4 doubles (@p xp, 32-byte aligned); adds coef (x_i - x_j)
 * to row i of @p gp and subtracts it from row j. @return the sum of the penalties, without the
 * repulsive edges of coincident points, which are counted in *n_inf instead (+inf each).
 */
double fastmath__mde_eval3(const double *restrict xp, double *restrict gp,
                           const uint32_t *restrict ei, const uint32_t *restrict ej,
                           const float *restrict w, size_t n, int repulsive,
                           size_t *restrict n_inf);

/* L-BFGS vector work (vectorised; sums in a fixed order per machine), see fastmath.c */
double fastmath__mde_dot(const double *restrict a, const double *restrict b, size_t n);
double fastmath__mde_axpy_dot(double *restrict d, double a, const double *restrict y,
                              const double *restrict z, size_t n);
double fastmath__mde_scale_dot(double *restrict d, double a, const double *restrict z, size_t n);
void fastmath__mde_axpy_to(double *restrict out, const double *restrict x, double t,
                           const double *restrict d, size_t n);
double fastmath__mde_pair(double *restrict s, double *restrict y, double t,
                          const double *restrict d, const double *restrict g,
                          const double *restrict gp, size_t n, double *yy);
void fastmath__mde_norms(const double *restrict d, size_t n, double *max_abs, double *sum_abs);
void fastmath__mde_step_center3(double *restrict x, double t, const double *restrict d, size_t n);
void fastmath__mde_pad3(const double *restrict x, double *restrict xp, size_t n);
void fastmath__mde_reduce3(const double *restrict gp, size_t n_buf, size_t n, double scale,
                           double *restrict grad);

/** UMAP: c[k] = 2b / ((0.001 + d2[k]) (1 + a d2[k]^b)) for d2[k] > 0 (used by layout.c). */
void fastmath__umap_repulsion_block(const double *restrict d2, double *restrict c, size_t n,
                                    double a, double b);

#endif
