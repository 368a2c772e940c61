// normalize.* nodes: map each modality onto a comparable [0, 1] range before
// it is encoded into the shared latent space (encode.*). Normalisation is its
// own family rather than part of encode.* so that any consumer (fusion,
// registration metrics, learned encoders, display) can use it, and so that
// the mapping is visible as a node in the pipeline and its run record.
#include <fusionflow/sdk.hpp>

#include "latent_transforms/normalize.hpp"

namespace fusionflow::normalize_nodes {
namespace {

constexpr InputPort<Volume> kVolumeIn{"volume"};
constexpr OutputPort<Volume> kVolumeOut{"volume"};

using latent::NormalizeOptions;

NodeType<NormalizeOptions> intensity_node() {
  NodeType<NormalizeOptions> node(
      "normalize.intensity", "1.0.0",
      "Maps intensities linearly onto [0, 1]: y = (x - low) / (high - low), clamped; low/high from a CT "
      "window, an SUV range, percentiles, a z-score range or min/max. The mapping is recorded in "
      "metadata.extra (normalize_mode, normalize_low, normalize_high, ...); units become 'normalized'. "
      "Non-finite voxels become 0.");
  node.input(kVolumeIn, "the volume to normalise")
      .output(kVolumeOut, "the normalised volume, same grid")
      .choice(&NormalizeOptions::mode, "mode", latent::kNormalizeModeNames,
              "ct_window: low/high = level -/+ width/2 (HU); suv_range: suv_min..suv_max in SUV; percentile: "
              "percentile_low..percentile_high of the finite voxels (MRI); zscore: mean -/+ zscore_range SD; "
              "minmax: finite minimum..maximum")
      .param(&NormalizeOptions::window_level, "window_level", Limits::range(-2000.0, 5000.0),
             "ct_window: window centre (HU)")
      .param(&NormalizeOptions::window_width, "window_width", Limits::range(1e-3, 10000.0),
             "ct_window: window width (HU)")
      .param(&NormalizeOptions::suv_min, "suv_min", Limits::range(-1e3, 1e4), "suv_range: SUV mapped to 0")
      .param(&NormalizeOptions::suv_max, "suv_max", Limits::range(-1e3, 1e4), "suv_range: SUV mapped to 1")
      .param(&NormalizeOptions::suv_per_unit, "suv_per_unit", Limits::at_least(0.0),
             "suv_range: SUV per input unit (e.g. per Bq/mL); 0 = units already SUV, or metadata "
             "suvbw_per_bq_per_ml")
      .param(&NormalizeOptions::percentile_low, "percentile_low", Limits::range(0.0, 100.0),
             "percentile: percentile mapped to 0")
      .param(&NormalizeOptions::percentile_high, "percentile_high", Limits::range(0.0, 100.0),
             "percentile: percentile mapped to 1")
      .param(&NormalizeOptions::zscore_range, "zscore_range", Limits::range(1e-3, 100.0),
             "zscore: standard deviations mapped to 0 and 1")
      .param(&NormalizeOptions::clamp, "clamp", "clamp the output to [0, 1]");
  return node;
}

void run_intensity(NodeContext& ctx, const NormalizeOptions& options) {
  const Volume& input = ctx.input(kVolumeIn);
  if (options.mode == latent::NormalizeMode::CtWindow && !input.metadata.units.empty() &&
      input.metadata.units != "HU") {
    ctx.log(LogLevel::Warn, "ct_window on a volume in '" + input.metadata.units + "', not HU");
  }
  latent::NormalizeResult result = latent::normalize_intensity(input, options, run_control(ctx));
  if (!result.warning.empty()) ctx.log(LogLevel::Warn, result.warning);
  ctx.log(LogLevel::Info, latent::kNormalizeModeNames.name(options.mode) + ": [" + std::to_string(result.low) + ", " +
                              std::to_string(result.high) + "] -> [0, 1]");
  result.volume.metadata.extra["normalize_node"] = ctx.node_id();
  ctx.output(kVolumeOut, std::move(result.volume));
}

}  // namespace
}  // namespace fusionflow::normalize_nodes

FUSIONFLOW_PLUGIN("normalize", "1.0.0", "Intensity normalisation of CT, PET and MRI onto [0, 1]") {
  using namespace fusionflow::normalize_nodes;
  registrar.add_node(intensity_node(), run_intensity);
}
