// Colour (fusionflow/color.hpp, the color plugin, io.load_color,
// io.write_color) and 2D image output (io.write to PNG/JPEG), down to the
// colour fusion of examples/pipelines/fusion_2d_mri_pet_colour.json.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <fstream>

#include <fusionflow/color.hpp>
#include <fusionflow/executor.hpp>
#include <fusionflow/payload_types.hpp>
#include <fusionflow/pipeline.hpp>
#include <fusionflow/testing.hpp>
#include <itkImage.h>
#include <itkImageFileReader.h>
#include <itkRGBPixel.h>
#include <nlohmann/json.hpp>

#include "test_support.hpp"

namespace fusionflow {
namespace {
namespace fs = std::filesystem;
using testing::NodeHarness;

const NodeRegistry& bundled() { return testing::bundled_plugins(); }

Volume grey(std::size_t width, std::size_t height, const std::function<double(std::size_t, std::size_t)>& value) {
  Volume volume;
  volume.geometry.size = {width, height, 1};
  volume.voxels.resize(width * height);
  for (std::size_t y = 0; y < height; ++y) {
    for (std::size_t x = 0; x < width; ++x) volume.voxels[y * width + x] = static_cast<float>(value(x, y));
  }
  return volume;
}

class ColorTest : public ::testing::Test {
 protected:
  void SetUp() override { dir_ = testing::fresh_temp_directory("color"); }
  void TearDown() override { fs::remove_all(dir_); }
  fs::path dir_;
};

TEST_F(ColorTest, YcbcrIsBt601FullRangeAndComesBack) {
  const Ycbcr red = rgb_to_ycbcr(255, 0, 0, 255);
  EXPECT_NEAR(red.y, 76.245, 1e-9);
  EXPECT_NEAR(red.cb, 128 - 0.168736 * 255, 1e-9);
  EXPECT_NEAR(red.cr, 128 + 0.5 * 255, 1e-9);
  const Ycbcr white = rgb_to_ycbcr(255, 255, 255, 255);
  EXPECT_NEAR(white.y, 255, 1e-9);
  EXPECT_NEAR(white.cb, 128, 1e-9);
  EXPECT_NEAR(white.cr, 128, 1e-9);
  for (const auto& rgb : {std::array<double, 3>{255, 0, 0}, {12, 200, 37}, {0, 0, 255}, {255, 255, 0}}) {
    const auto back = ycbcr_to_rgb(rgb_to_ycbcr(rgb[0], rgb[1], rgb[2], 255), 255);
    for (int c = 0; c < 3; ++c) EXPECT_NEAR(back[c], rgb[c], 2e-3) << c;
  }
  EXPECT_DOUBLE_EQ(ycbcr_mid(65535), 32768);
}

TEST_F(ColorTest, TheNodesSplitAndJoinLumaAndChromaAndMapGreyThroughHot) {
  NodeHarness map(bundled(), "color.map");
  map.set_input("volume", grey(4, 1, [](std::size_t x, std::size_t) { return x / 3.0; }))
      .set_param("range", ParamValue(std::vector<double>{0, 1}))
      .run();
  const ColorVolume& hot = map.output<ColorVolume>("image");
  const std::array<std::array<float, 3>, 4> expected{{{0, 0, 0}, {255, 0, 0}, {255, 255, 0}, {255, 255, 255}}};
  for (std::size_t v = 0; v < 4; ++v) {
    for (std::size_t c = 0; c < 3; ++c) EXPECT_NEAR(hot.rgb[c][v], expected[v][c], 1e-3) << v << " " << c;
  }

  NodeHarness split(bundled(), "color.to_ycbcr");
  split.set_input("image", hot).run();
  EXPECT_FLOAT_EQ(split.output<Volume>("y").voxels[1], 76.245f);
  EXPECT_FLOAT_EQ(split.output<Volume>("cb").voxels[0], 128.f);
  EXPECT_EQ(split.output<Volume>("y").metadata.extra.at("color.max_value"), "255");

  NodeHarness join(bundled(), "color.from_ycbcr");
  join.set_input("y", split.output<Volume>("y"))
      .set_input("cb", split.output<Volume>("cb"))
      .set_input("cr", split.output<Volume>("cr"))
      .run();
  const ColorVolume& back = join.output<ColorVolume>("image");
  for (std::size_t v = 0; v < 4; ++v) {
    for (std::size_t c = 0; c < 3; ++c) EXPECT_NEAR(back.rgb[c][v], expected[v][c], 2e-3) << v << " " << c;
  }

  Volume smaller = split.output<Volume>("cb");
  smaller.geometry.size = {2, 2, 1};
  NodeHarness mismatched(bundled(), "color.from_ycbcr");
  mismatched.set_input("y", split.output<Volume>("y")).set_input("cb", smaller).set_input("cr", smaller);
  try {
    mismatched.run();
    FAIL() << "chroma on another grid was accepted";
  } catch (const std::invalid_argument& error) {
    EXPECT_NE(std::string(error.what()).find("'cb' is on another grid"), std::string::npos) << error.what();
  }
}

TEST_F(ColorTest, GreyPngsKeepTheirValuesAndScalingIsExplicit) {
  const Volume levels = grey(16, 16, [](std::size_t x, std::size_t y) { return double((x * 16 + y) % 256); });
  const auto write = [&](const Volume& volume, const std::string& file,
                         const std::vector<std::pair<std::string, ParamValue>>& params) {
    NodeHarness node(bundled(), "io.write");
    node.set_input("volume", volume).set_param("path", (dir_ / file).string());
    for (const auto& [name, value] : params) node.set_param(name, value);
    node.run();
    NodeHarness read(bundled(), "io.load_image");
    read.set_param("path", (dir_ / file).string()).run();
    return read.output<Volume>("volume");
  };
  EXPECT_EQ(write(levels, "levels.png", {}).voxels, levels.voxels);

  Volume wide = levels;
  for (float& value : wide.voxels) value *= 257;
  EXPECT_EQ(write(wide, "wide.png", {{"bits", ParamValue(std::int64_t{16})}}).voxels, wide.voxels);

  // [0, 2] onto 0..255: 0 stays exactly 0, 1 is 127.5 rounded up, 2 and more are 255.
  const Volume scaled = grey(4, 1, [](std::size_t x, std::size_t) { return std::vector<double>{0, 1, 2, 9}[x]; });
  EXPECT_EQ(write(scaled, "range.png",
                  {{"scaling", ParamValue(std::string("range"))}, {"range", ParamValue(std::vector<double>{0, 2})}})
                .voxels,
            (std::vector<float>{0, 128, 255, 255}));
  EXPECT_EQ(
      write(scaled, "window.png",
            {{"scaling", ParamValue(std::string("window"))}, {"window", ParamValue(4.0)}, {"level", ParamValue(2.0)}})
          .voxels,
      (std::vector<float>{0, 64, 128, 255}));

  NodeHarness jpeg(bundled(), "io.write");
  jpeg.set_input("volume", levels).set_param("path", (dir_ / "levels.jpg").string()).run();
  const std::string bytes = testing::read_file(dir_ / "levels.jpg");
  ASSERT_GT(bytes.size(), 100u);
  EXPECT_EQ(bytes.substr(0, 3), "\xFF\xD8\xFF") << "a JPEG starts with SOI";

  Volume volume = levels;
  volume.geometry.size = {4, 4, 16};
  NodeHarness three_d(bundled(), "io.write");
  three_d.set_input("volume", volume).set_param("path", (dir_ / "3d.png").string());
  EXPECT_THROW(three_d.run(), std::invalid_argument);
  NodeHarness deep_jpeg(bundled(), "io.write");
  deep_jpeg.set_input("volume", levels).set_param("path", (dir_ / "deep.jpg").string()).set_param("bits", 16);
  EXPECT_THROW(deep_jpeg.run(), std::invalid_argument);
  EXPECT_FALSE(fs::exists(dir_ / "3d.png"));
}

TEST_F(ColorTest, ColourPngsRoundTripThroughWriteColorAndLoadColor) {
  ColorVolume image;
  image.geometry.size = {3, 2, 1};
  image.rgb = {std::vector<float>{0, 255, 10, 20, 30, 40}, std::vector<float>{0, 0, 128, 1, 2, 3},
               std::vector<float>{0, 0, 255, 250, 251, 252}};
  NodeHarness write(bundled(), "io.write_color");
  write.set_input("image", image).set_param("path", (dir_ / "c.png").string()).run();
  NodeHarness read(bundled(), "io.load_color");
  read.set_param("path", (dir_ / "c.png").string()).run();
  const ColorVolume& back = read.output<ColorVolume>("image");
  EXPECT_EQ(back.geometry.size, image.geometry.size);
  EXPECT_EQ(back.rgb, image.rgb);
  EXPECT_EQ(back.max_value, 255.0);

  // A grey PNG reads as colour with R = G = B.
  NodeHarness grey_write(bundled(), "io.write");
  grey_write.set_input("volume", grey(2, 1, [](std::size_t x, std::size_t) { return 7.0 * x; }))
      .set_param("path", (dir_ / "g.png").string())
      .run();
  NodeHarness grey_read(bundled(), "io.load_color");
  grey_read.set_param("path", (dir_ / "g.png").string()).run();
  for (const auto& channel : grey_read.output<ColorVolume>("image").rgb) EXPECT_EQ(channel, (std::vector<float>{0, 7}));
}

TEST_F(ColorTest, A3dPetThroughAColourMapIsWrittenAsAnRgbVolumeWithItsGeometry) {
  Volume pet;
  pet.geometry.size = {4, 3, 2};
  pet.geometry.spacing = {2.0, 2.5, 3.0};
  pet.geometry.origin = {-10, 5, 40};
  for (std::size_t v = 0; v < 24; ++v) pet.voxels.push_back(float(v) / 23.0f);
  NodeHarness map(bundled(), "color.map");
  map.set_input("volume", pet).set_param("colormap", "rainbow").run();
  NodeHarness write(bundled(), "io.write_color");
  write.set_input("image", map.output<ColorVolume>("image"))
      .set_param("path", (dir_ / "pet_rgb.nii.gz").string())
      .run();

  using Image = itk::Image<itk::RGBPixel<std::uint8_t>, 3>;
  auto reader = itk::ImageFileReader<Image>::New();
  reader->SetFileName((dir_ / "pet_rgb.nii.gz").string());
  reader->Update();
  const Image* image = reader->GetOutput();
  EXPECT_EQ(image->GetLargestPossibleRegion().GetSize()[2], 2u);
  EXPECT_DOUBLE_EQ(image->GetSpacing()[1], 2.5);
  EXPECT_DOUBLE_EQ(image->GetOrigin()[2], 40.0);
  const auto first = image->GetPixel({{0, 0, 0}});
  const auto last = image->GetPixel({{3, 2, 1}});
  EXPECT_EQ(int(first[0]), 0);  // rainbow: blue at the low end ...
  EXPECT_EQ(int(first[2]), 255);
  EXPECT_EQ(int(last[0]), 255);  // ... red at the high end
  EXPECT_EQ(int(last[2]), 0);
}

TEST_F(ColorTest, ExtractSliceKeepsTheGeometryOfTheSlice) {
  Volume volume;
  volume.geometry.size = {2, 2, 3};
  volume.geometry.spacing = {0.5, 0.5, 2.0};
  volume.geometry.origin = {10, 20, 30};
  volume.geometry.direction = {1, 0, 0, 0, 0, -1, 0, 1, 0};  // columns: i along x, j along z, k along -y
  for (int n = 0; n < 12; ++n) volume.voxels.push_back(float(n));
  NodeHarness slice(bundled(), "resample.extract_slice");
  slice.set_input("volume", volume).set_param("index", 2).run();
  const Volume& out = slice.output<Volume>("volume");
  EXPECT_EQ(out.geometry.size, (std::array<std::size_t, 3>{2, 2, 1}));
  EXPECT_EQ(out.geometry.origin, (std::array<double, 3>{10, 16, 30}));
  EXPECT_EQ(out.voxels, (std::vector<float>{8, 9, 10, 11}));
  NodeHarness outside(bundled(), "resample.extract_slice");
  outside.set_input("volume", volume).set_param("index", 3);
  EXPECT_THROW(outside.run(), std::invalid_argument);
}

// The acceptance test of colour fusion: a colour PET slice and a grey MRI
// slice, through the example pipeline, give a colour PNG whose luma is the
// fused Y and whose chroma is the PET's wherever the MRI is 0.
TEST_F(ColorTest, AColourPetAndAGreyMriFuseIntoAColourPngWithThePetsChromaWhereTheMriIsZero) {
  constexpr std::size_t n = 64;
  // MRI: a bright disc on the left half, 0 elsewhere. PET: a hot blob on the right.
  const Volume mri = grey(n, n, [](std::size_t x, std::size_t y) {
    const double dx = double(x) - 20, dy = double(y) - 32;
    return dx * dx + dy * dy < 150 ? 180.0 + (x % 5) * 10 : 0.0;
  });
  const Volume activity = grey(n, n, [](std::size_t x, std::size_t y) {
    const double dx = double(x) - 40, dy = double(y) - 30;
    return std::exp(-(dx * dx + dy * dy) / 120.0);
  });
  NodeHarness write_mri(bundled(), "io.write");
  write_mri.set_input("volume", mri).set_param("path", (dir_ / "mri.png").string()).run();
  NodeHarness map(bundled(), "color.map");
  map.set_input("volume", activity).set_param("range", ParamValue(std::vector<double>{0, 1})).run();
  NodeHarness write_pet(bundled(), "io.write_color");
  write_pet.set_input("image", map.output<ColorVolume>("image")).set_param("path", (dir_ / "pet.png").string()).run();

  // The example pipeline, plus a writer of the fused luma (float, exact). Its figure node is
  // dropped: viz.* needs VTK, which the sanitized build leaves out; the viz tests draw it.
  auto pipeline = nlohmann::json::parse(
      testing::read_file(fs::path(FUSIONFLOW_SOURCE_DIR) / "examples/pipelines/fusion_2d_mri_pet_colour.json"));
  auto& nodes = pipeline["nodes"];
  const auto figure = std::find_if(nodes.begin(), nodes.end(), [](const nlohmann::json& node) {
    return node.at("type").get<std::string>() == "viz.fusion_figure";
  });
  ASSERT_NE(figure, nodes.end()) << "the example draws a figure";
  nodes.erase(figure);
  pipeline["nodes"].push_back({{"id", "write_fused_y"},
                               {"type", "io.write"},
                               {"inputs", {{"volume", "fused_y.volume"}}},
                               {"params", {{"path", "${out}/fused_y.nii"}}}});
  LoadOptions load;
  load.variable_overrides = {
      {"mri", (dir_ / "mri.png").string()}, {"pet", (dir_ / "pet.png").string()}, {"out", (dir_ / "out").string()}};
  LoadResult loaded = load_pipeline_text(pipeline.dump(), "colour-fusion", dir_, bundled(), load);
  ASSERT_TRUE(loaded.ok()) << loaded.diagnostics.at(0).message;
  const RunResult result = run_pipeline(*loaded.pipeline, bundled());
  ASSERT_TRUE(result.succeeded) << result.error;

  NodeHarness read_fused(bundled(), "io.load_color");
  read_fused.set_param("path", (dir_ / "out/fused.png").string()).run();
  const ColorVolume& fused = read_fused.output<ColorVolume>("image");
  NodeHarness read_pet(bundled(), "io.load_color");
  read_pet.set_param("path", (dir_ / "pet.png").string()).run();
  const ColorVolume& pet = read_pet.output<ColorVolume>("image");
  NodeHarness read_y(bundled(), "io.load_image");
  read_y.set_param("path", (dir_ / "out/fused_y.nii").string()).run();
  const Volume& fused_y = read_y.output<Volume>("volume");
  ASSERT_EQ(fused.geometry.size, (std::array<std::size_t, 3>{n, n, 1}));

  std::size_t chroma_checked = 0, luma_checked = 0, black_corners = 0;
  for (std::size_t v = 0; v < n * n; ++v) {
    const Ycbcr source = rgb_to_ycbcr(pet.rgb[0][v], pet.rgb[1][v], pet.rgb[2][v], 255);
    const Ycbcr out = rgb_to_ycbcr(fused.rgb[0][v], fused.rgb[1][v], fused.rgb[2][v], 255);
    // Where Y with the PET's chroma leaves the RGB cube the colour is clamped (hot colours lie
    // on its surface: G or B is 0, so any darker luma leaves it). Within 0.25 of the cube the
    // clamp moves a channel by at most 0.25 and rounding to 8 bits by 0.5: Y, Cb and Cr by at
    // most 0.75 (their coefficients' magnitudes sum to 1).
    const auto wanted = ycbcr_to_rgb({fused_y.voxels[v], source.cb, source.cr}, 255);
    const bool in_gamut = std::all_of(wanted.begin(), wanted.end(), [](double c) { return c >= -0.25 && c <= 255.25; });
    if (!in_gamut) continue;
    EXPECT_NEAR(out.y, fused_y.voxels[v], 0.76) << "luma at voxel " << v;
    ++luma_checked;
    if (mri.voxels[v] == 0) {
      EXPECT_NEAR(out.cb, source.cb, 0.76) << "Cb at voxel " << v;
      EXPECT_NEAR(out.cr, source.cr, 0.76) << "Cr at voxel " << v;
      ++chroma_checked;
    }
  }
  for (std::size_t v : {std::size_t{0}, n - 1, n * n - n, n * n - 1}) {
    black_corners += fused.rgb[0][v] == 0 && fused.rgb[1][v] == 0 && fused.rgb[2][v] == 0 ? 1 : 0;
  }
  EXPECT_GT(chroma_checked, n * n / 2);
  EXPECT_GT(luma_checked, n * n * 17 / 20);  // 90 % here; the rest are colours clamped to the cube
  EXPECT_EQ(black_corners, 4u) << "where both sources are 0 the fused image is exactly 0";
  // The PET's colour is there where the MRI is 0: the blob's centre is as hot as in the PET.
  const std::size_t centre = 30 * n + 40;
  EXPECT_GT(fused.rgb[0][centre], 200.f);
  EXPECT_NEAR(fused.rgb[0][centre], pet.rgb[0][centre], 2.f);
  EXPECT_TRUE(fs::exists(dir_ / "out/metrics.csv"));
}

}  // namespace
}  // namespace fusionflow
