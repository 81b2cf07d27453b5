#!/usr/bin/env bash
# Two daemons in one consumer group, each with its own store, split the partitions and so the
# users (disjoint profiles, counts adding up); when one stops, the other takes its partitions
# over from its own offsets and ends with the complete state. Then broker faults: every broker
# down and up again, and injected Fetch errors, lose nothing.
. "$(dirname "$0")/lib.sh"
unset ATL_KAFKA_DIR # the broker goes down below: never the broker other tests share

atlasctl gen --scale tiny --seed 21 --out "$T/rows.jsonl" 2>/dev/null
split -n l/2 -d "$T/rows.jsonl" "$T/half."
atlasctl import --db "$T/ref" --json "$T/rows.jsonl" >"$T/ref.json" 2>/dev/null
applied=$(json_num applied <"$T/ref.json")
users=$(atlasctl stats --db "$T/ref" --json | json_num users)

start_broker 4
start_daemon a "$T/dba"
start_daemon b "$T/dbb"
# the stream goes in once the group has settled with both members: a partition that moves
# from a to b after a applied some of it is in both stores (each member holds what it read)
for i in $(seq 300); do grep -q 'partitions assigned' "$T/b.log" && break; sleep 0.1; done
sleep 1
produce "$T/half.00" 2>/dev/null
produce "$T/half.01" 2>/dev/null
for i in $(seq 300); do
    sa=$(status "$PORT_a" events_applied); sb=$(status "$PORT_b" events_applied)
    [ $((sa + sb)) = "$applied" ] && break
    sleep 0.2
done
[ $((sa + sb)) = "$applied" ] || fail "a + b applied $sa + $sb, expected $applied"
[ "$sa" -gt 0 ] && [ "$sb" -gt 0 ] || fail "one daemon got no partitions ($sa, $sb)"
ua=$(atlasctl stats --db "$T/dba" --json --no-digest | json_num users)
ub=$(atlasctl stats --db "$T/dbb" --json --no-digest | json_num users)
[ $((ua + ub)) = "$users" ] || fail "users overlap: $ua + $ub != $users"

kill -TERM "$PID_b"; wait "$PID_b" || true
wait_status "$PORT_a" events_applied "$applied" 60 # a re-reads b's partitions from offset 0
[ "$(digest "$T/dba")" = "$(digest "$T/ref")" ] || fail "survivor's state is not complete"

# faults: all brokers down, then up; on the mock also Fetch (ApiKey 1) errors NOT_LEADER (6) x5
atlasctl gen --scale tiny --seed 22 --out "$T/more.jsonl" 2>/dev/null
atlasctl import --db "$T/ref" --json "$T/more.jsonl" >/dev/null 2>&1
applied2=$(atlasctl stats --db "$T/ref" --json --no-digest | json_num events_applied)
brokers_down
sleep 5
[ "$(status "$PORT_a" brokers_up)" = 0 ] || echo "note: brokers_up not yet 0" >&2
brokers_up
[ "$ATL_BROKER" = mock ] && mock_cmd error 1 5 6
sleep 3
timeout 120 atlasctl produce --brokers "$BROKERS" --topic-hiscores "$TOPIC_H" "$T/more.jsonl" 2>"$T/produce.log" ||
    fail "produce after the brokers came back: $(tail -n 2 "$T/produce.log")"
wait_status "$PORT_a" events_applied "$applied2" 90
[ "$(digest "$T/dba")" = "$(digest "$T/ref")" ] || fail "state after broker faults differs"
wait_status "$PORT_a" state consuming 20
kill -TERM "$PID_a"; wait "$PID_a" || fail "exit code after faults"
echo "group: all checks passed"
