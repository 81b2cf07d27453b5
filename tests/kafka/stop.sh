#!/usr/bin/env bash
# Stop the Kafka nodes that tests/kafka/start.sh started in DIR: all of them, or the given ids.
# SIGTERM (a controlled shutdown), then SIGKILL after KAFKA_STOP_TIMEOUT seconds (default 20).
# `--kill` sends SIGKILL at once (a crashed broker).
set -uo pipefail
[ $# -ge 1 ] || { echo "usage: tests/kafka/stop.sh DIR [--kill] [ID...]" >&2; exit 2; }
dir=$1; shift
sig=TERM
[ "${1:-}" = --kill ] && { sig=KILL; shift; }
ids=("$@")
if [ ${#ids[@]} = 0 ]; then
    # the whole cluster: its watchdog too (unless we are the watchdog)
    w=$(cat "$dir/watchdog.pid" 2>/dev/null) && [ "$w" != "$PPID" ] && [ "$w" != $$ ] &&
        kill "$w" 2>/dev/null
    for d in "$dir"/n*; do [ -f "$d/pid" ] && ids+=("${d##*/n}"); done
fi
pids=()
for id in "${ids[@]+"${ids[@]}"}"; do
    pid=$(cat "$dir/n$id/pid" 2>/dev/null) || continue
    kill -"$sig" "$pid" 2>/dev/null && pids+=("$pid")
done
for i in $(seq $((${KAFKA_STOP_TIMEOUT:-20} * 10))); do
    alive=0
    for pid in "${pids[@]+"${pids[@]}"}"; do kill -0 "$pid" 2>/dev/null && alive=1; done
    [ "$alive" = 0 ] && exit 0
    sleep 0.1
done
for pid in "${pids[@]+"${pids[@]}"}"; do kill -9 "$pid" 2>/dev/null; done
exit 0
