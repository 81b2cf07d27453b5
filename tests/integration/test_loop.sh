#!/usr/bin/env bash
# Nothing on the event loop reads or writes LMDB once the daemon serves (issue 10.4, 10.5): a
# transaction there can wait for LMDB's writer lock or the map-resize lock, and some reads are
# unbounded (an item's row and neighbours). The store counts the transactions its no-wait thread
# (the loop) begins, and the map resizes it does, published as
# atlasd_loop_store_transactions_total; this test exercises every HTTP route, ingestion, dead
# letters, refreshes, a forced rebuild (held running) and map growth (a 1 MiB map to start with)
# and checks the count does not move. Structural, not a timing test: a resize unmaps and maps
# the whole store, 168 ms of the loop at full scale (9.5 GB resident) when the loop did it.
. "$(dirname "$0")/lib.sh"

metric_value() { curl -fs "$U/metrics" | awk -v m="$1" '$1 == m { print $2 }'; }
loop_txns() {
    curl -fs "$U/metrics" >"$T/metrics.txt" || fail "/metrics"
    awk '/^atlasd_loop_store_transactions_total/ { n += $2; seen = 1 }
         END { if (!seen) exit 1; print n }' "$T/metrics.txt" ||
        fail "no atlasd_loop_store_transactions_total in /metrics"
}

atlasctl gen --scale tiny --seed 7 --out "$T/rows.jsonl" --beatmaps "$T/bm.jsonl" 2>/dev/null
atlasctl import --db "$T/ref" --json "$T/rows.jsonl" >"$T/ref.json" 2>/dev/null
applied=$(json_num applied <"$T/ref.json")
head -n 30000 "$T/rows.jsonl" >"$T/part1.jsonl"
tail -n +30001 "$T/rows.jsonl" >"$T/part2.jsonl"
for i in 1 2 3; do echo "not json $i"; done >"$T/bad.jsonl"

start_mock 4
# every refresh and rebuild is held 3 s running, so the requests below meet one
ATL_TEST_REFRESH_STALL_MS=3000 start_daemon a "$T/db" --refresh-interval 1 --batch-max-events 2000 \
    --map-size-mb 1
U="http://127.0.0.1:$PORT_a"
for i in $(seq 300); do curl -fs -o /dev/null "$U/healthz" && break; sleep 0.1; done # assigned
curl -fs -o /dev/null "$U/healthz" || fail "no partitions assigned"
wait_status "$PORT_a" state consuming 30

# serving from here on, before any data: the store's growth from nothing (the 1 MiB map doubled
# at least three times for its ~4 MB) falls inside the watched window
before=$(loop_txns)
grown_before=$(metric_value atlasd_map_grown_ahead_total)
produce "$T/bm.jsonl" "$T/part1.jsonl" 2>/dev/null
for i in $(seq 300); do [ -s "$T/db/snapshots/latest" ] && break; sleep 0.2; done
[ -s "$T/db/snapshots/latest" ] || fail "no map published"
snap=$(cat "$T/db/snapshots/latest")
item=$(atlasctl snapshots export --dir "$T/db/snapshots" --id "$snap" --format tsv | sed -n 2p | cut -f1)
[ -n "$item" ] || fail "no item in $snap"
code=$(curl -s -o /dev/null -w '%{http_code}' -X POST "$U/admin/rebuild")
[ "$code" = 202 ] || fail "POST /admin/rebuild: $code"
produce "$T/part2.jsonl" 2>/dev/null
produce --topic "$TOPIC_H" "$T/bad.jsonl" 2>/dev/null
for i in $(seq 100); do [ "$(status "$PORT_a" running)" = true ] && break; sleep 0.1; done
[ "$(status "$PORT_a" running)" = true ] || fail "no rebuild running"
for i in $(seq 20); do
    curl -fs "$U/items/$item?k=5" >/dev/null || fail "GET /items/$item"
    curl -s -o /dev/null "$U/items/1_DT"
    curl -fs "$U/status" >/dev/null || fail "/status"
    curl -fs "$U/metrics" >/dev/null || fail "/metrics"
    curl -fs "$U/healthz" >/dev/null || fail "/healthz"
    curl -fs "$U/snapshots" >/dev/null || fail "/snapshots"
    curl -fs -I "$U/snapshots/latest" >/dev/null || fail "HEAD /snapshots/latest"
    curl -fs -r 0-99 "$U/snapshots/latest" >/dev/null || fail "Range /snapshots/latest"
    curl -fs "$U/snapshots/latest/manifest" >/dev/null || fail "manifest"
    sleep 0.2
done
atlasctl inspect "$item" --url "$U" --k 5 >/dev/null || fail "atlasctl inspect --url"
wait_status "$PORT_a" events_applied "$applied" 60
wait_status "$PORT_a" dead_letters 3 30
for i in $(seq 150); do
    [ "$(status "$PORT_a" rebuild_answered)" = 1 ] && [ "$(status "$PORT_a" running)" = false ] && break
    sleep 0.2
done
[ "$(status "$PORT_a" rebuild_answered)" = 1 ] || fail "the rebuild did not finish"
sleep 2 # the scheduler's and the consumer's periodic ticks, the dead letters' deletion
after=$(loop_txns)
[ "$after" = "$before" ] ||
    fail "$((after - before)) LMDB transactions ran on the event-loop thread: $(grep '^atlasd_loop_store' "$T/metrics.txt" | tr '\n' ' ')"
grep -q '^atlasd_loop_store_transactions_total{kind="resize"}' "$T/metrics.txt" ||
    fail "no kind=\"resize\" in atlasd_loop_store_transactions_total"
grown=$(metric_value atlasd_map_grown_ahead_total)
[ "${grown:-0}" -gt "${grown_before:-0}" ] ||
    fail "the map did not grow ahead while watched ($grown_before, then $grown): the check above saw no resize"
kill -TERM "$PID_a"; wait "$PID_a" || fail "atlasd did not stop cleanly"
[ "$(digest "$T/db")" = "$(digest "$T/ref")" ] || fail "store differs from import"
echo "ok: no LMDB transaction or map resize on the loop thread ($before before and after); the map grew ahead $((grown - grown_before)) times meanwhile"
