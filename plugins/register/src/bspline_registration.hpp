// Deformable registration: a cubic B-spline free-form deformation (Rueckert
// et al., IEEE TMI 18(8), 1999) after a given rigid or affine transform,
// Mattes mutual information of the histogram-equalised images on fresh
// random samples at every iteration,
// adaptive stochastic gradient descent, a bending-energy penalty, and a
// multi-resolution schedule of image smoothing and control-point spacing.
// Free of ITK in its interface.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "fusionflow/run_control.hpp"
#include "fusionflow/transform.hpp"
#include "fusionflow/volume.hpp"

namespace fusionflow::registration {

// Defaults chosen on a deformed 160x160x120 phantom at 1.5 mm (7 mm
// deformation, 20 mm smooth; docs/registration.md).
struct BSplineSettings {
  // Per level, coarse to fine. Each grid spacing equals the previous one or
  // half of it (the lattice is refined exactly, by subdivision).
  std::vector<int> shrink_factors{4, 2, 1};  // samples on every n-th fixed voxel per axis
  std::vector<double> smoothing_sigmas_mm{2.0, 1.0, 0.5};
  std::vector<double> grid_spacing_mm{64.0, 32.0, 16.0};
  std::vector<int> iterations{200, 200, 200};
  int histogram_bins = 48;  // of the histogram-equalised intensities
  long samples_per_iteration = 8192;
  std::uint64_t seed = 1;
  // Largest control-point move of a step at the first level; later levels
  // scale it with their grid spacing.
  double max_step_mm = 4.0;
  // Weight of the mean bending energy of the displacement (1/mm^2) against
  // the mutual information (nats).
  double bending_energy_weight = 10.0;
  double convergence_mm = 0.05;  // RMS control-point motion between the means of the last two windows
  int convergence_window = 25;
};

struct BSplineLevelReport {
  int level;
  int shrink_factor;
  double grid_spacing_mm;
  int iterations;
  double final_metric;    // -MI
  double bending_energy;  // mean, 1/mm^2
  std::string stop_condition;
  bool converged;
};

struct BSplineResult {
  Transform transform;  // kind "bspline": `initial`'s linear part after the deformation
  double final_metric = 0;
  std::vector<BSplineLevelReport> levels;
  // det d(x + D(x))/dx over every fixed voxel (the linear part's determinant
  // not included): <= 0 means folding.
  double smallest_jacobian_determinant = 1;
  double largest_jacobian_determinant = 1;
  std::size_t folded_voxels = 0;
};

// Mean bending energy of the displacement over the lattice's interior
// control points, from second differences of the coefficients:
//   E = mean over points of sum_d [ sum_a (d2 c_d / da^2)^2 + 2 sum_{a<b} (d2 c_d / da db)^2 ],
// derivatives by central differences in mm (a discrete form of the
// continuous bending energy of Rueckert et al.), and its gradient with
// respect to the coefficients (added into `gradient`, scaled by `weight`).
double bending_energy(const BSplineDeformation& deformation, double weight, std::vector<double>* gradient);

// Registers `moving` to `fixed` starting from `initial` (a linear transform,
// e.g. register.rigid's, kept as it is): the returned transform maps fixed
// physical points to moving ones. Throws std::runtime_error for constant
// images, volumes that do not overlap, and inconsistent schedules;
// fusionflow::Cancelled when control.check_cancelled throws it. The same
// seed gives the same transform, bit for bit, for any control.threads.
BSplineResult register_bspline(const Volume& fixed, const Volume& moving, const Transform& initial,
                               const BSplineSettings& settings, const RunControl& control);

}  // namespace fusionflow::registration
