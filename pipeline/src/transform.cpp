#include "fusionflow/transform.hpp"

#include <algorithm>
#include <cmath>

namespace fusionflow {

namespace {

// Cubic B-spline weights of the 4 control points start..start+3 for the
// fractional position t = u - floor(u) (start = floor(u) - 1).
std::array<double, 4> cubic_weights(double t) {
  const double s = 1.0 - t;
  return {s * s * s / 6.0, (3.0 * t * t * t - 6.0 * t * t + 4.0) / 6.0,
          (-3.0 * t * t * t + 3.0 * t * t + 3.0 * t + 1.0) / 6.0, t * t * t / 6.0};
}

}  // namespace

bool BSplineDeformation::support(const std::array<double, 3>& x, Support& out) const {
  const std::array<double, 3> u = lattice.point_to_index(x);
  for (int axis = 0; axis < 3; ++axis) {
    const double last = double(lattice.size[axis]) - 2.0;
    double index = u[axis];
    // As ITK: a point on the last valid position (within rounding) is the
    // end of the last cell, not outside.
    if (std::abs(index - last) <= 1e-12 * std::max(1.0, last)) index = std::nextafter(last, 0.0);
    if (!(index >= 1.0) || !(index < last)) return false;
    const double floor_u = std::floor(index);
    out.start[axis] = static_cast<std::size_t>(floor_u) - 1;
    out.weights[axis] = cubic_weights(index - floor_u);
  }
  return true;
}

std::array<double, 3> BSplineDeformation::displacement(const std::array<double, 3>& x) const {
  Support at;
  std::array<double, 3> d{0.0, 0.0, 0.0};
  if (!support(x, at)) return d;
  const std::size_t count = lattice.voxel_count();
  for (std::size_t c = 0; c < 4; ++c) {
    for (std::size_t b = 0; b < 4; ++b) {
      const double wbc = at.weights[1][b] * at.weights[2][c];
      const std::size_t row = lattice.linear_index(at.start[0], at.start[1] + b, at.start[2] + c);
      for (std::size_t a = 0; a < 4; ++a) {
        const double w = at.weights[0][a] * wbc;
        for (int axis = 0; axis < 3; ++axis) d[axis] += w * coefficients[axis * count + row + a];
      }
    }
  }
  return d;
}

BSplineDeformation BSplineDeformation::covering(const Geometry& region, double spacing_mm) {
  BSplineDeformation deformation;
  Geometry& lattice = deformation.lattice;
  lattice.direction = region.direction;
  // The domain is the region's whole extent, voxel edges included (so every
  // voxel centre is strictly inside the valid part of the lattice); its cells
  // divide it exactly.
  std::array<double, 3> first_index{};
  for (int axis = 0; axis < 3; ++axis) {
    const double extent = region.spacing[axis] * double(std::max<std::size_t>(region.size[axis], 1));
    const std::size_t cells = std::max<std::size_t>(1, static_cast<std::size_t>(std::ceil(extent / spacing_mm - 1e-9)));
    lattice.size[axis] = cells + 3;
    lattice.spacing[axis] = extent / double(cells);
    // In region voxel units: half a voxel back to the edge, then one control spacing.
    first_index[axis] = -0.5 - lattice.spacing[axis] / region.spacing[axis];
  }
  lattice.origin = region.index_to_point(first_index);
  deformation.coefficients.assign(3 * lattice.voxel_count(), 0.0);
  return deformation;
}

}  // namespace fusionflow
