// How the shared-latent transforms run: thread budget, cancellation and
// progress. The transforms take a Control rather than a NodeContext so that
// tests and benchmarks can call them directly.
#pragma once

#include <cstddef>
#include <functional>
#include <vector>

#include <fusionflow/node.hpp>

namespace fusionflow::latent {

struct Control {
  // Size of the oneTBB task arena the transform runs its parallel loops in.
  // Results are bit-identical for every value: no floating-point reduction
  // depends on how work is split between threads.
  int threads = 1;
  // Called from worker threads between slices; throws to stop the work
  // (NodeContext::throw_if_cancelled throws fusionflow::Cancelled).
  std::function<void()> check_cancelled;
  // Called from the calling thread only, with a fraction in [0, 1].
  std::function<void(double)> progress;

  void cancel_point() const {
    if (check_cancelled) check_cancelled();
  }
  void report(double fraction) const {
    if (progress) progress(fraction);
  }
  // A Control whose progress maps [0, 1] onto [begin, end] of this one.
  Control sub(double begin, double end) const;
};

// The node's thread budget, cancellation flag and progress reporting.
Control control_for(NodeContext& ctx);

// A zero-filled float buffer of `count` values. Large buffers are advised to
// use transparent huge pages (madvise), which makes first-touch page faults,
// the dominant cost of allocating a fresh 64 MiB level, about 5x cheaper.
std::vector<float> make_float_buffer(std::size_t count);

}  // namespace fusionflow::latent
