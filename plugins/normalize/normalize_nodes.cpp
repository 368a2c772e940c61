// normalize.* nodes: map each modality onto a comparable [0, 1] range before
// it is encoded into the shared latent space (encode.*). Normalisation is its
// own family rather than part of encode.* so that any consumer (fusion,
// registration metrics, learned encoders, display) can use it, and so that
// the mapping is visible as a node in the pipeline and its run record.
#include <fusionflow/sdk.hpp>

#include "latent_transforms/normalize.hpp"

namespace fusionflow::normalize_nodes {
namespace {

NodeSpec intensity_spec() {
  NodeSpec spec("normalize.intensity", "1.0.0",
                "Maps intensities linearly onto [0, 1]: y = (x - low) / (high - low), clamped; low/high from a CT "
                "window, an SUV range, percentiles, a z-score range or min/max. The mapping is recorded in "
                "metadata.extra (normalize_mode, normalize_low, normalize_high, ...); units become 'normalized'. "
                "Non-finite voxels become 0.");
  spec.input<Volume>("volume", "the volume to normalise")
      .output<Volume>("volume", "the normalised volume, same grid")
      .param("mode", Param::Choice({"ct_window", "suv_range", "percentile", "zscore", "minmax"}, "minmax"),
             "ct_window: low/high = level -/+ width/2 (HU); suv_range: suv_min..suv_max in SUV; percentile: "
             "percentile_low..percentile_high of the finite voxels (MRI); zscore: mean -/+ zscore_range SD; "
             "minmax: finite minimum..maximum")
      .param("window_level", Param::Float(40.0).range(-2000.0, 5000.0), "ct_window: window centre (HU)")
      .param("window_width", Param::Float(400.0).range(1e-3, 10000.0), "ct_window: window width (HU)")
      .param("suv_min", Param::Float(0.0).range(-1e3, 1e4), "suv_range: SUV mapped to 0")
      .param("suv_max", Param::Float(10.0).range(-1e3, 1e4), "suv_range: SUV mapped to 1")
      .param("suv_per_unit", Param::Float(0.0).at_least(0.0),
             "suv_range: SUV per input unit (e.g. per Bq/mL); 0 = units already SUV, or metadata "
             "suvbw_per_bq_per_ml")
      .param("percentile_low", Param::Float(1.0).range(0.0, 100.0), "percentile: percentile mapped to 0")
      .param("percentile_high", Param::Float(99.0).range(0.0, 100.0), "percentile: percentile mapped to 1")
      .param("zscore_range", Param::Float(3.0).range(1e-3, 100.0), "zscore: standard deviations mapped to 0 and 1")
      .param("clamp", Param::Bool(true), "clamp the output to [0, 1]");
  return spec;
}

void run_intensity(NodeContext& ctx) {
  const Volume& input = ctx.input<Volume>("volume");
  latent::NormalizeOptions options;
  options.mode = latent::parse_normalize_mode(ctx.param<std::string>("mode"));
  options.window_level = ctx.param<double>("window_level");
  options.window_width = ctx.param<double>("window_width");
  options.suv_min = ctx.param<double>("suv_min");
  options.suv_max = ctx.param<double>("suv_max");
  options.suv_per_unit = ctx.param<double>("suv_per_unit");
  options.percentile_low = ctx.param<double>("percentile_low");
  options.percentile_high = ctx.param<double>("percentile_high");
  options.zscore_range = ctx.param<double>("zscore_range");
  options.clamp = ctx.param<bool>("clamp");
  if (options.mode == latent::NormalizeMode::CtWindow && !input.metadata.units.empty() && input.metadata.units != "HU") {
    ctx.log(LogLevel::Warn, "ct_window on a volume in '" + input.metadata.units + "', not HU");
  }
  latent::NormalizeResult result = latent::normalize_intensity(input, options, latent::control_for(ctx));
  if (!result.warning.empty()) ctx.log(LogLevel::Warn, result.warning);
  ctx.log(LogLevel::Info, std::string(latent::to_string(options.mode)) + ": [" + std::to_string(result.low) + ", " +
                              std::to_string(result.high) + "] -> [0, 1]");
  result.volume.metadata.extra["normalize_node"] = ctx.node_id();
  ctx.output("volume", std::move(result.volume));
}

}  // namespace
}  // namespace fusionflow::normalize_nodes

FUSIONFLOW_PLUGIN("normalize", "1.0.0", "Intensity normalisation of CT, PET and MRI onto [0, 1]") {
  using namespace fusionflow::normalize_nodes;
  registrar.add_node(intensity_spec(), run_intensity);
}
