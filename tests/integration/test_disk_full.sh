#!/usr/bin/env bash
# A full disk at 3 a.m.: the store and its snapshots on a 3 MiB tmpfs (a real ENOSPC), fed more
# than fits. Batch commits fail: ingestion must pause (/healthz "stalled"), say why ("No space
# left on device", not LMDB's "Input/output error" of a short write), log it once, skip and
# lose nothing. Refreshes fail to publish: the error is logged once however often they are
# retried, no partial snapshot stays, `latest` names a complete one. Once space is back
# (remount larger) it all resumes by itself and the store equals `import` of the same rows.
# Mounting needs root (CAP_SYS_ADMIN): skipped where it is not permitted.
# Before the fix: last_error "store commit failed: Input/output error", and "refresh failed"
# logged at every retry.
. "$(dirname "$0")/lib.sh"

mount_tmpfs "$T/mnt" 3M

atlasctl gen --scale tiny --seed 5 --out "$T/all.jsonl" 2>/dev/null
head -n 20000 "$T/all.jsonl" >"$T/rows.jsonl"
atlasctl import --db "$T/ref" --json "$T/rows.jsonl" >/dev/null 2>&1 || fail "import"
start_broker 1
db=$T/mnt/db
start_daemon a "$db" --batch-max-ms 50 --refresh-interval 1 --map-size-mb 16
produce --topic "$TOPIC_H" "$T/rows.jsonl" 2>/dev/null
for i in $(seq 300); do
    [ "$(curl -s "http://127.0.0.1:$PORT_a/healthz")" = stalled ] && break
    sleep 0.1
done
[ "$(curl -s "http://127.0.0.1:$PORT_a/healthz")" = stalled ] ||
    fail "ingestion did not stall on a full disk: $(df -k "$T/mnt" | tail -n 1)"
# the commit is retried every second; the failing refresh 5 s after its first failure, then
# after longer waits (the scheduler's backoff)
for i in $(seq 150); do
    [ "$(refresh_field "$PORT_a" failures)" -ge 2 ] 2>/dev/null && break
    sleep 0.2
done
status "$PORT_a" last_error | grep -q 'No space left on device' ||
    fail "last_error does not say the disk is full: '$(status "$PORT_a" last_error)'"
# once per episode: a failure freeing space (a partial file removed) may let one commit or
# publish through before the disk is full again; that ends an episode with a line of its own
n=$(grep -c 'msg="store commit failed' "$T/a.log" || true)
ok=$(grep -c 'msg="store commit succeeded again"' "$T/a.log" || true)
[ "$n" -ge 1 ] && [ "$n" -le $((ok + 1)) ] ||
    fail "the failed commit logged $n times with $ok recoveries between, expected once each"
n=$(grep -c 'msg="refresh failed"' "$T/a.log" || true)
ok=$(grep -c 'msg="publishing succeeded again"' "$T/a.log" || true)
failures=$(refresh_field "$PORT_a" failures)
echo "refresh failures while full: $failures, logged: $n, recoveries between: $ok"
[ "${failures:-0}" -ge 2 ] || fail "refreshes were not retried on a full disk ($failures failures)"
[ "$n" -ge 1 ] && [ "$n" -le $((ok + 1)) ] ||
    fail "the same refresh failure logged $n times with $ok recoveries between, expected once each"
ls -a "$db/snapshots" >"$T/snaps.txt"
! grep -q '^\.tmp-' "$T/snaps.txt" || fail "a partial snapshot left: $(cat "$T/snaps.txt")"
if [ -f "$db/snapshots/latest" ]; then
    latest=$(cat "$db/snapshots/latest")
    [ -f "$db/snapshots/$latest" ] && [ -f "$db/snapshots/$latest.json" ] ||
        fail "latest names an incomplete snapshot: $(cat "$T/snaps.txt")"
fi
for f in "$db/snapshots"/corpus_*; do
    [ -e "$f" ] || continue # none yet
    case $f in *.json) continue ;; esac
    [ -f "$f.json" ] || fail "a corpus without its manifest left: $f"
done
applied=$(status "$PORT_a" events_applied)

# space is back
mount -o remount,size=64M "$T/mnt"
want=$(atlasctl stats --db "$T/ref" --json | json_num events_applied)
wait_status "$PORT_a" events_applied "$want" 60
[ "$(curl -s "http://127.0.0.1:$PORT_a/healthz")" = ok ] || fail "not consuming after recovery"
grep -q 'msg="store commit succeeded again"' "$T/a.log" || fail "no recovery of commits logged"
for i in $(seq 100); do
    grep -q 'msg="publishing succeeded again"' "$T/a.log" && break
    sleep 0.2
done
grep -q 'msg="publishing succeeded again"' "$T/a.log" || fail "no refresh published after recovery"
kill -TERM "$PID_a"
wait "$PID_a" || fail "atlasd did not stop cleanly"
[ "$(digest "$db")" = "$(digest "$T/ref")" ] || fail "the store differs from import of the same rows"
echo "disk-full: stalled at $applied events, resumed to $want; store equals import"
