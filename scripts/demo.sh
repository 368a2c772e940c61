#!/usr/bin/env bash
# The main command: installs what is missing, builds, and runs the main job.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/build.sh
out=${1:-fusionflow-out}
mkdir -p "$out"
./build/bin/fusionflow run examples/pipelines/core_two_branches.json --set out="$out" --record "$out/run.json"
echo
echo "Outputs are in $(cd "$out" && pwd):"
ls -1 "$out" | sed 's/^/  /'
