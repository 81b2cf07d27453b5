#!/usr/bin/env python3
"""JSONL hiscore rows (atlasctl gen) -> INSERT statements for osu!track's hiscore_updates, written
the way osu!track writes (INSERT ... ON DUPLICATE KEY UPDATE), in batches of 500 rows. Times in
ISO 8601 become DATETIME text (UTC). The row's own update_time is kept (the table's default is
the insert time), so the CDC test can compare with `atlasctl import` of the same rows."""
import json
import sys

COLS = ["user", "beatmap_id", "score", "pp", "mods", "rank", "score_time", "update_time", "mode",
        "is_classic"]


def sql_value(v):
    if isinstance(v, str):
        v = v.replace("T", " ").rstrip("Z") if len(v) == 20 and v[10] == "T" else v
        return "'" + v.replace("\\", "\\\\").replace("'", "''") + "'"
    return repr(v)


def main():
    batch = []

    def flush():
        if batch:
            print("INSERT INTO hiscore_updates (`user`, beatmap_id, score, pp, mods, `rank`, "
                  "score_time, update_time, mode, is_classic) VALUES\n" + ",\n".join(batch) +
                  "\nON DUPLICATE KEY UPDATE pp = VALUES(pp), update_time = VALUES(update_time);")
            batch.clear()

    for line in sys.stdin:
        r = json.loads(line)
        if "user" not in r:
            continue
        batch.append("(" + ", ".join(sql_value(r.get(c, 0)) for c in COLS) + ")")
        if len(batch) == 500:
            flush()
    flush()


main()
