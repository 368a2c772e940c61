// Internal building blocks of the latent transforms: task arenas, scratch
// buffers, separable filters, box means and the 3D guided filter.
//
// Determinism: every output value is computed by one thread with a fixed
// sequence of floating-point operations that does not depend on how the
// loop is split, so results are bit-identical for any thread count.
#pragma once

#include <array>
#include <cstddef>
#include <memory>
#include <utility>
#include <vector>

#include <tbb/blocked_range.h>
#include <tbb/parallel_for.h>
#include <tbb/task_arena.h>

#include <fusionflow/volume.hpp>

#include <fusionflow/run_control.hpp>

namespace fusionflow::latent {

// A zero-filled float buffer of `count` values. Large buffers are advised to
// use transparent huge pages (madvise), which makes first-touch page faults,
// the dominant cost of allocating a fresh 64 MiB level, about 5x cheaper.
std::vector<float> make_float_buffer(std::size_t count);

}  // namespace fusionflow::latent

namespace fusionflow::latent::detail {

struct Dims {
  std::size_t nx = 0, ny = 0, nz = 0;
  std::size_t slice() const { return nx * ny; }
  std::size_t count() const { return nx * ny * nz; }
  bool operator==(const Dims& o) const { return nx == o.nx && ny == o.ny && nz == o.nz; }
};

inline Dims dims_of(const Geometry& g) { return {g.size[0], g.size[1], g.size[2]}; }

// Runs `body` with at most `threads` threads: in the current task arena when
// it is no larger (e.g. the executor's), else in a new arena of that size.
// Exceptions propagate to the caller.
template <class F>
void run_in_arena(int threads, F&& body) {
  const int wanted = threads < 1 ? 1 : threads;
  if (tbb::this_task_arena::max_concurrency() <= wanted) {
    body();
    return;
  }
  tbb::task_arena arena(wanted);
  arena.execute(std::forward<F>(body));
}

// Calls body(i) for i in [0, n) in parallel (inside the current arena).
template <class F>
void parallel_index(std::size_t n, F&& body) {
  tbb::parallel_for(tbb::blocked_range<std::size_t>(0, n), [&](const tbb::blocked_range<std::size_t>& r) {
    for (std::size_t i = r.begin(); i != r.end(); ++i) body(i);
  });
}

// Uninitialised scratch memory (pages are touched by the threads that fill
// them); huge pages advised for large buffers.
std::unique_ptr<float[]> make_scratch(std::size_t count);

// Index reflected into [0, n) without repeating the edge sample
// (..., 2, 1, | 0, 1, 2, ..., n-1, | n-2, ...), for any offset.
inline std::ptrdiff_t reflect(std::ptrdiff_t i, std::ptrdiff_t n) {
  if (n == 1) return 0;
  const std::ptrdiff_t period = 2 * (n - 1);
  i %= period;
  if (i < 0) i += period;
  return i < n ? i : period - i;
}

// A symmetric 1D kernel of odd length with holes: taps at offsets
// (t - radius) * dilation, t = 0 .. 2 radius.
struct Kernel1D {
  std::vector<float> weights;
  std::size_t dilation = 1;
  std::size_t radius() const { return weights.size() / 2; }
};

Kernel1D binomial5(std::size_t dilation);                    // [1 4 6 4 1] / 16 (B3 spline)
Kernel1D gaussian_kernel(double sigma, std::size_t radius);  // normalised to sum 1

// out = in filtered separably along x, y and z with mirror (reflect-101)
// borders. `in` and `out` must not overlap. Checks cancellation per slice.
void separable_filter(const float* in, float* out, Dims d, const Kernel1D& kx, const Kernel1D& ky, const Kernel1D& kz,
                      const RunControl& control);

// In-place mean over the box [x-r, x+r] x [y-r, y+r] x [z-r, z+r] clipped to
// the volume (each voxel divided by the number of voxels actually inside).
// Running sums in double, in a fixed order per line.
template <class T>
void box_mean_inplace(T* data, Dims d, std::size_t radius, const RunControl& control);
extern template void box_mean_inplace<float>(float*, Dims, std::size_t, const RunControl&);
extern template void box_mean_inplace<double>(double*, Dims, std::size_t, const RunControl&);

// He, Sun and Tang's guided filter (ECCV 2010 / TPAMI 2013) in 3D: filters
// `input` guided by `guide` with a (2r+1)^3 box and regulariser `eps`.
// Intermediate means are kept in double: with eps = 1e-6 (GFF's detail
// weights) the local variances are too small for float cancellation.
void guided_filter(const float* guide, const float* input, float* out, Dims d, std::size_t radius, double eps,
                   const RunControl& control);

}  // namespace fusionflow::latent::detail
