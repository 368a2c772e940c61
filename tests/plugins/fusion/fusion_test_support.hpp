// Helpers shared by the shared-latent fusion tests: the five plugins loaded
// from the build tree, test volumes, and small NodeHarness wrappers.
#pragma once

#include <gtest/gtest.h>

#include <fusionflow/latent.hpp>
#include <fusionflow/payload_types.hpp>
#include <fusionflow/plugin_loader.hpp>
#include <fusionflow/testing.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <random>
#include <string>
#include <vector>

namespace fusionflow::fusion_test {

using fusionflow::testing::NodeHarness;

// Only the plugins under test, so that a broken plugin elsewhere in the build
// cannot make these tests fail.
inline const NodeRegistry& registry() {
  static NodeRegistry instance = [] {
    NodeRegistry r;
    for (const char* name : {"normalize", "encode", "decode", "fuse", "metrics"}) {
      const auto file = default_plugin_dir() / (std::string("libfusionflow-") + name + ".so");
      const PluginLoadReport report = load_plugin_file(file, r);
      if (!report.loaded) ADD_FAILURE() << "cannot load " << file << ": " << report.error;
    }
    return r;
  }();
  return instance;
}

// A volume with a non-trivial grid: anisotropic spacing, shifted origin and a
// rotated direction, filled by `value(i, j, k)`.
template <class F>
Volume make_volume(std::array<std::size_t, 3> size, F value, const std::string& modality = "CT") {
  Volume volume;
  volume.geometry.size = size;
  volume.geometry.spacing = {0.8, 1.1, 2.5};
  volume.geometry.origin = {-10.0, 5.5, 3.0};
  const double c = std::cos(0.3), s = std::sin(0.3);
  volume.geometry.direction = {c, -s, 0, s, c, 0, 0, 0, 1};
  volume.voxels.resize(volume.geometry.voxel_count());
  for (std::size_t k = 0; k < size[2]; ++k)
    for (std::size_t j = 0; j < size[1]; ++j)
      for (std::size_t i = 0; i < size[0]; ++i) volume.voxels[volume.geometry.linear_index(i, j, k)] = value(i, j, k);
  volume.metadata.modality = modality;
  volume.metadata.units = "normalized";
  volume.metadata.source = "test " + modality;
  volume.metadata.extra["note"] = "kept";
  return volume;
}

// Smooth structure plus uniform noise in [0, 1].
inline Volume textured_volume(std::array<std::size_t, 3> size, unsigned seed, const std::string& modality = "CT") {
  std::mt19937 random(seed);
  std::uniform_real_distribution<float> noise(0.0f, 1.0f);
  return make_volume(
      size,
      [&](std::size_t i, std::size_t j, std::size_t k) {
        const double smooth = 0.5 + 0.25 * std::sin(0.4 * double(i) + 0.1 * double(seed)) * std::cos(0.3 * double(j)) +
                              0.1 * std::sin(0.5 * double(k));
        return static_cast<float>(0.7 * smooth + 0.3 * noise(random));
      },
      modality);
}

inline Latent encode(const std::string& type, const Volume& volume, int threads = 1, const std::string& param = "",
                     std::int64_t value = 0) {
  NodeHarness node(registry(), type);
  node.set_input("volume", volume).set_threads(threads);
  if (!param.empty()) node.set_param(param, ParamValue(value));
  node.run();
  return node.output<Latent>("latent");
}

inline Volume decode(const Latent& latent, int threads = 1) {
  NodeHarness node(registry(), "decode.latent");
  node.set_input("latent", latent).set_threads(threads);
  node.run();
  return node.output<Volume>("volume");
}

inline double max_abs_difference(const std::vector<float>& a, const std::vector<float>& b) {
  EXPECT_EQ(a.size(), b.size());
  double worst = 0.0;
  for (std::size_t i = 0; i < std::min(a.size(), b.size()); ++i) {
    worst = std::max(worst, std::fabs(static_cast<double>(a[i]) - static_cast<double>(b[i])));
  }
  return worst;
}

inline double cell(const Table& table, const std::string& column, std::size_t row) {
  const std::size_t index = table.column_index(column);
  EXPECT_LT(index, table.columns.size()) << "no column " << column;
  if (index >= table.columns.size()) return std::nan("");
  const Table::Cell& value = table.rows.at(row).at(index);
  if (!std::holds_alternative<double>(value)) return std::nan("");
  return std::get<double>(value);
}

inline std::size_t row_with_scope(const Table& table, const std::string& scope) {
  const std::size_t column = table.column_index("scope");
  for (std::size_t r = 0; r < table.rows.size(); ++r) {
    const auto* text = std::get_if<std::string>(&table.rows[r][column]);
    if (text != nullptr && *text == scope) return r;
  }
  ADD_FAILURE() << "no row with scope " << scope;
  return 0;
}

}  // namespace fusionflow::fusion_test
