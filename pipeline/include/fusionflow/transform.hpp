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
#include <string>
#include <vector>

#include "fusionflow/payload.hpp"

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

}  // namespace fusionflow

FUSIONFLOW_PAYLOAD_TYPE(fusionflow::Transform, "Transform");
