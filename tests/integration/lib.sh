#!/usr/bin/env bash
# Helpers for integration tests that run the real atlasd against librdkafka's mock cluster
# (`atlasctl kafka-mock`) with temporary stores and ephemeral HTTP ports. Every process a test
# starts is killed on exit.
set -euo pipefail
T=$(mktemp -d "${TMPDIR:-/tmp}/atl-it-XXXXXX")
PIDS=()
LOGS_SHOWN=0
show_logs() {
    [ "$LOGS_SHOWN" = 1 ] && return 0
    LOGS_SHOWN=1
    local f
    for f in "$T"/*.log; do [ -f "$f" ] && { echo "--- $f (tail)" >&2; tail -n 15 "$f" >&2; }; done
}
cleanup() {
    local rc=$? p
    # any failure, also one `set -e` ends the script with (issue 10.18: a `kill` of a daemon
    # that had exited by itself ended the crash test before it printed anything), shows the logs
    if [ "$rc" != 0 ] && [ "$rc" != 77 ]; then
        echo "exit status $rc" >&2
        show_logs
    fi
    for p in "${PIDS[@]}"; do kill -9 "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    if [ "${KEEP_TMP:-0}" = 1 ]; then echo "kept $T" >&2; else rm -rf "$T"; fi
}
trap cleanup EXIT
fail() {
    echo "FAIL: $*" >&2
    show_logs
    exit 1
}
command -v curl >/dev/null || { echo "curl not installed: skipped"; exit 77; }

# start_mock [PARTITIONS]: sets BROKERS; `mock_cmd down 1` etc. inject faults.
start_mock() {
    mkfifo "$T/mock.in"
    atlasctl kafka-mock --partitions "${1:-4}" <"$T/mock.in" >"$T/mock.out" 2>"$T/mock.log" &
    PIDS+=($!)
    exec 7>"$T/mock.in"
    local i
    for i in $(seq 100); do
        BROKERS=$(head -n 1 "$T/mock.out" 2>/dev/null || true)
        [ -n "$BROKERS" ] && return 0
        sleep 0.1
    done
    fail "mock cluster did not start"
}
mock_cmd() { echo "$*" >&7; }

# start_daemon NAME DB [ARGS...]: sets PORT_<NAME> and PID_<NAME>.
start_daemon() {
    local name=$1 db=$2; shift 2
    atlasd --db "$db" --brokers "$BROKERS" --http 127.0.0.1:0 --stats-interval 0 \
        --kafka.session.timeout.ms=4000 --kafka.heartbeat.interval.ms=500 "$@" \
        >>"$T/$name.log" 2>&1 &
    local pid=$! i port=""
    PIDS+=($pid)
    eval "PID_$name=$pid"
    for i in $(seq 100); do
        port=$({ grep -o 'msg="listening" addr=[^ ]* port=[0-9]*' "$T/$name.log" || true; } |
            tail -n 1 | sed 's/.*port=//')
        # a restarted daemon appends to the same log: take the newest line after this start
        # listening: any answer (/healthz is 503 "rebalancing" until the group assigns partitions)
        if [ -n "$port" ] && curl -s -o /dev/null "http://127.0.0.1:$port/healthz" 2>/dev/null; then
            eval "PORT_$name=$port"
            return 0
        fi
        kill -0 "$pid" 2>/dev/null || fail "atlasd $name exited at start"
        sleep 0.1
    done
    fail "atlasd $name did not start"
}

# status PORT FIELD: a top-level number or string of GET /status
status() {
    { curl -fs "http://127.0.0.1:$1/status" || true; } | tr -d '\t' |
        sed -n "s/^\"$2\":\"\{0,1\}\([^\",]*\).*/\1/p" | head -n 1
}

# wait_status PORT FIELD VALUE SECONDS
wait_status() {
    local i v
    for i in $(seq $(($4 * 5))); do
        v=$(status "$1" "$2" || true)
        [ "$v" = "$3" ] && return 0
        sleep 0.2
    done
    fail "status $2 = '$v', expected $3 after $4 s"
}

digest() { atlasctl stats --db "$1" --json | sed 's/.*"digest":"\([0-9a-f]*\)".*/\1/'; }
json_num() { sed -n "s/.*\"$1\":\([0-9]*\).*/\1/p"; }
