#include "fusionflow/node.hpp"

#include "fusionflow/latent_codec.hpp"
#include "fusionflow/registry.hpp"

#include <algorithm>
#include <cmath>
#include <limits>

namespace fusionflow {

NodeSpec::NodeSpec(std::string type, std::string version, std::string description)
    : type_(std::move(type)), version_(std::move(version)), description_(std::move(description)) {}

NodeSpec& NodeSpec::param(std::string name, const Param& param, std::string description) {
  ParamSpec spec = param.spec();
  spec.name = std::move(name);
  spec.description = std::move(description);
  params_.push_back(std::move(spec));
  return *this;
}

NodeSpec& NodeSpec::add_param(ParamSpec param) {
  params_.push_back(std::move(param));
  return *this;
}

NodeSpec& NodeSpec::memory_intensive(bool value) {
  memory_intensive_ = value;
  return *this;
}

NodeSpec& NodeSpec::uncacheable(std::string reason) {
  uncacheable_reason_ = reason.empty() ? std::string("declared uncacheable") : std::move(reason);
  return *this;
}

NodeSpec& NodeSpec::confidential(std::string_view param_name) {
  for (ParamSpec& param : params_) {
    if (param.name == param_name) {
      param.confidential = true;
      return *this;
    }
  }
  throw std::invalid_argument("node type '" + type_ + "' has no parameter '" + std::string(param_name) +
                              "' to mark confidential");
}

NodeSpec& NodeSpec::add_input(PortSpec port) {
  inputs_.push_back(std::move(port));
  return *this;
}

NodeSpec& NodeSpec::add_output(PortSpec port) {
  port.multi = false;
  outputs_.push_back(std::move(port));
  return *this;
}

namespace {
template <class Item>
const Item* find_named(const std::vector<Item>& items, std::string_view name) {
  for (const Item& item : items) {
    if (item.name == name) return &item;
  }
  return nullptr;
}
}  // namespace

const PortSpec* NodeSpec::find_input(std::string_view name) const { return find_named(inputs_, name); }
const PortSpec* NodeSpec::find_output(std::string_view name) const { return find_named(outputs_, name); }
const ParamSpec* NodeSpec::find_param(std::string_view name) const { return find_named(params_, name); }

std::string NodeSpec::family() const { return type_.substr(0, type_.find('.')); }

NodeContext::NodeContext(std::string node_id, const NodeSpec& spec, std::map<std::string, ParamValue> params,
                         std::map<std::string, std::vector<Payload>> inputs, const std::atomic<bool>* cancel_flag,
                         int thread_budget, Callbacks callbacks, const NodeRegistry* registry)
    : node_id_(std::move(node_id)),
      spec_(spec),
      params_(std::move(params)),
      inputs_(std::move(inputs)),
      cancel_flag_(cancel_flag),
      thread_budget_(std::max(1, thread_budget)),
      callbacks_(std::move(callbacks)),
      registry_(registry) {}

bool NodeContext::has_input(std::string_view port) const {
  auto it = inputs_.find(std::string(port));
  return it != inputs_.end() && !it->second.empty();
}

const std::vector<Payload>& NodeContext::input_list(std::string_view port) const {
  if (spec_.find_input(port) == nullptr) {
    throw std::logic_error("node type '" + spec_.type() + "' has no input port '" + std::string(port) + "'");
  }
  static const std::vector<Payload> kNone;
  auto it = inputs_.find(std::string(port));
  return it == inputs_.end() ? kNone : it->second;
}

const Payload& NodeContext::single_input(std::string_view port) const {
  const std::vector<Payload>& list = input_list(port);
  if (list.empty()) {
    throw std::logic_error("input port '" + std::string(port) + "' of node '" + node_id_ + "' is not connected");
  }
  return list.front();
}

void NodeContext::set_output(std::string_view port, Payload payload) {
  const PortSpec* spec = spec_.find_output(port);
  if (spec == nullptr) {
    throw std::logic_error("node type '" + spec_.type() + "' has no output port '" + std::string(port) + "'");
  }
  if (payload.empty()) throw std::logic_error("output '" + std::string(port) + "' set to an empty payload");
  if (payload.type_name() != spec->type) {
    throw std::logic_error("output '" + std::string(port) + "' is declared as '" + spec->type +
                           "' but the node wrote '" + payload.type_name() + "'");
  }
  outputs_[std::string(port)] = std::move(payload);
}

const LatentDecoder* NodeContext::latent_decoder(std::string_view kind) const {
  if (registry_ == nullptr) return nullptr;
  const RegisteredLatentDecoder* found = registry_->find_latent_decoder(kind);
  return found == nullptr ? nullptr : &found->decoder;
}

std::vector<std::string> NodeContext::latent_decoder_kinds() const {
  std::vector<std::string> kinds;
  if (registry_ != nullptr) {
    for (const RegisteredLatentDecoder* decoder : registry_->latent_decoders()) kinds.push_back(decoder->decoder.kind);
  }
  return kinds;
}

const ParamValue& NodeContext::param_value(std::string_view name) const {
  auto it = params_.find(std::string(name));
  if (it == params_.end()) {
    throw std::logic_error("node type '" + spec_.type() + "' has no parameter '" + std::string(name) + "'");
  }
  return it->second;
}

namespace {
[[noreturn]] void wrong_param_type(const std::string& name, const char* requested) {
  throw std::logic_error("parameter '" + name + "' cannot be read as " + requested);
}

template <class Integer>
Integer checked_integer(const ParamValue& value, const std::string& name, const char* requested) {
  const auto* stored = std::get_if<std::int64_t>(&value);
  if (stored == nullptr) wrong_param_type(name, requested);
  if (*stored < static_cast<std::int64_t>(std::numeric_limits<Integer>::min()) ||
      static_cast<std::uint64_t>(std::max<std::int64_t>(*stored, 0)) >
          static_cast<std::uint64_t>(std::numeric_limits<Integer>::max())) {
    wrong_param_type(name, requested);
  }
  return static_cast<Integer>(*stored);
}
}  // namespace

template <class T>
T NodeContext::param(std::string_view name) const {
  const ParamValue& value = param_value(name);
  const std::string key(name);
  if constexpr (std::is_same_v<T, bool>) {
    if (const auto* v = std::get_if<bool>(&value)) return *v;
    wrong_param_type(key, "bool");
  } else if constexpr (std::is_same_v<T, double> || std::is_same_v<T, float>) {
    if (const auto* v = std::get_if<double>(&value)) return static_cast<T>(*v);
    if (const auto* v = std::get_if<std::int64_t>(&value)) return static_cast<T>(*v);
    wrong_param_type(key, "a floating-point number");
  } else if constexpr (std::is_same_v<T, std::string>) {
    if (const auto* v = std::get_if<std::string>(&value)) return *v;
    wrong_param_type(key, "a string");
  } else if constexpr (std::is_same_v<T, std::filesystem::path>) {
    if (const auto* v = std::get_if<std::string>(&value)) return std::filesystem::path(*v);
    wrong_param_type(key, "a path");
  } else if constexpr (std::is_same_v<T, std::vector<double>>) {
    if (const auto* v = std::get_if<std::vector<double>>(&value)) return *v;
    if (const auto* v = std::get_if<std::vector<std::int64_t>>(&value))
      return std::vector<double>(v->begin(), v->end());
    wrong_param_type(key, "a list of numbers");
  } else if constexpr (std::is_same_v<T, std::vector<std::int64_t>>) {
    if (const auto* v = std::get_if<std::vector<std::int64_t>>(&value)) return *v;
    wrong_param_type(key, "a list of integers");
  } else {
    return checked_integer<T>(value, key, "an integer of the requested type");
  }
}

template bool NodeContext::param<bool>(std::string_view) const;
template int NodeContext::param<int>(std::string_view) const;
template std::int64_t NodeContext::param<std::int64_t>(std::string_view) const;
template std::size_t NodeContext::param<std::size_t>(std::string_view) const;
template double NodeContext::param<double>(std::string_view) const;
template float NodeContext::param<float>(std::string_view) const;
template std::string NodeContext::param<std::string>(std::string_view) const;
template std::filesystem::path NodeContext::param<std::filesystem::path>(std::string_view) const;
template std::vector<double> NodeContext::param<std::vector<double>>(std::string_view) const;
template std::vector<std::int64_t> NodeContext::param<std::vector<std::int64_t>>(std::string_view) const;

void NodeContext::progress(double fraction) {
  if (!callbacks_.progress) return;
  if (!(fraction >= 0.0)) fraction = 0.0;  // also catches NaN
  callbacks_.progress(std::min(fraction, 1.0));
}

void NodeContext::log(LogLevel level, const std::string& message) {
  if (callbacks_.log) callbacks_.log(level, message);
}

}  // namespace fusionflow
