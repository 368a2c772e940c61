// Reusable VTK code of the visualizers, shared by the viz plugin and the
// fusionflow-view program (static library fusionflow_viz_support). An internal
// header: fusionflow's public SDK headers never include VTK.
//
// Geometry: fusionflow volumes are in ITK's LPS world (x = patient left,
// y = posterior, z = superior). A volume becomes a vtkImageData with its
// spacing but origin 0 and identity direction; the index-to-world part
// (direction and origin) goes into the prop's user matrix
// (vtkProp3D::SetUserMatrix, see index_to_world). Volume rendering, iso-surfaces
// and slice props therefore show every voxel at its exact LPS position, for any
// direction matrix, without resampling. (vtkImageData::SetDirectionMatrix is
// not relied on: VTK 9.1's mappers do not all honour it.) 2D slices
// (viz.overlay) are sampled by our own code at LPS points (sample_trilinear).
//
// Threads: VTK rendering (OpenGL contexts, FreeType's glyph cache) is not
// thread-safe and the executor runs nodes in parallel, so every use of VTK
// rendering or text in the process holds lock_rendering().
#pragma once

#include <algorithm>
#include <array>
#include <cstdint>
#include <filesystem>
#include <mutex>
#include <string>
#include <vector>

#include <vtkActor.h>
#include <vtkGPUVolumeRayCastMapper.h>
#include <vtkImageData.h>
#include <vtkMatrix4x4.h>
#include <vtkRenderer.h>
#include <vtkSmartPointer.h>
#include <vtkVolume.h>

#include "fusionflow/choice_list.hpp"
#include "fusionflow/volume.hpp"
#include "viz_options.hpp"

class vtkRenderWindow;
class vtkVolumeProperty;

namespace fusionflow::viz {

// ---------------------------------------------------------------------------
// Display (display.cpp)

// The error text when no display can be had (the exception adds the reason).
inline constexpr const char* kNoDisplayMessage =
    "no X display: rendering needs one. Install Xvfb (apt-get install xvfb) or run under xvfb-run -a, or set DISPLAY";

// Makes sure VTK can open a window, before any VTK window is created (Debian's
// VTK is built for X11 only and aborts the process without a display):
//  1. DISPLAY is set and the server accepts a connection and offers GLX: use it;
//  2. else, if `Xvfb` is on PATH, start one on a free display number
//     (-displayfd), wait until it accepts connections, set DISPLAY for this
//     process (and so for its children), stop it at exit;
//  3. else throw std::runtime_error starting with kNoDisplayMessage.
// Once per process (mutex); later calls return the first result. Returns a
// description for the log ("X display :0", "started Xvfb on :3 (...)").
std::string ensure_display();

// The process's one X connection for VTK windows (a Display*, opened on
// first use from DISPLAY, retried for 2 s, never closed). VTK opens its own
// otherwise, once per window, and aborts the process when that fails (seen
// under load: "bad X server connection"); with this one it never opens any.
// Throws std::runtime_error when no connection can be had. Use it only while
// holding lock_rendering().
void* shared_display_connection();

// The one lock for VTK rendering in this process (recursive). Hold it while
// any render window, renderer, text renderer or chart exists.
std::unique_lock<std::recursive_mutex> lock_rendering();

// ---------------------------------------------------------------------------
// RGB images and PNG files

struct RgbImage {
  int width = 0;
  int height = 0;
  std::vector<std::uint8_t> pixels;  // RGB, row-major, top row first

  RgbImage() = default;
  RgbImage(int w, int h, std::array<std::uint8_t, 3> fill = {0, 0, 0});
  std::uint8_t* at(int x, int y) { return &pixels[3 * (static_cast<std::size_t>(y) * width + x)]; }
  const std::uint8_t* at(int x, int y) const { return &pixels[3 * (static_cast<std::size_t>(y) * width + x)]; }
  // Pastes `other` with its top-left corner at (x, y), clipped.
  void paste(const RgbImage& other, int x, int y);
};

// Writes atomically (AtomicFileWriter semantics: complete or absent).
void write_png(const RgbImage& image, const std::filesystem::path& path);
// Reads an 8-bit PNG (grey, RGB or RGBA) as RGB. Throws on failure.
RgbImage read_png(const std::filesystem::path& path);
// The render window's back buffer as last rendered (call Render() first).
RgbImage capture(vtkRenderWindow* window);
// An off-screen render window of this size (requires ensure_display()).
vtkSmartPointer<vtkRenderWindow> make_offscreen_window(int width, int height);

// ---------------------------------------------------------------------------
// Colours, colour maps, text

// "black", "white", any vtkNamedColors name, "#rrggbb", or "r,g,b" in [0, 1].
std::array<double, 3> parse_colour(const std::string& text);
// Colour maps: fusionflow::colormap_rgb (fusionflow/color.hpp).

enum class TextAnchor {
  TopLeft,
  TopCentre,
  TopRight,
  CentreLeft,
  Centre,
  CentreRight,
  BottomLeft,
  BottomCentre,
  BottomRight
};
// Draws text (FreeType through VTK, no display needed) with a dark outline so
// it reads on any background. Takes lock_rendering() itself.
void draw_text(RgbImage& image, const std::string& text, int x, int y, int font_size,
               std::array<double, 3> colour = {1, 1, 1}, TextAnchor anchor = TextAnchor::TopLeft, bool bold = false);
// The width in pixels draw_text gives `text` (without its outline).
int text_width(const std::string& text, int font_size, bool bold = false);
// `text` broken at spaces into lines of at most `width` pixels (a word
// wider than that on a line of its own); {text} if it fits.
std::vector<std::string> wrap_text(const std::string& text, int font_size, int width, bool bold = false);

// ---------------------------------------------------------------------------
// Intensities and transfer-function presets

// By metadata.modality: CT -> ct_bone, MR -> mri, PT/PET -> pet, FUSED -> fused,
// anything else -> mri (a grey ramp over the robust range).
Preset auto_preset(const VolumeMetadata& metadata);

struct IntensityStats {
  double min = 0, max = 1;   // finite voxels
  double low = 0, high = 1;  // robust range: 1st and 99.5th percentile of voxels above min
  std::size_t finite = 0;
};
IntensityStats intensity_stats(const Volume& volume);

// Sets colour and scalar opacity of `component` of `property`. CT presets are
// in HU; mri, pet and fused are relative to the volume's robust range (pet:
// to its maximum). `opacity_scale` multiplies every opacity.
void apply_preset(vtkVolumeProperty* property, int component, Preset preset, const IntensityStats& stats,
                  double opacity_scale = 1.0);
// Intensity below which the preset is fully transparent.
double visible_threshold(Preset preset, const IntensityStats& stats);
// Whether the preset looks best shaded (surfaces: CT, MRI, fused) or not (PET glow).
bool preset_shaded(Preset preset);

// ---------------------------------------------------------------------------
// Slice views (viz.overlay, viz.fusion_figure, viz.registration_check)

// One slice panel: which LPS axis is fixed, which axis runs along the image
// columns (left to right) and rows (top to bottom), with signs. Radiological
// convention, LPS data: axial viewed from the feet (patient right on image
// left, anterior up), coronal from the front (right on left, superior up),
// sagittal from the patient's left (anterior on the left, superior up).
struct PanelLayout {
  const char* name;
  int fixed_axis;
  int column_axis;
  double column_sign;
  int row_axis;
  double row_sign;
  const char* left;
  const char* right;
  const char* top;
  const char* bottom;
};
constexpr PanelLayout kPanels[3] = {{"axial", 2, 0, +1, 1, +1, "R", "L", "A", "P"},
                                    {"coronal", 1, 0, +1, 2, -1, "R", "L", "S", "I"},
                                    {"sagittal", 0, 1, +1, 2, -1, "A", "P", "S", "I"}};

// The hottest region of `functional` inside `bounds`: maximum of the volume
// smoothed with sigma = 1.5 voxels (at least 3 mm), refined to the weighted
// centroid of the smoothed values above half the peak within 2 voxels.
std::array<double, 3> hottest_point(const Volume& functional, const std::array<double, 6>& bounds);

// A square field of view shared by the panels of one figure: the largest
// extent of `reference` (voxel edges), centred on it, `size` pixels wide.
struct SliceView {
  std::array<double, 3> centre{};
  double mm_per_pixel = 1.0;
  int size = 256;
};
SliceView slice_view(const Geometry& reference, int size);

// The panel of `layout` through `point`: pixel(world LPS) -> RGB for each
// pixel centre.
template <class Pixel>
RgbImage render_panel(const SliceView& view, const PanelLayout& layout, const std::array<double, 3>& point,
                      Pixel pixel) {
  RgbImage panel(view.size, view.size);
  std::array<double, 3> world = point;
  for (int row = 0; row < view.size; ++row) {
    world[layout.row_axis] =
        view.centre[layout.row_axis] + layout.row_sign * ((row + 0.5) - view.size / 2.0) * view.mm_per_pixel;
    for (int column = 0; column < view.size; ++column) {
      world[layout.column_axis] =
          view.centre[layout.column_axis] + layout.column_sign * ((column + 0.5) - view.size / 2.0) * view.mm_per_pixel;
      const std::array<std::uint8_t, 3> rgb = pixel(world);
      std::copy(rgb.begin(), rgb.end(), panel.at(column, row));
    }
  }
  return panel;
}

// Where `point` falls in a panel: (column, row), pixel centres at integers.
std::array<double, 2> panel_pixel(const SliceView& view, const PanelLayout& layout, const std::array<double, 3>& point);

// The orientation letters at the panel's four edges.
void draw_orientation_letters(RgbImage& panel, const PanelLayout& layout, int font);

// A scale bar in the panel's bottom-right corner: `length_mm` (halved until
// it fits in 40% of the panel), labelled.
void draw_scale_bar(RgbImage& panel, const SliceView& view, double length_mm, int font);

// Numbers for labels: 3 significant figures at most, "k" above 1e5.
std::string format_number(double value);

// ---------------------------------------------------------------------------
// Geometry

// voxels -> vtkImageData (float; origin 0, identity direction, the volume's
// spacing); with `second` (same size) a two-component image.
vtkSmartPointer<vtkImageData> to_vtk_image(const Volume& volume, const Volume* second = nullptr);
// The user matrix that places such an image in LPS: [direction | origin].
vtkSmartPointer<vtkMatrix4x4> index_to_world(const Geometry& geometry);
// World-aligned LPS bounds of the voxel centres: xmin, xmax, ymin, ymax, zmin, zmax.
std::array<double, 6> world_bounds(const Geometry& geometry);
// Separable Gaussian smoothing (sigma in mm, per axis in voxels: sigma /
// spacing; edges clamped; non-finite voxels count as 0) on the volume's grid.
std::vector<float> gaussian_smooth(const Volume& volume, double sigma_mm);
// Index box (imin, imax, jmin, jmax, kmin, kmax) of the voxels above `above`,
// grown by `margin` voxels (the whole grid if none is above).
std::array<std::size_t, 6> content_box(const Volume& volume, double above, std::size_t margin);
// The sub-volume in `box` (inclusive), with its geometry.
Volume crop(const Volume& volume, const std::array<std::size_t, 6>& box);
// Trilinear samples at LPS points; NaN more than half a voxel outside the
// voxel centres (within that margin the edge value extends). Keeps a pointer
// to the voxels: `volume`'s, or `voxels` laid out on `geometry` as a Volume's
// (e.g. one channel of a ColorVolume). Throws std::invalid_argument if their
// count is not the grid's or the geometry is singular.
class VolumeSampler {
 public:
  explicit VolumeSampler(const Volume& volume);
  VolumeSampler(const Geometry& geometry, const std::vector<float>& voxels);
  VolumeSampler(const Geometry& geometry, std::vector<float>&& voxels) = delete;  // would not outlive the sampler
  float operator()(const std::array<double, 3>& lps) const;
  // LPS point -> continuous voxel index.
  std::array<double, 3> index(const std::array<double, 3>& lps) const;

 private:
  VolumeSampler(const Geometry& geometry, const float* voxels, std::size_t count);

  std::array<std::size_t, 3> size_{};
  const float* voxels_ = nullptr;
  std::array<double, 9> to_index_{};  // (direction * spacing)^-1, row-major
  std::array<double, 3> origin_{};
};
// `source` resampled (trilinear, `outside` beyond its extent) onto `grid`;
// metadata kept.
Volume resample_onto(const Volume& source, const Geometry& grid, float outside = 0.0f);

// ---------------------------------------------------------------------------
// 3D scenes (viz.render3d and fusionflow-view)

struct Scene {
  vtkSmartPointer<vtkRenderer> renderer;
  vtkSmartPointer<vtkVolume> volume;  // null if nothing is volume rendered
  vtkSmartPointer<vtkGPUVolumeRayCastMapper> mapper;
  vtkSmartPointer<vtkActor> iso_actor;  // null without iso-surface
  int anatomical_component = -1;        // component of `volume` holding the anatomy (-1: none)
  int functional_component = -1;        // ... and the functional volume (-1: none)
  IntensityStats anatomical_stats, functional_stats;
  std::array<double, 6> bounds{};  // LPS bounds of the visible anatomy (for the camera)
  double smallest_spacing = 1.0;
};

// Builds the props, from the visible part of the anatomical volume (cropped
// to the voxels the preset does not make transparent). With a functional volume and volume rendering of both,
// the functional volume is resampled onto the anatomical grid and the two are
// one two-component volume with independent components (VTK's GPU ray caster
// composites them correctly; two overlapping vtkVolumes would not be).
Scene build_scene(const Volume& anatomical, const Volume* functional, const SceneOptions& options);
// Pixels between cast rays (VTK renders at lower resolution and scales up);
// `requested` <= 0: automatic, about one ray per voxel on screen, 1 to 2.
// Call after the camera is set.
void set_image_sample_distance(const Scene& scene, int viewport_height, double requested);
// Renders `window` (holding scene.renderer); first throws if its OpenGL
// cannot run VTK's GPU ray caster.
void render_scene(vtkRenderWindow* window, const Scene& scene);

// Camera presets in patient terms (LPS): anterior (looking at the face,
// patient right on image left), posterior, left/lateral (from the patient's
// left, face to the image left), right, superior (from above, anterior up),
// inferior, oblique (anterior turned 40 degrees toward the patient's left and
// 25 degrees up), custom (= anterior). Then azimuth (degrees about the view
// up), elevation, zoom. Lateral and Custom are values of their own so that
// captions name the view as it was asked for.
void set_camera(vtkRenderer* renderer, const std::array<double, 6>& bounds, Camera preset, double azimuth,
                double elevation, double zoom);
// Patient direction letter(s) of an LPS world direction: the dominant axis
// ("L", "R", "P", "A", "S", "I").
std::string orientation_letter(const std::array<double, 3>& direction);
// Letters for the right and top edges of the current view: {right, top}.
std::array<std::string, 2> view_orientation(vtkRenderer* renderer);

}  // namespace fusionflow::viz
