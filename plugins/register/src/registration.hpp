// Intensity-based linear registration: Mattes mutual information on fresh
// random samples at every iteration, adaptive stochastic gradient descent,
// multi-resolution. Free of ITK in its interface.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "fusionflow/choice_list.hpp"
#include "fusionflow/run_control.hpp"
#include "fusionflow/transform.hpp"
#include "fusionflow/volume.hpp"

namespace fusionflow::registration {

enum class TransformKind { Rigid, Affine };
inline const ChoiceList<TransformKind> kTransformKindNames{{TransformKind::Rigid, "rigid"},
                                                           {TransformKind::Affine, "affine"}};

// How the transform starts: grid centres aligned, intensity centres of mass
// aligned, or the identity.
enum class Initialization { Geometry, Moments, None };
inline const ChoiceList<Initialization> kInitializationNames{
    {Initialization::Geometry, "geometry"}, {Initialization::Moments, "moments"}, {Initialization::None, "none"}};

struct Settings {
  TransformKind transform_kind = TransformKind::Rigid;
  Initialization initialization = Initialization::Geometry;
  std::vector<int> shrink_factors{4, 2, 1};  // samples on every n-th fixed voxel per axis
  std::vector<double> smoothing_sigmas_mm{2.0, 1.0, 0.0};
  int histogram_bins = 32;
  long samples_per_iteration = 2048;  // fresh random fixed voxels at every iteration
  std::uint64_t seed = 1;
  std::vector<int> iterations{300, 300, 300};  // per level
  double max_step_mm = 2.0;     // largest voxel motion of a step at the coarsest level (finer: x (shrink ratio)^2)
  double convergence_mm = 0.5;  // converged when the means of the last two windows differ by less (RMS voxel motion)
  int convergence_window = 50;  // iterations per window
  bool require_convergence = true;
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
  double final_metric = 0;  // -Mattes MI in nats (lower is better)
  int total_iterations = 0;
  std::vector<LevelReport> levels;
};

// Registers `moving` to `fixed`: the returned transform maps fixed physical
// points to moving physical points. Throws std::runtime_error with a clear
// reason for constant images, volumes that do not overlap, and (when
// require_convergence) an optimisation that did not converge; fusionflow::
// Cancelled when control.check_cancelled throws it. Deterministic: the
// same seed gives the same transform, bit for bit, whatever control.threads is.
Result register_volumes(const Volume& fixed, const Volume& moving, const Settings& settings, const RunControl& control);

}  // namespace fusionflow::registration
