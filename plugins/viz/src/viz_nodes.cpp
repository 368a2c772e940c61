// The viz plugin: declares the viz nodes and runs viz.report_volumes. It
// does not link VTK (about 65 libraries, loaded by every fusionflow process
// that loads the bundled plugins, for validate and plugins too): the first viz
// node that runs opens the engine library that renders (viz_engine.cpp).
// See docs/visualization.md for parameters and display conventions.
#include <mutex>

#include <fusionflow/companion_library.hpp>

#include "viz_nodes.hpp"

namespace fusionflow::viz {
namespace {

// <libdir>/fusionflow/viz/libfusionflow-viz-engine.so, or $FUSIONFLOW_VIZ_ENGINE.
const VizEngine& engine() {
  static std::mutex mutex;
  static const VizEngine* instance = nullptr;
  std::lock_guard<std::mutex> lock(mutex);
  if (instance == nullptr) {
    void* entry = open_companion_symbol(reinterpret_cast<const void*>(&engine), "viz/libfusionflow-viz-engine.so",
                                        "FUSIONFLOW_VIZ_ENGINE", FUSIONFLOW_VIZ_ENGINE_SYMBOL,
                                        "is libvtk9-dev installed? scripts/setup.sh installs it");
    instance = reinterpret_cast<const VizEngine* (*)()>(entry)();
  }
  return *instance;
}

// A preset parameter's choices: "auto" (by modality), then the presets.
std::vector<std::string> preset_choices() {
  std::vector<std::string> choices{"auto"};
  choices.insert(choices.end(), kPresetNames.names().begin(), kPresetNames.names().end());
  return choices;
}

NodeType<Render3dOptions> render3d_node() {
  using O = Render3dOptions;
  NodeType<O> node("viz.render3d", "1.0.0",
                   "VTK volume rendering of a volume (optionally with a functional volume, e.g. CT grey + PET hot) to "
                   "a PNG, in true physical geometry (LPS), with transfer-function and camera presets");
  node.input(kVolumeIn, "the (anatomical) volume to render")
      .optional_input(kFunctionalIn,
                      "optional functional volume (PET, fused) rendered together with the first; any grid")
      .optional_input(kClipReferenceIn,
                      "with clip: the volume whose hottest region the cut passes through (default: `functional`); "
                      "not rendered")
      .choice(&O::preset_choice, "preset", preset_choices(),
              "transfer function of `volume`: auto (by modality: CT ct_bone, MR mri, PT pet, FUSED fused), ct_bone, "
              "ct_soft_tissue, mri, pet, fused")
      .choice(&O::functional_preset_choice, "functional_preset", preset_choices(), "transfer function of `functional`")
      .param(&O::volume_opacity, "volume_opacity", Limits::range(0.0, 10.0),
             "scales the opacity of `volume` (0: auto, 1 alone and 0.06 with a functional volume, so that the "
             "functional volume shows through the bone)")
      .param(&O::functional_opacity, "functional_opacity", Limits::range(0.0, 10.0), "scales the functional opacity")
      .choice(&O::camera, "camera", kCameraNames,
              "view: anterior (facing the patient: patient right on image left), posterior, left (= lateral), right, "
              "superior, inferior, oblique (anterior-left, from above), custom (= anterior + azimuth/elevation)")
      .param(&O::azimuth, "azimuth", Limits::range(-360, 360), "degrees about the view-up axis, after the preset")
      .param(&O::elevation, "elevation", Limits::range(-89, 89), "degrees up, after the preset")
      .param(&O::zoom, "zoom", Limits::range(0.1, 20), "zoom factor (>1 closer)")
      .param(&O::iso_surface, "iso_surface", "show `volume` as an iso-surface at iso_value instead of volume rendering")
      .param(&O::iso_value, "iso_value", "iso-surface value in the volume's units (e.g. 300 HU for bone)")
      .param(&O::iso_opacity, "iso_opacity", Limits::range(0.0, 1.0), "iso-surface opacity")
      .choice(&O::clip, "clip", kClipPlaneNames,
              "cut the rendered volumes open through clip_point_mm to show their inside: coronal removes the "
              "anterior half (view it with camera anterior), axial the superior half (camera superior), sagittal "
              "the patient-left half (camera left); none: the whole volume")
      .param(&O::clip_point_mm, "clip_point_mm",
             "a point (x, y, z) on the cut, LPS mm; empty: the hottest region of `functional`, else the centre of "
             "`volume`")
      .param(&O::smoothing_mm, "smoothing_mm", Limits::range(0.0, 20.0),
             "display-only Gaussian smoothing (sigma, mm) of `volume` before rendering; about 0.7 voxel removes the "
             "stair-steps of near-binary data such as the phantom")
      .param(&O::sample_distance_mm, "sample_distance_mm", Limits::range(0.0, 100.0),
             "ray-casting step in mm (0: the smallest voxel spacing; steps are jittered)")
      .param(&O::image_sample_distance, "image_sample_distance", Limits::range(0.0, 8.0),
             "pixels between cast rays, the image is scaled up (0: automatic, about one ray per voxel on screen, 1 "
             "to 2)")
      .param(&O::width, "width", Limits::range(16, 4096), "image width in pixels")
      .param(&O::height, "height", Limits::range(16, 4096), "image height in pixels")
      .param(&O::background, "background", "background colour: name, #rrggbb or r,g,b in [0,1]")
      .param(&O::annotate, "annotate", "orientation letters at the image edges and a caption")
      .output_path(&O::path, "path", "PNG file to write")
      .memory_intensive();  // cropped, smoothed and GPU copies of the volumes
  return node;
}

NodeType<OverlayOptions> overlay_node() {
  using O = OverlayOptions;
  NodeType<O> node("viz.overlay", "1.0.0",
                   "Clinical fusion view: axial, coronal and sagittal slices through a point, the anatomical volume in "
                   "grey (window/level) under the functional volume in a colour map, with colour bar and orientation "
                   "labels (radiological convention)");
  node.input(kAnatomicalIn, "anatomical volume (CT or MRI), shown in grey")
      .input(kFunctionalIn, "functional or fused volume (PET, ...), shown in colour; any grid")
      .output(kPointsOut,
              "one row per panel: the slice point (LPS mm) and its pixel position (column, row) in the PNG file, "
              "panel placement and scale")
      .param(&O::point_mm, "point_mm", "slice point (x, y, z) in LPS mm; empty: see point_mode")
      .choice(&O::point_mode, "point_mode", kPointModeNames,
              "when point_mm is empty: hottest (maximum of the smoothed functional volume) or centre of the anatomy")
      .param(&O::window, "window", Limits::at_least(0.0),
             "grey window width in the anatomical units (0: auto, CT brain window W 80 / L 40, else 1st-99.5th "
             "percentile)")
      .param(&O::level, "level", "grey window centre (used when window > 0)")
      .choice(&O::colormap, "colormap", kColormapNames, "colour map of the functional volume")
      .param(&O::opacity, "opacity", Limits::range(0.0, 1.0), "functional colour opacity over the grey image")
      .param(&O::threshold, "threshold", Limits::at_least(0.0), "functional values below this are not coloured")
      .choice(&O::threshold_mode, "threshold_mode", kThresholdModeNames,
              "fraction: threshold is a fraction of the colour range; value: in the functional units")
      .param(&O::range_max, "range_max", "top of the colour range (0: the functional maximum)")
      .choice(&O::layout, "layout", kOverlayLayoutNames,
              "montage: one PNG with three panels; planes: <stem>_axial.png, <stem>_coronal.png, <stem>_sagittal.png")
      .param(&O::panel_size, "panel_size", Limits::range(64, 4096), "panel width and height in pixels")
      .param(&O::crosshair, "crosshair", "reference lines through the point (with a gap around it)")
      .output_path(&O::path, "path", "PNG file (montage) or the stem's file name (planes)");
  return node;
}

NodeType<HistogramOptions> histogram_node() {
  using O = HistogramOptions;
  NodeType<O> node("viz.histogram", "1.0.0",
                   "Intensity histograms of one or more volumes as a VTK chart (PNG) and bin counts (table, CSV)");
  node.multi_input(kVolumesIn, "the volumes, e.g. each modality and the fused result")
      .output(kCountsOut, "label, modality, units, bin, lower, upper, count (one row per volume and bin)")
      .param(&O::bins, "bins", Limits::range(2, 100000), "number of bins")
      .param(&O::range, "range", "bin range [low, high] for every volume; empty: automatic")
      .choice(&O::layout, "layout", kHistogramLayoutNames,
              "overlaid: one chart and one range for all volumes; stacked: one chart per volume, each on its own "
              "range and units; auto: overlaid if all volumes have the same units (or a range is given)")
      .param(&O::labels, "labels", "comma-separated legend names, one per volume (default: each volume's modality)")
      .param(&O::log_y, "log_y", "logarithmic count axis (empty bins are not drawn)")
      .param(&O::title, "title", "chart title")
      .param(&O::width, "width", Limits::range(64, 4096), "image width in pixels")
      .param(&O::height, "height", Limits::range(64, 4096), "image height in pixels")
      .output_path(&O::path, "path", "PNG file to write")
      .optional_output_path(&O::csv_path, "csv_path", "CSV file with the bin counts (empty: none)");
  return node;
}

NodeType<FusionFigureOptions> fusion_figure_node() {
  using O = FusionFigureOptions;
  NodeType<O> node(
      "viz.fusion_figure", "1.1.0",
      "The fused result beside its sources: axial, coronal and sagittal slices through one point (default: "
      "the hottest PET region), one row per source on the reference grid and one for the fused volume (and, "
      "for colour fusion, rows for colour sources and the colour result), with orientation letters, a scale "
      "bar, each row's window and the fusion method in the caption; a 2D image (one slice) shows that slice "
      "only");
  node.input(kFusedIn, "the fused volume (its grid is the figure's field of view)")
      .multi_input(kSourcesIn,
                   "the sources on the fused volume's grid (e.g. CT, registered MRI, registered PET), in order")
      .multi_input(kColorSourcesIn,
                   "colour sources on the fused volume's grid (e.g. the colour PET of io.load_color), each a row "
                   "in its own colours after the grey sources, channels [0, max_value] shown as 0..255",
                   true)
      .optional_input(kColorFusedIn,
                      "the colour fusion result (e.g. color.from_ycbcr's image), the last row, \"Fused (colour)\"")
      .optional_input(kFunctionalIn,
                      "the volume whose hottest region is the point (default: the first PT source, else the centre)")
      .param(&O::point_mm, "point_mm", "slice point (x, y, z) in LPS mm; empty: see point_mode")
      .choice(&O::point_mode, "point_mode", kPointModeNames,
              "when point_mm is empty: hottest (of `functional`, or of a PT source) or centre")
      .param(&O::panel_size, "panel_size", Limits::range(64, 2048), "panel width and height in pixels")
      .param(&O::scale_bar_mm, "scale_bar_mm", Limits::range(1.0, 1000.0),
             "scale bar length in mm (halved until it fits in 40% of a panel)")
      .param(&O::caption, "caption", "the fusion method named in the caption (default: the fused volume's quantity)")
      .output_path(&O::path, "path", "PNG file to write");
  return node;
}

NodeType<RegistrationCheckOptions> registration_check_node() {
  using O = RegistrationCheckOptions;
  NodeType<O> node("viz.registration_check", "1.0.0",
                   "Alignment at a glance: the edges of the moving image (green) over the fixed image, before (the "
                   "moving image where it was) and after registration, in axial, coronal and sagittal slices");
  node.input(kFixedIn, "the fixed image (e.g. CT)")
      .input(kMovingIn, "the moving image before registration, any grid")
      .input(kRegisteredIn, "the moving image after registration (e.g. register.rigid's registered output)")
      .param(&O::point_mm, "point_mm", "slice point (x, y, z) in LPS mm; empty: the centre of the fixed image")
      .param(&O::panel_size, "panel_size", Limits::range(64, 2048), "panel width and height in pixels")
      .param(&O::scale_bar_mm, "scale_bar_mm", Limits::range(1.0, 1000.0), "scale bar length in mm")
      .param(&O::edge_percentile, "edge_percentile", Limits::range(0.0, 100.0),
             "edges: Sobel gradient magnitudes of the moving image above this percentile of a panel's non-zero ones")
      .output_path(&O::path, "path", "PNG file to write");
  return node;
}

NodeType<ReportVolumesOptions> report_volumes_node() {
  using O = ReportVolumesOptions;
  NodeType<O> node("viz.report_volumes", "1.0.0",
                   "The volumes of a run report's slice viewer (`fusionflow run --report`): each reduced by whole "
                   "bins to at most max_size voxels per axis, stored as int16 NIfTI with its scale (a CT in HU keeps "
                   "its values), listed with label, colour map and display window in viewer.json");
  node.multi_input(kVolumesIn,
                   "the volumes, the first the viewer's background (e.g. the CT, the registered MRI and PET, the "
                   "fused volume)")
      .param(&O::labels, "labels", "comma-separated names, one per volume (default: each volume's modality)")
      .param(&O::max_size, "max_size", Limits::range(16, 1024),
             "most voxels along any axis in the viewer (the page holds every volume, so it grows with the cube "
             "of this)")
      .output_path(&O::directory, "directory", "folder to write the volumes and viewer.json to");
  return node;
}

// The run functions: the engine's, opened on first use.
void run_render3d(NodeContext& ctx, const Render3dOptions& options) { engine().render3d(ctx, options); }
void run_fusion_figure_node(NodeContext& ctx, const FusionFigureOptions& options) {
  engine().fusion_figure(ctx, options);
}
void run_registration_check_node(NodeContext& ctx, const RegistrationCheckOptions& options) {
  engine().registration_check(ctx, options);
}
void run_overlay(NodeContext& ctx, const OverlayOptions& options) { engine().overlay(ctx, options); }
void run_histogram(NodeContext& ctx, const HistogramOptions& options) { engine().histogram(ctx, options); }

}  // namespace
}  // namespace fusionflow::viz

FUSIONFLOW_PLUGIN(
    "viz", "1.0.0",
    "Visualizers: 3D volume rendering, PET-over-CT slice overlays, histograms (VTK), figures of the fused "
    "result and of registrations") {
  using namespace fusionflow::viz;
  registrar.add_node(render3d_node(), run_render3d);
  registrar.add_node(overlay_node(), run_overlay);
  registrar.add_node(histogram_node(), run_histogram);
  registrar.add_node(fusion_figure_node(), run_fusion_figure_node);
  registrar.add_node(registration_check_node(), run_registration_check_node);
  registrar.add_node(report_volumes_node(), run_report_volumes);
}
