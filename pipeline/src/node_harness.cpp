#include <algorithm>
#include <stdexcept>

#include "fusionflow/pipeline.hpp"
#include "fusionflow/testing.hpp"

namespace fusionflow::testing {

namespace {
const RegisteredNode& find_or_throw(const NodeRegistry& registry, const std::string& type) {
  const RegisteredNode* node = registry.find_node(type);
  if (node == nullptr) throw std::invalid_argument("no node type '" + type + "' in the registry");
  return *node;
}
}  // namespace

NodeHarness::NodeHarness(NodeSpec spec, RunFunction run) : spec_(std::move(spec)), run_(std::move(run)) {
  for (const ParamSpec& param : spec_.params()) {
    if (param.default_value) params_[param.name] = *param.default_value;
  }
}

NodeHarness::NodeHarness(NodeDefinition definition)
    : NodeHarness(std::move(definition.spec), std::move(definition.run)) {}

NodeHarness::NodeHarness(const NodeRegistry& registry, const std::string& type)
    : NodeHarness(find_or_throw(registry, type).spec(), find_or_throw(registry, type).definition.run) {
  registry_ = &registry;
}

NodeHarness& NodeHarness::set_param(const std::string& name, ParamValue value) {
  const ParamSpec* spec = spec_.find_param(name);
  if (spec == nullptr) throw std::invalid_argument("node type '" + spec_.type() + "' has no parameter '" + name + "'");
  // As in a pipeline file, a whole number may be given for a float.
  if (spec->kind == ParamKind::Float) {
    if (const auto* integer = std::get_if<std::int64_t>(&value)) value = double(*integer);
  }
  // The checks a pipeline file gets (one validator for the loader, the
  // registry and this harness).
  const std::vector<ParamProblem> problems = check_param_value(*spec, value);
  if (!problems.empty()) {
    std::string reasons;
    for (const ParamProblem& problem : problems) {
      reasons += (reasons.empty() ? "" : "; ") + problem.message;
      if (problem.element) reasons += " (element " + std::to_string(*problem.element) + ")";
      if (!problem.hint.empty()) reasons += " (" + problem.hint + ")";
    }
    throw std::invalid_argument("value " + param_value_to_json(value) + " does not fit parameter '" + name + "' (" +
                                to_string(spec->kind) + "): " + reasons);
  }
  params_[name] = std::move(value);
  return *this;
}

NodeHarness& NodeHarness::add_input_payload(const std::string& port, Payload payload, bool replace) {
  const PortSpec* spec = spec_.find_input(port);
  if (spec == nullptr) throw std::invalid_argument("node type '" + spec_.type() + "' has no input port '" + port + "'");
  if (payload.type_name() != spec->type) {
    throw std::invalid_argument("input port '" + port + "' takes " + spec->type + ", not " + payload.type_name());
  }
  if (!replace && !spec->multi) throw std::invalid_argument("input port '" + port + "' is not a multi-input port");
  auto& list = inputs_[port];
  if (replace) list.clear();
  list.push_back(std::move(payload));
  return *this;
}

NodeHarness& NodeHarness::set_threads(int threads) {
  threads_ = threads;
  return *this;
}

NodeHarness& NodeHarness::cancel() {
  cancelled_ = true;
  return *this;
}

void NodeHarness::run() {
  for (const ParamSpec& param : spec_.params()) {
    if (params_.count(param.name) == 0) {
      throw std::invalid_argument("required parameter '" + param.name + "' of '" + spec_.type() + "' is not set");
    }
  }
  for (const PortSpec& port : spec_.inputs()) {
    if (!port.optional && inputs_[port.name].empty()) {
      throw std::invalid_argument("required input '" + port.name + "' of '" + spec_.type() + "' is not set");
    }
  }
  outputs_.clear();
  progress_.clear();
  log_.clear();
  NodeContext::Callbacks callbacks;
  callbacks.progress = [this](double fraction) { progress_.push_back(fraction); };
  callbacks.log = [this](LogLevel level, const std::string& message) { log_.emplace_back(level, message); };
  NodeContext context("test_node", spec_, params_, inputs_, &cancelled_, threads_, std::move(callbacks), registry_);
  run_(context);
  for (const PortSpec& port : spec_.outputs()) {
    if (!port.optional && context.outputs().count(port.name) == 0) {
      throw std::runtime_error("the node did not produce its output '" + port.name + "'");
    }
  }
  outputs_ = context.take_outputs();
}

const Payload& NodeHarness::output_payload(const std::string& port) const {
  auto it = outputs_.find(port);
  if (it == outputs_.end()) throw std::logic_error("no output '" + port + "' (did run() succeed?)");
  return it->second;
}

}  // namespace fusionflow::testing
