// resample.* nodes: bring a volume onto another grid, optionally through a
// transform.
#include <fusionflow/itk_transform.hpp>
#include <fusionflow/sdk.hpp>

#include <stdexcept>

namespace fusionflow::resample_nodes {
namespace {

struct ApplyOptions {
  std::vector<double> spacing;
  Interpolation interpolation = Interpolation::Linear;
  float default_value = 0.0f;
};

constexpr InputPort<Volume> kVolumeIn{"volume"};
constexpr InputPort<Volume> kReferenceIn{"reference"};
constexpr InputPort<Transform> kTransformIn{"transform"};
constexpr OutputPort<Volume> kVolumeOut{"volume"};

NodeType<ApplyOptions> apply_node() {
  NodeType<ApplyOptions> node("resample.apply", "1.0.0",
                              "Resamples a volume onto a reference grid or a new spacing, optionally through a "
                              "transform");
  node.input(kVolumeIn, "the volume to resample")
      .optional_input(kReferenceIn, "target grid (default: the input's own grid)")
      .optional_input(kTransformIn, "maps target points to input points (as register.* produce)")
      .param(&ApplyOptions::spacing, "spacing", Limits::range(1e-4, 1e4),
             "new voxel spacing in mm, three values (empty: keep the grid's spacing)")
      .choice(&ApplyOptions::interpolation, "interpolation", kInterpolationNames,
              "nearest for label maps; bspline for smooth images")
      .param(&ApplyOptions::default_value, "default_value", "value of voxels that fall outside the input volume")
      .output(kVolumeOut, "the resampled volume (input metadata kept)");
  return node;
}

void run_apply(NodeContext& ctx, const ApplyOptions& options) {
  const Volume& volume = ctx.input(kVolumeIn);
  Geometry grid = ctx.has_input(kReferenceIn) ? ctx.input(kReferenceIn).geometry : volume.geometry;
  const std::vector<double>& spacing = options.spacing;
  if (!spacing.empty()) {
    if (spacing.size() != 3) {
      throw std::invalid_argument("'spacing' needs three values (mm along i, j, k), got " +
                                  std::to_string(spacing.size()));
    }
    grid = grid_with_spacing(grid, {spacing[0], spacing[1], spacing[2]});
  }
  const Transform* transform = ctx.has_input(kTransformIn) ? &ctx.input(kTransformIn) : nullptr;
  ctx.throw_if_cancelled();
  ctx.output(kVolumeOut, resample_volume(volume, grid, transform, options.interpolation, options.default_value));
  ctx.progress(1.0);
}

}  // namespace
}  // namespace fusionflow::resample_nodes

FUSIONFLOW_PLUGIN("resample", "1.0.0", "Resampling onto reference grids and spacings, through transforms") {
  registrar.add_node(fusionflow::resample_nodes::apply_node(), fusionflow::resample_nodes::run_apply);
}
