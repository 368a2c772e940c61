// Modality semantics of the io loaders on non-DICOM files: CT clamping, MRI
// normalisation and N4 bias-field correction, PET SUVbw from parameters.
#include <gtest/gtest.h>

#include "test_support.hpp"

#include <fusionflow/payload_types.hpp>
#include <fusionflow/plugin_loader.hpp>
#include <fusionflow/testing.hpp>
#include <fusionflow/volume.hpp>

#include <unistd.h>

#include <algorithm>
#include <cmath>

namespace fusionflow {
namespace {
namespace fs = std::filesystem;
using testing::NodeHarness;

const NodeRegistry& bundled() { return testing::bundled_plugins(); }

class IoModality : public ::testing::Test {
 protected:
  void SetUp() override { dir_ = testing::fresh_temp_directory("io-modality"); }
  void TearDown() override { fs::remove_all(dir_); }

  fs::path write(const Volume& volume, const std::string& name) {
    const fs::path path = dir_ / name;
    NodeHarness node(bundled(), "io.write");
    node.set_input("volume", volume).set_param("path", path.string());
    node.run();
    return path;
  }
  fs::path dir_;
};

Volume volume_of(std::array<std::size_t, 3> size, std::vector<float> voxels) {
  Volume volume;
  volume.geometry.size = size;
  volume.geometry.spacing = {2.0, 2.0, 2.0};
  volume.voxels = std::move(voxels);
  return volume;
}

using Params = std::vector<std::pair<std::string, ParamValue>>;

Volume load(const std::string& type, const fs::path& path, const Params& params = {}) {
  NodeHarness node(bundled(), type);
  node.set_param("path", path.string());
  for (const auto& [name, value] : params) node.set_param(name, value);
  node.run();
  return node.output<Volume>("volume");
}

std::string load_error(const std::string& type, const fs::path& path, const Params& params) {
  NodeHarness node(bundled(), type);
  node.set_param("path", path.string());
  for (const auto& [name, value] : params) node.set_param(name, value);
  try {
    node.run();
  } catch (const std::exception& error) {
    return error.what();
  }
  ADD_FAILURE() << type << " on " << path << " did not fail";
  return {};
}

TEST_F(IoModality, CtIsClampedOnlyWhenAsked) {
  const fs::path path = write(volume_of({5, 1, 1}, {-3000, -1024, 0, 1500, 5000}), "ct.nii.gz");
  const Volume plain = load("io.load_ct", path);
  EXPECT_EQ(plain.voxels, (std::vector<float>{-3000, -1024, 0, 1500, 5000}));
  EXPECT_EQ(plain.metadata.units, "HU");
  EXPECT_EQ(plain.metadata.modality, "CT");
  const Volume clamped = load("io.load_ct", path, {{"clamp", ParamValue(true)}});
  EXPECT_EQ(clamped.voxels, (std::vector<float>{-1024, -1024, 0, 1500, 3071}));
  EXPECT_EQ(clamped.metadata.extra.at("ct.clamped_voxels"), "2");
  const Volume narrow =
      load("io.load_ct", path,
           {{"clamp", ParamValue(true)}, {"clamp_min", ParamValue(-100.0)}, {"clamp_max", ParamValue(100.0)}});
  EXPECT_EQ(narrow.voxels, (std::vector<float>{-100, -100, 0, 100, 100}));
  EXPECT_THROW(load("io.load_ct", path,
                    {{"clamp", ParamValue(true)}, {"clamp_min", ParamValue(10.0)}, {"clamp_max", ParamValue(-10.0)}}),
               std::invalid_argument);
}

TEST_F(IoModality, MriPercentileNormalisationMapsPercentilesToZeroAndOne) {
  // 1000 foreground voxels 1..1000 and 1000 background zeros: with
  // normalise_region=nonzero the 1st and 99th percentiles (linear
  // interpolation, fusionflow/statistics.hpp) are those of 1..1000:
  // numpy.percentile(range(1, 1001), [1, 99]) = [10.99, 990.01].
  std::vector<float> voxels(2000, 0.0f);
  for (int n = 0; n < 1000; ++n) voxels[2 * n] = float(1000 - n);
  const fs::path path = write(volume_of({20, 10, 10}, voxels), "t1.nii.gz");
  const Volume mr = load(
      "io.load_mri", path,
      {{"normalise", ParamValue(std::string("percentile"))}, {"contrast", ParamValue(std::string("T1-weighted"))}});
  const double low = std::stod(mr.metadata.extra.at("mr.normalise_low"));
  const double high = std::stod(mr.metadata.extra.at("mr.normalise_high"));
  EXPECT_NEAR(low, 10.99, 1e-12);
  EXPECT_NEAR(high, 990.01, 1e-12);
  for (std::size_t n = 0; n < voxels.size(); ++n) {
    EXPECT_FLOAT_EQ(mr.voxels[n], float((voxels[n] - low) / (high - low))) << n;
  }
  EXPECT_EQ(mr.metadata.quantity, "T1-weighted, percentile normalised");
  EXPECT_EQ(mr.metadata.units, "a.u.");

  // Over all voxels the 1st percentile is a background zero and the 99th
  // numpy.percentile([0] * 1000 + list(range(1, 1001)), 99) = 980.01.
  const Volume all = load(
      "io.load_mri", path,
      {{"normalise", ParamValue(std::string("percentile"))}, {"normalise_region", ParamValue(std::string("all"))}});
  EXPECT_EQ(std::stod(all.metadata.extra.at("mr.normalise_low")), 0.0);
  EXPECT_NEAR(std::stod(all.metadata.extra.at("mr.normalise_high")), 980.01, 1e-12);
  EXPECT_FLOAT_EQ(all.voxels[0], float(1000.0 / 980.01));
}

TEST_F(IoModality, MriZScoreUsesForegroundStatistics) {
  std::vector<float> voxels(64, 0.0f);
  for (int n = 0; n < 32; ++n) voxels[n] = float(n * n % 17 + 3);
  const fs::path path = write(volume_of({4, 4, 4}, voxels), "t2.nrrd");
  double mean = 0, squares = 0;
  for (int n = 0; n < 32; ++n) mean += voxels[n] / 32.0;
  for (int n = 0; n < 32; ++n) squares += (voxels[n] - mean) * (voxels[n] - mean);
  const double deviation = std::sqrt(squares / 32.0);
  const Volume mr = load("io.load_mri", path, {{"normalise", ParamValue(std::string("zscore"))}});
  for (int n = 0; n < 64; ++n) EXPECT_NEAR(mr.voxels[n], (voxels[n] - mean) / deviation, 1e-5) << n;
  const Volume constant_error_source = volume_of({2, 1, 1}, {5, 5});
  EXPECT_THROW(
      load("io.load_mri", write(constant_error_source, "flat.mha"), {{"normalise", ParamValue(std::string("zscore"))}}),
      std::runtime_error);
}

// Coefficient of variation of the voxels where `mask` holds.
double variation(const std::vector<float>& voxels, const std::vector<bool>& mask) {
  double sum = 0, squares = 0, count = 0;
  for (std::size_t n = 0; n < voxels.size(); ++n) {
    if (!mask[n]) continue;
    sum += voxels[n];
    count += 1;
  }
  const double mean = sum / count;
  for (std::size_t n = 0; n < voxels.size(); ++n) {
    if (mask[n]) squares += (voxels[n] - mean) * (voxels[n] - mean);
  }
  return std::sqrt(squares / count) / mean;
}

TEST_F(IoModality, MriN4RemovesASmoothMultiplicativeBiasField) {
  // Two tissues (a ball of 100 inside a ball of 200) under a bias field
  // exp(0.5 x / R) that varies by a factor e across the object.
  const std::size_t n = 40;
  Volume volume = volume_of({n, n, n}, std::vector<float>(n * n * n, 0.0f));
  std::vector<bool> inner(volume.voxels.size()), outer(volume.voxels.size());
  const double c = (n - 1) / 2.0, radius = 16.0;
  for (std::size_t k = 0; k < n; ++k) {
    for (std::size_t j = 0; j < n; ++j) {
      for (std::size_t i = 0; i < n; ++i) {
        const double x = i - c, y = j - c, z = k - c;
        const double r = std::sqrt(x * x + y * y + z * z);
        const std::size_t index = i + n * (j + n * k);
        if (r > radius) continue;
        const double tissue = r < 8.0 ? 100.0 : 200.0;
        (r < 8.0 ? inner : outer)[index] = r < 6.5 || (r > 9.5 && r < 14.5);  // away from edges
        volume.voxels[index] = static_cast<float>(tissue * std::exp(0.5 * x / radius));
      }
    }
  }
  const fs::path path = write(volume, "biased.nii.gz");
  const double before_inner = variation(volume.voxels, inner), before_outer = variation(volume.voxels, outer);
  ASSERT_GT(before_outer, 0.2);

  NodeHarness node(bundled(), "io.load_mri");
  node.set_param("path", path.string()).set_param("n4", ParamValue(true)).set_param("n4_shrink", 2);
  node.set_param("n4_iterations", std::vector<std::int64_t>{50, 50, 50});
  node.set_threads(2);
  node.run();
  const Volume& corrected = node.output<Volume>("volume");
  const double after_inner = variation(corrected.voxels, inner), after_outer = variation(corrected.voxels, outer);
  EXPECT_LT(after_outer, 0.35 * before_outer) << before_outer << " -> " << after_outer;
  EXPECT_LT(after_inner, 0.5 * before_inner) << before_inner << " -> " << after_inner;
  EXPECT_EQ(corrected.metadata.extra.at("mr.n4"), "shrink 2, iterations 50,50,50");
  // Background stays background.
  EXPECT_EQ(corrected.voxels[0], 0.0f);
}

TEST_F(IoModality, MriN4RefusesSingleSlicesClearly) {
  const fs::path path = write(volume_of({8, 8, 1}, std::vector<float>(64, 10.0f)), "slice.nii");
  NodeHarness node(bundled(), "io.load_mri");
  node.set_param("path", path.string()).set_param("n4", ParamValue(true));
  try {
    node.run();
    ADD_FAILURE() << "N4 ran on a single slice";
  } catch (const std::runtime_error& error) {
    EXPECT_NE(std::string(error.what())
                  .find("cannot run N4 bias-field correction on '" + path.string() + "': it is 8x8x1 voxels"),
              std::string::npos)
        << error.what();
  }
}

TEST_F(IoModality, PetFromNiftiBecomesSuvWithParametersOrNamesWhatIsMissing) {
  std::vector<float> activity(24);
  for (std::size_t n = 0; n < activity.size(); ++n) activity[n] = 1000.0f + 250.0f * float(n);
  const fs::path path = write(volume_of({4, 3, 2}, activity), "pet.nii.gz");

  const std::string error =
      load_error("io.load_pet", path,
                 {{"suv", ParamValue(std::string("suvbw"))}, {"decay_correction", ParamValue(std::string("start"))}});
  for (const char* piece : {"missing 4 pieces", "parameter weight_kg", "parameter injected_dose_bq",
                            "parameter half_life_s", "parameter uptake_s; '"}) {
    EXPECT_NE(error.find(piece), std::string::npos) << piece << " not in: " << error;
  }

  const Volume pet = load("io.load_pet", path,
                          {{"suv", ParamValue(std::string("suvbw"))},
                           {"decay_correction", ParamValue(std::string("start"))},
                           {"weight_kg", ParamValue(65.0)},
                           {"injected_dose_bq", ParamValue(250e6)},
                           {"half_life_s", ParamValue(6586.2)},
                           {"uptake_s", ParamValue(3300.0)}});
  const double factor = 65000.0 / (250e6 * std::pow(2.0, -3300.0 / 6586.2));
  for (std::size_t n = 0; n < activity.size(); ++n) {
    EXPECT_NEAR(pet.voxels[n], activity[n] * factor, 1e-5 * activity[n] * factor) << n;
  }
  EXPECT_EQ(pet.metadata.units, "SUVbw");
  EXPECT_EQ(pet.metadata.extra.at("pet.parameters_used"),
            "decay_correction,weight_kg,injected_dose_bq,half_life_s,uptake_s");

  // Without parameters, suv=auto keeps Bq/mL.
  const Volume bq = load("io.load_pet", path);
  EXPECT_EQ(bq.metadata.units, "Bq/mL");
  EXPECT_EQ(bq.voxels, activity);
}

}  // namespace
}  // namespace fusionflow
