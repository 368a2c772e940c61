// The Transform payload: a spatial mapping between two volumes' physical
// spaces, as registration produces it.
//
// Convention (ITK's): the transform maps a point x of the FIXED (reference)
// image's physical space to the corresponding point y of the MOVING image's
// physical space, both in LPS millimetres:
//     y = matrix * (x - center) + center + translation
// Resampling the moving image onto the fixed grid evaluates the moving image
// at y for every fixed voxel x. A deformable ("bspline") transform first
// displaces x by a cubic B-spline field D, then applies the linear part:
//     y = matrix * (x + D(x) - center) + center + translation
// (ITK: a CompositeTransform of the linear transform and a BSplineTransform,
// the B-spline applied first).
#pragma once

#include <array>
#include <cstddef>
#include <memory>
#include <string>
#include <vector>

#include "fusionflow/payload.hpp"
#include "fusionflow/volume.hpp"

namespace fusionflow {

// A cubic B-spline displacement on a lattice of control points in the fixed
// space, as ITK's BSplineTransform<double, 3, 3> defines it:
//     D(x) = sum over the 4x4x4 control points j around x of
//            B3(u_0 - j_0) B3(u_1 - j_1) B3(u_2 - j_2) c_j,
// u the continuous lattice index of x, B3 the cubic B-spline. Where that
// support leaves the lattice (u outside [1, size - 2) on an axis), D is 0, as
// in ITK. The lattice extends one control point beyond the region it serves
// on the low side and two on the high side (ITK's mesh of N cells has N + 3
// points per axis).
struct BSplineDeformation {
  Geometry lattice;                  // control points: ITK's fixed parameters (size, origin, spacing, direction)
  std::vector<double> coefficients;  // 3 * lattice.voxel_count(): all x components, then all y, then all z (ITK)

  // The control points and weights of x: start index and per-axis weights
  // (the weight of point start + (a, b, c) is w[0][a] * w[1][b] * w[2][c]).
  // False where D(x) = 0 by the rule above.
  struct Support {
    std::array<std::size_t, 3> start{};
    std::array<std::array<double, 4>, 3> weights{};
  };
  bool support(const std::array<double, 3>& x, Support& out) const;
  // Calls visit(n, control point's linear lattice index, weight) for the 64
  // control points of `at`, n = 0..63 in lattice order (x fastest).
  template <class Visit>
  void for_each_control_point(const Support& at, Visit&& visit) const {
    std::size_t n = 0;
    for (std::size_t c = 0; c < 4; ++c) {
      for (std::size_t b = 0; b < 4; ++b) {
        const double wbc = at.weights[1][b] * at.weights[2][c];
        const std::size_t row = lattice.linear_index(at.start[0], at.start[1] + b, at.start[2] + c);
        for (std::size_t a = 0; a < 4; ++a) visit(n++, row + a, at.weights[0][a] * wbc);
      }
    }
  }
  std::array<double, 3> displacement(const std::array<double, 3>& x) const;
  // d(x + D(x)) / dx (row-major 3 x 3; the identity where D is 0): its
  // determinant <= 0 means the deformation folds there.
  std::array<double, 9> jacobian(const std::array<double, 3>& x) const;

  // The same displacement on a lattice of half the spacing (every cell split
  // in two per axis), by the exact two-scale relation of the cubic B-spline:
  // a new control point on an old one gets (c[i-1] + 6 c[i] + c[i+1]) / 8,
  // one halfway between gets (c[i] + c[i+1]) / 2 (tensor product over axes).
  BSplineDeformation refined() const;

  // The lattice for control spacing `spacing_mm` over `region`: its whole
  // extent (voxel edges included, so every voxel centre is inside the valid
  // part) divided into cells of at most spacing_mm (at least one), plus the 3
  // outer points, as ITK's BSplineTransformInitializer lays out a mesh;
  // coefficients zero.
  static BSplineDeformation covering(const Geometry& region, double spacing_mm);
};

struct Transform {
  // "identity", "rigid" (rotation + translation), "affine", or "bspline"
  // (`deformation` first, then the linear part).
  std::string kind = "identity";
  std::array<double, 9> matrix{1, 0, 0, 0, 1, 0, 0, 0, 1};  // row-major
  std::array<double, 3> center{0, 0, 0};
  std::array<double, 3> translation{0, 0, 0};
  // What it was computed from (e.g. "mri -> ct"), for records.
  std::string description;
  // Set for kind "bspline" only. Shared, not copied, between copies.
  std::shared_ptr<const BSplineDeformation> deformation;

  std::array<double, 3> apply_linear(const std::array<double, 3>& point) const {
    std::array<double, 3> moving{};
    for (int row = 0; row < 3; ++row) {
      double value = center[row] + translation[row];
      for (int col = 0; col < 3; ++col) value += matrix[row * 3 + col] * (point[col] - center[col]);
      moving[row] = value;
    }
    return moving;
  }

  std::array<double, 3> apply(const std::array<double, 3>& fixed_point) const {
    if (!deformation) return apply_linear(fixed_point);
    const std::array<double, 3> d = deformation->displacement(fixed_point);
    return apply_linear({fixed_point[0] + d[0], fixed_point[1] + d[1], fixed_point[2] + d[2]});
  }
};

// A dense displacement field sampled on a grid of the FIXED space: the moving
// point of the fixed point x is x + d(x), d in LPS millimetres. This is
// ITK's DisplacementFieldTransform and what 3D Slicer calls a grid transform
// (its "resampling" direction, the one ITK files store).
struct DisplacementField {
  Geometry geometry;
  std::vector<float> vectors;  // d_x, d_y, d_z per voxel, voxels x fastest (3 * voxel count)

  std::array<double, 3> at(std::size_t i, std::size_t j, std::size_t k) const {
    const std::size_t n = 3 * geometry.linear_index(i, j, k);
    return {vectors[n], vectors[n + 1], vectors[n + 2]};
  }
};

}  // namespace fusionflow

FUSIONFLOW_PAYLOAD_TYPE(fusionflow::Transform, "Transform");
