#!/usr/bin/env bash
# What an operator's mistakes in the configuration do at start-up: each one is exit 2 with a
# message naming the setting (and the file:line or the value), before the store is locked or the
# Kafka group joined; never a silent default, a wrong value or a failure later. No broker is
# needed: every case fails before one is contacted (brokers x:1 is never reached). Also: the
# effective configuration logged at start keeps secrets out of the log, and integers are read
# exactly. (tests/deploy_check.sh covers the file format: unknown keys, long lines, ranges.)
set -euo pipefail
T=$(mktemp -d); trap 'rm -rf "$T"' EXIT
expect_config_error() { # message-pattern atlasd-args...
    local want=$1 rc=0; shift
    timeout 20 atlasd --http 127.0.0.1:0 "$@" >"$T/out" 2>"$T/err" || rc=$?
    [ "$rc" = 2 ] || { echo "atlasd $*: exit $rc, expected 2: $(cat "$T/err")"; exit 1; }
    grep -q -- "$want" "$T/err" || { echo "atlasd $*: '$(cat "$T/err")' lacks '$want'"; exit 1; }
}

# empty values that used to fail only once librdkafka saw them, without naming the setting
# ("subscribe: Local: Unknown group", exit 1), or as "cannot create : No such file" (db)
expect_config_error 'flag --group: group must not be empty' --brokers x:1 --db "$T/db" --group ''
expect_config_error 'flag --topic-hiscores: topic-hiscores must not be empty' \
    --brokers x:1 --db "$T/db" --topic-hiscores ''
expect_config_error 'flag --topic-beatmaps: topic-beatmaps must not be empty' \
    --brokers x:1 --db "$T/db" --topic-beatmaps=
expect_config_error 'flag --db: db must not be empty' --brokers x:1 --db ''
printf 'brokers = x:1\ngroup =\n' >"$T/empty.conf"
expect_config_error 'empty.conf:2: group must not be empty' --config "$T/empty.conf" --db "$T/db"
expect_config_error 'log-level = "verbose" is not one of error|warn|info|debug' \
    --brokers x:1 --db "$T/db" --log-level verbose

# a key given twice in one file: which one wins was a guess (the last did, silently)
printf 'seed = 1\r\nbrokers = x:1\r\nseed = 2\r\n' >"$T/dup.conf" # CRLF line ends too
expect_config_error 'dup.conf:3: seed is already set on line 1' --config "$T/dup.conf" --db "$T/db"

# quoted values (a TOML or shell habit): the quotes became part of the broker list, topic or
# group, which failed only later as an unreachable broker or a topic that never appears
printf 'brokers = "127.0.0.1:1"\n' >"$T/quoted.conf"
expect_config_error 'quoted.conf:1: brokers = "...": quotes would be part of the value' \
    --config "$T/quoted.conf" --db "$T/db"
printf "brokers = x:1\ntopic-hiscores = 'hiscores'\n" >"$T/quoted1.conf"
expect_config_error "quoted1.conf:2: topic-hiscores = '...': quotes would be part" \
    --config "$T/quoted1.conf" --db "$T/db"

# integers are read exactly: through a double, 9223372036854775807 (in range) became 2^63 and was
# stored as -9223372036854775808; 2^53 + 1 became 2^53. The seed is logged in the effective
# configuration; a store path that is a file then stops the start (exit 2).
touch "$T/file"
expect_config_error 'db = .*/file: not a directory' --brokers x:1 --db "$T/file" \
    --seed 9223372036854775807
grep -q ' seed=9223372036854775807 ' "$T/err" || { grep starting "$T/err"; exit 1; }
expect_config_error 'db = .*/file: not a directory' --brokers x:1 --db "$T/file" \
    --seed 9007199254740993
grep -q ' seed=9007199254740993 ' "$T/err" || { grep starting "$T/err"; exit 1; }
expect_config_error 'invalid value for seed: "9223372036854775808"' \
    --brokers x:1 --db "$T/db" --seed 9223372036854775808
expect_config_error 'invalid value for batch-max-events: "1e3"' \
    --brokers x:1 --db "$T/db" --batch-max-events 1e3

# paths: checked at start, exit 2 naming the setting (before: exit 1 unnamed for db and the log
# file; an unusable snapshot directory only failed the first publish, after the group was joined;
# a viewer path with a typo served 404 at / for ever)
expect_config_error "snapshots = $T/file: not a directory" --brokers x:1 --db "$T/db1" \
    --snapshots "$T/file"
expect_config_error "snapshots = $T/no/such: No such file or directory" --brokers x:1 \
    --db "$T/db2" --snapshots "$T/no/such"
[ ! -e "$T/db2/atlasd.lock" ] || { echo "store locked before the paths were checked"; exit 1; }
expect_config_error "viewer = $T/no/viewer: not a readable directory" --brokers x:1 \
    --db "$T/db3" --viewer "$T/no/viewer"
expect_config_error "log-file = $T/no/atlasd.log: No such file or directory" --brokers x:1 \
    --db "$T/db4" --log-file "$T/no/atlasd.log"
expect_config_error "db = $T/no/store: No such file or directory" --brokers x:1 --db "$T/no/store"

# directories atlasd cannot write (as root every one is writable: run as nobody where root
# may). Before: a store directory it could not create was exit 1 ("cannot create"), and an
# unwritable snapshot directory let it start, consume and fail only at the first publish.
if [ "$(id -u)" = 0 ] && command -v setpriv >/dev/null &&
    setpriv --reuid=nobody --regid=nogroup --clear-groups atlasd --help >/dev/null 2>&1; then
    mkdir -m 755 "$T/rootonly" "$T/rootonly/snaps" && mkdir "$T/mine" && chown nobody "$T/mine"
    chmod 755 "$T"
    expect_nobody_error() { # message-pattern atlasd-args...
        local want=$1 rc=0; shift
        timeout 20 setpriv --reuid=nobody --regid=nogroup --clear-groups atlasd \
            --http 127.0.0.1:0 --brokers x:1 "$@" >"$T/out" 2>"$T/err" || rc=$?
        [ "$rc" = 2 ] || { echo "atlasd $* (as nobody): exit $rc, expected 2: $(cat "$T/err")"; exit 1; }
        grep -q -- "$want" "$T/err" || { echo "atlasd $*: '$(cat "$T/err")' lacks '$want'"; exit 1; }
    }
    expect_nobody_error "snapshots = $T/rootonly/snaps: Permission denied" --db "$T/mine/db" \
        --snapshots "$T/rootonly/snaps"
    expect_nobody_error "db = $T/rootonly/db: Permission denied" --db "$T/rootonly/db"
    expect_nobody_error "db = $T/rootonly: Permission denied" --db "$T/rootonly"
else
    echo "note: not root, or nobody cannot run atlasd here: unwritable directories not checked"
fi

# kafka.* copies of atlasd's own settings were passed on and silently overrode them (the log
# still showed the setting's value)
expect_config_error 'kafka.group.id is atlasd.s setting group: set that instead' \
    --brokers x:1 --db "$T/db" --kafka.group.id=other
printf 'brokers = x:1\nkafka.bootstrap.servers = y:1\n' >"$T/bs.conf"
expect_config_error 'bs.conf:2: kafka.bootstrap.servers is atlasd.s setting brokers' \
    --config "$T/bs.conf" --db "$T/db"
# a property librdkafka accepts alone but refuses when the client is made: exit 2, named
expect_config_error 'kafka consumer: ssl.ca.location' --brokers x:1 --db "$T/db5" \
    --kafka.security.protocol=SSL --kafka.ssl.ca.location="$T/no/ca.pem"

# secrets in kafka.* are logged as <set>: an inline private key and the unsecured-JWT config
# were logged in clear (only names with "password" were hidden)
expect_config_error 'db = .*/file: not a directory' --brokers x:1 --db "$T/file" \
    --kafka.ssl.key.pem=S3CRET-KEY --kafka.sasl.oauthbearer.config=S3CRET-JWT \
    --kafka.sasl.password=S3CRET-PW
grep -q 'kafka.ssl.key.pem="<set>"' "$T/err" || { grep starting "$T/err"; exit 1; }
if grep -q S3CRET "$T/err"; then echo "a secret was logged: $(grep S3CRET "$T/err")"; exit 1; fi
echo "config: all checks passed"
