#!/usr/bin/env bash
# Where a published map sits in the osu! Beatmap Atlas frontend's default view, computed
# independently of atlasd's frame code (shared/reference/OSU_ATLAS_PIPELINE.md §4.3): the
# frontend draws a corpus row (x, y) at (-2x, 2y) (x2, y negated, both negated again for the
# Latest corpus); its default view is centred at (-20, 0), 322.6 wide and 322.6/1.6 = 201.6 high
# on a 16:10 screen. Takes the TSV of `atlasctl snapshots export` on stdin, prints one line and
# exits 1 unless the 1st-99th percentile box is landscape, fills LO-HI (default 85-95%) of the
# view's width or height (whichever binds) and is centred within 5% of the view. A new frame
# fills 90%; a warm map keeps its frame while it fills 82-97% (--band 0.82 0.97).
# usage: atlasctl snapshots export --dir DIR | tools/frame_check.sh [--band LO HI]
set -euo pipefail
lo=0.85 hi=0.95
[ "${1:-}" = --band ] && { lo=$2 hi=$3; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
tail -n +2 | awk -F '\t' -v d="$tmp" '{ print -2 * $2 > (d "/x"); print 2 * $3 > (d "/y") }'
sort -g "$tmp/x" >"$tmp/xs"
sort -g "$tmp/y" >"$tmp/ys"
n=$(wc -l <"$tmp/xs")
[ "$n" -ge 2 ] || { echo "frame: fewer than 2 points"; exit 1; }
# quantile p: the value of rank floor(p (n - 1)) (low) or ceil(p (n - 1)) (high) in ascending
# order, as algo/frame.c; sed's lines count from 1
q() {
    sed -n "$(awk -v n="$n" -v p="$2" -v up="$3" 'BEGIN { r = p * (n - 1); k = int(r);
        if (up && k < r) k++; print k + 1 }')p" "$1"
}
awk -v n="$n" -v lo="$lo" -v hi="$hi" -v x0="$(q "$tmp/xs" 0.01 0)" -v x1="$(q "$tmp/xs" 0.99 1)" \
    -v y0="$(q "$tmp/ys" 0.01 0)" -v y1="$(q "$tmp/ys" 0.99 1)" 'BEGIN {
    W = 322.6; H = W / 1.6; CX = -20; CY = 0
    w = x1 - x0; h = y1 - y0; fw = w / W; fh = h / H
    fill = fw > fh ? fw : fh; side = fw > fh ? "width" : "height"
    cx = (x0 + x1) / 2; cy = (y0 + y1) / 2
    dx = cx - CX; dy = cy - CY
    ok = (w >= h) && (fill >= lo - 1e-9) && (fill <= hi + 1e-9) && (dx * dx <= 0.0025 * W * W) &&
         (dy * dy <= 0.0025 * H * H)
    printf "%d points; 1st-99th percentile extent %.1f x %.1f (after the frontend x2) in its default view %.1f x %.1f at (%g, %g): %.0f%% of its %s, %s, centred at (%.1f, %.1f)%s\n",
        n, w, h, W, H, CX, CY, 100 * fill, side, (w >= h) ? "landscape" : "PORTRAIT", cx, cy,
        ok ? "" : sprintf(" -- NOT landscape / %.0f-%.0f%% / centred", 100 * lo, 100 * hi)
    exit ok ? 0 : 1
}'
