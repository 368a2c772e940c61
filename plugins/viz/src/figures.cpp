// viz.fusion_figure and viz.registration_check: the pictures that show the
// fused result beside its sources, and whether an alignment worked. Both are
// rasters sampled in world coordinates (LPS) through one point, in the
// radiological convention of viz.overlay, with orientation letters, scale
// bars and a caption; no OpenGL is involved (text only, through FreeType).
#include <fusionflow/sdk.hpp>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <limits>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "viz_nodes.hpp"
#include "vtk_support.hpp"

namespace fusionflow::viz {
namespace {

// How one image becomes RGB in a figure row: CT in a soft-tissue window
// (W 400 / L 40 HU: brain, fat, muscle and bone apart at once), PET in the
// hot colour map from 0 to its maximum (so that only the hottest region is
// white), anything else grey over its robust range (1st to 99.5th
// percentile).
struct RowStyle {
  double low = 0, high = 1;
  bool hot = false;
  std::string window;  // for the row label
};

RowStyle row_style(const Volume& volume) {
  RowStyle style;
  const std::string& modality = volume.metadata.modality;
  if (modality == "CT" && volume.metadata.units == "HU") {
    style.low = 40 - 200;
    style.high = 40 + 200;
    style.window = "W 400 L 40 HU";
    return style;
  }
  const IntensityStats stats = intensity_stats(volume);
  if (modality == "PT" || modality == "PET") {
    style.hot = true;
    style.low = 0;
    style.high = stats.max > 0 ? stats.max : 1.0;
    style.window =
        "0 to " + format_number(style.high) + (volume.metadata.units.empty() ? "" : " " + volume.metadata.units);
  } else {
    style.low = stats.low;
    style.high = stats.high > stats.low ? stats.high : stats.low + 1;
    style.window = format_number(style.low) + " to " + format_number(style.high);
  }
  return style;
}

std::array<std::uint8_t, 3> row_pixel(float value, const RowStyle& style) {
  if (!std::isfinite(value)) return {0, 0, 0};
  const double t = std::clamp((value - style.low) / (style.high - style.low), 0.0, 1.0);
  if (style.hot) {
    const auto rgb = colormap_rgb(Colormap::Hot, t);
    return {static_cast<std::uint8_t>(std::lround(255 * rgb[0])), static_cast<std::uint8_t>(std::lround(255 * rgb[1])),
            static_cast<std::uint8_t>(std::lround(255 * rgb[2]))};
  }
  const auto grey = static_cast<std::uint8_t>(std::lround(255 * t));
  return {grey, grey, grey};
}

// "CT", "MR T1-weighted", "PT", "FUSED": what an image is, for captions.
std::string row_name(const Volume& volume, const std::string& fallback) {
  std::string name = volume.metadata.modality.empty() ? fallback : volume.metadata.modality;
  const std::string& quantity = volume.metadata.quantity;
  if (!quantity.empty() && quantity.size() <= 24 && volume.metadata.modality != "FUSED") name += " " + quantity;
  return name;
}

// A row's label: its modality, what it holds (cut to fit the label column)
// and its window.
std::vector<std::string> row_label(const Volume& volume, const std::string& title, const RowStyle& style) {
  std::vector<std::string> lines{title};
  std::string quantity = volume.metadata.quantity;
  const auto bracket = quantity.find(" (");
  if (bracket != std::string::npos) quantity = quantity.substr(0, bracket);
  if (quantity.size() > 22) quantity = quantity.substr(0, 21) + ".";
  if (!quantity.empty() && volume.metadata.modality != "FUSED") lines.push_back(quantity);
  lines.push_back(style.window);
  return lines;
}

// The index axis of a 2D image (the one of size 1, z first), or -1.
int flat_axis(const Geometry& geometry) {
  for (int a = 2; a >= 0; --a) {
    if (geometry.size[a] == 1) return a;
  }
  return -1;
}

// A figure's panel columns: axial, coronal and sagittal; for a 2D image
// only the plane of its one slice (the panel whose fixed LPS axis is nearest
// the slice's normal: axial for an image read from a PNG file), since the
// other two would cut it along a line.
std::vector<PanelLayout> figure_panels(const Geometry& reference) {
  const int flat = flat_axis(reference);
  if (flat < 0) return {kPanels[0], kPanels[1], kPanels[2]};
  int normal = 0;
  for (int a = 1; a < 3; ++a) {
    if (std::abs(reference.direction[3 * a + flat]) > std::abs(reference.direction[3 * normal + flat])) normal = a;
  }
  for (const PanelLayout& panel : kPanels) {
    if (panel.fixed_axis == normal) return {panel};
  }
  return {kPanels[0]};
}

std::array<double, 3> figure_point(const std::vector<double>& point_mm, PointMode mode, const Volume* functional,
                                   const Geometry& reference, std::string& how) {
  if (point_mm.size() == 3) {
    how = "given";
    return {point_mm[0], point_mm[1], point_mm[2]};
  }
  if (!point_mm.empty()) throw std::invalid_argument("point_mm needs three values (x, y, z in LPS mm) or none");
  if (mode == PointMode::Hottest && functional != nullptr) {
    how = "hottest " +
          (functional->metadata.modality.empty() ? std::string("functional") : functional->metadata.modality);
    return hottest_point(*functional, world_bounds(reference));
  }
  how = "centre";
  return slice_view(reference, 1).centre;
}

std::string point_text(const std::array<double, 3>& point) {
  return "(" + format_number(point[0]) + ", " + format_number(point[1]) + ", " + format_number(point[2]) + ") mm LPS";
}

// A grid of rows x columns panels (the columns: planes) under a header of
// plane names, a label column on the left and a caption strip below, its
// lines wrapped to the figure's width.
class Figure {
 public:
  Figure(int rows, std::vector<PanelLayout> columns, int size, int label_width, const std::vector<std::string>& caption)
      : columns_(std::move(columns)), size_(size), label_width_(label_width), font_(std::clamp(size / 18, 10, 36)) {
    const int width = label_width + static_cast<int>(columns_.size()) * size;
    for (const std::string& line : caption) {
      for (std::string& part : wrap_text(line, caption_font(), width - font_))
        caption_lines_.push_back(std::move(part));
    }
    header_ = font_ * 2;
    caption_ = font_ * (static_cast<int>(caption_lines_.size()) + 1) + font_ / 2;
    image_ = RgbImage(width, header_ + rows * size + caption_, {0, 0, 0});
    for (std::size_t p = 0; p < columns_.size(); ++p) {
      std::string title = columns_[p].name;
      title[0] = static_cast<char>(std::toupper(title[0]));
      draw_text(image_, title, label_width + static_cast<int>(p) * size + size / 2, font_ / 2, font_, {1, 1, 1},
                TextAnchor::TopCentre, true);
    }
  }
  int font() const { return font_; }
  const std::vector<PanelLayout>& columns() const { return columns_; }
  void put(int row, int column, const RgbImage& panel) {
    image_.paste(panel, label_width_ + column * size_, header_ + row * size_);
  }
  void label(int row, const std::vector<std::string>& lines) {
    const int centre = header_ + row * size_ + size_ / 2;
    const int first = centre - static_cast<int>(lines.size()) * font_ / 2;
    for (std::size_t n = 0; n < lines.size(); ++n) {
      draw_text(image_, lines[n], label_width_ / 2, first + static_cast<int>(n) * font_ + font_ / 2,
                n == 0 ? font_ : std::max(9, font_ * 3 / 4), {1, 1, 1}, TextAnchor::Centre, n == 0);
    }
  }
  // The caption given to the constructor.
  void caption() {
    const int top = image_.height - caption_ + font_ / 2;
    for (std::size_t n = 0; n < caption_lines_.size(); ++n) {
      draw_text(image_, caption_lines_[n], font_ / 2, top + static_cast<int>(n) * font_, caption_font(),
                {0.9, 0.9, 0.9}, TextAnchor::TopLeft);
    }
  }
  // Thin lines between panels and rows.
  void separators(int rows) {
    for (std::size_t p = 0; p <= columns_.size(); ++p) {
      const int x = std::min(image_.width - 1, label_width_ + static_cast<int>(p) * size_);
      for (int y = header_; y < header_ + rows * size_; ++y) std::fill_n(image_.at(x, y), 3, std::uint8_t{70});
    }
    for (int r = 1; r < rows; ++r) {
      const int y = header_ + r * size_;
      for (int x = label_width_; x < image_.width; ++x) std::fill_n(image_.at(x, y), 3, std::uint8_t{70});
    }
  }
  const RgbImage& image() const { return image_; }

 private:
  int caption_font() const { return std::max(9, font_ * 4 / 5); }

  std::vector<PanelLayout> columns_;
  int size_, label_width_, font_, header_ = 0, caption_ = 0;
  std::vector<std::string> caption_lines_;
  RgbImage image_;
};

void finish_panel(RgbImage& panel, const PanelLayout& layout, const SliceView& view, double scale_bar_mm, int font,
                  bool scale_bar) {
  draw_orientation_letters(panel, layout, font);
  if (scale_bar) draw_scale_bar(panel, view, scale_bar_mm, font);
}

// One row of a figure: its panels through `point`, pixel(world LPS) -> RGB,
// with orientation letters and (first panel) a scale bar.
template <class Pixel>
void draw_row(Figure& figure, int row, const SliceView& view, const std::array<double, 3>& point, double scale_bar_mm,
              Pixel pixel) {
  for (std::size_t p = 0; p < figure.columns().size(); ++p) {
    const PanelLayout& layout = figure.columns()[p];
    RgbImage panel = render_panel(view, layout, point, pixel);
    finish_panel(panel, layout, view, scale_bar_mm, figure.font(), p == 0);
    figure.put(row, static_cast<int>(p), panel);
  }
}

// A row of viz.fusion_figure: a grey image (row_style) or a colour one.
struct FigureRow {
  const Volume* grey = nullptr;
  const ColorVolume* colour = nullptr;
  std::string title;
};

// A colour input's channels must fill its grid (it is sampled in LPS like
// the grey rows, so any grid will do) and its range must be positive.
void check_colour_input(const ColorVolume& image, const std::string& name) {
  static const char* const channels[3] = {"red", "green", "blue"};
  for (int c = 0; c < 3; ++c) {
    const std::size_t count = image.rgb[static_cast<std::size_t>(c)].size();
    if (count != image.geometry.voxel_count() || count == 0) {
      throw std::invalid_argument(name + ": its " + channels[c] + " channel has " + std::to_string(count) +
                                  " values but its grid " + image.geometry.size_string() + " needs " +
                                  std::to_string(image.geometry.voxel_count()));
    }
  }
  if (!(image.max_value > 0) || !std::isfinite(image.max_value)) {
    throw std::invalid_argument(name + ": its max_value must be positive, not " + format_number(image.max_value));
  }
  try {
    VolumeSampler check(image.geometry, image.rgb[0]);
  } catch (const std::invalid_argument& error) {
    throw std::invalid_argument(name + ": " + error.what());
  }
}

// A colour sample: each channel's [0, max_value] onto 0..255 (clamped);
// black outside the image (any channel NaN), as grey rows are.
std::array<std::uint8_t, 3> colour_pixel(const std::array<float, 3>& rgb, double max_value) {
  std::array<std::uint8_t, 3> pixel{0, 0, 0};
  for (std::size_t c = 0; c < 3; ++c) {
    if (!std::isfinite(rgb[c])) return {0, 0, 0};
    pixel[c] = static_cast<std::uint8_t>(std::lround(255.0 * std::clamp(rgb[c] / max_value, 0.0, 1.0)));
  }
  return pixel;
}

}  // namespace

// ===========================================================================
// viz.fusion_figure

void run_fusion_figure(NodeContext& ctx, const FusionFigureOptions& options) {
  const Volume& fused = ctx.input(kFusedIn);
  const auto sources = ctx.inputs(kSourcesIn);
  const auto color_sources = ctx.inputs(kColorSourcesIn);
  const auto color_fused = ctx.has_input(kColorFusedIn) ? ctx.input_ptr(kColorFusedIn) : nullptr;
  const Volume* functional = ctx.has_input(kFunctionalIn) ? &ctx.input(kFunctionalIn) : nullptr;
  if (functional == nullptr) {
    for (const auto& source : sources) {
      if (source->metadata.modality == "PT" || source->metadata.modality == "PET") functional = source.get();
    }
  }
  // A 2D image: its one slice, whatever the point (its one panel is centred
  // on the image, and a point off the slice would show nothing): the centre
  // of its voxel centres' bounds, which lies on the slice.
  const bool flat = flat_axis(fused.geometry) >= 0;
  if (flat && !options.point_mm.empty()) {
    if (options.point_mm.size() != 3)
      throw std::invalid_argument("point_mm needs three values (x, y, z in LPS mm) or none");
    ctx.log(LogLevel::Info, "point_mm is not used: the fused image is 2D, the figure shows its one slice");
  }
  std::string how;
  const std::array<double, 3> point =
      flat ? slice_view(fused.geometry, 1).centre
           : figure_point(options.point_mm, options.point_mode, functional, fused.geometry, how);
  const SliceView view = slice_view(fused.geometry, options.panel_size);

  // Rows: grey sources, colour sources, the fused volume, the colour result.
  std::vector<FigureRow> rows;
  for (std::size_t n = 0; n < sources.size(); ++n) {
    const Volume& source = *sources[n];
    rows.push_back({&source, nullptr,
                    source.metadata.modality.empty() ? "source " + std::to_string(n + 1) : source.metadata.modality});
  }
  for (std::size_t n = 0; n < color_sources.size(); ++n) {
    const ColorVolume& source = *color_sources[n];
    check_colour_input(source, "input '" + std::string(kColorSourcesIn.name) + "' (item " + std::to_string(n + 1) +
                                   " of " + std::to_string(color_sources.size()) + ")");
    rows.push_back(
        {nullptr, &source,
         source.metadata.modality.empty() ? "colour source " + std::to_string(n + 1) : source.metadata.modality});
  }
  rows.push_back({&fused, nullptr, "Fused"});
  if (color_fused != nullptr) {
    check_colour_input(*color_fused, "input '" + std::string(kColorFusedIn.name) + "'");
    rows.push_back({nullptr, color_fused.get(), "Fused (colour)"});
  }

  std::string method = options.caption;
  if (method.empty()) method = fused.metadata.quantity.empty() ? "fused" : fused.metadata.quantity;
  const auto sources_of = fused.metadata.extra.find("fusion_sources");
  std::string fused_line =
      "Fused: " + method + (sources_of != fused.metadata.extra.end() ? " of " + sources_of->second : std::string());
  if (color_fused != nullptr) fused_line += "; Fused (colour): luma fused, chroma of the colour source";
  const std::string where =
      flat ? std::string("The one slice of a 2D image") : "Slices through " + point_text(point) + " (" + how + ")";
  const int size = options.panel_size;
  Figure figure(static_cast<int>(rows.size()), figure_panels(fused.geometry), size, std::max(120, size * 3 / 5),
                {fused_line, where + "; radiological convention; sources on the reference grid"});
  for (std::size_t r = 0; r < rows.size(); ++r) {
    const FigureRow& row = rows[r];
    if (row.grey != nullptr) {
      const RowStyle style = row_style(*row.grey);
      const VolumeSampler sample(*row.grey);
      draw_row(figure, static_cast<int>(r), view, point, options.scale_bar_mm,
               [&](const std::array<double, 3>& world) { return row_pixel(sample(world), style); });
      figure.label(static_cast<int>(r), row_label(*row.grey, row.title, style));
    } else {
      const ColorVolume& image = *row.colour;
      const std::array<VolumeSampler, 3> sample{VolumeSampler(image.geometry, image.rgb[0]),
                                                VolumeSampler(image.geometry, image.rgb[1]),
                                                VolumeSampler(image.geometry, image.rgb[2])};
      draw_row(figure, static_cast<int>(r), view, point, options.scale_bar_mm, [&](const std::array<double, 3>& world) {
        return colour_pixel({sample[0](world), sample[1](world), sample[2](world)}, image.max_value);
      });
      figure.label(static_cast<int>(r), {row.title, "RGB 0 to " + format_number(image.max_value)});
    }
    ctx.progress(0.1 + 0.85 * double(r + 1) / double(rows.size()));
    ctx.throw_if_cancelled();
  }
  figure.separators(static_cast<int>(rows.size()));
  figure.caption();
  std::filesystem::path path = options.path;
  write_png(figure.image(), path);
  ctx.log(LogLevel::Info, (flat ? "fusion figure of the one slice of a 2D image"
                                : "fusion figure through " + point_text(point) + " (" + how + ")") +
                              std::string(" written to ") + path.string());
  ctx.progress(1.0);
}

// ===========================================================================
// viz.registration_check

namespace {

// Edges of `values` (a panel's samples, row-major): Sobel gradient magnitude
// above the given percentile of the non-zero magnitudes.
std::vector<bool> edges(const std::vector<float>& values, int size, double percentile) {
  std::vector<float> magnitude(values.size(), 0.0f);
  // Outside the moving image counts as its lowest value in the panel (its
  // background), so that the edge of its grid is not an edge.
  float background = std::numeric_limits<float>::infinity();
  for (float v : values) {
    if (std::isfinite(v)) background = std::min(background, v);
  }
  if (!std::isfinite(background)) background = 0.0f;
  auto at = [&](int x, int y) {
    const float v = values[static_cast<std::size_t>(std::clamp(y, 0, size - 1)) * size + std::clamp(x, 0, size - 1)];
    return std::isfinite(v) ? v : background;
  };
  std::vector<float> nonzero;
  for (int y = 0; y < size; ++y) {
    for (int x = 0; x < size; ++x) {
      const float gx = (at(x + 1, y - 1) + 2 * at(x + 1, y) + at(x + 1, y + 1)) -
                       (at(x - 1, y - 1) + 2 * at(x - 1, y) + at(x - 1, y + 1));
      const float gy = (at(x - 1, y + 1) + 2 * at(x, y + 1) + at(x + 1, y + 1)) -
                       (at(x - 1, y - 1) + 2 * at(x, y - 1) + at(x + 1, y - 1));
      const float m = std::sqrt(gx * gx + gy * gy);
      magnitude[static_cast<std::size_t>(y) * size + x] = m;
      if (m > 0) nonzero.push_back(m);
    }
  }
  std::vector<bool> edge(values.size(), false);
  if (nonzero.empty()) return edge;
  const auto rank = static_cast<std::size_t>(std::clamp(percentile / 100.0, 0.0, 1.0) * double(nonzero.size() - 1));
  std::nth_element(nonzero.begin(), nonzero.begin() + static_cast<std::ptrdiff_t>(rank), nonzero.end());
  const float threshold = nonzero[rank];
  for (std::size_t n = 0; n < edge.size(); ++n) edge[n] = magnitude[n] > threshold;
  return edge;
}

}  // namespace

void run_registration_check(NodeContext& ctx, const RegistrationCheckOptions& options) {
  const Volume& fixed = ctx.input(kFixedIn);
  const Volume& moving = ctx.input(kMovingIn);
  const Volume& registered = ctx.input(kRegisteredIn);
  std::string how;
  const std::array<double, 3> point = figure_point(options.point_mm, PointMode::Centre, nullptr, fixed.geometry, how);
  const SliceView view = slice_view(fixed.geometry, options.panel_size);
  const int size = options.panel_size;
  const RowStyle style = row_style(fixed);
  const VolumeSampler sample_fixed(fixed);
  const std::array<std::uint8_t, 3> edge_colour{60, 255, 60};

  Figure figure(2, {kPanels[0], kPanels[1], kPanels[2]}, size, std::max(120, size * 3 / 5),
                {"Edges of the moving " + row_name(moving, "image") + " (green) over the fixed " +
                     row_name(fixed, "image") + " (" + style.window + "): before and after registration",
                 "Slices through " + point_text(point) + " (" + how + "); radiological convention"});
  const Volume* rows[2] = {&moving, &registered};
  for (int r = 0; r < 2; ++r) {
    const VolumeSampler sample_moving(*rows[r]);
    for (int p = 0; p < 3; ++p) {
      std::vector<float> moving_values;
      moving_values.reserve(static_cast<std::size_t>(size) * size);
      RgbImage panel = render_panel(view, kPanels[p], point, [&](const std::array<double, 3>& world) {
        moving_values.push_back(sample_moving(world));
        return row_pixel(sample_fixed(world), style);
      });
      const std::vector<bool> edge = edges(moving_values, size, options.edge_percentile);
      for (int y = 0; y < size; ++y) {
        for (int x = 0; x < size; ++x) {
          if (edge[static_cast<std::size_t>(y) * size + x])
            std::copy(edge_colour.begin(), edge_colour.end(), panel.at(x, y));
        }
      }
      finish_panel(panel, kPanels[p], view, options.scale_bar_mm, figure.font(), p == 0);
      figure.put(r, p, panel);
    }
    figure.label(
        r, {r == 0 ? "Before" : "After",
            (rows[r]->metadata.modality.empty() ? std::string("moving") : rows[r]->metadata.modality) + " edges"});
    ctx.progress(0.1 + 0.45 * (r + 1));
    ctx.throw_if_cancelled();
  }
  figure.separators(2);
  figure.caption();
  write_png(figure.image(), options.path);
  ctx.log(LogLevel::Info, "registration check written to " + options.path.string());
  ctx.progress(1.0);
}

}  // namespace fusionflow::viz
