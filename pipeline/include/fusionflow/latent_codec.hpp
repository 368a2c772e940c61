// Latent decoders: how a latent kind goes back to image space. The plugin of
// an encoder registers the decoder of the kind it produces
// (PluginRegistrar::add_latent_decoder), and decode.latent finds it by
// Latent::kind, so a latent from any encoder, in the tree or not, decodes
// with the stock node.
//
//   registrar.add_latent_decoder("two_scale", "base + detail", [](const Latent& latent, NodeContext& ctx) {
//     return sum_of_levels(latent, ctx);
//   });
#pragma once

#include <functional>
#include <string>

#include "fusionflow/latent.hpp"
#include "fusionflow/volume.hpp"

namespace fusionflow {

class NodeContext;

// Returns the volume on latent.source_geometry with latent.source_metadata;
// throws with a clear message if the latent does not fit (the decode node
// reports it as its failure). May report progress and check cancellation
// through `ctx`.
using LatentDecodeFunction = std::function<Volume(const Latent& latent, NodeContext& ctx)>;

struct LatentDecoder {
  std::string kind;  // the Latent::kind it decodes, e.g. "laplacian_pyramid"
  std::string description;
  LatentDecodeFunction decode;
};

}  // namespace fusionflow
