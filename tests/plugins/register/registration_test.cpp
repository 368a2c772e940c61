// register.* and resample.* nodes on the digital phantom, whose true
// displacements are known.
#include <gtest/gtest.h>

#include "test_support.hpp"

#include <fusionflow/itk_transform.hpp>
#include <fusionflow/plugin_loader.hpp>
#include <fusionflow/sdk.hpp>
#include <fusionflow/testing.hpp>

#include <cmath>
#include <filesystem>

#include "phantom.hpp"

namespace fusionflow {
namespace {
namespace fs = std::filesystem;
using testing::NodeHarness;

const NodeRegistry& bundled() { return testing::bundled_plugins(); }

struct PhantomCase {
  testdata::Phantom phantom;
  Transform mri_truth, pet_truth;
  std::vector<std::array<double, 3>> landmarks;  // CT space
};

Transform truth(const nlohmann::json& json, const std::string& modality) {
  Transform transform;
  transform.kind = "rigid";
  const auto& entry = json.at("transforms").at(modality);
  for (int row = 0; row < 3; ++row) {
    for (int col = 0; col < 3; ++col) transform.matrix[row * 3 + col] = entry.at("matrix")[row][col];
    transform.center[row] = entry.at("center_lps_mm")[row];
    transform.translation[row] = entry.at("translation_mm")[row];
  }
  return transform;
}

PhantomCase make_case(std::array<std::size_t, 3> size, double spacing) {
  testdata::PhantomOptions options;
  options.size = size;
  options.ct_spacing_mm = std::array<double, 3>{spacing, spacing, spacing};
  PhantomCase result{testdata::generate_phantom(options), {}, {}, {}};
  result.mri_truth = truth(result.phantom.truth, "mri");
  result.pet_truth = truth(result.phantom.truth, "pet");
  for (const auto& landmark : result.phantom.truth.at("landmarks")) {
    result.landmarks.push_back(landmark.at("ct_lps_mm").get<std::array<double, 3>>());
  }
  return result;
}

double mean_target_error(const Transform& estimated, const Transform& truth,
                         const std::vector<std::array<double, 3>>& landmarks) {
  double sum = 0;
  for (const auto& point : landmarks) {
    const auto a = estimated.apply(point), b = truth.apply(point);
    sum += std::sqrt((a[0] - b[0]) * (a[0] - b[0]) + (a[1] - b[1]) * (a[1] - b[1]) + (a[2] - b[2]) * (a[2] - b[2]));
  }
  return sum / double(landmarks.size());
}

Transform register_rigid(const Volume& fixed, const Volume& moving, int threads = 2) {
  NodeHarness node(bundled(), "register.rigid");
  node.set_input("fixed", fixed).set_input("moving", moving).set_threads(threads);
  node.run();
  EXPECT_TRUE(fixed.geometry.same_grid(node.output<Volume>("registered").geometry));
  return node.output<Transform>("transform");
}

// The accuracy targets of the issue, with CT at 1.5 mm: mean TRE over the
// phantom's 34 landmarks at most 1 mm for MRI -> CT and 2 mm for PET -> CT
// (true displacements: MRI 4/-2.5/6 deg and 7.9 mm, PET -1.5/2/-3 deg and 4.9 mm).
TEST(RegisterRigid, RecoversTheKnownDisplacementsOfMriAndPet) {
  const PhantomCase c = make_case({120, 136, 120}, 1.5);
  const Transform mri = register_rigid(c.phantom.ct, c.phantom.t1);
  const double mri_tre = mean_target_error(mri, c.mri_truth, c.landmarks);
  const double mri_untreated = mean_target_error(Transform{}, c.mri_truth, c.landmarks);
  EXPECT_LE(mri_tre, 1.0) << "before registration: " << mri_untreated << " mm";
  EXPECT_GT(mri_untreated, 5.0);  // the test starts far from the answer
  const Transform pet = register_rigid(c.phantom.ct, c.phantom.pet);
  EXPECT_LE(mean_target_error(pet, c.pet_truth, c.landmarks), 2.0);
  EXPECT_EQ(mri.kind, "rigid");
}

TEST(RegisterRigid, SameSeedSameTransformForAnyThreadCount) {
  const PhantomCase c = make_case({48, 56, 48}, 4.0);
  auto run = [&](int threads) {
    NodeHarness node(bundled(), "register.rigid");
    node.set_input("fixed", c.phantom.ct).set_input("moving", c.phantom.t1).set_threads(threads);
    node.set_param("require_convergence", ParamValue(false))
        .set_param("iterations", std::vector<std::int64_t>{40, 30, 20});
    node.run();
    return node.output<Transform>("transform");
  };
  const Transform one = run(1), two = run(2), four = run(4);
  EXPECT_EQ(one.matrix, two.matrix);
  EXPECT_EQ(one.translation, two.translation);
  EXPECT_EQ(one.matrix, four.matrix);
  EXPECT_EQ(one.translation, four.translation);
}

TEST(RegisterRigid, ReportsMetricAndIterationsPerLevel) {
  const PhantomCase c = make_case({48, 56, 48}, 4.0);
  NodeHarness node(bundled(), "register.affine");
  node.set_input("fixed", c.phantom.ct).set_input("moving", c.phantom.pet);
  node.set_param("require_convergence", ParamValue(false));
  node.run();
  const Table& report = node.output<Table>("report");
  ASSERT_EQ(report.rows.size(), 3u);
  for (const auto& row : report.rows) {
    EXPECT_GT(std::get<double>(row[report.column_index("iterations")]), 0);
    EXPECT_LT(std::get<double>(row[report.column_index("metric")]), 0);  // Mattes MI is negated
  }
  EXPECT_EQ(node.output<Transform>("transform").kind, "affine");
  ASSERT_FALSE(node.log().empty());
  EXPECT_NE(node.log().back().second.find("affine registration: metric"), std::string::npos);
}

TEST(RegisterRigid, ClearErrorsForConstantImagesNoOverlapAndNoConvergence) {
  const PhantomCase c = make_case({32, 32, 32}, 7.5);
  auto failure = [&](const Volume& fixed, const Volume& moving,
                     std::vector<std::pair<std::string, ParamValue>> params) {
    NodeHarness node(bundled(), "register.rigid");
    node.set_input("fixed", fixed).set_input("moving", moving);
    for (auto& [name, value] : params) node.set_param(name, value);
    try {
      node.run();
    } catch (const std::exception& error) {
      return std::string(error.what());
    }
    return std::string("no error");
  };
  Volume constant = c.phantom.t1;
  std::fill(constant.voxels.begin(), constant.voxels.end(), 5.0f);
  EXPECT_NE(failure(c.phantom.ct, constant, {}).find("the moving volume"), std::string::npos);
  EXPECT_NE(failure(c.phantom.ct, constant, {}).find("is constant (every voxel is 5"), std::string::npos);

  Volume far_away = c.phantom.t1;
  far_away.geometry.origin[0] += 2000.0;
  const std::string no_overlap = failure(c.phantom.ct, far_away, {{"initialization", ParamValue(std::string("none"))}});
  EXPECT_NE(no_overlap.find("the volumes do not overlap"), std::string::npos) << no_overlap;

  const std::string stuck = failure(c.phantom.ct, c.phantom.t1, {{"iterations", std::vector<std::int64_t>{2, 2, 2}}});
  EXPECT_NE(stuck.find("did not converge"), std::string::npos) << stuck;
  EXPECT_NE(stuck.find("after 2 iterations"), std::string::npos) << stuck;
  EXPECT_NE(stuck.find("with metric -0."), std::string::npos) << stuck;
}

TEST(TransformFiles, RoundTripThroughItkFormatsAndNodes) {
  const fs::path dir = fs::temp_directory_path() / ("fusionflow-tfm-" + std::to_string(::getpid()));
  Transform rigid;
  rigid.kind = "rigid";
  const double a = 0.1;
  rigid.matrix = {std::cos(a), -std::sin(a), 0, std::sin(a), std::cos(a), 0, 0, 0, 1};
  rigid.center = {1, 2, 3};
  rigid.translation = {4, -5, 6};
  Transform affine = rigid;
  affine.kind = "affine";
  affine.matrix[0] = 1.2;
  for (const auto& [transform, name] : {std::pair{rigid, "rigid.tfm"}, std::pair{affine, "affine.txt"}}) {
    NodeHarness write(bundled(), "register.write_transform");
    write.set_input("transform", transform).set_param("path", (dir / name).string());
    write.run();
    NodeHarness read(bundled(), "register.load_transform");
    read.set_param("path", (dir / name).string());
    read.run();
    const Transform& back = read.output<Transform>("transform");
    EXPECT_EQ(back.kind, transform.kind);
    for (const std::array<double, 3> point : {std::array<double, 3>{0, 0, 0}, {100, -50, 20}}) {
      const auto expected = transform.apply(point), actual = back.apply(point);
      for (int axis = 0; axis < 3; ++axis) EXPECT_NEAR(actual[axis], expected[axis], 1e-9);
    }
  }
  EXPECT_THROW(read_transform_file(dir / "missing.tfm"), std::runtime_error);
  fs::remove_all(dir);
}

TEST(ResampleApply, IdentityOnTheSameGridKeepsVoxelsAndTransformMovesThem) {
  const PhantomCase c = make_case({32, 32, 32}, 7.5);
  NodeHarness same(bundled(), "resample.apply");
  same.set_input("volume", c.phantom.ct).set_param("interpolation", "nearest");
  same.run();
  EXPECT_EQ(same.output<Volume>("volume").voxels, c.phantom.ct.voxels);

  NodeHarness coarser(bundled(), "resample.apply");
  coarser.set_input("volume", c.phantom.ct).set_param("spacing", std::vector<double>{15.0, 15.0, 15.0});
  coarser.run();
  const Volume& coarse = coarser.output<Volume>("volume");
  EXPECT_EQ(coarse.geometry.size, (std::array<std::size_t, 3>{16, 16, 16}));
  EXPECT_EQ(coarse.geometry.spacing[0], 15.0);
  EXPECT_EQ(coarse.metadata.units, c.phantom.ct.metadata.units);

  NodeHarness onto_pet(bundled(), "resample.apply");
  onto_pet.set_input("volume", c.phantom.ct).set_input("reference", c.phantom.pet);
  onto_pet.run();
  EXPECT_TRUE(onto_pet.output<Volume>("volume").geometry.same_grid(c.phantom.pet.geometry));
}

TEST(ResampleApply, ThroughTheTrueTransformTheMriLabelsMatchTheCtLabels) {
  testdata::PhantomOptions options;
  options.size = {64, 64, 64};
  options.mri_displacement = {{8.0, -5.0, 10.0}, {12.0, -9.0, 6.0}};
  const testdata::Phantom phantom = testdata::generate_phantom(options);
  const Volume mri_labels =
      testdata::sample_phantom_labels(options, testdata::PhantomSpace::Mri, phantom.labels.geometry);
  // Moving = MRI-space labels, fixed grid = CT: resampling through T_mri must
  // give back the CT labels (up to boundary voxels).
  NodeHarness node(bundled(), "resample.apply");
  node.set_input("volume", mri_labels).set_input("transform", truth(phantom.truth, "mri"));
  node.set_param("interpolation", "nearest");
  node.run();
  const Volume& aligned = node.output<Volume>("volume");
  std::size_t agree = 0, agree_unaligned = 0;
  for (std::size_t v = 0; v < aligned.voxels.size(); ++v) {
    agree += aligned.voxels[v] == phantom.labels.voxels[v];
    agree_unaligned += mri_labels.voxels[v] == phantom.labels.voxels[v];
  }
  const double n = double(aligned.voxels.size());
  // Nearest-neighbour snapping differs only on tissue boundaries.
  EXPECT_GT(agree / n, 0.95) << "unaligned agreement " << agree_unaligned / n;
  EXPECT_LT(agree_unaligned / n, agree / n - 0.05);
}

}  // namespace
}  // namespace fusionflow
