// The core.* node family, loaded from the bundled plugin and run through the
// SDK's NodeHarness.
#include <gtest/gtest.h>

#include "test_support.hpp"

#include <fusionflow/payload_types.hpp>
#include <fusionflow/plugin_loader.hpp>
#include <fusionflow/testing.hpp>

#include <cmath>
#include <fstream>
#include <sstream>

namespace fusionflow {
namespace {
namespace fs = std::filesystem;
using testing::NodeHarness;

const NodeRegistry& bundled() { return testing::bundled_plugins(); }

Volume small_volume(std::vector<float> voxels) {
  Volume volume;
  volume.geometry.size = {voxels.size(), 1, 1};
  volume.voxels = std::move(voxels);
  volume.metadata.modality = "CT";
  volume.metadata.units = "HU";
  return volume;
}

double cell(const Table& table, const std::string& column, std::size_t row = 0) {
  return std::get<double>(table.rows.at(row).at(table.column_index(column)));
}

TEST(CoreVolumeStats, ComputesStatisticsOfFiniteVoxelsAndCountsTheRest) {
  NodeHarness node(bundled(), "core.volume_stats");
  node.set_input("volume", small_volume({4, 1, NAN, 3, 2, INFINITY}));
  node.run();
  const Table& stats = node.output<Table>("stats");
  EXPECT_EQ(cell(stats, "voxels"), 6);
  EXPECT_EQ(cell(stats, "non_finite"), 2);
  EXPECT_EQ(cell(stats, "min"), 1);
  EXPECT_EQ(cell(stats, "max"), 4);
  EXPECT_DOUBLE_EQ(cell(stats, "mean"), 2.5);
  EXPECT_DOUBLE_EQ(cell(stats, "std"), std::sqrt(1.25));
  // numpy.percentile([4, 1, 3, 2], [1, 50, 99]) = [1.03, 2.5, 3.97] (linear interpolation).
  EXPECT_DOUBLE_EQ(cell(stats, "p01"), 1.03);
  EXPECT_DOUBLE_EQ(cell(stats, "p50"), 2.5);
  EXPECT_DOUBLE_EQ(cell(stats, "p99"), 3.97);
  EXPECT_EQ(std::get<std::string>(stats.rows[0][stats.column_index("label")]), "test_node");
  EXPECT_EQ(std::get<std::string>(stats.rows[0][stats.column_index("units")]), "HU");
}

TEST(CoreSyntheticVolume, SphereHasTheRightVolumeAndCentredGeometry) {
  NodeHarness node(bundled(), "core.synthetic_volume");
  node.set_param("size", std::vector<std::int64_t>{40, 50, 60})
      .set_param("spacing", std::vector<double>{1.0, 1.0, 2.0});
  node.run();
  const Volume& volume = node.output<Volume>("volume");
  EXPECT_EQ(volume.geometry.size, (std::array<std::size_t, 3>{40, 50, 60}));
  EXPECT_DOUBLE_EQ(volume.geometry.origin[0], -19.5);
  EXPECT_DOUBLE_EQ(volume.geometry.origin[2], -59.0);
  double inside = 0;
  for (float v : volume.voxels) {
    ASSERT_TRUE(v == 0.0f || v == 1.0f);
    inside += v;
  }
  // Radius 0.35 x the smallest field of view (40 mm) = 14 mm.
  const double expected = 4.0 / 3.0 * M_PI * 14 * 14 * 14 / 2.0;  // voxel volume 2 mm^3
  EXPECT_NEAR(inside, expected, 0.05 * expected);
  EXPECT_FALSE(node.progress_reports().empty());
  EXPECT_EQ(node.progress_reports().back(), 1.0);
}

TEST(CoreSyntheticVolume, NoiseIsDeterministicPerSeed) {
  auto generate = [](int seed) {
    NodeHarness node(bundled(), "core.synthetic_volume");
    node.set_param("size", std::vector<std::int64_t>{8, 8, 8}).set_param("pattern", "noise").set_param("seed", seed);
    node.run();
    return node.output<Volume>("volume").voxels;
  };
  EXPECT_EQ(generate(3), generate(3));
  EXPECT_NE(generate(3), generate(4));
}

TEST(CoreSyntheticVolume, StopsWhenCancelledAndRefusesAbsurdSizes) {
  NodeHarness cancelled(bundled(), "core.synthetic_volume");
  cancelled.cancel();
  EXPECT_THROW(cancelled.run(), Cancelled);

  NodeHarness huge(bundled(), "core.synthetic_volume");
  huge.set_param("size", std::vector<std::int64_t>{4096, 4096, 4096});
  try {
    huge.run();
    FAIL() << "accepted 2^36 voxels";
  } catch (const std::invalid_argument& error) {
    EXPECT_NE(std::string(error.what()).find("exceeds the limit"), std::string::npos);
  }
}

TEST(CoreMergeTables, ConcatenatesRowsMatchingColumnsByName) {
  Table first, second;
  first.add_row({{"label", std::string("a")}, {"mean", 1.0}});
  second.add_row({{"mean", 2.0}, {"extra", 3.0}});
  NodeHarness node(bundled(), "core.merge_tables");
  node.add_input("tables", first).add_input("tables", second);
  node.run();
  const Table& merged = node.output<Table>("table");
  EXPECT_EQ(merged.columns, (std::vector<std::string>{"label", "mean", "extra"}));
  ASSERT_EQ(merged.rows.size(), 2u);
  EXPECT_EQ(cell(merged, "mean", 1), 2.0);
  EXPECT_TRUE(std::holds_alternative<std::monostate>(merged.rows[0][2]));
}

TEST(CoreWriteTable, WritesCsvOrJsonByExtension) {
  const fs::path dir = fs::temp_directory_path() / ("fusionflow-write-table-" + std::to_string(::getpid()));
  fs::remove_all(dir);
  Table table;
  table.add_row({{"x", 1.5}});
  for (const char* name : {"t.csv", "t.json"}) {
    NodeHarness node(bundled(), "core.write_table");
    node.set_input("table", table).set_param("path", (dir / "sub" / name).string());
    node.run();
  }
  std::stringstream csv, json;
  csv << std::ifstream(dir / "sub/t.csv").rdbuf();
  json << std::ifstream(dir / "sub/t.json").rdbuf();
  EXPECT_EQ(csv.str(), "x\n1.5\n");
  EXPECT_NE(json.str().find("\"x\": 1.5"), std::string::npos);
  fs::remove_all(dir);
}

TEST(NodeHarness, ChecksParametersAndInputsLikeAPipeline) {
  NodeHarness node(bundled(), "core.synthetic_volume");
  EXPECT_THROW(node.set_param("pattern", "checkerboard"), std::invalid_argument);
  EXPECT_THROW(node.set_param("size", std::vector<std::int64_t>{1, 2}), std::invalid_argument);
  EXPECT_THROW(node.set_param("seed", -1), std::invalid_argument);
  EXPECT_THROW(node.set_param("no_such", 1), std::invalid_argument);
  NodeHarness stats(bundled(), "core.volume_stats");
  EXPECT_THROW(stats.run(), std::invalid_argument);                         // required input missing
  EXPECT_THROW(stats.set_input("volume", Table{}), std::invalid_argument);  // wrong type
}

}  // namespace
}  // namespace fusionflow
