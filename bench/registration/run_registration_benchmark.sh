#!/usr/bin/env bash
# Registration benchmark on a 160x160x120 phantom (CT at 1.5 mm): fusionflow's
# register.rigid against elastix (standard rigid parameter file) on the same
# MRI->CT and PET->CT pairs. Prints mean target registration error and time.
# Needs a built tree (scripts/build.sh) and Debian's elastix package.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
fusionflow="$root/build/bin/fusionflow"
command -v elastix >/dev/null || { echo "elastix is not installed: apt-get install elastix" >&2; exit 1; }
work=${1:-$(mktemp -d /tmp/fusionflow-registration-bench.XXXXXX)}
mkdir -p "$work"
seed=7
# Times are wall clock: other work on the machine slows both tools.
load_before=$(cut -d' ' -f1-3 /proc/loadavg)

"$fusionflow" phantom --size 160 160 120 --spacing 1.5 --seed "$seed" --out "$work/phantom" >/dev/null

# register.rigid with the defaults, as examples/pipelines/pet_ct_mri_fusion.json
# uses it; both registrations run in parallel in one pipeline on 2 threads.
"$fusionflow" run "$here/fusionflow_rigid.json" --threads 2 --no-progress --log-level warn \
  --set seed="$seed" --set out="$work/fusionflow-defaults" --record "$work/fusionflow-defaults/run.json" >/dev/null

for moving in t1 pet; do
  rm -rf "$work/elastix-$moving" && mkdir -p "$work/elastix-$moving"
  start=$(date +%s%N)
  elastix -f "$work/phantom/ct.nii.gz" -m "$work/phantom/$moving.nii.gz" -p "$here/elastix_rigid.txt" \
    -out "$work/elastix-$moving" -threads 2 >/dev/null
  end=$(date +%s%N)
  awk -v ns=$((end - start)) 'BEGIN {printf "%.3f\n", ns / 1e9}' > "$work/elastix-$moving.seconds"
done

echo "Load average (1, 5, 15 min): $load_before before, $(cut -d' ' -f1-3 /proc/loadavg) after"
echo "Machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(lscpu | sed -n 's/^Model name: *//p')"
python3 "$here/compare.py" "$work"
