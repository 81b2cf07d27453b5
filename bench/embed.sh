#!/usr/bin/env bash
# Algorithm benchmark (not a test) on a store's retained graph: pruning, exact kNN and MDE cold
# (2000 iterations, as the atlas notebook runs PyMDE), MDE to convergence, and a warm refresh
# after 1% of the items' co-occurrences changed (started from the cold coordinates).
# usage: bench/embed.sh BUILD_DIR STORE_DIR [LABELS.tsv]
set -euo pipefail
B=$1 DB=$2 LABELS=${3:-}
T=$(mktemp -d "${TMPDIR:-/tmp}/atl-embed-XXXXXX"); trap 'rm -rf "$T"' EXIT
lab=(); [ -n "$LABELS" ] && lab=(--labels "$LABELS")
$B/atlasctl export-graph --db "$DB" --out "$T/S.tsv" 2>&1 | tail -n 1
echo "== cold, 2000 iterations"
$B/atlasctl embed --edges "$T/S.tsv" --out "$T/cold.tsv" "${lab[@]}" --json | tee "$T/cold.json"
echo "== cold, to convergence (F stalls: < 1e-6 relative over 10 iterations; cap 10000)"
$B/atlasctl embed --edges "$T/S.tsv" --out "$T/conv.tsv" --max-iter 10000 --ftol 1e-6 --json
# 1% of the items (every 100th by a hash of the id) get their S entries scaled by 1.5
awk 'BEGIN{FS=OFS="\t"} function h(s,  i,x){x=0; for(i=1;i<=length(s);i++) x=(x*31+index("0123456789_DTEZFLHRH",substr(s,i,1)))%100003; return x}
     { if (h($1)%100==7 || h($2)%100==7) $3=$3*1.5; print }' "$T/S.tsv" >"$T/S2.tsv"
echo "== warm refresh after 1% of items changed (init from the cold coordinates, --ftol 1e-4)"
$B/atlasctl embed --edges "$T/S2.tsv" --init "$T/cold.tsv" --out "$T/warm.tsv" --ftol 1e-4 \
    --max-iter 2000 "${lab[@]}" --json | tee "$T/warm.json"
cold=$(sed 's/.*"mde":\([0-9.]*\).*/\1/' "$T/cold.json")
warm=$(sed 's/.*"mde":\([0-9.]*\).*/\1/' "$T/warm.json")
printf 'warm/cold MDE time: %.3f\n' "$(echo "$warm / $cold" | bc -l)"
