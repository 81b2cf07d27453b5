#!/usr/bin/env bash
# Install what is missing (Debian/Ubuntu), then configure and build atlasd.
# usage: tools/setup.sh [BUILD_DIR] [extra cmake args...]
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build}
shift || true
pkgs=(build-essential cmake pkg-config clang-format git curl
      librdkafka-dev liblmdb-dev lmdb-utils libuv1-dev libcjson-dev libxxhash-dev
      libh2o-dev libssl-dev libzstd-dev libcurl4-openssl-dev libsystemd-dev ${ATL_EXTRA_PKGS:-})
missing=()
for p in "${pkgs[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    echo "setup: installing ${missing[*]}" >&2
    sudo=""
    [ "$(id -u)" = 0 ] || sudo="sudo"
    $sudo apt-get update -q
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q --no-install-recommends "${missing[@]}"
fi
cmake -S . -B "$build" "$@" >/dev/null
# ATL_BUILD_TARGETS="atlasd atlasctl": only those (the demo), not the tests and fuzz targets
targets=()
for t in ${ATL_BUILD_TARGETS:-}; do targets+=(--target "$t"); done
cmake --build "$build" -j "$(nproc)" "${targets[@]}"
