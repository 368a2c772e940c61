#include "test_nodes.hpp"

#include <chrono>
#include <filesystem>
#include <stdexcept>
#include <thread>

#include <fusionflow/sdk.hpp>

FUSIONFLOW_PAYLOAD_TYPE(fusionflow::testing::TestValue, "TestValue");

namespace fusionflow::testing {

std::atomic<int> TestValue::live_instances{0};
TestValue::TestValue(double v) : value(v) { ++live_instances; }
TestValue::TestValue(const TestValue& other) : value(other.value) { ++live_instances; }
TestValue::~TestValue() { --live_instances; }

void Observations::reset() {
  std::lock_guard<std::mutex> lock(mutex);
  execution_order.clear();
  live_at_probe.clear();
  cancellations_seen = 0;
}

Observations& observations() {
  static Observations instance;
  return instance;
}

namespace {

void record_start(const NodeContext& ctx) {
  std::lock_guard<std::mutex> lock(observations().mutex);
  observations().execution_order.push_back(ctx.node_id());
}

double sum_inputs(const NodeContext& ctx) {
  double sum = 0;
  for (const auto& value : ctx.inputs<TestValue>("values")) sum += value->value;
  return sum;
}

}  // namespace

NodeRegistry make_test_registry() {
  NodeRegistry registry;
  registry.add_payload_type("TestValue", "a number that counts its live instances");

  NodeSpec source("test.source", "1.0.0", "emits a TestValue");
  source.output<TestValue>("value", "the value").param("value", Param::Float(1.0), "value to emit");
  registry.add_node({source, [](NodeContext& ctx) {
                       record_start(ctx);
                       ctx.output("value", TestValue(ctx.param<double>("value")));
                     }});

  NodeSpec add("test.add", "1.0.0", "sums its inputs");
  add.multi_input<TestValue>("values", "addends").output<TestValue>("sum", "the sum");
  registry.add_node({add, [](NodeContext& ctx) {
                       record_start(ctx);
                       ctx.output("sum", TestValue(sum_inputs(ctx)));
                     }});

  NodeSpec sleep("test.sleep", "1.0.0", "waits, then passes its input on (plus one)");
  sleep.multi_input<TestValue>("values", "inputs", true)
      .output<TestValue>("value", "sum of inputs plus one")
      .param("milliseconds", Param::Int(100).range(0, 60000), "how long to wait");
  registry.add_node({sleep, [](NodeContext& ctx) {
                       record_start(ctx);
                       std::this_thread::sleep_for(std::chrono::milliseconds(ctx.param<int>("milliseconds")));
                       ctx.progress(1.0);
                       ctx.output("value", TestValue(sum_inputs(ctx) + 1));
                     }});

  // The same, declared memory-intensive (the executor limits how many run at once).
  NodeSpec heavy_sleep("test.heavy_sleep", "1.0.0", "a memory-intensive test.sleep");
  heavy_sleep.multi_input<TestValue>("values", "inputs", true)
      .output<TestValue>("value", "sum of inputs plus one")
      .param("milliseconds", Param::Int(100).range(0, 60000), "how long to wait")
      .memory_intensive();
  registry.add_node({heavy_sleep, registry.find_node("test.sleep")->definition.run});

  NodeSpec fail("test.fail", "1.0.0", "throws after an optional delay");
  fail.multi_input<TestValue>("values", "inputs", true)
      .output<TestValue>("value", "never produced")
      .param("message", Param::String("deliberate failure"), "exception text")
      .param("milliseconds", Param::Int(0).range(0, 60000), "delay before throwing");
  registry.add_node({fail, [](NodeContext& ctx) {
                       record_start(ctx);
                       std::this_thread::sleep_for(std::chrono::milliseconds(ctx.param<int>("milliseconds")));
                       throw std::runtime_error(ctx.param<std::string>("message"));
                     }});

  NodeSpec wait("test.wait_for_cancel", "1.0.0", "polls for cancellation up to a time limit");
  wait.output<TestValue>("value", "produced only if not cancelled")
      .param("max_milliseconds", Param::Int(5000).range(0, 60000), "give up waiting after this long");
  registry.add_node({wait, [](NodeContext& ctx) {
                       record_start(ctx);
                       const auto deadline = std::chrono::steady_clock::now() +
                                             std::chrono::milliseconds(ctx.param<int>("max_milliseconds"));
                       while (std::chrono::steady_clock::now() < deadline) {
                         if (ctx.cancelled()) {
                           ++observations().cancellations_seen;
                           ctx.throw_if_cancelled();
                         }
                         std::this_thread::sleep_for(std::chrono::milliseconds(2));
                       }
                       ctx.output("value", TestValue(0));
                     }});

  NodeSpec probe("test.probe", "1.0.0", "records how many TestValues are alive");
  probe.multi_input<TestValue>("values", "inputs", true).output<TestValue>("value", "sum of inputs");
  registry.add_node({probe, [](NodeContext& ctx) {
                       record_start(ctx);
                       {
                         std::lock_guard<std::mutex> lock(observations().mutex);
                         observations().live_at_probe.emplace_back(ctx.node_id(), TestValue::live_instances.load());
                       }
                       ctx.output("value", TestValue(sum_inputs(ctx)));
                     }});

  NodeSpec all_params("test.all_params", "1.0.0", "declares one parameter of each kind");
  all_params.output<TestValue>("value", "the 'ratio' parameter")
      .param("flag", Param::Bool(false), "a bool")
      .param("count", Param::Int(3).range(1, 10), "an int in [1, 10]")
      .param("ratio", Param::Float(0.5).range(0.0, 1.0), "a float in [0, 1]")
      .param("name", Param::String("x"), "a string")
      .param("rule", Param::Choice({"average", "max_abs"}, "average"), "a choice")
      .param("input", Param::InputPath().required(), "a required input path")
      .param("output", Param::OutputPath("out.txt"), "an output path")
      .param("size", Param::IntList({1, 2, 3}).length(3).range(1, 100), "three ints")
      .param("weights", Param::FloatList({0.5, 0.5}), "floats");
  registry.add_node({all_params, [](NodeContext& ctx) {
                       record_start(ctx);
                       ctx.output("value", TestValue(ctx.param<double>("ratio")));
                     }});

  NodeSpec volume_sink("test.volume_sink", "1.0.0", "takes a Volume");
  volume_sink.input<Volume>("volume", "any volume");
  registry.add_node({volume_sink, [](NodeContext& ctx) { record_start(ctx); }});
  return registry;
}

LoadResult load_test_pipeline(const std::string& text, const NodeRegistry& registry, const LoadOptions& options) {
  return load_pipeline_text(text, "test.json", std::filesystem::current_path(), registry, options);
}

}  // namespace fusionflow::testing
