// fuse.* nodes: fusion in the shared latent space. fuse.latent combines two
// or more latents of the same kind level by level, with one rule for the base
// (low-pass) level and one for the others. Decode the result with
// decode.latent.
#include <fusionflow/sdk.hpp>

#include "latent_transforms/fusion_rules.hpp"

namespace fusionflow::fuse_nodes {
namespace {

NodeSpec latent_spec() {
  NodeSpec spec("fuse.latent", "1.0.0",
                "Fuses latents of the same kind and grid level by level. Rules: average (weighted, weights sum to "
                "1), max_abs (largest magnitude), local_energy (choose-max on local energy plus majority "
                "consistency check, Li et al. 1995), salience_match (Burt & Kolczynski 1993, two sources), "
                "guided_filter (GFF weight maps, Li, Kang & Hu 2013; latents from encode.guided_filter). The "
                "output's metadata says modality FUSED and lists the sources.");
  spec.multi_input<Latent>("latents", "two or more latents, one per modality, same encoder and grid")
      .output<Latent>("latent", "the fused latent")
      .memory_intensive()
      .param("detail_rule", Param::Choice({"max_abs", "average", "local_energy", "salience_match", "guided_filter"},
                                          "max_abs"),
             "rule for detail (band-pass) and feature levels")
      .param("base_rule", Param::Choice({"average", "max_abs", "local_energy", "salience_match", "guided_filter"},
                                        "average"),
             "rule for the base (low-pass) level")
      .param("weights", Param::FloatList({}).range(0.0, 1e6),
             "one weight per latent for 'average' (normalised to sum 1); empty = equal weights")
      .param("window_radius", Param::Int(1).range(0, 32), "local energy / salience window radius in voxels")
      .param("consistency_radius", Param::Int(1).range(0, 32),
             "local_energy: majority-filter radius of the consistency check; 0 = no check")
      .param("match_threshold", Param::Float(0.75).range(0.0, 0.999), "salience_match: match threshold alpha")
      .param("gff_base_radius", Param::Int(45).range(1, 512), "guided_filter: r1 of the base weights (voxels)")
      .param("gff_base_eps", Param::Float(0.3).range(1e-12, 1e3), "guided_filter: eps1 of the base weights")
      .param("gff_detail_radius", Param::Int(7).range(1, 512), "guided_filter: r2 of the detail weights (voxels)")
      .param("gff_detail_eps", Param::Float(1e-6).range(1e-12, 1e3), "guided_filter: eps2 of the detail weights")
      .param("gff_saliency_sigma", Param::Float(5.0).range(0.0, 64.0),
             "guided_filter: sigma (and radius) of the Gaussian smoothing the saliency |Laplacian|");
  return spec;
}

void run_latent(NodeContext& ctx) {
  const auto inputs = ctx.inputs<Latent>("latents");
  std::vector<const Latent*> latents;
  for (const auto& input : inputs) latents.push_back(input.get());
  latent::FusionOptions options;
  options.detail_rule = latent::parse_rule(ctx.param<std::string>("detail_rule"));
  options.base_rule = latent::parse_rule(ctx.param<std::string>("base_rule"));
  options.weights = ctx.param<std::vector<double>>("weights");
  options.window_radius = ctx.param<std::size_t>("window_radius");
  options.consistency_radius = ctx.param<std::size_t>("consistency_radius");
  options.match_threshold = ctx.param<double>("match_threshold");
  options.gff_base_radius = ctx.param<std::size_t>("gff_base_radius");
  options.gff_base_eps = ctx.param<double>("gff_base_eps");
  options.gff_detail_radius = ctx.param<std::size_t>("gff_detail_radius");
  options.gff_detail_eps = ctx.param<double>("gff_detail_eps");
  options.gff_saliency_sigma = ctx.param<double>("gff_saliency_sigma");
  if (!options.weights.empty() && options.detail_rule != latent::Rule::Average &&
      options.base_rule != latent::Rule::Average) {
    ctx.log(LogLevel::Warn, "weights are only used by the 'average' rule, which neither level uses");
  }
  Latent fused = latent::fuse_latents(latents, options, latent::control_for(ctx));
  fused.source_metadata.source = ctx.node_id();
  ctx.log(LogLevel::Info, "fused " + std::to_string(latents.size()) + " latents (" +
                              fused.source_metadata.extra["fusion_sources"] + ")");
  ctx.output("latent", std::move(fused));
}

}  // namespace
}  // namespace fusionflow::fuse_nodes

FUSIONFLOW_PLUGIN("fuse", "1.0.0", "Fusion of shared latents with per-level rules") {
  using namespace fusionflow::fuse_nodes;
  registrar.add_node(latent_spec(), run_latent);
}
