/*
 * frame.h: where the 2-D map sits in the corpus file, so that the osu! Beatmap Atlas frontend's
 * default view shows it whole and large (DESIGN §5; shared/reference/OSU_ATLAS_PIPELINE.md
 * §3.2, §4.3).
 *
 * The frontend reads a row's (x, y) and draws it at (-2x, 2y) (`parseCorpus`, CorpusVersion
 * Latest: x2, y negated, then both negated again); its default view is centred at (-20, 0) and
 * 322.6 wide, ~201.6 high on a 16:10 screen. The notebooks' fixed frame (bounding box to the
 * origin, x2.5, (-y, -x)) assumed their point count and UMAP's scale at it: a UMAP map's size
 * grows with the number of points, so a fixed factor fills the view at one count only, and its
 * orientation is whatever UMAP produced.
 *
 * A frame is a similarity (rotation, optional reflection, uniform scale, translation) from the
 * layout's coordinates to the corpus file's. frame_fit() picks one for a new map: the rotation
 * that makes the map most landscape (its long axis horizontal), and the scale that makes the
 * 1st-99th percentile box fill `fill` of the view's width or height, whichever binds, centred on
 * the view. frame_choose() keeps the previous map's frame while the map still fits it (fill within
 * [fill_lo, fill_hi] and landscape), so a refresh never rescales or rotates a map whose extent
 * barely changed; otherwise it reframes (keeping the orientation when that stays landscape).
 */
#ifndef ATL_FRAME_H
#define ATL_FRAME_H

#include <stdint.h>

#include "algo/atl.h"

/** The frontend's default view, in its own (drawn) coordinates. */
typedef struct frame_view {
    double centre[2];        /* (-20, 0) */
    double width, height;    /* 322.6 x 201.6 (16:10) */
    double zoom[2];          /* drawn = (zoom[0] * x, zoom[1] * y) of a corpus row: (-2, 2) */
    double fill;             /* target fraction of the binding side (0.90) */
    double fill_lo, fill_hi; /* a previous frame is kept while its fill stays in [lo, hi] */
    double pct_lo, pct_hi;   /* the extent measured between these quantiles (0.01, 0.99) */
    double centre_tol;       /* ... and its box's centre within this fraction of the view (0.05) */
} frame_view_t;

/** corpus (x, y) = a * layout (x, y) + t; a is row-major 2x2 (a similarity). */
typedef struct frame {
    double a[4];
    double t[2];
} frame_t;

/** How a set of corpus positions sits in the view, in drawn units. */
typedef struct frame_extent {
    double lo[2], hi[2]; /* pct_lo / pct_hi quantiles of drawn x and y */
    double width, height;
    double fill; /* max(width / view width, height / view height) */
    double centre[2];
} frame_extent_t;

/**
 * The 2026 frontend's default view (above); new frames fill 0.90; a warm map keeps its frame
 * while its fill stays within [0.82, 0.97] (the layout's own drift between warm forced rebuilds
 * is a few percent at small sizes: a narrower band rescaled every point for it); 1st-99th pct.
 */
void frame_view_default(frame_view_t *v);

/** The notebooks' fixed frame: bounding box to the origin, x2.5, (x, y) -> (-y, -x). */
void frame_legacy(const double *y, uint32_t n, frame_t *out);

/** Write a->out for @p n points (n x 2, row-major); @p out may equal @p y. */
void frame_apply(const frame_t *f, const double *y, uint32_t n, double *out);

/** The frame's uniform scale (sqrt |det a|) and rotation in degrees, and whether it reflects. */
void frame_describe(const frame_t *f, double *scale, double *angle_deg, int *reflect);

/**
 * The quantile box of corpus positions @p xy (n x 2) as drawn by the frontend.
 * The low quantile q of n values is the value of rank floor(q (n - 1)) in ascending order, the
 * high one of rank ceil(q (n - 1)), so two points span their whole range.
 * @return 0, -EINVAL (n == 0, NULL, bad view, non-finite input), -ENOMEM.
 */
int frame_extent(const double *xy, uint32_t n, const frame_view_t *v, frame_extent_t *out);

/**
 * A new frame for layout positions @p y (n x 2) in view @p v: rotation searched over [0, 180)
 * degrees (5-degree steps, then 0.25-degree steps around the best) for the most landscape
 * quantile box (largest drawn width / height: the long axis horizontal), then scaled so the box
 * fills v->fill of the binding side, and centred on the view.
 * @param[in] orient NULL, or a frame whose rotation/reflection is kept (no search).
 * Points all in one place get scale 1, centred.
 * @return 0, -EINVAL (n < 2, bad view, non-finite input), -ENOMEM.
 * Thread-safety: reentrant. Cost: O(n) per angle tried (~60 angles).
 */
int frame_fit(const double *y, uint32_t n, const frame_view_t *v, const frame_t *orient,
              frame_t *out);

/**
 * Recover the frame that mapped layout positions @p y to corpus positions @p xy (both n x 2):
 * least-squares affine fit (exact when @p xy was written by frame_apply()).
 * @return 0, or -EINVAL (fewer than 3 points, collinear points, or a fit that is no similarity).
 */
int frame_recover(const double *y, const double *xy, uint32_t n, frame_t *out);

/**
 * The frame of a refreshed map: @p prev (NULL for a cold map) while it still fits (fill within
 * [fill_lo, fill_hi], landscape, box centre within centre_tol of the view's width/height of the
 * view's centre), else a new one with prev's orientation if that is landscape,
 * else frame_fit() from scratch.
 * @param[out] reframed 1 if the frame differs from @p prev (always 1 without prev).
 * @return as frame_fit().
 */
int frame_choose(const double *y, uint32_t n, const frame_view_t *v, const frame_t *prev,
                 frame_t *out, int *reframed);

#endif
