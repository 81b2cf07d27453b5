#!/usr/bin/env bash
# atlasctl on bad input and hostile surroundings (a review of the operator CLI): empty paths,
# tiny generator sizes, --init rows naming unknown items, CSV read alike by import and produce
# (quotes, empty cells, unclosed quotes, BOMs, blank lines, headers), HTTP servers that never
# answer, stores that are not stores, kafka-mock's fault commands, option values out of range,
# writes that fail. Every check runs (a failure is counted, not fatal) and each command is capped
# in time, so a hang shows as exit 124.
set -uo pipefail
T=$(mktemp -d "${TMPDIR:-/tmp}/atl-clierr-XXXXXX")
PIDS=()
cleanup() {
    local p
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$T"
}
trap cleanup EXIT
FAILS=0
fail() {
    echo "FAIL: $* (line ${BASH_LINENO[0]})" >&2
    FAILS=$((FAILS + 1))
    return 1
}
expect_exit() { # code cmd...: exit code and output ($T/out, $T/err) of one capped command
    local want=$1 got
    shift
    timeout -k 5 60 "$@" >"$T/out" 2>"$T/err"
    got=$?
    [ "$got" = "$want" ] && return 0
    echo "--- stdout/stderr of: $*" >&2
    head -c 2000 "$T/out" "$T/err" >&2
    fail "exit $got (want $want): $*"
}
expect_exit_full() { # code cmd...: as expect_exit with stdout on /dev/full (writes fail: ENOSPC)
    local want=$1 got
    shift
    timeout -k 5 60 "$@" >/dev/full 2>"$T/err"
    got=$?
    [ "$got" = "$want" ] && return 0
    head -c 2000 "$T/err" >&2
    fail "exit $got (want $want): $* >/dev/full"
}
err_has() { # pattern what
    grep -q -- "$1" "$T/err" || fail "$2: stderr lacks \"$1\": $(head -c 600 "$T/err")"
}
json_field() { sed -n "s/.*\"$1\":\"\{0,1\}\([^,\"}]*\).*/\1/p" "$T/out"; }
mkdir -p "$T/cwd"
cd "$T/cwd" || exit 1

atlasctl gen --scale tiny --seed 3 --out "$T/a.jsonl" --beatmaps "$T/bm.jsonl" 2>/dev/null
atlasctl gen --scale tiny --seed 3 --format csv --out "$T/a.csv" 2>/dev/null
head -n 500 "$T/a.csv" >"$T/h500.csv"                   # a header and 499 rows
atlasctl import --db "$T/s" "$T/a.jsonl" "$T/bm.jsonl" >/dev/null 2>&1 || fail "import a.jsonl"

# ---- 1. empty paths are usage errors, and nothing is written into / ----------------------------
roots=$(for f in data.mdb lock.mdb atlasd.lock compact.tmp snapshots; do [ -e "/$f" ] && echo "$f"; done)
for cmd in "import --db= $T/h500.csv" "rebuild --offline --db=" "compact --db=" \
    "debug-poke --db= 1_ 2_ 0.5" "stats --db=" "status --db=" "export-graph --db= --out $T/x" \
    "inspect 1_ --db=" "embed --db= --out $T/x" "gen --out=" "import --db $T/i0 ''" \
    "snapshots verify ''" "embed --edges= --out $T/x"; do
    eval "expect_exit 2 atlasctl $cmd" && err_has "empty" "$cmd"
done
for f in data.mdb lock.mdb atlasd.lock compact.tmp snapshots; do
    [ -e "/$f" ] && ! grep -qx "$f" <<<"$roots" &&
        fail "/$f appeared (an empty --db named the root directory)"
done
expect_exit 2 atlasctl status --db "" && err_has "--db" "status --db ''"
[ -e "$T/i0" ] && fail "import with an empty FILE created its store"

# ---- 2. gen on small sizes --------------------------------------------------------------------
for items in 1 10 40 60 100; do
    expect_exit 0 atlasctl gen --users 20 --items $items --out "$T/g$items.jsonl" \
        --labels "$T/g$items.tsv" || continue
    [ -s "$T/g$items.jsonl" ] || fail "gen --items $items: no rows"
done
expect_exit 0 atlasctl gen --users 1 --items 1 --out "$T/g1.csv" --format csv
expect_exit 2 atlasctl gen --users 0 --out "$T/x" && err_has "--users" "gen --users 0"
expect_exit 2 atlasctl gen --items 0 --out "$T/x" && err_has "--items" "gen --items 0"

# ---- 3. embed --init naming an item twice that is not in the graph ------------------------------
for i in $(seq 1 30); do for j in $(seq $((i + 1)) 30); do
    printf '%d_\t%d_\t%d\n' "$i" "$j" $((3 + (i * j) % 7))
done; done >"$T/S.tsv"
{ printf '999_\t1\t2\t3\n5_\t0.1\t0.2\t0.3\n999_\t4\t5\t6\n998_\t1\t1\t1\n998_\t1\t1\t1\n'; } \
    >"$T/init.tsv"
expect_exit 0 atlasctl embed --edges "$T/S.tsv" --init "$T/init.tsv" --max-iter 5 \
    --out "$T/c.tsv" --labels "$T/init.tsv"
[ "$(wc -l <"$T/c.tsv" 2>/dev/null)" = 30 ] || fail "embed --init: not 30 items placed"

# ---- 5. an unclosed quote: that row is rejected by its line, every other row is read ------------
sed 's/"//g' "$T/h500.csv" >"$T/noq.csv" # gen quotes score_time: without those quotes
awk 'NR == 6 { sub(/,A,/, ",\"A,") } { print }' "$T/noq.csv" >"$T/q1.csv"
expect_exit 0 atlasctl import --db "$T/q1" --json "$T/q1.csv"
[ "$(json_field rows)" = 499 ] || fail "unclosed quote: rows $(json_field rows), want 499"
[ "$(json_field rejected)" = 1 ] || fail "unclosed quote: rejected $(json_field rejected), want 1"
err_has "q1.csv:6: .*quoted field .*not closed" "unclosed quote"
# two stray quotes 294 lines apart: the first swallows the lines up to the second (where text
# follows the "closing" quote); its first line is rejected, the lines after it are read again
awk 'NR == 6 || NR == 300 { sub(/,A,/, ",\"A,") } { print }' "$T/noq.csv" >"$T/q2.csv"
expect_exit 0 atlasctl import --db "$T/q2" --json "$T/q2.csv"
[ "$(json_field rows)" = 499 ] && [ "$(json_field rejected)" = 2 ] ||
    fail "two stray quotes: rows $(json_field rows) rejected $(json_field rejected), want 499 and 2"
err_has "q2.csv:6: .*lines 7-300 are read again" "two stray quotes" &&
    err_has "q2.csv:300: .*not closed" "two stray quotes"
# a quote that opens and closes 294 lines later: one record of the wrong width, read again too
awk 'NR == 6 { sub(/,A,/, ",\"A,") } NR == 300 { sub(/,A,/, ",A\",") } { print }' "$T/noq.csv" \
    >"$T/q5.csv"
expect_exit 0 atlasctl import --db "$T/q5" --json "$T/q5.csv"
[ "$(json_field rows)" = 499 ] && [ "$(json_field rejected)" = 1 ] ||
    fail "a closed stray quote: rows $(json_field rows) rejected $(json_field rejected), want 499 and 1"
err_has "q5.csv:6: .*line break in column \"rank\" of a record over lines 6-300" "a closed stray quote"
# gen's own CSV (score_time quoted) with a stray quote: the line itself is the bad record
awk 'NR == 6 { sub(/,A,/, ",\"A,") } { print }' "$T/h500.csv" >"$T/q4.csv"
expect_exit 0 atlasctl import --db "$T/q4" --json "$T/q4.csv"
[ "$(json_field rows)" = 499 ] && [ "$(json_field rejected)" = 1 ] ||
    fail "a stray quote in gen's CSV: rows $(json_field rows) rejected $(json_field rejected)"
err_has "q4.csv:6: .*quote" "a stray quote in gen's CSV"
# more than 64 cells, text after a closing quote: each its own message
{ head -n 3 "$T/h500.csv"; printf '1%.0s,' $(seq 70); echo; sed -n 4p "$T/h500.csv" |
    sed 's/,A,/,"A"x,/'; sed -n '5,10p' "$T/h500.csv"; } >"$T/q3.csv"
expect_exit 0 atlasctl import --db "$T/q3" --json "$T/q3.csv"
[ "$(json_field rows)" = 10 ] && [ "$(json_field rejected)" = 2 ] ||
    fail "q3: rows $(json_field rows) rejected $(json_field rejected), want 10 and 2"
err_has "q3.csv:4: .*more than 64" "70 cells" && err_has "q3.csv:5: .*after a closing quote" "\"A\"x"
# a quoted title over two lines is one field; a bad row after it is named by its physical line
{ echo 'beatmap_id,beatmapset_id,title,artist'
  printf '%s\n' '1001,77,"Two' 'Lines",someone' '1002,78,"Plain, with a comma",x' '1003,,t,y'; } \
    >"$T/bm.csv"
expect_exit 0 atlasctl import --db "$T/bmq" --json "$T/bm.csv"
[ "$(json_field rows)" = 3 ] && [ "$(json_field rejected)" = 1 ] ||
    fail "multi-line title: rows $(json_field rows) rejected $(json_field rejected), want 3 and 1"
err_has "bm.csv:5:" "the row after a two-line field"

# ---- 6. a BOM, leading blank lines, bad headers -----------------------------------------------
expect_exit 0 atlasctl import --db "$T/plain" --json "$T/h500.csv"
plain_rej=$(json_field rejected)
want=$(atlasctl stats --db "$T/plain" --json | sed -n 's/.*"digest":"\([^"]*\)".*/\1/p')
{ printf '\357\273\277'; cat "$T/h500.csv"; } >"$T/bom.csv"
{ printf '\n\r\n'; cat "$T/h500.csv"; } >"$T/blank.csv"
{ printf '\357\273\277'; head -n 499 "$T/a.jsonl"; } >"$T/bom.dump" # no suffix: by content
{ printf '\357\273\277\n'; cat "$T/h500.csv"; } >"$T/bomblank.dump"
for f in bom.csv blank.csv bom.dump bomblank.dump; do
    expect_exit 0 atlasctl import --db "$T/db-$f" --json "$T/$f" || continue
    [ "$(json_field rows)" = 499 ] && [ "$(json_field rejected)" = "$plain_rej" ] ||
        fail "$f: rows $(json_field rows) rejected $(json_field rejected) (plain: 499, $plain_rej)"
    got=$(atlasctl stats --db "$T/db-$f" --json | sed -n 's/.*"digest":"\([^"]*\)".*/\1/p')
    [ "$got" = "$want" ] || fail "$f: digest $got, plain CSV $want"
done
hdr=$(head -n 1 "$T/h500.csv")
for bad in "${hdr/score,/user,}:duplicate" "${hdr/,pp,/,,}:empty" "${hdr/,pp,/,ppx,}:pp" \
    "foo,bar:user"; do
    { echo "${bad%:*}"; sed -n '2,5p' "$T/h500.csv"; } >"$T/hdr.csv"
    expect_exit 1 atlasctl import --db "$T/hdr" "$T/hdr.csv" && err_has "hdr.csv:1: .*${bad##*:}" "header ${bad%:*}"
done

# ---- 4 (and 6). produce sends what import reads: quoted and empty cells, a BOM -----------------
mkfifo "$T/mock.in"
atlasctl kafka-mock --brokers 1 --partitions 1 --topics h,b <"$T/mock.in" >"$T/mock.out" \
    2>"$T/mock.err" &
mock=$!
PIDS+=("$mock")
exec 7>"$T/mock.in"
for _ in $(seq 100); do BROKERS=$(head -n 1 "$T/mock.out" 2>/dev/null); [ -n "$BROKERS" ] && break; sleep 0.1; done
{ printf '\357\273\277'; head -n 1 "$T/h500.csv"; sed -n '2,20p' "$T/h500.csv"
  sed -n 21p "$T/h500.csv" | sed 's/,A,/,,/'; sed -n 22p "$T/h500.csv" | sed 's/^\([0-9]*\),[0-9]*,/\1,"1",/'
  echo '5000,55046,,"12.5",0,"S, or so","2014-01-19 09:10:13",2014-01-19 09:10:13,0,\N'; } >"$T/p.csv"
expect_exit 0 atlasctl produce --brokers "$BROKERS" --topic h "$T/p.csv"
expect_exit 0 atlasctl consume --brokers "$BROKERS" --topic h --count 22 --timeout-ms 5000
cp "$T/out" "$T/consumed.jsonl"
command -v python3 >/dev/null && # the CSV as Python's csv module reads it, typed as import types it
python3 - "$T/p.csv" "$T/consumed.jsonl" <<'PY' || fail "produce: the messages are not the CSV rows"
import csv, json, sys
def cell(s):  # store/event.c cell_value: empty, NULL and \N are null; numbers are numbers
    if s in ("", "NULL", "\\N"):
        return None
    try:
        return float(s)
    except ValueError:
        return s
with open(sys.argv[1], encoding="utf-8-sig", newline="") as f:
    rows = list(csv.reader(f))
want = [{k: cell(v) for k, v in zip(rows[0], r)} for r in rows[1:]]
got = [json.loads(json.loads(l)["value"]) for l in open(sys.argv[2])]
if len(got) != len(want):
    sys.exit("%d messages for %d rows" % (len(got), len(want)))
for i, (g, w) in enumerate(zip(got, want)):
    if g != w:
        sys.exit("row %d: sent %r\n  the CSV has %r" % (i + 2, g, w))
PY

# ---- 10. kafka-mock's fault commands, produce's brokers and its time limit ----------------------
echo "error 0 -1 1" >&7
echo "error 0 99999999999 1" >&7
echo "error 3 1 6" >&7
sleep 1
kill -0 "$mock" 2>/dev/null || fail "kafka-mock died on a bad error command: $(tail -n 3 "$T/mock.err")"
grep -q "COUNT" "$T/mock.err" || fail "kafka-mock: no message for a bad COUNT: $(cat "$T/mock.err")"
grep -q "done: error 3 1 6" "$T/mock.err" || fail "kafka-mock: a good error command was not done"
exec 7>&-
expect_exit 2 atlasctl produce --brokers '' "$T/p.csv" && err_has "--brokers" "produce --brokers ''"
expect_exit 0 atlasctl produce --help && grep -q -- "--timeout" "$T/out" || fail "produce --timeout"
start=$(date +%s)
expect_exit 1 atlasctl produce --brokers 127.0.0.1:1 --timeout 3 "$T/p.csv" &&
    err_has "not acknowledged within 3 s" "produce to no broker"
[ $(($(date +%s) - start)) -le 20 ] || fail "produce to no broker took $(($(date +%s) - start)) s"

# ---- 7. HTTP: a server that accepts and never answers; a slow download is not cut -------------
if command -v python3 >/dev/null; then
    cat >"$T/mute.py" <<'PY'
import http.server, socketserver, sys, time
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path.startswith("/lost/"):  # a daemon that restarted after taking request 5
            body = (b'{"request":5}' if self.command == "POST" else
                    b'{"refresh":{"kind":"idle","rebuild_requested":0,"rebuild_answered":0}}')
            self.send_response(202 if self.command == "POST" else 200)
            self.send_header("Content-Length", str(len(body))); self.end_headers()
            self.wfile.write(body)
            return
        if self.path.startswith("/items/7_") or self.path.startswith("/items/8_"):
            body = b'{"item":"7_","map":{"x":1}}' if "/7_" in self.path else b"not json"
            self.send_response(200); self.send_header("Content-Length", str(len(body)))
            self.end_headers(); self.wfile.write(body)
            return
        if self.path.startswith("/snapshots/corpus_2"):  # 12 bytes over 6 s: slow, not stalled
            self.send_response(200); self.send_header("Content-Length", "12"); self.end_headers()
            for _ in range(12):
                self.wfile.write(b"x"); self.wfile.flush(); time.sleep(0.5)
            return
        time.sleep(3600)
    do_POST = do_GET
    def log_message(self, *a): pass
class S(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
s = S(("127.0.0.1", 0), H)
print(s.server_address[1], flush=True)
s.serve_forever()
PY
    python3 "$T/mute.py" >"$T/mute.port" &
    PIDS+=($!)
    for _ in $(seq 50); do [ -s "$T/mute.port" ] && break; sleep 0.1; done
    mute="http://127.0.0.1:$(cat "$T/mute.port")"
    for cmd in "status --url $mute" "inspect 1_ --url $mute" "snapshots export --url $mute" \
        "rebuild --url $mute" "rebuild --url $mute --wait"; do
        start=$(date +%s)
        expect_exit 1 atlasctl $cmd --http-timeout 2 && err_has "timed out" "$cmd"
        [ $(($(date +%s) - start)) -le 10 ] || fail "$cmd took $(($(date +%s) - start)) s"
    done
    expect_exit 1 atlasctl snapshots export --url "$mute" --id corpus_2 --http-timeout 2 &&
        err_has "not a well-formed corpus" "a slow download (6 s at a 2 s limit) was cut"
    expect_exit 2 atlasctl status --url "$mute" --http-timeout 0
    # answers that are not what a daemon sends: a map without "xyz" was a segfault, text that is
    # not JSON an exit 0
    expect_exit 1 atlasctl inspect 7_ --url "$mute" --http-timeout 2 &&
        err_has '"xyz"' "inspect of a map without coordinates"
    expect_exit 1 atlasctl inspect 8_ --url "$mute" --http-timeout 2 &&
        err_has "not JSON" "inspect of an answer that is not JSON"
    # rebuild --wait against a daemon that restarted (its request counter back at 0): it waited
    # forever (no --timeout) or took a later rebuild for its own
    expect_exit 1 atlasctl rebuild --url "$mute/lost" --wait --http-timeout 2 &&
        err_has "restarted" "rebuild --wait across a daemon restart"
fi

# ---- 9. stores that are not stores; compact cleans up after a failed write ---------------------
mkdir -p "$T/notstore"
echo keep >"$T/notstore/file"
for cmd in "rebuild --offline --db $T/notstore" "compact --db $T/notstore" \
    "debug-poke --db $T/notstore 1_ 2_ 0.5" "stats --db $T/notstore"; do
    expect_exit 1 atlasctl $cmd && err_has "not a store" "$cmd"
done
[ "$(ls -A "$T/notstore")" = file ] || fail "commands on a non-store left: $(ls -A "$T/notstore")"
expect_exit 1 atlasctl rebuild --offline --db "$T/missing"
[ -e "$T/missing" ] && fail "rebuild --offline created $T/missing"
d0=$(atlasctl stats --db "$T/s" --json | sed -n 's/.*"digest":"\([^"]*\)".*/\1/p')
(trap '' XFSZ; ulimit -f 64; exec atlasctl compact --db "$T/s") >"$T/out" 2>"$T/err" &&
    fail "compact with a 64 KiB file size limit succeeded"
err_has "compact.tmp" "compact write failure"
[ -e "$T/s/compact.tmp" ] && fail "compact left $(find "$T/s/compact.tmp")"
[ "$(atlasctl stats --db "$T/s" --json | sed -n 's/.*"digest":"\([^"]*\)".*/\1/p')" = "$d0" ] ||
    fail "a failed compact changed the store"

# ---- 11. numeric option values out of range are usage errors, naming the option ----------------
while read -r opt cmd; do
    eval "expect_exit 2 atlasctl $cmd" && err_has "$opt" "$cmd"
done <<EOF
--min-pp import --db $T/r --min-pp nan $T/h500.csv
--min-pp import --db $T/r --min-pp inf $T/h500.csv
--min-pp import --db $T/r --min-pp -1 $T/h500.csv
--max-iter embed --edges $T/S.tsv --out $T/x --max-iter 4294967296
--top embed --edges $T/S.tsv --out $T/x --top 4294967296
--kernel-evals embed --edges $T/S.tsv --out $T/x --kernel-evals 1000001
--ftol embed --edges $T/S.tsv --out $T/x --ftol nan
--ftol embed --edges $T/S.tsv --out $T/x --ftol -1
--keep rebuild --offline --db $T/s --keep 4294967297
DELTA debug-poke --db $T/s 1_ 2_ nan
DELTA debug-poke --db $T/s 1_ 2_ inf
EOF
[ -e "$T/r" ] && fail "import with a bad --min-pp created its store"

# ---- 11b. import's update_time tolerance is atlasd's (--max-future-seconds, default one day) ----
ahead=$(date -u -d "@$(($(date +%s) + 10 * 86400))" '+%Y-%m-%d %H:%M:%S')
head -n 20 "$T/a.jsonl" | grep '"user"' | sed "s/\"update_time\":\"[^\"]*\"/\"update_time\":\"$ahead\"/" >"$T/ahead.jsonl"
n_ahead=$(wc -l <"$T/ahead.jsonl")
expect_exit 0 atlasctl import --db "$T/fut0" --json "$T/ahead.jsonl"
[ "$(json_field rejected)" = "$n_ahead" ] || fail "rows 10 days ahead: rejected $(json_field rejected), want $n_ahead"
err_has "bad_time): field \"update_time\" is .* in the future (tolerance 86400 s)" "rows 10 days ahead"
expect_exit 0 atlasctl import --db "$T/fut1" --json --max-future-seconds 864000 "$T/ahead.jsonl"
[ "$(json_field rejected)" = 0 ] || fail "--max-future-seconds 864000: rejected $(json_field rejected), want 0"
expect_exit 0 atlasctl import --db "$T/fut2" --json --max-future-seconds 863000 "$T/ahead.jsonl"
[ "$(json_field rejected)" = "$n_ahead" ] || fail "--max-future-seconds 863000: rejected $(json_field rejected), want $n_ahead"
expect_exit 2 atlasctl import --db "$T/fut3" --max-future-seconds 315360001 "$T/ahead.jsonl" &&
    err_has "max-future-seconds" "--max-future-seconds out of range"
[ -e "$T/fut3" ] && fail "import with a bad --max-future-seconds created its store"

# ---- 12. failed writes are failures with a message ---------------------------------------------
for cmd in "stats --db $T/s" "stats --db $T/s --json" "status --db $T/s" "status --db $T/s --json"; do
    expect_exit_full 1 atlasctl $cmd && err_has "stdout" "$cmd >/dev/full"
done
expect_exit 1 atlasctl export-graph --db "$T/s" --out /dev/full &&
    err_has "/dev/full" "export-graph --out /dev/full"
grep -q "retained items" "$T/err" && fail "export-graph --out /dev/full printed its summary"
expect_exit 1 atlasctl embed --edges "$T/S.tsv" --max-iter 5 --out /dev/full &&
    err_has "/dev/full" "embed --out /dev/full"

[ "$FAILS" = 0 ] || { echo "cli-errors: $FAILS checks failed" >&2; exit 1; }
echo "cli-errors: all checks passed"
