// Moving axial slices between volumes (i fastest) and LibTorch batches
// [B, channels, rows = j, columns = i], with padding to whole blocks.
#pragma once

#include <torch/torch.h>

#include <algorithm>
#include <vector>

#include "fusionflow/volume.hpp"

namespace fusionflow::learned {

// Slices k0 .. k0 + count - 1 of `values` (grid `g`), each with `context`
// neighbours on both sides as channels (clamped at the ends), padded
// in-plane to `padded_x` x `padded_y` by repeating the last column / row.
inline torch::Tensor slices_to_tensor(const float* values, const Geometry& g, std::size_t k0, std::size_t count,
                                      int context, std::size_t padded_x, std::size_t padded_y) {
  const std::size_t nx = g.size[0], ny = g.size[1], nz = g.size[2];
  const std::size_t channels = std::size_t(2 * context + 1);
  torch::Tensor batch = torch::empty({long(count), long(channels), long(padded_y), long(padded_x)});
  float* out = batch.data_ptr<float>();
  for (std::size_t b = 0; b < count; ++b) {
    for (std::size_t c = 0; c < channels; ++c) {
      const long k = std::clamp<long>(long(k0 + b) + long(c) - context, 0, long(nz) - 1);
      const float* slice = values + std::size_t(k) * nx * ny;
      float* plane = out + (b * channels + c) * padded_x * padded_y;
      for (std::size_t j = 0; j < padded_y; ++j) {
        const float* row = slice + std::min(j, ny - 1) * nx;
        float* target = plane + j * padded_x;
        std::copy(row, row + nx, target);
        std::fill(target + nx, target + padded_x, row[nx - 1]);
      }
    }
  }
  return batch;
}

inline std::size_t round_up(std::size_t n, std::size_t factor) { return (n + factor - 1) / factor * factor; }

}  // namespace fusionflow::learned
