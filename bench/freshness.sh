#!/usr/bin/env bash
# Freshness and refresh-cost benchmark (issue 6; not a test). Runs atlasd on a store with the
# embedded mock Kafka and measures:
#   1. the first map (a refresh with no in-memory state: every row read, full kNN);
#   2. freshness: from producing a batch of EVENTS new hiscores (changed pp of existing plays,
#      dated after everything else) to the published snapshot that reflects all of them, and
#      the cost of that (incremental) refresh;
#   3. a forced full rebuild through the admin endpoint (`atlasctl rebuild --url --wait`): S
#      recomputed and verified, every row, full kNN, MDE, layout, publish.
# usage: bench/freshness.sh [BUILD_DIR] (--scale tiny|small | --db DIR --rows FILE)
#                           [--events N] [--interval S] [--no-rebuild]
# --no-rebuild skips step 3 (at full scale it takes as long as the rest together).
# With --db the store is used in place (the batch is added to it); with --scale a store is
# generated and imported first.
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
B=${1:-build}; shift || true
scale="" db="" rows="" events=1000 interval=1 rebuild=1
while [ $# -gt 0 ]; do
    case $1 in
    --scale) scale=$2; shift 2 ;;
    --db) db=$2; shift 2 ;;
    --rows) rows=$2; shift 2 ;;
    --events) events=$2; shift 2 ;;
    --interval) interval=$2; shift 2 ;;
    --no-rebuild) rebuild=0; shift ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
    esac
done
T=$(mktemp -d "${TMPDIR:-/tmp}/atl-fresh-XXXXXX")
pids=()
trap 'for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done; wait; rm -rf "$T"' EXIT
now() { date +%s.%N; }
say() { echo "[$(date +%T)] $*" >&2; }
if [ -n "$scale" ]; then
    db=$T/db rows=$T/rows.jsonl
    $B/atlasctl gen --scale "$scale" --out "$rows" --beatmaps "$T/bm.jsonl" 2>/dev/null
    $B/atlasctl import --db "$db" "$rows" "$T/bm.jsonl" >/dev/null 2>&1
fi
[ -n "$db" ] && [ -f "$rows" ] || { echo "give --scale or --db and --rows" >&2; exit 2; }

# the batch: EVENTS existing plays with a new pp, dated past everything the store holds
new_pp_batch "$B" "$db" "$rows" "$events" "$T/batch.jsonl"
salt=$(date +%s)

# a topic of its own per run: a store reused across runs keeps the offsets of earlier mock
# clusters, which a fresh topic of the same name would contradict
topic=bench.hiscores.$salt
$B/atlasctl kafka-mock --partitions 8 --topics "$topic,osutrack.beatmaps" >"$T/mock.out" 2>/dev/null </dev/null &
pids+=($!)
for _ in $(seq 100); do brokers=$(head -n 1 "$T/mock.out" 2>/dev/null || true); [ -n "$brokers" ] && break; sleep 0.1; done
$B/atlasd --db "$db" --brokers "$brokers" --http 127.0.0.1:0 --stats-interval 0 \
    --refresh-interval "$interval" --max-future-seconds 315360000 \
    --log-file "$T/d.log" --kafka.session.timeout.ms=6000 \
    --topic-hiscores "$topic" &
pids+=($!)
port=""
for _ in $(seq 600); do
    port=$({ grep -o 'msg="listening" addr=[^ ]* port=[0-9]*' "$T/d.log" 2>/dev/null || true; } | tail -n 1 | sed 's/.*port=//')
    [ -n "$port" ] && break; sleep 0.1
done
U="http://127.0.0.1:$port"
field() { { curl -fs "$U/status" || true; } | tr -d '\t' | sed -n "s/^\"$1\":\"\{0,1\}\([^\",]*\).*/\1/p" | head -n 1; }
refresh_line() { grep 'msg="refresh published"\|msg="rebuild published"' "$T/d.log" | tail -n 1 | sed 's/.*msg=//'; }
# the log line of snapshot $1 (written just after the snapshot itself)
line_of() {
    local i
    for i in $(seq 100); do grep -q "published\" snapshot=$1 " "$T/d.log" && break; sleep 0.1; done
    grep "published\" snapshot=$1 " "$T/d.log" | tail -n 1 | sed 's/.*msg=//'
}

settled() { [ "$(field items_dirty)" = 0 ] && [ -s "$db/snapshots/latest" ] && [ "$(field running)" = false ]; }
say "waiting for a map with nothing dirty (a store without coordinates gets its first, cold map)"
t0=$(now)
until settled; do sleep 1; done
t1=$(now)
printf 'map ready               %6.1f s   %s\n' "$(echo "$t1 - $t0" | bc -l)" "$(refresh_line)"
# warm-up: the daemon's first refresh reads every row and builds its in-memory state; the
# measured refresh below is then the steady state's (incremental)
say "warm-up batch (100 events): the first refresh of this daemon"
head -n 100 "$T/batch.jsonl" | awk '{ sub(/"pp":[0-9]*/, "&.5"); print }' >"$T/warm.jsonl"
snap=$(cat "$db/snapshots/latest")
t0=$(now)
$B/atlasctl produce --brokers "$brokers" --topic "$topic" "$T/warm.jsonl" 2>/dev/null
waited=0
while [ "$(cat "$db/snapshots/latest")" = "$snap" ] || ! settled; do
    sleep 0.5; waited=$((waited + 1))
    [ "$waited" -lt 600 ] || { echo "no refresh after the warm-up batch: did it change nothing?" >&2; exit 1; }
done
t1=$(now)
printf 'first refresh (state)   %6.1f s   %s\n' "$(echo "$t1 - $t0" | bc -l)" "$(line_of "$(cat "$db/snapshots/latest")")"
consumed0=$(field messages_consumed)
snap0=$(cat "$db/snapshots/latest")

metric() { { curl -fs "$U/metrics" || true; } | sed -n "s/^$1 //p" | head -n 1; }
commit_s0=$(metric atlasd_batch_commit_seconds_sum) commit_n0=$(metric atlasd_batch_commit_seconds_count)
say "producing $(wc -l <"$T/batch.jsonl") events"
t0=$(now)
$B/atlasctl produce --brokers "$brokers" --topic "$topic" "$T/batch.jsonl" 2>/dev/null
# every message consumed: the events the snapshot must count are those applied by then
while [ "$(field messages_consumed)" -lt "$((consumed0 + $(wc -l <"$T/batch.jsonl")))" ]; do sleep 0.1; done
want=$(field events_applied)
# done when the latest snapshot's manifest counts every event of the batch
while :; do
    id=$(cat "$db/snapshots/latest")
    if [ "$id" != "$snap0" ]; then
        got=$(tr -d ' \t\n' <"$db/snapshots/$id.json" | sed -n 's/.*"events_applied":\([0-9]*\).*/\1/p')
        [ "${got:-0}" -ge "$want" ] && break
    fi
    sleep 0.2
done
t1=$(now)
fresh=$(echo "$t1 - $t0" | bc -l)
inc_line=$(line_of "$id")
inc=$(echo "$inc_line" | sed -n 's/.* seconds=\([0-9.]*\).*/\1/p')
printf 'freshness (%s events)  %6.1f s   %s\n' "$events" "$fresh" "$inc_line"
# where the rest went: the batches' commits (the daemon's histogram), and when the refresh that
# published the snapshot started (its log line just before the published one)
started=$(awk -v id="$id" '/msg="refresh started"/ { ts = $1 } index($0, "published\" snapshot=" id " ") { print substr(ts, 4); exit }' "$T/d.log")
wait_s=$(echo "$(date -d "${started:-now}" +%s.%N) - $t0" | bc -l)
printf 'freshness parts         %d batches committed in %.2f s; the refresh started %.2f s after producing began\n' \
    "$(($(metric atlasd_batch_commit_seconds_count) - commit_n0))" \
    "$(echo "$(metric atlasd_batch_commit_seconds_sum) - $commit_s0" | bc -l)" "$wait_s"

[ "$rebuild" = 1 ] || exit 0
say "forced full rebuild"
t0=$(now)
$B/atlasctl rebuild --url "$U" --wait >"$T/rb.out" 2>"$T/rb.err"
t1=$(now)
full=$(echo "$t1 - $t0" | bc -l)
rb_line=$(line_of "$(tail -n 1 "$T/rb.out")")
printf 'full rebuild            %6.1f s   %s\n' "$full" "$rb_line"
sed -n '1,2p' "$T/rb.out"
verify=$(echo "$rb_line" | sed -n 's/.* verify=\([0-9.]*\).*/\1/p')
printf 'incremental refresh / full rebuild: %.1f / %.1f s = %.1f%% (without the S verification: %.1f%%)\n' \
    "$inc" "$full" "$(echo "100 * $inc / $full" | bc -l)" "$(echo "100 * $inc / ($full - $verify)" | bc -l)"
