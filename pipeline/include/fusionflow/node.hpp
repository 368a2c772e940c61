// The node API: what a node type declares (NodeSpec) and what it sees while
// it runs (NodeContext).
//
// A node type declares everything a user or the pipeline validator needs in
// one place: its typed input and output ports and its parameters. Its run
// function reads inputs and parameters from the context, writes outputs,
// reports progress and checks for cancellation:
//
//   NodeSpec spec("core.volume_stats", "1.0.0", "Intensity statistics of a volume");
//   spec.input<Volume>("volume", "the volume to summarise")
//       .output<Table>("stats", "one row of statistics")
//       .param("label", Param::String(""), "row label (default: the node id)");
//   registrar.add_node(spec, [](NodeContext& ctx) { ... });
#pragma once

#include <atomic>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include "fusionflow/param.hpp"
#include "fusionflow/payload.hpp"

namespace fusionflow {

class NodeRegistry;
struct LatentDecoder;

// A port named once with its payload type: declare it as a constant beside
// the node and use that constant both in the declaration and in the run
// function, so the name and the type cannot drift apart.
//
//   constexpr InputPort<Volume> kVolumeIn{"volume"};
//   spec.input(kVolumeIn, "the volume to smooth");   ...   ctx.input(kVolumeIn)
template <class T>
struct InputPort {
  std::string_view name;
};
template <class T>
struct OutputPort {
  std::string_view name;
};

namespace detail {
template <class T>
struct SameType {
  using type = T;
};
}  // namespace detail

struct PortSpec {
  std::string name;
  std::string type;  // stable payload type name, e.g. "Volume"
  std::string description;
  bool multi = false;     // input only: accepts a list of producers
  bool optional = false;  // input: may be left unconnected; output: may stay unset
};

class NodeSpec {
 public:
  NodeSpec(std::string type, std::string version, std::string description);

  template <class T>
  NodeSpec& input(std::string name, std::string description) {
    return add_input({std::move(name), payload_type_name<T>(), std::move(description), false, false});
  }
  template <class T>
  NodeSpec& optional_input(std::string name, std::string description) {
    return add_input({std::move(name), payload_type_name<T>(), std::move(description), false, true});
  }
  // A port fed by one or more producers, in the order the pipeline lists them.
  template <class T>
  NodeSpec& multi_input(std::string name, std::string description, bool optional = false) {
    return add_input({std::move(name), payload_type_name<T>(), std::move(description), true, optional});
  }
  template <class T>
  NodeSpec& output(std::string name, std::string description) {
    return add_output({std::move(name), payload_type_name<T>(), std::move(description), false, false});
  }
  template <class T>
  NodeSpec& optional_output(std::string name, std::string description) {
    return add_output({std::move(name), payload_type_name<T>(), std::move(description), false, true});
  }
  template <class T>
  NodeSpec& input(InputPort<T> port, std::string description) {
    return input<T>(std::string(port.name), std::move(description));
  }
  template <class T>
  NodeSpec& optional_input(InputPort<T> port, std::string description) {
    return optional_input<T>(std::string(port.name), std::move(description));
  }
  template <class T>
  NodeSpec& multi_input(InputPort<T> port, std::string description, bool optional = false) {
    return multi_input<T>(std::string(port.name), std::move(description), optional);
  }
  template <class T>
  NodeSpec& output(OutputPort<T> port, std::string description) {
    return output<T>(std::string(port.name), std::move(description));
  }
  template <class T>
  NodeSpec& optional_output(OutputPort<T> port, std::string description) {
    return optional_output<T>(std::string(port.name), std::move(description));
  }
  // An untyped parameter, read with ctx.param<T>(name). Nodes in the tree
  // declare typed ones instead (NodeType in fusionflow/node_type.hpp).
  NodeSpec& param(std::string name, const Param& param, std::string description);
  // Declares that the node needs working memory of a few times its inputs
  // while it runs (multiscale transforms, fusion rules, volume rendering).
  // The executor runs at most RunOptions::max_memory_intensive_nodes such
  // nodes at once (default one); other nodes keep running beside them.
  NodeSpec& memory_intensive(bool value = true);
  // Declares that the node's results must not come from the node cache
  // (fusionflow/node_cache.hpp), saying why: it depends on something its
  // parameters, inputs and input files do not show (the clock, a device, a
  // server), or has effects beyond its outputs and the files it commits.
  NodeSpec& uncacheable(std::string reason);
  // Marks a declared parameter as confidential (ParamSpec::confidential).
  // Throws std::invalid_argument if no parameter has that name.
  NodeSpec& confidential(std::string_view param_name);

  NodeSpec& add_input(PortSpec port);
  NodeSpec& add_output(PortSpec port);
  NodeSpec& add_param(ParamSpec param);

  const std::string& type() const { return type_; }
  const std::string& version() const { return version_; }
  const std::string& description() const { return description_; }
  const std::vector<PortSpec>& inputs() const { return inputs_; }
  const std::vector<PortSpec>& outputs() const { return outputs_; }
  const std::vector<ParamSpec>& params() const { return params_; }
  bool is_memory_intensive() const { return memory_intensive_; }
  const std::string& uncacheable_reason() const { return uncacheable_reason_; }  // empty: cacheable

  const PortSpec* find_input(std::string_view name) const;
  const PortSpec* find_output(std::string_view name) const;
  const ParamSpec* find_param(std::string_view name) const;

  // The family is the part before the dot: "io" for "io.load_ct".
  std::string family() const;

 private:
  std::string type_;
  std::string version_;
  std::string description_;
  std::vector<PortSpec> inputs_;
  std::vector<PortSpec> outputs_;
  std::vector<ParamSpec> params_;
  bool memory_intensive_ = false;
  std::string uncacheable_reason_;
};

// Thrown by NodeContext::throw_if_cancelled(); the executor records the node
// as cancelled, not failed.
class Cancelled : public std::runtime_error {
 public:
  Cancelled() : std::runtime_error("cancelled") {}
};

enum class LogLevel { Trace, Debug, Info, Warn, Error };

// Everything a node sees while it runs. Created by the executor (and by the
// SDK's test helpers); a node never constructs one.
class NodeContext {
 public:
  struct Callbacks {
    std::function<void(double fraction)> progress;
    std::function<void(LogLevel, const std::string& message)> log;
  };

  // `registry` (optional) is where latent_decoder() looks.
  NodeContext(std::string node_id, const NodeSpec& spec, std::map<std::string, ParamValue> params,
              std::map<std::string, std::vector<Payload>> inputs, const std::atomic<bool>* cancel_flag,
              int thread_budget, Callbacks callbacks, const NodeRegistry* registry = nullptr);

  const std::string& node_id() const { return node_id_; }
  const NodeSpec& spec() const { return spec_; }

  // --- inputs ---------------------------------------------------------------
  bool has_input(std::string_view port) const;
  template <class T>
  std::shared_ptr<const T> input_ptr(std::string_view port) const {
    return single_input(port).get<T>();
  }
  template <class T>
  const T& input(std::string_view port) const {
    return *single_input(port).get<T>();
  }
  // All producers of a multi-input port, in pipeline order (empty if an
  // optional multi-input is unconnected).
  template <class T>
  std::vector<std::shared_ptr<const T>> inputs(std::string_view port) const {
    std::vector<std::shared_ptr<const T>> values;
    for (const Payload& payload : input_list(port)) values.push_back(payload.get<T>());
    return values;
  }

  // The payload of an input port, whatever its type (for hosts such as the
  // Python module that hand payloads on without knowing their C++ type);
  // and every producer's payload of a multi-input port.
  const Payload& input_payload(std::string_view port) const { return single_input(port); }
  const std::vector<Payload>& input_payloads(std::string_view port) const { return input_list(port); }

  // The same through typed ports (the type comes from the port).
  template <class T>
  bool has_input(InputPort<T> port) const {
    return has_input(port.name);
  }
  template <class T>
  const T& input(InputPort<T> port) const {
    return *single_input(port.name).template get<T>();
  }
  template <class T>
  std::shared_ptr<const T> input_ptr(InputPort<T> port) const {
    return single_input(port.name).template get<T>();
  }
  template <class T>
  std::vector<std::shared_ptr<const T>> inputs(InputPort<T> port) const {
    return inputs<T>(port.name);
  }

  // --- outputs --------------------------------------------------------------
  template <class T>
  void output(OutputPort<T> port, typename detail::SameType<T>::type value) {
    set_output(port.name, Payload::of<T>(std::make_shared<const T>(std::move(value))));
  }
  template <class T>
  void output(OutputPort<T> port, std::shared_ptr<const T> value) {
    set_output(port.name, Payload::of<T>(std::move(value)));
  }
  template <class T>
  void output(std::string_view port, std::shared_ptr<const T> value) {
    set_output(port, Payload::of<T>(std::move(value)));
  }
  template <class T, class = std::enable_if_t<!std::is_pointer_v<std::decay_t<T>>>>
  void output(std::string_view port, T&& value) {
    using Value = std::decay_t<T>;
    set_output(port, Payload::of<Value>(std::make_shared<const Value>(std::forward<T>(value))));
  }
  void set_output(std::string_view port, Payload payload);
  const std::map<std::string, Payload>& outputs() const { return outputs_; }
  std::map<std::string, Payload> take_outputs() { return std::move(outputs_); }

  // --- parameters -----------------------------------------------------------
  // T is one of: bool, int, std::int64_t, std::size_t, double, float,
  // std::string, std::filesystem::path, std::vector<double>,
  // std::vector<std::int64_t>. Throws std::logic_error if T does not fit the
  // declared kind (a bug in the node).
  template <class T>
  T param(std::string_view name) const;
  const ParamValue& param_value(std::string_view name) const;

  // --- progress, cancellation, logging, threads ------------------------------
  // fraction in [0, 1]; values outside are clamped.
  void progress(double fraction);
  bool cancelled() const { return cancel_flag_ != nullptr && cancel_flag_->load(std::memory_order_relaxed); }
  void throw_if_cancelled() const {
    if (cancelled()) throw Cancelled();
  }
  // The decoder registered for a latent kind (fusionflow/latent_codec.hpp),
  // or nullptr; and every kind that has one, sorted.
  const LatentDecoder* latent_decoder(std::string_view kind) const;
  std::vector<std::string> latent_decoder_kinds() const;

  // How many threads this node may use for its own parallel work.
  int thread_budget() const { return thread_budget_; }
  void log(LogLevel level, const std::string& message);

 private:
  const Payload& single_input(std::string_view port) const;
  const std::vector<Payload>& input_list(std::string_view port) const;

  std::string node_id_;
  const NodeSpec& spec_;
  std::map<std::string, ParamValue> params_;
  std::map<std::string, std::vector<Payload>> inputs_;
  std::map<std::string, Payload> outputs_;
  const std::atomic<bool>* cancel_flag_;
  int thread_budget_;
  Callbacks callbacks_;
  const NodeRegistry* registry_;
};

extern template bool NodeContext::param<bool>(std::string_view) const;
extern template int NodeContext::param<int>(std::string_view) const;
extern template std::int64_t NodeContext::param<std::int64_t>(std::string_view) const;
extern template std::size_t NodeContext::param<std::size_t>(std::string_view) const;
extern template double NodeContext::param<double>(std::string_view) const;
extern template float NodeContext::param<float>(std::string_view) const;
extern template std::string NodeContext::param<std::string>(std::string_view) const;
extern template std::filesystem::path NodeContext::param<std::filesystem::path>(std::string_view) const;
extern template std::vector<double> NodeContext::param<std::vector<double>>(std::string_view) const;
extern template std::vector<std::int64_t> NodeContext::param<std::vector<std::int64_t>>(std::string_view) const;

using RunFunction = std::function<void(NodeContext&)>;

// A node type: its declaration and its work.
struct NodeDefinition {
  NodeSpec spec;
  RunFunction run;
};

}  // namespace fusionflow
