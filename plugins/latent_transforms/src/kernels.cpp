#include "kernels.hpp"

#include <sys/mman.h>

#include <algorithm>
#include <cmath>
#include <cstdint>

namespace fusionflow::latent {

namespace {

// Asks for transparent huge pages on the 2 MiB-aligned part of a large,
// not yet touched allocation. Purely advisory: failures are ignored.
void advise_huge_pages(const void* data, std::size_t bytes) {
  constexpr std::size_t kHugePage = std::size_t{2} << 20;
  if (bytes < 2 * kHugePage) return;
  const auto begin = reinterpret_cast<std::uintptr_t>(data);
  const std::uintptr_t aligned_begin = (begin + kHugePage - 1) & ~std::uintptr_t{kHugePage - 1};
  const std::uintptr_t aligned_end = (begin + bytes) & ~std::uintptr_t{kHugePage - 1};
  if (aligned_end > aligned_begin) {
#ifdef MADV_HUGEPAGE
    ::madvise(reinterpret_cast<void*>(aligned_begin), aligned_end - aligned_begin, MADV_HUGEPAGE);
#endif
  }
}

}  // namespace

std::vector<float> make_float_buffer(std::size_t count) {
  std::vector<float> buffer;
  buffer.reserve(count);
  advise_huge_pages(buffer.data(), count * sizeof(float));
  buffer.resize(count);
  return buffer;
}

namespace detail {

std::unique_ptr<float[]> make_scratch(std::size_t count) {
  std::unique_ptr<float[]> buffer(new float[count]);
  advise_huge_pages(buffer.get(), count * sizeof(float));
  return buffer;
}

Kernel1D binomial5(std::size_t dilation) { return {{1.0f / 16, 4.0f / 16, 6.0f / 16, 4.0f / 16, 1.0f / 16}, dilation}; }

Kernel1D gaussian_kernel(double sigma, std::size_t radius) {
  std::vector<double> w(2 * radius + 1);
  double sum = 0.0;
  for (std::size_t t = 0; t < w.size(); ++t) {
    const double x = static_cast<double>(t) - static_cast<double>(radius);
    w[t] = sigma > 0.0 ? std::exp(-x * x / (2.0 * sigma * sigma)) : (x == 0.0 ? 1.0 : 0.0);
    sum += w[t];
  }
  Kernel1D kernel;
  for (double value : w) kernel.weights.push_back(static_cast<float>(value / sum));
  return kernel;
}

namespace {

void filter_line(const float* in, float* out, std::size_t n, const Kernel1D& k) {
  const auto radius = static_cast<std::ptrdiff_t>(k.radius());
  const auto step = static_cast<std::ptrdiff_t>(k.dilation);
  const auto count = static_cast<std::ptrdiff_t>(n);
  const std::ptrdiff_t reach = radius * step;
  const std::size_t taps = k.weights.size();
  for (std::ptrdiff_t x = 0; x < count; ++x) {
    float acc = 0.0f;
    if (x >= reach && x + reach < count) {
      const float* p = in + (x - reach);
      for (std::size_t t = 0; t < taps; ++t) acc += k.weights[t] * p[static_cast<std::ptrdiff_t>(t) * step];
    } else {
      for (std::size_t t = 0; t < taps; ++t) {
        acc += k.weights[t] * in[reflect(x + (static_cast<std::ptrdiff_t>(t) - radius) * step, count)];
      }
    }
    out[x] = acc;
  }
}

// out[x] = sum_t w[t] * rows(t)[x], where rows(t) is the line at mirrored
// offset (t - radius) * dilation from `centre` in a stack of `n` lines.
template <class RowAt>
void filter_rows(float* out, std::size_t len, std::size_t centre, std::size_t n, const Kernel1D& k, RowAt row_at) {
  const auto radius = static_cast<std::ptrdiff_t>(k.radius());
  const auto step = static_cast<std::ptrdiff_t>(k.dilation);
  for (std::size_t t = 0; t < k.weights.size(); ++t) {
    const std::ptrdiff_t index =
        reflect(static_cast<std::ptrdiff_t>(centre) + (static_cast<std::ptrdiff_t>(t) - radius) * step,
                static_cast<std::ptrdiff_t>(n));
    const float* row = row_at(static_cast<std::size_t>(index));
    const float w = k.weights[t];
    if (t == 0) {
      for (std::size_t x = 0; x < len; ++x) out[x] = w * row[x];
    } else {
      for (std::size_t x = 0; x < len; ++x) out[x] += w * row[x];
    }
  }
}

}  // namespace

void separable_filter(const float* in, float* out, Dims d, const Kernel1D& kx, const Kernel1D& ky, const Kernel1D& kz,
                      const RunControl& control) {
  const std::size_t slice = d.slice();
  auto planes = make_scratch(d.count());
  float* tmp = planes.get();
  parallel_index(d.nz, [&](std::size_t k) {
    control.cancel_point();
    std::vector<float> rows(slice);
    for (std::size_t j = 0; j < d.ny; ++j) filter_line(in + k * slice + j * d.nx, rows.data() + j * d.nx, d.nx, kx);
    for (std::size_t j = 0; j < d.ny; ++j) {
      filter_rows(tmp + k * slice + j * d.nx, d.nx, j, d.ny, ky, [&](std::size_t r) { return rows.data() + r * d.nx; });
    }
  });
  parallel_index(d.nz, [&](std::size_t k) {
    control.cancel_point();
    filter_rows(out + k * slice, slice, k, d.nz, kz, [&](std::size_t r) { return tmp + r * slice; });
  });
}

template <class T>
void box_mean_inplace(T* data, Dims d, std::size_t radius, const RunControl& control) {
  const std::size_t slice = d.slice();
  auto window = [radius](std::size_t i, std::size_t n) {
    const std::size_t lo = i >= radius ? i - radius : 0;
    const std::size_t hi = std::min(n - 1, i + radius);
    return std::pair<std::size_t, std::size_t>(lo, hi);
  };
  // x: per row.
  parallel_index(d.nz, [&](std::size_t k) {
    control.cancel_point();
    std::vector<double> prefix(d.nx + 1);
    for (std::size_t j = 0; j < d.ny; ++j) {
      T* row = data + k * slice + j * d.nx;
      prefix[0] = 0.0;
      for (std::size_t x = 0; x < d.nx; ++x) prefix[x + 1] = prefix[x] + static_cast<double>(row[x]);
      for (std::size_t x = 0; x < d.nx; ++x) {
        const auto [lo, hi] = window(x, d.nx);
        row[x] = static_cast<T>((prefix[hi + 1] - prefix[lo]) / static_cast<double>(hi - lo + 1));
      }
    }
  });
  // y: per slice, whole rows at a time.
  parallel_index(d.nz, [&](std::size_t k) {
    control.cancel_point();
    std::vector<double> prefix((d.ny + 1) * d.nx, 0.0);
    T* plane = data + k * slice;
    for (std::size_t j = 0; j < d.ny; ++j) {
      for (std::size_t x = 0; x < d.nx; ++x) {
        prefix[(j + 1) * d.nx + x] = prefix[j * d.nx + x] + static_cast<double>(plane[j * d.nx + x]);
      }
    }
    for (std::size_t j = 0; j < d.ny; ++j) {
      const auto [lo, hi] = window(j, d.ny);
      const double count = static_cast<double>(hi - lo + 1);
      for (std::size_t x = 0; x < d.nx; ++x) {
        plane[j * d.nx + x] = static_cast<T>((prefix[(hi + 1) * d.nx + x] - prefix[lo * d.nx + x]) / count);
      }
    }
  });
  // z: per row index j, along k.
  parallel_index(d.ny, [&](std::size_t j) {
    control.cancel_point();
    std::vector<double> prefix((d.nz + 1) * d.nx, 0.0);
    for (std::size_t k = 0; k < d.nz; ++k) {
      const T* row = data + k * slice + j * d.nx;
      for (std::size_t x = 0; x < d.nx; ++x) {
        prefix[(k + 1) * d.nx + x] = prefix[k * d.nx + x] + static_cast<double>(row[x]);
      }
    }
    for (std::size_t k = 0; k < d.nz; ++k) {
      const auto [lo, hi] = window(k, d.nz);
      const double count = static_cast<double>(hi - lo + 1);
      T* row = data + k * slice + j * d.nx;
      for (std::size_t x = 0; x < d.nx; ++x) {
        row[x] = static_cast<T>((prefix[(hi + 1) * d.nx + x] - prefix[lo * d.nx + x]) / count);
      }
    }
  });
}

template void box_mean_inplace<float>(float*, Dims, std::size_t, const RunControl&);
template void box_mean_inplace<double>(double*, Dims, std::size_t, const RunControl&);

void guided_filter(const float* guide, const float* input, float* out, Dims d, std::size_t radius, double eps,
                   const RunControl& control) {
  const std::size_t n = d.count();
  std::vector<double> mean_i(n), mean_p(n), a(n), b(n);
  parallel_index(d.nz, [&](std::size_t k) {
    for (std::size_t v = k * d.slice(); v < (k + 1) * d.slice(); ++v) {
      const double gi = guide[v], pi = input[v];
      mean_i[v] = gi;
      mean_p[v] = pi;
      a[v] = gi * gi;  // becomes corr_I
      b[v] = gi * pi;  // becomes corr_Ip
    }
  });
  box_mean_inplace(mean_i.data(), d, radius, control);
  box_mean_inplace(mean_p.data(), d, radius, control);
  box_mean_inplace(a.data(), d, radius, control);
  box_mean_inplace(b.data(), d, radius, control);
  parallel_index(d.nz, [&](std::size_t k) {
    for (std::size_t v = k * d.slice(); v < (k + 1) * d.slice(); ++v) {
      const double var_i = a[v] - mean_i[v] * mean_i[v];
      const double cov_ip = b[v] - mean_i[v] * mean_p[v];
      const double slope = cov_ip / (var_i + eps);
      a[v] = slope;
      b[v] = mean_p[v] - slope * mean_i[v];
    }
  });
  box_mean_inplace(a.data(), d, radius, control);
  box_mean_inplace(b.data(), d, radius, control);
  parallel_index(d.nz, [&](std::size_t k) {
    for (std::size_t v = k * d.slice(); v < (k + 1) * d.slice(); ++v) {
      out[v] = static_cast<float>(a[v] * static_cast<double>(guide[v]) + b[v]);
    }
  });
}

}  // namespace detail
}  // namespace fusionflow::latent
