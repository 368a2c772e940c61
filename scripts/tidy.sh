#!/usr/bin/env bash
# Runs clang-tidy (checks in .clang-tidy) on the given files, or on every
# C++ source file the build compiles: scripts/tidy.sh [FILE...]
# Needs a configured build (build/compile_commands.json; FUSIONFLOW_BUILD_DIR
# to use another). Not part of CI: it takes long on ITK and VTK headers.
set -euo pipefail
cd "$(dirname "$0")/.."
build_dir=${FUSIONFLOW_BUILD_DIR:-build}
if [ ! -f "$build_dir/compile_commands.json" ]; then
  echo "tidy: no $build_dir/compile_commands.json; configure first (bash scripts/build.sh)" >&2
  exit 2
fi
if [ $# -eq 0 ]; then
  mapfile -t files < <(git ls-files 'pipeline/*.cpp' 'plugins/*.cpp' 'apps/*.cpp')
else
  files=("$@")
fi
run-clang-tidy -quiet -p "$build_dir" "${files[@]}"
