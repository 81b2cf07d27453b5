#!/usr/bin/env bash
# Kafka Connect standalone with the Debezium MySQL connector (deploy/cdc/pom.xml's jars from
# Maven Central) and deploy/cdc/'s worker and connector files, configured from the environment
# exactly as the compose `connect` service is:
#   BOOTSTRAP_SERVERS=... DB_PORT=... HISCORES_TOPIC=... tests/cdc/connect.sh DIR  (foreground)
set -euo pipefail
. "$(dirname "$0")/../kafka/lib.sh"
src=$(cd "$(dirname "$0")/../.." && pwd)
dir=$1
mkdir -p "$dir"
lib=$(kafka_lib "$src/deploy/cdc/pom.xml")
export DB_HOST=${DB_HOST:-127.0.0.1} DB_USER=${DB_USER:-debezium} DB_PASSWORD=${DB_PASSWORD:-dbz}
export SNAPSHOT_MODE=${SNAPSHOT_MODE:-initial} CONNECT_OFFSETS=${CONNECT_OFFSETS:-$dir/offsets}
export CONNECT_PORT=${CONNECT_PORT:-$(free_ports 1)}
# shellcheck disable=SC2086
exec java $KAFKA_HEAP_OPTS $KAFKA_JVM_OPTS -Djava.awt.headless=true -Dkafka.log.level=INFO \
    -Dlog4j2.configurationFile="$KAFKA_DIR/log4j2.properties" -cp "$lib/*" \
    org.apache.kafka.connect.cli.ConnectStandalone "$src/deploy/cdc/connect-standalone.properties" \
    "$src/deploy/cdc/hiscore-updates.properties"
