#!/usr/bin/env bash
# The map viewer in headless Chromium: atlasd serves it at / beside a published snapshot; the
# page fetches /snapshots/latest, parses the corpus format and reports the point count (it must
# equal the retained items), the snapshot and its freshness; the colour legend shows the chosen
# field's scale; a search by title finds the item; a click on an item (a real click event at its
# place on the canvas, driven by #click=ID) lists its nearest neighbours from GET /items/<id> and
# highlights them. A screenshot of that state is kept as $ATL_BUILD/viewer.png (or $ATL_SHOT).
. "$(dirname "$0")/lib.sh"
command -v chromium >/dev/null || { echo "chromium not installed: skipped"; exit 77; }

atlasctl gen --scale tiny --seed 3 --out "$T/rows.jsonl" --beatmaps "$T/bm.jsonl" 2>/dev/null
atlasctl import --db "$T/db" "$T/bm.jsonl" "$T/rows.jsonl" >/dev/null 2>&1
id=$(atlasctl rebuild --offline --verify --db "$T/db" --snapshots "$T/db/snapshots" 2>/dev/null | tail -n 1)
retained=$(atlasctl stats --db "$T/db" --json --no-digest | json_num retained)
atlasctl snapshots export --dir "$T/db/snapshots" >"$T/map.tsv"
# the item drawn on top (the viewer draws the most played first): the least played, the last of
# them in corpus order (export: item_id x y avg_pp stars num_users ... title version creator)
read -r item title < <(tail -n +2 "$T/map.tsv" | awk -F '\t' '
    NR == 1 || $6 <= min { min = $6; id = $1; t = $16 } END { print id, t }')
start_mock 2
start_daemon v "$T/db"
U="http://127.0.0.1:$PORT_v"
curl -fs "$U/" | grep '<canvas id="map">' >/dev/null || fail "the viewer is not served at /"
curl -fs "$U/corpus.js" | grep "function parseCorpus" >/dev/null || fail "corpus.js"
curl -fs "$U/items/$item?k=10" | grep '"neighbours"' >/dev/null || fail "GET /items/$item has no neighbours"
chrome=(chromium --headless --no-sandbox --disable-gpu --disable-background-networking
        --disable-component-update --no-first-run --disable-sync --disable-quic
        --user-data-dir="$T/chrome" --virtual-time-budget=15000)
q=$(echo "$title" | cut -d ' ' -f 1) # the first word of the title
page="$U/#field=stars&search=$q&click=$item"
timeout 120 "${chrome[@]}" --window-size=1280,800 --dump-dom "$page" >"$T/dom.html" 2>"$T/chrome.log" || true
grep -q "data-loaded=\"1\"" "$T/dom.html" || fail "page did not load the snapshot: $(grep -o 'id="status">[^<]*' "$T/dom.html")"
grep -q "<span id=\"count\">$retained</span>" "$T/dom.html" ||
    fail "point count $(grep -o 'id="count">[0-9]*' "$T/dom.html"), expected $retained"
grep -q "<span id=\"snapshot\">$id</span>" "$T/dom.html" || fail "snapshot id not shown"
grep -q '<span id="fresh">made [0-9-]* [0-9:]* UTC ([0-9]* s ago)' "$T/dom.html" || fail "snapshot time/freshness not shown"
# legend: the field's name and its scale (the frontend's star range 3.8-9.3)
legend=$(grep -o '<div id="legend">.*</div>' "$T/dom.html" | head -n 1)
echo "$legend" | grep -q 'star rating' || fail "legend does not name the field"
echo "$legend" | grep -q '3.8★' && echo "$legend" | grep -q '9.3★' || fail "legend has no scale: $legend"
echo "$legend" | grep -q 'players (log)' || fail "legend does not explain point size"
# search: the item's title among the results
grep -q "<ol id=\"results\">.*data-item=\"$item\"" "$T/dom.html" || fail "search '$q' did not find $item"
n=$(grep -o '<span id="nfound">[0-9]*' "$T/dom.html" | sed 's/.*>//')
[ "${n:-0}" -ge 1 ] || fail "search count $n"
# click: the neighbours listed are those of GET /items/<id>
curl -fs "$U/items/$item?k=10" | tr -d ' \t\n' | grep -o '"item":"[^"]*","distance_3d"' |
    sed 's/"item":"\([^"]*\)".*/\1/' >"$T/nbrs"
[ -s "$T/nbrs" ] || fail "no neighbours from /items/$item"
grep -q "<h3 id=\"pick\">$title" "$T/dom.html" || fail "the clicked item is not shown: $(grep -o '<h3 id="pick">[^<]*' "$T/dom.html")"
listed=$(grep -o '<ol id="neighbours"[^>]*>.*</ol>' "$T/dom.html" | grep -o 'data-item="[^"]*"' | sed 's/data-item="\(.*\)"/\1/')
[ "$(echo "$listed" | wc -l)" = "$(wc -l <"$T/nbrs")" ] || fail "neighbours listed: $(echo "$listed" | wc -l), /items: $(wc -l <"$T/nbrs")"
[ "$listed" = "$(cat "$T/nbrs")" ] || fail "neighbours listed differ from /items/$item"
shot=${ATL_SHOT:-${ATL_BUILD:-$T}/viewer.png}
timeout 120 "${chrome[@]}" --window-size=1280,800 --screenshot="$shot" "$page" >/dev/null 2>&1 || true
[ -s "$shot" ] || fail "no screenshot"
size=$(stat -c %s "$shot")
[ "$size" -gt 20000 ] || fail "screenshot of $size bytes looks empty"
kill -TERM "$PID_v"; wait "$PID_v" || true
echo "viewer: $retained points, legend, search '$q' found $n, $(wc -l <"$T/nbrs") neighbours of $item listed; screenshot $shot ($size bytes)"
