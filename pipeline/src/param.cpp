#include "fusionflow/param.hpp"

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

}  // namespace fusionflow
