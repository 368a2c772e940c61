// fusionflow's Python module (_core; the package fusionflow wraps it): the
// registry of node types, pipelines loaded from files or built in code, and
// runs that take NumPy-backed values in and hand them back without copies.
// docs/python.md is the user's guide.
#include <pybind11/functional.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>
#include <pybind11/stl/filesystem.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <fstream>
#include <memory>
#include <optional>
#include <sstream>
#include <thread>

#include <fusionflow/atomic_file.hpp>
#include <fusionflow/executor.hpp>
#include <fusionflow/node_cache.hpp>
#include <fusionflow/pipeline_builder.hpp>
#include <fusionflow/plugin_loader.hpp>
#include <fusionflow/run_record.hpp>
#include <fusionflow/version.hpp>

#include "nodes.hpp"
#include "params.hpp"
#include "payloads.hpp"

namespace fusionflow::python {

namespace {

namespace fs = std::filesystem;

// Exception types made in the module's init; plain references that stay
// valid through the interpreter's teardown.
PyObject* pipeline_error_type = nullptr;
PyObject* run_error_type = nullptr;
PyObject* run_cancelled_type = nullptr;

// --- registry ----------------------------------------------------------------------

struct PyRegistry {
  NodeRegistry registry;
  std::vector<PluginLoadReport> reports;

  explicit PyRegistry(const std::vector<std::string>& plugin_dirs) {
    const std::vector<fs::path> dirs(plugin_dirs.begin(), plugin_dirs.end());
    reports = load_plugins(plugin_search_path(dirs), registry);
    add_python_io_nodes(registry);
  }
  PyRegistry(const PyRegistry&) = delete;
  PyRegistry& operator=(const PyRegistry&) = delete;

  std::vector<std::string> plugin_failures() const {
    std::vector<std::string> failures;
    for (const PluginLoadReport& report : reports) {
      if (!report.loaded) failures.push_back(report.file.string() + ": " + report.error);
    }
    return failures;
  }

  py::object description() const { return py::module_::import("json").attr("loads")(registry_json(registry, reports)); }
};

// The registry used when none is given: made on first use and kept for the
// life of the process (node types registered by Python code live in it).
PyRegistry& default_registry() {
  static PyRegistry* registry = new PyRegistry({});
  return *registry;
}

PyRegistry& registry_or_default(PyRegistry* registry) { return registry != nullptr ? *registry : default_registry(); }

// --- errors --------------------------------------------------------------------------

[[noreturn]] void raise_pipeline_error(const std::string& source, const std::vector<Diagnostic>& diagnostics) {
  std::string message;
  for (const Diagnostic& diagnostic : diagnostics) message += format_diagnostic(source, diagnostic) + "\n";
  message += source + ": " + std::to_string(diagnostics.size()) + (diagnostics.size() == 1 ? " problem" : " problems") +
             " found; nothing was run";
  py::object error = py::reinterpret_borrow<py::object>(pipeline_error_type)(message);
  error.attr("problems") = py::cast(diagnostics);
  PyErr_SetObject(pipeline_error_type, error.ptr());
  throw py::error_already_set();
}

// --- pipelines -----------------------------------------------------------------------

// A pipeline being built or changed in Python: the C++ PipelineBuilder, and
// the file it came from while it is unchanged (then it is loaded from the
// file itself, so messages, locations and the run record's source hash are
// those of the CLI).
struct PyPipeline {
  PipelineBuilder builder;
  std::string source_name;
  fs::path directory;
  std::optional<fs::path> unchanged_file;
  // Values for the pipeline's variables (the CLI's --set), given to load()
  // or set_variable(); those given to validate() and run() take precedence.
  std::map<std::string, std::string> variables;

  PipelineBuilder& edit() {
    unchanged_file.reset();
    return builder;
  }

  LoadResult load(PyRegistry& registry, const std::map<std::string, std::string>& overrides) const {
    LoadOptions options;
    options.variable_overrides = variables;
    for (const auto& [name, value] : overrides) options.variable_overrides[name] = value;
    options.plugin_failures = registry.plugin_failures();
    if (unchanged_file) return load_pipeline_file(*unchanged_file, registry.registry, options);
    return builder.build(registry.registry, options, directory);
  }

  Pipeline load_or_raise(PyRegistry& registry, const std::map<std::string, std::string>& overrides) const {
    LoadResult loaded = load(registry, overrides);
    if (!loaded.ok()) raise_pipeline_error(unchanged_file ? unchanged_file->string() : source_name, loaded.diagnostics);
    return std::move(*loaded.pipeline);
  }
};

PyPipeline load_file(const fs::path& file, PyRegistry& registry, const std::map<std::string, std::string>& variables) {
  PyPipeline pipeline{PipelineBuilder(file.string()), file.string(), fs::absolute(file).parent_path(), file, variables};
  pipeline.load_or_raise(registry, {});  // the file's own problems, exactly as the CLI reports them
  std::ifstream stream(file, std::ios::binary);
  std::ostringstream text;
  text << stream.rdbuf();
  pipeline.builder = PipelineBuilder::from_json(text.str(), file.string());
  return pipeline;
}

// --- runs --------------------------------------------------------------------------------

struct CancelToken {
  std::shared_ptr<std::atomic<bool>> flag = std::make_shared<std::atomic<bool>>(false);
};

struct PyRunResult {
  bool succeeded = false;
  bool stopped_by_user = false;
  std::string error;
  double wall_seconds = 0;
  int threads = 0;
  py::dict outputs;
  py::object record;
};

const char* status_name(NodeStatus status) { return to_string(status); }

std::string output_node_id(const std::string& node, const std::string& port) {
  return "python_output_" + node + "__" + port;
}

PyRunResult run(const PyPipeline& definition, const py::dict& inputs,
                const std::map<std::string, std::string>& variables, int threads, const py::object& progress,
                const CancelToken* cancel, const std::string& cache_dir, const std::string& record_path,
                const std::vector<std::string>& requested_outputs, PyRegistry* given) {
  PyRegistry& registry = registry_or_default(given);

  // Outputs asked for by "node.port" get a python.output node each.
  PyPipeline with_outputs = definition;
  std::map<std::string, std::string> output_keys;  // output node id -> "node.port"
  for (const std::string& requested : requested_outputs) {
    const auto dot = requested.find('.');
    if (dot == std::string::npos) throw py::value_error("outputs are named \"node.port\", e.g. \"fused.volume\"");
    const std::string node = requested.substr(0, dot);
    const std::string port = requested.substr(dot + 1);
    const std::string type = definition.builder.node_type(node);
    if (type.empty()) throw py::value_error("outputs: the pipeline has no node '" + node + "'");
    const RegisteredNode* registered = registry.registry.find_node(type);
    const PortSpec* spec = registered != nullptr ? registered->spec().find_output(port) : nullptr;
    if (spec == nullptr) {
      std::string known;
      if (registered != nullptr) {
        for (const PortSpec& output : registered->spec().outputs()) known += (known.empty() ? "" : ", ") + output.name;
      }
      throw py::value_error("outputs: node '" + node + "' (" + type + ") has no output '" + port + "'" +
                            (known.empty() ? std::string() : "; its outputs: " + known));
    }
    const std::string id = output_node_id(node, port);
    with_outputs.edit()
        .add_node(id, kOutputPrefix + snake_case(spec->type))
        .connect(requested, id + "." + snake_case(spec->type));
    output_keys[id] = requested;
  }
  const Pipeline loaded = with_outputs.load_or_raise(registry, variables);

  // Values for the Python input nodes, checked before anything runs.
  auto values = std::make_unique<RunValues>();
  std::vector<std::string> input_nodes;
  for (const PipelineNode& node : loaded.nodes) {
    if (node.type.rfind(kInputPrefix, 0) != 0) continue;
    input_nodes.push_back(node.id);
    if (!inputs.contains(node.id)) {
      throw py::value_error("node '" + node.id + "' (" + node.type + ") takes its value from Python: pass inputs={'" +
                            node.id + "': value}");
    }
    const PortSpec& port = node.definition->spec().outputs().front();
    values->inputs[node.id] = from_python(inputs[py::str(node.id)], port.type, "input '" + node.id + "'");
  }
  for (const auto& [key, ignored] : inputs) {
    const auto name = py::cast<std::string>(key);
    if (std::find(input_nodes.begin(), input_nodes.end(), name) == input_nodes.end()) {
      std::string known;
      for (const std::string& id : input_nodes) known += (known.empty() ? "" : ", ") + id;
      throw py::value_error(
          "inputs: the pipeline has no Python input node '" + name + "' (" +
          (known.empty() ? "it has none: add a python.input_volume node, for example" : "its input nodes: " + known) +
          ")");
    }
  }
  std::deque<RegisteredNode> definitions;
  const Pipeline bound = bind_run_values(loaded, *values, definitions);

  std::optional<NodeCache> cache;
  if (!cache_dir.empty()) {
    try {
      cache.emplace(cache_dir);
    } catch (const std::exception& error) {
      throw py::value_error(std::string("cache: ") + error.what());
    }
  }

  std::shared_ptr<std::atomic<bool>> stop =
      cancel != nullptr ? cancel->flag : std::make_shared<std::atomic<bool>>(false);
  // A Python callback that raised: the run is cancelled and the exception
  // re-raised once it has stopped. Touched under the GIL only.
  std::shared_ptr<py::error_already_set> callback_error;
  py::object logger = py::module_::import("logging").attr("getLogger")("fusionflow");

  RunOptions options;
  options.threads = threads;
  options.stop_requested = stop.get();
  if (cache) options.cache = &*cache;
  if (!progress.is_none()) {
    options.on_progress = [&](const ProgressEvent& event) {
      py::gil_scoped_acquire gil;
      if (callback_error) return;
      try {
        const double fraction = event.kind == ProgressEvent::Kind::Finished ? 1.0 : event.fraction;
        const NodeStatus status = event.kind == ProgressEvent::Kind::Finished ? event.status : NodeStatus::Running;
        progress(bound.nodes[event.node].id, fraction, status_name(status));
      } catch (py::error_already_set& error) {
        callback_error = std::make_shared<py::error_already_set>(std::move(error));
        stop->store(true);
      }
    };
  }
  options.on_log = [&](std::size_t node, LogLevel level, const std::string& message) {
    py::gil_scoped_acquire gil;
    const int python_level = level == LogLevel::Error  ? 40
                             : level == LogLevel::Warn ? 30
                             : level == LogLevel::Info ? 20
                                                       : 10;
    logger.attr("log")(python_level, "%s: %s", bound.nodes[node].id, message);
  };

  // The run goes on its own thread so that this one can take Ctrl-C: Python
  // delivers signals to the main thread between bytecodes only.
  RunResult result;
  std::exception_ptr crashed;
  std::mutex mutex;
  std::condition_variable finished;
  bool done = false;
  std::optional<py::error_already_set> interrupt;
  {
    std::thread worker([&] {
      try {
        result = run_pipeline(bound, registry.registry, options);
      } catch (...) {
        crashed = std::current_exception();
      }
      std::lock_guard<std::mutex> lock(mutex);
      done = true;
      finished.notify_all();
    });
    for (;;) {
      {
        py::gil_scoped_release release;
        std::unique_lock<std::mutex> lock(mutex);
        if (finished.wait_for(lock, std::chrono::milliseconds(50), [&] { return done; })) break;
      }
      if (PyErr_CheckSignals() != 0) {
        interrupt.emplace();  // takes the KeyboardInterrupt (or the handler's exception)
        stop->store(true);
        break;
      }
    }
    py::gil_scoped_release release;
    worker.join();
  }
  if (crashed) std::rethrow_exception(crashed);
  if (interrupt) throw *interrupt;
  if (callback_error) throw *callback_error;

  PyRunResult out;
  out.succeeded = result.succeeded;
  out.stopped_by_user = result.stopped_by_user;
  out.error = result.error;
  out.wall_seconds = result.wall_seconds;
  out.threads = result.threads;
  for (const auto& [id, payload] : values->outputs) {
    const auto key = output_keys.find(id);
    out.outputs[py::str(key != output_keys.end() ? key->second : id)] = to_python(payload);
  }
  const std::string record = run_record_json(bound, result, registry.reports, result.succeeded ? 0 : 1);
  out.record = py::module_::import("json").attr("loads")(record);
  if (!record_path.empty()) write_file_atomically(record_path, record);
  if (!out.succeeded) {
    PyObject* type = out.stopped_by_user ? run_cancelled_type : run_error_type;
    py::object error = py::reinterpret_borrow<py::object>(type)(out.error);
    error.attr("result") = py::cast(std::move(out));
    PyErr_SetObject(type, error.ptr());
    throw py::error_already_set();
  }
  return out;
}

py::object make_exception(py::module_& module, const char* name, PyObject* base, const char* doc) {
  const std::string qualified = std::string("fusionflow.") + name;
  PyObject* type = PyErr_NewExceptionWithDoc(qualified.c_str(), doc, base, nullptr);
  if (type == nullptr) throw py::error_already_set();
  module.attr(name) = py::handle(type);
  return py::reinterpret_borrow<py::object>(type);
}

}  // namespace

}  // namespace fusionflow::python

PYBIND11_MODULE(_core, module) {
  using namespace fusionflow;
  using namespace fusionflow::python;
  module.doc() = "fusionflow's core: registry, pipelines, runs and zero-copy payload views (see docs/python.md)";
  module.attr("__version__") = version_string();

  pipeline_error_type = make_exception(module, "PipelineError", PyExc_ValueError,
                                       "A pipeline has problems; `problems` lists each with its location, message and "
                                       "hint, and str() gives them as the CLI prints them.")
                            .release()
                            .ptr();
  run_error_type = make_exception(module, "RunError", PyExc_RuntimeError,
                                  "A run failed; `result` holds the RunResult (its record says which node and why).")
                       .release()
                       .ptr();
  run_cancelled_type = make_exception(module, "RunCancelled", run_error_type,
                                      "A run was cancelled (CancelToken.cancel()); `result` holds the RunResult.")
                           .release()
                           .ptr();

  bind_payloads(module);
  bind_node_context(module);

  py::class_<Diagnostic>(module, "Problem", "One problem of a pipeline: where, what, and what to do.")
      .def_readonly("location", &Diagnostic::location)
      .def_readonly("message", &Diagnostic::message)
      .def_readonly("hint", &Diagnostic::hint)
      .def("__repr__", [](const Diagnostic& d) { return "Problem(" + d.location + ": " + d.message + ")"; })
      .def("__str__", [](const Diagnostic& d) { return format_diagnostic("", d); });

  py::class_<PyRegistry>(module, "Registry", "The node types and payload types known to this process.")
      .def(py::init<const std::vector<std::string>&>(), py::arg("plugin_dirs") = std::vector<std::string>{},
           "Loads the plugins from plugin_dirs, then FUSIONFLOW_PLUGIN_PATH, then the bundled plugins.")
      .def("describe", &PyRegistry::description, "Everything, as `fusionflow plugins --json` prints it.")
      .def("plugins", [](const PyRegistry& r) -> py::object { return r.description()["plugins"]; })
      .def("payload_types", [](const PyRegistry& r) -> py::object { return r.description()["payload_types"]; })
      .def(
          "node_types", [](const PyRegistry& r) -> py::object { return r.description()["node_types"]; },
          "Each node type with its version, plugin, ports and parameters.")
      .def(
          "node_type",
          [](const PyRegistry& r, const std::string& type) -> py::object {
            const py::object types = r.description()["node_types"];
            for (const auto& entry : types) {
              if (py::cast<std::string>(entry["type"]) == type) return py::reinterpret_borrow<py::object>(entry);
            }
            const auto nearest = r.registry.nearest_node_types(type);
            throw py::key_error("unknown node type '" + type + "'" +
                                (nearest.empty() ? std::string() : "; did you mean '" + nearest.front() + "'?"));
          },
          py::arg("type"))
      .def(
          "add_node",
          [](PyRegistry& r, const std::string& type, const py::function& run, const std::string& version,
             const std::string& description, const py::list& inputs, const py::list& outputs, const py::list& params,
             bool memory_intensive) {
            try {
              add_python_node(r.registry, type, version, description, inputs, outputs, params, run, memory_intensive);
            } catch (const std::invalid_argument& error) {
              throw py::value_error(error.what());
            }
          },
          py::arg("type"), py::arg("run"), py::kw_only(), py::arg("version") = "1.0.0", py::arg("description") = "",
          py::arg("inputs") = py::list(), py::arg("outputs") = py::list(), py::arg("params") = py::list(),
          py::arg("memory_intensive") = false,
          "Registers a node type whose run function is the Python callable `run(ctx)` (see fusionflow.node).");
  module.def("registry", &default_registry, py::return_value_policy::reference,
             "The process's default registry (all plugins found on the plugin path).");

  py::class_<CancelToken>(module, "CancelToken", "Cancels a run from another thread or a progress callback.")
      .def(py::init<>())
      .def("cancel", [](CancelToken& t) { t.flag->store(true); })
      .def_property_readonly("cancelled", [](const CancelToken& t) { return t.flag->load(); });

  py::class_<PyRunResult>(module, "RunResult")
      .def_readonly("succeeded", &PyRunResult::succeeded)
      .def_readonly("stopped_by_user", &PyRunResult::stopped_by_user)
      .def_readonly("error", &PyRunResult::error)
      .def_readonly("wall_seconds", &PyRunResult::wall_seconds)
      .def_readonly("threads", &PyRunResult::threads)
      .def_readonly("outputs", &PyRunResult::outputs,
                    "Values handed back, by python.output node id or by the \"node.port\" asked for (no copies).")
      .def_readonly("record", &PyRunResult::record, "The run record (as `fusionflow run --record` writes it).");

  py::class_<PyPipeline>(module, "Pipeline", R"(A pipeline: loaded from a file (Pipeline.load) or built in code.

Building mirrors the C++ PipelineBuilder: add_node, set_param, connect. Every
check is the pipeline loader's, with the CLI's messages (PipelineError).)")
      .def(py::init([](const std::string& name, const fs::path& directory) {
             return PyPipeline{PipelineBuilder(name), name, directory.empty() ? fs::current_path() : directory, {}, {}};
           }),
           py::arg("name") = "(built in Python)", py::arg("directory") = fs::path(),
           "An empty pipeline; relative paths are relative to `directory` (default: the current directory).")
      .def_static(
          "load",
          [](const fs::path& file, const std::map<std::string, std::string>& variables, PyRegistry* registry) {
            return load_file(file, registry_or_default(registry), variables);
          },
          py::arg("path"), py::arg("variables") = std::map<std::string, std::string>{}, py::arg("registry") = nullptr,
          "Loads and checks a pipeline file; raises PipelineError with every problem.")
      .def_static(
          "from_json",
          [](const std::string& text, const std::string& name, const fs::path& directory) {
            return PyPipeline{PipelineBuilder::from_json(text, name),
                              name,
                              directory.empty() ? fs::current_path() : directory,
                              {},
                              {}};
          },
          py::arg("text"), py::arg("name") = "(text)", py::arg("directory") = fs::path())
      .def(
          "set_description",
          [](PyPipeline& p, const std::string& text) -> PyPipeline& {
            p.edit().description(text);
            return p;
          },
          py::arg("text"), py::return_value_policy::reference_internal)
      .def_property_readonly(
          "nodes", [](const PyPipeline& p) { return p.builder.nodes(); }, "(id, type) of each node")
      .def(
          "add_node",
          [](PyPipeline& p, const std::string& id, const std::string& type, const py::kwargs& params) -> PyPipeline& {
            p.edit().add_node(id, type);
            for (const auto& [name, value] : params) {
              const auto param = py::cast<std::string>(name);
              p.builder.set_param(id, param,
                                  param_value_from_python(value, "parameter '" + param + "' of '" + id + "'"));
            }
            return p;
          },
          py::arg("id"), py::arg("type"), py::return_value_policy::reference_internal,
          "Adds a node; keyword arguments set its parameters.")
      .def(
          "set_param",
          [](PyPipeline& p, const std::string& id, const std::string& name, const py::object& value) -> PyPipeline& {
            try {
              p.edit().set_param(id, name, param_value_from_python(value, "parameter '" + name + "' of '" + id + "'"));
            } catch (const std::invalid_argument& error) {
              throw py::key_error(error.what());
            }
            return p;
          },
          py::arg("id"), py::arg("name"), py::arg("value"), py::return_value_policy::reference_internal,
          "Sets a parameter; text is taken as it is (see set_param_template for ${variables}).")
      .def(
          "set_param_template",
          [](PyPipeline& p, const std::string& id, const std::string& name, const std::string& text) -> PyPipeline& {
            try {
              p.edit().set_param_template(id, name, text);
            } catch (const std::invalid_argument& error) {
              throw py::key_error(error.what());
            }
            return p;
          },
          py::arg("id"), py::arg("name"), py::arg("text"), py::return_value_policy::reference_internal,
          "Sets a text parameter whose ${name} references are the pipeline's variables.")
      .def(
          "connect",
          [](PyPipeline& p, const std::string& output, const std::string& input) -> PyPipeline& {
            try {
              p.edit().connect(output, input);
            } catch (const std::invalid_argument& error) {
              throw py::value_error(error.what());
            }
            return p;
          },
          py::arg("output"), py::arg("input"), py::return_value_policy::reference_internal,
          "\"producer.port\" feeds \"consumer.port\".")
      .def(
          "variable",
          [](PyPipeline& p, const std::string& name, const std::string& default_value,
             const std::string& description) -> PyPipeline& {
            p.edit().variable(name, default_value, description);
            return p;
          },
          py::arg("name"), py::arg("default"), py::arg("description") = "", py::return_value_policy::reference_internal)
      .def(
          "set_variable",
          [](PyPipeline& p, const std::string& name, const std::string& value) -> PyPipeline& {
            p.variables[name] = value;
            return p;
          },
          py::arg("name"), py::arg("value"), py::return_value_policy::reference_internal,
          "Sets a variable's value for validate() and run(), as the CLI's --set name=value.")
      .def_property_readonly(
          "variables", [](const PyPipeline& p) { return p.variables; }, "The values set with load() or set_variable()")
      .def(
          "to_json", [](const PyPipeline& p) { return p.builder.to_json(); }, "The pipeline as a pipeline file.")
      .def(
          "save", [](const PyPipeline& p, const fs::path& path) { write_file_atomically(path, p.builder.to_json()); },
          py::arg("path"), "Writes the pipeline file (atomically).")
      .def(
          "validate",
          [](const PyPipeline& p, const std::map<std::string, std::string>& variables, PyRegistry* registry) {
            const Pipeline loaded = p.load_or_raise(registry_or_default(registry), variables);
            std::vector<std::string> order;
            for (std::size_t index : loaded.topological_order) order.push_back(loaded.nodes[index].id);
            return order;
          },
          py::arg("variables") = std::map<std::string, std::string>{}, py::arg("registry") = nullptr,
          "Checks the pipeline (raises PipelineError); returns the node ids in an order they can run in.")
      .def("run", &run, py::kw_only(), py::arg("inputs") = py::dict(),
           py::arg("variables") = std::map<std::string, std::string>{}, py::arg("threads") = 0,
           py::arg("progress") = py::none(), py::arg("cancel") = nullptr, py::arg("cache") = "", py::arg("record") = "",
           py::arg("outputs") = std::vector<std::string>{}, py::arg("registry") = nullptr,
           R"(Runs the pipeline and returns a RunResult; raises RunError if a node fails, RunCancelled if cancelled.

inputs: values for the python.input_* nodes, by node id. outputs: "node.port"
values to hand back, besides those of python.output_* nodes. progress:
callable(node_id, fraction, status), called from worker threads. Ctrl-C
(KeyboardInterrupt) cancels the run cleanly and is re-raised.)");
}
