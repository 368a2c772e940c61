#!/usr/bin/env bash
# Deformable registration benchmark (issue: "Deformable registration"):
# 160x160x120 phantoms (CT at 1.5 mm) whose MRI and PET carry a smooth random
# deformation of at most 7 mm (20 mm correlation length) on top of the rigid
# motion, two seeds. fusionflow (register.rigid then register.bspline with
# the defaults, MRI and PET in one pipeline on 2 threads) against elastix
# (elastix_rigid.txt then elastix_bspline.txt, 2 threads, one pair after the
# other), both scored on the phantom's deformed landmarks (transformix maps
# them through elastix's result), by the RMS error of the displacement over
# the head against the phantom's true field, and for folding (transformix
# -jac).
# Needs a built tree and Debian's elastix; prints a Markdown table.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
fusionflow="$root/build/bin/fusionflow"
command -v elastix >/dev/null || { echo "elastix is not installed: apt-get install elastix" >&2; exit 1; }
work=${1:-$(mktemp -d /tmp/fusionflow-bspline-bench.XXXXXX)}
seeds=${SEEDS:-"7 8"}
load_before=$(cut -d' ' -f1-3 /proc/loadavg)
for seed in $seeds; do
  base="$work/seed-$seed"
  mkdir -p "$base/fusionflow"
  "$fusionflow" phantom --size 160 160 120 --spacing 1.5 --seed "$seed" --deform 7 --deform-smoothness 20 \
    --out "$base/phantom" >/dev/null
  # The pipeline makes the same phantom in memory (same options and seed).
  "$fusionflow" run "$here/fusionflow_bspline.json" --threads 2 --no-progress --log-level warn \
    --set seed="$seed" --set out="$base/fusionflow" --record "$base/fusionflow/run.json" >/dev/null
  /usr/bin/python3 - "$base/phantom/truth.json" "$base/points.txt" <<'PY'
import json, sys
landmarks = json.load(open(sys.argv[1]))["landmarks"]
with open(sys.argv[2], "w") as f:
    f.write("point\n%d\n" % len(landmarks))
    for l in landmarks:
        f.write("%.6f %.6f %.6f\n" % tuple(l["ct_lps_mm"]))
PY
  for moving in t1 pet; do
    out="$base/elastix-$moving"
    rm -rf "$out" && mkdir -p "$out/points" "$out/jacobian"
    start=$(date +%s%N)
    elastix -f "$base/phantom/ct.nii.gz" -m "$base/phantom/$moving.nii.gz" -p "$here/elastix_rigid.txt" \
      -p "$here/elastix_bspline.txt" -out "$out" -threads 2 >/dev/null
    end=$(date +%s%N)
    awk -v ns=$((end - start)) 'BEGIN {printf "%.3f\n", ns / 1e9}' > "$out/seconds"
    transformix -def "$base/points.txt" -tp "$out/TransformParameters.1.txt" -out "$out/points" >/dev/null
    cp "$out/points/outputpoints.txt" "$out/outputpoints.txt"
    transformix -jac all -def all -tp "$out/TransformParameters.1.txt" -out "$out/jacobian" -threads 2 >/dev/null
    /usr/bin/python3 - "$out/jacobian/spatialJacobian.nii.gz" "$out/jacobian.json" <<'PY'
import json, sys
import nibabel, numpy
values = numpy.asarray(nibabel.load(sys.argv[1]).dataobj)
json.dump({"min": float(values.min()), "max": float(values.max()), "folded": int((values <= 0).sum())},
          open(sys.argv[2], "w"))
PY
  done
done
echo "Load average (1, 5, 15 min): $load_before before, $(cut -d' ' -f1-3 /proc/loadavg) after"
echo "Machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(lscpu | sed -n 's/^Model name: *//p')"
# shellcheck disable=SC2086
/usr/bin/python3 "$here/compare_bspline.py" "$work" $seeds
