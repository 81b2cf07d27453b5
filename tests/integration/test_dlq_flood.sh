#!/usr/bin/env bash
# A flood of large invalid messages is bounded in memory: a batch is handed to the writer once
# its dead letters hold 64 MiB, however many messages batch-max-events allows. Before, every
# dead letter of a batch (up to max-message-bytes each) stayed in memory until batch-max-events
# or batch-max-ms: at the largest max-message-bytes (16 MiB) and 5000 events a batch, 80 GB.
# Here: 100 messages of 900 KB (90 MB of dead letters) with batch-max-events 1000000 and
# batch-max-ms 5000 went into one batch; now at least two.
. "$(dirname "$0")/lib.sh"

[ "$ATL_BROKER" = mock ] && { echo "the mock broker keeps ~5 MB a partition: skipped"; exit 77; }

n=100
head -c 921600 /dev/zero | tr '\0' 'x' >"$T/one.txt"
for i in $(seq $n); do cat "$T/one.txt"; echo; done >"$T/flood.jsonl"
start_broker 1
produce --topic "$TOPIC_H" "$T/flood.jsonl" 2>/dev/null
start_daemon a "$T/db" --max-message-bytes 1048576 --batch-max-events 1000000 --batch-max-ms 5000
wait_status "$PORT_a" events_rejected $n 60
b=$(status "$PORT_a" batches)
[ "${b:-0}" -ge 2 ] || fail "$n dead letters of 900 KB committed in $b batch(es): no bound on their bytes"
kill -TERM "$PID_a"; wait "$PID_a" || fail "atlasd did not stop cleanly"
echo "dlq-flood: $n dead letters of 900 KB in $b batches"
