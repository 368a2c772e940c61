#include "bspline_registration.hpp"

#include <tbb/blocked_range.h>
#include <tbb/parallel_for.h>
#include <tbb/task_arena.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <deque>
#include <limits>
#include <stdexcept>

#include "fusionflow/itk_bridge.hpp"
#include "mattes_mi.hpp"
#include "registration_support.hpp"

namespace fusionflow::registration {

namespace {

void check_schedule(const BSplineSettings& settings) {
  const std::size_t levels = settings.shrink_factors.size();
  if (levels == 0 || settings.smoothing_sigmas_mm.size() != levels || settings.grid_spacing_mm.size() != levels ||
      settings.iterations.size() != levels) {
    throw std::invalid_argument(
        "shrink_factors, smoothing_sigmas_mm, grid_spacing_mm and iterations need one entry per level (got " +
        std::to_string(settings.shrink_factors.size()) + ", " + std::to_string(settings.smoothing_sigmas_mm.size()) +
        ", " + std::to_string(settings.grid_spacing_mm.size()) + ", " + std::to_string(settings.iterations.size()) +
        ")");
  }
  for (std::size_t level = 0; level < levels; ++level) {
    const double spacing = settings.grid_spacing_mm[level];
    if (!(spacing > 0) || !std::isfinite(spacing)) {
      throw std::invalid_argument("grid_spacing_mm[" + std::to_string(level) + "] must be a positive number of mm");
    }
    if (level > 0) {
      const double previous = settings.grid_spacing_mm[level - 1];
      if (spacing != previous && spacing != previous / 2) {
        char text[240];
        std::snprintf(text, sizeof text,
                      "grid_spacing_mm[%zu] is %g mm after %g mm: each level keeps the previous spacing or halves it "
                      "(the lattice is refined exactly by subdivision), e.g. [64, 32, 16]",
                      level, spacing, previous);
        throw std::invalid_argument(text);
      }
    }
  }
}

// Largest move of a control point (its 3-vector) for a coefficient change.
double largest_control_motion(const std::vector<double>& delta) {
  const std::size_t count = delta.size() / 3;
  double largest = 0;
  for (std::size_t j = 0; j < count; ++j) {
    const double x = delta[j], y = delta[count + j], z = delta[2 * count + j];
    largest = std::max(largest, x * x + y * y + z * z);
  }
  return std::sqrt(largest);
}

double determinant(const std::array<double, 9>& m) {
  return m[0] * (m[4] * m[8] - m[5] * m[7]) - m[1] * (m[3] * m[8] - m[5] * m[6]) + m[2] * (m[3] * m[7] - m[4] * m[6]);
}

// The clip limit of the equalisation (in mean bin counts): 8 gave lower TRE
// than 4, 16 or none on the deformed benchmark phantoms (seeds 7 and 8).
constexpr double kEqualisationClip = 8.0;

// Contrast-limited histogram equalisation (the clip limit of Pizer et al.'s
// CLAHE, applied globally): every voxel replaced by the clipped fraction of
// voxels below it (from a 4096-bin histogram over the image's range, linear
// within a bin). Mutual information is
// unchanged by such a monotone map in theory, but its 32-bin histogram is
// not: on a CT, the brain's 10-45 HU fall into one bin of a linear layout
// from air to bone, and the metric then sees no anatomy inside the skull to
// deform. Equalised, each tissue gets bins in proportion to its volume.
std::vector<float> equalized(const ItkFloatImage& image) {
  const std::size_t n = image.GetBufferedRegion().GetNumberOfPixels();
  const float* voxels = image.GetBufferPointer();
  const auto [low_it, high_it] = std::minmax_element(voxels, voxels + n);
  const double low = *low_it, high = *high_it;
  constexpr std::size_t bins = 4096;
  std::vector<double> cdf(bins + 1, 0.0);
  const double scale = high > low ? double(bins) / (high - low) : 0.0;
  auto position = [&](float v) { return std::min(double(bins) - 1e-9, (double(v) - low) * scale); };
  for (std::size_t i = 0; i < n; ++i) cdf[static_cast<std::size_t>(position(voxels[i])) + 1] += 1.0;
  // Contrast-limited: no bin counts more than kEqualisationClip times the
  // mean, so the air around the head (half of a CT's voxels, in a few HU of
  // noise) does not spend half the range on noise.
  const double cap = kEqualisationClip * double(n) / double(bins);
  for (std::size_t b = 1; b <= bins; ++b) cdf[b] = std::min(cdf[b], cap);
  for (std::size_t b = 1; b <= bins; ++b) cdf[b] += cdf[b - 1];
  const double total = cdf[bins];
  for (double& c : cdf) c /= total;
  std::vector<float> out(n);
  for (std::size_t i = 0; i < n; ++i) {
    const double p = position(voxels[i]);
    const std::size_t b = static_cast<std::size_t>(p);
    out[i] = static_cast<float>(cdf[b] + (p - double(b)) * (cdf[b + 1] - cdf[b]));
  }
  return out;
}

template <class Body>
void in_arena(int threads, Body&& body) {
  const int wanted = std::max(1, threads);
  if (tbb::this_task_arena::max_concurrency() <= wanted) {
    body();
  } else {
    tbb::task_arena arena(wanted);
    arena.execute(body);
  }
}

}  // namespace

double bending_energy(const BSplineDeformation& deformation, double weight, std::vector<double>* gradient) {
  const Geometry& lattice = deformation.lattice;
  const std::array<std::size_t, 3>& n = lattice.size;
  if (n[0] < 3 || n[1] < 3 || n[2] < 3) return 0.0;
  const std::size_t count = lattice.voxel_count();
  const std::array<std::size_t, 3> stride{1, n[0], n[0] * n[1]};
  const std::array<double, 3>& h = lattice.spacing;
  const double interior = double((n[0] - 2) * (n[1] - 2) * (n[2] - 2));
  double total = 0;
  for (std::size_t d = 0; d < 3; ++d) {
    const double* c = deformation.coefficients.data() + d * count;
    double* g = gradient != nullptr ? gradient->data() + d * count : nullptr;
    for (std::size_t k = 1; k + 1 < n[2]; ++k)
      for (std::size_t j = 1; j + 1 < n[1]; ++j)
        for (std::size_t i = 1; i + 1 < n[0]; ++i) {
          const std::size_t at = i + n[0] * (j + n[1] * k);
          for (int a = 0; a < 3; ++a) {
            const std::size_t sa = stride[a];
            const double second = (c[at + sa] - 2.0 * c[at] + c[at - sa]) / (h[a] * h[a]);
            total += second * second;
            if (g != nullptr) {
              const double f = weight * 2.0 * second / (h[a] * h[a]) / interior;
              g[at + sa] += f;
              g[at] -= 2.0 * f;
              g[at - sa] += f;
            }
            for (int b = a + 1; b < 3; ++b) {
              const std::size_t sb = stride[b];
              const double mixed =
                  (c[at + sa + sb] - c[at + sa - sb] - c[at - sa + sb] + c[at - sa - sb]) / (4.0 * h[a] * h[b]);
              total += 2.0 * mixed * mixed;
              if (g != nullptr) {
                const double f = weight * 4.0 * mixed / (4.0 * h[a] * h[b]) / interior;
                g[at + sa + sb] += f;
                g[at + sa - sb] -= f;
                g[at - sa + sb] -= f;
                g[at - sa - sb] += f;
              }
            }
          }
        }
  }
  return total / interior;
}

BSplineResult register_bspline(const Volume& fixed, const Volume& moving, const Transform& initial,
                               const BSplineSettings& settings, const RunControl& control) {
  check_registrable(fixed, "fixed");
  check_registrable(moving, "moving");
  check_schedule(settings);
  if (initial.deformation) {
    throw std::invalid_argument(
        "the initial transform is already deformable; give register.bspline a rigid or "
        "affine one (e.g. register.rigid's)");
  }
  const std::size_t levels = settings.shrink_factors.size();
  const auto fixed_image = to_itk_view(fixed);
  const auto moving_image = to_itk_view(moving);
  const std::size_t samples = static_cast<std::size_t>(std::max(1L, settings.samples_per_iteration));
  const std::size_t window = static_cast<std::size_t>(std::max(1, settings.convergence_window));
  const GainSchedule gain_schedule;

  Transform linear = initial;
  linear.deformation.reset();
  BSplineDeformation deformation = BSplineDeformation::covering(fixed.geometry, settings.grid_spacing_mm[0]);
  BSplineResult result;
  for (std::size_t level = 0; level < levels; ++level) {
    if (level > 0 && settings.grid_spacing_mm[level] < settings.grid_spacing_mm[level - 1]) {
      deformation = deformation.refined();
    }
    const std::size_t P = deformation.coefficients.size();
    const int shrink = settings.shrink_factors[level];
    const auto fixed_level = smoothed(fixed_image, settings.smoothing_sigmas_mm[level]);
    const auto moving_level = smoothed(moving_image, settings.smoothing_sigmas_mm[level]);
    const std::vector<float> fixed_values = equalized(*fixed_level);
    const std::vector<float> moving_values = equalized(*moving_level);
    const MattesMutualInformation metric({fixed_values.data(), geometry_of(*fixed_level)},
                                         {moving_values.data(), geometry_of(*moving_level)}, settings.histogram_bins,
                                         shrink);
    const double step_mm = settings.max_step_mm * settings.grid_spacing_mm[level] / settings.grid_spacing_mm[0];
    const int max_iterations = std::max(1, settings.iterations[level]);
    double a0 = 0, time = 0, value = 0, energy = 0;
    std::vector<double> gradient, previous_gradient;
    std::deque<std::vector<double>> recent;  // the last two windows of iterates
    for (int iteration = 0; iteration < max_iterations; ++iteration) {
      control.cancel_point();
      const BSplineMetricTransform transform(deformation, linear);
      const MetricValue metric_value =
          metric.evaluate(transform, MattesMutualInformation::stream_key(settings.seed, level, std::size_t(iteration)),
                          samples, control.threads);
      check_overlap_during_optimisation(metric_value, samples, level, "the initial transform");
      gradient = metric_value.derivative;
      energy = bending_energy(deformation, settings.bending_energy_weight, &gradient);
      value = metric_value.value;
      if (iteration == 0) {
        const double motion = largest_control_motion(gradient);
        a0 = motion > 0 ? step_mm / motion : 0.0;
      } else {
        time = gain_schedule.next_time(time, gradient_cosine(gradient, previous_gradient));
      }
      previous_gradient = gradient;
      double gain = gain_schedule.gain(a0, time);
      const double motion = gain * largest_control_motion(gradient);
      if (motion > step_mm) gain *= step_mm / motion;
      for (std::size_t p = 0; p < P; ++p) deformation.coefficients[p] -= gain * gradient[p];
      recent.push_back(deformation.coefficients);
      if (recent.size() > 2 * window) recent.pop_front();
      control.report((double(level) + double(iteration + 1) / max_iterations) / double(levels));
    }

    // As the rigid engine: the level's answer is the mean of the last two
    // windows of iterates, converged when the two windows' means are closer
    // than convergence_mm (RMS over the control points).
    BSplineLevelReport report{
        static_cast<int>(level), shrink, settings.grid_spacing_mm[level], max_iterations, value, energy, "", false};
    char text[200];
    const std::size_t n = recent.size();
    std::vector<double> mean_a(P, 0.0), mean_b(P, 0.0), mean(P, 0.0);
    for (std::size_t at = 0; at < n; ++at) {
      std::vector<double>& target = (n >= 2 * window && at < window) ? mean_a : mean_b;
      for (std::size_t p = 0; p < P; ++p) {
        target[p] += recent[at][p];
        mean[p] += recent[at][p];
      }
    }
    for (double& m : mean) m /= double(n);
    if (n >= 2 * window) {
      double squared = 0;
      for (std::size_t p = 0; p < P; ++p) {
        const double difference = (mean_a[p] - mean_b[p]) / double(window);
        squared += difference * difference;
      }
      const double moved = std::sqrt(squared / double(P / 3));
      report.converged = moved < settings.convergence_mm;
      std::snprintf(text, sizeof text,
                    "%s: the mean control points moved %.3f mm (RMS) between the last two windows of %zu iterations "
                    "(%s %g mm)",
                    report.converged ? "converged" : "still moving", moved, window,
                    report.converged ? "<" : ">=", settings.convergence_mm);
    } else {
      std::snprintf(text, sizeof text, "too few iterations to judge convergence (2 windows of %zu needed)", window);
    }
    report.stop_condition = text;
    deformation.coefficients = mean;
    report.bending_energy = bending_energy(deformation, 0.0, nullptr);
    result.levels.push_back(report);
  }

  // Folding: the Jacobian determinant of x + D(x) at every fixed voxel,
  // slice by slice (min, max and counts do not depend on the order).
  const Geometry& grid = fixed.geometry;
  std::vector<double> lowest(grid.size[2], std::numeric_limits<double>::max());
  std::vector<double> highest(grid.size[2], std::numeric_limits<double>::lowest());
  std::vector<std::size_t> folded(grid.size[2], 0);
  in_arena(control.threads, [&] {
    tbb::parallel_for(std::size_t(0), grid.size[2], [&](std::size_t k) {
      for (std::size_t j = 0; j < grid.size[1]; ++j)
        for (std::size_t i = 0; i < grid.size[0]; ++i) {
          const double det = determinant(deformation.jacobian(grid.index_to_point({double(i), double(j), double(k)})));
          lowest[k] = std::min(lowest[k], det);
          highest[k] = std::max(highest[k], det);
          folded[k] += det <= 0 ? 1 : 0;
        }
    });
  });
  result.smallest_jacobian_determinant = *std::min_element(lowest.begin(), lowest.end());
  result.largest_jacobian_determinant = *std::max_element(highest.begin(), highest.end());
  for (std::size_t count : folded) result.folded_voxels += count;

  result.transform = linear;
  result.transform.kind = "bspline";
  result.transform.deformation = std::make_shared<const BSplineDeformation>(std::move(deformation));
  result.transform.description = moving.metadata.source + " -> " + fixed.metadata.source;
  result.final_metric = result.levels.back().final_metric;
  return result;
}

}  // namespace fusionflow::registration
