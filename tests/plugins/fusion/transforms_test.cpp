// encode.* / decode.latent / normalize.intensity: perfect reconstruction for
// every encoder and grid size, level geometry, hand-computed filter responses,
// thread-count determinism, cancellation and errors.
#include "fusion_test_support.hpp"

#include <cfloat>

namespace fusionflow::fusion_test {
namespace {

struct EncoderCase {
  const char* type;
  const char* param;
  std::int64_t value;
};

// Readable names in test listings (and ctest names).
void PrintTo(const EncoderCase& encoder, std::ostream* out) {
  *out << encoder.type << " " << encoder.param << "=" << encoder.value;
}

class PerfectReconstruction : public ::testing::TestWithParam<std::tuple<EncoderCase, std::array<std::size_t, 3>>> {};

TEST_P(PerfectReconstruction, DecodeOfEncodeReturnsTheVolumeToFloatPrecision) {
  const auto [encoder, size] = GetParam();
  const Volume input = textured_volume(size, 7);
  const Latent latent = encode(encoder.type, input, 2, encoder.param, encoder.value);
  const Volume output = decode(latent, 2);
  ASSERT_EQ(output.voxels.size(), input.voxels.size());
  // Values are in [0, 1]; each level adds at most about one rounding error.
  const double tolerance = 4.0 * static_cast<double>(latent.levels.size()) * FLT_EPSILON;
  EXPECT_LE(max_abs_difference(output.voxels, input.voxels), tolerance) << encoder.type;
  EXPECT_EQ(output.geometry.size, input.geometry.size);
  EXPECT_EQ(output.geometry.spacing, input.geometry.spacing);
  EXPECT_EQ(output.geometry.origin, input.geometry.origin);
  EXPECT_EQ(output.geometry.direction, input.geometry.direction);
  EXPECT_EQ(output.metadata.modality, "CT");
  EXPECT_EQ(output.metadata.extra.at("note"), "kept");
  // The levels carry information: dropping the finest detail changes the result
  // (a single voxel has no detail at all).
  if (input.voxels.size() == 1) return;
  Latent without_detail = latent;
  std::fill(without_detail.levels[0].data.begin(), without_detail.levels[0].data.end(), 0.0f);
  EXPECT_GT(max_abs_difference(decode(without_detail).voxels, input.voxels), 1e-3);
}

std::string case_name(const ::testing::TestParamInfo<PerfectReconstruction::ParamType>& case_info) {
  const EncoderCase& encoder = std::get<0>(case_info.param);
  const std::array<std::size_t, 3>& size = std::get<1>(case_info.param);
  const std::string name = std::string(encoder.type).substr(7) + "_" + encoder.param + std::to_string(encoder.value);
  return name + "_" + std::to_string(size[0]) + "x" + std::to_string(size[1]) + "x" + std::to_string(size[2]);
}

INSTANTIATE_TEST_SUITE_P(
    AllEncodersAndOddSizes, PerfectReconstruction,
    ::testing::Combine(::testing::Values(EncoderCase{"encode.laplacian_pyramid", "levels", 4},
                                         EncoderCase{"encode.laplacian_pyramid", "levels", 7},
                                         EncoderCase{"encode.atrous_wavelet", "levels", 3},
                                         EncoderCase{"encode.guided_filter", "base_radius", 2}),
                       ::testing::Values(std::array<std::size_t, 3>{33, 47, 20}, std::array<std::size_t, 3>{1, 1, 1},
                                         std::array<std::size_t, 3>{2, 3, 5}, std::array<std::size_t, 3>{16, 16, 16},
                                         std::array<std::size_t, 3>{9, 1, 31})),
    case_name);

TEST(LaplacianPyramid, LevelsHalveTheGridWithPhysicallyConsistentGeometry) {
  const Volume input = textured_volume({33, 47, 20}, 1);
  const Latent latent = encode("encode.laplacian_pyramid", input, 1, "levels", 4);
  EXPECT_EQ(latent.kind, "laplacian_pyramid");
  ASSERT_EQ(latent.levels.size(), 5u);
  const std::array<std::array<std::size_t, 3>, 5> sizes{{{33, 47, 20}, {17, 24, 10}, {9, 12, 5}, {5, 6, 3}, {3, 3, 2}}};
  for (std::size_t l = 0; l < 5; ++l) {
    const LatentLevel& level = latent.levels[l];
    EXPECT_EQ(level.geometry.size, sizes[l]) << "level " << l;
    EXPECT_EQ(level.name, l < 4 ? "detail_" + std::to_string(l) : std::string("base"));
    EXPECT_EQ(level.role, l < 4 ? "detail" : "base");
    EXPECT_EQ(level.data.size(), level.voxel_count());
    const double factor = double(1u << l);
    for (int axis = 0; axis < 3; ++axis)
      EXPECT_DOUBLE_EQ(level.geometry.spacing[axis], input.geometry.spacing[axis] * factor);
    // Coarse voxel (i, j, k) lies on fine voxel (2^l i, 2^l j, 2^l k).
    const auto coarse = level.geometry.index_to_point({2.0, 1.0, 1.0});
    const auto fine = input.geometry.index_to_point({2.0 * factor, factor, factor});
    for (int axis = 0; axis < 3; ++axis) EXPECT_NEAR(coarse[axis], fine[axis], 1e-9);
    EXPECT_EQ(level.geometry.direction, input.geometry.direction);
  }
}

TEST(LaplacianPyramid, ConstantVolumeHasNoDetailAndItsValueAsBase) {
  const Volume input = make_volume({13, 8, 5}, [](std::size_t, std::size_t, std::size_t) { return 0.625f; });
  const Latent latent = encode("encode.laplacian_pyramid", input, 1, "levels", 3);
  for (std::size_t l = 0; l + 1 < latent.levels.size(); ++l) {
    for (float v : latent.levels[l].data) ASSERT_NEAR(v, 0.0f, 1e-6f) << "level " << l;
  }
  for (float v : latent.levels.back().data) ASSERT_NEAR(v, 0.625f, 1e-6f);
}

TEST(LaplacianPyramid, ReduceUsesTheFiveTapBinomialKernel) {
  // A unit impulse at fine (4, 4, 4): the base after one REDUCE is the
  // separable kernel [1 4 6 4 1]/16 sampled at even offsets.
  const Volume input = make_volume(
      {9, 9, 9}, [](std::size_t i, std::size_t j, std::size_t k) { return i == 4 && j == 4 && k == 4 ? 1.0f : 0.0f; });
  const Latent latent = encode("encode.laplacian_pyramid", input, 1, "levels", 1);
  const LatentLevel& base = latent.levels[1];
  ASSERT_EQ(base.geometry.size, (std::array<std::size_t, 3>{5, 5, 5}));
  auto at = [&](std::size_t i, std::size_t j, std::size_t k) { return base.data[base.geometry.linear_index(i, j, k)]; };
  EXPECT_FLOAT_EQ(at(2, 2, 2), (6.0f / 16) * (6.0f / 16) * (6.0f / 16));
  EXPECT_FLOAT_EQ(at(1, 2, 2), (1.0f / 16) * (6.0f / 16) * (6.0f / 16));
  EXPECT_FLOAT_EQ(at(1, 1, 2), (1.0f / 16) * (1.0f / 16) * (6.0f / 16));
  EXPECT_FLOAT_EQ(at(0, 2, 2), 0.0f);
}

TEST(AtrousWavelet, LevelsStayOnTheSourceGridAndUseTheB3Kernel) {
  const Volume input = make_volume({11, 11, 11}, [](std::size_t i, std::size_t j, std::size_t k) {
    return i == 5 && j == 5 && k == 5 ? 1.0f : 0.0f;
  });
  const Latent latent = encode("encode.atrous_wavelet", input, 1, "levels", 2);
  ASSERT_EQ(latent.levels.size(), 3u);
  for (const LatentLevel& level : latent.levels) {
    EXPECT_TRUE(level.geometry.same_grid(input.geometry));
  }
  const std::size_t centre = input.geometry.linear_index(5, 5, 5);
  const float c1 = (6.0f / 16) * (6.0f / 16) * (6.0f / 16);
  EXPECT_FLOAT_EQ(latent.levels[0].data[centre], 1.0f - c1);
  // Away from the impulse the finest detail is minus the first smoothing's spread.
  EXPECT_FLOAT_EQ(latent.levels[0].data[input.geometry.linear_index(5, 5, 6)],
                  -(6.0f / 16) * (6.0f / 16) * (4.0f / 16));
  double sum = 0.0;
  for (const LatentLevel& level : latent.levels) sum += level.data[centre];
  EXPECT_NEAR(sum, 1.0, 1e-6);
}

TEST(GuidedFilterDecomposition, BaseIsTheBoxMeanAndDetailTheRest) {
  const Volume input = make_volume(
      {5, 5, 5}, [](std::size_t i, std::size_t j, std::size_t k) { return i == 2 && j == 2 && k == 2 ? 1.0f : 0.0f; });
  const Latent latent = encode("encode.guided_filter", input, 1, "base_radius", 1);
  ASSERT_EQ(latent.levels.size(), 2u);
  EXPECT_EQ(latent.levels[0].role, "detail");
  EXPECT_EQ(latent.levels[1].role, "base");
  const LatentLevel& base = latent.levels[1];
  EXPECT_FLOAT_EQ(base.data[input.geometry.linear_index(2, 2, 2)], 1.0f / 27);
  EXPECT_FLOAT_EQ(base.data[input.geometry.linear_index(1, 1, 1)], 1.0f / 27);
  EXPECT_FLOAT_EQ(base.data[input.geometry.linear_index(0, 0, 0)], 0.0f);  // window 0..1: misses the impulse
  EXPECT_FLOAT_EQ(base.data[input.geometry.linear_index(1, 0, 0)], 0.0f);
  EXPECT_FLOAT_EQ(latent.levels[0].data[input.geometry.linear_index(2, 2, 2)], 26.0f / 27);
}

TEST(Encoders, ResultsAreBitIdenticalForAnyThreadCount) {
  const Volume input = textured_volume({37, 29, 23}, 3);
  for (const EncoderCase& encoder :
       {EncoderCase{"encode.laplacian_pyramid", "levels", 4}, EncoderCase{"encode.atrous_wavelet", "levels", 3},
        EncoderCase{"encode.guided_filter", "base_radius", 4}}) {
    const Latent one = encode(encoder.type, input, 1, encoder.param, encoder.value);
    for (int threads : {2, 3, 8}) {
      const Latent many = encode(encoder.type, input, threads, encoder.param, encoder.value);
      ASSERT_EQ(many.levels.size(), one.levels.size());
      for (std::size_t l = 0; l < one.levels.size(); ++l) {
        EXPECT_EQ(many.levels[l].data, one.levels[l].data) << encoder.type << " level " << l << " threads " << threads;
      }
      EXPECT_EQ(decode(many, threads).voxels, decode(one, 1).voxels);
    }
  }
}

TEST(Encoders, ReportProgressAndStopWhenCancelled) {
  const Volume input = textured_volume({16, 16, 16}, 2);
  for (const char* type : {"encode.laplacian_pyramid", "encode.atrous_wavelet", "encode.guided_filter"}) {
    NodeHarness node(registry(), type);
    node.set_input("volume", input);
    node.run();
    ASSERT_FALSE(node.progress_reports().empty()) << type;
    EXPECT_EQ(node.progress_reports().back(), 1.0) << type;
    EXPECT_TRUE(std::is_sorted(node.progress_reports().begin(), node.progress_reports().end())) << type;

    NodeHarness cancelled(registry(), type);
    cancelled.set_input("volume", input).set_threads(2).cancel();
    EXPECT_THROW(cancelled.run(), Cancelled) << type;
  }
}

TEST(DecodeLatent, RefusesUnknownKindsAndLevelsThatDoNotFit) {
  const Latent latent = encode("encode.laplacian_pyramid", textured_volume({12, 10, 8}, 4), 1, "levels", 2);
  auto message_of = [](const Latent& broken) {
    try {
      decode(broken);
    } catch (const std::invalid_argument& error) {
      return std::string(error.what());
    }
    return std::string("(no error)");
  };
  Latent unknown = latent;
  unknown.kind = "vq_vae";
  EXPECT_NE(message_of(unknown).find("kind 'vq_vae'"), std::string::npos) << message_of(unknown);

  Latent wrong_size = latent;
  wrong_size.levels[1].geometry.size = {5, 5, 4};
  wrong_size.levels[1].data.resize(100);
  const std::string message = message_of(wrong_size);
  EXPECT_NE(message.find("level 1 ('detail_1')"), std::string::npos) << message;
  EXPECT_NE(message.find("expected 6x5x4"), std::string::npos) << message;

  Latent no_base = latent;
  no_base.levels.pop_back();
  EXPECT_NE(message_of(no_base).find("base"), std::string::npos) << message_of(no_base);
}

// --- normalize.intensity --------------------------------------------------------

Volume row_volume(std::vector<float> values, const std::string& units) {
  Volume volume;
  volume.geometry.size = {values.size(), 1, 1};
  volume.voxels = std::move(values);
  volume.metadata.modality = "XX";
  volume.metadata.units = units;
  return volume;
}

Volume normalize(const Volume& input, const std::vector<std::pair<std::string, ParamValue>>& params) {
  NodeHarness node(registry(), "normalize.intensity");
  node.set_input("volume", input);
  for (const auto& [name, value] : params) node.set_param(name, value);
  node.run();
  return node.output<Volume>("volume");
}

TEST(NormalizeIntensity, CtWindowMapsLevelMinusHalfWidthToZeroAndPlusToOne) {
  const Volume out = normalize(row_volume({-1000, -160, 40, 240, 3000, NAN}, "HU"),
                               {{"mode", std::string("ct_window")}, {"window_level", 40.0}, {"window_width", 400.0}});
  EXPECT_EQ(out.voxels, (std::vector<float>{0.0f, 0.0f, 0.5f, 1.0f, 1.0f, 0.0f}));
  EXPECT_EQ(out.metadata.units, "normalized");
  EXPECT_EQ(out.metadata.extra.at("normalize_mode"), "ct_window");
  EXPECT_EQ(std::stod(out.metadata.extra.at("normalize_low")), -160.0);
  EXPECT_EQ(std::stod(out.metadata.extra.at("normalize_high")), 240.0);
  EXPECT_EQ(out.metadata.extra.at("normalize_input_units"), "HU");

  const Volume unclamped =
      normalize(row_volume({-1000, 640}, "HU"), {{"mode", std::string("ct_window")}, {"clamp", false}});
  EXPECT_FLOAT_EQ(unclamped.voxels[0], (-1000.0f + 160.0f) / 400.0f);
  EXPECT_FLOAT_EQ(unclamped.voxels[1], 2.0f);
}

TEST(NormalizeIntensity, SuvRangeConvertsActivityWithTheRecordedFactor) {
  Volume pet = row_volume({0, 5000, 10000, 20000}, "Bq/mL");
  pet.metadata.extra["suvbw_per_bq_per_ml"] = "0.001";
  const Volume out = normalize(pet, {{"mode", std::string("suv_range")}, {"suv_min", 0.0}, {"suv_max", 10.0}});
  EXPECT_EQ(out.voxels, (std::vector<float>{0.0f, 0.5f, 1.0f, 1.0f}));
  const Volume in_suv = normalize(row_volume({2.5, 7.5}, "SUVbw"),
                                  {{"mode", std::string("suv_range")}, {"suv_min", 2.5}, {"suv_max", 12.5}});
  EXPECT_EQ(in_suv.voxels, (std::vector<float>{0.0f, 0.5f}));
  const Volume by_param =
      normalize(row_volume({3000}, "Bq/mL"), {{"mode", std::string("suv_range")}, {"suv_per_unit", 0.002}});
  EXPECT_FLOAT_EQ(by_param.voxels[0], 0.6f);
  try {
    normalize(row_volume({1, 2}, "Bq/mL"), {{"mode", std::string("suv_range")}});
    FAIL() << "accepted activity without an SUV factor";
  } catch (const std::invalid_argument& error) {
    EXPECT_NE(std::string(error.what()).find("suv_per_unit"), std::string::npos) << error.what();
  }
}

TEST(NormalizeIntensity, PercentilesZScoreAndMinMax) {
  std::vector<float> ramp;
  for (int v = 0; v <= 100; ++v) ramp.push_back(static_cast<float>(v));
  // 101 values 0..100: the p-th percentile is p (linear interpolation).
  const Volume p =
      normalize(row_volume(ramp, "a.u."),
                {{"mode", std::string("percentile")}, {"percentile_low", 10.0}, {"percentile_high", 90.0}});
  EXPECT_FLOAT_EQ(p.voxels[50], 0.5f);
  EXPECT_FLOAT_EQ(p.voxels[30], 0.25f);
  EXPECT_EQ(p.voxels[5], 0.0f);
  EXPECT_EQ(p.voxels[95], 1.0f);
  const Volume half =
      normalize(row_volume({0, 1, 2, 3}, "a.u."),
                {{"mode", std::string("percentile")}, {"percentile_low", 50.0}, {"percentile_high", 100.0}});
  EXPECT_FLOAT_EQ(std::stof(half.metadata.extra.at("normalize_low")), 1.5f);  // between 1 and 2

  // mean 2, population SD 1 -> [2 - 2, 2 + 2]
  const Volume z =
      normalize(row_volume({1, 1, 3, 3}, "a.u."), {{"mode", std::string("zscore")}, {"zscore_range", 2.0}});
  EXPECT_EQ(z.voxels, (std::vector<float>{0.25f, 0.25f, 0.75f, 0.75f}));
  const Volume m = normalize(row_volume({-2, 0, 6}, "a.u."), {{"mode", std::string("minmax")}});
  EXPECT_EQ(m.voxels, (std::vector<float>{0.0f, 0.25f, 1.0f}));
  NodeHarness flat(registry(), "normalize.intensity");
  flat.set_input("volume", row_volume({4, 4}, "a.u."));
  flat.run();
  EXPECT_EQ(flat.output<Volume>("volume").voxels, (std::vector<float>{0.0f, 0.0f}));
  ASSERT_FALSE(flat.log().empty());
  EXPECT_EQ(flat.log().front().first, LogLevel::Warn);
}

}  // namespace
}  // namespace fusionflow::fusion_test
