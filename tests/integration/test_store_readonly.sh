#!/usr/bin/env bash
# A store on a read-only mount (a backup, a snapshot volume): the reading commands work (LMDB
# opens read-only environments without their lock file there), the writing ones exit 1 saying
# the file system is read-only, and nothing is written. chmod does not stop root, so the store
# sits on a small tmpfs remounted read-only; skipped where mount is not permitted.
. "$(dirname "$0")/lib.sh"

atlasctl gen --scale tiny --out "$T/t.jsonl" >/dev/null 2>&1 || fail "gen"
mount_tmpfs "$T/mnt" 64m
atlasctl import --db "$T/mnt/db" "$T/t.jsonl" >/dev/null 2>&1 || fail "import"
atlasctl stats --db "$T/mnt/db" >"$T/rw.txt" 2>&1 || fail "stats"
mount -o remount,ro "$T/mnt" || fail "remount ro"
sum=$(sha256sum "$T/mnt/db/data.mdb")

atlasctl stats --db "$T/mnt/db" >"$T/ro.txt" 2>&1 || fail "stats read-only: $(cat "$T/ro.txt")"
cmp -s "$T/rw.txt" "$T/ro.txt" || fail "stats differ read-only: $(diff "$T/rw.txt" "$T/ro.txt")"
atlasctl status --db "$T/mnt/db" >/dev/null 2>"$T/err.log" || fail "status: $(cat "$T/err.log")"
atlasctl export-graph --db "$T/mnt/db" --out "$T/g.tsv" 2>"$T/err.log" ||
    fail "export-graph: $(cat "$T/err.log")"
item=$(head -n 1 "$T/g.tsv" | cut -f1)
atlasctl inspect "$item" --db "$T/mnt/db" >/dev/null 2>"$T/err.log" ||
    fail "inspect $item: $(cat "$T/err.log")"
atlasctl embed --db "$T/mnt/db" --out "$T/c.tsv" --max-iter 50 >/dev/null 2>"$T/err.log" ||
    fail "embed --db: $(cat "$T/err.log")"

while read -r -a args <&3; do
    rc=0
    atlasctl "${args[@]}" --db "$T/mnt/db" >"$T/out.log" 2>&1 </dev/null || rc=$?
    [ "$rc" = 1 ] || fail "${args[*]} on a read-only store: exit $rc, want 1: $(cat "$T/out.log")"
    grep -q "Read-only file system" "$T/out.log" ||
        fail "${args[*]} does not say why: $(cat "$T/out.log")"
done 3<<EOF
compact
import $T/t.jsonl
rebuild --offline --no-publish
rebuild --offline --verify
EOF
rc=0
timeout 30 atlasd --db "$T/mnt/db" --brokers 127.0.0.1:1 --http 127.0.0.1:0 >"$T/a.log" 2>&1 || rc=$?
[ "$rc" = 1 ] || [ "$rc" = 2 ] || fail "atlasd on a read-only store: exit $rc"
[ "$(sha256sum "$T/mnt/db/data.mdb")" = "$sum" ] || fail "data.mdb changed"
echo "store-readonly: reads work on a read-only mount, writes refused with the reason"
