// io.write: a Volume to NIfTI, NRRD or MetaImage through the ITK bridge
// (geometry preserved, written to a temporary file and renamed, missing
// directories created). Only voxels and geometry are written: no metadata, so
// no DICOM identifier can reach the file.
#include "io_internal.hpp"

#include <fusionflow/itk_bridge.hpp>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <stdexcept>
#include <string>
#include <system_error>

namespace fusionflow::io {
namespace {
namespace fs = std::filesystem;

constexpr InputPort<Volume> kVolumeIn{"volume"};

void check_extension(const fs::path& path) {
  if (image_format_of(path)) return;
  const std::string name = lower(path.filename().string());
  for (const char* suffix : {".nii", ".nii.gz", ".nrrd", ".mha"}) {
    if (ends_with(name, suffix)) return;
  }
  if (ends_with(name, ".mhd") || ends_with(name, ".nhdr")) {
    throw std::invalid_argument("cannot write '" + path.string() +
                                "': a header with a separate data file cannot be written atomically; use .mha "
                                "(MetaImage) or .nrrd (NRRD) for a single file");
  }
  throw std::invalid_argument("cannot write '" + path.string() + "': unsupported extension '" +
                              path.extension().string() +
                              "'; use .nii, .nii.gz, .nrrd, .mha, or .png or .jpg for one slice");
}

// The same file: equal canonical paths, or the same inode when both exist.
bool same_file(const fs::path& a, const fs::path& b) {
  std::error_code ec;
  if (fs::exists(a, ec) && fs::exists(b, ec) && fs::equivalent(a, b, ec)) return true;
  const fs::path ca = fs::weakly_canonical(fs::absolute(a, ec), ec);
  const fs::path cb = fs::weakly_canonical(fs::absolute(b, ec), ec);
  return !ca.empty() && ca == cb;
}

struct Range {
  bool finite = true;
  bool integral = true;
  double min = 0.0, max = 0.0;
};

Range range_of(const VoxelBuffer& voxels) {
  Range range;
  bool first = true;
  for (float value : voxels) {
    if (!std::isfinite(value)) {
      range.finite = false;
      continue;
    }
    if (value != std::nearbyint(value)) range.integral = false;
    if (first || value < range.min) range.min = value;
    if (first || value > range.max) range.max = value;
    first = false;
  }
  return range;
}

}  // namespace

NodeType<WriteOptions> write_node() {
  NodeType<WriteOptions> node("io.write", "1.0.0",
                              "Writes a volume to NIfTI (.nii, .nii.gz), NRRD (.nrrd) or MetaImage (.mha) with its "
                              "geometry, or one slice to PNG (.png, 8/16-bit grey) or JPEG (.jpg) with explicit "
                              "scaling, atomically (temporary file, then rename); refuses to overwrite the volume's "
                              "own source file; .nii.gz is gzip in independent 1 MiB members compressed in "
                              "parallel (libdeflate level 6; every gzip reader takes it)");
  node.input(kVolumeIn, "the volume to write")
      .output_path(&WriteOptions::path, "path",
                   "output file; the format follows the extension; missing directories are "
                   "created")
      .choice(&WriteOptions::storage, "storage", kWriteStorageNames,
              "voxel type on disk: float32; int16 or uint8 (rounded to nearest, clamped to the type's range, NaN "
              "written as 0); auto: the smallest of uint8, int16, float32 that holds every voxel exactly");
  add_image_output_params(node);
  return node;
}

void run_write(NodeContext& ctx, const WriteOptions& options) {
  const Volume& volume = ctx.input(kVolumeIn);
  const fs::path& path = options.path;
  check_extension(path);
  if (!volume.metadata.source.empty() && same_file(path, volume.metadata.source)) {
    throw std::invalid_argument("refusing to write '" + path.string() +
                                "': it is the file this volume was read from (metadata.source); choose another "
                                "output path");
  }
  if (volume.voxels.size() != volume.geometry.voxel_count()) {
    throw std::invalid_argument("cannot write '" + path.string() + "': the volume has " +
                                std::to_string(volume.voxels.size()) + " voxels but its geometry needs " +
                                std::to_string(volume.geometry.voxel_count()));
  }
  if (const auto format = image_format_of(path)) {
    ctx.throw_if_cancelled();
    write_grey_image(volume, path, *format, options, ctx);
    ctx.progress(1.0);
    return;
  }
  WriteStorage storage = options.storage;
  const Range range = range_of(volume.voxels);
  if (storage == WriteStorage::Auto) {
    storage = WriteStorage::Float32;
    if (range.finite && range.integral) {
      if (range.min >= 0 && range.max <= 255) {
        storage = WriteStorage::UInt8;
      } else if (range.min >= -32768 && range.max <= 32767) {
        storage = WriteStorage::Int16;
      }
    }
  } else if (storage != WriteStorage::Float32) {
    const double low = storage == WriteStorage::UInt8 ? 0.0 : -32768.0;
    const double high = storage == WriteStorage::UInt8 ? 255.0 : 32767.0;
    if (!range.finite || !range.integral || range.min < low || range.max > high) {
      ctx.log(LogLevel::Warn, "writing '" + path.string() + "' as " + kWriteStorageNames.name(storage) +
                                  " changes voxel values (range [" + std::to_string(range.min) + ", " +
                                  std::to_string(range.max) + "]" + (range.integral ? "" : ", non-integral") +
                                  (range.finite ? "" : ", non-finite") + "); use storage=float32 to keep them");
    }
  }
  const VoxelStorage type = storage == WriteStorage::UInt8   ? VoxelStorage::UInt8
                            : storage == WriteStorage::Int16 ? VoxelStorage::Int16
                                                             : VoxelStorage::Float32;
  ctx.throw_if_cancelled();
  write_volume(volume, path, type);
  ctx.progress(1.0);
  ctx.log(LogLevel::Info, "wrote '" + path.string() + "' (" + kWriteStorageNames.name(storage) + ")");
}

}  // namespace fusionflow::io
