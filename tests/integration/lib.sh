#!/usr/bin/env bash
# Helpers for integration tests that run the real atlasd against a Kafka broker with temporary
# stores and ephemeral HTTP ports. Every process a test starts is killed on exit.
#
# The broker is librdkafka's mock cluster (`atlasctl kafka-mock`) by default, or a real Apache
# Kafka with ATL_BROKER=kafka (tests/kafka/start.sh): the broker the CTest fixture started in
# ATL_KAFKA_DIR when that is set (shared by the `kafka` label's tests), else one of the test's
# own. On a shared broker each test uses topics and a group id of its own ($TOPIC_H, $TOPIC_B,
# $TOPIC_DLQ, $GROUP: pass them with produce/consume below; start_daemon passes them to atlasd).
set -euo pipefail
T=$(mktemp -d "${TMPDIR:-/tmp}/atl-it-XXXXXX")
PIDS=()
MOUNTS=()
ATL_BROKER=${ATL_BROKER:-mock}
KAFKA_SH=${ATL_SRC:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}/tests/kafka
OWN_KAFKA=""
if [ "$ATL_BROKER" = kafka ]; then
    P=${T##*/}; P=${P//[^A-Za-z0-9]/}
    TOPIC_H=$P.hiscore_updates TOPIC_B=$P.beatmaps TOPIC_DLQ=$P.dlq GROUP=$P.atlasd
else
    TOPIC_H=osutrack.hiscore_updates TOPIC_B=osutrack.beatmaps TOPIC_DLQ=atlasd.dlq GROUP=atlasd
fi
LOGS_SHOWN=0
show_logs() {
    [ "$LOGS_SHOWN" = 1 ] && return 0
    LOGS_SHOWN=1
    local f
    for f in "$T"/*.log; do [ -f "$f" ] && { echo "--- $f (tail)" >&2; tail -n 15 "$f" >&2; }; done
}
cleanup() {
    local rc=$? p m
    # any failure, also one `set -e` ends the script with (issue 10.18: a `kill` of a daemon
    # that had exited by itself ended the crash test before it printed anything), shows the logs
    if [ "$rc" != 0 ] && [ "$rc" != 77 ]; then
        echo "exit status $rc" >&2
        show_logs
    fi
    for p in "${PIDS[@]}"; do kill -9 "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    for m in "${MOUNTS[@]}"; do umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || true; done
    [ -z "$OWN_KAFKA" ] || "$KAFKA_SH/stop.sh" "$OWN_KAFKA" --kill >/dev/null 2>&1 || true
    if [ "${KEEP_TMP:-0}" = 1 ]; then echo "kept $T" >&2; else rm -rf "$T"; fi
}
trap cleanup EXIT
fail() {
    echo "FAIL: $* (lines ${BASH_LINENO[*]})" >&2
    show_logs
    exit 1
}
command -v curl >/dev/null || { echo "curl not installed: skipped"; exit 77; }

# mount_tmpfs DIR SIZE: a tmpfs of SIZE at DIR (a real ENOSPC, or a volume to remount read-only),
# unmounted by cleanup once the processes are killed, before $T is removed. Mounting needs root
# (CAP_SYS_ADMIN): the test is skipped (exit 77) where it is not permitted.
mount_tmpfs() {
    mkdir -p "$1"
    mount -t tmpfs -o "size=$2" tmpfs "$1" 2>"$T/mount.err" ||
        { echo "cannot mount a tmpfs ($(cat "$T/mount.err")): skipped"; exit 77; }
    MOUNTS+=("$1")
}

# start_broker [PARTITIONS]: the mock cluster or a real broker (ATL_BROKER); sets BROKERS and
# creates the test's topics with PARTITIONS partitions on a real broker.
start_broker() {
    if [ "$ATL_BROKER" = mock ]; then
        start_mock "$@"
        return
    fi
    if [ -n "${ATL_KAFKA_DIR:-}" ] && [ -s "$ATL_KAFKA_DIR/bootstrap" ]; then
        BROKERS=$(cat "$ATL_KAFKA_DIR/bootstrap")
    else
        command -v java >/dev/null || { echo "java not installed: skipped"; exit 77; }
        OWN_KAFKA=$T/kafka
        BROKERS=$("$KAFKA_SH/start.sh" "$OWN_KAFKA" --nodes "${KAFKA_NODES:-1}" 2>"$T/kafka-start.log" |
            head -n 1) || fail "kafka did not start: $(tail -n 5 "$T/kafka-start.log")"
    fi
    create_topics "${1:-4}" "$TOPIC_H" "$TOPIC_B" "$TOPIC_DLQ"
}

# create_topics PARTITIONS TOPIC... on the real broker (Kafka's own tool, in parallel)
create_topics() {
    local n=$1 t pids=() p
    shift
    for t in "$@"; do
        "$KAFKA_SH/tool.sh" topics --bootstrap-server "$BROKERS" --create --if-not-exists \
            --topic "$t" --partitions "$n" >>"$T/topics.log" 2>&1 &
        pids+=($!)
    done
    for p in "${pids[@]}"; do wait "$p" || fail "topic creation: $(tail -n 5 "$T/topics.log")"; done
}

# produce FILE... / consume TOPIC ARGS...: atlasctl produce/consume on the test's topics
produce() { atlasctl produce --brokers "$BROKERS" --topic-hiscores "$TOPIC_H" --topic-beatmaps "$TOPIC_B" "$@"; }
consume() { local t=$1; shift; atlasctl consume --brokers "$BROKERS" --topic "$t" "$@"; }

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

# brokers_down / brokers_up: every broker of the test's own cluster stops (SIGTERM), then starts
# again on the same ports with its data
brokers_down() {
    if [ "$ATL_BROKER" = mock ]; then
        mock_cmd down 1; mock_cmd down 2; mock_cmd down 3
    else
        [ -n "$OWN_KAFKA" ] || fail "brokers_down needs a broker of the test's own"
        "$KAFKA_SH/stop.sh" "$OWN_KAFKA"
    fi
}
brokers_up() {
    if [ "$ATL_BROKER" = mock ]; then
        mock_cmd up 1; mock_cmd up 2; mock_cmd up 3
    else
        local i pids=() p
        for i in $(seq "$(cat "$OWN_KAFKA/nodes")"); do
            "$KAFKA_SH/start.sh" "$OWN_KAFKA" --node "$i" >/dev/null 2>>"$T/kafka-start.log" &
            pids+=($!)
        done
        for p in "${pids[@]}"; do wait "$p" || fail "kafka restart: $(tail -n 5 "$T/kafka-start.log")"; done
    fi
}

# start_daemon NAME DB [ARGS...]: sets PORT_<NAME> and PID_<NAME> once /healthz answers 200.
# ATLASD=atlasd-faults runs the test build with fault switches (tests/fault/daemon_faults.c).
start_daemon() {
    local name=$1 db=$2; shift 2
    "${ATLASD:-atlasd}" --db "$db" --brokers "$BROKERS" --http 127.0.0.1:0 --stats-interval 0 \
        --kafka.session.timeout.ms=4000 --kafka.heartbeat.interval.ms=500 \
        --topic-hiscores "$TOPIC_H" --topic-beatmaps "$TOPIC_B" --topic-dlq "$TOPIC_DLQ" \
        --group "$GROUP" "$@" \
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

# has_metric PORT REGEX: a line of GET /metrics matches REGEX. The answer is read whole first:
# `curl | grep -q` fails under pipefail when grep stops reading before curl has written all of
# it (curl exits 23): the likely cause of one offset-unreadable failure in CI, whose state
# (checked just before) and metric come from the same counter.
has_metric() {
    local m
    m=$(curl -fs "http://127.0.0.1:$1/metrics") && grep -q -- "$2" <<<"$m"
}

# refresh_field PORT FIELD: a number of GET /status's `refresh` object (failures,
# failures_in_a_row, retry_after_seconds, ...), or nothing
refresh_field() {
    { curl -fs "http://127.0.0.1:$1/status" || true; } | tr -d '\t\n ' |
        sed -n "s/.*\"refresh\":{.*\"$2\":\([0-9.]*\).*/\1/p"
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
