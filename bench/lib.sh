# Helpers shared by the benchmark scripts (sourced, not run).

# new_pp_batch BUILD DB ROWS N OUT: N events for the store DB that change existing plays: the
# first N nomod-mode hiscore rows of ROWS with a new pp, dated a day after the newest update DB
# holds (so each changes the profile entry it names, however often a bench ran on this store).
# A store benches ran on holds times past tomorrow (each batch is dated a day past the newest),
# so what takes the batch (atlasd, import) needs --max-future-seconds lifted.
# Fails if ROWS has too few rows.
new_pp_batch() {
    local b=$1 db=$2 rows=$3 n=$4 out=$5 newest when salt
    newest=$("$b/atlasctl" status --db "$db" --json | sed -n 's/.*"newest_update_time":\([0-9]*\).*/\1/p')
    when=$(date -u -d "@$(( ${newest:-0} > $(date +%s) ? ${newest:-0} + 86400 : $(date +%s) + 86400 ))" '+%Y-%m-%d %H:%M:%S')
    salt=$(date +%s)
    { grep '"pp":' "$rows" | grep '"mode":0' | head -n "$n" || true; } |
        sed -e 's/"pp":[0-9.]*/"pp":"PP"/' -e "s/\"update_time\":\"[^\"]*\"/\"update_time\":\"$when\"/" |
        awk -v salt="$salt" '{ sub(/"PP"/, 200 + (NR * 37 + salt) % 500); print }' >"$out"
    [ "$(wc -l <"$out")" = "$n" ] || { echo "could not take $n rows from $rows" >&2; return 1; }
}
