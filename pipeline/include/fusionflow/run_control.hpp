// How a long computation inside a node runs: its thread budget, cancellation
// and progress. Numerics (fusion transforms, registration, inference) take a
// RunControl rather than a NodeContext, so that tests and benchmarks can call
// them directly; run_control(ctx) gives the node's own.
#pragma once

#include <functional>

namespace fusionflow {

class NodeContext;

struct RunControl {
  // Threads the computation may use (its oneTBB arena, its slice batches).
  // Results must be the same bytes for every value: no floating-point
  // reduction may depend on how work is split between threads.
  int threads = 1;
  // Called from worker threads at safe points; throws to stop the work
  // (NodeContext::throw_if_cancelled throws fusionflow::Cancelled). May be empty.
  std::function<void()> check_cancelled;
  // Called with a fraction in [0, 1], never by two threads at once (the
  // computation serialises its reports). May be empty.
  std::function<void(double)> progress;

  void cancel_point() const {
    if (check_cancelled) check_cancelled();
  }
  void report(double fraction) const {
    if (progress) progress(fraction);
  }
  // The same control with progress [0, 1] mapped onto [begin, end] of this one.
  RunControl sub(double begin, double end) const;
  // The same control without progress reports (for a step whose progress the
  // caller accounts for itself).
  RunControl without_progress() const;
};

// The node's thread budget, cancellation flag and progress reporting. The
// result refers to `ctx`: use it only while the node runs.
RunControl run_control(NodeContext& ctx);

}  // namespace fusionflow
