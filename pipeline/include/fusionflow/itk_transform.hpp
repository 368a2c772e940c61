// Transforms and resampling on ITK: shared by the register.* and resample.*
// node families. Part of fusionflow_itk.
#pragma once

#include <filesystem>
#include <functional>
#include <optional>

#include "fusionflow/choice_list.hpp"
#include "fusionflow/transform.hpp"
#include "fusionflow/volume.hpp"

namespace fusionflow {

enum class Interpolation { Nearest, Linear, BSpline };
inline const ChoiceList<Interpolation> kInterpolationNames{
    {Interpolation::Linear, "linear"}, {Interpolation::BSpline, "bspline"}, {Interpolation::Nearest, "nearest"}};

// Resamples `moving` onto `grid`: every output voxel at fixed point x takes
// moving's value at transform(x) (identity if absent); points outside the
// moving volume get `default_value`. Metadata is kept. Deterministic for any
// thread count (each output voxel is computed independently).
Volume resample_volume(const Volume& moving, const Geometry& grid, const Transform* transform,
                       Interpolation interpolation, float default_value);

// A grid covering the same physical extent as `geometry` with a new spacing
// (same origin and direction; sizes rounded to cover the extent).
Geometry grid_with_spacing(const Geometry& geometry, const std::array<double, 3>& spacing);

// ITK transform files (.tfm / .txt: ITK's text format; .h5: HDF5; .mat:
// Matlab), written atomically. The transform is stored as ITK's
// AffineTransform_double_3_3 (rigid ones as Euler3DTransform_double_3_3).
void write_transform_file(const Transform& transform, const std::filesystem::path& path);
Transform read_transform_file(const std::filesystem::path& path);

}  // namespace fusionflow
