// decode.* nodes. One decoder node, decode.latent, serves every encoder: it
// dispatches on Latent::kind to the decoder the encoder's plugin registered
// for that kind (PluginRegistrar::add_latent_decoder), so a pipeline never
// pairs the wrong decoder with an encoder, and an encoder from any plugin,
// in the tree or not, decodes here without a change to this file.
#include <fusionflow/sdk.hpp>

namespace fusionflow::decode_nodes {
namespace {

constexpr InputPort<Latent> kLatentIn{"latent"};
constexpr OutputPort<Volume> kVolumeOut{"volume"};

NodeType<NoOptions> latent_node() {
  NodeType<NoOptions> node(
      "decode.latent", "1.1.0",
      "Decodes a latent back to image space with the decoder registered for the latent's kind "
      "(laplacian_pyramid, atrous_wavelet, guided_filter, learned, or any a plugin adds; `fusionflow plugins` "
      "lists them). The volume gets the latent's source grid and metadata (modality FUSED and the sources for a "
      "fused latent).");
  node.input(kLatentIn, "an encoded or fused latent").output(kVolumeOut, "the decoded volume on the source grid");
  return node;
}

void run_latent(NodeContext& ctx, const NoOptions&) {
  const Latent& latent = ctx.input(kLatentIn);
  const LatentDecoder* decoder = ctx.latent_decoder(latent.kind);
  if (decoder == nullptr) {
    std::string known;
    for (const std::string& kind : ctx.latent_decoder_kinds()) known += (known.empty() ? "" : ", ") + kind;
    throw std::invalid_argument("no decoder for latent kind '" + latent.kind +
                                "' (decoders: " + (known.empty() ? std::string("none") : known) +
                                "); load the plugin of the encoder that made it");
  }
  Volume volume = decoder->decode(latent, ctx);
  ctx.log(LogLevel::Info, "decoded " + latent.kind + " (" + std::to_string(latent.levels.size()) + " levels) to " +
                              volume.geometry.size_string());
  ctx.output(kVolumeOut, std::move(volume));
}

}  // namespace
}  // namespace fusionflow::decode_nodes

FUSIONFLOW_PLUGIN("decode", "1.1.0", "Decoder of shared latents back to volumes, by the latent's kind") {
  using namespace fusionflow::decode_nodes;
  registrar.add_node(latent_node(), run_latent);
}
