#include "fusionflow/pipeline.hpp"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <deque>
#include <limits>
#include <map>
#include <set>
#include <sstream>

#include "fusionflow/graph.hpp"
#include "fusionflow/sha256.hpp"
#include "pipeline_json.hpp"

namespace fusionflow {
namespace fs = std::filesystem;
using json = nlohmann::json;

std::string format_diagnostic(const std::string& source_name, const Diagnostic& diagnostic) {
  std::string text = source_name;
  if (!diagnostic.location.empty()) text += ": " + diagnostic.location;
  text += ": error: " + diagnostic.message;
  if (!diagnostic.hint.empty()) text += "\n    hint: " + diagnostic.hint;
  return text;
}

std::optional<std::size_t> Pipeline::find_node(const std::string& id) const {
  for (std::size_t i = 0; i < nodes.size(); ++i) {
    if (nodes[i].id == id) return i;
  }
  return std::nullopt;
}

std::vector<fs::path> Pipeline::input_paths() const {
  std::vector<fs::path> paths;
  for (const PipelineNode& node : nodes) {
    for (const ParamSpec& spec : node.definition->spec().params()) {
      if (spec.kind != ParamKind::InputPath) continue;
      const std::string& value = std::get<std::string>(node.params.at(spec.name));
      if (!value.empty()) paths.emplace_back(value);
    }
  }
  return paths;
}

std::string param_value_to_json(const ParamValue& value) {
  return std::visit([](const auto& v) { return json(v).dump(); }, value);
}

namespace {

const char* const kBuiltinPipelineDir = "pipeline_dir";

using detail::excerpt;
using detail::pointer_token;

const std::string kExpandedLimit = "1 MiB (" + std::to_string(PipelineLimits::max_expanded_bytes) + " bytes)";

std::string join(const std::vector<std::string>& items, const std::string& separator) {
  std::string text;
  for (std::size_t i = 0; i < items.size(); ++i) text += (i ? separator : "") + items[i];
  return text;
}

// The valid names for a hint; a long list is cut (a pipeline may have
// thousands of node ids).
std::string list_names(const std::vector<std::string>& names) {
  constexpr std::size_t kListed = 20, kCharacters = 200;
  std::string text;
  std::size_t listed = 0;
  for (; listed < names.size(); ++listed) {
    if (listed == kListed || text.size() + names[listed].size() > kCharacters) break;
    text += (listed ? ", " : "") + names[listed];
  }
  if (listed == 0 && !names.empty()) {  // the first name alone is longer
    text = excerpt(names.front());
    listed = 1;
  }
  if (listed < names.size()) text += ", ... (" + std::to_string(names.size() - listed) + " more)";
  return text;
}

// Letters, digits and '_' (and '-' if allowed), not starting with a digit or
// '-': [A-Za-z_][A-Za-z0-9_-]*. A loop, not std::regex, whose matcher recurses
// once per character of the name.
bool is_identifier(const std::string& name, bool allow_dash) {
  auto letter = [](char c) { return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '_'; };
  if (name.empty() || !letter(name[0])) return false;
  return std::all_of(name.begin(), name.end(),
                     [&](char c) { return letter(c) || (c >= '0' && c <= '9') || (allow_dash && c == '-'); });
}

// "Did you mean" search. Edit distance costs |a| x |b| steps and one file may
// hold thousands of long wrong names, so the search has a budget per file:
// past it, hints list the valid names without a suggestion.
class Suggester {
 public:
  // The first of `names` nearest to `wrong`, if near enough to be a typo
  // (within half the length of `wrong`, at least 2).
  std::optional<std::string> nearest(const std::string& wrong, const std::vector<std::string>& names) {
    const std::size_t limit = std::max<std::size_t>(2, wrong.size() / 2);
    std::optional<std::string> best;
    std::size_t best_distance = limit + 1;
    for (const std::string& name : names) {
      const std::size_t length_difference =
          wrong.size() > name.size() ? wrong.size() - name.size() : name.size() - wrong.size();
      if (length_difference >= best_distance) continue;  // the distance is at least the length difference
      const std::size_t cost = (wrong.size() + 1) * (name.size() + 1);
      if (cost > budget_) {
        budget_ = 0;
        return std::nullopt;
      }
      budget_ -= cost;
      const std::size_t distance = edit_distance(wrong, name);
      if (distance < best_distance) {
        best_distance = distance;
        best = name;
      }
    }
    return best;
  }

  // "did you mean 'x'? valid <what>s: a, b, c"
  template <class Items, class NameOf>
  std::string did_you_mean(const std::string& wrong, const Items& items, NameOf name_of, const std::string& what) {
    std::vector<std::string> names;
    for (const auto& item : items) names.push_back(name_of(item));
    if (names.empty()) return "this node type has no " + what + "s";
    std::string hint;
    if (auto best = nearest(wrong, names)) hint = "did you mean '" + *best + "'? ";
    return hint + "valid " + what + "s: " + list_names(names);
  }

 private:
  std::size_t budget_ = 50'000'000;  // edit-distance steps, some tens of milliseconds
};

std::string json_kind(const json& value) {
  switch (value.type()) {
    case json::value_t::null: return "null";
    case json::value_t::boolean: return "a boolean";
    case json::value_t::number_integer:
    case json::value_t::number_unsigned: return "an integer";
    case json::value_t::number_float: return "a number";
    case json::value_t::string: return "a string";
    case json::value_t::array: return "a list";
    case json::value_t::object: return "an object";
    default: return "an unsupported value";
  }
}

const char* const kDescriptionHint = "a description is free text: \"description\": \"...\"";

// Loads one pipeline document, collecting every problem.
class PipelineLoader {
 public:
  PipelineLoader(const NodeRegistry& registry, const LoadOptions& options) : registry_(registry), options_(options) {}

  LoadResult load(const json& document, Pipeline pipeline) {
    pipeline_ = std::move(pipeline);
    if (!document.is_object()) {
      error("", "a pipeline must be a JSON object, not " + json_kind(document),
            "start from an example in examples/pipelines/");
      return finish();
    }
    check_top_level_keys(document);
    read_format_version(document);
    if (document.contains("description")) {
      if (document["description"].is_string())
        pipeline_.description = document["description"];
      else
        error("/description", "must be a string, not " + json_kind(document["description"]), kDescriptionHint);
    }
    read_variables(document);
    read_nodes(document);
    return finish();
  }

 private:
  void error(std::string location, std::string message, std::string hint) {
    if (listing_full()) {
      ++unlisted_;
      return;
    }
    diagnostics_.push_back({std::move(location), std::move(message), std::move(hint)});
  }

  LoadResult finish() {
    LoadResult result;
    if (unlisted_ > 0) {
      diagnostics_.push_back({"",
                              std::to_string(unlisted_) + " more problems not listed (only the first " +
                                  std::to_string(PipelineLimits::max_diagnostics) + " are)",
                              "fix the problems above first"});
    }
    result.diagnostics = std::move(diagnostics_);
    if (result.diagnostics.empty()) result.pipeline = std::move(pipeline_);
    return result;
  }

  bool listing_full() const { return diagnostics_.size() >= PipelineLimits::max_diagnostics; }

  // A "did you mean" hint (Suggester), not worked out for problems that will
  // not be listed.
  template <class Items, class NameOf>
  std::string did_you_mean(const std::string& wrong, const Items& items, NameOf name_of, const std::string& what) {
    if (listing_full()) return {};
    return suggest_.did_you_mean(wrong, items, name_of, what);
  }

  // A name that is too long to be checked further: said once, with its length.
  bool too_long(const std::string& name, const std::string& location, const std::string& what,
                const std::string& hint) {
    if (name.size() <= PipelineLimits::max_name_length) return false;
    error(location,
          what + " '" + excerpt(name) + "' is too long: the limit is " +
              std::to_string(PipelineLimits::max_name_length) + " bytes",
          hint);
    return true;
  }

  void check_top_level_keys(const json& document) {
    static const std::vector<std::string> kKeys{"format_version", "description", "variables", "nodes"};
    for (const auto& [key, value] : document.items()) {
      if (std::find(kKeys.begin(), kKeys.end(), key) == kKeys.end()) {
        error("/" + pointer_token(key), "unknown top-level key '" + excerpt(key) + "'",
              did_you_mean(
                  key, kKeys, [](const std::string& k) { return k; }, "key"));
      }
    }
  }

  void read_format_version(const json& document) {
    if (!document.contains("format_version")) {
      error("", "missing 'format_version'",
            "add \"format_version\": " + std::to_string(kPipelineFormatVersion) + " at the top level");
      return;
    }
    const json& version = document["format_version"];
    if (!version.is_number_integer()) {
      error("/format_version", "must be an integer, not " + json_kind(version),
            "use \"format_version\": " + std::to_string(kPipelineFormatVersion));
    } else if (version != kPipelineFormatVersion) {
      error("/format_version", "format version " + version.dump() + " is not supported",
            "this fusionflow reads format version " + std::to_string(kPipelineFormatVersion));
    }
  }

  // --- variables --------------------------------------------------------------

  // A piece of a string with ${name} references: literal text (with "$$"
  // already made '$') or the name of a referenced variable.
  struct Piece {
    std::string text;
    bool reference = false;
  };

  // Splits `text` at its ${name} references; "$$" is a literal '$', and a '$'
  // before anything else stays as it is.
  std::optional<std::vector<Piece>> split_references(const std::string& text, const std::string& location) {
    std::vector<Piece> pieces(1);
    for (std::size_t i = 0; i < text.size(); ++i) {
      if (text[i] == '$' && i + 1 < text.size() && text[i + 1] == '$') {
        pieces.back().text += '$';
        ++i;
      } else if (text[i] == '$' && i + 1 < text.size() && text[i + 1] == '{') {
        const std::size_t close = text.find('}', i + 2);
        if (close == std::string::npos) {
          error(location, "unterminated '${' in \"" + excerpt(text) + "\"", "write ${name}, or $$ for a literal '$'");
          return std::nullopt;
        }
        pieces.push_back({text.substr(i + 2, close - i - 2), true});
        pieces.emplace_back();
        i = close;
      } else {
        pieces.back().text += text[i];
      }
    }
    return pieces;
  }

  void unknown_variable(const std::string& name, const std::string& location) {
    error(location, "unknown variable '${" + excerpt(name) + "}'",
          did_you_mean(
              name, variable_names_, [](const std::string& n) { return n; }, "variable") +
              " (declare it under \"variables\")");
  }

  // Counts `size` bytes of expanded text against the limits; `what` names the
  // value ("variable 'x'", "parameter 'y'").
  bool within_expansion_limits(std::size_t size, const std::string& location, const std::string& what,
                               const std::string& hint) {
    if (size > PipelineLimits::max_expanded_bytes) {
      error(location, what + " expands to " + std::to_string(size) + " bytes, more than the limit of " + kExpandedLimit,
            hint);
      return false;
    }
    if (size > PipelineLimits::max_total_expanded_bytes - expanded_bytes_) {
      error(location,
            "the pipeline's variables and string parameters expand to more than " +
                std::to_string(PipelineLimits::max_total_expanded_bytes >> 20) + " MiB in total, at " + what,
            "use fewer or shorter values");
      return false;
    }
    expanded_bytes_ += size;
    return true;
  }

  void read_variables(const json& document) {
    pipeline_.variables[kBuiltinPipelineDir] = pipeline_.directory.string();  // literal: never expanded
    struct Definition {
      std::string text;      // before substitution
      std::string location;  // where it was given
    };
    std::map<std::string, Definition> definitions;
    std::set<std::string> declared;
    if (document.contains("variables")) {
      const json& variables = document["variables"];
      if (!variables.is_object()) {
        error("/variables", "must be an object mapping names to default values, not " + json_kind(variables),
              "e.g. \"variables\": {\"out\": \"results\"}");
      } else {
        for (const auto& [name, entry] : variables.items()) {
          const std::string location = "/variables/" + pointer_token(name);
          if (too_long(name, location, "variable name", "use a short name: letters, digits and '_'")) continue;
          if (!is_identifier(name, false)) {
            error(location, "variable name '" + name + "' is not valid", "use letters, digits and '_'");
            continue;
          }
          if (name == kBuiltinPipelineDir) {
            error(location, "'" + name + "' is a built-in variable (the pipeline file's directory)",
                  "choose another name");
            continue;
          }
          declared.insert(name);
          const json* default_value = &entry;
          if (entry.is_object()) {
            for (const auto& [key, ignored] : entry.items()) {
              if (key != "default" && key != "description") {
                error(location + "/" + pointer_token(key),
                      "unknown key '" + excerpt(key) + "' in variable '" + name + "'",
                      "a variable object has 'default' and 'description'");
              }
            }
            if (entry.contains("description") && !entry["description"].is_string()) {
              error(location + "/description", "must be a string, not " + json_kind(entry["description"]),
                    kDescriptionHint);
            }
            static const json kNull;
            default_value = entry.contains("default") ? &entry["default"] : &kNull;
          }
          if (default_value->is_string()) {
            definitions[name] = {default_value->get<std::string>(), location};
          } else if (default_value->is_number() || default_value->is_boolean()) {
            definitions[name] = {default_value->dump(), location};
          } else if (!default_value->is_null()) {
            error(location,
                  "default of variable '" + name + "' must be a string, number or boolean, not " +
                      json_kind(*default_value),
                  "e.g. \"" + name + "\": \"value\"");
            unusable_variables_.insert(name);  // not reported again as "not set"
          }
        }
      }
    }
    for (const auto& [name, value] : options_.variable_overrides) {
      if (declared.count(name) == 0) {
        std::vector<std::string> names(declared.begin(), declared.end());
        error("--set " + excerpt(name), "the pipeline declares no variable '" + excerpt(name) + "'",
              names.empty() ? "this pipeline has no variables"
                            : did_you_mean(
                                  name, names, [](const std::string& n) { return n; }, "variable"));
        continue;
      }
      definitions[name] = {value, "--set " + name};
      unusable_variables_.erase(name);
    }
    variable_names_.assign(declared.begin(), declared.end());
    variable_names_.insert(std::lower_bound(variable_names_.begin(), variable_names_.end(), kBuiltinPipelineDir),
                           kBuiltinPipelineDir);
    for (const std::string& name : declared) {
      if (definitions.count(name) == 0 && unusable_variables_.count(name) == 0) {
        error("/variables/" + pointer_token(name), "variable '" + name + "' has no default and was not set",
              "run with --set " + name + "=VALUE");
        unusable_variables_.insert(name);  // uses of it are not reported again
      }
    }
    resolve_variables(definitions);
  }

  // Values may refer to other variables, e.g. "${pipeline_dir}/data/ct.nii".
  // Each variable is expanded once, after the variables it uses (in
  // dependency order, without recursion: a chain of thousands of variables
  // is fine); a value that would exceed the expansion limit is refused before
  // it is built, so variables doubling each other cannot exhaust memory.
  template <class Definitions>
  void resolve_variables(const Definitions& definitions) {
    std::vector<std::string> names;
    std::map<std::string, std::size_t> index;
    for (const auto& [name, definition] : definitions) {
      index[name] = names.size();
      names.push_back(name);
    }
    const std::size_t count = names.size();
    std::vector<std::vector<Piece>> pieces(count);
    std::vector<std::vector<std::size_t>> uses(count), used_by(count);
    std::vector<bool> failed(count, false);
    std::vector<std::size_t> unresolved_uses(count, 0);
    for (std::size_t i = 0; i < count; ++i) {
      const auto& definition = definitions.at(names[i]);
      auto split = split_references(definition.text, definition.location);
      if (!split) {
        failed[i] = true;
        continue;
      }
      pieces[i] = std::move(*split);
      for (const Piece& piece : pieces[i]) {
        if (!piece.reference || piece.text == kBuiltinPipelineDir) continue;
        auto used = index.find(piece.text);
        if (used == index.end()) {
          if (unusable_variables_.count(piece.text) == 0) unknown_variable(piece.text, definition.location);
          failed[i] = true;
          continue;
        }
        uses[i].push_back(used->second);
        used_by[used->second].push_back(i);
        ++unresolved_uses[i];
      }
    }
    std::deque<std::size_t> ready;
    for (std::size_t i = 0; i < count; ++i) {
      if (unresolved_uses[i] == 0) ready.push_back(i);
    }
    std::vector<bool> done(count, false);
    while (!ready.empty()) {
      const std::size_t i = ready.front();
      ready.pop_front();
      done[i] = true;
      if (!failed[i]) failed[i] = !expand_variable(names[i], definitions.at(names[i]).location, pieces[i]);
      if (failed[i]) unusable_variables_.insert(names[i]);
      for (std::size_t user : used_by[i]) {
        if (failed[i]) failed[user] = true;  // said at the variable it uses
        if (--unresolved_uses[user] == 0) ready.push_back(user);
      }
    }
    // What is left is on a cycle or uses one. Peel off the variables no other
    // leftover uses, repeatedly: they cannot be on a cycle.
    std::vector<std::size_t> leftover_users(count, 0);
    for (std::size_t i = 0; i < count; ++i) {
      if (done[i]) continue;
      unusable_variables_.insert(names[i]);
      for (std::size_t used : uses[i]) {
        if (!done[used]) ++leftover_users[used];
      }
    }
    std::vector<std::size_t> peel;
    for (std::size_t i = 0; i < count; ++i) {
      if (!done[i] && leftover_users[i] == 0) peel.push_back(i);
    }
    std::vector<bool> off_cycle(count, false);
    while (!peel.empty()) {
      const std::size_t i = peel.back();
      peel.pop_back();
      off_cycle[i] = true;
      for (std::size_t used : uses[i]) {
        if (!done[used] && --leftover_users[used] == 0) peel.push_back(used);
      }
    }
    for (std::size_t i = 0; i < count; ++i) {
      if (done[i] || off_cycle[i]) continue;
      std::string next;
      for (std::size_t used : uses[i]) {
        if (!done[used] && !off_cycle[used]) next = names[used];
      }
      error(definitions.at(names[i]).location, "variable '" + names[i] + "' refers to itself through other variables",
            "variables may use each other, but not in a cycle ('" + names[i] + "' uses '${" + next + "}')");
    }
  }

  bool expand_variable(const std::string& name, const std::string& location, const std::vector<Piece>& pieces) {
    std::size_t size = 0;
    for (const Piece& piece : pieces) {
      size += piece.reference ? pipeline_.variables.at(piece.text).size() : piece.text.size();
    }
    if (!within_expansion_limits(size, location, "variable '" + name + "'",
                                 "a variable that uses another several times doubles its length at each step: "
                                 "check the definitions of '" +
                                     name + "' and of the variables it uses")) {
      return false;
    }
    std::string value;
    value.reserve(size);
    for (const Piece& piece : pieces) value += piece.reference ? pipeline_.variables.at(piece.text) : piece.text;
    pipeline_.variables[name] = std::move(value);
    return true;
  }

  // Replaces ${name} with the variable's value; "$$" is a literal '$'.
  std::optional<std::string> substitute(const std::string& text, const std::string& location, const ParamSpec& spec) {
    auto pieces = split_references(text, location);
    if (!pieces) return std::nullopt;
    std::size_t size = 0;
    bool ok = true;
    for (const Piece& piece : *pieces) {
      if (!piece.reference) {
        size += piece.text.size();
      } else if (auto it = pipeline_.variables.find(piece.text); it != pipeline_.variables.end()) {
        size += it->second.size();
      } else {
        if (unusable_variables_.count(piece.text) == 0) unknown_variable(piece.text, location);  // else said already
        ok = false;
      }
    }
    if (!ok || !within_expansion_limits(size, location, "parameter '" + spec.name + "'", spec.description)) {
      return std::nullopt;
    }
    std::string result;
    result.reserve(size);
    for (const Piece& piece : *pieces) result += piece.reference ? pipeline_.variables.at(piece.text) : piece.text;
    return result;
  }

  // --- parameters ---------------------------------------------------------------

  // A JSON value or a string that (after substitution) spells a number.
  std::optional<double> read_number(const json& value, const std::string& location, const ParamSpec& spec,
                                    bool integer) {
    const char* expected = integer ? "an integer" : "a number";
    double number = 0;
    if (value.is_number()) {
      number = value.get<double>();
    } else if (value.is_string()) {
      std::optional<std::string> text = substitute(value.get<std::string>(), location, spec);
      if (!text) return std::nullopt;
      char* end = nullptr;
      errno = 0;
      number = std::strtod(text->c_str(), &end);
      if (text->empty() || end != text->c_str() + text->size() || errno == ERANGE) {
        error(location, "parameter '" + spec.name + "' expects " + expected + ", got \"" + excerpt(*text) + "\"",
              spec.description);
        return std::nullopt;
      }
    } else {
      error(location, "parameter '" + spec.name + "' expects " + expected + ", got " + json_kind(value),
            spec.description);
      return std::nullopt;
    }
    // Only what an integer cannot hold is refused here; finiteness and the
    // range are the shared validator's (check_param_value).
    if (integer && (!std::isfinite(number) || number != std::floor(number) || std::abs(number) > 9.0e15)) {
      error(location, "parameter '" + spec.name + "' expects an integer, got " + excerpt(value.dump()),
            spec.description);
      return std::nullopt;
    }
    return number;
  }

  // Turns the JSON value into a parameter value, then checks it with the
  // validator the registry and NodeHarness use.
  std::optional<ParamValue> read_param(const json& value, const std::string& location, const ParamSpec& spec) {
    std::optional<ParamValue> converted = convert_param(value, location, spec);
    if (!converted) return std::nullopt;
    const std::vector<ParamProblem> problems = check_param_value(spec, *converted);
    for (const ParamProblem& problem : problems) {
      const std::string where = problem.element ? location + "/" + std::to_string(*problem.element) : location;
      if (problem.rule == ParamProblem::Rule::Choice) {
        const std::string& text = std::get<std::string>(*converted);
        error(where, problem.message,
              did_you_mean(
                  text, spec.choices, [](const std::string& c) { return c; }, "choice"));
      } else {
        error(where, problem.message, problem.hint);
      }
    }
    if (!problems.empty()) return std::nullopt;
    return converted;
  }

  // JSON (or text after ${name} substitution) to the parameter's value type.
  std::optional<ParamValue> convert_param(const json& value, const std::string& location, const ParamSpec& spec) {
    switch (spec.kind) {
      case ParamKind::Bool: {
        if (value.is_boolean()) return ParamValue(value.get<bool>());
        if (value.is_string()) {
          std::optional<std::string> text = substitute(value.get<std::string>(), location, spec);
          if (!text) return std::nullopt;
          if (*text == "true") return ParamValue(true);
          if (*text == "false") return ParamValue(false);
        }
        error(location, "parameter '" + spec.name + "' expects true or false, got " + excerpt(value.dump()),
              spec.description);
        return std::nullopt;
      }
      case ParamKind::Int: {
        auto number = read_number(value, location, spec, true);
        if (!number) return std::nullopt;
        return ParamValue(static_cast<std::int64_t>(*number));
      }
      case ParamKind::Float: {
        auto number = read_number(value, location, spec, false);
        if (!number) return std::nullopt;
        return ParamValue(*number);
      }
      case ParamKind::String:
      case ParamKind::Choice:
      case ParamKind::InputPath:
      case ParamKind::OutputPath: {
        if (!value.is_string()) {
          error(location, "parameter '" + spec.name + "' expects a string, got " + json_kind(value), spec.description);
          return std::nullopt;
        }
        std::optional<std::string> text = substitute(value.get<std::string>(), location, spec);
        if (!text) return std::nullopt;
        return ParamValue(*text);
      }
      case ParamKind::IntList:
      case ParamKind::FloatList: {
        const bool integer = spec.kind == ParamKind::IntList;
        if (!value.is_array()) {
          error(location,
                "parameter '" + spec.name + "' expects a list of " + (integer ? "integers" : "numbers") + ", got " +
                    json_kind(value),
                spec.description);
          return std::nullopt;
        }
        std::vector<double> numbers;
        bool ok = true;
        for (std::size_t i = 0; i < value.size(); ++i) {
          auto number = read_number(value[i], location + "/" + std::to_string(i), spec, integer);
          if (number)
            numbers.push_back(*number);
          else
            ok = false;
        }
        if (!ok) return std::nullopt;
        if (integer) {
          std::vector<std::int64_t> ints;
          for (double n : numbers) ints.push_back(static_cast<std::int64_t>(n));
          return ParamValue(std::move(ints));
        }
        return ParamValue(std::move(numbers));
      }
    }
    return std::nullopt;
  }

  // --- nodes ----------------------------------------------------------------------

  struct Connection {
    std::size_t consumer;
    std::string input_port;
    std::size_t producer;
    std::string output_port;
    std::string location;
  };

  void read_nodes(const json& document) {
    if (!document.contains("nodes")) {
      error("", "missing 'nodes'", "add \"nodes\": [ {\"id\": ..., \"type\": ...}, ... ]");
      return;
    }
    const json& nodes = document["nodes"];
    if (!nodes.is_array()) {
      error("/nodes", "must be a list of nodes, not " + json_kind(nodes),
            "e.g. \"nodes\": [{\"id\": ..., \"type\": ...}]");
      return;
    }
    if (nodes.empty()) error("/nodes", "the pipeline has no nodes", "add at least one node");

    // Pass 1: ids and types, so connections can refer to any node.
    std::map<std::string, std::size_t> first_index;
    std::vector<bool> usable(nodes.size(), false);
    for (std::size_t i = 0; i < nodes.size(); ++i) {
      const std::string location = "/nodes/" + std::to_string(i);
      const json& entry = nodes[i];
      pipeline_.nodes.emplace_back();
      if (!entry.is_object()) {
        error(location, "a node must be an object, not " + json_kind(entry),
              "e.g. {\"id\": \"ct\", \"type\": \"io.load_ct\", \"params\": {...}}");
        continue;
      }
      static const std::vector<std::string> kNodeKeys{"id", "type", "params", "inputs", "description"};
      for (const auto& [key, ignored] : entry.items()) {
        if (std::find(kNodeKeys.begin(), kNodeKeys.end(), key) == kNodeKeys.end()) {
          error(location + "/" + pointer_token(key), "unknown key '" + excerpt(key) + "' in node",
                did_you_mean(
                    key, kNodeKeys, [](const std::string& k) { return k; }, "key"));
        }
      }
      if (entry.contains("description") && !entry["description"].is_string()) {
        error(location + "/description", "must be a string, not " + json_kind(entry["description"]), kDescriptionHint);
      }
      if (!entry.contains("id") || !entry["id"].is_string()) {
        error(location + (entry.contains("id") ? "/id" : ""), "node has no string 'id'", "give every node a unique id");
      } else {
        const std::string& id = entry["id"].get_ref<const std::string&>();
        if (too_long(id, location + "/id", "node id", "use a short id: letters, digits, '_' and '-'")) {
          // said
        } else if (!is_identifier(id, true)) {
          error(location + "/id", "node id '" + id + "' is not valid",
                "use letters, digits, '_' and '-' (no dots: inputs refer to \"id.port\")");
        } else if (auto [it, inserted] = first_index.emplace(id, i); !inserted) {
          error(location + "/id", "duplicate node id '" + id + "'",
                "already used by /nodes/" + std::to_string(it->second) + "; ids must be unique");
        } else {
          pipeline_.nodes[i].id = id;
        }
      }
      if (!entry.contains("type") || !entry["type"].is_string()) {
        error(location + (entry.contains("type") ? "/type" : ""), "node has no string 'type'",
              "run 'fusionflow plugins' to list node types");
        continue;
      }
      const std::string& type = entry["type"].get_ref<const std::string&>();
      if (too_long(type, location + "/type", "node type", "run 'fusionflow plugins' to list the loaded node types")) {
        continue;
      }
      pipeline_.nodes[i].type = type;
      pipeline_.nodes[i].definition = registry_.find_node(type);
      if (pipeline_.nodes[i].definition == nullptr) {
        // Node types the bundled plugins renamed: name the new one.
        static const std::map<std::string, std::string, std::less<>> kRenamed{
            {"learned.synthesis_metrics", "metrics.synthesis"}};
        const auto renamed = kRenamed.find(type);
        std::string hint;
        if (renamed != kRenamed.end() && registry_.find_node(renamed->second) != nullptr) {
          hint = "it was renamed '" + renamed->second + "' (same ports and parameters); ";
        } else if (listing_full()) {
          // not listed: no hint needed
        } else if (auto nearest = suggest_.nearest(type, registered_types())) {
          hint = "did you mean '" + *nearest + "'? ";
        }
        hint += "run 'fusionflow plugins' to list the loaded node types";
        if (!options_.plugin_failures.empty()) {
          hint += "; plugins that failed to load: " + join(options_.plugin_failures, "; ");
        }
        error(location + "/type", "unknown node type '" + type + "' (node '" + pipeline_.nodes[i].id + "')", hint);
        continue;
      }
      usable[i] = !pipeline_.nodes[i].id.empty();
    }

    // Pass 2: parameters and connections.
    std::vector<Connection> connections;
    for (std::size_t i = 0; i < nodes.size(); ++i) {
      if (!usable[i]) continue;
      read_params(nodes[i], i);
      read_inputs(nodes[i], i, first_index, connections);
    }
    check_outputs_do_not_overwrite_inputs();

    // Graph: cycles and order.
    std::vector<std::pair<std::size_t, std::size_t>> edges;
    for (const Connection& c : connections) edges.emplace_back(c.producer, c.consumer);
    DagAnalysis analysis = analyse_dag(pipeline_.nodes.size(), edges);
    for (const auto& cycle : analysis.cycles) {
      std::vector<std::string> names;
      for (std::size_t index : cycle) names.push_back("'" + pipeline_.nodes[index].id + "'");
      names.push_back(names.front());
      error("/nodes/" + std::to_string(cycle.front()) + "/inputs", "cycle: " + join(names, " -> "),
            "a pipeline must be acyclic; remove one of the connections on this cycle");
    }
    if (analysis.topological_order) pipeline_.topological_order = *analysis.topological_order;
  }

  // Registered node type names, sorted (for suggestions), listed once per load.
  const std::vector<std::string>& registered_types() {
    if (registered_types_.empty()) {
      for (const RegisteredNode* node : registry_.nodes()) registered_types_.push_back(node->spec().type());
    }
    return registered_types_;
  }

  void read_params(const json& entry, std::size_t index) {
    PipelineNode& node = pipeline_.nodes[index];
    const NodeSpec& spec = node.definition->spec();
    const std::string location = "/nodes/" + std::to_string(index) + "/params";
    if (entry.contains("params") && !entry["params"].is_object()) {
      error(location, "'params' must be an object, not " + json_kind(entry["params"]),
            "e.g. \"params\": {\"name\": value}");
      return;
    }
    static const json kNoParams = json::object();
    const json& params = entry.contains("params") ? entry["params"] : kNoParams;
    for (const auto& [name, value] : params.items()) {
      const ParamSpec* param = spec.find_param(name);
      if (param == nullptr) {
        error(location + "/" + pointer_token(name),
              "unknown parameter '" + excerpt(name) + "' for node type '" + spec.type() + "'",
              did_you_mean(
                  name, spec.params(), [](const ParamSpec& p) { return p.name; }, "parameter"));
        continue;
      }
      if (auto converted = read_param(value, location + "/" + pointer_token(name), *param)) {
        node.params[name] = std::move(*converted);
      }
    }
    for (const ParamSpec& param : spec.params()) {
      if (params.contains(param.name)) continue;
      if (param.default_value) {
        node.params[param.name] = *param.default_value;
      } else {
        error(location, "missing required parameter '" + param.name + "' of node type '" + spec.type() + "'",
              param.name + " (" + to_string(param.kind) + "): " + param.description);
      }
    }
  }

  void read_inputs(const json& entry, std::size_t index, const std::map<std::string, std::size_t>& ids,
                   std::vector<Connection>& connections) {
    PipelineNode& node = pipeline_.nodes[index];
    const NodeSpec& spec = node.definition->spec();
    const std::string location = "/nodes/" + std::to_string(index) + "/inputs";
    if (entry.contains("inputs") && !entry["inputs"].is_object()) {
      error(location,
            "'inputs' must be an object mapping input ports to \"node.port\", not " + json_kind(entry["inputs"]),
            "e.g. \"inputs\": {\"volume\": \"ct.volume\"}");
      return;
    }
    static const json kNoInputs = json::object();
    const json& inputs = entry.contains("inputs") ? entry["inputs"] : kNoInputs;
    for (const auto& [port_name, value] : inputs.items()) {
      const std::string port_location = location + "/" + pointer_token(port_name);
      const PortSpec* port = spec.find_input(port_name);
      if (port == nullptr) {
        error(port_location, "unknown input port '" + excerpt(port_name) + "' for node type '" + spec.type() + "'",
              did_you_mean(
                  port_name, spec.inputs(), [](const PortSpec& p) { return p.name; }, "input port"));
        continue;
      }
      std::vector<std::pair<const json*, std::string>> sources;
      if (value.is_array()) {
        if (!port->multi) {
          error(port_location, "input port '" + port_name + "' takes one connection, not a list",
                "write \"" + port_name + "\": \"node.port\"");
          continue;
        }
        if (value.empty() && !port->optional) {
          error(port_location,
                "required input '" + port_name + "' (" + port->type + ") of node '" + node.id + "' has an empty list",
                "list at least one \"<node id>.<output port>\" with a " + port->type + " output");
          continue;
        }
        for (std::size_t k = 0; k < value.size(); ++k) {
          sources.emplace_back(&value[k], port_location + "/" + std::to_string(k));
        }
      } else {
        sources.emplace_back(&value, port_location);
      }
      std::vector<OutputRef>& refs = node.inputs[port_name];
      for (const auto& [source, source_location] : sources) {
        if (auto ref = resolve_source(*source, source_location, *port, node, ids)) {
          refs.push_back(*ref);
          connections.push_back({index, port_name, ref->node, ref->port, source_location});
        }
      }
    }
    for (const PortSpec& port : spec.inputs()) {
      if (port.optional || inputs.contains(port.name)) continue;
      error(location,
            "required input '" + port.name + "' (" + port.type + ") of node '" + node.id + "' is not connected",
            "add \"" + port.name + "\": \"<node id>.<output port>\" under \"inputs\", from a node with a " + port.type +
                " output");
    }
  }

  std::optional<OutputRef> resolve_source(const json& source, const std::string& location, const PortSpec& port,
                                          const PipelineNode& consumer, const std::map<std::string, std::size_t>& ids) {
    if (!source.is_string()) {
      error(location, "a connection must be a string \"node.port\", not " + json_kind(source),
            "name the producing node's id and its output port, e.g. \"ct.volume\"");
      return std::nullopt;
    }
    const std::string& text = source.get_ref<const std::string&>();
    const std::size_t dot = text.rfind('.');
    if (dot == std::string::npos || dot == 0 || dot + 1 == text.size()) {
      error(location, "connection \"" + excerpt(text) + "\" is not of the form \"node.port\"",
            "name the producing node's id and its output port, e.g. \"ct.volume\"");
      return std::nullopt;
    }
    const std::string producer_id = text.substr(0, dot);
    const std::string output_port = text.substr(dot + 1);
    auto producer = ids.find(producer_id);
    if (producer == ids.end()) {
      error(location, "no node with id '" + excerpt(producer_id) + "'",
            did_you_mean(
                producer_id, ids, [](const auto& entry) { return entry.first; }, "node id"));
      return std::nullopt;
    }
    const PipelineNode& producer_node = pipeline_.nodes[producer->second];
    if (producer_node.definition == nullptr) return std::nullopt;  // reported at its type
    const PortSpec* output = producer_node.definition->spec().find_output(output_port);
    if (output == nullptr) {
      error(location,
            "node '" + producer_id + "' (" + producer_node.type + ") has no output port '" + excerpt(output_port) + "'",
            did_you_mean(
                output_port, producer_node.definition->spec().outputs(), [](const PortSpec& p) { return p.name; },
                "output port"));
      return std::nullopt;
    }
    if (output->type != port.type) {
      error(location,
            "type mismatch: '" + text + "' is " + output->type + " but input '" + port.name + "' of node '" +
                consumer.id + "' (" + consumer.type + ") takes " + port.type,
            "connect an output of type " + port.type + ", or convert with a node in between");
      return std::nullopt;
    }
    return OutputRef{producer->second, output_port};
  }
  // A node must never write over a file the pipeline reads.
  void check_outputs_do_not_overwrite_inputs() {
    std::map<std::string, std::string> inputs;  // normalised path -> location
    // An optional path parameter may be left empty (its default): no file.
    auto normalise = [](const std::string& path) {
      return path.empty() ? std::string() : fs::absolute(fs::path(path)).lexically_normal().string();
    };
    for (std::size_t i = 0; i < pipeline_.nodes.size(); ++i) {
      const PipelineNode& node = pipeline_.nodes[i];
      if (node.definition == nullptr) continue;
      for (const ParamSpec& spec : node.definition->spec().params()) {
        auto value = node.params.find(spec.name);
        if (spec.kind == ParamKind::InputPath && value != node.params.end() &&
            !std::get<std::string>(value->second).empty()) {
          inputs.emplace(normalise(std::get<std::string>(value->second)),
                         "/nodes/" + std::to_string(i) + "/params/" + spec.name);
        }
      }
    }
    for (std::size_t i = 0; i < pipeline_.nodes.size(); ++i) {
      const PipelineNode& node = pipeline_.nodes[i];
      if (node.definition == nullptr) continue;
      for (const ParamSpec& spec : node.definition->spec().params()) {
        auto value = node.params.find(spec.name);
        if (spec.kind != ParamKind::OutputPath || value == node.params.end() ||
            std::get<std::string>(value->second).empty()) {
          continue;
        }
        auto input = inputs.find(normalise(std::get<std::string>(value->second)));
        if (input != inputs.end()) {
          error("/nodes/" + std::to_string(i) + "/params/" + pointer_token(spec.name),
                "output '" + excerpt(std::get<std::string>(value->second)) +
                    "' would overwrite an input of this pipeline (" + input->second + ")",
                "write the result somewhere else");
        }
      }
    }
  }

  const NodeRegistry& registry_;
  const LoadOptions& options_;
  Pipeline pipeline_;
  std::vector<Diagnostic> diagnostics_;
  std::size_t unlisted_ = 0;  // problems beyond PipelineLimits::max_diagnostics
  Suggester suggest_;
  std::vector<std::string> registered_types_;
  std::vector<std::string> variable_names_;   // declared and built in, sorted (for suggestions)
  std::set<std::string> unusable_variables_;  // declared, but with no value: reported where declared
  std::size_t expanded_bytes_ = 0;            // of every variable and string parameter so far
};

LoadResult load_text(const std::string& text, Pipeline pipeline, const NodeRegistry& registry,
                     const LoadOptions& options) {
  detail::ParsedDocument parsed = detail::parse_pipeline_json(text);
  if (!parsed.problems.empty()) {
    LoadResult result;
    result.diagnostics = std::move(parsed.problems);
    return result;
  }
  return PipelineLoader(registry, options).load(parsed.document, std::move(pipeline));
}

}  // namespace

LoadResult load_pipeline_text(const std::string& text, const std::string& source_name, const fs::path& directory,
                              const NodeRegistry& registry, const LoadOptions& options) {
  Pipeline pipeline;
  pipeline.source_name = source_name;
  pipeline.directory = directory;
  pipeline.source_sha256 = sha256_hex(text);
  return load_text(text, std::move(pipeline), registry, options);
}

LoadResult load_pipeline_file(const fs::path& file, const NodeRegistry& registry, const LoadOptions& options) {
  detail::FileBytes read = detail::read_pipeline_bytes(file);
  if (!read.problems.empty()) {
    LoadResult result;
    result.diagnostics = std::move(read.problems);
    return result;
  }
  std::error_code ec;
  fs::path directory = fs::absolute(file, ec).parent_path();
  return load_pipeline_text(read.bytes, file.string(), directory, registry, options);
}

}  // namespace fusionflow
