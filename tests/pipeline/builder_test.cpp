// PipelineBuilder: pipelines built in C++ go through the loader a file goes
// through, and run.
#include <gtest/gtest.h>

#include <fusionflow/executor.hpp>
#include <fusionflow/pipeline_builder.hpp>

#include <cmath>

#include "test_nodes.hpp"

namespace fusionflow {
namespace {

std::string messages(const LoadResult& result) {
  std::string text;
  for (const Diagnostic& d : result.diagnostics) text += d.location + ": " + d.message + " | " + d.hint + "\n";
  return text;
}

TEST(PipelineBuilder, BuildsAPipelineThatRunsLikeItsFile) {
  const NodeRegistry registry = testing::make_test_registry();
  PipelineBuilder builder("built");
  builder.description("two sources into a sum")
      .add_node("a", "test.source")
      .set_param("a", "value", ParamValue(2.0))
      .add_node("b", "test.source")
      .set_param("b", "value", ParamValue(3.5))
      .add_node("sum", "test.add")
      .connect("a.value", "sum.values")
      .connect("b.value", "sum.values")
      .add_node("probe", "test.probe")
      .connect("sum.sum", "probe.values");
  const LoadResult loaded = builder.build(registry);
  ASSERT_TRUE(loaded.ok()) << messages(loaded);
  const Pipeline& pipeline = *loaded.pipeline;
  EXPECT_EQ(pipeline.source_name, "built");
  EXPECT_EQ(pipeline.description, "two sources into a sum");
  ASSERT_EQ(pipeline.nodes.size(), 4u);
  EXPECT_EQ(std::get<double>(pipeline.nodes[1].params.at("value")), 3.5);
  ASSERT_EQ(pipeline.nodes[2].inputs.at("values").size(), 2u);  // both producers, in order
  EXPECT_EQ(pipeline.nodes[2].inputs.at("values")[1].node, 1u);

  // The text it stands for loads to the same pipeline.
  const LoadResult from_text = testing::load_test_pipeline(builder.to_json(), registry);
  ASSERT_TRUE(from_text.ok()) << messages(from_text);
  EXPECT_EQ(from_text.pipeline->source_sha256, pipeline.source_sha256);

  const RunResult run = run_pipeline(pipeline, registry);
  EXPECT_TRUE(run.succeeded) << run.error;
}

TEST(PipelineBuilder, ReportsWhatAFileWouldGetWithTheSameValidator) {
  const NodeRegistry registry = testing::make_test_registry();
  PipelineBuilder builder;
  builder.add_node("p", "test.all_params")
      .set_param("p", "ratio", ParamValue(std::nan("")))
      .set_param("p", "rule", "max-abs")
      .add_node("x", "test.sourse")
      .add_node("sum", "test.add")
      .connect("nowhere.value", "sum.values");
  const LoadResult loaded = builder.build(registry);
  ASSERT_FALSE(loaded.ok());
  const std::string text = messages(loaded);
  EXPECT_NE(text.find("parameter 'ratio' must be finite"), std::string::npos) << text;
  EXPECT_NE(text.find("\"max-abs\" is not a valid choice for parameter 'rule'"), std::string::npos) << text;
  EXPECT_NE(text.find("did you mean 'max_abs'?"), std::string::npos) << text;
  EXPECT_NE(text.find("missing required parameter 'input'"), std::string::npos) << text;
  EXPECT_NE(text.find("unknown node type 'test.sourse'"), std::string::npos) << text;
  EXPECT_NE(text.find("nowhere"), std::string::npos) << text;
}

TEST(PipelineBuilder, TakesTextAsItIsAndRefusesUnknownNodesInCalls) {
  const NodeRegistry registry = testing::make_test_registry();
  PipelineBuilder builder;
  builder.add_node("p", "test.all_params").set_param("p", "input", "cost $5 ${HOME}.txt");
  const LoadResult loaded = builder.build(registry);
  ASSERT_TRUE(loaded.ok()) << messages(loaded);
  EXPECT_EQ(std::get<std::string>(loaded.pipeline->nodes[0].params.at("input")), "cost $5 ${HOME}.txt");
  EXPECT_THROW(builder.set_param("q", "ratio", ParamValue(0.5)), std::invalid_argument);
  EXPECT_THROW(builder.connect("p.value", "q.values"), std::invalid_argument);
  EXPECT_THROW(builder.connect("p", "p.values"), std::invalid_argument);
}

TEST(PipelineBuilder, VariablesAndTemplatesAreSubstitutedAndOverridden) {
  const NodeRegistry registry = testing::make_test_registry();
  PipelineBuilder builder;
  builder.variable("name", "first", "what the file is called")
      .add_node("p", "test.all_params")
      .set_param_template("p", "input", "${name}.txt");
  const LoadResult defaults = builder.build(registry);
  ASSERT_TRUE(defaults.ok()) << messages(defaults);
  EXPECT_EQ(std::get<std::string>(defaults.pipeline->nodes[0].params.at("input")), "first.txt");
  LoadOptions options;
  options.variable_overrides["name"] = "second";
  const LoadResult overridden = builder.build(registry, options);
  ASSERT_TRUE(overridden.ok()) << messages(overridden);
  EXPECT_EQ(std::get<std::string>(overridden.pipeline->nodes[0].params.at("input")), "second.txt");
  // A template naming an undeclared variable gets the loader's message.
  PipelineBuilder undeclared;
  undeclared.add_node("p", "test.all_params").set_param_template("p", "input", "${nobody}.txt");
  const LoadResult refused = undeclared.build(registry);
  ASSERT_FALSE(refused.ok());
  EXPECT_NE(messages(refused).find("/nodes/0/params/input"), std::string::npos) << messages(refused);
}

TEST(PipelineBuilder, ReadsAFileBackAsItWasAndLetsCodeChangeIt) {
  const NodeRegistry registry = testing::make_test_registry();
  PipelineBuilder original("original");
  original.description("from a file")
      .variable("x", "2.5")
      .add_node("a", "test.source")
      .set_param("a", "value", ParamValue(1.5))
      .add_node("b", "test.source")
      .add_node("sum", "test.add")
      .connect("a.value", "sum.values")
      .connect("b.value", "sum.values")
      .add_node("p", "test.all_params")
      .set_param_template("p", "input", "${x}/in.txt")
      .set_param("p", "ratio", ParamValue(0.25));
  const std::string text = original.to_json();
  PipelineBuilder read = PipelineBuilder::from_json(text, "read");
  EXPECT_EQ(read.to_json(), text);
  EXPECT_EQ(read.nodes(), original.nodes());
  EXPECT_EQ(read.node_type("sum"), "test.add");
  EXPECT_EQ(read.node_type("nobody"), "");
  read.add_node("probe", "test.probe").connect("sum.sum", "probe.values");
  const LoadResult loaded = read.build(registry);
  ASSERT_TRUE(loaded.ok()) << messages(loaded);
  EXPECT_EQ(std::get<std::string>(loaded.pipeline->nodes[3].params.at("input")), "2.5/in.txt");
  EXPECT_TRUE(run_pipeline(*loaded.pipeline, registry).succeeded);

  EXPECT_THROW(PipelineBuilder::from_json("{", "broken"), std::invalid_argument);
  EXPECT_THROW(PipelineBuilder::from_json(R"({"nodes": [{"id": 3}]})", "bad id"), std::invalid_argument);
  EXPECT_THROW(PipelineBuilder::from_json(R"({"format_version": 1})", "no nodes"), std::invalid_argument);
}

}  // namespace
}  // namespace fusionflow
