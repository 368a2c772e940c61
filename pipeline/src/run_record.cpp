#include "fusionflow/run_record.hpp"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <string>
#include <vector>

#include "fusionflow/version.hpp"
#include "fusionflow/sha256.hpp"

namespace fusionflow {
using ordered_json = nlohmann::ordered_json;

namespace {

constexpr const char* kWithheld = "(withheld)";

bool is_confidential(const PipelineNode& node, const std::string& name) {
  const ParamSpec* spec = node.definition->spec().find_param(name);
  return spec != nullptr && spec->confidential;
}

// The text of every confidential parameter that has one.
std::vector<std::string> confidential_values(const Pipeline& pipeline) {
  std::vector<std::string> values;
  for (const PipelineNode& node : pipeline.nodes) {
    for (const auto& [name, value] : node.params) {
      const auto* text = std::get_if<std::string>(&value);
      if (text != nullptr && !text->empty() && is_confidential(node, name)) values.push_back(*text);
    }
  }
  return values;
}

ordered_json params_json(const PipelineNode& node) {
  ordered_json params = ordered_json::object();
  for (const auto& [name, value] : node.params) {
    const auto* text = std::get_if<std::string>(&value);
    if (text != nullptr && !text->empty() && is_confidential(node, name)) {
      params[name] = kWithheld;
    } else {
      params[name] = ordered_json::parse(param_value_to_json(value));
    }
  }
  return params;
}

ordered_json inputs_json(const Pipeline& pipeline, const PipelineNode& node) {
  ordered_json inputs = ordered_json::object();
  for (const auto& [port, refs] : node.inputs) {
    ordered_json sources = ordered_json::array();
    for (const OutputRef& ref : refs) sources.push_back(pipeline.nodes[ref.node].id + "." + ref.port);
    inputs[port] = std::move(sources);
  }
  return inputs;
}

}  // namespace

std::string resolved_pipeline_sha256(const Pipeline& pipeline) {
  ordered_json canonical = ordered_json::array();
  for (const PipelineNode& node : pipeline.nodes) {
    canonical.push_back({{"id", node.id},
                         {"type", node.type},
                         {"version", node.definition->spec().version()},
                         {"params", params_json(node)},
                         {"inputs", inputs_json(pipeline, node)}});
  }
  return sha256_hex(canonical.dump());
}

std::string run_record_json(const Pipeline& pipeline, const RunResult& result,
                            const std::vector<PluginLoadReport>& plugins, int exit_code) {
  ordered_json record;
  record["run_record_format_version"] = kRunRecordFormatVersion;
  record["fusionflow_version"] = version_string();
  record["started_at_utc"] = result.started_at_utc;
  record["exit_status"] = result.succeeded ? "succeeded" : (result.stopped_by_user ? "stopped" : "failed");
  record["exit_code"] = exit_code;
  if (!result.error.empty()) record["error"] = result.error;
  record["pipeline"] = {{"source", pipeline.source_name},
                        {"format_version", pipeline.format_version},
                        {"file_sha256", pipeline.source_sha256},
                        {"resolved_sha256", resolved_pipeline_sha256(pipeline)},
                        {"description", pipeline.description}};
  ordered_json variables = ordered_json::object();
  // A variable is withheld when a confidential parameter holds its value
  // (it was substituted there, or happens to be part of it: withholding too
  // much is the safe side).
  const std::vector<std::string> secrets = confidential_values(pipeline);
  for (const auto& [name, value] : pipeline.variables) {
    const bool secret = !value.empty() && std::any_of(secrets.begin(), secrets.end(), [&](const std::string& held) {
      return held.find(value) != std::string::npos;
    });
    variables[name] = secret ? kWithheld : value;
  }
  record["variables"] = std::move(variables);
  record["threads"] = result.threads;
  record["wall_seconds"] = result.wall_seconds;
  record["peak_memory_bytes"] = result.peak_memory_bytes;

  ordered_json plugin_list = ordered_json::array();
  for (const PluginLoadReport& plugin : plugins) {
    ordered_json entry{{"file", plugin.file.string()}, {"loaded", plugin.loaded}};
    if (!plugin.plugin_name.empty()) entry["name"] = plugin.plugin_name;
    if (!plugin.plugin_version.empty()) entry["version"] = plugin.plugin_version;
    if (!plugin.error.empty()) entry["error"] = plugin.error;
    plugin_list.push_back(std::move(entry));
  }
  record["plugins"] = std::move(plugin_list);

  ordered_json nodes = ordered_json::array();
  for (std::size_t i = 0; i < pipeline.nodes.size(); ++i) {
    const PipelineNode& node = pipeline.nodes[i];
    const NodeRunInfo& info = result.nodes.at(i);
    ordered_json entry{{"id", node.id},
                       {"type", node.type},
                       {"version", node.definition->spec().version()},
                       {"plugin", node.definition->origin.plugin_name},
                       {"params", params_json(node)},
                       {"inputs", inputs_json(pipeline, node)},
                       {"status", to_string(info.status)}};
    if (info.status != NodeStatus::NotRun) {
      entry["start_seconds"] = info.start_seconds;
      entry["end_seconds"] = info.end_seconds;
      entry["wall_seconds"] = info.wall_seconds;
      entry["cpu_seconds"] = info.cpu_seconds;
      entry["process_cpu_seconds"] = info.process_cpu_seconds;
      entry["ran_alone"] = info.ran_alone;
      entry["peak_memory_bytes"] = info.peak_memory_bytes;
    }
    if (!info.error.empty()) entry["error"] = info.error;
    if (!info.cache.empty()) entry["cache"] = info.cache;
    if (!info.cache_key.empty()) entry["cache_key"] = info.cache_key;
    nodes.push_back(std::move(entry));
  }
  record["nodes"] = std::move(nodes);
  return record.dump(2) + "\n";
}

}  // namespace fusionflow
