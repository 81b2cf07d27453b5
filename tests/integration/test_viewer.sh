#!/usr/bin/env bash
# The map viewer in headless Chromium: atlasd serves it at / beside a published snapshot; the
# page fetches /snapshots/latest, parses the corpus format, reports the point count in the DOM
# (it must equal the retained items), and a screenshot with the points drawn is not empty.
. "$(dirname "$0")/lib.sh"
command -v chromium >/dev/null || { echo "chromium not installed: skipped"; exit 77; }

atlasctl gen --scale tiny --seed 3 --out "$T/rows.jsonl" --beatmaps "$T/bm.jsonl" 2>/dev/null
atlasctl import --db "$T/db" "$T/bm.jsonl" "$T/rows.jsonl" >/dev/null 2>&1
id=$(atlasctl rebuild --offline --verify --db "$T/db" --snapshots "$T/db/snapshots" 2>/dev/null | tail -n 1)
retained=$(atlasctl stats --db "$T/db" --json --no-digest | json_num retained)
start_mock 2
start_daemon v "$T/db"
U="http://127.0.0.1:$PORT_v"
curl -fs "$U/" | grep -q '<canvas id="map">' || fail "the viewer is not served at /"
curl -fs "$U/corpus.js" | grep -q "function parseCorpus" || fail "corpus.js"
chrome=(chromium --headless --no-sandbox --disable-gpu --disable-background-networking
        --disable-component-update --no-first-run --disable-sync --disable-quic
        --user-data-dir="$T/chrome" --virtual-time-budget=15000)
timeout 120 "${chrome[@]}" --dump-dom "$U/" >"$T/dom.html" 2>"$T/chrome.log" || true
grep -q "data-loaded=\"1\"" "$T/dom.html" || fail "page did not load the snapshot: $(grep -o 'id="status">[^<]*' "$T/dom.html")"
grep -q "<span id=\"count\">$retained</span>" "$T/dom.html" ||
    fail "point count $(grep -o 'id="count">[0-9]*' "$T/dom.html"), expected $retained"
grep -q "<span id=\"snapshot\">$id</span>" "$T/dom.html" || fail "snapshot id not shown"
timeout 120 "${chrome[@]}" --window-size=900,650 --screenshot="$T/shot.png" "$U/" >/dev/null 2>&1 || true
[ -s "$T/shot.png" ] || fail "no screenshot"
size=$(stat -c %s "$T/shot.png")
[ "$size" -gt 8000 ] || fail "screenshot of $size bytes looks empty"
[ -n "${ATL_SHOT:-}" ] && cp "$T/shot.png" "$ATL_SHOT"
kill -TERM "$PID_v"; wait "$PID_v" || true
echo "viewer: $retained points rendered (screenshot $size bytes)"
