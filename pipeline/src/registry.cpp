#include "fusionflow/registry.hpp"

#include <algorithm>
#include <regex>
#include <set>
#include <stdexcept>

#include "fusionflow/color.hpp"
#include "fusionflow/latent.hpp"
#include "fusionflow/pipeline.hpp"  // param_value_to_json
#include "fusionflow/payload_types.hpp"
#include "fusionflow/transform.hpp"

namespace fusionflow {

namespace {

const Origin kSdkOrigin{"fusionflow-sdk", "", ""};

std::string describe(const Origin& origin) {
  std::string text = "plugin '" + origin.plugin_name + "'";
  if (!origin.library_path.empty()) text += " (" + origin.library_path + ")";
  return text;
}

bool is_snake_name(const std::string& name) {
  static const std::regex pattern("[a-z][a-z0-9_]*");
  return std::regex_match(name, pattern);
}

void check_default_fits(const NodeSpec& spec, const ParamSpec& param) {
  const std::string where = "parameter '" + param.name + "' of '" + spec.type() + "'";
  if (param.kind == ParamKind::Choice && param.choices.empty()) {
    throw std::invalid_argument(where + ": a choice needs at least one option");
  }
  if (!param.default_value) return;
  // The validator pipeline values go through (check_param_value).
  const std::vector<ParamProblem> problems = check_param_value(param, *param.default_value);
  if (problems.empty()) return;
  const ParamProblem& problem = problems.front();
  const char* why = "does not fit";
  switch (problem.rule) {
    case ParamProblem::Rule::Kind: why = "is not of its kind"; break;
    case ParamProblem::Rule::Finite: why = "is not finite"; break;
    case ParamProblem::Rule::Range: why = "is outside its range"; break;
    case ParamProblem::Rule::Choice: why = "is not one of its choices"; break;
    case ParamProblem::Rule::Length: why = "has the wrong length"; break;
    case ParamProblem::Rule::EmptyPath: why = "is an empty path"; break;
    case ParamProblem::Rule::Nul: why = "contains a NUL character"; break;
  }
  throw std::invalid_argument(where + ": default " + param_value_to_json(*param.default_value) + " " + why + " (" +
                              problem.message + ")");
}

}  // namespace

NodeRegistry::NodeRegistry() {
  add_payload_type(payload_type_name<Volume>(),
                   "3D float image with physical geometry (origin, spacing, direction) and modality metadata",
                   kSdkOrigin, volume_codec());
  add_payload_type(payload_type_name<Table>(), "table of named numeric or text columns (CSV/JSON)", kSdkOrigin,
                   table_codec());
  add_payload_type(payload_type_name<Latent>(),
                   "an image encoded into a shared latent space: levels of multi-channel volumes plus the encoder "
                   "that made them",
                   kSdkOrigin, latent_codec());
  add_payload_type(payload_type_name<Transform>(),
                   "spatial transform from a fixed image's physical space to a moving image's (ITK convention)",
                   kSdkOrigin, transform_codec());
  add_payload_type(payload_type_name<ColorVolume>(),
                   "RGB image or volume (three channels on one grid, 0..max_value), e.g. a pseudo-colour PET",
                   kSdkOrigin, color_volume_codec());
}

void NodeRegistry::add_payload_type(std::string name, std::string description, Origin origin, PayloadCodec codec) {
  auto existing = payload_types_.find(name);
  if (existing != payload_types_.end()) {
    throw std::invalid_argument("payload type '" + name + "' is already registered by " +
                                describe(existing->second.origin));
  }
  RegisteredPayloadType entry{name, std::move(description), std::move(origin), std::move(codec)};
  payload_types_.emplace(std::move(name), std::move(entry));
}

void NodeRegistry::add_node(NodeDefinition definition, Origin origin) {
  const NodeSpec& spec = definition.spec;
  static const std::regex type_pattern("[a-z][a-z0-9_]*\\.[a-z][a-z0-9_]*");
  if (!std::regex_match(spec.type(), type_pattern)) {
    throw std::invalid_argument("node type name '" + spec.type() +
                                "' is not of the form family.name in lower snake case (e.g. io.load_ct)");
  }
  if (spec.version().empty()) throw std::invalid_argument("node type '" + spec.type() + "' has no version");
  if (!definition.run) throw std::invalid_argument("node type '" + spec.type() + "' has no run function");

  std::set<std::string> names;
  auto check_port = [&](const PortSpec& port, const char* direction) {
    if (!is_snake_name(port.name)) {
      throw std::invalid_argument(std::string(direction) + " port '" + port.name + "' of '" + spec.type() +
                                  "' is not a lower snake case name");
    }
    if (!names.insert(std::string(direction) + ":" + port.name).second) {
      throw std::invalid_argument("node type '" + spec.type() + "' declares " + direction + " port '" + port.name +
                                  "' twice");
    }
    if (find_payload_type(port.type) == nullptr) {
      throw std::invalid_argument(std::string(direction) + " port '" + port.name + "' of '" + spec.type() +
                                  "' has unknown payload type '" + port.type + "'");
    }
  };
  for (const PortSpec& port : spec.inputs()) check_port(port, "input");
  for (const PortSpec& port : spec.outputs()) check_port(port, "output");
  for (const ParamSpec& param : spec.params()) {
    if (!is_snake_name(param.name)) {
      throw std::invalid_argument("parameter '" + param.name + "' of '" + spec.type() +
                                  "' is not a lower snake case name");
    }
    if (!names.insert("param:" + param.name).second) {
      throw std::invalid_argument("node type '" + spec.type() + "' declares parameter '" + param.name + "' twice");
    }
    check_default_fits(spec, param);
  }

  auto existing = nodes_.find(spec.type());
  if (existing != nodes_.end()) {
    throw std::invalid_argument("node type '" + spec.type() + "' is already registered by " +
                                describe(existing->second->origin));
  }
  std::string key = spec.type();
  nodes_.emplace(std::move(key),
                 std::make_unique<RegisteredNode>(RegisteredNode{std::move(definition), std::move(origin)}));
}

void NodeRegistry::add_latent_decoder(LatentDecoder decoder, Origin origin) {
  if (!is_snake_name(decoder.kind)) {
    throw std::invalid_argument("latent kind '" + decoder.kind + "' is not a lower snake case name");
  }
  if (!decoder.decode) throw std::invalid_argument("the decoder of latent kind '" + decoder.kind + "' has no function");
  auto existing = latent_decoders_.find(decoder.kind);
  if (existing != latent_decoders_.end()) {
    throw std::invalid_argument("a decoder of latent kind '" + decoder.kind + "' is already registered by " +
                                describe(existing->second.origin));
  }
  std::string kind = decoder.kind;
  latent_decoders_.emplace(std::move(kind), RegisteredLatentDecoder{std::move(decoder), std::move(origin)});
}

const RegisteredLatentDecoder* NodeRegistry::find_latent_decoder(std::string_view kind) const {
  auto it = latent_decoders_.find(kind);
  return it == latent_decoders_.end() ? nullptr : &it->second;
}

std::vector<const RegisteredLatentDecoder*> NodeRegistry::latent_decoders() const {
  std::vector<const RegisteredLatentDecoder*> list;
  for (const auto& [kind, decoder] : latent_decoders_) list.push_back(&decoder);
  return list;
}

void NodeRegistry::add_command(PluginCommand command, Origin origin) {
  static const std::set<std::string> kBuiltIn{"run",     "validate", "plugins", "graph",
                                              "phantom", "view",     "cohort",  "help"};
  const std::string& name = command.name;
  const bool well_formed = !name.empty() && name.size() <= 64 && name[0] >= 'a' && name[0] <= 'z' &&
                           std::all_of(name.begin(), name.end(), [](char c) {
                             return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-';
                           });
  if (!well_formed) {
    throw std::invalid_argument("command name '" + name.substr(0, 64) +
                                "' is not a lower case word (letters, digits and '-', starting with a letter)");
  }
  if (kBuiltIn.count(name) != 0) {
    throw std::invalid_argument("command '" + name + "' is one of fusionflow's own commands");
  }
  if (!command.run) throw std::invalid_argument("command '" + name + "' has no function");
  auto existing = commands_.find(name);
  if (existing != commands_.end()) {
    throw std::invalid_argument("a command '" + name + "' is already registered by " +
                                describe(existing->second.origin));
  }
  std::string key = name;
  commands_.emplace(std::move(key), RegisteredCommand{std::move(command), std::move(origin)});
}

const RegisteredCommand* NodeRegistry::find_command(std::string_view name) const {
  auto it = commands_.find(name);
  return it == commands_.end() ? nullptr : &it->second;
}

std::vector<const RegisteredCommand*> NodeRegistry::commands() const {
  std::vector<const RegisteredCommand*> list;
  for (const auto& [name, command] : commands_) list.push_back(&command);
  return list;
}

const RegisteredNode* NodeRegistry::find_node(std::string_view type) const {
  auto it = nodes_.find(type);
  return it == nodes_.end() ? nullptr : it->second.get();
}

const RegisteredPayloadType* NodeRegistry::find_payload_type(std::string_view name) const {
  auto it = payload_types_.find(name);
  return it == payload_types_.end() ? nullptr : &it->second;
}

std::vector<const RegisteredNode*> NodeRegistry::nodes() const {
  std::vector<const RegisteredNode*> list;
  for (const auto& [name, node] : nodes_) list.push_back(node.get());
  return list;
}

std::vector<const RegisteredPayloadType*> NodeRegistry::payload_types() const {
  std::vector<const RegisteredPayloadType*> list;
  for (const auto& [name, type] : payload_types_) list.push_back(&type);
  return list;
}

std::vector<std::string> NodeRegistry::nearest_node_types(std::string_view type, std::size_t count) const {
  std::vector<std::pair<std::size_t, std::string>> scored;
  // A suggestion further away than half the name's length is noise.
  const std::size_t limit = std::max<std::size_t>(2, type.size() / 2);
  for (const auto& [name, node] : nodes_) {
    // The distance is at least the length difference: skip names too long or
    // too short without the |type| x |name| cost (a type may be megabytes).
    const std::size_t difference = type.size() > name.size() ? type.size() - name.size() : name.size() - type.size();
    if (difference <= limit) scored.emplace_back(edit_distance(type, name), name);
  }
  std::stable_sort(scored.begin(), scored.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
  std::vector<std::string> nearest;
  for (const auto& [distance, name] : scored) {
    if (nearest.size() == count || distance > limit) break;
    nearest.push_back(name);
  }
  return nearest;
}

void NodeRegistry::add_thread_budget_hook(std::function<void(int)> hook) {
  thread_budget_hooks_.push_back(std::move(hook));
}

void NodeRegistry::apply_thread_budget(int threads) const {
  for (const auto& hook : thread_budget_hooks_) hook(threads);
}

// Levenshtein distance with one row of memory; no library in our stack
// provides it.
std::size_t edit_distance(std::string_view a, std::string_view b) {
  std::vector<std::size_t> row(b.size() + 1);
  for (std::size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (std::size_t i = 1; i <= a.size(); ++i) {
    std::size_t diagonal = row[0];
    row[0] = i;
    for (std::size_t j = 1; j <= b.size(); ++j) {
      const std::size_t above = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diagonal + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diagonal = above;
    }
  }
  return row[b.size()];
}

}  // namespace fusionflow
