#!/usr/bin/env bash
# Walks of a cold store (session 19, store_prefetch): with the store's data file dropped from the
# page cache before each run (`dd iflag=nocache count=0`, no privilege needed), times
#   1. `atlasctl rebuild --offline --no-publish --json`: the S check, after the prefetch;
#   2. the same again, warm: what the prefetch costs when the file is cached;
#   3. `atlasctl stats` (its digest reads all of S), cold;
#   4. atlasd started on the cold store (on `atlasctl kafka-mock`): its warm-up's log line, the
#      slowest `/healthz` answer meanwhile (asked every 0.5 s), then a forced rebuild
#      (`atlasctl rebuild --url --wait`) and its published line. A build without the warm-up
#      prints no warm-up line; its rebuild then starts cold.
# With --before BUILD_DIR, the same four steps with that build first (e.g. one without the prefetch),
# alternating. Prints one line per run: build, what, seconds, and the JSON's prefetch figures.
# S is not changed (the S check repairs nothing in an exact store; stats is read-only); step 4's
# rebuild publishes a map into DB/snapshots and stores its coordinates, as the daemon does.
# Every cold run reads the file from disk: on a VM the host may cache it, so compare within one
# run of this script, and expect the first cold read of a file to be the slowest.
# usage: bench/cold.sh BUILD_DIR --db DIR [--before BUILD_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
B=${1:?usage: bench/cold.sh BUILD_DIR --db DIR [--before BUILD_DIR]}; shift
db="" before=""
while [ $# -gt 0 ]; do
    case $1 in --db) db=$2; shift 2 ;; --before) before=$2; shift 2 ;; *) echo "unknown option $1" >&2; exit 2 ;; esac
done
[ -f "$db/data.mdb" ] || { echo "bench/cold.sh: no store at '$db'" >&2; exit 2; }
T=$(mktemp -d "${TMPDIR:-/tmp}/atl-cold-XXXXXX")
trap 'rm -rf "$T"' EXIT
drop() { dd if="$db/data.mdb" iflag=nocache count=0 2>/dev/null; }
secs() { /usr/bin/env python3 -c 'import sys, time; print("%.1f" % (time.time() - float(sys.argv[1])))' "$1"; }
now() { date +%s.%N; }
run() { # build label
    local b=$1 name=$2 t0
    drop
    t0=$(now)
    $b/atlasctl rebuild --offline --db "$db" --no-publish --json >"$T/rb.json" 2>/dev/null
    echo "$name rebuild-check cold $(secs "$t0") s $(python3 -c 'import json, sys
r = json.load(open(sys.argv[1])); p = r.get("prefetch")
s = r["seconds"]
print("prefetch %.1f s verify %.1f s" % (s.get("prefetch", 0), s["verify"]) +
      (" read %.2f GB skipped %s" % (p["read_bytes"] / 1e9, p["skipped"]) if p else ""))' "$T/rb.json")"
    t0=$(now)
    $b/atlasctl rebuild --offline --db "$db" --no-publish --json >"$T/rb.json" 2>/dev/null
    echo "$name rebuild-check warm $(secs "$t0") s"
    drop
    t0=$(now)
    $b/atlasctl stats --db "$db" >/dev/null 2>&1
    echo "$name stats cold $(secs "$t0") s"
    daemon "$b" "$name"
}
daemon() { # build label
    local b=$1 name=$2 t0 brokers="" port="" worst=0 l pm pd
    : >"$T/mock.out"
    $b/atlasctl kafka-mock --partitions 2 >"$T/mock.out" 2>/dev/null </dev/null &
    pm=$!
    for _ in $(seq 100); do brokers=$(head -n 1 "$T/mock.out" 2>/dev/null || true); [ -n "$brokers" ] && break; sleep 0.1; done
    drop
    t0=$(now)
    $b/atlasd --db "$db" --brokers "$brokers" --http 127.0.0.1:0 --stats-interval 0 \
        --refresh-interval 3600 --log-file "$T/d.log" 2>/dev/null &
    pd=$!
    for _ in $(seq 600); do
        port=$({ grep -o 'msg="listening" addr=[^ ]* port=[0-9]*' "$T/d.log" 2>/dev/null || true; } | tail -n 1 | sed 's/.*port=//')
        [ -n "$port" ] && break; sleep 0.1
    done
    # the warm-up: until its line (a build without one: /status's stage is not `prefetch`)
    for i in $(seq 7200); do
        l=$(curl -s -o /dev/null -w '%{time_total}' "http://127.0.0.1:$port/healthz" || echo 0)
        worst=$(python3 -c "print(max($worst, $l))")
        grep -q 'read ahead' "$T/d.log" && break
        [ "$i" -ge 4 ] && [ "$(curl -s "http://127.0.0.1:$port/status" |
            python3 -c 'import json, sys; print(json.load(sys.stdin)["refresh"]["stage"])')" != prefetch ] && break
        sleep 0.5
    done
    echo "$name daemon start->warm $(secs "$t0") s, slowest /healthz ${worst} s: $({ grep -o 'msg="store[^"]*read ahead[^"]*".*' "$T/d.log" || echo 'no warm-up'; } | head -n 1)"
    t0=$(now)
    $b/atlasctl rebuild --url "http://127.0.0.1:$port" --wait >/dev/null 2>&1
    echo "$name daemon rebuild $(secs "$t0") s: $(grep -o 'seconds=.*' "$T/d.log" | tail -n 1)"
    kill "$pd" "$pm" 2>/dev/null; wait "$pd" "$pm" 2>/dev/null || true
    : >"$T/d.log"
}
echo "store: $db ($(stat -c %s "$db/data.mdb") bytes); $(nproc) cores, $(awk '/MemTotal/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo)"
[ -n "$before" ] && run "$before" before
run "$B" after
[ -n "$before" ] && run "$before" before
run "$B" after
