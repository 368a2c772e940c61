#!/usr/bin/env bash
# Builds ITK's MetaIO and MetaImageIO (libITKMetaIO, libITKIOMeta) from
# Debian's own insighttoolkit5 source package with clang, ASan, UBSan and
# libFuzzer coverage, as drop-in replacements (same sonames) for the system
# libraries: scripts/fuzz.sh puts them first on LD_LIBRARY_PATH for the
# metaimage target, so ASan sees MetaIO's own reads and writes (found that
# way: MetaIO's region reader writing past ITK's buffer). Nothing of ITK is
# committed: the source comes from Debian's archive
# (scripts/fetch-debian-source.sh).
#   scripts/build-instrumented-metaio.sh OUT_DIR
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:?usage: scripts/build-instrumented-metaio.sh OUT_DIR}
mkdir -p "$out"
out=$(cd "$out" && pwd)
if [ -f "$out/libITKMetaIO-5.2.so.1" ] && [ -f "$out/libITKIOMeta-5.2.so.1" ]; then
  echo "instrumented MetaIO: $out (already built)"
  exit 0
fi
version=$(dpkg-query -W -f='${source:Version}' libinsighttoolkit5-dev 2>/dev/null || true)
if [ -z "$version" ]; then
  echo "build-instrumented-metaio: libinsighttoolkit5-dev is not installed (bash scripts/setup.sh)" >&2
  exit 2
fi
source_dir="$out/source"
bash scripts/fetch-debian-source.sh insighttoolkit5 "$version" "$source_dir"
tree="$source_dir/tree"
if [ ! -d "$tree" ]; then
  mkdir -p "$tree"
  tar -xJf "$source_dir"/insighttoolkit5_*.orig.tar.xz -C "$tree" --strip-components=1 \
    --wildcards '*/Modules/ThirdParty/MetaIO/src/MetaIO/src/*' '*/Modules/IO/Meta/src/*'
fi
metaio="$tree/Modules/ThirdParty/MetaIO/src/MetaIO/src"
iometa="$tree/Modules/IO/Meta/src"
flags=(-std=c++14 -O1 -g -fPIC -fno-omit-frame-pointer -fsanitize=address,undefined -fsanitize=fuzzer-no-link
  -I/usr/include/ITK-5.2 -w)
objects="$out/objects"
mkdir -p "$objects"
# The sources MetaIO's own CMakeLists.txt builds.
mapfile -t metaio_sources < <(sed -n 's/^ *\(meta[A-Za-z]*\.cxx\) *$/\1/p' "$metaio/CMakeLists.txt")
metaio_objects=()
for source in "${metaio_sources[@]}"; do
  clang++ "${flags[@]}" -I"$metaio" -c "$metaio/$source" -o "$objects/${source%.cxx}.o"
  metaio_objects+=("$objects/${source%.cxx}.o")
done
clang++ -shared -fsanitize=address,undefined -Wl,-soname,libITKMetaIO-5.2.so.1 -o "$out/libITKMetaIO-5.2.so.1" \
  "${metaio_objects[@]}" -lz
# Debian's ITK headers need the clang shim (fuzz/clang/itk_compiler_shim.h).
for source in itkMetaImageIO itkMetaImageIOFactory itkMetaArrayReader itkMetaArrayWriter; do
  clang++ "${flags[@]}" -DITKIOMeta_EXPORTS -include "$PWD/fuzz/clang/itk_compiler_shim.h" \
    -c "$iometa/$source.cxx" -o "$objects/$source.o"
done
itk_lib=$(dirname "$(readlink -f "$(ldconfig -p | sed -n 's/.*libITKCommon-5.2.so.1 .*=> //p' | head -1)")")
clang++ -shared -fsanitize=address,undefined -Wl,-soname,libITKIOMeta-5.2.so.1 -o "$out/libITKIOMeta-5.2.so.1" \
  "$objects"/itkMeta*.o -L"$out" -l:libITKMetaIO-5.2.so.1 -L"$itk_lib" -l:libITKIOImageBase-5.2.so.1 \
  -l:libITKCommon-5.2.so.1 -l:libitksys-5.2.so.1 -l:libitkvnl-5.2.so.1
echo "instrumented MetaIO: $out (ITK $version)"
