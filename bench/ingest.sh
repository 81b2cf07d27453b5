#!/usr/bin/env bash
# Ingestion benchmark (not a test): events/s from Kafka (mock cluster, or --kafka: a real Apache
# Kafka broker from tests/kafka/) into LMDB with durable commits, beside the store's own limit
# measured on the same rows in the same run (`atlasctl import --no-bulk`: the same decode +
# sorted read-modify-write, no Kafka, one big batch per 200k rows; the bulk load of an empty
# store is a different, faster path and not what ingestion can be held to).
# usage: bench/ingest.sh [BUILD_DIR] [--users N --items N | --scale S] [--batch N] [--kafka]
set -euo pipefail
cd "$(dirname "$0")/.."
B=${1:-build}; shift || true
gen_args=(--scale small) batch=20000 real=0
while [ $# -gt 0 ]; do
    case $1 in
    --users|--items) gen_args+=("$1" "$2"); shift 2 ;;
    --scale) gen_args=(--scale "$2"); shift 2 ;;
    --batch) batch=$2; shift 2 ;;
    --kafka) real=1; shift ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
    esac
done
T=$(mktemp -d "${TMPDIR:-/tmp}/atl-bench-XXXXXX")
pids=()
trap 'for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null || true; done
      [ "$real" = 0 ] || tests/kafka/stop.sh "$T/kafka" >/dev/null 2>&1; rm -rf "$T"' EXIT
now() { date +%s.%N; }
$B/atlasctl gen "${gen_args[@]}" --out "$T/rows.jsonl" 2>/dev/null
rows=$(wc -l <"$T/rows.jsonl")

t0=$(now); $B/atlasctl import --db "$T/imp" --no-bulk --json "$T/rows.jsonl" >"$T/imp.json" 2>/dev/null; t1=$(now)
imp_rate=$(echo "$rows / ($t1 - $t0)" | bc -l)

if [ "$real" = 1 ]; then
    # a real broker: a bigger heap and the JIT's C2 (the tests' JVMs are tuned to start fast)
    parts=8
    brokers=$(KAFKA_HEAP_OPTS="-Xmx1g -Xms1g" KAFKA_JVM_OPTS="-XX:+UseParallelGC" \
        tests/kafka/start.sh "$T/kafka" | head -n 1)
    tests/kafka/tool.sh topics --bootstrap-server "$brokers" --create \
        --topic osutrack.hiscore_updates --partitions "$parts" >/dev/null 2>&1
else
    # the mock keeps ~5 MiB per partition: spread the stream over enough partitions
    parts=$(( $(stat -c %s "$T/rows.jsonl") / 3000000 + 4 ))
    $B/atlasctl kafka-mock --partitions "$parts" >"$T/mock.out" 2>/dev/null </dev/null &
    pids+=($!)
    for _ in $(seq 100); do brokers=$(head -n 1 "$T/mock.out" 2>/dev/null || true); [ -n "$brokers" ] && break; sleep 0.1; done
fi
$B/atlasctl produce --brokers "$brokers" "$T/rows.jsonl" 2>/dev/null
$B/atlasd --db "$T/db" --brokers "$brokers" --http 127.0.0.1:0 --batch-max-events "$batch" \
    --batch-max-ms 5000 --durable 1 --stats-interval 0 --log-file "$T/d.log" &
pids+=($!)
port=""
for _ in $(seq 200); do
    port=$({ grep -o 'port=[0-9]*' "$T/d.log" 2>/dev/null || true; } | head -n 1 | cut -d= -f2)
    [ -n "$port" ] && break; sleep 0.05
done
field() { curl -fs "http://127.0.0.1:$port/status" | tr -d '\t' | sed -n "s/^\"$1\":\([0-9]*\).*/\1/p" | head -n 1; }
applied=$(sed -n 's/.*"applied":\([0-9]*\).*/\1/p' "$T/imp.json")
# time from the first consumed message until every valid event is committed to the store
while [ "$(field messages_consumed || echo 0)" = 0 ]; do sleep 0.02; done
t0=$(now)
while [ "$(field events_applied || echo 0)" -lt "$applied" ]; do sleep 0.05; done
t1=$(now)
kafka_rate=$(echo "$rows / ($t1 - $t0)" | bc -l)
d1=$($B/atlasctl stats --db "$T/db" --json | sed 's/.*"digest":"\([0-9a-f]*\)".*/\1/')
d2=$($B/atlasctl stats --db "$T/imp" --json | sed 's/.*"digest":"\([0-9a-f]*\)".*/\1/')
printf '%s broker, rows %d, partitions %d, batch %d events (durable commits)\n' \
    "$([ "$real" = 1 ] && echo 'Apache Kafka 4.1.1' || echo mock)" "$rows" "$parts" "$batch"
printf 'kafka -> lmdb   %8.0f events/s\n' "$kafka_rate"
printf 'import (limit)  %8.0f events/s\n' "$imp_rate"
printf 'ratio           %8.2f\n' "$(echo "$kafka_rate / $imp_rate" | bc -l)"
[ "$d1" = "$d2" ] && echo "digests equal" || { echo "DIGESTS DIFFER"; exit 1; }
