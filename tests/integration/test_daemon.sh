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

start_broker 4
produce "$T/rows.jsonl" 2>/dev/null
produce "$T/bad.jsonl" 2>/dev/null
start_daemon a "$T/db" --batch-max-events 1000
# issue 10.6: until the group assigns partitions, /healthz says so (it answered 200 "ok")
h=$(curl -s -w ' %{http_code}' "http://127.0.0.1:$PORT_a/healthz" | tr -d '\n')
if ! grep -q 'partitions assigned' "$T/a.log"; then
    [ "$h" = "rebalancing 503" ] || fail "/healthz before any assignment: '$h'"
fi
wait_status "$PORT_a" events_applied "$applied" 60
[ "$(curl -s "http://127.0.0.1:$PORT_a/healthz")" = ok ] || fail "/healthz once consuming"
[ -s "$T/db/instance-id" ] || fail "no stable group.instance.id kept beside the store"
grep -q "instance=$(cat "$T/db/instance-id") " "$T/a.log" || fail "static membership not used"
wait_status "$PORT_a" events_rejected 3 10
[ "$(digest "$T/db")" = "$(digest "$T/ref")" ] || fail "consumed store differs from import"

# dead letters carry the original bytes and the reason
consume "$TOPIC_DLQ" --count 3 --timeout-ms 15000 >"$T/dlq.jsonl"
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

# snapshots over HTTP: the daemon publishes its first map by itself once items are dirty; a
# forced rebuild through the admin endpoint publishes the next; then list, download, ETag/304,
# Range/206, If-Range, HEAD, CORS, 404 on bad ids and traversal
U="http://127.0.0.1:$PORT_a"
for i in $(seq 150); do [ -s "$T/db/snapshots/latest" ] && break; sleep 0.2; done
[ -s "$T/db/snapshots/latest" ] || fail "the daemon published no map by itself"
id=$(atlasctl rebuild --url "$U" --wait 2>"$T/rebuild.err" | tail -n 1)
[ "$(cat "$T/db/snapshots/latest")" = "$id" ] || fail "rebuild --wait printed '$id': $(cat "$T/rebuild.err")"
sha=$(sha256sum "$T/db/snapshots/$id" | cut -d' ' -f1)
curl -fs "$U/snapshots" | grep "\"id\":\"$id\"" >/dev/null || fail "/snapshots does not list $id"
curl -fs -D "$T/h1" -o "$T/dl" "$U/snapshots/latest" || fail "download latest"
cmp -s "$T/dl" "$T/db/snapshots/$id" || fail "downloaded bytes differ"
grep -qi "^etag: \"$sha\"" "$T/h1" || fail "ETag is not the sha256: $(grep -i etag "$T/h1")"
grep -qi '^access-control-allow-origin: \*' "$T/h1" || fail "no CORS header"
grep -qi '^content-type: application/octet-stream' "$T/h1" || fail "content type"
code=$(curl -s -o /dev/null -w '%{http_code}' -H "If-None-Match: W/\"x\", \"$sha\"" "$U/snapshots/$id")
[ "$code" = 304 ] || fail "If-None-Match gave $code"
code=$(curl -s -o "$T/part" -w '%{http_code}' -H 'Range: bytes=0-3' "$U/snapshots/$id")
[ "$code" = 206 ] && [ "$(stat -c %s "$T/part")" = 4 ] || fail "Range gave $code"
cmp -s "$T/part" <(head -c 4 "$T/dl") || fail "range bytes"
curl -s -o "$T/tail" -H 'Range: bytes=-5' "$U/snapshots/$id"
cmp -s "$T/tail" <(tail -c 5 "$T/dl") || fail "suffix range"
# a range is streamed in 8 KiB chunks: a slice over all of them, from the second byte
curl -s -o "$T/rest" -H 'Range: bytes=1-' "$U/snapshots/$id"
cmp -s "$T/rest" <(tail -c +2 "$T/dl") || fail "open-ended range ($(stat -c %s "$T/rest") bytes)"
echo "daemon: snapshot of $(stat -c %s "$T/dl") bytes"
[ "$(curl -s -o /dev/null -w '%{http_code}' -H 'Range: bytes=999999999-' "$U/snapshots/$id")" = 416 ] ||
    fail "unsatisfiable range should be 416"
code=$(curl -s -o "$T/full" -w '%{http_code}' -H 'Range: bytes=0-3' -H 'If-Range: "stale"' "$U/snapshots/$id")
[ "$code" = 200 ] && cmp -s "$T/full" "$T/dl" || fail "a stale If-Range must get the whole file ($code)"
curl -fsI "$U/snapshots/$id" | grep -i >/dev/null "^content-length: $(stat -c %s "$T/dl")" || fail "HEAD"
# issue 10.11: HEAD sends no body (on a keep-alive connection the next response must be the next
# one read), `bytes=-0` is unsatisfiable, accept-ranges is sent once
python3 - "$PORT_a" "$id" <<'PY' || fail "HEAD sent a body on a keep-alive connection"
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
s.sendall(b"".join(b"HEAD /snapshots/%s HTTP/1.1\r\nHost: x\r\n\r\n" % p.encode()
                   for p in ("latest", sys.argv[2], sys.argv[2] + "/manifest")) +
          b"HEAD /snapshots/%s HTTP/1.1\r\nHost: x\r\nRange: bytes=0-3\r\n\r\n" % sys.argv[2].encode() +
          b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
s.settimeout(10)
data = b""
while True:
    d = s.recv(65536)
    if not d:
        break
    data += d
# each HEAD response is its header block alone: the next bytes start the next response
at = 0
for _ in range(4):
    at = data.index(b"\r\n\r\n", at) + 4
    if not data.startswith(b"HTTP/1.1 ", at):
        sys.exit(1)
sys.exit(0 if data.endswith(b"\r\n\r\nok\n") else 1)
PY
[ "$(curl -s -o /dev/null -w '%{http_code}' -H 'Range: bytes=-0' "$U/snapshots/$id")" = 416 ] ||
    fail "Range: bytes=-0 should be 416"
for h in "" "-H Range:bytes=0-3"; do
    n=$(curl -s -D - -o /dev/null $h "$U/snapshots/$id" | grep -ci '^accept-ranges:')
    [ "$n" = 1 ] || fail "accept-ranges sent $n times ($h)"
done
curl -fs "$U/snapshots/$id/manifest" | grep "$sha" >/dev/null || fail "manifest endpoint"
curl -fs "$U/snapshots/$id/manifest" | tr -d ' \t\n' | grep -q '"kafka_offsets":{"'"$TOPIC_H"'":{"0":' ||
    fail "manifest lacks the Kafka offsets it reflects"
for bad in nope corpus_x ../db/data.mdb %2e%2e/data.mdb corpus_1/../../x; do
    code=$(curl -s -o /dev/null -w '%{http_code}' --path-as-is "$U/snapshots/$bad")
    [ "$code" = 404 ] || fail "/snapshots/$bad gave $code"
done
[ "$(curl -s -o /dev/null -w '%{http_code}' -X OPTIONS "$U/snapshots/latest")" = 204 ] || fail "preflight"
atlasctl snapshots export --url "$U" --format tsv >"$T/via_url.tsv" || fail "export --url"
atlasctl snapshots export --dir "$T/db/snapshots" --id "$id" --format tsv >"$T/via_dir.tsv"
cmp -s "$T/via_url.tsv" "$T/via_dir.tsv" || fail "export over HTTP differs from the directory's"
[ "$(wc -l <"$T/via_url.tsv")" -gt 1 ] || fail "export --url is empty"
# downloads during publishes never see a partial file: each one parses and matches its ETag
( for i in 1 2 3; do
      atlasctl rebuild --url "$U" --wait >/dev/null 2>&1 || exit 1
  done ) &
pub=$!
for i in $(seq 25); do
    curl -fs -D "$T/hc" -o "$T/c$i" "$U/snapshots/latest" || fail "download $i during publishing"
    atlasctl snapshots verify "$T/c$i" >/dev/null || fail "download $i is not a whole corpus"
    etag=$(sed -n 's/^[Ee][Tt][Aa][Gg]: "\([0-9a-f]*\)".*/\1/p' "$T/hc")
    [ "$(sha256sum "$T/c$i" | cut -d' ' -f1)" = "$etag" ] || fail "download $i does not match its ETag"
done
wait "$pub" || fail "publishing beside downloads failed"
[ "$(ls "$T/db/snapshots" | grep -c '^corpus_[0-9_]*$')" -ge 2 ] || fail "publishes missing"
atlasctl status --url "$U" >"$T/st.txt" || fail "status --url"
grep -q "^events applied *$applied\$" "$T/st.txt" || fail "status --url: $(cat "$T/st.txt")"
expect_http_fail() { if atlasctl snapshots export --url "$1" --id "$2" >/dev/null 2>"$T/err"; then fail "export $2 succeeded"; fi; }
expect_http_fail "$U" corpus_1
grep -q "HTTP 404" "$T/err" || fail "export of a missing id: $(cat "$T/err")"

# graceful stop: exit 0 after the last commit, loop closed cleanly
kill -TERM "$PID_a"
rc=0; wait "$PID_a" || rc=$?
[ "$rc" = 0 ] || fail "SIGTERM exit code $rc"
grep -q 'msg="exit" code=0' "$T/a.log" || fail "no clean exit line"
grep -q 'loop closed with handles left' "$T/a.log" && fail "handles left open at exit"

# restart: resumes from the stored offsets, applies nothing twice. Before it, the state a kill
# during the first publish leaves (issue 10.19): complete snapshots, no `latest`, a .tmp-latest
newest=$(cat "$T/db/snapshots/latest")
rm "$T/db/snapshots/latest"
printf 'corpus_' >"$T/db/snapshots/.tmp-latest"
# and the store's pages out of the page cache (a reboot): the daemon reads the file ahead at
# start (the warm-up, store_prefetch) and logs what it read
dd if="$T/db/data.mdb" iflag=nocache count=0 2>/dev/null
: >"$T/a.log"
start_daemon a "$T/db"
for _ in $(seq 100); do grep -q 'msg="store read ahead"' "$T/a.log" && break; sleep 0.1; done
warm=$(grep 'msg="store read ahead"' "$T/a.log") || fail "no warm-up at start: $(grep refresh "$T/a.log")"
echo "$warm" | awk '{ for (i = 1; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2] } }
    END { exit !(v["file_mb"] > 0 && (v["missing_mb"] == 0 || v["read_mb"] > 0)) }' ||
    fail "warm-up: $warm"
[ "$(cat "$T/db/snapshots/latest" 2>/dev/null)" = "$newest" ] || fail "latest not repaired at start"
[ -z "$(ls -A "$T/db/snapshots" | grep '^\.tmp-')" ] || fail ".tmp files left at start"
curl -fs -o /dev/null "$U/snapshots/latest" 2>/dev/null ||
    curl -fs -o /dev/null "http://127.0.0.1:$PORT_a/snapshots/latest" || fail "latest is not served"
sleep 6
[ "$(status "$PORT_a" events_applied)" = "$applied" ] || fail "restart re-applied events"
[ "$(digest "$T/db")" = "$(digest "$T/ref")" ] || fail "restart changed the state"
kill -TERM "$PID_a"; wait "$PID_a" || true

# a forced rebuild asked for during the warm-up (held 4 s by a test aid) waits for it, is not
# lost, and runs once it ends; /status says what it waits for (kind "warm-up": before session
# 20 it was "", and `atlasctl rebuild` said "queued behind a ")
: >"$T/a.log"
ATL_TEST_WARMUP_STALL_MS=4000 start_daemon a "$T/db"
[ "$(status "$PORT_a" kind)" = warm-up ] && [ "$(status "$PORT_a" stage)" = prefetch ] ||
    fail "/status during the warm-up: $(curl -fs "http://127.0.0.1:$PORT_a/status" | grep -A4 '"refresh"')"
before=$(cat "$T/db/snapshots/latest")
id=$(atlasctl rebuild --url "http://127.0.0.1:$PORT_a" --wait --timeout 120 2>"$T/rebuild.err" | tail -n 1)
[ "$id" != "$before" ] && [ "$(cat "$T/db/snapshots/latest")" = "$id" ] ||
    fail "rebuild asked for during the warm-up: '$id' (latest $(cat "$T/db/snapshots/latest")): $(cat "$T/rebuild.err")"
awk '/msg="store read ahead"/ { w = NR } /msg="rebuild started"/ && !r { r = NR } END { exit !(w && r > w) }' \
    "$T/a.log" || fail "the rebuild did not wait for the warm-up: $(grep 'refresh' "$T/a.log")"
kill -TERM "$PID_a"; wait "$PID_a" || true
# a stop during the warm-up cancels it: exit 0 at once, not after the warm-up
: >"$T/a.log"
ATL_TEST_WARMUP_STALL_MS=60000 start_daemon a "$T/db"
t0=$(date +%s%N)
kill -TERM "$PID_a"
rc=0; wait "$PID_a" || rc=$?
ms=$((($(date +%s%N) - t0) / 1000000))
[ "$rc" = 0 ] && [ "$ms" -lt 10000 ] || fail "stop during the warm-up: exit $rc after $ms ms"
grep -q "msg=\"cancelling the store's warm-up\"" "$T/a.log" &&
    grep -q 'msg="reading the store ahead cancelled"' "$T/a.log" ||
    fail "stop during the warm-up: $(grep 'refresh\|exit' "$T/a.log")"

# issue 10.13: a store whose only retained item has no co-occurrence (5 rows, users 1-5,
# beatmap 77, pp 600): the daemon says why it has no map and does not retry every second
for u in 1 2 3 4 5; do
    echo "{\"user\":$u,\"beatmap_id\":77,\"pp\":600,\"mods\":0,\"mode\":0,\"update_time\":\"2024-01-01 00:00:00\"}"
done >"$T/tiny.jsonl"
atlasctl import --db "$T/tiny" --json "$T/tiny.jsonl" >/dev/null 2>&1
start_daemon t "$T/tiny" --refresh-interval 1 --group tiny --topic-hiscores tiny.h --topic-beatmaps tiny.b
sleep 5
kill -0 "$PID_t" 2>/dev/null || fail "atlasd exited on a tiny store"
curl -fs "http://127.0.0.1:$PORT_t/status" | grep '"waiting":.*1 retained items' >/dev/null ||
    fail "/status does not say why there is no map: $(curl -fs "http://127.0.0.1:$PORT_t/status")"
n=$(grep -c 'msg="refresh started"' "$T/t.log" || true)
[ "$n" -le 1 ] || fail "a tiny store started $n refreshes in 5 s (a retry loop)"
kill -TERM "$PID_t"; wait "$PID_t" || fail "atlasd did not stop cleanly on a tiny store"

# issue 10.7: the shutdown deadline is hard: a refresh stuck past it (one that ignores its cancel
# flag) does not keep the process alive
ATL_TEST_REFRESH_HANG_MS=120000 start_daemon t "$T/tiny" --refresh-interval 1 --group tiny \
    --topic-hiscores tiny.h --topic-beatmaps tiny.b --shutdown-timeout-ms 1000
for i in $(seq 50); do grep -c 'msg="refresh started"' "$T/t.log" | grep -q 2 && break; sleep 0.1; done
t0=$(date +%s%N)
kill -TERM "$PID_t"
rc=0; wait "$PID_t" || rc=$?
ms=$((($(date +%s%N) - t0) / 1000000))
[ "$rc" = 1 ] && [ "$ms" -lt 4000 ] || fail "stuck refresh: exit $rc after $ms ms (deadline 1000 ms)"
grep -q 'graceful shutdown timed out; exiting now' "$T/t.log" || fail "no deadline message"
echo "daemon: all checks passed"
