#!/usr/bin/env bash
# atlasd refuses a store that an interrupted bulk import left (S rows, no items), as `atlasctl
# import` does. Before, it opened it and ingested on top: the orphaned S rows stayed in every
# sum, and the store was never exact again. The store is made with LMDB's own tools: the S
# table of an imported store loaded into an empty store (created by importing nothing: its
# tables and format version, as an import has written them when its bulk load starts; an LMDB
# file with no format version is not a store at all, test_format).
. "$(dirname "$0")/lib.sh"

command -v mdb_dump >/dev/null && command -v mdb_load >/dev/null ||
    { echo "lmdb-utils not installed: skipped"; exit 77; }
atlasctl gen --scale tiny --out "$T/t.jsonl" >/dev/null 2>&1 || fail "gen"
atlasctl import --db "$T/full" "$T/t.jsonl" >/dev/null 2>&1 || fail "import"
atlasctl import --db "$T/half" - </dev/null >/dev/null 2>&1 || fail "empty import"
mdb_dump -s cooc "$T/full" | mdb_load -s cooc "$T/half" || fail "could not copy S"
rc=0
timeout 30 atlasd --db "$T/half" --brokers 127.0.0.1:1 --http 127.0.0.1:0 >"$T/a.log" 2>&1 || rc=$?
[ "$rc" = 1 ] || fail "atlasd on a half-imported store: exit $rc, want 1"
grep -q "bulk import was interrupted" "$T/a.log" || fail "no reason given: $(tail -n 3 "$T/a.log")"
echo "bulk-interrupted: atlasd refuses a store a bulk import left halfway"
