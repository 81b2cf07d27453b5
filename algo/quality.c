/*
 * quality.c: label purity and displacement figures. See quality.h.
 */
#include "algo/quality.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>

#include "algo/rng.h"

int quality_label_purity(const double *x, uint32_t n, uint32_t dim, const int32_t *labels,
                         uint32_t k, uint32_t n_sample, uint64_t seed, double *out)
{
    if (k == 0 || k >= n || dim == 0)
        return -EINVAL;
    double *best = malloc(k * sizeof(*best));
    uint32_t *idx = malloc(k * sizeof(*idx));
    if (!best || !idx) {
        free(best);
        free(idx);
        return -ENOMEM;
    }
    rng_t r;
    rng_init(&r, seed);
    uint64_t same = 0, total = 0;
    uint32_t queries = n_sample < n ? n_sample : n;
    for (uint32_t q = 0; q < queries; q++) {
        uint32_t i = n_sample < n ? (uint32_t)rng_below(&r, n) : q;
        if (labels[i] < 0)
            continue;
        uint32_t nb = 0;
        for (uint32_t j = 0; j < n; j++) {
            if (j == i)
                continue;
            double d = 0;
            for (uint32_t c = 0; c < dim; c++) {
                double t = x[(size_t)i * dim + c] - x[(size_t)j * dim + c];
                d += t * t;
            }
            if (nb == k && d >= best[k - 1])
                continue;
            uint32_t p = nb < k ? nb++ : k - 1;
            while (p > 0 && best[p - 1] > d) {
                best[p] = best[p - 1];
                idx[p] = idx[p - 1];
                p--;
            }
            best[p] = d;
            idx[p] = j;
        }
        for (uint32_t p = 0; p < nb; p++)
            same += labels[idx[p]] == labels[i];
        total += nb;
    }
    free(best);
    free(idx);
    *out = total ? (double)same / (double)total : 0;
    return 0;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int quality_displacement(const double *a, const double *b, uint32_t n, uint32_t dim,
                         const uint8_t *mask, double width, double *median, double *p95)
{
    double *d = malloc(((size_t)n + 1) * sizeof(*d));
    uint32_t m = 0;
    if (!d)
        return -ENOMEM;
    for (uint32_t i = 0; i < n; i++) {
        if (mask && !mask[i])
            continue;
        double s = 0;
        for (uint32_t c = 0; c < dim; c++) {
            double t = a[(size_t)i * dim + c] - b[(size_t)i * dim + c];
            s += t * t;
        }
        d[m++] = sqrt(s) / width;
    }
    if (m == 0 || !(width > 0)) {
        free(d);
        return -EINVAL;
    }
    qsort(d, m, sizeof(*d), cmp_double);
    *median = d[m / 2];
    *p95 = d[(size_t)((m - 1) * 0.95)];
    free(d);
    return 0;
}
