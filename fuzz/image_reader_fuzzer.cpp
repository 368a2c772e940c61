// One io reader on arbitrary bytes, through the real node (io.load_image):
// the input is written to a file in a memory-backed folder, since the readers
// take paths. Any input must load or fail with an exception naming the file;
// a signal, a sanitizer report, a hang or a runaway allocation is a finding.
// The format is chosen at build time (FUSIONFLOW_FUZZ_FORMAT_<name>), as the
// readers pick the format from the file name.
#include <unistd.h>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <filesystem>
#include <fstream>
#include <string>
#include "fuzz_support.hpp"
#include "fusionflow/testing.hpp"

namespace {
namespace fs = std::filesystem;

#if defined(FUSIONFLOW_FUZZ_FORMAT_nifti)
// A gzip stream gets the name ITK and the loader expect for it.
std::string file_name(const std::uint8_t* data, std::size_t size) {
  return size >= 2 && data[0] == 0x1f && data[1] == 0x8b ? "input.nii.gz" : "input.nii";
}
#elif defined(FUSIONFLOW_FUZZ_FORMAT_nrrd)
std::string file_name(const std::uint8_t*, std::size_t) { return "input.nrrd"; }
#elif defined(FUSIONFLOW_FUZZ_FORMAT_metaimage)
std::string file_name(const std::uint8_t*, std::size_t) { return "input.mha"; }
#elif defined(FUSIONFLOW_FUZZ_FORMAT_png)
std::string file_name(const std::uint8_t*, std::size_t) { return "input.png"; }
#elif defined(FUSIONFLOW_FUZZ_FORMAT_dicom)
std::string file_name(const std::uint8_t*, std::size_t) { return "input.dcm"; }
#else
#error "define FUSIONFLOW_FUZZ_FORMAT_<nifti|nrrd|metaimage|png|dicom>"
#endif

const fs::path& work_dir() {
  static const fs::path dir = [] {
    const fs::path shm = "/dev/shm";
    fs::path made =
        (fs::is_directory(shm) ? shm : fs::temp_directory_path()) / ("fusionflow-fuzz-" + std::to_string(::getpid()));
    fs::create_directories(made);
    return made;
  }();
  return dir;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const fusionflow::NodeRegistry& registry = fusionflow::fuzz::bundled_registry();
  const fs::path file = work_dir() / file_name(data, size);
  {
    std::ofstream out(file, std::ios::binary | std::ios::trunc);
    out.write(reinterpret_cast<const char*>(data), static_cast<std::streamsize>(size));
  }
  fusionflow::testing::NodeHarness node(registry, "io.load_image");
  node.set_param("path", fusionflow::ParamValue(file.string()));
  try {
    node.run();
  } catch (const std::exception& error) {
    // A refusal must name the file it refused.
    if (std::string(error.what()).find(file.filename().string()) == std::string::npos) __builtin_trap();
  }
  fs::remove(file);
  return 0;
}
