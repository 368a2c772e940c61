// Typed node declarations: each parameter is declared once, bound to a field
// of the node's options struct, and the run function receives the filled
// struct. The parameter's kind follows the field's type, its default is the
// field's value in the defaults the node type is built with, and enum fields
// take their choices from one ChoiceList.
//
//   struct SmoothOptions {
//     double sigma_mm = 1.0;
//     Boundary boundary = Boundary::Mirror;
//   };
//   constexpr InputPort<Volume> kVolumeIn{"volume"};
//   constexpr OutputPort<Volume> kVolumeOut{"volume"};
//
//   NodeType<SmoothOptions> smooth_node() {
//     NodeType<SmoothOptions> node("filter.smooth", "1.0.0", "Gaussian smoothing");
//     node.input(kVolumeIn, "the volume to smooth")
//         .output(kVolumeOut, "the smoothed volume, same grid")
//         .param(&SmoothOptions::sigma_mm, "sigma_mm", Limits::range(0.0, 20.0), "Gaussian sigma (mm)")
//         .choice(&SmoothOptions::boundary, "boundary", kBoundaryNames, "how edges are extended");
//     return node;
//   }
//   void run_smooth(NodeContext& ctx, const SmoothOptions& options) { ... ctx.input(kVolumeIn) ... }
//   ...
//   registrar.add_node(smooth_node(), run_smooth);
//
// Mistakes in a declaration (a field or name bound twice, limits on a field
// that is not a number or list, limits beyond what the field's type holds, a
// default outside its choices) throw std::invalid_argument while the plugin
// registers, so they fail when the plugin loads, not when the node runs.
#pragma once

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <limits>
#include <optional>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "fusionflow/choice_list.hpp"
#include "fusionflow/node.hpp"
#include "fusionflow/param.hpp"

namespace fusionflow {

// Range and list-length rules of a bound parameter (each list element is
// checked against the range).
struct Limits {
  std::optional<double> min;
  std::optional<double> max;
  std::optional<std::size_t> length;

  static Limits range(double min, double max) {
    Limits limits;
    limits.min = min;
    limits.max = max;
    return limits;
  }
  static Limits at_least(double min) {
    Limits limits;
    limits.min = min;
    return limits;
  }
  // Lists: exactly `count` elements.
  static Limits exactly(std::size_t count) {
    Limits limits;
    limits.length = count;
    return limits;
  }
  Limits& with_length(std::size_t count) {
    length = count;
    return *this;
  }
  bool empty() const { return !min && !max && !length; }
};

namespace detail {

template <class T>
struct IsArray : std::false_type {};
template <class T, std::size_t N>
struct IsArray<std::array<T, N>> : std::true_type {
  static constexpr std::size_t size = N;
};

template <class T>
constexpr bool is_number_v = std::is_arithmetic_v<T> && !std::is_same_v<T, bool>;

template <class Field>
struct ListElement {
  using type = void;
};
template <class T, class A>
struct ListElement<std::vector<T, A>> {
  using type = T;
};
template <class T, std::size_t N>
struct ListElement<std::array<T, N>> {
  using type = T;
};

// The parameter kind a field type is declared as.
template <class Field>
constexpr ParamKind kind_of() {
  if constexpr (std::is_same_v<Field, bool>) {
    return ParamKind::Bool;
  } else if constexpr (std::is_integral_v<Field>) {
    return ParamKind::Int;
  } else if constexpr (std::is_floating_point_v<Field>) {
    return ParamKind::Float;
  } else if constexpr (std::is_same_v<Field, std::string> || std::is_same_v<Field, std::filesystem::path>) {
    return ParamKind::String;
  } else {
    using Element = typename ListElement<Field>::type;
    static_assert(is_number_v<Element>,
                  "a bound parameter field is bool, an integer, a floating-point number, std::string, "
                  "std::filesystem::path, an enum (with choice()), or a std::vector/std::array of numbers");
    return std::is_integral_v<Element> ? ParamKind::IntList : ParamKind::FloatList;
  }
}

// The value range a number field's type holds, as the parameter range it
// implies (integers stay within what a double and a pipeline file carry).
template <class Number>
std::pair<double, double> type_range() {
  constexpr double kLargestFileInteger = 9.0e15;
  if constexpr (std::is_integral_v<Number>) {
    return {std::max(double(std::numeric_limits<Number>::lowest()), -kLargestFileInteger),
            std::min(double(std::numeric_limits<Number>::max()), kLargestFileInteger)};
  } else {
    return {double(std::numeric_limits<Number>::lowest()), double(std::numeric_limits<Number>::max())};
  }
}

template <class Field>
ParamValue to_param_value(const Field& value) {
  if constexpr (std::is_same_v<Field, bool>) {
    return value;
  } else if constexpr (std::is_integral_v<Field>) {
    return static_cast<std::int64_t>(value);
  } else if constexpr (std::is_floating_point_v<Field>) {
    return static_cast<double>(value);
  } else if constexpr (std::is_same_v<Field, std::string>) {
    return value;
  } else if constexpr (std::is_same_v<Field, std::filesystem::path>) {
    return value.string();
  } else {
    using Element = typename ListElement<Field>::type;
    if constexpr (std::is_integral_v<Element>) {
      return std::vector<std::int64_t>(value.begin(), value.end());
    } else {
      return std::vector<double>(value.begin(), value.end());
    }
  }
}

template <class Field>
Field from_param_value(const ParamValue& value) {
  if constexpr (std::is_same_v<Field, bool>) {
    return std::get<bool>(value);
  } else if constexpr (std::is_integral_v<Field>) {
    return static_cast<Field>(std::get<std::int64_t>(value));
  } else if constexpr (std::is_floating_point_v<Field>) {
    return static_cast<Field>(std::get<double>(value));
  } else if constexpr (std::is_same_v<Field, std::string> || std::is_same_v<Field, std::filesystem::path>) {
    return Field(std::get<std::string>(value));
  } else {
    using Element = typename ListElement<Field>::type;
    using Stored = std::conditional_t<std::is_integral_v<Element>, std::int64_t, double>;
    const auto& list = std::get<std::vector<Stored>>(value);
    Field field{};
    if constexpr (IsArray<Field>::value) {
      // The declared length equals the array's, so the list fits.
      for (std::size_t i = 0; i < field.size() && i < list.size(); ++i) field[i] = static_cast<Element>(list[i]);
    } else {
      field.reserve(list.size());
      for (Stored item : list) field.push_back(static_cast<Element>(item));
    }
    return field;
  }
}

}  // namespace detail

// The options of a node without parameters: NodeType<NoOptions>.
struct NoOptions {};

template <class Options>
class NodeType {
 public:
  using Run = std::function<void(NodeContext&, const Options&)>;

  // `defaults` holds every parameter's default value.
  NodeType(std::string type, std::string version, std::string description, Options defaults = Options{})
      : spec_(std::move(type), std::move(version), std::move(description)), defaults_(std::move(defaults)) {}

  // --- ports -------------------------------------------------------------------
  template <class T>
  NodeType& input(InputPort<T> port, std::string description) {
    spec_.input(port, std::move(description));
    return *this;
  }
  template <class T>
  NodeType& optional_input(InputPort<T> port, std::string description) {
    spec_.optional_input(port, std::move(description));
    return *this;
  }
  template <class T>
  NodeType& multi_input(InputPort<T> port, std::string description, bool optional = false) {
    spec_.multi_input(port, std::move(description), optional);
    return *this;
  }
  template <class T>
  NodeType& output(OutputPort<T> port, std::string description) {
    spec_.output(port, std::move(description));
    return *this;
  }
  template <class T>
  NodeType& optional_output(OutputPort<T> port, std::string description) {
    spec_.optional_output(port, std::move(description));
    return *this;
  }
  NodeType& memory_intensive(bool value = true) {
    spec_.memory_intensive(value);
    return *this;
  }
  NodeType& uncacheable(std::string reason) {
    spec_.uncacheable(std::move(reason));
    return *this;
  }
  // A patient identifier among the parameters declared so far: withheld from
  // run records (ParamSpec::confidential).
  NodeType& confidential(std::string_view param_name) {
    spec_.confidential(param_name);
    return *this;
  }

  // --- parameters -------------------------------------------------------------
  // A parameter whose kind follows the field's type. `Owner` is Options or a
  // base class of it (so an options struct may extend a library's).
  template <class Field, class Owner>
  NodeType& param(Field Owner::*field, std::string name, std::string description) {
    return param(field, std::move(name), Limits{}, std::move(description));
  }
  template <class Field, class Owner>
  NodeType& param(Field Owner::*field, std::string name, Limits limits, std::string description) {
    static_assert(std::is_base_of_v<Owner, Options>, "the field is not a member of the node's options");
    static_assert(!std::is_enum_v<Field>, "an enum field is declared with choice() and its ChoiceList");
    Field Options::*member = field;
    ParamSpec spec;
    spec.name = std::move(name);
    spec.kind = detail::kind_of<Field>();
    spec.description = std::move(description);
    spec.default_value = detail::to_param_value(defaults_.*member);
    apply_limits<Field>(spec, limits);
    add_binding(std::move(spec), offset_of(member), [member](const ParamValue& value, Options& options) {
      options.*member = detail::from_param_value<Field>(value);
    });
    return *this;
  }

  // A Choice parameter bound to an enum field: its choices are the list's
  // names, its default the name of the field's default value.
  template <class Enum, class Owner>
  NodeType& choice(Enum Owner::*field, std::string name, const ChoiceList<Enum>& choices, std::string description) {
    static_assert(std::is_base_of_v<Owner, Options>, "the field is not a member of the node's options");
    static_assert(std::is_enum_v<Enum>, "choice() with a ChoiceList binds an enum field");
    Enum Options::*member = field;
    ParamSpec spec;
    spec.name = std::move(name);
    spec.kind = ParamKind::Choice;
    spec.description = std::move(description);
    spec.choices = choices.names();
    if (!choices.contains(defaults_.*member)) fail(spec.name, "its default is not in its choice list");
    spec.default_value = choices.name(defaults_.*member);
    add_binding(std::move(spec), offset_of(member), [member, choices](const ParamValue& value, Options& options) {
      options.*member = choices.parse(std::get<std::string>(value));
    });
    return *this;
  }
  // A Choice parameter kept as text (for values handed on as names).
  template <class Owner>
  NodeType& choice(std::string Owner::*field, std::string name, std::vector<std::string> choices,
                   std::string description) {
    static_assert(std::is_base_of_v<Owner, Options>, "the field is not a member of the node's options");
    std::string Options::*member = field;
    ParamSpec spec;
    spec.name = std::move(name);
    spec.kind = ParamKind::Choice;
    spec.description = std::move(description);
    spec.choices = std::move(choices);
    spec.default_value = defaults_.*member;
    add_binding(std::move(spec), offset_of(member), [member](const ParamValue& value, Options& options) {
      options.*member = std::get<std::string>(value);
    });
    return *this;
  }

  // A file or directory the node reads (required; checked to exist before
  // the run) or writes (required unless the field has a default; checked
  // against the pipeline's inputs).
  template <class Owner>
  NodeType& input_path(std::filesystem::path Owner::*field, std::string name, std::string description) {
    return path(field, std::move(name), ParamKind::InputPath, std::move(description));
  }
  template <class Owner>
  NodeType& output_path(std::filesystem::path Owner::*field, std::string name, std::string description) {
    return path(field, std::move(name), ParamKind::OutputPath, std::move(description));
  }
  // A file the node writes only when the parameter is set (default: empty,
  // none). Declared as an output path, so the pipeline checks it against
  // the inputs and the node cache restores it.
  template <class Owner>
  NodeType& optional_output_path(std::filesystem::path Owner::*field, std::string name, std::string description) {
    return path(field, std::move(name), ParamKind::OutputPath, std::move(description), true);
  }

  const NodeSpec& spec() const { return spec_; }
  const Options& defaults() const { return defaults_; }

  // The registrable definition: a run function that fills Options from the
  // node's parameter values and calls `run` with them.
  NodeDefinition bind(Run run) const {
    if (!run) throw std::invalid_argument("node type '" + spec_.type() + "' has no run function");
    auto bindings = bindings_;
    auto defaults = defaults_;
    return NodeDefinition{spec_, [bindings, defaults, run](NodeContext& ctx) {
                            Options options = defaults;
                            for (const Binding& binding : bindings) {
                              binding.assign(ctx.param_value(binding.name), options);
                            }
                            run(ctx, options);
                          }};
  }

 private:
  struct Binding {
    std::string name;
    std::ptrdiff_t offset;  // of the field in Options: the same field bound twice is an error
    std::function<void(const ParamValue&, Options&)> assign;
  };

  [[noreturn]] void fail(const std::string& name, const std::string& problem) const {
    throw std::invalid_argument("node type '" + spec_.type() + "', parameter '" + name + "': " + problem);
  }

  template <class Field>
  std::ptrdiff_t offset_of(Field Options::*member) const {
    return reinterpret_cast<const char*>(&(defaults_.*member)) - reinterpret_cast<const char*>(&defaults_);
  }

  template <class Field>
  void apply_limits(ParamSpec& spec, const Limits& limits) const {
    constexpr ParamKind kind = detail::kind_of<Field>();
    constexpr bool is_list = kind == ParamKind::IntList || kind == ParamKind::FloatList;
    if constexpr (kind == ParamKind::Bool || kind == ParamKind::String) {
      if (!limits.empty()) fail(spec.name, "limits are only for numbers and lists");
    } else {
      using Number = std::conditional_t<is_list, typename detail::ListElement<Field>::type, Field>;
      const auto [lowest, highest] = detail::type_range<Number>();
      if ((limits.min && *limits.min < lowest) || (limits.max && *limits.max > highest)) {
        fail(spec.name, "its limits go beyond what the field's type holds");
      }
      // What the field's type cannot hold is refused as out of range rather
      // than converted (an unsigned field takes no negative values).
      // A double, or a 64-bit integer (whose file values are limited to
      // +-9e15 anyway), needs no implied bound; a float does (1e39 would
      // become infinity).
      const bool wide = !std::is_same_v<Number, float> && lowest <= -9.0e15 && highest >= 9.0e15;
      const bool wide_above = !std::is_same_v<Number, float> && highest >= 9.0e15;
      spec.min = limits.min ? *limits.min : lowest;
      spec.max = limits.max ? *limits.max : highest;
      if (!limits.min && !limits.max && wide) {
        spec.min.reset();
        spec.max.reset();
      } else if (!limits.max && wide_above) {
        spec.max.reset();
      } else if (!limits.min && wide) {
        spec.min.reset();
      }
      if constexpr (detail::IsArray<Field>::value) {
        if (limits.length && *limits.length != detail::IsArray<Field>::size) {
          fail(spec.name, "its length limit differs from the array's size");
        }
        spec.list_length = detail::IsArray<Field>::size;
      } else if constexpr (is_list) {
        spec.list_length = limits.length;
      } else if (limits.length) {
        fail(spec.name, "a length limit is only for lists");
      }
    }
  }

  template <class Owner>
  NodeType& path(std::filesystem::path Owner::*field, std::string name, ParamKind kind, std::string description,
                 bool optional = false) {
    static_assert(std::is_base_of_v<Owner, Options>, "the field is not a member of the node's options");
    std::filesystem::path Options::*member = field;
    ParamSpec spec;
    spec.name = std::move(name);
    spec.kind = kind;
    spec.description = std::move(description);
    const std::filesystem::path& default_path = defaults_.*member;
    if (kind == ParamKind::OutputPath && (optional || !default_path.empty()))
      spec.default_value = default_path.string();
    if (kind == ParamKind::InputPath && !default_path.empty()) fail(spec.name, "an input path has no default");
    add_binding(std::move(spec), offset_of(member), [member](const ParamValue& value, Options& options) {
      options.*member = std::filesystem::path(std::get<std::string>(value));
    });
    return *this;
  }

  void add_binding(ParamSpec spec, std::ptrdiff_t offset, std::function<void(const ParamValue&, Options&)> assign) {
    for (const Binding& binding : bindings_) {
      if (binding.name == spec.name) fail(spec.name, "declared twice");
      if (binding.offset == offset) fail(spec.name, "bound to the same field as '" + binding.name + "'");
    }
    bindings_.push_back({spec.name, offset, std::move(assign)});
    spec_.add_param(std::move(spec));
  }

  NodeSpec spec_;
  Options defaults_;
  std::vector<Binding> bindings_;
};

}  // namespace fusionflow
