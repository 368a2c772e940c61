#!/usr/bin/env bash
# The full default pipeline (examples/pipelines/pet_ct_mri_fusion.json) on a
# 256x256x180 phantom: per-node time and peak memory from the run record,
# against the targets (at most 60 s wall on 2 cores; peak memory at most 6x the
# size of the loaded input volumes). Needs a built tree (scripts/build.sh).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
fusionflow="$root/build/bin/fusionflow"
work=${1:-$(mktemp -d /tmp/fusionflow-pipeline-bench.XXXXXX)}
mkdir -p "$work"
if [ ! -f "$work/phantom/truth.json" ]; then
  "$fusionflow" phantom --size 256 256 180 --seed 11 --out "$work/phantom" >/dev/null
fi
"$fusionflow" run "$root/examples/pipelines/pet_ct_mri_fusion.json" --threads 2 --no-progress --log-level warn \
  --set ct="$work/phantom/ct.nii.gz" --set mri="$work/phantom/t1.nii.gz" --set pet="$work/phantom/pet.nii.gz" \
  --set out="$work/out" --record "$work/out/run.json" >/dev/null
echo "Machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(lscpu | sed -n 's/^Model name: *//p')"
python3 - "$work" <<'PY'
import json, sys, pathlib
work = pathlib.Path(sys.argv[1])
record = json.loads((work / "out" / "run.json").read_text())
truth = json.loads((work / "phantom" / "truth.json").read_text())
def voxels(grid):
    n = 1
    for s in grid["size"]:
        n *= s
    return n
# The inputs as the pipeline holds them: float32 CT, MRI and PET volumes.
inputs = 4 * (voxels(truth["grids"]["ct"]) + voxels(truth["grids"]["mri"]) + voxels(truth["grids"]["pet"]))
print(f"{'node':<22} {'type':<26} {'wall s':>8} {'cpu s':>8} {'peak MiB':>9}")
for node in record["nodes"]:
    print(f"{node['id']:<22} {node['type']:<26} {node['wall_seconds']:>8.2f} {node['cpu_seconds']:>8.2f} "
          f"{node['peak_memory_bytes'] / 2**20:>9.0f}")
peak = record["peak_memory_bytes"]
print(f"total wall {record['wall_seconds']:.1f} s on {record['threads']} threads (target <= 60 s)")
print(f"peak memory {peak / 2**20:.0f} MiB = {peak / inputs:.1f} x the {inputs / 2**20:.0f} MiB of input volumes (target <= 6x)")
PY
