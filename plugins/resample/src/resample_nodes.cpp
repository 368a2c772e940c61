// resample.* nodes: bring a volume onto another grid, optionally through a
// transform.
#include <fusionflow/itk_transform.hpp>
#include <fusionflow/sdk.hpp>

#include <stdexcept>

namespace fusionflow::resample_nodes {
namespace {

NodeSpec apply_spec() {
  NodeSpec spec("resample.apply", "1.0.0",
                "Resamples a volume onto a reference grid or a new spacing, optionally through a transform");
  spec.input<Volume>("volume", "the volume to resample")
      .optional_input<Volume>("reference", "target grid (default: the input's own grid)")
      .optional_input<Transform>("transform", "maps target points to input points (as register.* produce)")
      .param("spacing", Param::FloatList({}).range(1e-4, 1e4),
             "new voxel spacing in mm, three values (empty: keep the grid's spacing)")
      .param("interpolation", Param::Choice({"linear", "bspline", "nearest"}, "linear"),
             "nearest for label maps; bspline for smooth images")
      .param("default_value", Param::Float(0.0), "value of voxels that fall outside the input volume")
      .output<Volume>("volume", "the resampled volume (input metadata kept)");
  return spec;
}

void run_apply(NodeContext& ctx) {
  const Volume& volume = ctx.input<Volume>("volume");
  Geometry grid = ctx.has_input("reference") ? ctx.input<Volume>("reference").geometry : volume.geometry;
  const auto spacing = ctx.param<std::vector<double>>("spacing");
  if (!spacing.empty()) {
    if (spacing.size() != 3) {
      throw std::invalid_argument("'spacing' needs three values (mm along i, j, k), got " +
                                  std::to_string(spacing.size()));
    }
    grid = grid_with_spacing(grid, {spacing[0], spacing[1], spacing[2]});
  }
  const Transform* transform = ctx.has_input("transform") ? &ctx.input<Transform>("transform") : nullptr;
  ctx.throw_if_cancelled();
  ctx.output("volume", resample_volume(volume, grid, transform,
                                       interpolation_from_name(ctx.param<std::string>("interpolation")),
                                       ctx.param<float>("default_value")));
  ctx.progress(1.0);
}

}  // namespace
}  // namespace fusionflow::resample_nodes

FUSIONFLOW_PLUGIN("resample", "1.0.0", "Resampling onto reference grids and spacings, through transforms") {
  registrar.add_node(fusionflow::resample_nodes::apply_spec(), fusionflow::resample_nodes::run_apply);
}
