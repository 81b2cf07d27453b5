#!/usr/bin/env bash
# Exactly-once under crashes: kill -9 atlasd at random moments (12 times) while the stream is
# being produced, restart it each time; the final store equals `import` of the same rows.
. "$(dirname "$0")/lib.sh"

atlasctl gen --scale tiny --seed 11 --out "$T/rows.jsonl" 2>/dev/null
atlasctl import --db "$T/ref" --json "$T/rows.jsonl" >"$T/ref.json" 2>/dev/null
applied=$(json_num applied <"$T/ref.json")
split -n l/8 -d "$T/rows.jsonl" "$T/chunk."

start_broker 4

# Issue 10.18: this test failed once because atlasd exited by itself during the kill/restart
# cycle. The stream passes through states where one item is retained (its first ~2100-3700
# rows); a refresh starting there (the first one after a start, when the daemon lives long
# enough) aborted under UBSan before issue 10.13's fix (refresh.c:159, memcpy from NULL; checked
# with the code before 80df655 on the first 2500, 3000 and 3500 rows: it exited each time, at
# 5000 rows it published). So first: a daemon's refresh on exactly that state.
H=$TOPIC_H B=$TOPIC_B D=$TOPIC_DLQ G=$GROUP
TOPIC_H=$H.early TOPIC_B=$B.early TOPIC_DLQ=$D.early GROUP=$G.early
[ "$ATL_BROKER" = mock ] || create_topics 4 "$TOPIC_H" "$TOPIC_B" "$TOPIC_DLQ"
head -n 3000 "$T/rows.jsonl" >"$T/early.jsonl"
produce "$T/early.jsonl" 2>/dev/null
start_daemon e "$T/db-early" --refresh-interval 1
for i in $(seq 150); do # until a refresh ran on the one-retained-item state
    grep -q 'the store has 1 retained items' "$T/e.log" && break
    kill -0 "$PID_e" 2>/dev/null || break
    sleep 0.2
done
sleep 1
kill -0 "$PID_e" 2>/dev/null || fail "atlasd exited by itself at a refresh of the early stream"
grep -q 'the store has 1 retained items: nothing to lay out' "$T/e.log" ||
    fail "no refresh of the early stream (one retained item) said why it publishes nothing"
kill -TERM "$PID_e"; wait "$PID_e" || fail "atlasd (early stream) did not stop cleanly"
TOPIC_H=$H TOPIC_B=$B TOPIC_DLQ=$D GROUP=$G

start_daemon d "$T/db" --batch-max-events 200 --batch-max-ms 20
RANDOM=4242
chunks=("$T"/chunk.*)
for round in $(seq 12); do
    if [ $((round - 1)) -lt ${#chunks[@]} ]; then
        produce "${chunks[$((round - 1))]}" 2>/dev/null &
        PIDS+=($!)
    fi
    # kill while it consumes: after this start's assignment, at a random moment
    for i in $(seq 100); do
        [ "$(grep -c 'partitions assigned' "$T/d.log")" -ge "$round" ] && break
        sleep 0.1
    done
    sleep "0.$((RANDOM % 5))$((RANDOM % 10))"
    kill -9 "$PID_d" 2>/dev/null || fail "atlasd exited by itself before kill $round"
    wait "$PID_d" 2>/dev/null || true
    start_daemon d "$T/db" --batch-max-events 200 --batch-max-ms 20
done
wait_status "$PORT_d" events_applied "$applied" 120
[ "$(digest "$T/db")" = "$(digest "$T/ref")" ] || fail "state after 12 crashes differs from import"
kill -TERM "$PID_d"; wait "$PID_d" || true
atlasctl rebuild --offline --verify --db "$T/db" >/dev/null || fail "rebuild verify after crashes"
applies=$(grep -c 'partitions assigned' "$T/d.log")
echo "crash: state exact after 12 kill -9 ($applies assignments)"
