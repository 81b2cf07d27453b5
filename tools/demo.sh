#!/usr/bin/env bash
# The newcomer's main command: install what is missing, build, and run the live demo on the
# embedded default: librdkafka's mock Kafka cluster (`atlasctl kafka-mock`), atlasd consuming it
# into an LMDB store, and a synthetic osu!track hiscore stream fed through `atlasctl produce` in
# chunks, with the daemon's counters printed as they move; the daemon refreshes the map (kNN,
# MDE, 2-D layout, a new corpus snapshot) every few seconds while items are dirty. Then a forced
# full rebuild verifies S against the profiles and publishes, and the daemon keeps serving the
# map until Ctrl-C.
# usage: tools/demo.sh [--users N] [--items N] [--state DIR] [--port N] [--exit]
set -euo pipefail
cd "$(dirname "$0")/.."
users=6000 items=1200 state=state/demo port=8477 stay=1
while [ $# -gt 0 ]; do
    case $1 in
    --users) users=$2; shift 2 ;;
    --items) items=$2; shift 2 ;;
    --state) state=$2; shift 2 ;;
    --port) port=$2; shift 2 ;;
    --exit) stay=0; shift ;;
    -h|--help) sed -n '2,8p' "$0"; exit 0 ;;
    *) echo "demo: unknown argument $1 (see --help)" >&2; exit 2 ;;
    esac
done
tools/setup.sh build
B=build
pids=()
stop_all() {
    local p
    for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
}
trap stop_all EXIT
mkdir -p "$state"
rm -rf "$state/db" "$state/chunk."*
field() { { curl -fs "http://127.0.0.1:$port/status" || true; } | tr -d '\t' |
    sed -n "s/^\"$1\":\"\{0,1\}\([^\",]*\).*/\1/p" | head -n 1; }
line() {
    printf 'applied %-8s rejected %-4s consumed %-8s kafka lag %-6s | map %-20s refresh lag %ss\n' \
        "$(field events_applied)" "$(field events_rejected)" "$(field messages_consumed)" \
        "$(field lag)" "$(field latest_snapshot)" "$(field refresh_lag_seconds)"
}

echo "== generating a synthetic osu!track stream ($users players, $items beatmaps)"
$B/atlasctl gen --users "$users" --items "$items" --out "$state/hiscores.jsonl" \
    --labels "$state/labels.tsv" --beatmaps "$state/beatmaps.jsonl"
split -n l/10 -d "$state/hiscores.jsonl" "$state/chunk."

echo "== starting the embedded Kafka (mock cluster, 3 brokers)"
$B/atlasctl kafka-mock --partitions 16 >"$state/kafka.out" 2>"$state/kafka.log" </dev/null &
pids+=($!)
for _ in $(seq 100); do brokers=$(head -n 1 "$state/kafka.out" 2>/dev/null || true); [ -n "$brokers" ] && break; sleep 0.1; done
[ -n "$brokers" ] || { echo "demo: the mock cluster did not start" >&2; exit 1; }
echo "   bootstrap: $brokers"

echo "== starting atlasd (log: $state/atlasd.log)"
$B/atlasd --db "$state/db" --brokers "$brokers" --http "127.0.0.1:$port" \
    --log-file "$state/atlasd.log" --kafka.session.timeout.ms=6000 --refresh-interval 5 &
pids+=($!)
for _ in $(seq 100); do curl -s -o /dev/null "http://127.0.0.1:$port/healthz" 2>/dev/null && break; sleep 0.1; done

echo "== feeding the stream in 10 chunks"
$B/atlasctl produce --brokers "$brokers" "$state/beatmaps.jsonl" 2>/dev/null
for c in "$state"/chunk.*; do
    $B/atlasctl produce --brokers "$brokers" "$c" 2>/dev/null
    sleep 1
    line
done
expected=$(wc -l <"$state/hiscores.jsonl")
for _ in $(seq 120); do
    [ "$(field messages_consumed)" -ge "$((expected + $(wc -l <"$state/beatmaps.jsonl")))" ] 2>/dev/null && break
    sleep 0.5
done
sleep 1
line
echo "== store (read beside the running daemon)"
$B/atlasctl stats --db "$state/db"
echo "== forced full rebuild: S verified against the profiles, full kNN, MDE, layout, publish"
$B/atlasctl rebuild --url "http://127.0.0.1:$port" --wait
echo
echo "   status:  http://127.0.0.1:$port/status"
echo "   metrics: http://127.0.0.1:$port/metrics"
echo "   the map: http://127.0.0.1:$port/"
if [ "$stay" = 1 ]; then
    echo "   atlasd keeps consuming; press Ctrl-C to stop it"
    wait "${pids[1]}"
fi
