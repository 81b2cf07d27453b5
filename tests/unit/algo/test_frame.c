/*
 * The atlas frame: a new map of any size and orientation fills 85-95% of the frontend's default
 * view (binding side) with its long axis horizontal and its quantile box centred on the view;
 * frame_recover() finds an applied frame exactly; frame_choose() keeps the previous frame for a
 * map whose extent barely changed, rescales (same orientation) one that grew, and refits one that
 * turned portrait; bad input is -EINVAL.
 */
#include <errno.h>
#include <math.h>
#include <stdlib.h>

#include "algo/frame.h"
#include "algo/rng.h"
#include "tests/check.h"

/* n points of a Gaussian blob with s.d. sx x sy rotated by deg about (cx, cy), plus 0.5% far
 * outliers (the 1st-99th percentile box must ignore them). */
static double *blob(uint32_t n, double sx, double sy, double deg, double cx, double cy,
                    uint64_t seed)
{
    double *y = malloc((size_t)n * 2 * sizeof(double)), th = deg * 3.14159265358979 / 180;
    rng_t r;
    rng_init(&r, seed);
    for (uint32_t i = 0; i < n; i++) {
        double u = sx * rng_normal(&r), w = sy * rng_normal(&r);
        if (i % 200 == 7)
            u *= 40, w *= 40;
        y[2 * i] = cx + cos(th) * u - sin(th) * w;
        y[2 * i + 1] = cy + sin(th) * u + cos(th) * w;
    }
    return y;
}

static void extent_of(const frame_t *f, const double *y, uint32_t n, const frame_view_t *v,
                      frame_extent_t *e)
{
    double *xy = malloc((size_t)n * 2 * sizeof(double));
    frame_apply(f, y, n, xy);
    E(frame_extent(xy, n, v, e));
    free(xy);
}

static void check_fills(const frame_t *f, const double *y, uint32_t n, const frame_view_t *v)
{
    frame_extent_t e;
    extent_of(f, y, n, v, &e);
    fprintf(stderr, "n %u: drawn %.1f x %.1f, fill %.3f, centre (%.2f, %.2f)\n", n, e.width,
            e.height, e.fill, e.centre[0], e.centre[1]);
    CHECK(e.fill >= 0.85 && e.fill <= 0.95);
    CHECK_NEAR(e.fill, v->fill, 1e-9);
    CHECK(e.width >= e.height);
    CHECK_NEAR(e.centre[0], v->centre[0], 1e-6);
    CHECK_NEAR(e.centre[1], v->centre[1], 1e-6);
}

static void check_same(const frame_t *a, const frame_t *b, double tol)
{
    for (int k = 0; k < 4; k++)
        CHECK_NEAR(a->a[k], b->a[k], tol);
    CHECK_NEAR(a->t[0], b->t[0], tol);
    CHECK_NEAR(a->t[1], b->t[1], tol);
}

int main(void)
{
    frame_view_t v;
    frame_view_default(&v);
    CHECK_NEAR(v.width, 322.6, 1e-12);
    CHECK_NEAR(v.height, 201.625, 1e-12);
    CHECK_NEAR(v.centre[0], -20, 0);

    /* any size (UMAP's extent grows with n), any orientation: tall, wide, tilted, round */
    struct {
        uint32_t n;
        double sx, sy, deg;
    } cases[] = {{300, 1, 3, 0},
                 {3000, 4, 9, 0},
                 {20000, 12, 5, 37},
                 {5000, 6, 6, 0},
                 {1000, 0.2, 0.05, 120}};

    for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
        double *y = blob(cases[c].n, cases[c].sx, cases[c].sy, cases[c].deg, 3, -7, c);
        frame_t f;
        E(frame_fit(y, cases[c].n, &v, NULL, &f));
        check_fills(&f, y, cases[c].n, &v);
        double scale, deg;
        int reflect;
        frame_describe(&f, &scale, &deg, &reflect);
        CHECK(scale > 0);
        /* a recovered frame is the same frame */
        frame_t g;
        double *xy = malloc((size_t)cases[c].n * 2 * sizeof(double));
        frame_apply(&f, y, cases[c].n, xy);
        E(frame_recover(y, xy, cases[c].n, &g));
        check_same(&f, &g, 1e-7 * scale);
        free(xy);
        free(y);
    }

    /* an elongated map is drawn with its long axis horizontal: drawn aspect ~ 3:1 */
    {
        double *y = blob(4000, 1, 3, 0, 0, 0, 11);
        frame_t f;
        frame_extent_t e;
        E(frame_fit(y, 4000, &v, NULL, &f));
        extent_of(&f, y, 4000, &v, &e);
        CHECK(e.width > 2.5 * e.height);
        CHECK_NEAR(e.width / v.width, 0.90, 1e-9); /* width binds */
        free(y);
    }

    /* the notebooks' frame: bbox centre to origin, x2.5, (x, y) -> (-y, -x); a similarity too,
     * recovered exactly (old stores' maps) */
    {
        double in[6] = {0, 0, 4, 2, 2, 1}, out[6], want[6] = {2.5, 5, -2.5, -5, 0, 0};
        frame_t old;
        frame_legacy(in, 3, &old);
        frame_apply(&old, in, 3, out);
        for (int i = 0; i < 6; i++)
            CHECK_NEAR(out[i], want[i], 1e-12);
    }
    {
        double *y = blob(500, 2, 1, 10, 5, 5, 12), *xy = malloc(500 * 2 * sizeof(double));
        frame_t old, got;
        frame_legacy(y, 500, &old);
        frame_apply(&old, y, 500, xy);
        E(frame_recover(y, xy, 500, &got));
        check_same(&old, &got, 1e-9);
        free(y), free(xy);
    }

    /* warm refreshes: keep, rescale, refit */
    {
        uint32_t n = 3000;
        double *y = blob(n, 3, 8, 0, 0, 0, 13);
        frame_t prev, f;
        int reframed = -1;
        E(frame_fit(y, n, &v, NULL, &prev));
        /* extent 2% larger, a few points moved: the same frame, nothing rescaled or rotated */
        for (uint32_t i = 0; i < 2 * n; i++)
            y[i] *= 1.02;
        y[0] += 0.5;
        E(frame_choose(y, n, &v, &prev, &f, &reframed));
        CHECK_EQ(reframed, 0);
        check_same(&prev, &f, 0);
        /* 30% larger: rescaled to fill 0.90 again, same orientation */
        for (uint32_t i = 0; i < 2 * n; i++)
            y[i] *= 1.3;
        E(frame_choose(y, n, &v, &prev, &f, &reframed));
        CHECK_EQ(reframed, 1);
        check_fills(&f, y, n, &v);
        double s0, d0, s1, d1;
        int r0, r1;
        frame_describe(&prev, &s0, &d0, &r0);
        frame_describe(&f, &s1, &d1, &r1);
        CHECK_NEAR(d0, d1, 1e-9);
        CHECK_EQ(r0, r1);
        CHECK_NEAR(s1, s0 / (1.02 * 1.3), 0.02 * s0);
        /* the map turned by 90 degrees: portrait under the old frame -> refit, landscape */
        for (uint32_t i = 0; i < n; i++) {
            double t = y[2 * i];
            y[2 * i] = -y[2 * i + 1], y[2 * i + 1] = t;
        }
        E(frame_choose(y, n, &v, &prev, &f, &reframed));
        CHECK_EQ(reframed, 1);
        check_fills(&f, y, n, &v);
        /* cold: always a fresh fit */
        E(frame_choose(y, n, &v, NULL, &f, &reframed));
        CHECK_EQ(reframed, 1);
        check_fills(&f, y, n, &v);
        free(y);
    }

    /* bad input */
    {
        double y[6] = {1, 2, 1, 2, 1, 2}, xy[6] = {0}, bad[4] = {0, NAN, 1, 1}, zero[6] = {0};
        frame_t f;
        frame_extent_t e;
        CHECK_EQ(frame_fit(y, 1, &v, NULL, &f), -EINVAL);
        E(frame_fit(y, 3, &v, NULL, &f)); /* all points equal: centred, scale 1 */
        frame_apply(&f, y, 3, xy);
        CHECK_NEAR(-2 * xy[0], v.centre[0], 1e-9);
        CHECK_NEAR(2 * xy[1], v.centre[1], 1e-9);
        /* two points: the quantile box spans both, so they are framed apart */
        double two[4] = {0, 0, 1, 0.2};
        E(frame_fit(two, 2, &v, NULL, &f));
        check_fills(&f, two, 2, &v);
        CHECK_EQ(frame_fit(bad, 2, &v, NULL, &f), -EINVAL);
        CHECK_EQ(frame_recover(y, zero, 3, &f), -EINVAL);
        CHECK_EQ(frame_extent(bad, 2, &v, &e), -EINVAL);
        frame_view_t w = v;
        w.fill = 1.5;
        CHECK_EQ(frame_fit(bad, 2, &w, NULL, &f), -EINVAL);
    }
    return 0;
}
