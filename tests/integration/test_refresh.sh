#!/usr/bin/env bash
# Continuous refresh and the forced rebuild on a running atlasd (issue 6):
#  - the daemon publishes a map by itself; a tiny stream produced afterwards changes exactly the
#    expected items' rows in the next snapshot, and items whose kNN rows did not change stay
#    within the stability bound;
#  - ingestion continues (events applied, offsets advance) while a long refresh runs;
#  - `atlasctl rebuild --url --wait` publishes a new snapshot with a clean S verification; an S
#    entry changed on purpose is found and repaired (the store's digest is the import's again);
#  - admin calls without the right credentials are refused (401/403), GET is 405.
. "$(dirname "$0")/lib.sh"

snap_field() { tr -d ' \t\n' <"$1" | sed -n "s/.*\"$2\":\\([0-9.]*\\).*/\\1/p" | head -n 1; }
latest() { cat "$T/db/snapshots/latest" 2>/dev/null || true; }
wait_new_snapshot() { # old-id seconds -> prints the new id
    local i
    for i in $(seq $(($2 * 5))); do
        local id; id=$(latest)
        if [ -n "$id" ] && [ "$id" != "$1" ]; then echo "$id"; return 0; fi
        sleep 0.2
    done
    fail "no snapshot after $1 within $2 s"
}

atlasctl gen --scale tiny --seed 5 --out "$T/rows.jsonl" --beatmaps "$T/bm.jsonl" 2>/dev/null
atlasctl import --db "$T/ref" --json "$T/rows.jsonl" >"$T/ref.json" 2>/dev/null
applied=$(json_num applied <"$T/ref.json")
head -n 30000 "$T/rows.jsonl" >"$T/part1.jsonl"
tail -n +30001 "$T/rows.jsonl" >"$T/part2.jsonl"

start_mock 4
atlasctl produce --brokers "$BROKERS" "$T/bm.jsonl" "$T/part1.jsonl" 2>/dev/null
# (a 4 MiB map: it grows several times while refreshes read, which must wait for no reader)
start_daemon a "$T/db" --refresh-interval 1 --batch-max-events 2000 --map-size-mb 4
U="http://127.0.0.1:$PORT_a"

# 1. the first map, by itself, once part 1 is in and nothing is dirty any more
# (the fields come from ONE /status answer: read one by one, a batch committed in between made
# "nothing dirty, everything published" and the lag disagree)
first="" st=""
field() { printf '%s\n' "$st" | tr -d '\t' | sed -n "s/^\"$1\":\"\{0,1\}\([^\",]*\).*/\1/p" | head -n 1; }
for i in $(seq 300); do
    first=$(latest)
    st=$(curl -fs "$U/status" || true)
    if [ -n "$first" ] && [ "$(field items_dirty)" = 0 ] &&
        [ "$(field batch_seq_published)" = "$(field batch_seq_ingested)" ]; then
        break
    fi
    sleep 0.2
done
[ -n "$first" ] || fail "no map published by the daemon"
first=$(latest)
[ "$(field refresh_lag_seconds)" = 0 ] || fail "lag should be 0 with nothing dirty: $st"

# 2. ingestion continues while a long refresh runs: stop, restart with every refresh held 6 s
kill -TERM "$PID_a"; wait "$PID_a" || fail "atlasd did not stop cleanly"
ATL_TEST_REFRESH_STALL_MS=6000 start_daemon a "$T/db" --refresh-interval 1 --batch-max-events 2000
U="http://127.0.0.1:$PORT_a"
# Start from a quiet daemon: partitions assigned, all of part 1 applied, no refresh running.
# (Section 1 may stop the daemon between two of part 1's batches. The restarted daemon then began
# a refresh of those dirty marks at once, 6 s before its assignment, and that refresh published
# while part 2 was being applied: "ingestion waited for the refresh (events 13686 -> 43615)".)
part1_applied=$(atlasctl import --db "$T/p1_ref" --json "$T/part1.jsonl" 2>/dev/null | json_num applied)
wait_status "$PORT_a" state consuming 30
wait_status "$PORT_a" events_applied "$part1_applied" 30
for i in $(seq 150); do
    [ "$(status "$PORT_a" running)" = false ] && [ "$(status "$PORT_a" items_dirty)" = 0 ] && break
    sleep 0.2
done
[ "$(status "$PORT_a" running)" = false ] || fail "a refresh still runs 30 s after the restart"
before=$(status "$PORT_a" events_applied)
atlasctl produce --brokers "$BROKERS" "$T/part2.jsonl" 2>/dev/null
for i in $(seq 100); do [ "$(status "$PORT_a" running)" = true ] && break; sleep 0.1; done
[ "$(status "$PORT_a" running)" = true ] || fail "no refresh started after new events"
refreshes=$(status "$PORT_a" refreshes)
wait_status "$PORT_a" events_applied "$applied" 30
[ "$(status "$PORT_a" running)" = true ] && [ "$(status "$PORT_a" refreshes)" = "$refreshes" ] ||
    fail "ingestion waited for the refresh (events $before -> $applied)"
second=$(wait_new_snapshot "$first" 60)
kill -TERM "$PID_a"; wait "$PID_a" || fail "atlasd did not stop cleanly (stalled refresh)"
grep -q 'refresh cancelled\|refresh published' "$T/a.log" || fail "no refresh outcome logged"
[ "$(digest "$T/db")" = "$(digest "$T/ref")" ] || fail "store differs from import after part 2"

# 2b. kill -9 during a refresh: the restart resumes from the last published state
ATL_TEST_REFRESH_STALL_MS=30000 start_daemon a "$T/db" --refresh-interval 1 --batch-max-events 2000
head -n 5 "$T/part2.jsonl" | sed 's/"update_time":"[^"]*"/"update_time":"2026-10-01 00:00:00"/' >"$T/late.jsonl"
atlasctl produce --brokers "$BROKERS" "$T/late.jsonl" 2>/dev/null
for i in $(seq 150); do [ "$(status "$PORT_a" running)" = true ] && break; sleep 0.1; done
[ "$(status "$PORT_a" running)" = true ] || fail "no refresh to interrupt"
before_kill=$(latest)
kill -9 "$PID_a"; wait "$PID_a" 2>/dev/null || true
[ "$(latest)" = "$before_kill" ] || fail "a killed refresh changed latest"
atlasctl snapshots verify --dir "$T/db/snapshots" >/dev/null || fail "snapshots damaged by kill -9"
start_daemon a "$T/db" --refresh-interval 1 --batch-max-events 2000
resumed=$(wait_new_snapshot "$before_kill" 60)
# The late events count exactly once, whether the kill -9 came before or after their batches.
# Wait for them here: the refresh killed above may be one of leftover dirty marks, started before
# the group assigned any partition, and this daemon may publish and stop before its assignment
# (5-8 s after a restart); section 3 then read events_applied before the late events and failed
# "events_applied = '43623', expected 43618" under load (the store was exact: 43615 + 5 + 3).
late_applied=$(atlasctl import --db "$T/late_ref" --json "$T/late.jsonl" 2>/dev/null | json_num applied)
[ "$late_applied" -gt 0 ] || fail "late.jsonl applies no event"
wait_status "$PORT_a" events_applied $((applied + late_applied)) 60
for i in $(seq 100); do [ "$(status "$PORT_a" items_dirty)" = 0 ] && break; sleep 0.2; done
[ "$(status "$PORT_a" items_dirty)" = 0 ] || fail "dirty marks left after the resumed refresh"
atlasctl snapshots verify --dir "$T/db/snapshots" >/dev/null || fail "resumed snapshot"
atlasctl status --url "http://127.0.0.1:$PORT_a" >"$T/st.txt"
grep -q "^latest snapshot *corpus_" "$T/st.txt" || fail "status --url: $(cat "$T/st.txt")"
kill -TERM "$PID_a"; wait "$PID_a" || fail "atlasd did not stop cleanly after the resume"

# 3. a tiny stream after a snapshot changes exactly the expected items
start_daemon a "$T/db" --refresh-interval 1 --batch-max-events 2000
U="http://127.0.0.1:$PORT_a"
# (a rebuild first, so the refresh of the tiny stream is the daemon's second: incremental)
s1=$(atlasctl rebuild --url "$U" --wait 2>/dev/null | tail -n 1)
[ "$(status "$PORT_a" items_dirty)" = 0 ] || fail "dirty items left after the rebuild"
[ "$s1" = "$(latest)" ] || fail "rebuild printed '$s1'"
atlasctl snapshots export --dir "$T/db/snapshots" --id "$s1" --format tsv >"$T/s1.tsv"
# three nomod plays of retained items get a new pp, dated after everything else
cut -f1 "$T/s1.tsv" | grep '_$' | sed 's/_$//' >"$T/retained_nomod.txt"
awk -F'[:,]' 'NR == FNR { keep[$1] = 1; next }
    /"mods":0,/ { for (i = 1; i < NF; i++) { if ($i == "{\"user\"") u = $(i + 1); if ($i == "\"beatmap_id\"") b = $(i + 1) }
        if ((b in keep) && !(b in used) && !(u in users)) { used[b] = 1; users[u] = 1; n++
            printf "{\"user\":%s,\"beatmap_id\":%s,\"pp\":612.5,\"mods\":0,\"mode\":0,\"update_time\":\"2026-11-01 00:00:00\"}\n", u, b }
        if (n == 3) exit }' "$T/retained_nomod.txt" "$T/rows.jsonl" >"$T/tiny.jsonl"
[ "$(wc -l <"$T/tiny.jsonl")" = 3 ] || fail "could not build the tiny stream"
sed 's/.*"beatmap_id":\([0-9]*\).*/\1_/' "$T/tiny.jsonl" | sort >"$T/expected.txt"
applied3=$(status "$PORT_a" events_applied)
atlasctl produce --brokers "$BROKERS" "$T/tiny.jsonl" 2>/dev/null
# The three events land on different partitions and may be committed in different batches (200
# ms apart); a refresh due in between publishes a map of one or two of them (this test failed
# that way: "changed rows 56961_ 59041_ != expected 56961_ 58993_ 59041_"). Compare with the
# first snapshot that reflects the batch holding the last of them.
wait_status "$PORT_a" events_applied $((applied3 + 3)) 30
sleep 1.5 # batch_seq_ingested is the scheduler's view, updated every second
seq3=$(status "$PORT_a" batch_seq_ingested)
for i in $(seq 300); do
    [ "$(status "$PORT_a" batch_seq_published)" -ge "$seq3" ] 2>/dev/null && break
    sleep 0.2
done
s2=$(latest)
[ -n "$s2" ] && [ "$s2" != "$s1" ] || fail "no snapshot reflects the tiny stream (batch $seq3)"
atlasctl snapshots export --dir "$T/db/snapshots" --id "$s2" --format tsv >"$T/s2.tsv"
# rows whose data (everything but x, y) changed
paste <(cut -f1,4- "$T/s1.tsv") <(cut -f1,4- "$T/s2.tsv") | awk -F'\t' '{ h = NF / 2; d = 0
    for (i = 1; i <= h; i++) if ($i != $(i + h)) d = 1
    if (d) print $1 }' | sort >"$T/changed.txt"
cmp -s "$T/changed.txt" "$T/expected.txt" ||
    fail "manifest $(tr -d ' \t\n' <"$T/db/snapshots/$s2.json" | grep -o '"batch_seq":[0-9]*'): changed rows $(tr '\n' ' ' <"$T/changed.txt") != expected $(tr '\n' ' ' <"$T/expected.txt")"
tr -d ' \t\n' <"$T/db/snapshots/$s2.json" | grep -q '"incremental":true' ||
    fail "the refresh was not incremental"
p95=$(tr -d ' \t\n' <"$T/db/snapshots/$s2.json" | sed -n 's/.*"stability":{[^}]*"p95":\([0-9.]*\).*/\1/p')
# bound measured at this scale (211 points: p95 6.2-6.6%; 0.7% at the full 68k-item scale)
awk -v p="$p95" 'BEGIN { exit !(p >= 0 && p < 0.10) }' ||
    fail "items with unchanged kNN rows moved p95 $p95 of the width (bound 0.10)"
lag=$(snap_field "$T/db/snapshots/$s2.json" refresh_lag_seconds)
awk -v l="$lag" 'BEGIN { exit !(l >= 0 && l < 30) }' || fail "manifest refresh lag '$lag'"
tr -d ' \t\n' <"$T/db/snapshots/$s2.json" | grep -q '"newest_event_time":"2026-11-01T00:00:00Z"' ||
    fail "manifest does not reflect the newest event time"
curl -fs "$U/status" | tr -d ' \t\n' | grep -q '"newest_event_time":"2026-11-01T00:00:00Z"' ||
    fail "/status freshness lacks the newest event time"

# inspect answers the same through the daemon as from the store beside it
item=$(sed -n 2p "$T/s2.tsv" | cut -f1)
atlasctl inspect "$item" --url "$U" --k 5 >"$T/i_url.txt" || fail "inspect --url"
atlasctl inspect "$item" --db "$T/db" --k 5 >"$T/i_db.txt" || fail "inspect --db"
cmp -s "$T/i_url.txt" "$T/i_db.txt" || fail "inspect differs: $(diff "$T/i_url.txt" "$T/i_db.txt")"
grep -q "^snapshot             $s2\$" "$T/i_url.txt" || fail "inspect: $(cat "$T/i_url.txt")"
[ "$(curl -s -o /dev/null -w '%{http_code}' "$U/items/not-an-id")" = 400 ] || fail "/items bad id"
[ "$(curl -s -o /dev/null -w '%{http_code}' "$U/items/1_DT")" = 404 ] || fail "/items unknown"

# 4. forced rebuild: a clean verification, then a corrupted S entry found and repaired
atlasctl rebuild --url "$U" --wait >"$T/rb1.out" 2>"$T/rb1.err" || fail "rebuild: $(cat "$T/rb1.err")"
rb1=$(tail -n 1 "$T/rb1.out")
[ "$rb1" = "$(latest)" ] || fail "rebuild printed '$rb1', latest is $(latest)"
grep -q "0 differences in S, 0 in item stats" "$T/rb1.out" || fail "rebuild verify: $(cat "$T/rb1.out")"
a=$(sed -n 2p "$T/s2.tsv" | cut -f1); b=$(sed -n 3p "$T/s2.tsv" | cut -f1)
atlasctl debug-poke --db "$T/db" "$a" "$b" 0.5 || fail "debug-poke"
[ "$(digest "$T/db")" != "$(digest "$T/ref")" ] || fail "the poke changed nothing"
atlasctl rebuild --url "$U" --wait --cold >"$T/rb2.out" 2>"$T/rb2.err" || fail "rebuild 2: $(cat "$T/rb2.err")"
grep -q "1 differences in S, 0 in item stats (repaired)" "$T/rb2.out" ||
    fail "corruption not reported: $(cat "$T/rb2.out")"
rb2=$(tail -n 1 "$T/rb2.out")
[ "$rb2" != "$rb1" ] && [ "$rb2" = "$(latest)" ] || fail "rebuild 2 published '$rb2'"
tr -d ' \t\n' <"$T/db/snapshots/$rb2.json" | grep -q '"s_diffs":1' || fail "manifest lacks the repair"
tr -d ' \t\n' <"$T/db/snapshots/$rb2.json" | grep -q '"cold":true' || fail "--cold not applied"
atlasctl import --db "$T/ref" --json "$T/late.jsonl" "$T/tiny.jsonl" >/dev/null 2>&1
[ "$(digest "$T/db")" = "$(digest "$T/ref")" ] || fail "repaired store differs from import"

# 5. admin calls are refused without the right credentials
code() { curl -s -o /dev/null -w '%{http_code}' "$@"; }
[ "$(code "$U/admin/rebuild")" = 405 ] || fail "GET /admin/rebuild should be 405"
[ "$(code -X POST -H 'Authorization: Bearer wrong' "$U/admin/rebuild")" = 401 ] ||
    fail "a wrong token from loopback should be 401"
kill -TERM "$PID_a"; wait "$PID_a" || fail "atlasd did not stop cleanly"
ip=$(hostname -I 2>/dev/null | tr ' ' '\n' | grep -v '^127\.' | grep '\.' | head -n 1 || true)
start_daemon b "$T/db" --http 0.0.0.0:0 --admin-token s3cret --refresh-interval 0
grep -q 'admin-token="<set>"' "$T/b.log" || fail "the admin token was logged"
[ "$(code -X POST -H 'Authorization: Bearer s3cret' "http://127.0.0.1:$PORT_b/admin/rebuild")" = 202 ] ||
    fail "the right token was refused"
if [ -n "$ip" ]; then
    R="http://$ip:$PORT_b"
    [ "$(code -X POST "$R/admin/rebuild")" = 401 ] || fail "no token from $ip should be 401"
    [ "$(code -X POST -H 'Authorization: Bearer s3cre' "$R/admin/rebuild")" = 401 ] ||
        fail "a wrong token from $ip should be 401"
    [ "$(code -X POST -H 'Authorization: Bearer s3cret' "$R/admin/rebuild")" = 202 ] ||
        fail "the right token from $ip was refused"
    if atlasctl rebuild --url "$R" >/dev/null 2>"$T/err"; then fail "atlasctl rebuild without token"; fi
    grep -q "HTTP 401" "$T/err" || fail "refusal not reported: $(cat "$T/err")"
    kill -TERM "$PID_b"; wait "$PID_b" || true
    start_daemon c "$T/db" --http 0.0.0.0:0 --refresh-interval 0
    [ "$(code -X POST "http://$ip:$PORT_c/admin/rebuild")" = 403 ] ||
        fail "without an admin-token, other hosts should get 403"
    kill -TERM "$PID_c"; wait "$PID_c" || true
else
    echo "refresh: no non-loopback address; remote admin checks skipped" >&2
    kill -TERM "$PID_b"; wait "$PID_b" || true
fi
echo "refresh: all checks passed"
