// core.* nodes: general-purpose nodes that need no imaging library —
// synthetic volumes for examples and tests, volume statistics, and tables.
#include <fusionflow/sdk.hpp>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <limits>
#include <random>
#include <stdexcept>

namespace fusionflow::core_nodes {
namespace {

// Refuse absurd grids before allocating (2^31 voxels = 8 GiB of floats).
constexpr std::size_t kMaxVoxels = std::size_t{1} << 31;

enum class Pattern { Sphere, Gradient, Noise };
const ChoiceList<Pattern> kPatternNames{
    {Pattern::Sphere, "sphere"}, {Pattern::Gradient, "gradient"}, {Pattern::Noise, "noise"}};

struct SyntheticVolumeOptions {
  std::array<std::size_t, 3> size{64, 64, 64};
  std::array<double, 3> spacing{1.0, 1.0, 1.0};
  Pattern pattern = Pattern::Sphere;
  std::uint64_t seed = 0;
  std::string modality;
};

constexpr OutputPort<Volume> kVolumeOut{"volume"};

NodeType<SyntheticVolumeOptions> synthetic_volume_node() {
  using O = SyntheticVolumeOptions;
  NodeType<O> node("core.synthetic_volume", "1.0.0",
                   "A deterministic synthetic volume (sphere, gradient or noise) for examples and tests");
  node.output(kVolumeOut, "the generated volume")
      .param(&O::size, "size", Limits::range(1, 4096), "voxels along i, j, k")
      .param(&O::spacing, "spacing", Limits::range(1e-6, 1e6), "voxel spacing in mm")
      .choice(&O::pattern, "pattern", kPatternNames,
              "sphere: 1 inside a centred ball of radius 0.35 x field of view, else 0; gradient: 0..1 along i; "
              "noise: uniform in [0, 1)")
      .param(&O::seed, "seed", Limits::at_least(0), "random seed for the noise pattern")
      .param(&O::modality, "modality", "modality recorded in the volume's metadata");
  return node;
}

void run_synthetic_volume(NodeContext& ctx, const SyntheticVolumeOptions& options) {
  const auto& size = options.size;
  const auto& spacing = options.spacing;
  const Pattern pattern = options.pattern;
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
  volume.metadata.modality = options.modality;
  volume.metadata.units = "a.u.";
  volume.metadata.quantity = "synthetic " + kPatternNames.name(pattern);
  volume.metadata.source = ctx.node_id();

  std::mt19937_64 random(options.seed);
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
        if (pattern == Pattern::Sphere) {
          const auto p = g.index_to_point({double(i), double(j), double(k)});
          value = std::sqrt(p[0] * p[0] + p[1] * p[1] + p[2] * p[2]) <= radius ? 1.0f : 0.0f;
        } else if (pattern == Pattern::Gradient) {
          value = g.size[0] > 1 ? float(double(i) / double(g.size[0] - 1)) : 0.0f;
        } else {
          value = uniform(random);
        }
        volume.voxels[g.linear_index(i, j, k)] = value;
      }
    }
    ctx.progress(double(k + 1) / double(g.size[2]));
  }
  ctx.output(kVolumeOut, std::move(volume));
}

struct VolumeStatsOptions {
  std::string label;
};

constexpr InputPort<Volume> kVolumeIn{"volume"};
constexpr OutputPort<Table> kStatsOut{"stats"};

NodeType<VolumeStatsOptions> volume_stats_node() {
  NodeType<VolumeStatsOptions> node("core.volume_stats", "1.0.0",
                                    "Intensity statistics of a volume as a one-row table");
  node.input(kVolumeIn, "the volume to summarise")
      .output(kStatsOut, "label, modality, units, voxels, min, max, mean, std, p01, p50, p99, non_finite")
      .param(&VolumeStatsOptions::label, "label", "row label (default: the node id)");
  return node;
}

void run_volume_stats(NodeContext& ctx, const VolumeStatsOptions& options) {
  const Volume& volume = ctx.input(kVolumeIn);
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
  // Percentiles of the finite voxels (fusionflow/statistics.hpp: linear interpolation, as numpy).
  auto percentile = [&](double p) { return finite.empty() ? std::nan("") : fusionflow::percentile(finite, p); };
  const double p01 = percentile(1), p50 = percentile(50), p99 = percentile(99);
  const auto [min_it, max_it] = std::minmax_element(finite.begin(), finite.end());
  const std::string label = options.label.empty() ? ctx.node_id() : options.label;

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
  ctx.output(kStatsOut, std::move(table));
}

constexpr InputPort<Table> kTablesIn{"tables"};
constexpr OutputPort<Table> kTableOut{"table"};

NodeType<NoOptions> merge_tables_node() {
  NodeType<NoOptions> node("core.merge_tables", "1.0.0",
                           "Concatenates the rows of several tables (columns matched by name)");
  node.multi_input(kTablesIn, "the tables, in order").output(kTableOut, "all rows");
  return node;
}

void run_merge_tables(NodeContext& ctx, const NoOptions&) {
  Table merged;
  for (const auto& table : ctx.inputs(kTablesIn)) {
    for (const auto& row : table->rows) {
      std::vector<std::pair<std::string, Table::Cell>> cells;
      for (std::size_t c = 0; c < table->columns.size() && c < row.size(); ++c) {
        cells.emplace_back(table->columns[c], row[c]);
      }
      merged.add_row(cells);
    }
  }
  ctx.output(kTableOut, std::move(merged));
}

enum class TableFormat { Auto, Csv, Json };
const ChoiceList<TableFormat> kTableFormatNames{
    {TableFormat::Auto, "auto"}, {TableFormat::Csv, "csv"}, {TableFormat::Json, "json"}};

struct WriteTableOptions {
  std::filesystem::path path;
  TableFormat format = TableFormat::Auto;
};

constexpr InputPort<Table> kTableIn{"table"};

NodeType<WriteTableOptions> write_table_node() {
  NodeType<WriteTableOptions> node("core.write_table", "1.0.0", "Writes a table as CSV or JSON (atomically)");
  node.input(kTableIn, "the table to write")
      .output_path(&WriteTableOptions::path, "path", "output file; missing directories are created")
      .choice(&WriteTableOptions::format, "format", kTableFormatNames,
              "auto: from the file extension (.json, else CSV)");
  return node;
}

void run_write_table(NodeContext& ctx, const WriteTableOptions& options) {
  const Table& table = ctx.input(kTableIn);
  const std::filesystem::path& path = options.path;
  TableFormat format = options.format;
  if (format == TableFormat::Auto) format = path.extension() == ".json" ? TableFormat::Json : TableFormat::Csv;
  write_file_atomically(path, format == TableFormat::Json ? table.to_json() : table.to_csv());
  ctx.log(LogLevel::Info, "wrote " + path.string());
}

}  // namespace
}  // namespace fusionflow::core_nodes

FUSIONFLOW_PLUGIN("core", "1.0.0", "General-purpose nodes: synthetic volumes, statistics, tables") {
  using namespace fusionflow::core_nodes;
  registrar.add_node(synthetic_volume_node(), run_synthetic_volume);
  registrar.add_node(volume_stats_node(), run_volume_stats);
  registrar.add_node(merge_tables_node(), run_merge_tables);
  registrar.add_node(write_table_node(), run_write_table);
}
