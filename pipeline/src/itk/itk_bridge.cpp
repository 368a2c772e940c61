#include "fusionflow/itk_bridge.hpp"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <mutex>
#include <stdexcept>
#include <string>
#include <type_traits>

#include <itkGDCMImageIOFactory.h>
#include <itkImageFileReader.h>
#include <itkImageFileWriter.h>
#include <itkMetaImageIOFactory.h>
#include <itkNiftiImageIOFactory.h>
#include <itkNrrdImageIOFactory.h>
#include <itkPNGImageIOFactory.h>
#include <itkRGBPixel.h>

#include "fusionflow/atomic_file.hpp"
#include "fusionflow/parallel_gzip.hpp"

namespace fusionflow {
namespace {

template <typename Pixel>
using ItkImage3 = itk::Image<Pixel, 3>;

void check_voxel_count(const Volume& volume) {
  if (volume.voxels.size() != volume.geometry.voxel_count()) {
    throw std::runtime_error("volume has " + std::to_string(volume.voxels.size()) + " voxels but its geometry " +
                             std::to_string(volume.geometry.size[0]) + "x" + std::to_string(volume.geometry.size[1]) +
                             "x" + std::to_string(volume.geometry.size[2]) + " needs " +
                             std::to_string(volume.geometry.voxel_count()));
  }
}

template <typename Pixel>
typename ItkImage3<Pixel>::Pointer describe_like(const Geometry& geometry) {
  using ImageType = ItkImage3<Pixel>;
  typename ImageType::RegionType region;
  typename ImageType::SizeType size;
  typename ImageType::SpacingType spacing;
  typename ImageType::PointType origin;
  typename ImageType::DirectionType direction;
  for (unsigned axis = 0; axis < 3; ++axis) {
    size[axis] = geometry.size[axis];
    spacing[axis] = geometry.spacing[axis];
    origin[axis] = geometry.origin[axis];
    for (unsigned col = 0; col < 3; ++col) direction(axis, col) = geometry.direction[axis * 3 + col];
  }
  region.SetSize(size);  // index defaults to 0
  auto image = ImageType::New();
  image->SetRegions(region);
  image->SetSpacing(spacing);
  image->SetOrigin(origin);
  image->SetDirection(direction);
  return image;
}

template <typename Pixel>
typename ItkImage3<Pixel>::Pointer allocate_like(const Geometry& geometry) {
  auto image = describe_like<Pixel>(geometry);
  image->Allocate();
  return image;
}

// Nearest integer, clamped to Pixel's range; float pixels pass through.
template <typename Pixel>
Pixel to_storage(float value) {
  if constexpr (std::is_floating_point_v<Pixel>) {
    return static_cast<Pixel>(value);
  } else {
    if (std::isnan(value)) return Pixel{0};
    const double low = static_cast<double>(std::numeric_limits<Pixel>::min());
    const double high = static_cast<double>(std::numeric_limits<Pixel>::max());
    const double rounded = std::nearbyint(std::clamp(static_cast<double>(value), low, high));
    return static_cast<Pixel>(rounded);
  }
}

bool ends_with(const std::string& text, const std::string& suffix) {
  return text.size() >= suffix.size() && text.compare(text.size() - suffix.size(), suffix.size(), suffix) == 0;
}

template <typename Pixel>
typename ItkImage3<Pixel>::ConstPointer storage_image(const Volume& volume) {
  if constexpr (std::is_same_v<Pixel, float>) {
    return to_itk_view(volume);  // float voxels are written as they are: no copy
  } else {
    auto image = allocate_like<Pixel>(volume.geometry);
    Pixel* buffer = image->GetBufferPointer();
    const std::size_t count = volume.voxels.size();
    for (std::size_t n = 0; n < count; ++n) buffer[n] = to_storage<Pixel>(volume.voxels[n]);
    return image;
  }
}

// Any image through ITK's writer for the extension, atomically; ".gz" compresses.
template <typename Image>
void write_atomically(const Image* image, const std::filesystem::path& path) {
  write_image_file_atomically(path, [&](const std::filesystem::path& file) {
    auto writer = itk::ImageFileWriter<Image>::New();
    writer->SetFileName(file.string());
    writer->SetInput(image);
    writer->SetUseCompression(false);
    try {
      writer->Update();
    } catch (const itk::ExceptionObject& error) {
      throw std::runtime_error("cannot write image '" + path.string() + "': " + error.GetDescription());
    }
  });
}

template <typename Pixel>
void write_as(const Volume& volume, const std::filesystem::path& path) {
  const auto image = storage_image<Pixel>(volume);
  write_atomically(image.GetPointer(), path);
}

}  // namespace

void write_image_file_atomically(const std::filesystem::path& path,
                                 const std::function<void(const std::filesystem::path&)>& write_uncompressed) {
  AtomicFileWriter atomic(path);
  if (!ends_with(path.filename().string(), ".gz")) {
    write_uncompressed(atomic.temp_path());
    atomic.commit();
    return;
  }
  // ITK's own gzip (zlib, one thread) took most of a large write's time. The
  // uncompressed file is a temporary beside the output, never committed: its
  // destructor removes it, whatever happens.
  std::filesystem::path uncompressed_name = path;
  uncompressed_name.replace_extension();  // "fused.nii.gz" -> "fused.nii"
  const AtomicFileWriter uncompressed(uncompressed_name);
  write_uncompressed(uncompressed.temp_path());
  gzip_file_in_blocks(uncompressed.temp_path(), atomic.temp_path(), kWrittenGzipLevel);
  atomic.commit();
}

void register_itk_image_io() {
  static std::once_flag registered;
  std::call_once(registered, [] {
    itk::NiftiImageIOFactory::RegisterOneFactory();
    itk::NrrdImageIOFactory::RegisterOneFactory();
    itk::MetaImageIOFactory::RegisterOneFactory();
    itk::PNGImageIOFactory::RegisterOneFactory();
    itk::GDCMImageIOFactory::RegisterOneFactory();
  });
}

ItkFloatImage::Pointer to_itk(const Volume& volume) {
  check_voxel_count(volume);
  auto image = allocate_like<float>(volume.geometry);
  std::copy(volume.voxels.begin(), volume.voxels.end(), image->GetBufferPointer());
  return image;
}

ItkFloatImage::ConstPointer to_itk_view(const Volume& volume) {
  check_voxel_count(volume);
  auto image = describe_like<float>(volume.geometry);
  // Not owned: the volume's buffer stays the volume's. ITK only reads it
  // through the const image.
  image->GetPixelContainer()->SetImportPointer(const_cast<float*>(volume.voxels.data()), volume.voxels.size(),
                                               /*LetContainerManageMemory=*/false);
  return image;
}

ItkFloatImage::Pointer to_itk_output_view(Volume& volume) {
  check_voxel_count(volume);
  auto image = describe_like<float>(volume.geometry);
  image->GetPixelContainer()->SetImportPointer(volume.voxels.data(), volume.voxels.size(),
                                               /*LetContainerManageMemory=*/false);
  return image;
}

Geometry geometry_of(const itk::ImageBase<3>& image) {
  const auto region = image.GetLargestPossibleRegion();
  Geometry geometry;
  itk::Point<double, 3> first_voxel;
  image.TransformIndexToPhysicalPoint(region.GetIndex(), first_voxel);
  for (unsigned axis = 0; axis < 3; ++axis) {
    geometry.size[axis] = region.GetSize()[axis];
    geometry.spacing[axis] = image.GetSpacing()[axis];
    geometry.origin[axis] = first_voxel[axis];
    for (unsigned col = 0; col < 3; ++col) geometry.direction[axis * 3 + col] = image.GetDirection()(axis, col);
  }
  return geometry;
}

Volume from_itk(const ItkFloatImage& image, VolumeMetadata metadata) {
  const auto largest = image.GetLargestPossibleRegion();
  if (image.GetBufferedRegion() != largest) {
    // A streamed or cropped request: copying only part of the image would
    // silently shift the geometry, so refuse.
    throw std::runtime_error("ITK image buffer does not hold its whole region; call Update() on the full image first");
  }
  Volume volume;
  volume.geometry = geometry_of(image);
  volume.metadata = std::move(metadata);
  const float* buffer = image.GetBufferPointer();
  volume.voxels.assign(buffer, buffer + volume.geometry.voxel_count());
  return volume;
}

void write_volume(const Volume& volume, const std::filesystem::path& path, VoxelStorage storage) {
  check_voxel_count(volume);
  register_itk_image_io();
  switch (storage) {
    case VoxelStorage::Float32: write_as<float>(volume, path); return;
    case VoxelStorage::Int16: write_as<std::int16_t>(volume, path); return;
    case VoxelStorage::UInt8: write_as<std::uint8_t>(volume, path); return;
  }
  throw std::runtime_error("unknown voxel storage type for '" + path.string() + "'");
}

void write_color_volume(const ColorVolume& image, const std::filesystem::path& path) {
  for (const auto& channel : image.rgb) {
    if (channel.size() != image.geometry.voxel_count()) {
      throw std::invalid_argument("cannot write '" + path.string() + "': a colour channel has " +
                                  std::to_string(channel.size()) + " values, the grid needs " +
                                  std::to_string(image.geometry.voxel_count()));
    }
  }
  if (!(image.max_value > 0)) throw std::invalid_argument("the colour image's max_value must be positive");
  register_itk_image_io();
  using Pixel = itk::RGBPixel<std::uint8_t>;
  auto itk_image = allocate_like<Pixel>(image.geometry);
  Pixel* buffer = itk_image->GetBufferPointer();
  const double scale = 255.0 / image.max_value;
  for (std::size_t v = 0; v < image.geometry.voxel_count(); ++v) {
    for (unsigned c = 0; c < 3; ++c) {
      const double value = std::isfinite(image.rgb[c][v]) ? image.rgb[c][v] * scale : 0.0;
      buffer[v][c] = static_cast<std::uint8_t>(std::floor(std::clamp(value, 0.0, 255.0) + 0.5));
    }
  }
  write_atomically(itk_image.GetPointer(), path);
}

Volume read_volume(const std::filesystem::path& path) {
  register_itk_image_io();
  auto reader = itk::ImageFileReader<ItkFloatImage>::New();
  reader->SetFileName(path.string());
  try {
    reader->Update();
  } catch (const itk::ExceptionObject& error) {
    throw std::runtime_error("cannot read image '" + path.string() + "': " + error.GetDescription());
  }
  VolumeMetadata metadata;
  metadata.source = path.string();
  return from_itk(*reader->GetOutput(), std::move(metadata));
}

}  // namespace fusionflow
