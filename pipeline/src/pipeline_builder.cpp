#include "fusionflow/pipeline_builder.hpp"

#include <nlohmann/json.hpp>

#include <cmath>
#include <stdexcept>
#include <type_traits>
#include <variant>

namespace fusionflow {

namespace {

// Values set in code are taken as they are: a '$' is written as "$$" so that
// the loader's ${name} substitution gives it back unchanged.
std::string escape_dollars(const std::string& text) {
  std::string escaped;
  for (char c : text) {
    escaped += c;
    if (c == '$') escaped += '$';
  }
  return escaped;
}

// JSON has no NaN or infinity: they are written as the text "nan", "inf",
// which the loader reads as numbers and its validator then refuses as not
// finite (the message a test or program needs, rather than "got null").
nlohmann::ordered_json number_value(double number) {
  if (std::isfinite(number)) return number;
  return std::isnan(number) ? "nan" : (number > 0 ? "inf" : "-inf");
}

nlohmann::ordered_json to_json_value(const ParamValue& value) {
  if (const auto* text = std::get_if<std::string>(&value)) return escape_dollars(*text);
  if (const auto* number = std::get_if<double>(&value)) return number_value(*number);
  if (const auto* list = std::get_if<std::vector<double>>(&value)) {
    nlohmann::ordered_json array = nlohmann::ordered_json::array();
    for (double item : *list) array.push_back(number_value(item));
    return array;
  }
  return std::visit([](const auto& held) { return nlohmann::ordered_json(held); }, value);
}

}  // namespace

PipelineBuilder::PipelineBuilder(std::string source_name) : source_name_(std::move(source_name)) {}

PipelineBuilder& PipelineBuilder::description(std::string text) {
  description_ = std::move(text);
  return *this;
}

PipelineBuilder& PipelineBuilder::add_node(std::string id, std::string type) {
  nodes_.push_back({std::move(id), std::move(type), {}, {}});
  return *this;
}

PipelineBuilder::Node& PipelineBuilder::find(const std::string& id, const char* what) {
  for (Node& node : nodes_) {
    if (node.id == id) return node;
  }
  throw std::invalid_argument(std::string(what) + ": no node '" + id + "' was added to the pipeline");
}

PipelineBuilder& PipelineBuilder::set_param_json(const std::string& id, const std::string& name,
                                                 std::string json_value) {
  Node& node = find(id, "set_param");
  for (auto& [known, held] : node.params) {
    if (known == name) {
      held = std::move(json_value);
      return *this;
    }
  }
  node.params.emplace_back(name, std::move(json_value));
  return *this;
}

PipelineBuilder& PipelineBuilder::set_param(const std::string& id, const std::string& name, ParamValue value) {
  return set_param_json(id, name, to_json_value(value).dump());
}

PipelineBuilder& PipelineBuilder::set_param_template(const std::string& id, const std::string& name,
                                                     const std::string& text) {
  return set_param_json(id, name, nlohmann::ordered_json(text).dump());
}

PipelineBuilder& PipelineBuilder::variable(const std::string& name, const std::string& default_value,
                                           const std::string& description) {
  nlohmann::ordered_json entry{{"default", default_value}};
  if (!description.empty()) entry["description"] = description;
  for (auto& [known, held] : variables_) {
    if (known == name) {
      held = entry.dump();
      return *this;
    }
  }
  variables_.emplace_back(name, entry.dump());
  return *this;
}

std::vector<std::pair<std::string, std::string>> PipelineBuilder::nodes() const {
  std::vector<std::pair<std::string, std::string>> listed;
  for (const Node& node : nodes_) listed.emplace_back(node.id, node.type);
  return listed;
}

std::string PipelineBuilder::node_type(const std::string& id) const {
  for (const Node& node : nodes_) {
    if (node.id == id) return node.type;
  }
  return {};
}

PipelineBuilder& PipelineBuilder::connect(const std::string& output, const std::string& input) {
  const auto dot = input.find('.');
  if (dot == std::string::npos || output.find('.') == std::string::npos) {
    throw std::invalid_argument("connect(\"" + output + "\", \"" + input +
                                "\"): both ends are \"node.port\", e.g. connect(\"ct.volume\", \"stats.volume\")");
  }
  Node& consumer = find(input.substr(0, dot), "connect");
  const std::string port = input.substr(dot + 1);
  for (auto& [known, producers] : consumer.inputs) {
    if (known == port) {
      producers.push_back(output);
      return *this;
    }
  }
  consumer.inputs.push_back({port, {output}});
  return *this;
}

std::string PipelineBuilder::to_json() const {
  nlohmann::ordered_json document;
  document["format_version"] = kPipelineFormatVersion;
  if (!description_.empty()) document["description"] = description_;
  if (!variables_.empty()) {
    nlohmann::ordered_json variables = nlohmann::ordered_json::object();
    for (const auto& [name, entry] : variables_) variables[name] = nlohmann::ordered_json::parse(entry);
    document["variables"] = variables;
  }
  document["nodes"] = nlohmann::ordered_json::array();
  for (const Node& node : nodes_) {
    nlohmann::ordered_json entry{{"id", node.id}, {"type", node.type}};
    if (!node.params.empty()) {
      nlohmann::ordered_json params = nlohmann::ordered_json::object();
      for (const auto& [name, value] : node.params) params[name] = nlohmann::ordered_json::parse(value);
      entry["params"] = params;
    }
    if (!node.inputs.empty()) {
      nlohmann::ordered_json inputs = nlohmann::ordered_json::object();
      for (const auto& [port, producers] : node.inputs) {
        if (producers.size() == 1) {
          inputs[port] = producers.front();
        } else {
          inputs[port] = producers;
        }
      }
      entry["inputs"] = inputs;
    }
    document["nodes"].push_back(entry);
  }
  return document.dump(2) + "\n";
}

PipelineBuilder PipelineBuilder::from_json(const std::string& text, std::string source_name) {
  using json = nlohmann::ordered_json;
  const json document = json::parse(text, nullptr, /*allow_exceptions=*/false);
  const auto refuse = [&source_name](const std::string& why) {
    return std::invalid_argument(source_name + ": " + why + " (load it with load_pipeline_text for every problem)");
  };
  if (document.is_discarded()) throw refuse("not JSON");
  if (!document.is_object() || !document.contains("nodes") || !document["nodes"].is_array()) {
    throw refuse("not a pipeline file: it needs an object with a \"nodes\" list");
  }
  PipelineBuilder builder(std::move(source_name));
  if (document.contains("description") && document["description"].is_string()) {
    builder.description(document["description"].get<std::string>());
  }
  if (document.contains("variables") && document["variables"].is_object()) {
    for (const auto& [name, entry] : document["variables"].items()) builder.variables_.emplace_back(name, entry.dump());
  }
  for (const json& node : document["nodes"]) {
    if (!node.is_object() || !node.contains("id") || !node["id"].is_string() || !node.contains("type") ||
        !node["type"].is_string()) {
      throw refuse("every node needs a string \"id\" and \"type\"");
    }
    const std::string id = node["id"].get<std::string>();
    builder.add_node(id, node["type"].get<std::string>());
    if (node.contains("params") && node["params"].is_object()) {
      for (const auto& [name, value] : node["params"].items()) builder.set_param_json(id, name, value.dump());
    }
    if (node.contains("inputs") && node["inputs"].is_object()) {
      for (const auto& [port, producers] : node["inputs"].items()) {
        const json list = producers.is_array() ? producers : json::array({producers});
        for (const json& producer : list) {
          if (!producer.is_string()) throw refuse("node '" + id + "': inputs name producers as \"node.port\" text");
          builder.connect(producer.get<std::string>(), id + "." + port);
        }
      }
    }
  }
  return builder;
}

LoadResult PipelineBuilder::build(const NodeRegistry& registry, const LoadOptions& options,
                                  const std::filesystem::path& directory) const {
  return load_pipeline_text(to_json(), source_name_, directory, registry, options);
}

}  // namespace fusionflow
