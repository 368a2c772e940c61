#include <iostream>
#include <sstream>

#include <fusionflow/pipeline.hpp>
#include <nlohmann/json.hpp>

#include "commands.hpp"

namespace fusionflow::cli {

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
  entry["description"] = param.description;
  return entry;
}

std::string describe_param(const ParamSpec& param) {
  std::string text = param.name + " (" + to_string(param.kind);
  if (param.default_value)
    text += ", default " + param_value_to_json(*param.default_value);
  else
    text += ", required";
  if (param.min || param.max) {
    std::ostringstream range;
    range << ", range [";
    if (param.min)
      range << *param.min;
    else
      range << "-inf";
    range << ", ";
    if (param.max)
      range << *param.max;
    else
      range << "inf";
    text += range.str() + "]";
  }
  if (!param.choices.empty()) {
    text += ", one of";
    for (const auto& choice : param.choices) text += " " + choice;
  }
  return text + "): " + param.description;
}

}  // namespace

int plugins_command(Session& session, bool as_json) {
  const NodeRegistry& registry = session.registry();
  if (as_json) {
    ordered_json document;
    ordered_json plugins = ordered_json::array();
    for (const PluginLoadReport& report : session.plugin_reports()) {
      ordered_json entry{{"file", report.file.string()}, {"loaded", report.loaded}};
      if (!report.plugin_name.empty()) entry["name"] = report.plugin_name;
      if (!report.plugin_version.empty()) entry["version"] = report.plugin_version;
      if (!report.error.empty()) entry["error"] = report.error;
      entry["node_types"] = report.node_types;
      entry["commands"] = report.commands;
      entry["warnings"] = report.warnings;
      plugins.push_back(std::move(entry));
    }
    document["plugins"] = std::move(plugins);
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
    std::cout << document.dump(2) << "\n";
    return kSuccess;
  }

  std::cout << "Plugins:\n";
  for (const PluginLoadReport& report : session.plugin_reports()) {
    if (report.loaded) {
      std::cout << "  " << report.plugin_name << " " << report.plugin_version << "  " << report.file.string() << "  ("
                << report.node_types.size() << " node types)\n";
    } else {
      std::cout << "  NOT LOADED " << report.file.string() << ": " << report.error << "\n";
    }
    for (const std::string& warning : report.warnings) std::cout << "    warning: " << warning << "\n";
  }
  std::cout << "\nPayload types:\n";
  for (const RegisteredPayloadType* type : registry.payload_types()) {
    std::cout << "  " << type->name << ": " << type->description << "\n";
  }
  std::cout << "\nLatent decoders (decode.latent, by the latent's kind):\n";
  for (const RegisteredLatentDecoder* decoder : registry.latent_decoders()) {
    std::cout << "  " << decoder->decoder.kind << " [" << decoder->origin.plugin_name
              << "]: " << decoder->decoder.description << "\n";
  }
  std::cout << "\nCommands (fusionflow NAME ...):\n";
  for (const RegisteredCommand* command : registry.commands()) {
    std::cout << "  " << command->command.name << " [" << command->origin.plugin_name
              << "]: " << command->command.summary << "\n";
  }
  std::cout << "\nNode types:\n";
  for (const RegisteredNode* node : registry.nodes()) {
    const NodeSpec& spec = node->spec();
    std::cout << "\n"
              << spec.type() << " " << spec.version() << "  [" << node->origin.plugin_name << " "
              << node->origin.plugin_version << ": " << node->origin.library_path << "]\n";
    std::cout << "  " << spec.description() << "\n";
    for (const PortSpec& port : spec.inputs()) {
      std::cout << "  input  " << port.name << ": " << port.type << (port.multi ? " (multi)" : "")
                << (port.optional ? " (optional)" : "") << " - " << port.description << "\n";
    }
    for (const PortSpec& port : spec.outputs()) {
      std::cout << "  output " << port.name << ": " << port.type << (port.optional ? " (optional)" : "") << " - "
                << port.description << "\n";
    }
    for (const ParamSpec& param : spec.params()) std::cout << "  param  " << describe_param(param) << "\n";
  }
  return kSuccess;
}

}  // namespace fusionflow::cli
