// encode.* nodes: encode a volume into the shared Latent representation with
// a classical multiscale transform. Every modality of one fusion must use the
// same encoder and parameters; fuse.latent checks. decode.latent inverts all
// of them. Inputs are expected normalised (normalize.intensity), so that the
// latents of different modalities are comparable.
#include <fusionflow/sdk.hpp>

#include "latent_transforms/multiscale.hpp"

namespace fusionflow::encode_nodes {
namespace {

constexpr InputPort<Volume> kVolumeIn{"volume"};
constexpr OutputPort<Latent> kLatentOut{"latent"};

// The encoders take their one parameter as an argument, not as a library
// options struct.
struct LevelsOptions {
  int levels = 4;
};
struct GuidedFilterOptions {
  int base_radius = 15;
};

NodeType<LevelsOptions> laplacian_pyramid_node() {
  NodeType<LevelsOptions> node(
      "encode.laplacian_pyramid", "1.0.0",
      "3D Laplacian pyramid (Burt & Adelson, separable 5-tap binomial kernel [1 4 6 4 1]/16): levels "
      "band-pass levels detail_0 (finest) .. detail_<levels-1>, then the low-pass 'base'. Each level "
      "halves the grid (rounded up; coarse voxel j centred on fine voxel 2j: spacing doubles, origin and "
      "direction stay). Any grid size, odd included; decode.latent reconstructs to float precision.");
  node.input(kVolumeIn, "the (normalised) volume to encode")
      .memory_intensive()
      .output(kLatentOut, "kind 'laplacian_pyramid'")
      .param(&LevelsOptions::levels, "levels", Limits::range(1, 16), "number of band-pass levels");
  return node;
}

NodeType<LevelsOptions> atrous_wavelet_node() {
  NodeType<LevelsOptions> node(
      "encode.atrous_wavelet", "1.0.0",
      "3D stationary (undecimated, 'a trous') wavelet with the B3-spline kernel: detail_j = c_j - c_{j+1}, "
      "c_{j+1} = c_j filtered with 2^j - 1 holes, then the 'base' c_levels. Every level on the source "
      "grid (memory: levels + 1 volumes). Decoding is the sum of the levels.");
  node.input(kVolumeIn, "the (normalised) volume to encode")
      .memory_intensive()
      .output(kLatentOut, "kind 'atrous_wavelet'")
      .param(&LevelsOptions::levels, "levels", Limits::range(1, 10), "number of detail scales");
  return node;
}

NodeType<GuidedFilterOptions> guided_filter_node() {
  NodeType<GuidedFilterOptions> node(
      "encode.guided_filter", "1.0.0",
      "Two-scale decomposition of guided-filtering fusion (GFF, Li, Kang & Hu 2013) in 3D: base = mean "
      "over a (2 base_radius + 1)^3 box, detail = volume - base. The guided-filter weight maps are built "
      "by fuse.latent with rule 'guided_filter', which needs every source.");
  node.input(kVolumeIn, "the (normalised, [0, 1]) volume to encode")
      .memory_intensive()
      .output(kLatentOut, "kind 'guided_filter': levels 'detail' and 'base' on the source grid")
      .param(&GuidedFilterOptions::base_radius, "base_radius", Limits::range(1, 512),
             "box radius in voxels (15: the paper's 31 x 31 average)");
  return node;
}

void run_laplacian_pyramid(NodeContext& ctx, const LevelsOptions& options) {
  const Volume& volume = ctx.input(kVolumeIn);
  ctx.output(kLatentOut, latent::encode_laplacian_pyramid(volume, options.levels, run_control(ctx)));
}

void run_atrous_wavelet(NodeContext& ctx, const LevelsOptions& options) {
  const Volume& volume = ctx.input(kVolumeIn);
  ctx.output(kLatentOut, latent::encode_atrous_wavelet(volume, options.levels, run_control(ctx)));
}

void run_guided_filter(NodeContext& ctx, const GuidedFilterOptions& options) {
  const Volume& volume = ctx.input(kVolumeIn);
  ctx.output(kLatentOut, latent::encode_guided_filter(volume, options.base_radius, run_control(ctx)));
}

}  // namespace
}  // namespace fusionflow::encode_nodes

FUSIONFLOW_PLUGIN("encode", "1.0.0", "Multiscale encoders into the shared latent representation") {
  using namespace fusionflow::encode_nodes;
  registrar.add_node(laplacian_pyramid_node(), run_laplacian_pyramid);
  registrar.add_node(atrous_wavelet_node(), run_atrous_wavelet);
  registrar.add_node(guided_filter_node(), run_guided_filter);
  // Their inverses, which decode.latent finds by the latent's kind.
  using namespace fusionflow;
  const auto decode = [](const Latent& latent, NodeContext& ctx) {
    return latent::decode_latent(latent, run_control(ctx));
  };
  registrar.add_latent_decoder(latent::kLaplacianPyramid, "collapse the pyramid: upsample and add, coarse to fine",
                               decode);
  registrar.add_latent_decoder(latent::kAtrousWavelet, "sum of the detail planes and the residual", decode);
  registrar.add_latent_decoder(latent::kGuidedFilter, "base + detail", decode);
}
