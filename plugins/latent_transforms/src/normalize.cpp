#include "latent_transforms/normalize.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <sstream>
#include <stdexcept>

#include <fusionflow/statistics.hpp>

#include "kernels.hpp"

namespace fusionflow::latent {

namespace {

std::string number(double value) {
  std::ostringstream out;
  out.precision(17);
  out << value;
  return out.str();
}

double suv_factor(const Volume& volume, const NormalizeOptions& options) {
  const std::string& units = volume.metadata.units;
  if (units == "SUV" || units == "SUVbw" || units == "g/mL" || units == "g/ml") return 1.0;
  if (options.suv_per_unit > 0.0) return options.suv_per_unit;
  const auto it = volume.metadata.extra.find("suvbw_per_bq_per_ml");
  if (it != volume.metadata.extra.end()) {
    try {
      const double factor = std::stod(it->second);
      if (factor > 0.0 && std::isfinite(factor)) return factor;
    } catch (const std::exception&) {
    }
    throw std::invalid_argument("suv_range: metadata suvbw_per_bq_per_ml = '" + it->second +
                                "' is not a positive number");
  }
  throw std::invalid_argument("suv_range: the volume's units are '" + units +
                              "' and it carries no SUV factor (metadata suvbw_per_bq_per_ml): convert it to SUV "
                              "first or set suv_per_unit (SUV per " +
                              (units.empty() ? "input unit" : units) + ")");
}

std::vector<float> finite_values(const Volume& volume) {
  std::vector<float> values;
  values.reserve(volume.voxels.size());
  for (float v : volume.voxels) {
    if (std::isfinite(v)) values.push_back(v);
  }
  return values;
}

}  // namespace

NormalizeResult normalize_intensity(const Volume& volume, const NormalizeOptions& options, const RunControl& control) {
  if (volume.voxels.size() != volume.geometry.voxel_count()) {
    throw std::invalid_argument("normalize: the volume holds " + std::to_string(volume.voxels.size()) +
                                " voxels but its geometry needs " + std::to_string(volume.geometry.voxel_count()));
  }
  NormalizeResult result;
  std::string how;
  switch (options.mode) {
    case NormalizeMode::CtWindow:
      if (!(options.window_width > 0.0)) throw std::invalid_argument("ct_window: window_width must be positive");
      result.low = options.window_level - options.window_width / 2.0;
      result.high = options.window_level + options.window_width / 2.0;
      how = "window level " + number(options.window_level) + " width " + number(options.window_width);
      break;
    case NormalizeMode::SuvRange: {
      if (!(options.suv_max > options.suv_min)) throw std::invalid_argument("suv_range: suv_max must exceed suv_min");
      const double factor = suv_factor(volume, options);
      result.low = options.suv_min / factor;
      result.high = options.suv_max / factor;
      how = "SUV " + number(options.suv_min) + " to " + number(options.suv_max) + " at " + number(factor) +
            " SUV per input unit";
      break;
    }
    case NormalizeMode::Percentile: {
      if (!(options.percentile_low >= 0.0 && options.percentile_low < options.percentile_high &&
            options.percentile_high <= 100.0)) {
        throw std::invalid_argument("percentile: need 0 <= percentile_low < percentile_high <= 100");
      }
      std::vector<float> values = finite_values(volume);
      if (values.empty()) throw std::invalid_argument("percentile: the volume has no finite voxel");
      result.low = fusionflow::percentile(values, options.percentile_low);
      result.high = fusionflow::percentile(values, options.percentile_high);
      how = "percentiles " + number(options.percentile_low) + " and " + number(options.percentile_high);
      break;
    }
    case NormalizeMode::ZScore: {
      if (!(options.zscore_range > 0.0)) throw std::invalid_argument("zscore: zscore_range must be positive");
      double sum = 0.0, count = 0.0;
      for (float v : volume.voxels) {
        if (std::isfinite(v)) {
          sum += v;
          count += 1.0;
        }
      }
      if (count == 0.0) throw std::invalid_argument("zscore: the volume has no finite voxel");
      const double mean = sum / count;
      double squares = 0.0;
      for (float v : volume.voxels) {
        if (std::isfinite(v)) squares += (v - mean) * (v - mean);
      }
      const double sd = std::sqrt(squares / count);
      result.low = mean - options.zscore_range * sd;
      result.high = mean + options.zscore_range * sd;
      how = "mean " + number(mean) + " -/+ " + number(options.zscore_range) + " x sd " + number(sd);
      break;
    }
    case NormalizeMode::MinMax: {
      double low = std::numeric_limits<double>::infinity(), high = -low;
      for (float v : volume.voxels) {
        if (std::isfinite(v)) {
          low = std::min<double>(low, v);
          high = std::max<double>(high, v);
        }
      }
      if (!std::isfinite(low)) throw std::invalid_argument("minmax: the volume has no finite voxel");
      result.low = low;
      result.high = high;
      how = "minimum and maximum";
      break;
    }
  }
  control.report(0.5);

  const bool degenerate = !(result.high > result.low);
  if (degenerate) {
    result.warning = kNormalizeModeNames.name(options.mode) + ": the mapped range is empty (low " + number(result.low) +
                     ", high " + number(result.high) + "): the output is all 0";
  }
  const double scale = degenerate ? 0.0 : 1.0 / (result.high - result.low);
  const double low = result.low;
  result.volume.geometry = volume.geometry;
  result.volume.metadata = volume.metadata;
  result.volume.voxels = make_float_buffer(volume.voxels.size());
  const detail::Dims d = detail::dims_of(volume.geometry);
  detail::run_in_arena(control.threads, [&] {
    detail::parallel_index(d.nz, [&](std::size_t k) {
      control.cancel_point();
      for (std::size_t v = k * d.slice(); v < (k + 1) * d.slice(); ++v) {
        const float x = volume.voxels[v];
        double y = std::isfinite(x) ? (static_cast<double>(x) - low) * scale : 0.0;
        if (options.clamp) y = std::clamp(y, 0.0, 1.0);
        result.volume.voxels[v] = static_cast<float>(y);
      }
    });
  });
  VolumeMetadata& m = result.volume.metadata;
  m.extra["normalize_mode"] = kNormalizeModeNames.name(options.mode);
  m.extra["normalize_low"] = number(result.low);
  m.extra["normalize_high"] = number(result.high);
  m.extra["normalize_input_units"] = volume.metadata.units;
  m.extra["normalize_clamp"] = options.clamp ? "true" : "false";
  m.extra["normalize_rule"] = how + "; y = (x - low) / (high - low)";
  m.units = "normalized";
  control.report(1.0);
  return result;
}

}  // namespace fusionflow::latent
