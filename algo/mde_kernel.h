/*
 * mde_kernel.h: vectorised inner kernels of mde.c and layout.c (internal to algo/): the only
 * code built with -ffast-math.
 */
#ifndef ATL_MDE_KERNEL_H
#define ATL_MDE_KERNEL_H

#include <stddef.h>

/** f[k] = -log(1 - e^-d[k]) and coef[k] = f'(d[k]) / d[k], for d[k] > 0. */
void mde__repulsive_block(const double *restrict d, double *restrict f, double *restrict coef,
                          size_t n);

/** UMAP: c[k] = 2b / ((0.001 + d2[k]) (1 + a d2[k]^b)) for d2[k] > 0 (used by layout.c). */
void layout__repulsion_block(const double *restrict d2, double *restrict c, size_t n, double a,
                             double b);

#endif
