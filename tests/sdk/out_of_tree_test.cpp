// The plugin author's path, end to end: install fusionflow into a temporary
// prefix, configure and build examples/custom-plugin against it with
// find_package(fusionflow), and run its node in a pipeline with the installed
// program.
#include <gtest/gtest.h>

#include "test_support.hpp"

#include <sys/wait.h>

#include <array>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>

namespace {
namespace fs = std::filesystem;

using Output = fusionflow::testing::CommandOutput;

Output shell(const std::string& command) { return fusionflow::testing::run_command(command); }

std::vector<std::string> split_csv_line(const std::string& line) {
  std::vector<std::string> cells;
  std::stringstream stream(line);
  std::string cell;
  while (std::getline(stream, cell, ',')) cells.push_back(cell);
  return cells;
}

TEST(OutOfTreePlugin, BuildsAgainstTheInstalledSdkAndRunsInAPipeline) {
  const fs::path work = fs::temp_directory_path() / ("fusionflow-sdk-" + std::to_string(::getpid()));
  fs::remove_all(work);
  const std::string prefix = (work / "prefix").string();
  const std::string plugin_build = (work / "plugin-build").string();
  const std::string source = FUSIONFLOW_SOURCE_DIR;

  Output install = shell("cmake --install " + std::string(FUSIONFLOW_BINARY_DIR) + " --prefix " + prefix);
  ASSERT_EQ(install.exit_code, 0) << install.text;
  EXPECT_TRUE(fs::exists(work / "prefix/include/fusionflow/sdk.hpp"));
  EXPECT_TRUE(fs::exists(work / "prefix/lib/cmake/fusionflow/fusionflowConfig.cmake"));
  EXPECT_TRUE(fs::exists(work / "prefix/lib/fusionflow/plugins/libfusionflow-core.so"));

  Output configure = shell("cmake -S " + source + "/examples/custom-plugin -B " + plugin_build +
                           " -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_PREFIX_PATH=" + prefix);
  ASSERT_EQ(configure.exit_code, 0) << configure.text;
  Output build = shell("cmake --build " + plugin_build);
  ASSERT_EQ(build.exit_code, 0) << build.text;
  const fs::path library = fs::path(plugin_build) / "libfusionflow-smoothing.so";
  ASSERT_TRUE(fs::exists(library));

  // Hidden visibility: the entry point is the only exported function.
  Output symbols = shell("nm -D --defined-only " + library.string() + " | awk '$2 == \"T\" {print $3}'");
  EXPECT_EQ(symbols.text, "fusionflow_plugin_descriptor\n");

  const std::string fusionflow = prefix + "/bin/fusionflow";
  Output listing = shell(fusionflow + " plugins --plugin-dir " + plugin_build);
  ASSERT_EQ(listing.exit_code, 0) << listing.text;
  EXPECT_NE(listing.text.find("smoothing.gaussian 1.0.0  [smoothing 1.1.0: " + library.string() + "]"),
            std::string::npos)
      << listing.text;
  EXPECT_NE(listing.text.find("core.volume_stats 1.0.0  [core 1.0.0: " + prefix +
                              "/lib/fusionflow/plugins/libfusionflow-core.so]"),
            std::string::npos)
      << listing.text;

  const std::string out = (work / "out").string();
  Output run = shell(fusionflow + " run " + source + "/examples/custom-plugin/pipeline.json --plugin-dir " +
                     plugin_build + " --set out=" + out);
  ASSERT_EQ(run.exit_code, 0) << run.text;
  EXPECT_NE(run.text.find("[smooth] smoothed with sigma 4"), std::string::npos) << run.text;

  // The smoothed sphere keeps its mean (mass is conserved away from the
  // borders), stays within [0, 1], and its edges soften: lower spread.
  std::ifstream csv(out + "/smoothing.csv");
  std::string header, before_line, after_line;
  std::getline(csv, header);
  std::getline(csv, before_line);
  std::getline(csv, after_line);
  const auto columns = split_csv_line(header);
  const auto before = split_csv_line(before_line), after = split_csv_line(after_line);
  auto value = [&](const std::vector<std::string>& row, const std::string& column) {
    for (std::size_t i = 0; i < columns.size(); ++i)
      if (columns[i] == column) return std::stod(row.at(i));
    throw std::runtime_error("no column " + column);
  };
  EXPECT_EQ(value(before, "max"), 1.0);
  EXPECT_LE(value(after, "max"), 1.0 + 1e-6);
  EXPECT_GE(value(after, "min"), -1e-6);
  EXPECT_NEAR(value(after, "mean"), value(before, "mean"), 0.01 * value(before, "mean"));
  EXPECT_LT(value(after, "std"), 0.97 * value(before, "std"));

  // The plugin's encoder with the stock fuse.latent and decode.latent: its
  // decoder, registered for its latent kind, is listed and used.
  EXPECT_NE(listing.text.find("two_scale [smoothing]: base + detail"), std::string::npos) << listing.text;
  Output latent_run =
      shell(fusionflow + " run " + source + "/examples/custom-plugin/latent_pipeline.json --plugin-dir " +
            plugin_build + " --set out=" + out);
  ASSERT_EQ(latent_run.exit_code, 0) << latent_run.text;
  EXPECT_NE(latent_run.text.find("[fused_volume] decoded two_scale (2 levels) to 32x32x32"), std::string::npos)
      << latent_run.text;
  std::ifstream table(out + "/two_scale.csv");
  std::string columns_line, sphere_line, decoded_line, fused_line;
  std::getline(table, columns_line);
  std::getline(table, sphere_line);
  std::getline(table, decoded_line);
  std::getline(table, fused_line);
  const auto table_columns = split_csv_line(columns_line);
  auto cell = [&](const std::string& line, const std::string& column) {
    const auto row = split_csv_line(line);
    for (std::size_t i = 0; i < table_columns.size(); ++i) {
      if (table_columns[i] == column) return std::stod(row.at(i));
    }
    throw std::runtime_error("no column " + column);
  };
  // Decoding the sphere's own latent gives the sphere back (base + detail).
  EXPECT_NEAR(cell(decoded_line, "mean"), cell(sphere_line, "mean"), 1e-5);
  EXPECT_NEAR(cell(decoded_line, "max"), cell(sphere_line, "max"), 1e-5);
  EXPECT_NEAR(cell(decoded_line, "min"), cell(sphere_line, "min"), 1e-5);
  // The fusion of the sphere and the ramp is neither.
  EXPECT_GT(std::abs(cell(fused_line, "mean") - cell(sphere_line, "mean")), 1e-3);

  // A latent kind nobody registered is refused naming the decoders there are.
  Output unknown = shell(fusionflow + " plugins");
  EXPECT_EQ(unknown.text.find("two_scale"), std::string::npos) << "without --plugin-dir the kind is unknown";
  fs::remove_all(work);
}

}  // namespace
