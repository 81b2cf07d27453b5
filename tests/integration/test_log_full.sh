#!/usr/bin/env bash
# The log file's disk fills up (`--log-file` on a 64 KiB tmpfs, filled): the lines written
# meanwhile are lost, and once there is space again the log says so before the next line
# (`msg="log lines lost" n=N err="No space left on device"`) instead of a silent gap.
# Mounting needs root (CAP_SYS_ADMIN): skipped where it is not permitted.
# Before the fix the log went on after the gap with no word of it.
. "$(dirname "$0")/lib.sh"

mount_tmpfs "$T/logs" 64k

start_broker 1
log=$T/logs/atlasd.log
ln -s "$log" "$T/a.log" # where start_daemon looks for the port
start_daemon a "$T/db" --log-file "$log"
dd if=/dev/zero of="$T/logs/filler" bs=4k 2>/dev/null || true # until the disk is full
pad=$((4096 - $(stat -c %s "$log") % 4096)) # and the rest of the log's last page
[ "$pad" = 4096 ] || { head -c $((pad - 1)) /dev/zero | tr '\0' '#'; echo; } >>"$log"
before=$(wc -l <"$log")
for i in 1 2 3; do
    kill -HUP "$PID_a" # one line each: msg="SIGHUP: log reopened"
    sleep 0.3
done
[ "$(wc -l <"$log")" = "$before" ] || fail "lines were written to a full disk?"
rm "$T/logs/filler" # space is back
kill -HUP "$PID_a"
for i in $(seq 50); do [ "$(wc -l <"$log")" -gt "$before" ] && break; sleep 0.1; done
grep -q 'msg="log lines lost" n=[1-9][0-9]* err="No space left on device"' "$log" ||
    fail "the gap is not logged: $(tail -n 3 "$log")"
lost=$(sed -n 's/.*msg="log lines lost" n=\([0-9]*\).*/\1/p' "$log")
[ "$lost" -ge 3 ] || fail "$lost lines said lost, 3 SIGHUP lines at least were"
tail -n 1 "$log" | grep -q 'msg="SIGHUP: log reopened"' || fail "the line after the gap is missing"
kill -TERM "$PID_a"
wait "$PID_a" || fail "atlasd did not stop cleanly"
echo "log-full: $lost lines lost while the log's disk was full, said so once space was back"
