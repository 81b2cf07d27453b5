#!/usr/bin/env bash
# The batch writer's state machine against the out-of-memory hold and a failed commit (a review
# of daemon/ingest.c found each of these by reading; cases 1 and 2 failed before their fix):
#   1. a message held for out of memory while a commit is in flight: the retry fired during the
#      commit, did nothing and was not armed again; ingestion stalled for good (stuck at 1);
#   2. SIGTERM while a failed batch is being committed again: the stop resubmitted it once more,
#      so its rows, rejections and dead letters counted twice (3 rows applied as 6);
#   3. SIGTERM while a message is held: the stop dropped it and could then apply what came after
#      it on the same partition, storing a later offset past it. This case passed before the fix
#      too (here librdkafka's revoke purges the queued rows before the close drains them); it
#      guards the rule that nothing after an unapplied message is applied (ig->discarding);
#   4. a backlog while commits are slow is committed in batches past batch-max-events (up to
#      batch-backlog-events): fewer, larger commits (this failed before that option: 20 commits).
# atlasd-faults switches: decode-oom, commit-fail, commit-slow (tests/fault/daemon_faults.c).
. "$(dirname "$0")/lib.sh"

command -v atlasd-faults >/dev/null || { echo "atlasd-faults not built: skipped"; exit 77; }
export ATL_FAULT_DIR=$T/faults
mkdir -p "$ATL_FAULT_DIR"
export ATLASD=atlasd-faults
# rows of one user (one key: one partition, in order), beatmaps FIRST..LAST
rows() {
    local b
    for b in $(seq "$2" "$3"); do
        echo "{\"user\":$1,\"beatmap_id\":$b,\"pp\":600,\"mods\":0,\"mode\":0,\"update_time\":\"2024-01-01 00:00:00\"}"
    done
}
wait_log() { # FILE PATTERN SECONDS
    local i
    for i in $(seq $(($3 * 10))); do grep -q "$2" "$1" && return 0; sleep 0.1; done
    fail "no '$2' in $1 after $3 s"
}
stop_daemon() { # NAME: SIGTERM, and it must exit 0
    local pid
    eval "pid=\$PID_$1"
    kill -TERM "$pid"
    wait "$pid" || fail "atlasd $1 did not stop cleanly"
}
start_broker 1
# each case starts a daemon on a new store, which reads the topic from its start: the counts
# below include the rows of the cases before it

# 1. held while a commit is in flight
rows 1 101 101 >"$T/one.jsonl"
rows 1 102 104 >"$T/three.jsonl"
start_daemon a "$T/db1" --batch-max-ms 50
touch "$ATL_FAULT_DIR/commit-slow"
produce --topic "$TOPIC_H" "$T/one.jsonl" 2>/dev/null
wait_status "$PORT_a" messages_consumed 1 30 # its batch goes to the writer 50 ms later: 3 s
touch "$ATL_FAULT_DIR/decode-oom"
produce --topic "$TOPIC_H" "$T/three.jsonl" 2>/dev/null
wait_log "$T/a.log" 'out of memory decoding a message' 10
sleep 1.3 # the retry (1 s) fires while the slow commit is still in flight
rm "$ATL_FAULT_DIR/decode-oom" "$ATL_FAULT_DIR/commit-slow"
wait_status "$PORT_a" events_applied 4 30
stop_daemon a

# 2. SIGTERM during the retry of a failed commit
rows 2 201 203 >"$T/good.jsonl"
echo "not json" >"$T/bad.jsonl"
touch "$ATL_FAULT_DIR/commit-fail"
start_daemon b "$T/db2" --batch-max-ms 50
produce --topic "$TOPIC_H" "$T/good.jsonl" "$T/bad.jsonl" 2>/dev/null
wait_log "$T/b.log" 'store commit failed' 20
touch "$ATL_FAULT_DIR/commit-slow"
rm "$ATL_FAULT_DIR/commit-fail"
sleep 1.5 # the retry (every 1 s) is now in its slow commit
stop_daemon b
rm "$ATL_FAULT_DIR/commit-slow"
start_daemon b "$T/db2" --batch-max-ms 50
wait_status "$PORT_b" events_applied 7 30
sleep 1
[ "$(status "$PORT_b" events_applied)" = 7 ] || fail "applied $(status "$PORT_b" events_applied), not 7"
[ "$(status "$PORT_b" events_rejected)" = 1 ] ||
    fail "rejected $(status "$PORT_b" events_rejected), not 1: a batch committed twice"
stop_daemon b
consume "$TOPIC_DLQ" --timeout-ms 3000 >"$T/dlq.jsonl" || true
[ "$(grep -c '"atlasd-reason"' "$T/dlq.jsonl" || true)" = 1 ] ||
    fail "$(grep -c '"atlasd-reason"' "$T/dlq.jsonl") dead letters for one invalid message"

# 3. SIGTERM while a message is held: nothing after it on its partition may be applied
rows 3 301 303 >"$T/held.jsonl"
touch "$ATL_FAULT_DIR/decode-oom"
start_daemon c "$T/db3" --batch-max-ms 50
produce --topic "$TOPIC_H" "$T/held.jsonl" 2>/dev/null
wait_log "$T/c.log" 'out of memory decoding a message' 20
sleep 0.5 # the two rows after it reach the client's queue
rm "$ATL_FAULT_DIR/decode-oom"
stop_daemon c
start_daemon c "$T/db3" --batch-max-ms 50
wait_status "$PORT_c" events_applied 10 30
stop_daemon c

# 4. a backlog while commits are slow: the batch filling meanwhile grows past batch-max-events
#    (up to batch-backlog-events), so 2,000 events at 100 a batch take 2-4 commits of 3 s, not 20
#    (60 s). Before batch-backlog-events: 20 commits, this wait timed out.
for u in $(seq 400 419); do rows "$u" 1 100; done >"$T/backlog.jsonl"
start_daemon d "$T/db4" --batch-max-ms 50 --batch-max-events 100 --batch-backlog-events 5000
wait_status "$PORT_d" events_applied 10 30 # the cases above
b0=$(status "$PORT_d" batches)
touch "$ATL_FAULT_DIR/commit-slow"
produce --topic "$TOPIC_H" "$T/backlog.jsonl" 2>/dev/null
wait_status "$PORT_d" events_applied 2010 30
rm "$ATL_FAULT_DIR/commit-slow"
nb=$(($(status "$PORT_d" batches) - b0))
[ "$nb" -le 4 ] || fail "2,000 events in $nb commits: the batch did not grow while commits ran"
has_metric "$PORT_d" '^atlasd_backlog_batches_total [1-9]' || fail "no atlasd_backlog_batches_total counted"
stop_daemon d
echo "ingest-races: a hold during a commit resumes; a stop during a retry commits once; a stop while held loses nothing; a backlog commits in large batches ($nb for 2,000 events)"
