#!/usr/bin/env bash
# A throw-away MariaDB (Debian's mariadb-server) for the CDC test: binlog in ROW format, the
# hiscore_updates table and the Debezium account of deploy/cdc/.
#   tests/cdc/mariadb.sh start DIR   -> prints the TCP port; socket DIR/sock, pid DIR/pid
#   tests/cdc/mariadb.sh stop DIR
set -euo pipefail
src=$(cd "$(dirname "$0")/../.." && pwd)
cmd=$1 dir=$2
# Debezium 3.x's MySQL connector picks its SQL by the server's version: MariaDB 10.11 would pass
# for MySQL >= 8.4 (SHOW BINARY LOG STATUS, which MariaDB lacks). Debezium's MariaDB connector is
# not served by Maven Central here, so the server announces MySQL 5.7.19 (Connector/J would ask a MySQL 8.0 for
# transaction_isolation, which MariaDB 10.11 calls tx_isolation).
MARIADB_VERSION_STRING=${MARIADB_VERSION_STRING:-5.7.19-10.11-MariaDB-log}
case $cmd in
start)
    mkdir -p "$dir"
    dir=$(cd "$dir" && pwd)
    mariadb-install-db --no-defaults --datadir="$dir/data" --auth-root-authentication-method=normal \
        --skip-test-db --user="$(id -un)" >"$dir/install.log" 2>&1 || { cat "$dir/install.log" >&2; exit 1; }
    port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
    mariadbd --no-defaults --datadir="$dir/data" --socket="$dir/sock" --port="$port" \
        --bind-address=127.0.0.1 --pid-file="$dir/pid" --user="$(id -un)" \
        --log-bin="$dir/data/binlog" --binlog-format=ROW --binlog-row-image=FULL --server-id=1 \
        --innodb-buffer-pool-size=32M --performance-schema=OFF --skip-name-resolve \
        --default-time-zone=+00:00 --version="$MARIADB_VERSION_STRING" >"$dir/server.log" 2>&1 </dev/null &
    for i in $(seq 300); do
        mariadb-admin --no-defaults --socket="$dir/sock" -uroot ping >/dev/null 2>&1 && break
        kill -0 $! 2>/dev/null || { tail -n 20 "$dir/server.log" >&2; exit 1; }
        sleep 0.1
    done
    mariadb --no-defaults --socket="$dir/sock" -uroot <"$src/deploy/cdc/schema.sql"
    mariadb --no-defaults --socket="$dir/sock" -uroot <"$src/deploy/cdc/grants.sql"
    echo "$port" | tee "$dir/port"
    ;;
stop)
    pid=$(cat "$dir/pid" 2>/dev/null) || exit 0
    kill "$pid" 2>/dev/null || exit 0
    for i in $(seq 100); do kill -0 "$pid" 2>/dev/null || exit 0; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
    ;;
esac
