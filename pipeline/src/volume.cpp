#include "fusionflow/volume.hpp"

#include <cmath>

namespace fusionflow {

std::array<double, 3> Geometry::index_to_point(const std::array<double, 3>& index) const {
  std::array<double, 3> point = origin;
  for (int row = 0; row < 3; ++row) {
    for (int col = 0; col < 3; ++col) {
      point[row] += direction[row * 3 + col] * spacing[col] * index[col];
    }
  }
  return point;
}

std::array<double, 3> Geometry::point_to_index(const std::array<double, 3>& point) const {
  // direction is orthonormal for every image we accept, so its inverse is its
  // transpose.
  std::array<double, 3> index{0, 0, 0};
  for (int col = 0; col < 3; ++col) {
    double projected = 0.0;
    for (int row = 0; row < 3; ++row) projected += direction[row * 3 + col] * (point[row] - origin[row]);
    index[col] = projected / spacing[col];
  }
  return index;
}

std::string Geometry::size_string() const {
  return std::to_string(size[0]) + "x" + std::to_string(size[1]) + "x" + std::to_string(size[2]);
}

bool Geometry::same_grid(const Geometry& other, double tolerance) const {
  if (size != other.size) return false;
  for (int axis = 0; axis < 3; ++axis) {
    if (std::abs(spacing[axis] - other.spacing[axis]) > tolerance * std::abs(spacing[axis])) return false;
    if (std::abs(origin[axis] - other.origin[axis]) > tolerance * std::abs(spacing[axis]) + tolerance) return false;
  }
  for (int n = 0; n < 9; ++n) {
    if (std::abs(direction[n] - other.direction[n]) > tolerance) return false;
  }
  return true;
}

}  // namespace fusionflow
