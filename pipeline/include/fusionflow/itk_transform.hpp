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
// AffineTransform_double_3_3 (rigid ones as Euler3DTransform_double_3_3); a
// deformable one as a CompositeTransform_double_3 of that affine and a
// BSplineTransform_double_3_3 (applied first), which 3D Slicer reads.
void write_transform_file(const Transform& transform, const std::filesystem::path& path);
Transform read_transform_file(const std::filesystem::path& path);

// Displacement field files: a 3-component float image whose voxels are the
// displacements in LPS mm (ITK's displacement field convention, which 3D
// Slicer loads as a grid transform). NRRD (.nrrd, .nhdr) or MetaImage (.mha,
// .mhd), gzip-compressed inside the format, written atomically. NIfTI is
// refused: readers disagree on the frame of its vectors (ITK before 5.3 reads
// them as LPS, Slicer and later ITK as RAS), so a NIfTI field would move the
// anatomy the wrong way in one of them. Throws std::runtime_error naming the
// path and what is wrong.
void write_displacement_field_file(const DisplacementField& field, const std::filesystem::path& path);
DisplacementField read_displacement_field_file(const std::filesystem::path& path);

}  // namespace fusionflow
