#!/usr/bin/env bash
# Install, build under ASan+UBSan with -Werror, and run every default test (unit, integration).
# Long soak and benchmark runs are separate: see README.md.
set -euo pipefail
cd "$(dirname "$0")/.."
# chromium drives the viewer test (headless, from Debian's package)
ATL_EXTRA_PKGS="chromium" tools/setup.sh build-test -DATL_SANITIZE="address;undefined" -DATL_WERROR=ON \
    -DCMAKE_BUILD_TYPE=RelWithDebInfo
cd build-test
ctest -L 'unit|integration' --output-on-failure -j 2 --timeout 600
