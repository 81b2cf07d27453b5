#!/usr/bin/env bash
# Ingestion benchmark (not a test): events/s from Kafka (mock cluster, or --kafka: a real Apache
# Kafka broker from tests/kafka/) into LMDB with durable commits, beside the store's own limit
# measured on the same rows in the same run (`atlasctl import --no-bulk`: the same decode +
# sorted read-modify-write, no Kafka, one big batch per 200k rows; the bulk load of an empty
# store is a different, faster path and not what ingestion can be held to).
# With --db DIR --rows FILE it measures on a store of that size instead of an empty one: EVENTS
# (default 200,000) existing plays of FILE with a new pp, applied to two copies of the store
# (the original is not touched), one by `import --no-bulk`, one by the daemon. At full scale
# the empty-store runs would ingest all 41M rows twice (stores of 3x their live data, more
# than this 24 GiB machine holds, and hours of random inserts); the daemon's steady state is
# events into the full store anyway. Keep EVENTS moderate there: each event rewrites S entries
# all over the table, so a batch copies a large part of it (copy-on-write), and with 1,000,000
# events the daemon's copy grew from 9.5 to 22.7 GB and the machine thrashed.
# usage: bench/ingest.sh [BUILD_DIR] [--users N --items N | --scale S | --db DIR --rows FILE
#                        [--events N]] [--batch N] [--backlog N] [--kafka] [--timeout S]
# --batch, --backlog: atlasd's --batch-max-events and --batch-backlog-events (default 0: off).
# --timeout: give up (exit 1) when the daemon has not applied every event after S seconds
# (default 3600).
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
B=${1:-build}; shift || true
gen_args=(--scale small) batch=20000 backlog=0 real=0 db="" src="" events=200000 timeout=3600
while [ $# -gt 0 ]; do
    case $1 in
    --users|--items) gen_args+=("$1" "$2"); shift 2 ;;
    --scale) gen_args=(--scale "$2"); shift 2 ;;
    --db) db=$2; shift 2 ;;
    --rows) src=$2; shift 2 ;;
    --events) events=$2; shift 2 ;;
    --timeout) timeout=$2; shift 2 ;;
    --batch) batch=$2; shift 2 ;;
    --backlog) backlog=$2; shift 2 ;;
    --kafka) real=1; shift ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
    esac
done
[ -z "$db" ] || [ -f "$src" ] || { echo "--db needs --rows FILE (the rows the store was made from)" >&2; exit 2; }
[ -z "$db" ] || [ -f "$db/data.mdb" ] || { echo "$db: no store there" >&2; exit 2; }
T=$(mktemp -d "${TMPDIR:-/tmp}/atl-bench-XXXXXX")
pids=()
trap 'for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null || true; done
      [ "$real" = 0 ] || tests/kafka/stop.sh "$T/kafka" >/dev/null 2>&1; rm -rf "$T"' EXIT
now() { date +%s.%N; }
say() { echo "[$(date +%T)] $*" >&2; }
digest() { $B/atlasctl stats --db "$1" --json 2>/dev/null | sed 's/.*"digest":"\([0-9a-f]*\)".*/\1/'; }
# a copy of the store (no daemon may run on it), sparse as LMDB leaves it, with its snapshots:
# a daemon without a map makes one as soon as anything is dirty, which here would compete with
# the ingestion it measures (with a map and --refresh-interval 0 it does not refresh)
copy_store() {
    mkdir -p "$2" && cp --sparse=always "$1/data.mdb" "$2/data.mdb"
    [ ! -d "$1/snapshots" ] || cp -a "$1/snapshots" "$2/"
}
if [ -n "$db" ]; then
    say "batch: $events existing plays with a new pp"
    new_pp_batch "$B" "$db" "$src" "$events" "$T/rows.jsonl"
    say "copy of the store for import"
    copy_store "$db" "$T/imp"
else
    $B/atlasctl gen "${gen_args[@]}" --out "$T/rows.jsonl" 2>/dev/null
fi
rows=$(wc -l <"$T/rows.jsonl")

say "import --no-bulk of $rows rows"
# both paths take a batch dated past the store's newest update (bench/lib.sh): one tolerance
future=(--max-future-seconds 315360000)
t0=$(now); $B/atlasctl import --db "$T/imp" --no-bulk --json "${future[@]}" "$T/rows.jsonl" >"$T/imp.json" 2>/dev/null; t1=$(now)
imp_rate=$(echo "$rows / ($t1 - $t0)" | bc -l)
applied=$(sed -n 's/.*"applied":\([0-9]*\)[,}].*/\1/p' "$T/imp.json")
[ "${applied:-0}" -gt 0 ] || { echo "import applied no event: $(cat "$T/imp.json")" >&2; exit 1; }
base=0
if [ -n "$db" ]; then
    say "digest of the imported copy"
    d2=$(digest "$T/imp")
    rm -rf "$T/imp"
    say "copy of the store for the daemon"
    copy_store "$db" "$T/db"
    base=$($B/atlasctl status --db "$T/db" --json | sed -n 's/.*"events_applied":\([0-9]*\).*/\1/p')
    [ -n "$base" ] || { echo "could not read events_applied of the copy of $db" >&2; exit 1; }
    # without a map the daemon makes its first one as soon as anything is dirty (whatever
    # --refresh-interval says): a cold refresh inside the measurement, and a long reader
    [ -s "$T/db/snapshots/latest" ] ||
        echo "note: $db has no map (snapshots/latest): atlasd makes its first one during the measurement"
fi
# a topic of its own per run: a store copy keeps the offsets of the topics it ingested from
# (of earlier brokers), which a fresh topic of the same name would contradict
topic=bench.ingest.$(date +%s)

if [ "$real" = 1 ]; then
    # a real broker: a bigger heap and the JIT's C2 (the tests' JVMs are tuned to start fast)
    parts=8
    brokers=$(KAFKA_HEAP_OPTS="-Xmx1g -Xms1g" KAFKA_JVM_OPTS="-XX:+UseParallelGC" \
        tests/kafka/start.sh "$T/kafka" | head -n 1)
    tests/kafka/tool.sh topics --bootstrap-server "$brokers" --create \
        --topic "$topic" --partitions "$parts" >/dev/null 2>&1
else
    # the mock keeps ~5 MiB per partition: spread the stream over enough partitions
    parts=$(( $(stat -c %s "$T/rows.jsonl") / 3000000 + 4 ))
    $B/atlasctl kafka-mock --partitions "$parts" --topics "$topic,osutrack.beatmaps" \
        >"$T/mock.out" 2>/dev/null </dev/null &
    pids+=($!)
    for _ in $(seq 100); do brokers=$(head -n 1 "$T/mock.out" 2>/dev/null || true); [ -n "$brokers" ] && break; sleep 0.1; done
fi
say "produce $rows rows"
$B/atlasctl produce --brokers "$brokers" --topic "$topic" "$T/rows.jsonl" 2>/dev/null
# refreshes off (--refresh-interval 0): this measures the ingestion alone; a batch dated past the
# store's newest update needs the future-time tolerance lifted (bench/lib.sh)
say "atlasd: ingest"
$B/atlasd --db "$T/db" --brokers "$brokers" --http 127.0.0.1:0 --batch-max-events "$batch" \
    --batch-max-ms 5000 --batch-backlog-events "$backlog" --durable 1 --stats-interval 0 \
    --log-file "$T/d.log" --refresh-interval 0 "${future[@]}" --topic-hiscores "$topic" &
daemon=$!
pids+=($daemon)
port=""
for _ in $(seq 1200); do # a full-scale store takes a few seconds to open and read ahead
    port=$({ grep -o 'port=[0-9]*' "$T/d.log" 2>/dev/null || true; } | head -n 1 | cut -d= -f2)
    [ -n "$port" ] && break; sleep 0.05
done
[ -n "$port" ] || { echo "atlasd did not listen within 60 s; its log:" >&2; cat "$T/d.log" >&2; exit 1; }
# a counter of /status (0 while it cannot be read)
field() {
    local v
    v=$({ curl -fs "http://127.0.0.1:$port/status" || true; } | tr -d '\t' | sed -n "s/^\"$1\":\([0-9]*\).*/\1/p" | head -n 1)
    echo "${v:-0}"
}
# fails the bench if atlasd exited or --timeout passed (a commit failing for good, e.g. a full
# disk, would otherwise keep it waiting)
deadline=$(( $(date +%s) + timeout ))
alive() {
    kill -0 "$daemon" 2>/dev/null || { echo "atlasd exited; its log:" >&2; tail -n 50 "$T/d.log" >&2; exit 1; }
    [ "$(date +%s)" -le "$deadline" ] ||
        { echo "atlasd not done after ${timeout} s (--timeout); its log:" >&2; tail -n 50 "$T/d.log" >&2; exit 1; }
}
# time from the first consumed message until every valid event is committed to the store
while [ "$(field messages_consumed)" = 0 ]; do alive; sleep 0.02; done
t0=$(now)
while [ "$(field events_applied)" -lt "$((base + applied))" ]; do alive; sleep 0.05; done
t1=$(now)
kafka_rate=$(echo "$rows / ($t1 - $t0)" | bc -l)
# atlasd first: with the brokers gone its consumer's close would wait for them
kill -TERM "$daemon" 2>/dev/null || true
wait "$daemon" 2>/dev/null || true
for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
wait "${pids[@]}" 2>/dev/null || true
pids=()
say "digests"
d1=$(digest "$T/db")
[ -n "$db" ] || d2=$(digest "$T/imp")
printf '%s broker, rows %d, partitions %d, batch %d events, backlog %d (durable commits)%s\n' \
    "$([ "$real" = 1 ] && echo 'Apache Kafka 4.1.1' || echo mock)" "$rows" "$parts" "$batch" "$backlog" \
    "$([ -n "$db" ] && echo ", into a copy of $db ($base events applied before)")"
printf 'kafka -> lmdb   %8.0f events/s\n' "$kafka_rate"
printf 'import (limit)  %8.0f events/s\n' "$imp_rate"
printf 'ratio           %8.2f\n' "$(echo "$kafka_rate / $imp_rate" | bc -l)"
[ "$d1" = "$d2" ] && echo "digests equal" || { echo "DIGESTS DIFFER"; exit 1; }
