#!/usr/bin/env bash
# Real broker only (ATL_BROKER=kafka), on a broker of its own with topic auto-creation off:
# 1. atlasd started before its topics exist logs a clear error and keeps retrying; once the
#    topics are created (Kafka's admin tool) it consumes them without a restart.
# 2. retention deletes events the store never applied (its offset falls below the log start):
#    atlasd refuses to skip them: a loud error, the partition stopped, a metric and a status
#    state, and nothing applied past the gap (README "Offsets out of range").
. "$(dirname "$0")/lib.sh"
[ "$ATL_BROKER" = kafka ] || { echo "real broker only: skipped"; exit 77; }
command -v java >/dev/null || { echo "java not installed: skipped"; exit 77; }
OWN_KAFKA=$T/kafka
BROKERS=$("$KAFKA_SH/start.sh" "$OWN_KAFKA" --set auto.create.topics.enable=false 2>"$T/kafka-start.log" |
    head -n 1) || fail "kafka did not start"

atlasctl gen --scale tiny --seed 31 --out "$T/rows.jsonl" 2>/dev/null
split -n l/3 -d "$T/rows.jsonl" "$T/part."
atlasctl import --db "$T/ref" --json "$T/part.00" >"$T/ref.json" 2>/dev/null
applied=$(json_num applied <"$T/ref.json")
n_a=$(wc -l <"$T/part.00")

# 1. missing topics: a clear error, then consumption once they exist
start_daemon a "$T/db"
for i in $(seq 100); do grep -q 'Subscribed topic not available' "$T/a.log" && break; sleep 0.1; done
grep -q "Subscribed topic not available: $TOPIC_H" "$T/a.log" || fail "no clear missing-topic error"
sleep 1
kill -0 "$PID_a" || fail "atlasd exited on missing topics"
create_topics 4 "$TOPIC_H" "$TOPIC_B" "$TOPIC_DLQ"
produce "$T/part.00" 2>/dev/null
wait_status "$PORT_a" events_applied "$applied" 60
kill -TERM "$PID_a"; wait "$PID_a" || fail "exit code"

# 2. retention deletes what the store has not applied yet
"$KAFKA_SH/tool.sh" configs --bootstrap-server "$BROKERS" --alter --entity-type topics \
    --entity-name "$TOPIC_H" --add-config retention.ms=1000,segment.ms=300 >"$T/cfg.log" 2>&1 ||
    fail "alter topic config: $(cat "$T/cfg.log")"
sleep 1
produce "$T/part.01" 2>/dev/null # rolls the segments of part 00
sleep 1.5
produce "$T/part.02" 2>/dev/null # rolls part 01's: both deleted by retention
earliest=0
for i in $(seq 30); do
    earliest=$("$KAFKA_SH/tool.sh" get-offsets --bootstrap-server "$BROKERS" --topic "$TOPIC_H" \
        --time -2 2>/dev/null | awk -F: '{s += $3} END {print s + 0}')
    [ "$earliest" -gt "$n_a" ] && break
    sleep 1
done
[ "$earliest" -gt "$n_a" ] || fail "retention deleted nothing past the store's offsets ($earliest)"
UNHEALTHY_OK=1 start_daemon a "$T/db"
for i in $(seq 150); do grep -q 'stored offset out of range' "$T/a.log" && break; sleep 0.1; done
grep -q 'level=error mod=ingest msg="stored offset out of range' "$T/a.log" || fail "no loud error"
for i in $(seq 50); do curl -fs "http://127.0.0.1:$PORT_a/status" | tr -d " \t\n" | grep -q "\"state\":\"offset_out_of_range\"" && break; sleep 0.2; done
curl -fs "http://127.0.0.1:$PORT_a/status" | tr -d " \t\n" | grep -q "\"state\":\"offset_out_of_range\"" || fail "status state"
curl -fs "http://127.0.0.1:$PORT_a/metrics" | grep '^atlasd_offsets_out_of_range_total [1-9]' >/dev/null ||
    fail "no metric"
[ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$PORT_a/healthz")" = 503 ] ||
    fail "/healthz should report the stopped partitions"
sleep 2
[ "$(status "$PORT_a" events_applied)" = "$applied" ] || fail "events past the gap were applied"
kill -TERM "$PID_a"; wait "$PID_a" || true
echo "kafka-topics: all checks passed"
