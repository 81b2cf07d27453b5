#!/usr/bin/env bash
# Walks of a cold store (session 19, store_prefetch): with the store's data file dropped from the
# page cache before each run (`dd iflag=nocache count=0`, no privilege needed), times
#   1. `atlasctl rebuild --offline --no-publish --json`: the S check, after the prefetch;
#   2. the same again, warm: what the prefetch costs when the file is cached;
#   3. `atlasctl stats` (its digest reads all of S), cold.
# With --before BUILD_DIR, the same three with that build first (e.g. one without the prefetch),
# alternating. Prints one line per run: build, what, seconds, and the JSON's prefetch figures.
# The store is not changed (the S check repairs nothing in an exact store; stats is read-only).
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
}
echo "store: $db ($(stat -c %s "$db/data.mdb") bytes); $(nproc) cores, $(awk '/MemTotal/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo)"
[ -n "$before" ] && run "$before" before
run "$B" after
[ -n "$before" ] && run "$before" before
run "$B" after
