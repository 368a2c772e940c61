// resample.* nodes: bring a volume onto another grid, optionally through a
// transform.
#include <fusionflow/itk_transform.hpp>
#include <fusionflow/sdk.hpp>

#include <cmath>
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

// --- resample.extract_slice ----------------------------------------------------

struct SliceOptions {
  std::int64_t index = -1;  // -1: the middle slice
  std::vector<double> point_mm;
};

NodeType<SliceOptions> extract_slice_node() {
  NodeType<SliceOptions> node("resample.extract_slice", "1.0.0",
                              "One axial (k) slice of a volume, its voxels copied as they are, with its geometry: "
                              "the same spacing and direction, the origin at the slice (a 2D image for PNG output "
                              "or the 2D fusion benchmarks)");
  node.input(kVolumeIn, "the volume")
      .output(kVolumeOut, "the slice: N x M x 1 voxels")
      .param(&SliceOptions::index, "index", Limits::at_least(-1),
             "slice index k, from 0; -1: the middle slice (or the one through point_mm)")
      .param(&SliceOptions::point_mm, "point_mm",
             "with index -1: the slice through this LPS point (x, y, z mm), the nearest one; empty: the middle");
  return node;
}

void run_extract_slice(NodeContext& ctx, const SliceOptions& options) {
  const Volume& volume = ctx.input(kVolumeIn);
  const Geometry& grid = volume.geometry;
  if (grid.voxel_count() == 0 || volume.voxels.size() != grid.voxel_count()) {
    throw std::invalid_argument("the volume is empty or its voxels do not fill its grid " + grid.size_string());
  }
  std::int64_t k = options.index;
  if (k < 0 && options.point_mm.size() == 3) {
    const auto index = grid.point_to_index({options.point_mm[0], options.point_mm[1], options.point_mm[2]});
    k = static_cast<std::int64_t>(std::floor(index[2] + 0.5));
  } else if (k < 0 && !options.point_mm.empty()) {
    throw std::invalid_argument("point_mm must hold three values (x, y, z in mm), got " +
                                std::to_string(options.point_mm.size()));
  } else if (k < 0) {
    k = static_cast<std::int64_t>(grid.size[2] / 2);
  }
  if (k < 0 || k >= static_cast<std::int64_t>(grid.size[2])) {
    throw std::invalid_argument("slice " + std::to_string(k) + " is outside the volume's " +
                                std::to_string(grid.size[2]) + " axial slices (0.." + std::to_string(grid.size[2] - 1) +
                                ")");
  }
  Volume slice;
  slice.metadata = volume.metadata;
  slice.metadata.extra["resample.slice"] = "axial k = " + std::to_string(k) + " of " + std::to_string(grid.size[2]);
  slice.geometry = grid;
  slice.geometry.size[2] = 1;
  slice.geometry.origin = grid.index_to_point({0.0, 0.0, static_cast<double>(k)});
  const std::size_t plane = grid.size[0] * grid.size[1];
  const auto first = volume.voxels.begin() + static_cast<std::ptrdiff_t>(plane * static_cast<std::size_t>(k));
  slice.voxels.assign(first, first + static_cast<std::ptrdiff_t>(plane));
  ctx.output(kVolumeOut, std::move(slice));
}

}  // namespace
}  // namespace fusionflow::resample_nodes

FUSIONFLOW_PLUGIN("resample", "1.0.0", "Resampling onto reference grids and spacings, through transforms") {
  registrar.add_node(fusionflow::resample_nodes::apply_node(), fusionflow::resample_nodes::run_apply);
  registrar.add_node(fusionflow::resample_nodes::extract_slice_node(), fusionflow::resample_nodes::run_extract_slice);
}
