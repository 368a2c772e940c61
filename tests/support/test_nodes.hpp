// Node types used only by the tests, registered straight into a registry
// (no plugin library needed).
#pragma once

#include <atomic>
#include <mutex>
#include <string>
#include <vector>

#include <fusionflow/pipeline.hpp>
#include <fusionflow/registry.hpp>

namespace fusionflow::testing {

// Payload that counts its live instances, to observe when the executor frees
// intermediate results.
struct TestValue {
  explicit TestValue(double v);
  TestValue(const TestValue& other);
  ~TestValue();
  double value;
  static std::atomic<int> live_instances;
};

// Observations the test nodes make while a pipeline runs.
struct Observations {
  std::mutex mutex;
  std::vector<std::string> execution_order;                // node ids as they started
  std::vector<std::pair<std::string, int>> live_at_probe;  // TestValue instances alive when a probe ran
  std::atomic<int> cancellations_seen{0};
  void reset();
};
Observations& observations();

// A registry with: test.source, test.add, test.sleep, test.heavy_sleep
// (memory-intensive), test.fail,
// test.wait_for_cancel, test.probe, test.all_params, test.volume_sink.
NodeRegistry make_test_registry();

// Loads pipeline JSON text against `registry` (directory: the current one).
LoadResult load_test_pipeline(const std::string& text, const NodeRegistry& registry, const LoadOptions& options = {});

}  // namespace fusionflow::testing
