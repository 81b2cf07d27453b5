/*
 * rng.h: explicit, seeded random numbers for algo/ and tools/ (no globals, no rand()).
 *
 * xoshiro256** (Blackman & Vigna 2018) seeded through splitmix64: fast, 2^256 period, and the
 * same stream on every platform, so a seed reproduces a run exactly.
 */
#ifndef ATL_RNG_H
#define ATL_RNG_H

#include <stdint.h>

typedef struct rng {
    uint64_t s[4];
} rng_t;

/** Seed @p r; any seed (including 0) is valid. Distinct streams: rng_init(r, seed ^ stream). */
void rng_init(rng_t *r, uint64_t seed);

/** Next 64 random bits. */
uint64_t rng_next(rng_t *r);

/** rng_next() inline, for hot loops (the same stream). */
static inline uint64_t rng_next_inline(rng_t *r)
{
    uint64_t *s = r->s;
    uint64_t x = s[1] * 5, result = ((x << 7) | (x >> 57)) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = (s[3] << 45) | (s[3] >> 19);
    return result;
}

/** Uniform double in [0, 1). */
double rng_uniform(rng_t *r);

/** Uniform integer in [0, n), n > 0, without modulo bias (Lemire 2019). */
uint64_t rng_below(rng_t *r, uint64_t n);

/** Standard normal deviate (Marsaglia polar method; no cached second value, so no hidden state). */
double rng_normal(rng_t *r);

#endif
