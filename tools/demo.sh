#!/usr/bin/env bash
# The newcomer's main command: install what is missing, build atlasd and atlasctl, and run the
# live demo on the embedded default: librdkafka's mock Kafka cluster (`atlasctl kafka-mock`),
# atlasd consuming it into an LMDB store, and a synthetic osu!track hiscore stream (`atlasctl gen
# --scale demo`) fed through `atlasctl produce` in chunks, with the daemon's counters printed as
# they move; the daemon refreshes the map (kNN, MDE, 2-D layout, a new corpus snapshot) every
# few seconds while items are dirty. Then a forced full rebuild verifies S against the profiles
# and publishes, and the daemon keeps serving the map until Ctrl-C (or stops: --exit).
# usage: tools/demo.sh [--scale demo|tiny|small] [--users N --items N] [--state DIR] [--port N]
#                     [--build DIR (use its binaries, build nothing)] [--exit]
set -euo pipefail
cd "$(dirname "$0")/.."
scale=demo users="" items="" state=state/demo port=8477 stay=1 B=""
while [ $# -gt 0 ]; do
    case $1 in
    --scale) scale=$2; shift 2 ;;
    --users) users=$2; shift 2 ;;
    --items) items=$2; shift 2 ;;
    --state) state=$2; shift 2 ;;
    --port) port=$2; shift 2 ;;
    --build) B=$2; shift 2 ;;
    --exit) stay=0; shift ;;
    -h|--help) sed -n '2,10p' "$0"; exit 0 ;;
    *) echo "demo: unknown argument $1 (see --help)" >&2; exit 2 ;;
    esac
done
start=$(date +%s)
mkdir -p "$state"
if [ -n "$B" ]; then
    [ -x "$B/atlasd" ] && [ -x "$B/atlasctl" ] || { echo "demo: no atlasd/atlasctl in $B" >&2; exit 2; }
    echo "== using the binaries in $B/"
else
    B=build
    echo "== building atlasd and atlasctl into $B/ (compiler output: $state/build.log)"
    if ! ATL_BUILD_TARGETS="atlasd atlasctl" tools/setup.sh "$B" >"$state/build.log" 2>&1; then
        tail -n 30 "$state/build.log" >&2
        echo "demo: the build failed (full output: $state/build.log)" >&2
        exit 1
    fi
    echo "   $(grep -c 'Building C object' "$state/build.log" || true) files compiled in $(($(date +%s) - start)) s"
fi

daemon_pid="" mock_pid=""
stop_daemon() {
    [ -n "$daemon_pid" ] || return 0
    kill -TERM "$daemon_pid" 2>/dev/null || true
    wait "$daemon_pid" 2>/dev/null || true
    daemon_pid=""
}
stop_all() { # the daemon first: it must not see its brokers vanish while it shuts down
    stop_daemon
    if [ -n "$mock_pid" ]; then
        kill -TERM "$mock_pid" 2>/dev/null || true
        wait "$mock_pid" 2>/dev/null || true
        mock_pid=""
    fi
}
trap stop_all EXIT
trap 'exit 130' INT TERM
rm -rf "$state/db" "$state/chunk."* "$state/atlasd.log" "$state/kafka.log" "$state/kafka.out"

# top-level fields of GET /status (cJSON indents them with one tab)
status_json() { curl -fs "http://127.0.0.1:$port/status" || true; }
field() { sed -n "s/^\t\"$1\":\t*\"\{0,1\}\([^\",]*\).*/\1/p" | head -n 1; }
nested() { tr -d '\t' | sed -n "s/^\"$1\":\"\{0,1\}\([^\",]*\).*/\1/p" | head -n 1; }
num() { echo "${1:-0}" | sed ':a;s/\B[0-9]\{3\}\>/,&/;ta'; } # 686174 -> 686,174

genargs=(--scale "$scale")
[ -n "$users" ] && genargs+=(--users "$users")
[ -n "$items" ] && genargs+=(--items "$items")
echo "== generating a synthetic osu!track stream (atlasctl gen ${genargs[*]})"
$B/atlasctl gen "${genargs[@]}" --out "$state/hiscores.jsonl" --labels "$state/labels.tsv" \
    --beatmaps "$state/beatmaps.jsonl" 2>"$state/gen.log"
gen_items=$(wc -l <"$state/labels.tsv")
rows=$(wc -l <"$state/hiscores.jsonl")
meta=$(wc -l <"$state/beatmaps.jsonl")
echo "   $(tail -n 1 "$state/gen.log" | sed 's/^gen: //' | sed ':a;s/\B[0-9]\{3\}\>/,&/;ta')"
echo "   hiscore rows: $(num "$rows"); beatmap and difficulty rows (metadata): $(num "$meta")"
split -n l/10 -d "$state/hiscores.jsonl" "$state/chunk."

echo "== starting the embedded Kafka: librdkafka's mock cluster, 3 brokers, 16 partitions"
$B/atlasctl kafka-mock --brokers 3 --partitions 16 >"$state/kafka.out" 2>"$state/kafka.log" </dev/null &
mock_pid=$!
brokers=""
for _ in $(seq 100); do brokers=$(head -n 1 "$state/kafka.out" 2>/dev/null || true); [ -n "$brokers" ] && break; sleep 0.1; done
[ -n "$brokers" ] || { echo "demo: the mock cluster did not start" >&2; exit 1; }
echo "   bootstrap: $brokers"

echo "== starting atlasd (log: $state/atlasd.log), map refreshed every 5 s while items change"
$B/atlasd --db "$state/db" --brokers "$brokers" --http "127.0.0.1:$port" \
    --log-file "$state/atlasd.log" --kafka.session.timeout.ms=6000 --refresh-interval 5 \
    --batch-max-events 20000 &
daemon_pid=$!
for _ in $(seq 100); do curl -s -o /dev/null "http://127.0.0.1:$port/healthz" 2>/dev/null && break; sleep 0.1; done
if ! kill -0 "$daemon_pid" 2>/dev/null; then
    tail -n 5 "$state/atlasd.log" >&2
    echo "demo: atlasd did not start (port $port taken? try --port N)" >&2
    exit 1
fi

produced=0
header() {
    printf '   %-9s %9s %9s = %8s + %9s + %8s + %8s + %7s %9s  %-20s %s\n' "" produced consumed \
        metadata applied skipped rejected batch "to read" "latest map" "refresh lag"
}
line() { # $1: label. Reads /status until a batch boundary (consumed = committed), 2 s at most.
    local s c m a k r i
    for i in $(seq 10); do
        s=$(status_json)
        c=$(echo "$s" | field messages_consumed) m=$(echo "$s" | field metadata_applied)
        a=$(echo "$s" | field events_applied) k=$(echo "$s" | field events_skipped)
        r=$(echo "$s" | field events_rejected)
        [ "$((c - m - a - k - r))" = 0 ] && break
        sleep 0.2
    done
    printf '   %-9s %9s %9s = %8s + %9s + %8s + %8s + %7s %9s  %-20s %s\n' "$1" "$(num "$produced")" \
        "$(num "$c")" "$(num "$m")" "$(num "$a")" "$(num "$k")" "$(num "$r")" \
        "$(num $((c - m - a - k - r)))" "$(num $((produced - c)))" \
        "$(echo "$s" | nested latest_snapshot)" "$(echo "$s" | nested refresh_lag_seconds)"
}
consumed_now() { status_json | field messages_consumed; }
wait_consumed() { # $1: count, $2: seconds
    local i
    for i in $(seq $(($2 * 5))); do
        [ "$(consumed_now)" -ge "$1" ] 2>/dev/null && return 0
        sleep 0.2
    done
    return 1
}

echo "== feeding the stream: metadata, then the hiscores in 10 chunks"
echo "   consumed = metadata (beatmap and difficulty rows) + applied (hiscores stored) + skipped"
echo "   (other modes, pp below 75) + rejected (invalid, sent to atlasd.dlq) + batch (read, not yet"
echo "   committed); to read = produced but not yet consumed (Kafka lag); refresh lag = age in"
echo "   seconds of the oldest stored change not yet on the latest map"
header
$B/atlasctl produce --brokers "$brokers" "$state/beatmaps.jsonl" 2>/dev/null
produced=$meta
wait_consumed "$produced" 30 || true
line metadata
for c in "$state"/chunk.*; do
    $B/atlasctl produce --brokers "$brokers" "$c" 2>/dev/null
    produced=$((produced + $(wc -l <"$c")))
    sleep 1
    line "chunk ${c##*.}"
done
wait_consumed "$produced" 120 || echo "   (atlasd has not consumed everything after 120 s)"
for _ in $(seq 120); do # until the map reflects every batch
    s=$(status_json)
    [ "$(echo "$s" | nested items_dirty)" = 0 ] && [ "$(echo "$s" | nested running)" != true ] && break
    sleep 0.5
done
line all
s=$(status_json)
echo "   brokers (/status): $(echo "$s" | field brokers_known) known, $(echo "$s" | field brokers_up) connected"

echo "== the store (atlasctl stats, read beside the running daemon)"
$B/atlasctl stats --db "$state/db" --no-digest | sed 's/^/   /'
stats=$($B/atlasctl stats --db "$state/db" --json --no-digest)
st_items=$(echo "$stats" | sed -n 's/.*"items":\([0-9]*\).*/\1/p')
st_ret=$(echo "$stats" | sed -n 's/.*"retained":\([0-9]*\).*/\1/p')
echo "   gen made $(num "$gen_items") items (beatmap x mods); $(num "$st_items") of them have a stored"
echo "   play (the rest were played only below 75 pp, in other modes, or never); $(num "$st_ret") are"
echo "   retained, i.e. played by enough players for their average pp (num_users >= 50 - 45 clamp("
echo "   (avg_pp - 100) / 400, 0, 1)): those are the map's points"

echo "== forced full rebuild: S verified against the profiles, full kNN, MDE, layout, publish"
$B/atlasctl rebuild --url "http://127.0.0.1:$port" --wait 2>&1 | grep -v '^rebuild: .*%' | sed 's/^/   /'
echo "== the map in the osu! Beatmap Atlas frontend's default view"
echo "   $($B/atlasctl snapshots export --url "http://127.0.0.1:$port" | tools/frame_check.sh --band 0.82 0.97 || true)"
echo "   demo took $(($(date +%s) - start)) s"
if [ "$stay" = 1 ]; then
    echo
    echo "   the map: http://127.0.0.1:$port/    status: /status    metrics: /metrics"
    echo "   atlasd keeps consuming; press Ctrl-C to stop it"
    wait "$daemon_pid" || true
    daemon_pid=""
else
    echo "== stopping atlasd (--exit), then the mock cluster"
    stop_all
    errors=$(grep -c 'level=error' "$state/atlasd.log" || true)
    warns=$(grep -c 'level=warn' "$state/atlasd.log" || true)
    echo "   stopped; atlasd.log: $(wc -l <"$state/atlasd.log") lines, $errors errors, $warns warnings"
fi
