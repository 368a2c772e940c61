#!/usr/bin/env bash
# The test command: installs what is missing, checks the code's format
# (.clang-format), builds, and runs every test;
# then builds the programs that test the code reading users' files (core, io,
# pipeline loader: ctest label `sanitized`) with AddressSanitizer and
# UndefinedBehaviorSanitizer in a separate folder and runs them there.
# FUSIONFLOW_SKIP_SANITIZERS=1 leaves out the second part (for quick local runs).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/check-format.sh
bash scripts/build.sh
build_dir=${FUSIONFLOW_BUILD_DIR:-build}
(cd "$build_dir" && ctest --output-on-failure --parallel "$(nproc)" --timeout 600)

if [ "${FUSIONFLOW_SKIP_SANITIZERS:-0}" = 1 ]; then
  echo "test: sanitizer suite left out (FUSIONFLOW_SKIP_SANITIZERS=1)"
  exit 0
fi
sanitize_dir=${FUSIONFLOW_SANITIZE_BUILD_DIR:-build-sanitize}
echo "== sanitizer suite (AddressSanitizer + UndefinedBehaviorSanitizer) in $sanitize_dir"
if [ ! -f "$sanitize_dir/build.ninja" ]; then
  # -O1 -g1: line numbers in reports at a fraction of a full debug build's cost.
  cmake -S . -B "$sanitize_dir" -G Ninja -DCMAKE_BUILD_TYPE=Debug -DCMAKE_CXX_FLAGS_DEBUG="-O1 -g1" \
    -DCMAKE_C_FLAGS_DEBUG="-O1 -g1" -DFUSIONFLOW_WERROR=ON -DFUSIONFLOW_SANITIZE=address,undefined \
    -DFUSIONFLOW_WITH_LEARNED=OFF -DFUSIONFLOW_BUILD_BENCHMARKS=OFF
fi
cmake --build "$sanitize_dir" --parallel "$(nproc)" --target sanitized-tests
# Every report fails its test: UBSan stops at the first finding instead of
# printing and going on.
# intercept_tls_get_addr=0: with GCC 12's LeakSanitizer and glibc 2.36, tracking
# the dynamic TLS of dlopen'd libraries (the plugins and the ITK, TBB and
# libstdc++ they load) read a bogus range and crashed LeakSanitizer's tracer at
# exit ("Tracer caught signal 11") once one more plugin was loaded; the run
# itself was clean. Leak checking stays on.
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:strict_string_checks=1:detect_stack_use_after_return=1:intercept_tls_get_addr=0}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}
cd "$sanitize_dir"
# Executor.FreedValuesAreReturnedToTheSystem measures glibc's heap trimming,
# which ASan's allocator replaces: it runs in the normal build above.
ctest --output-on-failure --parallel "$(nproc)" --timeout 900 -L sanitized -E '^Executor\.FreedValuesAreReturnedToTheSystem$'

