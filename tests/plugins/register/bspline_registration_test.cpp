// register.bspline: the bending-energy penalty, the schedule checks, and
// the whole node on a phantom with a known smooth deformation (accuracy
// against the deformed landmarks, no folding, the same bytes for any
// thread count).
#include <gtest/gtest.h>

#include <fusionflow/sdk.hpp>
#include <fusionflow/testing.hpp>

#include <cmath>
#include <random>

#include "bspline_registration.hpp"
#include "phantom.hpp"
#include "test_support.hpp"

namespace fusionflow {
namespace {

using testing::NodeHarness;

// A lattice with coefficients c(point) = f(point's position).
template <class Field>
BSplineDeformation lattice_with(Field field) {
  Geometry region;
  region.size = {30, 24, 20};
  region.spacing = {2.0, 2.5, 3.0};
  BSplineDeformation deformation = BSplineDeformation::covering(region, 12.0);
  const Geometry& lattice = deformation.lattice;
  const std::size_t count = lattice.voxel_count();
  for (std::size_t k = 0; k < lattice.size[2]; ++k)
    for (std::size_t j = 0; j < lattice.size[1]; ++j)
      for (std::size_t i = 0; i < lattice.size[0]; ++i) {
        const auto p = lattice.index_to_point({double(i), double(j), double(k)});
        const auto value = field(p);
        for (std::size_t d = 0; d < 3; ++d)
          deformation.coefficients[d * count + lattice.linear_index(i, j, k)] = value[d];
      }
  return deformation;
}

TEST(BendingEnergy, IsZeroForAnAffineDisplacementAndItsGradientIsExact) {
  const BSplineDeformation affine = lattice_with([](const std::array<double, 3>& p) {
    return std::array<double, 3>{0.1 * p[0] - 0.05 * p[1] + 3, 0.02 * p[2], -0.07 * p[0] + 0.01 * p[1] + 0.03 * p[2]};
  });
  EXPECT_NEAR(registration::bending_energy(affine, 1.0, nullptr), 0.0, 1e-20);

  BSplineDeformation curved = lattice_with([](const std::array<double, 3>& p) {
    return std::array<double, 3>{std::sin(p[0] / 9.0), 0.01 * p[1] * p[2], std::cos(p[2] / 7.0) * p[0] / 20.0};
  });
  std::vector<double> gradient(curved.coefficients.size(), 0.0);
  const double weight = 2.5;
  const double energy = registration::bending_energy(curved, weight, &gradient);
  EXPECT_GT(energy, 1e-5);
  std::mt19937_64 engine(1);
  std::uniform_int_distribution<std::size_t> pick(0, curved.coefficients.size() - 1);
  for (int n = 0; n < 40; ++n) {
    const std::size_t at = pick(engine);
    const double h = 1e-4, kept = curved.coefficients[at];
    curved.coefficients[at] = kept + h;
    const double plus = registration::bending_energy(curved, 0.0, nullptr);
    curved.coefficients[at] = kept - h;
    const double minus = registration::bending_energy(curved, 0.0, nullptr);
    curved.coefficients[at] = kept;
    EXPECT_NEAR(gradient[at], weight * (plus - minus) / (2 * h), 1e-9 + 1e-6 * std::abs(gradient[at])) << at;
  }
}

struct DeformedCase {
  testdata::PhantomOptions options;
  testdata::Phantom phantom;
};

const DeformedCase& deformed_case() {
  static const DeformedCase c = [] {
    DeformedCase result;
    // The benchmark's grid (CT at 1.5 mm), another seed than the one the
    // defaults were chosen on.
    result.options.size = {160, 160, 120};
    result.options.ct_spacing_mm = std::array<double, 3>{1.5, 1.5, 1.5};
    result.options.seed = 3;
    result.options.mri_deformation = {7.0, 20.0};
    result.options.pet_deformation = {7.0, 20.0};
    result.phantom = testdata::generate_phantom(result.options);
    return result;
  }();
  return c;
}

// Mean distance between where `transform` and the truth put the interior
// landmarks (boundary ones lie on the head's surface, where motion along the
// surface is not in the images).
double interior_target_error(const Transform& transform, const nlohmann::json& truth, const std::string& modality) {
  double sum = 0;
  int count = 0;
  for (const auto& landmark : truth.at("landmarks")) {
    if (landmark.at("kind") != "interior") continue;
    const auto ct = landmark.at("ct_lps_mm").get<std::array<double, 3>>();
    const auto expected = landmark.at(modality + "_lps_mm").get<std::array<double, 3>>();
    const auto mapped = transform.apply(ct);
    sum += std::sqrt((mapped[0] - expected[0]) * (mapped[0] - expected[0]) +
                     (mapped[1] - expected[1]) * (mapped[1] - expected[1]) +
                     (mapped[2] - expected[2]) * (mapped[2] - expected[2]));
    ++count;
  }
  EXPECT_GE(count, 15);
  return sum / count;
}

Transform rigid(const Volume& fixed, const Volume& moving) {
  NodeHarness node(testing::bundled_plugins(), "register.rigid");
  node.set_input("fixed", fixed).set_input("moving", moving).set_threads(2);
  node.run();
  return node.output<Transform>("transform");
}

TEST(RegisterBSpline, RecoversMostOfAKnownDeformationOfMriAndPetWithoutFolding) {
  const DeformedCase& c = deformed_case();
  for (const char* modality : {"mri", "pet"}) {
    SCOPED_TRACE(modality);
    const Volume& moving = std::string(modality) == "mri" ? c.phantom.t1 : c.phantom.pet;
    const Transform initial = rigid(c.phantom.ct, moving);
    NodeHarness node(testing::bundled_plugins(), "register.bspline");
    node.set_input("fixed", c.phantom.ct).set_input("moving", moving).set_input("initial", initial).set_threads(2);
    node.run();
    const Transform& result = node.output<Transform>("transform");
    ASSERT_EQ(result.kind, "bspline");
    ASSERT_TRUE(result.deformation);
    const double before = interior_target_error(initial, c.phantom.truth, modality);
    const double after = interior_target_error(result, c.phantom.truth, modality);
    std::printf("%s: interior landmarks' mean TRE rigid %.3f mm, B-spline %.3f mm\n", modality, before, after);
    EXPECT_GT(before, 1.5) << "the deformation is too small for this test to mean anything";
    // Seed 3 measured 0.57 (MRI) and 0.68 (PET) of the rigid error.
    EXPECT_LT(after, (std::string(modality) == "mri" ? 0.65 : 0.8) * before);
    const Table& report = node.output<Table>("report");
    const auto& last = report.rows.back();
    const double smallest = std::get<double>(last.at(report.column_index("smallest_jacobian_determinant")));
    EXPECT_GT(smallest, 0.2) << "folding or near-folding";
    EXPECT_EQ(std::get<double>(last.at(report.column_index("folded_voxels"))), 0.0);
    EXPECT_TRUE(node.output<Volume>("registered").geometry.same_grid(c.phantom.ct.geometry));
  }
}

TEST(RegisterBSpline, SameSeedSameTransformForAnyThreadCount) {
  const DeformedCase& c = deformed_case();
  auto run = [&](int threads) {
    NodeHarness node(testing::bundled_plugins(), "register.bspline");
    node.set_input("fixed", c.phantom.ct).set_input("moving", c.phantom.t1).set_threads(threads);
    node.set_param("iterations", std::vector<std::int64_t>{20, 20, 20});
    node.run();
    return node.output<Transform>("transform");
  };
  const Transform one = run(1), three = run(3);
  ASSERT_TRUE(one.deformation && three.deformation);
  EXPECT_EQ(one.deformation->coefficients, three.deformation->coefficients);
  double largest = 0;
  for (double value : one.deformation->coefficients) largest = std::max(largest, std::abs(value));
  EXPECT_GT(largest, 0.1) << "the registration did not move";
}

TEST(RegisterBSpline, ASchedulePointsAtTheLevelThatIsWrong) {
  const DeformedCase& c = deformed_case();
  NodeHarness node(testing::bundled_plugins(), "register.bspline");
  node.set_input("fixed", c.phantom.ct).set_input("moving", c.phantom.t1);
  node.set_param("grid_spacing_mm", std::vector<double>{64, 40, 20});
  try {
    node.run();
    FAIL() << "a grid spacing that neither keeps nor halves the previous one was accepted";
  } catch (const std::exception& error) {
    EXPECT_NE(std::string(error.what()).find("grid_spacing_mm[1] is 40 mm after 64 mm"), std::string::npos)
        << error.what();
  }
  NodeHarness short_schedule(testing::bundled_plugins(), "register.bspline");
  short_schedule.set_input("fixed", c.phantom.ct).set_input("moving", c.phantom.t1);
  short_schedule.set_param("iterations", std::vector<std::int64_t>{10, 10});
  EXPECT_THROW(short_schedule.run(), std::exception);
}

TEST(TargetError, TakesTheTruePositionsFromLandmarkColumnsForADeformedPhantom) {
  Table landmarks;
  landmarks.add_row({{"name", std::string("a")},
                     {"ct_x", 0.0},
                     {"ct_y", 0.0},
                     {"ct_z", 0.0},
                     {"mri_x", 3.0},
                     {"mri_y", 4.0},
                     {"mri_z", 0.0}});
  landmarks.add_row({{"name", std::string("b")},
                     {"ct_x", 1.0},
                     {"ct_y", 1.0},
                     {"ct_z", 1.0},
                     {"mri_x", 1.0},
                     {"mri_y", 1.0},
                     {"mri_z", 2.0}});
  Transform identity;
  NodeHarness node(testing::bundled_plugins(), "register.target_error");
  node.set_input("estimated", identity).set_input("landmarks", landmarks).set_param("truth_prefix", "mri");
  node.run();
  const Table& errors = node.output<Table>("errors");
  ASSERT_EQ(errors.rows.size(), 3u);
  const std::size_t column = errors.column_index("error_mm");
  EXPECT_DOUBLE_EQ(std::get<double>(errors.rows[0][column]), 5.0);
  EXPECT_DOUBLE_EQ(std::get<double>(errors.rows[1][column]), 1.0);
  EXPECT_DOUBLE_EQ(std::get<double>(errors.rows[2][column]), 3.0);  // the mean

  NodeHarness neither(testing::bundled_plugins(), "register.target_error");
  neither.set_input("estimated", identity).set_input("landmarks", landmarks);
  try {
    neither.run();
    FAIL() << "ran without any truth";
  } catch (const std::exception& error) {
    EXPECT_NE(std::string(error.what()).find("truth_prefix"), std::string::npos) << error.what();
  }
}

}  // namespace
}  // namespace fusionflow
