#include <iostream>
#include <sstream>

#include <fusionflow/pipeline.hpp>
#include <fusionflow/plugin_loader.hpp>

#include "commands.hpp"

namespace fusionflow::cli {

namespace {

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
    std::cout << registry_json(registry, session.plugin_reports()) << "\n";
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
