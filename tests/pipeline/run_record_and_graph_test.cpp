#include <gtest/gtest.h>

#include <fusionflow/graph.hpp>
#include <fusionflow/node_cache.hpp>
#include <fusionflow/pipeline_builder.hpp>
#include <fusionflow/run_record.hpp>
#include <nlohmann/json.hpp>

#include "test_nodes.hpp"

namespace fusionflow {
namespace {

const char* const kPipeline = R"({
  "format_version": 1,
  "description": "record test",
  "variables": {"scale": 2},
  "nodes": [
    {"id": "left", "type": "test.source", "params": {"value": "${scale}"}},
    {"id": "right", "type": "test.source", "params": {"value": 3}},
    {"id": "sum", "type": "test.add", "inputs": {"values": ["left.value", "right.value"]}}
  ]})";

TEST(RunRecord, ListsEveryNodeWithParametersVersionsAndTimings) {
  NodeRegistry registry = testing::make_test_registry();
  LoadOptions options;
  options.variable_overrides = {{"scale", "5"}};
  LoadResult loaded = testing::load_test_pipeline(kPipeline, registry, options);
  ASSERT_TRUE(loaded.ok());
  RunOptions run_options;
  run_options.threads = 2;
  RunResult result = run_pipeline(*loaded.pipeline, registry, run_options);
  ASSERT_TRUE(result.succeeded);

  const auto record = nlohmann::json::parse(run_record_json(*loaded.pipeline, result, {}, 0));
  EXPECT_EQ(record["run_record_format_version"], 1);
  EXPECT_EQ(record["exit_status"], "succeeded");
  EXPECT_EQ(record["exit_code"], 0);
  EXPECT_EQ(record["threads"], 2);
  EXPECT_EQ(record["variables"]["scale"], "5");
  EXPECT_EQ(record["pipeline"]["file_sha256"].get<std::string>().size(), 64u);
  EXPECT_EQ(record["pipeline"]["resolved_sha256"], resolved_pipeline_sha256(*loaded.pipeline));
  EXPECT_GT(record["peak_memory_bytes"].get<double>(), 0);
  ASSERT_EQ(record["nodes"].size(), 3u);
  const auto& left = record["nodes"][0];
  EXPECT_EQ(left["id"], "left");
  EXPECT_EQ(left["type"], "test.source");
  EXPECT_EQ(left["version"], "1.0.0");
  EXPECT_EQ(left["params"]["value"], 5.0);  // after substitution
  EXPECT_EQ(left["status"], "succeeded");
  EXPECT_GE(left["wall_seconds"].get<double>(), 0.0);
  EXPECT_GE(left["cpu_seconds"].get<double>(), 0.0);
  // All the process's threads include the node's own.
  EXPECT_GE(left["process_cpu_seconds"].get<double>(), left["cpu_seconds"].get<double>());
  EXPECT_TRUE(left["ran_alone"].is_boolean());
  EXPECT_EQ(record["nodes"][2]["inputs"]["values"], (nlohmann::json{"left.value", "right.value"}));
}

TEST(RunRecord, ResolvedHashChangesWithParametersOnly) {
  NodeRegistry registry = testing::make_test_registry();
  LoadOptions five, six;
  five.variable_overrides = {{"scale", "5"}};
  six.variable_overrides = {{"scale", "6"}};
  const auto a = testing::load_test_pipeline(kPipeline, registry, five);
  const auto b = testing::load_test_pipeline(kPipeline, registry, five);
  const auto c = testing::load_test_pipeline(kPipeline, registry, six);
  EXPECT_EQ(resolved_pipeline_sha256(*a.pipeline), resolved_pipeline_sha256(*b.pipeline));
  EXPECT_NE(resolved_pipeline_sha256(*a.pipeline), resolved_pipeline_sha256(*c.pipeline));
  EXPECT_EQ(a.pipeline->source_sha256, c.pipeline->source_sha256);
}

TEST(RunRecord, FailedRunRecordsTheErrorAndNodeStates) {
  NodeRegistry registry = testing::make_test_registry();
  PipelineBuilder builder;
  builder.add_node("x", "test.fail")
      .set_param("x", "message", "bad input")
      .add_node("y", "test.add")
      .connect("x.value", "y.values");
  LoadResult loaded = builder.build(registry);
  ASSERT_TRUE(loaded.ok());
  RunResult result = run_pipeline(*loaded.pipeline, registry);
  const auto record = nlohmann::json::parse(run_record_json(*loaded.pipeline, result, {}, 1));
  EXPECT_EQ(record["exit_status"], "failed");
  EXPECT_EQ(record["exit_code"], 1);
  EXPECT_EQ(record["error"], "node 'x' (type test.fail) failed: bad input");
  EXPECT_EQ(record["nodes"][0]["status"], "failed");
  EXPECT_EQ(record["nodes"][0]["error"], "bad input");
  EXPECT_EQ(record["nodes"][1]["status"], "not_run");
  EXPECT_FALSE(record["nodes"][1].contains("wall_seconds"));
}

// A node with a confidential parameter (a patient identifier) beside an
// ordinary one.
NodeRegistry registry_with_confidential_node() {
  NodeRegistry registry = testing::make_test_registry();
  NodeSpec spec("test.query", "1.0.0", "a node with a patient key");
  spec.param("patient_id", Param::String(""), "a patient identifier")
      .param("note", Param::String(""), "ordinary text")
      .confidential("patient_id");
  registry.add_node({spec, [](NodeContext&) {}});
  return registry;
}

TEST(RunRecord, ConfidentialParametersAndTheVariablesThatFillThemAreWithheld) {
  const NodeRegistry registry = registry_with_confidential_node();
  const char* const pipeline = R"({"format_version": 1,
    "variables": {"pid": "PAT-SECRET-7", "label": "site A"},
    "nodes": [{"id": "q", "type": "test.query", "params": {"patient_id": "${pid}", "note": "${label}"}}]})";
  LoadResult loaded = testing::load_test_pipeline(pipeline, registry);
  ASSERT_TRUE(loaded.ok());
  RunResult result = run_pipeline(*loaded.pipeline, registry);
  ASSERT_TRUE(result.succeeded);
  const std::string text = run_record_json(*loaded.pipeline, result, {}, 0);
  EXPECT_EQ(text.find("PAT-SECRET-7"), std::string::npos) << text;
  const auto record = nlohmann::json::parse(text);
  EXPECT_EQ(record["variables"]["pid"], "(withheld)");
  EXPECT_EQ(record["variables"]["label"], "site A");
  EXPECT_EQ(record["nodes"][0]["params"]["patient_id"], "(withheld)");
  EXPECT_EQ(record["nodes"][0]["params"]["note"], "site A");
  // The node cache keys on the value, but does not keep it.
  const CacheKey key = node_cache_key(loaded.pipeline->nodes[0], {}, registry);
  EXPECT_EQ(key.material.find("PAT-SECRET-7"), std::string::npos) << key.material;
  LoadOptions other;
  other.variable_overrides = {{"pid", "PAT-OTHER-8"}};
  LoadResult changed = testing::load_test_pipeline(pipeline, registry, other);
  ASSERT_TRUE(changed.ok());
  EXPECT_NE(node_cache_key(changed.pipeline->nodes[0], {}, registry).hex, key.hex);

  NodeSpec unknown("test.unknown", "1.0.0", "no such parameter");
  EXPECT_THROW(unknown.confidential("patient_id"), std::invalid_argument);
}

TEST(Graph, TopologicalOrderRespectsEveryEdge) {
  const std::vector<std::pair<std::size_t, std::size_t>> edges{{3, 1}, {1, 0}, {2, 0}, {3, 2}, {4, 3}};
  DagAnalysis analysis = analyse_dag(5, edges);
  ASSERT_TRUE(analysis.topological_order.has_value());
  std::vector<std::size_t> position(5);
  for (std::size_t i = 0; i < 5; ++i) position[(*analysis.topological_order)[i]] = i;
  for (const auto& [from, to] : edges) EXPECT_LT(position[from], position[to]);
  EXPECT_TRUE(analysis.cycles.empty());
}

TEST(Graph, FindsOneCyclePerStronglyConnectedComponent) {
  DagAnalysis analysis = analyse_dag(6, {{0, 1}, {1, 2}, {2, 0}, {3, 4}, {4, 3}, {2, 5}});
  EXPECT_FALSE(analysis.topological_order.has_value());
  ASSERT_EQ(analysis.cycles.size(), 2u);
  EXPECT_EQ(analysis.cycles[0], (std::vector<std::size_t>{0, 1, 2}));
  EXPECT_EQ(analysis.cycles[1], (std::vector<std::size_t>{3, 4}));
}

TEST(Graph, DotHasNodeTypesAndPortNames) {
  NodeRegistry registry = testing::make_test_registry();
  // kPipeline as built in code ("${scale}" at its default, 2).
  PipelineBuilder builder;
  builder.description("record test")
      .add_node("left", "test.source")
      .set_param("left", "value", ParamValue(2.0))
      .add_node("right", "test.source")
      .set_param("right", "value", ParamValue(3.0))
      .add_node("sum", "test.add")
      .connect("left.value", "sum.values")
      .connect("right.value", "sum.values");
  LoadResult loaded = builder.build(registry);
  ASSERT_TRUE(loaded.ok());
  const std::string dot = pipeline_to_dot(*loaded.pipeline);
  EXPECT_NE(dot.find("digraph"), std::string::npos);
  EXPECT_NE(dot.find("left\\ntest.source"), std::string::npos) << dot;
  EXPECT_NE(dot.find("sum\\ntest.add"), std::string::npos) << dot;
  EXPECT_NE(dot.find("0->2 [label=\"value -> values\"]"), std::string::npos) << dot;
  EXPECT_NE(dot.find("1->2 [label=\"value -> values\"]"), std::string::npos) << dot;
}

}  // namespace
}  // namespace fusionflow
