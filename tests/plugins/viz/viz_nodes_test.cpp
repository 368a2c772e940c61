// viz.render3d, viz.overlay and viz.histogram on the digital head phantom,
// checked by pixels; and the display handling (a display, Xvfb started by the
// node, or a clear error) through the fusionflow program in child processes.
//
// Rendering nodes start Xvfb themselves when there is no display (the tests
// run the same with or without xvfb-run).
#include <gtest/gtest.h>
#include <tbb/task_arena.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <limits>
#include <regex>
#include <set>

#include "viz_test_support.hpp"

namespace fusionflow::viz_test {
namespace {
using testing::NodeHarness;

viz::RgbImage render(const Volume& volume, const Volume* functional, std::map<std::string, ParamValue> params,
                     const fs::path& path) {
  NodeHarness node(bundled(), "viz.render3d");
  node.set_input("volume", volume);
  if (functional != nullptr) node.set_input("functional", *functional);
  node.set_param("path", path.string());
  for (auto& [name, value] : params) node.set_param(name, value);
  node.run();
  return viz::read_png(path);
}

// --- viz.render3d -------------------------------------------------------------

// gaussian_smooth (the 3D renderings' and the hottest-point search's smoothing)
// against the clamped convolution written out voxel by voxel, on an
// anisotropic grid whose lines are shorter than the kernel on one axis: the
// same bytes on one thread and on two.
TEST(GaussianSmooth, IsTheClampedSeparableConvolutionOnAnyThreadCount) {
  Volume volume;
  volume.geometry.size = {23, 7, 11};
  volume.geometry.spacing = {1.0, 0.5, 2.0};
  volume.voxels.resize(volume.geometry.voxel_count());
  for (std::size_t v = 0; v < volume.voxels.size(); ++v) volume.voxels[v] = float((v * 7919) % 101) - 50.0f;
  volume.voxels[5] = std::numeric_limits<float>::quiet_NaN();  // counts as 0
  const double sigma_mm = 1.5;
  std::vector<float> expected(volume.voxels.size());
  for (std::size_t v = 0; v < expected.size(); ++v)
    expected[v] = std::isfinite(volume.voxels[v]) ? volume.voxels[v] : 0;
  const auto& size = volume.geometry.size;
  for (int axis = 0; axis < 3; ++axis) {
    const double sigma = sigma_mm / volume.geometry.spacing[axis];
    const int radius = int(std::ceil(3 * sigma));
    std::vector<double> kernel;
    double sum = 0;
    for (int t = -radius; t <= radius; ++t) sum += kernel.emplace_back(std::exp(-0.5 * t * t / (sigma * sigma)));
    for (double& k : kernel) k /= sum;
    const std::vector<float> before = expected;
    for (std::size_t z = 0; z < size[2]; ++z)
      for (std::size_t y = 0; y < size[1]; ++y)
        for (std::size_t x = 0; x < size[0]; ++x) {
          double value = 0;
          for (int t = -radius; t <= radius; ++t) {
            std::array<long, 3> at{long(x), long(y), long(z)};
            at[axis] = std::clamp<long>(at[axis] + t, 0, long(size[axis]) - 1);
            value += kernel[std::size_t(t + radius)] *
                     before[(std::size_t(at[2]) * size[1] + std::size_t(at[1])) * size[0] + std::size_t(at[0])];
          }
          expected[(z * size[1] + y) * size[0] + x] = float(value);
        }
  }
  for (int threads : {1, 2}) {
    tbb::task_arena arena(threads);
    const std::vector<float> smoothed = arena.execute([&] { return viz::gaussian_smooth(volume, sigma_mm); });
    ASSERT_EQ(smoothed.size(), expected.size());
    for (std::size_t v = 0; v < expected.size(); ++v) {
      ASSERT_EQ(smoothed[v], expected[v]) << "voxel " << v << " on " << threads << " threads";
    }
  }
}

TEST(Render3d, WritesANonBlankPictureOfTheRequestedSize) {
  const fs::path dir = scratch_dir("render-size");
  const auto image = render(phantom().ct, &phantom().pet, {{"width", std::int64_t{320}}, {"height", std::int64_t{200}}},
                            dir / "ct_pet.png");
  EXPECT_EQ(image.width, 320);
  EXPECT_EQ(image.height, 200);
  const PictureStats stats = picture_stats(image);
  EXPECT_GT(stats.foreground, 0.15) << "the head should fill a good part of the picture";
  EXPECT_GT(stats.grey_std, 10.0);
  // No temporary files left next to the result.
  for (const auto& entry : fs::directory_iterator(dir)) EXPECT_EQ(entry.path().filename(), "ct_pet.png");
}

// The cut removes the anterior half (coronal) on the anterior side of the
// point: a point in front of the head removes nothing, one behind it
// everything, one through the middle opens the head.
TEST(Render3d, CoronalCutRemovesTheAnteriorSideOfItsPoint) {
  const fs::path dir = scratch_dir("render-clip");
  const Geometry& g = phantom().ct.geometry;
  const auto bounds = viz::world_bounds(g);
  std::map<std::string, ParamValue> params{{"width", std::int64_t{200}},
                                           {"height", std::int64_t{200}},
                                           {"camera", std::string("anterior")},
                                           {"annotate", false}};
  const auto whole = render(phantom().ct, nullptr, params, dir / "whole.png");
  params["clip"] = std::string("coronal");
  auto cut_at = [&](double y, const std::string& name) {
    params["clip_point_mm"] = std::vector<double>{0.0, y, 0.0};
    return render(phantom().ct, nullptr, params, dir / name);
  };
  const auto in_front = cut_at(bounds[2] - 20.0, "front.png");  // LPS: anterior is -y
  const auto behind = cut_at(bounds[3] + 20.0, "behind.png");
  const auto middle = cut_at(0.5 * (bounds[2] + bounds[3]), "middle.png");
  double front_difference = 0;
  for (std::size_t n = 0; n < whole.pixels.size(); ++n)
    front_difference += std::abs(whole.pixels[n] - in_front.pixels[n]);
  EXPECT_LT(front_difference / double(whole.pixels.size()), 1.0) << "a cut in front of the head changed the picture";
  EXPECT_GT(picture_stats(whole).foreground, 0.15);
  EXPECT_LT(picture_stats(behind).foreground, 0.01) << "a cut behind the head left something";
  double middle_difference = 0;
  for (std::size_t n = 0; n < whole.pixels.size(); ++n)
    middle_difference += std::abs(whole.pixels[n] - middle.pixels[n]);
  EXPECT_GT(middle_difference / double(whole.pixels.size()), 5.0) << "the cut through the middle shows nothing new";
  EXPECT_GT(picture_stats(middle).foreground, 0.15);
}

TEST(Render3d, CameraPresetsGiveDifferentPictures) {
  const fs::path dir = scratch_dir("render-cameras");
  std::map<std::string, viz::RgbImage> images;
  for (const char* camera : {"anterior", "left", "superior", "oblique"}) {
    images[camera] = render(phantom().ct, nullptr,
                            {{"camera", std::string(camera)},
                             {"width", std::int64_t{160}},
                             {"height", std::int64_t{160}},
                             {"annotate", false}},
                            dir / (std::string(camera) + ".png"));
    EXPECT_GT(picture_stats(images[camera]).foreground, 0.15) << camera;
  }
  for (auto a = images.begin(); a != images.end(); ++a)
    for (auto b = std::next(a); b != images.end(); ++b)
      EXPECT_GT(mean_difference(a->second, b->second), 4.0) << a->first << " vs " << b->first;
  // azimuth 90 from the front looks from the patient's left, like `left`.
  const auto turned = render(phantom().ct, nullptr,
                             {{"camera", std::string("anterior")},
                              {"azimuth", 90.0},
                              {"width", std::int64_t{160}},
                              {"height", std::int64_t{160}},
                              {"annotate", false}},
                             dir / "turned.png");
  EXPECT_LT(mean_difference(turned, images["left"]), 0.5 * mean_difference(images["anterior"], images["left"]));
}

// Centroid (x, y) of the lesion's yellow-white pixels in a PET rendering.
std::array<double, 2> bright_centroid(const viz::RgbImage& image, std::size_t& count) {
  double sx = 0, sy = 0;
  count = 0;
  for (int y = 0; y < image.height; ++y)
    for (int x = 0; x < image.width; ++x) {
      const std::uint8_t* p = image.at(x, y);
      if (p[0] > 200 && p[1] > 170) {
        sx += x;
        sy += y;
        ++count;
      }
    }
  return {count ? sx / double(count) : -1, count ? sy / double(count) : -1};
}

// The lesion is in the right frontal lobe, high (LPS x -30, z 28): seen from
// the front it must be left of the centre and above it; from behind, right.
TEST(Render3d, LesionIsOnThePatientsRightWhichIsImageLeftFromTheFront) {
  const fs::path dir = scratch_dir("render-orientation");
  ASSERT_LT(lesion_centre()[0], -10.0);
  ASSERT_GT(lesion_centre()[2], 10.0);
  const std::map<std::string, ParamValue> common{
      {"width", std::int64_t{240}}, {"height", std::int64_t{240}}, {"annotate", false}};
  auto front_params = common, back_params = common;
  front_params["camera"] = std::string("anterior");
  back_params["camera"] = std::string("posterior");
  std::size_t front_count = 0, back_count = 0;
  const auto front = bright_centroid(render(phantom().pet, nullptr, front_params, dir / "front.png"), front_count);
  const auto back = bright_centroid(render(phantom().pet, nullptr, back_params, dir / "back.png"), back_count);
  ASSERT_GT(front_count, 5u);
  ASSERT_GT(back_count, 5u);
  EXPECT_LT(front[0], 120 - 15) << "anterior view: patient right is on the image left";
  EXPECT_GT(back[0], 120 + 15) << "posterior view: patient right is on the image right";
  EXPECT_LT(front[1], 120 - 10) << "superior is up";
  EXPECT_LT(back[1], 120 - 10);
}

// A volume stored with a flipped i axis (direction diag(-1, 1, 1), voxels
// reversed) is the same object in LPS: the same picture. Ignoring the
// direction would mirror it.
TEST(Render3d, HonoursTheDirectionMatrix) {
  const fs::path dir = scratch_dir("render-direction");
  const Volume& pet = phantom().pet;
  Volume flipped = pet;
  const auto& size = pet.geometry.size;
  flipped.geometry.direction = {-1, 0, 0, 0, 1, 0, 0, 0, 1};
  flipped.geometry.origin[0] = pet.geometry.origin[0] + double(size[0] - 1) * pet.geometry.spacing[0];
  for (std::size_t k = 0; k < size[2]; ++k)
    for (std::size_t j = 0; j < size[1]; ++j)
      for (std::size_t i = 0; i < size[0]; ++i)
        flipped.voxels[pet.geometry.linear_index(i, j, k)] = pet.at(size[0] - 1 - i, j, k);
  Volume mirrored = flipped;  // the flipped voxels without the direction: a mirror image
  mirrored.geometry = pet.geometry;
  const std::map<std::string, ParamValue> params{{"width", std::int64_t{200}},
                                                 {"height", std::int64_t{200}},
                                                 {"annotate", false},
                                                 {"camera", std::string("anterior")}};
  const auto original = render(pet, nullptr, params, dir / "original.png");
  const auto same = render(flipped, nullptr, params, dir / "flipped.png");
  const auto mirror = render(mirrored, nullptr, params, dir / "mirrored.png");
  const double mirror_difference = mean_difference(original, mirror);
  EXPECT_GT(mirror_difference, 1.0);
  EXPECT_LT(mean_difference(original, same), 0.25 * mirror_difference);
}

TEST(Render3d, IsoSurfaceWithFunctionalVolume) {
  const fs::path dir = scratch_dir("render-iso");
  const auto image = render(phantom().ct, &phantom().pet,
                            {{"iso_surface", true},
                             {"iso_value", 300.0},
                             {"iso_opacity", 0.4},
                             {"width", std::int64_t{200}},
                             {"height", std::int64_t{160}},
                             {"camera", std::string("oblique")}},
                            dir / "iso.png");
  EXPECT_EQ(image.width, 200);
  EXPECT_EQ(image.height, 160);
  EXPECT_GT(picture_stats(image).foreground, 0.15);
}

TEST(Render3d, RejectsUnknownBackgroundBeforeRendering) {
  NodeHarness node(bundled(), "viz.render3d");
  node.set_input("volume", phantom().ct).set_param("path", (scratch_dir("render-bad") / "x.png").string());
  node.set_param("background", "no-such-colour");
  try {
    node.run();
    FAIL() << "accepted an unknown colour";
  } catch (const std::invalid_argument& error) {
    EXPECT_NE(std::string(error.what()).find("no-such-colour"), std::string::npos);
  }
}

// --- viz.overlay ---------------------------------------------------------------

struct OverlayRun {
  viz::RgbImage image;
  Table points;
};

OverlayRun overlay(std::map<std::string, ParamValue> params, const fs::path& path) {
  NodeHarness node(bundled(), "viz.overlay");
  node.set_input("anatomical", phantom().ct).set_input("functional", phantom().pet);
  node.set_param("path", path.string());
  for (auto& [name, value] : params) node.set_param(name, value);
  node.run();
  const bool montage = params.count("layout") == 0 || std::get<std::string>(params["layout"]) == "montage";
  return {montage ? viz::read_png(path) : viz::RgbImage(), node.output<Table>("points")};
}

double cell(const Table& table, const std::string& column, std::size_t row) {
  return std::get<double>(table.rows.at(row).at(table.column_index(column)));
}

// Expected pixel of an LPS point in panel `p` (0 axial, 1 coronal, 2
// sagittal), from the documented layout: square panels of N pixels showing
// the anatomy's largest extent (voxel edges), centred on it; axial columns
// run to patient left (+x) and rows to posterior (+y); coronal columns +x,
// rows inferior (-z); sagittal columns +y, rows -z. Pixel centres are at
// integer coordinates.
std::array<double, 2> expected_pixel(const std::array<double, 3>& point, int panel, int size) {
  const Geometry& g = phantom().ct.geometry;  // identity direction
  std::array<double, 3> centre{}, extent{};
  for (int a = 0; a < 3; ++a) {
    centre[a] = g.origin[a] + 0.5 * double(g.size[a] - 1) * g.spacing[a];
    extent[a] = double(g.size[a]) * g.spacing[a];
  }
  const double mm = *std::max_element(extent.begin(), extent.end()) / size;
  const int column_axis[3] = {0, 0, 1}, row_axis[3] = {1, 2, 2};
  const double row_sign[3] = {+1, -1, -1};
  return {(point[column_axis[panel]] - centre[column_axis[panel]]) / mm + size / 2.0 - 0.5,
          row_sign[panel] * (point[row_axis[panel]] - centre[row_axis[panel]]) / mm + size / 2.0 - 0.5};
}

// The issue's check: the PET lesion appears where it is. Coloured pixels are
// found by comparing with the same view at zero opacity (grey only); only the
// lesion is above 70% of the PET maximum.
TEST(Overlay, PetLesionAppearsAtItsExpectedPixelInEveryPanel) {
  const fs::path dir = scratch_dir("overlay-lesion");
  const int size = 240;
  std::map<std::string, ParamValue> params{
      {"panel_size", std::int64_t{size}}, {"crosshair", false}, {"threshold", 0.7}, {"opacity", 0.8}};
  const OverlayRun coloured = overlay(params, dir / "coloured.png");
  params["opacity"] = 0.0;
  const OverlayRun grey = overlay(params, dir / "grey.png");

  // The default point is the hottest region: the lesion centre.
  const auto truth = lesion_centre();
  ASSERT_EQ(coloured.points.rows.size(), 3u);
  const std::array<double, 3> chosen{cell(coloured.points, "x_mm", 0), cell(coloured.points, "y_mm", 0),
                                     cell(coloured.points, "z_mm", 0)};
  const double distance = std::hypot(chosen[0] - truth[0], chosen[1] - truth[1], chosen[2] - truth[2]);
  EXPECT_LT(distance, 4.0) << "chosen point " << chosen[0] << ", " << chosen[1] << ", " << chosen[2];

  const int bar = std::max(96, size / 4);
  ASSERT_EQ(coloured.image.width, 3 * size + bar);
  ASSERT_EQ(coloured.image.height, size);
  for (int panel = 0; panel < 3; ++panel) {
    double sx = 0, sy = 0, total = 0;
    for (int y = 0; y < size; ++y)
      for (int x = 0; x < size; ++x) {
        const std::uint8_t* a = coloured.image.at(panel * size + x, y);
        const std::uint8_t* b = grey.image.at(panel * size + x, y);
        const double difference = std::abs(a[0] - b[0]) + std::abs(a[1] - b[1]) + std::abs(a[2] - b[2]);
        if (difference < 30) continue;  // text is identical in both; colour differs
        sx += difference * x;
        sy += difference * y;
        total += difference;
      }
    ASSERT_GT(total, 0) << "no coloured pixels in panel " << panel;
    const auto expected = expected_pixel(truth, panel, size);
    EXPECT_NEAR(sx / total, expected[0], 3.0) << "panel " << panel << " column";
    EXPECT_NEAR(sy / total, expected[1], 3.0) << "panel " << panel << " row";
    // The table reports the chosen point's pixel in the montage.
    const auto reported = expected_pixel(chosen, panel, size);
    EXPECT_NEAR(cell(coloured.points, "column", std::size_t(panel)), panel * size + reported[0], 0.01);
    EXPECT_NEAR(cell(coloured.points, "row", std::size_t(panel)), reported[1], 0.01);
  }
  // The colour bar shows the hot map: its top is near white, and it is labelled.
  int bright = 0;
  for (int y = 0; y < size; ++y)
    for (int x = 3 * size; x < 3 * size + bar; ++x) {
      const std::uint8_t* p = coloured.image.at(x, y);
      if (p[0] > 230 && p[1] > 200) ++bright;
    }
  EXPECT_GT(bright, 50);
}

// --- viz.fusion_figure and viz.registration_check ---------------------------------

// The figures' layout (figures.cpp): a label column of max(120, 3/5 panel),
// three panels per row (one for a 2D image), a header of 2 fonts and a
// caption of 3.5 fonts (two lines, when they fit), font = clamp(panel / 18,
// 10, 36).
struct FigureLayout {
  int size, label, font, header, caption;
  explicit FigureLayout(int panel)
      : size(panel), label(std::max(120, panel * 3 / 5)), font(std::clamp(panel / 18, 10, 36)) {
    header = font * 2;
    caption = font * 3 + font / 2;
  }
  int left(int plane) const { return label + plane * size; }
  int top(int row) const { return header + row * size; }
};

double panel_spread(const viz::RgbImage& image, const FigureLayout& layout, int row, int plane) {
  double sum = 0, squares = 0, n = 0;
  for (int y = 0; y < layout.size; ++y)
    for (int x = 0; x < layout.size; ++x) {
      const std::uint8_t* p = image.at(layout.left(plane) + x, layout.top(row) + y);
      const double v = (p[0] + p[1] + p[2]) / 3.0;
      sum += v, squares += v * v, n += 1;
    }
  return std::sqrt(squares / n - (sum / n) * (sum / n));
}

TEST(FusionFigure, OneRowPerImageThroughTheHottestPetRegionWithTheLesionWhereItIs) {
  const fs::path path = scratch_dir("fusion-figure") / "figure.png";
  const int size = 180;
  Volume fused = phantom().t1;
  fused.metadata.modality = "FUSED";
  fused.metadata.quantity = "fused (test rule)";
  NodeHarness node(bundled(), "viz.fusion_figure");
  node.set_input("fused", fused)
      .add_input("sources", phantom().ct)
      .add_input("sources", phantom().pet)
      .set_param("panel_size", size)
      .set_param("path", path.string());
  node.run();
  const viz::RgbImage image = viz::read_png(path);
  const FigureLayout layout(size);
  ASSERT_EQ(image.width, layout.label + 3 * size);
  ASSERT_EQ(image.height, layout.header + 3 * size + layout.caption);
  for (int row = 0; row < 3; ++row)
    for (int plane = 0; plane < 3; ++plane) EXPECT_GT(panel_spread(image, layout, row, plane), 10.0) << row << plane;
  // The PET row (the second) in the hot map: its brightest pixels are the
  // lesion, where the documented layout puts it (viz.overlay's).
  const auto truth = lesion_centre();
  for (int plane = 0; plane < 3; ++plane) {
    double sx = 0, sy = 0, total = 0;
    for (int y = 0; y < size - 3 * layout.font; ++y)  // above the scale bar (white, in the axial panel)
      for (int x = 0; x < size; ++x) {
        const std::uint8_t* p = image.at(layout.left(plane) + x, layout.top(1) + y);
        if (p[0] > 240 && p[1] > 240 && p[2] > 120) sx += x, sy += y, total += 1;  // white end of the hot map
      }
    ASSERT_GT(total, 0) << "no lesion in plane " << plane;
    const auto expected = expected_pixel(truth, plane, size);
    EXPECT_NEAR(sx / total, expected[0], 4.0) << "plane " << plane;
    EXPECT_NEAR(sy / total, expected[1], 4.0) << "plane " << plane;
  }
  bool says_point = false;
  for (const auto& [level, message] : node.log())
    says_point = says_point || message.find("hottest PT") != std::string::npos;
  EXPECT_TRUE(says_point);
}

// A colour image whose channels are linear in LPS x and y, so that trilinear
// sampling reproduces them exactly: channel c at (x, y) is max_value * (base
// + x_slope * (x - centre_x) / extent + y_slope * (y - centre_y) / extent),
// centre and extent those of the grid's voxel centres and edges.
struct ColourRamp {
  std::array<double, 3> base, x_slope, y_slope;
  double max_value;
  double centre_x = 0, centre_y = 0, extent = 1;

  double value(std::size_t c, double x, double y) const {
    return max_value * (base[c] + x_slope[c] * (x - centre_x) / extent + y_slope[c] * (y - centre_y) / extent);
  }
  // The byte a figure should show: [0, max_value] onto 0..255.
  double byte(std::size_t c, double x, double y) const { return 255.0 * value(c, x, y) / max_value; }

  ColorVolume image(const Geometry& grid) {
    centre_x = grid.origin[0] + 0.5 * double(grid.size[0] - 1) * grid.spacing[0];
    centre_y = grid.origin[1] + 0.5 * double(grid.size[1] - 1) * grid.spacing[1];
    extent = std::max(double(grid.size[0]) * grid.spacing[0], double(grid.size[1]) * grid.spacing[1]);
    ColorVolume result;
    result.geometry = grid;
    result.max_value = max_value;
    for (auto& channel : result.rgb) channel.resize(grid.voxel_count());
    for (std::size_t k = 0; k < grid.size[2]; ++k)
      for (std::size_t j = 0; j < grid.size[1]; ++j)
        for (std::size_t i = 0; i < grid.size[0]; ++i) {
          const auto p = grid.index_to_point({double(i), double(j), double(k)});
          for (std::size_t c = 0; c < 3; ++c)
            result.rgb[c][grid.linear_index(i, j, k)] = static_cast<float>(value(c, p[0], p[1]));
        }
    return result;
  }
};

// The LPS x, y of a pixel centre of an axial panel of `grid` (identity
// direction): the inverse of expected_pixel's layout.
std::array<double, 2> axial_pixel_world(const Geometry& grid, int size, int column, int row) {
  double extent = 0;
  for (int a = 0; a < 3; ++a) extent = std::max(extent, double(grid.size[a]) * grid.spacing[a]);
  const double mm = extent / size;
  const double cx = grid.origin[0] + 0.5 * double(grid.size[0] - 1) * grid.spacing[0];
  const double cy = grid.origin[1] + 0.5 * double(grid.size[1] - 1) * grid.spacing[1];
  return {cx + ((column + 0.5) - size / 2.0) * mm, cy + ((row + 0.5) - size / 2.0) * mm};
}

// The axial panel of `row` shows the ramp at and around the centre point:
// each channel within rounding of the ramp's value there.
void expect_ramp_in_axial_panel(const viz::RgbImage& image, const FigureLayout& layout, int row, const Geometry& grid,
                                const ColourRamp& ramp) {
  const int half = layout.size / 2;
  for (int dy : {-half / 3, -1, 0, half / 3})
    for (int dx : {-half / 3, -1, 0, half / 3}) {
      const auto world = axial_pixel_world(grid, layout.size, half + dx, half + dy);
      const std::uint8_t* p = image.at(layout.left(0) + half + dx, layout.top(row) + half + dy);
      for (std::size_t c = 0; c < 3; ++c)
        EXPECT_NEAR(p[c], ramp.byte(c, world[0], world[1]), 1.0)
            << "row " << row << " pixel (" << half + dx << ", " << half + dy << ") channel " << c;
    }
}

bool any_coloured_pixel(const viz::RgbImage& image, const FigureLayout& layout, int row, int planes) {
  for (int y = 0; y < layout.size; ++y)
    for (int x = 0; x < planes * layout.size; ++x) {
      const std::uint8_t* p = image.at(layout.left(0) + x, layout.top(row) + y);
      if (p[0] != p[1]) return true;
    }
  return false;
}

// The centre of the panel is grey (the orientation letters at its edges are
// not).
bool centre_is_grey(const viz::RgbImage& image, const FigureLayout& layout, int row, int plane) {
  for (int y = layout.size / 4; y < 3 * layout.size / 4; ++y)
    for (int x = layout.size / 4; x < 3 * layout.size / 4; ++x) {
      const std::uint8_t* p = image.at(layout.left(plane) + x, layout.top(row) + y);
      if (p[0] != p[1] || p[1] != p[2]) return false;
    }
  return true;
}

Volume figure_fused() {
  Volume fused = phantom().t1;
  fused.metadata.modality = "FUSED";
  fused.metadata.quantity = "fused (test rule)";
  return fused;
}

TEST(FusionFigure, AColourResultIsOneMoreRowInItsOwnColours) {
  const fs::path dir = scratch_dir("fusion-figure-colour");
  const int size = 180;
  const Geometry& grid = phantom().ct.geometry;
  ColourRamp ramp{{0.5, 0.25, 0.5}, {0.4, 0.0, -0.2}, {0.1, 0.2, 0.4}, 65535.0};
  const ColorVolume colour_result = ramp.image(grid);
  auto figure = [&](const ColorVolume* colour_fused, const fs::path& path) {
    NodeHarness node(bundled(), "viz.fusion_figure");
    node.set_input("fused", figure_fused())
        .add_input("sources", phantom().ct)
        .set_param("point_mode", "centre")
        .set_param("panel_size", size)
        .set_param("path", path.string());
    if (colour_fused != nullptr) node.set_input("color_fused", *colour_fused);
    node.run();
    return viz::read_png(path);
  };
  const viz::RgbImage grey = figure(nullptr, dir / "grey.png");
  const viz::RgbImage colour = figure(&colour_result, dir / "colour.png");
  const FigureLayout layout(size);
  EXPECT_EQ(colour.width, grey.width);
  ASSERT_EQ(colour.width, layout.label + 3 * size);
  EXPECT_EQ(colour.height, grey.height + size) << "one more row";
  ASSERT_EQ(colour.height, layout.header + 3 * size + layout.caption);
  // The rows above are the figure without the colour result.
  for (int y = 0; y < layout.top(2); ++y)
    for (int x = 0; x < colour.width; ++x)
      ASSERT_TRUE(std::equal(colour.at(x, y), colour.at(x, y) + 3, grey.at(x, y))) << "pixel " << x << ", " << y;
  // The last row is in colour, the ramp's where it should be.
  EXPECT_TRUE(any_coloured_pixel(colour, layout, 2, 3));
  expect_ramp_in_axial_panel(colour, layout, 2, grid, ramp);
}

TEST(FusionFigure, RowsAreGreySourcesColourSourcesFusedAndTheColourResult) {
  const fs::path path = scratch_dir("fusion-figure-colour-rows") / "figure.png";
  const int size = 160;
  const Geometry& grid = phantom().ct.geometry;
  ColourRamp source_ramp{{0.6, 0.3, 0.2}, {-0.3, 0.4, 0.0}, {0.0, 0.2, 0.3}, 255.0};
  ColourRamp result_ramp{{0.3, 0.6, 0.5}, {0.2, 0.0, 0.4}, {-0.4, 0.3, 0.0}, 255.0};
  const ColorVolume colour_source = source_ramp.image(grid);
  const ColorVolume colour_result = result_ramp.image(grid);
  NodeHarness node(bundled(), "viz.fusion_figure");
  node.set_input("fused", figure_fused())
      .add_input("sources", phantom().ct)
      .add_input("color_sources", colour_source)
      .set_input("color_fused", colour_result)
      .set_param("point_mode", "centre")
      .set_param("panel_size", size)
      .set_param("path", path.string());
  node.run();
  const viz::RgbImage image = viz::read_png(path);
  const FigureLayout layout(size);
  ASSERT_EQ(image.width, layout.label + 3 * size);
  ASSERT_EQ(image.height, layout.header + 4 * size + layout.caption);
  for (int plane = 0; plane < 3; ++plane) {
    EXPECT_TRUE(centre_is_grey(image, layout, 0, plane)) << "CT, plane " << plane;
    EXPECT_TRUE(centre_is_grey(image, layout, 2, plane)) << "fused, plane " << plane;
  }
  expect_ramp_in_axial_panel(image, layout, 1, grid, source_ramp);
  expect_ramp_in_axial_panel(image, layout, 3, grid, result_ramp);
}

// A 2D image (one slice): one panel per row, the slice as it lies (columns
// along x, rows along y), with the colour rows too.
TEST(FusionFigure, A2dImageIsOneColumnOfItsOneSlice) {
  const fs::path path = scratch_dir("fusion-figure-2d") / "figure.png";
  const int size = 160;
  Geometry grid;
  grid.size = {96, 80, 1};
  Volume mri;
  mri.geometry = grid;
  mri.metadata.modality = "MR";
  mri.voxels.resize(grid.voxel_count());
  // A dim ramp with a bright rectangle, x in [10, 30), y in [15, 45).
  for (std::size_t j = 0; j < grid.size[1]; ++j)
    for (std::size_t i = 0; i < grid.size[0]; ++i)
      mri.voxels[grid.linear_index(i, j, 0)] = (i >= 10 && i < 30 && j >= 15 && j < 45) ? 2000.0f : 100.0f + float(i);
  Volume fused = mri;
  fused.metadata.modality = "FUSED";
  ColourRamp source_ramp{{0.6, 0.3, 0.2}, {-0.3, 0.4, 0.0}, {0.0, 0.2, 0.3}, 255.0};
  ColourRamp result_ramp{{0.3, 0.6, 0.5}, {0.2, 0.0, 0.4}, {-0.4, 0.3, 0.0}, 255.0};
  NodeHarness node(bundled(), "viz.fusion_figure");
  node.set_input("fused", fused)
      .add_input("sources", mri)
      .add_input("color_sources", source_ramp.image(grid))
      .set_input("color_fused", result_ramp.image(grid))
      .set_param("point_mm", std::vector<double>{0.0, 0.0, 50.0})  // off the slice: not used
      .set_param("panel_size", size)
      .set_param("path", path.string());
  node.run();
  const viz::RgbImage image = viz::read_png(path);
  const FigureLayout layout(size);
  ASSERT_EQ(image.width, layout.label + size) << "one column";
  // The narrow caption may wrap: a whole number of caption lines, at least two.
  const int caption = image.height - layout.header - 4 * size;
  const int lines = (caption - layout.font / 2) / layout.font - 1;
  EXPECT_GE(lines, 2);
  EXPECT_EQ(caption, layout.font * (lines + 1) + layout.font / 2);
  for (int row = 0; row < 4; ++row) EXPECT_GT(panel_spread(image, layout, row, 0), 10.0) << "row " << row;
  // The bright rectangle where it is (white: the top of the MR row's range).
  double sx = 0, sy = 0, total = 0;
  for (int y = 0; y < size - 3 * layout.font; ++y)  // above the scale bar (white too)
    for (int x = 0; x < size; ++x) {
      const std::uint8_t* p = image.at(layout.left(0) + x, layout.top(0) + y);
      if (p[0] > 240 && p[1] > 240 && p[2] > 240) sx += x, sy += y, total += 1;
    }
  ASSERT_GT(total, 0);
  const double mm = 96.0 / size;
  EXPECT_NEAR(sx / total, (19.5 - 47.5) / mm + size / 2.0 - 0.5, 2.0);
  EXPECT_NEAR(sy / total, (29.5 - 39.5) / mm + size / 2.0 - 0.5, 2.0);
  expect_ramp_in_axial_panel(image, layout, 1, grid, source_ramp);
  expect_ramp_in_axial_panel(image, layout, 3, grid, result_ramp);
  bool says_2d = false, says_point_unused = false;
  for (const auto& [level, message] : node.log()) {
    says_2d = says_2d || message.find("one slice of a 2D image written") != std::string::npos;
    says_point_unused = says_point_unused || message.find("point_mm is not used") != std::string::npos;
  }
  EXPECT_TRUE(says_2d);
  EXPECT_TRUE(says_point_unused);
}

TEST(FusionFigure, RefusesAColourInputThatDoesNotFillItsGridNamingIt) {
  const fs::path path = scratch_dir("fusion-figure-colour-bad") / "figure.png";
  const Geometry& grid = phantom().ct.geometry;
  ColourRamp ramp{{0.5, 0.5, 0.5}, {0.2, 0.0, 0.0}, {0.0, 0.2, 0.0}, 255.0};
  const ColorVolume good = ramp.image(grid);
  auto message = [&](const ColorVolume* second_source, const ColorVolume* result) {
    NodeHarness node(bundled(), "viz.fusion_figure");
    node.set_input("fused", figure_fused())
        .add_input("sources", phantom().ct)
        .add_input("color_sources", good)
        .set_param("path", path.string());
    if (second_source != nullptr) node.add_input("color_sources", *second_source);
    if (result != nullptr) node.set_input("color_fused", *result);
    try {
      node.run();
    } catch (const std::invalid_argument& error) {
      return std::string(error.what());
    }
    return std::string("no error");
  };
  ColorVolume short_green = good;
  short_green.rgb[1].pop_back();
  const std::string channel = message(&short_green, nullptr);
  EXPECT_NE(channel.find("'color_sources' (item 2 of 2)"), std::string::npos) << channel;
  EXPECT_NE(channel.find("green channel"), std::string::npos) << channel;
  ColorVolume no_range = good;
  no_range.max_value = 0;
  const std::string range = message(nullptr, &no_range);
  EXPECT_NE(range.find("'color_fused'"), std::string::npos) << range;
  EXPECT_NE(range.find("max_value"), std::string::npos) << range;
  EXPECT_EQ(message(nullptr, &good), "no error");
}

TEST(RegistrationCheck, TheEdgesOfTheMovingImageFollowItBeforeAndSitOnTheFixedImageAfter) {
  const fs::path path = scratch_dir("registration-check") / "check.png";
  const int size = 200;
  Volume moved = phantom().ct;
  moved.geometry.origin[0] += 24.0;  // 24 mm to the patient's left: image right in every panel but sagittal
  NodeHarness node(bundled(), "viz.registration_check");
  node.set_input("fixed", phantom().ct)
      .set_input("moving", moved)
      .set_input("registered", phantom().ct)
      .set_param("panel_size", size)
      .set_param("path", path.string());
  node.run();
  const viz::RgbImage image = viz::read_png(path);
  const FigureLayout layout(size);
  ASSERT_EQ(image.width, layout.label + 3 * size);
  ASSERT_EQ(image.height, layout.header + 2 * size + layout.caption);
  // Mean column of the green edge pixels in the axial panel, per row.
  auto edge_column = [&](int row) {
    double sx = 0, total = 0;
    for (int y = 0; y < size; ++y)
      for (int x = 0; x < size; ++x) {
        const std::uint8_t* p = image.at(layout.left(0) + x, layout.top(row) + y);
        if (p[0] == 60 && p[1] == 255 && p[2] == 60) sx += x, total += 1;
      }
    EXPECT_GT(total, 50) << "row " << row;
    return sx / std::max(total, 1.0);
  };
  const Geometry& g = phantom().ct.geometry;
  double extent = 0;
  for (int a = 0; a < 3; ++a) extent = std::max(extent, double(g.size[a]) * g.spacing[a]);
  const double shift_pixels = 24.0 / (extent / size);
  EXPECT_NEAR(edge_column(0) - edge_column(1), shift_pixels, 2.0);
}

TEST(Overlay, PlanesLayoutWritesThreeFilesThroughAGivenPoint) {
  const fs::path dir = scratch_dir("overlay-planes");
  const int size = 128;
  const OverlayRun run = overlay({{"layout", std::string("planes")},
                                  {"panel_size", std::int64_t{size}},
                                  {"point_mm", std::vector<double>{10.0, -5.0, 20.0}}},
                                 dir / "fusion.png");
  const int bar = std::max(96, size / 4);
  for (const char* plane : {"axial", "coronal", "sagittal"}) {
    const fs::path file = dir / ("fusion_" + std::string(plane) + ".png");
    ASSERT_TRUE(fs::exists(file)) << file;
    const auto image = viz::read_png(file);
    EXPECT_EQ(image.width, size + bar);
    EXPECT_EQ(image.height, size);
    EXPECT_GT(picture_stats(image).grey_std, 10.0) << plane;
  }
  EXPECT_FALSE(fs::exists(dir / "fusion.png"));
  ASSERT_EQ(run.points.rows.size(), 3u);
  EXPECT_EQ(std::get<std::string>(run.points.rows[0][run.points.column_index("point_source")]), "given");
  for (int panel = 0; panel < 3; ++panel) {
    const auto expected = expected_pixel({10.0, -5.0, 20.0}, panel, size);
    EXPECT_NEAR(cell(run.points, "column", std::size_t(panel)), expected[0], 0.01);
    EXPECT_NEAR(cell(run.points, "row", std::size_t(panel)), expected[1], 0.01);
  }
}

TEST(Overlay, RefusesAPointWithTwoCoordinates) {
  NodeHarness node(bundled(), "viz.overlay");
  node.set_input("anatomical", phantom().ct).set_input("functional", phantom().pet);
  node.set_param("path", (scratch_dir("overlay-bad") / "x.png").string());
  node.set_param("point_mm", std::vector<double>{1.0, 2.0});
  EXPECT_THROW(node.run(), std::invalid_argument);
}

// --- viz.histogram ---------------------------------------------------------------

TEST(Histogram, CountsSumToTheVoxelCountOfEachVolume) {
  const fs::path dir = scratch_dir("histogram");
  Volume with_nan = phantom().t1;
  with_nan.voxels[0] = NAN;
  with_nan.voxels[1] = INFINITY;
  NodeHarness node(bundled(), "viz.histogram");
  node.add_input("volumes", phantom().ct).add_input("volumes", with_nan).add_input("volumes", phantom().pet);
  node.set_param("labels", "CT, T1, PET").set_param("bins", 64).set_param("width", 640).set_param("height", 480);
  node.set_param("path", (dir / "h.png").string()).set_param("csv_path", (dir / "h.csv").string());
  node.run();
  const Table& counts = node.output<Table>("counts");
  std::map<std::string, double> sums;
  for (std::size_t r = 0; r < counts.rows.size(); ++r) {
    sums[std::get<std::string>(counts.rows[r][counts.column_index("label")])] += cell(counts, "count", r);
  }
  EXPECT_EQ(sums["CT"], double(phantom().ct.voxels.size()));
  EXPECT_EQ(sums["T1"], double(with_nan.voxels.size() - 2));  // non-finite voxels are not counted
  EXPECT_EQ(sums["PET"], double(phantom().pet.voxels.size()));
  EXPECT_EQ(counts.rows.size(), 3u * 64u);
  // The CSV holds the same table.
  EXPECT_EQ(read_text(dir / "h.csv"), counts.to_csv());
  const auto image = viz::read_png(dir / "h.png");
  EXPECT_EQ(image.width, 640);
  EXPECT_EQ(image.height, 480);
  EXPECT_GT(picture_stats(image).foreground, 0.02);
  // One line per volume (tab10 blue, red, green), drawn as a curve across its
  // chart: its colour appears in many image columns (a chart laid out wrongly
  // draws a few vertical strokes).
  std::set<int> blue, red, green;
  for (int y = 0; y < image.height; ++y)
    for (int x = 0; x < image.width; ++x) {
      const std::uint8_t* p = image.at(x, y);
      if (p[2] > 140 && p[0] < 90) blue.insert(x);
      if (p[0] > 170 && p[1] < 90 && p[2] < 90) red.insert(x);
      if (p[1] > 120 && p[0] < 100 && p[2] < 100) green.insert(x);
    }
  EXPECT_GT(blue.size(), 640u / 5);
  EXPECT_GT(red.size(), 640u / 5);
  EXPECT_GT(green.size(), 640u / 5);
}

TEST(Histogram, ExplicitRangeSharesBinsAndClampsOutliersIntoTheEdgeBins) {
  Volume volume;
  volume.geometry.size = {6, 1, 1};
  volume.voxels = {-5.0f, 0.0f, 0.4f, 0.6f, 0.99f, 7.0f};
  volume.metadata = {"CT", "HU", "", "", "", {}};
  NodeHarness node(bundled(), "viz.histogram");
  node.add_input("volumes", volume).add_input("volumes", volume);
  const fs::path dir = scratch_dir("histogram-range");
  node.set_param("bins", 2).set_param("range", std::vector<double>{0.0, 1.0}).set_param("log_y", ParamValue(false));
  node.set_param("width", 200).set_param("height", 150).set_param("path", (dir / "h.png").string());
  node.run();
  const Table& counts = node.output<Table>("counts");
  ASSERT_EQ(counts.rows.size(), 4u);
  EXPECT_EQ(cell(counts, "count", 0), 3.0);  // -5 (clamped), 0, 0.4
  EXPECT_EQ(cell(counts, "count", 1), 3.0);  // 0.6, 0.99, 7 (clamped)
  EXPECT_EQ(cell(counts, "lower", 1), 0.5);
  EXPECT_EQ(std::get<std::string>(counts.rows[0][counts.column_index("label")]), "CT");  // modality by default
  EXPECT_FALSE(fs::exists(dir / "h.csv"));
}

TEST(Histogram, RefusesLabelsThatDoNotMatchTheVolumes) {
  NodeHarness node(bundled(), "viz.histogram");
  node.add_input("volumes", phantom().ct).set_param("labels", "CT, PET");
  node.set_param("path", (scratch_dir("histogram-bad") / "h.png").string());
  EXPECT_THROW(node.run(), std::invalid_argument);
}

// --- display handling, through the fusionflow program ------------------------------

fs::path write_pipeline(const fs::path& dir, const std::string& node_type, const std::string& params) {
  std::string inputs = R"({"volume": "volume.volume"})";
  if (node_type == "viz.overlay") inputs = R"({"anatomical": "volume.volume", "functional": "volume.volume"})";
  if (node_type == "viz.histogram") inputs = R"({"volumes": ["volume.volume"]})";
  const fs::path path = dir / "pipeline.json";
  std::ofstream(path) << R"({"format_version": 1, "nodes": [
    {"id": "volume", "type": "core.synthetic_volume", "params": {"size": [24, 24, 24], "modality": "CT"}},
    {"id": "view", "type": ")"
                      << node_type << R"(", "inputs": )" << inputs << R"(, "params": )" << params << "}]}";
  return path;
}

// No DISPLAY and no Xvfb on PATH: the node fails with the message that says
// how to get a display, and the program exits normally with 1 (a failed run),
// not by a signal (VTK's abort).
TEST(Display, WithoutDisplayOrXvfbRenderingFailsWithAClearMessage) {
  const fs::path dir = scratch_dir("display-none");
  const fs::path empty = dir / "empty-path";
  fs::create_directories(empty);
  const fs::path pipeline = write_pipeline(dir, "viz.render3d", R"({"path": ")" + (dir / "r.png").string() + R"("})");
  const Child child = spawn({FUSIONFLOW_EXE, "run", pipeline.string(), "--no-progress"},
                            {{"DISPLAY", ""}, {"PATH", empty.string()}}, dir);
  ASSERT_GT(child.pid, 0);
  const int status = wait_for(child, std::chrono::seconds(60));
  ASSERT_TRUE(WIFEXITED(status)) << "killed by signal " << (WIFSIGNALED(status) ? WTERMSIG(status) : 0);
  EXPECT_EQ(WEXITSTATUS(status), 1);
  const std::string output = read_text(child.err) + read_text(child.out);
  EXPECT_NE(output.find(viz::kNoDisplayMessage), std::string::npos) << output;
  EXPECT_NE(output.find("DISPLAY is not set"), std::string::npos) << output;
  EXPECT_FALSE(fs::exists(dir / "r.png"));
}

TEST(Display, UnreachableDisplayWithoutXvfbAlsoFailsWithTheMessage) {
  const fs::path dir = scratch_dir("display-bad");
  const fs::path empty = dir / "empty-path";
  fs::create_directories(empty);
  const fs::path pipeline = write_pipeline(dir, "viz.histogram", R"({"path": ")" + (dir / "h.png").string() + R"("})");
  const Child child = spawn({FUSIONFLOW_EXE, "run", pipeline.string(), "--no-progress"},
                            {{"DISPLAY", ":4711"}, {"PATH", empty.string()}}, dir);
  const int status = wait_for(child, std::chrono::seconds(60));
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 1);
  const std::string output = read_text(child.err) + read_text(child.out);
  EXPECT_NE(output.find(viz::kNoDisplayMessage), std::string::npos) << output;
  EXPECT_NE(output.find("cannot connect to X display ':4711'"), std::string::npos) << output;
}

// No DISPLAY but Xvfb installed: the node starts Xvfb, renders, and Xvfb is
// gone when the program has exited.
TEST(Display, WithoutDisplayTheNodeStartsXvfbAndStopsItAtExit) {
  const fs::path dir = scratch_dir("display-xvfb");
  const fs::path pipeline = write_pipeline(
      dir, "viz.render3d", R"({"width": 96, "height": 64, "path": ")" + (dir / "r.png").string() + R"("})");
  const Child child = spawn({FUSIONFLOW_EXE, "--log-level", "debug", "run", pipeline.string(), "--no-progress"},
                            {{"DISPLAY", ""}, {"PATH", "/usr/bin:/bin"}}, dir);
  const int status = wait_for(child, std::chrono::seconds(120));
  const std::string output = read_text(child.err) + read_text(child.out);
  ASSERT_TRUE(WIFEXITED(status)) << output;
  ASSERT_EQ(WEXITSTATUS(status), 0) << output;
  const auto image = viz::read_png(dir / "r.png");
  EXPECT_EQ(image.width, 96);
  EXPECT_EQ(image.height, 64);
  std::smatch match;
  ASSERT_TRUE(std::regex_search(output, match, std::regex(R"(started Xvfb on :(\d+) \(pid (\d+))"))) << output;
  const pid_t xvfb = static_cast<pid_t>(std::stol(match[2].str()));
  EXPECT_NE(::kill(xvfb, 0), 0) << "Xvfb (pid " << xvfb << ") still runs after the program exited";
  EXPECT_FALSE(fs::exists("/tmp/.X" + match[1].str() + "-lock"));
}

// The overlay draws its slices and text itself (FreeType, no OpenGL): it works
// with no display and no Xvfb at all.
TEST(Display, OverlayNeedsNoDisplay) {
  const fs::path dir = scratch_dir("display-overlay");
  const fs::path empty = dir / "empty-path";
  fs::create_directories(empty);
  const fs::path pipeline =
      write_pipeline(dir, "viz.overlay", R"({"panel_size": 96, "path": ")" + (dir / "o.png").string() + R"("})");
  const Child child = spawn({FUSIONFLOW_EXE, "run", pipeline.string(), "--no-progress"},
                            {{"DISPLAY", ""}, {"PATH", empty.string()}}, dir);
  const int status = wait_for(child, std::chrono::seconds(60));
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0) << read_text(child.err);
  EXPECT_EQ(viz::read_png(dir / "o.png").height, 96);
}

}  // namespace
}  // namespace fusionflow::viz_test
