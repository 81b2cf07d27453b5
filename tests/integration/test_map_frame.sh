#!/usr/bin/env bash
# The demo's map in the osu! Beatmap Atlas frontend's default view: the demo's data (`atlasctl
# gen --scale demo`, the stream tools/demo.sh feeds), imported and published by the daemon's own
# refresh (`rebuild --offline`: store -> T -> kNN -> MDE -> layout -> frame -> snapshot), then
# its 1st-99th percentile extent after the frontend's x2 is computed from the exported corpus by
# tools/frame_check.sh, independently of algo/frame.c: landscape, 85-95% of the view's width or
# height (whichever binds), centred on (-20, 0); >= 3,000 points; the manifest records the frame.
# A warm republish of the same data keeps the frame (not rescaled, not rotated) while the map
# fills 82-97% (the hysteresis band).
. "$(dirname "$0")/lib.sh"
atlasctl gen --scale demo --out "$T/rows.jsonl" --beatmaps "$T/bm.jsonl" 2>/dev/null
atlasctl import --db "$T/db" "$T/bm.jsonl" "$T/rows.jsonl" >/dev/null 2>&1
atlasctl rebuild --offline --db "$T/db" --snapshots "$T/snaps" >/dev/null 2>&1 || fail "cold publish"
atlasctl snapshots export --dir "$T/snaps" >"$T/map.tsv"
out=$("$ATL_SRC/tools/frame_check.sh" <"$T/map.tsv") || fail "frame: $out"
echo "cold: $out"
points=$((($(wc -l <"$T/map.tsv") - 1)))
[ "$points" -ge 3000 ] || fail "the demo's map has $points points, expected >= 3000"
flat() { tr -d ' \t\n' <"$1"; } # the manifest, on one line
m=$(ls "$T"/snaps/corpus_*.json | tail -n 1)
flat "$m" | grep -q '"frame":{"scale":' || fail "no frame in the manifest $m"
flat "$m" | grep -q '"reframed":true' || fail "a cold map must get a new frame"
a1=$(flat "$m" | sed -n 's/.*"frame":{[^}]*"a":\[\([^]]*\)\].*/\1/p')
sleep 1 # snapshot ids are per second
atlasctl rebuild --offline --db "$T/db" --snapshots "$T/snaps" >/dev/null 2>&1 || fail "warm publish"
atlasctl snapshots export --dir "$T/snaps" >"$T/map2.tsv"
out=$("$ATL_SRC/tools/frame_check.sh" --band 0.82 0.97 <"$T/map2.tsv") || fail "warm frame: $out"
echo "warm: $out"
m2=$(ls "$T"/snaps/corpus_*.json | tail -n 1)
[ "$m2" != "$m" ] || fail "no second snapshot"
flat "$m2" | grep -q '"reframed":false' || fail "a warm republish of unchanged data was reframed"
a2=$(flat "$m2" | sed -n 's/.*"frame":{[^}]*"a":\[\([^]]*\)\].*/\1/p')
[ "$a1" = "$a2" ] || fail "the frame changed: [$a1] -> [$a2]"
