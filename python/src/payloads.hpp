// Python views of the payloads that travel on ports: Volume, Table and
// Latent, and an opaque handle for every other type. Voxel and level arrays
// are NumPy views of the payload's own memory (no copy); payloads that came
// out of a pipeline are read-only, as they are inside it.
#pragma once

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <memory>
#include <string>

#include <fusionflow/latent.hpp>
#include <fusionflow/payload.hpp>
#include <fusionflow/payload_types.hpp>

namespace fusionflow::python {

namespace py = pybind11;

// A Volume seen from Python. `writable` is false once the volume belongs to
// a pipeline (an output, or a value handed to one): payloads are immutable.
struct PyVolume {
  std::shared_ptr<Volume> volume;
  bool writable = true;
};

struct PyTable {
  std::shared_ptr<Table> table;
  bool writable = true;
};

struct PyLatent {
  std::shared_ptr<Latent> latent;
  bool writable = true;
};

// One level of a latent; keeps the latent alive.
struct PyLatentLevel {
  std::shared_ptr<Latent> latent;
  std::size_t index = 0;
  bool writable = true;
};

// A payload of a type without a Python view (Transform, ColorVolume, a
// plugin's own type): it can be taken from one run and given to another.
struct PyPayload {
  Payload payload;
};

void bind_payloads(py::module_& module);

// The Python object for a payload (a view, never a copy of the voxels).
py::object to_python(const Payload& payload);
// The payload for a Python value given to a port of type `type`; `where`
// names the port in errors (TypeError). Hands the value to the pipeline:
// a fusionflow.Volume, Table or Latent is read-only afterwards.
Payload from_python(py::handle value, const std::string& type, const std::string& where);

}  // namespace fusionflow::python
