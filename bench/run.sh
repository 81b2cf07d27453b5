#!/usr/bin/env bash
# Every benchmark of the project in one command (not a test), with one JSON report.
#
#   bench/run.sh [BUILD_DIR] [--scale small|full|real] [--db DIR --rows FILE --labels FILE]
#                [--out REPORT.json] [--skip ingest,freshness,http]
#
# In turn: gen + import (rows/s, store size), kNN + MDE + 2-D layout on the store's graph
# (`atlasctl embed --db --layout`), refresh/freshness and the forced rebuild
# (bench/freshness.sh on the store), ingestion from Kafka (bench/ingest.sh, mock cluster,
# batches of 100,000; at full and real scale 200k events into copies of the store), and HTTP
# downloads of the latest snapshot with `wrk` on loopback (2 threads, 16 connections, 10 s).
# With --db the store is used as it is (freshness adds its 1,000-event batch to it).
# The report (default BUILD_DIR/bench-SCALE.json) holds the machine description, every figure
# and each step's raw output; README's Figures are regenerated from it. A host speed probe runs
# first and last: the MDE's evaluation kernel alone on a fixed 5,000-item graph (10 edges an
# item, in cache), one thread, 1,000 evaluations, five times (milliseconds an evaluation, the
# minimum and the median). On a shared VM the same code ran 2x slower within an hour (session
# 23), and the probe says which kind of hour a report had.
set -euo pipefail
cd "$(dirname "$0")/.."
B=build
[ $# -gt 0 ] && [ "${1#--}" = "$1" ] && { B=$1; shift; }
scale=small db="" rows="" labels="" out="" skip=""
while [ $# -gt 0 ]; do
    case $1 in
    --scale) scale=$2; shift 2 ;;
    --db) db=$2; shift 2 ;;
    --rows) rows=$2; shift 2 ;;
    --labels) labels=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    --skip) skip=$2; shift 2 ;;
    *) echo "bench/run.sh: unknown argument $1" >&2; exit 2 ;;
    esac
done
out=${out:-$B/bench-$scale.json}
for p in wrk bc curl; do
    command -v "$p" >/dev/null || { [ "$(id -u)" = 0 ] && DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$p" >/dev/null; }
done
T=$(mktemp -d "${TMPDIR:-/tmp}/atl-run-XXXXXX")
pids=()
trap 'for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done; wait 2>/dev/null; rm -rf "$T"' EXIT
skipped() { case ",$skip," in *",$1,"*) return 0 ;; esac; return 1; }
say() { echo "[$(date +%T)] $*" >&2; }
now() { date +%s.%N; }
# how fast the host runs right now: "MIN MEDIAN" ms an evaluation of the probe graph
awk 'BEGIN { n = 5000; for (i = 0; i < n; i++) for (k = 1; k <= 10; k++)
             printf "%d\t%d\t1\n", i, (i + 37 * k + (i * 7919) % 101) % n }' >"$T/probe.tsv"
probe() {
    for _ in 1 2 3 4 5; do
        $B/atlasctl embed --edges "$T/probe.tsv" --no-prune --out "$T/probe.coords" --json \
            --kernel-evals 1000 --threads 1 --max-iter 1 2>/dev/null |
            python3 -c 'import json, sys; print(json.load(sys.stdin)["kernel"]["both_ms"])'
    done | sort -n | awk '{ v[NR] = $1 } END { print v[1], v[3] }'
}
echo "start $(probe)" >"$T/probe.out"

# ---- import --------------------------------------------------------------------------------
if [ -z "$db" ]; then
    db=$T/db rows=$T/rows.jsonl labels=$T/labels.tsv
    say "gen --scale $scale"
    t0=$(now)
    $B/atlasctl gen --scale "$scale" --out "$rows" --labels "$labels" --beatmaps "$T/bm.jsonl" 2>"$T/gen.out"
    t1=$(now)
    echo "gen_seconds $(echo "$t1 - $t0" | bc -l)" >>"$T/gen.out"
    say "import"
    /usr/bin/time -f 'wall %e user %U sys %S maxrss_kb %M' -o "$T/import.time" \
        $B/atlasctl import --db "$db" "$rows" "$T/bm.jsonl" >"$T/import.out" 2>&1
fi
$B/atlasctl stats --db "$db" >"$T/stats.out" 2>&1 || true

# ---- kNN, MDE, layout --------------------------------------------------------------------------
say "embed: kNN, MDE 2000 iterations, 2-D layout"
lab=()
[ -n "$labels" ] && lab=(--labels "$labels")
$B/atlasctl embed --db "$db" --out "$T/coords.tsv" --layout "$T/map.tsv" "${lab[@]}" --json \
    >"$T/embed.out" 2>/dev/null

# ---- refresh, freshness, rebuild ---------------------------------------------------------------
if ! skipped freshness && [ -n "$rows" ]; then
    say "freshness (bench/freshness.sh --db)"
    bench/freshness.sh "$B" --db "$db" --rows "$rows" >"$T/freshness.out" 2>&1 || echo "freshness failed" >>"$T/freshness.out"
fi

# ---- ingestion -------------------------------------------------------------------------------
# small: the whole stream into empty stores; full and real: 200,000 events into copies of the
# store (bench/ingest.sh says why), after the freshness step, whose first refresh gives a store
# made by the import above its map (a daemon without one makes it during the measurement)
if ! skipped ingest; then
    ing=(--scale "$scale")
    case $scale in tiny|demo|small) ;; *) ing=(--db "$db" --rows "$rows" --events 200000) ;; esac
    say "ingest (bench/ingest.sh ${ing[*]} --batch 100000)"
    bench/ingest.sh "$B" "${ing[@]}" --batch 100000 >"$T/ingest.out" 2>&1 || echo "ingest failed" >>"$T/ingest.out"
fi

# ---- HTTP downloads ----------------------------------------------------------------------------
if ! skipped http && command -v wrk >/dev/null; then
    say "HTTP: wrk on /snapshots/latest"
    $B/atlasctl kafka-mock --partitions 2 >"$T/mock.out" 2>/dev/null </dev/null &
    pids+=($!)
    for _ in $(seq 100); do brokers=$(head -n 1 "$T/mock.out" 2>/dev/null || true); [ -n "$brokers" ] && break; sleep 0.1; done
    $B/atlasd --db "$db" --brokers "$brokers" --http 127.0.0.1:0 --stats-interval 0 \
        --refresh-interval 3600 --log-file "$T/d.log" &
    pids+=($!)
    port=""
    for _ in $(seq 600); do
        port=$({ grep -o 'msg="listening" addr=[^ ]* port=[0-9]*' "$T/d.log" 2>/dev/null || true; } | tail -n 1 | sed 's/.*port=//')
        [ -n "$port" ] && break; sleep 0.1
    done
    U="http://127.0.0.1:$port"
    for _ in $(seq 600); do curl -fs -o /dev/null "$U/snapshots/latest" && break; sleep 0.5; done
    curl -fs -o "$T/latest.bin" "$U/snapshots/latest" || true
    echo "bytes $(stat -c %s "$T/latest.bin" 2>/dev/null || echo 0)" >"$T/http.out"
    wrk -t2 -c16 -d10s "$U/snapshots/latest" >>"$T/http.out" 2>&1 || true
    echo "== status" >>"$T/http.out"
    wrk -t2 -c16 -d5s "$U/status" >>"$T/http.out" 2>&1 || true
fi

echo "end $(probe)" >>"$T/probe.out"

# ---- report ------------------------------------------------------------------------------------
python3 - "$T" "$out" "$scale" "$B" <<'EOF'
import json, os, platform, re, subprocess, sys
T, out, scale, B = sys.argv[1:5]
def rd(name):
    try:
        return open(os.path.join(T, name)).read()
    except OSError:
        return ""
def num(pattern, text, cast=float):
    m = re.search(pattern, text)
    return cast(m.group(1)) if m else None
def sh(cmd):
    try:
        return subprocess.run(cmd, shell=True, capture_output=True, text=True).stdout.strip()
    except OSError:
        return ""
cpuinfo = rd("/proc/cpuinfo") or open("/proc/cpuinfo").read()
machine = {
    "cpu": num(r"model name\s*:\s*(.*)", cpuinfo, str),
    "cores": os.cpu_count(),
    "mem_gib": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
    "avx2": " avx2 " in cpuinfo, "avx512f": " avx512f " in cpuinfo,
    "kernel": platform.release(), "compiler": sh("cc --version | head -n 1"),
    "commit": sh("git rev-parse --short HEAD"), "load_avg": os.getloadavg(),
}
probe = {}
for when in ("start", "end"):  # "start MIN MEDIAN", "end MIN MEDIAN"
    m = re.search(when + r" ([\d.]+) ([\d.]+)", rd("probe.out"))
    if m:
        probe[when] = {"min": float(m.group(1)), "median": float(m.group(2))}
machine["probe_kernel_ms"] = probe
rep = {"scale": scale, "machine": machine, "figures": {}, "raw": {}}
f = rep["figures"]
imp, tm = rd("import.out"), rd("import.time")
if imp:
    f["import"] = {"rows_per_second": num(r"\((\d+) rows/s\)", imp, int),
                   "seconds": num(r"time\s+([\d.]+) s", imp), "max_rss_kb": num(r"maxrss_kb (\d+)", tm, int)}
st = rd("stats.out")
f["store"] = {"file_mib": num(r"bytes\s+\d+ \(([\d.]+) MiB", st),
              "live_mib": num(r"([\d.]+) MiB live", st), "pairs": num(r"pairs\s+(\d+)", st, int),
              "bytes_per_pair": num(r"bytes per pair\s+([\d.]+)", st)}
ing = rd("ingest.out")
if ing:
    f["ingest"] = {"kafka_events_per_second": num(r"kafka -> lmdb\s+([\d.]+) events/s", ing),
                   "import_events_per_second": num(r"import \(limit\)\s+([\d.]+) events/s", ing),
                   "ratio": num(r"ratio\s+([\d.]+)", ing),
                   "events": num(r"rows (\d+),", ing, int),
                   "into_store": num(r"\((\d+) events applied before\)", ing, int),
                   "digests_equal": "digests equal" in ing}
emb = rd("embed.out").strip().splitlines()
if emb:
    e = json.loads(emb[-1])
    f["embed"] = {k: e.get(k) for k in ("items", "t_edges", "knn_edges", "repulsive_edges", "iterations",
                                          "distortion", "purity", "purity_2d", "peak_rss_mb", "threads")}
    f["embed"]["seconds"] = e.get("seconds")
    f["embed"]["mde_ms_per_call"] = {k: v.get("ms") for k, v in (e.get("mde_passes") or {}).items()}
fr = rd("freshness.out")
if fr:
    f["freshness"] = {"map_ready_s": num(r"map ready\s+([\d.]+) s", fr),
                      "first_refresh_s": num(r"first refresh \(state\)\s+([\d.]+) s", fr),
                      "freshness_s": num(r"freshness \(\d+ events\)\s+([\d.]+) s", fr),
                      "incremental_refresh_s": num(r"freshness \(\d+ events\).* seconds=([\d.]+)", fr),
                      "commit_s": num(r"freshness parts\s+\d+ batches committed in ([\d.]+) s", fr),
                      "refresh_start_s": num(r"the refresh started ([\d.]+) s after", fr),
                      "full_rebuild_s": num(r"full rebuild\s+([\d.]+) s", fr),
                      "ratio_percent": num(r"= ([\d.]+)%", fr)}
ht = rd("http.out")
if ht:
    parts = ht.split("== status")
    f["http"] = {"snapshot_bytes": num(r"bytes (\d+)", ht, int),
                 "snapshot_requests_per_second": num(r"Requests/sec:\s+([\d.]+)", parts[0]),
                 "snapshot_transfer_per_second": num(r"Transfer/sec:\s+(\S+)", parts[0], str),
                 "snapshot_latency_avg": num(r"Latency\s+(\S+)", parts[0], str),
                 "status_requests_per_second": num(r"Requests/sec:\s+([\d.]+)", parts[1]) if len(parts) > 1 else None}
for k in ("probe.out", "gen.out", "import.out", "import.time", "stats.out", "ingest.out", "embed.out", "freshness.out", "http.out"):
    rep["raw"][k] = rd(k)
with open(out, "w") as fh:
    json.dump(rep, fh, indent=1)
print(json.dumps(f, indent=1))
print("report:", out)
EOF
