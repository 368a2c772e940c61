// The registry of node types and payload types known to this process.
//
// It lives in the core shared library only (never in a header), so the host
// and every plugin see the same one.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "fusionflow/latent_codec.hpp"
#include "fusionflow/node.hpp"
#include "fusionflow/payload_codec.hpp"
#include "fusionflow/plugin_command.hpp"

namespace fusionflow {

// Where a node or payload type came from.
struct Origin {
  std::string plugin_name;  // "core", or "(host)" for types registered in-process
  std::string plugin_version;
  std::string library_path;  // empty for in-process registrations
};

struct RegisteredNode {
  NodeDefinition definition;
  Origin origin;
  const NodeSpec& spec() const { return definition.spec; }
};

struct RegisteredLatentDecoder {
  LatentDecoder decoder;
  Origin origin;
};

struct RegisteredCommand {
  PluginCommand command;
  Origin origin;
};

struct RegisteredPayloadType {
  std::string name;
  std::string description;
  Origin origin;
  PayloadCodec codec;  // may be unusable: then values of this type are not cached
};

class NodeRegistry {
 public:
  // A registry with the payload types the SDK itself defines (Volume, Table, ...).
  NodeRegistry();

  // Throws std::invalid_argument with a clear reason if the spec is malformed
  // (name not "family.name" in lower snake case, unknown port type, duplicate
  // port or parameter, default outside its range or choices) or if the type
  // name is already registered (naming both origins).
  void add_node(NodeDefinition definition, Origin origin = {"(host)", "", ""});
  void add_payload_type(std::string name, std::string description, Origin origin = {"(host)", "", ""},
                        PayloadCodec codec = {});
  // Throws std::invalid_argument if the kind is not lower snake case, has no
  // decode function, or is already registered (naming both origins).
  void add_latent_decoder(LatentDecoder decoder, Origin origin = {"(host)", "", ""});

  const RegisteredNode* find_node(std::string_view type) const;
  const RegisteredPayloadType* find_payload_type(std::string_view name) const;
  const RegisteredLatentDecoder* find_latent_decoder(std::string_view kind) const;
  // Throws std::invalid_argument for a malformed or reserved name, no
  // function, or a name another plugin registered.
  void add_command(PluginCommand command, Origin origin = {"(host)", "", ""});
  const RegisteredCommand* find_command(std::string_view name) const;
  std::vector<const RegisteredCommand*> commands() const;  // sorted by name
  // Sorted by type name.
  std::vector<const RegisteredNode*> nodes() const;
  std::vector<const RegisteredPayloadType*> payload_types() const;
  std::vector<const RegisteredLatentDecoder*> latent_decoders() const;  // sorted by kind
  // The registered type names closest to `type` by edit distance (at most `count`).
  std::vector<std::string> nearest_node_types(std::string_view type, std::size_t count = 1) const;

  // Called with the run's thread count before a run starts, so libraries with
  // their own thread pools (ITK) can be capped to it.
  void add_thread_budget_hook(std::function<void(int)> hook);
  void apply_thread_budget(int threads) const;

 private:
  std::map<std::string, std::unique_ptr<RegisteredNode>, std::less<>> nodes_;
  std::map<std::string, RegisteredPayloadType, std::less<>> payload_types_;
  std::map<std::string, RegisteredLatentDecoder, std::less<>> latent_decoders_;
  std::map<std::string, RegisteredCommand, std::less<>> commands_;
  std::vector<std::function<void(int)>> thread_budget_hooks_;
};

// Edit distance used for "did you mean" hints.
std::size_t edit_distance(std::string_view a, std::string_view b);

}  // namespace fusionflow
