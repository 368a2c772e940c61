// Intensity-based linear registration (ITK v4 framework, Mattes mutual
// information), free of ITK in its interface.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "fusionflow/transform.hpp"
#include "fusionflow/volume.hpp"

namespace fusionflow::registration {

struct Settings {
  std::string transform_kind = "rigid";   // rigid | affine
  std::string initialization = "geometry";  // geometry | moments | none
  std::vector<int> shrink_factors{4, 2, 1};
  std::vector<double> smoothing_sigmas_mm{2.0, 1.0, 0.0};
  int histogram_bins = 32;
  double sampling_percentage = 0.2;  // of each level's voxels, random with `seed`...
  long max_samples = 50000;          // ...but at most this many per level
  std::uint64_t seed = 1;
  std::vector<int> iterations{300, 200, 100};
  double max_step_mm = 2.0;  // first step, as the largest physical shift of a voxel
  double min_step_mm = 0.005;
  double relaxation = 0.8;
  double gradient_tolerance = 1e-6;
  bool require_convergence = true;
  // Same transform for any thread count (the metric runs on one thread);
  // false lets the metric use `threads` at the cost of last-bit differences.
  bool deterministic = true;
  int threads = 1;
};

struct LevelReport {
  int level;
  int shrink_factor;
  int iterations;
  double final_metric;
  std::string stop_condition;
  bool converged;
};

struct Result {
  Transform transform;
  double final_metric = 0;  // Mattes MI (negative: lower is better)
  int total_iterations = 0;
  std::vector<LevelReport> levels;
};

struct Callbacks {
  std::function<void(double)> progress;
  std::function<bool()> cancelled;
};

// Registers `moving` to `fixed`: the returned transform maps fixed physical
// points to moving physical points. Throws std::runtime_error with a clear
// reason for constant images, volumes that do not overlap, and (when
// require_convergence) an optimisation that did not converge; fusionflow::
// Cancelled when callbacks.cancelled() turns true. Deterministic for a given
// seed, whatever `threads` is.
Result register_volumes(const Volume& fixed, const Volume& moving, const Settings& settings,
                        const Callbacks& callbacks);

}  // namespace fusionflow::registration
