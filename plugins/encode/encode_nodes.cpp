// encode.* nodes: encode a volume into the shared Latent representation with
// a classical multiscale transform. Every modality of one fusion must use the
// same encoder and parameters; fuse.latent checks. decode.latent inverts all
// of them. Inputs are expected normalised (normalize.intensity), so that the
// latents of different modalities are comparable.
#include <fusionflow/sdk.hpp>

#include "latent_transforms/multiscale.hpp"

namespace fusionflow::encode_nodes {
namespace {

NodeSpec laplacian_pyramid_spec() {
  NodeSpec spec("encode.laplacian_pyramid", "1.0.0",
                "3D Laplacian pyramid (Burt & Adelson, separable 5-tap binomial kernel [1 4 6 4 1]/16): levels "
                "band-pass levels detail_0 (finest) .. detail_<levels-1>, then the low-pass 'base'. Each level "
                "halves the grid (rounded up; coarse voxel j centred on fine voxel 2j: spacing doubles, origin and "
                "direction stay). Any grid size, odd included; decode.latent reconstructs to float precision.");
  spec.input<Volume>("volume", "the (normalised) volume to encode")
      .memory_intensive()
      .output<Latent>("latent", "kind 'laplacian_pyramid'")
      .param("levels", Param::Int(4).range(1, 16), "number of band-pass levels");
  return spec;
}

NodeSpec atrous_wavelet_spec() {
  NodeSpec spec("encode.atrous_wavelet", "1.0.0",
                "3D stationary (undecimated, 'a trous') wavelet with the B3-spline kernel: detail_j = c_j - c_{j+1}, "
                "c_{j+1} = c_j filtered with 2^j - 1 holes, then the 'base' c_levels. Every level on the source "
                "grid (memory: levels + 1 volumes). Decoding is the sum of the levels.");
  spec.input<Volume>("volume", "the (normalised) volume to encode")
      .memory_intensive()
      .output<Latent>("latent", "kind 'atrous_wavelet'")
      .param("levels", Param::Int(4).range(1, 10), "number of detail scales");
  return spec;
}

NodeSpec guided_filter_spec() {
  NodeSpec spec("encode.guided_filter", "1.0.0",
                "Two-scale decomposition of guided-filtering fusion (GFF, Li, Kang & Hu 2013) in 3D: base = mean "
                "over a (2 base_radius + 1)^3 box, detail = volume - base. The guided-filter weight maps are built "
                "by fuse.latent with rule 'guided_filter', which needs every source.");
  spec.input<Volume>("volume", "the (normalised, [0, 1]) volume to encode")
      .memory_intensive()
      .output<Latent>("latent", "kind 'guided_filter': levels 'detail' and 'base' on the source grid")
      .param("base_radius", Param::Int(15).range(1, 512), "box radius in voxels (15: the paper's 31 x 31 average)");
  return spec;
}

}  // namespace
}  // namespace fusionflow::encode_nodes

FUSIONFLOW_PLUGIN("encode", "1.0.0", "Multiscale encoders into the shared latent representation") {
  using namespace fusionflow;
  using namespace fusionflow::encode_nodes;
  registrar.add_node(laplacian_pyramid_spec(), [](NodeContext& ctx) {
    const Volume& volume = ctx.input<Volume>("volume");
    ctx.output("latent", latent::encode_laplacian_pyramid(volume, ctx.param<int>("levels"), latent::control_for(ctx)));
  });
  registrar.add_node(atrous_wavelet_spec(), [](NodeContext& ctx) {
    const Volume& volume = ctx.input<Volume>("volume");
    ctx.output("latent", latent::encode_atrous_wavelet(volume, ctx.param<int>("levels"), latent::control_for(ctx)));
  });
  registrar.add_node(guided_filter_spec(), [](NodeContext& ctx) {
    const Volume& volume = ctx.input<Volume>("volume");
    ctx.output("latent",
               latent::encode_guided_filter(volume, ctx.param<int>("base_radius"), latent::control_for(ctx)));
  });
}
