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

// Derivatives of the weights with respect to t.
std::array<double, 4> cubic_weight_derivatives(double t) {
  const double s = 1.0 - t;
  return {-s * s / 2.0, (9.0 * t * t - 12.0 * t) / 6.0, (-9.0 * t * t + 6.0 * t + 3.0) / 6.0, t * t / 2.0};
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
  for_each_control_point(at, [&](std::size_t, std::size_t point, double w) {
    for (int axis = 0; axis < 3; ++axis) d[axis] += w * coefficients[axis * count + point];
  });
  return d;
}

std::array<double, 9> BSplineDeformation::jacobian(const std::array<double, 3>& x) const {
  std::array<double, 9> result{1, 0, 0, 0, 1, 0, 0, 0, 1};
  Support at;
  if (!support(x, at)) return result;
  std::array<std::array<double, 4>, 3> slopes{};
  const std::array<double, 3> u = lattice.point_to_index(x);
  for (int axis = 0; axis < 3; ++axis) {
    // Same fractional position as support() used (start = floor - 1).
    slopes[axis] = cubic_weight_derivatives(u[axis] - double(at.start[axis] + 1));
  }
  // dD_d / du_axis, then to physical: du/dx = diag(1/spacing) direction^T.
  std::array<double, 9> by_index{};  // [d][axis]
  const std::size_t count = lattice.voxel_count();
  for (std::size_t c = 0; c < 4; ++c) {
    for (std::size_t b = 0; b < 4; ++b) {
      const std::size_t row = lattice.linear_index(at.start[0], at.start[1] + b, at.start[2] + c);
      for (std::size_t a = 0; a < 4; ++a) {
        const double w[3] = {slopes[0][a] * at.weights[1][b] * at.weights[2][c],
                             at.weights[0][a] * slopes[1][b] * at.weights[2][c],
                             at.weights[0][a] * at.weights[1][b] * slopes[2][c]};
        for (std::size_t d = 0; d < 3; ++d) {
          const double coefficient = coefficients[d * count + row + a];
          for (int axis = 0; axis < 3; ++axis) by_index[d * 3 + axis] += w[axis] * coefficient;
        }
      }
    }
  }
  for (int d = 0; d < 3; ++d) {
    for (int col = 0; col < 3; ++col) {
      double value = 0;
      for (int axis = 0; axis < 3; ++axis) {
        value += by_index[d * 3 + axis] * lattice.direction[col * 3 + axis] / lattice.spacing[axis];
      }
      result[d * 3 + col] += value;
    }
  }
  return result;
}

BSplineDeformation BSplineDeformation::refined() const {
  BSplineDeformation fine;
  fine.lattice = lattice;
  for (int axis = 0; axis < 3; ++axis) {
    fine.lattice.size[axis] = 2 * (lattice.size[axis] - 3) + 3;
    fine.lattice.spacing[axis] = lattice.spacing[axis] / 2.0;
  }
  // The first valid position (index 1) stays where it is: the new origin is
  // half an old spacing on from the old one.
  fine.lattice.origin = lattice.index_to_point({0.5, 0.5, 0.5});
  // New point m sits at old index (m + 1) / 2. One axis at a time.
  const std::size_t components = 3;
  std::vector<double> current = coefficients;
  std::array<std::size_t, 3> size = lattice.size;
  for (int axis = 0; axis < 3; ++axis) {
    std::array<std::size_t, 3> new_size = size;
    new_size[axis] = fine.lattice.size[axis];
    const std::size_t old_count = size[0] * size[1] * size[2];
    const std::size_t new_count = new_size[0] * new_size[1] * new_size[2];
    std::vector<double> next(components * new_count);
    const std::array<std::size_t, 3> old_stride{1, size[0], size[0] * size[1]};
    for (std::size_t d = 0; d < components; ++d) {
      for (std::size_t k = 0; k < new_size[2]; ++k)
        for (std::size_t j = 0; j < new_size[1]; ++j)
          for (std::size_t i = 0; i < new_size[0]; ++i) {
            std::array<std::size_t, 3> index{i, j, k};
            const std::size_t m = index[axis] + 1;
            index[axis] = 0;
            const double* line = current.data() + d * old_count + index[0] * old_stride[0] + index[1] * old_stride[1] +
                                 index[2] * old_stride[2];
            const std::size_t step = old_stride[axis];
            const std::size_t half = m / 2;
            double value;
            if (m % 2 == 0) {
              value = (line[(half - 1) * step] + 6.0 * line[half * step] + line[(half + 1) * step]) / 8.0;
            } else {
              value = (line[half * step] + line[(half + 1) * step]) / 2.0;
            }
            next[d * new_count + i + new_size[0] * (j + new_size[1] * k)] = value;
          }
    }
    current = std::move(next);
    size = new_size;
  }
  fine.coefficients = std::move(current);
  return fine;
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
