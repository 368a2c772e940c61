#!/usr/bin/env bash
# The main command: installs what is missing, builds, generates the built-in
# phantom and runs the default MRI + CT + PET fusion pipeline on it.
# Usage: scripts/demo.sh [OUTPUT_DIR]   (default: ./fusionflow-out)
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/build.sh
out=${1:-fusionflow-out}
fusionflow=./build/bin/fusionflow
phantom="$out/phantom"
if [ ! -f "$phantom/truth.json" ]; then
  echo "== generating the digital head phantom (CT, T1, T2, PET, labels) in $phantom"
  "$fusionflow" phantom --size 128 --seed 7 --out "$phantom"
fi
echo "== running examples/pipelines/pet_ct_mri_fusion.json"
"$fusionflow" run examples/pipelines/pet_ct_mri_fusion.json \
  --set ct="$phantom/ct.nii.gz" --set mri="$phantom/t1.nii.gz" --set pet="$phantom/pet.nii.gz" \
  --set out="$out" --record "$out/run.json" --report "$out/report.html"
echo
echo "Outputs are in $(cd "$out" && pwd):"
echo "  fused volume:      fused.nii.gz (on the CT grid; open it with the CT in 3D Slicer or ITK-SNAP)"
echo "  pictures:          fused_figure.png, fused_3d.png, pet_ct_3d.png, pet_ct_overlay.png, histogram.png"
echo "  registration:      mri_registration_check.png, pet_registration_check.png"
echo "  aligned inputs:    mri_on_ct.nii.gz, pet_on_ct.nii.gz (transforms: mri_to_ct.tfm, pet_to_ct.tfm)"
echo "  measurements:      metrics.csv / metrics.json (fusion quality), histogram.csv"
echo "  run record:        run.json"
echo "  viewer volumes:    report_volumes/ (embedded in the report)"
echo
echo "Run report (open it in a browser; it works offline):"
echo "  $(cd "$out" && pwd)/report.html"
