#include "mattes_mi.hpp"

#include <fusionflow/sampling.hpp>

#include <tbb/blocked_range.h>
#include <tbb/parallel_for.h>
#include <tbb/task_arena.h>
#include <tbb/task_group.h>

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <string>
#include <utility>

namespace fusionflow::registration {

namespace {

constexpr int padding = 2;  // histogram bins kept free at each end (as ITK's Mattes metric)

// SplitMix64 (Steele, Lea and Flood 2014): a tiny, well-tested generator and
// 64-bit mixer. Hand-written because the sample streams must be identical on
// every platform and standard library (std::uniform_int_distribution is
// implementation-defined).
std::uint64_t mix(std::uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

struct SplitMix64 {
  std::uint64_t state;
  // mix() adds the golden gamma before finalising: the value of the state
  // after the step, as SplitMix64's next() defines it.
  std::uint64_t next() {
    const std::uint64_t value = mix(state);
    state += 0x9e3779b97f4a7c15ull;
    return value;
  }
  // Uniform in [0, n): the top 53 bits as a double in [0, 1), times n. The
  // bias is below 2^-53 * n, irrelevant for sampling voxels.
  std::size_t below(std::size_t n) {
    const double unit = double(next() >> 11) * (1.0 / 9007199254740992.0);
    return std::min(n - 1, static_cast<std::size_t>(unit * double(n)));
  }
};

// Cubic B-spline and its derivative (the Parzen window of the moving
// intensity; Mattes et al. 2003, eq. 3).
double bspline3(double u) {
  const double a = std::abs(u);
  if (a < 1) return (4.0 - 6.0 * a * a + 3.0 * a * a * a) / 6.0;
  if (a < 2) return (2.0 - a) * (2.0 - a) * (2.0 - a) / 6.0;
  return 0.0;
}

double bspline3_derivative(double u) {
  const double a = std::abs(u);
  if (a < 1) return -2.0 * u + 1.5 * u * a;
  if (a < 2) return (u < 0 ? 0.5 : -0.5) * (2.0 - a) * (2.0 - a);
  return 0.0;
}

// Affine maps of a grid, read off Geometry's own conversions (so direction
// and spacing conventions stay in one place).
std::array<double, 9> index_to_point_matrix(const Geometry& g) {
  std::array<double, 9> m{};
  const auto origin = g.index_to_point({0, 0, 0});
  for (int col = 0; col < 3; ++col) {
    std::array<double, 3> unit{0, 0, 0};
    unit[col] = 1;
    const auto p = g.index_to_point(unit);
    for (int row = 0; row < 3; ++row) m[row * 3 + col] = p[row] - origin[row];
  }
  return m;
}

std::array<double, 9> point_to_index_matrix(const Geometry& g) {
  std::array<double, 9> m{};
  const auto at_origin = g.point_to_index(g.origin);
  for (int col = 0; col < 3; ++col) {
    auto p = g.origin;
    p[col] += 1;
    const auto index = g.point_to_index(p);
    for (int row = 0; row < 3; ++row) m[row * 3 + col] = index[row] - at_origin[row];
  }
  return m;
}

std::pair<float, float> value_range(const ImageRef& image) {
  const std::size_t n = image.geometry.voxel_count();
  const auto [low, high] = std::minmax_element(image.voxels, image.voxels + n);
  return {*low, *high};
}

}  // namespace

std::array<double, 3> LinearMetricTransform::map(const std::array<double, 3>& x) const {
  const LinearTransformState& t = state_;
  std::array<double, 3> y{};
  for (int row = 0; row < 3; ++row) {
    y[row] = t.offset[row] + t.matrix[row * 3] * x[0] + t.matrix[row * 3 + 1] * x[1] + t.matrix[row * 3 + 2] * x[2];
  }
  return y;
}

void LinearMetricTransform::slope(const std::array<double, 3>& x, const std::array<double, 3>& grad,
                                  std::uint32_t* indices, double* values) const {
  // d moving value / d mu = grad^T * (J_center + sum_k (x - c)_k J_slope[k]).
  const LinearTransformState& t = state_;
  const std::size_t P = t.parameters;
  const double dx0 = x[0] - t.center[0], dx1 = x[1] - t.center[1], dx2 = x[2] - t.center[2];
  for (std::size_t p = 0; p < P; ++p) {
    double value = 0;
    for (int row = 0; row < 3; ++row) {
      const std::size_t at = std::size_t(row) * P + p;
      value += grad[row] * (t.jacobian_at_center[at] + dx0 * t.jacobian_slope[0][at] + dx1 * t.jacobian_slope[1][at] +
                            dx2 * t.jacobian_slope[2][at]);
    }
    indices[p] = static_cast<std::uint32_t>(p);
    values[p] = value;
  }
}

std::array<double, 3> BSplineMetricTransform::map(const std::array<double, 3>& x) const {
  const std::array<double, 3> d = deformation_.displacement(x);
  return linear_.apply_linear({x[0] + d[0], x[1] + d[1], x[2] + d[2]});
}

void BSplineMetricTransform::slope(const std::array<double, 3>& x, const std::array<double, 3>& grad,
                                   std::uint32_t* indices, double* values) const {
  // dy / dc(j, a) = B_j(x) * matrix column a, so d moving / d c(j, a) =
  // B_j(x) * (matrix^T grad)_a.
  std::array<double, 3> pulled{};
  for (int col = 0; col < 3; ++col) {
    pulled[col] = linear_.matrix[0 * 3 + col] * grad[0] + linear_.matrix[1 * 3 + col] * grad[1] +
                  linear_.matrix[2 * 3 + col] * grad[2];
  }
  BSplineDeformation::Support support;
  if (!deformation_.support(x, support)) {
    std::fill(indices, indices + touched(), 0u);
    std::fill(values, values + touched(), 0.0);
    return;
  }
  const std::size_t count = deformation_.lattice.voxel_count();
  deformation_.for_each_control_point(support, [&](std::size_t n, std::size_t point, double w) {
    for (std::size_t axis = 0; axis < 3; ++axis) {
      indices[n * 3 + axis] = static_cast<std::uint32_t>(axis * count + point);
      values[n * 3 + axis] = w * pulled[axis];
    }
  });
}

// Per-chunk results: partial histogram and the per-sample terms the
// derivative pass needs.
struct MattesMutualInformation::Chunk {
  std::vector<double> joint;                 // bins x bins, fixed bin major
  std::vector<int> fixed_bin;                // per valid sample
  std::vector<double> moving_term;           // per valid sample: continuous moving bin position
  std::vector<double> moving_slope;          // per valid sample x touched: d moving value / d mu
  std::vector<std::uint32_t> slope_indices;  // per valid sample x touched: which mu
  std::vector<double> derivative;            // parameters
  std::size_t valid = 0;
};

MattesMutualInformation::MattesMutualInformation(ImageRef fixed, ImageRef moving, int bins, int stride)
    : fixed_(std::move(fixed)), moving_(std::move(moving)), bins_(bins), stride_(std::max(1, stride)) {
  if (bins_ < 8) throw std::invalid_argument("Mattes mutual information needs at least 8 histogram bins");
  for (int axis = 0; axis < 3; ++axis) {
    if (moving_.geometry.size[axis] < 2) {
      throw std::invalid_argument("the moving volume is thinner than 2 voxels along axis " + std::to_string(axis));
    }
    if (fixed_.geometry.size[axis] < 1) throw std::invalid_argument("the fixed volume is empty");
    const std::size_t s = std::size_t(stride_);
    lattice_offset_[axis] = std::min<std::size_t>((s - 1) / 2, fixed_.geometry.size[axis] - 1);
    lattice_size_[axis] = (fixed_.geometry.size[axis] - 1 - lattice_offset_[axis]) / s + 1;
  }
  fixed_index_to_point_ = index_to_point_matrix(fixed_.geometry);
  moving_point_to_index_ = point_to_index_matrix(moving_.geometry);

  // Intensity -> continuous bin, as ITK's Mattes metric: the range spans
  // bins - 2 * padding bins.
  const auto [fixed_low, fixed_high] = value_range(fixed_);
  const auto [moving_low, moving_high] = value_range(moving_);
  if (!(fixed_high > fixed_low) || !(moving_high > moving_low)) {
    throw std::invalid_argument("Mattes mutual information of a constant image is undefined");
  }
  fixed_bin_size_ = (double(fixed_high) - fixed_low) / double(bins_ - 2 * padding);
  fixed_norm_min_ = double(fixed_low) / fixed_bin_size_ - padding;
  moving_bin_size_ = (double(moving_high) - moving_low) / double(bins_ - 2 * padding);
  moving_norm_min_ = double(moving_low) / moving_bin_size_ - padding;
}

std::uint64_t MattesMutualInformation::stream_key(std::uint64_t seed, std::size_t level, std::size_t iteration) {
  return mix(mix(mix(seed) ^ std::uint64_t(level)) ^ std::uint64_t(iteration));
}

std::array<std::array<double, 3>, 8> MattesMutualInformation::lattice_corners() const {
  std::array<std::array<double, 3>, 8> corners{};
  for (int corner = 0; corner < 8; ++corner) {
    std::array<double, 3> index{};
    for (int axis = 0; axis < 3; ++axis) {
      index[axis] =
          double(lattice_offset_[axis] + ((corner >> axis & 1) ? (lattice_size_[axis] - 1) * std::size_t(stride_) : 0));
    }
    corners[corner] = fixed_.geometry.index_to_point(index);
  }
  return corners;
}

void MattesMutualInformation::sample_chunk(const MetricTransform& t, std::uint64_t key, std::size_t chunk,
                                           std::size_t count, Chunk& out) const {
  const std::size_t touched = t.touched();
  out.joint.assign(std::size_t(bins_) * std::size_t(bins_), 0.0);
  out.fixed_bin.clear();
  out.moving_term.clear();
  out.moving_slope.clear();
  out.slope_indices.clear();
  out.valid = 0;
  SplitMix64 rng{mix(key ^ mix(chunk + 0x5bd1e995ull))};
  const Geometry& fg = fixed_.geometry;
  const Geometry& mg = moving_.geometry;
  const std::array<double, 3> fixed_origin = fg.origin;
  std::vector<double> slope(touched);
  std::vector<std::uint32_t> slope_index(touched);
  for (std::size_t s = 0; s < count; ++s) {
    // A fixed voxel on the lattice.
    std::array<std::size_t, 3> index{};
    for (int axis = 0; axis < 3; ++axis) {
      index[axis] = lattice_offset_[axis] + rng.below(lattice_size_[axis]) * std::size_t(stride_);
    }
    const float fixed_value = fixed_.voxels[fg.linear_index(index[0], index[1], index[2])];
    std::array<double, 3> x{};
    for (int row = 0; row < 3; ++row) {
      x[row] = fixed_origin[row] + fixed_index_to_point_[row * 3 + 0] * double(index[0]) +
               fixed_index_to_point_[row * 3 + 1] * double(index[1]) +
               fixed_index_to_point_[row * 3 + 2] * double(index[2]);
    }
    // Its image in the moving volume, as a continuous index.
    const std::array<double, 3> y = t.map(x);
    std::array<double, 3> u{};
    for (int row = 0; row < 3; ++row) {
      u[row] = moving_point_to_index_[row * 3] * (y[0] - mg.origin[0]) +
               moving_point_to_index_[row * 3 + 1] * (y[1] - mg.origin[1]) +
               moving_point_to_index_[row * 3 + 2] * (y[2] - mg.origin[2]);
    }
    TrilinearCell cell;
    if (!locate_trilinear(mg.size, u, TrilinearDomain::VoxelCentres, cell)) continue;
    const TrilinearSample moving_sample = trilinear_value_and_gradient(moving_.voxels, cell);
    const double moving_value = moving_sample.value;
    const std::array<double, 3>& grad_index = moving_sample.gradient;
    // Physical gradient: (d index / d point)^T * gradient in index units.
    std::array<double, 3> grad{};
    for (int col = 0; col < 3; ++col) {
      grad[col] = moving_point_to_index_[0 * 3 + col] * grad_index[0] +
                  moving_point_to_index_[1 * 3 + col] * grad_index[1] +
                  moving_point_to_index_[2 * 3 + col] * grad_index[2];
    }
    t.slope(x, grad, slope_index.data(), slope.data());
    // Histogram bins.
    const double fixed_term = double(fixed_value) / fixed_bin_size_ - fixed_norm_min_;
    const int fixed_bin = std::clamp(static_cast<int>(fixed_term), padding, bins_ - padding - 1);
    const double moving_term = moving_value / moving_bin_size_ - moving_norm_min_;
    const int moving_bin = std::clamp(static_cast<int>(moving_term), 1, bins_ - 3);
    double* row = out.joint.data() + std::size_t(fixed_bin) * std::size_t(bins_);
    for (int k = moving_bin - 1; k <= moving_bin + 2; ++k) row[k] += bspline3(double(k) - moving_term);
    out.fixed_bin.push_back(fixed_bin);
    out.moving_term.push_back(moving_term);
    out.moving_slope.insert(out.moving_slope.end(), slope.begin(), slope.end());
    out.slope_indices.insert(out.slope_indices.end(), slope_index.begin(), slope_index.end());
    ++out.valid;
  }
}

MetricValue MattesMutualInformation::evaluate(const LinearTransformState& transform, std::uint64_t key,
                                              std::size_t samples, int threads) const {
  return evaluate(LinearMetricTransform(transform), key, samples, threads);
}

MetricValue MattesMutualInformation::evaluate(const MetricTransform& transform, std::uint64_t key, std::size_t samples,
                                              int threads) const {
  const std::size_t P = transform.parameters();
  const std::size_t touched = transform.touched();
  const std::size_t bins = std::size_t(bins_);
  const std::size_t chunks = (samples + chunk_size - 1) / chunk_size;
  std::vector<Chunk> parts(chunks);
  auto count_of = [&](std::size_t c) { return std::min(chunk_size, samples - c * chunk_size); };
  auto parallel = [&](auto&& body) {
    auto loop = [&] {
      // An isolated context: cancelling the enclosing work (e.g. the pipeline
      // graph after another node failed) must not skip chunks silently; the
      // registration checks for cancellation between iterations.
      tbb::task_group_context context(tbb::task_group_context::isolated);
      tbb::parallel_for(
          tbb::blocked_range<std::size_t>(0, chunks, 1),
          [&](const tbb::blocked_range<std::size_t>& r) {
            for (std::size_t c = r.begin(); c != r.end(); ++c) body(c);
          },
          context);
    };
    const int wanted = std::max(1, threads);
    if (wanted == 1) {
      for (std::size_t c = 0; c < chunks; ++c) body(c);
    } else if (tbb::this_task_arena::max_concurrency() <= wanted) {
      loop();
    } else {
      tbb::task_arena arena(wanted);
      arena.execute(loop);
    }
  };

  // Pass 1: samples, partial histograms.
  parallel([&](std::size_t c) { sample_chunk(transform, key, c, count_of(c), parts[c]); });

  // Ordered reduction: chunk 0, 1, 2, ... whatever thread computed them.
  MetricValue result;
  result.samples = samples;
  result.derivative.assign(P, 0.0);
  std::vector<double> joint(bins * bins, 0.0);
  for (const Chunk& part : parts) {
    for (std::size_t b = 0; b < joint.size(); ++b) joint[b] += part.joint[b];
    result.valid_samples += part.valid;
  }
  if (result.valid_samples == 0) return result;
  const double n = double(result.valid_samples);
  std::vector<double> fixed_marginal(bins, 0.0), moving_marginal(bins, 0.0);
  for (std::size_t i = 0; i < bins; ++i) {
    for (std::size_t k = 0; k < bins; ++k) {
      joint[i * bins + k] /= n;
      fixed_marginal[i] += joint[i * bins + k];
      moving_marginal[k] += joint[i * bins + k];
    }
  }
  double mi = 0;
  std::vector<double> log_ratio(bins * bins, 0.0);  // log(p(i,k) / p_moving(k))
  for (std::size_t i = 0; i < bins; ++i) {
    for (std::size_t k = 0; k < bins; ++k) {
      const double p = joint[i * bins + k];
      if (p <= 0 || moving_marginal[k] <= 0) continue;
      log_ratio[i * bins + k] = std::log(p / moving_marginal[k]);
      mi += p * (log_ratio[i * bins + k] - std::log(fixed_marginal[i]));
    }
  }
  result.value = -mi;

  // Pass 2: d(-MI)/dmu = 1 / (n * moving bin size) * sum_x coef(x) * d moving(x) / d mu,
  // coef(x) = sum_k log_ratio(fixed bin(x), k) * B3'(k - moving term(x)).
  parallel([&](std::size_t c) {
    Chunk& part = parts[c];
    part.derivative.assign(P, 0.0);
    for (std::size_t s = 0; s < part.valid; ++s) {
      const double term = part.moving_term[s];
      const int moving_bin = std::clamp(static_cast<int>(term), 1, bins_ - 3);
      const double* row = log_ratio.data() + std::size_t(part.fixed_bin[s]) * bins;
      double coef = 0;
      for (int k = moving_bin - 1; k <= moving_bin + 2; ++k) coef += row[k] * bspline3_derivative(double(k) - term);
      const double* slope = part.moving_slope.data() + s * touched;
      const std::uint32_t* index = part.slope_indices.data() + s * touched;
      for (std::size_t m = 0; m < touched; ++m) part.derivative[index[m]] += coef * slope[m];
    }
  });
  const double scale = 1.0 / (n * moving_bin_size_);
  for (const Chunk& part : parts) {
    for (std::size_t p = 0; p < P; ++p) result.derivative[p] += part.derivative[p];
  }
  for (double& d : result.derivative) d *= scale;
  return result;
}

}  // namespace fusionflow::registration
