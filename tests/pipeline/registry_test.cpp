#include <gtest/gtest.h>

#include <fusionflow/sdk.hpp>
#include <fusionflow/registry.hpp>

#include "test_nodes.hpp"

namespace fusionflow {
namespace {

RunFunction no_op() {
  return [](NodeContext&) {};
}

TEST(Registry, FindsRegisteredNodeTypesWithTheirSpecAndOrigin) {
  NodeRegistry registry = testing::make_test_registry();
  const RegisteredNode* add = registry.find_node("test.add");
  ASSERT_NE(add, nullptr);
  EXPECT_EQ(add->spec().version(), "1.0.0");
  ASSERT_EQ(add->spec().inputs().size(), 1u);
  EXPECT_TRUE(add->spec().inputs()[0].multi);
  EXPECT_EQ(add->spec().inputs()[0].type, "TestValue");
  EXPECT_EQ(add->origin.plugin_name, "(host)");
  EXPECT_EQ(registry.find_node("test.missing"), nullptr);
}

TEST(Registry, ListsNodeTypesSortedByName) {
  NodeRegistry registry = testing::make_test_registry();
  std::vector<std::string> names;
  for (const RegisteredNode* node : registry.nodes()) names.push_back(node->spec().type());
  EXPECT_TRUE(std::is_sorted(names.begin(), names.end()));
  EXPECT_EQ(names.size(), 9u);
}

TEST(Registry, KnowsTheSdkPayloadTypes) {
  NodeRegistry registry;
  EXPECT_NE(registry.find_payload_type("Volume"), nullptr);
  EXPECT_NE(registry.find_payload_type("Table"), nullptr);
  EXPECT_EQ(registry.find_payload_type("Nope"), nullptr);
}

TEST(Registry, RefusesADuplicateTypeNamingTheFirstOrigin) {
  NodeRegistry registry;
  NodeSpec spec("demo.node", "1.0.0", "demo");
  registry.add_node({spec, no_op()}, {"first", "1.0", "/plugins/first.so"});
  try {
    registry.add_node({spec, no_op()}, {"second", "1.0", "/plugins/second.so"});
    FAIL() << "duplicate accepted";
  } catch (const std::invalid_argument& error) {
    EXPECT_NE(std::string(error.what()).find("already registered by plugin 'first' (/plugins/first.so)"),
              std::string::npos)
        << error.what();
  }
}

TEST(Registry, RefusesMalformedSpecs) {
  NodeRegistry registry;
  auto refuses = [&](NodeSpec spec, const std::string& expected) {
    try {
      registry.add_node({std::move(spec), no_op()});
      ADD_FAILURE() << "accepted a spec that should fail with: " << expected;
    } catch (const std::invalid_argument& error) {
      EXPECT_NE(std::string(error.what()).find(expected), std::string::npos) << error.what();
    }
  };
  refuses(NodeSpec("NoFamily", "1.0.0", ""), "family.name");
  refuses(NodeSpec("demo.node", "", ""), "no version");
  NodeSpec unknown_type("demo.node", "1.0.0", "");
  unknown_type.add_input({"in", "Imaginary", "", false, false});
  refuses(unknown_type, "unknown payload type 'Imaginary'");
  NodeSpec twice("demo.node", "1.0.0", "");
  twice.param("a", Param::Int(1), "").param("a", Param::Int(2), "");
  refuses(twice, "parameter 'a' twice");
  NodeSpec out_of_range("demo.node", "1.0.0", "");
  out_of_range.param("a", Param::Float(5.0).range(0, 1), "");
  refuses(out_of_range, "outside its range");
  NodeSpec bad_choice("demo.node", "1.0.0", "");
  bad_choice.param("rule", Param::Choice({"x", "y"}, "z"), "");
  refuses(bad_choice, "not one of its choices");
}

TEST(Registry, SuggestsTheNearestTypeName) {
  NodeRegistry registry = testing::make_test_registry();
  EXPECT_EQ(registry.nearest_node_types("test.ad"), std::vector<std::string>{"test.add"});
  EXPECT_EQ(registry.nearest_node_types("test.sleeep"), std::vector<std::string>{"test.sleep"});
  EXPECT_TRUE(registry.nearest_node_types("completely.unrelated_name").empty());
}

TEST(Registry, EditDistance) {
  EXPECT_EQ(edit_distance("", ""), 0u);
  EXPECT_EQ(edit_distance("kitten", "sitting"), 3u);
  EXPECT_EQ(edit_distance("io.load_ct", "io.load_cx"), 1u);
}

TEST(Registry, ThreadBudgetHooksReceiveTheRunsThreadCount) {
  NodeRegistry registry;
  int seen = 0;
  registry.add_thread_budget_hook([&](int threads) { seen = threads; });
  registry.apply_thread_budget(3);
  EXPECT_EQ(seen, 3);
}

}  // namespace
}  // namespace fusionflow
