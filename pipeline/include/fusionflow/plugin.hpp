// The plugin ABI: a plugin is a shared library that exports exactly one C
// function, `fusionflow_plugin_descriptor`, returning a descriptor the host
// checks before it calls anything else in the library.
//
//   #include <fusionflow/sdk.hpp>
//   FUSIONFLOW_PLUGIN("smoothing", "1.0.0", "Gaussian smoothing nodes") {
//     registrar.add_node(spec, run);
//   }
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "fusionflow/latent_codec.hpp"
#include "fusionflow/node.hpp"
#include "fusionflow/node_type.hpp"
#include "fusionflow/payload_codec.hpp"
#include "fusionflow/plugin_command.hpp"

// Bumped whenever a change to the SDK headers breaks binary compatibility of
// plugins (layout of NodeSpec, NodeContext, payload types, registrar).
#define FUSIONFLOW_PLUGIN_ABI_VERSION 7u

// Set by fusionflow_add_plugin() from the ITK/VTK the plugin is built with;
// empty when a plugin uses neither.
#ifndef FUSIONFLOW_PLUGIN_ITK_VERSION
#define FUSIONFLOW_PLUGIN_ITK_VERSION ""
#endif
#ifndef FUSIONFLOW_PLUGIN_VTK_VERSION
#define FUSIONFLOW_PLUGIN_VTK_VERSION ""
#endif

#if defined(__clang__)
#define FUSIONFLOW_COMPILER_ID "clang " __clang_version__
#elif defined(__GNUC__)
#define FUSIONFLOW_COMPILER_ID "gcc " __VERSION__
#else
#define FUSIONFLOW_COMPILER_ID "unknown"
#endif

namespace fusionflow {

class PluginRegistrar;

// Plain data with C layout. `abi_version` stays the first member in every ABI
// version, so the host can read it from any plugin before trusting the rest.
struct PluginDescriptor {
  std::uint32_t abi_version;
  const char* name;
  const char* version;
  const char* description;
  const char* compiler;
  const char* itk_version;
  const char* vtk_version;
  void (*register_plugin)(PluginRegistrar& registrar);
};

// What a plugin's registration function uses. Registrations are collected and
// only enter the registry if the whole function returns normally.
class PluginRegistrar {
 public:
  // A typed node (fusionflow/node_type.hpp): `run` takes the node's filled options.
  template <class Options, class Run>
  void add_node(const NodeType<Options>& node, Run run) {
    nodes_.push_back(node.bind(std::move(run)));
  }
  // An untyped node, which reads its parameters by name.
  void add_node(NodeSpec spec, RunFunction run) { nodes_.push_back({std::move(spec), std::move(run)}); }
  // A payload type; with a codec (fusionflow/payload_codec.hpp) the nodes
  // that make or take it can be cached.
  void add_payload_type(std::string name, std::string description, PayloadCodec codec = {}) {
    payload_types_.push_back({std::move(name), std::move(description), std::move(codec)});
  }
  // The decoder of a latent kind this plugin's encoders produce (decode.latent dispatches on it).
  void add_latent_decoder(std::string kind, std::string description, LatentDecodeFunction decode) {
    latent_decoders_.push_back({std::move(kind), std::move(description), std::move(decode)});
  }
  // A subcommand of the fusionflow program (fusionflow/plugin_command.hpp).
  void add_command(std::string name, std::string summary, CommandFunction run) {
    commands_.push_back({std::move(name), std::move(summary), std::move(run)});
  }
  // e.g. cap ITK's thread pool to the run's --threads.
  void add_thread_budget_hook(std::function<void(int)> hook) { thread_hooks_.push_back(std::move(hook)); }

  struct PayloadTypeEntry {
    std::string name;
    std::string description;
    PayloadCodec codec;
  };
  std::vector<NodeDefinition>& nodes() { return nodes_; }
  std::vector<PayloadTypeEntry>& payload_types() { return payload_types_; }
  std::vector<std::function<void(int)>>& thread_budget_hooks() { return thread_hooks_; }
  std::vector<LatentDecoder>& latent_decoders() { return latent_decoders_; }
  std::vector<PluginCommand>& commands() { return commands_; }

 private:
  std::vector<NodeDefinition> nodes_;
  std::vector<PayloadTypeEntry> payload_types_;
  std::vector<std::function<void(int)>> thread_hooks_;
  std::vector<LatentDecoder> latent_decoders_;
  std::vector<PluginCommand> commands_;
};

}  // namespace fusionflow

#define FUSIONFLOW_PLUGIN_ENTRY_SYMBOL "fusionflow_plugin_descriptor"

#define FUSIONFLOW_PLUGIN(NAME, VERSION, DESCRIPTION)                                         \
  static void fusionflow_register_this_plugin(::fusionflow::PluginRegistrar& registrar);      \
  extern "C" __attribute__((visibility("default"))) const ::fusionflow::PluginDescriptor*     \
  fusionflow_plugin_descriptor(void) {                                                        \
    static const ::fusionflow::PluginDescriptor descriptor{FUSIONFLOW_PLUGIN_ABI_VERSION,     \
                                                           NAME,                              \
                                                           VERSION,                           \
                                                           DESCRIPTION,                       \
                                                           FUSIONFLOW_COMPILER_ID,            \
                                                           FUSIONFLOW_PLUGIN_ITK_VERSION,     \
                                                           FUSIONFLOW_PLUGIN_VTK_VERSION,     \
                                                           &fusionflow_register_this_plugin}; \
    return &descriptor;                                                                       \
  }                                                                                           \
  static void fusionflow_register_this_plugin(::fusionflow::PluginRegistrar& registrar)
