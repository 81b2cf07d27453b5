#!/usr/bin/env bash
# A stored Kafka offset that cannot be read (here: a corrupt value, 4 bytes instead of 8) leaves
# its partition unconsumed and says so (/status state offset_unreadable, last_error, a metric).
# Before, any failure to read it started the partition from the beginning: every event in it
# was counted again (events_applied doubled), old rejections decided again and their dead
# letters sent twice.
. "$(dirname "$0")/lib.sh"

command -v mdb_dump >/dev/null && command -v mdb_load >/dev/null ||
    { echo "lmdb-utils not installed: skipped"; exit 77; }
for u in 1 2 3; do
    echo "{\"user\":$u,\"beatmap_id\":77,\"pp\":600,\"mods\":0,\"mode\":0,\"update_time\":\"2024-01-01 00:00:00\"}"
done >"$T/rows.jsonl"
start_broker 1
produce --topic "$TOPIC_H" "$T/rows.jsonl" 2>/dev/null
start_daemon a "$T/db" --batch-max-ms 50
wait_status "$PORT_a" events_applied 3 30
kill -TERM "$PID_a"; wait "$PID_a" || fail "atlasd did not stop cleanly"
# the offsets table as text (key line, value line), each 8-byte value cut to 4 bytes
mdb_dump -s offsets "$T/db" >"$T/offsets.dump"
awk '/^HEADER=END/{data=1; print; next} /^DATA=END/{data=0} data && /^ /{n++; if (n % 2 == 0) {print substr($0, 1, 9); next}} {print}' \
    "$T/offsets.dump" >"$T/corrupt.dump"
grep -q "^DATA=END" "$T/corrupt.dump" && ! cmp -s "$T/offsets.dump" "$T/corrupt.dump" ||
    fail "could not corrupt the stored offsets: $(cat "$T/offsets.dump")"
mdb_load -s offsets -f "$T/corrupt.dump" "$T/db" || fail "mdb_load failed"
start_daemon a "$T/db" --batch-max-ms 50
wait_status "$PORT_a" state offset_unreadable 30
sleep 3 # had it started from the beginning, the three rows would be applied again by now
[ "$(status "$PORT_a" events_applied)" = 3 ] ||
    fail "events_applied $(status "$PORT_a" events_applied): the partition was read again from its start"
status "$PORT_a" last_error | grep -q 'unreadable' || fail "last_error: $(status "$PORT_a" last_error)"
has_metric "$PORT_a" '^atlasd_offsets_unreadable_total [1-9]' ||
    fail "no atlasd_offsets_unreadable_total in /metrics"
kill -TERM "$PID_a"; wait "$PID_a" || fail "atlasd did not stop cleanly"
echo "offset-unreadable: a corrupt stored offset stops its partition instead of replaying it"
