#!/usr/bin/env bash
# Installs the Debian 12 packages fusionflow needs, only those missing.
# Runs apt-get update first whenever something has to be installed.
# --fuzz also installs clang and its libFuzzer runtime (scripts/fuzz.sh).
# Then fetches the pinned npm packages (scripts/fetch-web-deps.sh).
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(
  # toolchain; clang-format for the style check (scripts/check-format.sh), clang-tidy for scripts/tidy.sh
  g++ cmake ninja-build pkg-config git clang-format clang-tidy
  # core library and CLI
  libboost-graph-dev libtbb-dev nlohmann-json3-dev libcli11-dev libspdlog-dev libssl-dev
  # core: written .nii.gz files are compressed in parallel blocks with libdeflate
  libdeflate-dev
  # tests and benchmarks
  libgtest-dev libgmock-dev libbenchmark-dev
  # imaging: ITK 5.2 (IO, filters, registration)
  libinsighttoolkit5-dev
  # io plugin: DICOM headers (DCMTK), zlib, PNG (libpng), JPEG output (libjpeg-turbo); tests: pydicom's real DICOM files and pydicom
  # itself (with numpy) to compute expected values
  libdcmtk-dev zlib1g-dev libpng-dev libjpeg-dev python3-pydicom python3-numpy
  # visualizers: VTK 9.1 (its CMake config needs MPI), a virtual X display for headless rendering
  libvtk9-dev libopenmpi-dev xvfb xauth
  # learned plugin: LibTorch 1.13 (CPU) for the learned shared latent space and `fusionflow train`
  libtorch-dev
  # viz tests: ensure_display() talks to X (libX11), the viewer test sends keys with xdotool
  libx11-dev xdotool
  # cohort tests: a single-node Slurm (slurmctld, slurmd) with munge, started by the tests themselves
  slurm-wlm munge procps
  # `fusionflow graph ... | dot -Tpng`
  graphviz
  # io tests: nibabel reads Siemens mosaics and sheared NIfTI files as the reference (and ships real
  # mosaics); fuzz/make_seeds.py writes its seed images with it
  python3-nibabel
  # DICOM output tests: dciodvfy (dicom3tools) validates the written series, dcm2niix converts them as an
  # independent reader
  dicom3tools dcm2niix
  # PACS tests: a real DICOM server (Orthanc), started by the tests on loopback; curl asks its REST API
  orthanc curl
  # the Python module (python/): pybind11 and Python's headers; its tests run with pytest
  pybind11-dev python3-dev python3-pytest
  # run report tests: headless Chromium loads the report from disk (driven by playwright-core, which
  # scripts/fetch-web-deps.sh installs with npm)
  chromium
)
# npm fetches the report's slice viewer (NiiVue) and playwright-core. Use the machine's Node.js and npm
# when it has them (a Node.js from elsewhere conflicts with Debian's npm package); Debian's otherwise.
if ! command -v npm >/dev/null; then
  packages+=(nodejs npm)
fi
if [ "${1:-}" = --fuzz ]; then
  packages+=(clang libclang-rt-14-dev)
fi

missing=()
for package in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$package")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "setup: all ${#packages[@]} packages present"
  bash scripts/fetch-web-deps.sh
  exit 0
fi

if [ "$(id -u)" -eq 0 ]; then
  sudo=()
elif command -v sudo >/dev/null; then
  sudo=(sudo)
else
  echo "setup: missing packages (${missing[*]}) and not root and no sudo: install them as root" >&2
  exit 1
fi

echo "setup: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
"${sudo[@]}" apt-get update -q
"${sudo[@]}" apt-get install -y -q --no-install-recommends "${missing[@]}"
bash scripts/fetch-web-deps.sh
