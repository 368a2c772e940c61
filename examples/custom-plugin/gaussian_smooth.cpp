// An example node family: smoothing.gaussian, Gaussian smoothing of a volume
// with the width given in millimetres (so it means the same at any spacing).
#include <fusionflow/sdk.hpp>

#include <cmath>
#include <stdexcept>
#include <string>
#include <vector>

namespace {
using namespace fusionflow;

// Each parameter is a field of the node's options, declared once below; its
// default is the field's initialiser.
struct GaussianOptions {
  double sigma_mm = 2.0;
};

// Ports are named once, with their payload type.
constexpr InputPort<Volume> kVolumeIn{"volume"};
constexpr OutputPort<Volume> kVolumeOut{"volume"};

NodeType<GaussianOptions> gaussian_node() {
  NodeType<GaussianOptions> node("smoothing.gaussian", "1.0.0",
                                 "Gaussian smoothing with a physical width (separable, edges clamped)");
  node.input(kVolumeIn, "the volume to smooth")
      .output(kVolumeOut, "the smoothed volume, same grid and metadata")
      .param(&GaussianOptions::sigma_mm, "sigma_mm", Limits::range(0.0, 100.0),
             "standard deviation of the Gaussian in mm");
  return node;
}

// Normalised 1D kernel, truncated at 3 sigma.
std::vector<double> kernel_for(double sigma_voxels) {
  const int radius = std::max(1, static_cast<int>(std::ceil(3.0 * sigma_voxels)));
  std::vector<double> kernel(2 * radius + 1);
  double sum = 0;
  for (int x = -radius; x <= radius; ++x) {
    kernel[x + radius] = std::exp(-0.5 * x * x / (sigma_voxels * sigma_voxels));
    sum += kernel[x + radius];
  }
  for (double& weight : kernel) weight /= sum;
  return kernel;
}

void smooth_along(float* voxels, const Geometry& g, int axis, double sigma_mm, NodeContext& ctx) {
  const double sigma_voxels = sigma_mm / g.spacing[axis];
  if (sigma_voxels < 1e-3) return;
  const std::vector<double> kernel = kernel_for(sigma_voxels);
  const long radius = static_cast<long>(kernel.size() / 2);
  const std::size_t stride[3] = {1, g.size[0], g.size[0] * g.size[1]};
  const long length = static_cast<long>(g.size[axis]);
  const int other_a = (axis + 1) % 3, other_b = (axis + 2) % 3;
  std::vector<float> line(static_cast<std::size_t>(length));
  for (std::size_t b = 0; b < g.size[other_b]; ++b) {
    ctx.throw_if_cancelled();  // stop promptly when the run is cancelled
    for (std::size_t a = 0; a < g.size[other_a]; ++a) {
      const std::size_t start = a * stride[other_a] + b * stride[other_b];
      for (long i = 0; i < length; ++i) line[i] = voxels[start + i * stride[axis]];
      for (long i = 0; i < length; ++i) {
        double sum = 0;
        for (long k = -radius; k <= radius; ++k) {
          const long j = std::min(std::max(i + k, 0L), length - 1);
          sum += kernel[k + radius] * line[j];
        }
        voxels[start + i * stride[axis]] = static_cast<float>(sum);
      }
    }
  }
}

// Called with the parameters already checked against their declaration.
void run_gaussian(NodeContext& ctx, const GaussianOptions& options) {
  const Volume& input = ctx.input(kVolumeIn);
  const double sigma_mm = options.sigma_mm;
  Volume output = input;  // same geometry and metadata; voxels replaced below
  for (int axis = 0; axis < 3; ++axis) {
    smooth_along(output.voxels.data(), output.geometry, axis, sigma_mm, ctx);
    ctx.progress((axis + 1) / 3.0);
  }
  ctx.log(LogLevel::Info, "smoothed with sigma " + std::to_string(sigma_mm) + " mm");
  ctx.output(kVolumeOut, std::move(output));
}

// An encoder into the shared latent representation, with its decoder: a
// volume becomes a base level (the Gaussian-smoothed volume) and a detail
// level (what smoothing removed). fuse.latent fuses such latents like the
// built-in ones, and decode.latent decodes them with decode_two_scale below,
// registered for the kind this encoder sets.
constexpr const char* kTwoScaleKind = "two_scale";
constexpr OutputPort<Latent> kLatentOut{"latent"};

NodeType<GaussianOptions> two_scale_node() {
  NodeType<GaussianOptions> node("smoothing.encode_two_scale", "1.0.0",
                                 "Encodes a volume as a Gaussian base and the detail it removes (latent kind "
                                 "'two_scale'; fuse with fuse.latent, decode with decode.latent)");
  node.input(kVolumeIn, "the volume to encode")
      .output(kLatentOut, "kind 'two_scale': levels detail and base on the volume's grid")
      .param(&GaussianOptions::sigma_mm, "sigma_mm", Limits::range(0.0, 100.0), "width of the base's Gaussian in mm");
  return node;
}

LatentLevel level_of(const std::string& name, const Geometry& geometry, std::vector<float> data) {
  LatentLevel level;
  level.name = name;
  level.role = name;  // "detail" or "base": how fusion rules treat it
  level.geometry = geometry;
  level.channels = 1;
  level.data = std::move(data);
  return level;
}

void run_two_scale(NodeContext& ctx, const GaussianOptions& options) {
  const Volume& input = ctx.input(kVolumeIn);
  std::vector<float> base = input.voxels;
  for (int axis = 0; axis < 3; ++axis) smooth_along(base.data(), input.geometry, axis, options.sigma_mm, ctx);
  std::vector<float> detail(base.size());
  for (std::size_t v = 0; v < base.size(); ++v) detail[v] = input.voxels[v] - base[v];
  Latent latent;
  latent.kind = kTwoScaleKind;
  latent.encoder_params = {{"sigma_mm", std::to_string(options.sigma_mm)}};
  latent.source_geometry = input.geometry;
  latent.source_metadata = input.metadata;
  latent.levels.push_back(level_of("detail", input.geometry, std::move(detail)));
  latent.levels.push_back(level_of("base", input.geometry, std::move(base)));
  ctx.output(kLatentOut, std::move(latent));
}

Volume decode_two_scale(const Latent& latent, NodeContext& ctx) {
  if (latent.levels.size() != 2 || latent.levels[0].data.size() != latent.source_geometry.voxel_count() ||
      latent.levels[1].data.size() != latent.source_geometry.voxel_count()) {
    throw std::invalid_argument("a two_scale latent has two levels on its source grid");
  }
  ctx.throw_if_cancelled();
  Volume volume;
  volume.geometry = latent.source_geometry;
  volume.metadata = latent.source_metadata;
  volume.voxels.resize(volume.geometry.voxel_count());
  for (std::size_t v = 0; v < volume.voxels.size(); ++v) {
    volume.voxels[v] = latent.levels[0].data[v] + latent.levels[1].data[v];
  }
  return volume;
}

}  // namespace

FUSIONFLOW_PLUGIN("smoothing", "1.1.0", "Example out-of-tree plugin: Gaussian smoothing and a two-scale encoder") {
  registrar.add_node(gaussian_node(), run_gaussian);
  registrar.add_node(two_scale_node(), run_two_scale);
  registrar.add_latent_decoder(kTwoScaleKind, "base + detail", decode_two_scale);
}
