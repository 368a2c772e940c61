// The one place where fusionflow::Volume meets itk::Image<float,3>.
// Included only by code that links ITK (plugins, tools, tests); the core stays
// ITK-free through fusionflow/volume.hpp.
#pragma once

#include <filesystem>
#include <functional>

#include <itkImage.h>
#include <itkImageBase.h>

#include "fusionflow/color.hpp"
#include "fusionflow/volume.hpp"

namespace fusionflow {

using ItkFloatImage = itk::Image<float, 3>;

// Registers the image IO factories fusionflow reads and writes with (NIfTI,
// NRRD, MetaImage, PNG, GDCM/DICOM). Safe to call from any thread, any number
// of times; only the first call does work. We register explicitly because the
// build does not use ITK_USE_FILE's generated registration headers.
void register_itk_image_io();

// Deep copy into a new ITK image with the same size, spacing, origin and
// direction. Throws std::runtime_error if the voxel count does not match the
// geometry.
ItkFloatImage::Pointer to_itk(const Volume& volume);

// A read-only ITK image that uses the volume's voxels without copying them.
// The volume must outlive the image and every filter that reads it; use it
// as a filter input, never as an output or for in-place filters.
ItkFloatImage::ConstPointer to_itk_view(const Volume& volume);

// A writable ITK image over the volume's voxels (sized to its geometry), for
// a filter to write its output into (GraftOutput) without a copy afterwards.
ItkFloatImage::Pointer to_itk_output_view(Volume& volume);

// Deep copy of the largest possible region of `image`; geometry taken from the
// image, metadata from the caller (ITK images carry no modality semantics).
Volume from_itk(const ItkFloatImage& image, VolumeMetadata metadata);

// Size/spacing/origin/direction of an ITK image. A region that does not start
// at index 0 is folded into the origin, so Volume index 0 is the first voxel.
Geometry geometry_of(const itk::ImageBase<3>& image);

// How voxels are stored on disk. Integer types round to nearest and clamp to
// the type's range (CT in HU fits Int16, label maps fit UInt8).
enum class VoxelStorage { Float32, Int16, UInt8 };

// Writes `volume` to `path`; the format follows the extension (".nii.gz",
// ".nrrd", ".mha", ...). Atomic: the data goes to a temporary file that is
// renamed on success, so `path` is either complete or untouched. Files ending
// in ".gz" are compressed (see write_image_file_atomically). Throws
// std::runtime_error naming the path and ITK's reason on failure.
void write_volume(const Volume& volume, const std::filesystem::path& path,
                  VoxelStorage storage = VoxelStorage::Float32);

// gzip level of written ".gz" files (libdeflate's scale, 1..12): chosen to give
// the same file sizes as ITK's own NIfTI compression gave before, at a fraction
// of its time.
inline constexpr int kWrittenGzipLevel = 6;

// The one way image files are written: `write_uncompressed(file)` writes the
// image uncompressed to `file` (an ITK writer with SetUseCompression(false);
// `file` keeps the final name's extensions, ".gz" removed). For a `path`
// ending in ".gz" that file is a temporary one, compressed by
// gzip_file_in_blocks into `path` at kWrittenGzipLevel (in parallel, the same
// bytes for any thread count); otherwise it is `path`'s own temporary file.
// Either way `path` appears complete or not at all, and no temporary file is
// left behind.
void write_image_file_atomically(const std::filesystem::path& path,
                                 const std::function<void(const std::filesystem::path&)>& write_uncompressed);

// A colour image or volume as 8-bit RGB (NIfTI RGB24, NRRD or MetaImage by
// extension), channels scaled from [0, max_value] to 0..255 and rounded,
// with its geometry; atomic like write_volume.
void write_color_volume(const ColorVolume& image, const std::filesystem::path& path);

// Reads any ITK-supported scalar image as float, geometry from the file.
// metadata.source is the path; other metadata fields are left empty.
Volume read_volume(const std::filesystem::path& path);

}  // namespace fusionflow
