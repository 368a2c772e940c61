#!/usr/bin/env bash
# Regenerates the committed test fixtures in testdata/ from the phantom
# generator. tests/apps/cli_test.cpp checks that they are up to date.
set -euo pipefail
cd "$(dirname "$0")/.."
rm -rf testdata/phantom-32
./build/bin/fusionflow phantom --size 32 --seed 1 --pet-spacing 7.5 --out testdata/phantom-32
