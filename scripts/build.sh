#!/usr/bin/env bash
# Configures (once) and builds fusionflow in ./build. Warnings are errors.
# Extra arguments go to the CMake configure step.
set -euo pipefail
cd "$(dirname "$0")/.."
build_dir=${FUSIONFLOW_BUILD_DIR:-build}
if [ ! -f "$build_dir/build.ninja" ] || [ $# -gt 0 ]; then
  cmake -S . -B "$build_dir" -G Ninja -DCMAKE_BUILD_TYPE=Release -DFUSIONFLOW_WERROR=ON "$@"
fi
cmake --build "$build_dir" --parallel "$(nproc)"
