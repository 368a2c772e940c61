#include "registration.hpp"

#include <itkAffineTransform.h>
#include <itkCenteredTransformInitializer.h>
#include <itkCommand.h>
#include <itkEuler3DTransform.h>
#include <itkImageRegistrationMethodv4.h>
#include <itkMattesMutualInformationImageToImageMetricv4.h>
#include <itkRegistrationParameterScalesFromPhysicalShift.h>
#include <itkRegularStepGradientDescentOptimizerv4.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <sstream>
#include <stdexcept>

#include "fusionflow/itk_bridge.hpp"
#include "fusionflow/node.hpp"

namespace fusionflow::registration {

namespace {

using Image = ItkFloatImage;
using Optimizer = itk::RegularStepGradientDescentOptimizerv4<double>;
using MattesMetric = itk::MattesMutualInformationImageToImageMetricv4<Image, Image, Image, double>;

// Mattes MI whose threading can be made deterministic. ITK splits the sample
// set into work units and adds each unit's histogram-derivative buffer into a
// shared array in whatever order the threads finish, so results differ in the
// last bits with the thread count. ITK's pool runs work units concurrently
// whatever the maximum thread count says, so deterministic mode uses a single
// work unit. Fast mode uses one work unit per thread.
class Metric : public MattesMetric {
 public:
  using Self = Metric;
  using Superclass = MattesMetric;
  using Pointer = itk::SmartPointer<Self>;
  itkNewMacro(Self)

  void set_threading(bool deterministic, int threads) {
    const auto work_units = static_cast<itk::ThreadIdType>(deterministic ? 1 : std::max(1, threads));
    this->m_SparseGetValueAndDerivativeThreader->SetNumberOfWorkUnits(work_units);
    this->m_SparseGetValueAndDerivativeThreader->SetMaximumNumberOfThreads(work_units);
    this->m_DenseGetValueAndDerivativeThreader->SetNumberOfWorkUnits(work_units);
    this->m_DenseGetValueAndDerivativeThreader->SetMaximumNumberOfThreads(work_units);
  }
};

void check_not_constant(const Volume& volume, const char* role) {
  const auto [low, high] = std::minmax_element(volume.voxels.begin(), volume.voxels.end());
  if (volume.voxels.empty() || *low == *high) {
    throw std::runtime_error(std::string("the ") + role + " volume (" + volume.metadata.source +
                             ") is constant" + (volume.voxels.empty() ? "" : " (every voxel is " + std::to_string(*low) + ")") +
                             ": mutual information has nothing to align; check the input");
  }
  for (float value : volume.voxels) {
    if (!std::isfinite(value)) {
      throw std::runtime_error(std::string("the ") + role + " volume (" + volume.metadata.source +
                               ") contains NaN or infinite voxels; replace them when loading");
    }
  }
}

// Physical axis-aligned bounding box of a grid's voxel centres.
struct Box {
  std::array<double, 3> low{}, high{};
};

Box bounding_box(const Geometry& g, const Transform* to_moving_space = nullptr) {
  Box box;
  box.low.fill(std::numeric_limits<double>::max());
  box.high.fill(-std::numeric_limits<double>::max());
  for (int corner = 0; corner < 8; ++corner) {
    std::array<double, 3> index{};
    for (int axis = 0; axis < 3; ++axis) index[axis] = (corner >> axis & 1) ? double(g.size[axis] - 1) : 0.0;
    auto point = g.index_to_point(index);
    if (to_moving_space != nullptr) point = to_moving_space->apply(point);
    for (int axis = 0; axis < 3; ++axis) {
      box.low[axis] = std::min(box.low[axis], point[axis]);
      box.high[axis] = std::max(box.high[axis], point[axis]);
    }
  }
  return box;
}

std::string describe(const Box& box) {
  std::ostringstream text;
  text.precision(1);
  text << std::fixed << "[" << box.low[0] << ", " << box.high[0] << "] x [" << box.low[1] << ", " << box.high[1]
       << "] x [" << box.low[2] << ", " << box.high[2] << "] mm";
  return text.str();
}

double overlap_fraction(const Box& fixed_in_moving, const Box& moving) {
  double fraction = 1.0;
  for (int axis = 0; axis < 3; ++axis) {
    const double extent = fixed_in_moving.high[axis] - fixed_in_moving.low[axis];
    const double overlap = std::min(fixed_in_moving.high[axis], moving.high[axis]) -
                           std::max(fixed_in_moving.low[axis], moving.low[axis]);
    if (overlap <= 0) return 0.0;
    if (extent > 0) fraction *= overlap / extent;
  }
  return fraction;
}

template <class ItkTransform>
Transform to_transform(const ItkTransform& itk_transform, const std::string& kind) {
  Transform transform;
  transform.kind = kind;
  for (int row = 0; row < 3; ++row) {
    for (int col = 0; col < 3; ++col) transform.matrix[row * 3 + col] = itk_transform.GetMatrix()(row, col);
    transform.center[row] = itk_transform.GetCenter()[row];
    transform.translation[row] = itk_transform.GetTranslation()[row];
  }
  return transform;
}

// Reports per-iteration progress and stops the optimiser on cancellation.
class IterationObserver : public itk::Command {
 public:
  using Self = IterationObserver;
  using Superclass = itk::Command;
  using Pointer = itk::SmartPointer<Self>;
  itkNewMacro(Self)
  void configure(Optimizer* optimizer, const Callbacks* callbacks, std::size_t levels, double min_step_ratio) {
    optimizer_ = optimizer;
    callbacks_ = callbacks;
    levels_ = levels;
    min_step_ratio_ = min_step_ratio;
  }
  void set_level(std::size_t level, int max_iterations) {
    level_ = level;
    max_iterations_ = std::max(1, max_iterations);
  }
  bool cancelled() const { return cancelled_; }
  void Execute(itk::Object* caller, const itk::EventObject& event) override {
    Execute(static_cast<const itk::Object*>(caller), event);
  }
  void Execute(const itk::Object*, const itk::EventObject& event) override {
    if (!itk::IterationEvent().CheckEvent(&event)) return;
    if (optimizer_->GetCurrentIteration() == 0) {
      // The learning rate was just estimated for this level: the convergence
      // threshold is the same fraction of it as min_step_mm of max_step_mm.
      optimizer_->SetMinimumStepLength(optimizer_->GetLearningRate() * min_step_ratio_);
    }
    if (callbacks_->cancelled && callbacks_->cancelled()) {
      cancelled_ = true;
      optimizer_->StopOptimization();
      return;
    }
    if (callbacks_->progress) {
      const double within = std::min(1.0, double(optimizer_->GetCurrentIteration() + 1) / max_iterations_);
      callbacks_->progress((double(level_) + within) / double(levels_));
    }
  }

 private:
  Optimizer* optimizer_ = nullptr;
  const Callbacks* callbacks_ = nullptr;
  std::size_t levels_ = 1, level_ = 0;
  int max_iterations_ = 1;
  double min_step_ratio_ = 0.0;
  bool cancelled_ = false;
};

bool converged(const Optimizer& optimizer) {
  using Stop = itk::StopConditionObjectToObjectOptimizerEnum;
  const auto stop = optimizer.GetStopCondition();
  // (sic: ITK 5.2 spells the enumerator "TOLEARANCE")
  return stop == Stop::STEP_TOO_SMALL || stop == Stop::GRADIENT_MAGNITUDE_TOLEARANCE ||
         stop == Stop::CONVERGENCE_CHECKER_PASSED;
}

LevelReport report_level(const Optimizer& optimizer, std::size_t level, int shrink_factor) {
  return {static_cast<int>(level), shrink_factor, static_cast<int>(optimizer.GetCurrentIteration()),
          optimizer.GetValue(), optimizer.GetStopConditionDescription(), converged(optimizer)};
}

// At the start of each resolution level: record the previous level, set this
// level's iteration budget.
template <class Method>
class LevelObserver : public itk::Command {
 public:
  using Self = LevelObserver;
  using Superclass = itk::Command;
  using Pointer = itk::SmartPointer<Self>;
  itkNewMacro(Self)
  void configure(Method* method, Optimizer* optimizer, IterationObserver* iterations, const Settings* settings,
                 std::vector<LevelReport>* reports) {
    method_ = method;
    optimizer_ = optimizer;
    iterations_ = iterations;
    settings_ = settings;
    reports_ = reports;
  }
  void Execute(itk::Object* caller, const itk::EventObject& event) override {
    Execute(static_cast<const itk::Object*>(caller), event);
  }
  void Execute(const itk::Object*, const itk::EventObject& event) override {
    if (!itk::MultiResolutionIterationEvent().CheckEvent(&event)) return;
    const std::size_t level = method_->GetCurrentLevel();
    if (level > 0) reports_->push_back(report_level(*optimizer_, level - 1, settings_->shrink_factors[level - 1]));
    optimizer_->SetNumberOfIterations(static_cast<itk::SizeValueType>(settings_->iterations[level]));
    iterations_->set_level(level, settings_->iterations[level]);
  }

 private:
  Method* method_ = nullptr;
  Optimizer* optimizer_ = nullptr;
  IterationObserver* iterations_ = nullptr;
  const Settings* settings_ = nullptr;
  std::vector<LevelReport>* reports_ = nullptr;
};

template <class ItkTransform>
Result run(const Volume& fixed, const Volume& moving, const Settings& settings, const Callbacks& callbacks,
           const std::string& kind) {
  const std::size_t levels = settings.shrink_factors.size();
  // Views, not copies: registration only reads the images.
  const auto fixed_image = to_itk_view(fixed);
  const auto moving_image = to_itk_view(moving);

  auto transform = ItkTransform::New();
  if (settings.initialization != "none") {
    using Initializer = itk::CenteredTransformInitializer<ItkTransform, Image, Image>;
    auto initializer = Initializer::New();
    initializer->SetTransform(transform);
    initializer->SetFixedImage(fixed_image);
    initializer->SetMovingImage(moving_image);
    if (settings.initialization == "moments") initializer->MomentsOn();
    else initializer->GeometryOn();
    initializer->InitializeTransform();
  }

  // No overlap after initialisation: nothing to optimise.
  const Transform initial = to_transform(*transform, kind);
  const Box moving_box = bounding_box(moving.geometry);
  const Box fixed_in_moving = bounding_box(fixed.geometry, &initial);
  if (overlap_fraction(fixed_in_moving, moving_box) < 0.05) {
    throw std::runtime_error("the volumes do not overlap: the fixed grid maps to " + describe(fixed_in_moving) +
                             " in the moving volume's space, which covers " + describe(moving_box) +
                             "; check origins and directions, or use initialization 'geometry' or 'moments'");
  }

  auto metric = Metric::New();
  metric->SetNumberOfHistogramBins(static_cast<itk::SizeValueType>(settings.histogram_bins));
  metric->SetUseMovingImageGradientFilter(false);
  metric->SetUseFixedImageGradientFilter(false);
  metric->set_threading(settings.deterministic, settings.threads);

  // Scales make one unit of every parameter move voxels by about the same
  // physical distance; the learning rate is then estimated once per level so
  // that the first step moves voxels by at most max_step_mm.
  using Scales = itk::RegistrationParameterScalesFromPhysicalShift<Metric>;
  auto scales = Scales::New();
  scales->SetMetric(metric);

  auto optimizer = Optimizer::New();
  optimizer->SetScalesEstimator(scales);
  optimizer->SetDoEstimateLearningRateOnce(true);
  optimizer->SetDoEstimateLearningRateAtEachIteration(false);
  optimizer->SetMaximumStepSizeInPhysicalUnits(settings.max_step_mm);
  optimizer->SetLearningRate(1.0);
  // Replaced at each level's first iteration by the same ratio of the
  // estimated learning rate (see IterationObserver).
  optimizer->SetMinimumStepLength(0.0);
  optimizer->SetRelaxationFactor(settings.relaxation);
  optimizer->SetGradientMagnitudeTolerance(settings.gradient_tolerance);
  optimizer->SetNumberOfIterations(static_cast<itk::SizeValueType>(settings.iterations.front()));
  optimizer->SetReturnBestParametersAndValue(false);

  using Method = itk::ImageRegistrationMethodv4<Image, Image, ItkTransform>;
  auto method = Method::New();
  method->SetFixedImage(fixed_image);
  method->SetMovingImage(moving_image);
  method->SetMetric(metric);
  method->SetOptimizer(optimizer);
  method->SetInitialTransform(transform);
  method->InPlaceOn();
  method->SetNumberOfLevels(levels);
  typename Method::ShrinkFactorsArrayType shrink(levels);
  typename Method::SmoothingSigmasArrayType sigmas(levels);
  for (std::size_t level = 0; level < levels; ++level) {
    shrink[level] = static_cast<unsigned>(settings.shrink_factors[level]);
    sigmas[level] = settings.smoothing_sigmas_mm[level];
  }
  method->SetShrinkFactorsPerLevel(shrink);
  method->SetSmoothingSigmasPerLevel(sigmas);
  method->SetSmoothingSigmasAreSpecifiedInPhysicalUnits(true);
  method->SetMetricSamplingStrategy(Method::MetricSamplingStrategyEnum::RANDOM);
  // A fixed budget of samples per level (capped by the percentage): coarse
  // levels use many of their voxels, fine levels a sparse random subset.
  typename Method::MetricSamplingPercentageArrayType percentages(levels);
  for (std::size_t level = 0; level < levels; ++level) {
    double voxels = 1;
    for (int axis = 0; axis < 3; ++axis) {
      voxels *= std::ceil(double(fixed.geometry.size[axis]) / settings.shrink_factors[level]);
    }
    percentages[level] = std::min(settings.sampling_percentage, double(settings.max_samples) / voxels);
  }
  method->SetMetricSamplingPercentagePerLevel(percentages);
  method->MetricSamplingReinitializeSeed(static_cast<int>(settings.seed % 2147483647u));
  method->SetNumberOfWorkUnits(static_cast<itk::ThreadIdType>(std::max(1, settings.threads)));

  Result result;
  auto iteration_observer = IterationObserver::New();
  iteration_observer->configure(optimizer, &callbacks, levels, settings.min_step_mm / settings.max_step_mm);
  optimizer->AddObserver(itk::IterationEvent(), iteration_observer);
  auto level_observer = LevelObserver<Method>::New();
  level_observer->configure(method, optimizer, iteration_observer, &settings, &result.levels);
  method->AddObserver(itk::MultiResolutionIterationEvent(), level_observer);

  try {
    method->Update();
  } catch (const itk::ExceptionObject& error) {
    if (iteration_observer->cancelled()) throw Cancelled();
    const std::string reason = error.GetDescription();
    if (reason.find("samples") != std::string::npos || reason.find("overlap") != std::string::npos) {
      throw std::runtime_error("the volumes barely overlap during optimisation (ITK: " + reason +
                               "); check the initial alignment");
    }
    throw std::runtime_error("registration failed: " + reason);
  }
  if (iteration_observer->cancelled()) throw Cancelled();
  result.levels.push_back(report_level(*optimizer, levels - 1, settings.shrink_factors.back()));

  result.transform = to_transform(*method->GetModifiableTransform(), kind);
  result.transform.description = moving.metadata.source + " -> " + fixed.metadata.source;
  result.final_metric = result.levels.back().final_metric;
  for (const LevelReport& level : result.levels) result.total_iterations += level.iterations;
  const LevelReport& last = result.levels.back();
  if (settings.require_convergence && !last.converged) {
    std::ostringstream message;
    message << "the optimisation did not converge: the final level stopped after " << last.iterations
            << " iterations (" << last.stop_condition << ") with metric " << last.final_metric
            << "; raise 'iterations', check the initial alignment, or set require_convergence to false";
    throw std::runtime_error(message.str());
  }
  return result;
}

}  // namespace

Result register_volumes(const Volume& fixed, const Volume& moving, const Settings& settings, const Callbacks& callbacks) {
  check_not_constant(fixed, "fixed");
  check_not_constant(moving, "moving");
  const std::size_t levels = settings.shrink_factors.size();
  if (levels == 0 || settings.smoothing_sigmas_mm.size() != levels || settings.iterations.size() != levels) {
    throw std::invalid_argument("shrink_factors, smoothing_sigmas_mm and iterations need one entry per level (got " +
                                std::to_string(settings.shrink_factors.size()) + ", " +
                                std::to_string(settings.smoothing_sigmas_mm.size()) + ", " +
                                std::to_string(settings.iterations.size()) + ")");
  }
  if (settings.transform_kind == "affine") return run<itk::AffineTransform<double, 3>>(fixed, moving, settings, callbacks, "affine");
  return run<itk::Euler3DTransform<double>>(fixed, moving, settings, callbacks, "rigid");
}

}  // namespace fusionflow::registration
