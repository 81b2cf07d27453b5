#!/usr/bin/env bash
# Start Apache Kafka in KRaft mode from Maven Central's jars (pom.xml) on free loopback ports.
#
#   tests/kafka/start.sh DIR [--nodes 1|3] [--set KEY=VALUE]... [--max-seconds S]
#                                                                 format and start a cluster
#   tests/kafka/start.sh DIR --node ID                            restart one node of DIR
#   tests/kafka/stop.sh DIR [ID...]                               stop (all, or some nodes)
#
# Every node is a combined broker+controller (node ids 1..N). The bootstrap list is printed as
# the first line of stdout and written to DIR/bootstrap; node I keeps its config, data, log
# (server.log) and pid in DIR/nI. The script returns once every started node logged "Kafka
# Server started" and answers on its port. --set lines are appended to every server.properties
# (e.g. --set auto.create.topics.enable=false). --max-seconds: a detached watchdog stops the
# cluster after S seconds whatever happens to the caller (CTest fixtures). JVM: KAFKA_HEAP_OPTS
# (-Xmx512m), KAFKA_JVM_OPTS.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
usage() { sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }
[ $# -ge 1 ] || usage
dir=$1; shift
nodes=1; only=""; sets=(); max_s=""
while [ $# -gt 0 ]; do
    case $1 in
    --nodes) nodes=$2; shift 2 ;;
    --node) only=$2; shift 2 ;;
    --set) sets+=("$2"); shift 2 ;;
    --max-seconds) max_s=$2; shift 2 ;;
    *) usage ;;
    esac
done
command -v java >/dev/null || { echo "kafka: java not installed" >&2; exit 1; }
lib=$(kafka_lib)
mkdir -p "$dir"
dir=$(cd "$dir" && pwd)

write_config() { # write_config ATTEMPT: ports for every node, server.properties, formatted logs
    local i n=$nodes ports voters="" id
    read -r -a ports <<<"$(free_ports $((2 * n)))"
    for i in $(seq "$n"); do voters+="${voters:+,}$i@127.0.0.1:${ports[$((2 * i - 1))]}"; done
    local rf=$((n < 3 ? n : 3)) isr=$((n < 3 ? 1 : 2))
    # a cluster id that starts with '-' (1 in 64 of them) reads as an option to the format tool
    # ("argument --cluster-id/-t: expected one argument"): drawn again, as Kafka's random-uuid does
    id=$(python3 -c 'import uuid,base64
g = lambda: base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
print(next(s for s in iter(g, None) if s[0] != "-"))')
    : >"$dir/bootstrap.tmp"
    for i in $(seq "$n"); do
        local d=$dir/n$i
        rm -rf "$d"; mkdir -p "$d/data"
        cat >"$d/server.properties" <<PROPS
process.roles=broker,controller
node.id=$i
controller.quorum.voters=$voters
listeners=PLAINTEXT://127.0.0.1:${ports[$((2 * i - 2))]},CONTROLLER://127.0.0.1:${ports[$((2 * i - 1))]}
advertised.listeners=PLAINTEXT://127.0.0.1:${ports[$((2 * i - 2))]}
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
log.dirs=$d/data
num.partitions=4
default.replication.factor=$rf
min.insync.replicas=$isr
offsets.topic.replication.factor=$rf
offsets.topic.num.partitions=4
transaction.state.log.replication.factor=$rf
transaction.state.log.min.isr=$isr
share.coordinator.state.topic.replication.factor=$rf
share.coordinator.state.topic.min.isr=$isr
group.initial.rebalance.delay.ms=0
group.min.session.timeout.ms=1000
num.network.threads=2
num.io.threads=2
num.recovery.threads.per.data.dir=1
background.threads=2
log.retention.check.interval.ms=1000
controlled.shutdown.enable=true
PROPS
        local s
        for s in "${sets[@]+"${sets[@]}"}"; do echo "$s" >>"$d/server.properties"; done
        echo "127.0.0.1:${ports[$((2 * i - 2))]}" >"$d/port"
        echo -n "${voters:+}" >/dev/null
        printf '%s%s' "$([ "$i" = 1 ] || echo ,)" "127.0.0.1:${ports[$((2 * i - 2))]}" >>"$dir/bootstrap.tmp"
    done
    echo >>"$dir/bootstrap.tmp"
    mv "$dir/bootstrap.tmp" "$dir/bootstrap"
    echo "$n" >"$dir/nodes"
    # format every node's storage (one short JVM each, in parallel)
    local pids=()
    for i in $(seq "$n"); do
        kafka_java kafka.tools.StorageTool format -t "$id" -c "$dir/n$i/server.properties" \
            >"$dir/n$i/format.log" 2>&1 &
        pids+=($!)
    done
    for i in "${pids[@]}"; do wait "$i" || { cat "$dir"/n*/format.log >&2; return 1; }; done
}

start_node() { # start_node ID: background JVM, pid in DIR/nID/pid
    local d=$dir/n$1
    # shellcheck disable=SC2086
    nohup java $KAFKA_HEAP_OPTS $KAFKA_JVM_OPTS -Djava.awt.headless=true \
        -Dlog4j2.configurationFile="$KAFKA_DIR/log4j2.properties" -cp "$lib/*" \
        kafka.Kafka "$d/server.properties" >>"$d/server.log" 2>&1 </dev/null &
    echo $! >"$d/pid"
}

wait_started() { # wait_started ID...: 0 once each logged "Kafka Server started", 1 on exit/time-out
    local i id pid
    for i in $(seq 1200); do
        local all=1
        for id in "$@"; do
            pid=$(cat "$dir/n$id/pid")
            kill -0 "$pid" 2>/dev/null || return 1
            [ "$(grep -c 'Kafka Server started' "$dir/n$id/server.log" 2>/dev/null)" -gt \
                "$(cat "$dir/n$id/starts" 2>/dev/null || echo 0)" ] || all=0
        done
        [ "$all" = 1 ] && return 0
        sleep 0.1
    done
    return 1
}

if [ -n "$only" ]; then
    [ -f "$dir/n$only/server.properties" ] || { echo "kafka: no node $only in $dir" >&2; exit 1; }
    grep -c 'Kafka Server started' "$dir/n$only/server.log" >"$dir/n$only/starts" 2>/dev/null || true
    start_node "$only"
    wait_started "$only" || { tail -n 30 "$dir/n$only/server.log" >&2; exit 1; }
    cat "$dir/bootstrap"
    exit 0
fi

for attempt in 1 2 3; do
    write_config
    for i in $(seq "$nodes"); do start_node "$i"; done
    if wait_started $(seq "$nodes"); then
        if [ -n "$max_s" ]; then
            setsid nohup bash -c "sleep $max_s; exec '$KAFKA_DIR/stop.sh' '$dir' --kill" \
                >/dev/null 2>&1 </dev/null &
            echo $! >"$dir/watchdog.pid"
        fi
        cat "$dir/bootstrap"
        exit 0
    fi
    # a port taken between choosing and binding (other tests run beside): retry on new ports
    if grep -q 'Address already in use' "$dir"/n*/server.log; then
        "$KAFKA_DIR/stop.sh" "$dir" >/dev/null 2>&1 || true
        continue
    fi
    break
done
for i in $(seq "$nodes"); do echo "--- node $i" >&2; tail -n 30 "$dir/n$i/server.log" >&2; done
"$KAFKA_DIR/stop.sh" "$dir" >/dev/null 2>&1 || true
exit 1
