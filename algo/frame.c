/*
 * frame.c: the atlas frame (see frame.h for the what and why).
 *
 * Invariants: a frame_t is always a similarity (a = s R with R orthogonal); frame_fit() only
 * returns landscape frames (drawn width >= drawn height of the quantile box) unless an explicit
 * orientation is imposed; everything is deterministic (fixed angle grid, first best wins).
 * Quantiles are found by selection (O(n) expected), not sorting, since the angle search
 * evaluates ~60 candidate rotations.
 */
#include "algo/frame.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define COARSE_STEP_DEG 5.0
#define FINE_STEP_DEG   0.25
#define DEG_PER_RAD     57.295779513082320876798

void frame_view_default(frame_view_t *v)
{
    memset(v, 0, sizeof(*v));
    v->centre[0] = -20, v->centre[1] = 0;
    v->width = 322.6, v->height = 322.6 / 1.6;
    v->zoom[0] = -2, v->zoom[1] = 2;
    v->fill = 0.90, v->fill_lo = 0.82, v->fill_hi = 0.97;
    v->pct_lo = 0.01, v->pct_hi = 0.99;
    v->centre_tol = 0.05;
}

static int view_check(const frame_view_t *v)
{
    return v && v->width > 0 && v->height > 0 && v->zoom[0] != 0 && v->zoom[1] != 0 &&
           v->fill > 0 && v->fill_lo <= v->fill && v->fill <= v->fill_hi && v->pct_lo >= 0 &&
           v->pct_lo < v->pct_hi && v->pct_hi <= 1 && v->centre_tol >= 0 && isfinite(v->zoom[0]) &&
           isfinite(v->zoom[1]) && isfinite(v->centre[0]) && isfinite(v->centre[1]);
}

void frame_legacy(const double *y, uint32_t n, frame_t *out)
{
    double mn[2] = {INFINITY, INFINITY}, mx[2] = {-INFINITY, -INFINITY};
    for (uint32_t i = 0; i < n; i++)
        for (int d = 0; d < 2; d++) {
            mn[d] = fmin(mn[d], y[2 * (size_t)i + d]);
            mx[d] = fmax(mx[d], y[2 * (size_t)i + d]);
        }
    double c0 = n ? (mn[0] + mx[0]) / 2 : 0, c1 = n ? (mn[1] + mx[1]) / 2 : 0;
    /* out = (-(y1 - c1), -(y0 - c0)) * 2.5 */
    out->a[0] = 0, out->a[1] = -2.5, out->a[2] = -2.5, out->a[3] = 0;
    out->t[0] = 2.5 * c1, out->t[1] = 2.5 * c0;
}

void frame_apply(const frame_t *f, const double *y, uint32_t n, double *out)
{
    for (uint32_t i = 0; i < n; i++) {
        double u = y[2 * (size_t)i], w = y[2 * (size_t)i + 1];
        out[2 * (size_t)i] = f->a[0] * u + f->a[1] * w + f->t[0];
        out[2 * (size_t)i + 1] = f->a[2] * u + f->a[3] * w + f->t[1];
    }
}

void frame_describe(const frame_t *f, double *scale, double *angle_deg, int *reflect)
{
    double det = f->a[0] * f->a[3] - f->a[1] * f->a[2];
    *scale = sqrt(fabs(det));
    *reflect = det < 0;
    /* the rotation part: the image of the x axis (columns of a = s R) */
    *angle_deg = atan2(f->a[2], f->a[0]) * DEG_PER_RAD;
}

/* The value of rank @p k (0-based, ascending) of v[0..n); reorders v. */
static double select_rank(double *v, uint32_t n, uint32_t k)
{
    uint32_t lo = 0, hi = n - 1;
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        double a = v[lo], b = v[mid], c = v[hi];
        double pivot = a < b ? (b < c ? b : (a < c ? c : a)) : (a < c ? a : (b < c ? c : b));
        uint32_t i = lo, j = hi;
        while (i <= j) {
            while (v[i] < pivot)
                i++;
            while (v[j] > pivot)
                j--;
            if (i <= j) {
                double t = v[i];
                v[i] = v[j], v[j] = t;
                i++;
                if (j == 0)
                    break;
                j--;
            }
        }
        if (k <= j)
            hi = j;
        else if (k >= i)
            lo = i;
        else
            return v[k];
    }
    return v[k];
}

/* The low quantile rounds its rank down and the high one up, so a map of two points spans both. */
static void quantiles(double *v, uint32_t n, const frame_view_t *fv, double *lo, double *hi)
{
    *lo = select_rank(v, n, (uint32_t)floor(fv->pct_lo * (n - 1)));
    *hi = select_rank(v, n, (uint32_t)ceil(fv->pct_hi * (n - 1)));
}

int frame_extent(const double *xy, uint32_t n, const frame_view_t *v, frame_extent_t *out)
{
    if (!xy || n == 0 || !view_check(v) || !out)
        return -EINVAL;
    double *buf = malloc((size_t)n * sizeof(double));
    if (!buf)
        return -ENOMEM;
    frame_extent_t e;
    for (int d = 0; d < 2; d++) {
        for (uint32_t i = 0; i < n; i++) {
            buf[i] = v->zoom[d] * xy[2 * (size_t)i + d];
            if (!isfinite(buf[i])) {
                free(buf);
                return -EINVAL;
            }
        }
        quantiles(buf, n, v, &e.lo[d], &e.hi[d]);
        e.centre[d] = (e.lo[d] + e.hi[d]) / 2;
    }
    free(buf);
    e.width = e.hi[0] - e.lo[0], e.height = e.hi[1] - e.lo[1];
    e.fill = fmax(e.width / v->width, e.height / v->height);
    *out = e;
    return 0;
}

/* Drawn quantile box of the unit-scale rotation r (row-major 2x2) of y: box[0..3] = lo0, hi0,
 * lo1, hi1. @p buf holds n doubles. */
static void rotated_box(const double *y, uint32_t n, const double r[4], const frame_view_t *v,
                        double *buf, double box[4])
{
    for (int d = 0; d < 2; d++) {
        for (uint32_t i = 0; i < n; i++)
            buf[i] =
                v->zoom[d] * (r[2 * d] * y[2 * (size_t)i] + r[2 * d + 1] * y[2 * (size_t)i + 1]);
        quantiles(buf, n, v, &box[2 * d], &box[2 * d + 1]);
    }
}

/* Unit rotation by @p deg after the notebooks' (x, y) -> (-y, -x) reflection. */
static void orientation(double deg, double r[4])
{
    double th = deg / DEG_PER_RAD, c = cos(th), s = sin(th);
    /* rot(th) * [[0, -1], [-1, 0]] */
    r[0] = s, r[1] = -c, r[2] = -c, r[3] = -s;
}

/* The frame of orientation r scaled to v->fill and centred; *aspect = drawn width / height of
 * the quantile box. Returns the scale, 0 if the box is degenerate. */
static double fit_orientation(const double *y, uint32_t n, const frame_view_t *v, const double r[4],
                              double *buf, frame_t *out, double *aspect)
{
    double box[4];
    rotated_box(y, n, r, v, buf, box);
    double w = box[1] - box[0], h = box[3] - box[2];
    double f1 = fmax(w / v->width, h / v->height);
    *aspect = h > 0 ? w / h : (w > 0 ? (double)INFINITY : 0.0);
    if (!(f1 > 0) || !isfinite(f1))
        return 0;
    double s = v->fill / f1;
    for (int k = 0; k < 4; k++)
        out->a[k] = s * r[k];
    for (int d = 0; d < 2; d++) /* drawn centre of the box must land on the view's centre */
        out->t[d] = (v->centre[d] - s * (box[2 * d] + box[2 * d + 1]) / 2) / v->zoom[d];
    return s;
}

/* The most landscape angle (largest drawn width / height) in [from, to] by @p step; the best
 * so far stays unless beaten. */
static void search_angles(const double *y, uint32_t n, const frame_view_t *v, double from,
                          double to, double step, double *buf, double *best_deg,
                          double *best_aspect, frame_t *best)
{
    for (double deg = from; deg <= to + 1e-9; deg += step) {
        double r[4], aspect;
        frame_t f;
        orientation(deg, r);
        double s = fit_orientation(y, n, v, r, buf, &f, &aspect);
        if (s > 0 && aspect > *best_aspect)
            *best_aspect = aspect, *best_deg = deg, *best = f;
    }
}

static int input_check(const double *y, uint32_t n)
{
    if (!y || n < 2)
        return -EINVAL;
    for (size_t i = 0; i < 2 * (size_t)n; i++)
        if (!isfinite(y[i]))
            return -EINVAL;
    return 0;
}

int frame_fit(const double *y, uint32_t n, const frame_view_t *v, const frame_t *orient,
              frame_t *out)
{
    int rc = input_check(y, n);
    if (rc != 0 || !view_check(v) || !out)
        return -EINVAL;
    double *buf = malloc((size_t)n * sizeof(double));
    if (!buf)
        return -ENOMEM;
    frame_t best = {{0}, {0}};
    double best_aspect = 0, best_deg = 0;
    if (orient) {
        double scale, deg, r[4];
        int reflect;
        frame_describe(orient, &scale, &deg, &reflect);
        for (int k = 0; k < 4; k++)
            r[k] = scale > 0 ? orient->a[k] / scale : 0;
        if (!(scale > 0) || !(fit_orientation(y, n, v, r, buf, &best, &best_aspect) > 0))
            best_aspect = 0;
    } else {
        search_angles(y, n, v, 0, 180 - COARSE_STEP_DEG, COARSE_STEP_DEG, buf, &best_deg,
                      &best_aspect, &best);
        search_angles(y, n, v, best_deg - COARSE_STEP_DEG, best_deg + COARSE_STEP_DEG,
                      FINE_STEP_DEG, buf, &best_deg, &best_aspect, &best);
    }
    if (!(best_aspect > 0)) { /* every point in one place: scale 1, centred on the view */
        double r[4], box[4];
        orientation(0, r);
        rotated_box(y, n, r, v, buf, box);
        for (int k = 0; k < 4; k++)
            best.a[k] = r[k];
        for (int d = 0; d < 2; d++)
            best.t[d] = (v->centre[d] - (box[2 * d] + box[2 * d + 1]) / 2) / v->zoom[d];
    }
    free(buf);
    *out = best;
    return 0;
}

int frame_recover(const double *y, const double *xy, uint32_t n, frame_t *out)
{
    if (!y || !xy || n < 3)
        return -EINVAL;
    double my[2] = {0, 0}, mx[2] = {0, 0};
    for (uint32_t i = 0; i < n; i++)
        for (int d = 0; d < 2; d++)
            my[d] += y[2 * (size_t)i + d] / n, mx[d] += xy[2 * (size_t)i + d] / n;
    double c00 = 0, c01 = 0, c11 = 0, b[2][2] = {{0, 0}, {0, 0}};
    for (uint32_t i = 0; i < n; i++) {
        double u = y[2 * (size_t)i] - my[0], w = y[2 * (size_t)i + 1] - my[1];
        c00 += u * u, c01 += u * w, c11 += w * w;
        for (int d = 0; d < 2; d++) {
            double x = xy[2 * (size_t)i + d] - mx[d];
            b[d][0] += u * x, b[d][1] += w * x;
        }
    }
    double det = c00 * c11 - c01 * c01;
    if (!(det > 1e-12 * (c00 + c11) * (c00 + c11)))
        return -EINVAL; /* collinear or identical points */
    frame_t f;
    for (int d = 0; d < 2; d++) {
        f.a[2 * d] = (c11 * b[d][0] - c01 * b[d][1]) / det;
        f.a[2 * d + 1] = (c00 * b[d][1] - c01 * b[d][0]) / det;
    }
    /* a similarity has orthogonal columns of equal length */
    double n0 = f.a[0] * f.a[0] + f.a[2] * f.a[2], n1 = f.a[1] * f.a[1] + f.a[3] * f.a[3];
    double dot = f.a[0] * f.a[1] + f.a[2] * f.a[3];
    if (!(n0 > 0) || fabs(n0 - n1) > 1e-6 * n0 || fabs(dot) > 1e-6 * n0)
        return -EINVAL;
    for (int d = 0; d < 2; d++)
        f.t[d] = mx[d] - f.a[2 * d] * my[0] - f.a[2 * d + 1] * my[1];
    *out = f;
    return 0;
}

int frame_choose(const double *y, uint32_t n, const frame_view_t *v, const frame_t *prev,
                 frame_t *out, int *reframed)
{
    int rc = input_check(y, n);
    if (rc != 0 || !view_check(v) || !out || !reframed)
        return -EINVAL;
    if (prev) {
        double *xy = malloc((size_t)n * 2 * sizeof(double));
        frame_extent_t e;
        if (!xy)
            return -ENOMEM;
        frame_apply(prev, y, n, xy);
        rc = frame_extent(xy, n, v, &e);
        free(xy);
        if (rc != 0)
            return rc;
        if (e.fill >= v->fill_lo && e.fill <= v->fill_hi && e.width >= e.height &&
            fabs(e.centre[0] - v->centre[0]) <= v->centre_tol * v->width &&
            fabs(e.centre[1] - v->centre[1]) <= v->centre_tol * v->height) {
            *out = *prev, *reframed = 0;
            return 0;
        }
        frame_t f;
        if ((rc = frame_fit(y, n, v, prev, &f)) != 0)
            return rc;
        xy = malloc((size_t)n * 2 * sizeof(double));
        if (!xy)
            return -ENOMEM;
        frame_apply(&f, y, n, xy);
        rc = frame_extent(xy, n, v, &e);
        free(xy);
        if (rc != 0)
            return rc;
        if (e.width >= e.height) { /* same orientation, new scale and centre */
            *out = f, *reframed = 1;
            return 0;
        }
    }
    if ((rc = frame_fit(y, n, v, NULL, out)) == 0)
        *reframed = 1;
    return rc;
}
