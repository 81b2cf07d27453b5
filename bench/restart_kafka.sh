#!/usr/bin/env bash
# Restart stall on a real Apache Kafka broker (not a test): kill -9 atlasd, restart it at once,
# and time until it consumes again, with static membership (group.instance.id, atlasd's default:
# one id per store) and without (--group-instance-id none). Each round produces a chunk while
# the daemon is down, so there is something to consume the moment it is back.
# usage: bench/restart_kafka.sh [BUILD_DIR] [--rounds N] [--session-ms MS]
# (bench/restart.sh measures the same on the mock cluster, from the logged assignment)
set -euo pipefail
cd "$(dirname "$0")/.."
B=${1:-build}; shift || true
rounds=5 session=10000
while [ $# -gt 0 ]; do
    case $1 in
    --rounds) rounds=$2; shift 2 ;;
    --session-ms) session=$2; shift 2 ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
    esac
done
T=$(mktemp -d "${TMPDIR:-/tmp}/atl-bench-XXXXXX")
pid=""
trap '[ -z "$pid" ] || kill -9 "$pid" 2>/dev/null; tests/kafka/stop.sh "$T/kafka" >/dev/null 2>&1; rm -rf "$T"' EXIT
now() { date +%s.%N; }
brokers=$(tests/kafka/start.sh "$T/kafka" | head -n 1)
$B/atlasctl gen --scale tiny --seed 9 --out "$T/rows.jsonl" 2>/dev/null
split -n l/$((2 * rounds + 2)) -d -a 3 "$T/rows.jsonl" "$T/chunk."
chunks=("$T"/chunk.*)

start() { # start DB LOG ARGS...: sets pid and port
    local db=$1 log=$2; shift 2
    $B/atlasd --db "$db" --brokers "$brokers" --http 127.0.0.1:0 --stats-interval 0 \
        --refresh-interval 0 --kafka.session.timeout.ms="$session" \
        --kafka.heartbeat.interval.ms=500 "$@" >>"$log" 2>&1 &
    pid=$!
    port=""
    for _ in $(seq 400); do
        port=$({ grep -o 'msg="listening" addr=[^ ]* port=[0-9]*' "$log" || true; } | tail -n 1 | sed 's/.*port=//')
        [ -n "$port" ] && curl -s -o /dev/null "http://127.0.0.1:$port/healthz" && return 0
        sleep 0.01
    done
    echo "atlasd did not start" >&2; exit 1
}
field() { curl -fs "http://127.0.0.1:$port/status" 2>/dev/null | tr -d '\t' | sed -n "s/^\"$1\":\([0-9]*\).*/\1/p"; }

measure() { # measure NAME ARGS...: prints one line per round, then the median
    local name=$1 c=0 r times=()
    shift
    local db=$T/db-$name log=$T/$name.log
    $B/atlasctl produce --brokers "$brokers" --topic-hiscores "t.$name" "${chunks[$c]}" 2>/dev/null
    start "$db" "$log" --topic-hiscores "t.$name" --group "g.$name" "$@"
    while [ "$(field messages_consumed || echo 0)" = 0 ]; do sleep 0.05; done
    sleep 2
    for r in $(seq "$rounds"); do
        kill -9 "$pid"; wait "$pid" 2>/dev/null || true
        c=$((c + 1))
        $B/atlasctl produce --brokers "$brokers" --topic-hiscores "t.$name" "${chunks[$c]}" 2>/dev/null
        local t0
        t0=$(now) # the restart (systemd's RestartSec aside): exec -> first message consumed
        start "$db" "$log" --topic-hiscores "t.$name" --group "g.$name" "$@"
        while [ "$(field messages_consumed || echo 0)" = 0 ]; do sleep 0.01; done
        local t1
        t1=$(now)
        times+=("$(echo "$t1 - $t0" | bc)")
        printf '%-8s round %d: restart after kill -9 -> consuming again %.2f s\n' "$name" "$r" "${times[-1]}"
        sleep 1
    done
    kill -TERM "$pid"; wait "$pid" 2>/dev/null || true; pid=""
    printf '%-8s median %.2f s (session.timeout.ms %d)\n' "$name" \
        "$(printf '%s\n' "${times[@]}" | sort -n | sed -n "$(((rounds + 1) / 2))p")" "$session"
}
measure static
measure dynamic --group-instance-id none
