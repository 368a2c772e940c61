// The node cache (fusionflow/node_cache.hpp) and the payload codecs behind
// it: what hits, what misses, and that a damaged entry is never used.
#include <fusionflow/node_cache.hpp>

#include <gtest/gtest.h>

#include <chrono>
#include <cmath>
#include <cstring>
#include <fstream>
#include <limits>
#include <map>
#include <mutex>
#include <sstream>

#include <fusionflow/atomic_file.hpp>
#include <fusionflow/executor.hpp>
#include <fusionflow/file_activity.hpp>
#include <fusionflow/latent.hpp>
#include <fusionflow/payload_types.hpp>
#include <fusionflow/transform.hpp>

#include "test_support.hpp"

namespace fusionflow {
namespace {
namespace fs = std::filesystem;

using testing::write_file;

// How often each node id ran.
struct Runs {
  std::mutex mutex;
  std::map<std::string, int> count;
  void record(const std::string& id) {
    std::lock_guard<std::mutex> lock(mutex);
    ++count[id];
  }
};
Runs& runs() {
  static Runs instance;
  return instance;
}

Volume one_voxel(double value, const std::string& source) {
  Volume volume;
  volume.geometry.size = {1, 1, 1};
  volume.voxels = {static_cast<float>(value)};
  volume.metadata.source = source;
  volume.metadata.modality = "CT";
  return volume;
}

// t.read reads "VALUE [COMPANION|untracked]": COMPANION is a file beside it
// whose number is added (reported with note_file_read, like an .mhd's data
// file); "untracked" reports an input the cache cannot follow.
// t.scale multiplies; t.write writes the value to `path` and a second file
// beside it (like the overlay's planes); t.stats makes a table.
NodeRegistry make_registry(const std::string& scale_plugin_version = "1.0.0") {
  NodeRegistry registry;
  NodeSpec read("t.read", "1.0.0", "reads a number");
  read.output<Volume>("volume", "it").param("path", Param::InputPath(), "file");
  registry.add_node({read,
                     [](NodeContext& ctx) {
                       runs().record(ctx.node_id());
                       const fs::path path = ctx.param<std::filesystem::path>("path");
                       std::istringstream words(testing::read_file(path));
                       double value = 0;
                       std::string extra;
                       words >> value >> extra;
                       if (extra == "untracked") {
                         note_untracked_input("reads what it cannot name");
                       } else if (!extra.empty()) {
                         const fs::path companion = path.parent_path() / extra;
                         note_file_read(companion);
                         value += std::stod(testing::read_file(companion));
                       }
                       ctx.output("volume", one_voxel(value, path.string()));
                     }},
                    {"test", "1.0.0", ""});
  NodeSpec scale("t.scale", "1.0.0", "multiplies");
  scale.input<Volume>("volume", "in").output<Volume>("volume", "out").param("factor", Param::Float(2.0), "factor");
  registry.add_node({scale,
                     [](NodeContext& ctx) {
                       runs().record(ctx.node_id());
                       Volume volume = ctx.input<Volume>("volume");
                       volume.voxels[0] *= static_cast<float>(ctx.param<double>("factor"));
                       ctx.output("volume", std::move(volume));
                     }},
                    {"scale-plugin", scale_plugin_version, ""});
  NodeSpec writer("t.write", "1.0.0", "writes the value and a note beside it");
  writer.input<Volume>("volume", "in").param("path", Param::OutputPath(), "file");
  registry.add_node({writer,
                     [](NodeContext& ctx) {
                       runs().record(ctx.node_id());
                       const fs::path path = ctx.param<std::filesystem::path>("path");
                       std::ostringstream text;
                       text << ctx.input<Volume>("volume").voxels[0] << "\n";
                       write_file_atomically(path, text.str());
                       write_file_atomically(path.parent_path() / (path.stem().string() + ".note"), "note\n");
                     }},
                    {"test", "1.0.0", ""});
  NodeSpec stats("t.stats", "1.0.0", "a table");
  stats.input<Volume>("volume", "in").output<Table>("table", "out");
  registry.add_node({stats,
                     [](NodeContext& ctx) {
                       runs().record(ctx.node_id());
                       Table table;
                       table.add_row({{"value", double(ctx.input<Volume>("volume").voxels[0])}, {"label", "x"}});
                       ctx.output("table", std::move(table));
                     }},
                    {"test", "1.0.0", ""});
  return registry;
}

const char* kPipeline = R"({
  "format_version": 1,
  "variables": {"input": {"default": "in.txt", "description": "input"},
                "out": {"default": "out", "description": "output folder"},
                "factor": {"default": 2, "description": "scale factor"}},
  "nodes": [
    {"id": "read", "type": "t.read", "params": {"path": "${input}"}},
    {"id": "scale", "type": "t.scale", "params": {"factor": "${factor}"}, "inputs": {"volume": "read.volume"}},
    {"id": "write_read", "type": "t.write", "params": {"path": "${out}/read.txt"}, "inputs": {"volume": "read.volume"}},
    {"id": "write_scaled", "type": "t.write", "params": {"path": "${out}/scaled.txt"}, "inputs": {"volume": "scale.volume"}},
    {"id": "stats", "type": "t.stats", "inputs": {"volume": "scale.volume"}}
  ]
})";

class NodeCacheTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = testing::fresh_temp_directory("node-cache");
    write_file(dir_ / "in.txt", "3");
    runs().count.clear();
  }
  void TearDown() override { fs::remove_all(dir_); }

  struct Outcome {
    RunResult result;
    std::map<std::string, std::string> cache;  // node id -> cache outcome
    std::vector<std::string> warnings;
  };

  Outcome run(const std::map<std::string, std::string>& variables, const NodeRegistry& registry,
              const fs::path& cache_dir, int threads = 2) {
    LoadOptions load;
    load.variable_overrides = variables;
    for (auto& [name, value] : load.variable_overrides) {
      if (name != "factor") value = (dir_ / value).string();
    }
    LoadResult loaded = load_pipeline_text(kPipeline, "cache-test", dir_, registry, load);
    EXPECT_TRUE(loaded.ok()) << (loaded.diagnostics.empty() ? "" : loaded.diagnostics[0].message);
    Outcome outcome;
    NodeCache cache(cache_dir);
    RunOptions options;
    options.threads = threads;
    options.cache = &cache;
    std::mutex mutex;
    options.on_log = [&](std::size_t, LogLevel level, const std::string& message) {
      std::lock_guard<std::mutex> lock(mutex);
      if (level == LogLevel::Warn) outcome.warnings.push_back(message);
    };
    outcome.result = run_pipeline(*loaded.pipeline, registry, options);
    EXPECT_TRUE(outcome.result.succeeded) << outcome.result.error;
    for (std::size_t i = 0; i < loaded.pipeline->nodes.size(); ++i) {
      outcome.cache[loaded.pipeline->nodes[i].id] = outcome.result.nodes[i].cache;
    }
    return outcome;
  }

  fs::path entry_of(const Outcome& outcome, std::size_t node) const {
    const std::string& key = outcome.result.nodes.at(node).cache_key;
    return dir_ / "cache" / "entries" / key.substr(0, 2) / key;
  }

  fs::path dir_;
};

TEST_F(NodeCacheTest, ASecondRunTakesEveryResultFromTheCacheAndRestoresTheFilesWritten) {
  const NodeRegistry registry = make_registry();
  Outcome cold = run({{"input", "in.txt"}, {"out", "out1"}}, registry, dir_ / "cache");
  for (const auto& [id, outcome] : cold.cache) EXPECT_EQ(outcome, "miss") << id;
  EXPECT_EQ(runs().count.size(), 5u);
  EXPECT_EQ(testing::read_file(dir_ / "out1/scaled.txt"), "6\n");

  runs().count.clear();
  Outcome warm = run({{"input", "in.txt"}, {"out", "out2"}}, registry, dir_ / "cache");
  for (const auto& [id, outcome] : warm.cache) EXPECT_EQ(outcome, "hit") << id;
  EXPECT_TRUE(runs().count.empty()) << "a node ran although its result was cached";
  // The writers' files, the one at their path and the one beside it, appear in the new folder.
  for (const char* file : {"read.txt", "scaled.txt", "read.note", "scaled.note"}) {
    EXPECT_EQ(testing::read_file(dir_ / "out2" / file), testing::read_file(dir_ / "out1" / file)) << file;
  }
  EXPECT_EQ(warm.result.nodes[0].cache_key, cold.result.nodes[0].cache_key);
}

TEST_F(NodeCacheTest, AChangedParameterRecomputesOnlyItsNodeAndWhatDependsOnIt) {
  const NodeRegistry registry = make_registry();
  run({{"input", "in.txt"}, {"out", "out"}}, registry, dir_ / "cache");
  runs().count.clear();
  Outcome changed = run({{"input", "in.txt"}, {"out", "out"}, {"factor", "5"}}, registry, dir_ / "cache");
  EXPECT_EQ(changed.cache["read"], "hit");
  EXPECT_EQ(changed.cache["write_read"], "hit");
  EXPECT_EQ(changed.cache["scale"], "miss");
  EXPECT_EQ(changed.cache["write_scaled"], "miss");
  EXPECT_EQ(changed.cache["stats"], "miss");
  EXPECT_EQ(runs().count, (std::map<std::string, int>{{"scale", 1}, {"stats", 1}, {"write_scaled", 1}}));
  EXPECT_EQ(testing::read_file(dir_ / "out/scaled.txt"), "15\n");
}

TEST_F(NodeCacheTest, AMovedOrRenamedInputFileWithTheSameContentStillHitsItsLoader) {
  const NodeRegistry registry = make_registry();
  run({{"input", "in.txt"}, {"out", "out"}}, registry, dir_ / "cache");
  fs::create_directories(dir_ / "elsewhere");
  fs::rename(dir_ / "in.txt", dir_ / "elsewhere/renamed.txt");
  runs().count.clear();
  Outcome moved = run({{"input", "elsewhere/renamed.txt"}, {"out", "out"}}, registry, dir_ / "cache");
  EXPECT_EQ(moved.cache["read"], "hit");
  EXPECT_EQ(runs().count.count("read"), 0u);
  // The value records where it was read from now, as a fresh read would; the
  // nodes after it see a value that differs in that path, so they run.
  EXPECT_EQ(moved.cache["scale"], "miss");
}

TEST_F(NodeCacheTest, ChangedInputContentOrAPluginVersionChangeMisses) {
  run({{"input", "in.txt"}, {"out", "out"}}, make_registry(), dir_ / "cache");
  write_file(dir_ / "in.txt", "4");
  Outcome changed = run({{"input", "in.txt"}, {"out", "out"}}, make_registry(), dir_ / "cache");
  EXPECT_EQ(changed.cache["read"], "miss");
  EXPECT_EQ(testing::read_file(dir_ / "out/scaled.txt"), "8\n");

  Outcome upgraded = run({{"input", "in.txt"}, {"out", "out"}}, make_registry("1.1.0"), dir_ / "cache");
  EXPECT_EQ(upgraded.cache["read"], "hit");
  EXPECT_EQ(upgraded.cache["scale"], "miss") << "the scale node's plugin changed version";
}

TEST_F(NodeCacheTest, AChangedCompanionFileMissesAndAnUntrackedInputIsNotStored) {
  write_file(dir_ / "in.txt", "3 data.raw");
  write_file(dir_ / "data.raw", "10");
  const NodeRegistry registry = make_registry();
  run({{"input", "in.txt"}, {"out", "out"}}, registry, dir_ / "cache");
  EXPECT_EQ(run({{"input", "in.txt"}, {"out", "out"}}, registry, dir_ / "cache").cache["read"], "hit");
  write_file(dir_ / "data.raw", "20");
  Outcome changed = run({{"input", "in.txt"}, {"out", "out"}}, registry, dir_ / "cache");
  EXPECT_EQ(changed.cache["read"].rfind("miss: ", 0), 0u) << changed.cache["read"];
  EXPECT_NE(changed.cache["read"].find("data.raw"), std::string::npos) << changed.cache["read"];
  EXPECT_EQ(testing::read_file(dir_ / "out/scaled.txt"), "46\n");

  write_file(dir_ / "in.txt", "3 untracked");
  Outcome untracked = run({{"input", "in.txt"}, {"out", "out"}}, registry, dir_ / "cache");
  EXPECT_EQ(untracked.cache["read"], "not stored: reads what it cannot name");
  EXPECT_EQ(run({{"input", "in.txt"}, {"out", "out"}}, registry, dir_ / "cache").cache["read"],
            "not stored: reads what it cannot name");
}

TEST_F(NodeCacheTest, ADamagedEntryIsDetectedRemovedAndRecomputedWithAWarning) {
  const NodeRegistry registry = make_registry();
  Outcome cold = run({{"input", "in.txt"}, {"out", "out"}}, registry, dir_ / "cache");
  const fs::path scale_entry = entry_of(cold, 1);
  {
    // One flipped byte, the size unchanged: only the hash can tell.
    std::fstream file(scale_entry / "out-0.bin", std::ios::in | std::ios::out | std::ios::binary);
    file.seekp(-1, std::ios::end);
    file.put('\x7f');
  }
  std::ofstream(entry_of(cold, 4) / "manifest.json", std::ios::trunc) << "{\"cache_format\": 1, \"ke";  // truncated
  runs().count.clear();
  Outcome damaged = run({{"input", "in.txt"}, {"out", "out"}}, registry, dir_ / "cache");
  EXPECT_EQ(damaged.cache["scale"].rfind("miss: entry ", 0), 0u) << damaged.cache["scale"];
  EXPECT_EQ(damaged.cache["stats"].rfind("miss: entry ", 0), 0u) << damaged.cache["stats"];
  EXPECT_EQ(runs().count["scale"], 1);
  EXPECT_EQ(runs().count["stats"], 1);
  ASSERT_EQ(damaged.warnings.size(), 2u);
  const std::string warnings = damaged.warnings[0] + "\n" + damaged.warnings[1];
  EXPECT_NE(warnings.find("out-0.bin does not match its SHA-256"), std::string::npos) << warnings;
  EXPECT_NE(warnings.find("recomputing"), std::string::npos) << warnings;
  EXPECT_EQ(testing::read_file(dir_ / "out/scaled.txt"), "6\n");
  // The recomputed results replaced the damaged entries.
  EXPECT_EQ(run({{"input", "in.txt"}, {"out", "out"}}, registry, dir_ / "cache").cache["scale"], "hit");
}

TEST_F(NodeCacheTest, ResultsAreTheSameForAnyThreadCountWithOrWithoutTheCache) {
  const NodeRegistry registry = make_registry();
  run({{"input", "in.txt"}, {"out", "one"}}, registry, dir_ / "cache-1", 1);
  Outcome warm = run({{"input", "in.txt"}, {"out", "two"}}, registry, dir_ / "cache-1", 4);
  EXPECT_EQ(warm.cache["stats"], "hit");
  EXPECT_EQ(testing::read_file(dir_ / "two/scaled.txt"), testing::read_file(dir_ / "one/scaled.txt"));
  Outcome other = run({{"input", "in.txt"}, {"out", "three"}}, registry, dir_ / "cache-4", 4);
  EXPECT_EQ(other.result.nodes[4].cache_key, warm.result.nodes[4].cache_key) << "keys do not depend on threads";
}

TEST_F(NodeCacheTest, PruneRemovesTheLeastRecentlyUsedEntriesFirst) {
  const NodeRegistry registry = make_registry();
  Outcome first = run({{"input", "in.txt"}, {"out", "out"}}, registry, dir_ / "cache");
  NodeCache cache(dir_ / "cache");
  const CacheUsage all = cache.usage();
  EXPECT_EQ(all.entries, 5u);
  // Make the reader's entry the oldest.
  const auto old = fs::file_time_type::clock::now() - std::chrono::hours(24);
  fs::last_write_time(entry_of(first, 0) / "manifest.json", old);
  const CachePruneResult pruned = cache.prune(all.bytes - 1);
  EXPECT_EQ(pruned.removed_entries, 1u);
  EXPECT_FALSE(fs::exists(entry_of(first, 0)));
  EXPECT_TRUE(fs::exists(entry_of(first, 1)));
  EXPECT_EQ(cache.prune(0).left.entries, 0u);
}

TEST(NodeCacheSizes, SizesAreReadWithBinaryUnitsAndNonsenseIsRefused) {
  EXPECT_EQ(parse_byte_size("4096"), 4096u);
  EXPECT_EQ(parse_byte_size("512M"), 512ull << 20);
  EXPECT_EQ(parse_byte_size("1.5G"), 3ull << 29);
  EXPECT_EQ(parse_byte_size("2TiB"), 2ull << 40);
  EXPECT_THROW(parse_byte_size("ten"), std::invalid_argument);
  EXPECT_THROW(parse_byte_size("-1G"), std::invalid_argument);
  EXPECT_THROW(parse_byte_size("99999999999T"), std::invalid_argument);
  EXPECT_EQ(format_byte_size(1536), "1.5 KiB");
}

// --- codecs ----------------------------------------------------------------------

std::string encode(const PayloadCodec& codec, const Payload& value) {
  std::string bytes;
  codec.encode(value, [&](const void* data, std::size_t size) { bytes.append(static_cast<const char*>(data), size); });
  return bytes;
}

Payload decode(const PayloadCodec& codec, const std::string& bytes) {
  std::istringstream in(bytes);
  ByteSource source(in, bytes.size());
  return codec.decode(source);
}

TEST(PayloadCodecs, EveryValueOfTheSdkTypesComesBackBitForBit) {
  Volume volume = one_voxel(0, "ct.nii.gz");
  volume.geometry = Geometry{{2, 1, 2}, {0.5, 1, 3}, {-1.25, 7, 1e-17}, {0, 1, 0, -1, 0, 0, 0, 0, 1}};
  volume.voxels = {1.5f, -0.0f, std::numeric_limits<float>::quiet_NaN(), std::numeric_limits<float>::denorm_min()};
  volume.metadata.extra = {{"pet.weight_kg", "71"}, {"io.format", "nifti"}};
  const PayloadCodec volumes = volume_codec();
  const std::string bytes = encode(volumes, Payload::of<Volume>(std::make_shared<const Volume>(volume)));
  const auto back = decode(volumes, bytes).get<Volume>();
  EXPECT_EQ(back->geometry.size, volume.geometry.size);
  EXPECT_EQ(back->geometry.origin, volume.geometry.origin);
  EXPECT_EQ(back->geometry.direction, volume.geometry.direction);
  EXPECT_EQ(std::memcmp(back->voxels.data(), volume.voxels.data(), 16), 0);
  EXPECT_EQ(back->metadata.extra, volume.metadata.extra);
  EXPECT_EQ(encode(volumes, Payload::of<Volume>(back)), bytes) << "the encoding is canonical";

  Table table;
  table.add_row({{"a", 1.0 / 3.0}, {"b", std::string("text")}});
  table.add_row({{"a", std::nan("")}, {"c", 1e308}});
  const PayloadCodec tables = table_codec();
  const auto table_back = decode(tables, encode(tables, Payload::of<Table>(std::make_shared<const Table>(table))));
  EXPECT_EQ(table_back.get<Table>()->to_csv(), table.to_csv());
  EXPECT_EQ(std::get<double>(table_back.get<Table>()->rows[0][0]), 1.0 / 3.0);

  Latent latent;
  latent.kind = "laplacian_pyramid";
  latent.encoder_params = {{"levels", "2"}};
  latent.source_geometry = volume.geometry;
  latent.levels.push_back({"detail_0", "detail", volume.geometry, 1, volume.voxels});
  latent.levels.push_back({"base", "base", Geometry{{1, 1, 1}}, 2, {4.f, 5.f}});
  const PayloadCodec latents = latent_codec();
  const std::string latent_bytes = encode(latents, Payload::of<Latent>(std::make_shared<const Latent>(latent)));
  const auto latent_back = decode(latents, latent_bytes).get<Latent>();
  ASSERT_EQ(latent_back->levels.size(), 2u);
  EXPECT_EQ(latent_back->levels[1].data, (std::vector<float>{4.f, 5.f}));
  EXPECT_EQ(latent_back->levels[1].channels, 2u);
  EXPECT_EQ(encode(latents, Payload::of<Latent>(latent_back)), latent_bytes);

  Transform transform;
  transform.kind = "rigid";
  transform.translation = {1.0 / 7.0, -2, 3};
  const PayloadCodec transforms = transform_codec();
  const auto transform_back =
      decode(transforms, encode(transforms, Payload::of<Transform>(std::make_shared<const Transform>(transform))));
  EXPECT_EQ(transform_back.get<Transform>()->translation, transform.translation);

  // A deformable transform keeps its lattice and every coefficient's bits.
  auto deformation = std::make_shared<BSplineDeformation>();
  deformation->lattice = Geometry{{4, 4, 5}, {16, 16, 12.5}, {-40, -41, 2e-17}, {0, 1, 0, -1, 0, 0, 0, 0, 1}};
  for (std::size_t n = 0; n < 3 * deformation->lattice.voxel_count(); ++n)
    deformation->coefficients.push_back(std::ldexp(double(n) / 7.0, -int(n % 5)));
  transform.kind = "bspline";
  transform.deformation = deformation;
  const std::string bspline_bytes =
      encode(transforms, Payload::of<Transform>(std::make_shared<const Transform>(transform)));
  const auto bspline_back = decode(transforms, bspline_bytes).get<Transform>();
  ASSERT_TRUE(bspline_back->deformation);
  EXPECT_EQ(bspline_back->deformation->coefficients, deformation->coefficients);
  EXPECT_TRUE(bspline_back->deformation->lattice.same_grid(deformation->lattice, 0.0));
  EXPECT_EQ(bspline_back->deformation->lattice.origin, deformation->lattice.origin);
  EXPECT_EQ(encode(transforms, Payload::of<Transform>(bspline_back)), bspline_bytes);
}

TEST(PayloadCodecs, BrokenBytesAreRefusedWithoutAllocatingWhatTheyAnnounce) {
  const PayloadCodec volumes = volume_codec();
  Volume volume = one_voxel(1, "x");
  const std::string bytes = encode(volumes, Payload::of<Volume>(std::make_shared<const Volume>(volume)));
  EXPECT_THROW(decode(volumes, bytes.substr(0, bytes.size() - 1)), std::runtime_error);
  EXPECT_THROW(decode(volumes, bytes + "x"), std::runtime_error);
  EXPECT_THROW(decode(volumes, std::string(8, '\xff')), std::runtime_error);
  EXPECT_THROW(decode(volumes, std::string("\x03\0\0\0\0\0\0\0abc", 11)), std::runtime_error);
  // A header that announces 2^40 voxels of a 1-voxel encoding.
  volume.geometry.size = {1u << 20, 1u << 20, 1};
  volume.voxels = {};
  const std::string huge = encode(volumes, Payload::of<Volume>(std::make_shared<const Volume>(volume)));
  EXPECT_THROW(decode(volumes, huge), std::runtime_error);
  EXPECT_THROW(decode(table_codec(), bytes), std::runtime_error) << "a volume is not a table";
}

}  // namespace
}  // namespace fusionflow
