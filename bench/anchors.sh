#!/usr/bin/env bash
# Side by side against the anchors (not a test): PyMDE and umap-learn on the same graphs as
# atlasd, back to back on the same machine and thread count, with each one's quality.
#
#   bench/anchors.sh BUILD_DIR [--scale small|full] [--db DIR --labels FILE] [--threads N]
#                    [--work DIR] [--pymde-full | --no-pymde-full] [--pairs N]
#
# Data: a `gen`-made store (`--scale`, default small; made once under WORK and reused), or an
# existing store with --db (and its gen --labels file). The retained graph is exported with
# `atlasctl export-graph`; then, in turn:
#   1. atlasd, 3-D: `atlasctl embed --edges S.tsv` (prune, exact kNN, MDE 2000 iterations) as a
#      whole process, writing its kNN graph;
#   2. atlasd, 3-D + 2-D: the same with `--layout` (UMAP k 150, min_dist 0.25);
#   3. PyMDE, whole pipeline (small scale only): T from S, preserve_neighbors with its own
#      shortest-path kNN, embed(max_iter=2000). At full scale PyMDE's kNN takes about an hour,
#      so only 4. runs there (the default: --pymde-full forces 3., --no-pymde-full skips it at
#      any scale);
#   4. PyMDE embed(max_iter=2000) on atlasd's kNN graph (same problem shape);
#   5. umap-learn fit_transform on atlasd's 3-D coordinates (after a numba JIT warm-up);
#   5b. with --pairs N: N more alternating pairs of 1.'s MDE and 4.'s embed; the report adds
#      the median of their ratios (on a noisy machine one run of each can be 1.5x off: PyMDE's
#      embed took 10.5-21.8 s in one hour of session 12);
#   6. quality of every result on common ground: distortion on PyMDE's problem of step 4,
#      10-NN label purity, kNN preservation (3-D: the fraction of each item's kNN-graph
#      neighbours among its 10 nearest; 2-D: of its 10 nearest in 3-D among its 10 nearest).
# Prints a table with the ratios and writes WORK/anchors.json.
#
# Installs what it needs: Debian's python3-torch, -torchvision, -numpy, -scipy, -sklearn,
# -numba, -pynndescent, a venv from /usr/bin/python3 with --system-site-packages, then
# `pip install --no-deps pymde` and `pip install umap-learn`. Wall seconds are quoted with CPU
# seconds (user + sys, all threads): on a shared machine the CPU figures drift much less.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
B=$(cd "${1:?usage: bench/anchors.sh BUILD_DIR [options]}" && pwd)
shift
scale=small db="" labels="" threads=2 work="" pymde_full=auto pairs=0
while [ $# -gt 0 ]; do
    case $1 in
    --scale) scale=$2; shift 2 ;;
    --db) db=$2; shift 2 ;;
    --labels) labels=$2; shift 2 ;;
    --threads) threads=$2; shift 2 ;;
    --work) work=$2; shift 2 ;;
    --pymde-full) pymde_full=yes; shift ;;
    --no-pymde-full) pymde_full=no; shift ;;
    --pairs) pairs=$2; shift 2 ;;
    *) echo "anchors.sh: unknown option $1" >&2; exit 2 ;;
    esac
done
work=${work:-$B/anchors-$scale}
mkdir -p "$work"
W=$(cd "$work" && pwd)
[ "$pymde_full" = auto ] && { [ "$scale" = full ] && pymde_full=no || pymde_full=yes; }

# ---- install ---------------------------------------------------------------------------------
pkgs=(python3-venv python3-torch python3-torchvision python3-numpy python3-scipy python3-sklearn
      python3-numba python3-pynndescent time)
missing=()
for p in "${pkgs[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    sudo=""
    [ "$(id -u)" = 0 ] || sudo="sudo"
    $sudo apt-get update -q
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q "${missing[@]}"
fi
venv=$B/anchors-venv
[ -x "$venv/bin/python" ] || /usr/bin/python3 -m venv --system-site-packages "$venv"
PY=$venv/bin/python
$PY -c 'import pymde' 2>/dev/null || $venv/bin/pip install -q --no-deps pymde
$PY -c 'import umap' 2>/dev/null || $venv/bin/pip install -q umap-learn

# ---- data ------------------------------------------------------------------------------------
if [ -z "$db" ]; then
    db=$W/db labels=$W/labels.tsv
    if [ ! -f "$W/imported" ]; then
        echo "== gen --scale $scale + import (once)"
        $B/atlasctl gen --scale "$scale" --out "$W/rows.jsonl" --labels "$labels"
        rm -rf "$db"
        $B/atlasctl import --db "$db" "$W/rows.jsonl" | tail -n 2
        rm -f "$W/rows.jsonl"
        touch "$W/imported"
    fi
fi
lab=()
[ -n "$labels" ] && lab=(--labels "$labels")
[ -f "$W/S.tsv" ] || $B/atlasctl export-graph --db "$db" --out "$W/S.tsv" 2>&1 | tail -n 1
# the export's 87 MB (small scale) still being written back slowed the first timed run's load
# and prune from 0.26 to 0.65 s: flush it, and read the file once, before anything is timed
sync
cat "$W/S.tsv" > /dev/null

timed() { # timed NAME CMD...: whole-process wall and CPU seconds into W/NAME.time
    local name=$1
    shift
    /usr/bin/time -f '{"wall":%e,"cpu":%U,"sys":%S,"max_rss_kb":%M}' -o "$W/$name.time" "$@"
}

echo "== 1. atlasd 3-D (whole process)"
timed atl3d $B/atlasctl embed --edges "$W/S.tsv" --out "$W/atl3d.tsv" --knn-out "$W/knn.tsv" \
    --threads "$threads" "${lab[@]}" --json 2>/dev/null | tee "$W/atl3d.json"
echo "== 2. atlasd 3-D + 2-D layout"
timed atl2d $B/atlasctl embed --edges "$W/S.tsv" --out "$W/atl3d_b.tsv" --layout "$W/atl2d.tsv" \
    --threads "$threads" "${lab[@]}" --json 2>/dev/null | tee "$W/atl2d.json"
if [ "$pymde_full" = yes ]; then
    echo "== 3. PyMDE whole pipeline (its own kNN)"
    timed pymde_full $PY "$here/anchors.py" pymde-full --s "$W/S.tsv" --out "$W/pymde_full3d.tsv" \
        --threads "$threads" | tee "$W/pymde_full.json"
else
    echo "== 3. PyMDE whole pipeline: skipped (its kNN takes about an hour at full scale)"
    rm -f "$W/pymde_full.json" "$W/pymde_full.time"
fi
echo "== 4. PyMDE embed on atlasd's kNN graph"
timed pymde_knn $PY "$here/anchors.py" pymde-knn --knn "$W/knn.tsv" --out "$W/pymde3d.tsv" \
    --threads "$threads" | tee "$W/pymde_knn.json"
echo "== 5. umap-learn on atlasd's 3-D coordinates"
timed umap $PY "$here/anchors.py" umap --x "$W/atl3d_b.tsv" --out "$W/umap2d.tsv" \
    --threads "$threads" | tee "$W/umap.json"
rm -f "$W/pairs.tsv"
for ((q = 1; q <= pairs; q++)); do
    [ "$q" = 1 ] && echo "== 5b. $pairs alternating pairs: atlasd's MDE, PyMDE's embed"
    a=$($B/atlasctl embed --edges "$W/S.tsv" --out /dev/null --threads "$threads" --json 2>/dev/null |
        $PY -c 'import json, sys; print(json.load(sys.stdin)["seconds"]["mde"])')
    p=$($PY "$here/anchors.py" pymde-knn --knn "$W/knn.tsv" --out "$W/pymde3d_pair.tsv" \
        --threads "$threads" | $PY -c 'import json, sys; print(json.load(sys.stdin)["seconds"]["embed"]["wall"])')
    echo "$a $p" | tee -a "$W/pairs.tsv"
done
echo "== 6. quality"
x3d=(--x3d atlasd "$W/atl3d.tsv" --x3d pymde "$W/pymde3d.tsv")
[ -f "$W/pymde_full.json" ] && x3d+=(--x3d pymde_own_knn "$W/pymde_full3d.tsv")
$PY "$here/anchors.py" compare --knn "$W/knn.tsv" --problem "$W/pymde3d.tsv.problem.pt" \
    "${lab[@]}" "${x3d[@]}" --x2d atlasd_layout "$W/atl2d.tsv" --x2d umap "$W/umap2d.tsv" \
    >"$W/quality.json"
$PY "$here/anchors.py" report --work "$W" --scale "$scale" --threads "$threads" | tee "$W/anchors.txt"
