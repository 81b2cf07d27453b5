#!/usr/bin/env bash
# Out of memory while decoding a valid event stalls ingestion; it never rejects (issue 10.2).
# atlasd-faults with the decode-oom switch on: every allocation of a decode fails (cJSON's
# included). The valid events must not be rejected, dead-lettered or passed (their offset stays);
# once memory is back they are applied, and only the one invalid message is dead-lettered.
# Before the fix a failed cJSON allocation was "not_json": each valid event was rejected, its
# dead letter produced and its offset committed, and the event was lost.
. "$(dirname "$0")/lib.sh"

command -v atlasd-faults >/dev/null || { echo "atlasd-faults not built: skipped"; exit 77; }
export ATL_FAULT_DIR=$T/faults
mkdir -p "$ATL_FAULT_DIR"
n=6
for u in $(seq $n); do
    echo "{\"user\":$u,\"beatmap_id\":77,\"pp\":600,\"mods\":0,\"mode\":0,\"update_time\":\"2024-01-01 00:00:00\"}"
done >"$T/good.jsonl"
echo "not json" >"$T/bad.jsonl"
start_broker 1
touch "$ATL_FAULT_DIR/decode-oom"
ATLASD=atlasd-faults start_daemon a "$T/db" --batch-max-ms 50
produce --topic "$TOPIC_H" "$T/good.jsonl" 2>/dev/null
# it reads the first message, cannot decode it and holds it: retried every second
for i in $(seq 100); do
    grep -q 'out of memory decoding a message' "$T/a.log" && break
    [ "$(status "$PORT_a" messages_consumed)" = 0 ] || break
    sleep 0.1
done
sleep 3 # three retries, all out of memory
[ "$(status "$PORT_a" events_rejected)" = 0 ] ||
    fail "$(status "$PORT_a" events_rejected) valid events rejected while memory ran out"
[ "$(status "$PORT_a" events_applied)" = 0 ] || fail "events applied while decoding failed"
[ "$(status "$PORT_a" dead_letters)" = 0 ] || fail "valid events dead-lettered"
[ "$(status "$PORT_a" messages_consumed)" = 0 ] || fail "a message passed while it was held"
grep -q 'out of memory decoding a message' "$T/a.log" || fail "no out-of-memory stall logged"
status "$PORT_a" last_error | grep -q 'out of memory' || fail "last_error does not say why"
rm "$ATL_FAULT_DIR/decode-oom" # memory is back
produce --topic "$TOPIC_H" "$T/bad.jsonl" 2>/dev/null
wait_status "$PORT_a" events_applied $n 30
wait_status "$PORT_a" events_rejected 1 30
wait_status "$PORT_a" dead_letters 1 30
consume "$TOPIC_DLQ" --timeout-ms 3000 >"$T/dlq.jsonl" || true
[ "$(grep -c '"atlasd-reason"' "$T/dlq.jsonl" || true)" = 1 ] ||
    fail "dead letters: $(cat "$T/dlq.jsonl") (expected the invalid message only)"
grep -q '"value":"not json"' "$T/dlq.jsonl" || fail "the invalid message's dead letter is missing"
grep -q 'decoding succeeded again' "$T/a.log" || fail "no recovery logged"
kill -TERM "$PID_a"; wait "$PID_a" || fail "atlasd did not stop cleanly"
echo "ingest-oom: $n valid events held through the out-of-memory window, then applied; 0 rejected"
