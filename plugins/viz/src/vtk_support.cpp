// The visualizers' VTK code: images and PNG files, colours and text,
// transfer-function presets, geometry, 3D scenes and cameras.
#include "vtk_support.hpp"

#include <fusionflow/atomic_file.hpp>
#include <fusionflow/sampling.hpp>
#include <fusionflow/statistics.hpp>

#include <vtkActor.h>
#include <vtkCamera.h>
#include <vtkColorTransferFunction.h>
#include <vtkFlyingEdges3D.h>
#include <vtkFloatArray.h>
#include <vtkGPUVolumeRayCastMapper.h>
#include <vtkImageData.h>
#include <vtkMatrix4x4.h>
#include <vtkNamedColors.h>
#include <vtkNew.h>
#include <vtkPlane.h>
#include <vtkOpenGLRenderWindow.h>
#include <vtkPNGReader.h>
#include <vtkPNGWriter.h>
#include <vtkPiecewiseFunction.h>
#include <vtkPointData.h>
#include <vtkPolyDataMapper.h>
#include <vtkProperty.h>
#include <vtkRenderWindow.h>
#include <vtkRenderer.h>
#include <vtkTextProperty.h>
#include <vtkTextRenderer.h>
#include <vtkUnsignedCharArray.h>
#include <vtkVolume.h>
#include <vtkVolumeProperty.h>
#include <vtkWindowToImageFilter.h>

#include <tbb/blocked_range.h>
#include <tbb/parallel_for.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <sstream>
#include <stdexcept>

namespace fusionflow::viz {
namespace {

constexpr double kPi = 3.14159265358979323846;

double clamp01(double value) { return std::min(1.0, std::max(0.0, value)); }

std::uint8_t to_byte(double value) { return static_cast<std::uint8_t>(std::lround(255.0 * clamp01(value))); }

// vtkImageData (row 0 at the bottom) <-> RgbImage (top row first).
RgbImage from_vtk_rgb(vtkImageData* data) {
  int dims[3];
  data->GetDimensions(dims);
  const int components = data->GetNumberOfScalarComponents();
  if (data->GetScalarType() != VTK_UNSIGNED_CHAR || components < 1 || components > 4) {
    throw std::runtime_error("expected an 8-bit image with 1 to 4 components");
  }
  RgbImage image(dims[0], dims[1]);
  const auto* source = static_cast<const std::uint8_t*>(data->GetScalarPointer());
  for (int y = 0; y < dims[1]; ++y) {
    const std::uint8_t* row = source + static_cast<std::size_t>(dims[1] - 1 - y) * dims[0] * components;
    for (int x = 0; x < dims[0]; ++x) {
      const std::uint8_t* pixel = row + static_cast<std::size_t>(x) * components;
      std::uint8_t* out = image.at(x, y);
      if (components < 3) {
        out[0] = out[1] = out[2] = pixel[0];
      } else {
        out[0] = pixel[0];
        out[1] = pixel[1];
        out[2] = pixel[2];
      }
    }
  }
  return image;
}

vtkSmartPointer<vtkImageData> to_vtk_rgb(const RgbImage& image) {
  auto data = vtkSmartPointer<vtkImageData>::New();
  data->SetDimensions(image.width, image.height, 1);
  data->AllocateScalars(VTK_UNSIGNED_CHAR, 3);
  auto* target = static_cast<std::uint8_t*>(data->GetScalarPointer());
  const std::size_t row_bytes = 3 * static_cast<std::size_t>(image.width);
  for (int y = 0; y < image.height; ++y) {
    std::copy_n(image.at(0, y), row_bytes, target + static_cast<std::size_t>(image.height - 1 - y) * row_bytes);
  }
  return data;
}

// Trilinear interpolation (fusionflow/sampling.hpp) at a continuous index;
// NaN more than half a voxel outside the voxel centres (within that margin
// the edge value extends).
float interpolate(const std::array<std::size_t, 3>& size, const float* voxels, const std::array<double, 3>& index) {
  TrilinearCell cell;
  if (!locate_trilinear(size, index, TrilinearDomain::VoxelExtent, cell)) {
    return std::numeric_limits<float>::quiet_NaN();
  }
  return static_cast<float>(trilinear_value(voxels, cell));
}
float interpolate(const Volume& volume, const std::array<double, 3>& index) {
  return interpolate(volume.geometry.size, volume.voxels.data(), index);
}

void check_voxels(const Geometry& geometry, std::size_t count, const char* what) {
  if (count != geometry.voxel_count() || count == 0) {
    throw std::invalid_argument(std::string(what) + " volume has " + std::to_string(count) + " voxels for a grid of " +
                                std::to_string(geometry.voxel_count()));
  }
}
void check_voxels(const Volume& volume, const char* what) { check_voxels(volume.geometry, volume.voxels.size(), what); }

struct ControlPoint {
  double t;  // relative position (or absolute value for CT presets)
  double r, g, b;
};
struct OpacityPoint {
  double t, opacity;
};

}  // namespace

// ---------------------------------------------------------------------------
// RgbImage and PNG

RgbImage::RgbImage(int w, int h, std::array<std::uint8_t, 3> fill)
    : width(w),
      height(h),
      pixels(3 * static_cast<std::size_t>(std::max(w, 0)) * static_cast<std::size_t>(std::max(h, 0))) {
  for (std::size_t i = 0; i < pixels.size(); i += 3) {
    pixels[i] = fill[0];
    pixels[i + 1] = fill[1];
    pixels[i + 2] = fill[2];
  }
}

void RgbImage::paste(const RgbImage& other, int x, int y) {
  for (int row = 0; row < other.height; ++row) {
    const int ty = y + row;
    if (ty < 0 || ty >= height) continue;
    for (int column = 0; column < other.width; ++column) {
      const int tx = x + column;
      if (tx < 0 || tx >= width) continue;
      std::copy_n(other.at(column, row), 3, at(tx, ty));
    }
  }
}

void write_png(const RgbImage& image, const std::filesystem::path& path) {
  if (image.width <= 0 || image.height <= 0)
    throw std::invalid_argument("cannot write an empty image to " + path.string());
  vtkNew<vtkPNGWriter> writer;
  writer->SetInputData(to_vtk_rgb(image));
  writer->WriteToMemoryOn();
  writer->Write();
  vtkUnsignedCharArray* bytes = writer->GetResult();
  if (writer->GetErrorCode() != 0 || bytes == nullptr || bytes->GetNumberOfValues() == 0) {
    throw std::runtime_error("PNG encoding failed for " + path.string());
  }
  write_file_atomically(path, std::string_view(reinterpret_cast<const char*>(bytes->GetPointer(0)),
                                               static_cast<std::size_t>(bytes->GetNumberOfValues())));
}

RgbImage read_png(const std::filesystem::path& path) {
  vtkNew<vtkPNGReader> reader;
  if (!std::filesystem::is_regular_file(path) || reader->CanReadFile(path.c_str()) == 0) {
    throw std::runtime_error("not a readable PNG file: " + path.string());
  }
  reader->SetFileName(path.c_str());
  reader->Update();
  return from_vtk_rgb(reader->GetOutput());
}

RgbImage capture(vtkRenderWindow* window) {
  vtkNew<vtkWindowToImageFilter> grab;
  grab->SetInput(window);
  grab->ReadFrontBufferOff();
  grab->SetInputBufferTypeToRGB();
  grab->ShouldRerenderOff();
  grab->Update();
  return from_vtk_rgb(grab->GetOutput());
}

vtkSmartPointer<vtkRenderWindow> make_offscreen_window(int width, int height) {
  auto window = vtkSmartPointer<vtkRenderWindow>::New();
  window->SetDisplayId(shared_display_connection());
  window->SetOffScreenRendering(1);
  window->SetMultiSamples(0);
  window->SetSize(width, height);
  return window;
}

// ---------------------------------------------------------------------------
// Colours and text

std::array<double, 3> parse_colour(const std::string& text) {
  if (text.size() == 7 && text[0] == '#') {
    std::array<double, 3> rgb{};
    for (int c = 0; c < 3; ++c) {
      const std::string hex = text.substr(1 + 2 * static_cast<std::size_t>(c), 2);
      if (hex.find_first_not_of("0123456789abcdefABCDEF") != std::string::npos) break;
      rgb[c] = std::stoi(hex, nullptr, 16) / 255.0;
      if (c == 2) return rgb;
    }
  } else if (text.find(',') != std::string::npos) {
    std::stringstream stream(text);
    std::array<double, 3> rgb{};
    char comma = 0;
    if ((stream >> rgb[0] >> comma >> rgb[1] >> comma >> rgb[2]) && stream.eof() &&
        std::all_of(rgb.begin(), rgb.end(), [](double v) { return v >= 0 && v <= 1; })) {
      return rgb;
    }
  } else {
    vtkNew<vtkNamedColors> names;
    if (names->ColorExists(text)) {
      const vtkColor3d colour = names->GetColor3d(text);
      return {colour.GetRed(), colour.GetGreen(), colour.GetBlue()};
    }
  }
  throw std::invalid_argument("unknown colour '" + text +
                              "': use a name (black, white, ...), #rrggbb or r,g,b in [0,1]");
}

namespace {

// The text property of draw_text and text_width.
void set_text_property(vtkTextProperty* property, int font_size, bool bold, const std::array<double, 3>& colour) {
  property->SetFontFamilyToArial();
  property->SetFontSize(font_size);
  property->SetBold(bold ? 1 : 0);
  property->SetColor(colour[0], colour[1], colour[2]);
  property->SetJustificationToLeft();
  property->SetVerticalJustificationToBottom();
}

vtkTextRenderer* text_renderer() {
  vtkTextRenderer* renderer = vtkTextRenderer::GetInstance();
  if (renderer == nullptr) throw std::runtime_error("VTK has no text renderer (RenderingFreeType not initialised)");
  return renderer;
}

}  // namespace

int text_width(const std::string& text, int font_size, bool bold) {
  if (text.empty()) return 0;
  auto lock = lock_rendering();
  vtkNew<vtkTextProperty> property;
  set_text_property(property, font_size, bold, {1, 1, 1});
  int box[4] = {0, 0, 0, 0};
  if (!text_renderer()->GetBoundingBox(property, text, box, 72)) {
    throw std::runtime_error("cannot measure text '" + text + "'");
  }
  return box[1] - box[0] + 1;
}

std::vector<std::string> wrap_text(const std::string& text, int font_size, int width, bool bold) {
  if (text.empty() || text_width(text, font_size, bold) <= width) return {text};
  std::vector<std::string> lines;
  std::string line;
  std::size_t start = 0;
  while (start <= text.size()) {
    const std::size_t space = std::min(text.find(' ', start), text.size());
    const std::string word = text.substr(start, space - start);
    const std::string longer = line.empty() ? word : line + " " + word;
    if (!line.empty() && text_width(longer, font_size, bold) > width) {
      lines.push_back(line);
      line = word;
    } else {
      line = longer;
    }
    start = space + 1;
  }
  if (!line.empty()) lines.push_back(line);
  return lines;
}

void draw_text(RgbImage& image, const std::string& text, int x, int y, int font_size, std::array<double, 3> colour,
               TextAnchor anchor, bool bold) {
  if (text.empty()) return;
  auto lock = lock_rendering();  // FreeType's glyph cache is shared
  vtkNew<vtkTextProperty> property;
  set_text_property(property, font_size, bold, colour);
  vtkTextRenderer* renderer = text_renderer();
  vtkNew<vtkImageData> glyphs;
  int dims[2] = {0, 0};
  if (!renderer->RenderString(property, text, glyphs, dims, 72)) {
    throw std::runtime_error("cannot render text '" + text + "'");
  }
  int extent[6];
  glyphs->GetExtent(extent);
  const int data_width = extent[1] - extent[0] + 1;
  const int data_height = extent[3] - extent[2] + 1;
  const int components = glyphs->GetNumberOfScalarComponents();
  if (components != 4 || glyphs->GetScalarType() != VTK_UNSIGNED_CHAR) return;
  const int w = std::min(dims[0], data_width), h = std::min(dims[1], data_height);
  int left = x, top = y;
  switch (anchor) {
    case TextAnchor::TopLeft: break;
    case TextAnchor::TopCentre: left -= w / 2; break;
    case TextAnchor::TopRight: left -= w; break;
    case TextAnchor::CentreLeft: top -= h / 2; break;
    case TextAnchor::Centre:
      left -= w / 2;
      top -= h / 2;
      break;
    case TextAnchor::CentreRight:
      left -= w;
      top -= h / 2;
      break;
    case TextAnchor::BottomLeft: top -= h; break;
    case TextAnchor::BottomCentre:
      left -= w / 2;
      top -= h;
      break;
    case TextAnchor::BottomRight:
      left -= w;
      top -= h;
      break;
  }
  const auto* data = static_cast<const std::uint8_t*>(glyphs->GetScalarPointer());
  // The text's tight box is the lower-left w x h corner of the (possibly
  // padded) image; image row 0 is the bottom.
  auto alpha_at = [&](int column, int row_from_top) -> double {
    if (column < 0 || column >= w || row_from_top < 0 || row_from_top >= h) return 0.0;
    const int row = h - 1 - row_from_top;
    return data[4 * (static_cast<std::size_t>(row) * data_width + column) + 3] / 255.0;
  };
  const int outline = std::max(1, font_size / 14);
  for (int row = -outline; row < h + outline; ++row) {
    const int ty = top + row;
    if (ty < 0 || ty >= image.height) continue;
    for (int column = -outline; column < w + outline; ++column) {
      const int tx = left + column;
      if (tx < 0 || tx >= image.width) continue;
      double shadow = 0.0;
      for (int dy = -outline; dy <= outline; ++dy)
        for (int dx = -outline; dx <= outline; ++dx) shadow = std::max(shadow, alpha_at(column + dx, row + dy));
      const double a = alpha_at(column, row);
      std::uint8_t* pixel = image.at(tx, ty);
      for (int c = 0; c < 3; ++c) {
        const double dark = pixel[c] * (1.0 - 0.75 * shadow);
        pixel[c] = to_byte((dark * (1.0 - a) + 255.0 * colour[c] * a) / 255.0);
      }
    }
  }
}

// ---------------------------------------------------------------------------
// Presets

Preset auto_preset(const VolumeMetadata& metadata) {
  std::string modality = metadata.modality;
  std::transform(modality.begin(), modality.end(), modality.begin(), [](unsigned char c) { return std::toupper(c); });
  if (modality == "CT") return Preset::CtBone;
  if (modality == "PT" || modality == "PET") return Preset::Pet;
  if (modality == "FUSED") return Preset::Fused;
  return Preset::Mri;
}

IntensityStats intensity_stats(const Volume& volume) {
  IntensityStats stats;
  stats.min = std::numeric_limits<double>::infinity();
  stats.max = -std::numeric_limits<double>::infinity();
  for (float value : volume.voxels) {
    if (!std::isfinite(value)) continue;
    ++stats.finite;
    stats.min = std::min(stats.min, double(value));
    stats.max = std::max(stats.max, double(value));
  }
  if (stats.finite == 0) {
    stats.min = stats.low = 0;
    stats.max = stats.high = 1;
    return stats;
  }
  // Percentiles of the voxels above the minimum (air or background usually
  // is the minimum and would dominate), from at most ~1M samples.
  const std::size_t stride = std::max<std::size_t>(1, volume.voxels.size() / 1000000);
  std::vector<float> sample;
  sample.reserve(volume.voxels.size() / stride + 1);
  for (std::size_t i = 0; i < volume.voxels.size(); i += stride) {
    const float value = volume.voxels[i];
    if (std::isfinite(value) && value > stats.min) sample.push_back(value);
  }
  if (sample.size() < 2) {
    stats.low = stats.min;
    stats.high = stats.max > stats.min ? stats.max : stats.min + 1;
    return stats;
  }
  stats.low = fusionflow::percentile(sample, 1.0);
  stats.high = fusionflow::percentile(sample, 99.5);
  if (!(stats.high > stats.low)) stats.high = stats.low + 1;
  return stats;
}

bool preset_shaded(Preset preset) { return preset != Preset::Pet; }

namespace {

struct PresetTable {
  bool relative;  // t relative to the robust range (pet: 0 .. maximum), else absolute values
  std::vector<ControlPoint> colours;
  std::vector<OpacityPoint> opacities;
};

PresetTable preset_table(Preset preset) {
  switch (preset) {
    case Preset::CtBone:  // HU: soft tissue transparent, bone ivory
      return {false,
              {{-1000, 0, 0, 0},
               {150, 0.73, 0.25, 0.30},
               {400, 0.90, 0.82, 0.56},
               {1100, 1.0, 0.98, 0.92},
               {3000, 1, 1, 1}},
              {{-1000, 0}, {150, 0}, {300, 0.12}, {700, 0.6}, {1200, 0.85}, {3000, 0.9}}};
    case Preset::CtSoftTissue:  // HU: skin surface, faint brain, bone
      return {false,
              {{-1000, 0, 0, 0},
               {-300, 0.75, 0.52, 0.43},
               {100, 0.92, 0.72, 0.62},
               {400, 1.0, 0.95, 0.85},
               {1100, 1, 1, 1}},
              {{-1000, 0}, {-450, 0}, {-250, 0.06}, {-100, 0.25}, {100, 0.3}, {400, 0.6}, {1100, 0.85}}};
    case Preset::Mri:  // grey, low intensities clear
      return {true,
              {{0, 0, 0, 0}, {0.3, 0.35, 0.33, 0.32}, {0.7, 0.85, 0.82, 0.78}, {1.0, 1, 1, 1}},
              {{0, 0}, {0.25, 0}, {0.5, 0.06}, {0.8, 0.3}, {1.0, 0.55}}};
    case Preset::Pet:  // hot colours, only the hottest opaque
      return {true,
              {{0, 0, 0, 0}, {0.35, 0.8, 0.0, 0.0}, {0.6, 1.0, 0.45, 0.0}, {0.8, 1.0, 0.85, 0.1}, {1.0, 1, 1, 0.8}},
              {{0, 0}, {0.3, 0}, {0.5, 0.03}, {0.7, 0.3}, {1.0, 0.9}}};
    case Preset::Fused:  // blue-grey to warm white
      break;
  }
  return {true,
          {{0, 0, 0, 0}, {0.3, 0.30, 0.32, 0.55}, {0.6, 0.80, 0.68, 0.55}, {1.0, 1.0, 0.97, 0.88}},
          {{0, 0}, {0.3, 0}, {0.55, 0.08}, {0.85, 0.4}, {1.0, 0.7}}};
}

// Preset control point -> intensity.
double preset_value(Preset preset, const PresetTable& table, const IntensityStats& stats, double t) {
  if (!table.relative) return t;
  double base = stats.low, top = stats.high;
  if (preset == Preset::Pet) {  // relative to the maximum, from zero
    base = std::max(0.0, stats.min);
    top = stats.max > base ? stats.max : base + 1;
  }
  return base + t * (top - base);
}

}  // namespace

double visible_threshold(Preset preset, const IntensityStats& stats) {
  const PresetTable table = preset_table(preset);
  double threshold = preset_value(preset, table, stats, table.opacities.front().t);
  for (const OpacityPoint& p : table.opacities) {
    if (p.opacity > 0) break;
    threshold = preset_value(preset, table, stats, p.t);
  }
  return threshold;
}

void apply_preset(vtkVolumeProperty* property, int component, Preset preset, const IntensityStats& stats,
                  double opacity_scale) {
  const PresetTable table = preset_table(preset);
  vtkNew<vtkColorTransferFunction> colour;
  vtkNew<vtkPiecewiseFunction> opacity;
  for (const ControlPoint& p : table.colours)
    colour->AddRGBPoint(preset_value(preset, table, stats, p.t), p.r, p.g, p.b);
  for (const OpacityPoint& p : table.opacities) {
    opacity->AddPoint(preset_value(preset, table, stats, p.t), std::min(1.0, p.opacity * opacity_scale));
  }
  property->SetColor(component, colour);
  property->SetScalarOpacity(component, opacity);
  property->SetShade(component, preset_shaded(preset) ? 1 : 0);
  property->SetAmbient(component, 0.3);
  property->SetDiffuse(component, 0.7);
  property->SetSpecular(component, 0.1);
  property->SetSpecularPower(component, 10);
}

// ---------------------------------------------------------------------------
// Geometry

vtkSmartPointer<vtkImageData> to_vtk_image(const Volume& volume, const Volume* second) {
  check_voxels(volume, "the");
  const Geometry& g = volume.geometry;
  if (second != nullptr && second->voxels.size() != volume.voxels.size()) {
    throw std::invalid_argument("two-component image: the second volume is not on the same grid");
  }
  auto image = vtkSmartPointer<vtkImageData>::New();
  image->SetDimensions(static_cast<int>(g.size[0]), static_cast<int>(g.size[1]), static_cast<int>(g.size[2]));
  image->SetSpacing(g.spacing[0], g.spacing[1], g.spacing[2]);
  image->SetOrigin(0, 0, 0);
  const int components = second != nullptr ? 2 : 1;
  image->AllocateScalars(VTK_FLOAT, components);
  auto* target = static_cast<float*>(image->GetScalarPointer());
  const std::size_t count = volume.voxels.size();
  // Non-finite voxels would poison interpolation: replace by the minimum.
  auto finite_or = [](float value, float fallback) { return std::isfinite(value) ? value : fallback; };
  const auto floor_of = [](const Volume& v) {
    float lowest = std::numeric_limits<float>::max();
    for (float value : v.voxels)
      if (std::isfinite(value)) lowest = std::min(lowest, value);
    return lowest == std::numeric_limits<float>::max() ? 0.0f : lowest;
  };
  const float first_floor = floor_of(volume);
  if (second == nullptr) {
    for (std::size_t i = 0; i < count; ++i) target[i] = finite_or(volume.voxels[i], first_floor);
  } else {
    const float second_floor = floor_of(*second);
    for (std::size_t i = 0; i < count; ++i) {
      target[2 * i] = finite_or(volume.voxels[i], first_floor);
      target[2 * i + 1] = finite_or(second->voxels[i], second_floor);
    }
  }
  return image;
}

vtkSmartPointer<vtkMatrix4x4> index_to_world(const Geometry& geometry) {
  auto matrix = vtkSmartPointer<vtkMatrix4x4>::New();
  for (int r = 0; r < 3; ++r) {
    for (int c = 0; c < 3; ++c) matrix->SetElement(r, c, geometry.direction[3 * r + c]);
    matrix->SetElement(r, 3, geometry.origin[r]);
  }
  return matrix;
}

std::array<double, 6> world_bounds(const Geometry& geometry) {
  std::array<double, 6> bounds{std::numeric_limits<double>::max(), std::numeric_limits<double>::lowest(),
                               std::numeric_limits<double>::max(), std::numeric_limits<double>::lowest(),
                               std::numeric_limits<double>::max(), std::numeric_limits<double>::lowest()};
  for (int corner = 0; corner < 8; ++corner) {
    std::array<double, 3> index{};
    for (int a = 0; a < 3; ++a) index[a] = (corner >> a) & 1 ? double(geometry.size[a]) - 1.0 : 0.0;
    const auto point = geometry.index_to_point(index);
    for (int a = 0; a < 3; ++a) {
      bounds[2 * a] = std::min(bounds[2 * a], point[a]);
      bounds[2 * a + 1] = std::max(bounds[2 * a + 1], point[a]);
    }
  }
  return bounds;
}

VolumeSampler::VolumeSampler(const Volume& volume)
    : VolumeSampler(volume.geometry, volume.voxels.data(), volume.voxels.size()) {}

VolumeSampler::VolumeSampler(const Geometry& geometry, const std::vector<float>& voxels)
    : VolumeSampler(geometry, voxels.data(), voxels.size()) {}

VolumeSampler::VolumeSampler(const Geometry& g, const float* voxels, std::size_t count)
    : size_(g.size), voxels_(voxels), origin_(g.origin) {
  check_voxels(g, count, "the sampled");
  std::array<double, 9> m{};
  for (int r = 0; r < 3; ++r)
    for (int c = 0; c < 3; ++c) m[3 * r + c] = g.direction[3 * r + c] * g.spacing[c];
  const double det =
      m[0] * (m[4] * m[8] - m[5] * m[7]) - m[1] * (m[3] * m[8] - m[5] * m[6]) + m[2] * (m[3] * m[7] - m[4] * m[6]);
  if (!(std::abs(det) > 1e-12)) throw std::invalid_argument("volume geometry is singular (spacing or direction)");
  to_index_ = {(m[4] * m[8] - m[5] * m[7]) / det, (m[2] * m[7] - m[1] * m[8]) / det, (m[1] * m[5] - m[2] * m[4]) / det,
               (m[5] * m[6] - m[3] * m[8]) / det, (m[0] * m[8] - m[2] * m[6]) / det, (m[2] * m[3] - m[0] * m[5]) / det,
               (m[3] * m[7] - m[4] * m[6]) / det, (m[1] * m[6] - m[0] * m[7]) / det, (m[0] * m[4] - m[1] * m[3]) / det};
}

std::array<double, 3> VolumeSampler::index(const std::array<double, 3>& p) const {
  const double d0 = p[0] - origin_[0], d1 = p[1] - origin_[1], d2 = p[2] - origin_[2];
  return {to_index_[0] * d0 + to_index_[1] * d1 + to_index_[2] * d2,
          to_index_[3] * d0 + to_index_[4] * d1 + to_index_[5] * d2,
          to_index_[6] * d0 + to_index_[7] * d1 + to_index_[8] * d2};
}

// Separable Gaussian smoothing on the volume's own grid (edges clamped). The
// lines of each pass are independent: they are smoothed in parallel, each
// voxel's taps added in the same order whatever the thread count (the same
// bytes); taps inside the line skip the clamp.
std::vector<float> gaussian_smooth(const Volume& volume, double sigma_mm) {
  const Geometry& g = volume.geometry;
  std::vector<float> data(volume.voxels.size());
  for (std::size_t i = 0; i < data.size(); ++i) data[i] = std::isfinite(volume.voxels[i]) ? volume.voxels[i] : 0.0f;
  for (int axis = 0; axis < 3; ++axis) {
    const double sigma = sigma_mm / g.spacing[axis];
    if (sigma < 0.3 || g.size[axis] < 2) continue;
    const int radius = static_cast<int>(std::ceil(3 * sigma));
    std::vector<double> kernel(2 * static_cast<std::size_t>(radius) + 1);
    double sum = 0;
    for (int t = -radius; t <= radius; ++t)
      sum += kernel[static_cast<std::size_t>(t + radius)] = std::exp(-0.5 * t * t / (sigma * sigma));
    for (double& k : kernel) k /= sum;
    const std::size_t n = g.size[axis];
    const std::size_t stride = axis == 0 ? 1 : axis == 1 ? g.size[0] : g.size[0] * g.size[1];
    const std::size_t lines = data.size() / n;
    const auto r = static_cast<std::size_t>(radius);
    tbb::parallel_for(tbb::blocked_range<std::size_t>(0, lines), [&](const tbb::blocked_range<std::size_t>& range) {
      std::vector<float> line(n);
      for (std::size_t l = range.begin(); l != range.end(); ++l) {
        // Start of line l: decompose into the other two axes.
        std::size_t start = 0;
        if (axis == 0)
          start = l * n;
        else if (axis == 1)
          start = (l / g.size[0]) * g.size[0] * g.size[1] + l % g.size[0];
        else
          start = l;
        for (std::size_t i = 0; i < n; ++i) line[i] = data[start + i * stride];
        for (std::size_t i = 0; i < n; ++i) {
          double value = 0;
          if (i >= r && i + r < n) {
            const float* taps = line.data() + (i - r);
            for (std::size_t t = 0; t < kernel.size(); ++t) value += kernel[t] * taps[t];
          } else {
            for (int t = -radius; t <= radius; ++t) {
              const auto s = std::clamp<long>(static_cast<long>(i) + t, 0, static_cast<long>(n) - 1);
              value += kernel[static_cast<std::size_t>(t + radius)] * line[static_cast<std::size_t>(s)];
            }
          }
          data[start + i * stride] = static_cast<float>(value);
        }
      }
    });
  }
  return data;
}

std::array<std::size_t, 6> content_box(const Volume& volume, double above, std::size_t margin) {
  const Geometry& g = volume.geometry;
  std::array<std::size_t, 3> low{g.size[0], g.size[1], g.size[2]}, high{0, 0, 0};
  bool any = false;
  std::size_t n = 0;
  for (std::size_t k = 0; k < g.size[2]; ++k)
    for (std::size_t j = 0; j < g.size[1]; ++j)
      for (std::size_t i = 0; i < g.size[0]; ++i, ++n) {
        if (!(volume.voxels[n] > above)) continue;
        any = true;
        low = {std::min(low[0], i), std::min(low[1], j), std::min(low[2], k)};
        high = {std::max(high[0], i), std::max(high[1], j), std::max(high[2], k)};
      }
  if (!any) return {0, g.size[0] - 1, 0, g.size[1] - 1, 0, g.size[2] - 1};
  std::array<std::size_t, 6> box{};
  for (int a = 0; a < 3; ++a) {
    box[2 * a] = low[a] > margin ? low[a] - margin : 0;
    box[2 * a + 1] = std::min(g.size[a] - 1, high[a] + margin);
  }
  return box;
}

Volume crop(const Volume& volume, const std::array<std::size_t, 6>& box) {
  check_voxels(volume, "the cropped");
  const Geometry& g = volume.geometry;
  for (int a = 0; a < 3; ++a) {
    if (box[2 * a] > box[2 * a + 1] || box[2 * a + 1] >= g.size[a])
      throw std::invalid_argument("crop box outside the volume");
  }
  Volume result;
  result.metadata = volume.metadata;
  result.geometry = g;
  for (int a = 0; a < 3; ++a) result.geometry.size[a] = box[2 * a + 1] - box[2 * a] + 1;
  result.geometry.origin = g.index_to_point({double(box[0]), double(box[2]), double(box[4])});
  result.voxels.resize(result.geometry.voxel_count());
  float* out = result.voxels.data();
  for (std::size_t k = box[4]; k <= box[5]; ++k)
    for (std::size_t j = box[2]; j <= box[3]; ++j) {
      const float* row = volume.voxels.data() + g.linear_index(box[0], j, k);
      out = std::copy(row, row + result.geometry.size[0], out);
    }
  return result;
}

float VolumeSampler::operator()(const std::array<double, 3>& lps) const {
  return interpolate(size_, voxels_, index(lps));
}

Volume resample_onto(const Volume& source, const Geometry& grid, float outside) {
  const VolumeSampler map(source);
  Volume result;
  result.geometry = grid;
  result.metadata = source.metadata;
  result.voxels.resize(grid.voxel_count());
  // Source index is affine in the grid index: start + i*di + j*dj + k*dk.
  const auto start = map.index(grid.index_to_point({0, 0, 0}));
  std::array<std::array<double, 3>, 3> step{};
  for (int a = 0; a < 3; ++a) {
    std::array<double, 3> unit{0, 0, 0};
    unit[a] = 1;
    const auto moved = map.index(grid.index_to_point(unit));
    for (int b = 0; b < 3; ++b) step[a][b] = moved[b] - start[b];
  }
  std::size_t n = 0;
  for (std::size_t k = 0; k < grid.size[2]; ++k) {
    for (std::size_t j = 0; j < grid.size[1]; ++j) {
      for (std::size_t i = 0; i < grid.size[0]; ++i, ++n) {
        std::array<double, 3> index{};
        for (int b = 0; b < 3; ++b) {
          index[b] = start[b] + double(i) * step[0][b] + double(j) * step[1][b] + double(k) * step[2][b];
        }
        const float value = interpolate(source, index);
        result.voxels[n] = std::isfinite(value) ? value : outside;
      }
    }
  }
  return result;
}

// ---------------------------------------------------------------------------
// Scenes and cameras

Scene build_scene(const Volume& full_anatomical, const Volume* full_functional, const SceneOptions& options) {
  check_voxels(full_anatomical, "the anatomical");
  if (full_functional != nullptr) check_voxels(*full_functional, "the functional");
  Scene scene;
  scene.renderer = vtkSmartPointer<vtkRenderer>::New();
  scene.anatomical_stats = intensity_stats(full_anatomical);
  if (full_functional != nullptr) scene.functional_stats = intensity_stats(*full_functional);
  // Only the visible part of the anatomy (plus a margin) is uploaded and ray
  // cast, and the camera frames it: a head in a large field of view costs
  // less and fills the picture.
  const double visible =
      options.iso_surface ? options.iso_value : visible_threshold(options.preset, scene.anatomical_stats);
  Volume anatomical = crop(full_anatomical, content_box(full_anatomical, visible,
                                                        2 + static_cast<std::size_t>(std::ceil(options.smoothing_mm))));
  if (options.smoothing_mm > 0) anatomical.voxels = gaussian_smooth(anatomical, options.smoothing_mm);
  scene.bounds = world_bounds(anatomical.geometry);
  const double smallest_spacing =
      *std::min_element(anatomical.geometry.spacing.begin(), anatomical.geometry.spacing.end());
  const double sample_distance = options.sample_distance_mm > 0 ? options.sample_distance_mm : smallest_spacing;

  auto make_volume = [&](vtkImageData* image, const Geometry& geometry) {
    scene.mapper = vtkSmartPointer<vtkGPUVolumeRayCastMapper>::New();
    scene.mapper->SetInputData(image);
    scene.mapper->SetBlendModeToComposite();
    scene.mapper->SetAutoAdjustSampleDistances(0);
    scene.mapper->SetSampleDistance(static_cast<float>(sample_distance));
    scene.mapper->SetUseJittering(1);  // no wood-grain rings from the fixed step
    auto property = vtkSmartPointer<vtkVolumeProperty>::New();
    property->SetInterpolationTypeToLinear();
    scene.volume = vtkSmartPointer<vtkVolume>::New();
    scene.volume->SetMapper(scene.mapper);
    scene.volume->SetProperty(property);
    scene.volume->SetUserMatrix(index_to_world(geometry));
    scene.renderer->AddVolume(scene.volume);
    return property.GetPointer();
  };

  if (options.iso_surface) {
    vtkNew<vtkFlyingEdges3D> surface;
    surface->SetInputData(to_vtk_image(anatomical));
    surface->SetValue(0, options.iso_value);
    surface->ComputeNormalsOn();
    surface->ComputeScalarsOff();
    surface->Update();
    vtkNew<vtkPolyDataMapper> mapper;
    mapper->SetInputConnection(surface->GetOutputPort());
    mapper->ScalarVisibilityOff();
    scene.iso_actor = vtkSmartPointer<vtkActor>::New();
    scene.iso_actor->SetMapper(mapper);
    scene.iso_actor->SetUserMatrix(index_to_world(anatomical.geometry));
    scene.iso_actor->GetProperty()->SetColor(0.93, 0.90, 0.82);
    scene.iso_actor->GetProperty()->SetOpacity(options.iso_opacity);
    scene.iso_actor->GetProperty()->SetSpecular(0.2);
    scene.iso_actor->GetProperty()->SetSpecularPower(20);
    scene.renderer->AddActor(scene.iso_actor);
    if (full_functional != nullptr) {
      const double functional_visible = visible_threshold(options.functional_preset, scene.functional_stats);
      const Volume functional = crop(*full_functional, content_box(*full_functional, functional_visible, 2));
      vtkVolumeProperty* property = make_volume(to_vtk_image(functional), functional.geometry);
      apply_preset(property, 0, options.functional_preset, scene.functional_stats, options.functional_opacity);
      scene.functional_component = 0;
    }
  } else if (full_functional != nullptr) {
    const Volume on_grid =
        resample_onto(*full_functional, anatomical.geometry, static_cast<float>(scene.functional_stats.min));
    vtkVolumeProperty* property = make_volume(to_vtk_image(anatomical, &on_grid), anatomical.geometry);
    property->IndependentComponentsOn();
    apply_preset(property, 0, options.preset, scene.anatomical_stats, options.opacity);
    apply_preset(property, 1, options.functional_preset, scene.functional_stats, options.functional_opacity);
    scene.anatomical_component = 0;
    scene.functional_component = 1;
  } else {
    vtkVolumeProperty* property = make_volume(to_vtk_image(anatomical), anatomical.geometry);
    apply_preset(property, 0, options.preset, scene.anatomical_stats, options.opacity);
    scene.anatomical_component = 0;
  }
  if (options.clip != ClipPlane::None && scene.mapper) {
    // The kept half is on the side the plane's normal points to (VTK's
    // clipping planes, in world coordinates).
    vtkNew<vtkPlane> plane;
    plane->SetOrigin(options.clip_point.data());
    const double posterior[3] = {0, 1, 0}, inferior[3] = {0, 0, -1}, right[3] = {-1, 0, 0};
    plane->SetNormal(options.clip == ClipPlane::Coronal ? posterior
                     : options.clip == ClipPlane::Axial ? inferior
                                                        : right);
    scene.mapper->AddClippingPlane(plane);
  }
  scene.smallest_spacing = smallest_spacing;
  return scene;
}

void set_image_sample_distance(const Scene& scene, int viewport_height, double requested) {
  if (!scene.mapper) return;
  double distance = requested;
  if (!(distance > 0)) {
    // Rays no denser than the voxels appear on screen, at most 2 pixels apart.
    vtkCamera* camera = scene.renderer->GetActiveCamera();
    const double tangent = std::tan(0.5 * camera->GetViewAngle() * kPi / 180.0);
    const double pixels_per_mm = viewport_height / (2.0 * camera->GetDistance() * tangent);
    distance = std::clamp(scene.smallest_spacing * pixels_per_mm, 1.0, 2.0);
  }
  scene.mapper->SetImageSampleDistance(static_cast<float>(distance));
}

void render_scene(vtkRenderWindow* window, const Scene& scene) {
  if (auto* opengl = vtkOpenGLRenderWindow::SafeDownCast(window)) opengl->Initialize();
  if (scene.mapper && scene.mapper->IsRenderSupported(window, scene.volume->GetProperty()) == 0) {
    throw std::runtime_error(
        "VTK's GPU ray caster is not supported by this display's OpenGL (it needs OpenGL 3.2; Xvfb with Mesa "
        "llvmpipe provides it). Try iso_surface=true without a functional volume.");
  }
  window->Render();
}

void set_camera(vtkRenderer* renderer, const std::array<double, 6>& bounds, Camera preset, double azimuth,
                double elevation, double zoom) {
  // Direction of projection (camera -> focal point) and view up, in LPS.
  std::array<double, 3> projection{0, 1, 0}, up{0, 0, 1};  // anterior
  double extra_azimuth = 0, extra_elevation = 0;
  switch (preset) {
    case Camera::Anterior:
    case Camera::Custom: break;
    case Camera::Posterior: projection = {0, -1, 0}; break;
    case Camera::Left:
    case Camera::Lateral: projection = {-1, 0, 0}; break;
    case Camera::Right: projection = {1, 0, 0}; break;
    case Camera::Superior:
      projection = {0, 0, -1};
      up = {0, -1, 0};
      break;
    case Camera::Inferior:
      projection = {0, 0, 1};
      up = {0, -1, 0};
      break;
    case Camera::Oblique:
      extra_azimuth = 40;
      extra_elevation = 25;
      break;
  }
  const double centre[3] = {(bounds[0] + bounds[1]) / 2, (bounds[2] + bounds[3]) / 2, (bounds[4] + bounds[5]) / 2};
  vtkCamera* camera = renderer->GetActiveCamera();
  camera->SetFocalPoint(centre);
  camera->SetPosition(centre[0] - projection[0], centre[1] - projection[1], centre[2] - projection[2]);
  camera->SetViewUp(up[0], up[1], up[2]);
  camera->SetViewAngle(30);
  double fit[6];
  std::copy(bounds.begin(), bounds.end(), fit);
  renderer->ResetCamera(fit);
  camera->Azimuth(extra_azimuth + azimuth);
  camera->Elevation(extra_elevation + elevation);
  camera->OrthogonalizeViewUp();
  // ResetCamera fits the bounding sphere; fit the box's projection instead
  // (with a 6% margin), then apply the user's zoom.
  double view[3], view_up[3];
  camera->GetDirectionOfProjection(view);
  camera->GetViewUp(view_up);
  const double right[3] = {view[1] * view_up[2] - view[2] * view_up[1], view[2] * view_up[0] - view[0] * view_up[2],
                           view[0] * view_up[1] - view[1] * view_up[0]};
  double half_width = 0, half_height = 0;
  for (int corner = 0; corner < 8; ++corner) {
    double offset[3];
    for (int a = 0; a < 3; ++a) offset[a] = ((corner >> a) & 1 ? bounds[2 * a + 1] : bounds[2 * a]) - centre[a];
    half_width = std::max(half_width, std::abs(offset[0] * right[0] + offset[1] * right[1] + offset[2] * right[2]));
    half_height =
        std::max(half_height, std::abs(offset[0] * view_up[0] + offset[1] * view_up[1] + offset[2] * view_up[2]));
  }
  const double visible_half_height = camera->GetDistance() * std::tan(0.5 * camera->GetViewAngle() * kPi / 180.0);
  renderer->ComputeAspect();
  const double aspect = renderer->GetAspect()[0] / std::max(1e-9, renderer->GetAspect()[1]);
  double box_zoom = 1.0;
  if (half_width > 0 && half_height > 0) {
    box_zoom = std::min(visible_half_height / (1.06 * half_height), visible_half_height * aspect / (1.06 * half_width));
  }
  camera->Zoom(box_zoom * zoom);
  renderer->ResetCameraClippingRange(fit);
}

std::string orientation_letter(const std::array<double, 3>& direction) {
  int axis = 0;
  for (int a = 1; a < 3; ++a)
    if (std::abs(direction[a]) > std::abs(direction[axis])) axis = a;
  static const char* const positive[3] = {"L", "P", "S"};
  static const char* const negative[3] = {"R", "A", "I"};
  return direction[axis] >= 0 ? positive[axis] : negative[axis];
}

std::array<std::string, 2> view_orientation(vtkRenderer* renderer) {
  vtkCamera* camera = renderer->GetActiveCamera();
  double projection[3], up[3];
  camera->GetDirectionOfProjection(projection);
  camera->GetViewUp(up);
  const std::array<double, 3> right{projection[1] * up[2] - projection[2] * up[1],
                                    projection[2] * up[0] - projection[0] * up[2],
                                    projection[0] * up[1] - projection[1] * up[0]};
  return {orientation_letter(right), orientation_letter({up[0], up[1], up[2]})};
}

// ---------------------------------------------------------------------------
// Slice views

std::array<double, 3> hottest_point(const Volume& functional, const std::array<double, 6>& bounds) {
  const Geometry& g = functional.geometry;
  const double largest_spacing = *std::max_element(g.spacing.begin(), g.spacing.end());
  const std::vector<float> smoothed = gaussian_smooth(functional, std::max(3.0, 1.5 * largest_spacing));
  double peak = -std::numeric_limits<double>::infinity();
  std::array<std::size_t, 3> best{0, 0, 0};
  bool found = false;
  for (std::size_t k = 0; k < g.size[2]; ++k) {
    for (std::size_t j = 0; j < g.size[1]; ++j) {
      for (std::size_t i = 0; i < g.size[0]; ++i) {
        const double value = smoothed[g.linear_index(i, j, k)];
        if (value <= peak) continue;
        const auto p = g.index_to_point({double(i), double(j), double(k)});
        if (p[0] < bounds[0] || p[0] > bounds[1] || p[1] < bounds[2] || p[1] > bounds[3] || p[2] < bounds[4] ||
            p[2] > bounds[5]) {
          continue;
        }
        peak = value;
        best = {i, j, k};
        found = true;
      }
    }
  }
  if (!found) throw std::runtime_error("the functional volume does not overlap the anatomical volume");
  std::array<double, 3> centroid{0, 0, 0};
  double total = 0;
  for (long dk = -2; dk <= 2; ++dk)
    for (long dj = -2; dj <= 2; ++dj)
      for (long di = -2; di <= 2; ++di) {
        const long i = long(best[0]) + di, j = long(best[1]) + dj, k = long(best[2]) + dk;
        if (i < 0 || j < 0 || k < 0 || i >= long(g.size[0]) || j >= long(g.size[1]) || k >= long(g.size[2])) continue;
        const double w = smoothed[g.linear_index(std::size_t(i), std::size_t(j), std::size_t(k))] - 0.5 * peak;
        if (w <= 0) continue;
        centroid[0] += w * double(i);
        centroid[1] += w * double(j);
        centroid[2] += w * double(k);
        total += w;
      }
  if (total <= 0) return g.index_to_point({double(best[0]), double(best[1]), double(best[2])});
  return g.index_to_point({centroid[0] / total, centroid[1] / total, centroid[2] / total});
}

SliceView slice_view(const Geometry& reference, int size) {
  const std::array<double, 6> centres = world_bounds(reference);
  const double half_voxel = 0.5 * *std::max_element(reference.spacing.begin(), reference.spacing.end());
  SliceView view;
  double field_of_view = 0;
  for (int a = 0; a < 3; ++a) {
    view.centre[a] = 0.5 * (centres[2 * a] + centres[2 * a + 1]);
    field_of_view = std::max(field_of_view, centres[2 * a + 1] - centres[2 * a] + 2 * half_voxel);
  }
  view.size = size;
  view.mm_per_pixel = field_of_view / size;
  return view;
}

std::array<double, 2> panel_pixel(const SliceView& view, const PanelLayout& layout,
                                  const std::array<double, 3>& point) {
  const double column =
      (point[layout.column_axis] - view.centre[layout.column_axis]) / (layout.column_sign * view.mm_per_pixel) +
      view.size / 2.0 - 0.5;
  const double row = (point[layout.row_axis] - view.centre[layout.row_axis]) / (layout.row_sign * view.mm_per_pixel) +
                     view.size / 2.0 - 0.5;
  return {column, row};
}

void draw_orientation_letters(RgbImage& panel, const PanelLayout& layout, int font) {
  const int margin = font / 3 + 2;
  const std::array<double, 3> colour{1.0, 0.85, 0.2};
  const int w = panel.width, h = panel.height;
  draw_text(panel, layout.left, margin, h / 2, font, colour, TextAnchor::CentreLeft, true);
  draw_text(panel, layout.right, w - margin, h / 2, font, colour, TextAnchor::CentreRight, true);
  draw_text(panel, layout.top, w / 2, margin, font, colour, TextAnchor::TopCentre, true);
  draw_text(panel, layout.bottom, w / 2, h - margin, font, colour, TextAnchor::BottomCentre, true);
}

void draw_scale_bar(RgbImage& panel, const SliceView& view, double length_mm, int font) {
  while (length_mm / view.mm_per_pixel > 0.4 * panel.width && length_mm > 1) length_mm /= 2;
  const int length = static_cast<int>(std::lround(length_mm / view.mm_per_pixel));
  const int margin = font / 2 + 4;
  const int right = panel.width - margin, y = panel.height - margin - font / 2;
  const int thickness = std::max(2, font / 6);
  for (int t = 0; t < thickness; ++t) {
    for (int x = right - length; x <= right; ++x) {
      if (x >= 0 && y - t >= 0) std::fill_n(panel.at(x, y - t), 3, std::uint8_t{255});
    }
  }
  draw_text(panel, format_number(length_mm) + " mm", right - length / 2, y - thickness - 2, std::max(9, font * 4 / 5),
            {1, 1, 1}, TextAnchor::BottomCentre);
}

std::string format_number(double value) {
  char text[32];
  const double magnitude = std::abs(value);
  if (magnitude >= 1e5) {
    std::snprintf(text, sizeof text, "%.0fk", value / 1000);
  } else if (magnitude >= 100 || value == std::round(value)) {
    std::snprintf(text, sizeof text, "%.0f", value);
  } else if (magnitude >= 1) {
    std::snprintf(text, sizeof text, "%.1f", value);
  } else {
    std::snprintf(text, sizeof text, "%.2g", value);
  }
  return text;
}

}  // namespace fusionflow::viz
