#!/usr/bin/env bash
# Shared by tests/kafka/{start,stop,tool}.sh: where the Kafka jars are (Maven Central through
# pom.xml, copied once into a cache keyed by the pom's hash) and how java is run.
KAFKA_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# kafka_lib [POM]: the directory of POM's jars (default: the broker's, tests/kafka/pom.xml)
kafka_lib() {
    local pom=${1:-$KAFKA_DIR/pom.xml} sum cache
    sum=$(sha256sum "$pom" | cut -c1-12)
    cache=${ATL_KAFKA_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/atlasd}/jars-$sum
    if [ ! -f "$cache/lib/.complete" ]; then
        command -v mvn >/dev/null || { echo "kafka: mvn not installed" >&2; return 1; }
        mkdir -p "$cache"
        local tmp
        tmp=$(mktemp -d "$cache/lib.XXXXXX")
        (cd "$(dirname "$pom")" && mvn -q -B -f "$pom" dependency:copy-dependencies -DoutputDirectory="$tmp" \
            >"$tmp.log" 2>&1) || { cat "$tmp.log" >&2; rm -rf "$tmp" "$tmp.log"; return 1; }
        rm -f "$tmp.log"
        # another test may have raced us here: the first complete copy wins
        touch "$tmp/.complete"
        mv -T "$tmp" "$cache/lib" 2>/dev/null || rm -rf "$tmp"
    fi
    echo "$cache/lib"
}
# free loopback TCP ports (the kernel picks them; a race with another process is retried by
# the caller when the broker fails to bind)
free_ports() {
    python3 -c 'import socket,sys
ss=[socket.socket() for _ in range(int(sys.argv[1]))]
for s in ss: s.bind(("127.0.0.1",0))
print(" ".join(str(s.getsockname()[1]) for s in ss))' "$1"
}
# small JVMs: two shared cores run several brokers and daemons at once
KAFKA_HEAP_OPTS=${KAFKA_HEAP_OPTS:--Xmx512m -Xms64m}
KAFKA_JVM_OPTS=${KAFKA_JVM_OPTS:--XX:+UseSerialGC -XX:TieredStopAtLevel=1 -Xss512k -XX:-UsePerfData}
kafka_java() { # kafka_java CLASS ARGS...
    local lib
    lib=$(kafka_lib) || return 1
    # shellcheck disable=SC2086
    java $KAFKA_HEAP_OPTS $KAFKA_JVM_OPTS -Djava.awt.headless=true -Dkafka.log.level="${KAFKA_LOG_LEVEL:-INFO}" \
        -Dlog4j2.configurationFile="$KAFKA_DIR/log4j2.properties" -cp "$lib/*" "$@"
}
