#include "fusionflow/itk_transform.hpp"

#include <itkAffineTransform.h>
#include <itkBSplineInterpolateImageFunction.h>
#include <itkBSplineTransform.h>
#include <itkCompositeTransform.h>
#include <itkEuler3DTransform.h>
#include <itkHDF5TransformIOFactory.h>
#include <itkIdentityTransform.h>
#include <itkImageFileReader.h>
#include <itkImageFileWriter.h>
#include <itkImageIOFactory.h>
#include <itkLinearInterpolateImageFunction.h>
#include <itkMatlabTransformIOFactory.h>
#include <itkNearestNeighborInterpolateImageFunction.h>
#include <itkResampleImageFilter.h>
#include <itkTransformFactory.h>
#include <itkTransformFileReader.h>
#include <itkTransformFileWriter.h>
#include <itkTxtTransformIOFactory.h>

#include <algorithm>
#include <cmath>
#include <mutex>
#include <stdexcept>

#include "fusionflow/atomic_file.hpp"
#include "fusionflow/itk_bridge.hpp"

namespace fusionflow {

namespace {

using AffineTransform = itk::AffineTransform<double, 3>;
using EulerTransform = itk::Euler3DTransform<double>;

AffineTransform::Pointer to_itk_affine(const Transform& transform) {
  auto affine = AffineTransform::New();
  AffineTransform::MatrixType matrix;
  AffineTransform::OutputVectorType translation;
  AffineTransform::InputPointType center;
  for (int row = 0; row < 3; ++row) {
    for (int col = 0; col < 3; ++col) matrix(row, col) = transform.matrix[row * 3 + col];
    translation[row] = transform.translation[row];
    center[row] = transform.center[row];
  }
  affine->SetCenter(center);
  affine->SetMatrix(matrix);
  affine->SetTranslation(translation);
  return affine;
}

using BSplineTransform = itk::BSplineTransform<double, 3, 3>;
using CompositeTransform = itk::CompositeTransform<double, 3>;

// ITK's fixed parameters of a B-spline lattice: size, origin, spacing,
// direction (row-major).
BSplineTransform::Pointer to_itk_bspline(const BSplineDeformation& deformation) {
  const Geometry& lattice = deformation.lattice;
  if (deformation.coefficients.size() != 3 * lattice.voxel_count()) {
    throw std::runtime_error("B-spline deformation with " + std::to_string(deformation.coefficients.size()) +
                             " coefficients for a lattice of " + lattice.size_string() + " control points (3 each)");
  }
  auto bspline = BSplineTransform::New();
  BSplineTransform::FixedParametersType fixed(18);
  for (unsigned axis = 0; axis < 3; ++axis) {
    fixed[axis] = double(lattice.size[axis]);
    fixed[3 + axis] = lattice.origin[axis];
    fixed[6 + axis] = lattice.spacing[axis];
  }
  for (unsigned n = 0; n < 9; ++n) fixed[9 + n] = lattice.direction[n];
  bspline->SetFixedParameters(fixed);
  BSplineTransform::ParametersType parameters(static_cast<unsigned>(deformation.coefficients.size()));
  for (std::size_t n = 0; n < deformation.coefficients.size(); ++n) {
    parameters[static_cast<unsigned>(n)] = deformation.coefficients[n];
  }
  bspline->SetParametersByValue(parameters);
  return bspline;
}

std::shared_ptr<const BSplineDeformation> from_itk_bspline(const BSplineTransform& bspline) {
  auto deformation = std::make_shared<BSplineDeformation>();
  const auto& fixed = bspline.GetFixedParameters();
  for (unsigned axis = 0; axis < 3; ++axis) {
    deformation->lattice.size[axis] = static_cast<std::size_t>(std::llround(fixed[axis]));
    deformation->lattice.origin[axis] = fixed[3 + axis];
    deformation->lattice.spacing[axis] = fixed[6 + axis];
  }
  for (unsigned n = 0; n < 9; ++n) deformation->lattice.direction[n] = fixed[9 + n];
  const auto& parameters = bspline.GetParameters();
  deformation->coefficients.assign(parameters.begin(), parameters.end());
  return deformation;
}

void register_transform_io() {
  static std::once_flag once;
  std::call_once(once, [] {
    itk::TransformFactoryBase::RegisterDefaultTransforms();
    itk::TxtTransformIOFactory::RegisterOneFactory();
    itk::HDF5TransformIOFactory::RegisterOneFactory();
    itk::MatlabTransformIOFactory::RegisterOneFactory();
  });
}

using DisplacementImage = itk::Image<itk::Vector<float, 3>, 3>;

// The formats whose vectors are unambiguously LPS.
void check_displacement_field_format(const std::filesystem::path& path) {
  std::string name = path.filename().string();
  std::transform(name.begin(), name.end(), name.begin(), [](unsigned char c) { return char(std::tolower(c)); });
  const auto ends_with = [&](const std::string& suffix) {
    return name.size() >= suffix.size() && name.compare(name.size() - suffix.size(), suffix.size(), suffix) == 0;
  };
  if (ends_with(".nrrd") || ends_with(".nhdr") || ends_with(".mha") || ends_with(".mhd")) return;
  if (ends_with(".nii") || ends_with(".nii.gz")) {
    throw std::runtime_error("displacement field '" + path.string() +
                             "': NIfTI is not used for displacement fields (readers disagree whether its vectors are "
                             "RAS or LPS, so the field would move the anatomy the wrong way in some of them); use "
                             ".nrrd or .mha");
  }
  throw std::runtime_error("displacement field '" + path.string() +
                           "': unknown file type; use .nrrd, .nhdr, .mha or .mhd");
}

bool is_rotation(const std::array<double, 9>& m) {
  for (int a = 0; a < 3; ++a) {
    for (int b = 0; b < 3; ++b) {
      double dot = 0;
      for (int k = 0; k < 3; ++k) dot += m[k * 3 + a] * m[k * 3 + b];
      if (std::abs(dot - (a == b ? 1.0 : 0.0)) > 1e-9) return false;
    }
  }
  const double det =
      m[0] * (m[4] * m[8] - m[5] * m[7]) - m[1] * (m[3] * m[8] - m[5] * m[6]) + m[2] * (m[3] * m[7] - m[4] * m[6]);
  return det > 0;
}

}  // namespace

namespace {

itk::Transform<double, 3, 3>::Pointer to_itk_transform(const Transform& transform) {
  if (!transform.deformation) return to_itk_affine(transform).GetPointer();
  auto composite = CompositeTransform::New();
  // ITK applies the transform added last first: the B-spline, then the linear part.
  composite->AddTransform(to_itk_affine(transform));
  composite->AddTransform(to_itk_bspline(*transform.deformation));
  return composite.GetPointer();
}

}  // namespace

Volume resample_volume(const Volume& moving, const Geometry& grid, const Transform* transform,
                       Interpolation interpolation, float default_value) {
  const auto input = to_itk_view(moving);
  using Filter = itk::ResampleImageFilter<ItkFloatImage, ItkFloatImage, double>;
  auto filter = Filter::New();
  filter->SetInput(input);
  if (transform != nullptr) {
    filter->SetTransform(to_itk_transform(*transform));
  } else {
    filter->SetTransform(itk::IdentityTransform<double, 3>::New());
  }
  switch (interpolation) {
    case Interpolation::Nearest:
      filter->SetInterpolator(itk::NearestNeighborInterpolateImageFunction<ItkFloatImage, double>::New());
      break;
    case Interpolation::Linear:
      filter->SetInterpolator(itk::LinearInterpolateImageFunction<ItkFloatImage, double>::New());
      break;
    case Interpolation::BSpline: {
      auto bspline = itk::BSplineInterpolateImageFunction<ItkFloatImage, double, double>::New();
      bspline->SetSplineOrder(3);
      filter->SetInterpolator(bspline);
      break;
    }
  }
  filter->SetDefaultPixelValue(default_value);
  ItkFloatImage::SizeType size;
  ItkFloatImage::SpacingType spacing;
  ItkFloatImage::PointType origin;
  ItkFloatImage::DirectionType direction;
  for (int axis = 0; axis < 3; ++axis) {
    size[axis] = grid.size[axis];
    spacing[axis] = grid.spacing[axis];
    origin[axis] = grid.origin[axis];
    for (int col = 0; col < 3; ++col) direction(axis, col) = grid.direction[axis * 3 + col];
  }
  filter->SetSize(size);
  filter->SetOutputSpacing(spacing);
  filter->SetOutputOrigin(origin);
  filter->SetOutputDirection(direction);
  // The filter writes straight into the result's buffer (no copy after).
  Volume result;
  result.geometry = grid;
  result.metadata = moving.metadata;
  result.voxels.resize(grid.voxel_count());
  const auto output = to_itk_output_view(result);
  filter->GraftOutput(output);
  try {
    filter->Update();
  } catch (const itk::ExceptionObject& error) {
    throw std::runtime_error(std::string("resampling failed: ") + error.GetDescription());
  }
  if (filter->GetOutput()->GetBufferPointer() != result.voxels.data()) {
    // ITK reallocated after all: fall back to copying its buffer.
    return from_itk(*filter->GetOutput(), moving.metadata);
  }
  return result;
}

Geometry grid_with_spacing(const Geometry& geometry, const std::array<double, 3>& spacing) {
  Geometry grid = geometry;
  for (int axis = 0; axis < 3; ++axis) {
    if (!(spacing[axis] > 0)) throw std::invalid_argument("spacing must be positive");
    const double extent = geometry.spacing[axis] * static_cast<double>(geometry.size[axis]);
    grid.size[axis] = std::max<std::size_t>(1, static_cast<std::size_t>(std::llround(extent / spacing[axis])));
    grid.spacing[axis] = spacing[axis];
  }
  // Keep the same physical extent: the first voxel's corner stays in place.
  std::array<double, 3> shift{};
  for (int axis = 0; axis < 3; ++axis) shift[axis] = 0.5 * (spacing[axis] - geometry.spacing[axis]);
  for (int row = 0; row < 3; ++row) {
    for (int col = 0; col < 3; ++col) grid.origin[row] += geometry.direction[row * 3 + col] * shift[col];
  }
  return grid;
}

void write_transform_file(const Transform& transform, const std::filesystem::path& path) {
  register_transform_io();
  AtomicFileWriter output(path);
  auto writer = itk::TransformFileWriterTemplate<double>::New();
  writer->SetFileName(output.temp_path().string());
  if (transform.deformation) {
    // A composite of the linear part and the B-spline (3D Slicer reads it).
    writer->SetInput(to_itk_transform(transform));
  } else if (transform.kind == "rigid" && is_rotation(transform.matrix)) {
    auto euler = EulerTransform::New();
    euler->SetCenter(to_itk_affine(transform)->GetCenter());
    euler->SetMatrix(to_itk_affine(transform)->GetMatrix(), 1e-6);
    euler->SetTranslation(to_itk_affine(transform)->GetTranslation());
    writer->SetInput(euler);
  } else {
    writer->SetInput(to_itk_affine(transform));
  }
  try {
    writer->Update();
  } catch (const itk::ExceptionObject& error) {
    throw std::runtime_error("cannot write transform '" + path.string() + "': " + error.GetDescription());
  }
  output.commit();
}

Transform read_transform_file(const std::filesystem::path& path) {
  register_transform_io();
  if (!std::filesystem::exists(path)) {
    throw std::runtime_error("transform file '" + path.string() + "' does not exist");
  }
  auto reader = itk::TransformFileReaderTemplate<double>::New();
  reader->SetFileName(path.string());
  try {
    reader->Update();
  } catch (const itk::ExceptionObject& error) {
    throw std::runtime_error("cannot read transform '" + path.string() + "': " + error.GetDescription());
  }
  const auto* list = reader->GetTransformList();
  if (list->size() != 1) {
    throw std::runtime_error("transform file '" + path.string() + "' holds " + std::to_string(list->size()) +
                             " transforms; fusionflow reads files with exactly one");
  }
  using Matrix = itk::MatrixOffsetTransformBase<double, 3, 3>;
  const itk::TransformBaseTemplate<double>* only = list->front().GetPointer();
  std::shared_ptr<const BSplineDeformation> deformation;
  // A composite of a linear transform and a B-spline (as written above), or
  // a B-spline alone.
  if (const auto* composite = dynamic_cast<const CompositeTransform*>(only)) {
    const auto count = composite->GetNumberOfTransforms();
    const auto* last =
        count == 2 ? dynamic_cast<const BSplineTransform*>(composite->GetNthTransformConstPointer(1)) : nullptr;
    if (last == nullptr) {
      throw std::runtime_error("transform file '" + path.string() + "' holds a composite of " + std::to_string(count) +
                               " transforms; fusionflow reads a linear transform followed by a BSplineTransform "
                               "(applied first)");
    }
    deformation = from_itk_bspline(*last);
    only = composite->GetNthTransformConstPointer(0);
  } else if (const auto* bspline = dynamic_cast<const BSplineTransform*>(only)) {
    Transform transform;
    transform.kind = "bspline";
    transform.deformation = from_itk_bspline(*bspline);
    transform.description = "read from " + path.string();
    return transform;
  }
  const auto* linear = dynamic_cast<const Matrix*>(only);
  if (linear == nullptr) {
    throw std::runtime_error("transform file '" + path.string() + "' holds a " + only->GetNameOfClass() +
                             "; fusionflow reads linear (rigid/affine) and B-spline transforms");
  }
  Transform transform;
  for (int row = 0; row < 3; ++row) {
    for (int col = 0; col < 3; ++col) transform.matrix[row * 3 + col] = linear->GetMatrix()(row, col);
    transform.center[row] = linear->GetCenter()[row];
    transform.translation[row] = linear->GetTranslation()[row];
  }
  transform.kind = deformation ? "bspline" : is_rotation(transform.matrix) ? "rigid" : "affine";
  transform.deformation = deformation;
  transform.description = "read from " + path.string();
  return transform;
}

void write_displacement_field_file(const DisplacementField& field, const std::filesystem::path& path) {
  check_displacement_field_format(path);
  const Geometry& g = field.geometry;
  if (field.vectors.size() != 3 * g.voxel_count()) {
    throw std::runtime_error("displacement field '" + path.string() + "' has " + std::to_string(field.vectors.size()) +
                             " values for " + std::to_string(g.voxel_count()) + " voxels (3 per voxel needed)");
  }
  register_itk_image_io();
  auto image = DisplacementImage::New();
  DisplacementImage::SizeType size;
  DisplacementImage::SpacingType spacing;
  DisplacementImage::PointType origin;
  DisplacementImage::DirectionType direction;
  for (unsigned axis = 0; axis < 3; ++axis) {
    size[axis] = g.size[axis];
    spacing[axis] = g.spacing[axis];
    origin[axis] = g.origin[axis];
    for (unsigned col = 0; col < 3; ++col) direction(axis, col) = g.direction[axis * 3 + col];
  }
  image->SetRegions(DisplacementImage::RegionType(size));
  image->SetSpacing(spacing);
  image->SetOrigin(origin);
  image->SetDirection(direction);
  image->Allocate();
  std::copy(field.vectors.begin(), field.vectors.end(), image->GetBufferPointer()->GetDataPointer());
  write_image_file_atomically(path, [&](const std::filesystem::path& file) {
    auto writer = itk::ImageFileWriter<DisplacementImage>::New();
    writer->SetFileName(file.string());
    writer->SetInput(image);
    writer->SetUseCompression(true);  // inside the format: NRRD and MetaImage readers inflate it themselves
    try {
      writer->Update();
    } catch (const itk::ExceptionObject& error) {
      throw std::runtime_error("cannot write displacement field '" + path.string() + "': " + error.GetDescription());
    }
  });
}

DisplacementField read_displacement_field_file(const std::filesystem::path& path) {
  check_displacement_field_format(path);
  if (!std::filesystem::exists(path)) {
    throw std::runtime_error("displacement field '" + path.string() + "' does not exist");
  }
  register_itk_image_io();
  auto io = itk::ImageIOFactory::CreateImageIO(path.string().c_str(), itk::IOFileModeEnum::ReadMode);
  if (!io) throw std::runtime_error("displacement field '" + path.string() + "': ITK cannot read this file");
  try {
    io->SetFileName(path.string());
    io->ReadImageInformation();
  } catch (const itk::ExceptionObject& error) {
    throw std::runtime_error("cannot read displacement field '" + path.string() + "': " + error.GetDescription());
  }
  if (io->GetNumberOfDimensions() != 3 || io->GetNumberOfComponents() != 3) {
    throw std::runtime_error("displacement field '" + path.string() + "' is a " +
                             std::to_string(io->GetNumberOfDimensions()) + "D image with " +
                             std::to_string(io->GetNumberOfComponents()) +
                             " components per voxel; a displacement field is 3D with 3 (x, y, z in LPS mm)");
  }
  auto reader = itk::ImageFileReader<DisplacementImage>::New();
  reader->SetFileName(path.string());
  try {
    reader->Update();
  } catch (const itk::ExceptionObject& error) {
    throw std::runtime_error("cannot read displacement field '" + path.string() + "': " + error.GetDescription());
  }
  const DisplacementImage* image = reader->GetOutput();
  DisplacementField field;
  field.geometry = geometry_of(*image);
  const std::size_t count = field.geometry.voxel_count();
  const float* values = image->GetBufferPointer()->GetDataPointer();
  field.vectors.assign(values, values + 3 * count);
  for (float value : field.vectors) {
    if (!std::isfinite(value)) {
      throw std::runtime_error("displacement field '" + path.string() + "' contains NaN or infinite displacements");
    }
  }
  return field;
}

}  // namespace fusionflow
