// The viz engine: how the viz.* nodes (declared by the plugin, viz_nodes.cpp)
// run: 3D volume rendering (viz.render3d), the clinical fusion view of three
// orthogonal slices (viz.overlay) and intensity histograms (viz.histogram).
// Reusable VTK code lives in vtk_support.{hpp,cpp}; see
// docs/visualization.md for parameters and display conventions.
#include <fusionflow/sdk.hpp>

#include <vtkAxis.h>
#include <vtkChartLegend.h>
#include <vtkChartMatrix.h>
#include <vtkChartXY.h>
#include <vtkContextActor.h>
#include <vtkContextScene.h>
#include <vtkDoubleArray.h>
#include <vtkNew.h>
#include <vtkPlot.h>
#include <vtkRenderWindow.h>
#include <vtkRenderer.h>
#include <vtkTable.h>
#include <vtkTextProperty.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>
#include <sstream>
#include <stdexcept>

#include "viz_nodes.hpp"
#include "vtk_support.hpp"

namespace fusionflow::viz {
namespace {

std::string opposite(const std::string& letter) {
  static const std::map<std::string, std::string> pairs{{"L", "R"}, {"R", "L"}, {"A", "P"},
                                                        {"P", "A"}, {"S", "I"}, {"I", "S"}};
  return pairs.at(letter);
}

std::string describe(const Volume& volume, const std::string& fallback) {
  std::string name = volume.metadata.modality.empty() ? fallback : volume.metadata.modality;
  return name;
}

// ===========================================================================
// viz.render3d

// "auto" -> by the volume's modality, else the named preset.
Preset resolve_preset(const std::string& choice, const Volume& volume) {
  return choice == "auto" ? auto_preset(volume.metadata) : kPresetNames.parse(choice);
}

void run_render3d(NodeContext& ctx, const Render3dOptions& options) {
  const Volume& volume = ctx.input(kVolumeIn);
  const Volume* functional = ctx.has_input(kFunctionalIn) ? &ctx.input(kFunctionalIn) : nullptr;
  SceneOptions scene_options = options;
  scene_options.preset = resolve_preset(options.preset_choice, volume);
  if (functional != nullptr) {
    scene_options.functional_preset = resolve_preset(options.functional_preset_choice, *functional);
  }
  scene_options.opacity = options.volume_opacity > 0 ? options.volume_opacity : functional != nullptr ? 0.06 : 1.0;
  std::string clip_note;
  if (options.clip != ClipPlane::None) {
    const std::vector<double>& given = options.clip_point_mm;
    if (given.size() == 3) {
      scene_options.clip_point = {given[0], given[1], given[2]};
      clip_note = "given point";
    } else if (!given.empty()) {
      throw std::invalid_argument("clip_point_mm needs three values (x, y, z in LPS mm) or none");
    } else if (const Volume* hot = ctx.has_input(kClipReferenceIn) ? &ctx.input(kClipReferenceIn) : functional) {
      scene_options.clip_point = hottest_point(*hot, world_bounds(volume.geometry));
      clip_note = "hottest " + describe(*hot, "functional");
    } else {
      scene_options.clip_point = slice_view(volume.geometry, 1).centre;
      clip_note = "centre";
    }
  }
  const int width = options.width, height = options.height;
  const auto background = parse_colour(options.background);

  ctx.log(LogLevel::Debug, ensure_display());
  ctx.throw_if_cancelled();
  RgbImage image;
  std::array<std::string, 2> letters;
  {
    auto lock = lock_rendering();
    ctx.progress(0.1);
    Scene scene = build_scene(volume, functional, scene_options);
    ctx.progress(0.4);
    ctx.throw_if_cancelled();
    scene.renderer->SetBackground(background[0], background[1], background[2]);
    auto window = make_offscreen_window(width, height);
    window->AddRenderer(scene.renderer);
    set_camera(scene.renderer, scene.bounds, options.camera, options.azimuth, options.elevation, options.zoom);
    set_image_sample_distance(scene, height, options.image_sample_distance);
    render_scene(window, scene);
    image = capture(window);
    letters = view_orientation(scene.renderer);
  }
  ctx.progress(0.8);
  if (image.width != width || image.height != height) {
    throw std::runtime_error("the render window is " + std::to_string(image.width) + "x" +
                             std::to_string(image.height) + ", not the requested " + std::to_string(width) + "x" +
                             std::to_string(height) + " (larger than the X screen?)");
  }
  if (options.annotate) {
    const int font = std::clamp(std::min(width, height) / 28, 10, 48);
    const std::array<double, 3> colour{1.0, 0.85, 0.2};
    const int margin = font / 2;
    draw_text(image, letters[0], width - margin, height / 2, font, colour, TextAnchor::CentreRight, true);
    draw_text(image, opposite(letters[0]), margin, height / 2, font, colour, TextAnchor::CentreLeft, true);
    draw_text(image, letters[1], width / 2, margin, font, colour, TextAnchor::TopCentre, true);
    draw_text(image, opposite(letters[1]), width / 2, height - margin, font, colour, TextAnchor::BottomCentre, true);
    std::string caption = describe(volume, "volume") +
                          (options.iso_surface ? " iso-surface" : " " + kPresetNames.name(scene_options.preset));
    if (functional != nullptr) {
      caption += " + " + describe(*functional, "functional") + " " + kPresetNames.name(scene_options.functional_preset);
    }
    if (options.clip != ClipPlane::None) {
      caption += ", " + kClipPlaneNames.name(options.clip) + " cut through the " + clip_note;
    }
    draw_text(image, caption + ", " + kCameraNames.name(options.camera), margin, height - margin,
              std::max(10, font * 3 / 4), {1, 1, 1}, TextAnchor::BottomLeft);
  }
  write_png(image, options.path);
  ctx.log(LogLevel::Info, "wrote " + options.path.string());
  ctx.progress(1.0);
}

// ===========================================================================
// viz.overlay

struct OverlayStyle {
  double window_low = 0, window_width = 1;
  double range_min = 0, range_max = 1, threshold = 0.5;
  double opacity = 0.6;
  Colormap colormap = Colormap::Hot;
};

std::array<std::uint8_t, 3> overlay_pixel(float anatomical, float functional, const OverlayStyle& style) {
  if (!std::isfinite(anatomical)) anatomical = static_cast<float>(style.window_low);
  const double grey = std::clamp((anatomical - style.window_low) / style.window_width, 0.0, 1.0);
  std::array<double, 3> rgb{grey, grey, grey};
  if (std::isfinite(functional) && functional >= style.threshold) {
    const double t = (functional - style.range_min) / (style.range_max - style.range_min);
    const auto colour = colormap_rgb(style.colormap, t);
    for (int c = 0; c < 3; ++c) rgb[c] = (1 - style.opacity) * rgb[c] + style.opacity * colour[c];
  }
  return {static_cast<std::uint8_t>(std::lround(255 * rgb[0])), static_cast<std::uint8_t>(std::lround(255 * rgb[1])),
          static_cast<std::uint8_t>(std::lround(255 * rgb[2]))};
}

// The colour-bar strip: title (modality and units), the colour map over the
// colour range (greyed below the threshold: not shown), tick labels, and the
// grey window underneath.
RgbImage colour_bar(int width, int height, const OverlayStyle& style, const Volume& anatomical,
                    const Volume& functional) {
  RgbImage strip(width, height, {0, 0, 0});
  const int font = std::clamp(height / 26, 9, 40);
  const std::string units = functional.metadata.units.empty() ? "a.u." : functional.metadata.units;
  draw_text(strip, describe(functional, "functional"), width / 2, font / 2, font, {1, 1, 1}, TextAnchor::TopCentre,
            true);
  draw_text(strip, "[" + units + "]", width / 2, font / 2 + font + font / 3, font, {1, 1, 1}, TextAnchor::TopCentre);
  const int top = font * 4, bottom = height - font * 5;
  const int bar_left = std::max(4, width / 8), bar_right = bar_left + std::max(8, width / 5);
  for (int y = top; y <= bottom; ++y) {
    const double t = double(bottom - y) / double(std::max(1, bottom - top));
    const double value = style.range_min + t * (style.range_max - style.range_min);
    auto colour = colormap_rgb(style.colormap, t);
    if (value < style.threshold) colour = {0.25, 0.25, 0.25};
    for (int x = bar_left; x <= bar_right; ++x) {
      std::uint8_t* pixel = strip.at(x, y);
      for (int c = 0; c < 3; ++c) pixel[c] = static_cast<std::uint8_t>(std::lround(255 * colour[c]));
    }
  }
  auto tick = [&](double value, bool emphasise) {
    const double t = (value - style.range_min) / (style.range_max - style.range_min);
    const int y = bottom - static_cast<int>(std::lround(t * (bottom - top)));
    for (int x = bar_right + 1; x <= bar_right + font / 2; ++x) std::fill_n(strip.at(x, y), 3, std::uint8_t{255});
    draw_text(strip, format_number(value), bar_right + font / 2 + 3, y, font,
              emphasise ? std::array<double, 3>{1, 0.85, 0.2} : std::array<double, 3>{1, 1, 1}, TextAnchor::CentreLeft);
  };
  tick(style.range_max, false);
  tick(style.range_min, false);
  const double threshold_t = (style.threshold - style.range_min) / (style.range_max - style.range_min);
  if (threshold_t > 0.08 && threshold_t < 0.92) tick(style.threshold, true);
  const std::string grey_units = anatomical.metadata.units.empty() ? "" : " " + anatomical.metadata.units;
  draw_text(strip, describe(anatomical, "anatomy"), width / 2, height - font * 4, font, {0.8, 0.8, 0.8},
            TextAnchor::TopCentre, true);
  draw_text(strip, "W " + format_number(style.window_width) + grey_units, width / 2, height - font * 3 + font / 4, font,
            {0.8, 0.8, 0.8}, TextAnchor::TopCentre);
  draw_text(strip, "L " + format_number(style.window_low + style.window_width / 2) + grey_units, width / 2,
            height - font * 2 + font / 2, font, {0.8, 0.8, 0.8}, TextAnchor::TopCentre);
  return strip;
}

void run_overlay(NodeContext& ctx, const OverlayOptions& options) {
  const Volume& anatomical = ctx.input(kAnatomicalIn);
  const Volume& functional = ctx.input(kFunctionalIn);
  const VolumeSampler sample_anatomical(anatomical), sample_functional(functional);
  const int size = options.panel_size;
  std::filesystem::path path = options.path;

  // --- geometry: one square field of view for all panels, the largest
  // extent of the anatomy (voxel edges), centred on it.
  const std::array<double, 6> centres = world_bounds(anatomical.geometry);
  const SliceView view = slice_view(anatomical.geometry, size);
  const std::array<double, 3>& centre = view.centre;
  const double mm_per_pixel = view.mm_per_pixel;

  // --- the point
  std::array<double, 3> point{};
  const std::vector<double>& point_mm = options.point_mm;
  std::string point_source;
  if (point_mm.size() == 3) {
    point = {point_mm[0], point_mm[1], point_mm[2]};
    point_source = "given";
  } else if (!point_mm.empty()) {
    throw std::invalid_argument("point_mm needs three values (x, y, z in LPS mm) or none");
  } else if (options.point_mode == PointMode::Hottest) {
    point = hottest_point(functional, centres);
    point_source = "hottest";
  } else {
    point = centre;
    point_source = "centre";
  }
  ctx.progress(0.2);
  ctx.throw_if_cancelled();

  // --- intensities
  OverlayStyle style;
  style.colormap = options.colormap;
  style.opacity = options.opacity;
  const double window = options.window;
  const IntensityStats anatomy_stats = intensity_stats(anatomical);
  if (window > 0) {
    style.window_width = window;
    style.window_low = options.level - window / 2;
  } else if (anatomical.metadata.modality == "CT") {
    style.window_width = 80;
    style.window_low = 0;
  } else {
    style.window_width = anatomy_stats.high - anatomy_stats.low;
    style.window_low = anatomy_stats.low;
  }
  const IntensityStats functional_stats = intensity_stats(functional);
  style.range_min = std::min(0.0, functional_stats.min);
  style.range_max = options.range_max != 0 ? options.range_max : functional_stats.max;
  if (!(style.range_max > style.range_min)) style.range_max = style.range_min + 1;
  style.threshold = options.threshold_mode == ThresholdMode::Fraction
                        ? style.range_min + options.threshold * (style.range_max - style.range_min)
                        : options.threshold;

  // --- panels
  const int bar_width = std::max(96, size / 4);
  const int font = std::clamp(size / 24, 9, 40);
  std::vector<RgbImage> panels;
  std::vector<std::array<double, 2>> point_pixels;  // column, row within the panel
  for (const PanelLayout& layout_of : kPanels) {
    RgbImage panel = render_panel(view, layout_of, point, [&](const std::array<double, 3>& world) {
      return overlay_pixel(sample_anatomical(world), sample_functional(world), style);
    });
    const auto [point_column, point_row] = panel_pixel(view, layout_of, point);
    point_pixels.push_back({point_column, point_row});
    if (options.crosshair) {
      const int gap = size / 12;
      const int pc = static_cast<int>(std::lround(point_column)), pr = static_cast<int>(std::lround(point_row));
      auto blend = [&](int x, int y) {
        if (x < 0 || y < 0 || x >= size || y >= size) return;
        std::uint8_t* pixel = panel.at(x, y);
        pixel[0] = static_cast<std::uint8_t>(pixel[0] / 2);
        pixel[1] = static_cast<std::uint8_t>(pixel[1] / 2 + 100);
        pixel[2] = static_cast<std::uint8_t>(pixel[2] / 2);
      };
      for (int x = 0; x < size; ++x)
        if (std::abs(x - pc) > gap) blend(x, pr);
      for (int y = 0; y < size; ++y)
        if (std::abs(y - pr) > gap) blend(pc, y);
    }
    const int margin = font / 3 + 2;
    draw_orientation_letters(panel, layout_of, font);
    std::string title = layout_of.name;
    title[0] = static_cast<char>(std::toupper(title[0]));
    draw_text(panel, title, margin, margin, font, {1, 1, 1}, TextAnchor::TopLeft, true);
    const char axis_name = "xyz"[layout_of.fixed_axis];
    draw_text(panel, std::string(1, axis_name) + " = " + format_number(point[layout_of.fixed_axis]) + " mm", margin,
              size - margin, std::max(9, font * 4 / 5), {0.85, 0.85, 0.85}, TextAnchor::BottomLeft);
    panels.push_back(std::move(panel));
    ctx.progress(0.2 + 0.25 * double(panels.size()));
    ctx.throw_if_cancelled();
  }
  const RgbImage strip = colour_bar(bar_width, size, style, anatomical, functional);

  // --- files and the table
  if (path.extension().empty()) path += ".png";
  Table table;
  auto add_row = [&](std::size_t panel, const std::filesystem::path& file, int left) {
    table.add_row({{"panel", std::string(kPanels[panel].name)},
                   {"file", file.string()},
                   {"point_source", point_source},
                   {"x_mm", point[0]},
                   {"y_mm", point[1]},
                   {"z_mm", point[2]},
                   {"column", left + point_pixels[panel][0]},
                   {"row", point_pixels[panel][1]},
                   {"panel_left", double(left)},
                   {"panel_top", 0.0},
                   {"panel_size", double(size)},
                   {"mm_per_pixel", mm_per_pixel},
                   {"functional_value", double(sample_functional(point))},
                   {"threshold", style.threshold},
                   {"range_max", style.range_max}});
  };
  if (options.layout == OverlayLayout::Montage) {
    RgbImage montage(3 * size + bar_width, size);
    for (std::size_t p = 0; p < 3; ++p) {
      montage.paste(panels[p], static_cast<int>(p) * size, 0);
      add_row(p, path, static_cast<int>(p) * size);
    }
    montage.paste(strip, 3 * size, 0);
    // Thin separators between panels.
    for (int p = 1; p <= 3; ++p)
      for (int y = 0; y < size; ++y) std::fill_n(montage.at(p * size - 1, y), 3, std::uint8_t{60});
    write_png(montage, path);
  } else {
    for (std::size_t p = 0; p < 3; ++p) {
      RgbImage single(size + bar_width, size);
      single.paste(panels[p], 0, 0);
      single.paste(strip, size, 0);
      std::filesystem::path file = path;
      file.replace_filename(path.stem().string() + "_" + kPanels[p].name + path.extension().string());
      write_png(single, file);
      add_row(p, file, 0);
    }
  }
  ctx.log(LogLevel::Info, "overlay through (" + format_number(point[0]) + ", " + format_number(point[1]) + ", " +
                              format_number(point[2]) + ") mm LPS (" + point_source + ") written to " + path.string());
  ctx.output(kPointsOut, std::move(table));
  ctx.progress(1.0);
}

// ===========================================================================
// viz.histogram

struct Histogram {
  std::string label;
  const Volume* volume = nullptr;
  double low = 0, high = 1;
  std::vector<double> counts;
  std::size_t non_finite = 0;
};

const std::array<std::array<double, 3>, 6> kPlotColours{{{0.12, 0.47, 0.71},
                                                         {0.84, 0.15, 0.16},
                                                         {0.17, 0.63, 0.17},
                                                         {1.00, 0.50, 0.05},
                                                         {0.58, 0.40, 0.74},
                                                         {0.55, 0.34, 0.29}}};

void style_axis(vtkAxis* axis, const std::string& title, int font) {
  axis->SetTitle(title);
  axis->GetTitleProperties()->SetFontSize(font);
  axis->GetTitleProperties()->SetBold(0);
  axis->GetLabelProperties()->SetFontSize(font * 5 / 6);
}

void run_histogram(NodeContext& ctx, const HistogramOptions& options) {
  const auto volumes = ctx.inputs(kVolumesIn);
  if (volumes.empty()) throw std::invalid_argument("viz.histogram needs at least one volume");
  const int bins = options.bins;
  const std::vector<double>& range = options.range;
  if (!range.empty() && (range.size() != 2 || !(range[1] > range[0]))) {
    throw std::invalid_argument("range needs two values, low < high (or none for automatic)");
  }
  const auto labels = split_labels(options.labels);
  if (!labels.empty() && labels.size() != volumes.size()) {
    throw std::invalid_argument("labels has " + std::to_string(labels.size()) + " names for " +
                                std::to_string(volumes.size()) + " volumes");
  }
  HistogramLayout layout = options.layout;
  if (layout == HistogramLayout::Auto) {
    bool same_units = true;
    for (const auto& volume : volumes) same_units = same_units && volume->metadata.units == volumes[0]->metadata.units;
    layout = same_units || !range.empty() ? HistogramLayout::Overlaid : HistogramLayout::Stacked;
  }

  std::vector<Histogram> histograms(volumes.size());
  double shared_low = std::numeric_limits<double>::infinity(), shared_high = -shared_low;
  for (std::size_t v = 0; v < volumes.size(); ++v) {
    Histogram& h = histograms[v];
    h.volume = volumes[v].get();
    h.label = !labels.empty() ? labels[v] : describe(*h.volume, "volume " + std::to_string(v + 1));
    const IntensityStats stats = intensity_stats(*h.volume);
    h.low = stats.min;
    h.high = stats.max > stats.min ? stats.max : stats.min + 1;
    shared_low = std::min(shared_low, h.low);
    shared_high = std::max(shared_high, h.high);
  }
  for (Histogram& h : histograms) {
    if (!range.empty()) {
      h.low = range[0];
      h.high = range[1];
    } else if (layout == HistogramLayout::Overlaid) {
      h.low = shared_low;
      h.high = shared_high;
    }
    // Values outside the range (explicit ranges only) go to the edge bins, so
    // the counts of a volume sum to its finite voxels.
    h.counts.assign(static_cast<std::size_t>(bins), 0.0);
    const double scale = bins / (h.high - h.low);
    for (float value : h.volume->voxels) {
      if (!std::isfinite(value)) {
        ++h.non_finite;
        continue;
      }
      const double position = std::floor((value - h.low) * scale);
      const auto bin = static_cast<std::size_t>(std::clamp(position, 0.0, double(bins - 1)));
      h.counts[bin] += 1;
    }
    if (h.non_finite > 0)
      ctx.log(LogLevel::Warn, h.label + ": " + std::to_string(h.non_finite) + " non-finite voxels not counted");
    ctx.throw_if_cancelled();
  }
  ctx.progress(0.3);

  Table table;
  for (const Histogram& h : histograms) {
    const double width = (h.high - h.low) / bins;
    for (int b = 0; b < bins; ++b) {
      table.add_row({{"label", h.label},
                     {"modality", h.volume->metadata.modality},
                     {"units", h.volume->metadata.units},
                     {"bin", double(b)},
                     {"lower", h.low + b * width},
                     {"upper", h.low + (b + 1) * width},
                     {"count", h.counts[static_cast<std::size_t>(b)]}});
    }
  }

  // --- the chart
  const int width = options.width, height = options.height;
  const bool log_y = options.log_y;
  const std::string& title = options.title;
  const int font = std::clamp(std::min(width, height) / 40, 9, 36);
  ctx.log(LogLevel::Debug, ensure_display());
  RgbImage image;
  {
    auto lock = lock_rendering();
    auto window = make_offscreen_window(width, height);
    vtkNew<vtkRenderer> renderer;
    renderer->SetBackground(1, 1, 1);
    window->AddRenderer(renderer);
    vtkNew<vtkContextActor> actor;
    renderer->AddActor(actor);
    std::vector<vtkSmartPointer<vtkTable>> tables;
    auto fill_chart = [&](vtkChartXY* chart, const std::vector<const Histogram*>& shown,
                          const std::string& chart_title) {
      auto data = vtkSmartPointer<vtkTable>::New();
      tables.push_back(data);
      vtkNew<vtkDoubleArray> x;
      x->SetName("intensity");
      x->SetNumberOfValues(bins);
      const Histogram& first = *shown.front();
      for (int b = 0; b < bins; ++b) x->SetValue(b, first.low + (b + 0.5) * (first.high - first.low) / bins);
      data->AddColumn(x);
      for (const Histogram* h : shown) {
        vtkNew<vtkDoubleArray> y;
        // Column names must be unique; the legend shows the plot's label.
        y->SetName(("counts_" + std::to_string(data->GetNumberOfColumns())).c_str());
        y->SetNumberOfValues(bins);
        for (int b = 0; b < bins; ++b) {
          const double count = h->counts[static_cast<std::size_t>(b)];
          y->SetValue(b, log_y && count <= 0 ? std::numeric_limits<double>::quiet_NaN() : count);
        }
        data->AddColumn(y);
      }
      for (std::size_t i = 0; i < shown.size(); ++i) {
        vtkPlot* plot = chart->AddPlot(vtkChart::LINE);
        plot->SetInputData(data, 0, static_cast<vtkIdType>(i + 1));
        const std::size_t index = static_cast<std::size_t>(shown[i] - histograms.data());
        const auto& colour = kPlotColours[index % kPlotColours.size()];
        plot->SetColor(colour[0], colour[1], colour[2]);
        plot->SetWidth(2.0);
        plot->SetLabel(shown[i]->label);
      }
      const std::string units = first.volume->metadata.units;
      style_axis(chart->GetAxis(vtkAxis::BOTTOM), units.empty() ? "intensity" : "intensity [" + units + "]", font);
      style_axis(chart->GetAxis(vtkAxis::LEFT), log_y ? "voxels (log scale)" : "voxels", font);
      chart->GetAxis(vtkAxis::LEFT)->SetLogScale(log_y);
      chart->GetAxis(vtkAxis::BOTTOM)->SetBehavior(vtkAxis::FIXED);
      chart->GetAxis(vtkAxis::BOTTOM)->SetRange(first.low, first.high);
      chart->SetShowLegend(true);
      chart->GetLegend()->GetLabelProperties()->SetFontSize(font);
      chart->SetTitle(chart_title);
      chart->GetTitleProperties()->SetFontSize(font * 6 / 5);
      chart->GetTitleProperties()->SetBold(1);
    };
    if (layout == HistogramLayout::Overlaid) {
      vtkNew<vtkChartXY> chart;
      actor->GetScene()->AddItem(chart);
      std::vector<const Histogram*> shown;
      for (const Histogram& h : histograms) shown.push_back(&h);
      fill_chart(chart, shown, title);
    } else {
      vtkNew<vtkChartMatrix> matrix;
      actor->GetScene()->AddItem(matrix);
      const int rows = static_cast<int>(histograms.size());
      matrix->SetSize(vtkVector2i(1, rows));
      matrix->SetGutter(vtkVector2f(30.0f, static_cast<float>(font * 3)));
      matrix->SetBorders(font * 5, font * 3, font, font * 3);  // room for the axis titles
      for (int r = 0; r < rows; ++r) {
        auto* chart = vtkChartXY::SafeDownCast(matrix->GetChart(vtkVector2i(0, rows - 1 - r)));
        if (chart == nullptr) throw std::runtime_error("VTK chart matrix has no chart");
        fill_chart(chart, {&histograms[static_cast<std::size_t>(r)]}, r == 0 ? title : std::string());
      }
    }
    // Charts lay out their axes during the first paint: the second one is right.
    window->Render();
    window->Render();
    image = capture(window);
  }
  ctx.progress(0.8);
  const std::filesystem::path& path = options.path;
  write_png(image, path);
  const std::filesystem::path& csv_path = options.csv_path;
  if (!csv_path.empty()) write_file_atomically(csv_path, table.to_csv());
  ctx.log(LogLevel::Info, "wrote " + path.string() + (csv_path.empty() ? "" : " and " + csv_path.string()));
  ctx.output(kCountsOut, std::move(table));
  ctx.progress(1.0);
}

}  // namespace
}  // namespace fusionflow::viz

extern "C" __attribute__((visibility("default"))) const fusionflow::viz::VizEngine* fusionflow_viz_engine() {
  static const fusionflow::viz::VizEngine engine{&fusionflow::viz::run_render3d, &fusionflow::viz::run_overlay,
                                                 &fusionflow::viz::run_histogram, &fusionflow::viz::run_fusion_figure,
                                                 &fusionflow::viz::run_registration_check};
  return &engine;
}
