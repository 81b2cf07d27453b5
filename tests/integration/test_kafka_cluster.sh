#!/usr/bin/env bash
# Real broker only: a 3-node KRaft cluster (topics replicated 3 times, min.insync.replicas 2)
# while atlasd consumes a stream being produced:
#   leader   (default): kill -9 the broker leading most of the consumed partitions mid-stream,
#                       later start it again;
#   rolling:            restart every broker in turn (SIGTERM, controlled shutdown).
# Either way the store ends equal to `import` of the same rows (digest).
. "$(dirname "$0")/lib.sh"
mode=${1:-leader}
[ "$ATL_BROKER" = kafka ] || { echo "real broker only: skipped"; exit 77; }
unset ATL_KAFKA_DIR
KAFKA_NODES=3 start_broker 4

atlasctl gen --scale tiny --seed 41 --out "$T/rows.jsonl" 2>/dev/null
atlasctl import --db "$T/ref" --json "$T/rows.jsonl" >"$T/ref.json" 2>/dev/null
applied=$(json_num applied <"$T/ref.json")
split -n l/8 -d "$T/rows.jsonl" "$T/chunk."
start_daemon d "$T/db" --batch-max-events 500 --batch-max-ms 50
( for c in "$T"/chunk.*; do produce "$c" 2>>"$T/produce.log" || exit 1; sleep 1; done ) &
prod=$!
PIDS+=($prod)
sleep 3 # mid-stream

if [ "$mode" = leader ]; then
    "$KAFKA_SH/tool.sh" topics --bootstrap-server "$BROKERS" --describe --topic "$TOPIC_H" \
        >"$T/describe.txt" 2>/dev/null || fail "describe"
    leader=$(grep -o 'Leader: [0-9]*' "$T/describe.txt" | sort | uniq -c | sort -rn | head -n 1 |
        awk '{print $3}')
    [ -n "$leader" ] || fail "no leader in $(cat "$T/describe.txt")"
    echo "killing broker $leader, leader of $(grep -c "Leader: $leader" "$T/describe.txt") partitions"
    "$KAFKA_SH/stop.sh" "$OWN_KAFKA" --kill "$leader"
    sleep 8
    [ "$(status "$PORT_d" events_applied)" -gt 0 ] || fail "nothing applied"
    "$KAFKA_SH/start.sh" "$OWN_KAFKA" --node "$leader" >/dev/null 2>>"$T/kafka-start.log" ||
        fail "restart of broker $leader"
else
    for n in 1 2 3; do
        echo "restarting broker $n"
        "$KAFKA_SH/stop.sh" "$OWN_KAFKA" "$n"
        "$KAFKA_SH/start.sh" "$OWN_KAFKA" --node "$n" >/dev/null 2>>"$T/kafka-start.log" ||
            fail "restart of broker $n"
        sleep 2
    done
fi
wait "$prod" || fail "produce: $(tail -n 3 "$T/produce.log")"
wait_status "$PORT_d" events_applied "$applied" 120
[ "$(digest "$T/db")" = "$(digest "$T/ref")" ] || fail "store after broker failures differs from import"
kill -TERM "$PID_d"; wait "$PID_d" || fail "exit code"
echo "kafka-cluster ($mode): all checks passed"
