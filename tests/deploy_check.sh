#!/usr/bin/env bash
# deploy/ stays correct: the example config is exactly what `atlasd --print-config` prints and
# atlasd accepts it; the systemd unit passes `systemd-analyze verify` (with the built binary
# substituted); the nginx config passes `nginx -t`, the alert rules `promtool check rules` (when
# installed); the compose file parses and names files that exist, and so does the Dockerfile.
# (tests/integration/test_deploy_live.sh runs them against a live daemon.)
set -euo pipefail
src=${ATL_SRC:-$(dirname "$0")/..}
T=$(mktemp -d); trap 'rm -rf "$T"' EXIT
atlasd --print-config | diff -u "$src/deploy/atlasd.conf.example" - ||
    { echo "deploy/atlasd.conf.example is stale: regenerate with atlasd --print-config"; exit 1; }
# README's settings table has a row for every setting (stats-interval, log-level and log-file
# had none)
for k in $(atlasd --print-config | sed -n 's/^\([a-z-]*\) = .*/\1/p'); do
    grep -q "^| .*\`$k\`" "$src/README.md" || { echo "README's settings table lacks $k"; exit 1; }
done
# the example parses: a run that fails only on the missing broker list, not on the file
set +e
atlasd --config "$src/deploy/atlasd.conf.example" --db "$T/db" --brokers "" >"$T/out" 2>&1
set -e
grep -q "no Kafka brokers configured" "$T/out" || { cat "$T/out"; exit 1; }
echo "bad-key = 1" >"$T/bad.conf"
if atlasd --config "$T/bad.conf" 2>"$T/err"; then echo "bad config accepted"; exit 1; fi
grep -q "$T/bad.conf:1: unknown setting \"bad-key\"" "$T/err" || { cat "$T/err"; exit 1; }
echo "batch-max-events = 0" >"$T/range.conf"
if atlasd --config "$T/range.conf" 2>"$T/err"; then echo "out of range accepted"; exit 1; fi
grep -q "range.conf:1: batch-max-events = 0 is out of range" "$T/err" || { cat "$T/err"; exit 1; }
# issue 10.20: each configuration error names file, line and key, and exits 2 (bad configuration)
expect_config_error() { # message-pattern atlasd-args...
    local want=$1 rc=0; shift
    atlasd "$@" >"$T/out" 2>"$T/err" || rc=$?
    [ "$rc" = 2 ] || { echo "atlasd $*: exit $rc, expected 2: $(cat "$T/err")"; exit 1; }
    grep -q -- "$want" "$T/err" || { echo "atlasd $*: '$(cat "$T/err")' lacks '$want'"; exit 1; }
}
expect_config_error "config $T is not a regular file" --config "$T" --brokers x:1 --db "$T/db"
{ echo "# a comment"; printf 'db = %05000d\n' 0; echo "brokers = x:1"; } >"$T/long.conf"
expect_config_error "long.conf:2: line of 5006 bytes is longer than 4095" --config "$T/long.conf"
expect_config_error 'flag --kafka.no.such.property: kafka.no.such.property: No such configuration' \
    --brokers x:1 --db "$T/db" --kafka.no.such.property=1
echo "kafka.no.such.property = 1" >"$T/kafka.conf"
expect_config_error "kafka.conf:1: kafka.no.such.property" --config "$T/kafka.conf" --brokers x:1
expect_config_error "no Kafka brokers configured" --db "$T/db"
# a listen address atlasd cannot bind is a configuration error at parse time (exit 2), before
# the store is locked, the instance id written or the Kafka group joined (before: exit 1 then)
for a in localhost:0 '[::1]:8477' 127.0.0.1 127.0.0.1: 127.0.0.1:65536 127.0.0.1:-1 1.2.3:80 \
    127.0.0.1:+80 ' 127.0.0.1:80'; do
    pat=$(printf '%s' "$a" | sed 's/[]*.^$\\[]/\\&/g') # the address as a literal in the pattern
    expect_config_error "flag --http: http = \"$pat\" is not an IPv4 HOST:PORT" \
        --brokers x:1 --db "$T/db-http" --http "$a"
    [ ! -e "$T/db-http" ] || { echo "--http $a: the store was created before the check"; exit 1; }
done
echo "http = localhost:8477" >"$T/http.conf"
expect_config_error 'http.conf:1: http = "localhost:8477" is not an IPv4 HOST:PORT' \
    --config "$T/http.conf" --brokers x:1 --db "$T/db-http"
printf 'brokers = x:1\n\001\033[31mevil = 1\n' >"$T/bin.conf"
expect_config_error 'bin.conf:2: unknown setting "\\x01\\x1b\[31mevil"' --config "$T/bin.conf"
if grep -q "$(printf '\033')" "$T/err"; then echo "raw escape bytes echoed"; exit 1; fi
# the unit: its ExecStart flags are ones atlasd accepts (run with the example config, brokers
# filled in, and the store in $T: it starts, serves, and stops on SIGTERM with exit 0); the store
# it names is writable under its hardening (StateDirectory/ReadWritePaths); a configuration error
# (exit 2) is not restarted in a loop (Restart=on-failure alone restarted it every RestartSec)
unit=$src/deploy/atlasd.service
grep -qE '^RestartPreventExitStatus=(.* )?2( |$)' "$unit" ||
    { echo "atlasd.service restarts on exit 2 (a configuration error): RestartPreventExitStatus=2"; exit 1; }
exec_start=$(sed -n 's/^ExecStart=//p' "$unit")
unit_db=$(printf '%s\n' "$exec_start" | sed -n 's/.*--db \([^ ]*\).*/\1/p')
unit_conf=$(printf '%s\n' "$exec_start" | sed -n 's/.*--config \([^ ]*\).*/\1/p')
writable=$(sed -n -e 's#^StateDirectory=#/var/lib/#p' -e 's/^ReadWritePaths=//p' "$unit" | tr ' ' '\n')
printf '%s\n' "$writable" | grep -q . || { echo "atlasd.service: no writable path"; exit 1; }
ok=0
for w in $writable; do case "$unit_db/" in "${w%/}"/*) ok=1 ;; esac; done
[ "$ok" = 1 ] || { echo "atlasd.service: --db $unit_db is not under a writable path ($writable)"; exit 1; }
sed -e 's/^brokers = .*/brokers = 127.0.0.1:1/' -e 's/^http = .*/http = 127.0.0.1:0/' \
    "$src/deploy/atlasd.conf.example" >"$T/unit.conf"
read -r -a argv <<<"$(printf '%s\n' "$exec_start" | sed -e "s#$unit_conf#$T/unit.conf#" \
    -e "s#$unit_db#$T/unit-store#" -e "s#^[^ ]*atlasd #atlasd #")"
"${argv[@]}" >"$T/unit.log" 2>&1 &
pid=$!
for i in $(seq 100); do
    grep -q 'msg="listening"' "$T/unit.log" || ! kill -0 "$pid" 2>/dev/null && break
    sleep 0.1
done
grep -q 'msg="listening"' "$T/unit.log" ||
    { kill "$pid" 2>/dev/null || true; echo "the unit's ExecStart: $exec_start"; cat "$T/unit.log"; exit 1; }
kill -TERM "$pid"
rc=0; wait "$pid" || rc=$?
[ "$rc" = 0 ] || { echo "the unit's ExecStart: exit $rc"; cat "$T/unit.log"; exit 1; }
if command -v systemd-analyze >/dev/null; then
    sed "s#/usr/local/bin/atlasd#$(readlink -f "$(command -v atlasd)")#" "$src/deploy/atlasd.service" >"$T/atlasd.service"
    out=$(systemd-analyze verify "$T/atlasd.service" 2>&1 | grep -v -e "Documentation=" -e "/proc/cmdline" || true)
    # users/groups may not exist on a build machine; anything else is an error
    if echo "$out" | grep -v -e "User" -e "Group" -e "^$" | grep -q .; then echo "$out"; exit 1; fi
fi
# nginx: /metrics and /status (counters, partitions, last_error with broker names and paths)
# answer private networks only; /healthz stays open for outside health checks
for loc in /metrics /status; do
    sed -n "s#^ *location = $loc *{\(.*\)}#\1#p" "$src/deploy/nginx.conf" | grep -q 'deny all;' ||
        { echo "nginx.conf: location = $loc is open to everyone"; exit 1; }
done
if command -v nginx >/dev/null; then
    mkdir -p "$T/cache"
    ATLASD_ADDR=127.0.0.1:8477 envsubst '${ATLASD_ADDR}' <"$src/deploy/nginx.conf" |
        sed "s#/var/cache/nginx/atlasd#$T/cache#" >"$T/site.conf"
    # temporary files and logs in $T: an nginx not installed by the package manager (or one
    # without its /var/lib/nginx) checks the same
    printf 'events {}\nhttp {\naccess_log off;\nclient_body_temp_path %s/b; proxy_temp_path %s/p;\nfastcgi_temp_path %s/f; uwsgi_temp_path %s/u; scgi_temp_path %s/s;\ninclude %s;\n}\n' \
        "$T" "$T" "$T" "$T" "$T" "$T/site.conf" >"$T/nginx.conf"
    nginx -t -c "$T/nginx.conf" -p "$T" -g "pid $T/nginx.pid; error_log $T/error.log;" 2>&1 |
        grep -q "test is successful" || { nginx -t -c "$T/nginx.conf" -p "$T"; exit 1; }
fi
if command -v promtool >/dev/null; then
    promtool check rules "$src/deploy/prometheus/atlasd-rules.yml" >"$T/rules.out" 2>&1 ||
        { cat "$T/rules.out"; exit 1; }
fi
# compose: valid YAML, and every file it mounts or builds from exists
if python3 -c 'import yaml' 2>/dev/null; then
    python3 - "$src/deploy" <<'PY'
import os, sys, yaml
d = sys.argv[1]
c = yaml.safe_load(open(os.path.join(d, "docker-compose.yml")))
for name, svc in c["services"].items():
    for v in svc.get("volumes", []):
        host = v.split(":")[0]
        if host.startswith("."):
            assert os.path.exists(os.path.join(d, host)), f"{name}: {host} missing"
    b = svc.get("build")
    if b:
        ctx = os.path.join(d, b["context"])
        df = os.path.join(ctx, b.get("dockerfile", "Dockerfile"))
        assert os.path.exists(df), f"{name}: {df} missing"
PY
fi
# Dockerfile: every COPY source exists in the repository (the build context is its root)
grep -E '^COPY [^-]' "$src/deploy/Dockerfile" | awk '{for (i = 2; i < NF; i++) print $i}' |
    while read -r p; do [ -e "$src/$p" ] || { echo "Dockerfile: COPY $p: missing"; exit 1; }; done
# ... and the build stage configures with only what it copies (it lacked bench/, which
# CMakeLists.txt names: `docker build` stopped at "Cannot find source file: bench/...")
if command -v cmake >/dev/null; then
    mkdir -p "$T/ctx"
    awk '/^FROM/ {n++} n == 1 && /^COPY [^-]/ {for (i = 2; i < NF; i++) print $i}' \
        "$src/deploy/Dockerfile" | while read -r p; do cp -r "$src/$p" "$T/ctx/$p"; done
    cmake -S "$T/ctx" -B "$T/ctx/build" -DCMAKE_BUILD_TYPE=Release >"$T/ctx.log" 2>&1 ||
        { grep -A4 "CMake Error" "$T/ctx.log" | head -n 8; echo "Dockerfile: the build stage does not configure"; exit 1; }
fi
echo "deploy: all checks passed"
