#!/usr/bin/env bash
# Run one of Kafka's command-line tools from the same jars as the test broker:
#   tests/kafka/tool.sh topics --bootstrap-server B --create --topic T --partitions 4
#   tests/kafka/tool.sh configs ... | delete-records ... | consumer-groups ... | metadata-quorum ...
set -euo pipefail
. "$(dirname "$0")/lib.sh"
[ $# -ge 1 ] || { echo "usage: tests/kafka/tool.sh topics|configs|delete-records|consumer-groups ARGS..." >&2; exit 2; }
name=$1; shift
case $name in
topics) cls=org.apache.kafka.tools.TopicCommand ;;
configs) cls=kafka.admin.ConfigCommand ;;
delete-records) cls=org.apache.kafka.tools.DeleteRecordsCommand ;;
consumer-groups) cls=org.apache.kafka.tools.consumer.group.ConsumerGroupCommand ;;
metadata-quorum) cls=org.apache.kafka.tools.MetadataQuorumCommand ;;
get-offsets) cls=org.apache.kafka.tools.GetOffsetShell ;;
*) cls=$name ;;
esac
KAFKA_LOG_LEVEL=WARN KAFKA_HEAP_OPTS=${KAFKA_TOOL_HEAP_OPTS:--Xmx128m} kafka_java "$cls" "$@"
