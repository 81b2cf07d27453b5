/*
 * fastmath.c: the transcendental part of the MDE repulsive penalty and of UMAP's repulsion over
 * a block of distances, kept in their own translation unit so it alone is compiled with -ffast-math
 * (see CMakeLists.txt): that lets GCC call glibc's vector math (libmvec) for exp and log, 2 or 4
 * distances per call, which is most of the cost of an MDE evaluation. Non-finite results are
 * possible only at d = 0, which the caller never passes (it skips coincident points).
 *
 * f(d) = -log(1 - e^-d) (PyMDE penalties.Log, exponent 1); coef = f'(d) / d = -e^-d / ((1 -
 * e^-d) d). log(1 - e) instead of log1p(-e), which has no vector variant: at the smallest
 * distances that occur (1e-6) the relative error is about 1e-10.
 */
#include "algo/fastmath.h"

#include <math.h>

void fastmath__mde_repulsive_block(const double *restrict d, double *restrict f,
                                   double *restrict coef, size_t n)
{
    for (size_t k = 0; k < n; k++) {
        double em = exp(-d[k]);
        f[k] = -log(1.0 - em);
        coef[k] = -em / ((1.0 - em) * d[k]);
    }
}

/*
 * UMAP repulsion coefficients for a batch of negative samples (layout.c): c = 2b / ((0.001 +
 * d2) (1 + a d2^b)), with d2^b = exp(b log d2) so GCC can vectorise through libmvec. d2 > 0.
 */
void fastmath__umap_repulsion_block(const double *restrict d2, double *restrict c, size_t n,
                                    double a, double b)
{
    for (size_t k = 0; k < n; k++)
        c[k] = 2 * b / ((0.001 + d2[k]) * (1 + a * exp(b * log(d2[k]))));
}
