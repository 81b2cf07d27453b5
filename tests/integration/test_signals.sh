#!/usr/bin/env bash
# Signals as an operator (or systemd) sends them: while atlasd is still starting, SIGHUP does
# not kill it and SIGTERM stops it cleanly (exit 0) as soon as it runs; SIGHUP reopens the log
# file (logrotate's `systemctl reload`); repeated SIGTERM and SIGINT stop it once, exit 0.
. "$(dirname "$0")/lib.sh"
start_broker 2

# 1. during start-up. The log file is a FIFO: atlasd blocks opening it (past the configuration,
# before the store is opened) until a reader comes, which pins the moment the signals arrive.
# Before the fix the default actions ran there: SIGHUP killed it (exit 129; under systemd a
# `systemctl reload` at that moment left the service dead, as systemd does not restart after a
# death by SIGHUP) and SIGTERM ended it without closing anything (exit 143).
early() { # NAME SIGNAL...
    local name=$1 i w="" rc=0; shift
    mkfifo "$T/$name.fifo"
    atlasd --db "$T/$name" --brokers "$BROKERS" --http 127.0.0.1:0 --group "$GROUP" \
        --topic-hiscores "$TOPIC_H" --topic-beatmaps "$TOPIC_B" --topic-dlq "$TOPIC_DLQ" \
        --log-file "$T/$name.fifo" 2>"$T/$name.err" &
    local pid=$!
    PIDS+=($pid)
    for i in $(seq 100); do
        w=$(cat "/proc/$pid/wchan" 2>/dev/null || true)
        [ "$w" = wait_for_partner ] && break
        sleep 0.05
    done
    [ "$w" = wait_for_partner ] || sleep 2 # no wchan here: ASan's start-up is well under 2 s
    for s in "$@"; do
        kill -0 "$pid" 2>/dev/null || { wait "$pid" || rc=$?; fail "$name: died at start (exit $rc)"; }
        kill -"$s" "$pid"
        sleep 0.1
    done
    kill -0 "$pid" 2>/dev/null || { wait "$pid" || rc=$?; fail "$name: died of SIG$* (exit $rc)"; }
    cat "$T/$name.fifo" >"$T/$name.log" &
    wait "$pid" || rc=$?
    [ "$rc" = 0 ] || fail "$name: signals $* during start-up: exit $rc, expected 0"
    grep -q 'msg="shutting down"' "$T/$name.log" || fail "$name: no graceful stop"
    grep -q 'msg="exit" code=0' "$T/$name.log" || fail "$name: no clean exit"
}
early hup-term HUP TERM
early term TERM
early int INT

# 2. SIGHUP reopens the log file: after a rotation (mv) the daemon writes to a new file
start_daemon a "$T/db-a" --log-file "$T/a.log" # start_daemon reads the same file
mv "$T/a.log" "$T/a.log.1"
kill -HUP "$PID_a"
for i in $(seq 50); do [ -s "$T/a.log" ] && break; sleep 0.1; done
grep -q 'msg="SIGHUP: log reopened" ok=1' "$T/a.log" || fail "SIGHUP did not reopen the log"

# 3. SIGTERM, SIGINT, then SIGTERM again and again until it has exited: one graceful stop,
# exit 0. Before the fix, a signal landing after the loop's signal handles were closed (the
# store close and the rest of the teardown) took its default action: exit 143.
rc=0
kill -TERM "$PID_a"
kill -INT "$PID_a" 2>/dev/null || true
while kill -TERM "$PID_a" 2>/dev/null; do sleep 0.002; done
wait "$PID_a" || rc=$?
[ "$rc" = 0 ] || fail "TERM, INT, TERM...: exit $rc"
[ "$(grep -c 'msg="shutting down"' "$T/a.log")" = 1 ] || fail "more than one stop"
echo "signals: all checks passed"
