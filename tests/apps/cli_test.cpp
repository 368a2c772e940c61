// End-to-end tests of the `fusionflow` program with its bundled plugins.
#include <gtest/gtest.h>

#include "test_support.hpp"

#include <sys/wait.h>

#include <array>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

namespace {
namespace fs = std::filesystem;

using Output = fusionflow::testing::CommandOutput;

Output run(const std::string& arguments) {
  return fusionflow::testing::run_command(std::string(FUSIONFLOW_EXE) + " " + arguments);
}

fs::path temp_dir(const std::string& name) {
  fs::path dir = fs::temp_directory_path() / ("fusionflow-cli-" + name + "-" + std::to_string(::getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  return dir;
}

const std::string kExamples = std::string(FUSIONFLOW_SOURCE_DIR) + "/examples/pipelines/";

TEST(Cli, ValidateReportsAllFivePlantedErrorsWithLocationsAndExits2) {
  Output out = run("validate " + std::string(FUSIONFLOW_SOURCE_DIR) + "/tests/data/pipelines/five_errors.json");
  EXPECT_EQ(out.exit_code, 2) << out.text;
  for (const char* expected :
       {"/nodes/0/type: error: unknown node type 'core.synthetic_volum'", "did you mean 'core.synthetic_volume'?",
        "/nodes/1/params/size/2: error: value 99999 of parameter 'size' is out of range",
        "/nodes/2/inputs/mask: error: unknown input port 'mask'",
        "/nodes/3/inputs/table: error: type mismatch: 'sphere.volume' is Volume",
        "error: cycle: 'merge_a' -> 'merge_b' -> 'merge_a'", "5 problems found; nothing was run"}) {
    EXPECT_NE(out.text.find(expected), std::string::npos) << "missing: " << expected << "\n" << out.text;
  }
}

TEST(Cli, RunWritesOutputsAndARecordShowingOverlappingBranches) {
  const fs::path dir = temp_dir("run");
  Output out = run("run " + kExamples + "core_two_branches.json --threads 2 --set out=" + dir.string() + " --record " +
                   (dir / "run.json").string());
  ASSERT_EQ(out.exit_code, 0) << out.text;
  EXPECT_TRUE(fs::exists(dir / "volume_stats.csv"));
  EXPECT_NE(out.text.find("total:"), std::string::npos);
  std::ifstream record_file(dir / "run.json");
  const auto record = nlohmann::json::parse(record_file);
  EXPECT_EQ(record["exit_status"], "succeeded");
  ASSERT_EQ(record["nodes"].size(), 6u);
  auto node = [&](const std::string& id) {
    for (const auto& n : record["nodes"])
      if (n["id"] == id) return n;
    return nlohmann::json();
  };
  // The two synthetic volumes are independent: their intervals overlap.
  const auto noise = node("noise"), sphere = node("sphere");
  EXPECT_LT(noise["start_seconds"].get<double>(), sphere["end_seconds"].get<double>());
  EXPECT_LT(sphere["start_seconds"].get<double>(), noise["end_seconds"].get<double>());
  fs::remove_all(dir);
}

TEST(Cli, RunWithACacheTakesEveryNodeFromItTheSecondTimeAndPruneEmptiesIt) {
  const fs::path dir = temp_dir("cache");
  const std::string cache = (dir / "cache").string();
  const auto run_into = [&](const std::string& out) {
    return run("run " + kExamples + "core_two_branches.json --set size=24 --set out=" + (dir / out).string() +
               " --cache " + cache + " --record " + (dir / (out + ".json")).string());
  };
  const Output cold = run_into("cold");
  ASSERT_EQ(cold.exit_code, 0) << cold.text;
  EXPECT_NE(cold.text.find("cache: 6 miss"), std::string::npos) << cold.text;
  const Output warm = run_into("warm");
  ASSERT_EQ(warm.exit_code, 0) << warm.text;
  EXPECT_NE(warm.text.find("cache: 6 hit"), std::string::npos) << warm.text;
  EXPECT_EQ(fusionflow::testing::read_file(dir / "warm/volume_stats.csv"),
            fusionflow::testing::read_file(dir / "cold/volume_stats.csv"));
  const auto record = nlohmann::json::parse(fusionflow::testing::read_file(dir / "warm.json"));
  for (const auto& node : record["nodes"]) {
    EXPECT_EQ(node["cache"], "hit") << node["id"];
    EXPECT_EQ(node["cache_key"].get<std::string>().size(), 64u);
  }
  EXPECT_NE(run("cache info " + cache).text.find("6 entries"), std::string::npos);
  const Output pruned = run("cache prune " + cache + " --max-size 0");
  EXPECT_EQ(pruned.exit_code, 0) << pruned.text;
  EXPECT_NE(pruned.text.find("removed 6 entries"), std::string::npos) << pruned.text;
  EXPECT_NE(run_into("again").text.find("cache: 6 miss"), std::string::npos);
  EXPECT_EQ(run("cache prune " + (dir / "not-a-cache").string() + " --max-size 1G").exit_code, 2);
  EXPECT_EQ(run("run " + kExamples + "core_two_branches.json --cache-max-size 1G").exit_code, 2);
  fs::remove_all(dir);
}

TEST(Cli, FailedRunExits1AndNamesTheNode) {
  const fs::path dir = temp_dir("fail");
  // An output directory that cannot be created: a file stands in its way.
  std::ofstream(dir / "blocker") << "x";
  Output out = run("run " + kExamples + "core_two_branches.json --set size=8 --set out=" + (dir / "blocker").string() +
                   " --record " + (dir / "run.json").string());
  EXPECT_EQ(out.exit_code, 1) << out.text;
  EXPECT_NE(out.text.find("node 'write' (type core.write_table) failed: cannot create output directory"),
            std::string::npos)
      << out.text;
  std::ifstream record_file(dir / "run.json");
  EXPECT_EQ(nlohmann::json::parse(record_file)["exit_code"], 1);
  fs::remove_all(dir);
}

TEST(Cli, PluginsListsBundledNodeTypesWithTheirLibrary) {
  Output text = run("plugins");
  ASSERT_EQ(text.exit_code, 0) << text.text;
  EXPECT_NE(text.text.find("core.synthetic_volume 1.0.0  [core 1.0.0: "), std::string::npos) << text.text;
  EXPECT_NE(text.text.find("libfusionflow-core.so"), std::string::npos);

  Output json = run("plugins --json");
  ASSERT_EQ(json.exit_code, 0);
  const auto document = nlohmann::json::parse(json.text);
  bool found = false;
  for (const auto& node : document["node_types"]) {
    if (node["type"] == "core.volume_stats") {
      found = true;
      EXPECT_NE(node["library"].get<std::string>().find("libfusionflow-core.so"), std::string::npos);
      EXPECT_EQ(node["inputs"][0]["type"], "Volume");
      EXPECT_EQ(node["outputs"][0]["type"], "Table");
    }
  }
  EXPECT_TRUE(found);
}

TEST(Cli, GraphWritesDot) {
  Output out = run("graph " + kExamples + "core_two_branches.json");
  ASSERT_EQ(out.exit_code, 0) << out.text;
  EXPECT_EQ(out.text.rfind("digraph G {", 0), 0u) << out.text;
  EXPECT_NE(out.text.find("stats -> tables"), std::string::npos) << out.text;
}

TEST(Cli, PhantomWritesEveryFileWithTheRequestedGrid) {
  const fs::path dir = temp_dir("phantom");
  Output out = run("phantom --size 32 40 36 --spacing 6 --seed 7 --out " + dir.string());
  ASSERT_EQ(out.exit_code, 0) << out.text;
  for (const char* file : {"ct.nii.gz", "t1.nii.gz", "t2.nii.gz", "pet.nii.gz", "labels.nii.gz", "truth.json"}) {
    EXPECT_TRUE(fs::exists(dir / file)) << file;
  }
  std::ifstream truth_file(dir / "truth.json");
  const auto truth = nlohmann::json::parse(truth_file);
  EXPECT_EQ(truth["grids"]["ct"]["size"], (nlohmann::json{32, 40, 36}));
  EXPECT_EQ(truth["grids"]["ct"]["spacing_mm"], (nlohmann::json{6.0, 6.0, 6.0}));
  EXPECT_EQ(truth["options"]["seed"], 7);
  EXPECT_GE(truth["landmarks"].size(), 20u);
  EXPECT_EQ(run("phantom --size 32 --out").exit_code, 2);
  fs::remove_all(dir);
}

TEST(Cli, CommittedFixturesMatchTheGenerator) {
  // Same command as scripts/make-fixtures.sh; the phantom is deterministic, so
  // the committed files must come out byte for byte.
  const fs::path dir = temp_dir("fixtures");
  Output out = run("phantom --size 32 --seed 1 --pet-spacing 7.5 --threads 1 --out " + dir.string());
  ASSERT_EQ(out.exit_code, 0) << out.text;
  const fs::path committed = fs::path(FUSIONFLOW_SOURCE_DIR) / "testdata/phantom-32";
  for (const char* file : {"ct.nii.gz", "t1.nii.gz", "t2.nii.gz", "pet.nii.gz", "labels.nii.gz", "truth.json"}) {
    std::ifstream fresh(dir / file, std::ios::binary), kept(committed / file, std::ios::binary);
    ASSERT_TRUE(kept.good()) << "missing fixture " << file << ": run scripts/make-fixtures.sh";
    std::stringstream fresh_bytes, kept_bytes;
    fresh_bytes << fresh.rdbuf();
    kept_bytes << kept.rdbuf();
    EXPECT_TRUE(fresh_bytes.str() == kept_bytes.str()) << file << " differs: run scripts/make-fixtures.sh";
  }
  fs::remove_all(dir);
}

TEST(Cli, EveryExamplePipelineValidates) {
  std::size_t checked = 0;
  for (const auto& entry : fs::directory_iterator(kExamples)) {
    if (entry.path().extension() != ".json") continue;
    std::ifstream file(entry.path());
    const auto pipeline = nlohmann::json::parse(file);
    // Variables without a default must be set; any path will do for validation.
    std::string sets;
    const nlohmann::json variables = pipeline.contains("variables") ? pipeline["variables"] : nlohmann::json::object();
    for (const auto& [name, variable] : variables.items()) {
      const bool has_default = !variable.is_null() && !(variable.is_object() && !variable.contains("default")) &&
                               !(variable.is_object() && variable["default"].is_null());
      if (!has_default) sets += " --set " + name + "=/data/" + name + ".nii.gz";
    }
    Output out = run("validate " + entry.path().string() + sets);
    EXPECT_EQ(out.exit_code, 0) << entry.path() << "\n" << out.text;
    ++checked;
  }
  EXPECT_GE(checked, 8u);
}

TEST(Cli, PluginsAddCommandsThatGetTheRestOfTheLine) {
  // Only the good test plugin (tests/sdk/plugins), whose command is good-echo.
  const fs::path dir = temp_dir("plugin-command");
  fs::copy_file(fs::path(FUSIONFLOW_TEST_PLUGIN_DIR) / "libfusionflow-test-good.so",
                dir / "libfusionflow-test-good.so");
  const std::string plugins = "--plugin-dir " + dir.string() + " ";
  const Output echo = run(plugins + "--log-level error good-echo one --two 'three four'");
  EXPECT_EQ(echo.exit_code, 0) << echo.text;
  EXPECT_NE(echo.text.find("good-echo: [one] [--two] [three four]"), std::string::npos) << echo.text;
  EXPECT_EQ(run(plugins + "good-echo").exit_code, 2);
  const Output help = run(plugins + "--help");
  EXPECT_EQ(help.exit_code, 0) << help.text;
  EXPECT_NE(help.text.find("Commands from plugins"), std::string::npos) << help.text;
  EXPECT_NE(help.text.find("good-echo  prints its arguments [good plugin]"), std::string::npos) << help.text;
  const Output listing = run(plugins + "plugins");
  EXPECT_NE(listing.text.find("good-echo [good]: prints its arguments"), std::string::npos) << listing.text;
  // The bundled learned plugin's `train` is such a command.
  const Output train_help = run("train --help");
  EXPECT_EQ(train_help.exit_code, 0) << train_help.text;
  EXPECT_NE(train_help.text.find("--resume"), std::string::npos) << train_help.text;
  const Output unknown = run(plugins + "frobnicate");
  EXPECT_EQ(unknown.exit_code, 2);
  EXPECT_NE(unknown.text.find("'frobnicate' is not a fusionflow command"), std::string::npos) << unknown.text;
  EXPECT_NE(unknown.text.find("good-echo"), std::string::npos) << unknown.text;
  fs::remove_all(dir);
}

TEST(Cli, ARenamedNodeTypeNamesItsNewName) {
  const fs::path dir = temp_dir("renamed");
  std::ofstream(dir / "old.json") << R"({"format_version": 1, "nodes": [
    {"id": "m", "type": "learned.synthesis_metrics"}]})";
  const Output result = run("validate " + (dir / "old.json").string());
  EXPECT_EQ(result.exit_code, 2) << result.text;
  EXPECT_NE(result.text.find("unknown node type 'learned.synthesis_metrics'"), std::string::npos) << result.text;
  EXPECT_NE(result.text.find("it was renamed 'metrics.synthesis'"), std::string::npos) << result.text;
  fs::remove_all(dir);
}

TEST(Cli, CohortCheckListsTheSubjectsOrEveryProblem) {
  const fs::path dir = temp_dir("cohort");
  for (const char* file : {"s1/ct.nii.gz", "s1/t1.nii.gz", "s1/pet.nii.gz", "s2/ct.nii.gz", "s2/t1.nii.gz"}) {
    fs::create_directories((dir / file).parent_path());
    std::ofstream(dir / file) << "x";
  }
  // The default pipeline's ct, mri and pet are read by io.load_* (input paths).
  const std::string pipeline = kExamples + "pet_ct_mri_fusion.json";
  std::ofstream(dir / "good.csv") << "subject,ct,mri,pet\ns1,s1/ct.nii.gz,s1/t1.nii.gz,s1/pet.nii.gz\n"
                                     "s2,s2/ct.nii.gz,s2/t1.nii.gz,s1/pet.nii.gz\n";
  const Output good =
      run("cohort check " + (dir / "good.csv").string() + " " + pipeline + " --out " + (dir / "study").string());
  EXPECT_EQ(good.exit_code, 0) << good.text;
  EXPECT_NE(good.text.find("2 subjects, each valid for"), std::string::npos) << good.text;
  EXPECT_NE(good.text.find("out=" + (dir / "study/s2").string()), std::string::npos) << good.text;
  std::ofstream(dir / "bad.csv") << "subject,ct,mri,pet\ns1,s1/ct.nii.gz,s1/t1.nii.gz,s2/pet.nii.gz\n"
                                    "s1,s2/ct.nii.gz,s2/t1.nii.gz,s1/pet.nii.gz\n";
  const Output bad = run("cohort check " + (dir / "bad.csv").string() + " " + pipeline);
  EXPECT_EQ(bad.exit_code, 2) << bad.text;
  EXPECT_NE(
      bad.text.find("bad.csv row 2, column 'pet': error: file " + (dir / "s2/pet.nii.gz").string() + " does not exist"),
      std::string::npos)
      << bad.text;
  EXPECT_NE(bad.text.find("bad.csv row 3, column 'subject': error: subject 's1' is already on row 2"),
            std::string::npos)
      << bad.text;
  EXPECT_NE(bad.text.find("2 problems found; nothing was run"), std::string::npos) << bad.text;
  fs::remove_all(dir);
}

TEST(Cli, CohortRunRunsEverySubjectAloneAndResumes) {
  const fs::path dir = temp_dir("cohort-run");
  ASSERT_EQ(run("phantom --size 24 --out " + (dir / "p").string()).exit_code, 0);
  fs::create_directories(dir / "bad");
  {  // a truncated PET for s3
    const std::string pet = fusionflow::testing::read_file(dir / "p/pet.nii.gz");
    std::ofstream(dir / "bad/pet.nii.gz", std::ios::binary) << pet.substr(0, pet.size() / 3);
  }
  std::ofstream(dir / "subjects.csv") << "subject,ct,mri,pet\n"
                                         "s1,p/ct.nii.gz,p/t1.nii.gz,p/pet.nii.gz\n"
                                         "s2,p/ct.nii.gz,p/t1.nii.gz,p/pet.nii.gz\n"
                                         "s3,p/ct.nii.gz,p/t1.nii.gz,bad/pet.nii.gz\n";
  const std::string command = "cohort run " + (dir / "subjects.csv").string() + " " + kExamples +
                              "pet_ct_mri_fusion.json --out " + (dir / "study").string() + " --threads 2";
  const Output first = run(command);
  EXPECT_EQ(first.exit_code, 1) << first.text;  // one subject failed, alone
  EXPECT_NE(first.text.find("cohort: 2 of 3 subjects done, 1 failed"), std::string::npos) << first.text;
  EXPECT_NE(first.text.find("[3/3] "), std::string::npos) << first.text;  // a progress line per subject
  EXPECT_NE(first.text.find(" failed; "), std::string::npos) << first.text;
  const Output status = run("cohort status " + (dir / "study").string());
  EXPECT_EQ(status.exit_code, 0) << status.text;
  EXPECT_NE(status.text.find("s3\tfailed"), std::string::npos) << status.text;
  EXPECT_NE(status.text.find("is truncated"), std::string::npos) << status.text;
  // Subjects with the same inputs give the same bytes (s1 ran beside s2).
  EXPECT_EQ(fusionflow::testing::read_file(dir / "study/s1/fused.nii.gz"),
            fusionflow::testing::read_file(dir / "study/s2/fused.nii.gz"));
  const std::string metrics = fusionflow::testing::read_file(dir / "study/metrics.csv");
  EXPECT_EQ(metrics.rfind("subject,label,", 0), 0u) << metrics;
  EXPECT_NE(metrics.find("\ns2,"), std::string::npos) << metrics;

  // Again: the done subjects are skipped, the failed one fails again.
  const auto s1_record = fusionflow::testing::read_file(dir / "study/s1/run.json");
  const Output again = run(command);
  EXPECT_EQ(again.exit_code, 1) << again.text;
  EXPECT_NE(again.text.find("2 done or left as they are, 1 to run"), std::string::npos) << again.text;
  EXPECT_EQ(fusionflow::testing::read_file(dir / "study/s1/run.json"), s1_record);
  // Mended: --retry-failed runs s3 only, and the study is complete.
  fs::copy_file(dir / "p/pet.nii.gz", dir / "bad/pet.nii.gz", fs::copy_options::overwrite_existing);
  const Output retry = run(command + " --retry-failed");
  EXPECT_EQ(retry.exit_code, 0) << retry.text;
  EXPECT_NE(retry.text.find("cohort: 3 of 3 subjects done"), std::string::npos) << retry.text;
  EXPECT_EQ(fusionflow::testing::read_file(dir / "study/s3/fused.nii.gz"),
            fusionflow::testing::read_file(dir / "study/s1/fused.nii.gz"));
  // A changed input re-runs its subject only.
  std::ofstream(dir / "subjects.csv", std::ios::app) << "";
  fs::copy_file(dir / "p/t2.nii.gz", dir / "bad/pet.nii.gz", fs::copy_options::overwrite_existing);
  const Output changed = run(command);
  EXPECT_NE(changed.text.find("2 done or left as they are, 1 to run"), std::string::npos) << changed.text;
  const Output summary = run("cohort summary " + (dir / "study").string());
  EXPECT_NE(summary.text.find("subjects: 3, done 3"), std::string::npos) << summary.text;
  fs::remove_all(dir);
}

TEST(Cli, CohortFusesAFolderOf2dPairsIntoOnePngAPairAndAMetricsTable) {
  const fs::path dir = temp_dir("pairs");
  for (const char* seed : {"1", "2"}) {
    const std::string phantom = (dir / ("phantom" + std::string(seed))).string();
    ASSERT_EQ(run("phantom --size 32 --seed " + std::string(seed) + " --anatomy-seed " + seed + " --out " + phantom)
                  .exit_code,
              0);
    const Output slices = run("run " + kExamples + "make_2d_slices.json --set ct=" + phantom +
                              "/ct.nii.gz --set mri=" + phantom + "/t1.nii.gz --set pet=" + phantom +
                              "/pet.nii.gz --set out=" + (dir / ("slices" + std::string(seed))).string());
    ASSERT_EQ(slices.exit_code, 0) << slices.text;
    fs::create_directories(dir / "pairs/MRI");
    fs::create_directories(dir / "pairs/PET");
    fs::copy_file(dir / ("slices" + std::string(seed)) / "mri.png",
                  dir / "pairs/MRI" / ("case" + std::string(seed) + ".png"));
    fs::copy_file(dir / ("slices" + std::string(seed)) / "pet.png",
                  dir / "pairs/PET" / ("case" + std::string(seed) + ".png"));
  }
  std::ofstream(dir / "pairs.json")
      << R"({"format_version": 1, "pairs": {"root": "pairs", "variables": {"mri": "MRI/*.png", "pet": "PET/*.png"}}})";
  const Output study = run("cohort run " + (dir / "pairs.json").string() + " " + kExamples +
                           "fusion_2d_mri_pet_colour.json --out " + (dir / "study").string());
  ASSERT_EQ(study.exit_code, 0) << study.text;
  for (const char* stem : {"case1", "case2"}) {
    const std::string png = fusionflow::testing::read_file(dir / "study" / stem / (std::string(stem) + ".png"));
    ASSERT_GT(png.size(), 8u) << stem;
    EXPECT_EQ(png.substr(1, 3), "PNG") << stem;
  }
  const std::string metrics = fusionflow::testing::read_file(dir / "study/metrics.csv");
  EXPECT_EQ(metrics.rfind("subject,label,scope,slice,slices,en_bits,", 0), 0u) << metrics;
  EXPECT_NE(metrics.find("\ncase1,metrics,mean,"), std::string::npos) << metrics;
  EXPECT_NE(metrics.find("\ncase2,metrics,mean,"), std::string::npos) << metrics;
  EXPECT_NE(metrics.find("\nmean,"), std::string::npos) << metrics;
  fs::remove_all(dir);
}

TEST(Cli, BadCommandLineExits2) {
  EXPECT_EQ(run("run").exit_code, 2);
  EXPECT_EQ(run("frobnicate").exit_code, 2);
  EXPECT_EQ(run("train").exit_code, 2);  // the config is required
  EXPECT_EQ(run("run " + kExamples + "core_two_branches.json --set novalue").exit_code, 2);
  EXPECT_EQ(run("validate /nonexistent.json").exit_code, 2);
}

}  // namespace
