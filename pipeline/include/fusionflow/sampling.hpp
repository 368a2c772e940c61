// Trilinear interpolation of a voxel grid at a continuous index: the one
// definition in the tree (registration's Mattes metric, the viz samplers,
// and any plugin built on the SDK). Header-only: it sits in hot loops.
#pragma once

#include <algorithm>
#include <array>
#include <cmath>
#include <cstddef>

namespace fusionflow {

// Which continuous indices can be sampled.
enum class TrilinearDomain {
  // 0 <= index <= size - 1 on every axis: between voxel centres only.
  VoxelCentres,
  // -0.5 <= index <= size - 0.5: up to half a voxel beyond the edge voxels'
  // centres (the voxels' own extent), where the edge value extends.
  VoxelExtent,
};

// The 2x2x2 cell of voxels around a continuous index: the linear offset of
// its lowest corner (x fastest), the strides to its neighbours along i, j, k
// (0 along an axis of one voxel) and the position inside the cell.
struct TrilinearCell {
  std::size_t offset = 0;
  std::array<std::size_t, 3> stride{};
  std::array<double, 3> fraction{};
};

// The cell of `index` in a grid of `size` voxels; false (and `cell` left as it
// was) when `index` lies outside `domain` or is NaN.
inline bool locate_trilinear(const std::array<std::size_t, 3>& size, const std::array<double, 3>& index,
                             TrilinearDomain domain, TrilinearCell& cell) {
  const double margin = domain == TrilinearDomain::VoxelExtent ? 0.5 : 0.0;
  std::array<std::size_t, 3> corner{};
  std::array<double, 3> fraction{};
  for (int a = 0; a < 3; ++a) {
    const double n = static_cast<double>(size[a]);
    if (!(index[a] >= -margin && index[a] <= n - 1.0 + margin) || size[a] == 0) return false;
    const double clamped = std::min(std::max(index[a], 0.0), n - 1.0);
    const double below = std::min(std::floor(clamped), std::max(0.0, n - 2.0));
    corner[a] = static_cast<std::size_t>(below);
    fraction[a] = size[a] > 1 ? clamped - below : 0.0;
  }
  const std::size_t none = 0;
  cell.stride = {size[0] > 1 ? std::size_t{1} : none, size[1] > 1 ? size[0] : none,
                 size[2] > 1 ? size[0] * size[1] : none};
  cell.offset = corner[0] + size[0] * (corner[1] + size[1] * corner[2]);
  cell.fraction = fraction;
  return true;
}

// A trilinear value and its gradient with respect to the continuous index
// (the exact derivative of the trilinear polynomial inside the cell).
struct TrilinearSample {
  double value = 0;
  std::array<double, 3> gradient{};
};

namespace detail {
// The corner values and the interpolation along i, then j, that the value
// and its gradient share.
struct TrilinearPartials {
  double c000, c100, c010, c110, c001, c101, c011, c111;  // corners
  double c00, c10, c01, c11;                              // along i
  double c0, c1;                                          // then along j
};
inline TrilinearPartials trilinear_partials(const float* voxels, const TrilinearCell& cell) {
  const float* p = voxels + cell.offset;
  const std::size_t i = cell.stride[0], j = cell.stride[1], k = cell.stride[2];
  TrilinearPartials t{p[0], p[i], p[j], p[j + i], p[k], p[k + i], p[k + j], p[k + j + i], 0, 0, 0, 0, 0, 0};
  const double fi = cell.fraction[0], fj = cell.fraction[1];
  t.c00 = t.c000 + fi * (t.c100 - t.c000);
  t.c10 = t.c010 + fi * (t.c110 - t.c010);
  t.c01 = t.c001 + fi * (t.c101 - t.c001);
  t.c11 = t.c011 + fi * (t.c111 - t.c011);
  t.c0 = t.c00 + fj * (t.c10 - t.c00);
  t.c1 = t.c01 + fj * (t.c11 - t.c01);
  return t;
}
}  // namespace detail

// The value: linear interpolation along i, then j, then k, each as a + f (b - a).
inline double trilinear_value(const float* voxels, const TrilinearCell& cell) {
  const auto t = detail::trilinear_partials(voxels, cell);
  return t.c0 + cell.fraction[2] * (t.c1 - t.c0);
}

// The value (bit for bit as trilinear_value) and its gradient in index units.
inline TrilinearSample trilinear_value_and_gradient(const float* voxels, const TrilinearCell& cell) {
  const auto t = detail::trilinear_partials(voxels, cell);
  const double fj = cell.fraction[1], fk = cell.fraction[2];
  TrilinearSample sample;
  sample.value = t.c0 + fk * (t.c1 - t.c0);
  const double d00 = t.c100 - t.c000, d10 = t.c110 - t.c010, d01 = t.c101 - t.c001, d11 = t.c111 - t.c011;
  const double d0 = d00 + fj * (d10 - d00), d1 = d01 + fj * (d11 - d01);
  sample.gradient[0] = d0 + fk * (d1 - d0);
  sample.gradient[1] = (t.c10 - t.c00) + fk * ((t.c11 - t.c01) - (t.c10 - t.c00));
  sample.gradient[2] = t.c1 - t.c0;
  return sample;
}

}  // namespace fusionflow
