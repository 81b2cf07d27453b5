#!/usr/bin/env bash
# STYLE R1: forbidden includes per layer. Prints every violation; fails if there is any.
set -u
cd "${ATL_SRC:-$(dirname "$0")/..}"
bad=0
check() { # pattern dirs... : message
    local pat=$1 msg=$2; shift 2
    local hits
    hits=$(grep -rnE "$pat" "$@" 2>/dev/null)
    if [ -n "$hits" ]; then echo "layering: $msg"; echo "$hits"; bad=1; fi
}
check '#include *<(lmdb|uv|librdkafka/|h2o|cJSON|xxhash|zstd|openssl/)' "algo/ must not use I/O libraries" algo
check '#include *<(stdio|time|sys/|unistd|fcntl)' "algo/ must not do I/O or read clocks" algo
check '#include *<lmdb' "only store/ may include lmdb.h" daemon tools
check '#include *<(uv|librdkafka/|h2o)' "only daemon/ may include uv/rdkafka/h2o" algo store tools
check '#include *"daemon/' "nothing includes daemon/" algo store tools
check '#include *"store/internal.h"' "store/internal.h is private to store/" algo daemon tools
check 'MDB_(env|txn|val|dbi|cursor|stat)' "store.h must not expose MDB_ types" store/store.h
check '^[^*]*[^_a-z.]s?rand\(' "no rand() anywhere; use algo/rng.h" algo store daemon tools
exit $bad
