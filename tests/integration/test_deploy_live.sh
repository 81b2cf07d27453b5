#!/usr/bin/env bash
# deploy/ against a live atlasd (mock broker): sd_notify READY=1 after start and WATCHDOG=1 from
# the loop (NOTIFY_SOCKET/WATCHDOG_USEC as systemd sets them), `promtool check metrics` on the
# live /metrics, and deploy/nginx.conf really serving /snapshots in front of it (caching headers,
# CORS, preflight, the nginx cache, /admin refused).
. "$(dirname "$0")/lib.sh"
src=${ATL_SRC:-$(cd "$(dirname "$0")/../.." && pwd)}
command -v python3 >/dev/null || { echo "python3 not installed: skipped"; exit 77; }

atlasctl gen --scale tiny --seed 7 --out "$T/rows.jsonl" 2>/dev/null
start_broker 4
produce "$T/rows.jsonl" 2>/dev/null
# a datagram socket standing in for systemd's notify socket
python3 -c 'import socket,sys
s=socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM); s.bind(sys.argv[1])
with open(sys.argv[2], "a") as f:
    while True:
        f.write(s.recv(4096).decode().replace("\n", " ") + "\n"); f.flush()' \
    "$T/notify.sock" "$T/notify.txt" &
PIDS+=($!)
for i in $(seq 50); do [ -S "$T/notify.sock" ] && break; sleep 0.1; done
NOTIFY_SOCKET=$T/notify.sock WATCHDOG_USEC=1000000 start_daemon a "$T/db" --refresh-interval 0 # one map, then none
# WATCHDOG_PID unset: sd_watchdog_enabled() accepts any pid
for i in $(seq 50); do [ "$(grep -c WATCHDOG=1 "$T/notify.txt" 2>/dev/null)" -ge 3 ] && break; sleep 0.2; done
grep -q '^READY=1' "$T/notify.txt" || fail "no READY=1: $(cat "$T/notify.txt")"
[ "$(grep -c '^WATCHDOG=1' "$T/notify.txt")" -ge 3 ] || fail "watchdog not fed: $(cat "$T/notify.txt")"
grep -q 'msg="systemd watchdog fed from the loop" interval_ms=500' "$T/a.log" || fail "watchdog interval"

if command -v promtool >/dev/null; then
    curl -fs "http://127.0.0.1:$PORT_a/metrics" >"$T/metrics.txt"
    # the exposition must parse and pass promtool's lint (naming, HELP on every metric)
    promtool check metrics <"$T/metrics.txt" >"$T/promtool.txt" 2>&1 ||
        fail "promtool check metrics: $(cat "$T/promtool.txt")"
    if grep -v '^$' "$T/promtool.txt" | grep -q .; then
        fail "promtool check metrics: $(cat "$T/promtool.txt")"
    fi
    grep -q '^atlasd_events_applied_total ' "$T/metrics.txt" || fail "metrics incomplete"
else
    echo "note: promtool not installed, metrics not checked" >&2
fi

# every atlasd metric the alert rules use is one the live /metrics has (a renamed metric would
# leave its alert silent for ever), once the map is published
for i in $(seq 150); do [ -s "$T/db/snapshots/latest" ] && break; sleep 0.2; done
curl -fs "http://127.0.0.1:$PORT_a/metrics" >"$T/metrics-live.txt" || fail "GET /metrics"
for m in $(grep -o 'atlasd_[a-z_]*' "$src/deploy/prometheus/atlasd-rules.yml" | sort -u); do
    grep -q "^$m[{ ]" "$T/metrics-live.txt" || fail "the alert rules use $m, not in /metrics"
done

if command -v nginx >/dev/null; then
    for i in $(seq 150); do [ -s "$T/db/snapshots/latest" ] && break; sleep 0.2; done
    [ -s "$T/db/snapshots/latest" ] || fail "no snapshot published"
    id=$(cat "$T/db/snapshots/latest")
    port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
    mkdir -p "$T/nginx/cache"
    ATLASD_ADDR=127.0.0.1:$PORT_a envsubst '${ATLASD_ADDR}' <"$src/deploy/nginx.conf" |
        sed -e "s#/var/cache/nginx/atlasd#$T/nginx/cache#" -e "s#listen 80;#listen 127.0.0.1:$port;#" \
        >"$T/nginx/site.conf"
    printf 'user %s;\nevents {}\nhttp {\naccess_log off;\nclient_body_temp_path %s/b; proxy_temp_path %s/p;\nfastcgi_temp_path %s/f; uwsgi_temp_path %s/u; scgi_temp_path %s/s;\ninclude %s;\n}\n' \
        "$(id -un)" "$T/nginx" "$T/nginx" "$T/nginx" "$T/nginx" "$T/nginx" "$T/nginx/site.conf" >"$T/nginx/nginx.conf"
    nginx -c "$T/nginx/nginx.conf" -p "$T/nginx" -g "daemon off; pid $T/nginx/nginx.pid; error_log $T/nginx/error.log;" \
        >"$T/nginx.log" 2>&1 </dev/null &
    NGINX_PID=$!
    # SIGTERM (not lib.sh's SIGKILL) so the master takes its workers along
    trap 'kill -TERM $NGINX_PID 2>/dev/null; sleep 0.3; cleanup' EXIT
    N="http://127.0.0.1:$port"
    for i in $(seq 50); do curl -fs "$N/healthz" >/dev/null 2>&1 && break; sleep 0.1; done
    curl -fs -D "$T/h1" -o "$T/latest" "$N/snapshots/latest" || fail "nginx: /snapshots/latest"
    # (a later refresh may have moved latest meanwhile: check the bytes against their ETag)
    [ "\"$(sha256sum "$T/latest" | cut -d' ' -f1)\"" = "$(sed -n 's/^[Ee][Tt][Aa][Gg]: \(".*"\).*/\1/p' "$T/h1" | tr -d '\r')" ] ||
        fail "nginx served bytes that do not match their ETag"
    grep -qi '^cache-control: no-cache' "$T/h1" || fail "latest must be revalidated: $(cat "$T/h1")"
    grep -qi '^access-control-allow-origin: \*' "$T/h1" || fail "no CORS on latest"
    [ "$(grep -ci '^access-control-allow-origin' "$T/h1")" = 1 ] || fail "CORS header twice"
    curl -fs -D "$T/h2" -o /dev/null "$N/snapshots/$id" || fail "nginx: /snapshots/$id"
    etag=$(sed -n 's/^[Ee][Tt][Aa][Gg]: \(".*"\).*/\1/p' "$T/h2" | tr -d '\r')
    [ "$(curl -s -o /dev/null -w '%{http_code}' -H "If-None-Match: $etag" "$N/snapshots/$id")" = 304 ] ||
        fail "no 304 through nginx"
    grep -qi '^cache-control: public, max-age=31536000, immutable' "$T/h2" || fail "ids are immutable"
    curl -fs -D "$T/h3" -o /dev/null "$N/snapshots/$id"
    grep -qi '^x-cache-status: HIT' "$T/h3" || fail "second download not from nginx's cache: $(cat "$T/h3")"
    # latest's manifest, latest/ and the list (also as /snapshots/) move with every publish: not
    # cached by nginx, revalidated by browsers (they fell into the ids' location, 7 days and
    # immutable); the manifest of an id is immutable, a 404 never is
    for p in /snapshots/latest/manifest /snapshots/latest/ /snapshots/ /snapshots; do
        curl -fs -o /dev/null "$N$p" || fail "nginx: $p"
        curl -fs -D "$T/h5" -o /dev/null "$N$p" || fail "nginx: $p"
        grep -qi '^cache-control: no-cache' "$T/h5" || fail "$p must be revalidated: $(cat "$T/h5")"
        if grep -qi 'immutable' "$T/h5"; then fail "$p marked immutable: $(cat "$T/h5")"; fi
        if grep -qi '^x-cache-status: HIT' "$T/h5"; then fail "$p served from nginx's cache"; fi
    done
    curl -fs -D "$T/h6" -o /dev/null "$N/snapshots/$id/manifest" || fail "nginx: manifest of $id"
    grep -qi '^cache-control: public, max-age=31536000, immutable' "$T/h6" ||
        fail "the manifest of an id is immutable: $(cat "$T/h6")"
    code=$(curl -s -D "$T/h7" -o /dev/null -w '%{http_code}' "$N/snapshots/corpus_1")
    [ "$code" = 404 ] || fail "an unknown id gave $code"
    if grep -qi 'immutable' "$T/h7"; then fail "a 404 marked immutable: $(cat "$T/h7")"; fi
    code=$(curl -s -o /dev/null -D "$T/h4" -w '%{http_code}' -X OPTIONS -H 'Origin: https://x.example' \
        -H 'Access-Control-Request-Method: GET' "$N/snapshots/latest")
    [ "$code" = 204 ] && grep -qi '^access-control-allow-methods' "$T/h4" || fail "preflight gave $code"
    [ "$(curl -s -o /dev/null -w '%{http_code}' -X POST "$N/admin/rebuild")" = 403 ] || fail "/admin proxied"
else
    echo "note: nginx not installed, front not checked" >&2
fi
kill -TERM "$PID_a"; wait "$PID_a" || fail "exit code"
grep -q '^STOPPING=1' "$T/notify.txt" || fail "no STOPPING=1"
echo "deploy-live: all checks passed"
