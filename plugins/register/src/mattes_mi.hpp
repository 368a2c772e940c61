// Mattes mutual information of a fixed and a moving image under a linear
// (rigid or affine) or B-spline transform, with its derivative with respect
// to the transform parameters: deterministic for any number of threads.
//
// Why our own and not ITK's MattesMutualInformationImageToImageMetricv4: ITK
// adds each work unit's histogram-derivative buffer into a shared array in the
// order the threads finish, so its result changes in the last bits with the
// thread count (and a single work unit is slow). Here the samples are split
// into chunks of a FIXED size; every chunk writes its partial histogram and
// derivative into its own slot, and the slots are summed serially in chunk
// order. The floating-point operations, and so the result, are the same
// whether one thread or many computed the chunks.
//
// The estimator is the one of Mattes et al. (IEEE TMI 22(1), 2003) as ITK
// implements it: a joint histogram with a zero-order (box) Parzen window on
// the fixed intensity and a cubic B-spline window on the moving intensity,
// two padding bins at each end, and the analytic derivative
//   dMI/dmu = sum_ik dp(i,k)/dmu * log(p(i,k) / p_moving(k)),
// evaluated in a second pass over the samples (no bins x bins x parameters
// buffer). Moving values and gradients come from trilinear interpolation
// (the gradient is the exact derivative of the interpolant, as elastix's
// first-order B-spline interpolator gives).
//
// The samples are fresh fixed-image voxels for every evaluation (as elastix's
// "NewSamplesEveryIteration"), drawn from a stream identified by a 64-bit key
// (the registration derives it from seed, level and iteration); chunk c draws
// its samples from its own sub-stream, so the sample set does not depend on
// the thread count either.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <vector>

#include "fusionflow/transform.hpp"
#include "fusionflow/volume.hpp"

namespace fusionflow::registration {

// A read-only image in memory: voxels (x fastest) laid out on `geometry`.
struct ImageRef {
  const float* voxels = nullptr;
  Geometry geometry;
};

// A linear transform y = matrix * x + offset at the current parameters, and
// its Jacobian with respect to the parameters, which for every linear
// transform ITK has (Euler, affine, ...) is affine in x:
//   dy/dmu (3 x P, row-major) = jacobian_at_center + sum_k (x - center)_k * jacobian_slope[k].
struct LinearTransformState {
  std::array<double, 9> matrix{1, 0, 0, 0, 1, 0, 0, 0, 1};  // row-major
  std::array<double, 3> offset{0, 0, 0};
  std::array<double, 3> center{0, 0, 0};
  std::size_t parameters = 0;
  std::vector<double> jacobian_at_center;             // 3 x parameters
  std::array<std::vector<double>, 3> jacobian_slope;  // 3 x parameters each
};

// How the metric sees a transform: where a fixed point goes, and how the
// moving value there changes with the parameters. A sample's derivative
// touches at most touched() parameters (all of a linear transform's; the
// 3 x 64 coefficients around the point of a B-spline).
class MetricTransform {
 public:
  virtual ~MetricTransform() = default;
  virtual std::size_t parameters() const = 0;
  virtual std::size_t touched() const = 0;
  virtual std::array<double, 3> map(const std::array<double, 3>& x) const = 0;
  // d moving(T(x)) / d mu, given the moving image's physical gradient at
  // T(x): touched() parameter indices and values (value 0 where unused).
  virtual void slope(const std::array<double, 3>& x, const std::array<double, 3>& moving_gradient,
                     std::uint32_t* indices, double* values) const = 0;
};

class LinearMetricTransform final : public MetricTransform {
 public:
  explicit LinearMetricTransform(const LinearTransformState& state) : state_(state) {}
  std::size_t parameters() const override { return state_.parameters; }
  std::size_t touched() const override { return state_.parameters; }
  std::array<double, 3> map(const std::array<double, 3>& x) const override;
  void slope(const std::array<double, 3>& x, const std::array<double, 3>& moving_gradient, std::uint32_t* indices,
             double* values) const override;

 private:
  const LinearTransformState& state_;
};

// y = matrix * (x + D(x) - center) + center + translation: the parameters
// are D's coefficients (ITK's order), the linear part stays fixed.
class BSplineMetricTransform final : public MetricTransform {
 public:
  BSplineMetricTransform(const BSplineDeformation& deformation, const Transform& linear)
      : deformation_(deformation), linear_(linear) {}
  std::size_t parameters() const override { return deformation_.coefficients.size(); }
  std::size_t touched() const override { return 3 * 64; }
  std::array<double, 3> map(const std::array<double, 3>& x) const override;
  void slope(const std::array<double, 3>& x, const std::array<double, 3>& moving_gradient, std::uint32_t* indices,
             double* values) const override;

 private:
  const BSplineDeformation& deformation_;
  const Transform& linear_;
};

struct MetricValue {
  double value = 0;                // -MI in nats (lower is better)
  std::vector<double> derivative;  // d value / d parameters
  std::size_t samples = 0;         // drawn
  std::size_t valid_samples = 0;   // mapped inside the moving image
};

class MattesMutualInformation {
 public:
  // Samples are fixed voxels on the lattice of every `stride`-th voxel per
  // axis. Intensity ranges for the histogram are the images' min and max.
  // Throws std::invalid_argument for fewer than 8 bins, a moving image
  // thinner than 2 voxels along an axis, or constant images.
  MattesMutualInformation(ImageRef fixed, ImageRef moving, int bins, int stride);

  // Value and derivative over `samples` fresh samples from stream `key`,
  // computed with up to `threads` threads (inside the current TBB arena when
  // that is no larger). Bit-identical for any `threads`.
  MetricValue evaluate(const LinearTransformState& transform, std::uint64_t key, std::size_t samples,
                       int threads) const;
  MetricValue evaluate(const MetricTransform& transform, std::uint64_t key, std::size_t samples, int threads) const;

  // The key of the sample stream of (seed, resolution level, iteration).
  static std::uint64_t stream_key(std::uint64_t seed, std::size_t level, std::size_t iteration);

  // Samples per chunk: part of the definition of the result (changing it
  // changes the summation order), independent of the thread count.
  static constexpr std::size_t chunk_size = 256;

  // Physical extent of the sampled lattice: its 8 corner points.
  std::array<std::array<double, 3>, 8> lattice_corners() const;

 private:
  struct Chunk;
  void sample_chunk(const MetricTransform& transform, std::uint64_t key, std::size_t chunk, std::size_t count,
                    Chunk& out) const;

  ImageRef fixed_, moving_;
  int bins_;
  int stride_;
  std::array<std::size_t, 3> lattice_size_{}, lattice_offset_{};
  std::array<double, 9> fixed_index_to_point_{};   // row-major, point = origin + M * index
  std::array<double, 9> moving_point_to_index_{};  // row-major, index = M * (point - origin)
  double fixed_bin_size_ = 1, fixed_norm_min_ = 0, moving_bin_size_ = 1, moving_norm_min_ = 0;
};

}  // namespace fusionflow::registration
