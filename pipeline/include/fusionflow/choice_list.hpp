// The names of an enum's values, written once: a node's Choice parameter, the
// parsing of the chosen text and the printing of a value all come from the
// same list.
//
//   enum class Rule { Average, MaxAbs };
//   inline const ChoiceList<Rule> kRuleNames{{Rule::Average, "average"}, {Rule::MaxAbs, "max_abs"}};
//   kRuleNames.parse("max_abs") == Rule::MaxAbs;  kRuleNames.name(Rule::Average) == "average"
//
// Header-only, so that numerics libraries can name their enums without
// linking the pipeline core.
#pragma once

#include <initializer_list>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace fusionflow {

template <class Enum>
class ChoiceList {
 public:
  ChoiceList(std::initializer_list<std::pair<Enum, const char*>> entries) {
    for (const auto& [value, name] : entries) {
      for (const auto& [known_value, known_name] : entries_) {
        if (known_value == value || known_name == name) {
          throw std::logic_error("choice list names '" + std::string(name) + "' or its value twice");
        }
      }
      entries_.emplace_back(value, name);
      names_.emplace_back(name);
    }
  }

  // In declaration order.
  const std::vector<std::string>& names() const { return names_; }

  bool contains(Enum value) const { return find_name(value) != nullptr; }

  const std::string& name(Enum value) const {
    if (const std::string* found = find_name(value)) return *found;
    throw std::logic_error("enum value " + std::to_string(static_cast<long long>(value)) +
                           " is not in its choice list");
  }

  std::optional<Enum> find(std::string_view name) const {
    for (const auto& [value, known] : entries_) {
      if (known == name) return value;
    }
    return std::nullopt;
  }

  // Throws std::invalid_argument naming the choices when `name` is not one.
  Enum parse(std::string_view name) const {
    if (auto value = find(name)) return *value;
    std::string list;
    for (const std::string& known : names_) list += (list.empty() ? "" : ", ") + known;
    throw std::invalid_argument("'" + std::string(name) + "' is not one of: " + list);
  }

 private:
  const std::string* find_name(Enum value) const {
    for (const auto& [known_value, known] : entries_) {
      if (known_value == value) return &known;
    }
    return nullptr;
  }

  std::vector<std::pair<Enum, std::string>> entries_;
  std::vector<std::string> names_;
};

}  // namespace fusionflow
