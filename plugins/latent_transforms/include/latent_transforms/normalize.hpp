// Intensity normalisation before encoding: every modality is mapped linearly
// onto a comparable range, y = (x - low) / (high - low), so that 0 and 1 mean
// "low" and "high" of that modality, and clamped to [0, 1] (by default).
// Non-finite voxels become 0. How low and high are chosen:
//
//   ct_window   low = level - width / 2, high = level + width / 2 (HU).
//   suv_range   low = suv_min, high = suv_max, in SUV; the input is converted
//               to SUV with a factor taken from, in order: units "SUV",
//               "SUVbw" or "g/mL" (factor 1); the suv_per_unit option; the
//               metadata entry extra["suvbw_per_bq_per_ml"].
//   percentile  low/high = the given percentiles of the finite voxels (linear
//               interpolation between order statistics, as NumPy's default);
//               for MRI, whose intensities have no absolute unit.
//   zscore      low/high = mean -/+ zscore_range standard deviations.
//   minmax      low/high = the finite minimum and maximum.
#pragma once

#include <string>

#include <fusionflow/choice_list.hpp>
#include <fusionflow/volume.hpp>

#include <fusionflow/run_control.hpp>

namespace fusionflow::latent {

enum class NormalizeMode { CtWindow, SuvRange, Percentile, ZScore, MinMax };

// The modes' names, as pipelines and metadata spell them.
inline const ChoiceList<NormalizeMode> kNormalizeModeNames{{NormalizeMode::CtWindow, "ct_window"},
                                                           {NormalizeMode::SuvRange, "suv_range"},
                                                           {NormalizeMode::Percentile, "percentile"},
                                                           {NormalizeMode::ZScore, "zscore"},
                                                           {NormalizeMode::MinMax, "minmax"}};

struct NormalizeOptions {
  NormalizeMode mode = NormalizeMode::MinMax;
  double window_level = 40.0;   // HU
  double window_width = 400.0;  // HU
  double suv_min = 0.0;
  double suv_max = 10.0;
  double suv_per_unit = 0.0;  // SUV per input unit; 0 = from units/metadata
  double percentile_low = 1.0;
  double percentile_high = 99.0;
  double zscore_range = 3.0;
  bool clamp = true;
};

struct NormalizeResult {
  Volume volume;        // metadata: units "normalized", extra["normalize_*"] records the mapping
  double low = 0.0;     // input value mapped to 0
  double high = 1.0;    // input value mapped to 1
  std::string warning;  // non-empty when the mapping is degenerate (high <= low: output is all 0)
};

// Throws std::invalid_argument when the options are inconsistent (e.g. width
// <= 0, suv_max <= suv_min, percentile_low >= percentile_high) or no SUV
// factor can be found.
NormalizeResult normalize_intensity(const Volume& volume, const NormalizeOptions& options,
                                    const RunControl& control = {});

}  // namespace fusionflow::latent
