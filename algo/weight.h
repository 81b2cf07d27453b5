/*
 * weight.h: the exact arithmetic of co-occurrence (DESIGN §3).
 *
 * Every quantity that is summed incrementally is an integer in fixed point, so that adding a
 * term and later subtracting the same term is exact and the incremental state equals a full
 * rebuild bit for bit. A pair term is rounded once, from the two pp values alone.
 */
#ifndef ATL_WEIGHT_H
#define ATL_WEIGHT_H

#include <stdint.h>

/* Fixed-point scale of pair weights and pp sums: value * 2^16. */
#define WEIGHT_ONE 65536

/**
 * Pair weight of two plays of one user, in fixed point:
 * d = |a - b| / max(a, b); w = 2 (1 - d / 0.5) if d < 0.5, else 0; returns round(w * 2^16).
 * Symmetric in a and b. Range 0..2*WEIGHT_ONE. Both pp values are taken as stored (float).
 */
int64_t weight_pair(float pp_a, float pp_b);

/**
 * weight_pair() inline, for the loops that sum billions of terms (algo/cooc). The rounding is
 * llround() for the non-negative values it sees, without the libm call: r = trunc(x) and
 * x - r is exact (Sterbenz), so r + (x - r >= 0.5) rounds half away from zero like llround.
 * weight_pair() is this function, so every path computes the same terms.
 */
static inline int64_t weight_pair_inline(float pp_a, float pp_b)
{
    double a = pp_a, b = pp_b;
    double hi = a > b ? a : b;
    double d = hi > 0.0 ? (a > b ? a - b : b - a) / hi : 0.0;
    if (!(d < 0.5))
        return 0;
    double x = 2.0 * (1.0 - d / 0.5) * WEIGHT_ONE;
    int64_t r = (int64_t)x;
    return r + (x - (double)r >= 0.5);
}

/** pp in fixed point (exact for every float pp below 2^31 / 2^16). */
int64_t weight_pp_fixed(float pp);

/** A fixed-point sum back to a double (for display, retention and T; inline: the read of T
 * converts every stored entry). */
static inline double weight_to_double(int64_t fixed)
{
    return (double)fixed / WEIGHT_ONE;
}

/**
 * Retention rule: keep an item if num_users >= 50 - 45 * clamp((avg_pp - 100) / 400, 0, 1),
 * with avg_pp = sum_pp_fixed / WEIGHT_ONE / num_users.
 * @return 1 to keep, 0 to drop (also 0 when num_users is 0).
 */
int weight_retained(uint32_t num_users, int64_t sum_pp_fixed);

#endif
