#!/usr/bin/env bash
# atlasd end to end through the mock broker: the consumed store equals `import` of the same
# rows (digest), bad messages go to the dead-letter topic with reasons and are counted, /status
# /metrics /healthz answer, SIGTERM exits 0 after the last commit, and a restart re-applies
# nothing.
. "$(dirname "$0")/lib.sh"

atlasctl gen --scale tiny --seed 5 --out "$T/rows.jsonl" 2>/dev/null
atlasctl import --db "$T/ref" --json "$T/rows.jsonl" >"$T/ref.json" 2>/dev/null
applied=$(json_num applied <"$T/ref.json")
printf '%s\n' 'not json at all' '{"user":1}' \
    '{"user":7,"beatmap_id":1,"pp":-5,"mods":0,"mode":0,"update_time":"2024-01-01 00:00:00"}' \
    >"$T/bad.jsonl"

start_mock 4
atlasctl produce --brokers "$BROKERS" "$T/rows.jsonl" 2>/dev/null
atlasctl produce --brokers "$BROKERS" --topic osutrack.hiscore_updates "$T/bad.jsonl" 2>/dev/null
start_daemon a "$T/db" --batch-max-events 1000
wait_status "$PORT_a" events_applied "$applied" 60
wait_status "$PORT_a" events_rejected 3 10
[ "$(digest "$T/db")" = "$(digest "$T/ref")" ] || fail "consumed store differs from import"

# dead letters carry the original bytes and the reason
atlasctl consume --brokers "$BROKERS" --topic atlasd.dlq --count 3 --timeout-ms 15000 >"$T/dlq.jsonl"
[ "$(wc -l <"$T/dlq.jsonl")" = 3 ] || fail "dead letters: $(cat "$T/dlq.jsonl")"
grep -q '"atlasd-reason":"not_json"' "$T/dlq.jsonl" || fail "no not_json dead letter"
grep -q '"atlasd-reason":"missing_field"' "$T/dlq.jsonl" || fail "no missing_field dead letter"
grep -q '"atlasd-reason":"bad_value"' "$T/dlq.jsonl" || fail "no bad_value dead letter"
grep -q '"value":"not json at all"' "$T/dlq.jsonl" || fail "dead letter lost the original bytes"
grep -q '"atlasd-source-offset"' "$T/dlq.jsonl" || fail "dead letter lacks its source offset"

curl -fs "http://127.0.0.1:$PORT_a/metrics" >"$T/metrics.txt"
grep -q '^atlasd_events_rejected_total{reason="not_json"} 1$' "$T/metrics.txt" || fail "metrics"
grep -q "^atlasd_events_applied_total $applied\$" "$T/metrics.txt" || fail "applied metric"
grep -q '^atlasd_batch_commit_seconds_count [1-9]' "$T/metrics.txt" || fail "latency histogram"
[ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$PORT_a/nope")" = 404 ] || fail "404"
[ "$(curl -s -o /dev/null -w '%{http_code}' -X POST "http://127.0.0.1:$PORT_a/status")" = 405 ] ||
    fail "POST /status should be 405"

# graceful stop: exit 0 after the last commit, loop closed cleanly
kill -TERM "$PID_a"
rc=0; wait "$PID_a" || rc=$?
[ "$rc" = 0 ] || fail "SIGTERM exit code $rc"
grep -q 'msg="exit" code=0' "$T/a.log" || fail "no clean exit line"
grep -q 'loop closed with handles left' "$T/a.log" && fail "handles left open at exit"

# restart: resumes from the stored offsets, applies nothing twice
start_daemon a "$T/db"
sleep 6
[ "$(status "$PORT_a" events_applied)" = "$applied" ] || fail "restart re-applied events"
[ "$(digest "$T/db")" = "$(digest "$T/ref")" ] || fail "restart changed the state"
kill -TERM "$PID_a"; wait "$PID_a" || true
echo "daemon: all checks passed"
