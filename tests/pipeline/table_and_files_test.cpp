#include <gtest/gtest.h>

#include <fusionflow/atomic_file.hpp>
#include <fusionflow/table.hpp>
#include <fusionflow/volume.hpp>
#include <nlohmann/json.hpp>

#include <cmath>
#include <fstream>
#include <sstream>

namespace fusionflow {
namespace {
namespace fs = std::filesystem;

fs::path fresh_directory(const std::string& name) {
  fs::path dir = fs::temp_directory_path() / ("fusionflow-test-" + name + "-" + std::to_string(::getpid()));
  fs::remove_all(dir);
  return dir;
}

std::string read_all(const fs::path& path) {
  std::ifstream in(path);
  std::stringstream buffer;
  buffer << in.rdbuf();
  return buffer.str();
}

TEST(Table, RowsWithNewColumnsPadEarlierRows) {
  Table table;
  table.add_row({{"a", 1.0}, {"b", std::string("x")}});
  table.add_row({{"b", std::string("y, \"quoted\"")}, {"c", 0.1}});
  EXPECT_EQ(table.columns, (std::vector<std::string>{"a", "b", "c"}));
  EXPECT_EQ(table.to_csv(), "a,b,c\n1,x,\n,\"y, \"\"quoted\"\"\",0.10000000000000001\n");
}

TEST(Table, JsonKeepsNonFiniteValuesAsText) {
  Table table;
  table.add_row({{"value", std::nan("")}, {"inf", INFINITY}, {"ok", 2.5}});
  const auto json = nlohmann::json::parse(table.to_json());
  EXPECT_EQ(json["rows"][0]["value"], "nan");
  EXPECT_EQ(json["rows"][0]["inf"], "inf");
  EXPECT_EQ(json["rows"][0]["ok"], 2.5);
}

TEST(AtomicFile, WritesCreatesDirectoriesAndLeavesNoTemporaryFile) {
  const fs::path dir = fresh_directory("atomic");
  const fs::path target = dir / "nested" / "result.csv";
  write_file_atomically(target, "hello\n");
  EXPECT_EQ(read_all(target), "hello\n");
  std::size_t files = 0;
  for (const auto& entry : fs::directory_iterator(target.parent_path())) {
    (void)entry;
    ++files;
  }
  EXPECT_EQ(files, 1u);
  fs::remove_all(dir);
}

TEST(AtomicFile, AnAbandonedWriteLeavesTheOldFileUntouched) {
  const fs::path dir = fresh_directory("abandon");
  const fs::path target = dir / "result.txt";
  write_file_atomically(target, "old");
  {
    AtomicFileWriter writer(target);
    std::ofstream(writer.temp_path()) << "partial";
    EXPECT_EQ(writer.temp_path().parent_path(), dir);
    EXPECT_NE(writer.temp_path().filename().string().find("result.txt"), std::string::npos);
    // No commit: as if the writer threw half way.
  }
  EXPECT_EQ(read_all(target), "old");
  std::size_t files = 0;
  for (const auto& entry : fs::directory_iterator(dir)) {
    (void)entry;
    ++files;
  }
  EXPECT_EQ(files, 1u);
  fs::remove_all(dir);
}

TEST(AtomicFile, CommitWithoutAWrittenFileIsAnError) {
  const fs::path dir = fresh_directory("nofile");
  AtomicFileWriter writer(dir / "x.nii.gz");
  EXPECT_THROW(writer.commit(), std::runtime_error);
  fs::remove_all(dir);
}

TEST(Geometry, IndexAndPointRoundTripWithObliqueDirection) {
  Geometry g;
  g.size = {10, 20, 30};
  g.spacing = {0.5, 1.0, 2.0};
  g.origin = {-10, 5, 3};
  const double c = std::cos(0.3), s = std::sin(0.3);
  g.direction = {c, -s, 0, s, c, 0, 0, 0, 1};
  const auto point = g.index_to_point({2, 3, 4});
  EXPECT_NEAR(point[0], -10 + c * 1.0 - s * 3.0, 1e-12);
  EXPECT_NEAR(point[1], 5 + s * 1.0 + c * 3.0, 1e-12);
  EXPECT_NEAR(point[2], 3 + 8.0, 1e-12);
  const auto index = g.point_to_index(point);
  EXPECT_NEAR(index[0], 2, 1e-12);
  EXPECT_NEAR(index[1], 3, 1e-12);
  EXPECT_NEAR(index[2], 4, 1e-12);
  Geometry shifted = g;
  shifted.origin[0] += 0.1;
  EXPECT_TRUE(g.same_grid(g));
  EXPECT_FALSE(g.same_grid(shifted));
}

}  // namespace
}  // namespace fusionflow
