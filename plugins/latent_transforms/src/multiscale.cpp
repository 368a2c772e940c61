#include "latent_transforms/multiscale.hpp"

#include <algorithm>
#include <array>
#include <stdexcept>
#include <utility>

#include "kernels.hpp"

namespace fusionflow::latent {

using detail::Dims;
using detail::dims_of;
using detail::parallel_index;
using detail::run_in_arena;

std::string size_string(const Geometry& g) { return g.size_string(); }

Geometry pyramid_child_geometry(const Geometry& fine) {
  Geometry coarse = fine;
  for (int axis = 0; axis < 3; ++axis) {
    coarse.size[axis] = (fine.size[axis] + 1) / 2;
    coarse.spacing[axis] = 2.0 * fine.spacing[axis];
  }
  return coarse;  // voxel j sits on fine voxel 2j: same origin, same direction
}

namespace {

void check_volume(const Volume& volume, const char* what) {
  if (volume.geometry.voxel_count() == 0) {
    throw std::invalid_argument(std::string(what) + ": the volume is empty (size " + size_string(volume.geometry) +
                                ")");
  }
  if (volume.voxels.size() != volume.geometry.voxel_count()) {
    throw std::invalid_argument(std::string(what) + ": the volume holds " + std::to_string(volume.voxels.size()) +
                                " voxels but its geometry " + size_string(volume.geometry) + " needs " +
                                std::to_string(volume.geometry.voxel_count()));
  }
}

Latent latent_for(const Volume& volume, const char* kind) {
  Latent latent;
  latent.kind = kind;
  latent.source_geometry = volume.geometry;
  latent.source_metadata = volume.metadata;
  return latent;
}

LatentLevel make_level(std::string name, std::string role, const Geometry& geometry, std::vector<float> data) {
  LatentLevel level;
  level.name = std::move(name);
  level.role = std::move(role);
  level.geometry = geometry;
  level.channels = 1;
  level.data = std::move(data);
  return level;
}

// --- Laplacian pyramid --------------------------------------------------------

// Up to five (index, weight) pairs: one output sample as a weighted sum of
// input samples along one axis.
struct Taps {
  std::array<std::size_t, 5> index{};
  std::array<float, 5> weight{};
  std::size_t count = 0;
};

// REDUCE: coarse sample o from the fine samples 2o-2 .. 2o+2 with weights
// 1 4 6 4 1, renormalised over the samples inside [0, n).
Taps reduce_taps(std::size_t o, std::size_t n) {
  static constexpr int kWeights[5] = {1, 4, 6, 4, 1};
  Taps taps;
  int total = 0;
  for (int t = -2; t <= 2; ++t) {
    const std::ptrdiff_t i = 2 * static_cast<std::ptrdiff_t>(o) + t;
    if (i < 0 || i >= static_cast<std::ptrdiff_t>(n)) continue;
    taps.index[taps.count] = static_cast<std::size_t>(i);
    taps.weight[taps.count] = static_cast<float>(kWeights[t + 2]);
    total += kWeights[t + 2];
    ++taps.count;
  }
  for (std::size_t t = 0; t < taps.count; ++t) taps.weight[t] /= static_cast<float>(total);
  return taps;
}

// EXPAND: fine sample x from the coarse samples j with |x - 2j| <= 2, weight
// 6, 4, 1 for distance 0, 1, 2, renormalised over the samples inside [0, m)
// (interior: 1 6 1 / 8 at even x, 1/2 1/2 at odd x, i.e. 2 * sum w(x-2j) c_j).
Taps expand_taps(std::size_t x, std::size_t m) {
  static constexpr int kByDistance[3] = {6, 4, 1};
  Taps taps;
  int total = 0;
  const auto fine = static_cast<std::ptrdiff_t>(x);
  for (std::ptrdiff_t j = (fine - 1) / 2; j <= (fine + 2) / 2; ++j) {
    const std::ptrdiff_t distance = fine - 2 * j < 0 ? 2 * j - fine : fine - 2 * j;
    if (j < 0 || j >= static_cast<std::ptrdiff_t>(m) || distance > 2) continue;
    taps.index[taps.count] = static_cast<std::size_t>(j);
    taps.weight[taps.count] = static_cast<float>(kByDistance[distance]);
    total += kByDistance[distance];
    ++taps.count;
  }
  for (std::size_t t = 0; t < taps.count; ++t) taps.weight[t] /= static_cast<float>(total);
  return taps;
}

std::vector<Taps> axis_taps(std::size_t out_count, std::size_t in_count, bool reduce) {
  std::vector<Taps> result(out_count);
  for (std::size_t o = 0; o < out_count; ++o) result[o] = reduce ? reduce_taps(o, in_count) : expand_taps(o, in_count);
  return result;
}

// out[x] = sum_t w_t * rows[t][x], t in tap order.
template <class RowAt>
void combine_rows(float* out, std::size_t len, const Taps& taps, RowAt row_at) {
  for (std::size_t t = 0; t < taps.count; ++t) {
    const float* row = row_at(taps.index[t]);
    const float w = taps.weight[t];
    if (t == 0) {
      for (std::size_t x = 0; x < len; ++x) out[x] = w * row[x];
    } else {
      for (std::size_t x = 0; x < len; ++x) out[x] += w * row[x];
    }
  }
}

// One line along x with the generic taps.
void combine_line(const float* in, float* out, const std::vector<Taps>& taps, std::size_t begin, std::size_t end) {
  for (std::size_t o = begin; o < end; ++o) {
    const Taps& t = taps[o];
    float acc = t.weight[0] * in[t.index[0]];
    for (std::size_t i = 1; i < t.count; ++i) acc += t.weight[i] * in[t.index[i]];
    out[o] = acc;
  }
}

// REDUCE along x (n fine samples -> taps.size() coarse ones): the fixed
// 5-tap formula where all taps are inside, the renormalised taps at the ends.
void reduce_line(const float* in, std::size_t n, float* out, const std::vector<Taps>& taps) {
  const std::size_t m = taps.size();
  // Coarse o is interior when 2o - 2 >= 0 and 2o + 2 <= n - 1.
  const std::size_t first = std::min<std::size_t>(1, m);
  const std::size_t end = n >= 3 ? std::max(first, std::min(m, (n - 3) / 2 + 1)) : first;
  combine_line(in, out, taps, 0, first);
  for (std::size_t o = first; o < end; ++o) {
    const float* p = in + 2 * o;
    out[o] = 0.0625f * (p[-2] + p[2]) + 0.25f * (p[-1] + p[1]) + 0.375f * p[0];
  }
  combine_line(in, out, taps, end, m);
}

// EXPAND along x (m coarse samples -> taps.size() fine ones): 1 6 1 / 8 at
// even and 1/2 1/2 at odd positions inside, renormalised taps at the ends.
void expand_line(const float* in, std::size_t m, float* out, const std::vector<Taps>& taps) {
  const std::size_t n = taps.size();
  if (m < 3) {
    combine_line(in, out, taps, 0, n);
    return;
  }
  // Fine x in [1, 2m - 3] only uses coarse samples inside [0, m).
  combine_line(in, out, taps, 0, 1);
  for (std::size_t p = 1; p + 1 < m; ++p) {
    out[2 * p - 1] = 0.5f * (in[p - 1] + in[p]);
    out[2 * p] = 0.125f * (in[p - 1] + in[p + 1]) + 0.75f * in[p];
  }
  out[2 * m - 3] = 0.5f * (in[m - 2] + in[m - 1]);
  combine_line(in, out, taps, 2 * m - 2, n);
}

// g_{l+1} = REDUCE(g_l).
void reduce(const float* in, Dims fine, float* out, Dims coarse, const RunControl& control) {
  const auto tx = axis_taps(coarse.nx, fine.nx, true);
  const auto ty = axis_taps(coarse.ny, fine.ny, true);
  const auto tz = axis_taps(coarse.nz, fine.nz, true);
  const std::size_t coarse_plane = coarse.nx * coarse.ny;
  // x and y per fine slice (rows in a slice-local buffer), then z.
  auto planes = detail::make_scratch(coarse_plane * fine.nz);
  float* tmp = planes.get();
  parallel_index(fine.nz, [&](std::size_t k) {
    control.cancel_point();
    std::vector<float> rows(coarse.nx * fine.ny);
    const float* slice = in + k * fine.slice();
    for (std::size_t j = 0; j < fine.ny; ++j)
      reduce_line(slice + j * fine.nx, fine.nx, rows.data() + j * coarse.nx, tx);
    for (std::size_t j = 0; j < coarse.ny; ++j) {
      combine_rows(tmp + k * coarse_plane + j * coarse.nx, coarse.nx, ty[j],
                   [&](std::size_t r) { return rows.data() + r * coarse.nx; });
    }
  });
  parallel_index(coarse.nz, [&](std::size_t k) {
    control.cancel_point();
    combine_rows(out + k * coarse_plane, coarse_plane, tz[k], [&](std::size_t r) { return tmp + r * coarse_plane; });
  });
}

enum class Combine { FineMinusExpanded, FinePlusExpanded };

// out = other - EXPAND(coarse) (encoding a band-pass level), or
// out = other + EXPAND(coarse) (decoding), one fine slice at a time.
void expand_and_combine(const float* coarse_data, Dims coarse, float* out, const float* other, Dims fine, Combine mode,
                        const RunControl& control) {
  const auto tx = axis_taps(fine.nx, coarse.nx, false);
  const auto ty = axis_taps(fine.ny, coarse.ny, false);
  const auto tz = axis_taps(fine.nz, coarse.nz, false);
  const std::size_t coarse_plane = coarse.nx * coarse.ny;
  parallel_index(fine.nz, [&](std::size_t k) {
    control.cancel_point();
    std::vector<float> plane(coarse_plane), row(coarse.nx);
    combine_rows(plane.data(), coarse_plane, tz[k], [&](std::size_t r) { return coarse_data + r * coarse_plane; });
    for (std::size_t j = 0; j < fine.ny; ++j) {
      combine_rows(row.data(), coarse.nx, ty[j], [&](std::size_t r) { return plane.data() + r * coarse.nx; });
      float* target = out + k * fine.slice() + j * fine.nx;
      const float* source = other + k * fine.slice() + j * fine.nx;
      expand_line(row.data(), coarse.nx, target, tx);
      if (mode == Combine::FineMinusExpanded) {
        for (std::size_t x = 0; x < fine.nx; ++x) target[x] = source[x] - target[x];
      } else {
        for (std::size_t x = 0; x < fine.nx; ++x) target[x] = source[x] + target[x];
      }
    }
  });
}

}  // namespace

Latent encode_laplacian_pyramid(const Volume& volume, int levels, const RunControl& control) {
  check_volume(volume, "laplacian pyramid");
  if (levels < 1)
    throw std::invalid_argument("laplacian pyramid: levels must be at least 1, got " + std::to_string(levels));
  Latent latent = latent_for(volume, kLaplacianPyramid);
  latent.encoder_params = {
      {"levels", std::to_string(levels)}, {"kernel", "binomial_1_4_6_4_1"}, {"border", "renormalised"}};
  run_in_arena(control.threads, [&] {
    Geometry geometry = volume.geometry;
    const float* current = volume.voxels.data();
    std::vector<float> owned;
    for (int l = 0; l < levels; ++l) {
      const Geometry child = pyramid_child_geometry(geometry);
      std::vector<float> next = make_float_buffer(child.voxel_count());
      reduce(current, dims_of(geometry), next.data(), dims_of(child), control);
      std::vector<float> band = make_float_buffer(geometry.voxel_count());
      expand_and_combine(next.data(), dims_of(child), band.data(), current, dims_of(geometry),
                         Combine::FineMinusExpanded, control);
      latent.levels.push_back(make_level("detail_" + std::to_string(l), "detail", geometry, std::move(band)));
      owned = std::move(next);
      current = owned.data();
      geometry = child;
      // Level l holds about 7/8 of the remaining work.
      control.report(1.0 - 1.0 / static_cast<double>(std::size_t{1} << (3 * (l + 1))));
    }
    latent.levels.push_back(make_level("base", "base", geometry, std::move(owned)));
  });
  control.report(1.0);
  return latent;
}

// --- a trous wavelet ----------------------------------------------------------

Latent encode_atrous_wavelet(const Volume& volume, int levels, const RunControl& control) {
  check_volume(volume, "a trous wavelet");
  if (levels < 1)
    throw std::invalid_argument("a trous wavelet: levels must be at least 1, got " + std::to_string(levels));
  Latent latent = latent_for(volume, kAtrousWavelet);
  latent.encoder_params = {{"levels", std::to_string(levels)}, {"kernel", "b3_spline_1_4_6_4_1"}, {"border", "mirror"}};
  const Dims d = dims_of(volume.geometry);
  run_in_arena(control.threads, [&] {
    std::vector<float> current = make_float_buffer(d.count());
    parallel_index(d.nz, [&](std::size_t k) {
      std::copy_n(volume.voxels.data() + k * d.slice(), d.slice(), current.data() + k * d.slice());
    });
    for (int j = 0; j < levels; ++j) {
      const auto kernel = detail::binomial5(std::size_t{1} << j);
      std::vector<float> next = make_float_buffer(d.count());
      detail::separable_filter(current.data(), next.data(), d, kernel, kernel, kernel, control);
      parallel_index(d.nz, [&](std::size_t k) {
        for (std::size_t v = k * d.slice(); v < (k + 1) * d.slice(); ++v) current[v] -= next[v];
      });
      latent.levels.push_back(make_level("detail_" + std::to_string(j), "detail", volume.geometry, std::move(current)));
      current = std::move(next);
      control.report(static_cast<double>(j + 1) / static_cast<double>(levels));
    }
    latent.levels.push_back(make_level("base", "base", volume.geometry, std::move(current)));
  });
  control.report(1.0);
  return latent;
}

// --- GFF two-scale decomposition -------------------------------------------------

Latent encode_guided_filter(const Volume& volume, int base_radius, const RunControl& control) {
  check_volume(volume, "guided filter (GFF) decomposition");
  if (base_radius < 1) {
    throw std::invalid_argument("guided filter decomposition: base_radius must be at least 1, got " +
                                std::to_string(base_radius));
  }
  Latent latent = latent_for(volume, kGuidedFilter);
  latent.encoder_params = {{"base_radius", std::to_string(base_radius)}, {"base_filter", "box_mean"}};
  const Dims d = dims_of(volume.geometry);
  run_in_arena(control.threads, [&] {
    std::vector<float> base = make_float_buffer(d.count());
    std::copy(volume.voxels.begin(), volume.voxels.end(), base.begin());
    detail::box_mean_inplace(base.data(), d, static_cast<std::size_t>(base_radius), control);
    control.report(0.8);
    std::vector<float> detail_layer = make_float_buffer(d.count());
    parallel_index(d.nz, [&](std::size_t k) {
      for (std::size_t v = k * d.slice(); v < (k + 1) * d.slice(); ++v) detail_layer[v] = volume.voxels[v] - base[v];
    });
    latent.levels.push_back(make_level("detail", "detail", volume.geometry, std::move(detail_layer)));
    latent.levels.push_back(make_level("base", "base", volume.geometry, std::move(base)));
  });
  control.report(1.0);
  return latent;
}

// --- decoding -------------------------------------------------------------------

namespace {

[[noreturn]] void level_error(const Latent& latent, std::size_t l, const std::string& problem) {
  const std::string name = l < latent.levels.size() ? latent.levels[l].name : std::string("?");
  throw std::invalid_argument("cannot decode latent of kind '" + latent.kind + "': level " + std::to_string(l) + " ('" +
                              name + "') " + problem);
}

void check_level_data(const Latent& latent) {
  if (latent.levels.size() < 2) {
    throw std::invalid_argument("cannot decode latent of kind '" + latent.kind + "': it has " +
                                std::to_string(latent.levels.size()) +
                                " level(s), at least a detail and a base needed");
  }
  for (std::size_t l = 0; l < latent.levels.size(); ++l) {
    const LatentLevel& level = latent.levels[l];
    if (level.channels != 1) level_error(latent, l, "has " + std::to_string(level.channels) + " channels, expected 1");
    if (level.data.size() != level.voxel_count()) {
      level_error(
          latent, l,
          "holds " + std::to_string(level.data.size()) + " values for a " + size_string(level.geometry) + " grid");
    }
    const bool last = l + 1 == latent.levels.size();
    if ((level.role == "base") != last) {
      level_error(latent, l, "has role '" + level.role + "'; the last level must be the only 'base'");
    }
  }
}

void check_on_source_grid(const Latent& latent) {
  for (std::size_t l = 0; l < latent.levels.size(); ++l) {
    if (latent.levels[l].geometry.size != latent.source_geometry.size) {
      level_error(latent, l,
                  "has grid " + size_string(latent.levels[l].geometry) + ", expected the source grid " +
                      size_string(latent.source_geometry));
    }
  }
}

Volume volume_for(const Latent& latent, std::vector<float> voxels) {
  Volume volume;
  volume.geometry = latent.source_geometry;
  volume.metadata = latent.source_metadata;
  volume.voxels = std::move(voxels);
  return volume;
}

Volume decode_pyramid(const Latent& latent, const RunControl& control) {
  const std::size_t detail_count = latent.levels.size() - 1;
  if (latent.levels[0].geometry.size != latent.source_geometry.size) {
    level_error(latent, 0,
                "has grid " + size_string(latent.levels[0].geometry) + ", expected the source grid " +
                    size_string(latent.source_geometry));
  }
  for (std::size_t l = 1; l < latent.levels.size(); ++l) {
    const Geometry expected = pyramid_child_geometry(latent.levels[l - 1].geometry);
    if (latent.levels[l].geometry.size != expected.size) {
      level_error(latent, l,
                  "has grid " + size_string(latent.levels[l].geometry) + ", expected " + size_string(expected) +
                      " (half of level " + std::to_string(l - 1) + ", rounded up)");
    }
  }
  std::vector<float> result;
  run_in_arena(control.threads, [&] {
    const float* current = latent.levels.back().data.data();
    Dims current_dims = dims_of(latent.levels.back().geometry);
    std::vector<float> owned;
    for (std::size_t step = 0; step < detail_count; ++step) {
      const std::size_t l = detail_count - 1 - step;
      const LatentLevel& band = latent.levels[l];
      std::vector<float> finer = make_float_buffer(band.voxel_count());
      expand_and_combine(current, current_dims, finer.data(), band.data.data(), dims_of(band.geometry),
                         Combine::FinePlusExpanded, control);
      owned = std::move(finer);
      current = owned.data();
      current_dims = dims_of(band.geometry);
      control.report(1.0 / static_cast<double>(std::size_t{1} << (3 * l)));
    }
    result = std::move(owned);
  });
  return volume_for(latent, std::move(result));
}

// Sum of all levels, base first, then the coarsest detail to the finest.
Volume decode_sum(const Latent& latent, const RunControl& control) {
  check_on_source_grid(latent);
  const Dims d = dims_of(latent.source_geometry);
  std::vector<float> result = make_float_buffer(d.count());
  run_in_arena(control.threads, [&] {
    const std::size_t count = latent.levels.size();
    parallel_index(d.nz, [&](std::size_t k) {
      control.cancel_point();
      for (std::size_t v = k * d.slice(); v < (k + 1) * d.slice(); ++v) {
        float sum = latent.levels[count - 1].data[v];
        for (std::size_t l = count - 1; l-- > 0;) sum += latent.levels[l].data[v];
        result[v] = sum;
      }
    });
  });
  control.report(1.0);
  return volume_for(latent, std::move(result));
}

}  // namespace

Volume decode_latent(const Latent& latent, const RunControl& control) {
  if (latent.kind != kLaplacianPyramid && latent.kind != kAtrousWavelet && latent.kind != kGuidedFilter) {
    throw std::invalid_argument("cannot decode latent of kind '" + latent.kind + "': known kinds are " +
                                kLaplacianPyramid + ", " + kAtrousWavelet + " and " + kGuidedFilter);
  }
  if (latent.source_geometry.voxel_count() == 0) {
    throw std::invalid_argument("cannot decode latent of kind '" + latent.kind + "': its source grid is empty");
  }
  check_level_data(latent);
  if (latent.kind == kLaplacianPyramid) return decode_pyramid(latent, control);
  if (latent.kind == kGuidedFilter && latent.levels.size() != 2) {
    throw std::invalid_argument("cannot decode latent of kind 'guided_filter': expected 2 levels (detail, base), got " +
                                std::to_string(latent.levels.size()));
  }
  return decode_sum(latent, control);
}

}  // namespace fusionflow::latent
