// Plugins built by the test suite (tests/sdk/plugins), good and bad, loaded
// from a directory the test assembles.
#include <gtest/gtest.h>

#include <fusionflow/executor.hpp>
#include <fusionflow/pipeline.hpp>
#include <fusionflow/pipeline_builder.hpp>
#include <fusionflow/plugin.hpp>
#include <fusionflow/plugin_loader.hpp>

#include <cstdlib>
#include <fstream>

namespace fusionflow {
namespace {
namespace fs = std::filesystem;

class PluginLoading : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("fusionflow-plugins-" + std::to_string(::getpid()) + "-" +
                                        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  void add(const std::string& name) {
    fs::copy_file(fs::path(FUSIONFLOW_TEST_PLUGIN_DIR) / ("libfusionflow-" + name + ".so"),
                  dir_ / ("libfusionflow-" + name + ".so"));
  }

  const PluginLoadReport& report_for(const std::vector<PluginLoadReport>& reports, const std::string& name) {
    for (const auto& report : reports) {
      if (report.file.filename() == "libfusionflow-" + name + ".so") return report;
    }
    throw std::runtime_error("no report for " + name);
  }

  fs::path dir_;
  NodeRegistry registry_;
};

TEST_F(PluginLoading, LoadsAGoodPluginAndRecordsWhereItsNodesCameFrom) {
  add("test-good");
  const auto reports = load_plugins({dir_}, registry_);
  ASSERT_EQ(reports.size(), 1u);
  EXPECT_TRUE(reports[0].loaded) << reports[0].error;
  EXPECT_EQ(reports[0].plugin_name, "good");
  EXPECT_EQ(reports[0].plugin_version, "2.1.0");
  EXPECT_EQ(reports[0].node_types, std::vector<std::string>{"good.constant_table"});
  const RegisteredNode* node = registry_.find_node("good.constant_table");
  ASSERT_NE(node, nullptr);
  EXPECT_EQ(node->origin.plugin_name, "good");
  EXPECT_EQ(node->origin.library_path, (dir_ / "libfusionflow-test-good.so").string());
  EXPECT_EQ(reports[0].commands, std::vector<std::string>{"good-echo"});
  const RegisteredCommand* command = registry_.find_command("good-echo");
  ASSERT_NE(command, nullptr);
  EXPECT_EQ(command->origin.plugin_name, "good");
  EXPECT_EQ(command->command.summary, "prints its arguments");
  EXPECT_EQ(command->command.run({"a", "b"}), 0);
  EXPECT_EQ(command->command.run({}), 2);
}

TEST(Registry, CommandsNeedAWordNameOfTheirOwnAndAFunction) {
  NodeRegistry registry;
  const CommandFunction noop = [](const std::vector<std::string>&) { return 0; };
  for (const char* bad : {"", "Train", "1up", "two words", "a/b", "validate", "help"}) {
    EXPECT_THROW(registry.add_command({bad, "s", noop}), std::invalid_argument) << bad;
  }
  EXPECT_THROW(registry.add_command({"nothing", "s", nullptr}), std::invalid_argument);
  registry.add_command({"make-atlas", "s", noop}, {"atlas", "1.0", "/x.so"});
  try {
    registry.add_command({"make-atlas", "again", noop});
    ADD_FAILURE() << "a second make-atlas was accepted";
  } catch (const std::invalid_argument& error) {
    EXPECT_NE(std::string(error.what()).find("already registered by plugin 'atlas'"), std::string::npos)
        << error.what();
  }
  ASSERT_EQ(registry.commands().size(), 1u);
  EXPECT_EQ(registry.commands()[0]->command.summary, "s");
}

TEST_F(PluginLoading, EachBrokenPluginIsReportedAndTheOthersStillWork) {
  for (const char* name :
       {"test-good", "test-wrong-abi", "test-no-entry", "test-throwing", "test-duplicate", "test-itk-mismatch"}) {
    add(name);
  }
  std::ofstream(dir_ / "libfusionflow-not-a-library.so") << "this is a text file, not an ELF shared object\n";

  const auto reports = load_plugins({dir_}, registry_);
  ASSERT_EQ(reports.size(), 7u);

  const auto& wrong_abi = report_for(reports, "test-wrong-abi");
  EXPECT_FALSE(wrong_abi.loaded);
  EXPECT_EQ(wrong_abi.error, "built for plugin ABI version 999 but this fusionflow expects ABI version " +
                                 std::to_string(FUSIONFLOW_PLUGIN_ABI_VERSION) +
                                 "; rebuild the plugin against the installed fusionflow SDK");

  const auto& no_entry = report_for(reports, "test-no-entry");
  EXPECT_FALSE(no_entry.loaded);
  EXPECT_NE(no_entry.error.find("no 'fusionflow_plugin_descriptor' entry point"), std::string::npos);

  const auto& not_library = report_for(reports, "not-a-library");
  EXPECT_FALSE(not_library.loaded);
  EXPECT_NE(not_library.error.find("not a loadable shared library"), std::string::npos) << not_library.error;

  const auto& throwing = report_for(reports, "test-throwing");
  EXPECT_FALSE(throwing.loaded);
  EXPECT_EQ(throwing.error, "its registration function threw: model file weights.pt not found");
  EXPECT_EQ(registry_.find_node("throwing.first"), nullptr);  // nothing half-registered

  const auto& itk = report_for(reports, "test-itk-mismatch");
  EXPECT_FALSE(itk.loaded);
  EXPECT_NE(itk.error.find("ITK 4.13.0"), std::string::npos) << itk.error;

  // Files load in name order: "duplicate" before "good", so the clash is
  // reported on the good plugin, naming the plugin that registered it first.
  const auto& duplicate = report_for(reports, "test-duplicate");
  const auto& good = report_for(reports, "test-good");
  EXPECT_TRUE(duplicate.loaded);
  EXPECT_TRUE(good.loaded);
  ASSERT_EQ(good.warnings.size(), 2u);
  EXPECT_NE(good.warnings[0].find("node type 'good.constant_table' is already registered by plugin 'duplicate'"),
            std::string::npos)
      << good.warnings[0];
  EXPECT_NE(good.warnings[1].find("command 'good-echo' is already registered by plugin 'duplicate'"), std::string::npos)
      << good.warnings[1];
  ASSERT_EQ(duplicate.warnings.size(), 1u);
  EXPECT_NE(duplicate.warnings[0].find("command 'run' is one of fusionflow's own commands"), std::string::npos)
      << duplicate.warnings[0];
  EXPECT_NE(registry_.find_node("duplicate.unique"), nullptr);

  // The loaded plugins' nodes run.
  PipelineBuilder builder("t.json");
  builder.add_node("t", "duplicate.unique");
  LoadResult pipeline = builder.build(registry_, {}, dir_);
  ASSERT_TRUE(pipeline.ok());
  EXPECT_TRUE(run_pipeline(*pipeline.pipeline, registry_).succeeded);
}

TEST_F(PluginLoading, UnknownTypeErrorNamesThePluginsThatFailed) {
  add("test-throwing");
  const auto reports = load_plugins({dir_}, registry_);
  LoadOptions options;
  for (const auto& report : reports) {
    if (!report.loaded) options.plugin_failures.push_back(report.file.string() + ": " + report.error);
  }
  PipelineBuilder builder("t.json");
  builder.add_node("model", "throwing.first");
  LoadResult result = builder.build(registry_, options, dir_);
  ASSERT_FALSE(result.ok());
  EXPECT_NE(result.diagnostics[0].message.find("unknown node type 'throwing.first' (node 'model')"), std::string::npos);
  EXPECT_NE(result.diagnostics[0].hint.find("libfusionflow-test-throwing.so: its registration function threw: model "
                                            "file weights.pt not found"),
            std::string::npos)
      << result.diagnostics[0].hint;
}

TEST_F(PluginLoading, EarlierDirectoriesOverrideLaterOnes) {
  const fs::path first = dir_ / "first", second = dir_ / "second";
  fs::create_directories(first);
  fs::create_directories(second);
  const fs::path source = fs::path(FUSIONFLOW_TEST_PLUGIN_DIR) / "libfusionflow-test-good.so";
  fs::copy_file(source, first / "libfusionflow-test-good.so");
  fs::copy_file(source, second / "libfusionflow-test-good.so");
  const auto reports = load_plugins({first, second}, registry_);
  ASSERT_EQ(reports.size(), 2u);
  EXPECT_TRUE(reports[0].loaded);
  EXPECT_FALSE(reports[1].loaded);
  EXPECT_NE(reports[1].error.find("already loaded from an earlier directory"), std::string::npos);
}

TEST(PluginSearchPath, CliDirsThenEnvironmentThenBundled) {
  ::setenv("FUSIONFLOW_PLUGIN_PATH", "/env/a:/env/b", 1);
  const auto path = plugin_search_path({"/cli/one", "/cli/two"});
  ::unsetenv("FUSIONFLOW_PLUGIN_PATH");
  ASSERT_EQ(path.size(), 5u);
  EXPECT_EQ(path[0], "/cli/one");
  EXPECT_EQ(path[1], "/cli/two");
  EXPECT_EQ(path[2], "/env/a");
  EXPECT_EQ(path[3], "/env/b");
  EXPECT_EQ(path[4], default_plugin_dir());
  EXPECT_EQ(path[4].filename(), "plugins");
}

}  // namespace
}  // namespace fusionflow
