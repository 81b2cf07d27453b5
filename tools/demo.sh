#!/usr/bin/env bash
# The newcomer's main command: install, build, generate a synthetic osu!track stream, load it
# into a store and print what the store holds.
# usage: tools/demo.sh [--scale tiny|small|full] [--state DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
scale=small state=state/demo
while [ $# -gt 0 ]; do
    case $1 in
    --scale) scale=$2; shift 2 ;;
    --state) state=$2; shift 2 ;;
    -h|--help) sed -n '2,4p' "$0"; exit 0 ;;
    *) echo "demo: unknown argument $1" >&2; exit 2 ;;
    esac
done
tools/setup.sh build
mkdir -p "$state"
rm -rf "$state/db"
echo "== generating a $scale synthetic hiscore stream" >&2
build/atlasctl gen --scale "$scale" --out "$state/hiscores.jsonl" --labels "$state/labels.tsv" \
    --beatmaps "$state/beatmaps.jsonl"
echo "== importing it into $state/db" >&2
build/atlasctl import --db "$state/db" "$state/beatmaps.jsonl" "$state/hiscores.jsonl"
echo "== verifying the incremental state against a rebuild from the profiles" >&2
build/atlasctl rebuild --offline --verify --db "$state/db"
echo "== store" >&2
build/atlasctl stats --db "$state/db"
