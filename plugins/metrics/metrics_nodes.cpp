// metrics.* nodes: image-quality measurements as tables. metrics.fusion
// computes the fusion-quality metrics of the literature (EN, SD, SF, MI, SCD,
// VIF, Qabf, SSIM); write the table with core.write_table (CSV or JSON).
// Definitions: plugins/latent_transforms/include/latent_transforms/metrics.hpp.
#include <fusionflow/sdk.hpp>

#include "latent_transforms/metrics.hpp"

namespace fusionflow::metrics_nodes {
namespace {

NodeSpec fusion_spec() {
  NodeSpec spec("metrics.fusion", "1.0.0",
                "Fusion-quality metrics of a fused volume against its sources: EN, SD, SF, MI (sum over sources), "
                "SCD (two sources), VIF (sum of vifp_mscale), Qabf (Xydeas-Petrovic) and SSIM (sum over sources), "
                "on 8-bit grey levels (one linear map of [range] or the joint min/max onto 0..255). Per axial "
                "slice plus their mean, as papers report, or on the whole volume.");
  spec.input<Volume>("fused", "the fused volume")
      .multi_input<Volume>("sources", "the source volumes, on the fused volume's grid (for SCD: exactly two)")
      .output<Table>("metrics",
                     "columns label, scope (slice|mean|volume), slice, slices, en_<unit>, sd, sf, mi_<unit>, scd, vif, "
                     "qabf, ssim; <unit> = bits or nats; undefined values are empty")
      .param("mode", Param::Choice({"slices_axial", "volume3d"}, "slices_axial"),
             "slices_axial: per axial (k) slice and their mean; volume3d: one row for the whole volume (Qabf and "
             "VIF pooled over slices, SSIM with a 11^3 window)")
      .param("slices", Param::IntList({}).at_least(0), "axial slices to evaluate; empty = all")
      .param("skip_empty_slices", Param::Bool(true),
             "with 'slices' empty: skip slices where the fused image and every source are constant")
      .param("per_slice_rows", Param::Bool(true), "slices_axial: one row per slice before the mean row")
      .param("bins", Param::Int(256).range(2, 256), "histogram bins for EN and MI (grey levels 0..255)")
      .param("units", Param::Choice({"bits", "nats"}, "bits"), "units of EN and MI (in the column names)")
      .param("range", Param::FloatList({}),
             "[low, high] mapped to grey levels 0 and 255; empty = joint min/max of the fused volume and sources")
      .param("label", Param::String(""), "row label (default: the node id)");
  return spec;
}

void run_fusion(NodeContext& ctx) {
  const Volume& fused = ctx.input<Volume>("fused");
  const auto inputs = ctx.inputs<Volume>("sources");
  std::vector<const Volume*> sources;
  for (const auto& input : inputs) sources.push_back(input.get());
  latent::MetricsTableOptions options;
  options.mode = ctx.param<std::string>("mode") == "volume3d" ? latent::MetricsMode::Volume3d
                                                              : latent::MetricsMode::SlicesAxial;
  options.slices = ctx.param<std::vector<std::int64_t>>("slices");
  options.skip_empty_slices = ctx.param<bool>("skip_empty_slices");
  options.per_slice_rows = ctx.param<bool>("per_slice_rows");
  options.metrics.bins = ctx.param<std::size_t>("bins");
  options.metrics.nats = ctx.param<std::string>("units") == "nats";
  const auto range = ctx.param<std::vector<double>>("range");
  if (!range.empty()) {
    if (range.size() != 2 || !(range[0] < range[1])) {
      throw std::invalid_argument("range must be empty or [low, high] with low < high");
    }
    options.metrics.range_low = range[0];
    options.metrics.range_high = range[1];
  }
  options.label = ctx.param<std::string>("label");
  if (options.label.empty()) options.label = ctx.node_id();
  if (sources.size() != 2) ctx.log(LogLevel::Info, "SCD is defined for two sources; its column stays empty");
  ctx.output("metrics", latent::fusion_metrics_table(fused, sources, options, latent::control_for(ctx)));
}

}  // namespace
}  // namespace fusionflow::metrics_nodes

FUSIONFLOW_PLUGIN("metrics", "1.0.0", "Image-quality metrics as tables (fusion quality)") {
  using namespace fusionflow::metrics_nodes;
  registrar.add_node(fusion_spec(), run_fusion);
}
