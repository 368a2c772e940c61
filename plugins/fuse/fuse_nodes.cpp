// fuse.* nodes: fusion in the shared latent space. fuse.latent combines two
// or more latents of the same kind level by level, with one rule for the base
// (low-pass) level and one for the others. Decode the result with
// decode.latent.
#include <fusionflow/sdk.hpp>

#include "latent_transforms/fusion_rules.hpp"

namespace fusionflow::fuse_nodes {
namespace {

constexpr InputPort<Latent> kLatentsIn{"latents"};
constexpr OutputPort<Latent> kLatentOut{"latent"};

using latent::FusionOptions;

NodeType<FusionOptions> latent_node() {
  NodeType<FusionOptions> node(
      "fuse.latent", "1.0.0",
      "Fuses latents of the same kind and grid level by level. Rules: average (weighted, weights sum to "
      "1), max_abs (largest magnitude), local_energy (choose-max on local energy plus majority "
      "consistency check, Li et al. 1995), salience_match (Burt & Kolczynski 1993, two sources), "
      "guided_filter (GFF weight maps, Li, Kang & Hu 2013; latents from encode.guided_filter). The "
      "output's metadata says modality FUSED and lists the sources.");
  node.multi_input(kLatentsIn, "two or more latents, one per modality, same encoder and grid")
      .output(kLatentOut, "the fused latent")
      .memory_intensive()
      .choice(&FusionOptions::detail_rule, "detail_rule", latent::kRuleNames,
              "rule for detail (band-pass) and feature levels")
      .choice(&FusionOptions::base_rule, "base_rule", latent::kRuleNames, "rule for the base (low-pass) level")
      .param(&FusionOptions::weights, "weights", Limits::range(0.0, 1e6),
             "one weight per latent for 'average' (normalised to sum 1); empty = equal weights")
      .param(&FusionOptions::window_radius, "window_radius", Limits::range(0, 32),
             "local energy / salience window radius in voxels")
      .param(&FusionOptions::consistency_radius, "consistency_radius", Limits::range(0, 32),
             "local_energy: majority-filter radius of the consistency check; 0 = no check")
      .param(&FusionOptions::match_threshold, "match_threshold", Limits::range(0.0, 0.999),
             "salience_match: match threshold alpha")
      .param(&FusionOptions::gff_base_radius, "gff_base_radius", Limits::range(1, 512),
             "guided_filter: r1 of the base weights (voxels)")
      .param(&FusionOptions::gff_base_eps, "gff_base_eps", Limits::range(1e-12, 1e3),
             "guided_filter: eps1 of the base weights")
      .param(&FusionOptions::gff_detail_radius, "gff_detail_radius", Limits::range(1, 512),
             "guided_filter: r2 of the detail weights (voxels)")
      .param(&FusionOptions::gff_detail_eps, "gff_detail_eps", Limits::range(1e-12, 1e3),
             "guided_filter: eps2 of the detail weights")
      .param(&FusionOptions::gff_saliency_sigma, "gff_saliency_sigma", Limits::range(0.0, 64.0),
             "guided_filter: sigma (and radius) of the Gaussian smoothing the saliency |Laplacian|");
  return node;
}

void run_latent(NodeContext& ctx, const FusionOptions& options) {
  const auto inputs = ctx.inputs(kLatentsIn);
  std::vector<const Latent*> latents;
  for (const auto& input : inputs) latents.push_back(input.get());
  if (!options.weights.empty() && options.detail_rule != latent::Rule::Average &&
      options.base_rule != latent::Rule::Average) {
    ctx.log(LogLevel::Warn, "weights are only used by the 'average' rule, which neither level uses");
  }
  Latent fused = latent::fuse_latents(latents, options, run_control(ctx));
  fused.source_metadata.source = ctx.node_id();
  ctx.log(LogLevel::Info, "fused " + std::to_string(latents.size()) + " latents (" +
                              fused.source_metadata.extra["fusion_sources"] + ")");
  ctx.output(kLatentOut, std::move(fused));
}

}  // namespace
}  // namespace fusionflow::fuse_nodes

FUSIONFLOW_PLUGIN("fuse", "1.0.0", "Fusion of shared latents with per-level rules") {
  using namespace fusionflow::fuse_nodes;
  registrar.add_node(latent_node(), run_latent);
}
