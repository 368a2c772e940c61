#!/usr/bin/env bash
# Runs one libFuzzer harness for a while: scripts/fuzz.sh TARGET SECONDS [LIBFUZZER OPTIONS...]
# TARGET: pipeline_loader, variables, nifti, nrrd, metaimage, png, dicom (or all: each for SECONDS).
# Builds the tree with clang, coverage instrumentation, ASan and UBSan in
# ./build-fuzz (FUSIONFLOW_FUZZ=ON) the first time. The working corpus grows in
# build-fuzz/corpus/TARGET (seeded from fuzz/seeds/TARGET); crashes, timeouts
# and out-of-memory inputs land in build-fuzz/findings/TARGET/. A summary line
# per run (executions, coverage, corpus, findings) is appended to
# build-fuzz/fuzz-log.tsv.
set -euo pipefail
cd "$(dirname "$0")/.."
targets=(pipeline_loader variables nifti nrrd metaimage png dicom)
if [ $# -lt 2 ]; then
  echo "usage: scripts/fuzz.sh TARGET SECONDS [libFuzzer options]   (TARGET: ${targets[*]} | all)" >&2
  exit 2
fi
target=$1 seconds=$2
shift 2
if [ "$target" = all ]; then
  for each in "${targets[@]}"; do "$0" "$each" "$seconds" "$@"; done
  exit 0
fi
if [[ ! " ${targets[*]} " =~ " $target " ]]; then
  echo "fuzz: unknown target '$target'; one of: ${targets[*]} | all" >&2
  exit 2
fi
if ! command -v clang++ >/dev/null || [ ! -d /usr/lib/llvm-14/lib/clang ]; then
  echo "fuzz: needs Debian's clang and libclang-rt-14-dev (bash scripts/setup.sh --fuzz installs them)" >&2
  exit 2
fi
build_dir=${FUSIONFLOW_FUZZ_BUILD_DIR:-build-fuzz}
if [ ! -f "$build_dir/build.ninja" ]; then
  CC=clang CXX=clang++ cmake -S . -B "$build_dir" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DFUSIONFLOW_FUZZ=ON -DFUSIONFLOW_WITH_LEARNED=OFF -DFUSIONFLOW_BUILD_TESTS=OFF \
    -DFUSIONFLOW_BUILD_BENCHMARKS=OFF
fi
cmake --build "$build_dir" --parallel "${FUSIONFLOW_FUZZ_JOBS:-$(nproc)}" --target "fuzz_$target"

# MetaIO is C++ that trusts its input and is not instrumented in Debian's
# build: for the metaimage target it is rebuilt from Debian's source with
# ASan and coverage (scripts/build-instrumented-metaio.sh) and used instead
# of the system one. FUSIONFLOW_FUZZ_SYSTEM_METAIO=1 keeps the system one.
if [ "$target" = metaimage ] && [ "${FUSIONFLOW_FUZZ_SYSTEM_METAIO:-0}" != 1 ]; then
  bash scripts/build-instrumented-metaio.sh "$build_dir/instrumented-metaio"
  export LD_LIBRARY_PATH="$PWD/$build_dir/instrumented-metaio${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
fi

corpus="$build_dir/corpus/$target"
findings="$build_dir/findings/$target"
mkdir -p "$corpus" "$findings"
cp -n fuzz/seeds/"$target"/* "$corpus"/ 2>/dev/null || true
log="$build_dir/logs/$target-$(date -u +%Y%m%dT%H%M%SZ).log"
mkdir -p "$(dirname "$log")"
# Leaks are not findings here (ITK's IO factories and TBB keep process-long
# allocations); everything else ASan and UBSan see is.
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=0:allocator_may_return_null=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}
status=0
started=$SECONDS
"$build_dir/bin/fuzz_$target" "$corpus" "fuzz/seeds/$target" -max_total_time="$seconds" -timeout=20 \
  -rss_limit_mb=3072 -malloc_limit_mb=3072 -max_len=65536 -print_final_stats=1 \
  -artifact_prefix="$findings/" "$@" > "$log" 2>&1 || status=$?
elapsed=$((SECONDS - started))  # less than SECONDS when a finding stops the run
executions=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
coverage=$(grep -a -o 'cov: [0-9]*' "$log" | tail -1 | cut -d' ' -f2)
features=$(grep -a -o 'ft: [0-9]*' "$log" | tail -1 | cut -d' ' -f2)
corpus_size=$(find "$corpus" -type f | wc -l)
found=$(find "$findings" -type f | wc -l)
[ -f "$build_dir/fuzz-log.tsv" ] ||
  printf 'date\ttarget\tseconds_run\texecutions\tcoverage_edges\tfeatures\tcorpus\tfindings_total\texit\n' \
    > "$build_dir/fuzz-log.tsv"
printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$(date -u +%FT%TZ)" "$target" "$elapsed" "${executions:-?}" \
  "${coverage:-?}" "${features:-?}" "$corpus_size" "$found" "$status" >> "$build_dir/fuzz-log.tsv"
echo "fuzz $target: ${elapsed} s, ${executions:-?} executions, coverage ${coverage:-?} edges," \
  "${features:-?} features, corpus $corpus_size, findings so far $found (log: $log)"
if [ "$status" -ne 0 ]; then
  echo "fuzz $target: the fuzzer stopped with a finding (exit $status):" >&2
  grep -a -E 'ERROR|SUMMARY|Test unit written|deadly signal|runtime error' "$log" | head -20 >&2
  exit 1
fi
