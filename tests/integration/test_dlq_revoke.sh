#!/usr/bin/env bash
# A revoke with a failed flush dead-letters nothing twice (issue 10.10). atlasd-faults a reads
# and rejects invalid messages while every batch commit fails (the commit-fail switch: a disk
# error); a second member b joins the group, so a's partitions are revoked while its batch cannot
# be committed: a drops it, and the messages are read again from the store's offsets by whoever
# gets them. Once commits work, every invalid message must reach the dead-letter topic exactly
# once. Before the fix dead letters were produced when a message was decoded, so the dropped
# batch's were already out, and the re-read messages were dead-lettered a second time.
. "$(dirname "$0")/lib.sh"

command -v atlasd-faults >/dev/null || { echo "atlasd-faults not built: skipped"; exit 77; }
export ATL_FAULT_DIR=$T/faults
mkdir -p "$ATL_FAULT_DIR"
n=12
for i in $(seq $n); do echo "not json $i"; done >"$T/bad.jsonl"
start_broker 4
produce --topic "$TOPIC_H" "$T/bad.jsonl" 2>/dev/null
touch "$ATL_FAULT_DIR/commit-fail"
# a long batch window: a's batch is still open (not yet flushed, so a keeps serving the group)
# when b joins; the revoke's flush is the commit that fails
ATLASD=atlasd-faults start_daemon a "$T/db-a" --batch-max-ms 20000
for i in $(seq 150); do
    [ "$(status "$PORT_a" messages_consumed)" = "$n" ] && break
    sleep 0.2
done
[ "$(status "$PORT_a" messages_consumed)" = "$n" ] ||
    fail "a consumed $(status "$PORT_a" messages_consumed) of $n"
ATLASD=atlasd-faults start_daemon b "$T/db-b" --batch-max-ms 20000
for i in $(seq 150); do
    grep -q 'partitions revoked' "$T/a.log" && break
    sleep 0.1
done
grep -q 'partitions revoked' "$T/a.log" || fail "a's partitions were not revoked"
grep -q 'store commit failed' "$T/a.log" || fail "a's flush at the revoke did not fail"
rm "$ATL_FAULT_DIR/commit-fail"
# each re-reads the partitions it was given from its store's offsets (none committed) and
# commits them when its batch window ends; then the dead letters go out
for i in $(seq 300); do
    d=$(($(status "$PORT_a" dead_letters) + $(status "$PORT_b" dead_letters)))
    [ "$d" -ge "$n" ] && break
    sleep 0.2
done
sleep 2
consume "$TOPIC_DLQ" --timeout-ms 5000 >"$T/dlq.jsonl" || true
got=$(grep -c '"atlasd-reason"' "$T/dlq.jsonl" || true)
for i in $(seq $n); do
    c=$(grep -c "\"value\":\"not json $i\"" "$T/dlq.jsonl" || true)
    [ "$c" = 1 ] || fail "'not json $i' dead-lettered $c times ($got dead letters for $n messages)"
done
[ "$got" = "$n" ] || fail "$got dead letters for $n messages"
kill -TERM "$PID_a" "$PID_b"
wait "$PID_a" || fail "a did not stop cleanly"
wait "$PID_b" || fail "b did not stop cleanly"
echo "dlq-revoke: $n messages, $got dead letters after a revoke with a failed commit"
