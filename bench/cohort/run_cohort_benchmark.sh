#!/usr/bin/env bash
# Cohort benchmark: 8 phantom subjects (128^3, 4 anatomy seeds), the default
# fusion pipeline, `fusionflow cohort run` on this machine (--engine local)
# and as a job array on a single-node Slurm started here
# (tests/slurm/single-node-slurm.sh; needs root, slurm-wlm and munge).
# Prints the wall time of each and the Slurm overhead per subject: (slurm -
# local) / subjects, both with 2 subjects at once and 1 thread each; then the
# node cache (docs/caching.md): a cold pass that fills an empty cache and a
# warm pass of the same subjects into a new study folder, locally and on
# Slurm. Subjects come in pairs with the same inputs; a pair runs at the same
# time, so in the cold pass neither finds the other's entries.
#   bench/cohort/run_cohort_benchmark.sh [WORK_DIR]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
fusionflow="$root/build/bin/fusionflow"
work=${1:-$(mktemp -d /tmp/fusionflow-cohort-bench.XXXXXX)}
mkdir -p "$work"
load_before=$(cut -d' ' -f1-3 /proc/loadavg)
printf 'subject,ct,mri,pet\n' > "$work/subjects.csv"
for seed in 1 2 3 4; do
  "$fusionflow" phantom --size 128 --seed "$seed" --anatomy-seed "$seed" --out "$work/p$seed" > /dev/null
  for copy in a b; do
    printf 's%s%s,p%s/ct.nii.gz,p%s/t1.nii.gz,p%s/pet.nii.gz\n' "$seed" "$copy" "$seed" "$seed" "$seed" >> "$work/subjects.csv"
  done
done
pipeline="$root/examples/pipelines/pet_ct_mri_fusion.json"
seconds() { local start=$1 end; end=$(date +%s%N); awk -v ns=$((end - start)) 'BEGIN {printf "%.1f", ns / 1e9}'; }

start=$(date +%s%N)
"$fusionflow" --log-level warn cohort run "$work/subjects.csv" "$pipeline" --out "$work/local" --threads 2 \
  --parallel 2 > "$work/local.log" 2>&1
local_seconds=$(seconds "$start")

start=$(date +%s%N)
"$fusionflow" --log-level warn cohort run "$work/subjects.csv" "$pipeline" --out "$work/cold" --threads 2 \
  --parallel 2 --cache "$work/cache" > "$work/cold.log" 2>&1
cold_seconds=$(seconds "$start")
start=$(date +%s%N)
"$fusionflow" --log-level warn cohort run "$work/subjects.csv" "$pipeline" --out "$work/warm" --threads 2 \
  --parallel 2 --cache "$work/cache" > "$work/warm.log" 2>&1
warm_seconds=$(seconds "$start")

slurm_dir="$work/slurm-daemons"
export SLURM_CONF="$slurm_dir/slurm.conf"
bash "$root/tests/slurm/single-node-slurm.sh" start "$slurm_dir"
trap 'bash "$root/tests/slurm/single-node-slurm.sh" stop "$slurm_dir"' EXIT
start=$(date +%s%N)
"$fusionflow" --log-level warn cohort run "$work/subjects.csv" "$pipeline" --out "$work/slurm" --engine slurm \
  --cpus-per-task 1 --wait > "$work/slurm.log" 2>&1
slurm_seconds=$(seconds "$start")
start=$(date +%s%N)
"$fusionflow" --log-level warn cohort run "$work/subjects.csv" "$pipeline" --out "$work/slurm-warm" --engine slurm \
  --cpus-per-task 1 --wait --cache "$work/cache" > "$work/slurm-warm.log" 2>&1
slurm_warm_seconds=$(seconds "$start")

same=yes
for subject in $(tail -n +2 "$work/subjects.csv" | cut -d, -f1); do
  for study in slurm cold warm slurm-warm; do
    for file in fused.nii.gz metrics.csv fused_3d.png pet_ct_overlay.png; do
      cmp -s "$work/local/$subject/$file" "$work/$study/$subject/$file" || same=no
    done
  done
done
hits=$(cat "$work"/warm/*/run.json | grep -c '"cache": "hit"' || true)
nodes=$(cat "$work"/warm/*/run.json | grep -c '"cache":' || true)
echo "subjects: 8 (128^3 phantoms), pipeline: examples/pipelines/pet_ct_mri_fusion.json"
echo "local: ${local_seconds} s (2 subjects at once, 1 thread each)"
echo "slurm: ${slurm_seconds} s (job array on one node with $(nproc) CPUs, 1 CPU per task, submission to the end)"
awk -v l="$local_seconds" -v s="$slurm_seconds" 'BEGIN {printf "slurm overhead per subject: %.2f s\n", (s - l) / 8}'
echo "cache, cold pass (empty cache, local): ${cold_seconds} s"
echo "cache, warm pass (same subjects, new study folder, local): ${warm_seconds} s, $hits of $nodes nodes hit"
awk -v w="$warm_seconds" -v c="$cold_seconds" 'BEGIN {printf "warm / cold: %.1f%%\n", 100 * w / c}'
echo "cache, warm pass on slurm: ${slurm_warm_seconds} s"
echo "cache size: $("$fusionflow" cache info "$work/cache")"
echo "outputs (fused volume, metrics, 3D picture, overlay) identical across engines and cache passes: $same"
echo "load average before: $load_before; after: $(cut -d' ' -f1-3 /proc/loadavg)"
