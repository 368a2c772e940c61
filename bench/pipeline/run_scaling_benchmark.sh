#!/usr/bin/env bash
# Issue 21's scaling benchmark: the default pipeline (pet_ct_mri_fusion.json,
# 2 threads, all its outputs) on phantoms of 128^3, 256x256x180, 384^3 and
# 512x512x300 (CT and MRI on that grid, PET 80^3; seed 11), with elastix's
# standard rigid registration (bench/registration/elastix_rigid.txt, 2 threads)
# of the same MRI->CT and PET->CT pairs as the reference for the registration
# rows. Writes WORK/scaling.md (the table) and WORK/scaling.png (the plot).
#   run_scaling_benchmark.sh [WORK]
# Needs a built tree (scripts/build.sh), Debian's elastix and python3-matplotlib.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
command -v elastix >/dev/null || { echo "elastix is not installed: apt-get install elastix" >&2; exit 1; }
/usr/bin/python3 -c 'import matplotlib' 2>/dev/null ||
  { echo "matplotlib is not installed: apt-get install python3-matplotlib" >&2; exit 1; }
work=${1:-$(mktemp -d /tmp/fusionflow-scaling-bench.XXXXXX)}
mkdir -p "$work"
load_before=$(cut -d' ' -f1-3 /proc/loadavg)
sizes=("128 128 128" "256 256 180" "384 384 384" "512 512 300")
for size in "${sizes[@]}"; do
  read -r nx ny nz <<<"$size"
  name="${nx}x${ny}x${nz}"
  # The pipeline benchmark makes the phantom (WORK/phantom-NAME) and the run record.
  bash "$here/run_pipeline_benchmark.sh" --size "$nx" "$ny" "$nz" "$work" > "$work/pipeline-$name.txt"
  mkdir -p "$work/runs"
  cp "$work/out/run.json" "$work/runs/$name.json"
  for moving in t1 pet; do
    out="$work/elastix-$name-$moving"
    rm -rf "$out" && mkdir -p "$out"
    start=$(date +%s%N)
    elastix -f "$work/phantom-$name/ct.nii.gz" -m "$work/phantom-$name/$moving.nii.gz" \
      -p "$root/bench/registration/elastix_rigid.txt" -out "$out" -threads 2 >/dev/null
    end=$(date +%s%N)
    awk -v ns=$((end - start)) 'BEGIN {printf "%.3f\n", ns / 1e9}' > "$work/runs/$name-elastix-$moving.seconds"
  done
done
machine="$(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(lscpu | sed -n 's/^Model name: *//p')"
load="load average (1, 5, 15 min) $load_before before, $(cut -d' ' -f1-3 /proc/loadavg) after"
/usr/bin/python3 "$here/scaling_report.py" "$work" "$machine; $load" "${sizes[@]}"
