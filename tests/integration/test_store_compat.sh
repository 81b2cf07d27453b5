#!/usr/bin/env bash
# Every atlasctl command on a store and atlasd refuse, exit 1, a data.mdb they cannot read as
# this build's store, and leave it byte for byte as it was: a store of a newer format version
# (the message names both versions and says a newer atlasd wrote it), an LMDB file of another
# program (before, `import` and atlasd created our tables in it and stamped it as a store), and
# a data.mdb cut short (before, every command died of SIGBUS inside LMDB).
. "$(dirname "$0")/lib.sh"

command -v mdb_dump >/dev/null && command -v mdb_load >/dev/null ||
    { echo "lmdb-utils not installed: skipped"; exit 77; }
atlasctl gen --scale tiny --out "$T/t.jsonl" >/dev/null 2>&1 || fail "gen"
atlasctl import --db "$T/cur" "$T/t.jsonl" >/dev/null 2>&1 || fail "import"

# $1 store, $2 text the message must hold: every command exits 1 with it, nothing changes
refused_everywhere() {
    local db=$1 want=$2 sum rc args
    sum=$(sha256sum "$db/data.mdb")
    while read -r -a args <&3; do
        rc=0
        atlasctl "${args[@]}" --db "$db" >"$T/out.log" 2>&1 </dev/null || rc=$?
        [ "$rc" = 1 ] || fail "${args[*]} on $db: exit $rc, want 1: $(tail -n 3 "$T/out.log")"
        grep -q -- "$want" "$T/out.log" ||
            fail "${args[*]} on $db does not say '$want': $(cat "$T/out.log")"
    done 3<<EOF
stats
status
inspect 50049_
export-graph --out $T/g.tsv
embed --out $T/c.tsv
compact
rebuild --offline --no-publish
import $T/t.jsonl
EOF
    rc=0
    timeout 30 atlasd --db "$db" --brokers 127.0.0.1:1 --http 127.0.0.1:0 >"$T/a.log" 2>&1 || rc=$?
    [ "$rc" = 1 ] || fail "atlasd on $db: exit $rc, want 1"
    grep -q -- "$want" "$T/a.log" || fail "atlasd on $db does not say '$want': $(tail -n 2 "$T/a.log")"
    [ "$(sha256sum "$db/data.mdb")" = "$sum" ] || fail "$db/data.mdb changed"
}

# a newer build's store: format_version 2
cp -r "$T/cur" "$T/newer"
rm -f "$T/newer/atlasd.lock"
printf 'VERSION=3\nformat=print\ntype=btree\nHEADER=END\n format_version\n \\02\\00\\00\\00\nDATA=END\n' |
    mdb_load -s meta "$T/newer" || fail "could not set the version"
refused_everywhere "$T/newer" "store format version 2, newer than this build's version 1"

# another program's LMDB file
mkdir "$T/foreign"
printf 'VERSION=3\nformat=print\ntype=btree\nHEADER=END\n alice\n 1\nDATA=END\n' |
    mdb_load -s users "$T/foreign" || fail "could not make a foreign file"
refused_everywhere "$T/foreign" "not an atlasd store"
[ "$(mdb_stat -a "$T/foreign" | grep -c '^Status of')" = 2 ] ||
    fail "tables were added to another program's file: $(mdb_stat -a "$T/foreign")"

# a data.mdb cut to half its size
cp -r "$T/cur" "$T/cut"
truncate -s $(($(stat -c %s "$T/cur/data.mdb") / 2)) "$T/cut/data.mdb"
refused_everywhere "$T/cut" "store is corrupt"

# the store of this build still works
atlasctl stats --db "$T/cur" >/dev/null || fail "stats on the current store"
echo "store-compat: other versions, other programs' files and cut files refused, unchanged"
