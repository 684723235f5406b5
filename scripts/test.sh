#!/usr/bin/env bash
# Installs the dependencies, builds, and runs every test through CTest.
#   --sanitize   build and run under AddressSanitizer + UndefinedBehaviorSanitizer instead
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
if [[ "${1:-}" == "--sanitize" ]]; then
    export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0:halt_on_error=1}
    export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
    BUILD_DIR=build-asan BUILD_TYPE=RelWithDebInfo bash scripts/configure.sh -DTAPEGRAD_SANITIZE=ON \
        -DTAPEGRAD_BUILD_TOOLS=OFF
    ctest --test-dir build-asan -j"$(nproc)" --output-on-failure
else
    bash scripts/configure.sh
    ctest --test-dir build -j"$(nproc)" --output-on-failure
fi
