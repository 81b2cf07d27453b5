#!/usr/bin/env bash
# Dead letters are at-least-once for real (issue 10.8-10.9):
#  - rejected messages whose dead letters cannot be delivered yet (every Produce to the broker
#    fails for a while) and a kill -9 right after their batch committed: after the restart every
#    one of them reaches the dead-letter topic (before, their offsets were stored with the batch
#    and the in-flight dead letters died with the process);
#  - a message over max-message-bytes is dead-lettered as a truncated copy with a header giving
#    its real size; delivery failures are counted in /metrics.
. "$(dirname "$0")/lib.sh"

n=12
for i in $(seq $n); do echo "not json $i"; done >"$T/bad.jsonl"
head -c 100000 /dev/zero | tr '\0' 'x' >"$T/big.jsonl"
echo >>"$T/big.jsonl"
start_broker 4
produce --topic "$TOPIC_H" "$T/bad.jsonl" 2>/dev/null
produce --topic "$TOPIC_H" "$T/big.jsonl" 2>/dev/null
# every Produce request fails (NOT_LEADER_OR_FOLLOWER, retriable) until 60 have failed (the mock;
# a real broker (ATL_BROKER=kafka) takes them at once: the kill -9 then races their delivery)
[ "$ATL_BROKER" = mock ] && mock_cmd "error 0 60 6"
start_daemon a "$T/db" --batch-max-events 100
wait_status "$PORT_a" events_rejected $((n + 1)) 30
kill -9 "$PID_a" 2>/dev/null || fail "atlasd exited by itself"
wait "$PID_a" 2>/dev/null || true
start_daemon a "$T/db" --batch-max-events 100
# at-least-once: a dead letter delivered just before the kill is sent again after the restart, so
# the first n + 1 messages of the topic may hold duplicates and miss others; read the whole topic
# again (idle timeout 5 s) until every one has arrived or 90 s have passed
missing_dead_letters() {
    for i in $(seq $n); do
        grep -q "\"value\":\"not json $i\"" "$T/dlq.jsonl" || echo "$i"
    done
}
consume "$TOPIC_DLQ" --count $((n + 1)) --timeout-ms 90000 >"$T/dlq.jsonl" || true
deadline=$((SECONDS + 90))
while [ -n "$(missing_dead_letters)" ] && [ $SECONDS -lt $deadline ]; do
    consume "$TOPIC_DLQ" --timeout-ms 5000 >"$T/dlq.jsonl" || true
done
got=$(grep -c '"atlasd-reason"' "$T/dlq.jsonl" || true)
[ "$got" -ge $((n + 1)) ] || fail "$got of $((n + 1)) dead letters arrived after kill -9"
lost=$(missing_dead_letters | tr '\n' ' ')
[ -z "$lost" ] || fail "dead letters of 'not json' $lost lost"
grep '"atlasd-reason":"oversize"' "$T/dlq.jsonl" | grep -q '"atlasd-truncated":"100000"' ||
    fail "the oversize message's dead letter does not say it was truncated"
curl -fs "http://127.0.0.1:$PORT_a/metrics" | grep '^atlasd_dead_letter_failures_total ' >/dev/null ||
    fail "dead-letter failures are not in /metrics"
kill -TERM "$PID_a"; wait "$PID_a" || fail "atlasd did not stop cleanly"
echo "dlq: all $got dead letters delivered after kill -9"
