// The `fusionflow plugins --json` document (docs/cli.md), shared by the CLI
// and the Python module's Registry.
#include <nlohmann/json.hpp>

#include "fusionflow/pipeline.hpp"
#include "fusionflow/plugin_loader.hpp"

namespace fusionflow {

namespace {
using ordered_json = nlohmann::ordered_json;

ordered_json port_json(const PortSpec& port) {
  return {{"name", port.name},
          {"type", port.type},
          {"multi", port.multi},
          {"optional", port.optional},
          {"description", port.description}};
}

ordered_json param_json(const ParamSpec& param) {
  ordered_json entry{{"name", param.name}, {"kind", to_string(param.kind)}, {"required", param.required()}};
  if (param.default_value) entry["default"] = ordered_json::parse(param_value_to_json(*param.default_value));
  if (param.min) entry["min"] = *param.min;
  if (param.max) entry["max"] = *param.max;
  if (!param.choices.empty()) entry["choices"] = param.choices;
  if (param.list_length) entry["length"] = *param.list_length;
  if (param.confidential) entry["confidential"] = true;
  entry["description"] = param.description;
  return entry;
}

}  // namespace

std::string registry_json(const NodeRegistry& registry, const std::vector<PluginLoadReport>& plugins) {
  ordered_json document;
  ordered_json listed = ordered_json::array();
  for (const PluginLoadReport& report : plugins) {
    ordered_json entry{{"file", report.file.string()}, {"loaded", report.loaded}};
    if (!report.plugin_name.empty()) entry["name"] = report.plugin_name;
    if (!report.plugin_version.empty()) entry["version"] = report.plugin_version;
    if (!report.error.empty()) entry["error"] = report.error;
    entry["node_types"] = report.node_types;
    entry["commands"] = report.commands;
    entry["warnings"] = report.warnings;
    listed.push_back(std::move(entry));
  }
  document["plugins"] = std::move(listed);
  ordered_json types = ordered_json::array();
  for (const RegisteredPayloadType* type : registry.payload_types()) {
    types.push_back({{"name", type->name}, {"description", type->description}, {"plugin", type->origin.plugin_name}});
  }
  document["payload_types"] = std::move(types);
  ordered_json decoders = ordered_json::array();
  for (const RegisteredLatentDecoder* decoder : registry.latent_decoders()) {
    decoders.push_back({{"kind", decoder->decoder.kind},
                        {"description", decoder->decoder.description},
                        {"plugin", decoder->origin.plugin_name}});
  }
  document["latent_decoders"] = std::move(decoders);
  ordered_json commands = ordered_json::array();
  for (const RegisteredCommand* command : registry.commands()) {
    commands.push_back({{"name", command->command.name},
                        {"summary", command->command.summary},
                        {"plugin", command->origin.plugin_name}});
  }
  document["commands"] = std::move(commands);
  ordered_json nodes = ordered_json::array();
  for (const RegisteredNode* node : registry.nodes()) {
    const NodeSpec& spec = node->spec();
    ordered_json entry{{"type", spec.type()},
                       {"version", spec.version()},
                       {"description", spec.description()},
                       {"plugin", node->origin.plugin_name},
                       {"plugin_version", node->origin.plugin_version},
                       {"library", node->origin.library_path}};
    entry["inputs"] = ordered_json::array();
    for (const PortSpec& port : spec.inputs()) entry["inputs"].push_back(port_json(port));
    entry["outputs"] = ordered_json::array();
    for (const PortSpec& port : spec.outputs()) entry["outputs"].push_back(port_json(port));
    entry["params"] = ordered_json::array();
    for (const ParamSpec& param : spec.params()) entry["params"].push_back(param_json(param));
    nodes.push_back(std::move(entry));
  }
  document["node_types"] = std::move(nodes);
  return document.dump(2);
}

}  // namespace fusionflow
