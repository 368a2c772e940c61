// fusionflow/sampling.hpp (trilinear interpolation) and fusionflow/run_control.hpp.
#include <fusionflow/run_control.hpp>
#include <fusionflow/sampling.hpp>

#include <gtest/gtest.h>

#include <cmath>
#include <vector>

namespace fusionflow {
namespace {

// f(i, j, k) = 2 + 0.5 i - 1.25 j + 3 k on a 4x3x5 grid.
std::vector<float> linear_grid(const std::array<std::size_t, 3>& size) {
  std::vector<float> voxels;
  for (std::size_t k = 0; k < size[2]; ++k)
    for (std::size_t j = 0; j < size[1]; ++j)
      for (std::size_t i = 0; i < size[0]; ++i) voxels.push_back(float(2 + 0.5 * i - 1.25 * j + 3.0 * k));
  return voxels;
}

TEST(Trilinear, ReproducesALinearFunctionAndItsGradientExactly) {
  const std::array<std::size_t, 3> size{4, 3, 5};
  const auto voxels = linear_grid(size);
  for (const std::array<double, 3>& index :
       {std::array<double, 3>{0, 0, 0}, {1.5, 0.25, 3.75}, {3, 2, 4}, {2.999, 1.001, 0.5}}) {
    TrilinearCell cell;
    ASSERT_TRUE(locate_trilinear(size, index, TrilinearDomain::VoxelCentres, cell));
    const TrilinearSample sample = trilinear_value_and_gradient(voxels.data(), cell);
    EXPECT_NEAR(sample.value, 2 + 0.5 * index[0] - 1.25 * index[1] + 3.0 * index[2], 1e-12);
    EXPECT_EQ(sample.value, trilinear_value(voxels.data(), cell));
    EXPECT_NEAR(sample.gradient[0], 0.5, 1e-12);
    EXPECT_NEAR(sample.gradient[1], -1.25, 1e-12);
    EXPECT_NEAR(sample.gradient[2], 3.0, 1e-12);
  }
}

TEST(Trilinear, VoxelCentresRefuseWhatVoxelExtentExtendsFromTheEdge) {
  const std::array<std::size_t, 3> size{4, 3, 5};
  const auto voxels = linear_grid(size);
  TrilinearCell cell;
  EXPECT_FALSE(locate_trilinear(size, {-0.25, 1, 1}, TrilinearDomain::VoxelCentres, cell));
  EXPECT_FALSE(locate_trilinear(size, {1, 2.25, 1}, TrilinearDomain::VoxelCentres, cell));
  ASSERT_TRUE(locate_trilinear(size, {-0.25, 2.5, 1}, TrilinearDomain::VoxelExtent, cell));
  EXPECT_NEAR(trilinear_value(voxels.data(), cell), 2 + 0 - 1.25 * 2 + 3.0, 1e-12);  // the edge voxel's value
  EXPECT_FALSE(locate_trilinear(size, {-0.75, 1, 1}, TrilinearDomain::VoxelExtent, cell));
  EXPECT_FALSE(locate_trilinear(size, {1, 1, 4.6}, TrilinearDomain::VoxelExtent, cell));
  EXPECT_FALSE(locate_trilinear(size, {NAN, 1, 1}, TrilinearDomain::VoxelExtent, cell));
}

TEST(Trilinear, AnAxisOfOneVoxelIsConstantAlongIt) {
  const std::array<std::size_t, 3> size{3, 1, 1};
  const std::vector<float> voxels{1, 2, 4};
  TrilinearCell cell;
  ASSERT_TRUE(locate_trilinear(size, {1.5, 0.3, -0.2}, TrilinearDomain::VoxelExtent, cell));
  const TrilinearSample sample = trilinear_value_and_gradient(voxels.data(), cell);
  EXPECT_DOUBLE_EQ(sample.value, 3.0);
  EXPECT_DOUBLE_EQ(sample.gradient[0], 2.0);
  EXPECT_DOUBLE_EQ(sample.gradient[1], 0.0);
  EXPECT_DOUBLE_EQ(sample.gradient[2], 0.0);
  EXPECT_FALSE(locate_trilinear(size, {1, 0.1, 0}, TrilinearDomain::VoxelCentres, cell));
}

TEST(RunControl, SubMapsProgressAndKeepsThreadsAndCancellation) {
  std::vector<double> reports;
  int cancel_checks = 0;
  RunControl control;
  control.threads = 3;
  control.progress = [&](double f) { reports.push_back(f); };
  control.check_cancelled = [&] { ++cancel_checks; };
  const RunControl second_half = control.sub(0.5, 1.0);
  second_half.report(0.0);
  second_half.report(0.5);
  second_half.cancel_point();
  EXPECT_EQ(second_half.threads, 3);
  EXPECT_EQ(reports, (std::vector<double>{0.5, 0.75}));
  const RunControl quiet = control.sub(0.0, 0.5).without_progress();
  quiet.report(1.0);
  quiet.cancel_point();
  EXPECT_EQ(reports.size(), 2u);
  EXPECT_EQ(cancel_checks, 2);
  RunControl empty;
  empty.report(0.5);  // no callbacks: nothing happens
  empty.cancel_point();
}

}  // namespace
}  // namespace fusionflow
