#include "registration.hpp"

#include <itkAffineTransform.h>
#include <itkCenteredTransformInitializer.h>
#include <itkEuler3DTransform.h>
#include <itkSmoothingRecursiveGaussianImageFilter.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>
#include <sstream>
#include <stdexcept>

#include "fusionflow/itk_bridge.hpp"
#include "fusionflow/node.hpp"
#include "mattes_mi.hpp"
#include "registration_support.hpp"

namespace fusionflow::registration {

namespace {

using Image = ItkFloatImage;

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
    const double overlap =
        std::min(fixed_in_moving.high[axis], moving.high[axis]) - std::max(fixed_in_moving.low[axis], moving.low[axis]);
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

// The transform at parameters `mu`, linearised for the metric: matrix,
// offset and the parameter Jacobian, read off ITK's transform (its Jacobian
// is affine in the point, so J(center) and J(center + e_k) - J(center)
// describe it everywhere).
template <class ItkTransform>
LinearTransformState linearize(ItkTransform& transform, const std::vector<double>& mu) {
  typename ItkTransform::ParametersType parameters(static_cast<unsigned>(mu.size()));
  for (std::size_t p = 0; p < mu.size(); ++p) parameters[static_cast<unsigned>(p)] = mu[p];
  transform.SetParameters(parameters);
  LinearTransformState state;
  state.parameters = mu.size();
  for (int row = 0; row < 3; ++row) {
    for (int col = 0; col < 3; ++col) state.matrix[row * 3 + col] = transform.GetMatrix()(row, col);
    state.offset[row] = transform.GetOffset()[row];
    state.center[row] = transform.GetCenter()[row];
  }
  typename ItkTransform::JacobianType jacobian;
  auto read = [&](std::vector<double>& out) {
    out.resize(3 * mu.size());
    for (unsigned row = 0; row < 3; ++row) {
      for (unsigned p = 0; p < mu.size(); ++p) out[row * mu.size() + p] = jacobian(row, p);
    }
  };
  const auto center = transform.GetCenter();
  transform.ComputeJacobianWithRespectToParameters(center, jacobian);
  read(state.jacobian_at_center);
  for (unsigned axis = 0; axis < 3; ++axis) {
    auto point = center;
    point[axis] += 1.0;
    transform.ComputeJacobianWithRespectToParameters(point, jacobian);
    read(state.jacobian_slope[axis]);
    for (std::size_t at = 0; at < state.jacobian_slope[axis].size(); ++at) {
      state.jacobian_slope[axis][at] -= state.jacobian_at_center[at];
    }
  }
  return state;
}

// d point / d mu at x (3 x P, row-major).
std::vector<double> jacobian_at(const LinearTransformState& t, const std::array<double, 3>& x) {
  std::vector<double> j = t.jacobian_at_center;
  for (int axis = 0; axis < 3; ++axis) {
    for (std::size_t at = 0; at < j.size(); ++at) j[at] += (x[axis] - t.center[axis]) * t.jacobian_slope[axis][at];
  }
  return j;
}

std::array<double, 3> map_point(const LinearTransformState& t, const std::array<double, 3>& x) {
  std::array<double, 3> y{};
  for (int row = 0; row < 3; ++row) {
    y[row] = t.offset[row] + t.matrix[row * 3] * x[0] + t.matrix[row * 3 + 1] * x[1] + t.matrix[row * 3 + 2] * x[2];
  }
  return y;
}

// Points spread over the sampled region: a 5 x 5 x 5 grid between the
// lattice corners (corner index bits: x, y, z).
std::vector<std::array<double, 3>> spread_points(const std::array<std::array<double, 3>, 8>& corners) {
  std::vector<std::array<double, 3>> points;
  for (int k = 0; k < 5; ++k) {
    for (int j = 0; j < 5; ++j) {
      for (int i = 0; i < 5; ++i) {
        const double w[3] = {i / 4.0, j / 4.0, k / 4.0};
        std::array<double, 3> p{0, 0, 0};
        for (int corner = 0; corner < 8; ++corner) {
          double weight = 1;
          for (int axis = 0; axis < 3; ++axis) weight *= (corner >> axis & 1) ? w[axis] : 1 - w[axis];
          for (int axis = 0; axis < 3; ++axis) p[axis] += weight * corners[corner][axis];
        }
        points.push_back(p);
      }
    }
  }
  return points;
}

// Largest motion (mm) of the corner points caused by a parameter change
// `delta`, to first order.
double largest_motion(const LinearTransformState& t, const std::array<std::array<double, 3>, 8>& corners,
                      const std::vector<double>& delta) {
  double largest = 0;
  for (const auto& x : corners) {
    const std::vector<double> j = jacobian_at(t, x);
    double squared = 0;
    for (std::size_t row = 0; row < 3; ++row) {
      double motion = 0;
      for (std::size_t p = 0; p < delta.size(); ++p) motion += j[row * delta.size() + p] * delta[p];
      squared += motion * motion;
    }
    largest = std::max(largest, std::sqrt(squared));
  }
  return largest;
}

template <class ItkTransform>
Result run(const Volume& fixed, const Volume& moving, const Settings& settings, const RunControl& control,
           const std::string& kind) {
  const std::size_t levels = settings.shrink_factors.size();
  // Views, not copies: registration only reads the images.
  const auto fixed_image = to_itk_view(fixed);
  const auto moving_image = to_itk_view(moving);

  auto transform = ItkTransform::New();
  if (settings.initialization != Initialization::None) {
    using Initializer = itk::CenteredTransformInitializer<ItkTransform, Image, Image>;
    auto initializer = Initializer::New();
    initializer->SetTransform(transform);
    initializer->SetFixedImage(fixed_image);
    initializer->SetMovingImage(moving_image);
    if (settings.initialization == Initialization::Moments)
      initializer->MomentsOn();
    else
      initializer->GeometryOn();
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

  std::vector<double> mu(transform->GetNumberOfParameters());
  for (std::size_t p = 0; p < mu.size(); ++p) mu[p] = transform->GetParameters()[static_cast<unsigned>(p)];
  const std::size_t P = mu.size();
  const std::size_t samples = static_cast<std::size_t>(std::max(1L, settings.samples_per_iteration));
  const std::size_t window = static_cast<std::size_t>(std::max(1, settings.convergence_window));
  const GainSchedule gain_schedule;

  Result result;
  for (std::size_t level = 0; level < levels; ++level) {
    const int shrink = settings.shrink_factors[level];
    const auto fixed_level = smoothed(fixed_image, settings.smoothing_sigmas_mm[level]);
    const auto moving_level = smoothed(moving_image, settings.smoothing_sigmas_mm[level]);
    const MattesMutualInformation metric(image_ref(*fixed_level), image_ref(*moving_level), settings.histogram_bins,
                                         shrink);
    const auto corners = metric.lattice_corners();
    const auto spread = spread_points(corners);

    // Parameter scales (as elastix's AutomaticScalesEstimation): the mean
    // squared voxel motion per unit of each parameter, so that a step
    // moves voxels about equally through every parameter.
    std::vector<double> scales(P, 0.0);
    {
      const LinearTransformState state = linearize(*transform, mu);
      for (const auto& x : spread) {
        const std::vector<double> j = jacobian_at(state, x);
        for (std::size_t p = 0; p < P; ++p) {
          for (std::size_t row = 0; row < 3; ++row) scales[p] += j[row * P + p] * j[row * P + p];
        }
      }
      for (double& scale : scales) scale = std::max(scale / double(spread.size()), 1e-12);
    }

    // The step bound shrinks with the square of the shrink factor (2, 0.5,
    // 0.125 mm for the defaults): finer levels start close to the answer, and
    // smaller steps there made the result less dependent on the sample
    // stream (TRE spread over seeds on the phantom roughly halved).
    const double relative_shrink = double(shrink) / double(settings.shrink_factors.front());
    const double step_mm = settings.max_step_mm * relative_shrink * relative_shrink;
    const int max_iterations = std::max(1, settings.iterations[level]);
    double a0 = 0, time = 0, value = 0;
    std::vector<double> previous_gradient, direction(P);
    std::vector<std::vector<double>> history;
    auto mean_of = [&](std::size_t begin, std::size_t end) {
      std::vector<double> mean(P, 0.0);
      for (std::size_t k = begin; k < end; ++k) {
        for (std::size_t p = 0; p < P; ++p) mean[p] += history[k][p];
      }
      for (double& m : mean) m /= double(end - begin);
      return mean;
    };
    for (int iteration = 0; iteration < max_iterations; ++iteration) {
      control.cancel_point();
      const LinearTransformState state = linearize(*transform, mu);
      const MetricValue metric_value =
          metric.evaluate(state, MattesMutualInformation::stream_key(settings.seed, level, std::size_t(iteration)),
                          samples, control.threads);
      check_overlap_during_optimisation(metric_value, samples, level, "the initial alignment");
      value = metric_value.value;
      const std::vector<double>& gradient = metric_value.derivative;
      for (std::size_t p = 0; p < P; ++p) direction[p] = gradient[p] / scales[p];
      if (iteration == 0) {
        // The first step moves voxels by at most step_mm.
        const double motion = largest_motion(state, corners, direction);
        a0 = motion > 0 ? step_mm / motion : 0.0;
      } else {
        // Adaptive time from the angle between this and the previous gradient
        // (in the scaled metric): Klein et al.'s sigmoid of their inner
        // product, normalised here so that it needs no noise estimate.
        time = gain_schedule.next_time(time, gradient_cosine(gradient, previous_gradient, &scales));
      }
      previous_gradient = gradient;
      double gain = gain_schedule.gain(a0, time);
      // Never a step larger than step_mm (a gradient spike from an unlucky sample set).
      const double motion = gain * largest_motion(state, corners, direction);
      if (motion > step_mm) gain *= step_mm / motion;
      for (std::size_t p = 0; p < P; ++p) mu[p] -= gain * direction[p];
      history.push_back(mu);
      control.report((double(level) + double(iteration + 1) / max_iterations) / double(levels));
    }

    // Like elastix's ASGD, every level runs its iterations. Its answer is the
    // mean of the last two windows of iterates (Polyak-Ruppert averaging:
    // most of the sampling noise of single iterates cancels), and it has
    // converged when the means of those two windows are closer than
    // convergence_mm (RMS voxel motion over the sampled region).
    LevelReport report{static_cast<int>(level), shrink, static_cast<int>(history.size()), value, "", false};
    const std::size_t n = history.size();
    char text[200];
    if (n >= 2 * window) {
      const auto a = linearize(*transform, mean_of(n - 2 * window, n - window));
      const auto b = linearize(*transform, mean_of(n - window, n));
      double squared = 0;
      for (const auto& x : spread) {
        const auto ya = map_point(a, x), yb = map_point(b, x);
        squared +=
            (ya[0] - yb[0]) * (ya[0] - yb[0]) + (ya[1] - yb[1]) * (ya[1] - yb[1]) + (ya[2] - yb[2]) * (ya[2] - yb[2]);
      }
      const double moved = std::sqrt(squared / double(spread.size()));
      report.converged = moved < settings.convergence_mm;
      std::snprintf(text, sizeof text,
                    "%s: the mean position moved %.3f mm between the last two windows of %zu iterations (%s %g mm)",
                    report.converged ? "converged" : "still moving", moved, window,
                    report.converged ? "<" : ">=", settings.convergence_mm);
    } else {
      std::snprintf(text, sizeof text, "too few iterations to judge convergence (2 windows of %zu needed)", window);
    }
    report.stop_condition = text;
    mu = mean_of(n - std::min(n, 2 * window), n);
    result.levels.push_back(report);
  }
  linearize(*transform, mu);
  linearize(*transform, mu);

  result.transform = to_transform(*transform, kind);
  result.transform.description = moving.metadata.source + " -> " + fixed.metadata.source;
  result.final_metric = result.levels.back().final_metric;
  for (const LevelReport& level : result.levels) result.total_iterations += level.iterations;
  const LevelReport& last = result.levels.back();
  if (settings.require_convergence && !last.converged) {
    std::ostringstream message;
    message << "the optimisation did not converge: the final level stopped after " << last.iterations << " iterations ("
            << last.stop_condition << ") with metric " << last.final_metric
            << "; raise 'iterations', check the initial alignment, or set require_convergence to false";
    throw std::runtime_error(message.str());
  }
  return result;
}

}  // namespace

void check_registrable(const Volume& volume, const char* role) {
  const auto [low, high] = std::minmax_element(volume.voxels.begin(), volume.voxels.end());
  if (volume.voxels.empty() || *low == *high) {
    throw std::runtime_error(std::string("the ") + role + " volume (" + volume.metadata.source + ") is constant" +
                             (volume.voxels.empty() ? "" : " (every voxel is " + std::to_string(*low) + ")") +
                             ": mutual information has nothing to align; check the input");
  }
  for (float value : volume.voxels) {
    if (!std::isfinite(value)) {
      throw std::runtime_error(std::string("the ") + role + " volume (" + volume.metadata.source +
                               ") contains NaN or infinite voxels; replace them when loading");
    }
  }
}

ItkFloatImage::ConstPointer smoothed(const ItkFloatImage::ConstPointer& image, double sigma_mm) {
  if (sigma_mm <= 0) return image;
  using Filter = itk::SmoothingRecursiveGaussianImageFilter<Image, Image>;
  auto filter = Filter::New();
  filter->SetInput(image);
  filter->SetSigma(sigma_mm);  // physical units
  filter->Update();
  return filter->GetOutput();
}

ImageRef image_ref(const ItkFloatImage& image) { return {image.GetBufferPointer(), geometry_of(image)}; }

void check_overlap_during_optimisation(const MetricValue& value, std::size_t samples, std::size_t level,
                                       const char* check) {
  if (value.valid_samples * 20 >= samples) return;
  throw std::runtime_error("the volumes barely overlap during optimisation: only " +
                           std::to_string(value.valid_samples) + " of " + std::to_string(samples) +
                           " samples of the fixed volume map inside the moving volume at level " +
                           std::to_string(level) + "; check " + check);
}

Result register_volumes(const Volume& fixed, const Volume& moving, const Settings& settings,
                        const RunControl& control) {
  check_registrable(fixed, "fixed");
  check_registrable(moving, "moving");
  const std::size_t levels = settings.shrink_factors.size();
  if (levels == 0 || settings.smoothing_sigmas_mm.size() != levels || settings.iterations.size() != levels) {
    throw std::invalid_argument("shrink_factors, smoothing_sigmas_mm and iterations need one entry per level (got " +
                                std::to_string(settings.shrink_factors.size()) + ", " +
                                std::to_string(settings.smoothing_sigmas_mm.size()) + ", " +
                                std::to_string(settings.iterations.size()) + ")");
  }
  if (settings.transform_kind == TransformKind::Affine)
    return run<itk::AffineTransform<double, 3>>(fixed, moving, settings, control, "affine");
  return run<itk::Euler3DTransform<double>>(fixed, moving, settings, control, "rigid");
}

}  // namespace fusionflow::registration
