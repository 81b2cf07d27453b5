#!/usr/bin/env bash
# STYLE R12: every C file is formatted with the repository's .clang-format.
set -u
cd "${ATL_SRC:-$(dirname "$0")/..}"
command -v clang-format >/dev/null || { echo "clang-format not installed: skipped"; exit 77; }
files=$(git ls-files '*.c' '*.h' 2>/dev/null || find algo store pipeline kafkaconf daemon tools tests bench -name '*.[ch]')
[ -n "$files" ] || files=$(find algo store pipeline kafkaconf daemon tools tests bench -name '*.[ch]')
clang-format --dry-run -Werror $files
