// The Mattes mutual information metric behind register.rigid/affine: its
// value and derivative must not depend on the thread count (a reduction in
// completion order would break this in the last bits), and the analytic
// derivative must match finite differences.
#include <gtest/gtest.h>

#include <cmath>

#include "mattes_mi.hpp"
#include "phantom.hpp"

namespace fusionflow::registration {
namespace {

struct Pair {
  testdata::Phantom phantom;
  std::array<double, 3> center{};
};

Pair small_phantom() {
  testdata::PhantomOptions options;
  options.size = {48, 56, 48};
  options.ct_spacing_mm = std::array<double, 3>{4.0, 4.0, 4.0};
  Pair pair{testdata::generate_phantom(options), {}};
  const Geometry& g = pair.phantom.ct.geometry;
  pair.center = g.index_to_point({(g.size[0] - 1) / 2.0, (g.size[1] - 1) / 2.0, (g.size[2] - 1) / 2.0});
  return pair;
}

using Matrix = std::array<double, 9>;
const Matrix sheared{1.0, 0.02, 0.0, -0.01, 1.0, 0.0, 0.0, 0.0, 1.0};

// An affine transform y = A (x - c) + c + t with 12 parameters (A row-major,
// then t), as ITK's AffineTransform.
LinearTransformState affine_state(const std::array<double, 3>& center, const std::array<double, 3>& translation,
                                  const Matrix& matrix = sheared) {
  LinearTransformState state;
  state.parameters = 12;
  state.center = center;
  state.matrix = matrix;
  for (int row = 0; row < 3; ++row) {
    double offset = center[row] + translation[row];
    for (int col = 0; col < 3; ++col) offset -= state.matrix[row * 3 + col] * center[col];
    state.offset[row] = offset;
  }
  state.jacobian_at_center.assign(3 * 12, 0.0);
  for (int row = 0; row < 3; ++row) state.jacobian_at_center[row * 12 + 9 + row] = 1.0;  // d y_r / d t_r
  for (int axis = 0; axis < 3; ++axis) {
    state.jacobian_slope[axis].assign(3 * 12, 0.0);
    for (int row = 0; row < 3; ++row)
      state.jacobian_slope[axis][row * 12 + row * 3 + axis] = 1.0;  // d y_r / d A_r,axis
  }
  return state;
}

TEST(MattesMutualInformation, ValueAndDerivativeAreBitIdenticalForAnyThreadCount) {
  const Pair pair = small_phantom();
  const MattesMutualInformation metric({pair.phantom.ct.voxels.data(), pair.phantom.ct.geometry},
                                       {pair.phantom.t1.voxels.data(), pair.phantom.t1.geometry}, 32, 1);
  const LinearTransformState state = affine_state(pair.center, {3.0, -2.0, 1.5});
  // 5000 samples: 20 chunks, the last one partial.
  const MetricValue one = metric.evaluate(state, 42, 5000, 1);
  ASSERT_GT(one.valid_samples, 2500u);
  EXPECT_LT(one.value, 0.0);
  for (int threads : {2, 3, 4, 8}) {
    for (int repeat = 0; repeat < 3; ++repeat) {
      const MetricValue other = metric.evaluate(state, 42, 5000, threads);
      EXPECT_EQ(other.valid_samples, one.valid_samples) << threads << " threads";
      // Exact comparisons: bit for bit.
      EXPECT_EQ(other.value, one.value) << threads << " threads";
      EXPECT_EQ(other.derivative, one.derivative) << threads << " threads";
    }
  }
  // Another stream, other samples.
  EXPECT_NE(metric.evaluate(state, 43, 5000, 1).value, one.value);
}

TEST(MattesMutualInformation, DerivativeMatchesFiniteDifferences) {
  const Pair pair = small_phantom();
  const MattesMutualInformation metric({pair.phantom.ct.voxels.data(), pair.phantom.ct.geometry},
                                       {pair.phantom.t1.voxels.data(), pair.phantom.t1.geometry}, 32, 1);
  // Not a multiple of any spacing: samples off the moving voxel planes, where
  // the trilinear interpolant has kinks.
  const std::array<double, 3> translation{3.37, -2.19, 1.71};
  const LinearTransformState state = affine_state(pair.center, translation);
  const MetricValue at = metric.evaluate(state, 7, 20000, 2);
  // Translation parameters (9, 10, 11): same samples (same key) at t +- h.
  const double h = 1e-3;
  for (int axis = 0; axis < 3; ++axis) {
    auto shifted = translation;
    shifted[axis] += h;
    const double plus = metric.evaluate(affine_state(pair.center, shifted), 7, 20000, 2).value;
    shifted[axis] -= 2 * h;
    const double minus = metric.evaluate(affine_state(pair.center, shifted), 7, 20000, 2).value;
    const double numeric = (plus - minus) / (2 * h);
    const double analytic = at.derivative[9 + axis];
    EXPECT_NEAR(analytic, numeric, 1e-3 * std::abs(numeric) + 1e-6) << "translation " << axis;
  }
  // Matrix parameters (the Jacobian's dependence on the point).
  const double hm = 1e-5;  // about 1e-3 mm of motion 100 mm from the centre
  for (int parameter : {0, 1, 5, 6}) {
    Matrix changed = sheared;
    changed[parameter] += hm;
    const double plus = metric.evaluate(affine_state(pair.center, translation, changed), 7, 20000, 2).value;
    changed[parameter] -= 2 * hm;
    const double minus = metric.evaluate(affine_state(pair.center, translation, changed), 7, 20000, 2).value;
    const double numeric = (plus - minus) / (2 * hm);
    EXPECT_NEAR(at.derivative[parameter], numeric, 1e-3 * std::abs(numeric) + 1e-6) << "matrix " << parameter;
  }
}

TEST(MattesMutualInformation, BSplineCoefficientDerivativeMatchesFiniteDifferencesAndThreads) {
  const Pair pair = small_phantom();
  const MattesMutualInformation metric({pair.phantom.ct.voxels.data(), pair.phantom.ct.geometry},
                                       {pair.phantom.t1.voxels.data(), pair.phantom.t1.geometry}, 32, 1);
  BSplineDeformation deformation = BSplineDeformation::covering(pair.phantom.ct.geometry, 40.0);
  const std::size_t count = deformation.lattice.voxel_count();
  for (std::size_t n = 0; n < deformation.coefficients.size(); ++n)
    deformation.coefficients[n] = 1.5 * std::sin(0.7 * double(n));
  Transform linear;
  linear.kind = "rigid";
  const double c = std::cos(0.05), s = std::sin(0.05);
  linear.matrix = {c, -s, 0, s, c, 0, 0, 0, 1};
  linear.center = pair.center;
  linear.translation = {2.3, -1.1, 0.7};
  const MetricValue at = metric.evaluate(BSplineMetricTransform(deformation, linear), 7, 20000, 2);
  EXPECT_GT(at.valid_samples, 15000u);
  ASSERT_EQ(at.derivative.size(), 3 * count);
  // Control points in the middle of the head, each axis.
  const std::size_t middle = deformation.lattice.linear_index(
      deformation.lattice.size[0] / 2, deformation.lattice.size[1] / 2, deformation.lattice.size[2] / 2);
  int compared = 0;
  for (std::size_t point : {middle, middle + 1, middle + deformation.lattice.size[0]}) {
    for (std::size_t axis = 0; axis < 3; ++axis) {
      const std::size_t parameter = axis * count + point;
      const double h = 1e-3;
      BSplineDeformation changed = deformation;
      changed.coefficients[parameter] += h;
      const double plus = metric.evaluate(BSplineMetricTransform(changed, linear), 7, 20000, 2).value;
      changed.coefficients[parameter] -= 2 * h;
      const double minus = metric.evaluate(BSplineMetricTransform(changed, linear), 7, 20000, 2).value;
      const double numeric = (plus - minus) / (2 * h);
      EXPECT_NEAR(at.derivative[parameter], numeric, 2e-3 * std::abs(numeric) + 1e-6)
          << "control point " << point << " axis " << axis;
      compared += std::abs(numeric) > 1e-5;
    }
  }
  EXPECT_GE(compared, 6) << "the derivatives compared are all near zero";
  for (int threads : {1, 3}) {
    const MetricValue other = metric.evaluate(BSplineMetricTransform(deformation, linear), 7, 20000, threads);
    EXPECT_EQ(other.value, at.value);
    EXPECT_EQ(other.derivative, at.derivative);
  }
}

}  // namespace
}  // namespace fusionflow::registration
