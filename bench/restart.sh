#!/usr/bin/env bash
# Restart stall after kill -9 (issue 10.6): atlasd on the mock Kafka (session timeout 6 s, the
# default), killed with -9 once consuming and restarted at once, N times; for each restart the
# seconds until the group assigned its partitions again (logged by atlasd), with static
# membership (the default: group.instance.id stable per store) and without it (none).
# usage: bench/restart.sh [BUILD_DIR (default build)] [--kills N]
set -euo pipefail
cd "$(dirname "$0")/.."
B=${1:-build}; shift || true
kills=10
[ "${1:-}" = --kills ] && kills=$2
T=$(mktemp -d "${TMPDIR:-/tmp}/atl-restart-XXXXXX")
pids=()
trap 'for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null || true; done; rm -rf "$T"' EXIT
$B/atlasctl kafka-mock --partitions 4 >"$T/mock.out" 2>/dev/null </dev/null &
pids+=($!)
for _ in $(seq 100); do brokers=$(head -n 1 "$T/mock.out" 2>/dev/null || true); [ -n "$brokers" ] && break; sleep 0.1; done
run() { # mode group -> prints one "seconds" line per restart
    local mode=$1 group=$2 i pid n
    for i in $(seq 0 "$kills"); do
        : >"$T/d.log"
        $B/atlasd --db "$T/db-$mode" --brokers "$brokers" --http 127.0.0.1:0 --group "$group" \
            --group-instance-id "$([ "$mode" = static ] && echo "" || echo none)" \
            --stats-interval 0 --log-file "$T/d.log" &
        pid=$!
        pids+=($pid)
        for _ in $(seq 600); do grep -q 'partitions assigned' "$T/d.log" && break; sleep 0.05; done
        # the first start joins an empty group: not a restart
        [ "$i" -gt 0 ] && sed -n 's/.*partitions assigned.*seconds_since_start=\([0-9.]*\).*/\1/p' "$T/d.log" | head -n 1
        sleep 1
        kill -9 "$pid"; wait "$pid" 2>/dev/null || true
    done
}
for mode in static dynamic; do
    run "$mode" "bench-$mode" >"$T/$mode.txt"
    sort -n "$T/$mode.txt" | awk -v m="$mode" '{ v[NR] = $1; s += $1 }
        END { printf "%s membership: %d restarts after kill -9, partitions back after median %.1f s, max %.1f s, total %.1f s\n",
              m, NR, v[int((NR + 1) / 2)], v[NR], s }'
done
