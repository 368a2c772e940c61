#!/usr/bin/env bash
# Shared-latent fusion at 256^3, side by side in one run:
#   fusionflow: 3D Laplacian pyramid, encode x2 + fuse + decode (bench/fusion_bench.cpp)
#   Python:     NumPy + PyWavelets 3D wavelet fusion (bench/python_wavelet_reference.py)
#   floor:      copying the two inputs' bytes once (memcpy)
# Prints the times, the speed-up over Python (target: at least 10x), the ratio
# to the memcpy floor and the peak memory (target: at most 4x the inputs).
# Exits 1 if a target is missed.
#
# Usage: bench/run_fusion_comparison.sh [build-dir]   (default: build)
# Needs a configured build directory; builds the fusion_bench target (-j2).
set -euo pipefail
cd "$(dirname "$0")/.."
build_dir="${1:-build}"
python=/usr/bin/python3  # Debian's python, where python3-numpy and python3-pywt live
repetitions="${FUSION_BENCH_REPETITIONS:-5}"

if ! "$python" -c "import numpy, pywt" 2>/dev/null; then
  echo "installing python3-numpy python3-pywt (Debian packages)"
  if [ "$(id -u)" -eq 0 ]; then sudo=(); else sudo=(sudo); fi
  DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -q --no-install-recommends python3-numpy python3-pywt
fi

ninja -C "$build_dir" -j2 fusion_bench >/dev/null

cores=$(nproc)
load=$(cut -d' ' -f1 /proc/loadavg)
if "$python" -c "import sys; sys.exit(0 if float('$load') < $cores else 1)"; then :; else
  echo "warning: load average $load on $cores cores: other processes compete, timings are pessimistic" >&2
fi

out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

echo "== fusionflow (fusion_bench, $repetitions repetitions)"
"$build_dir/bin/fusion_bench" --benchmark_repetitions="$repetitions" --benchmark_report_aggregates_only=true \
  --benchmark_out="$out/cpp.json" --benchmark_out_format=json
echo "== Python: NumPy + PyWavelets ($repetitions repetitions)"
"$python" bench/python_wavelet_reference.py --repeat "$repetitions" | tee "$out/python.json"

"$python" - "$out/cpp.json" "$out/python.json" <<'EOF'
import json, sys

cpp = json.load(open(sys.argv[1]))
py = json.load(open(sys.argv[2]))

def median(name):
    for b in cpp["benchmarks"]:
        if b.get("run_name") == name and b.get("aggregate_name") == "median":
            return b
    sys.exit(f"no median for {name} in fusion_bench output")

two = median("BM_LaplacianFusion256/threads:2/real_time")
one = median("BM_LaplacianFusion256/threads:1/real_time")
copy = median("BM_CopyInputs256/real_time")
to_s = lambda b: b["real_time"] / 1000.0  # reported in ms
ours2, ours1, floor, python = to_s(two), to_s(one), to_s(copy), py["seconds_median"]
ratio2, ratio1 = python / ours2, python / ours1
peak = max(two["peak_rss_MiB"], one["peak_rss_MiB"])
inputs = two["inputs_MiB"]
print()
print("== 256^3 x 2 float32 volumes: encode x2 + fuse + decode (median wall time)")
print(f"fusionflow Laplacian pyramid, 2 threads: {ours2 * 1000:8.1f} ms")
print(f"fusionflow Laplacian pyramid, 1 thread:  {ours1 * 1000:8.1f} ms")
print(f"Python {py['implementation']} ({py['wavelet']}, {py['levels']} levels): {python * 1000:8.1f} ms")
print(f"memcpy of the inputs (bandwidth floor):  {floor * 1000:8.1f} ms")
print(f"speed-up over Python: {ratio2:.1f}x (2 threads), {ratio1:.1f}x (1 thread); target >= 10x")
print(f"fusionflow / memcpy floor: {ours2 / floor:.1f}x (2 threads), {ours1 / floor:.1f}x (1 thread)")
print(f"peak RSS during fusion: {peak:.0f} MiB = {peak / inputs:.2f}x the inputs ({inputs:.0f} MiB); target <= 4x")
print(f"Python peak RSS: {py['peak_rss_mib']:.0f} MiB = {py['peak_over_inputs']:.2f}x the inputs")
ok = ratio2 >= 10 and peak / inputs <= 4
print("targets met" if ok else "TARGET MISSED")
sys.exit(0 if ok else 1)
EOF
