#!/usr/bin/env bash
# Serving snapshots over HTTP against the real atlasd (mock broker; the snapshot files are
# written here, as store_snapshot_publish lays them out):
#  - a client that sends GET and stops reading is closed once http-write-timeout-ms passes
#    without progress (before, h2o had no write timeout: the socket and the open snapshot were
#    held forever);
#  - SIGTERM with such a client connected exits 0 within shutdown-timeout-ms (before, the drain
#    gave up after 2 s, leaked h2o's context, the loop never ended and the watchdog exited 1);
#  - a manifest over 8 KiB (hundreds of Kafka partitions) still serves its snapshot (before, it
#    was read into 8 KiB, did not parse, and the snapshot was 404 and left out of the list);
#  - Cache-Control: `no-cache` on latest and latest/manifest, `public, max-age=31536000,
#    immutable` on ids and their manifests, the same on 200, 206, 304 and HEAD; Last-Modified on
#    HEAD as on GET.
. "$(dirname "$0")/lib.sh"
command -v python3 >/dev/null || { echo "python3 not installed: skipped"; exit 77; }
BIG=20000000 # bytes of the latest snapshot: more than loopback's socket buffers hold

# make_snapshot DIR ID BYTES [FIELDS]: a snapshot file of random bytes and its manifest (FIELDS:
# extra JSON members, each followed by a comma), then `latest` names it
make_snapshot() {
    local dir=$1 id=$2 bytes=$3 fields=${4:-} sha
    mkdir -p "$dir"
    head -c "$bytes" /dev/urandom >"$dir/$id"
    sha=$(sha256sum "$dir/$id" | cut -d' ' -f1)
    printf '{%s"id":"%s","created":%s,"items":0,"sha256":"%s","bytes":%s}\n' "$fields" "$id" \
        "${id#corpus_}" "$sha" "$bytes" >"$dir/$id.json"
    printf '%s' "$id" >"$dir/latest"
}

# stalled_client PORT PATH HOLD_S OUT: GET PATH with a 4 KiB receive buffer, read nothing for
# HOLD_S seconds, then read until the end; OUT gets "BYTES eof|reset|timeout"
stalled_client() {
    python3 - "$@" <<'PY' &
import socket, sys, time
port, path, hold, out = int(sys.argv[1]), sys.argv[2], float(sys.argv[3]), sys.argv[4]
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
s.connect(("127.0.0.1", port))
s.sendall(b"GET %s HTTP/1.1\r\nHost: x\r\n\r\n" % path.encode())
time.sleep(hold)
s.settimeout(5)
n, end = 0, "eof"
try:
    while True:
        b = s.recv(1 << 20)
        if not b:
            break
        n += len(b)
except ConnectionResetError:
    end = "reset"
except socket.timeout:
    end = "timeout"
open(out, "w").write("%d %s\n" % (n, end))
PY
    PIDS+=($!)
}

# slow_client PORT PATH SECONDS OUT: GET PATH and read 32 KiB every 0.1 s for SECONDS; OUT
# gets "BYTES open|reset|eof" (open: the connection was still there at the end)
slow_client() {
    python3 - "$@" <<'PY' &
import socket, sys, time
port, path, secs, out = int(sys.argv[1]), sys.argv[2], float(sys.argv[3]), sys.argv[4]
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
s.connect(("127.0.0.1", port))
s.sendall(b"GET %s HTTP/1.1\r\nHost: x\r\n\r\n" % path.encode())
n, end, t_end = 0, "open", time.time() + secs
try:
    while time.time() < t_end:
        b = s.recv(32768)
        if not b:
            end = "eof"
            break
        n += len(b)
        time.sleep(0.1)
except ConnectionResetError:
    end = "reset"
open(out, "w").write("%d %s\n" % (n, end))
PY
    PIDS+=($!)
}

# header FILE NAME: the value of header NAME (any case) in a curl -D dump, CR removed
header() { sed -n "s/^$2: //Ip" "$1" | tr -d '\r'; }
ms() { echo $(($(date +%s%N) / 1000000)); }

S=$T/db/snapshots
old=corpus_1700000000 new=corpus_1700000100
make_snapshot "$S" "$old" 1000
# a manifest as a store with 2 topics x 400 partitions writes it: ~13 KB
offs=$(seq 0 399 | sed 's/.*/"&":123456789/' | paste -sd, -)
make_snapshot "$S" "$new" "$BIG" "\"kafka_offsets\":{\"$TOPIC_H\":{$offs},\"$TOPIC_B\":{$offs}},"
[ "$(stat -c %s "$S/$new.json")" -gt 9000 ] || fail "test manifest too small"
start_broker 1
start_daemon a "$T/db" --refresh-interval 0 --http-write-timeout-ms 1000
U="http://127.0.0.1:$PORT_a"

# ---- a manifest over 8 KiB ----------------------------------------------------------------
curl -fs -o "$T/dl" "$U/snapshots/latest" || fail "GET /snapshots/latest with a 13 KB manifest"
cmp -s "$T/dl" "$S/$new" || fail "latest bytes differ"
curl -fs -o "$T/m" "$U/snapshots/latest/manifest" || fail "GET /snapshots/latest/manifest"
cmp -s "$T/m" "$S/$new.json" || fail "manifest bytes differ"
curl -fs -o /dev/null "$U/snapshots/$new" || fail "GET /snapshots/$new"
curl -fs "$U/snapshots" >"$T/list" || fail "GET /snapshots"
grep -q "\"id\":\"$new\"" "$T/list" || fail "/snapshots leaves out $new: $(head -c 300 "$T/list")"
grep -q "\"id\":\"$old\"" "$T/list" || fail "/snapshots leaves out $old"

# ---- cache headers --------------------------------------------------------------------------
# check_cache WANT CURL-ARGS...: one Cache-Control header, WANT, in the answer
check_cache() {
    local want=$1 code
    shift
    code=$(curl -s -o /dev/null -D "$T/h" -w '%{http_code}' "$@")
    [ "$(grep -ci '^cache-control:' "$T/h")" = 1 ] ||
        fail "$* ($code): $(grep -ci '^cache-control:' "$T/h") Cache-Control headers: $(cat "$T/h")"
    [ "$(header "$T/h" cache-control)" = "$want" ] ||
        fail "$* ($code): Cache-Control '$(header "$T/h" cache-control)', want '$want'"
    echo "$code"
}
etag_new="\"$(sha256sum "$S/$new" | cut -d' ' -f1)\""
etag_old="\"$(sha256sum "$S/$old" | cut -d' ' -f1)\""
for p in latest "$new" "$old"; do
    want="public, max-age=31536000, immutable" etag=$etag_old
    [ "$p" = latest ] && want="no-cache"
    [ "$p" = "$old" ] || etag=$etag_new
    [ "$(check_cache "$want" "$U/snapshots/$p")" = 200 ] || fail "GET $p"
    lm=$(header "$T/h" last-modified)
    [ -n "$lm" ] || fail "GET $p: no Last-Modified"
    [ "$(check_cache "$want" -I "$U/snapshots/$p")" = 200 ] || fail "HEAD $p"
    [ "$(header "$T/h" last-modified)" = "$lm" ] || fail "HEAD $p: Last-Modified '$(header "$T/h" last-modified)', GET '$lm'"
    [ "$(header "$T/h" etag)" = "$etag" ] || fail "HEAD $p: ETag"
    [ "$(check_cache "$want" -H 'Range: bytes=0-3' "$U/snapshots/$p")" = 206 ] || fail "Range $p"
    [ "$(check_cache "$want" -I -H 'Range: bytes=0-3' "$U/snapshots/$p")" = 206 ] || fail "HEAD Range $p"
    [ "$(check_cache "$want" -H "If-None-Match: $etag" "$U/snapshots/$p")" = 304 ] || fail "304 $p"
    [ "$(header "$T/h" etag)" = "$etag" ] || fail "304 $p: no ETag"
    [ "$(check_cache "$want" "$U/snapshots/$p/manifest")" = 200 ] || fail "GET $p/manifest"
    lm=$(header "$T/h" last-modified)
    [ "$(check_cache "$want" -I "$U/snapshots/$p/manifest")" = 200 ] || fail "HEAD $p/manifest"
    [ "$(header "$T/h" last-modified)" = "$lm" ] || fail "HEAD $p/manifest: Last-Modified"
done
[ "$(check_cache "no-cache" "$U/snapshots/latest/")" = 200 ] || fail "GET latest/"
[ "$(check_cache "no-store" "$U/snapshots/corpus_1")" = 404 ] || fail "GET an unknown id"

# ---- a client that stops reading ------------------------------------------------------------
t0=$(ms)
stalled_client "$PORT_a" /snapshots/latest 6 "$T/stalled.out"
closed=""
for i in $(seq 60); do
    if has_metric "$PORT_a" '^atlasd_http_write_timeouts_total 1$'; then
        closed=$(($(ms) - t0))
        break
    fi
    sleep 0.1
done
[ -n "$closed" ] || fail "no write timeout counted after 6 s: $(curl -fs "$U/metrics" | grep http_)"
# a 1000 ms timeout, checked every 250 ms: closed within 2.5 s even on a loaded machine
[ "$closed" -lt 2500 ] || fail "stalled connection closed after $closed ms (timeout 1000 ms)"
for i in $(seq 150); do [ -s "$T/stalled.out" ] && break; sleep 0.1; done
read -r got end <"$T/stalled.out" || fail "stalled client did not finish"
[ "$end" != timeout ] && [ "$got" -lt "$BIG" ] ||
    fail "stalled client: connection not closed by the server: $got bytes, then $end"
grep -q 'msg="write timeout: connection closed"' "$T/a.log" || fail "write timeout not logged"
echo "http-serve: stalled client closed after $closed ms ($got bytes read, then $end)"
# a client that reads slowly but steadily (32 KiB reads every 0.1 s through a 4 KiB receive
# buffer: tens of KB/s) makes progress: never cut, though the kernel holds megabytes for it and
# takes more only when half of them have drained (a timeout on that alone cut it)
slow_client "$PORT_a" /snapshots/latest 4 "$T/slow.out"
for i in $(seq 100); do [ -s "$T/slow.out" ] && break; sleep 0.1; done
read -r got end <"$T/slow.out" || fail "slow client did not finish"
[ "$end" = open ] && [ "$got" -gt 0 ] || fail "slow client: $got bytes, then $end"
has_metric "$PORT_a" '^atlasd_http_write_timeouts_total 1$' ||
    fail "the slow client was cut: $(curl -fs "$U/metrics" | grep http_)"
echo "http-serve: slow client read $got bytes in 4 s, not cut"
# the daemon still serves, and stops cleanly
curl -fs -o /dev/null "$U/snapshots/$old" || fail "serving after a write timeout"
kill -TERM "$PID_a"
wait "$PID_a" || fail "exit $? after SIGTERM"

# ---- SIGTERM with a stalled client connected ------------------------------------------------
start_daemon b "$T/db" --refresh-interval 0 --shutdown-timeout-ms 3000
stalled_client "$PORT_b" /snapshots/latest 60 "$T/stalled2.out"
# wait until the response is stuck: bytes left in the server's send queue for the client
for i in $(seq 50); do
    ss -tn state established "( sport = :$PORT_b )" 2>/dev/null | awk 'NR > 1 && $2 > 0' | grep -q . && break
    sleep 0.1
done
t0=$(ms)
kill -TERM "$PID_b"
rc=0
wait "$PID_b" || rc=$?
took=$(($(ms) - t0))
[ "$rc" = 0 ] || fail "SIGTERM with a stalled client: exit $rc after $took ms"
[ "$took" -le 3000 ] || fail "SIGTERM with a stalled client: $took ms (shutdown-timeout-ms 3000)"
if grep -q 'connections still open' "$T/b.log"; then fail "connections left open at shutdown"; fi
grep -q 'msg="shutdown deadline: connections closed" n=1' "$T/b.log" ||
    fail "the stalled connection was not closed at the deadline"
echo "http-serve: SIGTERM with a stalled client: exit 0 after $took ms"
echo "http-serve: all checks passed"
