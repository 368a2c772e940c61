#include "latent_transforms/fusion_rules.hpp"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <sstream>
#include <stdexcept>

#include "kernels.hpp"
#include "latent_transforms/multiscale.hpp"

namespace fusionflow::latent {

using detail::Dims;
using detail::dims_of;
using detail::parallel_index;

namespace {

std::string describe(const std::vector<const Latent*>& latents, std::size_t n) {
  std::string text = "latents[" + std::to_string(n) + "]";
  const VolumeMetadata& m = latents[n]->source_metadata;
  if (!m.modality.empty() || !m.source.empty()) {
    text += " (";
    text += m.modality.empty() ? m.source : m.modality;
    if (!m.modality.empty() && !m.source.empty()) text += ", " + m.source;
    text += ")";
  }
  return text;
}

std::string geometry_string(const Geometry& g) {
  std::ostringstream out;
  out << size_string(g) << " spacing " << g.spacing[0] << "," << g.spacing[1] << "," << g.spacing[2] << " origin "
      << g.origin[0] << "," << g.origin[1] << "," << g.origin[2];
  return out.str();
}

void validate(const std::vector<const Latent*>& latents, const FusionOptions& options) {
  if (latents.size() < 2) {
    throw std::invalid_argument("fusion needs at least two latents, got " + std::to_string(latents.size()));
  }
  const Latent& first = *latents[0];
  if (latents.size() > 255) throw std::invalid_argument("fusion supports at most 255 latents");
  for (std::size_t n = 0; n < latents.size(); ++n) {
    const Latent& other = *latents[n];
    const std::string who = describe(latents, n);
    const std::string reference = describe(latents, 0);
    if (other.kind != first.kind) {
      throw std::invalid_argument(who + " has kind '" + other.kind + "' but " + reference + " has kind '" + first.kind +
                                  "': encode every modality with the same encoder");
    }
    if (other.encoder_params != first.encoder_params) {
      std::string detail;
      for (const auto& [key, value] : first.encoder_params) {
        auto it = other.encoder_params.find(key);
        const std::string theirs = it == other.encoder_params.end() ? "(unset)" : it->second;
        if (theirs != value) detail = key + " = " + theirs + " vs " + value;
      }
      if (detail.empty()) detail = "extra encoder parameters";
      throw std::invalid_argument(who + " was encoded with other parameters than " + reference + " (" + detail +
                                  "): use the same encoder settings for every modality");
    }
    if (!other.source_geometry.same_grid(first.source_geometry)) {
      throw std::invalid_argument(who + " was encoded from grid " + geometry_string(other.source_geometry) + " but " +
                                  reference + " from " + geometry_string(first.source_geometry) +
                                  ": resample the modalities onto one grid before encoding");
    }
    if (other.levels.size() != first.levels.size()) {
      throw std::invalid_argument(who + " has " + std::to_string(other.levels.size()) + " levels but " + reference +
                                  " has " + std::to_string(first.levels.size()));
    }
    for (std::size_t l = 0; l < first.levels.size(); ++l) {
      const LatentLevel& a = first.levels[l];
      const LatentLevel& b = other.levels[l];
      const std::string where = who + " level " + std::to_string(l) + " '" + b.name + "'";
      if (b.name != a.name || b.role != a.role) {
        throw std::invalid_argument(where + " (role " + b.role + ") does not match " + reference + " level " +
                                    std::to_string(l) + " '" + a.name + "' (role " + a.role + ")");
      }
      if (b.channels != a.channels) {
        throw std::invalid_argument(where + " has " + std::to_string(b.channels) + " channels but " + reference +
                                    " has " + std::to_string(a.channels));
      }
      if (!b.geometry.same_grid(a.geometry)) {
        throw std::invalid_argument(where + ": grid " + geometry_string(b.geometry) + " differs from " + reference +
                                    "'s " + geometry_string(a.geometry));
      }
      if (b.data.size() != b.channels * b.voxel_count()) {
        throw std::invalid_argument(where + " holds " + std::to_string(b.data.size()) + " values, expected " +
                                    std::to_string(b.channels * b.voxel_count()));
      }
    }
  }
  if (!options.weights.empty() && options.weights.size() != latents.size()) {
    throw std::invalid_argument("weights has " + std::to_string(options.weights.size()) + " values for " +
                                std::to_string(latents.size()) + " latents: give one weight per latent, or none");
  }
  double sum = 0.0;
  for (double w : options.weights) {
    if (!(w >= 0.0) || !std::isfinite(w)) throw std::invalid_argument("weights must be finite and non-negative");
    sum += w;
  }
  if (!options.weights.empty() && !(sum > 0.0)) throw std::invalid_argument("weights must not all be zero");
  for (Rule rule : {options.detail_rule, options.base_rule}) {
    if (rule == Rule::SalienceMatch && latents.size() != 2) {
      throw std::invalid_argument("rule salience_match (Burt & Kolczynski) is defined for two sources, got " +
                                  std::to_string(latents.size()) + " latents");
    }
    if (rule == Rule::GuidedFilter && first.kind != kGuidedFilter) {
      throw std::invalid_argument(
          "rule guided_filter needs latents of kind 'guided_filter' (encode.guided_filter), "
          "got kind '" +
          first.kind + "'");
    }
    if (rule == Rule::GuidedFilter &&
        (first.levels.size() != 2 || first.levels[0].role != "detail" || first.levels[1].role != "base" ||
         first.levels[0].channels != 1 || first.levels[0].geometry.size != first.levels[1].geometry.size)) {
      throw std::invalid_argument(
          "rule guided_filter needs latents with a 'detail' and a 'base' level on one grid, "
          "as encode.guided_filter makes");
    }
  }
  if (!(options.match_threshold >= 0.0 && options.match_threshold < 1.0)) {
    throw std::invalid_argument("match_threshold must be in [0, 1)");
  }
}

// Integer box sums (exact) of a label indicator, for majority votes. T must
// hold (2r + 1)^3 (see vote_bits); the prefix sums are 32-bit.
template <class T>
void box_count(T* data, Dims d, std::size_t r, const RunControl& control) {
  auto window = [r](std::size_t i, std::size_t n) {
    return std::pair<std::size_t, std::size_t>(i >= r ? i - r : 0, std::min(n - 1, i + r));
  };
  const std::size_t slice = d.slice();
  // x and y per slice
  parallel_index(d.nz, [&](std::size_t k) {
    control.cancel_point();
    std::vector<std::int32_t> prefix(std::max(d.nx, d.ny) + 1);
    std::vector<std::int32_t> column(d.ny);
    T* plane = data + k * slice;
    for (std::size_t j = 0; j < d.ny; ++j) {
      T* row = plane + j * d.nx;
      prefix[0] = 0;
      for (std::size_t x = 0; x < d.nx; ++x) prefix[x + 1] = prefix[x] + row[x];
      for (std::size_t x = 0; x < d.nx; ++x) {
        const auto [lo, hi] = window(x, d.nx);
        row[x] = static_cast<T>(prefix[hi + 1] - prefix[lo]);
      }
    }
    for (std::size_t x = 0; x < d.nx; ++x) {
      prefix[0] = 0;
      for (std::size_t j = 0; j < d.ny; ++j) prefix[j + 1] = prefix[j] + plane[j * d.nx + x];
      for (std::size_t j = 0; j < d.ny; ++j) {
        const auto [lo, hi] = window(j, d.ny);
        plane[j * d.nx + x] = static_cast<T>(prefix[hi + 1] - prefix[lo]);
      }
    }
  });
  parallel_index(d.ny, [&](std::size_t j) {
    control.cancel_point();
    std::vector<std::int32_t> prefix(d.nz + 1);
    for (std::size_t x = 0; x < d.nx; ++x) {
      prefix[0] = 0;
      for (std::size_t k = 0; k < d.nz; ++k) prefix[k + 1] = prefix[k] + data[k * slice + j * d.nx + x];
      for (std::size_t k = 0; k < d.nz; ++k) {
        const auto [lo, hi] = window(k, d.nz);
        data[k * slice + j * d.nx + x] = static_cast<T>(prefix[hi + 1] - prefix[lo]);
      }
    }
  });
}

struct LevelInputs {
  std::vector<const float*> data;  // per source, channel-major
  std::size_t channels = 1;
  Dims dims;
  std::size_t voxels() const { return dims.count(); }
};

// Sum over channels of the product of two sources' coefficients, box-averaged,
// into `energy` (in.voxels() values).
void local_product_into(const LevelInputs& in, std::size_t a, std::size_t b, std::size_t radius, float* energy,
                        const RunControl& control) {
  const std::size_t v_count = in.voxels();
  parallel_index(in.dims.nz, [&](std::size_t k) {
    for (std::size_t v = k * in.dims.slice(); v < (k + 1) * in.dims.slice(); ++v) {
      float sum = 0.0f;
      for (std::size_t c = 0; c < in.channels; ++c) sum += in.data[a][c * v_count + v] * in.data[b][c * v_count + v];
      energy[v] = sum;
    }
  });
  detail::box_mean_inplace(energy, in.dims, radius, control);
}

std::vector<float> local_product(const LevelInputs& in, std::size_t a, std::size_t b, std::size_t radius,
                                 const RunControl& control) {
  std::vector<float> energy = make_float_buffer(in.voxels());
  local_product_into(in, a, b, radius, energy.data(), control);
  return energy;
}

void take_choice(const LevelInputs& in, const std::vector<std::uint8_t>& choice, float* out) {
  const std::size_t v_count = in.voxels();
  parallel_index(in.dims.nz, [&](std::size_t k) {
    for (std::size_t c = 0; c < in.channels; ++c) {
      for (std::size_t v = k * in.dims.slice(); v < (k + 1) * in.dims.slice(); ++v) {
        out[c * v_count + v] = in.data[choice[v]][c * v_count + v];
      }
    }
  });
}

void rule_average(const LevelInputs& in, const std::vector<double>& weights, float* out) {
  const std::size_t total = in.channels * in.voxels();
  const std::size_t block = in.dims.slice();
  std::vector<float> w(weights.begin(), weights.end());
  parallel_index((total + block - 1) / block, [&](std::size_t b) {
    const std::size_t end = std::min(total, (b + 1) * block);
    for (std::size_t i = b * block; i < end; ++i) {
      float acc = w[0] * in.data[0][i];
      for (std::size_t n = 1; n < in.data.size(); ++n) acc += w[n] * in.data[n][i];
      out[i] = acc;
    }
  });
}

void rule_max_abs(const LevelInputs& in, float* out) {
  const std::size_t total = in.channels * in.voxels();
  const std::size_t block = in.dims.slice();
  parallel_index((total + block - 1) / block, [&](std::size_t b) {
    const std::size_t end = std::min(total, (b + 1) * block);
    if (in.data.size() == 2) {
      const float* p = in.data[0];
      const float* q = in.data[1];
      for (std::size_t i = b * block; i < end; ++i) out[i] = std::fabs(q[i]) > std::fabs(p[i]) ? q[i] : p[i];
      return;
    }
    for (std::size_t i = b * block; i < end; ++i) {
      float best = in.data[0][i];
      for (std::size_t n = 1; n < in.data.size(); ++n) {
        if (std::fabs(in.data[n][i]) > std::fabs(best)) best = in.data[n][i];
      }
      out[i] = best;
    }
  });
}

// The consistency check: each voxel takes the majority of its neighbourhood's
// choices (ties keep its own). Votes are counted in `votes` and
// `best_votes` (voxel-count buffers of the narrowest counter that holds a
// full window, (2r + 1)^3 votes).
template <class Count>
std::vector<std::uint8_t> consistent_choice(const LevelInputs& in, const std::vector<std::uint8_t>& choice,
                                            std::size_t radius, Count* votes, Count* best_votes,
                                            const RunControl& control) {
  const Dims d = in.dims;
  std::vector<std::uint8_t> consistent(in.voxels(), 0);
  for (std::size_t n = 0; n < in.data.size(); ++n) {
    parallel_index(d.nz, [&](std::size_t k) {
      for (std::size_t v = k * d.slice(); v < (k + 1) * d.slice(); ++v) votes[v] = choice[v] == n ? 1 : 0;
    });
    box_count(votes, d, radius, control);
    parallel_index(d.nz, [&](std::size_t k) {
      for (std::size_t v = k * d.slice(); v < (k + 1) * d.slice(); ++v) {
        if (n == 0 || votes[v] > best_votes[v] || (votes[v] == best_votes[v] && choice[v] == n)) {
          best_votes[v] = votes[v];
          consistent[v] = static_cast<std::uint8_t>(n);
        }
      }
    });
  }
  return consistent;
}

// With counters wider than a byte the vote maps get their own buffers.
template <class Count>
std::vector<std::uint8_t> consistent_choice(const LevelInputs& in, const std::vector<std::uint8_t>& choice,
                                            std::size_t radius, const RunControl& control) {
  std::vector<Count> votes(in.voxels()), best_votes(in.voxels());
  return consistent_choice(in, choice, radius, votes.data(), best_votes.data(), control);
}

// Choose-max on local energy with whole-volume energy maps: one map plus the
// output level, which serves as the second map until the choice is taken.
void energy_choice_whole(const LevelInputs& in, std::size_t radius, float* out, std::vector<std::uint8_t>& choice,
                         const RunControl& control) {
  const Dims d = in.dims;
  std::vector<float> best = local_product(in, 0, 0, radius, control);
  float* energy = out;  // out holds channels * voxels >= voxels values, written last by take_choice
  for (std::size_t n = 1; n < in.data.size(); ++n) {
    local_product_into(in, n, n, radius, energy, control);
    parallel_index(d.nz, [&](std::size_t k) {
      for (std::size_t v = k * d.slice(); v < (k + 1) * d.slice(); ++v) {
        if (energy[v] > best[v]) {
          best[v] = energy[v];
          choice[v] = static_cast<std::uint8_t>(n);
        }
      }
    });
  }
}

// Bytes of energy_choice_stream's buffers.
std::size_t energy_stream_bytes(const LevelInputs& in, std::size_t radius) {
  return in.data.size() * in.dims.slice() * ((2 * radius + 2) * sizeof(double) + 2 * sizeof(float));
}

// The same choice, bit for bit, one z slice at a time: local_product's box
// mean (detail::box_mean_inplace) is a pass along x, then y, then z, each a
// prefix sum in double along the line rounded to float. The x and y passes
// need only the slice; the z pass keeps, per source, a ring of the last
// 2r + 2 planes of its running prefix sum, which is all a window needs.
// Output slice k is complete once slice min(k + r, nz - 1) is in.
void energy_choice_stream(const LevelInputs& in, std::size_t r, std::vector<std::uint8_t>& choice,
                          const RunControl& control) {
  const Dims d = in.dims;
  const std::size_t plane = d.slice();
  const std::size_t sources = in.data.size();
  const std::size_t v_count = in.voxels();
  const std::size_t ring = 2 * r + 2;
  std::vector<double> prefix(sources * ring * plane);
  std::vector<float> slice(sources * plane), energy(sources * plane);
  // Prefix plane `index` (the sum of slices 0 .. index - 1) of source n.
  auto prefix_plane = [&](std::size_t n, std::size_t index) {
    return prefix.data() + (n * ring + index % ring) * plane;
  };
  auto window = [r](std::size_t i, std::size_t n) {
    return std::pair<std::size_t, std::size_t>(i >= r ? i - r : 0, std::min(n - 1, i + r));
  };
  for (std::size_t n = 0; n < sources; ++n) std::fill_n(prefix_plane(n, 0), plane, 0.0);
  constexpr std::size_t kColumns = 64;  // y pass: blocks of columns per task
  std::size_t next_out = 0;
  for (std::size_t z = 0; z < d.nz; ++z) {
    control.cancel_point();
    for (std::size_t n = 0; n < sources; ++n) {
      float* values = slice.data() + n * plane;
      // Energy (sum over channels of the squared coefficient), then x, per row.
      parallel_index(d.ny, [&](std::size_t j) {
        float* row = values + j * d.nx;
        for (std::size_t x = 0; x < d.nx; ++x) {
          const std::size_t v = z * plane + j * d.nx + x;
          float sum = 0.0f;
          for (std::size_t c = 0; c < in.channels; ++c)
            sum += in.data[n][c * v_count + v] * in.data[n][c * v_count + v];
          row[x] = sum;
        }
        std::vector<double> line(d.nx + 1);
        line[0] = 0.0;
        for (std::size_t x = 0; x < d.nx; ++x) line[x + 1] = line[x] + static_cast<double>(row[x]);
        for (std::size_t x = 0; x < d.nx; ++x) {
          const auto [lo, hi] = window(x, d.nx);
          row[x] = static_cast<float>((line[hi + 1] - line[lo]) / static_cast<double>(hi - lo + 1));
        }
      });
      // y, per column.
      parallel_index((d.nx + kColumns - 1) / kColumns, [&](std::size_t block) {
        const std::size_t x0 = block * kColumns, x1 = std::min(d.nx, x0 + kColumns);
        std::vector<double> column((d.ny + 1) * (x1 - x0), 0.0);
        const std::size_t w = x1 - x0;
        for (std::size_t j = 0; j < d.ny; ++j) {
          for (std::size_t x = x0; x < x1; ++x) {
            column[(j + 1) * w + (x - x0)] = column[j * w + (x - x0)] + static_cast<double>(values[j * d.nx + x]);
          }
        }
        for (std::size_t j = 0; j < d.ny; ++j) {
          const auto [lo, hi] = window(j, d.ny);
          const double count = static_cast<double>(hi - lo + 1);
          for (std::size_t x = x0; x < x1; ++x) {
            values[j * d.nx + x] =
                static_cast<float>((column[(hi + 1) * w + (x - x0)] - column[lo * w + (x - x0)]) / count);
          }
        }
      });
      // z: the running prefix sum.
      const double* previous = prefix_plane(n, z);
      double* current = prefix_plane(n, z + 1);
      parallel_index(d.ny, [&](std::size_t j) {
        for (std::size_t v = j * d.nx; v < (j + 1) * d.nx; ++v)
          current[v] = previous[v] + static_cast<double>(values[v]);
      });
    }
    // Every output slice whose window ends here.
    const std::size_t last = z + 1 == d.nz ? d.nz : (z >= r ? z - r + 1 : 0);
    for (; next_out < last; ++next_out) {
      const std::size_t k = next_out;
      const auto [lo, hi] = window(k, d.nz);
      const double count = static_cast<double>(hi - lo + 1);
      parallel_index(d.ny, [&](std::size_t j) {
        for (std::size_t n = 0; n < sources; ++n) {
          const double* top = prefix_plane(n, hi + 1);
          const double* bottom = prefix_plane(n, lo);
          float* e = energy.data() + n * plane;
          for (std::size_t v = j * d.nx; v < (j + 1) * d.nx; ++v)
            e[v] = static_cast<float>((top[v] - bottom[v]) / count);
        }
        for (std::size_t v = j * d.nx; v < (j + 1) * d.nx; ++v) {
          float best = energy[v];
          std::uint8_t chosen = 0;
          for (std::size_t n = 1; n < sources; ++n) {
            if (energy[n * plane + v] > best) {
              best = energy[n * plane + v];
              chosen = static_cast<std::uint8_t>(n);
            }
          }
          choice[k * plane + v] = chosen;
        }
      });
    }
  }
}

void rule_local_energy(const LevelInputs& in, const FusionOptions& options, float* out, const RunControl& control) {
  const std::size_t v_count = in.voxels();
  std::vector<std::uint8_t> choice(v_count, 0);
  // Whichever needs less memory: slice by slice (usual: a few MiB instead
  // of a volume-sized energy map on the finest level) or whole maps (large
  // windows on thin grids).
  if (energy_stream_bytes(in, options.window_radius) < v_count * sizeof(float)) {
    energy_choice_stream(in, options.window_radius, choice, control);
  } else {
    energy_choice_whole(in, options.window_radius, out, choice, control);
  }
  const std::size_t r = options.consistency_radius;
  if (r > 0) {
    const std::size_t side = 2 * r + 1;
    const std::size_t window = side * side * side;
    if (window <= 0xFF) {
      // The output level is unused until take_choice: its bytes (at least
      // 4 per voxel) hold the two 1-byte vote maps.
      auto* scratch = reinterpret_cast<std::uint8_t*>(out);
      choice = consistent_choice(in, choice, r, scratch, scratch + v_count, control);
    } else if (window <= 0xFFFF) {
      choice = consistent_choice<std::uint16_t>(in, choice, r, control);
    } else {
      choice = consistent_choice<std::int32_t>(in, choice, r, control);
    }
  }
  take_choice(in, choice, out);
}

void rule_salience_match(const LevelInputs& in, const FusionOptions& options, float* out, const RunControl& control) {
  const std::size_t v_count = in.voxels();
  const Dims d = in.dims;
  const std::vector<float> sa = local_product(in, 0, 0, options.window_radius, control);
  const std::vector<float> sb = local_product(in, 1, 1, options.window_radius, control);
  const std::vector<float> cab = local_product(in, 0, 1, options.window_radius, control);
  const double alpha = options.match_threshold;
  parallel_index(d.nz, [&](std::size_t k) {
    for (std::size_t v = k * d.slice(); v < (k + 1) * d.slice(); ++v) {
      const double denominator = static_cast<double>(sa[v]) + static_cast<double>(sb[v]);
      const double match = denominator > 0.0 ? 2.0 * static_cast<double>(cab[v]) / denominator : 1.0;
      const bool a_salient = sa[v] >= sb[v];
      float wa = a_salient ? 1.0f : 0.0f;
      float wb = a_salient ? 0.0f : 1.0f;
      if (match > alpha) {
        const double w_min = 0.5 - 0.5 * (1.0 - match) / (1.0 - alpha);
        const auto w_max = static_cast<float>(1.0 - w_min);
        wa = a_salient ? w_max : static_cast<float>(w_min);
        wb = a_salient ? static_cast<float>(w_min) : w_max;
      }
      for (std::size_t c = 0; c < in.channels; ++c) {
        const std::size_t i = c * v_count + v;
        out[i] = wa * in.data[0][i] + wb * in.data[1][i];
      }
    }
  });
}

// GFF weight maps: fused base and detail levels of `guided_filter` latents.
struct GffResult {
  std::vector<float> base, detail;
};

GffResult fuse_gff(const std::vector<const Latent*>& latents, const FusionOptions& options, bool want_base,
                   bool want_detail, const RunControl& control) {
  const Geometry& grid = latents[0]->levels[0].geometry;
  const Dims d = dims_of(grid);
  const std::size_t v_count = d.count();
  const std::size_t sources = latents.size();
  auto image_of = [&](std::size_t n, std::vector<float>& image) {
    const float* detail_level = latents[n]->levels[0].data.data();
    const float* base_level = latents[n]->levels[1].data.data();
    parallel_index(d.nz, [&](std::size_t k) {
      for (std::size_t v = k * d.slice(); v < (k + 1) * d.slice(); ++v) image[v] = base_level[v] + detail_level[v];
    });
  };
  // Saliency S_n = G(|L * I_n|); P = argmax_n S_n (ties: the first source).
  const auto sigma_radius = static_cast<std::size_t>(std::lround(options.gff_saliency_sigma));
  const auto gauss = detail::gaussian_kernel(options.gff_saliency_sigma, sigma_radius);
  std::vector<float> image(v_count), laplacian(v_count), saliency(v_count), best(v_count);
  std::vector<std::uint8_t> choice(v_count, 0);
  for (std::size_t n = 0; n < sources; ++n) {
    image_of(n, image);
    parallel_index(d.nz, [&](std::size_t k) {
      control.cancel_point();
      for (std::size_t j = 0; j < d.ny; ++j) {
        for (std::size_t i = 0; i < d.nx; ++i) {
          const std::size_t v = k * d.slice() + j * d.nx + i;
          const float centre = image[v];
          // 7-point Laplacian; a neighbour outside the volume is the voxel itself.
          float sum = 0.0f;
          sum += (i > 0 ? image[v - 1] : centre) - centre;
          sum += (i + 1 < d.nx ? image[v + 1] : centre) - centre;
          sum += (j > 0 ? image[v - d.nx] : centre) - centre;
          sum += (j + 1 < d.ny ? image[v + d.nx] : centre) - centre;
          sum += (k > 0 ? image[v - d.slice()] : centre) - centre;
          sum += (k + 1 < d.nz ? image[v + d.slice()] : centre) - centre;
          laplacian[v] = std::fabs(sum);
        }
      }
    });
    detail::separable_filter(laplacian.data(), saliency.data(), d, gauss, gauss, gauss, control);
    parallel_index(d.nz, [&](std::size_t k) {
      for (std::size_t v = k * d.slice(); v < (k + 1) * d.slice(); ++v) {
        if (n == 0 || saliency[v] > best[v]) {
          best[v] = saliency[v];
          choice[v] = static_cast<std::uint8_t>(n);
        }
      }
    });
    control.report(0.3 * static_cast<double>(n + 1) / static_cast<double>(sources));
  }
  saliency = {};
  best = {};
  laplacian = {};
  // Refined weights W_n = GF(P_n, I_n); fused = sum W_n X_n / sum W_n.
  GffResult result;
  std::vector<float> num_b, den_b, num_d, den_d;
  if (want_base) {
    num_b.assign(v_count, 0.0f);
    den_b.assign(v_count, 0.0f);
  }
  if (want_detail) {
    num_d.assign(v_count, 0.0f);
    den_d.assign(v_count, 0.0f);
  }
  std::vector<float> indicator(v_count), weight(v_count);
  for (std::size_t n = 0; n < sources; ++n) {
    image_of(n, image);
    parallel_index(d.nz, [&](std::size_t k) {
      for (std::size_t v = k * d.slice(); v < (k + 1) * d.slice(); ++v) indicator[v] = choice[v] == n ? 1.0f : 0.0f;
    });
    auto accumulate = [&](std::size_t radius, double eps, const float* level, std::vector<float>& num,
                          std::vector<float>& den) {
      detail::guided_filter(image.data(), indicator.data(), weight.data(), d, radius, eps, control);
      parallel_index(d.nz, [&](std::size_t k) {
        for (std::size_t v = k * d.slice(); v < (k + 1) * d.slice(); ++v) {
          num[v] += weight[v] * level[v];
          den[v] += weight[v];
        }
      });
    };
    if (want_base) {
      accumulate(options.gff_base_radius, options.gff_base_eps, latents[n]->levels[1].data.data(), num_b, den_b);
    }
    if (want_detail) {
      accumulate(options.gff_detail_radius, options.gff_detail_eps, latents[n]->levels[0].data.data(), num_d, den_d);
    }
    control.report(0.3 + 0.7 * static_cast<double>(n + 1) / static_cast<double>(sources));
  }
  // Where the weights cancel out (|sum| tiny), fall back to the plain mean.
  auto finish = [&](std::vector<float>& num, const std::vector<float>& den, std::size_t level_index) {
    parallel_index(d.nz, [&](std::size_t k) {
      for (std::size_t v = k * d.slice(); v < (k + 1) * d.slice(); ++v) {
        if (std::fabs(den[v]) > 1e-6f) {
          num[v] /= den[v];
        } else {
          float sum = 0.0f;
          for (std::size_t n = 0; n < sources; ++n) sum += latents[n]->levels[level_index].data[v];
          num[v] = sum / static_cast<float>(sources);
        }
      }
    });
  };
  if (want_base) {
    finish(num_b, den_b, 1);
    result.base = std::move(num_b);
  }
  if (want_detail) {
    finish(num_d, den_d, 0);
    result.detail = std::move(num_d);
  }
  return result;
}

}  // namespace

Latent fuse_latents(const std::vector<const Latent*>& latents, const FusionOptions& options,
                    const RunControl& control) {
  validate(latents, options);
  const Latent& first = *latents[0];
  std::vector<double> weights = options.weights;
  if (weights.empty()) weights.assign(latents.size(), 1.0);
  double weight_sum = 0.0;
  for (double w : weights) weight_sum += w;
  for (double& w : weights) w /= weight_sum;

  Latent fused;
  fused.kind = first.kind;
  fused.encoder_params = first.encoder_params;
  fused.source_geometry = first.source_geometry;
  fused.source_metadata = first.source_metadata;
  std::string sources, units = first.source_metadata.units;
  for (std::size_t n = 0; n < latents.size(); ++n) {
    const VolumeMetadata& m = latents[n]->source_metadata;
    if (n > 0) sources += ",";
    sources += m.modality.empty() ? "latents[" + std::to_string(n) + "]" : m.modality;
    if (m.units != units) units = "mixed";
  }
  fused.source_metadata.modality = "FUSED";
  fused.source_metadata.units = units;
  fused.source_metadata.quantity =
      "fused (" + kRuleNames.name(options.detail_rule) + " detail, " + kRuleNames.name(options.base_rule) + " base)";
  fused.source_metadata.series_description.clear();
  fused.source_metadata.extra.clear();
  fused.source_metadata.extra["fusion_sources"] = sources;
  fused.source_metadata.extra["fusion_kind"] = first.kind;
  fused.source_metadata.extra["fusion_detail_rule"] = kRuleNames.name(options.detail_rule);
  fused.source_metadata.extra["fusion_base_rule"] = kRuleNames.name(options.base_rule);
  {
    std::ostringstream w;
    for (std::size_t n = 0; n < weights.size(); ++n) w << (n ? "," : "") << weights[n];
    fused.source_metadata.extra["fusion_weights"] = w.str();
  }

  detail::run_in_arena(control.threads, [&] {
    GffResult gff;
    const bool gff_base = options.base_rule == Rule::GuidedFilter;
    const bool gff_detail = options.detail_rule == Rule::GuidedFilter;
    if (gff_base || gff_detail) gff = fuse_gff(latents, options, gff_base, gff_detail, control.sub(0.0, 0.5));
    const double start = gff_base || gff_detail ? 0.5 : 0.0;
    // Progress weighted by level size.
    double total_values = 0.0, done_values = 0.0;
    for (const LatentLevel& level : first.levels) total_values += static_cast<double>(level.data.size());
    for (std::size_t l = 0; l < first.levels.size(); ++l) {
      control.cancel_point();
      const LatentLevel& reference = first.levels[l];
      const Rule rule = reference.role == "base" ? options.base_rule : options.detail_rule;
      LatentLevel level;
      level.name = reference.name;
      level.role = reference.role;
      level.geometry = reference.geometry;
      level.channels = reference.channels;
      if (rule == Rule::GuidedFilter) {
        level.data = std::move(reference.role == "base" ? gff.base : gff.detail);
      } else {
        LevelInputs in;
        in.channels = reference.channels;
        in.dims = dims_of(reference.geometry);
        for (const Latent* latent : latents) in.data.push_back(latent->levels[l].data.data());
        level.data = make_float_buffer(reference.data.size());
        switch (rule) {
          case Rule::Average: rule_average(in, weights, level.data.data()); break;
          case Rule::MaxAbs: rule_max_abs(in, level.data.data()); break;
          case Rule::LocalEnergy: rule_local_energy(in, options, level.data.data(), control); break;
          case Rule::SalienceMatch: rule_salience_match(in, options, level.data.data(), control); break;
          case Rule::GuidedFilter: break;
        }
      }
      fused.levels.push_back(std::move(level));
      done_values += static_cast<double>(reference.data.size());
      control.report(start + (1.0 - start) * done_values / total_values);
    }
  });
  return fused;
}

}  // namespace fusionflow::latent
