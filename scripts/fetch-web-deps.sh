#!/usr/bin/env bash
# Fetches the pinned front-end packages from the npm registry (called by
# scripts/setup.sh), each checked against its SHA-256:
#   - NiiVue (@niivue/niivue, BSD-2-Clause), the WebGL2 slice viewer that run
#     reports embed (docs/visualization.md, "Run report"): its UMD bundle goes
#     to .deps/web/niivue-<version>/, where CMake picks it up;
#   - playwright-core for the browser tests (tests/browser): it drives Debian's
#     Chromium and downloads no browser.
# Does nothing when both are already in place.
set -euo pipefail
cd "$(dirname "$0")/.."

niivue_version=0.69.0
niivue_tarball_sha256=6e9a6a471b428eb3b258a0086beca9187d95e43a781a39e8a519c6da246af485
niivue_bundle_sha256=47b896b77ec4a5be3ef1949c33ad393b6f45629921f326c279000bcf51bdb4af
niivue_dir=.deps/web/niivue-$niivue_version

bundle_ok() {
  [ -f "$niivue_dir/niivue.umd.js" ] &&
    echo "$niivue_bundle_sha256  $niivue_dir/niivue.umd.js" | sha256sum --check --status
}

if ! bundle_ok; then
  echo "fetch-web-deps: fetching @niivue/niivue@$niivue_version from the npm registry"
  scratch=$(mktemp -d)
  trap 'rm -rf "$scratch"' EXIT
  (cd "$scratch" && npm pack --silent "@niivue/niivue@$niivue_version" >/dev/null)
  tarball="$scratch/niivue-niivue-$niivue_version.tgz"
  if ! echo "$niivue_tarball_sha256  $tarball" | sha256sum --check --status; then
    echo "fetch-web-deps: @niivue/niivue@$niivue_version does not have the pinned SHA-256 $niivue_tarball_sha256" >&2
    exit 1
  fi
  tar -xzf "$tarball" -C "$scratch" package/dist/niivue.umd.js package/package.json
  mkdir -p "$niivue_dir"
  cp "$scratch/package/dist/niivue.umd.js" "$scratch/package/package.json" "$niivue_dir/"
  bundle_ok || { echo "fetch-web-deps: $niivue_dir/niivue.umd.js has the wrong SHA-256" >&2; exit 1; }
fi

if [ ! -f tests/browser/node_modules/playwright-core/package.json ]; then
  echo "fetch-web-deps: installing tests/browser (playwright-core) from its package-lock.json"
  npm ci --prefix tests/browser --no-audit --no-fund --silent
fi
echo "fetch-web-deps: NiiVue $niivue_version and playwright-core present"
