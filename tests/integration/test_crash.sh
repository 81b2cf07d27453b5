#!/usr/bin/env bash
# Exactly-once under crashes: kill -9 atlasd at random moments (12 times) while the stream is
# being produced, restart it each time; the final store equals `import` of the same rows.
. "$(dirname "$0")/lib.sh"

atlasctl gen --scale tiny --seed 11 --out "$T/rows.jsonl" 2>/dev/null
atlasctl import --db "$T/ref" --json "$T/rows.jsonl" >"$T/ref.json" 2>/dev/null
applied=$(json_num applied <"$T/ref.json")
split -n l/8 -d "$T/rows.jsonl" "$T/chunk."

start_broker 4
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
