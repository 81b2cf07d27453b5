/*
 * mde_kernel.h: vectorised inner kernels of mde.c and layout.c (internal to algo/): the only
 * code built with -ffast-math.
 */
#ifndef ATL_MDE_KERNEL_H
#define ATL_MDE_KERNEL_H

#include <stddef.h>
#include <stdint.h>

/** f[k] = -log(1 - e^-d[k]) and coef[k] = f'(d[k]) / d[k], for d[k] > 0. */
void mde__repulsive_block(const double *restrict d, double *restrict f, double *restrict coef,
                          size_t n);

/**
 * 3-D F and gradient over edges k < @p n (endpoints @p ei / @p ej, attractive weights @p w, or
 * all repulsive), on points padded to 4 doubles (@p xp, 32-byte aligned); adds coef (x_i - x_j)
 * to row i of @p gp and subtracts it from row j. @return the sum of the penalties, without the
 * repulsive edges of coincident points, which are counted in *n_inf instead (+inf each).
 */
double mde__eval3(const double *restrict xp, double *restrict gp, const uint32_t *restrict ei,
                  const uint32_t *restrict ej, const float *restrict w, size_t n, int repulsive,
                  size_t *restrict n_inf);

/* L-BFGS vector work (vectorised; sums in a fixed order per machine), see mde_kernel.c */
double mde__dot(const double *restrict a, const double *restrict b, size_t n);
double mde__axpy_dot(double *restrict d, double a, const double *restrict y,
                     const double *restrict z, size_t n);
double mde__scale_dot(double *restrict d, double a, const double *restrict z, size_t n);
void mde__axpy_to(double *restrict out, const double *restrict x, double t,
                  const double *restrict d, size_t n);
double mde__pair(double *restrict s, double *restrict y, double t, const double *restrict d,
                 const double *restrict g, const double *restrict gp, size_t n, double *yy);
void mde__norms(const double *restrict d, size_t n, double *max_abs, double *sum_abs);
void mde__step_center3(double *restrict x, double t, const double *restrict d, size_t n);
void mde__pad3(const double *restrict x, double *restrict xp, size_t n);
void mde__reduce3(const double *restrict gp, size_t n_buf, size_t n, double scale,
                  double *restrict grad);

/** UMAP: c[k] = 2b / ((0.001 + d2[k]) (1 + a d2[k]^b)) for d2[k] > 0 (used by layout.c). */
void layout__repulsion_block(const double *restrict d2, double *restrict c, size_t n, double a,
                             double b);

#endif
