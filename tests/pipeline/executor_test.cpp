#include <gtest/gtest.h>

#include <fusionflow/executor.hpp>

#include <fusionflow/sdk.hpp>

#include <algorithm>
#include <cstring>
#include <fstream>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "test_nodes.hpp"

namespace fusionflow::executor_test {
// Heap blocks of 1 MiB, for the memory-return test.
struct HeapBlocks {
  std::vector<std::unique_ptr<char[]>> blocks;
};
struct HeapCount {
  std::size_t count = 0;
};
}  // namespace fusionflow::executor_test
FUSIONFLOW_PAYLOAD_TYPE(fusionflow::executor_test::HeapBlocks, "HeapBlocks");
FUSIONFLOW_PAYLOAD_TYPE(fusionflow::executor_test::HeapCount, "HeapCount");

namespace fusionflow {
namespace {

// Resident anonymous memory of this process, in bytes (0 if unknown).
std::size_t resident_anonymous_bytes() {
  std::ifstream status("/proc/self/status");
  std::string key;
  while (status >> key) {
    if (key == "RssAnon:") {
      std::size_t kib = 0;
      status >> kib;
      return kib * 1024;
    }
    status.ignore(1 << 12, '\n');
  }
  return 0;
}

class Executor : public ::testing::Test {
 protected:
  void SetUp() override { testing::observations().reset(); }

  Pipeline load(const std::string& nodes) {
    LoadResult result = testing::load_test_pipeline(R"({"format_version": 1, "nodes": [)" + nodes + "]}", registry_);
    if (!result.ok()) {
      std::string text;
      for (const auto& d : result.diagnostics) text += format_diagnostic("test", d) + "\n";
      throw std::runtime_error(text);
    }
    return std::move(*result.pipeline);
  }

  static std::size_t index_of(const Pipeline& pipeline, const std::string& id) { return *pipeline.find_node(id); }

  NodeRegistry registry_ = testing::make_test_registry();
};

TEST_F(Executor, RunsNodesInDependencyOrder) {
  Pipeline pipeline = load(R"(
    {"id": "sum", "type": "test.add", "inputs": {"values": ["left.value", "right.value"]}},
    {"id": "right", "type": "test.source", "params": {"value": 2}},
    {"id": "final", "type": "test.add", "inputs": {"values": ["sum.sum"]}},
    {"id": "left", "type": "test.source", "params": {"value": 1}})");
  RunOptions options;
  options.threads = 1;
  RunResult result = run_pipeline(pipeline, registry_, options);
  ASSERT_TRUE(result.succeeded) << result.error;
  const auto& order = testing::observations().execution_order;
  ASSERT_EQ(order.size(), 4u);
  auto position = [&](const std::string& id) { return std::find(order.begin(), order.end(), id) - order.begin(); };
  EXPECT_LT(position("left"), position("sum"));
  EXPECT_LT(position("right"), position("sum"));
  EXPECT_LT(position("sum"), position("final"));
  for (const NodeRunInfo& info : result.nodes) {
    EXPECT_EQ(info.status, NodeStatus::Succeeded);
    EXPECT_LE(info.start_seconds, info.end_seconds);
  }
  // Each node starts after its producers ended (recorded times, not only order).
  EXPECT_GE(result.nodes[index_of(pipeline, "sum")].start_seconds,
            result.nodes[index_of(pipeline, "left")].end_seconds);
  EXPECT_GE(result.nodes[index_of(pipeline, "final")].start_seconds,
            result.nodes[index_of(pipeline, "sum")].end_seconds);
}

TEST_F(Executor, IndependentBranchesOverlap) {
  Pipeline pipeline = load(R"(
    {"id": "branch_a", "type": "test.sleep", "params": {"milliseconds": 300}},
    {"id": "branch_b", "type": "test.sleep", "params": {"milliseconds": 300}},
    {"id": "join", "type": "test.add", "inputs": {"values": ["branch_a.value", "branch_b.value"]}})");
  RunOptions options;
  options.threads = 2;
  RunResult result = run_pipeline(pipeline, registry_, options);
  ASSERT_TRUE(result.succeeded) << result.error;
  const NodeRunInfo& a = result.nodes[index_of(pipeline, "branch_a")];
  const NodeRunInfo& b = result.nodes[index_of(pipeline, "branch_b")];
  // Overlap of the recorded intervals: each started before the other ended.
  EXPECT_LT(a.start_seconds, b.end_seconds);
  EXPECT_LT(b.start_seconds, a.end_seconds);
  const double overlap = std::min(a.end_seconds, b.end_seconds) - std::max(a.start_seconds, b.start_seconds);
  EXPECT_GT(overlap, 0.2);
}

TEST_F(Executor, MemoryIntensiveNodesRunOneAtATimeBesideOtherNodes) {
  Pipeline pipeline = load(R"(
    {"id": "heavy_a", "type": "test.heavy_sleep", "params": {"milliseconds": 200}},
    {"id": "heavy_b", "type": "test.heavy_sleep", "params": {"milliseconds": 200}},
    {"id": "light", "type": "test.sleep", "params": {"milliseconds": 300}})");
  RunOptions options;
  options.threads = 2;
  RunResult result = run_pipeline(pipeline, registry_, options);
  ASSERT_TRUE(result.succeeded) << result.error;
  const NodeRunInfo& a = result.nodes[index_of(pipeline, "heavy_a")];
  const NodeRunInfo& b = result.nodes[index_of(pipeline, "heavy_b")];
  const NodeRunInfo& light = result.nodes[index_of(pipeline, "light")];
  // The two memory-intensive nodes one after the other (listed order)...
  EXPECT_GE(b.start_seconds, a.end_seconds);
  // ... while the other node runs beside the first.
  EXPECT_GT(std::min(a.end_seconds, light.end_seconds) - std::max(a.start_seconds, light.start_seconds), 0.1);

  // Without the limit all three overlap.
  testing::observations().reset();
  options.max_memory_intensive_nodes = 0;
  result = run_pipeline(pipeline, registry_, options);
  ASSERT_TRUE(result.succeeded) << result.error;
  const NodeRunInfo& a2 = result.nodes[index_of(pipeline, "heavy_a")];
  const NodeRunInfo& b2 = result.nodes[index_of(pipeline, "heavy_b")];
  EXPECT_GT(std::min(a2.end_seconds, b2.end_seconds) - std::max(a2.start_seconds, b2.start_seconds), 0.1);
}

TEST_F(Executor, AMemoryIntensiveNodeWaitsForARunningSinkThatFreesAnInput) {
  // After `src`, `writer` (a sink, slow) and `prepare` start together; once
  // `prepare` is done, `writer` holds the last claim on src.value, and the
  // memory-intensive `heavy` starts only when that value is gone.
  Pipeline pipeline = load(R"(
    {"id": "src", "type": "test.source"},
    {"id": "writer", "type": "test.sleep", "params": {"milliseconds": 300}, "inputs": {"values": ["src.value"]}},
    {"id": "prepare", "type": "test.add", "inputs": {"values": ["src.value"]}},
    {"id": "heavy", "type": "test.heavy_sleep", "params": {"milliseconds": 10}, "inputs": {"values": ["prepare.sum"]}})");
  RunOptions options;
  options.threads = 2;
  RunResult result = run_pipeline(pipeline, registry_, options);
  ASSERT_TRUE(result.succeeded) << result.error;
  EXPECT_GE(result.nodes[index_of(pipeline, "heavy")].start_seconds,
            result.nodes[index_of(pipeline, "writer")].end_seconds);
}

TEST_F(Executor, ReadyNodesThatFreeMemoryOrConsumeWithoutProducingStartFirst) {
  // One thread, so the choice among ready nodes is visible in the order.
  // After both sources: `keep` and `free` are ready; `free` holds the last
  // claim on single.value and starts first although listed later. Then
  // `probe` (nobody consumes its output) starts before `grow`, so it sees
  // only the values that must exist: shared.value, keep.sum and free.sum.
  Pipeline pipeline = load(R"(
    {"id": "shared", "type": "test.source"},
    {"id": "single", "type": "test.source"},
    {"id": "keep", "type": "test.add", "inputs": {"values": ["shared.value"]}},
    {"id": "free", "type": "test.add", "inputs": {"values": ["single.value"]}},
    {"id": "grow", "type": "test.add", "inputs": {"values": ["keep.sum", "free.sum", "shared.value"]}},
    {"id": "probe", "type": "test.probe", "inputs": {"values": ["keep.sum", "free.sum", "shared.value"]}},
    {"id": "end", "type": "test.add", "inputs": {"values": ["grow.sum"]}})");
  RunOptions options;
  options.threads = 1;
  RunResult result = run_pipeline(pipeline, registry_, options);
  ASSERT_TRUE(result.succeeded) << result.error;
  EXPECT_EQ(testing::observations().execution_order,
            (std::vector<std::string>{"shared", "single", "free", "keep", "probe", "grow", "end"}));
  ASSERT_EQ(testing::observations().live_at_probe.size(), 1u);
  EXPECT_EQ(testing::observations().live_at_probe[0].second, 3);
}

TEST_F(Executor, FreedValuesAreReturnedToTheSystem) {
#if defined(__SANITIZE_ADDRESS__)
  // AddressSanitizer replaces glibc's allocator (and quarantines freed
  // blocks): what this test measures does not exist in such a build.
  GTEST_SKIP() << "glibc heap trimming is not observable under AddressSanitizer";
#endif
  // glibc keeps freed blocks below its mmap threshold in its heap, where they
  // stay resident unless trimmed. `blocks` makes 32 MiB of such blocks (after
  // raising the threshold as a freed 16 MiB buffer does) below a block that
  // stays allocated, so free() alone cannot shrink the heap; `use` frees
  // them; `after` measures what is resident then.
  using executor_test::HeapBlocks;
  using executor_test::HeapCount;
  static std::vector<std::unique_ptr<char[]>> pins;
  static std::size_t resident_with_blocks = 0, resident_after = 0;
  registry_.add_payload_type("HeapBlocks", "heap blocks");
  registry_.add_payload_type("HeapCount", "how many blocks there were");
  NodeSpec blocks_spec("test.heap_blocks", "1.0.0", "32 blocks of 1 MiB on the heap");
  blocks_spec.output<HeapBlocks>("blocks", "the blocks");
  registry_.add_node({blocks_spec, [](NodeContext& ctx) {
                        {
                          std::unique_ptr<char[]> large(new char[16u << 20]);
                          std::memset(large.get(), 1, 16u << 20);
                        }
                        HeapBlocks value;
                        for (int n = 0; n < 32; ++n) {
                          value.blocks.emplace_back(new char[1u << 20]);
                          std::memset(value.blocks.back().get(), 1, 1u << 20);
                        }
                        pins.emplace_back(new char[4096]);
                        std::memset(pins.back().get(), 1, 4096);
                        ctx.output("blocks", std::move(value));
                      }});
  NodeSpec use_spec("test.heap_use", "1.0.0", "consumes the blocks");
  use_spec.input<HeapBlocks>("blocks", "the blocks").output<HeapCount>("count", "how many");
  registry_.add_node({use_spec, [](NodeContext& ctx) {
                        resident_with_blocks = resident_anonymous_bytes();
                        ctx.output("count", HeapCount{ctx.input<HeapBlocks>("blocks").blocks.size()});
                      }});
  NodeSpec after_spec("test.heap_after", "1.0.0", "measures");
  after_spec.input<HeapCount>("count", "how many");
  registry_.add_node({after_spec, [](NodeContext&) { resident_after = resident_anonymous_bytes(); }});
  Pipeline pipeline = load(R"(
    {"id": "blocks", "type": "test.heap_blocks"},
    {"id": "use", "type": "test.heap_use", "inputs": {"blocks": "blocks.blocks"}},
    {"id": "after", "type": "test.heap_after", "inputs": {"count": "use.count"}})");
  RunOptions options;
  options.threads = 1;
  RunResult result = run_pipeline(pipeline, registry_, options);
  ASSERT_TRUE(result.succeeded) << result.error;
  ASSERT_GT(resident_with_blocks, 0u) << "no RssAnon in /proc/self/status";
  EXPECT_GE(resident_with_blocks, resident_after + (24u << 20))
      << "resident with the blocks " << resident_with_blocks << ", after they were freed " << resident_after;
}

TEST_F(Executor, OneThreadRunsBranchesOneAfterTheOther) {
  Pipeline pipeline = load(R"(
    {"id": "branch_a", "type": "test.sleep", "params": {"milliseconds": 50}},
    {"id": "branch_b", "type": "test.sleep", "params": {"milliseconds": 50}})");
  RunOptions options;
  options.threads = 1;
  RunResult result = run_pipeline(pipeline, registry_, options);
  ASSERT_TRUE(result.succeeded) << result.error;
  const NodeRunInfo& a = result.nodes[0];
  const NodeRunInfo& b = result.nodes[1];
  EXPECT_TRUE(a.end_seconds <= b.start_seconds || b.end_seconds <= a.start_seconds);
  EXPECT_EQ(result.threads, 1);
}

TEST_F(Executor, AFailingNodeStopsTheRunAndIsNamed) {
  Pipeline pipeline = load(R"(
    {"id": "src", "type": "test.source"},
    {"id": "broken", "type": "test.fail", "params": {"message": "disk full", "milliseconds": 50},
     "inputs": {"values": ["src.value"]}},
    {"id": "after", "type": "test.add", "inputs": {"values": ["broken.value"]}},
    {"id": "long_running", "type": "test.wait_for_cancel", "params": {"max_milliseconds": 10000}})");
  RunOptions options;
  options.threads = 2;
  RunResult result = run_pipeline(pipeline, registry_, options);
  EXPECT_FALSE(result.succeeded);
  EXPECT_EQ(result.error, "node 'broken' (type test.fail) failed: disk full");
  EXPECT_EQ(result.nodes[index_of(pipeline, "broken")].status, NodeStatus::Failed);
  EXPECT_EQ(result.nodes[index_of(pipeline, "broken")].error, "disk full");
  // Downstream of the failure: never started.
  EXPECT_EQ(result.nodes[index_of(pipeline, "after")].status, NodeStatus::NotRun);
  const auto& order = testing::observations().execution_order;
  EXPECT_EQ(std::count(order.begin(), order.end(), "after"), 0);
  // Running elsewhere: asked to cancel, and it stopped long before its limit.
  EXPECT_EQ(result.nodes[index_of(pipeline, "long_running")].status, NodeStatus::Cancelled);
  EXPECT_EQ(testing::observations().cancellations_seen.load(), 1);
  EXPECT_LT(result.wall_seconds, 5.0);
}

TEST_F(Executor, NodesNotStartedAfterAFailureStayNotRun) {
  // With one thread, the failure happens before the independent chain runs.
  Pipeline pipeline = load(R"(
    {"id": "broken", "type": "test.fail"},
    {"id": "later", "type": "test.sleep", "params": {"milliseconds": 0}, "inputs": {"values": ["broken.value"]}})");
  RunOptions options;
  options.threads = 1;
  RunResult result = run_pipeline(pipeline, registry_, options);
  EXPECT_FALSE(result.succeeded);
  EXPECT_EQ(result.nodes[1].status, NodeStatus::NotRun);
}

TEST_F(Executor, ExternalStopRequestCancelsTheRun) {
  Pipeline pipeline = load(R"(
    {"id": "waiting", "type": "test.wait_for_cancel", "params": {"max_milliseconds": 10000}},
    {"id": "next", "type": "test.sleep", "params": {"milliseconds": 0}, "inputs": {"values": ["waiting.value"]}})");
  std::atomic<bool> stop{false};
  RunOptions options;
  options.threads = 2;
  options.stop_requested = &stop;
  std::thread stopper([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    stop = true;
  });
  RunResult result = run_pipeline(pipeline, registry_, options);
  stopper.join();
  EXPECT_FALSE(result.succeeded);
  EXPECT_TRUE(result.stopped_by_user);
  EXPECT_EQ(result.nodes[0].status, NodeStatus::Cancelled);
  EXPECT_EQ(result.nodes[1].status, NodeStatus::NotRun);
  EXPECT_LT(result.wall_seconds, 5.0);
}

TEST_F(Executor, OutputsAreReleasedAfterTheirLastConsumer) {
  // A chain: at the probe, only the value it consumes may still be alive;
  // without release all four upstream values would be.
  Pipeline pipeline = load(R"(
    {"id": "s", "type": "test.source"},
    {"id": "a", "type": "test.add", "inputs": {"values": ["s.value"]}},
    {"id": "b", "type": "test.add", "inputs": {"values": ["a.sum"]}},
    {"id": "c", "type": "test.add", "inputs": {"values": ["b.sum"]}},
    {"id": "probe", "type": "test.probe", "inputs": {"values": ["c.sum"]}})");
  ASSERT_EQ(testing::TestValue::live_instances.load(), 0);
  RunOptions options;
  options.threads = 2;
  RunResult result = run_pipeline(pipeline, registry_, options);
  ASSERT_TRUE(result.succeeded) << result.error;
  const auto& probes = testing::observations().live_at_probe;
  ASSERT_EQ(probes.size(), 1u);
  EXPECT_EQ(probes[0].second, 1);
  // Everything is freed at the end, including outputs nobody consumed.
  EXPECT_EQ(testing::TestValue::live_instances.load(), 0);
}

TEST_F(Executor, SharedOutputStaysAliveUntilItsLastConsumerIsDone) {
  Pipeline pipeline = load(R"(
    {"id": "s", "type": "test.source"},
    {"id": "first", "type": "test.add", "inputs": {"values": ["s.value"]}},
    {"id": "probe", "type": "test.probe", "inputs": {"values": ["first.sum", "s.value"]}})");
  RunOptions options;
  options.threads = 1;
  RunResult result = run_pipeline(pipeline, registry_, options);
  ASSERT_TRUE(result.succeeded) << result.error;
  // s.value (still needed by probe) and first.sum are alive at the probe.
  ASSERT_EQ(testing::observations().live_at_probe.size(), 1u);
  EXPECT_EQ(testing::observations().live_at_probe[0].second, 2);
  EXPECT_EQ(testing::TestValue::live_instances.load(), 0);
}

TEST_F(Executor, PayloadsAreSharedNotCopied) {
  // Three consumers of one value: the value is built once.
  Pipeline pipeline = load(R"(
    {"id": "s", "type": "test.source"},
    {"id": "p1", "type": "test.probe", "inputs": {"values": ["s.value"]}},
    {"id": "p2", "type": "test.probe", "inputs": {"values": ["s.value"]}},
    {"id": "p3", "type": "test.probe", "inputs": {"values": ["s.value"]}})");
  RunOptions options;
  options.threads = 1;
  RunResult result = run_pipeline(pipeline, registry_, options);
  ASSERT_TRUE(result.succeeded) << result.error;
  // At the first probe only s.value exists (one instance for three edges).
  const auto& probes = testing::observations().live_at_probe;
  ASSERT_EQ(probes.size(), 3u);
  EXPECT_EQ(probes[0].second, 1);
}

TEST_F(Executor, ReportsProgressEventsForEveryNode) {
  Pipeline pipeline = load(R"({"id": "a", "type": "test.sleep", "params": {"milliseconds": 1}})");
  std::vector<ProgressEvent::Kind> kinds;
  RunOptions options;
  options.on_progress = [&](const ProgressEvent& event) { kinds.push_back(event.kind); };
  ASSERT_TRUE(run_pipeline(pipeline, registry_, options).succeeded);
  EXPECT_EQ(kinds, (std::vector<ProgressEvent::Kind>{ProgressEvent::Kind::Started, ProgressEvent::Kind::Progress,
                                                     ProgressEvent::Kind::Finished}));
}

TEST_F(Executor, ThreadBudgetHooksGetTheRunsThreadCount) {
  int seen = 0;
  registry_.add_thread_budget_hook([&](int threads) { seen = threads; });
  Pipeline pipeline = load(R"({"id": "a", "type": "test.source"})");
  RunOptions options;
  options.threads = 3;
  ASSERT_TRUE(run_pipeline(pipeline, registry_, options).succeeded);
  EXPECT_EQ(seen, 3);
}

}  // namespace
}  // namespace fusionflow
