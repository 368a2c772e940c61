// metrics.* nodes: image-quality measurements as tables. metrics.fusion
// computes the fusion-quality metrics of the literature (EN, SD, SF, MI, SCD,
// VIF, Qabf, SSIM), metrics.synthesis those of image synthesis (MAE, PSNR,
// SSIM against a reference); write the table with core.write_table (CSV or JSON).
// Definitions: plugins/latent_transforms/include/latent_transforms/metrics.hpp.
#include <fusionflow/sdk.hpp>

#include "latent_transforms/metrics.hpp"

namespace fusionflow::metrics_nodes {
namespace {

constexpr InputPort<Volume> kFusedIn{"fused"};
constexpr InputPort<Volume> kSourcesIn{"sources"};
constexpr OutputPort<Table> kMetricsOut{"metrics"};

using latent::MetricsOptions;
using latent::MetricsTableOptions;

// The table's options, with the grey-level range as the one list the node
// takes (empty or [low, high]) rather than the library's two numbers.
struct FusionMetricsParams : MetricsTableOptions {
  std::vector<double> range;
};

NodeType<FusionMetricsParams> fusion_node() {
  NodeType<FusionMetricsParams> node(
      "metrics.fusion", "1.0.0",
      "Fusion-quality metrics of a fused volume against its sources: EN, SD, SF, MI (sum over sources), "
      "SCD (two sources), VIF (sum of vifp_mscale), Qabf (Xydeas-Petrovic) and SSIM (sum over sources), "
      "on 8-bit grey levels (one linear map of [range] or the joint min/max onto 0..255). Per axial "
      "slice plus their mean, as papers report, or on the whole volume.");
  node.input(kFusedIn, "the fused volume")
      .multi_input(kSourcesIn, "the source volumes, on the fused volume's grid (for SCD: exactly two)")
      .output(kMetricsOut,
              "columns label, scope (slice|mean|volume), slice, slices, en_<unit>, sd, sf, mi_<unit>, scd, vif, "
              "qabf, ssim; <unit> = bits or nats; undefined values are empty")
      .choice(&MetricsOptions::protocol, "protocol", latent::kMetricsProtocolNames,
              "fusionflow: the definitions above; paper: exactly what the published 2D tables report (the evaluator "
              "CDDFuse and its comparisons use: SF as means of the differences, MI in nats, SSIM as scikit-image's "
              "on float images with data range 2, EN in bits; 8-bit images from [range], default [0, 255]); see "
              "plugins/latent_transforms/include/latent_transforms/metrics.hpp")
      .choice(&MetricsTableOptions::mode, "mode", latent::kMetricsModeNames,
              "slices_axial: per axial (k) slice and their mean; volume3d: one row for the whole volume (Qabf and "
              "VIF pooled over slices, SSIM with a 11^3 window)")
      .param(&MetricsTableOptions::slices, "slices", Limits::at_least(0), "axial slices to evaluate; empty = all")
      .param(&MetricsTableOptions::skip_empty_slices, "skip_empty_slices",
             "with 'slices' empty: skip slices where the fused image and every source are constant")
      .param(&MetricsTableOptions::per_slice_rows, "per_slice_rows",
             "slices_axial: one row per slice before the mean row")
      .param(&MetricsOptions::bins, "bins", Limits::range(2, 256), "histogram bins for EN and MI (grey levels 0..255)")
      .choice(&MetricsOptions::units, "units", latent::kInformationUnitNames,
              "units of EN and MI (in the column names)")
      .param(&FusionMetricsParams::range, "range",
             "[low, high] mapped to grey levels 0 and 255; empty = joint min/max of the fused volume and sources")
      .param(&MetricsTableOptions::label, "label", "row label (default: the node id)");
  return node;
}

void run_fusion(NodeContext& ctx, const FusionMetricsParams& params) {
  const Volume& fused = ctx.input(kFusedIn);
  const auto inputs = ctx.inputs(kSourcesIn);
  std::vector<const Volume*> sources;
  for (const auto& input : inputs) sources.push_back(input.get());
  MetricsTableOptions options = params;
  if (!params.range.empty()) {
    if (params.range.size() != 2 || !(params.range[0] < params.range[1])) {
      throw std::invalid_argument("range must be empty or [low, high] with low < high");
    }
    options.range_low = params.range[0];
    options.range_high = params.range[1];
  }
  if (options.label.empty()) options.label = ctx.node_id();
  if (sources.size() != 2) ctx.log(LogLevel::Info, "SCD is defined for two sources; its column stays empty");
  ctx.output(kMetricsOut, latent::fusion_metrics_table(fused, sources, options, run_control(ctx)));
}

struct SynthesisParams : latent::SynthesisOptions {
  std::string label;
};

constexpr InputPort<Volume> kSyntheticIn{"synthetic"};
constexpr InputPort<Volume> kReferenceIn{"reference"};

NodeType<SynthesisParams> synthesis_node() {
  using O = SynthesisParams;
  NodeType<O> node("metrics.synthesis", "1.0.0",
                   "Compares a synthetic volume with a reference on the same grid: MAE in the reference's units (e.g. "
                   "HU) over a mask (reference > mask_threshold, e.g. the head in CT), PSNR (dB, over the mask, data "
                   "range `data_range`) and SSIM (mean over axial slices, 7x7 uniform windows as scikit-image, "
                   "values clipped to the data range). One row. (Was learned.synthesis_metrics.)");
  node.input(kSyntheticIn, "the synthetic volume (e.g. learned.synthesize output)")
      .input(kReferenceIn, "the reference (e.g. the real CT)")
      .output(kMetricsOut, "columns label, mae, mae_units, psnr_db, ssim, mask_voxels")
      .param(&O::mask_threshold, "mask_threshold",
             "voxels with reference > threshold are evaluated (CT: -500 HU = head)")
      .param(&O::data_range, "data_range", "value range for PSNR and SSIM")
      .param(&O::label, "label", "row label (default: the node id)");
  return node;
}

void run_synthesis(NodeContext& ctx, const SynthesisParams& params) {
  const Volume& reference = ctx.input(kReferenceIn);
  const latent::SynthesisMetrics m = latent::synthesis_metrics(ctx.input(kSyntheticIn), reference, params);
  Table table;
  table.add_row({{"label", params.label.empty() ? ctx.node_id() : params.label},
                 {"mae", m.mae},
                 {"mae_units", reference.metadata.units},
                 {"psnr_db", m.psnr_db},
                 {"ssim", m.ssim},
                 {"mask_voxels", double(m.mask_voxels)}});
  ctx.log(LogLevel::Info, "MAE " + std::to_string(m.mae) + " " + reference.metadata.units + " over " +
                              std::to_string(m.mask_voxels) + " voxels, PSNR " + std::to_string(m.psnr_db) + " dB");
  ctx.output(kMetricsOut, std::move(table));
}

}  // namespace
}  // namespace fusionflow::metrics_nodes

FUSIONFLOW_PLUGIN("metrics", "1.0.0", "Image-quality metrics as tables (fusion quality)") {
  using namespace fusionflow::metrics_nodes;
  registrar.add_node(fusion_node(), run_fusion);
  registrar.add_node(synthesis_node(), run_synthesis);
}
