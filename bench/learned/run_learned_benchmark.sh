#!/usr/bin/env bash
# Benchmark of the learned shared latent space (not a test). Prints:
#  1. training time of the committed model (from its training log; with
#     --retrain: retrains from examples/train_phantom.json, times it and
#     compares the sha256 of the result with the committed file),
#  2. inference time of learned.encode + learned.decode on a 256^3 CT,
#  3. learned vs classical (Laplacian pyramid) fusion metrics on a held-out
#     phantom seed,
#  4. synthetic-CT MAE (HU, over the head), PSNR and SSIM on held-out seeds.
# Usage: bench/learned/run_learned_benchmark.sh [--retrain] [--threads N] [--out DIR]
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$(pwd)
fusionflow=${FUSIONFLOW_EXE:-$root/build/bin/fusionflow}
model=$root/models/phantom_ct_mri.ffmodel
out=$root/build/bench-learned
threads=2
retrain=0
seeds="7 8 9"
while [ $# -gt 0 ]; do
  case "$1" in
    --retrain) retrain=1 ;;
    --threads) threads=$2; shift ;;
    --out) out=$2; shift ;;
    --seeds) seeds=$2; shift ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
  shift
done
mkdir -p "$out"

echo "== 1. training"
python3 - "$root/models/phantom_ct_mri.log.jsonl" <<'PY'
import json, sys
lines = [json.loads(l) for l in open(sys.argv[1])]
last = lines[-1]
print(f"committed model: {last['iteration']} iterations in {last['seconds']:.0f} s of training "
      f"({last['seconds'] / 60:.1f} min, excluding phantom generation); final losses: "
      + ", ".join(f"{k} {v:.4f}" for k, v in last.items() if k not in ("iteration", "seconds")))
PY
if [ "$retrain" = 1 ]; then
  start=$(date +%s.%N)
  "$fusionflow" train examples/train_phantom.json --quiet --output "$out/retrained.ffmodel"
  end=$(date +%s.%N)
  echo "retrained in $(python3 -c "print(round($end - $start))") s (wall, incl. phantom generation)"
  echo "sha256 committed: $(sha256sum "$model" | cut -d' ' -f1)"
  echo "sha256 retrained: $(sha256sum "$out/retrained.ffmodel" | cut -d' ' -f1)"
fi

summary_time() {  # node id, run output -> wall seconds of that node in the run summary
  awk -v id="$1" '$1 == id && $3 == "succeeded" {print $4}' "$2"
}

echo "== 2. inference on a 256^3 CT ($threads threads)"
"$fusionflow" run bench/learned/inference_256.json --threads "$threads" --no-progress > "$out/inference.txt" 2>&1
echo "encode $(summary_time encode "$out/inference.txt") s, decode $(summary_time decode "$out/inference.txt") s"

echo "== 3. learned vs classical fusion (held-out seed 7, 128^3, co-registered)"
"$fusionflow" run bench/learned/fusion_compare.json --threads "$threads" --no-progress --set out="$out" \
  > "$out/fusion.txt" 2>&1
python3 - "$out/fusion_learned.csv" "$out/fusion_laplacian.csv" <<'PY'
import csv, sys
rows = [list(csv.DictReader(open(f)))[-1] for f in sys.argv[1:]]
keys = [k for k in rows[0] if k not in ("label", "slice", "row", "mode")]
print("| method | " + " | ".join(keys) + " |")
print("|---|" + "---|" * len(keys))
for r in rows:
    cells = []
    for k in keys:
        try: cells.append(f"{float(r[k]):.4g}")
        except ValueError: cells.append(r[k])
    print(f"| {r.get('label', '')} | " + " | ".join(cells) + " |")
PY

echo "== 4. synthetic CT on held-out seeds ($seeds), 128^3, co-registered MRI"
for seed in $seeds; do
  "$fusionflow" run bench/learned/synthesis_heldout.json --threads "$threads" --no-progress --set seed="$seed" \
    --set out="$out" > "$out/synthesis_$seed.txt" 2>&1
done
python3 - "$out" $seeds <<'PY'
import csv, sys
out, seeds = sys.argv[1], sys.argv[2:]
print("| seed | MAE (HU, head) | PSNR (dB) | SSIM |")
print("|---|---|---|---|")
maes = []
for s in seeds:
    r = list(csv.DictReader(open(f"{out}/synthesis_seed{s}.csv")))[-1]
    maes.append(float(r["mae"]))
    print(f"| {s} | {float(r['mae']):.1f} | {float(r['psnr_db']):.2f} | {float(r['ssim']):.4f} |")
print(f"mean MAE {sum(maes) / len(maes):.1f} HU (target < 60 HU)")
PY
