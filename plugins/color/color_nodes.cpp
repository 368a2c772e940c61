// color.* nodes: the colour side of fusion, as the literature does it. A
// colour functional image (a pseudo-colour PET or SPECT) is split into BT.601
// luma and chroma (color.to_ycbcr); its luma Y is fused with the grey
// anatomical image by any fusion method; the chroma is put back
// (color.from_ycbcr). color.map gives a grey volume (a 3D PET) a colour map
// first, so it takes the same path.
#include <fusionflow/sdk.hpp>

#include <algorithm>
#include <cmath>
#include <limits>
#include <stdexcept>

namespace fusionflow::color_nodes {
namespace {

constexpr InputPort<ColorVolume> kImageIn{"image"};
constexpr OutputPort<ColorVolume> kImageOut{"image"};
constexpr InputPort<Volume> kYIn{"y"};
constexpr InputPort<Volume> kCbIn{"cb"};
constexpr InputPort<Volume> kCrIn{"cr"};
constexpr OutputPort<Volume> kYOut{"y"};
constexpr OutputPort<Volume> kCbOut{"cb"};
constexpr OutputPort<Volume> kCrOut{"cr"};
constexpr InputPort<Volume> kVolumeIn{"volume"};

std::string number(double value) {
  char text[32];
  std::snprintf(text, sizeof text, "%.10g", value);
  return text;
}

void check_channels(const ColorVolume& image) {
  for (const auto& channel : image.rgb) {
    if (channel.size() != image.geometry.voxel_count()) {
      throw std::invalid_argument("the colour image has " + std::to_string(channel.size()) +
                                  " values in a channel but its grid " + image.geometry.size_string() + " needs " +
                                  std::to_string(image.geometry.voxel_count()));
    }
  }
}

// --- color.to_ycbcr ------------------------------------------------------------

NodeType<NoOptions> to_ycbcr_node() {
  NodeType<NoOptions> node("color.to_ycbcr", "1.0.0",
                           "Splits a colour image into ITU-R BT.601 luma Y and chroma Cb, Cr (full range, JPEG "
                           "convention: Y = 0.299 R + 0.587 G + 0.114 B; Cb, Cr centred on (max + 1) / 2, 128 for "
                           "8 bits), each a grey volume on the image's grid in its value range; not rounded");
  node.input(kImageIn, "the colour image (e.g. a pseudo-colour PET slice from io.load_color)")
      .output(kYOut, "luma: fuse it with the grey image")
      .output(kCbOut, "blue-difference chroma: pass it to color.from_ycbcr")
      .output(kCrOut, "red-difference chroma: pass it to color.from_ycbcr");
  return node;
}

void run_to_ycbcr(NodeContext& ctx, const NoOptions&) {
  const ColorVolume& image = ctx.input(kImageIn);
  check_channels(image);
  const std::size_t count = image.geometry.voxel_count();
  std::array<Volume, 3> planes;
  const char* names[] = {"Y", "Cb", "Cr"};
  for (std::size_t c = 0; c < 3; ++c) {
    planes[c].geometry = image.geometry;
    planes[c].metadata = image.metadata;
    planes[c].metadata.quantity = std::string("BT.601 ") + names[c] + " of " +
                                  (image.metadata.quantity.empty() ? "a colour image" : image.metadata.quantity);
    planes[c].metadata.extra["color.component"] = names[c];
    planes[c].metadata.extra["color.max_value"] = number(image.max_value);
    planes[c].voxels.resize(count);
  }
  for (std::size_t v = 0; v < count; ++v) {
    const Ycbcr value = rgb_to_ycbcr(image.rgb[0][v], image.rgb[1][v], image.rgb[2][v], image.max_value);
    planes[0].voxels[v] = static_cast<float>(value.y);
    planes[1].voxels[v] = static_cast<float>(value.cb);
    planes[2].voxels[v] = static_cast<float>(value.cr);
  }
  ctx.output(kYOut, std::move(planes[0]));
  ctx.output(kCbOut, std::move(planes[1]));
  ctx.output(kCrOut, std::move(planes[2]));
}

// --- color.from_ycbcr ------------------------------------------------------------

struct FromYcbcrOptions {
  double max_value = 255.0;
  bool round_channels = false;
};

NodeType<FromYcbcrOptions> from_ycbcr_node() {
  NodeType<FromYcbcrOptions> node(
      "color.from_ycbcr", "1.0.0",
      "Puts luma and chroma back together into a colour image (the inverse of color.to_ycbcr: R = Y + 1.402 (Cr - "
      "mid), G = Y - 0.344136 (Cb - mid) - 0.714136 (Cr - mid), B = Y + 1.772 (Cb - mid)), each channel clamped "
      "to [0, max_value]; the grids must match (the fused Y keeps the source's grid)");
  node.input(kYIn, "luma, e.g. the fused Y (decode.latent)")
      .input(kCbIn, "blue-difference chroma (color.to_ycbcr)")
      .input(kCrIn, "red-difference chroma (color.to_ycbcr)")
      .output(kImageOut, "the colour image, on Y's grid with Y's metadata")
      .param(&FromYcbcrOptions::max_value, "max_value", Limits::range(1.0, 65535.0),
             "top of the value range: 255 for 8-bit colour, 65535 for 16-bit (as color.to_ycbcr recorded in "
             "color.max_value)")
      .param(&FromYcbcrOptions::round_channels, "round_channels",
             "round each channel to the nearest integer, as an 8- or 16-bit file stores it (so that metrics of its "
             "luma are those of the written file)");
  return node;
}

void run_from_ycbcr(NodeContext& ctx, const FromYcbcrOptions& options) {
  const Volume& y = ctx.input(kYIn);
  const Volume& cb = ctx.input(kCbIn);
  const Volume& cr = ctx.input(kCrIn);
  for (const auto& [name, plane] : {std::pair<const char*, const Volume*>{"cb", &cb}, {"cr", &cr}}) {
    if (!plane->geometry.same_grid(y.geometry)) {
      throw std::invalid_argument(std::string("'") + name + "' is on another grid (" + plane->geometry.size_string() +
                                  ") than 'y' (" + y.geometry.size_string() + "): resample it onto Y's grid first");
    }
  }
  for (const Volume* plane : {&cb, &cr}) {
    auto recorded = plane->metadata.extra.find("color.max_value");
    if (recorded != plane->metadata.extra.end() && std::stod(recorded->second) != options.max_value) {
      ctx.log(LogLevel::Warn, "the chroma was made with max_value " + recorded->second + ", this node uses " +
                                  number(options.max_value) + ": the colours will be off");
      break;
    }
  }
  ColorVolume image;
  image.geometry = y.geometry;
  image.metadata = y.metadata;
  image.metadata.extra.erase("color.component");
  image.max_value = options.max_value;
  const std::size_t count = y.geometry.voxel_count();
  for (auto& channel : image.rgb) channel.resize(count);
  std::size_t clamped = 0;
  for (std::size_t v = 0; v < count; ++v) {
    const auto rgb = ycbcr_to_rgb({y.voxels[v], cb.voxels[v], cr.voxels[v]}, options.max_value);
    for (std::size_t c = 0; c < 3; ++c) {
      const double value = std::isfinite(rgb[c]) ? rgb[c] : 0.0;
      const double kept = std::clamp(value, 0.0, options.max_value);
      clamped += kept != value ? 1 : 0;
      image.rgb[c][v] = static_cast<float>(options.round_channels ? std::floor(kept + 0.5) : kept);
    }
  }
  if (clamped > 0) {
    image.metadata.extra["color.clamped_values"] = std::to_string(clamped);
    ctx.log(LogLevel::Info, std::to_string(clamped) + " channel values fell outside [0, " + number(options.max_value) +
                                "] and were clamped (a fused luma brighter than the "
                                "colour's gamut allows)");
  }
  ctx.output(kImageOut, std::move(image));
}

// --- color.map -----------------------------------------------------------------

struct MapOptions {
  Colormap colormap = Colormap::Hot;
  std::vector<double> range;  // [low, high]; empty: the finite minimum and maximum
  double max_value = 255.0;
};

NodeType<MapOptions> map_node() {
  NodeType<MapOptions> node("color.map", "1.0.0",
                            "Gives a grey volume (e.g. a 3D PET) a colour map: t = (x - low) / (high - low), "
                            "clamped to [0, 1], through the map, scaled to [0, max_value]; not rounded. Values at "
                            "or below low take the map's first colour (black for hot), non-finite ones too");
  node.input(kVolumeIn, "the grey volume")
      .output(kImageOut, "the colour volume, same grid and metadata")
      .choice(&MapOptions::colormap, "colormap", kColormapNames,
              "hot (black, red, yellow, white: PET), jet, rainbow (blue to red), viridis or gray")
      .param(&MapOptions::range, "range", "[low, high] in the volume's units; empty: its finite minimum and maximum")
      .param(&MapOptions::max_value, "max_value", Limits::range(1.0, 65535.0),
             "top of the colour values: 255 for 8-bit output");
  return node;
}

void run_map(NodeContext& ctx, const MapOptions& options) {
  const Volume& volume = ctx.input(kVolumeIn);
  double low = 0, high = 0;
  if (!options.range.empty() && options.range.size() != 2) {
    throw std::invalid_argument("range must be [low, high] or empty, got " + std::to_string(options.range.size()) +
                                " values");
  }
  if (options.range.size() == 2) {
    low = options.range[0];
    high = options.range[1];
  } else {
    low = std::numeric_limits<double>::infinity();
    high = -low;
    for (float value : volume.voxels) {
      if (!std::isfinite(value)) continue;
      low = std::min(low, double(value));
      high = std::max(high, double(value));
    }
    if (!std::isfinite(low)) low = high = 0;
  }
  if (!(high > low)) {
    throw std::invalid_argument("cannot map colours over the range [" + number(low) + ", " + number(high) + "]" +
                                (options.range.empty() ? " (the volume is constant)" : "") +
                                ": give range = [low, high] with low < high");
  }
  ColorVolume image;
  image.geometry = volume.geometry;
  image.metadata = volume.metadata;
  image.metadata.extra["color.map"] =
      kColormapNames.name(options.colormap) + " over [" + number(low) + ", " + number(high) + "]";
  image.max_value = options.max_value;
  const std::size_t count = volume.voxels.size();
  for (auto& channel : image.rgb) channel.resize(count);
  for (std::size_t v = 0; v < count; ++v) {
    const double t = std::isfinite(volume.voxels[v]) ? (volume.voxels[v] - low) / (high - low) : 0.0;
    const auto rgb = colormap_rgb(options.colormap, t);
    for (std::size_t c = 0; c < 3; ++c) image.rgb[c][v] = static_cast<float>(rgb[c] * options.max_value);
  }
  ctx.output(kImageOut, std::move(image));
}

}  // namespace
}  // namespace fusionflow::color_nodes

FUSIONFLOW_PLUGIN("color", "1.0.0", "Colour images: BT.601 luma and chroma, colour maps") {
  using namespace fusionflow::color_nodes;
  registrar.add_node(to_ycbcr_node(), run_to_ycbcr);
  registrar.add_node(from_ycbcr_node(), run_from_ycbcr);
  registrar.add_node(map_node(), run_map);
}
