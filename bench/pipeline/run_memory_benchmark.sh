#!/usr/bin/env bash
# Issue 21, item 5: the memory side of a large study. The default pipeline
# reduced to load, register, normalise, encode, fuse, decode and write (no
# rendering, figures or metrics: the nodes of pet_ct_mri_fusion.json with
# these ids, so it follows the default pipeline) on a large phantom, 2 threads;
# prints per-node wall time and peak memory against the 4x target and whether
# the machine swapped.
#   run_memory_benchmark.sh [--size NX NY NZ] [WORK]     (default 1024 1024 600)
# Needs a built tree (scripts/build.sh), and for the default size about 20 GiB
# of free memory and 15 GB of disk in WORK.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
fusionflow="$root/build/bin/fusionflow"
size=(1024 1024 600)
if [ "${1:-}" = "--size" ]; then
  size=("$2" "$3" "$4")
  shift 4
fi
work=${1:-$(mktemp -d /tmp/fusionflow-memory-bench.XXXXXX)}
mkdir -p "$work"
phantom="$work/phantom-${size[0]}x${size[1]}x${size[2]}"
if [ ! -f "$phantom/truth.json" ]; then
  "$fusionflow" phantom --size "${size[@]}" --seed 11 --out "$phantom" >/dev/null
fi
/usr/bin/python3 - "$root/examples/pipelines/pet_ct_mri_fusion.json" "$work/memory_only.json" <<'PY'
import json, sys
keep = {"ct", "mri", "pet", "mri_to_ct", "pet_to_ct", "write_mri_transform", "write_pet_transform",
        "write_mri", "write_pet", "ct_norm", "mri_norm", "pet_norm", "ct_latent", "mri_latent",
        "pet_latent", "fuse", "fused", "write_fused"}
pipeline = json.load(open(sys.argv[1]))
pipeline["description"] = "pet_ct_mri_fusion.json without rendering, figures and metrics (memory benchmark)"
pipeline["nodes"] = [node for node in pipeline["nodes"] if node["id"] in keep]
assert {node["id"] for node in pipeline["nodes"]} == keep, "the default pipeline's node ids changed"
json.dump(pipeline, open(sys.argv[2], "w"), indent=2)
PY
swap_before=$(awk '/^(SwapTotal|SwapFree):/ {printf "%s %s kB; ", $1, $2}' /proc/meminfo)
swapped_before=$(awk '/^pswpout/ {print $2}' /proc/vmstat)
"$fusionflow" run "$work/memory_only.json" --threads 2 --no-progress --log-level warn \
  --set ct="$phantom/ct.nii.gz" --set mri="$phantom/t1.nii.gz" --set pet="$phantom/pet.nii.gz" \
  --set out="$work/out-memory" --record "$work/out-memory/run.json" >/dev/null
swapped_after=$(awk '/^pswpout/ {print $2}' /proc/vmstat)
echo "Machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(lscpu | sed -n 's/^Model name: *//p')"
echo "Swap: ${swap_before}pages swapped out during the run: $((swapped_after - swapped_before))"
/usr/bin/python3 - "$work/out-memory/run.json" "$phantom/truth.json" <<'PY'
import json, sys
record = json.load(open(sys.argv[1]))
truth = json.load(open(sys.argv[2]))
voxels = lambda grid: grid["size"][0] * grid["size"][1] * grid["size"][2]
inputs = 4 * sum(voxels(truth["grids"][m]) for m in ("ct", "mri", "pet"))
print(f"{'node':<22} {'type':<26} {'wall s':>8} {'peak MiB':>9}")
for node in record["nodes"]:
    print(f"{node['id']:<22} {node['type']:<26} {node['wall_seconds']:>8.1f} {node['peak_memory_bytes'] / 2**20:>9.0f}")
peak = record["peak_memory_bytes"]
print(f"total wall {record['wall_seconds']:.1f} s on {record['threads']} threads")
print(f"peak memory {peak / 2**20:.0f} MiB = {peak / inputs:.2f} x the {inputs / 2**20:.0f} MiB of input volumes (target <= 4x)")
PY
