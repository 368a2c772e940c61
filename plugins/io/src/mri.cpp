// MRI N4 bias-field correction (ITK's N4BiasFieldCorrectionImageFilter) and
// the ITK thread-pool cap. Kept in its own translation unit: N4's templates
// are the slowest code of the plugin to compile.
//
// N4 is fitted on a shrunk copy (as ANTs and ITK's own example do); the
// B-spline log bias field is then evaluated on the full-resolution grid and
// divided out of every voxel.
#include "io_internal.hpp"

#include <fusionflow/itk_bridge.hpp>

#include <itkBSplineControlPointImageFilter.h>
#include <itkCommand.h>
#include <itkMultiThreaderBase.h>
#include <itkN4BiasFieldCorrectionImageFilter.h>
#include <itkShrinkImageFilter.h>

#include <algorithm>
#include <cmath>
#include <stdexcept>

namespace fusionflow::io {

void set_itk_threads(int threads) {
  if (threads > 0) itk::MultiThreaderBase::SetGlobalDefaultNumberOfThreads(static_cast<itk::ThreadIdType>(threads));
}

void n4_correct(Volume& volume, const N4Options& options, NodeContext& ctx) {
  using MaskImage = itk::Image<unsigned char, 3>;
  using N4 = itk::N4BiasFieldCorrectionImageFilter<ItkFloatImage, MaskImage, ItkFloatImage>;

  const auto& size = volume.geometry.size;
  if (size[0] < 4 || size[1] < 4 || size[2] < 4) {
    throw std::runtime_error("cannot run N4 bias-field correction on '" + volume.metadata.source + "': it is " +
                             std::to_string(size[0]) + "x" + std::to_string(size[1]) + "x" + std::to_string(size[2]) +
                             " voxels and N4's 3D B-spline fit needs at least 4 along every axis (single slices are "
                             "not supported); set n4=false");
  }
  ItkFloatImage::Pointer image = to_itk(volume);
  auto mask = MaskImage::New();
  mask->CopyInformation(image);
  mask->SetRegions(image->GetLargestPossibleRegion());
  mask->Allocate();
  std::size_t foreground = 0;
  const std::size_t count = volume.voxels.size();
  unsigned char* mask_buffer = mask->GetBufferPointer();
  for (std::size_t n = 0; n < count; ++n) {
    const bool inside = volume.voxels[n] > 0.0f && std::isfinite(volume.voxels[n]);
    mask_buffer[n] = inside ? 1 : 0;
    foreground += inside ? 1 : 0;
  }
  if (foreground < 64) {
    throw std::runtime_error("cannot run N4 bias-field correction on '" + volume.metadata.source + "': only " +
                             std::to_string(foreground) +
                             " voxels have positive intensity (N4 fits log intensities); set n4=false");
  }

  // Shrink, but never below one voxel along thin axes (single slices).
  itk::ShrinkImageFilter<ItkFloatImage, ItkFloatImage>::ShrinkFactorsType factors;
  for (unsigned axis = 0; axis < 3; ++axis) {
    factors[axis] = static_cast<unsigned>(std::max<std::size_t>(
        1, std::min<std::size_t>(static_cast<std::size_t>(options.shrink), volume.geometry.size[axis] / 4)));
  }
  auto shrink_image = itk::ShrinkImageFilter<ItkFloatImage, ItkFloatImage>::New();
  shrink_image->SetInput(image);
  shrink_image->SetShrinkFactors(factors);
  shrink_image->SetNumberOfWorkUnits(static_cast<itk::ThreadIdType>(options.threads));
  auto shrink_mask = itk::ShrinkImageFilter<MaskImage, MaskImage>::New();
  shrink_mask->SetInput(mask);
  shrink_mask->SetShrinkFactors(factors);
  shrink_mask->SetNumberOfWorkUnits(static_cast<itk::ThreadIdType>(options.threads));

  auto n4 = N4::New();
  n4->SetInput(shrink_image->GetOutput());
  n4->SetMaskImage(shrink_mask->GetOutput());
  N4::VariableSizeArrayType iterations(static_cast<unsigned>(options.iterations.size()));
  for (std::size_t level = 0; level < options.iterations.size(); ++level) {
    iterations[static_cast<unsigned>(level)] = static_cast<unsigned>(options.iterations[level]);
  }
  n4->SetMaximumNumberOfIterations(iterations);
  n4->SetNumberOfFittingLevels(static_cast<unsigned>(options.iterations.size()));
  n4->SetNumberOfWorkUnits(static_cast<itk::ThreadIdType>(options.threads));

  // Progress and cancellation through ITK's progress events.
  auto on_progress = itk::CStyleCommand::New();
  struct Link {
    NodeContext* ctx;
    N4* filter;
  } link{&ctx, n4.GetPointer()};
  on_progress->SetClientData(&link);
  on_progress->SetCallback([](itk::Object*, const itk::EventObject&, void* data) {
    auto* l = static_cast<Link*>(data);
    if (l->ctx->cancelled()) l->filter->AbortGenerateDataOn();
  });
  n4->AddObserver(itk::IterationEvent(), on_progress);
  n4->AddObserver(itk::ProgressEvent(), on_progress);
  try {
    n4->Update();
  } catch (const itk::ProcessAborted&) {
    throw Cancelled();
  } catch (const itk::ExceptionObject& error) {
    throw std::runtime_error("N4 bias-field correction of '" + volume.metadata.source +
                             "' failed: " + itk_reason(error.GetDescription()));
  }
  ctx.throw_if_cancelled();

  // Full-resolution log bias field from the fitted control-point lattice.
  using BSpline = itk::BSplineControlPointImageFilter<N4::BiasFieldControlPointLatticeType, N4::ScalarImageType>;
  auto bspline = BSpline::New();
  bspline->SetInput(n4->GetLogBiasFieldControlPointLattice());
  bspline->SetSplineOrder(n4->GetSplineOrder());
  bspline->SetSize(image->GetLargestPossibleRegion().GetSize());
  bspline->SetOrigin(image->GetOrigin());
  bspline->SetSpacing(image->GetSpacing());
  bspline->SetDirection(image->GetDirection());
  bspline->SetNumberOfWorkUnits(static_cast<itk::ThreadIdType>(options.threads));
  try {
    bspline->Update();
  } catch (const itk::ExceptionObject& error) {
    throw std::runtime_error("N4 bias-field reconstruction of '" + volume.metadata.source +
                             "' failed: " + itk_reason(error.GetDescription()));
  }
  const auto* log_field = bspline->GetOutput()->GetBufferPointer();
  for (std::size_t n = 0; n < count; ++n) {
    volume.voxels[n] = static_cast<float>(volume.voxels[n] / std::exp(double(log_field[n][0])));
  }
}

}  // namespace fusionflow::io
