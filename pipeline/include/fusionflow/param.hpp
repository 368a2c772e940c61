// Node parameters: their declared kind, default, range or choices, and the
// typed values a node reads at run time.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <optional>
#include <string>
#include <variant>
#include <vector>

namespace fusionflow {

enum class ParamKind {
  Bool,
  Int,
  Float,
  String,
  Choice,      // a string from a fixed list
  InputPath,   // a file or directory the node reads
  OutputPath,  // a file or directory the node writes (checked against inputs)
  IntList,
  FloatList,
};

const char* to_string(ParamKind kind);

// Int and IntList hold int64; Float and FloatList hold double; the string
// kinds (String, Choice, InputPath, OutputPath) hold std::string.
using ParamValue =
    std::variant<bool, std::int64_t, double, std::string, std::vector<std::int64_t>, std::vector<double>>;

struct ParamSpec {
  std::string name;
  ParamKind kind = ParamKind::String;
  std::optional<ParamValue> default_value;  // absent: the parameter is required
  std::optional<double> min;                // numbers, and each element of lists
  std::optional<double> max;
  std::vector<std::string> choices;        // Choice only
  std::optional<std::size_t> list_length;  // lists: exact element count
  std::string description;
  // A patient identifier (a PACS query key, a patient name to write): run
  // records show "(withheld)" instead of its value, and of every pipeline
  // variable whose value it holds; the node cache keys on its SHA-256.
  bool confidential = false;

  bool required() const { return !default_value.has_value(); }
};

// The one check of a parameter value against its declaration, used by the
// pipeline loader (after it has turned JSON into a value), the registry (for
// defaults) and NodeHarness (for values a test sets): the value's kind,
// finite numbers, the range (of each list element), the choices, the list
// length, non-empty paths and no NUL characters in text.
struct ParamProblem {
  enum class Rule { Kind, Finite, Range, Choice, Length, EmptyPath, Nul };
  Rule rule = Rule::Kind;
  std::string message;                 // e.g. "value 40 of parameter 'radius' is out of range"
  std::string hint;                    // e.g. "allowed range: [0, 32]"
  std::optional<std::size_t> element;  // the list element at fault
};
// Every problem (a wrong list length is reported alone); empty if the value fits.
std::vector<ParamProblem> check_param_value(const ParamSpec& spec, const ParamValue& value);
// "allowed range: [0, 32]", "allowed: at least 0", or empty.
std::string describe_range(const ParamSpec& spec);

// Fluent construction of a ParamSpec, used in NodeSpec::param:
//   spec.param("sigma", Param::Float(1.0).range(0.0, 20.0), "Gaussian sigma (mm)");
//   spec.param("path", Param::InputPath(), "image file to read");
class Param {
 public:
  static Param Bool(bool default_value);
  static Param Int(std::int64_t default_value);
  static Param Float(double default_value);
  static Param String(std::string default_value);
  static Param Choice(std::initializer_list<const char*> choices, std::string default_value);
  static Param InputPath();   // required
  static Param OutputPath();  // required
  static Param OutputPath(std::string default_value);
  static Param IntList(std::vector<std::int64_t> default_value);
  static Param FloatList(std::vector<double> default_value);
  // Kind only, no default: the parameter must be set in the pipeline.
  static Param Required(ParamKind kind);

  Param& range(double min, double max);
  Param& at_least(double min);
  Param& length(std::size_t count);
  // Drops the default: the pipeline must set it.
  Param& required();

  const ParamSpec& spec() const { return spec_; }

 private:
  explicit Param(ParamKind kind) { spec_.kind = kind; }
  ParamSpec spec_;
};

}  // namespace fusionflow
