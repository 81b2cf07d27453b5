#!/usr/bin/env bash
# Dump osu!track's hiscore_updates as CSV for `atlasctl import` (the backfill of deploy/README.md):
#   tests/cdc/dump.sh MARIADB_ARGS... > dump.csv
# pp is selected as DOUBLE: the FLOAT column's exact value, so the import holds the same pp as
# the rows Debezium sends (a FLOAT printed with 6 digits would not round-trip).
set -euo pipefail
mariadb "$@" --batch --raw -e "SELECT \`user\`, beatmap_id, score, CAST(pp AS DOUBLE) AS pp, mods,
    \`rank\`, score_time, update_time, mode, is_classic FROM osutrack.hiscore_updates" | tr '\t' ','
