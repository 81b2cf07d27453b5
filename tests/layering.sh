#!/usr/bin/env bash
# STYLE R1: the arrows point down only:
#   daemon/, tools/ -> pipeline/ -> store/ -> algo/;  daemon/, tools/ -> kafkaconf/ -> algo/.
# Two checks, each printing every violation: (1) forbidden #includes per directory; (2) with a
# build (ATL_BUILD), link dependencies: every symbol a static library leaves undefined must be
# defined by a library it may use, never by one above it or beside it.
set -u
cd "${ATL_SRC:-$(dirname "$0")/..}"
bad=0
check() { # pattern message dirs...
    local pat=$1 msg=$2; shift 2
    local hits
    hits=$(grep -rnE "$pat" "$@" 2>/dev/null)
    if [ -n "$hits" ]; then echo "layering: $msg"; echo "$hits"; bad=1; fi
}
# ---- includes
check '#include *<(lmdb|uv|librdkafka/|h2o|cJSON|xxhash|zstd|openssl/|curl/)' "algo/ must not use I/O libraries" algo
check '#include *<(stdio|time|sys/|unistd|fcntl)' "algo/ must not do I/O or read clocks" algo
check '#include *<lmdb' "only store/ may include lmdb.h" algo pipeline kafkaconf daemon tools
check '#include *<(uv|h2o)' "only daemon/ may include uv.h or h2o" algo store pipeline kafkaconf tools
check '#include *<librdkafka/' "librdkafka: only daemon/, kafkaconf/ and tools/kafka_cli.c" algo store pipeline
check '#include *<librdkafka/' "librdkafka: only daemon/, kafkaconf/ and tools/kafka_cli.c" \
    $(ls tools/*.[ch] | grep -v '^tools/kafka_cli.c$')
check '#include *<curl/' "libcurl: only tools/ (the CLI's HTTP client)" algo store pipeline kafkaconf daemon
check '#include *"(store|pipeline|kafkaconf|daemon|tools)/' "algo/ includes only algo/" algo
check '#include *"(pipeline|kafkaconf|daemon|tools)/' "store/ includes only store/, algo/" store
check '#include *"(kafkaconf|daemon|tools)/' "pipeline/ includes only pipeline/, store/, algo/" pipeline
check '#include *"(store|pipeline|daemon|tools)/' "kafkaconf/ includes only algo/" kafkaconf
check '#include *"tools/' "nothing outside tools/ includes tools/ headers" algo store pipeline kafkaconf daemon
check '#include *"daemon/' "nothing outside daemon/ includes daemon/ headers" algo store pipeline kafkaconf tools
check '#include *"store/internal.h"' "store/internal.h is private to store/" algo pipeline kafkaconf daemon tools
check 'MDB_(env|txn|val|dbi|cursor|stat)' "store.h must not expose MDB_ types" store/store.h
check '^[^*]*[^_a-z.]s?rand\(' "no rand() anywhere; use algo/rng.h" algo store pipeline kafkaconf daemon tools

# ---- link dependencies (needs the build: nm on each static library)
B=${ATL_BUILD:-}
if [ -n "$B" ] && command -v nm >/dev/null; then
    declare -A allowed=(
        [algo]="algo"
        [store]="store algo"
        [pipeline]="pipeline store algo"
        [kafkaconf]="kafkaconf algo"
        [daemon_core]="daemon_core pipeline kafkaconf store algo"
        [tools]="tools pipeline kafkaconf store algo"
    )
    # foreign libraries a layer may not reach, by symbol prefix
    declare -A forbidden_ext=(
        [algo]='^(mdb_|uv_|rd_kafka_|h2o_|cJSON_|XXH|curl_|EVP_|http_parser)'
        [store]='^(uv_|rd_kafka_|h2o_|curl_)'
        [pipeline]='^(mdb_|uv_|rd_kafka_|h2o_|curl_)'
        [kafkaconf]='^(mdb_|uv_|h2o_|curl_)'
        [daemon_core]='^(mdb_|curl_)'
        [tools]='^(mdb_|uv_|h2o_)'
    )
    declare -A def=()
    for l in "${!allowed[@]}"; do
        a="$B/libatl_$l.a"
        [ -f "$a" ] || { echo "layering: $a missing"; bad=1; continue; }
        while read -r sym; do def[$sym]=$l; done < <(nm -g --defined-only "$a" 2>/dev/null |
            awk 'NF==3 && $2 ~ /[TDBRC]/ {print $3}')
    done
    for l in "${!allowed[@]}"; do
        a="$B/libatl_$l.a"
        [ -f "$a" ] || continue
        while read -r sym; do
            owner=${def[$sym]:-}
            if [ -n "$owner" ] && [[ " ${allowed[$l]} " != *" $owner "* ]]; then
                echo "layering: libatl_$l.a uses $sym from libatl_$owner.a"; bad=1
            elif [ -z "$owner" ] && [[ $sym =~ ${forbidden_ext[$l]} ]]; then
                echo "layering: libatl_$l.a uses $sym (a library its layer may not use)"; bad=1
            fi
        done < <(nm -u "$a" 2>/dev/null | awk '$1 == "U" {print $2}' | sort -u)
    done
fi
exit $bad
