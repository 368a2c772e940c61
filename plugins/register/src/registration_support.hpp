// Pieces the rigid/affine and the B-spline registration share (internal to
// the register plugin).
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <vector>

#include "fusionflow/itk_bridge.hpp"
#include "fusionflow/volume.hpp"
#include "mattes_mi.hpp"

namespace fusionflow::registration {

// Throws std::runtime_error for an empty or constant volume, or one with
// NaN or infinite voxels, naming `role` ("fixed", "moving") and its source.
void check_registrable(const Volume& volume, const char* role);

// Gaussian smoothing with sigma in mm (the image itself for sigma <= 0).
ItkFloatImage::ConstPointer smoothed(const ItkFloatImage::ConstPointer& image, double sigma_mm);

ImageRef image_ref(const ItkFloatImage& image);

// Throws std::runtime_error when fewer than one in 20 of an iteration's
// samples map inside the moving volume; `check` says what to look at.
void check_overlap_during_optimisation(const MetricValue& value, std::size_t samples, std::size_t level,
                                       const char* check);

// The adaptive stochastic gradient descent of Klein, Pluim, Staring and
// Viergever (IJCV 81(3), 2009), as elastix's optimiser: gain
// a0 * (A / (A + t))^alpha, where the "time" t grows when consecutive
// gradients point against each other (the optimum is near, noise dominates)
// and shrinks when they agree. The sigmoid's bounds (1, -0.8) are elastix's
// defaults; its width omega applies here to the cosine of the two gradients
// (our normalisation, so it needs no noise estimate). A = 20 as elastix;
// alpha = 1 (a 1/t decay) gave lower TRE on the phantom than 0.602.
struct GainSchedule {
  double A = 20;
  double alpha = 1.0;
  double f_max = 1.0, f_min = -0.8, omega = 0.1;
  double sigmoid(double x) const { return f_min + (f_max - f_min) / (1.0 - (f_max / f_min) * std::exp(-x / omega)); }
  // The time after a step whose gradient made `cosine` with the previous one.
  double next_time(double time, double cosine) const { return std::max(0.0, time + sigmoid(-cosine)); }
  double gain(double a0, double time) const { return a0 * std::pow(A / (A + time), alpha); }
};

// Cosine of two gradients in the metric that divides parameter p by
// scales[p] (no scales: the plain one); 0 if either is zero.
inline double gradient_cosine(const std::vector<double>& now, const std::vector<double>& before,
                              const std::vector<double>* scales = nullptr) {
  double dot = 0, norm_now = 0, norm_before = 0;
  for (std::size_t p = 0; p < now.size(); ++p) {
    const double scale = scales != nullptr ? (*scales)[p] : 1.0;
    dot += now[p] * before[p] / scale;
    norm_now += now[p] * now[p] / scale;
    norm_before += before[p] * before[p] / scale;
  }
  return norm_now > 0 && norm_before > 0 ? dot / std::sqrt(norm_now * norm_before) : 0.0;
}

}  // namespace fusionflow::registration
