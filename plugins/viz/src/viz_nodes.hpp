// The viz.* nodes as the plugin declares them and the engine runs them:
// their options, ports and the engine's entry point. No VTK here: the plugin
// (libfusionflow-viz.so) includes only this, so listing and validating
// pipelines never loads VTK; the engine (libfusionflow-viz-engine.so, in
// <libdir>/fusionflow/viz/) holds the rendering and is opened by the first
// viz node that runs.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include <fusionflow/sdk.hpp>

#include "viz_options.hpp"

namespace fusionflow::viz {

// ===========================================================================
// viz.render3d

// The scene's options plus the node's own. The scene's preset,
// functional_preset and opacity are not parameters: they are resolved from
// preset_choice, functional_preset_choice (text, because of "auto") and
// volume_opacity (0: auto) once the inputs are known.
struct Render3dOptions : SceneOptions {
  std::string preset_choice = "auto";
  std::string functional_preset_choice = "auto";
  double volume_opacity = 0.0;
  Camera camera = Camera::Anterior;
  double azimuth = 0.0;
  double elevation = 0.0;
  double zoom = 1.0;
  std::vector<double> clip_point_mm;  // empty: the hottest functional region, else the centre
  double image_sample_distance = 0.0;
  int width = 800;
  int height = 800;
  std::string background = "black";
  bool annotate = true;
  std::filesystem::path path;
};

constexpr InputPort<Volume> kVolumeIn{"volume"};
// Optional here, required by viz.overlay.
constexpr InputPort<Volume> kFunctionalIn{"functional"};
// viz.render3d: the volume whose hottest region the cut passes through.
constexpr InputPort<Volume> kClipReferenceIn{"clip_reference"};

// ===========================================================================
// viz.overlay

enum class PointMode { Hottest, Centre };
inline const ChoiceList<PointMode> kPointModeNames{{PointMode::Hottest, "hottest"}, {PointMode::Centre, "centre"}};
enum class ThresholdMode { Fraction, Value };
inline const ChoiceList<ThresholdMode> kThresholdModeNames{{ThresholdMode::Fraction, "fraction"},
                                                           {ThresholdMode::Value, "value"}};
enum class OverlayLayout { Montage, Planes };
inline const ChoiceList<OverlayLayout> kOverlayLayoutNames{{OverlayLayout::Montage, "montage"},
                                                           {OverlayLayout::Planes, "planes"}};

struct OverlayOptions {
  std::vector<double> point_mm;  // empty: point_mode
  PointMode point_mode = PointMode::Hottest;
  double window = 0.0;  // 0: auto
  double level = 40.0;
  Colormap colormap = Colormap::Hot;
  double opacity = 0.6;
  double threshold = 0.35;
  ThresholdMode threshold_mode = ThresholdMode::Fraction;
  double range_max = 0.0;  // 0: the functional maximum
  OverlayLayout layout = OverlayLayout::Montage;
  int panel_size = 384;
  bool crosshair = true;
  std::filesystem::path path;
};

constexpr InputPort<Volume> kAnatomicalIn{"anatomical"};
constexpr OutputPort<Table> kPointsOut{"points"};

// ===========================================================================
// viz.histogram

enum class HistogramLayout { Auto, Overlaid, Stacked };
inline const ChoiceList<HistogramLayout> kHistogramLayoutNames{
    {HistogramLayout::Auto, "auto"}, {HistogramLayout::Overlaid, "overlaid"}, {HistogramLayout::Stacked, "stacked"}};

struct HistogramOptions {
  int bins = 128;
  std::vector<double> range;  // empty: automatic
  HistogramLayout layout = HistogramLayout::Auto;
  std::string labels;
  bool log_y = true;
  std::string title = "Intensity histogram";
  int width = 900;
  int height = 600;
  std::filesystem::path path;
  std::filesystem::path csv_path;  // empty: none
};

constexpr InputPort<Volume> kVolumesIn{"volumes"};
constexpr OutputPort<Table> kCountsOut{"counts"};

// ===========================================================================
// viz.fusion_figure and viz.registration_check (figures.cpp)

struct FusionFigureOptions {
  std::vector<double> point_mm;  // empty: point_mode
  PointMode point_mode = PointMode::Hottest;
  int panel_size = 256;
  double scale_bar_mm = 50.0;
  std::string caption;  // empty: the fused volume's method
  std::filesystem::path path;
};
constexpr InputPort<Volume> kFusedIn{"fused"};
constexpr InputPort<Volume> kSourcesIn{"sources"};
// Colour rows: colour sources (after the grey ones) and the colour fusion
// result (the last row), each channel in [0, max_value].
constexpr InputPort<ColorVolume> kColorSourcesIn{"color_sources"};
constexpr InputPort<ColorVolume> kColorFusedIn{"color_fused"};

struct RegistrationCheckOptions {
  std::vector<double> point_mm;  // empty: the centre of the fixed image
  int panel_size = 256;
  double scale_bar_mm = 50.0;
  double edge_percentile = 90.0;
  std::filesystem::path path;
};
constexpr InputPort<Volume> kFixedIn{"fixed"};
constexpr InputPort<Volume> kMovingIn{"moving"};
constexpr InputPort<Volume> kRegisteredIn{"registered"};

// ===========================================================================
// viz.report_volumes (report_volumes.cpp; in the plugin itself, no VTK)

struct ReportVolumesOptions {
  std::string labels;  // empty: each volume's modality and quantity
  std::int64_t max_size = 160;
  std::filesystem::path directory;
};
void run_report_volumes(NodeContext& ctx, const ReportVolumesOptions& options);

// ===========================================================================
// The engine: the nodes' run functions, from the library the plugin opens.

struct VizEngine {
  void (*render3d)(NodeContext& ctx, const Render3dOptions& options);
  void (*overlay)(NodeContext& ctx, const OverlayOptions& options);
  void (*histogram)(NodeContext& ctx, const HistogramOptions& options);
  void (*fusion_figure)(NodeContext& ctx, const FusionFigureOptions& options);
  void (*registration_check)(NodeContext& ctx, const RegistrationCheckOptions& options);
};

void run_fusion_figure(NodeContext& ctx, const FusionFigureOptions& options);
void run_registration_check(NodeContext& ctx, const RegistrationCheckOptions& options);

}  // namespace fusionflow::viz

// extern "C" const fusionflow::viz::VizEngine* fusionflow_viz_engine();
#define FUSIONFLOW_VIZ_ENGINE_SYMBOL "fusionflow_viz_engine"
