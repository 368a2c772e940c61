#include "fusionflow/param.hpp"

#include <algorithm>
#include <cmath>
#include <sstream>

#include "pipeline_json.hpp"  // excerpt()

namespace fusionflow {

const char* to_string(ParamKind kind) {
  switch (kind) {
    case ParamKind::Bool: return "bool";
    case ParamKind::Int: return "int";
    case ParamKind::Float: return "float";
    case ParamKind::String: return "string";
    case ParamKind::Choice: return "choice";
    case ParamKind::InputPath: return "input_path";
    case ParamKind::OutputPath: return "output_path";
    case ParamKind::IntList: return "int_list";
    case ParamKind::FloatList: return "float_list";
  }
  return "unknown";
}

Param Param::Bool(bool default_value) {
  Param p(ParamKind::Bool);
  p.spec_.default_value = default_value;
  return p;
}
Param Param::Int(std::int64_t default_value) {
  Param p(ParamKind::Int);
  p.spec_.default_value = default_value;
  return p;
}
Param Param::Float(double default_value) {
  Param p(ParamKind::Float);
  p.spec_.default_value = default_value;
  return p;
}
Param Param::String(std::string default_value) {
  Param p(ParamKind::String);
  p.spec_.default_value = std::move(default_value);
  return p;
}
Param Param::Choice(std::initializer_list<const char*> choices, std::string default_value) {
  Param p(ParamKind::Choice);
  for (const char* choice : choices) p.spec_.choices.emplace_back(choice);
  p.spec_.default_value = std::move(default_value);
  return p;
}
Param Param::InputPath() { return Param(ParamKind::InputPath); }
Param Param::OutputPath() { return Param(ParamKind::OutputPath); }
Param Param::OutputPath(std::string default_value) {
  Param p(ParamKind::OutputPath);
  p.spec_.default_value = std::move(default_value);
  return p;
}
Param Param::IntList(std::vector<std::int64_t> default_value) {
  Param p(ParamKind::IntList);
  p.spec_.default_value = std::move(default_value);
  return p;
}
Param Param::FloatList(std::vector<double> default_value) {
  Param p(ParamKind::FloatList);
  p.spec_.default_value = std::move(default_value);
  return p;
}
Param Param::Required(ParamKind kind) { return Param(kind); }

Param& Param::range(double min, double max) {
  spec_.min = min;
  spec_.max = max;
  return *this;
}
Param& Param::at_least(double min) {
  spec_.min = min;
  return *this;
}
Param& Param::length(std::size_t count) {
  spec_.list_length = count;
  return *this;
}
Param& Param::required() {
  spec_.default_value.reset();
  return *this;
}

namespace {

std::string number_text(double value) {
  std::ostringstream text;
  text << value;
  return text.str();
}

const char* expected_value(ParamKind kind) {
  switch (kind) {
    case ParamKind::Bool: return "true or false";
    case ParamKind::Int: return "an integer";
    case ParamKind::Float: return "a number";
    case ParamKind::String:
    case ParamKind::Choice:
    case ParamKind::InputPath:
    case ParamKind::OutputPath: return "a string";
    case ParamKind::IntList: return "a list of integers";
    case ParamKind::FloatList: return "a list of numbers";
  }
  return "a value";
}

bool holds_kind(ParamKind kind, const ParamValue& value) {
  switch (kind) {
    case ParamKind::Bool: return std::holds_alternative<bool>(value);
    case ParamKind::Int: return std::holds_alternative<std::int64_t>(value);
    case ParamKind::Float: return std::holds_alternative<double>(value);
    case ParamKind::String:
    case ParamKind::Choice:
    case ParamKind::InputPath:
    case ParamKind::OutputPath: return std::holds_alternative<std::string>(value);
    case ParamKind::IntList: return std::holds_alternative<std::vector<std::int64_t>>(value);
    case ParamKind::FloatList: return std::holds_alternative<std::vector<double>>(value);
  }
  return false;
}

}  // namespace

std::string describe_range(const ParamSpec& spec) {
  if (spec.min && spec.max) return "allowed range: [" + number_text(*spec.min) + ", " + number_text(*spec.max) + "]";
  if (spec.min) return "allowed: at least " + number_text(*spec.min);
  if (spec.max) return "allowed: at most " + number_text(*spec.max);
  return {};
}

std::vector<ParamProblem> check_param_value(const ParamSpec& spec, const ParamValue& value) {
  using Rule = ParamProblem::Rule;
  const std::string name = "parameter '" + spec.name + "'";
  std::vector<ParamProblem> problems;
  if (!holds_kind(spec.kind, value)) {
    problems.push_back({Rule::Kind, name + " expects " + expected_value(spec.kind), spec.description, {}});
    return problems;
  }
  auto check_number = [&](double number, std::optional<std::size_t> element) {
    if (!std::isfinite(number)) {
      problems.push_back({Rule::Finite, name + " must be finite", spec.description, element});
    } else if ((spec.min && number < *spec.min) || (spec.max && number > *spec.max)) {
      problems.push_back({Rule::Range, "value " + number_text(number) + " of " + name + " is out of range",
                          describe_range(spec), element});
    }
  };
  auto check_list = [&](const auto& list) {
    if (spec.list_length && list.size() != *spec.list_length) {
      problems.push_back(
          {Rule::Length,
           name + " needs exactly " + std::to_string(*spec.list_length) + " values, got " + std::to_string(list.size()),
           spec.description,
           {}});
      return;
    }
    for (std::size_t i = 0; i < list.size(); ++i) check_number(static_cast<double>(list[i]), i);
  };
  switch (spec.kind) {
    case ParamKind::Bool: break;
    case ParamKind::Int: check_number(static_cast<double>(std::get<std::int64_t>(value)), std::nullopt); break;
    case ParamKind::Float: check_number(std::get<double>(value), std::nullopt); break;
    case ParamKind::String:
    case ParamKind::Choice:
    case ParamKind::InputPath:
    case ParamKind::OutputPath: {
      const std::string& text = std::get<std::string>(value);
      if (spec.kind == ParamKind::Choice &&
          std::find(spec.choices.begin(), spec.choices.end(), text) == spec.choices.end()) {
        std::string list;
        for (const std::string& choice : spec.choices) list += (list.empty() ? "" : ", ") + choice;
        problems.push_back({Rule::Choice,
                            "\"" + detail::excerpt(text) + "\" is not a valid choice for " + name,
                            "choices: " + list,
                            {}});
      } else if ((spec.kind == ParamKind::InputPath || spec.kind == ParamKind::OutputPath) && text.empty() &&
                 spec.required()) {
        // An optional path defaults to "" (no file); a required one must name one.
        problems.push_back({Rule::EmptyPath, name + " is an empty path", spec.description, {}});
      } else if (text.find('\0') != std::string::npos) {
        // A NUL would silently cut the string wherever it reaches a C API (paths above all).
        problems.push_back({Rule::Nul, name + " contains a NUL character (\\u0000)", spec.description, {}});
      }
      break;
    }
    case ParamKind::IntList: check_list(std::get<std::vector<std::int64_t>>(value)); break;
    case ParamKind::FloatList: check_list(std::get<std::vector<double>>(value)); break;
  }
  return problems;
}

}  // namespace fusionflow
