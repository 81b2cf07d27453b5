#!/usr/bin/env bash
# A refresh that fails for a lasting reason (here its snapshot directory turned into a file: a
# full disk does the same) is retried with a growing wait, not every refresh-interval: with
# --refresh-interval 1, the daemon before the backoff failed ~20 times in 20 s (each failure a
# whole refresh's work: ~20 s of CPU at full scale). /status says how many failed in a row and
# how long the next one waits; once the directory is back a retry publishes by itself.
. "$(dirname "$0")/lib.sh"

atlasctl gen --scale tiny --seed 9 --out "$T/all.jsonl" 2>/dev/null
head -n 6000 "$T/all.jsonl" >"$T/a.jsonl"
sed -n '6001,9000p' "$T/all.jsonl" >"$T/b.jsonl"
start_broker 1
start_daemon a "$T/db" --batch-max-ms 50 --refresh-interval 1 --snapshots "$T/snaps"
produce --topic "$TOPIC_H" "$T/a.jsonl" 2>/dev/null
for i in $(seq 300); do
    [ -f "$T/snaps/latest" ] && break
    sleep 0.1
done
[ -f "$T/snaps/latest" ] || fail "no first snapshot"
rm -rf "$T/snaps.keep" && mv "$T/snaps" "$T/snaps.keep" && touch "$T/snaps"
produce --topic "$TOPIC_H" "$T/b.jsonl" 2>/dev/null
sleep 22
n=$(refresh_field "$PORT_a" failures)
row=$(refresh_field "$PORT_a" failures_in_a_row)
wait_s=$(refresh_field "$PORT_a" retry_after_seconds)
echo "failed refreshes in 22 s: $n, in a row $row, next after $wait_s s"
[ "${n:-0}" -ge 2 ] || fail "the failing refresh was not retried ($n failures)"
[ "$n" -le 5 ] || fail "$n failed refreshes in 22 s: retried every interval, no backoff"
[ "$row" = "$n" ] || fail "failures_in_a_row $row, expected $n"
[ "${wait_s%.*}" -ge 10 ] || fail "retry_after_seconds $wait_s after $n failures in a row"
rm -f "$T/snaps" && mv "$T/snaps.keep" "$T/snaps"
for i in $(seq 450); do
    grep -q 'msg="publishing succeeded again"' "$T/a.log" && break
    sleep 0.2
done
grep -q 'msg="publishing succeeded again"' "$T/a.log" || fail "no publish once the directory was back"
[ "$(refresh_field "$PORT_a" failures_in_a_row)" = 0 ] || fail "failures_in_a_row not reset"
[ "$(refresh_field "$PORT_a" retry_after_seconds)" = 0 ] || fail "retry_after_seconds not reset"
echo "refresh-backoff: ok"
