#!/usr/bin/env bash
# ThreadSanitizer run of the executor and the parallel fusion numerics:
# builds the tree with -fsanitize=thread in ./build-tsan, and oneTBB from
# Debian's own onetbb source package with -fsanitize=thread (Debian's libtbb
# is not instrumented, so TSan cannot see the synchronisation inside it and
# reports every task hand-over as a race), then runs pipeline_tests and
# fusion_node_tests against that TBB. Not part of CI (about 10 minutes the
# first time); run it after changes to the executor or to parallel code.
#   scripts/tsan.sh [GTEST_FILTER]
set -euo pipefail
cd "$(dirname "$0")/.."
filter=${1:-*}
build=${FUSIONFLOW_TSAN_BUILD_DIR:-build-tsan}
tbb_dir="$PWD/$build/instrumented-tbb"
version=$(dpkg-query -W -f='${source:Version}' libtbb-dev 2>/dev/null || true)
[ -n "$version" ] || { echo "tsan: libtbb-dev is not installed (bash scripts/setup.sh)" >&2; exit 2; }
if ! ls "$tbb_dir"/lib/libtbb.so.12 >/dev/null 2>&1; then
  bash scripts/fetch-debian-source.sh onetbb "$version" "$tbb_dir/source"
  rm -rf "$tbb_dir/tree" && mkdir -p "$tbb_dir/tree"
  tar -xf "$tbb_dir"/source/onetbb_*.orig.tar.* -C "$tbb_dir/tree" --strip-components=1
  cmake -S "$tbb_dir/tree" -B "$tbb_dir/build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DTBB_TEST=OFF \
    -DTBB_SANITIZE=thread -DTBBMALLOC_BUILD=OFF -DTBB_STRICT=OFF > "$tbb_dir/configure.log"
  cmake --build "$tbb_dir/build" --parallel "$(nproc)" > "$tbb_dir/build.log"
  mkdir -p "$tbb_dir/lib"
  cp -P "$(dirname "$(find "$tbb_dir/build" -name 'libtbb.so.12' | head -1)")"/libtbb.so* "$tbb_dir/lib/"
fi
if [ ! -f "$build/build.ninja" ]; then
  cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DFUSIONFLOW_SANITIZE=thread \
    -DFUSIONFLOW_WITH_LEARNED=OFF -DFUSIONFLOW_BUILD_BENCHMARKS=OFF
fi
cmake --build "$build" --parallel "$(nproc)" --target pipeline_tests fusion_node_tests fusionflow-plugin-core \
  fusionflow-plugin-encode fusionflow-plugin-fuse fusionflow-plugin-decode fusionflow-plugin-metrics \
  fusionflow-plugin-normalize
status=0
for program in pipeline_tests fusion_node_tests; do
  log="$build/tsan-$program.log"
  LD_LIBRARY_PATH="$tbb_dir/lib" TSAN_OPTIONS="halt_on_error=0 second_deadlock_stack=1" \
    "$build/bin/$program" --gtest_filter="$filter" > "$log" 2>&1 || status=1
  races=$(grep -c "WARNING: ThreadSanitizer" "$log" || true)
  echo "tsan $program: $(grep -E '^\[  (PASSED|FAILED)  \]' "$log" | head -2 | tr '\n' ' ')races reported: $races (log: $log)"
  [ "$races" -eq 0 ] || status=1
done
exit "$status"
