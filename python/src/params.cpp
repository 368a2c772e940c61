#include "params.hpp"

#include <pybind11/stl.h>

#include <variant>

namespace fusionflow::python {

namespace {

py::type_error wrong(const std::string& where, const char* expected, const py::handle& value) {
  return py::type_error(where + " must be " + expected + ", not " +
                        py::cast<std::string>(py::str(value.get_type().attr("__name__"))));
}

bool is_integer(const py::handle& value) {
  if (py::isinstance<py::bool_>(value)) return false;
  return PyIndex_Check(value.ptr()) != 0;
}

bool is_number(const py::handle& value) {
  return !py::isinstance<py::bool_>(value) &&
         (is_integer(value) || PyFloat_Check(value.ptr()) != 0 || py::hasattr(value, "__float__"));
}

std::string text_of(const py::handle& value, const std::string& where) {
  if (py::isinstance<py::str>(value)) return py::cast<std::string>(value);
  if (py::hasattr(value, "__fspath__")) return py::cast<std::string>(py::module_::import("os").attr("fspath")(value));
  throw wrong(where, "text (str or os.PathLike)", value);
}

}  // namespace

ParamValue param_value_for_kind(const py::handle& value, ParamKind kind, const std::string& where) {
  switch (kind) {
    case ParamKind::Bool:
      if (!py::isinstance<py::bool_>(value)) throw wrong(where, "True or False", value);
      return py::cast<bool>(value);
    case ParamKind::Int:
      if (!is_integer(value)) throw wrong(where, "an integer", value);
      return py::cast<std::int64_t>(value);
    case ParamKind::Float:
      if (!is_number(value)) throw wrong(where, "a number", value);
      return py::cast<double>(value);
    case ParamKind::String:
    case ParamKind::Choice:
    case ParamKind::InputPath:
    case ParamKind::OutputPath: return text_of(value, where);
    case ParamKind::IntList: {
      std::vector<std::int64_t> list;
      for (const auto& item : py::iter(value)) {
        if (!is_integer(item)) throw wrong(where + " (each element)", "an integer", item);
        list.push_back(py::cast<std::int64_t>(item));
      }
      return list;
    }
    case ParamKind::FloatList: {
      std::vector<double> list;
      for (const auto& item : py::iter(value)) {
        if (!is_number(item)) throw wrong(where + " (each element)", "a number", item);
        list.push_back(py::cast<double>(item));
      }
      return list;
    }
  }
  throw py::type_error(where + ": unknown parameter kind");
}

ParamValue param_value_from_python(const py::handle& value, const std::string& where) {
  if (py::isinstance<py::bool_>(value)) return py::cast<bool>(value);
  if (is_integer(value)) return py::cast<std::int64_t>(value);
  if (is_number(value)) return py::cast<double>(value);
  if (py::isinstance<py::str>(value) || py::hasattr(value, "__fspath__")) return text_of(value, where);
  if (py::hasattr(value, "__iter__")) {
    bool integers = true;
    for (const auto& item : py::iter(value)) {
      if (!is_number(item)) throw wrong(where + " (each element)", "a number", item);
      integers = integers && is_integer(item);
    }
    return integers ? param_value_for_kind(value, ParamKind::IntList, where)
                    : param_value_for_kind(value, ParamKind::FloatList, where);
  }
  throw wrong(where, "a bool, number, text or list of numbers", value);
}

py::object param_to_python(const ParamValue& value) {
  return std::visit([](const auto& held) { return py::cast(held); }, value);
}

}  // namespace fusionflow::python
