#include "latent_transforms/metrics.hpp"

#include <algorithm>
#include <array>
#include <cmath>
#include <limits>
#include <stdexcept>
#include <string>

#include "kernels.hpp"
#include "latent_transforms/multiscale.hpp"

namespace fusionflow::latent {

using detail::Dims;
using detail::dims_of;
using detail::parallel_index;

namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
constexpr double kPi = 3.14159265358979323846;

// Grey levels 0..255 of one or more axial slices.
struct Grey {
  Dims d;
  std::vector<std::uint8_t> q;
  double at(std::size_t v) const { return q[v]; }
};

Grey to_grey(const Volume& volume, std::size_t k_begin, std::size_t k_end, double low, double high) {
  const Dims full = dims_of(volume.geometry);
  Grey grey;
  grey.d = {full.nx, full.ny, k_end - k_begin};
  grey.q.resize(grey.d.count());
  const double scale = high > low ? 255.0 / (high - low) : 0.0;
  const std::size_t offset = k_begin * full.slice();
  for (std::size_t v = 0; v < grey.q.size(); ++v) {
    const float x = volume.voxels[offset + v];
    const double g = std::isfinite(x) ? std::clamp((static_cast<double>(x) - low) * scale, 0.0, 255.0) : 0.0;
    grey.q[v] = static_cast<std::uint8_t>(std::lround(g));
  }
  return grey;
}

bool is_constant(const Grey& grey) {
  return std::all_of(grey.q.begin(), grey.q.end(), [&](std::uint8_t value) { return value == grey.q[0]; });
}

double log_base(const MetricsOptions& options) { return options.units == InformationUnit::Nats ? 1.0 : std::log(2.0); }

std::size_t bin_of(std::uint8_t q, std::size_t bins) { return static_cast<std::size_t>(q) * bins / 256; }

double entropy(const Grey& f, const MetricsOptions& options) {
  std::vector<double> histogram(options.bins, 0.0);
  for (std::uint8_t q : f.q) histogram[bin_of(q, options.bins)] += 1.0;
  const double total = static_cast<double>(f.q.size());
  double h = 0.0;
  for (double count : histogram) {
    if (count > 0.0) {
      const double p = count / total;
      h -= p * std::log(p);
    }
  }
  return h / log_base(options);
}

double mutual_information(const Grey& f, const Grey& s, const MetricsOptions& options) {
  const std::size_t bins = options.bins;
  std::vector<double> joint(bins * bins, 0.0), pf(bins, 0.0), ps(bins, 0.0);
  for (std::size_t v = 0; v < f.q.size(); ++v) {
    const std::size_t a = bin_of(f.q[v], bins), b = bin_of(s.q[v], bins);
    joint[a * bins + b] += 1.0;
    pf[a] += 1.0;
    ps[b] += 1.0;
  }
  const double total = static_cast<double>(f.q.size());
  double mi = 0.0;
  for (std::size_t a = 0; a < bins; ++a) {
    for (std::size_t b = 0; b < bins; ++b) {
      const double count = joint[a * bins + b];
      if (count > 0.0) mi += count / total * std::log(count * total / (pf[a] * ps[b]));
    }
  }
  return mi / log_base(options);
}

double standard_deviation(const Grey& f) {
  double sum = 0.0;
  for (std::uint8_t q : f.q) sum += q;
  const double mean = sum / static_cast<double>(f.q.size());
  double squares = 0.0;
  for (std::uint8_t q : f.q) squares += (q - mean) * (q - mean);
  return std::sqrt(squares / static_cast<double>(f.q.size()));
}

// The evaluator's: each squared difference averaged over the differences of its axis.
double spatial_frequency_paper(const Grey& f) {
  const Dims d = f.d;
  double row = 0.0, column = 0.0;
  for (std::size_t j = 0; j < d.ny; ++j) {
    for (std::size_t i = 0; i < d.nx; ++i) {
      const std::size_t v = j * d.nx + i;
      if (i > 0) row += (f.at(v) - f.at(v - 1)) * (f.at(v) - f.at(v - 1));
      if (j > 0) column += (f.at(v) - f.at(v - d.nx)) * (f.at(v) - f.at(v - d.nx));
    }
  }
  if (d.nx < 2 || d.ny < 2) return kNaN;
  return std::sqrt(row / static_cast<double>((d.nx - 1) * d.ny) + column / static_cast<double>(d.nx * (d.ny - 1)));
}

double spatial_frequency(const Grey& f, bool three_d) {
  const Dims d = f.d;
  double row = 0.0, column = 0.0, depth = 0.0;
  for (std::size_t k = 0; k < d.nz; ++k) {
    for (std::size_t j = 0; j < d.ny; ++j) {
      for (std::size_t i = 0; i < d.nx; ++i) {
        const std::size_t v = k * d.slice() + j * d.nx + i;
        if (i > 0) row += (f.at(v) - f.at(v - 1)) * (f.at(v) - f.at(v - 1));
        if (j > 0) column += (f.at(v) - f.at(v - d.nx)) * (f.at(v) - f.at(v - d.nx));
        if (three_d && k > 0) depth += (f.at(v) - f.at(v - d.slice())) * (f.at(v) - f.at(v - d.slice()));
      }
    }
  }
  return std::sqrt((row + column + depth) / static_cast<double>(d.count()));
}

// Pearson correlation of (F - other) with s.
double correlation_of_difference(const Grey& f, const Grey& other, const Grey& s) {
  const auto n = static_cast<double>(f.q.size());
  double mean_d = 0.0, mean_s = 0.0;
  for (std::size_t v = 0; v < f.q.size(); ++v) {
    mean_d += f.at(v) - other.at(v);
    mean_s += s.at(v);
  }
  mean_d /= n;
  mean_s /= n;
  double sdd = 0.0, sss = 0.0, sds = 0.0;
  for (std::size_t v = 0; v < f.q.size(); ++v) {
    const double a = f.at(v) - other.at(v) - mean_d, b = s.at(v) - mean_s;
    sdd += a * a;
    sss += b * b;
    sds += a * b;
  }
  const double denominator = std::sqrt(sdd * sss);
  return denominator > 0.0 ? sds / denominator : kNaN;
}

std::vector<double> gaussian_window(std::size_t size, double sigma) {
  std::vector<double> w(size);
  double sum = 0.0;
  for (std::size_t t = 0; t < size; ++t) {
    const double x = static_cast<double>(t) - static_cast<double>(size - 1) / 2.0;
    w[t] = std::exp(-x * x / (2.0 * sigma * sigma));
    sum += w[t];
  }
  for (double& value : w) value /= sum;
  return w;
}

// 'valid' separable filtering (correlation) of value(i, j, k) along x and y,
// and z when `along_z`. Output dims in `out`; empty when the window does not fit.
//
// Each output is the sum of w[t] * input over t = 0..n-1, added in that
// order to 0.0 in double. The loops run over t outside and over the outputs
// of a row inside, so that neighbouring outputs are computed side by side
// (the compiler vectorises the inner loop; one output per loop over t would
// wait on each addition): the same additions in the same order, so the
// same bits as the plain form.
template <class T, class Value>
std::vector<T> valid_filter(Dims d, const std::vector<double>& w, bool along_z, Value value, Dims& out) {
  const std::size_t n = w.size();
  if (d.nx < n || d.ny < n || (along_z && d.nz < n)) {
    out = {0, 0, 0};
    return {};
  }
  const Dims dx{d.nx - n + 1, d.ny, d.nz};
  const Dims dy{dx.nx, d.ny - n + 1, d.nz};
  const Dims dz{dy.nx, dy.ny, along_z ? d.nz - n + 1 : d.nz};
  std::vector<T> a(dx.count()), b(dy.count());
  // acc[i] += w[t] * source[i] for t = 0..n-1, source advanced by `stride` for each t.
  const auto accumulate = [&w, n](double* acc, std::size_t count, auto source, std::size_t stride) {
    std::fill_n(acc, count, 0.0);
    for (std::size_t t = 0; t < n; ++t) {
      const double weight = w[t];
      const auto* from = source + t * stride;
      for (std::size_t i = 0; i < count; ++i) acc[i] += weight * static_cast<double>(from[i]);
    }
  };
  parallel_index(d.nz, [&](std::size_t k) {
    std::vector<double> row(d.nx), acc(dx.nx);
    for (std::size_t j = 0; j < d.ny; ++j) {
      for (std::size_t i = 0; i < d.nx; ++i) row[i] = static_cast<double>(value(k * d.slice() + j * d.nx + i));
      accumulate(acc.data(), dx.nx, row.data(), 1);
      std::transform(acc.begin(), acc.end(), a.begin() + static_cast<std::ptrdiff_t>(k * dx.slice() + j * dx.nx),
                     [](double v) { return static_cast<T>(v); });
    }
    for (std::size_t j = 0; j < dy.ny; ++j) {
      accumulate(acc.data(), dy.nx, a.data() + k * dx.slice() + j * dx.nx, dx.nx);
      std::transform(acc.begin(), acc.begin() + static_cast<std::ptrdiff_t>(dy.nx),
                     b.begin() + static_cast<std::ptrdiff_t>(k * dy.slice() + j * dy.nx),
                     [](double v) { return static_cast<T>(v); });
    }
  });
  out = dz;
  if (!along_z) return b;
  std::vector<T> c(dz.count());
  parallel_index(dz.nz, [&](std::size_t k) {
    std::vector<double> acc(dz.slice());
    accumulate(acc.data(), dz.slice(), b.data() + k * dy.slice(), dy.slice());
    std::transform(acc.begin(), acc.end(), c.begin() + static_cast<std::ptrdiff_t>(k * dz.slice()),
                   [](double v) { return static_cast<T>(v); });
  });
  return c;
}

// Mean SSIM over the 'valid' window positions of a grid `d` whose values
// x(v) and y(v) are given by accessors: the one SSIM of the tree (see
// mean_ssim in metrics.hpp).
template <class X, class Y>
double mean_ssim_of(Dims d, X x, Y y, const SsimOptions& options) {
  const auto w = options.window == SsimWindow::Uniform7 ? std::vector<double>(7, 1.0 / 7.0) : gaussian_window(11, 1.5);
  const double l = options.data_range;
  const double c1 = (0.01 * l) * (0.01 * l), c2 = (0.03 * l) * (0.03 * l);
  const bool three_d = options.three_d;
  Dims out;
  // Float intermediates in 3D keep memory at a few volumes; 2D uses double.
  auto filtered = [&](auto value) {
    std::vector<double> result;
    if (three_d) {
      auto f = valid_filter<float>(d, w, true, value, out);
      result.assign(f.begin(), f.end());
    } else {
      result = valid_filter<double>(d, w, false, value, out);
    }
    return result;
  };
  const auto mu1 = filtered(x);
  if (mu1.empty()) return kNaN;
  const auto mu2 = filtered(y);
  const auto xx = filtered([&](std::size_t v) { return x(v) * x(v); });
  const auto yy = filtered([&](std::size_t v) { return y(v) * y(v); });
  const auto xy = filtered([&](std::size_t v) { return x(v) * y(v); });
  double sum = 0.0;
  const double points = static_cast<double>(three_d ? w.size() * w.size() * w.size() : w.size() * w.size());
  const double norm = options.sample_covariance ? points / (points - 1.0) : 1.0;
  for (std::size_t v = 0; v < mu1.size(); ++v) {
    const double s1 = norm * (xx[v] - mu1[v] * mu1[v]), s2 = norm * (yy[v] - mu2[v] * mu2[v]);
    const double s12 = norm * (xy[v] - mu1[v] * mu2[v]);
    sum +=
        ((2.0 * mu1[v] * mu2[v] + c1) * (2.0 * s12 + c2)) / ((mu1[v] * mu1[v] + mu2[v] * mu2[v] + c1) * (s1 + s2 + c2));
  }
  return sum / static_cast<double>(mu1.size());
}

// The fusion metric: grey levels, ssim_index.m's window and L = 255.
double ssim(const Grey& x, const Grey& y, bool three_d) {
  SsimOptions options;
  options.three_d = three_d;
  return mean_ssim_of(
      x.d, [&](std::size_t v) { return x.at(v); }, [&](std::size_t v) { return y.at(v); }, options);
}

// --- VIF (vifp_mscale) on one 2D slice ------------------------------------------

struct Plane {
  Dims d;  // nz = 1
  std::vector<double> v;
};

Plane valid2(const Plane& in, const std::vector<double>& w) {
  Plane out;
  out.v = valid_filter<double>(
      in.d, w, false, [&](std::size_t i) { return in.v[i]; }, out.d);
  return out;
}

Plane product(const Plane& a, const Plane& b) {
  Plane out{a.d, std::vector<double>(a.v.size())};
  for (std::size_t i = 0; i < a.v.size(); ++i) out.v[i] = a.v[i] * b.v[i];
  return out;
}

Plane downsample(const Plane& in) {
  Plane out;
  out.d = {(in.d.nx + 1) / 2, (in.d.ny + 1) / 2, in.d.nz};
  if (in.v.empty()) {
    out.d = {0, 0, 0};
    return out;
  }
  out.v.resize(out.d.count());
  for (std::size_t j = 0; j < out.d.ny; ++j) {
    for (std::size_t i = 0; i < out.d.nx; ++i) out.v[j * out.d.nx + i] = in.v[2 * j * in.d.nx + 2 * i];
  }
  return out;
}

// What VIF needs of one image at each of its four scales: the image at that
// scale, its local mean and the local mean of its square. Computed once per
// image, so that the fused slice's are shared by all its sources.
struct VifScale {
  Plane image, mean, mean_of_square;
};
using VifScales = std::array<VifScale, 4>;

std::vector<double> vif_window(int scale) {
  const std::size_t n = (std::size_t{1} << (5 - scale)) + 1;
  return gaussian_window(n, static_cast<double>(n) / 5.0);
}

VifScales vif_scales(const Grey& grey) {
  VifScales scales;
  Plane image{grey.d, std::vector<double>(grey.q.begin(), grey.q.end())};
  for (int scale = 1; scale <= 4; ++scale) {
    const auto w = vif_window(scale);
    if (scale > 1) image = downsample(valid2(image, w));
    VifScale& at = scales[static_cast<std::size_t>(scale - 1)];
    at.mean = valid2(image, w);
    if (!at.mean.v.empty()) at.mean_of_square = valid2(product(image, image), w);
    at.image = image;
  }
  return scales;
}

std::pair<double, double> vif_parts(const VifScales& reference, const VifScales& distorted) {
  constexpr double sigma_nsq = 2.0;
  double num = 0.0, den = 0.0;
  for (int scale = 1; scale <= 4; ++scale) {
    const VifScale& ref = reference[static_cast<std::size_t>(scale - 1)];
    const VifScale& dist = distorted[static_cast<std::size_t>(scale - 1)];
    const Plane& mu1 = ref.mean;
    const Plane& mu2 = dist.mean;
    if (mu1.v.empty()) continue;
    const Plane& s11 = ref.mean_of_square;
    const Plane& s22 = dist.mean_of_square;
    const Plane s12 = valid2(product(ref.image, dist.image), vif_window(scale));
    for (std::size_t i = 0; i < mu1.v.size(); ++i) {
      double sigma1_sq = std::max(0.0, s11.v[i] - mu1.v[i] * mu1.v[i]);
      const double sigma2_sq = std::max(0.0, s22.v[i] - mu2.v[i] * mu2.v[i]);
      const double sigma12 = s12.v[i] - mu1.v[i] * mu2.v[i];
      double g = sigma12 / (sigma1_sq + 1e-10);
      double sv_sq = sigma2_sq - g * sigma12;
      if (sigma1_sq < 1e-10) {
        g = 0.0;
        sv_sq = sigma2_sq;
        sigma1_sq = 0.0;
      }
      if (sigma2_sq < 1e-10) {
        g = 0.0;
        sv_sq = 0.0;
      }
      if (g < 0.0) {
        sv_sq = sigma2_sq;
        g = 0.0;
      }
      if (sv_sq <= 1e-10) sv_sq = 1e-10;
      num += std::log10(1.0 + g * g * sigma1_sq / (sv_sq + sigma_nsq));
      den += std::log10(1.0 + sigma1_sq / sigma_nsq);
    }
  }
  return {num, den};
}

// --- Qabf on one 2D slice -----------------------------------------------------------

struct Gradient {
  std::vector<double> strength, angle;
};

Gradient sobel(const Grey& image) {
  const Dims d = image.d;
  Gradient g;
  g.strength.resize(d.slice());
  g.angle.resize(d.slice());
  auto at = [&](std::ptrdiff_t i, std::ptrdiff_t j) -> double {
    if (i < 0 || j < 0 || i >= static_cast<std::ptrdiff_t>(d.nx) || j >= static_cast<std::ptrdiff_t>(d.ny)) return 0.0;
    return image.at(static_cast<std::size_t>(j) * d.nx + static_cast<std::size_t>(i));
  };
  for (std::size_t j = 0; j < d.ny; ++j) {
    for (std::size_t i = 0; i < d.nx; ++i) {
      const auto x = static_cast<std::ptrdiff_t>(i), y = static_cast<std::ptrdiff_t>(j);
      const double sx = (at(x + 1, y - 1) + 2.0 * at(x + 1, y) + at(x + 1, y + 1)) -
                        (at(x - 1, y - 1) + 2.0 * at(x - 1, y) + at(x - 1, y + 1));
      const double sy = (at(x - 1, y + 1) + 2.0 * at(x, y + 1) + at(x + 1, y + 1)) -
                        (at(x - 1, y - 1) + 2.0 * at(x, y - 1) + at(x + 1, y - 1));
      g.strength[j * d.nx + i] = std::sqrt(sx * sx + sy * sy);
      g.angle[j * d.nx + i] = sx == 0.0 ? kPi / 2.0 : std::atan(sy / sx);
    }
  }
  return g;
}

std::pair<double, double> qabf_parts(const Grey& fused, const std::vector<Grey>& sources, bool paper) {
  constexpr double tg = 0.9994, kg = -15.0, dg = 0.5, ta = 0.9879, ka = -22.0, da = 0.8;
  const Gradient f = sobel(fused);
  double num = 0.0, den = 0.0;
  for (const Grey& source : sources) {
    const Gradient s = sobel(source);
    for (std::size_t v = 0; v < f.strength.size(); ++v) {
      const double gs = s.strength[v], gf = f.strength[v];
      const double strength = gs > gf ? gf / gs : (gs == gf ? (paper ? gf : 1.0) : gs / gf);
      const double orientation = 1.0 - std::fabs(s.angle[v] - f.angle[v]) / (kPi / 2.0);
      const double q = tg / (1.0 + std::exp(kg * (strength - dg))) * ta / (1.0 + std::exp(ka * (orientation - da)));
      num += q * gs;  // weight w = g^L, L = 1
      den += gs;
    }
  }
  return {num, den};
}

double ratio(std::pair<double, double> parts) { return parts.second > 0.0 ? parts.first / parts.second : kNaN; }

// protocol=paper on one 2D slice (metrics.hpp).
FusionMetrics paper_metrics_of(const Grey& f, const std::vector<Grey>& s) {
  MetricsOptions bits, nats;
  bits.units = InformationUnit::Bits;
  nats.units = InformationUnit::Nats;
  SsimOptions skimage;
  skimage.window = SsimWindow::Uniform7;
  skimage.data_range = 2.0;
  skimage.sample_covariance = true;
  FusionMetrics m{};
  m.en = entropy(f, bits);
  m.sd = standard_deviation(f);
  m.sf = spatial_frequency_paper(f);
  m.mi = 0.0;
  m.ssim = 0.0;
  m.vif = 0.0;
  const VifScales fused_scales = vif_scales(f);
  for (const Grey& source : s) {
    m.mi += mutual_information(f, source, nats);
    m.ssim += mean_ssim_of(
        f.d, [&](std::size_t v) { return f.at(v); }, [&](std::size_t v) { return source.at(v); }, skimage);
    const double vif = ratio(vif_parts(vif_scales(source), fused_scales));
    m.vif += std::isfinite(vif) ? vif : 1.0;
  }
  m.scd = s.size() == 2 ? correlation_of_difference(f, s[1], s[0]) + correlation_of_difference(f, s[0], s[1]) : kNaN;
  m.qabf = ratio(qabf_parts(f, s, true));
  return m;
}

FusionMetrics metrics_of(const Grey& f, const std::vector<Grey>& s, const MetricsOptions& options, bool three_d) {
  FusionMetrics m{};
  m.en = entropy(f, options);
  m.sd = standard_deviation(f);
  m.sf = spatial_frequency(f, three_d);
  m.mi = 0.0;
  m.ssim = 0.0;
  for (const Grey& source : s) {
    m.mi += mutual_information(f, source, options);
    m.ssim += ssim(source, f, three_d);
  }
  m.scd = s.size() == 2 ? correlation_of_difference(f, s[1], s[0]) + correlation_of_difference(f, s[0], s[1]) : kNaN;
  m.vif = kNaN;
  m.qabf = kNaN;
  return m;
}

Grey slice_of(const Grey& volume, std::size_t k) {
  Grey slice;
  slice.d = {volume.d.nx, volume.d.ny, 1};
  slice.q.assign(volume.q.begin() + static_cast<std::ptrdiff_t>(k * volume.d.slice()),
                 volume.q.begin() + static_cast<std::ptrdiff_t>((k + 1) * volume.d.slice()));
  return slice;
}

void check_inputs(const Volume& fused, const std::vector<const Volume*>& sources, const MetricsOptions& options) {
  if (fused.voxels.size() != fused.geometry.voxel_count() || fused.voxels.empty()) {
    throw std::invalid_argument("fusion metrics: the fused volume is empty or its voxel count does not match its grid");
  }
  if (sources.empty()) throw std::invalid_argument("fusion metrics: at least one source volume is needed");
  for (std::size_t n = 0; n < sources.size(); ++n) {
    const Volume& s = *sources[n];
    if (!s.geometry.same_grid(fused.geometry) || s.voxels.size() != s.geometry.voxel_count()) {
      throw std::invalid_argument("fusion metrics: sources[" + std::to_string(n) + "] (" + s.metadata.modality +
                                  ") is not on the fused volume's grid (size " + size_string(s.geometry) + " vs " +
                                  size_string(fused.geometry) + ", or spacing, origin or direction differ)" +
                                  ": metrics compare voxel by voxel, resample the sources onto the fused grid");
    }
  }
  if (options.bins < 2 || options.bins > 256) throw std::invalid_argument("fusion metrics: bins must be in 2..256");
}

}  // namespace

SynthesisMetrics synthesis_metrics(const Volume& synthetic, const Volume& reference, const SynthesisOptions& options) {
  const Volume& s = synthetic;
  const Volume& r = reference;
  if (!s.geometry.same_grid(r.geometry, 1e-4) || s.voxels.size() != r.voxels.size()) {
    throw std::invalid_argument("synthetic (" + s.geometry.size_string() + ") and reference (" +
                                r.geometry.size_string() + ") are not on the same grid: resample one onto the other");
  }
  const double threshold = options.mask_threshold;
  const double low = options.data_range[0], high = options.data_range[1], span = high - low;
  if (!(span > 0)) throw std::invalid_argument("data_range: high must exceed low");
  double abs_sum = 0, sq_sum = 0;
  std::size_t mask = 0;
  for (std::size_t v = 0; v < r.voxels.size(); ++v) {
    if (!(r.voxels[v] > threshold)) continue;
    const double d = double(s.voxels[v]) - double(r.voxels[v]);
    abs_sum += std::abs(d);
    const double dc = std::clamp<double>(s.voxels[v], low, high) - std::clamp<double>(r.voxels[v], low, high);
    sq_sum += dc * dc;
    ++mask;
  }
  if (mask == 0) throw std::invalid_argument("the mask (reference > mask_threshold) is empty");
  SynthesisMetrics result;
  result.mask_voxels = mask;
  result.mae = abs_sum / double(mask);
  const double mse = sq_sum / double(mask);
  result.psnr_db = mse > 0 ? 10.0 * std::log10(span * span / mse) : std::numeric_limits<double>::infinity();
  const std::size_t nx = r.geometry.size[0], ny = r.geometry.size[1];
  SsimOptions ssim;
  ssim.window = SsimWindow::Uniform7;
  ssim.data_range = span;
  double ssim_sum = 0;
  std::size_t slices = 0;
  std::vector<double> a(nx * ny), b(nx * ny);
  for (std::size_t k = 0; k < r.geometry.size[2]; ++k) {
    bool any = false;
    for (std::size_t v = 0; v < nx * ny; ++v) {
      a[v] = std::clamp<double>(s.voxels[k * nx * ny + v], low, high) - low;
      b[v] = std::clamp<double>(r.voxels[k * nx * ny + v], low, high) - low;
      any = any || r.voxels[k * nx * ny + v] > threshold;
    }
    if (!any) continue;  // slices without mask voxels (e.g. no head)
    const double value = mean_ssim(a, b, {nx, ny, 1}, ssim);
    if (std::isfinite(value)) ssim_sum += value, ++slices;
  }
  result.ssim = slices ? ssim_sum / double(slices) : kNaN;
  return result;
}

double mean_ssim(const std::vector<double>& x, const std::vector<double>& y, const std::array<std::size_t, 3>& size,
                 const SsimOptions& options) {
  const Dims d{size[0], size[1], size[2]};
  if (x.size() != d.count() || y.size() != d.count()) {
    throw std::invalid_argument("mean_ssim: the images hold " + std::to_string(x.size()) + " and " +
                                std::to_string(y.size()) + " values for a grid of " + std::to_string(d.count()));
  }
  if (!(options.data_range > 0.0)) throw std::invalid_argument("mean_ssim: data_range must be positive");
  return mean_ssim_of(
      d, [&](std::size_t v) { return x[v]; }, [&](std::size_t v) { return y[v]; }, options);
}

std::pair<double, double> metrics_range(const Volume& fused, const std::vector<const Volume*>& sources,
                                        const MetricsOptions& options) {
  if (options.range_low < options.range_high) return {options.range_low, options.range_high};
  double low = std::numeric_limits<double>::infinity(), high = -low;
  auto scan = [&](const Volume& volume) {
    for (float v : volume.voxels) {
      if (std::isfinite(v)) {
        low = std::min<double>(low, v);
        high = std::max<double>(high, v);
      }
    }
  };
  scan(fused);
  for (const Volume* source : sources) scan(*source);
  if (!std::isfinite(low)) return {0.0, 1.0};
  return {low, high};
}

FusionMetrics volume_metrics(const Volume& fused, const std::vector<const Volume*>& sources,
                             const MetricsOptions& options, const RunControl& control) {
  check_inputs(fused, sources, options);
  const auto [low, high] = metrics_range(fused, sources, options);
  const std::size_t nz = fused.geometry.size[2];
  FusionMetrics m{};
  detail::run_in_arena(control.threads, [&] {
    const Grey f = to_grey(fused, 0, nz, low, high);
    std::vector<Grey> s;
    for (const Volume* source : sources) s.push_back(to_grey(*source, 0, nz, low, high));
    control.cancel_point();
    m = metrics_of(f, s, options, true);
    control.report(0.5);
    // Qabf and VIF: numerators and denominators pooled over axial slices.
    std::vector<std::pair<double, double>> qabf(nz);
    std::vector<std::vector<std::pair<double, double>>> vif(nz, std::vector<std::pair<double, double>>(s.size()));
    parallel_index(nz, [&](std::size_t k) {
      control.cancel_point();
      const Grey fk = slice_of(f, k);
      std::vector<Grey> sk;
      for (const Grey& source : s) sk.push_back(slice_of(source, k));
      qabf[k] = qabf_parts(fk, sk, false);
      const VifScales fused_scales = vif_scales(fk);
      for (std::size_t n = 0; n < sk.size(); ++n) vif[k][n] = vif_parts(vif_scales(sk[n]), fused_scales);
    });
    std::pair<double, double> q{0.0, 0.0};
    for (const auto& parts : qabf) {
      q.first += parts.first;
      q.second += parts.second;
    }
    m.qabf = ratio(q);
    m.vif = 0.0;
    for (std::size_t n = 0; n < s.size(); ++n) {
      std::pair<double, double> v{0.0, 0.0};
      for (std::size_t k = 0; k < nz; ++k) {
        v.first += vif[k][n].first;
        v.second += vif[k][n].second;
      }
      m.vif += ratio(v);
    }
  });
  control.report(1.0);
  return m;
}

Table fusion_metrics_table(const Volume& fused, const std::vector<const Volume*>& sources,
                           const MetricsTableOptions& options, const RunControl& control) {
  check_inputs(fused, sources, options);
  const bool paper = options.protocol == MetricsProtocol::Paper;
  if (paper && options.mode == MetricsMode::Volume3d) {
    throw std::invalid_argument("fusion metrics: protocol=paper is defined on 2D slices; use mode=slices_axial");
  }
  const std::string en_name = paper ? "en_bits" : "en_" + kInformationUnitNames.name(options.units);
  const std::string mi_name = paper ? "mi_nats" : "mi_" + kInformationUnitNames.name(options.units);
  const std::size_t nz = fused.geometry.size[2];
  auto cell = [](double value) -> Table::Cell {
    if (std::isfinite(value)) return value;
    return std::monostate{};
  };
  auto metric_cells = [&](const FusionMetrics& m) {
    return std::vector<std::pair<std::string, Table::Cell>>{
        {en_name, cell(m.en)}, {"sd", cell(m.sd)},   {"sf", cell(m.sf)},     {mi_name, cell(m.mi)},
        {"scd", cell(m.scd)},  {"vif", cell(m.vif)}, {"qabf", cell(m.qabf)}, {"ssim", cell(m.ssim)}};
  };
  auto row = [&](const std::string& scope, Table::Cell slice, double slices, const FusionMetrics& m) {
    std::vector<std::pair<std::string, Table::Cell>> cells{
        {"label", options.label}, {"scope", scope}, {"slice", std::move(slice)}, {"slices", slices}};
    for (auto& c : metric_cells(m)) cells.push_back(std::move(c));
    return cells;
  };

  Table table;
  if (options.mode == MetricsMode::Volume3d) {
    const FusionMetrics m = volume_metrics(fused, sources, options, control);
    table.add_row(row("volume", std::monostate{}, static_cast<double>(nz), m));
    return table;
  }

  std::vector<std::size_t> candidates;
  if (options.slices.empty()) {
    for (std::size_t k = 0; k < nz; ++k) candidates.push_back(k);
  } else {
    for (std::int64_t k : options.slices) {
      if (k < 0 || static_cast<std::size_t>(k) >= nz) {
        throw std::invalid_argument("fusion metrics: slice " + std::to_string(k) + " is outside 0.." +
                                    std::to_string(nz - 1) + " (axial slices of the fused volume)");
      }
      candidates.push_back(static_cast<std::size_t>(k));
    }
  }
  const bool skip_empty = options.slices.empty() && options.skip_empty_slices;
  // The paper's images are 8-bit already: [0, 255] unless a range is given (never the data's min/max).
  const auto [low, high] = paper && !(options.range_low < options.range_high) ? std::pair<double, double>{0.0, 255.0}
                                                                              : metrics_range(fused, sources, options);
  std::vector<FusionMetrics> results(candidates.size());
  std::vector<char> evaluated(candidates.size(), 0);
  // Slices in chunks, in parallel within a chunk; progress after each chunk.
  constexpr std::size_t kChunk = 16;
  detail::run_in_arena(control.threads, [&] {
    for (std::size_t begin = 0; begin < candidates.size(); begin += kChunk) {
      const std::size_t end = std::min(candidates.size(), begin + kChunk);
      parallel_index(end - begin, [&](std::size_t offset) {
        control.cancel_point();
        const std::size_t c = begin + offset;
        const std::size_t k = candidates[c];
        const Grey f = to_grey(fused, k, k + 1, low, high);
        std::vector<Grey> s;
        for (const Volume* source : sources) s.push_back(to_grey(*source, k, k + 1, low, high));
        if (skip_empty && is_constant(f) && std::all_of(s.begin(), s.end(), is_constant)) return;
        if (paper) {
          results[c] = paper_metrics_of(f, s);
          evaluated[c] = 1;
          return;
        }
        FusionMetrics m = metrics_of(f, s, options, false);
        m.vif = 0.0;
        const VifScales fused_scales = vif_scales(f);
        for (const Grey& source : s) m.vif += ratio(vif_parts(vif_scales(source), fused_scales));
        m.qabf = ratio(qabf_parts(f, s, false));
        results[c] = m;
        evaluated[c] = 1;
      });
      control.report(0.95 * static_cast<double>(end) / static_cast<double>(candidates.size()));
    }
  });
  FusionMetrics sum{}, count{};
  double slices = 0.0;
  for (std::size_t c = 0; c < candidates.size(); ++c) {
    if (!evaluated[c]) continue;
    slices += 1.0;
    const FusionMetrics& m = results[c];
    if (options.per_slice_rows) table.add_row(row("slice", static_cast<double>(candidates[c]), 1.0, m));
    auto add = [](double value, double& total, double& n) {
      if (std::isfinite(value)) {
        total += value;
        n += 1.0;
      }
    };
    add(m.en, sum.en, count.en);
    add(m.sd, sum.sd, count.sd);
    add(m.sf, sum.sf, count.sf);
    add(m.mi, sum.mi, count.mi);
    add(m.scd, sum.scd, count.scd);
    add(m.vif, sum.vif, count.vif);
    add(m.qabf, sum.qabf, count.qabf);
    add(m.ssim, sum.ssim, count.ssim);
  }
  auto mean = [](double total, double n) { return n > 0.0 ? total / n : kNaN; };
  const FusionMetrics averaged{mean(sum.en, count.en),     mean(sum.sd, count.sd),    mean(sum.sf, count.sf),
                               mean(sum.mi, count.mi),     mean(sum.scd, count.scd),  mean(sum.vif, count.vif),
                               mean(sum.qabf, count.qabf), mean(sum.ssim, count.ssim)};
  table.add_row(row("mean", std::monostate{}, slices, averaged));
  control.report(1.0);
  return table;
}

}  // namespace fusionflow::latent
