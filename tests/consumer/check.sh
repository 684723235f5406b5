#!/usr/bin/env bash
# check.sh SOURCE_DIR BUILD_DIR WORK_DIR: installs the built library into WORK_DIR/prefix, then
# builds and runs the consumer through find_package and through add_subdirectory.
set -euo pipefail
src=$1 build=$2 work=$3
rm -rf "$work"
cmake --install "$build" --prefix "$work/prefix" >/dev/null
launcher=()
if command -v ccache >/dev/null 2>&1; then launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache); fi
cmake -S "$src/tests/consumer" -B "$work/find" -DCMAKE_BUILD_TYPE=Release -DCMAKE_PREFIX_PATH="$work/prefix" \
    "${launcher[@]}" >/dev/null
cmake --build "$work/find" -j2 >/dev/null
"$work/find/consumer"
cmake -S "$src/tests/consumer" -B "$work/sub" -DCMAKE_BUILD_TYPE=Release -DTAPEGRAD_SOURCE_DIR="$src" \
    "${launcher[@]}" >/dev/null
cmake --build "$work/sub" -j2 >/dev/null
"$work/sub/consumer"
