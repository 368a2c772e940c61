#include "nodes.hpp"

#include <pybind11/stl.h>

#include <cctype>
#include <memory>
#include <stdexcept>

#include <fusionflow/version.hpp>

#include "params.hpp"
#include "payloads.hpp"

namespace fusionflow::python {

namespace {

const Origin kPythonOrigin{"python", version_string(), ""};

bool starts_with(const std::string& text, const std::string& prefix) { return text.rfind(prefix, 0) == 0; }

// What a Python node's run function sees; valid only while the node runs.
struct PyNodeContext {
  NodeContext* context = nullptr;

  NodeContext& get() const {
    if (context == nullptr) throw std::runtime_error("a node's context is only valid while the node runs");
    return *context;
  }
};

// fusionflow.Cancelled, set by bind_node_context; a plain (never released)
// reference, as it must outlive the interpreter's own teardown.
PyObject* python_cancelled_type = nullptr;

ParamKind kind_from_name(const std::string& name) {
  for (ParamKind kind : {ParamKind::Bool, ParamKind::Int, ParamKind::Float, ParamKind::String, ParamKind::Choice,
                         ParamKind::InputPath, ParamKind::OutputPath, ParamKind::IntList, ParamKind::FloatList}) {
    if (name == to_string(kind)) return kind;
  }
  throw py::value_error("unknown parameter kind '" + name +
                        "': use bool, int, float, string, choice, input_path, output_path, int_list or float_list");
}

template <class T>
T field(const py::dict& fields, const char* name, T fallback) {
  return fields.contains(name) ? py::cast<T>(fields[name]) : fallback;
}

PortSpec port_from_python(const py::handle& value) {
  const auto fields = py::cast<py::dict>(value);
  if (!fields.contains("name") || !fields.contains("type")) {
    throw py::value_error("a port needs a 'name' and a payload 'type' (e.g. \"Volume\")");
  }
  return {py::cast<std::string>(fields["name"]), py::cast<std::string>(fields["type"]),
          field<std::string>(fields, "description", ""), field<bool>(fields, "multi", false),
          field<bool>(fields, "optional", false)};
}

ParamSpec param_from_python(const py::handle& value) {
  const auto fields = py::cast<py::dict>(value);
  if (!fields.contains("name") || !fields.contains("kind"))
    throw py::value_error("a parameter needs a 'name' and a 'kind'");
  ParamSpec spec;
  spec.name = py::cast<std::string>(fields["name"]);
  spec.kind = kind_from_name(py::cast<std::string>(fields["kind"]));
  spec.description = field<std::string>(fields, "description", "");
  if (fields.contains("default") && !fields["default"].is_none()) {
    spec.default_value = param_value_for_kind(fields["default"], spec.kind, "default of parameter '" + spec.name + "'");
  }
  if (fields.contains("min") && !fields["min"].is_none()) spec.min = py::cast<double>(fields["min"]);
  if (fields.contains("max") && !fields["max"].is_none()) spec.max = py::cast<double>(fields["max"]);
  if (fields.contains("choices") && !fields["choices"].is_none()) {
    spec.choices = py::cast<std::vector<std::string>>(fields["choices"]);
  }
  if (fields.contains("length") && !fields["length"].is_none())
    spec.list_length = py::cast<std::size_t>(fields["length"]);
  return spec;
}

// A Python callable kept by a node definition. Definitions are copied on
// executor threads that do not hold the GIL, so the callable is shared
// through a pointer and released under the GIL.
std::shared_ptr<py::object> share_callable(py::function run) {
  return std::shared_ptr<py::object>(new py::object(std::move(run)), [](py::object* callable) {
    if (!Py_IsInitialized()) return;  // the interpreter is gone: nothing left to release
    py::gil_scoped_acquire gil;
    delete callable;
  });
}

}  // namespace

std::string snake_case(const std::string& type_name) {
  std::string snake;
  for (std::size_t n = 0; n < type_name.size(); ++n) {
    const char c = type_name[n];
    if (std::isupper(static_cast<unsigned char>(c)) != 0) {
      if (n > 0) snake += '_';
      snake += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    } else {
      snake += c;
    }
  }
  return snake;
}

void add_python_io_nodes(NodeRegistry& registry) {
  for (const RegisteredPayloadType* type : registry.payload_types()) {
    const std::string port = snake_case(type->name);
    NodeSpec input(kInputPrefix + port, "1.0.0",
                   "A " + type->name + " given from Python: Pipeline.run(inputs={id: value})");
    input.add_output({port, type->name, "the value given for this node's id", false, false});
    input.uncacheable("its value comes from Python");
    registry.add_node({input,
                       [](NodeContext& ctx) {
                         throw std::runtime_error("node '" + ctx.node_id() +
                                                  "' takes its value from Python: run the pipeline with "
                                                  "fusionflow.Pipeline.run(inputs={'" +
                                                  ctx.node_id() + "': value})");
                       }},
                      kPythonOrigin);
    NodeSpec output(kOutputPrefix + port, "1.0.0",
                    "Hands a " + type->name + " back to Python: RunResult.outputs[id], no copy");
    output.add_input({port, type->name, "the value to hand back", false, false});
    output.uncacheable("it hands its value to Python");
    registry.add_node({output,
                       [](NodeContext& ctx) {
                         throw std::runtime_error("node '" + ctx.node_id() +
                                                  "' hands its value to Python: run the pipeline with "
                                                  "fusionflow.Pipeline.run");
                       }},
                      kPythonOrigin);
  }
}

Pipeline bind_run_values(const Pipeline& pipeline, RunValues& values, std::deque<RegisteredNode>& definitions) {
  Pipeline bound = pipeline;
  for (PipelineNode& node : bound.nodes) {
    const bool is_input = starts_with(node.type, kInputPrefix);
    if (!is_input && !starts_with(node.type, kOutputPrefix)) continue;
    RegisteredNode local = *node.definition;
    if (is_input) {
      const std::string port = local.spec().outputs().front().name;
      local.definition.run = [&values, port](NodeContext& ctx) {
        ctx.set_output(port, values.inputs.at(ctx.node_id()));
      };
    } else {
      const std::string port = local.spec().inputs().front().name;
      local.definition.run = [&values, port](NodeContext& ctx) {
        Payload payload = ctx.input_payload(port);
        std::lock_guard<std::mutex> lock(values.mutex);
        values.outputs[ctx.node_id()] = std::move(payload);
      };
    }
    definitions.push_back(std::move(local));
    node.definition = &definitions.back();
  }
  return bound;
}

void add_python_node(NodeRegistry& registry, const std::string& type, const std::string& version,
                     const std::string& description, const py::list& inputs, const py::list& outputs,
                     const py::list& params, py::function run, bool memory_intensive) {
  NodeSpec spec(type, version, description);
  for (const auto& port : inputs) spec.add_input(port_from_python(port));
  for (const auto& port : outputs) {
    PortSpec output = port_from_python(port);
    output.multi = false;
    spec.add_output(std::move(output));
  }
  for (const auto& param : params) spec.add_param(param_from_python(param));
  spec.memory_intensive(memory_intensive);
  // A function's code is not part of a cache key: its results are never cached.
  spec.uncacheable("a Python node (its code is not part of the cache key)");
  auto callable = share_callable(std::move(run));
  auto function = [callable](NodeContext& ctx) {
    py::gil_scoped_acquire gil;
    auto handle = std::make_shared<PyNodeContext>(PyNodeContext{&ctx});
    struct Invalidate {
      std::shared_ptr<PyNodeContext> handle;
      ~Invalidate() { handle->context = nullptr; }
    } invalidate{handle};
    try {
      (*callable)(handle);
    } catch (py::error_already_set& error) {
      if (python_cancelled_type != nullptr && error.matches(python_cancelled_type)) throw Cancelled();
      throw std::runtime_error(error.what());
    }
  };
  registry.add_node({spec, function}, kPythonOrigin);
}

void bind_node_context(py::module_& module) {
  auto& cancelled = py::register_exception<Cancelled>(module, "Cancelled", PyExc_RuntimeError);
  python_cancelled_type = cancelled.ptr();
  cancelled.attr("__doc__") = "Raised by NodeContext.throw_if_cancelled() when the run is being cancelled.";

  py::class_<PyNodeContext, std::shared_ptr<PyNodeContext>>(
      module, "NodeContext", "What a Python node's run function sees while it runs: inputs, parameters, outputs.")
      .def_property_readonly("node_id", [](const PyNodeContext& c) { return c.get().node_id(); })
      .def_property_readonly("thread_budget", [](const PyNodeContext& c) { return c.get().thread_budget(); })
      .def_property_readonly("cancelled", [](const PyNodeContext& c) { return c.get().cancelled(); })
      .def("has_input", [](const PyNodeContext& c, const std::string& port) { return c.get().has_input(port); })
      .def(
          "input",
          [](const PyNodeContext& c, const std::string& port) { return to_python(c.get().input_payload(port)); },
          py::arg("port"), "The value on an input port (a read-only view, no copy).")
      .def(
          "inputs",
          [](const PyNodeContext& c, const std::string& port) {
            py::list values;
            for (const Payload& payload : c.get().input_payloads(port)) values.append(to_python(payload));
            return values;
          },
          py::arg("port"), "Every producer's value of a multi-input port, in pipeline order.")
      .def(
          "param",
          [](const PyNodeContext& c, const std::string& name) { return param_to_python(c.get().param_value(name)); },
          py::arg("name"))
      .def(
          "output",
          [](const PyNodeContext& c, const std::string& port, const py::object& value) {
            NodeContext& ctx = c.get();
            const PortSpec* spec = ctx.spec().find_output(port);
            if (spec == nullptr) {
              throw py::key_error("node type '" + ctx.spec().type() + "' has no output port '" + port + "'");
            }
            ctx.set_output(port,
                           from_python(value, spec->type, "output '" + port + "' of node '" + ctx.node_id() + "'"));
          },
          py::arg("port"), py::arg("value"),
          "Sets an output. A fusionflow.Volume made in Python is handed over without a copy and is read-only after.")
      .def(
          "progress",
          [](const PyNodeContext& c, double fraction) {
            NodeContext& ctx = c.get();
            // The executor serialises progress reports under a lock that its
            // callbacks into Python take the GIL under: release it first.
            py::gil_scoped_release release;
            ctx.progress(fraction);
          },
          py::arg("fraction"))
      .def(
          "log",
          [](const PyNodeContext& c, const std::string& message, const std::string& level) {
            NodeContext& ctx = c.get();
            LogLevel parsed = LogLevel::Info;
            if (level == "debug") {
              parsed = LogLevel::Debug;
            } else if (level == "warning") {
              parsed = LogLevel::Warn;
            } else if (level == "error") {
              parsed = LogLevel::Error;
            } else if (level != "info") {
              throw py::value_error("log level is debug, info, warning or error");
            }
            py::gil_scoped_release release;
            ctx.log(parsed, message);
          },
          py::arg("message"), py::arg("level") = "info")
      .def(
          "throw_if_cancelled", [](const PyNodeContext& c) { c.get().throw_if_cancelled(); },
          "Raises fusionflow.Cancelled if the run is being cancelled; call it between steps of long work.");
}

}  // namespace fusionflow::python
