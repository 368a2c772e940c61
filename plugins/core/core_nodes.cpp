// core.* nodes: general-purpose nodes that need no imaging library —
// synthetic volumes for examples and tests, volume statistics, and tables.
#include <fusionflow/sdk.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <random>
#include <stdexcept>

namespace fusionflow::core_nodes {
namespace {

// Refuse absurd grids before allocating (2^31 voxels = 8 GiB of floats).
constexpr std::size_t kMaxVoxels = std::size_t{1} << 31;

NodeSpec synthetic_volume_spec() {
  NodeSpec spec("core.synthetic_volume", "1.0.0",
                "A deterministic synthetic volume (sphere, gradient or noise) for examples and tests");
  spec.output<Volume>("volume", "the generated volume")
      .param("size", Param::IntList({64, 64, 64}).length(3).range(1, 4096), "voxels along i, j, k")
      .param("spacing", Param::FloatList({1.0, 1.0, 1.0}).length(3).range(1e-6, 1e6), "voxel spacing in mm")
      .param("pattern", Param::Choice({"sphere", "gradient", "noise"}, "sphere"),
             "sphere: 1 inside a centred ball of radius 0.35 x field of view, else 0; gradient: 0..1 along i; "
             "noise: uniform in [0, 1)")
      .param("seed", Param::Int(0).at_least(0), "random seed for the noise pattern")
      .param("modality", Param::String(""), "modality recorded in the volume's metadata");
  return spec;
}

void run_synthetic_volume(NodeContext& ctx) {
  const auto size = ctx.param<std::vector<std::int64_t>>("size");
  const auto spacing = ctx.param<std::vector<double>>("spacing");
  const std::string pattern = ctx.param<std::string>("pattern");
  Volume volume;
  for (int axis = 0; axis < 3; ++axis) {
    volume.geometry.size[axis] = static_cast<std::size_t>(size[axis]);
    volume.geometry.spacing[axis] = spacing[axis];
    // Centre the field of view on the world origin.
    volume.geometry.origin[axis] = -0.5 * spacing[axis] * static_cast<double>(size[axis] - 1);
  }
  const std::size_t voxel_count = volume.geometry.voxel_count();
  if (voxel_count > kMaxVoxels) {
    throw std::invalid_argument("size " + std::to_string(size[0]) + "x" + std::to_string(size[1]) + "x" +
                                std::to_string(size[2]) + " exceeds the limit of 2^31 voxels");
  }
  volume.voxels.resize(voxel_count);
  volume.metadata.modality = ctx.param<std::string>("modality");
  volume.metadata.units = "a.u.";
  volume.metadata.quantity = "synthetic " + pattern;
  volume.metadata.source = ctx.node_id();

  std::mt19937_64 random(static_cast<std::uint64_t>(ctx.param<std::int64_t>("seed")));
  std::uniform_real_distribution<float> uniform(0.0f, 1.0f);
  const Geometry& g = volume.geometry;
  double field_of_view = std::numeric_limits<double>::max();
  for (int axis = 0; axis < 3; ++axis) {
    field_of_view = std::min(field_of_view, g.spacing[axis] * static_cast<double>(g.size[axis]));
  }
  const double radius = 0.35 * field_of_view;
  for (std::size_t k = 0; k < g.size[2]; ++k) {
    ctx.throw_if_cancelled();
    for (std::size_t j = 0; j < g.size[1]; ++j) {
      for (std::size_t i = 0; i < g.size[0]; ++i) {
        float value = 0.0f;
        if (pattern == "sphere") {
          const auto p = g.index_to_point({double(i), double(j), double(k)});
          value = std::sqrt(p[0] * p[0] + p[1] * p[1] + p[2] * p[2]) <= radius ? 1.0f : 0.0f;
        } else if (pattern == "gradient") {
          value = g.size[0] > 1 ? float(double(i) / double(g.size[0] - 1)) : 0.0f;
        } else {
          value = uniform(random);
        }
        volume.voxels[g.linear_index(i, j, k)] = value;
      }
    }
    ctx.progress(double(k + 1) / double(g.size[2]));
  }
  ctx.output("volume", std::move(volume));
}

NodeSpec volume_stats_spec() {
  NodeSpec spec("core.volume_stats", "1.0.0", "Intensity statistics of a volume as a one-row table");
  spec.input<Volume>("volume", "the volume to summarise")
      .output<Table>("stats", "label, modality, units, voxels, min, max, mean, std, p01, p50, p99, non_finite")
      .param("label", Param::String(""), "row label (default: the node id)");
  return spec;
}

void run_volume_stats(NodeContext& ctx) {
  const Volume& volume = ctx.input<Volume>("volume");
  std::vector<float> finite;
  finite.reserve(volume.voxels.size());
  double sum = 0.0;
  for (float value : volume.voxels) {
    if (std::isfinite(value)) {
      finite.push_back(value);
      sum += value;
    }
  }
  ctx.throw_if_cancelled();
  const double count = static_cast<double>(finite.size());
  const double mean = finite.empty() ? std::nan("") : sum / count;
  double squares = 0.0;
  for (float value : finite) squares += (value - mean) * (value - mean);
  ctx.progress(0.5);
  // Nearest-rank percentiles on the finite voxels.
  auto percentile = [&](double p) -> double {
    if (finite.empty()) return std::nan("");
    const auto rank = static_cast<std::size_t>(std::ceil(p / 100.0 * count));
    const std::size_t index = rank == 0 ? 0 : rank - 1;
    std::nth_element(finite.begin(), finite.begin() + static_cast<std::ptrdiff_t>(index), finite.end());
    return finite[index];
  };
  const double p01 = percentile(1), p50 = percentile(50), p99 = percentile(99);
  const auto [min_it, max_it] = std::minmax_element(finite.begin(), finite.end());
  std::string label = ctx.param<std::string>("label");
  if (label.empty()) label = ctx.node_id();

  Table table;
  table.add_row({{"label", label},
                 {"modality", volume.metadata.modality},
                 {"units", volume.metadata.units},
                 {"voxels", static_cast<double>(volume.voxels.size())},
                 {"min", finite.empty() ? std::nan("") : double(*min_it)},
                 {"max", finite.empty() ? std::nan("") : double(*max_it)},
                 {"mean", mean},
                 {"std", finite.empty() ? std::nan("") : std::sqrt(squares / count)},
                 {"p01", p01},
                 {"p50", p50},
                 {"p99", p99},
                 {"non_finite", static_cast<double>(volume.voxels.size() - finite.size())}});
  ctx.output("stats", std::move(table));
}

NodeSpec merge_tables_spec() {
  NodeSpec spec("core.merge_tables", "1.0.0", "Concatenates the rows of several tables (columns matched by name)");
  spec.multi_input<Table>("tables", "the tables, in order").output<Table>("table", "all rows");
  return spec;
}

void run_merge_tables(NodeContext& ctx) {
  Table merged;
  for (const auto& table : ctx.inputs<Table>("tables")) {
    for (const auto& row : table->rows) {
      std::vector<std::pair<std::string, Table::Cell>> cells;
      for (std::size_t c = 0; c < table->columns.size() && c < row.size(); ++c) {
        cells.emplace_back(table->columns[c], row[c]);
      }
      merged.add_row(cells);
    }
  }
  ctx.output("table", std::move(merged));
}

NodeSpec write_table_spec() {
  NodeSpec spec("core.write_table", "1.0.0", "Writes a table as CSV or JSON (atomically)");
  spec.input<Table>("table", "the table to write")
      .param("path", Param::OutputPath(), "output file; missing directories are created")
      .param("format", Param::Choice({"auto", "csv", "json"}, "auto"), "auto: from the file extension (.json, else CSV)");
  return spec;
}

void run_write_table(NodeContext& ctx) {
  const Table& table = ctx.input<Table>("table");
  const std::filesystem::path path = ctx.param<std::filesystem::path>("path");
  std::string format = ctx.param<std::string>("format");
  if (format == "auto") format = path.extension() == ".json" ? "json" : "csv";
  write_file_atomically(path, format == "json" ? table.to_json() : table.to_csv());
  ctx.log(LogLevel::Info, "wrote " + path.string());
}

}  // namespace
}  // namespace fusionflow::core_nodes

FUSIONFLOW_PLUGIN("core", "1.0.0", "General-purpose nodes: synthetic volumes, statistics, tables") {
  using namespace fusionflow::core_nodes;
  registrar.add_node(synthetic_volume_spec(), run_synthetic_volume);
  registrar.add_node(volume_stats_spec(), run_volume_stats);
  registrar.add_node(merge_tables_spec(), run_merge_tables);
  registrar.add_node(write_table_spec(), run_write_table);
}
