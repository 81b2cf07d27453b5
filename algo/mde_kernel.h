/*
 * mde_kernel.h: vectorised inner kernel of mde.c (internal to algo/).
 */
#ifndef ATL_MDE_KERNEL_H
#define ATL_MDE_KERNEL_H

#include <stddef.h>

/** f[k] = -log(1 - e^-d[k]) and coef[k] = f'(d[k]) / d[k], for d[k] > 0. */
void mde__repulsive_block(const double *restrict d, double *restrict f, double *restrict coef,
                          size_t n);

#endif
