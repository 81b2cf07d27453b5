/*
 * quality.h: measures of an embedding used by tests and benchmarks.
 */
#ifndef ATL_QUALITY_H
#define ATL_QUALITY_H

#include <stdint.h>

/**
 * kNN label purity: over @p n_sample query points (a seeded sample; all if n_sample >= n), the
 * fraction of their @p k nearest neighbours (Euclidean, brute force) with the same label.
 * Points with label < 0 are not queried; as neighbours they count as different.
 * @return 0 and *out, or -EINVAL (k 0 or >= n, dim 0), -ENOMEM.
 */
int quality_label_purity(const double *x, uint32_t n, uint32_t dim, const int32_t *labels,
                         uint32_t k, uint32_t n_sample, uint64_t seed, double *out);

/**
 * Displacement statistics between two placements of the same points (rows of @p a and @p b,
 * 2-D or more), as fractions of @p width: median and 95th percentile over rows with mask[i]
 * set (all rows if mask is NULL). @return 0, -EINVAL (no row selected), -ENOMEM.
 */
int quality_displacement(const double *a, const double *b, uint32_t n, uint32_t dim,
                         const uint8_t *mask, double width, double *median, double *p95);

#endif
