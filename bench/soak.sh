#!/usr/bin/env bash
# Soak (not part of the test suite): atlasd, ideally the ASan build, on the mock Kafka with a
# small initial map (it grows many times) and a 1-s refresh interval, while the small synthetic
# stream is produced in chunks and forced rebuilds run beside it. Prints refreshes, rebuilds and
# errors; fails if the daemon crashed, logged an error, or did not exit 0 on SIGTERM.
# usage: bench/soak.sh [BUILD_DIR (default build-test, the ASan build of tools/test.sh)] [--chunks N]
set -euo pipefail
cd "$(dirname "$0")/.."
B=${1:-build-test}; shift || true
chunks=8
[ "${1:-}" = --chunks ] && chunks=$2
T=$(mktemp -d "${TMPDIR:-/tmp}/atl-soak-XXXXXX")
pids=()
trap 'for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null || true; done; rm -rf "$T"' EXIT
$B/atlasctl gen --scale small --out "$T/s.jsonl" --beatmaps "$T/bm.jsonl" 2>/dev/null
split -n "l/$chunks" -d "$T/s.jsonl" "$T/chunk."
$B/atlasctl kafka-mock --partitions 16 >"$T/mock.out" 2>/dev/null </dev/null &
pids+=($!)
for _ in $(seq 100); do brokers=$(head -n 1 "$T/mock.out" 2>/dev/null || true); [ -n "$brokers" ] && break; sleep 0.1; done
$B/atlasd --db "$T/db" --brokers "$brokers" --http 127.0.0.1:0 --refresh-interval 1 \
    --map-size-mb 16 --log-file "$T/d.log" --kafka.session.timeout.ms=6000 2>"$T/asan.err" &
daemon=$!
pids+=($daemon)
port=""
for _ in $(seq 200); do
    port=$({ grep -o 'msg="listening" addr=[^ ]* port=[0-9]*' "$T/d.log" 2>/dev/null || true; } | sed 's/.*port=//')
    [ -n "$port" ] && break; sleep 0.1
done
U="http://127.0.0.1:$port"
$B/atlasctl produce --brokers "$brokers" "$T/bm.jsonl" 2>/dev/null
# librdkafka's mock cluster drops a partition's oldest messages past a size and count limit (its
# retention): a daemon lagging further than that finds its next offset gone and stops the
# partition ("offset out of range", as it must). Each chunk waits until the lag is small.
lag() { curl -fs "$U/status" | python3 -c 'import json, sys; print(int(json.load(sys.stdin)["lag"]))'; }
i=0
for c in "$T"/chunk.*; do
    for _ in $(seq 600); do [ "$(lag 2>/dev/null || echo 0)" -le 20000 ] && break; sleep 0.2; done
    $B/atlasctl produce --brokers "$brokers" "$c" 2>/dev/null
    i=$((i + 1))
    if [ $((i % 3)) = 0 ]; then ($B/atlasctl rebuild --url "$U" --wait >/dev/null 2>&1 &); fi
    sleep 2
    echo "chunk $i/$chunks: $(grep -c 'refresh published' "$T/d.log") refreshes, $(grep -c 'rebuild published' "$T/d.log") rebuilds, $(stat -c %s "$T/db/data.mdb") bytes, lag $(lag || echo ?), RSS $(ps -o rss= -p "$daemon" | tr -d ' ') KiB"
done
$B/atlasctl rebuild --url "$U" --wait >/dev/null 2>&1 || { echo "soak: final rebuild failed"; exit 1; }
kill -TERM "$daemon"
rc=0; wait "$daemon" || rc=$?
errors=$(grep -c 'level=error' "$T/d.log" || true)
echo "soak: exit $rc, $errors error lines, $(grep -c 'refresh published' "$T/d.log") refreshes, $(grep -c 'rebuild published' "$T/d.log") rebuilds"
if [ "$rc" != 0 ] || [ "$errors" != 0 ] || [ -s "$T/asan.err" ]; then
    grep 'level=error' "$T/d.log" | head -5; head -30 "$T/asan.err"; exit 1
fi
