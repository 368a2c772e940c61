// `fusionflow cohort run --engine slurm` on a real single-node Slurm
// (slurmctld, slurmd and munged started by the test in a temporary folder,
// tests/slurm/single-node-slurm.sh; stopped by pid at the end, pass or fail).
#include <gtest/gtest.h>

#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <set>
#include <thread>

#include <nlohmann/json.hpp>

#include "test_support.hpp"

namespace {
namespace fs = std::filesystem;
using Output = fusionflow::testing::CommandOutput;

const std::string kSlurmScript = std::string(FUSIONFLOW_SOURCE_DIR) + "/tests/slurm/single-node-slurm.sh";
const std::string kPipeline = std::string(FUSIONFLOW_SOURCE_DIR) + "/examples/pipelines/pet_ct_mri_fusion.json";

Output shell(const std::string& command) { return fusionflow::testing::run_command(command); }
Output fusionflow_cli(const std::string& arguments) { return shell(std::string(FUSIONFLOW_EXE) + " " + arguments); }

class CohortSlurm : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    slurm_dir_ = fs::temp_directory_path() / ("fusionflow-slurm-" + std::to_string(::getpid()));
    fs::remove_all(slurm_dir_);
    fs::create_directories(slurm_dir_);
    ::setenv("SLURM_CONF", (slurm_dir_ / "slurm.conf").c_str(), 1);
    started_ = shell("bash " + kSlurmScript + " start " + slurm_dir_.string());
  }
  static void TearDownTestSuite() {
    shell("bash " + kSlurmScript + " stop " + slurm_dir_.string());
    fs::remove_all(slurm_dir_);
  }
  void SetUp() override {
    ASSERT_EQ(::geteuid(), 0u) << "the Slurm tests start slurmctld and slurmd, which needs root (CI runs as root)";
    ASSERT_EQ(started_.exit_code, 0) << started_.text;
    dir_ = fusionflow::testing::fresh_temp_directory("cohort-slurm");
  }
  void TearDown() override { fs::remove_all(dir_); }

  static inline fs::path slurm_dir_;
  static inline Output started_;
  fs::path dir_;
};

TEST_F(CohortSlurm, ASixSubjectCohortGivesTheSameBytesOnSlurmAsOnThisMachine) {
  ASSERT_EQ(fusionflow_cli("phantom --size 24 --out " + (dir_ / "a").string()).exit_code, 0);
  ASSERT_EQ(fusionflow_cli("phantom --size 24 --seed 3 --out " + (dir_ / "b").string()).exit_code, 0);
  std::ofstream table(dir_ / "subjects.csv");
  table << "subject,ct,mri,pet\n";
  for (int n = 1; n <= 6; ++n) {
    const std::string p = n % 2 ? "a" : "b";
    table << "s" << n << "," << p << "/ct.nii.gz," << p << "/t1.nii.gz," << p << "/pet.nii.gz\n";
  }
  table.close();
  const std::string cohort = "cohort run " + (dir_ / "subjects.csv").string() + " " + kPipeline;
  const Output local = fusionflow_cli(cohort + " --out " + (dir_ / "local").string() + " --threads 2");
  ASSERT_EQ(local.exit_code, 0) << local.text;
  const Output slurm =
      fusionflow_cli(cohort + " --out " + (dir_ / "slurm").string() + " --engine slurm --wait --cpus-per-task 1");
  ASSERT_EQ(slurm.exit_code, 0) << slurm.text;
  EXPECT_NE(slurm.text.find("Slurm job array"), std::string::npos) << slurm.text;
  EXPECT_NE(slurm.text.find("cohort: 6 of 6 subjects done"), std::string::npos) << slurm.text;
  for (int n = 1; n <= 6; ++n) {
    const std::string s = "s" + std::to_string(n);
    for (const char* file : {"fused.nii.gz", "metrics.csv", "pet_on_ct.nii.gz"}) {
      EXPECT_EQ(fusionflow::testing::read_file(dir_ / "local" / s / file),
                fusionflow::testing::read_file(dir_ / "slurm" / s / file))
          << s << "/" << file;
    }
  }
  EXPECT_EQ(fusionflow::testing::read_file(dir_ / "local/metrics.csv"),
            fusionflow::testing::read_file(dir_ / "slurm/metrics.csv"));
  EXPECT_NE(fusionflow::testing::read_file(dir_ / "local/s1/fused.nii.gz"),
            fusionflow::testing::read_file(dir_ / "local/s2/fused.nii.gz"));
}

TEST_F(CohortSlurm, AKilledTaskIsResumedAndABadSubjectFailsAlone) {
  ASSERT_EQ(fusionflow_cli("phantom --size 64 --out " + (dir_ / "big").string()).exit_code, 0);
  ASSERT_EQ(fusionflow_cli("phantom --size 24 --out " + (dir_ / "p").string()).exit_code, 0);
  fs::create_directories(dir_ / "bad");
  const std::string pet = fusionflow::testing::read_file(dir_ / "p/pet.nii.gz");
  std::ofstream(dir_ / "bad/pet.nii.gz", std::ios::binary) << pet.substr(0, pet.size() / 3);
  std::ofstream(dir_ / "subjects.csv") << "subject,ct,mri,pet\n"
                                          "s1,big/ct.nii.gz,big/t1.nii.gz,big/pet.nii.gz\n"
                                          "s2,p/ct.nii.gz,p/t1.nii.gz,p/pet.nii.gz\n"
                                          "s3,p/ct.nii.gz,p/t1.nii.gz,bad/pet.nii.gz\n";
  const std::string cohort = "cohort run " + (dir_ / "subjects.csv").string() + " " + kPipeline + " --out " +
                             (dir_ / "study").string() + " --engine slurm --cpus-per-task 1";
  const Output submitted = fusionflow_cli(cohort);
  ASSERT_EQ(submitted.exit_code, 0) << submitted.text;
  const auto at = submitted.text.find("Slurm job array ");
  ASSERT_NE(at, std::string::npos) << submitted.text;
  const std::string job = submitted.text.substr(at + 16, submitted.text.find(' ', at + 16) - at - 16);
  // Kill s1's task (index 0) while it runs.
  bool killed = false;
  for (int poll = 0; poll < 600 && !killed; ++poll) {
    const Output state = shell("squeue -h -j " + job + " -o '%i %T'");
    if (state.text.find(job + "_0 RUNNING") != std::string::npos) {
      killed = shell("scancel --signal=KILL " + job + "_0").exit_code == 0;
    } else {
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
  }
  ASSERT_TRUE(killed) << "task 0 of job " << job << " was never seen running";
  for (int poll = 0; poll < 600; ++poll) {
    if (shell("squeue -h -j " + job).text.find(job) == std::string::npos) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  const Output status = fusionflow_cli("cohort status " + (dir_ / "study").string());
  EXPECT_EQ(status.text.find("s1\tdone"), std::string::npos) << status.text;
  EXPECT_NE(status.text.find("s2\tdone"), std::string::npos) << status.text;
  EXPECT_NE(status.text.find("s3\tfailed"), std::string::npos) << status.text;
  EXPECT_FALSE(fs::exists(dir_ / "study/s1/run.json"));

  // The same command again, waiting: s1 runs to the end, s2 is skipped, s3 fails again alone.
  const std::string s2_record = fusionflow::testing::read_file(dir_ / "study/s2/run.json");
  const Output resumed = fusionflow_cli(cohort + " --wait");
  EXPECT_EQ(resumed.exit_code, 1) << resumed.text;
  EXPECT_NE(resumed.text.find("1 done or left as they are, 2 to run"), std::string::npos) << resumed.text;
  // Memory per task from the earlier runs' peak (s2 and s3 left run records).
  EXPECT_NE(resumed.text.find("MB per task (1.5 x the largest peak memory of the earlier runs"), std::string::npos)
      << resumed.text;
  EXPECT_NE(resumed.text.find("cohort: 2 of 3 subjects done, 1 failed"), std::string::npos) << resumed.text;
  EXPECT_EQ(fusionflow::testing::read_file(dir_ / "study/s2/run.json"), s2_record);
  const Output final_status = fusionflow_cli("cohort status " + (dir_ / "study").string());
  EXPECT_NE(final_status.text.find("s1\tdone"), std::string::npos) << final_status.text;
  EXPECT_NE(final_status.text.find("is truncated"), std::string::npos) << final_status.text;
}

// The node cache shared by the tasks of job arrays: a second study of the
// same subjects takes every node from it, and a changed fuse.latent parameter
// recomputes only fuse.latent and the nodes that depend on it.
TEST_F(CohortSlurm, TasksShareTheNodeCacheAndAChangedFuseParameterRecomputesOnlyItsConsumers) {
  ASSERT_EQ(fusionflow_cli("phantom --size 24 --out " + (dir_ / "a").string()).exit_code, 0);
  ASSERT_EQ(fusionflow_cli("phantom --size 24 --seed 3 --out " + (dir_ / "b").string()).exit_code, 0);
  std::ofstream(dir_ / "subjects.csv") << "subject,ct,mri,pet\n"
                                          "s1,a/ct.nii.gz,a/t1.nii.gz,a/pet.nii.gz\n"
                                          "s2,b/ct.nii.gz,b/t1.nii.gz,b/pet.nii.gz\n";
  nlohmann::json changed = nlohmann::json::parse(fusionflow::testing::read_file(kPipeline));
  for (auto& node : changed["nodes"]) {
    if (node["type"] == "fuse.latent") node["params"]["base_rule"] = "max_abs";
  }
  std::ofstream(dir_ / "changed.json") << changed.dump(2);
  const std::string cache = " --cache " + (dir_ / "cache").string();
  const auto study = [&](const std::string& pipeline, const std::string& out) {
    return fusionflow_cli("cohort run " + (dir_ / "subjects.csv").string() + " " + pipeline + " --out " +
                          (dir_ / out).string() + " --engine slurm --wait --cpus-per-task 1" + cache);
  };
  const auto record = [&](const std::string& out, const std::string& subject) {
    return nlohmann::json::parse(fusionflow::testing::read_file(dir_ / out / subject / "run.json"));
  };
  const Output cold = study(kPipeline, "cold");
  ASSERT_EQ(cold.exit_code, 0) << cold.text;
  const Output warm = study(kPipeline, "warm");
  ASSERT_EQ(warm.exit_code, 0) << warm.text;
  const Output edited = study((dir_ / "changed.json").string(), "changed");
  ASSERT_EQ(edited.exit_code, 0) << edited.text;
  for (const std::string subject : {"s1", "s2"}) {
    for (const auto& node : record("cold", subject)["nodes"]) EXPECT_EQ(node["cache"], "miss") << node["id"];
    for (const auto& node : record("warm", subject)["nodes"]) EXPECT_EQ(node["cache"], "hit") << node["id"];
    for (const char* file : {"fused.nii.gz", "metrics.csv", "fused_3d.png", "pet_ct_overlay.png"}) {
      EXPECT_EQ(fusionflow::testing::read_file(dir_ / "warm" / subject / file),
                fusionflow::testing::read_file(dir_ / "cold" / subject / file))
          << subject << "/" << file;
    }
    // fuse and everything downstream of it, from the record's wiring.
    const nlohmann::json nodes = record("changed", subject)["nodes"];
    std::set<std::string> downstream{"fuse"};
    for (bool grew = true; grew;) {
      grew = false;
      for (const auto& node : nodes) {
        for (const auto& [port, sources] : node["inputs"].items()) {
          for (const auto& source : sources) {
            const std::string producer = source.get<std::string>().substr(0, source.get<std::string>().find('.'));
            if (downstream.count(producer) && downstream.insert(node["id"].get<std::string>()).second) grew = true;
          }
        }
      }
    }
    EXPECT_GT(downstream.size(), 3u);
    for (const auto& node : nodes) {
      const std::string id = node["id"];
      EXPECT_EQ(node["cache"], downstream.count(id) ? "miss" : "hit") << subject << " " << id;
    }
    EXPECT_NE(fusionflow::testing::read_file(dir_ / "changed" / subject / "fused.nii.gz"),
              fusionflow::testing::read_file(dir_ / "cold" / subject / "fused.nii.gz"));
  }
}

}  // namespace
