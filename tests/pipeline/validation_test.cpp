// One test per class of pipeline error: each must be reported with its JSON
// location and a hint, and nothing may run.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <chrono>
#include <fstream>

#include "test_nodes.hpp"
#include "test_support.hpp"

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
  LoadResult result = load(with_nodes(
      std::string(kSource) + R"(, {"id": "b", "type": "test.add", "inputs": {"values": ["a.value", "a.value"]}})"));
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
  expect_error(
      with_nodes(std::string(kSource) + R"(, {"id": "b", "type": "test.sleep", "inputs": {"valuez": "a.value"}})"),
      "/nodes/1/inputs/valuez", "unknown input port 'valuez' for node type 'test.sleep'", "did you mean 'values'?");
}

TEST_F(Validation, UnknownOutputPortOfTheProducer) {
  expect_error(
      with_nodes(std::string(kSource) + R"(, {"id": "b", "type": "test.add", "inputs": {"values": "a.valeu"}})"),
      "/nodes/1/inputs/values", "node 'a' (test.source) has no output port 'valeu'", "did you mean 'value'?");
}

TEST_F(Validation, UnknownProducerNode) {
  expect_error(
      with_nodes(std::string(kSource) + R"(, {"id": "b", "type": "test.add", "inputs": {"values": ["aa.value"]}})"),
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
  expect_error(
      with_nodes(R"({"id": "p", "type": "test.all_params", "params": {"input": "in.txt", "size": [1, 200, 3]}})"),
      "/nodes/0/params/size/1", "value 200 of parameter 'size' is out of range", "allowed range: [1, 100]");
}

TEST_F(Validation, InvalidChoice) {
  expect_error(
      with_nodes(R"({"id": "p", "type": "test.all_params", "params": {"input": "in.txt", "rule": "max-abs"}})"),
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
  expect_error(with_nodes(std::string(kSource) +
                          R"(, {"id": "v", "type": "test.volume_sink", "inputs": {"volume": "a.value"}})"),
               "/nodes/1/inputs/volume",
               "type mismatch: 'a.value' is TestValue but input 'volume' of node 'v' (test.volume_sink) takes Volume");
}

TEST_F(Validation, ListOnASingleInputPort) {
  expect_error(with_nodes(std::string(kSource) +
                          R"(, {"id": "v", "type": "test.volume_sink", "inputs": {"volume": ["a.value"]}})"),
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
  expect_error(
      with_nodes(
          R"({"id": "p", "type": "test.all_params", "params": {"input": "data/ct.nii", "output": "./data/../data/ct.nii"}})"),
      "/nodes/0/params/output", "would overwrite an input of this pipeline (/nodes/0/params/input)");
}

TEST_F(Validation, AnOptionalOutputPathMayStayEmpty) {
  NodeRegistry registry = testing::make_test_registry();
  NodeSpec spec("test.optional_output", "1.0.0", "writes a side file only when asked");
  spec.param("csv_path", Param::OutputPath(""), "optional file");
  registry.add_node({spec, [](NodeContext&) {}});
  LoadResult result =
      testing::load_test_pipeline(with_nodes(R"({"id": "n", "type": "test.optional_output"})"), registry);
  EXPECT_TRUE(result.ok()) << dump(result);
}

TEST_F(Validation, TopLevelShapeErrors) {
  expect_error(R"({"nodes": [{"id": "a", "type": "test.source"}]})", "", "missing 'format_version'");
  expect_error(R"({"format_version": 2, "nodes": [{"id": "a", "type": "test.source"}]})", "/format_version",
               "format version 2 is not supported");
  expect_error(R"({"format_version": 1, "nodez": [], "nodes": [{"id": "a", "type": "test.source"}]})", "/nodez",
               "unknown top-level key 'nodez'", "did you mean 'nodes'?");
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
  EXPECT_EQ(locations,
            (std::vector<std::string>{"/nodes/0/type", "/nodes/3/id", "/nodes/1/params/colour", "/nodes/1/params/ratio",
                                      "/nodes/2/inputs", "/nodes/4/inputs/values/0"}))
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
  EXPECT_EQ(std::get<std::string>(node.params.at("name")), "cost $5 in " + std::filesystem::current_path().string());

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

// --- limits and hostile input (docs/pipeline-format.md, "Limits") -------------

std::string repeated(const std::string& text, std::size_t count) {
  std::string result;
  result.reserve(text.size() * count);
  for (std::size_t i = 0; i < count; ++i) result += text;
  return result;
}

double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

TEST_F(Validation, NestingIsLimitedBeforeTheDocumentIsBuilt) {
  // The document is depth 1, "nodes" 2, the node 3, "params" 4, then lists.
  auto nested = [](std::size_t lists) {
    return R"({"format_version": 1, "nodes": [{"id": "a", "type": "test.source", "params": {"value": )" +
           repeated("[", lists) + repeated("]", lists) + "}}]}";
  };
  expect_error(nested(PipelineLimits::max_depth - 4), "/nodes/0/params/value", "expects a number, got a list");
  // The location of the first list too many: its pointer, line and column.
  const std::string deepest = "/nodes/0/params/value" + repeated("/0", PipelineLimits::max_depth - 4);
  const std::string too_deep = nested(PipelineLimits::max_depth - 3);
  const std::string column = std::to_string(too_deep.find("[[") + PipelineLimits::max_depth - 4 + 1);
  expect_error(too_deep, deepest + " (line 1, column " + column + ")", "nesting deeper than 64 levels",
               "only a few levels deep");
  // Deep enough to overflow the stack of any recursive reader.
  expect_error(nested(1'000'000), deepest + " (line 1, column " + column + ")", "nesting deeper than 64 levels");
}

TEST_F(Validation, HugeNamesAreRefusedQuicklyWithTheirLength) {
  const std::string huge(4u << 20, 'a');
  const auto start = std::chrono::steady_clock::now();
  expect_error(
      with_nodes(R"({"id": ")" + huge + R"(", "type": "test.source"})"), "/nodes/0/id",
      "node id 'aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa... (4194304 bytes)' is too long: the limit is 256 bytes");
  expect_error(with_nodes(R"({"id": "a", "type": "test.)" + huge + R"("})"), "/nodes/0/type",
               "node type 'test.aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa... (4194309 bytes)' is too long");
  expect_error(with_nodes(kSource, R"({")" + huge + R"(": "x"})"),
               "/variables/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa... (4194304 bytes)",
               "variable name 'aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa... (4194304 bytes)' is too long");
  // Unknown keys, connections and variables that long: short messages, no suggestion search.
  const std::string long_name(3u << 20, 'b');
  LoadResult result = load(with_nodes(R"({"id": "a", "type": "test.add", ")" + long_name +
                                      R"(": 1, "inputs": {"values": [")" + long_name + R"(.x", "${)" + long_name +
                                      R"(}"]}}, {"id": "b", "type": "test.all_params", "params": {"input": "${)" +
                                      long_name + R"(}"}})"));
  ASSERT_EQ(result.diagnostics.size(), 4u) << dump(result);
  for (const Diagnostic& d : result.diagnostics) {
    EXPECT_LT(d.location.size() + d.message.size() + d.hint.size(), 400u) << dump(result);
  }
  EXPECT_LT(seconds_since(start), 10.0);  // was minutes: edit distance of megabyte-long names
  // The longest valid names are fine.
  const std::string longest(PipelineLimits::max_name_length, 'v');
  LoadResult valid = load(with_nodes(
      R"({"id": ")" + longest + R"(", "type": "test.all_params", "params": {"input": "${)" + longest + R"(}"}})",
      R"({")" + longest + R"(": "in.txt"})"));
  EXPECT_TRUE(valid.ok()) << dump(valid);
}

TEST_F(Validation, DidYouMeanStaysWithinItsBudgetOnManyLongWrongNames) {
  std::string nodes;
  for (int i = 0; i < 2000; ++i)
    nodes += R"({"id": "n)" + std::to_string(i) + std::string(250, 'x') + R"(", "type": "test.source"}, )";
  std::string references;
  for (int i = 0; i < 900; ++i)
    references += std::string(i ? ", " : "") + "\"m" + std::to_string(i) + std::string(250, 'x') + ".value\"";
  const auto start = std::chrono::steady_clock::now();
  LoadResult result =
      load(with_nodes(nodes + R"({"id": "sum", "type": "test.add", "inputs": {"values": [)" + references + "]}}"));
  EXPECT_LT(seconds_since(start), 10.0);
  ASSERT_EQ(result.diagnostics.size(), 900u);
  EXPECT_NE(result.diagnostics[0].hint.find("valid node ids: n0xxxxxxxx"), std::string::npos)
      << result.diagnostics[0].hint;
  EXPECT_NE(result.diagnostics[0].hint.find("(2000 more)"), std::string::npos) << result.diagnostics[0].hint;
}

TEST_F(Validation, ExponentialVariablesAreRefusedNamingTheVariableAndTheLimit) {
  std::string variables = R"({"v0": "ab")";
  for (int i = 1; i <= 60; ++i) {
    variables +=
        ", \"v" + std::to_string(i) + "\": \"${v" + std::to_string(i - 1) + "}${v" + std::to_string(i - 1) + "}\"";
  }
  variables += "}";
  // v19 is 2^20 bytes (the limit), v20 twice that.
  expect_error(
      with_nodes(R"({"id": "p", "type": "test.all_params", "params": {"input": "x", "name": "${v60}"}})", variables),
      "/variables/v20", "variable 'v20' expands to 2097152 bytes, more than the limit of 1 MiB (1048576 bytes)",
      "check the definitions of 'v20'");
}

TEST_F(Validation, ExpansionIsLimitedInTotalAndPerParameter) {
  const std::string mebibyte(PipelineLimits::max_expanded_bytes, 'm');
  expect_error(with_nodes(R"({"id": "p", "type": "test.all_params", "params": {"input": "x", "name": "${big}!"}})",
                          R"({"big": ")" + mebibyte + R"("})"),
               "/nodes/0/params/name", "parameter 'name' expands to 1048577 bytes, more than the limit of 1 MiB");
  std::string nodes;
  for (int i = 0; i < 70; ++i) {
    nodes += std::string(i ? ", " : "") + R"({"id": "p)" + std::to_string(i) +
             R"(", "type": "test.all_params", "params": {"input": "x", "name": "${big}"}})";
  }
  LoadResult result = load(with_nodes(nodes, R"({"big": ")" + mebibyte + R"("})"));
  ASSERT_FALSE(result.ok());
  // The variable, 62 names of 1 MiB and the one-byte inputs fill 64 MiB: the 63rd name does not fit.
  EXPECT_EQ(result.diagnostics.size(), 70u - 62u) << dump(result);
  EXPECT_EQ(result.diagnostics[0].location, "/nodes/62/params/name");
  EXPECT_NE(result.diagnostics[0].message.find("expand to more than 64 MiB in total"), std::string::npos);
}

TEST_F(Validation, ALongChainOfVariablesResolves) {
  // Each variable is defined by the next, in reverse order of their names.
  std::string variables = "{";
  for (int i = 0; i < 3000; ++i) {
    variables +=
        "\"v" + std::to_string(i) + "\": \"${v" + std::to_string(i + 1) + "}" + (i % 1000 == 0 ? "/" : "") + "\", ";
  }
  variables += R"("v3000": "end"})";
  LoadResult result =
      load(with_nodes(R"({"id": "p", "type": "test.all_params", "params": {"input": "${v0}"}})", variables));
  ASSERT_TRUE(result.ok()) << dump(result);
  EXPECT_EQ(std::get<std::string>(result.pipeline->nodes[0].params.at("input")), "end///");
  EXPECT_EQ(result.pipeline->variables.at("v2500"), "end");
}

TEST_F(Validation, DollarDollarIsALiteralDollarInVariablesToo) {
  const std::string text =
      with_nodes(R"({"id": "p", "type": "test.all_params", "params": {"input": "${price}", "name": "${both}"}})",
                 R"({"price": "cost $$5 or $${HOME}", "both": "${price} $$$$", "lone": "a$b"})");
  LoadResult result = load(text);
  ASSERT_TRUE(result.ok()) << dump(result);
  EXPECT_EQ(std::get<std::string>(result.pipeline->nodes[0].params.at("input")), "cost $5 or ${HOME}");
  EXPECT_EQ(std::get<std::string>(result.pipeline->nodes[0].params.at("name")), "cost $5 or ${HOME} $$");
  EXPECT_EQ(result.pipeline->variables.at("lone"), "a$b");
  LoadOptions options;
  options.variable_overrides = {{"price", "$${x}"}};
  LoadResult overridden = load(text, options);
  ASSERT_TRUE(overridden.ok()) << dump(overridden);
  EXPECT_EQ(std::get<std::string>(overridden.pipeline->nodes[0].params.at("input")), "${x}");
}

TEST_F(Validation, VariablesUsingACycleAreNotReportedTwice) {
  LoadResult result = load(with_nodes(R"({"id": "p", "type": "test.all_params", "params": {"input": "${c}"}})",
                                      R"({"a": "${b}", "b": "${a}", "c": "${a}/x", "self": "${self}", "ok": "1"})"));
  std::vector<std::string> locations;
  for (const auto& d : result.diagnostics) locations.push_back(d.location);
  EXPECT_EQ(locations, (std::vector<std::string>{"/variables/a", "/variables/b", "/variables/self"})) << dump(result);
  EXPECT_NE(result.diagnostics[0].hint.find("'a' uses '${b}'"), std::string::npos) << dump(result);
  // An unknown variable used by others is reported once, where it is used first.
  LoadResult unknown = load(with_nodes(R"({"id": "p", "type": "test.all_params", "params": {"input": "${b}"}})",
                                       R"({"a": "${nope}", "b": "${a}"})"));
  ASSERT_EQ(unknown.diagnostics.size(), 1u) << dump(unknown);
  EXPECT_EQ(unknown.diagnostics[0].location, "/variables/a");
}

TEST_F(Validation, NumberBeyondADoubleGivesItsLocation) {
  expect_error(
      "{\"format_version\": 1,\n \"nodes\": [{\"id\": \"a\", \"type\": \"test.source\", \"params\": {\"value\": "
      "-2e400}}]}",
      "/nodes/0/params/value (line 2, column 67)", "number -2e400 is beyond the range of a double", "smaller number");
  expect_error(
      with_nodes(R"({"id": "p", "type": "test.all_params", "params": {"input": "x", "weights": [1, 1E+309]}})"),
      "/nodes/0/params/weights/1 (line 1, column 129)", "number 1E+309 is beyond the range of a double");
}

TEST_F(Validation, DuplicateKeysAreReportedAtTheSecondKey) {
  LoadResult result = load(
      "{\"format_version\": 1,\n"
      " \"nodes\": [{\"id\": \"a\", \"type\": \"test.source\", \"params\": {\"value\": 1, \"value\": 2}}],\n"
      " \"format_version\": 1, \"x\\\"y\": 1, \"x\\u0022y\": 2}");
  std::vector<std::string> locations;
  for (const auto& d : result.diagnostics) locations.push_back(d.location);
  EXPECT_EQ(locations, (std::vector<std::string>{"/nodes/0/params/value (line 2, column 70)",
                                                 "/format_version (line 3, column 2)", "/x\"y (line 3, column 34)"}))
      << dump(result);
  EXPECT_EQ(result.diagnostics[0].message, "duplicate key 'value'");
  EXPECT_NE(result.diagnostics[0].hint.find("may appear only once"), std::string::npos);
}

TEST_F(Validation, NulBytesAreRefused) {
  expect_error(with_nodes(kSource) + std::string("\0{\"garbage\"", 11), "line 1, column 86",
               "the file contains a NUL byte", "UTF-16");
  // Escaped in a string, U+0000 is valid JSON, but no parameter may hold it.
  expect_error(with_nodes(R"({"id": "p", "type": "test.all_params", "params": {"input": "in\u0000.txt"}})"),
               "/nodes/0/params/input", "parameter 'input' contains a NUL character");
}

TEST_F(Validation, DescriptionsMustBeStrings) {
  expect_error(with_nodes(R"({"id": "a", "type": "test.source", "description": 7})"), "/nodes/0/description",
               "must be a string, not an integer", "free text");
  expect_error(with_nodes(kSource, R"({"v": {"default": "1", "description": ["x"]}})"), "/variables/v/description",
               "must be a string, not a list");
  expect_error(R"({"format_version": 1, "description": {}, "nodes": [{"id": "a", "type": "test.source"}]})",
               "/description", "must be a string, not an object");
}

TEST_F(Validation, AnEmptyListOnARequiredMultiInputIsAnError) {
  expect_error(with_nodes(R"({"id": "sum", "type": "test.add", "inputs": {"values": []}})"), "/nodes/0/inputs/values",
               "required input 'values' (TestValue) of node 'sum' has an empty list", "list at least one");
  // On an optional multi-input it means "not connected".
  LoadResult optional = load(with_nodes(R"({"id": "s", "type": "test.sleep", "inputs": {"values": []}})"));
  ASSERT_TRUE(optional.ok()) << dump(optional);
  EXPECT_TRUE(optional.pipeline->nodes[0].inputs.at("values").empty());
}

TEST_F(Validation, TooManyProblemsAreCounted) {
  std::string nodes;
  for (int i = 0; i < 1500; ++i) {
    nodes += std::string(i ? ", " : "") + R"({"id": "n)" + std::to_string(i) + R"(", "type": "test.nothing"})";
  }
  LoadResult result = load(with_nodes(nodes));
  ASSERT_EQ(result.diagnostics.size(), PipelineLimits::max_diagnostics + 1);
  EXPECT_EQ(result.diagnostics.back().message, "500 more problems not listed (only the first 1000 are)");
}

TEST_F(Validation, TenThousandNodesLoad) {
  std::string nodes = kSource;
  std::string all;
  for (int i = 1; i < 10000; ++i) {
    const std::string id = "n" + std::to_string(i);
    nodes += R"(, {"id": ")" + id + R"(", "type": "test.add", "inputs": {"values": ["a.value"]}})";
    all += std::string(i > 1 ? ", " : "") + "\"" + id + ".sum\"";
  }
  nodes += R"(, {"id": "total", "type": "test.add", "inputs": {"values": [)" + all + "]}}";
  const auto start = std::chrono::steady_clock::now();
  LoadResult result = load(with_nodes(nodes));
  ASSERT_TRUE(result.ok()) << dump(result);
  EXPECT_EQ(result.pipeline->nodes.size(), 10001u);
  EXPECT_LT(seconds_since(start), 10.0);
}

TEST_F(Validation, OnlyRegularFilesWithinTheSizeLimitAreRead) {
  const std::filesystem::path dir = testing::fresh_temp_directory("validation-files");
  auto message_for = [&](const std::filesystem::path& path) {
    LoadResult result = load_pipeline_file(path, registry_);
    EXPECT_FALSE(result.ok());
    return result.diagnostics.empty() ? std::string()
                                      : result.diagnostics[0].message + " | " + result.diagnostics[0].hint;
  };
  EXPECT_EQ(message_for("/dev/zero").rfind("the pipeline path is a character device, not a regular file", 0), 0u);
  EXPECT_EQ(message_for(dir).rfind("the pipeline path is a directory, not a regular file", 0), 0u);
  ASSERT_EQ(::mkfifo((dir / "fifo").c_str(), 0600), 0);
  EXPECT_EQ(message_for(dir / "fifo").rfind("the pipeline path is a FIFO (named pipe), not a regular file", 0), 0u);
  {
    std::ofstream(dir / "big.json") << with_nodes(kSource);
    std::filesystem::resize_file(dir / "big.json", PipelineLimits::max_file_bytes + 1);  // sparse: not written
  }
  EXPECT_EQ(message_for(dir / "big.json"),
            "the pipeline file is 16.0 MiB; the limit is 16 MiB (16777216 bytes) | a pipeline holds nodes, parameters "
            "and variables; large data belongs in the files its nodes read");
  std::ofstream(dir / "empty.json").close();
  EXPECT_EQ(message_for(dir / "empty.json").rfind("the file is empty", 0), 0u);
  std::ofstream(dir / "ok.json") << "\xEF\xBB\xBF" << with_nodes(kSource);  // a byte order mark is fine
  EXPECT_TRUE(load_pipeline_file(dir / "ok.json", registry_).ok());
  std::filesystem::remove_all(dir);
}

TEST_F(Validation, SyntaxErrorHintsNameCommonMistakes) {
  expect_error("{\"format_version\": 1,\n \"nodes\": [{\"id\": \"a\", \"type\": \"test.source\"},\n ]}",
               "line 3, column 2", "invalid JSON", "remove the comma before this ']': JSON allows no trailing commas");
  expect_error("{\"format_version\": 1, // the version\n \"nodes\": []}", "line 1, column 23", "invalid JSON",
               "JSON has no comments");
  expect_error("{'format_version': 1}", "line 1, column 2", "invalid JSON", "double quotes");
  expect_error("   \r\n\t", "", "the file holds only white space", "a pipeline is a JSON object");
}

TEST_F(Validation, MissingFileIsReportedNotThrown) {
  LoadResult result = load_pipeline_file("/nonexistent/pipeline.json", registry_);
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(result.diagnostics[0].message, "the pipeline file does not exist");
}

}  // namespace
}  // namespace fusionflow
