#include "phantom.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <functional>
#include <random>
#include <stdexcept>
#include <string_view>
#include <utility>
#include <vector>

#include <itkDiscreteGaussianImageFilter.h>
#include <itkMultiThreaderBase.h>

#include "fusionflow/atomic_file.hpp"
#include "fusionflow/itk_bridge.hpp"
#include "fusionflow/itk_transform.hpp"

namespace fusionflow::testdata {
namespace {

using nlohmann::json;

constexpr double kPi = 3.14159265358979323846;
constexpr double kFwhmPerSigma = 2.3548200450309493;  // 2 sqrt(2 ln 2)
constexpr double kDefaultFieldOfViewMm = 240.0;
constexpr int kGeneratorVersion = 1;

// ---------------------------------------------------------------------------
// Small vector algebra in LPS millimetres.

struct Vec3 {
  double x = 0.0, y = 0.0, z = 0.0;
};
Vec3 operator+(Vec3 a, Vec3 b) { return {a.x + b.x, a.y + b.y, a.z + b.z}; }
Vec3 operator-(Vec3 a, Vec3 b) { return {a.x - b.x, a.y - b.y, a.z - b.z}; }
Vec3 operator*(double s, Vec3 a) { return {s * a.x, s * a.y, s * a.z}; }
double dot(Vec3 a, Vec3 b) { return a.x * b.x + a.y * b.y + a.z * b.z; }
double norm(Vec3 a) { return std::sqrt(dot(a, a)); }
Vec3 normalized(Vec3 a) { return (1.0 / norm(a)) * a; }
Vec3 to_vec(const std::array<double, 3>& a) { return {a[0], a[1], a[2]}; }
std::array<double, 3> to_array(Vec3 v) { return {v.x, v.y, v.z}; }

struct Mat3 {
  std::array<double, 9> m{1, 0, 0, 0, 1, 0, 0, 0, 1};  // row-major
  Vec3 operator*(Vec3 v) const {
    return {m[0] * v.x + m[1] * v.y + m[2] * v.z, m[3] * v.x + m[4] * v.y + m[5] * v.z,
            m[6] * v.x + m[7] * v.y + m[8] * v.z};
  }
  Mat3 operator*(const Mat3& o) const {
    Mat3 r;
    for (int row = 0; row < 3; ++row)
      for (int col = 0; col < 3; ++col) {
        double sum = 0.0;
        for (int k = 0; k < 3; ++k) sum += m[row * 3 + k] * o.m[k * 3 + col];
        r.m[row * 3 + col] = sum;
      }
    return r;
  }
  Mat3 transposed() const {
    Mat3 r;
    for (int row = 0; row < 3; ++row)
      for (int col = 0; col < 3; ++col) r.m[row * 3 + col] = m[col * 3 + row];
    return r;
  }
};

// y = matrix * x + offset. For modality M this maps CT physical points to M's
// physical points (fixed = CT, moving = M).
struct RigidTransform {
  Mat3 matrix;
  Vec3 offset;
  Vec3 apply(Vec3 x) const { return matrix * x + offset; }
  Vec3 apply_inverse(Vec3 y) const { return matrix.transposed() * (y - offset); }
};

// Same matrix as itk::Euler3DTransform with ComputeZYX off.
Mat3 euler_matrix(const std::array<double, 3>& angles_rad) {
  const double cx = std::cos(angles_rad[0]), sx = std::sin(angles_rad[0]);
  const double cy = std::cos(angles_rad[1]), sy = std::sin(angles_rad[1]);
  const double cz = std::cos(angles_rad[2]), sz = std::sin(angles_rad[2]);
  const Mat3 rx{{1, 0, 0, 0, cx, -sx, 0, sx, cx}};
  const Mat3 ry{{cy, 0, sy, 0, 1, 0, -sy, 0, cy}};
  const Mat3 rz{{cz, -sz, 0, sz, cz, 0, 0, 0, 1}};
  return rz * rx * ry;
}

std::array<double, 3> degrees_to_radians(const std::array<double, 3>& degrees) {
  return {degrees[0] * kPi / 180.0, degrees[1] * kPi / 180.0, degrees[2] * kPi / 180.0};
}

// ITK's centred form: y = R (x - c) + c + t, so offset = c + t - R c.
RigidTransform rigid_transform(const RigidDisplacement& displacement, Vec3 centre) {
  RigidTransform transform;
  transform.matrix = euler_matrix(degrees_to_radians(displacement.rotation_deg));
  transform.offset = centre + to_vec(displacement.translation_mm) - transform.matrix * centre;
  return transform;
}

// ---------------------------------------------------------------------------
// Random numbers. Every stream is derived from (seed, stream name, index) so
// that results do not depend on evaluation order or thread count.

std::uint64_t splitmix64(std::uint64_t value) {
  value += 0x9E3779B97F4A7C15ULL;
  value = (value ^ (value >> 30)) * 0xBF58476D1CE4E5B9ULL;
  value = (value ^ (value >> 27)) * 0x94D049BB133111EBULL;
  return value ^ (value >> 31);
}

std::uint64_t stream_seed(std::uint64_t seed, std::string_view stream, std::uint64_t index) {
  std::uint64_t name_hash = 1469598103934665603ULL;  // FNV-1a
  for (char c : stream) {
    name_hash ^= static_cast<unsigned char>(c);
    name_hash *= 1099511628211ULL;
  }
  return splitmix64(splitmix64(splitmix64(seed) ^ name_hash) + index);
}

// Own conversion instead of std::uniform_real_distribution, whose algorithm
// the standard leaves open: the anatomy must not change with the library.
double uniform01(std::mt19937_64& engine) { return static_cast<double>(engine() >> 11) * 0x1.0p-53; }
double uniform(std::mt19937_64& engine, double low, double high) { return low + (high - low) * uniform01(engine); }

Vec3 random_unit_vector(std::mt19937_64& engine) {
  const double z = uniform(engine, -1.0, 1.0);
  const double phi = uniform(engine, 0.0, 2.0 * kPi);
  const double rho = std::sqrt(std::max(0.0, 1.0 - z * z));
  return {rho * std::cos(phi), rho * std::sin(phi), z};
}

// ---------------------------------------------------------------------------
// Smooth random deformation u(x) = sum_w a_w sin(k_w . x + phase_w): random
// Fourier features (Rahimi and Recht 2007) of a Gaussian random field with
// covariance exp(-|r|^2 / (2 l^2)), i.e. wave vectors k ~ N(0, I / l^2).
// Analytic, so it is the same field at any grid resolution, and its
// gradient is exact for the invertibility check.

constexpr std::size_t kDeformationWaves = 32;
constexpr double kDeformationRegionMm = 110.0;  // amplitude and invertibility are checked within this radius
constexpr double kLargestDeformationGradient = 0.9;

double determinant(const Mat3& a) {
  const auto& m = a.m;
  return m[0] * (m[4] * m[8] - m[5] * m[7]) - m[1] * (m[3] * m[8] - m[5] * m[6]) + m[2] * (m[3] * m[7] - m[4] * m[6]);
}

// Solves a x = b (Cramer's rule; a is I + a small gradient, well conditioned).
Vec3 solve(const Mat3& a, Vec3 b) {
  const double det = determinant(a);
  auto replaced = [&](int col) {
    Mat3 r = a;
    const double v[3] = {b.x, b.y, b.z};
    for (int row = 0; row < 3; ++row) r.m[row * 3 + col] = v[row];
    return determinant(r) / det;
  };
  return {replaced(0), replaced(1), replaced(2)};
}

// Standard normal by Box-Muller from our own uniform (std::normal_distribution's
// algorithm is the library's choice).
double standard_normal(std::mt19937_64& engine) {
  const double u1 = 1.0 - uniform01(engine);  // (0, 1]
  const double u2 = uniform01(engine);
  return std::sqrt(-2.0 * std::log(u1)) * std::cos(2.0 * kPi * u2);
}

class SmoothDeformation {
 public:
  struct Wave {
    Vec3 amplitude;   // mm
    Vec3 wavevector;  // rad / mm
    double phase = 0.0;
  };
  struct Statistics {
    double largest_displacement_mm = 0.0;
    double largest_gradient_norm = 0.0;  // Frobenius norm of du/dx
    double smallest_jacobian_determinant = 1.0;
    double largest_inverse_table_error_mm = 0.0;
  };

  SmoothDeformation() = default;  // none
  SmoothDeformation(const DeformationOptions& options, std::uint64_t seed, std::string_view stream)
      : options_(options) {
    if (options.amplitude_mm <= 0.0) return;
    std::mt19937_64 engine(stream_seed(seed, stream, 0));
    for (std::size_t n = 0; n < kDeformationWaves; ++n) {
      Wave wave;
      wave.amplitude = {standard_normal(engine), standard_normal(engine), standard_normal(engine)};
      wave.wavevector = (1.0 / options.smoothness_mm) *
                        Vec3{standard_normal(engine), standard_normal(engine), standard_normal(engine)};
      wave.phase = uniform(engine, 0.0, 2.0 * kPi);
      waves_.push_back(wave);
    }
    // Scale to the asked amplitude over a lattice of the region (a fifth of
    // the correlation length, at most 4 mm), then check that x + u(x)
    // cannot fold there.
    double largest = 0.0;
    for_each_region_point([&](Vec3 p) { largest = std::max(largest, norm(displacement(p))); });
    for (Wave& wave : waves_) wave.amplitude = (options.amplitude_mm / largest) * wave.amplitude;
    statistics_.largest_displacement_mm = options.amplitude_mm;
    for_each_region_point([&](Vec3 p) {
      Vec3 u;
      Mat3 g;
      displacement_and_gradient(p, u, g);
      double squared = 0.0;
      for (double v : g.m) squared += v * v;
      statistics_.largest_gradient_norm = std::max(statistics_.largest_gradient_norm, std::sqrt(squared));
      Mat3 jacobian = g;
      for (int d = 0; d < 3; ++d) jacobian.m[d * 4] += 1.0;
      statistics_.smallest_jacobian_determinant =
          std::min(statistics_.smallest_jacobian_determinant, determinant(jacobian));
    });
    if (statistics_.largest_gradient_norm >= kLargestDeformationGradient) {
      char text[320];
      std::snprintf(text, sizeof text,
                    "a deformation of amplitude %g mm and smoothness %g mm is too strong: its displacement gradient "
                    "reaches %.2f (at most %.1f keeps it invertible); lower the amplitude or raise the smoothness",
                    options.amplitude_mm, options.smoothness_mm, statistics_.largest_gradient_norm,
                    kLargestDeformationGradient);
      throw std::runtime_error(text);
    }
    build_inverse_table();
  }

  bool active() const { return !waves_.empty(); }
  const DeformationOptions& options() const { return options_; }
  const std::vector<Wave>& waves() const { return waves_; }
  const Statistics& statistics() const { return statistics_; }

  Vec3 displacement(Vec3 x) const {
    Vec3 u;
    for (const Wave& wave : waves_) u = u + std::sin(dot(wave.wavevector, x) + wave.phase) * wave.amplitude;
    return u;
  }
  Vec3 forward(Vec3 x) const { return active() ? x + displacement(x) : x; }

  // u at start + i * step for i < count, into out[i]: each wave's sine is
  // advanced by the angle-addition recurrence, one sincos per wave and row
  // instead of per point (drift below 1e-12 mm over a row).
  void displacement_along_row(Vec3 start, Vec3 step, std::size_t count, std::vector<Vec3>& out) const {
    out.assign(count, Vec3{});
    for (const Wave& wave : waves_) {
      double s = std::sin(dot(wave.wavevector, start) + wave.phase);
      double c = std::cos(dot(wave.wavevector, start) + wave.phase);
      const double delta = dot(wave.wavevector, step);
      const double ds = std::sin(delta), dc = std::cos(delta);
      for (std::size_t i = 0; i < count; ++i) {
        out[i] = out[i] + s * wave.amplitude;
        const double next_s = s * dc + c * ds;
        c = c * dc - s * ds;
        s = next_s;
      }
    }
  }

  // u(x) and du/dx (row: component of u, column: coordinate) in one pass
  // over the waves.
  void displacement_and_gradient(Vec3 x, Vec3& u, Mat3& g) const {
    u = Vec3{};
    g.m.fill(0.0);
    for (const Wave& wave : waves_) {
      const double angle = dot(wave.wavevector, x) + wave.phase;
      const double s = std::sin(angle), c = std::cos(angle);
      u = u + s * wave.amplitude;
      const double a[3] = {wave.amplitude.x, wave.amplitude.y, wave.amplitude.z};
      const double k[3] = {wave.wavevector.x, wave.wavevector.y, wave.wavevector.z};
      for (int row = 0; row < 3; ++row)
        for (int col = 0; col < 3; ++col) g.m[row * 3 + col] += c * a[row] * k[col];
    }
  }

  // The x with x + u(x) = z, by Newton's method from `start` (default
  // z - u(z)); exact to 1e-9 mm.
  Vec3 inverse(Vec3 z) const { return active() ? inverse_from(z, z - displacement(z)) : z; }
  Vec3 inverse_from(Vec3 z, Vec3 start) const {
    Vec3 x = start, u;
    Mat3 jacobian;
    for (int iteration = 0; iteration < 30; ++iteration) {
      displacement_and_gradient(x, u, jacobian);
      const Vec3 residual = x + u - z;
      if (norm(residual) < 1e-9) break;
      for (int d = 0; d < 3; ++d) jacobian.m[d * 4] += 1.0;
      x = x - solve(jacobian, residual);
    }
    return x;
  }

  // The inverse for sampling images: trilinear in a table of exact inverses
  // on a 4 mm lattice and one Newton step (the error, measured at random
  // points, is in statistics); exact outside the table.
  Vec3 fast_inverse(Vec3 z) const {
    if (!active()) return z;
    const double u[3] = {(z.x - table_origin_) / kTableSpacing, (z.y - table_origin_) / kTableSpacing,
                         (z.z - table_origin_) / kTableSpacing};
    std::size_t base[3];
    double weight[3];
    for (int axis = 0; axis < 3; ++axis) {
      if (!(u[axis] >= 0.0) || u[axis] >= double(table_size_ - 1)) return inverse(z);
      base[axis] = static_cast<std::size_t>(u[axis]);
      weight[axis] = u[axis] - double(base[axis]);
    }
    Vec3 result;
    for (int corner = 0; corner < 8; ++corner) {
      double w = 1.0;
      std::size_t at = 0, stride = 1;
      for (int axis = 0; axis < 3; ++axis) {
        const bool high = (corner >> axis) & 1;
        w *= high ? weight[axis] : 1.0 - weight[axis];
        at += (base[axis] + (high ? 1 : 0)) * stride;
        stride *= table_size_;
      }
      result = result + w * table_[at];
    }
    // One Newton step from the interpolated guess: the table's error
    // (about 0.1 mm at a 7 mm, 20 mm field) falls to that error squared.
    Vec3 displaced;
    Mat3 jacobian;
    displacement_and_gradient(result, displaced, jacobian);
    for (int d = 0; d < 3; ++d) jacobian.m[d * 4] += 1.0;
    return result - solve(jacobian, result + displaced - z);
  }

 private:
  static constexpr double kTableSpacing = 4.0;

  template <class Body>
  void for_each_region_point(Body&& body) const {
    const double step = std::min(4.0, options_.smoothness_mm / 5.0);
    const int steps = static_cast<int>(kDeformationRegionMm / step);
    for (int a = -steps; a <= steps; ++a)
      for (int b = -steps; b <= steps; ++b)
        for (int c = -steps; c <= steps; ++c) {
          const Vec3 p{step * a, step * b, step * c};
          if (norm(p) <= kDeformationRegionMm) body(p);
        }
  }

  void build_inverse_table();

  DeformationOptions options_;
  std::vector<Wave> waves_;
  Statistics statistics_;
  std::vector<Vec3> table_;
  std::size_t table_size_ = 0;
  double table_origin_ = 0.0;
};

// ---------------------------------------------------------------------------
// Parallel loop on ITK's thread pool, so the framework's ITK thread budget
// also bounds the phantom. Bodies only write to their own index range.

void parallel_for(std::size_t count, const std::function<void(std::size_t)>& body) {
  if (count == 0) return;
  auto threader = itk::MultiThreaderBase::New();
  threader->ParallelizeArray(
      0, static_cast<itk::SizeValueType>(count),
      [&body](itk::SizeValueType index) { body(static_cast<std::size_t>(index)); }, nullptr);
}

void SmoothDeformation::build_inverse_table() {
  // Covers the region plus the largest displacement, so that every image
  // point of the head is inside.
  const double half_extent = kDeformationRegionMm + options_.amplitude_mm + 2.0 * kTableSpacing;
  table_size_ = static_cast<std::size_t>(std::ceil(2.0 * half_extent / kTableSpacing)) + 1;
  table_origin_ = -kTableSpacing * double(table_size_ - 1) / 2.0;
  table_.assign(table_size_ * table_size_ * table_size_, Vec3{});
  parallel_for(table_size_, [&](std::size_t k) {
    for (std::size_t j = 0; j < table_size_; ++j) {
      Vec3 previous;
      for (std::size_t i = 0; i < table_size_; ++i) {
        const Vec3 z{table_origin_ + kTableSpacing * double(i), table_origin_ + kTableSpacing * double(j),
                     table_origin_ + kTableSpacing * double(k)};
        if (norm(z) > half_extent + 2.0 * kTableSpacing) {
          // The cube's corners, beyond any image point of the head: a first
          // guess only (the Newton step of fast_inverse still applies).
          previous = z - displacement(z);
          table_[i + table_size_ * (j + table_size_ * k)] = previous;
          continue;
        }
        // Newton from the neighbour's answer, shifted by the step: one or two
        // iterations instead of four.
        const Vec3 start = i == 0 ? z - displacement(z) : previous + Vec3{kTableSpacing, 0.0, 0.0};
        previous = inverse_from(z, start);
        table_[i + table_size_ * (j + table_size_ * k)] = previous;
      }
    }
  });
  // Interpolation error at fixed pseudo-random points of the region.
  std::mt19937_64 engine(0x7ab1e);
  for (int n = 0; n < 2000; ++n) {
    const Vec3 x = uniform(engine, 0.0, kDeformationRegionMm) * random_unit_vector(engine);
    const Vec3 z = forward(x);
    statistics_.largest_inverse_table_error_mm =
        std::max(statistics_.largest_inverse_table_error_mm, norm(fast_inverse(z) - x));
  }
}

double smoothstep(double edge0, double edge1, double x) {
  const double t = std::clamp((x - edge0) / (edge1 - edge0), 0.0, 1.0);
  return t * t * (3.0 - 2.0 * t);
}

// ---------------------------------------------------------------------------
// The analytic head model (CT physical space, LPS mm, head centred on 0).

// A plane wave over directions: amplitude * cos(frequency * (axis . u) + phase).
// Sums of a few give smooth random functions on the sphere.
struct AngularWave {
  Vec3 axis;
  double frequency = 0.0;
  double phase = 0.0;
  double amplitude = 0.0;
};

std::vector<AngularWave> random_waves(std::mt19937_64& engine, int count, double min_frequency, double max_frequency,
                                      double amplitude_each) {
  std::vector<AngularWave> waves;
  for (int n = 0; n < count; ++n) {
    AngularWave wave;
    wave.axis = random_unit_vector(engine);
    wave.frequency = uniform(engine, min_frequency, max_frequency);
    wave.phase = uniform(engine, 0.0, 2.0 * kPi);
    wave.amplitude = amplitude_each;
    waves.push_back(wave);
  }
  return waves;
}

double wave_sum(const std::vector<AngularWave>& waves, Vec3 u) {
  double sum = 0.0;
  for (const AngularWave& wave : waves)
    sum += wave.amplitude * std::cos(wave.frequency * dot(wave.axis, u) + wave.phase);
  return sum;
}

struct Ellipsoid {
  Vec3 centre;
  Vec3 semi_axes;
  bool contains(Vec3 p) const {
    const Vec3 d = p - centre;
    const double qx = d.x / semi_axes.x, qy = d.y / semi_axes.y, qz = d.z / semi_axes.z;
    return qx * qx + qy * qy + qz * qz < 1.0;
  }
};

// A tube of varying radius along a polyline: the lateral ventricle.
struct Tube {
  struct Node {
    Vec3 point;
    double radius;
  };
  std::vector<Node> nodes;
  Vec3 box_min, box_max;

  // Builds through the constructor rather than assigning an initializer list,
  // which trips a false -Wnonnull in GCC 12's std::vector assignment.
  explicit Tube(std::vector<Node> path) : nodes(std::move(path)) {
    box_min = {1e9, 1e9, 1e9};
    box_max = {-1e9, -1e9, -1e9};
    for (const Node& node : nodes) {
      box_min = {std::min(box_min.x, node.point.x - node.radius), std::min(box_min.y, node.point.y - node.radius),
                 std::min(box_min.z, node.point.z - node.radius)};
      box_max = {std::max(box_max.x, node.point.x + node.radius), std::max(box_max.y, node.point.y + node.radius),
                 std::max(box_max.z, node.point.z + node.radius)};
    }
  }
  bool contains(Vec3 p) const {
    if (p.x < box_min.x || p.y < box_min.y || p.z < box_min.z || p.x > box_max.x || p.y > box_max.y || p.z > box_max.z)
      return false;
    for (std::size_t n = 0; n + 1 < nodes.size(); ++n) {
      const Vec3 a = nodes[n].point, b = nodes[n + 1].point;
      const Vec3 ab = b - a;
      const double t = std::clamp(dot(p - a, ab) / dot(ab, ab), 0.0, 1.0);
      const Vec3 closest = a + t * ab;
      const double radius = nodes[n].radius + t * (nodes[n + 1].radius - nodes[n].radius);
      const Vec3 gap = p - closest;
      if (dot(gap, gap) < radius * radius) return true;
    }
    return false;
  }
};

struct Lesion {
  Vec3 centre;
  double radius = 0.0;
  double irregularity = 0.0;
  std::vector<AngularWave> shape;  // amplitudes sum to 1
  std::uint8_t label = kFirstLesion;

  bool contains(Vec3 p) const {
    const Vec3 d = p - centre;
    const double r = norm(d);
    if (r >= radius * (1.0 + irregularity)) return false;
    if (r < radius * (1.0 - irregularity) || irregularity == 0.0) return r < radius;
    return r < radius * (1.0 + irregularity * wave_sum(shape, (1.0 / r) * d));
  }
};

class HeadModel {
 public:
  explicit HeadModel(const PhantomOptions& options) {
    std::mt19937_64 engine(stream_seed(options.anatomy_seed, "anatomy", 0));
    // Low-frequency wobble keeps the head from being a perfect ellipsoid;
    // amplitudes are bounded so layer thicknesses stay plausible.
    skin_waves_ = random_waves(engine, 4, 1.5, 3.5, 0.03 / 4);
    scalp_waves_ = random_waves(engine, 3, 1.5, 3.0, 1.0 / 3);
    bone_waves_ = random_waves(engine, 3, 1.5, 3.0, 1.0 / 3);
    csf_waves_ = random_waves(engine, 3, 2.0, 4.0, 1.0 / 3);
    // Gyral folding: the zero set of a band-limited random field on the
    // sphere is a maze of curved lines, which become the sulci (about 12 mm
    // apart on the cortex). 14 waves of amplitude 1/sqrt(7) give the field
    // unit variance. Each wave's phase drifts with depth so that sulci bend
    // on their way in instead of running exactly radially.
    fold_waves_ = random_waves(engine, 14, 22.0, 30.0, 1.0 / std::sqrt(7.0));
    double gradient_power = 0.0;
    for (const AngularWave& wave : fold_waves_) {
      gradient_power += wave.amplitude * wave.amplitude * wave.frequency * wave.frequency / 3.0;
      fold_phase_per_mm_.push_back(uniform(engine, -0.12, 0.12));
    }
    fold_gradient_rms_ = std::sqrt(gradient_power);
    sulcal_depth_waves_ = random_waves(engine, 3, 2.0, 5.0, 1.0 / 3);

    for (double side : {1.0, -1.0}) {  // +x is the patient's left in LPS
      // Lateral ventricle from the frontal horn over the body to the atrium
      // and occipital horn, then the temporal horn curving down and forward.
      ventricles_.push_back(Tube({{{side * 8, -30, 6}, 3.5},
                                  {{side * 10, -18, 14}, 5.5},
                                  {{side * 11, 0, 18}, 5.0},
                                  {{side * 13, 18, 16}, 5.5},
                                  {{side * 17, 30, 8}, 6.5},
                                  {{side * 16, 44, 4}, 3.0}}));
      ventricles_.push_back(Tube({{{side * 17, 30, 8}, 5.5}, {{side * 26, 22, -8}, 4.0}, {{side * 30, 4, -18}, 2.5}}));
      deep_grey_.push_back({{side * 11, 8, 3}, {7.5, 13, 9}});    // thalamus
      deep_grey_.push_back({{side * 16, -16, 11}, {5, 9, 8}});    // caudate head
      deep_grey_.push_back({{side * 23, -3, 1}, {5.5, 15, 10}});  // lentiform nucleus
    }
    third_ventricle_ = {{0, 6, -2}, {2.2, 13, 8}};

    place_lesions(options, engine);
  }

  // Skin surface distance from the centre along unit direction u.
  double skin_radius(Vec3 u) const {
    const double ellipsoid =
        1.0 / std::sqrt(sq(u.x / kHeadSemiAxes.x) + sq(u.y / kHeadSemiAxes.y) + sq(u.z / kHeadSemiAxes.z));
    const double flat_base = 1.0 - 0.18 * smoothstep(0.3, 0.9, -u.z);  // skull base is flatter than the vertex
    const double occiput = 1.0 + 0.03 * u.y;                           // back of the head bulges (+y posterior)
    return ellipsoid * flat_base * occiput * (1.0 + wave_sum(skin_waves_, u));
  }
  double scalp_thickness(Vec3 u) const { return 5.5 + 1.2 * wave_sum(scalp_waves_, u) + 1.0 * std::max(0.0, u.y); }
  double bone_thickness(Vec3 u) const {
    return 6.5 + 1.5 * wave_sum(bone_waves_, u) + 2.5 * smoothstep(0.2, 0.9, -u.z);
  }
  double csf_thickness(Vec3 u) const { return 2.4 + 0.7 * wave_sum(csf_waves_, u); }
  double brain_radius(Vec3 u) const {
    return skin_radius(u) - scalp_thickness(u) - bone_thickness(u) - csf_thickness(u);
  }

  std::uint8_t label_at(Vec3 p) const { return classify(p, true); }
  // Everything outside this sphere around the origin is air.
  double bounding_radius() const { return max_skin_radius_; }

  const std::vector<Lesion>& lesions() const { return lesions_; }
  const std::vector<Tube>& ventricles() const { return ventricles_; }
  const std::vector<Ellipsoid>& deep_grey() const { return deep_grey_; }

  json describe() const {
    json lesions = json::array();
    for (const Lesion& lesion : lesions_) {
      lesions.push_back({{"label", lesion.label},
                         {"center_lps_mm", to_array(lesion.centre)},
                         {"radius_mm", lesion.radius},
                         {"irregularity", lesion.irregularity}});
    }
    return {{"head_semi_axes_mm", to_array(kHeadSemiAxes)}, {"head_center_lps_mm", std::array<double, 3>{0, 0, 0}},
            {"sulcus_half_width_mm", kSulcusHalfWidth},     {"cortex_thickness_mm", kCortexThickness},
            {"fissure_half_width_mm", kFissureHalfWidth},   {"lesions", lesions}};
  }

 private:
  static double sq(double v) { return v * v; }

  static constexpr Vec3 kHeadSemiAxes{78.0, 97.0, 92.0};  // L-R, A-P, I-S: elongated front to back
  static constexpr double kSulcusHalfWidth = 0.8;
  static constexpr double kCortexThickness = 2.7;
  static constexpr double kFissureHalfWidth = 1.5;
  static constexpr double kMaxSulcalDepth = 16.0;

  double fold_field(Vec3 u, double depth) const {
    double sum = 0.0;
    for (std::size_t n = 0; n < fold_waves_.size(); ++n) {
      const AngularWave& wave = fold_waves_[n];
      sum += wave.amplitude * std::cos(wave.frequency * dot(wave.axis, u) + wave.phase + fold_phase_per_mm_[n] * depth);
    }
    return sum;
  }

  double sulcal_depth(Vec3 u) const { return 13.0 + 3.0 * wave_sum(sulcal_depth_waves_, u); }

  // Deep structures (corpus callosum, nuclei, third ventricle) where the
  // hemispheres are joined: no interhemispheric fissure here.
  static bool in_central_core(Vec3 p) { return sq((p.y - 4.0) / 42.0) + sq((p.z + 2.0) / 26.0) < 1.0; }

  std::uint8_t classify(Vec3 p, bool with_lesions) const {
    const double r = norm(p);
    if (r > max_skin_radius_) return kAir;
    if (r < 1e-9) return kWhiteMatter;  // the centre lies in deep white matter
    const Vec3 u = (1.0 / r) * p;
    const double skin = skin_radius(u);
    if (r >= skin) return kAir;
    const double below_skin = skin - r;
    const double scalp = scalp_thickness(u);
    if (below_skin < scalp) return kScalp;
    const double bone = bone_thickness(u);
    if (below_skin < scalp + bone) return kSkull;
    const double brain = skin - scalp - bone - csf_thickness(u);
    if (r >= brain) return kCsf;

    if (with_lesions) {
      for (const Lesion& lesion : lesions_)
        if (lesion.contains(p)) return lesion.label;
    }
    for (const Tube& ventricle : ventricles_)
      if (ventricle.contains(p)) return kCsf;
    if (third_ventricle_.contains(p)) return kCsf;

    const bool core = in_central_core(p);
    if (!core && std::abs(p.x) < kFissureHalfWidth) return kCsf;

    const double depth = brain - r;
    if (depth < kMaxSulcalDepth + kCortexThickness) {
      // Approximate distance (mm) from the sulcal mid-surface: field value
      // over its angular gradient, times the radius.
      const double from_sulcus = std::abs(fold_field(u, depth)) * r / fold_gradient_rms_;
      const double sulcus_depth = sulcal_depth(u);
      if (from_sulcus < kSulcusHalfWidth && depth < sulcus_depth) return kCsf;
      if (depth < kCortexThickness ||
          (from_sulcus < kSulcusHalfWidth + kCortexThickness && depth < sulcus_depth + kCortexThickness))
        return kGreyMatter;
    }
    if (!core && std::abs(p.x) < kFissureHalfWidth + kCortexThickness) return kGreyMatter;  // medial cortex
    for (const Ellipsoid& nucleus : deep_grey_)
      if (nucleus.contains(p)) return kGreyMatter;
    return kWhiteMatter;
  }

  void place_lesions(const PhantomOptions& options, std::mt19937_64& engine) {
    // Hand-placed sites first (right frontal, left parieto-occipital, right
    // temporal, ...), all in cerebral tissue; random brain sites after that.
    const std::array<Vec3, 6> sites{
        {{-30, -22, 28}, {32, 28, 22}, {-36, 10, -12}, {20, -40, 8}, {-14, 48, 6}, {38, -5, 34}}};
    for (std::size_t n = 0; n < options.lesion_count; ++n) {
      Lesion lesion;
      lesion.radius = options.lesion_radius_mm * std::max(0.5, 1.0 - 0.12 * static_cast<double>(n));
      lesion.irregularity = options.lesion_irregularity;
      lesion.shape = random_waves(engine, 3, 1.5, 3.0, 1.0 / 3);
      lesion.label = static_cast<std::uint8_t>(kFirstLesion + n);
      if (n < sites.size()) {
        lesion.centre = sites[n];
      } else {
        bool placed = false;
        for (int attempt = 0; attempt < 100000 && !placed; ++attempt) {
          const Vec3 candidate{uniform(engine, -50, 50), uniform(engine, -70, 70), uniform(engine, -30, 60)};
          const std::uint8_t tissue = classify(candidate, false);
          placed = tissue == kWhiteMatter || tissue == kGreyMatter;
          if (placed) lesion.centre = candidate;
        }
        if (!placed) throw std::runtime_error("phantom: could not place lesion " + std::to_string(n));
      }
      lesions_.push_back(lesion);
    }
  }

  std::vector<AngularWave> skin_waves_, scalp_waves_, bone_waves_, csf_waves_, fold_waves_, sulcal_depth_waves_;
  std::vector<double> fold_phase_per_mm_;
  double fold_gradient_rms_ = 1.0;
  // Bound on skin_radius: largest semi-axis, occiput bulge, wobble.
  double max_skin_radius_ = 97.0 * 1.03 * 1.03 + 1.0;
  std::vector<Tube> ventricles_;
  Ellipsoid third_ventricle_;
  std::vector<Ellipsoid> deep_grey_;
  std::vector<Lesion> lesions_;
};

std::size_t tissue_class_of(std::uint8_t label) { return std::min<std::size_t>(label, kTissueClassCount - 1); }

// A grid's voxel centres pulled back into CT space through a rigid
// transform: the first voxel's point and the step of one voxel along each
// axis, so rows are walked by additions.
struct GridInCt {
  Vec3 origin, step_i, step_j, step_k;
  GridInCt(const RigidTransform& ct_to_space, const Geometry& grid) {
    const Mat3 to_ct = ct_to_space.matrix.transposed();
    origin = ct_to_space.apply_inverse(to_vec(grid.origin));
    auto axis_step = [&](int axis) {
      return grid.spacing[axis] *
             (to_ct * Vec3{grid.direction[0 * 3 + axis], grid.direction[1 * 3 + axis], grid.direction[2 * 3 + axis]});
    };
    step_i = axis_step(0);
    step_j = axis_step(1);
    step_k = axis_step(2);
  }
};

// Labels of the anatomy as seen through `ct_to_space` on `grid`: the voxel at
// physical point p shows the anatomy at CT point ct_to_space^-1(p) (with a
// deformation u: at (id + u)^-1(ct_to_space^-1(p))).
std::vector<std::uint8_t> sample_labels_rigid(const HeadModel& model, const RigidTransform& ct_to_space,
                                              const Geometry& grid) {
  // Walk each row in CT space: start point plus i times the step of one
  // voxel along i, both pulled back through the transform once.
  const GridInCt walk(ct_to_space, grid);
  const Vec3 origin_in_ct = walk.origin, step_i = walk.step_i, step_j = walk.step_j, step_k = walk.step_k;
  const double head_radius = model.bounding_radius();
  std::vector<std::uint8_t> labels(grid.voxel_count(), kAir);
  parallel_for(grid.size[2], [&](std::size_t k) {
    for (std::size_t j = 0; j < grid.size[1]; ++j) {
      const Vec3 row_start = origin_in_ct + double(j) * step_j + double(k) * step_k;
      // Only the part of the row inside the head's bounding sphere needs the
      // model: solve |row_start + t step_i| = radius for t.
      const double a = dot(step_i, step_i), b = dot(row_start, step_i);
      const double c = dot(row_start, row_start) - head_radius * head_radius;
      const double discriminant = b * b - a * c;
      if (discriminant <= 0.0) continue;
      const double root = std::sqrt(discriminant);
      const double first = std::max(0.0, std::floor((-b - root) / a));
      const double last = std::min(double(grid.size[0]) - 1.0, std::ceil((-b + root) / a));
      std::uint8_t* row = labels.data() + grid.linear_index(0, j, k);
      for (double i = first; i <= last; i += 1.0) row[std::size_t(i)] = model.label_at(row_start + i * step_i);
    }
  });
  return labels;
}

std::vector<std::uint8_t> sample_labels(const HeadModel& model, const RigidTransform& ct_to_space, const Geometry& grid,
                                        const SmoothDeformation& deformation) {
  if (!deformation.active()) return sample_labels_rigid(model, ct_to_space, grid);
  const GridInCt walk(ct_to_space, grid);
  const Vec3 origin_in_ct = walk.origin, step_i = walk.step_i, step_j = walk.step_j, step_k = walk.step_k;
  // Anatomy displaced by at most the amplitude: beyond this reach is air.
  const double reach = model.bounding_radius() + deformation.options().amplitude_mm + 1.0;
  std::vector<std::uint8_t> labels(grid.voxel_count(), kAir);
  parallel_for(grid.size[2], [&](std::size_t k) {
    for (std::size_t j = 0; j < grid.size[1]; ++j) {
      const Vec3 row_start = origin_in_ct + double(j) * step_j + double(k) * step_k;
      std::uint8_t* row = labels.data() + grid.linear_index(0, j, k);
      for (std::size_t i = 0; i < grid.size[0]; ++i) {
        const Vec3 z = row_start + double(i) * step_i;
        if (norm(z) <= reach) row[i] = model.label_at(deformation.fast_inverse(z));
      }
    }
  });
  return labels;
}

RigidTransform transform_for(const PhantomOptions& options, PhantomSpace space) {
  switch (space) {
    case PhantomSpace::Ct: return RigidTransform{};
    case PhantomSpace::Mri: return rigid_transform(options.mri_displacement, {0, 0, 0});
    case PhantomSpace::Pet: return rigid_transform(options.pet_displacement, {0, 0, 0});
  }
  throw std::runtime_error("unknown phantom space");
}

SmoothDeformation deformation_for(const PhantomOptions& options, PhantomSpace space) {
  switch (space) {
    case PhantomSpace::Ct: return SmoothDeformation{};
    case PhantomSpace::Mri: return SmoothDeformation(options.mri_deformation, options.seed, "mri-deformation");
    case PhantomSpace::Pet: return SmoothDeformation(options.pet_deformation, options.seed, "pet-deformation");
  }
  throw std::runtime_error("unknown phantom space");
}

// The whole CT -> modality mapping as displacements on the CT grid.
DisplacementField displacement_field(const SmoothDeformation& deformation, const RigidTransform& ct_to_space,
                                     const Geometry& ct_grid) {
  DisplacementField field;
  field.geometry = ct_grid;
  field.vectors.resize(3 * ct_grid.voxel_count());
  const Vec3 origin = to_vec(ct_grid.origin);
  const Vec3 step_i = to_vec(ct_grid.index_to_point({1, 0, 0})) - origin;
  parallel_for(ct_grid.size[2], [&](std::size_t k) {
    std::vector<Vec3> row;
    for (std::size_t j = 0; j < ct_grid.size[1]; ++j) {
      const Vec3 row_start = to_vec(ct_grid.index_to_point({0.0, double(j), double(k)}));
      deformation.displacement_along_row(row_start, step_i, ct_grid.size[0], row);
      for (std::size_t i = 0; i < ct_grid.size[0]; ++i) {
        const Vec3 x = row_start + double(i) * step_i;
        const Vec3 d = ct_to_space.apply(x + row[i]) - x;
        float* out = field.vectors.data() + 3 * ct_grid.linear_index(i, j, k);
        out[0] = static_cast<float>(d.x);
        out[1] = static_cast<float>(d.y);
        out[2] = static_cast<float>(d.z);
      }
    }
  });
  return field;
}

// ---------------------------------------------------------------------------
// Image operations.

Volume volume_from(const Geometry& geometry, std::vector<float> voxels, VolumeMetadata metadata) {
  Volume volume;
  volume.geometry = geometry;
  volume.voxels = std::move(voxels);
  volume.metadata = std::move(metadata);
  return volume;
}

std::vector<float> tissue_image(const std::vector<std::uint8_t>& labels,
                                const std::function<double(const TissueValues&)>& value_of,
                                const std::array<TissueValues, kTissueClassCount>& tissues) {
  std::array<float, 256> value_by_label{};
  for (int label = 0; label < 256; ++label)
    value_by_label[label] = static_cast<float>(value_of(tissues[tissue_class_of(static_cast<std::uint8_t>(label))]));
  std::vector<float> voxels(labels.size());
  for (std::size_t n = 0; n < labels.size(); ++n) voxels[n] = value_by_label[labels[n]];
  return voxels;
}

// Physical (mm) Gaussian blur with a sampled kernel, which stays exact for the
// sub-voxel widths used for CT and MRI partial-volume softening.
void gaussian_blur(Volume& volume, double sigma_mm) {
  if (sigma_mm <= 0.0) return;
  auto filter = itk::DiscreteGaussianImageFilter<ItkFloatImage, ItkFloatImage>::New();
  filter->SetInput(to_itk(volume));
  filter->SetUseImageSpacing(true);
  filter->SetVariance(sigma_mm * sigma_mm);
  filter->SetMaximumError(0.001);
  filter->SetMaximumKernelWidth(64);
  filter->Update();
  const float* buffer = filter->GetOutput()->GetBufferPointer();
  std::copy(buffer, buffer + volume.voxels.size(), volume.voxels.begin());
}

// Separable Gaussian blur (sigma in fine voxels) evaluated only at every
// `factor`-th fine voxel, i.e. blur and decimation in one go. Each pass shrinks
// one axis, so the work is a fraction of blurring the whole fine grid (an ITK
// smoothing filter followed by subsampling was the slowest part of the
// phantom). Outside the grid the activity is zero.
std::vector<float> blur_and_decimate(const std::vector<float>& fine, const std::array<std::size_t, 3>& fine_size,
                                     double sigma_voxels, std::size_t factor,
                                     const std::array<std::size_t, 3>& out_size) {
  const long radius = sigma_voxels > 0.0 ? static_cast<long>(std::ceil(4.0 * sigma_voxels)) : 0;
  std::vector<double> weights(static_cast<std::size_t>(2 * radius + 1), 1.0);
  if (radius > 0) {
    double total = 0.0;
    for (long t = -radius; t <= radius; ++t) {
      weights[static_cast<std::size_t>(t + radius)] = std::exp(-0.5 * double(t * t) / (sigma_voxels * sigma_voxels));
      total += weights[static_cast<std::size_t>(t + radius)];
    }
    for (double& w : weights) w /= total;
  }
  // One pass: input dims `in`, output dims `out` (differing on `axis` only).
  auto pass = [&](const std::vector<float>& input, const std::array<std::size_t, 3>& in, int axis) {
    std::array<std::size_t, 3> out = in;
    out[axis] = out_size[axis];
    std::vector<float> output(out[0] * out[1] * out[2]);
    const std::array<std::size_t, 3> in_stride{1, in[0], in[0] * in[1]};
    const long extent = static_cast<long>(in[axis]);
    parallel_for(out[2], [&](std::size_t k) {
      for (std::size_t j = 0; j < out[1]; ++j)
        for (std::size_t i = 0; i < out[0]; ++i) {
          std::array<std::size_t, 3> index{i, j, k};
          const long centre = static_cast<long>(index[axis] * factor);
          index[axis] = 0;
          const std::size_t base = index[0] * in_stride[0] + index[1] * in_stride[1] + index[2] * in_stride[2];
          double sum = 0.0;
          for (long t = std::max(-radius, -centre); t <= radius && centre + t < extent; ++t)
            sum += weights[static_cast<std::size_t>(t + radius)] *
                   input[base + static_cast<std::size_t>(centre + t) * in_stride[axis]];
          output[i + out[0] * (j + out[1] * k)] = static_cast<float>(sum);
        }
    });
    return std::make_pair(std::move(output), out);
  };
  auto [x_done, x_size] = pass(fine, fine_size, 0);
  auto [y_done, y_size] = pass(x_done, x_size, 1);
  return pass(y_done, y_size, 2).first;
}

// Runs `per_slice(k, engine)` for every slice with an engine seeded from
// (seed, stream, k): noise is identical whatever the thread count.
void for_each_slice_with_rng(const Geometry& geometry, std::uint64_t seed, std::string_view stream,
                             const std::function<void(std::size_t, std::mt19937_64&)>& per_slice) {
  parallel_for(geometry.size[2], [&](std::size_t k) {
    std::mt19937_64 engine(stream_seed(seed, stream, k));
    per_slice(k, engine);
  });
}

// ---------------------------------------------------------------------------
// MRI coil bias field: exp(strength * f(p)), f a quadratic polynomial in the
// MRI scanner's physical coordinates scaled by 120 mm, normalised so that
// max |f| = 1 within 110 mm of the centre.

struct BiasField {
  double strength = 0.0;
  double length_scale_mm = 120.0;
  std::array<double, 9> coefficients{};  // x, y, z, x^2, y^2, z^2, xy, yz, xz

  double exponent(Vec3 p) const {
    const double x = p.x / length_scale_mm, y = p.y / length_scale_mm, z = p.z / length_scale_mm;
    const std::array<double, 9> basis{x, y, z, x * x, y * y, z * z, x * y, y * z, x * z};
    double f = 0.0;
    for (std::size_t n = 0; n < basis.size(); ++n) f += coefficients[n] * basis[n];
    return f;
  }
  double gain(Vec3 p) const { return std::exp(strength * exponent(p)); }
};

BiasField make_bias_field(const PhantomOptions& options) {
  BiasField field;
  field.strength = options.mri_bias_strength;
  std::mt19937_64 engine(stream_seed(options.seed, "mri-bias", 0));
  for (double& c : field.coefficients) c = uniform(engine, -1.0, 1.0);
  double largest = 0.0;
  for (int a = -6; a <= 6; ++a)
    for (int b = -6; b <= 6; ++b)
      for (int c = -6; c <= 6; ++c) {
        const Vec3 p{a * 110.0 / 6, b * 110.0 / 6, c * 110.0 / 6};
        if (norm(p) <= 110.0) largest = std::max(largest, std::abs(field.exponent(p)));
      }
  for (double& c : field.coefficients) c /= largest;
  return field;
}

// ---------------------------------------------------------------------------
// PET helpers.

double pet_decay_factor(const PhantomOptions& options) {
  // START: the image is decay-corrected to the scan start, so the dose must
  // be decayed to that time too; ADMIN: corrected back to injection.
  if (options.pet_decay_correction == "ADMIN") return 1.0;
  return std::exp2(-options.injection_to_scan_delay_s / options.half_life_s);
}

// Activity concentration (Bq/mL) of one unit of SUVbw: dose / weight(g) (a
// tissue density of 1 g/mL is the SUVbw convention).
double bq_per_ml_per_suv(const PhantomOptions& options) {
  return options.injected_dose_bq * pet_decay_factor(options) / (options.patient_weight_kg * 1000.0);
}

double pet_sigma_mm(const PhantomOptions& options) { return options.pet_fwhm_mm / kFwhmPerSigma; }

// The PSF is applied on a finer grid whose every `factor`-th node is a PET
// voxel centre, so going down to the PET grid is exact decimation and adds no
// interpolation blur. The fine spacing keeps sigma >= 1.5 fine voxels, so the
// point-sampled activity is smooth enough for the sampled Gaussian.
std::size_t pet_oversampling(const PhantomOptions& options) {
  const double sigma = pet_sigma_mm(options);
  if (sigma <= 0.0) return 1;
  return static_cast<std::size_t>(std::max(1.0, std::ceil(options.pet_spacing_mm / (sigma / 1.5))));
}

Geometry pet_fine_geometry(const PhantomOptions& options) {
  const Geometry pet = pet_geometry(options);
  const std::size_t factor = pet_oversampling(options);
  Geometry fine = pet;
  for (int axis = 0; axis < 3; ++axis) {
    fine.size[axis] = factor * (pet.size[axis] - 1) + 1;
    fine.spacing[axis] = pet.spacing[axis] / static_cast<double>(factor);
  }
  return fine;
}

std::string format_number(double value) {
  char buffer[64];
  std::snprintf(buffer, sizeof buffer, "%.15g", value);
  return buffer;
}

// ---------------------------------------------------------------------------
// Truth: grids, transforms, landmarks.

json geometry_json(const Geometry& geometry) {
  return {{"size", geometry.size},
          {"spacing_mm", geometry.spacing},
          {"origin_lps_mm", geometry.origin},
          {"direction_row_major", geometry.direction}};
}

json matrix_rows(const Mat3& matrix) {
  return json::array({std::array<double, 3>{matrix.m[0], matrix.m[1], matrix.m[2]},
                      std::array<double, 3>{matrix.m[3], matrix.m[4], matrix.m[5]},
                      std::array<double, 3>{matrix.m[6], matrix.m[7], matrix.m[8]}});
}

json transform_json(const std::string& moving, const RigidDisplacement& displacement, const RigidTransform& transform) {
  const std::array<double, 3> radians = degrees_to_radians(displacement.rotation_deg);
  return {{"fixed", "ct"},
          {"moving", moving},
          {"direction", "fixed_to_moving"},
          {"frame", "LPS"},
          {"type", "itk::Euler3DTransform (ComputeZYX off: matrix = Rz*Rx*Ry)"},
          {"rotation_deg", displacement.rotation_deg},
          {"rotation_rad", radians},
          {"center_lps_mm", std::array<double, 3>{0, 0, 0}},
          {"translation_mm", displacement.translation_mm},
          {"matrix", matrix_rows(transform.matrix)},
          {"matrix_row_major", transform.matrix.m},
          {"offset_mm", to_array(transform.offset)},
          {"itk_parameters",
           {radians[0], radians[1], radians[2], displacement.translation_mm[0], displacement.translation_mm[1],
            displacement.translation_mm[2]}},
          {"itk_fixed_parameters", {0.0, 0.0, 0.0, 0.0}}};
}

struct Landmark {
  std::string name;
  std::string kind;  // "interior": inside one tissue; "boundary": on a surface between two
  Vec3 point;
  int label = 0;              // tissue at the point (boundary: the inner side)
  int outer_label = -1;       // boundary only: tissue on the outer side
  double clearance_mm = 0.0;  // interior: every point within this distance has the same label
};

// Largest radius (0.5 mm steps, up to 12 mm) such that the point and 26
// neighbours at each radius up to it all have the point's label.
double label_clearance(const HeadModel& model, Vec3 p) {
  const std::uint8_t label = model.label_at(p);
  double clear = 0.0;
  for (double radius = 0.5; radius <= 12.0; radius += 0.5) {
    for (int dx = -1; dx <= 1; ++dx)
      for (int dy = -1; dy <= 1; ++dy)
        for (int dz = -1; dz <= 1; ++dz) {
          if (dx == 0 && dy == 0 && dz == 0) continue;
          const Vec3 step = normalized(Vec3{double(dx), double(dy), double(dz)});
          if (model.label_at(p + radius * step) != label) return clear;
        }
    clear = radius;
  }
  return clear;
}

Landmark interior_landmark(const HeadModel& model, std::string name, Vec3 p) {
  Landmark landmark;
  landmark.name = std::move(name);
  landmark.kind = "interior";
  landmark.point = p;
  landmark.label = model.label_at(p);
  landmark.clearance_mm = label_clearance(model, p);
  return landmark;
}

std::vector<Landmark> make_landmarks(const HeadModel& model) {
  std::vector<Landmark> landmarks;
  // Surface points along fixed rays: where registration errors show most.
  const std::vector<std::pair<std::string, Vec3>> rays{{"anterior", {0, -1, 0.15}},
                                                       {"posterior", {0, 1, 0.1}},
                                                       {"left", {1, 0, 0.1}},
                                                       {"right", {-1, 0, 0.1}},
                                                       {"vertex", {0, 0.15, 1}},
                                                       {"anterior_superior_left", {0.5, -0.6, 0.6}},
                                                       {"anterior_superior_right", {-0.5, -0.6, 0.6}},
                                                       {"posterior_superior_left", {0.5, 0.6, 0.6}},
                                                       {"posterior_superior_right", {-0.5, 0.6, 0.6}}};
  for (const auto& [name, direction] : rays) {
    const Vec3 u = normalized(direction);
    const double skin = model.skin_radius(u);
    Landmark outer_skin{"skin_" + name, "boundary", skin * u, kScalp, kAir, 0.0};
    Landmark outer_skull{"skull_outer_" + name, "boundary", (skin - model.scalp_thickness(u)) * u, kSkull, kScalp, 0.0};
    landmarks.push_back(outer_skin);
    landmarks.push_back(outer_skull);
  }
  // Centres of structures.
  for (const Lesion& lesion : model.lesions())
    landmarks.push_back(
        interior_landmark(model, "lesion_" + std::to_string(lesion.label - kFirstLesion) + "_center", lesion.centre));
  landmarks.push_back(interior_landmark(model, "lateral_ventricle_body_left", {11, 0, 18}));
  landmarks.push_back(interior_landmark(model, "lateral_ventricle_body_right", {-11, 0, 18}));
  landmarks.push_back(interior_landmark(model, "thalamus_left", {11, 8, 3}));
  landmarks.push_back(interior_landmark(model, "thalamus_right", {-11, 8, 3}));
  landmarks.push_back(interior_landmark(model, "lentiform_nucleus_left", {23, -3, 1}));
  landmarks.push_back(interior_landmark(model, "lentiform_nucleus_right", {-23, -3, 1}));
  landmarks.push_back(interior_landmark(model, "corpus_callosum_body", {0, 0, 19}));
  // White matter spread over the lobes: along each ray, the point deepest
  // inside white matter (largest clearance; first one wins ties).
  const std::vector<std::pair<std::string, Vec3>> lobes{
      {"frontal_left", {0.45, -0.85, 0.3}},  {"frontal_right", {-0.45, -0.85, 0.3}},
      {"parietal_left", {0.6, 0.3, 0.75}},   {"parietal_right", {-0.6, 0.3, 0.75}},
      {"occipital_left", {0.35, 0.9, 0.2}},  {"occipital_right", {-0.35, 0.9, 0.2}},
      {"temporal_left", {0.9, -0.1, -0.35}}, {"temporal_right", {-0.9, -0.1, -0.35}}};
  for (const auto& [name, direction] : lobes) {
    const Vec3 u = normalized(direction);
    const double brain = model.brain_radius(u);
    Vec3 best = 0.6 * brain * u;
    double best_clearance = -1.0;
    for (double fraction = 0.35; fraction <= 0.85; fraction += 0.01) {
      const Vec3 candidate = fraction * brain * u;
      if (model.label_at(candidate) != kWhiteMatter) continue;
      const double clearance = label_clearance(model, candidate);
      if (clearance > best_clearance) {
        best_clearance = clearance;
        best = candidate;
      }
    }
    landmarks.push_back(interior_landmark(model, "white_matter_" + name, best));
  }
  return landmarks;
}

json landmark_json(const Landmark& landmark, const Geometry& ct_grid, const Geometry& pet_grid,
                   const RigidTransform& to_mri, const RigidTransform& to_pet, const SmoothDeformation& mri_deformation,
                   const SmoothDeformation& pet_deformation) {
  const Vec3 in_mri = to_mri.apply(mri_deformation.forward(landmark.point));
  const Vec3 in_pet = to_pet.apply(pet_deformation.forward(landmark.point));
  json entry{{"name", landmark.name},
             {"kind", landmark.kind},
             {"label", landmark.label},
             {"ct_lps_mm", to_array(landmark.point)},
             {"mri_lps_mm", to_array(in_mri)},
             {"pet_lps_mm", to_array(in_pet)},
             {"ct_index", ct_grid.point_to_index(to_array(landmark.point))},
             {"mri_index", ct_grid.point_to_index(to_array(in_mri))},
             {"pet_index", pet_grid.point_to_index(to_array(in_pet))}};
  if (landmark.kind == "boundary") {
    entry["outer_label"] = landmark.outer_label;
  } else {
    entry["clearance_mm"] = landmark.clearance_mm;
  }
  return entry;
}

// ---------------------------------------------------------------------------
// Options <-> JSON helpers.

double as_number(const json& value) {
  if (!value.is_number()) throw std::runtime_error("expected a number, got " + value.dump());
  return value.get<double>();
}

std::uint64_t as_unsigned(const json& value) {
  if (value.is_number_unsigned()) return value.get<std::uint64_t>();
  if (value.is_number_integer() && value.get<std::int64_t>() >= 0) return value.get<std::uint64_t>();
  throw std::runtime_error("expected a non-negative integer, got " + value.dump());
}

template <std::size_t N>
std::array<double, N> as_numbers(const json& value) {
  if (!value.is_array() || value.size() != N)
    throw std::runtime_error("expected an array of " + std::to_string(N) + " numbers, got " + value.dump());
  std::array<double, N> result{};
  for (std::size_t n = 0; n < N; ++n) result[n] = as_number(value[n]);
  return result;
}

// A number means the same value on every axis.
std::array<double, 3> as_vec3(const json& value) {
  if (value.is_number()) {
    const double v = as_number(value);
    return {v, v, v};
  }
  return as_numbers<3>(value);
}

RigidDisplacement as_displacement(const json& value) {
  if (!value.is_object()) throw std::runtime_error("expected {\"rotation_deg\": [..], \"translation_mm\": [..]}");
  RigidDisplacement displacement;
  for (const auto& [key, item] : value.items()) {
    if (key == "rotation_deg")
      displacement.rotation_deg = as_numbers<3>(item);
    else if (key == "translation_mm")
      displacement.translation_mm = as_numbers<3>(item);
    else
      throw std::runtime_error("unknown key '" + key + "'");
  }
  return displacement;
}

json displacement_json(const RigidDisplacement& displacement) {
  return {{"rotation_deg", displacement.rotation_deg}, {"translation_mm", displacement.translation_mm}};
}

DeformationOptions as_deformation(const json& value) {
  if (!value.is_object()) throw std::runtime_error("expected an object with amplitude_mm and smoothness_mm");
  DeformationOptions deformation;
  for (const auto& [name, item] : value.items()) {
    if (name == "amplitude_mm")
      deformation.amplitude_mm = as_number(item);
    else if (name == "smoothness_mm")
      deformation.smoothness_mm = as_number(item);
    else
      throw std::runtime_error("unknown field '" + name + "' (amplitude_mm, smoothness_mm)");
  }
  return deformation;
}

json deformation_json(const DeformationOptions& deformation) {
  return {{"amplitude_mm", deformation.amplitude_mm}, {"smoothness_mm", deformation.smoothness_mm}};
}

void check(bool condition, const std::string& message) {
  if (!condition) throw std::runtime_error("invalid phantom options: " + message);
}

bool finite3(const std::array<double, 3>& values) {
  return std::all_of(values.begin(), values.end(), [](double v) { return std::isfinite(v); });
}

}  // namespace

// ---------------------------------------------------------------------------
// Public API.

std::array<TissueValues, kTissueClassCount> default_tissue_values() {
  // ct_hu, t1, t2, pet_suvbw. T1: fat > WM > GM > CSF > bone; T2: CSF > GM >
  // WM; FDG: GM about 2.75x WM, lesion hottest, CSF near zero.
  return {{
      {-1000.0, 0.0, 0.0, 0.0},    // air
      {-90.0, 900.0, 520.0, 0.8},  // scalp (fat dominated)
      {1100.0, 90.0, 70.0, 0.5},   // skull bone
      {10.0, 160.0, 1500.0, 0.1},  // CSF
      {40.0, 480.0, 760.0, 8.0},   // grey matter
      {28.0, 700.0, 560.0, 2.9},   // white matter
      {45.0, 420.0, 980.0, 14.0},  // lesion
  }};
}

const char* tissue_class_name(std::size_t tissue_class) {
  static const char* const names[kTissueClassCount] = {"air",         "scalp",        "skull", "csf",
                                                       "grey_matter", "white_matter", "lesion"};
  return tissue_class < kTissueClassCount ? names[tissue_class] : "unknown";
}

void validate(const PhantomOptions& o) {
  for (int axis = 0; axis < 3; ++axis) {
    check(o.size[axis] >= 8, "size must be at least 8 voxels on every axis");
    check(o.size[axis] <= 1024, "size must be at most 1024 voxels on every axis");
  }
  if (o.ct_spacing_mm) {
    for (double s : *o.ct_spacing_mm) check(std::isfinite(s) && s > 0.0, "ct_spacing_mm must be > 0");
  }
  if (o.direction) {
    const auto& d = *o.direction;
    check(std::all_of(d.begin(), d.end(), [](double v) { return std::isfinite(v); }), "direction must be finite");
    for (int a = 0; a < 3; ++a)
      for (int b = 0; b < 3; ++b) {
        double product = 0.0;
        for (int row = 0; row < 3; ++row) product += d[row * 3 + a] * d[row * 3 + b];
        check(std::abs(product - (a == b ? 1.0 : 0.0)) < 1e-6, "direction must be orthonormal");
      }
  }
  auto non_negative = [](double v) { return std::isfinite(v) && v >= 0.0; };
  auto positive = [](double v) { return std::isfinite(v) && v > 0.0; };
  check(non_negative(o.ct_noise_sigma_hu), "ct_noise_sigma_hu must be >= 0");
  check(non_negative(o.ct_blur_sigma_mm), "ct_blur_sigma_mm must be >= 0");
  check(non_negative(o.mri_bias_strength) && o.mri_bias_strength <= 2.0, "mri_bias_strength must be in [0, 2]");
  check(non_negative(o.mri_rician_sigma), "mri_rician_sigma must be >= 0");
  check(non_negative(o.mri_blur_sigma_mm), "mri_blur_sigma_mm must be >= 0");
  check(positive(o.pet_spacing_mm), "pet_spacing_mm must be > 0");
  check(non_negative(o.pet_fwhm_mm), "pet_fwhm_mm must be >= 0");
  check(non_negative(o.pet_counts_per_voxel_at_suv1), "pet_counts_per_voxel_at_suv1 must be >= 0");
  check(positive(o.injected_dose_bq), "injected_dose_bq must be > 0");
  check(positive(o.patient_weight_kg), "patient_weight_kg must be > 0");
  check(positive(o.half_life_s), "half_life_s must be > 0");
  check(non_negative(o.injection_to_scan_delay_s), "injection_to_scan_delay_s must be >= 0");
  check(o.pet_decay_correction == "START" || o.pet_decay_correction == "ADMIN",
        "pet_decay_correction must be \"START\" or \"ADMIN\"");
  for (const RigidDisplacement* d : {&o.mri_displacement, &o.pet_displacement}) {
    check(finite3(d->rotation_deg) && finite3(d->translation_mm), "displacements must be finite");
    for (double angle : d->rotation_deg) check(std::abs(angle) <= 45.0, "rotation angles must be within 45 degrees");
  }
  for (const DeformationOptions* d : {&o.mri_deformation, &o.pet_deformation}) {
    check(non_negative(d->amplitude_mm) && d->amplitude_mm <= 30.0, "deformation amplitude_mm must be in [0, 30]");
    check(std::isfinite(d->smoothness_mm) && d->smoothness_mm >= 5.0 && d->smoothness_mm <= 200.0,
          "deformation smoothness_mm must be in [5, 200]");
  }
  check(o.lesion_count <= kMaxLesions, "lesion_count must be at most " + std::to_string(kMaxLesions));
  check(positive(o.lesion_radius_mm) && o.lesion_radius_mm <= 30.0, "lesion_radius_mm must be in (0, 30]");
  check(non_negative(o.lesion_irregularity) && o.lesion_irregularity < 0.5, "lesion_irregularity must be in [0, 0.5)");
  for (std::size_t n = 0; n < kTissueClassCount; ++n) {
    const TissueValues& t = o.tissues[n];
    const std::string name = tissue_class_name(n);
    check(std::isfinite(t.ct_hu), name + ".ct_hu must be finite");
    check(non_negative(t.t1) && non_negative(t.t2), name + ".t1 and .t2 must be >= 0");
    check(non_negative(t.pet_suvbw), name + ".pet_suvbw must be >= 0");
  }
  const Geometry fine = pet_fine_geometry(o);
  check(fine.voxel_count() <= std::size_t{80} * 1000 * 1000,
        "pet_fwhm_mm is too small for pet_spacing_mm (the PSF grid would exceed 80 million voxels)");
}

Geometry ct_geometry(const PhantomOptions& options) {
  Geometry geometry;
  geometry.size = options.size;
  for (int axis = 0; axis < 3; ++axis) {
    geometry.spacing[axis] = options.ct_spacing_mm ? (*options.ct_spacing_mm)[axis]
                                                   : kDefaultFieldOfViewMm / static_cast<double>(options.size[axis]);
  }
  if (options.direction) geometry.direction = *options.direction;
  // Centre the grid on the origin: origin = -D * (spacing .* (size - 1) / 2).
  const std::array<double, 3> centre_index{(options.size[0] - 1) / 2.0, (options.size[1] - 1) / 2.0,
                                           (options.size[2] - 1) / 2.0};
  const std::array<double, 3> centre_offset = geometry.index_to_point(centre_index);  // origin is still 0
  for (int axis = 0; axis < 3; ++axis) geometry.origin[axis] = -centre_offset[axis];
  return geometry;
}

Geometry pet_geometry(const PhantomOptions& options) {
  const Geometry ct = ct_geometry(options);
  Geometry geometry;
  geometry.direction = ct.direction;
  std::array<double, 3> centre_index{};
  for (int axis = 0; axis < 3; ++axis) {
    const double field_of_view = ct.spacing[axis] * static_cast<double>(ct.size[axis]);
    geometry.size[axis] = static_cast<std::size_t>(std::max(1.0, std::round(field_of_view / options.pet_spacing_mm)));
    geometry.spacing[axis] = options.pet_spacing_mm;
    centre_index[axis] = (static_cast<double>(geometry.size[axis]) - 1.0) / 2.0;
  }
  const std::array<double, 3> centre_offset = geometry.index_to_point(centre_index);
  for (int axis = 0; axis < 3; ++axis) geometry.origin[axis] = -centre_offset[axis];
  return geometry;
}

Volume sample_phantom_labels(const PhantomOptions& options, PhantomSpace space, const Geometry& grid) {
  validate(options);
  const HeadModel model(options);
  const std::vector<std::uint8_t> labels =
      sample_labels(model, transform_for(options, space), grid, deformation_for(options, space));
  VolumeMetadata metadata{"LABELS", "label", "tissue class", "fusionflow phantom", "phantom labels", {}};
  return volume_from(grid, std::vector<float>(labels.begin(), labels.end()), metadata);
}

Phantom generate_phantom(const PhantomOptions& options) {
  validate(options);
  const HeadModel model(options);
  const Geometry ct_grid = ct_geometry(options);
  const Geometry pet_grid = pet_geometry(options);
  const RigidTransform to_mri = transform_for(options, PhantomSpace::Mri);
  const RigidTransform to_pet = transform_for(options, PhantomSpace::Pet);
  const SmoothDeformation mri_deformation = deformation_for(options, PhantomSpace::Mri);
  const SmoothDeformation pet_deformation = deformation_for(options, PhantomSpace::Pet);
  const std::string source = "fusionflow phantom (seed " + std::to_string(options.seed) + ")";
  Phantom phantom;

  // --- Labels and CT (reference space) ---
  const std::vector<std::uint8_t> ct_labels = sample_labels_rigid(model, RigidTransform{}, ct_grid);
  phantom.labels = volume_from(ct_grid, std::vector<float>(ct_labels.begin(), ct_labels.end()),
                               {"LABELS", "label", "tissue class", source, "phantom labels (CT space)", {}});

  phantom.ct = volume_from(ct_grid,
                           tissue_image(
                               ct_labels, [](const TissueValues& t) { return t.ct_hu; }, options.tissues),
                           {"CT", "HU", "attenuation", source, "phantom CT", {}});
  gaussian_blur(phantom.ct, options.ct_blur_sigma_mm);
  {
    const std::size_t slice = ct_grid.size[0] * ct_grid.size[1];
    for_each_slice_with_rng(ct_grid, options.seed, "ct", [&](std::size_t k, std::mt19937_64& engine) {
      std::normal_distribution<double> noise(0.0, options.ct_noise_sigma_hu);
      for (std::size_t n = k * slice; n < (k + 1) * slice; ++n) {
        double value = phantom.ct.voxels[n];
        if (options.ct_noise_sigma_hu > 0.0) value += noise(engine);
        // Scanners store integer HU; keeping the rounded value in memory makes
        // the written int16 file identical to this volume.
        phantom.ct.voxels[n] = static_cast<float>(std::nearbyint(std::clamp(value, -32768.0, 32767.0)));
      }
    });
  }

  // --- MRI: same grid, displaced anatomy, coil bias, Rician noise ---
  const std::vector<std::uint8_t> mri_labels = sample_labels(model, to_mri, ct_grid, mri_deformation);
  const BiasField bias = make_bias_field(options);
  auto make_mri = [&](double TissueValues::*weighting, const char* stream, const char* quantity) {
    Volume mri =
        volume_from(ct_grid,
                    tissue_image(
                        mri_labels, [weighting](const TissueValues& t) { return t.*weighting; }, options.tissues),
                    {"MR", "a.u.", quantity, source, std::string("phantom ") + quantity, {}});
    gaussian_blur(mri, options.mri_blur_sigma_mm);
    const double sigma = options.mri_rician_sigma;
    for_each_slice_with_rng(ct_grid, options.seed, stream, [&](std::size_t k, std::mt19937_64& engine) {
      std::normal_distribution<double> noise(0.0, sigma > 0.0 ? sigma : 1.0);
      for (std::size_t j = 0; j < ct_grid.size[1]; ++j) {
        for (std::size_t i = 0; i < ct_grid.size[0]; ++i) {
          const std::size_t n = ct_grid.linear_index(i, j, k);
          const Vec3 p = to_vec(ct_grid.index_to_point({double(i), double(j), double(k)}));
          const double signal = mri.voxels[n] * bias.gain(p);
          // Magnitude image: |signal + complex Gaussian noise| is Rician.
          const double real = sigma > 0.0 ? signal + noise(engine) : signal;
          const double imaginary = sigma > 0.0 ? noise(engine) : 0.0;
          mri.voxels[n] = static_cast<float>(std::hypot(real, imaginary));
        }
      }
    });
    mri.metadata.extra["rician_sigma"] = format_number(sigma);
    mri.metadata.extra["bias_field_strength"] = format_number(options.mri_bias_strength);
    return mri;
  };
  phantom.t1 = make_mri(&TissueValues::t1, "t1", "T1-weighted");
  phantom.t2 = make_mri(&TissueValues::t2, "t2", "T2-weighted");

  // --- PET: activity on a fine grid, PSF blur, decimation, count noise ---
  const double bq_per_suv = bq_per_ml_per_suv(options);
  {
    const Geometry fine_grid = pet_fine_geometry(options);
    const std::size_t factor = pet_oversampling(options);
    const std::vector<std::uint8_t> fine_labels = sample_labels(model, to_pet, fine_grid, pet_deformation);
    const std::vector<float> fine_activity = tissue_image(
        fine_labels, [bq_per_suv](const TissueValues& t) { return t.pet_suvbw * bq_per_suv; }, options.tissues);
    std::vector<float> activity = blur_and_decimate(
        fine_activity, fine_grid.size, pet_sigma_mm(options) / fine_grid.spacing[0], factor, pet_grid.size);

    const double counts_per_suv = options.pet_counts_per_voxel_at_suv1;
    if (counts_per_suv > 0.0) {
      // Counts ~ Poisson(activity / Bq-per-count), scaled back to Bq/mL.
      const double bq_per_count = bq_per_suv / counts_per_suv;
      const std::size_t slice = pet_grid.size[0] * pet_grid.size[1];
      for_each_slice_with_rng(pet_grid, options.seed, "pet", [&](std::size_t k, std::mt19937_64& engine) {
        for (std::size_t n = k * slice; n < (k + 1) * slice; ++n) {
          const double expected = std::max(0.0, static_cast<double>(activity[n])) / bq_per_count;
          if (expected <= 0.0) {
            activity[n] = 0.0f;
            continue;
          }
          std::poisson_distribution<long long> counts(expected);
          activity[n] = static_cast<float>(static_cast<double>(counts(engine)) * bq_per_count);
        }
      });
    }
    VolumeMetadata pet_metadata{"PT", "Bq/mL", "activity concentration", source, "phantom FDG PET", {}};
    pet_metadata.extra = {{"radionuclide", "F-18"},
                          {"injected_dose_bq", format_number(options.injected_dose_bq)},
                          {"patient_weight_kg", format_number(options.patient_weight_kg)},
                          {"radionuclide_half_life_s", format_number(options.half_life_s)},
                          {"injection_to_scan_delay_s", format_number(options.injection_to_scan_delay_s)},
                          {"decay_correction", options.pet_decay_correction},
                          {"suvbw_per_bq_per_ml", format_number(1.0 / bq_per_suv)},
                          {"psf_fwhm_mm", format_number(options.pet_fwhm_mm)}};
    phantom.pet = volume_from(pet_grid, std::move(activity), pet_metadata);
  }

  // --- Truth ---
  json tissues = json::array();
  for (std::size_t n = 0; n < kTissueClassCount; ++n) {
    const TissueValues& t = options.tissues[n];
    tissues.push_back(
        {{"label", n},
         {"labels", n + 1 < kTissueClassCount ? std::string(std::to_string(n)) : std::to_string(kFirstLesion) + "+"},
         {"name", tissue_class_name(n)},
         {"ct_hu", t.ct_hu},
         {"t1", t.t1},
         {"t2", t.t2},
         {"pet_suvbw", t.pet_suvbw},
         {"pet_bq_per_ml", t.pet_suvbw * bq_per_suv}});
  }
  json landmarks = json::array();
  for (const Landmark& landmark : make_landmarks(model))
    landmarks.push_back(landmark_json(landmark, ct_grid, pet_grid, to_mri, to_pet, mri_deformation, pet_deformation));
  json deformations = json::object();
  auto add_deformation = [&](const char* modality, const SmoothDeformation& deformation,
                             const RigidTransform& ct_to_space, std::optional<DisplacementField>& field) {
    if (!deformation.active()) return;
    field = displacement_field(deformation, ct_to_space, ct_grid);
    json waves = json::array();
    for (const auto& wave : deformation.waves()) {
      waves.push_back({{"amplitude_mm", to_array(wave.amplitude)},
                       {"wavevector_rad_per_mm", to_array(wave.wavevector)},
                       {"phase_rad", wave.phase}});
    }
    const auto& statistics = deformation.statistics();
    deformations[modality] = {
        {"model",
         "u(x) = sum_w amplitude_w * sin(wavevector_w . x + phase_w), x in CT physical LPS mm; CT point x is seen at "
         "T(x + u(x)) in this modality's space, T = transforms[modality]"},
        {"amplitude_mm", deformation.options().amplitude_mm},
        {"smoothness_mm", deformation.options().smoothness_mm},
        {"checked_within_mm_of_centre", kDeformationRegionMm},
        {"largest_displacement_gradient_norm", statistics.largest_gradient_norm},
        {"smallest_jacobian_determinant", statistics.smallest_jacobian_determinant},
        {"image_sampling_inverse_error_mm", statistics.largest_inverse_table_error_mm},
        {"displacement_field",
         {{"file", std::string(modality) + "_displacement.nrrd"},
          {"grid", "ct"},
          {"direction", "fixed_to_moving"},
          {"frame", "LPS"},
          {"meaning",
           "ITK displacement field: CT point x corresponds to the point x + d(x) of this modality's space, "
           "d(x) = T(x + u(x)) - x (deformation and rigid displacement together)"}}},
        {"waves", waves}};
  };
  add_deformation("mri", mri_deformation, to_mri, phantom.mri_displacement_field);
  add_deformation("pet", pet_deformation, to_pet, phantom.pet_displacement_field);

  json bias_json{{"model",
                  "gain(p) = exp(strength * f(p)), f = sum c_n * b_n(p / length_scale), "
                  "b = [x, y, z, x^2, y^2, z^2, xy, yz, xz], p in MRI physical LPS mm"},
                 {"strength", bias.strength},
                 {"length_scale_mm", bias.length_scale_mm},
                 {"coefficients", bias.coefficients},
                 {"shared_by", {"t1", "t2"}}};

  phantom.truth = {
      {"generator", {{"name", "fusionflow phantom"}, {"version", kGeneratorVersion}}},
      {"frame", "LPS physical millimetres (ITK convention); NIfTI files store RAS and ITK converts"},
      {"options", to_json(options)},
      {"label_names",
       {{"0", "air"},
        {"1", "scalp (skin/fat)"},
        {"2", "skull bone"},
        {"3", "CSF"},
        {"4", "grey matter"},
        {"5", "white matter"},
        {"6+", "lesion (6 + lesion index)"}}},
      {"tissues", tissues},
      {"files",
       {{"ct", {{"file", "ct.nii.gz"}, {"storage", "int16"}, {"units", "HU"}, {"space", "ct"}}},
        {"t1", {{"file", "t1.nii.gz"}, {"storage", "float32"}, {"units", "a.u."}, {"space", "mri"}}},
        {"t2", {{"file", "t2.nii.gz"}, {"storage", "float32"}, {"units", "a.u."}, {"space", "mri"}}},
        {"pet", {{"file", "pet.nii.gz"}, {"storage", "float32"}, {"units", "Bq/mL"}, {"space", "pet"}}},
        {"labels", {{"file", "labels.nii.gz"}, {"storage", "uint8"}, {"units", "label"}, {"space", "ct"}}}}},
      {"grids",
       {{"ct", geometry_json(ct_grid)},
        {"mri", geometry_json(ct_grid)},
        {"pet", geometry_json(pet_grid)},
        {"pet_psf_grid", geometry_json(pet_fine_geometry(options))}}},
      {"transform_convention",
       "For modality M, transforms[M] is the rigid transform T_M in LPS mm that maps a point x in CT physical space "
       "to the same anatomical point in M's physical space: y = matrix * x + offset_mm = R (x - center) + center + "
       "translation (fixed = CT, moving = M, as ITK's registration output). M's voxel at physical point p shows "
       "the anatomy of CT point T_M^-1(p). Landmark positions mri_lps_mm / pet_lps_mm are T_M(ct_lps_mm). With a "
       "deformation u_M (deformations[M]), CT point x is seen at T_M(x + u_M(x)) instead, and the landmark "
       "positions include it."},
      {"transforms",
       {{"mri", transform_json("mri", options.mri_displacement, to_mri)},
        {"pet", transform_json("pet", options.pet_displacement, to_pet)}}},
      {"ct", {{"noise_sigma_hu", options.ct_noise_sigma_hu}, {"blur_sigma_mm", options.ct_blur_sigma_mm}}},
      {"mri",
       {{"rician_sigma", options.mri_rician_sigma},
        {"blur_sigma_mm", options.mri_blur_sigma_mm},
        {"bias_field", bias_json}}},
      {"pet",
       {{"radionuclide", "F-18"},
        {"injected_dose_bq", options.injected_dose_bq},
        {"patient_weight_kg", options.patient_weight_kg},
        {"half_life_s", options.half_life_s},
        {"injection_to_scan_delay_s", options.injection_to_scan_delay_s},
        {"decay_correction", options.pet_decay_correction},
        {"decay_factor", pet_decay_factor(options)},
        {"bq_per_ml_per_suvbw", bq_per_suv},
        {"suvbw_formula",
         "SUVbw = C[Bq/mL] * weight[g] / (dose[Bq] * decay), decay = 2^(-delay/half_life) for START, 1 for ADMIN"},
        {"psf_fwhm_mm", options.pet_fwhm_mm},
        {"psf_sigma_mm", pet_sigma_mm(options)},
        {"counts_per_voxel_at_suv1", options.pet_counts_per_voxel_at_suv1},
        {"noise_model",
         "value = Poisson(C / bq_per_count) * bq_per_count, bq_per_count = bq_per_ml_per_suvbw / "
         "counts_per_voxel_at_suv1"}}},
      {"anatomy", model.describe()},
      {"landmarks", landmarks},
  };
  if (!deformations.empty()) {
    phantom.truth["deformations"] = deformations;
    for (const auto& [modality, entry] : deformations.items()) {
      phantom.truth["files"][modality + "_displacement"] = {{"file", modality + "_displacement.nrrd"},
                                                            {"storage", "float32 x 3 (gzip inside NRRD)"},
                                                            {"units", "mm"},
                                                            {"space", "ct"}};
    }
  }
  return phantom;
}

void write_phantom(const Phantom& phantom, const std::filesystem::path& dir) {
  write_volume(phantom.ct, dir / "ct.nii.gz", VoxelStorage::Int16);
  write_volume(phantom.t1, dir / "t1.nii.gz", VoxelStorage::Float32);
  write_volume(phantom.t2, dir / "t2.nii.gz", VoxelStorage::Float32);
  write_volume(phantom.pet, dir / "pet.nii.gz", VoxelStorage::Float32);
  write_volume(phantom.labels, dir / "labels.nii.gz", VoxelStorage::UInt8);
  if (phantom.mri_displacement_field)
    write_displacement_field_file(*phantom.mri_displacement_field, dir / "mri_displacement.nrrd");
  if (phantom.pet_displacement_field)
    write_displacement_field_file(*phantom.pet_displacement_field, dir / "pet_displacement.nrrd");
  write_file_atomically(dir / "truth.json", phantom.truth.dump(2) + "\n");
}

nlohmann::json to_json(const PhantomOptions& o) {
  json tissues = json::object();
  for (std::size_t n = 0; n < kTissueClassCount; ++n) {
    const TissueValues& t = o.tissues[n];
    tissues[tissue_class_name(n)] = {{"ct_hu", t.ct_hu}, {"t1", t.t1}, {"t2", t.t2}, {"pet_suvbw", t.pet_suvbw}};
  }
  return {{"size", o.size},
          {"ct_spacing_mm", o.ct_spacing_mm ? json(*o.ct_spacing_mm) : json(nullptr)},
          {"direction", o.direction ? json(*o.direction) : json(nullptr)},
          {"seed", o.seed},
          {"anatomy_seed", o.anatomy_seed},
          {"ct_noise_sigma_hu", o.ct_noise_sigma_hu},
          {"ct_blur_sigma_mm", o.ct_blur_sigma_mm},
          {"mri_bias_strength", o.mri_bias_strength},
          {"mri_rician_sigma", o.mri_rician_sigma},
          {"mri_blur_sigma_mm", o.mri_blur_sigma_mm},
          {"pet_spacing_mm", o.pet_spacing_mm},
          {"pet_fwhm_mm", o.pet_fwhm_mm},
          {"pet_counts_per_voxel_at_suv1", o.pet_counts_per_voxel_at_suv1},
          {"injected_dose_bq", o.injected_dose_bq},
          {"patient_weight_kg", o.patient_weight_kg},
          {"half_life_s", o.half_life_s},
          {"injection_to_scan_delay_s", o.injection_to_scan_delay_s},
          {"pet_decay_correction", o.pet_decay_correction},
          {"mri_displacement", displacement_json(o.mri_displacement)},
          {"pet_displacement", displacement_json(o.pet_displacement)},
          {"mri_deformation", deformation_json(o.mri_deformation)},
          {"pet_deformation", deformation_json(o.pet_deformation)},
          {"lesion_count", o.lesion_count},
          {"lesion_radius_mm", o.lesion_radius_mm},
          {"lesion_irregularity", o.lesion_irregularity},
          {"tissues", tissues}};
}

PhantomOptions phantom_options_from_json(const nlohmann::json& j) {
  if (!j.is_object()) throw std::runtime_error("phantom options must be a JSON object, got " + j.dump());
  PhantomOptions o;
  for (const auto& [key, value] : j.items()) {
    try {
      if (key == "size") {
        if (value.is_number()) {
          const std::uint64_t n = as_unsigned(value);
          o.size = {n, n, n};
        } else {
          const auto sizes = as_numbers<3>(value);
          for (int axis = 0; axis < 3; ++axis) {
            if (sizes[axis] < 0 || sizes[axis] != std::floor(sizes[axis]))
              throw std::runtime_error("expected non-negative integers, got " + value.dump());
            o.size[axis] = static_cast<std::size_t>(sizes[axis]);
          }
        }
      } else if (key == "ct_spacing_mm") {
        o.ct_spacing_mm = value.is_null() ? std::nullopt : std::optional(as_vec3(value));
      } else if (key == "direction") {
        o.direction = value.is_null() ? std::nullopt : std::optional(as_numbers<9>(value));
      } else if (key == "seed") {
        o.seed = as_unsigned(value);
      } else if (key == "anatomy_seed") {
        o.anatomy_seed = as_unsigned(value);
      } else if (key == "ct_noise_sigma_hu") {
        o.ct_noise_sigma_hu = as_number(value);
      } else if (key == "ct_blur_sigma_mm") {
        o.ct_blur_sigma_mm = as_number(value);
      } else if (key == "mri_bias_strength") {
        o.mri_bias_strength = as_number(value);
      } else if (key == "mri_rician_sigma") {
        o.mri_rician_sigma = as_number(value);
      } else if (key == "mri_blur_sigma_mm") {
        o.mri_blur_sigma_mm = as_number(value);
      } else if (key == "pet_spacing_mm") {
        o.pet_spacing_mm = as_number(value);
      } else if (key == "pet_fwhm_mm") {
        o.pet_fwhm_mm = as_number(value);
      } else if (key == "pet_counts_per_voxel_at_suv1") {
        o.pet_counts_per_voxel_at_suv1 = as_number(value);
      } else if (key == "injected_dose_bq") {
        o.injected_dose_bq = as_number(value);
      } else if (key == "patient_weight_kg") {
        o.patient_weight_kg = as_number(value);
      } else if (key == "half_life_s") {
        o.half_life_s = as_number(value);
      } else if (key == "injection_to_scan_delay_s") {
        o.injection_to_scan_delay_s = as_number(value);
      } else if (key == "pet_decay_correction") {
        if (!value.is_string()) throw std::runtime_error("expected a string, got " + value.dump());
        o.pet_decay_correction = value.get<std::string>();
      } else if (key == "mri_displacement") {
        o.mri_displacement = as_displacement(value);
      } else if (key == "pet_displacement") {
        o.pet_displacement = as_displacement(value);
      } else if (key == "mri_deformation") {
        o.mri_deformation = as_deformation(value);
      } else if (key == "pet_deformation") {
        o.pet_deformation = as_deformation(value);
      } else if (key == "lesion_count") {
        o.lesion_count = static_cast<std::size_t>(as_unsigned(value));
      } else if (key == "lesion_radius_mm") {
        o.lesion_radius_mm = as_number(value);
      } else if (key == "lesion_irregularity") {
        o.lesion_irregularity = as_number(value);
      } else if (key == "tissues") {
        if (!value.is_object()) throw std::runtime_error("expected an object keyed by tissue name");
        for (const auto& [name, entry] : value.items()) {
          std::size_t tissue = kTissueClassCount;
          for (std::size_t n = 0; n < kTissueClassCount; ++n)
            if (name == tissue_class_name(n)) tissue = n;
          if (tissue == kTissueClassCount) throw std::runtime_error("unknown tissue '" + name + "'");
          if (!entry.is_object()) throw std::runtime_error("tissue '" + name + "' must be an object");
          for (const auto& [field, number] : entry.items()) {
            TissueValues& t = o.tissues[tissue];
            if (field == "ct_hu")
              t.ct_hu = as_number(number);
            else if (field == "t1")
              t.t1 = as_number(number);
            else if (field == "t2")
              t.t2 = as_number(number);
            else if (field == "pet_suvbw")
              t.pet_suvbw = as_number(number);
            else
              throw std::runtime_error("unknown field '" + field + "' in tissue '" + name + "'");
          }
        }
      } else {
        throw std::runtime_error("unknown option");
      }
    } catch (const std::exception& error) {
      throw std::runtime_error("phantom option '" + key + "': " + error.what());
    }
  }
  validate(o);
  return o;
}

}  // namespace fusionflow::testdata
