#!/usr/bin/env bash
# The newcomer's demo (tools/demo.sh --exit) with this build's binaries: it ends with exit 0; its
# first counter line is not all zeros; every counter line adds up (consumed = metadata + applied
# + skipped + rejected + batch) and the last one has nothing left to read or commit; /status
# knows the mock cluster's 3 brokers; the map has >= 3,000 points framed for the frontend's
# default view (landscape, no "NOT"); no URL is printed once the daemon stopped; the clean stop
# leaves 0 errors and 0 warnings in atlasd.log. Label `demo` (about a minute; not in tools/test.sh).
. "$(dirname "$0")/lib.sh"
port=$((20000 + $$ % 20000))
bash "$ATL_SRC/tools/demo.sh" --exit --build "$ATL_BUILD" --state "$T/demo" --port "$port" \
    >"$T/out" 2>"$T/err.log" || fail "demo exited $?: $(tail -n 5 "$T/err.log")"
cat "$T/out"
first=$(grep -m 1 '^   metadata ' "$T/out") || fail "no first counter line"
echo "$first" | grep -q ' [1-9][0-9,]* = ' || fail "first counter line is all zeros: $first"
grep -E '^   (metadata|chunk [0-9]+|all) ' "$T/out" | tr -d ',' | awk '{
    if ($1 == "chunk") $0 = substr($0, index($0, $2) + length($2))
    else $0 = substr($0, index($0, $1) + length($1))
    # produced consumed = metadata + applied + skipped + rejected + batch to_read ...
    if ($2 != $4 + $6 + $8 + $10 + $12) { print "does not add up: " $0; bad = 1 }
    if ($1 - $2 != $13) { print "to read != produced - consumed: " $0; bad = 1 }
    last = $0; lb = $12; lr = $13
} END { if (lb != 0 || lr != 0) { print "left over at the end: " last; bad = 1 } exit bad }' ||
    fail "counter lines"
grep -q 'brokers (/status): 3 known, 3 connected' "$T/out" || fail "brokers: $(grep brokers "$T/out")"
frame=$(grep -E '^   [0-9]+ points; 1st-99th' "$T/out") || fail "no frame line"
echo "$frame" | grep -q 'NOT' && fail "frame: $frame"
points=$(echo "$frame" | awk '{ print $1 }')
[ "$points" -ge 3000 ] || fail "$points points, expected >= 3000"
sed -n '/== stopping atlasd/,$p' "$T/out" | grep -q 'http://' && fail "a URL printed after the stop"
tail -n 1 "$T/out" | grep -q ', 0 errors, 0 warnings$' || fail "log: $(tail -n 1 "$T/out")"
echo "demo: $points points, counters add up, clean stop"
