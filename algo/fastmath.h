/*
 * fastmath.h: the vectorised inner kernels of mde.c and layout.c (internal to algo/), in one
 * module because they are the only code built with -ffast-math: the prefix names that room.
 */
#ifndef ATL_FASTMATH_H
#define ATL_FASTMATH_H

#include <stddef.h>

/** f[k] = -log(1 - e^-d[k]) and coef[k] = f'(d[k]) / d[k], for d[k] > 0. */
void fastmath__mde_repulsive_block(const double *restrict d, double *restrict f,
                                   double *restrict coef, size_t n);

/** UMAP: c[k] = 2b / ((0.001 + d2[k]) (1 + a d2[k]^b)) for d2[k] > 0 (used by layout.c). */
void fastmath__umap_repulsion_block(const double *restrict d2, double *restrict c, size_t n,
                                    double a, double b);

#endif
