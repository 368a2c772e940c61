// One test per class of pipeline error: each must be reported with its JSON
// location and a hint, and nothing may run.
#include <gtest/gtest.h>

#include "test_nodes.hpp"

namespace fusionflow {
namespace {

class Validation : public ::testing::Test {
 protected:
  LoadResult load(const std::string& text, LoadOptions options = {}) {
    return testing::load_test_pipeline(text, registry_, options);
  }

  // The pipeline must fail with exactly one diagnostic at `location` whose
  // message contains `message` and whose hint contains `hint`.
  void expect_error(const std::string& text, const std::string& location, const std::string& message,
                    const std::string& hint = "", LoadOptions options = {}) {
    LoadResult result = load(text, options);
    ASSERT_FALSE(result.ok());
    ASSERT_EQ(result.diagnostics.size(), 1u) << dump(result);
    const Diagnostic& d = result.diagnostics[0];
    EXPECT_EQ(d.location, location) << dump(result);
    EXPECT_NE(d.message.find(message), std::string::npos) << dump(result);
    EXPECT_NE(d.hint.find(hint), std::string::npos) << dump(result);
  }

  static std::string dump(const LoadResult& result) {
    std::string text;
    for (const auto& d : result.diagnostics) text += format_diagnostic("test.json", d) + "\n";
    return text;
  }

  static std::string with_nodes(const std::string& nodes, const std::string& variables = "{}") {
    return R"({"format_version": 1, "variables": )" + variables + R"(, "nodes": [)" + nodes + "]}";
  }

  NodeRegistry registry_ = testing::make_test_registry();
};

const char* const kSource = R"({"id": "a", "type": "test.source"})";

TEST_F(Validation, AcceptsAValidPipelineAndFillsDefaults) {
  LoadResult result = load(with_nodes(std::string(kSource) +
                                      R"(, {"id": "b", "type": "test.add", "inputs": {"values": ["a.value", "a.value"]}})"));
  ASSERT_TRUE(result.ok()) << dump(result);
  const Pipeline& pipeline = *result.pipeline;
  ASSERT_EQ(pipeline.nodes.size(), 2u);
  EXPECT_EQ(std::get<double>(pipeline.nodes[0].params.at("value")), 1.0);
  EXPECT_EQ(pipeline.nodes[1].inputs.at("values").size(), 2u);
  EXPECT_EQ(pipeline.topological_order, (std::vector<std::size_t>{0, 1}));
}

TEST_F(Validation, InvalidJsonGivesLineAndColumn) {
  expect_error("{\n  \"format_version\": 1,\n  \"nodes\": [\n    {\"id\": \"a\" \"type\": \"test.source\"}\n  ]\n}",
               "line 4, column 21", "invalid JSON", "missing comma");
}

TEST_F(Validation, UnknownNodeTypeSuggestsTheNearestName) {
  expect_error(with_nodes(R"({"id": "a", "type": "test.sourse"})"), "/nodes/0/type",
               "unknown node type 'test.sourse' (node 'a')", "did you mean 'test.source'?");
}

TEST_F(Validation, UnknownNodeTypeListsPluginsThatFailedToLoad) {
  LoadOptions options;
  options.plugin_failures = {"/plugins/libfusionflow-io.so: built for plugin ABI version 7"};
  expect_error(with_nodes(R"({"id": "ct", "type": "io.load_ct"})"), "/nodes/0/type", "unknown node type 'io.load_ct'",
               "plugins that failed to load: /plugins/libfusionflow-io.so: built for plugin ABI version 7", options);
}

TEST_F(Validation, UnknownInputPort) {
  expect_error(with_nodes(std::string(kSource) + R"(, {"id": "b", "type": "test.sleep", "inputs": {"valuez": "a.value"}})"),
               "/nodes/1/inputs/valuez", "unknown input port 'valuez' for node type 'test.sleep'",
               "did you mean 'values'?");
}

TEST_F(Validation, UnknownOutputPortOfTheProducer) {
  expect_error(with_nodes(std::string(kSource) + R"(, {"id": "b", "type": "test.add", "inputs": {"values": "a.valeu"}})"),
               "/nodes/1/inputs/values", "node 'a' (test.source) has no output port 'valeu'", "did you mean 'value'?");
}

TEST_F(Validation, UnknownProducerNode) {
  expect_error(with_nodes(std::string(kSource) + R"(, {"id": "b", "type": "test.add", "inputs": {"values": ["aa.value"]}})"),
               "/nodes/1/inputs/values/0", "no node with id 'aa'", "did you mean 'a'?");
}

TEST_F(Validation, UnknownParameter) {
  expect_error(with_nodes(R"({"id": "a", "type": "test.source", "params": {"valeu": 2}})"), "/nodes/0/params/valeu",
               "unknown parameter 'valeu' for node type 'test.source'", "did you mean 'value'?");
}

TEST_F(Validation, WrongParameterType) {
  expect_error(with_nodes(R"({"id": "p", "type": "test.all_params", "params": {"input": "in.txt", "count": "three"}})"),
               "/nodes/0/params/count", "expects an integer, got \"three\"", "an int in [1, 10]");
  expect_error(with_nodes(R"({"id": "p", "type": "test.all_params", "params": {"input": "in.txt", "flag": 1}})"),
               "/nodes/0/params/flag", "expects true or false");
  expect_error(with_nodes(R"({"id": "p", "type": "test.all_params", "params": {"input": "in.txt", "count": 2.5}})"),
               "/nodes/0/params/count", "expects an integer");
  expect_error(with_nodes(R"({"id": "p", "type": "test.all_params", "params": {"input": "in.txt", "size": [1, 2]}})"),
               "/nodes/0/params/size", "needs exactly 3 values, got 2");
}

TEST_F(Validation, ParameterOutOfRange) {
  expect_error(with_nodes(R"({"id": "p", "type": "test.all_params", "params": {"input": "in.txt", "ratio": 1.5}})"),
               "/nodes/0/params/ratio", "value 1.5 of parameter 'ratio' is out of range", "allowed range: [0, 1]");
  expect_error(with_nodes(R"({"id": "p", "type": "test.all_params", "params": {"input": "in.txt", "size": [1, 200, 3]}})"),
               "/nodes/0/params/size/1", "value 200 of parameter 'size' is out of range", "allowed range: [1, 100]");
}

TEST_F(Validation, InvalidChoice) {
  expect_error(with_nodes(R"({"id": "p", "type": "test.all_params", "params": {"input": "in.txt", "rule": "max-abs"}})"),
               "/nodes/0/params/rule", "\"max-abs\" is not a valid choice", "did you mean 'max_abs'?");
}

TEST_F(Validation, MissingRequiredParameter) {
  expect_error(with_nodes(R"({"id": "p", "type": "test.all_params"})"), "/nodes/0/params",
               "missing required parameter 'input'", "a required input path");
}

TEST_F(Validation, MissingRequiredInput) {
  expect_error(with_nodes(R"({"id": "v", "type": "test.volume_sink"})"), "/nodes/0/inputs",
               "required input 'volume' (Volume) of node 'v' is not connected", "from a node with a Volume output");
}

TEST_F(Validation, OutputToInputTypeMismatch) {
  expect_error(with_nodes(std::string(kSource) + R"(, {"id": "v", "type": "test.volume_sink", "inputs": {"volume": "a.value"}})"),
               "/nodes/1/inputs/volume",
               "type mismatch: 'a.value' is TestValue but input 'volume' of node 'v' (test.volume_sink) takes Volume");
}

TEST_F(Validation, ListOnASingleInputPort) {
  expect_error(with_nodes(std::string(kSource) + R"(, {"id": "v", "type": "test.volume_sink", "inputs": {"volume": ["a.value"]}})"),
               "/nodes/1/inputs/volume", "takes one connection, not a list");
}

TEST_F(Validation, DuplicateIds) {
  expect_error(with_nodes(std::string(kSource) + ", " + kSource), "/nodes/1/id", "duplicate node id 'a'",
               "already used by /nodes/0");
}

TEST_F(Validation, UnknownVariable) {
  expect_error(with_nodes(R"({"id": "p", "type": "test.all_params", "params": {"input": "${subjekt}/in.txt"}})",
                          R"({"subject": "s01"})"),
               "/nodes/0/params/input", "unknown variable '${subjekt}'", "did you mean 'subject'?");
}

TEST_F(Validation, SetOfAnUndeclaredVariable) {
  LoadOptions options;
  options.variable_overrides = {{"ouy", "/tmp"}};
  expect_error(with_nodes(kSource, R"({"out": "results"})"), "--set ouy", "declares no variable 'ouy'",
               "did you mean 'out'?", options);
}

TEST_F(Validation, VariableWithoutDefaultMustBeSet) {
  expect_error(with_nodes(kSource, R"({"ct": null})"), "/variables/ct", "has no default and was not set",
               "--set ct=VALUE");
}

TEST_F(Validation, CycleNamesItsNodes) {
  LoadResult result = load(with_nodes(
      R"({"id": "a", "type": "test.add", "inputs": {"values": ["c.sum"]}},
         {"id": "b", "type": "test.add", "inputs": {"values": ["a.sum"]}},
         {"id": "c", "type": "test.add", "inputs": {"values": ["b.sum"]}},
         {"id": "solo", "type": "test.add", "inputs": {"values": ["solo.sum"]}})"));
  ASSERT_FALSE(result.ok());
  ASSERT_EQ(result.diagnostics.size(), 2u) << dump(result);
  EXPECT_EQ(result.diagnostics[0].message, "cycle: 'a' -> 'b' -> 'c' -> 'a'") << dump(result);
  EXPECT_EQ(result.diagnostics[0].location, "/nodes/0/inputs");
  EXPECT_EQ(result.diagnostics[1].message, "cycle: 'solo' -> 'solo'") << dump(result);
}

TEST_F(Validation, OutputPathMayNotOverwriteAnInput) {
  expect_error(with_nodes(R"({"id": "p", "type": "test.all_params", "params": {"input": "data/ct.nii", "output": "./data/../data/ct.nii"}})"),
               "/nodes/0/params/output", "would overwrite an input of this pipeline (/nodes/0/params/input)");
}

TEST_F(Validation, AnOptionalOutputPathMayStayEmpty) {
  NodeRegistry registry = testing::make_test_registry();
  NodeSpec spec("test.optional_output", "1.0.0", "writes a side file only when asked");
  spec.param("csv_path", Param::OutputPath(""), "optional file");
  registry.add_node({spec, [](NodeContext&) {}});
  LoadResult result = testing::load_test_pipeline(with_nodes(R"({"id": "n", "type": "test.optional_output"})"), registry);
  EXPECT_TRUE(result.ok()) << dump(result);
}

TEST_F(Validation, TopLevelShapeErrors) {
  expect_error(R"({"nodes": [{"id": "a", "type": "test.source"}]})", "", "missing 'format_version'");
  expect_error(R"({"format_version": 2, "nodes": [{"id": "a", "type": "test.source"}]})", "/format_version",
               "format version 2 is not supported");
  expect_error(R"({"format_version": 1, "nodez": [], "nodes": [{"id": "a", "type": "test.source"}]})", "/nodez", "unknown top-level key 'nodez'", "did you mean 'nodes'?");
}

TEST_F(Validation, ReportsEveryProblemAtOnce) {
  LoadResult result = load(with_nodes(
      R"({"id": "a", "type": "test.sourse"},
         {"id": "p", "type": "test.all_params", "params": {"input": "x", "ratio": 7, "colour": 1}},
         {"id": "v", "type": "test.volume_sink"},
         {"id": "p", "type": "test.source"},
         {"id": "q", "type": "test.add", "inputs": {"values": ["zz.sum"]}})"));
  ASSERT_FALSE(result.ok());
  std::vector<std::string> locations;
  for (const auto& d : result.diagnostics) locations.push_back(d.location);
  EXPECT_EQ(locations, (std::vector<std::string>{"/nodes/0/type", "/nodes/3/id", "/nodes/1/params/colour",
                                                 "/nodes/1/params/ratio", "/nodes/2/inputs", "/nodes/4/inputs/values/0"}))
      << dump(result);
}

TEST_F(Validation, VariablesAreSubstitutedAndOverridden) {
  const std::string text = with_nodes(
      R"({"id": "p", "type": "test.all_params",
          "params": {"input": "${root}/${subject}/ct.nii", "count": "${count}", "ratio": "${ratio}",
                     "flag": "${flag}", "size": ["${count}", 4, 5], "name": "cost $$5 in ${pipeline_dir}"}})",
      R"({"root": "/data", "subject": {"default": "s01", "description": "subject id"}, "count": 4, "ratio": "0.25", "flag": true})");
  LoadResult defaults = load(text);
  ASSERT_TRUE(defaults.ok()) << dump(defaults);
  const PipelineNode& node = defaults.pipeline->nodes[0];
  EXPECT_EQ(std::get<std::string>(node.params.at("input")), "/data/s01/ct.nii");
  EXPECT_EQ(std::get<std::int64_t>(node.params.at("count")), 4);
  EXPECT_EQ(std::get<double>(node.params.at("ratio")), 0.25);
  EXPECT_EQ(std::get<bool>(node.params.at("flag")), true);
  EXPECT_EQ(std::get<std::vector<std::int64_t>>(node.params.at("size")), (std::vector<std::int64_t>{4, 4, 5}));
  EXPECT_EQ(std::get<std::string>(node.params.at("name")),
            "cost $5 in " + std::filesystem::current_path().string());

  LoadOptions options;
  options.variable_overrides = {{"subject", "s02"}, {"count", "7"}};
  LoadResult overridden = load(text, options);
  ASSERT_TRUE(overridden.ok()) << dump(overridden);
  EXPECT_EQ(std::get<std::string>(overridden.pipeline->nodes[0].params.at("input")), "/data/s02/ct.nii");
  EXPECT_EQ(std::get<std::int64_t>(overridden.pipeline->nodes[0].params.at("count")), 7);
  EXPECT_EQ(overridden.pipeline->variables.at("subject"), "s02");

  options.variable_overrides = {{"count", "70"}};
  LoadResult out_of_range = load(text, options);
  ASSERT_FALSE(out_of_range.ok());
  EXPECT_EQ(out_of_range.diagnostics[0].location, "/nodes/0/params/count");
}

TEST_F(Validation, VariablesMayUseOtherVariables) {
  const std::string text = with_nodes(R"({"id": "p", "type": "test.all_params", "params": {"input": "${ct}"}})",
                                      R"({"data": "${pipeline_dir}/data", "ct": "${data}/ct.nii.gz"})");
  LoadResult result = load(text);
  ASSERT_TRUE(result.ok()) << dump(result);
  EXPECT_EQ(std::get<std::string>(result.pipeline->nodes[0].params.at("input")),
            std::filesystem::current_path().string() + "/data/ct.nii.gz");
  LoadOptions options;
  options.variable_overrides = {{"data", "/scans"}};
  LoadResult overridden = load(text, options);
  ASSERT_TRUE(overridden.ok()) << dump(overridden);
  EXPECT_EQ(std::get<std::string>(overridden.pipeline->nodes[0].params.at("input")), "/scans/ct.nii.gz");
  LoadResult cycle = load(with_nodes(kSource, R"({"a": "${b}", "b": "${a}"})"));
  ASSERT_EQ(cycle.diagnostics.size(), 2u) << dump(cycle);
  EXPECT_EQ(cycle.diagnostics[0].location, "/variables/a");
  EXPECT_EQ(cycle.diagnostics[0].message, "variable 'a' refers to itself through other variables");
  expect_error(with_nodes(kSource, R"({"a": "${nope}"})"), "/variables/a", "unknown variable '${nope}'");
}

TEST_F(Validation, MissingFileIsReportedNotThrown) {
  LoadResult result = load_pipeline_file("/nonexistent/pipeline.json", registry_);
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(result.diagnostics[0].message, "the pipeline file does not exist");
}

}  // namespace
}  // namespace fusionflow
