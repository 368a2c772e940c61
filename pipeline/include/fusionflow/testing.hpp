// Test helpers for node authors: run one node type in isolation, without a
// pipeline file, and inspect its outputs, progress and log.
//
//   fusionflow::testing::NodeHarness node(my_spec(), my_run);
//   node.set_param("sigma_mm", 2.0).set_input("volume", volume);
//   node.run();
//   const Volume& result = node.output<Volume>("volume");
#pragma once

#include <atomic>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "fusionflow/node.hpp"
#include "fusionflow/registry.hpp"

namespace fusionflow::testing {

class NodeHarness {
 public:
  NodeHarness(NodeSpec spec, RunFunction run);
  // A typed node: NodeHarness(my_node().bind(run_my_node)).
  explicit NodeHarness(NodeDefinition definition);
  // A node type from a registry (e.g. one filled by load_plugins).
  NodeHarness(const NodeRegistry& registry, const std::string& type);

  // Parameters start at their defaults; values are checked against the
  // declared kind, range and choices like a pipeline file's (throws
  // std::invalid_argument naming the parameter).
  NodeHarness& set_param(const std::string& name, ParamValue value);
  NodeHarness& set_param(const std::string& name, int value) {
    return set_param(name, ParamValue(std::int64_t{value}));
  }
  NodeHarness& set_param(const std::string& name, const char* value) {
    return set_param(name, ParamValue(std::string(value)));
  }

  template <class T>
  NodeHarness& set_input(const std::string& port, T value) {
    return add_input_payload(port, Payload::of<T>(std::make_shared<const T>(std::move(value))), true);
  }
  // Appends to a multi-input port.
  template <class T>
  NodeHarness& add_input(const std::string& port, T value) {
    return add_input_payload(port, Payload::of<T>(std::make_shared<const T>(std::move(value))), false);
  }

  NodeHarness& set_threads(int threads);
  // Makes NodeContext::cancelled() true from the start.
  NodeHarness& cancel();

  // Runs the node; rethrows whatever it throws. Checks that every
  // non-optional output was produced.
  void run();

  template <class T>
  const T& output(const std::string& port) const {
    return *output_payload(port).get<T>();
  }
  bool has_output(const std::string& port) const { return outputs_.count(port) != 0; }
  const std::vector<double>& progress_reports() const { return progress_; }
  const std::vector<std::pair<LogLevel, std::string>>& log() const { return log_; }

 private:
  NodeHarness& add_input_payload(const std::string& port, Payload payload, bool replace);
  const Payload& output_payload(const std::string& port) const;

  NodeSpec spec_;
  RunFunction run_;
  const NodeRegistry* registry_ = nullptr;  // for latent decoders, when made from a registry
  std::map<std::string, ParamValue> params_;
  std::map<std::string, std::vector<Payload>> inputs_;
  std::map<std::string, Payload> outputs_;
  std::vector<double> progress_;
  std::vector<std::pair<LogLevel, std::string>> log_;
  std::atomic<bool> cancelled_{false};
  int threads_ = 1;
};

}  // namespace fusionflow::testing
