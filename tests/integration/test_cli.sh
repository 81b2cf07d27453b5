#!/usr/bin/env bash
# atlasctl end to end on tiny data: gen reproducibility, import of JSONL and CSV to the same
# state, offline rebuild verification, rejection accounting, --help and exit codes.
set -euo pipefail
T=$(mktemp -d "${TMPDIR:-/tmp}/atl-cli-XXXXXX")
trap 'rm -rf "$T"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
expect_exit() { # code cmd...
    local want=$1; shift
    set +e; "$@" >"$T/out" 2>"$T/err"; local got=$?; set -e
    [ "$got" = "$want" ] || { cat "$T/out" "$T/err" >&2; fail "exit $got (want $want): $*"; }
}
json_field() { sed -n "s/.*\"$1\":\"\{0,1\}\([^,\"}]*\).*/\1/p"; }

# --help everywhere, usage errors are 2
expect_exit 0 atlasctl --help
for c in gen import stats rebuild; do
    expect_exit 0 atlasctl $c --help
    grep -q "usage: atlasctl $c" "$T/out" || fail "$c --help has no usage line"
done
# every atlasctl command the README documents exists and has --help
for c in $(grep -o 'atlasctl [a-z][a-z-]*' "$ATL_SRC/README.md" | awk '{ print $2 }' | sort -u); do
    expect_exit 0 atlasctl "$c" --help
done
expect_exit 0 atlasd --help
grep -q -- "--refresh\|--db" "$T/out" || fail "atlasd --help lists no settings"
expect_exit 2 atlasctl
expect_exit 2 atlasctl frobnicate
expect_exit 2 atlasctl gen --bogus
expect_exit 2 atlasctl gen --scale huge --out "$T/x"
expect_exit 2 atlasctl import "$T/x"
expect_exit 2 atlasctl rebuild --db "$T/db"
expect_exit 1 atlasctl stats --db "$T/does-not-exist"

# gen is reproducible for a seed, and differs across seeds
atlasctl gen --scale tiny --seed 7 --out "$T/a.jsonl" --labels "$T/a.tsv" 2>/dev/null
atlasctl gen --scale tiny --seed 7 --out "$T/b.jsonl" --labels "$T/b.tsv" 2>/dev/null
atlasctl gen --scale tiny --seed 8 --out "$T/c.jsonl" 2>/dev/null
cmp -s "$T/a.jsonl" "$T/b.jsonl" || fail "gen with the same seed differs"
cmp -s "$T/a.tsv" "$T/b.tsv" || fail "labels with the same seed differ"
cmp -s "$T/a.jsonl" "$T/c.jsonl" && fail "gen with another seed is identical"
[ "$(wc -l <"$T/a.jsonl")" -gt 10000 ] || fail "tiny stream too small"
# the real scale (osu!track's table, ~92M rows) is the full scale's beatmaps with more players
atlasctl gen --scale real --users 30 --seed 7 --out "$T/r.jsonl" 2>/dev/null || fail "gen --scale real"
atlasctl gen --scale full --users 30 --seed 7 --out "$T/f.jsonl" 2>/dev/null
cmp -s "$T/r.jsonl" "$T/f.jsonl" || fail "gen --scale real is not the full scale's beatmaps and players"
grep -qP '^\d+_(DT)?(EZ)?(FL)?(HR)?(HT)?\t[a-z-]+$' "$T/a.tsv" || fail "labels format"

# JSONL and CSV imports of the same rows reach the same state; rebuild verifies clean
atlasctl gen --scale tiny --seed 7 --format csv --out "$T/a.csv" 2>/dev/null
atlasctl import --db "$T/db1" --json "$T/a.jsonl" >"$T/imp1.json" 2>/dev/null
atlasctl import --db "$T/db2" --batch 777 --no-bulk "$T/a.csv" >/dev/null 2>&1
d1=$(atlasctl stats --db "$T/db1" --json | json_field digest)
d2=$(atlasctl stats --db "$T/db2" --json | json_field digest)
[ -n "$d1" ] && [ "$d1" = "$d2" ] || fail "JSONL and CSV digests differ: $d1 vs $d2"
for k in users items retained pairs bytes digest; do
    grep -q "\"$k\"" <(atlasctl stats --db "$T/db1" --json) || fail "stats --json lacks $k"
done
[ "$(json_field rejected <"$T/imp1.json")" = 0 ] || fail "clean stream had rejections"
[ "$(json_field skipped <"$T/imp1.json")" -gt 0 ] || fail "no skipped rows (modes, low pp)"
expect_exit 0 atlasctl rebuild --offline --db "$T/db1" --verify
grep -q "differences 0 in S, 0 in item stats" "$T/out" || fail "verify output: $(cat "$T/out")"

# the bulk load (an empty store) equals batches, also with updates of one (user, beatmap):
# newer rows arriving first, older ones after, equal times (the higher pp wins), exact replays
scale_rows() { # from to factor time: rows from..to with pp x factor (and update_time, if given)
    sed -n "$1,$2p" "$T/a.jsonl" | awk -v f="$3" -v t="$4" '{
        match($0, /"pp":[0-9.]+/); pp = substr($0, RSTART + 5, RLENGTH - 5) * f
        $0 = substr($0, 1, RSTART + 4) sprintf("%.3f", pp) substr($0, RSTART + RLENGTH)
        if (t != "") sub(/"update_time":"[^"]*"/, "\"update_time\":\"" t "\"")
        print }'
}
{ scale_rows 1 300 1.1 2026-11-30T00:00:00Z; cat "$T/a.jsonl"; scale_rows 301 600 1.2 ""
  scale_rows 1 300 0.5 2010-01-01T00:00:00Z; sed -n 601,900p "$T/a.jsonl"; } >"$T/upd.jsonl"
atlasctl import --db "$T/db4" --json "$T/upd.jsonl" >"$T/imp4.json" 2>/dev/null
atlasctl import --db "$T/db5" --json --no-bulk --batch 97 "$T/upd.jsonl" >"$T/imp5.json" 2>/dev/null
d4=$(atlasctl stats --db "$T/db4" --json | json_field digest)
d5=$(atlasctl stats --db "$T/db5" --json | json_field digest)
[ -n "$d4" ] && [ "$d4" = "$d5" ] || fail "bulk and batch imports differ: $d4 vs $d5"
[ "$d4" != "$d1" ] || fail "the updates changed nothing"
for k in applied changed skipped; do
    [ "$(json_field $k <"$T/imp4.json")" = "$(json_field $k <"$T/imp5.json")" ] ||
        fail "bulk and batch $k differ: $(cat "$T/imp4.json" "$T/imp5.json")"
done
expect_exit 0 atlasctl rebuild --offline --db "$T/db4" --verify
grep -q "differences 0 in S, 0 in item stats" "$T/out" || fail "bulk verify: $(cat "$T/out")"
# compact (mdb_copy -c) keeps the content and drops the free pages the batches left
b5=$(atlasctl stats --db "$T/db5" --json | json_field bytes)
expect_exit 0 atlasctl compact --db "$T/db5"
[ "$(atlasctl stats --db "$T/db5" --json | json_field digest)" = "$d5" ] || fail "compact changed the digest"
[ "$(atlasctl stats --db "$T/db5" --json | json_field bytes)" -lt "$b5" ] || fail "compact did not shrink $b5"
atlasctl import --db "$T/db5" "$T/upd.jsonl" >/dev/null 2>&1
[ "$(atlasctl stats --db "$T/db5" --json | json_field digest)" = "$d5" ] || fail "import after compact"
# a bulk store then takes batches like any other (here: the same rows again, no change)
atlasctl import --db "$T/db4" "$T/upd.jsonl" >/dev/null 2>&1
[ "$(atlasctl stats --db "$T/db4" --json | json_field digest)" = "$d4" ] || fail "replay after bulk"

# importing the same file again changes nothing (replays are idempotent)
atlasctl import --db "$T/db1" "$T/a.jsonl" >/dev/null 2>&1
[ "$(atlasctl stats --db "$T/db1" --json | json_field digest)" = "$d1" ] || fail "replay changed state"

# bad rows are rejected with reasons and counted; good rows around them still apply
head -n 100 "$T/a.jsonl" >"$T/mixed.jsonl"
printf '%s\n' 'not json' '{"user":1}' '{"user":1,"beatmap_id":5,"pp":-1,"mods":0,"mode":0,"update_time":"2024-01-01 00:00:00"}' >>"$T/mixed.jsonl"
expect_exit 0 atlasctl import --db "$T/db3" --json "$T/mixed.jsonl"
[ "$(json_field rejected <"$T/out")" = 3 ] || fail "rejected count: $(cat "$T/out")"
grep -q '"not_json":1' "$T/out" && grep -q '"missing_field":1' "$T/out" && grep -q '"bad_value":1' "$T/out" \
    || fail "rejection reasons: $(cat "$T/out")"
grep -q "mixed.jsonl:101: rejected (not_json)" "$T/err" || fail "no file:line in rejection message"
# export-graph + embed: deterministic, every retained item placed, labels separated
expect_exit 0 atlasctl export-graph --db "$T/db1" --out "$T/S.tsv" --retained "$T/ret.tsv"
retained=$(atlasctl stats --db "$T/db1" --json | json_field retained)
[ "$(wc -l <"$T/ret.tsv")" = "$retained" ] || fail "export-graph retained list"
awk -F'\t' 'NF != 3 || $3 <= 0 { bad = 1 } END { exit bad }' "$T/S.tsv" || fail "S.tsv format"
atlasctl embed --edges "$T/S.tsv" --retained "$T/ret.tsv" --max-iter 300 --out "$T/c1.tsv" \
    --knn-out "$T/knn.tsv" --labels "$T/a.tsv" --json >"$T/e1.json" 2>/dev/null
atlasctl embed --edges "$T/S.tsv" --retained "$T/ret.tsv" --max-iter 300 --out "$T/c2.tsv" \
    --json >/dev/null 2>/dev/null
cmp -s "$T/c1.tsv" "$T/c2.tsv" || fail "embed is not deterministic"
# the same S written otherwise reads the same: a comment, a blank line, runs of tabs, values with
# exponents and padding zeros (strtod's path), CRLF line ends, and no newline after the last
# line, which is the pair with the largest S (so it counts)
top=$(awk -F'\t' '$3 + 0 > max { max = $3 + 0; line = $0 } END { print line }' "$T/S.tsv")
{ grep -vxF "$top" "$T/S.tsv" | awk -F'\t' 'BEGIN { print "# exported"; print "" }
    NR % 3 == 0 { printf "%s\t\t%s\t%.17e\n", $1, $2, $3; next }
    NR % 3 == 1 { print $1 "\t" $2 "\t00" $3 "000"; next } NR % 5 == 0 { print $0 "\r"; next }
    { print }'
  printf '%s' "$top"; } >"$T/S_alt.tsv"
atlasctl embed --edges "$T/S_alt.tsv" --retained "$T/ret.tsv" --max-iter 300 --out "$T/c2.tsv" \
    --json >/dev/null 2>/dev/null
cmp -s "$T/c1.tsv" "$T/c2.tsv" || fail "the same S in another notation embeds differently"
{ head -n 4 "$T/S.tsv"; printf '1_\t2_\t1.5x\n'; } >"$T/S_bad.tsv"
expect_exit 1 atlasctl embed --edges "$T/S_bad.tsv" --out "$T/x.tsv"
grep -q "S_bad.tsv:5: expected i<TAB>j<TAB>value" "$T/err" || fail "bad S line: $(cat "$T/err")"
# a file of 64 KiB or more is read in two halves on two threads: the same graph as one pass
# (the kNN does not depend on the thread count), and a bad line in the second half is counted
# from the file's start
[ "$(wc -c <"$T/S.tsv")" -ge 65536 ] || fail "S.tsv too small to be read in halves"
atlasctl embed --edges "$T/S.tsv" --threads 1 --max-iter 1 --out "$T/x.tsv" --knn-out "$T/knn1.tsv" \
    >/dev/null 2>&1 || fail "embed --threads 1"
atlasctl embed --edges "$T/S.tsv" --max-iter 1 --out "$T/x.tsv" --knn-out "$T/knn2.tsv" \
    >/dev/null 2>&1 || fail "embed"
cmp -s "$T/knn1.tsv" "$T/knn2.tsv" || fail "reading S in two halves changed the kNN graph"
{ cat "$T/S.tsv"; printf '1_\t2_\n'; } >"$T/S_bad.tsv"
expect_exit 1 atlasctl embed --edges "$T/S_bad.tsv" --out "$T/x.tsv"
grep -q "S_bad.tsv:$(($(wc -l <"$T/S.tsv") + 1)): expected" "$T/err" || fail "bad S line: $(cat "$T/err")"
[ "$(wc -l <"$T/c1.tsv")" = "$retained" ] || fail "embed did not place every retained item"
awk -F'\t' 'NF != 4 { exit 1 }' "$T/c1.tsv" || fail "coordinates are not item x y z"
purity=$(sed -n 's/.*"purity":\([0-9.]*\).*/\1/p' "$T/e1.json")
awk -v p="$purity" 'BEGIN { exit !(p > 0.45) }' || fail "3-D label purity $purity <= 0.45 (measured 0.54; chance ~0.15)"
for k in items t_edges knn_edges short_rows distortion iterations seconds peak_rss_mb; do
    grep -q "\"$k\"" "$T/e1.json" || fail "embed --json lacks $k"
done
# warm start from a result of 2000 iterations: stops in a few iterations (measured 2-5). It
# started from c1 (300 iterations, not converged) before: the run then went on optimising, for
# 147 iterations under ASan and 843 in a RelWithDebInfo build (other float rounding), over the
# bound of 300
atlasctl embed --edges "$T/S.tsv" --retained "$T/ret.tsv" --out "$T/c0.tsv" >/dev/null 2>&1 ||
    fail "embed of 2000 iterations"
atlasctl embed --edges "$T/S.tsv" --init "$T/c0.tsv" --ftol 1e-5 --out "$T/c3.tsv" --json \
    >"$T/e3.json" 2>/dev/null
its=$(sed -n 's/.*"iterations":\([0-9]*\).*/\1/p' "$T/e3.json")
[ "$its" -lt 30 ] || fail "warm start took $its iterations"
# a start with coincident points: --json stays JSON (it printed "distortion":inf, issue 10.16)
cut -f1 "$T/c1.tsv" | awk '{ print $1 "\t0\t0\t0" }' >"$T/zero.tsv"
atlasctl embed --edges "$T/S.tsv" --init "$T/zero.tsv" --max-iter 5 --out "$T/c5.tsv" --json \
    >"$T/e5.json" 2>/dev/null || true
python3 -c 'import json, sys; json.load(open(sys.argv[1]))' "$T/e5.json" ||
    fail "embed --json is not JSON: $(cat "$T/e5.json")"
# --no-prune takes T itself (i j distance)
awk -F'\t' '{ print $1 "\t" $2 "\t" 1 / log($3 > 2 ? $3 : 2.5) }' "$T/S.tsv" >"$T/T.tsv"
expect_exit 0 atlasctl embed --edges "$T/T.tsv" --no-prune --max-iter 50 --out "$T/c4.tsv"
# the text figures leave out what was not computed (it printed "label purity -1.000")
grep -q "purity" "$T/out" && fail "embed without --labels prints a purity: $(cat "$T/out")"
expect_exit 0 atlasctl embed --edges "$T/T.tsv" --no-prune --max-iter 50 --out "$T/c7.tsv" \
    --labels "$T/a.tsv"
grep -q "distortion [0-9.]* after 50 iterations, label purity 0\.[0-9]*$" "$T/out" ||
    fail "embed --labels prints no purity: $(cat "$T/out")"
grep -q "^mde passes: evaluation [0-9.]* s ([0-9]*, [0-9.e-]* ms each;" "$T/out" ||
    fail "embed prints no MDE passes: $(cat "$T/out")"
# --kernel-evals: the kernel alone, timed per edge set, without changing the coordinates
atlasctl embed --edges "$T/T.tsv" --no-prune --max-iter 50 --out "$T/c6.tsv" --json \
    --kernel-evals 20 >"$T/e6.json" 2>/dev/null || fail "embed --kernel-evals"
cmp -s "$T/c4.tsv" "$T/c6.tsv" || fail "embed --kernel-evals changed the coordinates"
python3 - "$T/e6.json" <<'PY' || fail "embed --kernel-evals: $(cat "$T/e6.json")"
import json, sys
e = json.load(open(sys.argv[1]))
k = e["kernel"]
assert k["evals"] == 20 and all(k[p] > 0 for p in ("attractive_ms", "repulsive_ms", "both_ms")), k
# where the MDE's time went: every pass ran, and the parts add up to no more than the whole
p = e["mde_passes"]
parts = ("eval", "reduce", "exact", "pair", "dir")
# every evaluation in single or double precision, and the returned distortion's in double
assert p["eval"]["calls"] + p["exact"]["calls"] == e["evaluations"] + 1, p
assert p["pair"]["calls"] == e["iterations"], p
assert all(p[q]["seconds"] > 0 and p[q]["ms"] > 0 for q in parts), p
assert 0 <= p["eval"]["wait_ms"] <= p["eval"]["ms"], p
assert sum(p[q]["seconds"] for q in parts) <= e["seconds"]["mde"] + 0.004, p
PY
expect_exit 2 atlasctl embed --edges "$T/T.tsv" --no-prune --dim 2 --kernel-evals 5 --out "$T/x.tsv"
expect_exit 2 atlasctl embed --edges "$T/S.tsv" --out "$T/x.tsv" --k 0
expect_exit 1 atlasctl embed --edges "$T/missing.tsv" --out "$T/x.tsv"
# offline pipeline to snapshots: publish, verify, export, retention, corruption detected
atlasctl gen --scale tiny --seed 7 --out /dev/null --beatmaps "$T/bm.jsonl" 2>/dev/null
atlasctl import --db "$T/db1" "$T/bm.jsonl" >/dev/null 2>&1
for i in 1 2 3; do
    atlasctl rebuild --offline --db "$T/db1" --snapshots "$T/snaps" --keep 2 >"$T/pub$i.out" 2>/dev/null ||
        fail "publish $i"
done
id=$(tail -n 1 "$T/pub3.out")
# --json says what the read ahead of the store did (store_prefetch): the whole file, none failed;
# with the file's pages dropped from the page cache first (where they can be: not on a tmpfs,
# whose resident bytes fincore still counts), it found them missing and read them
drop_cache() { dd if="$1" iflag=nocache count=0 status=none; fincore --bytes --noheadings --output RES "$1"; }
res=$(drop_cache "$T/db1/data.mdb" 2>/dev/null || echo -1)
atlasctl rebuild --offline --db "$T/db1" --no-publish --json >"$T/rbj.json" 2>/dev/null || fail "rebuild --json"
python3 - "$T/rbj.json" "$(stat -c %s "$T/db1/data.mdb")" "$res" <<'PY' || fail "rebuild --json prefetch (resident after the drop: $res): $(cat "$T/rbj.json")"
import json, sys
r = json.load(open(sys.argv[1]))
p, size, res = r["prefetch"], int(sys.argv[2]), int(sys.argv[3])
assert p["file_bytes"] == size, p
assert 0 <= p["read_bytes"] and p["missing_bytes"] <= p["file_bytes"], p
assert p["error"] == "" and p["skipped"] is False, p
assert r["seconds"]["prefetch"] >= 0 and r["verify"]["s_diffs"] == 0, r
if 0 <= res < size // 2:
    assert p["missing_bytes"] * 2 > size and p["read_bytes"] * 2 > size, p
PY
# on a terminal, reading a few pages ahead leaves no progress line: before, its bar's last
# update (100%) stayed without its newline and the command's output went on on that line
if res=$(drop_cache "$T/db1/data.mdb" 2>/dev/null) && [ "$res" -lt "$(stat -c %s "$T/db1/data.mdb")" ]; then
    script -qec "atlasctl stats --db '$T/db1'" /dev/null >"$T/tty.out" 2>&1 </dev/null || fail "stats on a terminal"
    grep -q "items" "$T/tty.out" || fail "stats on a terminal printed no figures: $(cat -v "$T/tty.out")"
    ! grep -q "prefetch" "$T/tty.out" || fail "stats on a terminal left a progress line: $(cat -v "$T/tty.out")"
fi
[ "$(cat "$T/snaps/latest")" = "$id" ] || fail "latest is not the newest snapshot ($id)"
[ "$(ls "$T/snaps" | grep -c '^corpus_[0-9_]*$')" = 2 ] || fail "retention kept $(ls "$T/snaps")"
# an offline rebuild refuses to run while another process (a daemon) owns the store
flock -o "$T/db1/atlasd.lock" sleep 30 >/dev/null 2>&1 &
holder=$!
sleep 0.3
expect_exit 1 atlasctl rebuild --offline --db "$T/db1" --snapshots "$T/snaps"
grep -q "in use by another process" "$T/err" || fail "rebuild --offline on a held store: $(cat "$T/err")"
expect_exit 1 atlasctl import --db "$T/db1" "$T/bm.jsonl"
grep -q "in use by another process" "$T/err" || fail "import into a held store: $(cat "$T/err")"
pkill -P "$holder" sleep 2>/dev/null; wait "$holder" 2>/dev/null || true
grep -q '"stability"' "$T/snaps/$id.json" || fail "manifest lacks the stability figure"
med=$(sed -n 's/.*"median":[[:space:]]*\([0-9.]*\).*/\1/p' "$T/snaps/$id.json" | head -n 1)
awk -v m="$med" 'BEGIN { exit !(m >= 0 && m < 0.03) }' ||
    fail "a warm republish of unchanged data moved items median $med of the width"
expect_exit 0 atlasctl snapshots verify --dir "$T/snaps"
expect_exit 0 atlasctl snapshots verify "$T/snaps/$id"
atlasctl snapshots export --dir "$T/snaps" --format tsv >"$T/export.tsv"
[ "$(($(wc -l <"$T/export.tsv") - 1))" = "$retained" ] || fail "export rows != retained items"
head -n 1 "$T/export.tsv" | grep -q "^item_id	x	y	" || fail "export header"
sed -n 2p "$T/export.tsv" | grep -qP '^\d+_(DT)?(EZ)?(FL)?(HR)?(HT)?\t-?[0-9.]+\t-?[0-9.]+\t' || fail "export row"
awk -F'\t' 'NR > 1 && $16 == "" { missing++ } END { exit missing > 0 }' "$T/export.tsv" ||
    fail "metadata (titles) missing from the corpus"
atlasctl snapshots list --dir "$T/snaps" | grep -q "^$id	$retained	" || fail "list"
# a failed write of the export (a full disk) is a failure with a message
set +e; atlasctl snapshots export --dir "$T/snaps" >/dev/full 2>"$T/err"; rc=$?; set -e
[ "$rc" = 1 ] && grep -q "stdout" "$T/err" || fail "export to a full disk: exit $rc, $(cat "$T/err")"
cp "$T/snaps/$id" "$T/broken"; printf 'x' >>"$T/broken"
expect_exit 1 atlasctl snapshots verify "$T/broken"
# inspect and status read the store and its latest snapshot
item=$(sed -n 2p "$T/export.tsv" | cut -f1)
expect_exit 0 atlasctl inspect "$item" --db "$T/db1" --k 5
for want in "item                 $item" "players" "top co-occurring" "kNN neighbours" "map position"; do
    grep -q "$want" "$T/out" || fail "inspect output lacks \"$want\": $(cat "$T/out")"
done
[ "$(grep -c '^  [0-9]*_' "$T/out")" -ge 6 ] || fail "inspect lists too few neighbours"
expect_exit 1 atlasctl inspect 1_DT --db "$T/db1"
expect_exit 2 atlasctl inspect not-an-id --db "$T/db1"
expect_exit 0 atlasctl status --db "$T/db1" --json
grep -q "\"retained\":$retained" "$T/out" || fail "status --db: $(cat "$T/out")"
expect_exit 2 atlasctl status

# a changed byte inside the strings keeps the structure valid: only the sha256 catches it
size=$(stat -c %s "$T/snaps/$id")
printf '\001' | dd of="$T/snaps/$id" bs=1 seek=$((size - 1)) conv=notrunc 2>/dev/null
expect_exit 1 atlasctl snapshots verify --dir "$T/snaps"
grep -q "does not match its manifest" "$T/err" || fail "sha256 mismatch not reported: $(cat "$T/err")"
# a damaged manifest is an error, not "no manifest": the corrupted corpus must not pass with it
mkdir -p "$T/dmg"
cp "$T/snaps/$id" "$T/dmg/$id"
for damage in "head -c 40" "sed s/\"sha256\"/\"sha\"/"; do
    $damage "$T/snaps/$id.json" >"$T/dmg/$id.json"
    expect_exit 1 atlasctl snapshots verify "$T/dmg/$id"
    grep -q "$id.json" "$T/err" || fail "damaged manifest ($damage): $(cat "$T/err")"
done
# the HTTP client (libcurl) follows redirects: a front end that moves /status still answers
if command -v python3 >/dev/null; then
    cat >"$T/redirect.py" <<'PY'
import http.server, sys
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path == "/status":
            self.send_response(302); self.send_header("Location", "/moved/status"); self.end_headers()
            return
        body = b'{"freshness":{"latest_snapshot":"corpus_1"}}'
        self.send_response(200); self.send_header("Content-Length", str(len(body))); self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a): pass
s = http.server.HTTPServer(("127.0.0.1", 0), H)
print(s.server_address[1], flush=True)
s.serve_forever()
PY
    python3 "$T/redirect.py" >"$T/redirect.port" &
    rpid=$!
    for _ in $(seq 50); do [ -s "$T/redirect.port" ] && break; sleep 0.1; done
    expect_exit 0 atlasctl status --url "http://127.0.0.1:$(cat "$T/redirect.port")" --json
    kill "$rpid" 2>/dev/null || true
    grep -q corpus_1 "$T/out" || fail "status --url did not follow the redirect: $(cat "$T/out" "$T/err")"
    expect_exit 1 atlasctl status --url "ftp://127.0.0.1/" --json
    # a base URL with a trailing slash (as browsers and docs write it) names the same daemon:
    # every --url command asks for /status, not //status (a stub answering the exact paths only)
    cat >"$T/paths.py" <<'PY'
import http.server, sys
log = open(sys.argv[1], "a")
class H(http.server.BaseHTTPRequestHandler):
    def parse_request(self):  # the path as sent: Python makes a leading // one /
        ok = super().parse_request()
        self.path = self.requestline.split()[1] if ok else self.path
        return ok
    def answer(self, code, body):
        log.write(self.command + " " + self.path + "\n"); log.flush()
        self.send_response(code); self.send_header("Content-Length", str(len(body))); self.end_headers()
        self.wfile.write(body)
    def do_GET(self):
        if self.path == "/status":
            self.answer(200, b'{"state":"consuming","refresh":{"rebuild_answered":7,"last_rebuild":{"ok":true,"snapshot":"corpus_1"}}}')
        elif self.path == "/items/856861_DT?k=20":
            self.answer(200, b'{}')
        else:
            self.answer(404, b"not found\n")
    def do_POST(self):
        if self.path == "/admin/rebuild":
            self.answer(202, b'{"request":7}')
        else:
            self.answer(404, b"not found\n")
    def log_message(self, *a): pass
s = http.server.HTTPServer(("127.0.0.1", 0), H)
print(s.server_address[1], flush=True)
s.serve_forever()
PY
    python3 "$T/paths.py" "$T/paths.log" >"$T/paths.port" 2>/dev/null &
    ppid=$!
    trap 'kill "$ppid" 2>/dev/null || true; rm -rf "$T"' EXIT # also when a check fails
    for _ in $(seq 50); do [ -s "$T/paths.port" ] && break; sleep 0.1; done
    base="http://127.0.0.1:$(cat "$T/paths.port")"
    for b in "$base/" "$base//"; do
        expect_exit 0 atlasctl status --url "$b" --json
        expect_exit 0 atlasctl rebuild --url "$b"
        expect_exit 0 atlasctl rebuild --url "$b" --wait
        expect_exit 0 atlasctl inspect 856861_DT --url "$b" --json
    done
    kill "$ppid" 2>/dev/null || true
    if grep -v -x -e 'GET /status' -e 'POST /admin/rebuild' -e 'GET /items/856861_DT?k=20' \
        "$T/paths.log"; then
        fail "--url with a trailing slash asked for other paths (above)"
    fi
fi
echo "cli: all checks passed"
