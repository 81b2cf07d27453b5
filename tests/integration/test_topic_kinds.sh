#!/usr/bin/env bash
# A topic carries one kind of row (DESIGN §2): the daemon decodes by the topic a message came
# from, not by which keys it happens to have. Before, a hiscore row (with "user") produced to
# the beatmaps topic was applied as a play, and a row without "user" on the hiscore topic was
# taken for beatmap metadata and replaced the beatmap's stored record with empty fields.
. "$(dirname "$0")/lib.sh"

echo '{"beatmap_id":856861,"beatmapset_id":39804,"title":"Real Title","artist":"A","version":"Insane","creator":"Mapper","mode":0}' >"$T/meta.jsonl"
# no "user" (a renamed column): on the hiscore topic, a hiscore row missing a field
echo '{"user_id":5,"beatmap_id":856861,"beatmapset_id":1,"title":"","pp":300.5,"mods":64,"mode":0,"update_time":"2024-01-02 00:00:00"}' >"$T/nouser.jsonl"
# a real play, so that the item exists (inspect shows its metadata)
echo '{"user":9,"beatmap_id":856861,"pp":500,"mods":0,"mode":0,"update_time":"2024-01-01 00:00:00"}' >"$T/real.jsonl"
# a play on the beatmaps topic
echo '{"user":7,"beatmap_id":856861,"pp":400,"mods":0,"mode":0,"update_time":"2024-01-02 00:00:00"}' >"$T/play.jsonl"
start_broker 1
produce --topic "$TOPIC_B" "$T/meta.jsonl" 2>/dev/null
produce --topic "$TOPIC_H" "$T/real.jsonl" 2>/dev/null
produce --topic "$TOPIC_H" "$T/nouser.jsonl" 2>/dev/null
produce --topic "$TOPIC_B" "$T/play.jsonl" 2>/dev/null
start_daemon a "$T/db" --batch-max-ms 50
wait_status "$PORT_a" events_rejected 2 30
[ "$(status "$PORT_a" metadata_applied)" = 1 ] || fail "metadata rows applied: $(status "$PORT_a" metadata_applied), not 1"
[ "$(status "$PORT_a" events_applied)" = 1 ] || fail "a row of the beatmaps topic was applied as a play"
kill -TERM "$PID_a"; wait "$PID_a" || fail "atlasd did not stop cleanly"
atlasctl inspect 856861_ --db "$T/db" >"$T/inspect.txt" 2>&1 || true
grep -q 'Real Title' "$T/inspect.txt" || fail "the beatmap's metadata was replaced: $(head -n 3 "$T/inspect.txt")"
echo "topic-kinds: a row without \"user\" on the hiscore topic and a play on the beatmaps topic rejected; metadata kept"
