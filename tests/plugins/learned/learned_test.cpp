// learned.* nodes and `fusionflow train`: tiny training runs (loss goes down,
// checkpoint + resume equals an uninterrupted run, same seed gives the same
// file), the model file (round trip, truncated and mismatched models refused
// with clear messages), geometry of encode/decode (odd sizes, oblique
// direction), thread-count independence, fuse.latent on learned latents, and
// the three example pipelines on a small phantom with the committed model.
#include <gtest/gtest.h>

#include <algorithm>
#include <fstream>
#include <set>
#include <sstream>

#include <fusionflow/payload_types.hpp>
#include <fusionflow/sdk.hpp>
#include <fusionflow/testing.hpp>
#include <nlohmann/json.hpp>

#include "phantom.hpp"
#include "test_support.hpp"

namespace {
namespace fs = std::filesystem;
using fusionflow::Latent;
using fusionflow::Volume;
using fusionflow::testing::NodeHarness;
using nlohmann::json;

fusionflow::testing::CommandOutput fusionflow_cli(const std::string& arguments) {
  return fusionflow::testing::run_command(std::string(FUSIONFLOW_EXE) + " " + arguments);
}

std::string read_bytes(const fs::path& file) {
  std::ifstream in(file, std::ios::binary);
  std::ostringstream bytes;
  bytes << in.rdbuf();
  return bytes.str();
}

json tiny_config(int iterations) {
  json config = json::parse(R"({
    "format_version": 1, "output": "tiny.ffmodel", "seed": 5, "threads": 1,
    "modalities": {
      "CT": {"units": "HU", "normalization": {"kind": "window", "low": -1000, "high": 2000}},
      "MR": {"units": "a.u.", "normalization": {"kind": "percentile", "low": 1, "high": 99}}},
    "data": {"phantom": {"seeds": [1, 2], "size": [48, 48, 12], "sources": {"CT": "ct", "MR": "t1"}}},
    "model": {"width": 8, "latent_channels": 4, "downsampling": 1, "context_slices": 1, "residual_blocks": 1},
    "training": {"batch_size": 4, "patch_size": 32, "learning_rate": 0.003, "log_every": 5, "checkpoint_every": 10},
    "losses": {"reconstruction": {"weight": 1}, "translation": {"weight": 1}, "cycle": {"weight": 0.2},
               "latent_norm": {"weight": 0.001}, "alignment_l1": {"weight": 0.05},
               "alignment_infonce": {"weight": 0.02, "samples": 32}, "adversarial": {"weight": 0.01}}})");
  config["training"]["iterations"] = iterations;
  return config;
}

fs::path write_config(const fs::path& dir, const json& config) {
  const fs::path file = dir / "train.json";
  std::ofstream(file) << config.dump(2);
  return file;
}

// One tiny model shared by the tests of a process (each ctest test is its
// own process: a few seconds each).
const fs::path& tiny_model() {
  static const fs::path model = [] {
    const fs::path dir = fusionflow::testing::fresh_temp_directory("learned-model");
    const auto result = fusionflow_cli("train --quiet " + write_config(dir, tiny_config(30)).string());
    EXPECT_EQ(result.exit_code, 0) << result.text;
    return dir / "tiny.ffmodel";
  }();
  return model;
}

const fusionflow::testdata::Phantom& phantom() {
  static const fusionflow::testdata::Phantom p = [] {
    fusionflow::testdata::PhantomOptions options;
    options.size = {37, 29, 9};  // odd sizes
    options.seed = 9;
    options.anatomy_seed = 9;
    options.mri_displacement = {};
    options.direction = std::array<double, 9>{0.8, -0.6, 0, 0.6, 0.8, 0, 0, 0, 1};  // oblique
    return fusionflow::testdata::generate_phantom(options);
  }();
  return p;
}

Latent encode(const Volume& volume, const std::string& modality, int threads = 1,
              const fs::path& model = tiny_model()) {
  NodeHarness node(fusionflow::testing::bundled_plugins(), "learned.encode");
  node.set_param("model", fusionflow::ParamValue(model.string())).set_param("modality", modality.c_str());
  node.set_input("volume", volume).set_threads(threads).run();
  return node.output<Latent>("latent");
}

Volume decode(const Latent& latent, const std::string& modality, int threads = 1, const fs::path& model = tiny_model(),
              const char* units = "modality") {
  NodeHarness node(fusionflow::testing::bundled_plugins(), "learned.decode");
  node.set_param("model", fusionflow::ParamValue(model.string())).set_param("modality", modality.c_str());
  node.set_param("units", units).set_input("latent", latent).set_threads(threads).run();
  return node.output<Volume>("volume");
}

std::vector<json> read_log(const fs::path& file) {
  std::vector<json> lines;
  std::ifstream in(file);
  for (std::string line; std::getline(in, line);) lines.push_back(json::parse(line));
  return lines;
}

TEST(LearnedTraining, TinyRunLossDecreasesAndWritesModelCheckpointAndLog) {
  const fs::path dir = fusionflow::testing::fresh_temp_directory("learned-train");
  const auto result = fusionflow_cli("train " + write_config(dir, tiny_config(60)).string());
  ASSERT_EQ(result.exit_code, 0) << result.text;
  EXPECT_NE(result.text.find("iteration 60/60"), std::string::npos) << result.text;
  EXPECT_TRUE(fs::exists(dir / "tiny.ffmodel"));
  EXPECT_TRUE(fs::exists(dir / "tiny.ffmodel.ckpt"));
  const auto log = read_log(dir / "tiny.ffmodel.log.jsonl");
  ASSERT_EQ(log.size(), 12u);
  for (const char* term : {"total", "reconstruction", "translation", "cycle", "latent_norm", "alignment_l1",
                           "alignment_infonce", "adversarial", "discriminator"}) {
    EXPECT_TRUE(log.front().contains(term)) << term;
  }
  auto mean = [&](std::size_t from, std::size_t to, const char* term) {
    double sum = 0;
    for (std::size_t i = from; i < to; ++i) sum += log[i][term].get<double>();
    return sum / double(to - from);
  };
  EXPECT_LT(mean(9, 12, "reconstruction"), 0.8 * mean(0, 3, "reconstruction"));
  EXPECT_LT(mean(9, 12, "translation"), mean(0, 3, "translation"));
}

TEST(LearnedTraining, ResumeEqualsUninterruptedAndRetrainingIsReproducible) {
  const fs::path dir = fusionflow::testing::fresh_temp_directory("learned-resume");
  const fs::path config = write_config(dir, tiny_config(20));
  ASSERT_EQ(
      fusionflow_cli("train --quiet " + config.string() + " --output " + (dir / "full.ffmodel").string()).exit_code, 0);
  ASSERT_EQ(
      fusionflow_cli("train --quiet " + config.string() + " --output " + (dir / "again.ffmodel").string()).exit_code,
      0);
  ASSERT_EQ(fusionflow_cli("train --quiet " + config.string() + " --iterations 10 --output " +
                           (dir / "part.ffmodel").string())
                .exit_code,
            0);
  const auto resumed =
      fusionflow_cli("train " + config.string() + " --resume --output " + (dir / "part.ffmodel").string());
  ASSERT_EQ(resumed.exit_code, 0) << resumed.text;
  EXPECT_NE(resumed.text.find("resuming from"), std::string::npos) << resumed.text;
  EXPECT_EQ(read_bytes(dir / "full.ffmodel"), read_bytes(dir / "again.ffmodel"));
  EXPECT_EQ(read_bytes(dir / "full.ffmodel"), read_bytes(dir / "part.ffmodel"));
}

TEST(LearnedTraining, ConfigErrorsNameTheJsonLocation) {
  const fs::path dir = fusionflow::testing::fresh_temp_directory("learned-config");
  json bad = tiny_config(5);
  bad["losses"]["perceptual"] = {{"weight", 1}};
  auto result = fusionflow_cli("train " + write_config(dir, bad).string());
  EXPECT_EQ(result.exit_code, 2);
  EXPECT_NE(result.text.find("/losses/perceptual: unknown key"), std::string::npos) << result.text;
  bad = tiny_config(5);
  bad["modalities"]["CT"]["normalization"]["kind"] = "zscore";
  result = fusionflow_cli("train " + write_config(dir, bad).string());
  EXPECT_EQ(result.exit_code, 2);
  EXPECT_NE(result.text.find("/modalities/CT/normalization/kind"), std::string::npos) << result.text;
  bad = tiny_config(5);
  bad["training"]["patch_size"] = 33;
  result = fusionflow_cli("train " + write_config(dir, bad).string());
  EXPECT_EQ(result.exit_code, 2);
  EXPECT_NE(result.text.find("/training/patch_size"), std::string::npos) << result.text;
}

TEST(LearnedTraining, VectorQuantisedLatentUsesTheCodebookAndRecordsUsage) {
  const fs::path dir = fusionflow::testing::fresh_temp_directory("learned-vq");
  json config = tiny_config(20);
  config["model"]["codebook_size"] = 16;
  config["losses"]["vector_quantization"] = {{"weight", 1.0}, {"commitment", 0.25}};
  const auto result = fusionflow_cli("train --quiet " + write_config(dir, config).string());
  ASSERT_EQ(result.exit_code, 0) << result.text;
  const auto log = read_log(dir / "tiny.ffmodel.log.jsonl");
  ASSERT_FALSE(log.empty());
  EXPECT_TRUE(log.back().contains("vector_quantization"));
  EXPECT_GE(log.back()["codebook_used"].get<int>(), 1);
  EXPECT_GE(log.back()["codebook_perplexity"].get<double>(), 1.0);
  // Every latent position holds one of the 16 codebook entries.
  const Latent latent = encode(phantom().ct, "CT", 1, dir / "tiny.ffmodel");
  const auto& level = latent.levels[0];
  std::set<std::vector<float>> entries;
  for (std::size_t v = 0; v < level.voxel_count(); ++v) {
    std::vector<float> code;
    for (std::size_t ch = 0; ch < level.channels; ++ch) code.push_back(level.at(ch, v));
    entries.insert(code);
  }
  EXPECT_LE(entries.size(), 16u);
  EXPECT_EQ(latent.encoder_params.at("codebook_size"), "16");
  // And it is still refused without its loss.
  config["losses"].erase("vector_quantization");
  const auto invalid = fusionflow_cli("train " + write_config(dir, config).string());
  EXPECT_EQ(invalid.exit_code, 2);
  EXPECT_NE(invalid.text.find("/losses/vector_quantization: required"), std::string::npos) << invalid.text;
}

TEST(LearnedTraining, ContentStyleSplitCarriesStylesAndTakesAStyleReference) {
  const fs::path dir = fusionflow::testing::fresh_temp_directory("learned-style");
  json config = tiny_config(20);
  config["model"]["style_dim"] = 4;
  const auto result = fusionflow_cli("train --quiet " + write_config(dir, config).string());
  ASSERT_EQ(result.exit_code, 0) << result.text;
  const fs::path model = dir / "tiny.ffmodel";
  // The latent carries one style per slice, for decoding with its own modality.
  const Latent ct = encode(phantom().ct, "CT", 1, model);
  EXPECT_EQ(ct.source_metadata.extra.at("learned_style_modality"), "CT");
  EXPECT_EQ(std::count(ct.source_metadata.extra.at("learned_style").begin(),
                       ct.source_metadata.extra.at("learned_style").end(), ',') +
                1,
            4 * 9);
  const Volume own = decode(ct, "CT", 1, model);
  EXPECT_EQ(own.voxels, decode(ct, "CT", 3, model).voxels);
  EXPECT_EQ(own.metadata.extra.count("learned_style"), 0u);
  // Synthesis: zero style, or the mean style of a reference CT.
  auto synthesize = [&](bool with_reference, int threads) {
    NodeHarness node(fusionflow::testing::bundled_plugins(), "learned.synthesize");
    node.set_param("model", fusionflow::ParamValue(model.string())).set_param("target_modality", "CT");
    node.set_input("volume", phantom().t1).set_threads(threads);
    if (with_reference) node.set_input("style_reference", phantom().ct);
    node.run();
    return node.output<Volume>("volume").voxels;
  };
  const auto plain = synthesize(false, 1), guided = synthesize(true, 1);
  EXPECT_NE(plain, guided);
  EXPECT_EQ(guided, synthesize(true, 4));
}

TEST(LearnedNodes, EncodeDecodeKeepGeometryForOddSizesAndObliqueDirection) {
  const Volume& ct = phantom().ct;
  const Latent latent = encode(ct, "CT");
  EXPECT_EQ(latent.kind, "learned");
  ASSERT_EQ(latent.levels.size(), 1u);
  const auto& level = latent.levels[0];
  EXPECT_EQ(level.role, "features");
  EXPECT_EQ(level.channels, 4u);
  EXPECT_EQ(level.geometry.size, (std::array<std::size_t, 3>{19, 15, 9}));
  EXPECT_EQ(level.geometry.spacing[0], 2 * ct.geometry.spacing[0]);
  EXPECT_EQ(level.geometry.spacing[2], ct.geometry.spacing[2]);
  EXPECT_EQ(level.geometry.origin, ct.geometry.origin);
  EXPECT_EQ(level.geometry.direction, ct.geometry.direction);
  EXPECT_EQ(level.data.size(), 4u * 19 * 15 * 9);
  const Volume back = decode(latent, "CT");
  EXPECT_EQ(back.geometry.size, ct.geometry.size);
  EXPECT_EQ(back.geometry.spacing, ct.geometry.spacing);
  EXPECT_EQ(back.geometry.origin, ct.geometry.origin);
  EXPECT_EQ(back.geometry.direction, ct.geometry.direction);
  EXPECT_EQ(back.metadata.modality, "CT");
  EXPECT_EQ(back.metadata.units, "HU");
  EXPECT_EQ(back.voxels.size(), ct.voxels.size());
  // MR decoded from its own latent goes back to its (percentile) scale.
  const Volume mr = decode(encode(phantom().t1, "MR"), "MR");
  EXPECT_EQ(mr.metadata.units, "a.u.");
  EXPECT_EQ(mr.geometry.direction, ct.geometry.direction);
}

TEST(LearnedNodes, InferenceIsTheSameBytesForOneTwoAndFourThreads) {
  const Latent one = encode(phantom().t1, "MR", 1);
  for (int threads : {2, 4}) {
    const Latent other = encode(phantom().t1, "MR", threads);
    EXPECT_EQ(one.levels[0].data, other.levels[0].data) << threads << " threads";
    EXPECT_EQ(decode(one, "CT", 1).voxels, decode(one, "CT", threads).voxels) << threads << " threads";
  }
}

TEST(LearnedModelFile, SaveLoadRoundTripGivesIdenticalOutputs) {
  const fs::path dir = fusionflow::testing::fresh_temp_directory("learned-roundtrip");
  const fs::path copy = dir / "copy.ffmodel";
  fs::copy_file(tiny_model(), copy);
  const Latent a = encode(phantom().ct, "CT", 2);
  const Latent b = encode(phantom().ct, "CT", 2, copy);
  EXPECT_EQ(a.levels[0].data, b.levels[0].data);
  EXPECT_EQ(a.encoder_params, b.encoder_params);
  EXPECT_EQ(decode(a, "CT").voxels, decode(b, "CT", 1, copy).voxels);
}

TEST(LearnedModelFile, TruncatedOrDamagedFilesAreRefusedWithAClearMessage) {
  const fs::path dir = fusionflow::testing::fresh_temp_directory("learned-truncated");
  const std::string bytes = read_bytes(tiny_model());
  struct Case {
    std::string name, bytes, expected;
  };
  std::string flipped = bytes;
  flipped[flipped.size() - 100] = char(flipped[flipped.size() - 100] ^ 0x55);
  const std::vector<Case> cases{{"empty", "", "not a fusionflow model"},
                                {"magic_only", bytes.substr(0, 8), "truncated"},
                                {"half_header", bytes.substr(0, 200), "truncated"},
                                {"no_weights", bytes.substr(0, bytes.size() / 2), "truncated"},
                                {"one_byte_short", bytes.substr(0, bytes.size() - 1), "truncated"},
                                {"flipped", flipped, "checksum mismatch"},
                                {"text", "hello world, not a model", "not a fusionflow model"}};
  for (const Case& c : cases) {
    const fs::path file = dir / (c.name + ".ffmodel");
    std::ofstream(file, std::ios::binary) << c.bytes;
    try {
      encode(phantom().ct, "CT", 1, file);
      ADD_FAILURE() << c.name << ": accepted";
    } catch (const std::exception& error) {
      const std::string message = error.what();
      EXPECT_NE(message.find(c.expected), std::string::npos) << c.name << ": " << message;
      EXPECT_NE(message.find(file.string()), std::string::npos) << c.name << ": " << message;
    }
  }
}

TEST(LearnedModelFile, MismatchedModalityOrUnitsAreRefused) {
  Volume pet = phantom().ct;
  pet.metadata.modality = "PT";
  pet.metadata.units = "Bq/mL";
  try {
    encode(pet, "PT");
    ADD_FAILURE() << "PT accepted";
  } catch (const std::exception& error) {
    EXPECT_NE(std::string(error.what()).find("no encoder/decoder for modality 'PT' (it knows CT, MR)"),
              std::string::npos)
        << error.what();
  }
  Volume ct_in_wrong_units = phantom().ct;
  ct_in_wrong_units.metadata.units = "normalised";
  try {
    encode(ct_in_wrong_units, "CT");
    ADD_FAILURE() << "wrong units accepted";
  } catch (const std::exception& error) {
    EXPECT_NE(std::string(error.what()).find("expects CT in units 'HU'"), std::string::npos) << error.what();
  }
  try {
    encode(phantom().t1, "CT");  // an MR volume through the CT encoder
    ADD_FAILURE() << "MR as CT accepted";
  } catch (const std::exception& error) {
    EXPECT_NE(std::string(error.what()).find("the input volume is modality 'MR'"), std::string::npos) << error.what();
  }
}

TEST(LearnedNodes, FuseLatentFusesLearnedLatentsAndSynthesizeMakesCtInHu) {
  NodeHarness fuse(fusionflow::testing::bundled_plugins(), "fuse.latent");
  fuse.add_input("latents", encode(phantom().ct, "CT")).add_input("latents", encode(phantom().t1, "MR"));
  fuse.set_param("detail_rule", "local_energy").run();
  const Latent& fused = fuse.output<Latent>("latent");
  EXPECT_EQ(fused.source_metadata.modality, "FUSED");
  const Volume image = decode(fused, "CT", 1, tiny_model(), "normalised");
  EXPECT_EQ(image.metadata.modality, "FUSED");
  EXPECT_EQ(image.geometry.size, phantom().ct.geometry.size);

  NodeHarness synth(fusionflow::testing::bundled_plugins(), "learned.synthesize");
  synth.set_param("model", fusionflow::ParamValue(tiny_model().string())).set_param("target_modality", "CT");
  synth.set_input("volume", phantom().t1).run();
  const Volume& sct = synth.output<Volume>("volume");
  EXPECT_EQ(sct.metadata.modality, "CT");
  EXPECT_EQ(sct.metadata.units, "HU");
  EXPECT_TRUE(sct.geometry.same_grid(phantom().t1.geometry));

  NodeHarness metrics(fusionflow::testing::bundled_plugins(), "metrics.synthesis");
  metrics.set_input("synthetic", sct).set_input("reference", phantom().ct).run();
  const auto& table = metrics.output<fusionflow::Table>("metrics");
  ASSERT_EQ(table.rows.size(), 1u);
  EXPECT_GT(std::get<double>(table.rows[0][table.column_index("mae")]), 0.0);
}

TEST(LearnedNodes, RandomGeneratorMakesA3x64x64ImageDeterministically) {
  auto run = [](int seed) {
    NodeHarness node(fusionflow::testing::bundled_plugins(), "learned.random_generator");
    node.set_param("seed", seed).run();
    bool logged = false;
    for (const auto& [level, message] : node.log())
      logged = logged || message.find("size 3x64x64") != std::string::npos;
    EXPECT_TRUE(logged);
    return node.output<Volume>("volume");
  };
  const Volume a = run(3);
  EXPECT_EQ(a.geometry.size, (std::array<std::size_t, 3>{64, 64, 3}));
  EXPECT_EQ(a.voxels, run(3).voxels);
  EXPECT_NE(a.voxels, run(4).voxels);
}

// The example pipelines with the committed model on a small phantom.
class LearnedPipelines : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new fs::path(fusionflow::testing::fresh_temp_directory("learned-pipelines"));
    const auto result = fusionflow_cli("phantom --size 48 --seed 3 --threads 2 --out " + (*dir_ / "phantom").string());
    ASSERT_EQ(result.exit_code, 0) << result.text;
  }
  static fusionflow::testing::CommandOutput run_example(const std::string& name, const fs::path& out) {
    const std::string pipeline = std::string(FUSIONFLOW_SOURCE_DIR) + "/examples/pipelines/" + name + ".json";
    const std::string sets = " --set ct=" + (*dir_ / "phantom/ct.nii.gz").string() +
                             " --set mri=" + (*dir_ / "phantom/t1.nii.gz").string() + " --set out=" + out.string();
    const auto valid = fusionflow_cli("validate " + pipeline +
                                      (name == "random_generator_histogram" ? " --set out=" + out.string() : sets));
    EXPECT_EQ(valid.exit_code, 0) << valid.text;
    return fusionflow_cli("run --threads 2 --no-progress " + pipeline +
                          (name == "random_generator_histogram" ? " --set out=" + out.string() : sets));
  }
  static fs::path* dir_;
};
fs::path* LearnedPipelines::dir_ = nullptr;

TEST_F(LearnedPipelines, LearnedFusionWritesFusedVolumeAndMetrics) {
  const fs::path out = *dir_ / "fusion";
  const auto result = run_example("learned_fusion", out);
  ASSERT_EQ(result.exit_code, 0) << result.text;
  EXPECT_TRUE(fs::exists(out / "fused.nii.gz"));
  EXPECT_NE(read_bytes(out / "metrics.csv").find("learned_local_energy"), std::string::npos);
}

TEST_F(LearnedPipelines, MriToSyntheticCtWritesVolumeAndMaeInHu) {
  const fs::path out = *dir_ / "synthesis";
  const auto result = run_example("mri_to_synthetic_ct", out);
  ASSERT_EQ(result.exit_code, 0) << result.text;
  EXPECT_TRUE(fs::exists(out / "synthetic_ct.nii.gz"));
  const json metrics = json::parse(read_bytes(out / "synthetic_ct_metrics.json"));
  EXPECT_NE(metrics.dump().find("HU"), std::string::npos) << metrics.dump();
}

TEST_F(LearnedPipelines, RandomGeneratorHistogramWritesPng) {
  const fs::path out = *dir_ / "generator";
  const auto result = run_example("random_generator_histogram", out);
  ASSERT_EQ(result.exit_code, 0) << result.text;
  EXPECT_NE(result.text.find("3x64x64"), std::string::npos) << result.text;
  EXPECT_TRUE(fs::exists(out / "random_generator_histogram.png"));
}

}  // namespace
