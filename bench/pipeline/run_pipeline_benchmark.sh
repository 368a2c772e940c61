#!/usr/bin/env bash
# The full default pipeline (examples/pipelines/pet_ct_mri_fusion.json) on a
# phantom, 2 threads: per-node time and peak memory from the run record,
# against the targets. Needs a built tree (scripts/build.sh).
#   run_pipeline_benchmark.sh [--size NX NY NZ] [WORK]
# Default size 256 256 180 (targets: at most 60 s wall, peak memory at most
# 6x the loaded input volumes); issue 21's clinical size is 512 512 300
# (targets: at most 30 s, at most 4x). WORK keeps the phantom between runs.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
fusionflow="$root/build/bin/fusionflow"
size=(256 256 180)
if [ "${1:-}" = "--size" ]; then
  size=("$2" "$3" "$4")
  shift 4
fi
if [ "${size[*]}" = "512 512 300" ]; then target_s=30 target_x=4; else target_s=60 target_x=6; fi
work=${1:-$(mktemp -d /tmp/fusionflow-pipeline-bench.XXXXXX)}
mkdir -p "$work"
phantom="$work/phantom-${size[0]}x${size[1]}x${size[2]}"
if [ ! -f "$phantom/truth.json" ]; then
  "$fusionflow" phantom --size "${size[@]}" --seed 11 --out "$phantom" >/dev/null
fi
"$fusionflow" run "$root/examples/pipelines/pet_ct_mri_fusion.json" --threads 2 --no-progress --log-level warn \
  --set ct="$phantom/ct.nii.gz" --set mri="$phantom/t1.nii.gz" --set pet="$phantom/pet.nii.gz" \
  --set out="$work/out" --record "$work/out/run.json" >/dev/null
echo "Machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(lscpu | sed -n 's/^Model name: *//p')"
python3 - "$work" "$phantom" "$target_s" "$target_x" <<'PY'
import json, sys, pathlib
work = pathlib.Path(sys.argv[1])
phantom = pathlib.Path(sys.argv[2])
target_s, target_x = sys.argv[3], sys.argv[4]
record = json.loads((work / "out" / "run.json").read_text())
truth = json.loads((phantom / "truth.json").read_text())
def voxels(grid):
    n = 1
    for s in grid["size"]:
        n *= s
    return n
# The inputs as the pipeline holds them: float32 CT, MRI and PET volumes.
inputs = 4 * (voxels(truth["grids"]["ct"]) + voxels(truth["grids"]["mri"]) + voxels(truth["grids"]["pet"]))
# cpu s: the node's own thread. all-thread cpu s: every thread of the process
# while the node ran; "*" where other nodes ran beside it (then it holds theirs
# too). busy: all-thread CPU / (wall x threads), for nodes that ran alone: the
# rest of the time its threads waited.
threads = record["threads"]
print(f"{'node':<22} {'type':<26} {'wall s':>8} {'cpu s':>8} {'all-thread cpu s':>17} {'busy':>5} {'peak MiB':>9}")
for node in record["nodes"]:
    alone = node.get("ran_alone", False)
    process_cpu = node.get("process_cpu_seconds", 0.0)
    busy = f"{100 * process_cpu / (node['wall_seconds'] * threads):.0f}%" if alone and node["wall_seconds"] > 0 else ""
    print(f"{node['id']:<22} {node['type']:<26} {node['wall_seconds']:>8.2f} {node['cpu_seconds']:>8.2f} "
          f"{process_cpu:>15.2f}{'  ' if alone else ' *'} {busy:>5} {node['peak_memory_bytes'] / 2**20:>9.0f}")
peak = record["peak_memory_bytes"]
print(f"total wall {record['wall_seconds']:.1f} s on {record['threads']} threads (target <= {target_s} s)")
print(f"peak memory {peak / 2**20:.0f} MiB = {peak / inputs:.1f} x the {inputs / 2**20:.0f} MiB of input volumes (target <= {target_x}x)")
PY
