// The Transform payload: a spatial mapping between two volumes' physical
// spaces, as registration produces it.
//
// Convention (ITK's): the transform maps a point x of the FIXED (reference)
// image's physical space to the corresponding point y of the MOVING image's
// physical space, both in LPS millimetres:
//     y = matrix * (x - center) + center + translation
// Resampling the moving image onto the fixed grid evaluates the moving image
// at y for every fixed voxel x.
#pragma once

#include <array>
#include <cstddef>
#include <string>
#include <vector>

#include "fusionflow/payload.hpp"
#include "fusionflow/volume.hpp"

namespace fusionflow {

struct Transform {
  // "identity", "rigid" (rotation + translation) or "affine".
  std::string kind = "identity";
  std::array<double, 9> matrix{1, 0, 0, 0, 1, 0, 0, 0, 1};  // row-major
  std::array<double, 3> center{0, 0, 0};
  std::array<double, 3> translation{0, 0, 0};
  // What it was computed from (e.g. "mri -> ct"), for records.
  std::string description;

  std::array<double, 3> apply(const std::array<double, 3>& fixed_point) const {
    std::array<double, 3> moving{};
    for (int row = 0; row < 3; ++row) {
      double value = center[row] + translation[row];
      for (int col = 0; col < 3; ++col) value += matrix[row * 3 + col] * (fixed_point[col] - center[col]);
      moving[row] = value;
    }
    return moving;
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
