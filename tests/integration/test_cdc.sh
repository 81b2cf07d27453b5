#!/usr/bin/env bash
# osu!track's database -> Kafka -> atlasd for real (label cdc): MariaDB (Debian's, binlog ROW)
# with hiscore_updates -> Kafka Connect standalone + Debezium's MySQL connector (Maven Central)
# -> the real broker -> atlasd. Checks:
# 1. the initial snapshot of the table, then rows INSERTed and UPDATEd while atlasd runs, appear
#    in the next published snapshot, and the store's digest equals `atlasctl import` of a dump
#    of the table (tests/cdc/dump.sh); prints the latency from the INSERT to that snapshot;
# 2. the backfill hand-over: import of the dump, then consuming the topic from its beginning
#    (overlapping the dump entirely) changes nothing: same digest.
. "$(dirname "$0")/lib.sh"
[ "$ATL_BROKER" = kafka ] || { echo "real broker only: skipped"; exit 77; }
for c in java mariadbd mariadb-install-db python3; do
    command -v $c >/dev/null || { echo "$c not installed: skipped"; exit 77; }
done
CDC=$KAFKA_SH/../cdc
start_broker 4
DB=$T/mariadb
DB_PORT=$("$CDC/mariadb.sh" start "$DB" 2>"$T/mariadb.log") || fail "mariadb: $(cat "$T/mariadb.log")"
cleanup_db() { "$CDC/mariadb.sh" stop "$DB" >/dev/null 2>&1 || true; cleanup; }
trap cleanup_db EXIT
sql() { mariadb --no-defaults --socket="$DB/sock" -uroot osutrack "$@"; }

atlasctl gen --scale tiny --seed 51 --out "$T/rows.jsonl" 2>/dev/null
head -n 20000 "$T/rows.jsonl" >"$T/rows1.jsonl"
sed -n '20001,24000p' "$T/rows.jsonl" >"$T/rows2.jsonl"
python3 "$CDC/rows_to_sql.py" <"$T/rows1.jsonl" | sql || fail "loading rows"

# Connect: the table's snapshot, then the binlog
BOOTSTRAP_SERVERS=$BROKERS DB_PORT=$DB_PORT HISCORES_TOPIC=$TOPIC_H \
    "$CDC/connect.sh" "$T/connect" >"$T/connect.log" 2>&1 &
PIDS+=($!)
start_daemon a "$T/db" --refresh-interval 1 --batch-max-ms 50
n1=$(sql -N -e "SELECT COUNT(*) FROM hiscore_updates")
for i in $(seq 600); do
    [ "$(status "$PORT_a" messages_consumed)" = "$n1" ] && break
    grep -q 'ERROR.*Stopping\|Task threw an uncaught' "$T/connect.log" && fail "connect: $(grep ERROR "$T/connect.log" | head -n 3)"
    sleep 0.2
done
[ "$(status "$PORT_a" messages_consumed)" = "$n1" ] || fail "snapshot: consumed $(status "$PORT_a" messages_consumed) of $n1 rows"

# 1. rows inserted and updated while atlasd runs, as osu!track writes them
sleep 2 # the first maps are out
t0=$(date +%s.%N)
python3 "$CDC/rows_to_sql.py" <"$T/rows2.jsonl" | sql || fail "inserting"
changed=$(sql -N -e "UPDATE hiscore_updates SET pp = pp * 1.25 WHERE \`user\` IN (SELECT \`user\` FROM (SELECT DISTINCT \`user\` FROM hiscore_updates ORDER BY \`user\` LIMIT 40) u); SELECT ROW_COUNT()")
n2=$(sql -N -e "SELECT COUNT(*) FROM hiscore_updates")
# the last statement's rows reach atlasd once messages_consumed covers every row version
"$CDC/dump.sh" --no-defaults --socket="$DB/sock" -uroot >"$T/dump.csv"
atlasctl import --db "$T/ref" --json "$T/dump.csv" >"$T/ref.json" 2>"$T/import.log" || fail "import: $(cat "$T/import.log")"
ref_digest=$(digest "$T/ref")
for i in $(seq 600); do
    [ "$(digest "$T/db")" = "$ref_digest" ] && break
    sleep 0.2
done
[ "$(digest "$T/db")" = "$ref_digest" ] || fail "store after CDC differs from import of the table's dump"
t_applied=$(date +%s.%N)
# the next published snapshot reflects them: its manifest counts every event applied
applied=$(status "$PORT_a" events_applied)
snap=""
for i in $(seq 300); do
    id=$(cat "$T/db/snapshots/latest" 2>/dev/null || true)
    if [ -n "$id" ] && [ "$(tr -d " \t\n" <"$T/db/snapshots/$id.json" | json_num events_applied)" = "$applied" ]; then
        snap=$id
        break
    fi
    sleep 0.1
done
[ -n "$snap" ] || fail "no snapshot reflects the changes"
t_snap=$(stat -c %.9Y "$T/db/snapshots/$snap")
echo "cdc: $((n2 - n1)) rows inserted + $changed updated in MariaDB; store = import of the dump"
echo "cdc latency: INSERT -> store applied $(echo "$t_applied - $t0" | bc) s, INSERT -> snapshot $snap published $(echo "$t_snap - $t0" | bc) s"

# 2. backfill hand-over: import the dump, then consume the topic from its beginning
cp -r "$T/ref" "$T/handover"
start_daemon b "$T/handover" --group "$GROUP.handover" --refresh-interval 0
total=$(status "$PORT_a" messages_consumed)
wait_status "$PORT_b" messages_consumed "$total" 120
[ "$(digest "$T/handover")" = "$ref_digest" ] || fail "the overlap of dump and topic changed the store"
# every message replayed a row the dump already held: not one profile entry changed
[ "$(status "$PORT_b" events_changed)" = "$(json_num changed <"$T/ref.json")" ] ||
    fail "replays changed profiles: $(status "$PORT_b" events_changed) vs $(json_num changed <"$T/ref.json")"
kill -TERM "$PID_a" "$PID_b"; wait "$PID_a" || true; wait "$PID_b" || true
echo "cdc: all checks passed"
