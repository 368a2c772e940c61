// decode.* nodes. One decoder, decode.latent, serves every encoder: it
// dispatches on Latent::kind, which each encoder sets. A pipeline therefore
// never pairs the wrong decoder with an encoder, and adding an encoder means
// adding one case to latent::decode_latent (plugins/latent_transforms/).
#include <fusionflow/sdk.hpp>

#include "latent_transforms/multiscale.hpp"

namespace fusionflow::decode_nodes {
namespace {

constexpr InputPort<Latent> kLatentIn{"latent"};
constexpr OutputPort<Volume> kVolumeOut{"volume"};

// decode.latent has no parameters: the latent says how to decode it.
struct DecodeOptions {};

NodeType<DecodeOptions> latent_node() {
  NodeType<DecodeOptions> node(
      "decode.latent", "1.0.0",
      "Decodes a latent back to image space, choosing the inverse transform from the latent's kind "
      "(laplacian_pyramid, atrous_wavelet, guided_filter). The volume gets the latent's source grid and "
      "metadata (modality FUSED and the sources for a fused latent).");
  node.input(kLatentIn, "an encoded or fused latent").output(kVolumeOut, "the decoded volume on the source grid");
  return node;
}

void run_latent(NodeContext& ctx, const DecodeOptions&) {
  const Latent& latent = ctx.input(kLatentIn);
  Volume volume = latent::decode_latent(latent, latent::control_for(ctx));
  ctx.log(LogLevel::Info, "decoded " + latent.kind + " (" + std::to_string(latent.levels.size()) + " levels) to " +
                              latent::size_string(volume.geometry));
  ctx.output(kVolumeOut, std::move(volume));
}

}  // namespace
}  // namespace fusionflow::decode_nodes

FUSIONFLOW_PLUGIN("decode", "1.0.0", "Decoder of shared latents back to volumes") {
  using namespace fusionflow::decode_nodes;
  registrar.add_node(latent_node(), run_latent);
}
