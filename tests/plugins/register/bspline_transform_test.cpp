// The deformable Transform (a linear part after a cubic B-spline
// displacement): our evaluation against ITK's BSplineTransform, ITK
// transform files that hold it, and resampling through it.
#include <gtest/gtest.h>

#include <itkHDF5TransformIOFactory.h>
#include <itkTransform.h>
#include <itkTransformFileReader.h>
#include <itkTransformFactoryBase.h>
#include <itkTxtTransformIOFactory.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <random>

#include <fusionflow/itk_transform.hpp>
#include <fusionflow/transform.hpp>

#include "test_support.hpp"

namespace fusionflow {
namespace {
namespace fs = std::filesystem;

// A fresh folder for the test (test_support's), removed when it ends.
struct TempDir {
  fs::path folder = testing::fresh_temp_directory("bspline-transform");
  ~TempDir() {
    std::error_code ignored;
    fs::remove_all(folder, ignored);
  }
  const fs::path& path() const { return folder; }
};

// A rotated, anisotropic 48 x 40 x 30 mm region, a lattice of about 10 mm
// over it with random coefficients of up to 4 mm, and a rigid part.
Transform example_transform(Geometry& region) {
  region.size = {24, 20, 10};
  region.spacing = {2.0, 2.0, 3.0};
  region.origin = {-20.0, 15.0, -7.5};
  const double c = std::cos(0.3), s = std::sin(0.3);
  region.direction = {c, -s, 0, s, c, 0, 0, 0, 1};
  auto deformation = std::make_shared<BSplineDeformation>(BSplineDeformation::covering(region, 10.0));
  std::mt19937_64 engine(5);
  std::uniform_real_distribution<double> coefficient(-4.0, 4.0);
  for (double& value : deformation->coefficients) value = coefficient(engine);
  Transform transform;
  transform.kind = "bspline";
  const double c2 = std::cos(0.1), s2 = std::sin(0.1);
  transform.matrix = {1, 0, 0, 0, c2, -s2, 0, s2, c2};
  transform.center = {1, 2, 3};
  transform.translation = {4, -3, 2};
  transform.deformation = deformation;
  return transform;
}

itk::TransformBaseTemplate<double>::Pointer read_with_itk(const fs::path& path) {
  itk::TransformFactoryBase::RegisterDefaultTransforms();
  itk::TxtTransformIOFactory::RegisterOneFactory();
  itk::HDF5TransformIOFactory::RegisterOneFactory();
  auto reader = itk::TransformFileReaderTemplate<double>::New();
  reader->SetFileName(path.string());
  reader->Update();
  EXPECT_EQ(reader->GetTransformList()->size(), 1u);
  return reader->GetTransformList()->front();
}

TEST(BSplineTransform, LatticeCoversTheRegionAsItksMeshWould) {
  Geometry region;
  const Transform transform = example_transform(region);
  const Geometry& lattice = transform.deformation->lattice;
  // 48 mm / 10 -> 5 cells, 40 -> 4, 30 -> 3; plus 3 points each.
  EXPECT_EQ(lattice.size, (std::array<std::size_t, 3>{8, 7, 6}));
  EXPECT_NEAR(lattice.spacing[0], 9.6, 1e-12);
  EXPECT_NEAR(lattice.spacing[1], 10.0, 1e-12);
  EXPECT_NEAR(lattice.spacing[2], 10.0, 1e-12);
  // Every voxel centre of the region, corners included, is inside the valid part.
  BSplineDeformation::Support support;
  for (int corner = 0; corner < 8; ++corner) {
    std::array<double, 3> index{};
    for (int axis = 0; axis < 3; ++axis) index[axis] = (corner >> axis & 1) ? double(region.size[axis] - 1) : 0.0;
    EXPECT_TRUE(transform.deformation->support(region.index_to_point(index), support)) << corner;
  }
}

TEST(BSplineTransform, MapsEveryPointAsItkDoesThroughItsOwnTransformFile) {
  Geometry region;
  const Transform transform = example_transform(region);
  TempDir dir;
  for (const char* name : {"deformable.tfm", "deformable.h5"}) {
    SCOPED_TRACE(name);
    write_transform_file(transform, dir.path() / name);
    const auto itk_transform = read_with_itk(dir.path() / name);
    EXPECT_STREQ(itk_transform->GetNameOfClass(), "CompositeTransform");
    const auto* composite = dynamic_cast<const itk::Transform<double, 3, 3>*>(itk_transform.GetPointer());
    ASSERT_NE(composite, nullptr);
    // Inside, on and beyond the lattice's valid part (where ITK and we leave
    // the point to the linear part alone).
    std::mt19937_64 engine(9);
    std::uniform_real_distribution<double> index(-3.0, 27.0);
    int moved = 0;
    for (int n = 0; n < 3000; ++n) {
      std::array<double, 3> x = region.index_to_point({index(engine), index(engine) * 0.8, index(engine) * 0.4});
      // Just inside the first valid lattice position, and on the last one
      // (which ITK counts as inside).
      const Geometry& lattice = transform.deformation->lattice;
      if (n % 10 == 0) x = lattice.index_to_point({1.0 + 1e-6, 1.0 + double(n % 4), double(lattice.size[2]) - 2.0});
      const auto ours = transform.apply(x);
      itk::Point<double, 3> point;
      for (int axis = 0; axis < 3; ++axis) point[axis] = x[axis];
      const auto theirs = composite->TransformPoint(point);
      for (int axis = 0; axis < 3; ++axis) ASSERT_NEAR(ours[axis], theirs[axis], 1e-9) << n;
      const auto linear = transform.apply_linear(x);
      moved += std::abs(linear[0] - ours[0]) + std::abs(linear[1] - ours[1]) + std::abs(linear[2] - ours[2]) > 0.1;
    }
    EXPECT_GT(moved, 500) << "the deformation must move most points for the comparison to mean anything";

    // And fusionflow reads the file back to the same transform.
    const Transform back = read_transform_file(dir.path() / name);
    EXPECT_EQ(back.kind, "bspline");
    ASSERT_TRUE(back.deformation);
    EXPECT_EQ(back.deformation->coefficients, transform.deformation->coefficients);
    const std::array<double, 3> x = region.index_to_point({10.3, 7.7, 4.2});
    const auto a = back.apply(x), b = transform.apply(x);
    for (int axis = 0; axis < 3; ++axis) EXPECT_NEAR(a[axis], b[axis], 1e-9);
  }
}

TEST(BSplineTransform, RefiningHalvesTheSpacingAndKeepsTheDisplacement) {
  Geometry region;
  const Transform transform = example_transform(region);
  const BSplineDeformation& coarse = *transform.deformation;
  const BSplineDeformation fine = coarse.refined();
  EXPECT_EQ(fine.lattice.size, (std::array<std::size_t, 3>{13, 11, 9}));
  for (int axis = 0; axis < 3; ++axis) EXPECT_NEAR(fine.lattice.spacing[axis], coarse.lattice.spacing[axis] / 2, 1e-12);
  std::mt19937_64 engine(3);
  std::uniform_real_distribution<double> unit(0.0, 1.0);
  for (int n = 0; n < 2000; ++n) {
    const std::array<double, 3> x = region.index_to_point({unit(engine) * 23, unit(engine) * 19, unit(engine) * 9});
    const auto a = coarse.displacement(x), b = fine.displacement(x);
    for (int axis = 0; axis < 3; ++axis) ASSERT_NEAR(a[axis], b[axis], 1e-10) << n;
  }
}

TEST(BSplineTransform, JacobianIsTheDerivativeOfTheMapping) {
  Geometry region;
  const Transform transform = example_transform(region);
  const BSplineDeformation& deformation = *transform.deformation;
  std::mt19937_64 engine(4);
  std::uniform_real_distribution<double> unit(0.0, 1.0);
  const double h = 1e-5;
  for (int n = 0; n < 200; ++n) {
    const std::array<double, 3> x = region.index_to_point({unit(engine) * 23, unit(engine) * 19, unit(engine) * 9});
    const auto jacobian = deformation.jacobian(x);
    for (int col = 0; col < 3; ++col) {
      std::array<double, 3> plus = x, minus = x;
      plus[col] += h;
      minus[col] -= h;
      const auto dp = deformation.displacement(plus), dm = deformation.displacement(minus);
      for (int row = 0; row < 3; ++row) {
        const double numeric = (row == col ? 1.0 : 0.0) + (dp[row] - dm[row]) / (2 * h);
        ASSERT_NEAR(jacobian[row * 3 + col], numeric, 1e-6) << n;
      }
    }
  }
}

TEST(BSplineTransform, ResamplingFollowsTheDeformation) {
  Geometry region;
  Transform transform = example_transform(region);
  transform.matrix = {1, 0, 0, 0, 1, 0, 0, 0, 1};
  transform.translation = {0, 0, 0};
  // A moving image that is a linear function of the position: resampling
  // (trilinear, exact for it) must give that function at T(x) everywhere.
  Volume moving;
  moving.geometry = region;
  moving.geometry.size = {40, 36, 24};
  moving.geometry.origin = region.index_to_point({-8, -8, -7});
  moving.voxels.resize(moving.geometry.voxel_count());
  auto value_at = [](const std::array<double, 3>& p) { return 0.5 * p[0] - 0.25 * p[1] + 2.0 * p[2]; };
  for (std::size_t k = 0; k < moving.geometry.size[2]; ++k)
    for (std::size_t j = 0; j < moving.geometry.size[1]; ++j)
      for (std::size_t i = 0; i < moving.geometry.size[0]; ++i)
        moving.voxels[moving.geometry.linear_index(i, j, k)] =
            float(value_at(moving.geometry.index_to_point({double(i), double(j), double(k)})));
  const Volume resampled = resample_volume(moving, region, &transform, Interpolation::Linear, -1000.0f);
  for (std::size_t k = 0; k < region.size[2]; ++k)
    for (std::size_t j = 0; j < region.size[1]; ++j)
      for (std::size_t i = 0; i < region.size[0]; ++i) {
        const auto y = transform.apply(region.index_to_point({double(i), double(j), double(k)}));
        ASSERT_NEAR(resampled.voxels[region.linear_index(i, j, k)], value_at(y), 1e-3) << i << " " << j << " " << k;
      }
}

TEST(BSplineTransform, ARefusedCompositeNamesWhatFusionflowReads) {
  TempDir dir;
  const fs::path path = dir.path() / "three.tfm";
  {
    std::ofstream out(path);
    out << "#Insight Transform File V1.0\n#Transform 0\nTransform: CompositeTransform_double_3_3\n"
           "#Transform 1\nTransform: TranslationTransform_double_3_3\nParameters: 1 2 3\nFixedParameters:\n";
  }
  try {
    read_transform_file(path);
    FAIL() << "a composite without a B-spline was accepted";
  } catch (const std::runtime_error& error) {
    EXPECT_NE(std::string(error.what()).find("BSplineTransform"), std::string::npos) << error.what();
  }
}

}  // namespace
}  // namespace fusionflow
