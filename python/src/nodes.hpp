// Node types that connect a pipeline to Python: sources whose value comes
// from Python (python.input_<type>), sinks that hand a value back
// (python.output_<type>), and node types whose run function is a Python
// callable (Registry.add_node).
#pragma once

#include <pybind11/pybind11.h>

#include <deque>
#include <map>
#include <mutex>
#include <string>

#include <fusionflow/pipeline.hpp>
#include <fusionflow/registry.hpp>

namespace fusionflow::python {

namespace py = pybind11;

constexpr const char* kInputPrefix = "python.input_";
constexpr const char* kOutputPrefix = "python.output_";

// "ColorVolume" -> "color_volume": the port name and type-name suffix of the
// Python input and output nodes of a payload type.
std::string snake_case(const std::string& type_name);

// python.input_<type> and python.output_<type> for every payload type the
// registry knows.
void add_python_io_nodes(NodeRegistry& registry);

// The values of one run: inputs by the id of their python.input node, and
// the outputs the python.output nodes received (by node id).
struct RunValues {
  std::map<std::string, Payload> inputs;
  std::mutex mutex;
  std::map<std::string, Payload> outputs;
};

// `pipeline` with its Python input and output nodes bound to `values`: their
// definitions are replaced by ones (kept in `definitions`) that read and
// write `values`, so concurrent runs of one registry never share values.
Pipeline bind_run_values(const Pipeline& pipeline, RunValues& values, std::deque<RegisteredNode>& definitions);

// Registers a node type whose work is `run(ctx)`, called under the GIL on
// the executor's thread (other nodes keep running in parallel).
void add_python_node(NodeRegistry& registry, const std::string& type, const std::string& version,
                     const std::string& description, const py::list& inputs, const py::list& outputs,
                     const py::list& params, py::function run, bool memory_intensive);

void bind_node_context(py::module_& module);

}  // namespace fusionflow::python
