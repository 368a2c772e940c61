#include <gtest/gtest.h>

#include <fusionflow/executor.hpp>
#include <fusionflow/pipeline_builder.hpp>

#include <fusionflow/sdk.hpp>

#include <algorithm>
#include <cstring>
#include <ctime>
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

  Pipeline load(const PipelineBuilder& builder) {
    LoadResult result = builder.build(registry_);
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
  PipelineBuilder builder;
  builder.add_node("sum", "test.add")
      .connect("left.value", "sum.values")
      .connect("right.value", "sum.values")
      .add_node("right", "test.source")
      .set_param("right", "value", ParamValue(2.0))
      .add_node("final", "test.add")
      .connect("sum.sum", "final.values")
      .add_node("left", "test.source")
      .set_param("left", "value", ParamValue(1.0));
  Pipeline pipeline = load(builder);
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
  PipelineBuilder builder;
  builder.add_node("branch_a", "test.sleep")
      .set_param("branch_a", "milliseconds", 300)
      .add_node("branch_b", "test.sleep")
      .set_param("branch_b", "milliseconds", 300)
      .add_node("join", "test.add")
      .connect("branch_a.value", "join.values")
      .connect("branch_b.value", "join.values");
  Pipeline pipeline = load(builder);
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
  // The run record says whose process CPU is shared: the branches ran side by
  // side, the join after both.
  EXPECT_FALSE(a.ran_alone);
  EXPECT_FALSE(b.ran_alone);
  EXPECT_TRUE(result.nodes[index_of(pipeline, "join")].ran_alone);
}

// A node whose work runs on a thread it starts (as ITK's and Mesa's do): its
// own thread's CPU misses the work, the all-thread CPU holds it.
TEST_F(Executor, AllThreadCpuCountsTheThreadsANodeStarts) {
  static double helper_cpu_seconds = 0;
  NodeSpec spec("test.helper_thread", "1.0.0", "burns CPU on a thread it starts and waits for it");
  registry_.add_node({spec, [](NodeContext&) {
                        std::thread helper([] {
                          timespec now{};
                          volatile double sink = 0;
                          do {
                            for (int i = 0; i < 100000; ++i) sink = sink + 1e-9 * i;
                            clock_gettime(CLOCK_THREAD_CPUTIME_ID, &now);
                          } while (now.tv_sec == 0 && now.tv_nsec < 200'000'000);
                          helper_cpu_seconds = double(now.tv_sec) + double(now.tv_nsec) * 1e-9;
                        });
                        helper.join();
                      }});
  PipelineBuilder builder;
  builder.add_node("work", "test.helper_thread");
  Pipeline pipeline = load(builder);
  RunOptions options;
  options.threads = 2;
  RunResult result = run_pipeline(pipeline, registry_, options);
  ASSERT_TRUE(result.succeeded) << result.error;
  const NodeRunInfo& work = result.nodes[index_of(pipeline, "work")];
  ASSERT_GE(helper_cpu_seconds, 0.2);
  EXPECT_TRUE(work.ran_alone);
  EXPECT_GE(work.process_cpu_seconds, helper_cpu_seconds - 1e-3);
  EXPECT_LT(work.cpu_seconds, helper_cpu_seconds / 2) << "the node's own thread only waited";
}

TEST_F(Executor, MemoryIntensiveNodesRunOneAtATimeBesideOtherNodes) {
  PipelineBuilder builder;
  builder.add_node("heavy_a", "test.heavy_sleep")
      .set_param("heavy_a", "milliseconds", 200)
      .add_node("heavy_b", "test.heavy_sleep")
      .set_param("heavy_b", "milliseconds", 200)
      .add_node("light", "test.sleep")
      .set_param("light", "milliseconds", 300);
  Pipeline pipeline = load(builder);
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
  PipelineBuilder builder;
  builder.add_node("src", "test.source")
      .add_node("writer", "test.sleep")
      .set_param("writer", "milliseconds", 300)
      .connect("src.value", "writer.values")
      .add_node("prepare", "test.add")
      .connect("src.value", "prepare.values")
      .add_node("heavy", "test.heavy_sleep")
      .set_param("heavy", "milliseconds", 10)
      .connect("prepare.sum", "heavy.values");
  Pipeline pipeline = load(builder);
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
  PipelineBuilder builder;
  builder.add_node("shared", "test.source")
      .add_node("single", "test.source")
      .add_node("keep", "test.add")
      .connect("shared.value", "keep.values")
      .add_node("free", "test.add")
      .connect("single.value", "free.values")
      .add_node("grow", "test.add")
      .connect("keep.sum", "grow.values")
      .connect("free.sum", "grow.values")
      .connect("shared.value", "grow.values")
      .add_node("probe", "test.probe")
      .connect("keep.sum", "probe.values")
      .connect("free.sum", "probe.values")
      .connect("shared.value", "probe.values")
      .add_node("end", "test.add")
      .connect("grow.sum", "end.values");
  Pipeline pipeline = load(builder);
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
  PipelineBuilder builder;
  builder.add_node("blocks", "test.heap_blocks")
      .add_node("use", "test.heap_use")
      .connect("blocks.blocks", "use.blocks")
      .add_node("after", "test.heap_after")
      .connect("use.count", "after.count");
  Pipeline pipeline = load(builder);
  RunOptions options;
  options.threads = 1;
  RunResult result = run_pipeline(pipeline, registry_, options);
  ASSERT_TRUE(result.succeeded) << result.error;
  ASSERT_GT(resident_with_blocks, 0u) << "no RssAnon in /proc/self/status";
  EXPECT_GE(resident_with_blocks, resident_after + (24u << 20))
      << "resident with the blocks " << resident_with_blocks << ", after they were freed " << resident_after;
}

TEST_F(Executor, OneThreadRunsBranchesOneAfterTheOther) {
  PipelineBuilder builder;
  builder.add_node("branch_a", "test.sleep")
      .set_param("branch_a", "milliseconds", 50)
      .add_node("branch_b", "test.sleep")
      .set_param("branch_b", "milliseconds", 50);
  Pipeline pipeline = load(builder);
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
  PipelineBuilder builder;
  builder.add_node("src", "test.source")
      .add_node("broken", "test.fail")
      .set_param("broken", "message", "disk full")
      .set_param("broken", "milliseconds", 50)
      .connect("src.value", "broken.values")
      .add_node("after", "test.add")
      .connect("broken.value", "after.values")
      .add_node("long_running", "test.wait_for_cancel")
      .set_param("long_running", "max_milliseconds", 10000);
  Pipeline pipeline = load(builder);
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
  PipelineBuilder builder;
  builder.add_node("broken", "test.fail")
      .add_node("later", "test.sleep")
      .set_param("later", "milliseconds", 0)
      .connect("broken.value", "later.values");
  Pipeline pipeline = load(builder);
  RunOptions options;
  options.threads = 1;
  RunResult result = run_pipeline(pipeline, registry_, options);
  EXPECT_FALSE(result.succeeded);
  EXPECT_EQ(result.nodes[1].status, NodeStatus::NotRun);
}

TEST_F(Executor, ExternalStopRequestCancelsTheRun) {
  PipelineBuilder builder;
  builder.add_node("waiting", "test.wait_for_cancel")
      .set_param("waiting", "max_milliseconds", 10000)
      .add_node("next", "test.sleep")
      .set_param("next", "milliseconds", 0)
      .connect("waiting.value", "next.values");
  Pipeline pipeline = load(builder);
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
  PipelineBuilder builder;
  builder.add_node("s", "test.source")
      .add_node("a", "test.add")
      .connect("s.value", "a.values")
      .add_node("b", "test.add")
      .connect("a.sum", "b.values")
      .add_node("c", "test.add")
      .connect("b.sum", "c.values")
      .add_node("probe", "test.probe")
      .connect("c.sum", "probe.values");
  Pipeline pipeline = load(builder);
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
  PipelineBuilder builder;
  builder.add_node("s", "test.source")
      .add_node("first", "test.add")
      .connect("s.value", "first.values")
      .add_node("probe", "test.probe")
      .connect("first.sum", "probe.values")
      .connect("s.value", "probe.values");
  Pipeline pipeline = load(builder);
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
  PipelineBuilder builder;
  builder.add_node("s", "test.source")
      .add_node("p1", "test.probe")
      .connect("s.value", "p1.values")
      .add_node("p2", "test.probe")
      .connect("s.value", "p2.values")
      .add_node("p3", "test.probe")
      .connect("s.value", "p3.values");
  Pipeline pipeline = load(builder);
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
  PipelineBuilder builder;
  builder.add_node("a", "test.sleep").set_param("a", "milliseconds", 1);
  Pipeline pipeline = load(builder);
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
  PipelineBuilder builder;
  builder.add_node("a", "test.source");
  Pipeline pipeline = load(builder);
  RunOptions options;
  options.threads = 3;
  ASSERT_TRUE(run_pipeline(pipeline, registry_, options).succeeded);
  EXPECT_EQ(seen, 3);
}

}  // namespace
}  // namespace fusionflow
