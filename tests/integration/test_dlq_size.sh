#!/usr/bin/env bash
# Dead letters of big messages (issue 10.9). atlasd takes messages up to max-message-bytes =
# 1.5 MB, above librdkafka's default message.max.bytes (1 MB) that its dead-letter producer kept
# before the fix, when these dead letters were refused locally and never sent:
#  - a 1.2 MB invalid message: its dead letter is the whole message (the mock takes it; a real
#    broker's topic takes 1 MB, refuses it, and gets an 8 KiB copy with atlasd-truncated);
#  - a 2 MB message (oversize): its first 1.5 MB, atlasd-truncated: 2000000 (real broker: 8 KiB);
#  - (mock) the broker refuses a dead letter's size (MSG_SIZE_TOO_LARGE injected): an 8 KiB
#    copy with atlasd-truncated goes instead, counted in atlasd_dead_letters_truncated_total;
#  - (mock) a dead letter whose delivery fails (INVALID_RECORD injected) is counted in
#    atlasd_dead_letter_failures_total and sent again.
. "$(dirname "$0")/lib.sh"

command -v python3 >/dev/null || { echo "python3 not installed: skipped"; exit 77; }
start_broker 1
if [ "$ATL_BROKER" = kafka ]; then # the source topic takes 4 MB, the dead-letter topic 1 MB
    "$KAFKA_SH/tool.sh" configs --bootstrap-server "$BROKERS" --alter --entity-type topics \
        --entity-name "$TOPIC_H" --add-config max.message.bytes=4000000 >>"$T/topics.log" 2>&1 ||
        fail "topic config: $(tail -n 5 "$T/topics.log")"
fi
big() { head -c "$1" /dev/zero | tr '\0' "$2"; echo; }
big 1200000 a >"$T/m1.jsonl"
big 2000000 b >"$T/m2.jsonl"
big 100000 c >"$T/m3.jsonl"
echo "not json, delivery fails once" >"$T/m4.jsonl"
# --batch-max-ms 3000: dead letters go out after their batch commits, 3 s after the message
# arrives, so a fault injected once `produce` returned hits the dead letter's Produce request
start_daemon a "$T/db" --max-message-bytes 1500000 --batch-max-ms 3000
produce --topic "$TOPIC_H" "$T/m1.jsonl" "$T/m2.jsonl" 2>"$T/produce.log" ||
    fail "produce: $(tail -n 3 "$T/produce.log")"
wait_status "$PORT_a" dead_letters 2 60
n=2
if [ "$ATL_BROKER" = mock ]; then
    produce --topic "$TOPIC_H" "$T/m3.jsonl" 2>/dev/null
    mock_cmd "error 0 1 10" # MESSAGE_TOO_LARGE: the topic refuses this dead letter's size
    wait_status "$PORT_a" dead_letters 3 60
    produce --topic "$TOPIC_H" "$T/m4.jsonl" 2>/dev/null
    mock_cmd "error 0 1 87" # INVALID_RECORD: not retriable, the delivery fails
    wait_status "$PORT_a" dead_letters 4 60
    n=4
fi
curl -fs "http://127.0.0.1:$PORT_a/metrics" >"$T/metrics.txt" || fail "GET /metrics"
consume "$TOPIC_DLQ" --timeout-ms 5000 >"$T/dlq.jsonl" || true
python3 - "$T/dlq.jsonl" "$T/metrics.txt" "$ATL_BROKER" <<'PY' || fail "dead letters or metrics wrong (above)"
import json, sys
dl = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
metrics = dict(l.rsplit(" ", 1) for l in open(sys.argv[2]) if l[0] != "#")
mock = sys.argv[3] == "mock"
ok = True
def expect(cond, what):
    global ok
    if not cond:
        print("FAIL:", what, file=sys.stderr)
        ok = False
by = {}
for d in dl:
    by.setdefault(d["value"][:1], []).append(d)
    print("dead letter: %s x %d, headers %s" % (d["value"][:1], len(d["value"]),
          {k: v for k, v in d["headers"].items() if k != "atlasd-error"}), file=sys.stderr)
def one(c, size, orig, reason):
    got = by.get(c, [])
    expect(len(got) == 1, "%d dead letters of the %d-byte message, expected 1" % (len(got), orig))
    if got:
        h = got[0]["headers"]
        expect(len(got[0]["value"]) == size,
               "dead letter of the %d-byte message has %d bytes, expected %d"
               % (orig, len(got[0]["value"]), size))
        expect(h.get("atlasd-reason") == reason, "reason %s, expected %s" % (h.get("atlasd-reason"), reason))
        want = str(orig) if size < orig else None
        expect(h.get("atlasd-truncated") == want,
               "atlasd-truncated %s, expected %s" % (h.get("atlasd-truncated"), want))
# values are the message bytes without the line's newline
one("a", 1200000 if mock else 8192, 1200000, "not_json")
one("b", 1500000 if mock else 8192, 2000000, "oversize")
if mock:
    one("c", 8192, 100000, "not_json")
    expect(len([d for d in dl if d["value"].startswith("not json, delivery")]) >= 1,
           "the dead letter whose delivery failed was not sent again")
    expect(int(metrics.get("atlasd_dead_letter_failures_total", "0")) >= 1,
           "the failed delivery is not counted: %s" % metrics.get("atlasd_dead_letter_failures_total"))
    expect(int(metrics.get("atlasd_dead_letters_truncated_total", "0")) == 1,
           "truncated by the broker's limit: %s, expected 1" % metrics.get("atlasd_dead_letters_truncated_total"))
else:
    expect(int(metrics.get("atlasd_dead_letters_truncated_total", "0")) == 2,
           "truncated by the broker's limit: %s, expected 2" % metrics.get("atlasd_dead_letters_truncated_total"))
sys.exit(0 if ok else 1)
PY
kill -TERM "$PID_a"; wait "$PID_a" || fail "atlasd did not stop cleanly"
echo "dlq-size: $n big/refused dead letters delivered as specified ($ATL_BROKER)"
