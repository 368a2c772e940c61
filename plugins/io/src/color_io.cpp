// 2D image output (PNG, JPEG) for io.write, and the colour nodes
// io.load_color and io.write_color.
//
// Values become grey levels by an explicit rule only (ImageScaling): no
// contrast stretch, dithering or offset unless asked, so a background that is
// 0 in the volume is exactly 0 in the file (published fusion metrics punish
// any offset there). Rounding is to the nearest level, halves up; NaN is 0.
// PNG and JPEG hold pixels only: the geometry (spacing, origin, direction)
// is not kept; write a NIfTI beside it when it matters.
#include <fusionflow/atomic_file.hpp>
#include <fusionflow/itk_bridge.hpp>

#include <algorithm>
#include <cmath>
#include <stdexcept>

#include "io_internal.hpp"

namespace fusionflow::io {
namespace fs = std::filesystem;

namespace {

constexpr InputPort<ColorVolume> kImageIn{"image"};
constexpr OutputPort<ColorVolume> kImageOut{"image"};

std::string number(double value) {
  char text[32];
  std::snprintf(text, sizeof text, "%.10g", value);
  return text;
}

void check_one_slice(const Geometry& geometry, const fs::path& path) {
  if (geometry.size[2] != 1) {
    throw std::invalid_argument("cannot write '" + path.string() + "': a PNG or JPEG holds one slice, this image has " +
                                geometry.size_string() +
                                " voxels; take one slice first (resample.extract_slice) or write .nii.gz");
  }
}

int bits_for(ImageFormat format, std::int64_t bits, const fs::path& path) {
  if (format == ImageFormat::Jpeg) {
    if (bits != 8)
      throw std::invalid_argument("cannot write '" + path.string() + "' with bits=" + std::to_string(bits) +
                                  ": JPEG holds 8 bits per sample");
    return 8;
  }
  if (bits != 8 && bits != 16) {
    throw std::invalid_argument("cannot write '" + path.string() + "': bits must be 8 or 16, got " +
                                std::to_string(bits));
  }
  return int(bits);
}

// value -> level in [0, top]: nearest, halves up, clamped; NaN -> 0. Counts what changed.
struct Quantiser {
  double top;
  std::size_t clamped = 0, rounded = 0;
  std::uint16_t operator()(double value) {
    if (!std::isfinite(value)) {
      ++clamped;
      return 0;
    }
    const double kept = std::clamp(value, 0.0, top);
    clamped += kept != value ? 1 : 0;
    const double level = std::floor(kept + 0.5);
    rounded += level != kept ? 1 : 0;
    return static_cast<std::uint16_t>(level);
  }
};

void commit_image(const fs::path& path, ImageFormat format, std::size_t width, std::size_t height, int channels,
                  int bits, std::int64_t quality, const std::vector<std::uint16_t>& samples) {
  AtomicFileWriter writer(path);
  if (format == ImageFormat::Png) {
    write_png_file(writer.temp_path(), width, height, channels, bits, samples);
  } else {
    write_jpeg_file(writer.temp_path(), width, height, channels, int(quality), samples);
  }
  writer.commit();
}

}  // namespace

std::optional<ImageFormat> image_format_of(const fs::path& path) {
  const std::string extension = lower(path.extension().string());
  if (extension == ".png") return ImageFormat::Png;
  if (extension == ".jpg" || extension == ".jpeg") return ImageFormat::Jpeg;
  return std::nullopt;
}

void write_grey_image(const Volume& volume, const fs::path& path, ImageFormat format, const ImageOutputOptions& options,
                      NodeContext& ctx) {
  check_one_slice(volume.geometry, path);
  const int bits = bits_for(format, options.bits, path);
  const double top = bits == 16 ? 65535.0 : 255.0;
  double low = 0.0, high = top;  // scaling=none: the values are the levels
  std::string how = "values as levels";
  if (options.scaling == ImageScaling::Range) {
    if (options.range.size() != 2 || !(options.range[1] > options.range[0])) {
      throw std::invalid_argument("cannot write '" + path.string() +
                                  "': scaling=range needs range = [low, high] with low < high");
    }
    low = options.range[0];
    high = options.range[1];
    how = "[" + number(low) + ", " + number(high) + "] onto 0.." + number(top);
  } else if (options.scaling == ImageScaling::Window) {
    if (!(options.window > 0)) {
      throw std::invalid_argument("cannot write '" + path.string() + "': scaling=window needs window > 0");
    }
    low = options.level - options.window / 2;
    high = options.level + options.window / 2;
    how = "window " + number(options.window) + " at level " + number(options.level) + " onto 0.." + number(top);
  }
  const double scale = top / (high - low);
  Quantiser quantise{top};
  std::vector<std::uint16_t> samples(volume.voxels.size());
  for (std::size_t n = 0; n < samples.size(); ++n) {
    const double value = options.scaling == ImageScaling::None ? volume.voxels[n] : (volume.voxels[n] - low) * scale;
    samples[n] = quantise(value);
  }
  if (options.scaling == ImageScaling::None && quantise.clamped > 0) {
    ctx.log(LogLevel::Warn, "'" + path.string() + "': " + std::to_string(quantise.clamped) + " values outside 0.." +
                                number(top) +
                                " (or not finite) were clamped; scaling=range or window maps a range instead");
  }
  commit_image(path, format, volume.geometry.size[0], volume.geometry.size[1], 1, bits, options.quality, samples);
  ctx.log(LogLevel::Info, "wrote '" + path.string() + "' (" + std::to_string(bits) + "-bit grey, " + how + ", " +
                              std::to_string(quantise.rounded) + " values rounded)");
}

// --- io.load_color -----------------------------------------------------------------

NodeType<LoadColorOptions> load_color_node() {
  NodeType<LoadColorOptions> node("io.load_color", "1.0.0",
                                  "Reads a PNG as a colour image: RGB and palette as stored, grey as R = G = B; "
                                  "8-bit samples in 0..255, 16-bit in 0..65535 (max_value); alpha ignored; one "
                                  "slice, spacing 1, origin 0 (a PNG has no scan geometry)");
  node.input_path(&LoadColorOptions::path, "path", "PNG file (grey, palette, RGB or RGBA; 1 to 16 bits)")
      .output(kImageOut, "the colour image")
      .param(&LoadColorOptions::max_voxels, "max_voxels", Limits::at_least(1),
             "refuse images announcing more pixels than this (checked from the header, before any allocation)");
  return node;
}

void run_load_color(NodeContext& ctx, const LoadColorOptions& options) {
  if (image_format_of(options.path) != ImageFormat::Png) {
    throw std::invalid_argument("cannot read '" + options.path.string() +
                                "' as colour: io.load_color reads PNG files (.png); grey volumes go through "
                                "io.load_image and color.map");
  }
  ColorVolume image = read_png_color(options.path, options.max_voxels, ctx);
  ctx.log(LogLevel::Info, "loaded '" + options.path.string() + "' (" + image.metadata.extra["io.png_color_type"] +
                              "): " + image.geometry.size_string() + " pixels");
  ctx.output(kImageOut, std::move(image));
}

// --- io.write_color ------------------------------------------------------------------

NodeType<WriteColorOptions> write_color_node() {
  NodeType<WriteColorOptions> node("io.write_color", "1.0.0",
                                   "Writes a colour image as RGB: one slice as PNG (8 or 16 bits) or JPEG (8 bits, "
                                   "no chroma subsampling), a volume as 8-bit RGB NIfTI (.nii, .nii.gz: RGB24, "
                                   "with its geometry), NRRD or MetaImage; atomically; channel values in [0, "
                                   "max_value] scaled onto 0..255 (or 0..65535), rounded to nearest; black stays "
                                   "exactly 0");
  node.input(kImageIn, "the colour image (e.g. color.from_ycbcr)")
      .output_path(&WriteColorOptions::path, "path",
                   "output file: .png, .jpg, .jpeg (one slice), .nii, .nii.gz, .nrrd, .mha; missing directories are "
                   "created")
      .param(&WriteColorOptions::bits, "bits", Limits::range(8, 16), "PNG: 8 or 16 bits per sample (JPEG: 8)")
      .param(&WriteColorOptions::quality, "quality", Limits::range(1, 100), "JPEG quality");
  return node;
}

void run_write_color(NodeContext& ctx, const WriteColorOptions& options) {
  const ColorVolume& image = ctx.input(kImageIn);
  const auto format = image_format_of(options.path);
  if (!format) {
    const std::string name = lower(options.path.filename().string());
    if (!(ends_with(name, ".nii") || ends_with(name, ".nii.gz") || ends_with(name, ".nrrd") ||
          ends_with(name, ".mha"))) {
      throw std::invalid_argument("cannot write '" + options.path.string() + "': unsupported extension '" +
                                  options.path.extension().string() +
                                  "'; use .png, .jpg or .jpeg for one slice, .nii.gz, .nrrd or .mha for a volume");
    }
    if (options.bits != 8) throw std::invalid_argument("RGB volumes are written with 8 bits per channel");
    ctx.throw_if_cancelled();
    write_color_volume(image, options.path);
    ctx.log(LogLevel::Info,
            "wrote '" + options.path.string() + "' (8-bit RGB volume, " + image.geometry.size_string() + ")");
    return;
  }
  check_one_slice(image.geometry, options.path);
  for (const auto& channel : image.rgb) {
    if (channel.size() != image.geometry.voxel_count()) {
      throw std::invalid_argument("cannot write '" + options.path.string() + "': a channel has " +
                                  std::to_string(channel.size()) + " values, the grid needs " +
                                  std::to_string(image.geometry.voxel_count()));
    }
  }
  if (!(image.max_value > 0)) throw std::invalid_argument("the colour image's max_value must be positive");
  const int bits = bits_for(*format, options.bits, options.path);
  const double top = bits == 16 ? 65535.0 : 255.0;
  const double scale = top / image.max_value;
  const std::size_t count = image.geometry.voxel_count();
  Quantiser quantise{top};
  std::vector<std::uint16_t> samples(count * 3);
  for (std::size_t v = 0; v < count; ++v) {
    for (std::size_t c = 0; c < 3; ++c) {
      samples[3 * v + c] = quantise(scale == 1.0 ? image.rgb[c][v] : image.rgb[c][v] * scale);
    }
  }
  if (quantise.clamped > 0) {
    ctx.log(LogLevel::Warn, "'" + options.path.string() + "': " + std::to_string(quantise.clamped) +
                                " channel values outside 0.." + number(image.max_value) + " were clamped");
  }
  commit_image(options.path, *format, image.geometry.size[0], image.geometry.size[1], 3, bits, options.quality,
               samples);
  ctx.log(LogLevel::Info, "wrote '" + options.path.string() + "' (" + std::to_string(bits) + "-bit RGB)");
}

}  // namespace fusionflow::io
