#!/usr/bin/env bash
# Install, build under ASan+UBSan with -Werror, and run every default test (unit, integration,
# kafka: the real-broker tests); then the unit and integration tests again in the build users
# run (RelWithDebInfo, no sanitizer: its float rounding differs, and a bound once held under
# ASan only); then a ThreadSanitizer build of the tests labelled `tsan` (the store, refresh,
# scheduler, MDE, layout, kNN/T-build and embed unit tests: the thread-pool handoffs and the
# two-thread T build; and atlasd end to end, its refresh thread and its ingestion under races,
# with atlasctl's threaded import: tests/tsan.supp lists what TSan cannot see in libuv and
# librdkafka). Long soak and benchmark runs are separate: see README.md.
set -euo pipefail
cd "$(dirname "$0")/.."
# chromium drives the viewer test (headless, from Debian's package); Java and Maven run the real
# Apache Kafka broker of the `kafka` label (tests/kafka/: jars from Maven Central)
extra="chromium"
command -v java >/dev/null || extra+=" default-jre-headless"
command -v mvn >/dev/null || extra+=" maven"
command -v python3 >/dev/null || extra+=" python3"
ATL_EXTRA_PKGS="$extra" tools/setup.sh build-test -DATL_SANITIZE="address;undefined" -DATL_WERROR=ON \
    -DCMAKE_BUILD_TYPE=RelWithDebInfo
(cd build-test && ctest -L '^(unit|integration|kafka)$' --output-on-failure -j 2 --timeout 600)
cmake -S . -B build-rel -DATL_WERROR=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build-rel -j "$(nproc)" >/dev/null
(cd build-rel && ctest -L '^(unit|integration)$' --output-on-failure -j 2 --timeout 600)
cmake -S . -B build-tsan -DATL_SANITIZE=thread -DATL_WERROR=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    >/dev/null
cmake --build build-tsan -j "$(nproc)" --target test_store test_refresh test_sched test_mde test_layout \
    test_knn test_embed atlasd atlasctl atlasd-faults
supp=$(pwd)/tests/tsan.supp
cd build-tsan
# reports into files too: a script test may stop a daemon with `|| true` or drop a command's
# stderr, and a report must fail the run all the same
rm -f tsan-report.*
TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1 suppressions=$supp log_path=$(pwd)/tsan-report" \
    ctest -L tsan --output-on-failure -j 2 --timeout 600
if ls tsan-report.* >/dev/null 2>&1; then
    cat tsan-report.*
    echo "ThreadSanitizer reported the races above" >&2
    exit 1
fi
