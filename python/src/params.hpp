// Parameter values between Python and fusionflow's ParamValue.
#pragma once

#include <pybind11/pybind11.h>

#include <string>

#include <fusionflow/param.hpp>

namespace fusionflow::python {

namespace py = pybind11;

// The value for a parameter of a known kind; TypeError naming `where` if it
// cannot be one. Range and choices are checked later, by the one validator.
ParamValue param_value_for_kind(const py::handle& value, ParamKind kind, const std::string& where);
// The value as a pipeline file would hold it: bool, int, float, text
// (str or os.PathLike), or a list of numbers (ints only: an int list).
ParamValue param_value_from_python(const py::handle& value, const std::string& where);
py::object param_to_python(const ParamValue& value);

}  // namespace fusionflow::python
