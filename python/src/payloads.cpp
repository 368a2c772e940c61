#include "payloads.hpp"

#include <pybind11/stl.h>

#include <cmath>
#include <cstring>
#include <optional>
#include <stdexcept>
#include <variant>

namespace fusionflow::python {

namespace {

using FortranFloatArray = py::array_t<float, py::array::f_style | py::array::forcecast>;

// A NumPy view of `count` floats laid out with the first index fastest (the
// payloads' order: i, then j, then k, then channel), owned by `owner`.
py::array float_view(const py::object& owner, const float* data, const std::vector<py::ssize_t>& shape, bool writable) {
  std::vector<py::ssize_t> strides;
  py::ssize_t stride = sizeof(float);
  for (py::ssize_t extent : shape) {
    strides.push_back(stride);
    stride *= std::max<py::ssize_t>(extent, 1);
  }
  // The const_cast is undone by the read-only flag below when the payload
  // belongs to a pipeline.
  py::array view(py::dtype::of<float>(), shape, strides, const_cast<float*>(data), owner);
  if (!writable) view.attr("flags").attr("writeable") = false;
  return view;
}

// --- geometry ------------------------------------------------------------------

template <class T>
py::tuple triple(const std::array<T, 3>& values) {
  return py::make_tuple(values[0], values[1], values[2]);
}

std::array<double, 3> three_numbers(const py::handle& value, const char* name) {
  const auto numbers = py::cast<std::vector<double>>(value);
  if (numbers.size() != 3)
    throw py::value_error(std::string(name) + " has 3 numbers (i, j, k), not " + std::to_string(numbers.size()));
  for (double number : numbers) {
    if (!std::isfinite(number)) throw py::value_error(std::string(name) + " must be finite");
  }
  return {numbers[0], numbers[1], numbers[2]};
}

std::array<double, 9> direction_matrix(const py::handle& value) {
  if (value.is_none()) return {1, 0, 0, 0, 1, 0, 0, 0, 1};
  const auto matrix = py::array_t<double, py::array::c_style | py::array::forcecast>::ensure(value);
  if (!matrix || matrix.ndim() != 2 || matrix.shape(0) != 3 || matrix.shape(1) != 3) {
    throw py::value_error("direction is a 3x3 matrix whose columns are the world (LPS) directions of i, j and k");
  }
  std::array<double, 9> direction{};
  for (std::size_t n = 0; n < 9; ++n) {
    direction[n] = matrix.data()[n];
    if (!std::isfinite(direction[n])) throw py::value_error("direction must be finite");
  }
  return direction;
}

Geometry make_geometry(const std::vector<std::size_t>& shape, const py::handle& spacing, const py::handle& origin,
                       const py::handle& direction) {
  if (shape.size() < 2 || shape.size() > 3) {
    throw py::value_error("a volume is 3D (i, j, k), or 2D (i, j) for one slice; got " + std::to_string(shape.size()) +
                          " dimensions");
  }
  Geometry geometry;
  geometry.size = {shape[0], shape[1], shape.size() == 3 ? shape[2] : 1};
  geometry.spacing = three_numbers(spacing, "spacing");
  for (double step : geometry.spacing) {
    if (step <= 0) throw py::value_error("spacing must be positive (mm)");
  }
  geometry.origin = three_numbers(origin, "origin");
  geometry.direction = direction_matrix(direction);
  return geometry;
}

py::array direction_array(const Geometry& geometry) {
  py::array_t<double> matrix({3, 3});
  std::memcpy(matrix.mutable_data(), geometry.direction.data(), 9 * sizeof(double));
  return std::move(matrix);
}

// point = origin + direction * (spacing .* index), as a 4x4 LPS matrix.
py::array affine_lps(const Geometry& geometry) {
  py::array_t<double> affine({4, 4});
  double* out = affine.mutable_data();
  for (int row = 0; row < 4; ++row) {
    for (int column = 0; column < 4; ++column) {
      double value = row == 3 ? (column == 3 ? 1.0 : 0.0) : 0.0;
      if (row < 3 && column < 3) value = geometry.direction[row * 3 + column] * geometry.spacing[column];
      if (row < 3 && column == 3) value = geometry.origin[row];
      out[row * 4 + column] = value;
    }
  }
  return std::move(affine);
}

// --- metadata ------------------------------------------------------------------

void apply_metadata(VolumeMetadata& metadata, const py::dict& fields) {
  for (const auto& [key, value] : fields) {
    const auto name = py::cast<std::string>(key);
    if (value.is_none()) continue;
    if (name == "modality") {
      metadata.modality = py::cast<std::string>(value);
    } else if (name == "units") {
      metadata.units = py::cast<std::string>(value);
    } else if (name == "quantity") {
      metadata.quantity = py::cast<std::string>(value);
    } else if (name == "source") {
      metadata.source = py::cast<std::string>(value);
    } else if (name == "series_description") {
      metadata.series_description = py::cast<std::string>(value);
    } else if (name == "extra") {
      metadata.extra = py::cast<std::map<std::string, std::string>>(value);
    } else {
      throw py::type_error("unknown volume field '" + name +
                           "': use spacing, origin, direction, like, modality, units, quantity, source, "
                           "series_description or extra");
    }
  }
}

py::dict metadata_dict(const VolumeMetadata& metadata) {
  py::dict fields;
  fields["modality"] = metadata.modality;
  fields["units"] = metadata.units;
  fields["quantity"] = metadata.quantity;
  fields["source"] = metadata.source;
  fields["series_description"] = metadata.series_description;
  fields["extra"] = metadata.extra;
  return fields;
}

// Geometry and metadata from keyword arguments: spacing, origin, direction
// and the metadata fields, each defaulting to `like`'s (or to unit spacing,
// zero origin, identity direction).
std::shared_ptr<Volume> volume_from_keywords(const std::vector<std::size_t>& shape, py::kwargs fields) {
  auto volume = std::make_shared<Volume>();
  const PyVolume* like = nullptr;
  if (fields.contains("like")) {
    like = &py::cast<const PyVolume&>(fields["like"]);
    volume->metadata = like->volume->metadata;
    PyDict_DelItemString(fields.ptr(), "like");
  }
  const auto take = [&fields](const char* name, py::object fallback) {
    if (!fields.contains(name)) return fallback;
    py::object value = fields[name];
    PyDict_DelItemString(fields.ptr(), name);
    return value;
  };
  const Geometry* base = like != nullptr ? &like->volume->geometry : nullptr;
  py::object spacing = take("spacing", base ? py::cast(base->spacing) : py::cast(std::array<double, 3>{1, 1, 1}));
  py::object origin = take("origin", base ? py::cast(base->origin) : py::cast(std::array<double, 3>{0, 0, 0}));
  py::object direction = take("direction", base ? direction_array(*base) : py::object(py::none()));
  volume->geometry = make_geometry(shape, spacing, origin, direction);
  apply_metadata(volume->metadata, fields);
  return volume;
}

std::vector<std::size_t> shape_of(const py::array& array) {
  std::vector<std::size_t> shape;
  for (py::ssize_t axis = 0; axis < array.ndim(); ++axis) shape.push_back(static_cast<std::size_t>(array.shape(axis)));
  return shape;
}

// Keeps a NumPy array alive for as long as a VoxelBuffer borrows its memory.
// The last reference may go on any thread (an executor worker), so the
// reference is dropped under the GIL; after the interpreter has finished,
// there is nothing left to release.
std::shared_ptr<const void> keep_alive(const py::object& array) {
  return std::shared_ptr<const void>(new py::object(array), [](const void* held) {
    auto* object = static_cast<py::object*>(const_cast<void*>(held));
    if (Py_IsInitialized() != 0 && _Py_IsFinalizing() == 0) {
      py::gil_scoped_acquire gil;
      delete object;
    } else {
      object->release();
      delete object;
    }
  });
}

// The borrowing rule of Volume(array): native float32, aligned, Fortran
// order (the payload's i-fastest layout); anything else needs a copy.
bool can_borrow(const py::object& values) {
  if (!py::isinstance<py::array>(values)) return false;
  const auto array = py::reinterpret_borrow<py::array>(values);
  if (array.ndim() < 2 || array.ndim() > 3 || !array.dtype().equal(py::dtype::of<float>())) return false;
  const py::object flags = array.attr("flags");
  return py::cast<bool>(flags.attr("f_contiguous")) && py::cast<bool>(flags.attr("aligned"));
}

PyVolume volume_from_array(const py::object& values, const py::object& copy, py::kwargs fields) {
  // copy=None: borrow when possible, else copy; True: always copy; False:
  // borrow or refuse.
  const std::optional<bool> wanted = copy.is_none() ? std::nullopt : std::optional<bool>(py::cast<bool>(copy));
  if (wanted != true && can_borrow(values)) {
    const auto array = py::reinterpret_borrow<py::array>(values);
    auto volume = volume_from_keywords(shape_of(array), std::move(fields));
    auto* data = static_cast<float*>(const_cast<void*>(array.data()));
    volume->voxels = VoxelBuffer::borrow(data, volume->geometry.voxel_count(), keep_alive(array));
    // A read-only array stays read-only through the volume's own view.
    const bool writable = py::cast<bool>(array.attr("flags").attr("writeable"));
    return PyVolume{std::move(volume), writable};
  }
  if (wanted == false) {
    throw py::value_error(
        "fusionflow.Volume(copy=False) borrows float32 arrays in Fortran order (i fastest) only; "
        "this one needs a copy: pass np.asfortranarray(array, dtype=np.float32), or leave copy unset");
  }
  const auto array = FortranFloatArray::ensure(values);
  if (!array) throw py::type_error("fusionflow.Volume takes an array of numbers");
  auto volume = volume_from_keywords(shape_of(array), std::move(fields));
  volume->voxels.resize(volume->geometry.voxel_count());
  if (!volume->voxels.empty()) {
    std::memcpy(volume->voxels.data(), array.data(), volume->voxels.size() * sizeof(float));
  }
  return PyVolume{std::move(volume), true};
}

std::vector<py::ssize_t> volume_shape(const Geometry& geometry) {
  return {py::ssize_t(geometry.size[0]), py::ssize_t(geometry.size[1]), py::ssize_t(geometry.size[2])};
}

void require_writable(bool writable, const char* what) {
  if (!writable) {
    throw py::value_error(
        std::string("this ") + what +
        " is read-only (it belongs to a pipeline, or borrows a read-only array); change a copy (.copy())");
  }
}

// --- tables ----------------------------------------------------------------------

Table::Cell to_cell(const py::handle& value, const std::string& column) {
  if (value.is_none()) return std::monostate{};
  if (py::isinstance<py::str>(value)) return py::cast<std::string>(value);
  try {
    return py::cast<double>(value);
  } catch (const py::cast_error&) {
    throw py::type_error("table column '" + column + "': cells are numbers, text or None, not " +
                         py::cast<std::string>(py::str(value.get_type())));
  }
}

py::object cell_object(const Table::Cell& cell) {
  if (const auto* number = std::get_if<double>(&cell)) return py::float_(*number);
  if (const auto* text = std::get_if<std::string>(&cell)) return py::str(*text);
  return py::none();
}

std::shared_ptr<Table> table_from_python(const py::handle& value) {
  auto table = std::make_shared<Table>();
  if (py::isinstance<py::dict>(value)) {
    std::size_t row_count = 0;
    bool first = true;
    std::vector<std::vector<Table::Cell>> columns;
    for (const auto& [key, cells] : py::cast<py::dict>(value)) {
      const auto name = py::cast<std::string>(key);
      std::vector<Table::Cell> column;
      for (const auto& cell : py::iter(cells)) column.push_back(to_cell(cell, name));
      if (!first && column.size() != row_count) {
        throw py::value_error("table column '" + name + "' has " + std::to_string(column.size()) +
                              " cells, the others " + std::to_string(row_count));
      }
      first = false;
      row_count = column.size();
      table->columns.push_back(name);
      columns.push_back(std::move(column));
    }
    table->rows.assign(row_count, std::vector<Table::Cell>(columns.size()));
    for (std::size_t c = 0; c < columns.size(); ++c) {
      for (std::size_t r = 0; r < row_count; ++r) table->rows[r][c] = std::move(columns[c][r]);
    }
    return table;
  }
  if (py::isinstance<py::list>(value) || py::isinstance<py::tuple>(value)) {
    for (const auto& row : value) {
      if (!py::isinstance<py::dict>(row)) throw py::type_error("a table's rows are dicts of column -> cell");
      std::vector<std::pair<std::string, Table::Cell>> cells;
      for (const auto& [key, cell] : py::cast<py::dict>(row)) {
        const auto name = py::cast<std::string>(key);
        cells.emplace_back(name, to_cell(cell, name));
      }
      table->add_row(cells);
    }
    return table;
  }
  throw py::type_error("a table is made from a dict of columns (name -> cells) or a list of rows (dicts)");
}

// --- latents ---------------------------------------------------------------------

LatentLevel level_from_python(const py::dict& fields, const Geometry& source) {
  LatentLevel level;
  for (const char* required : {"name", "role", "array"}) {
    if (!fields.contains(required)) throw py::value_error(std::string("a latent level needs '") + required + "'");
  }
  level.name = py::cast<std::string>(fields["name"]);
  level.role = py::cast<std::string>(fields["role"]);
  const auto array = FortranFloatArray::ensure(fields["array"]);
  if (!array || array.ndim() < 3 || array.ndim() > 4) {
    throw py::value_error("latent level '" + level.name + "': its array is (i, j, k) or (i, j, k, channel)");
  }
  const auto shape = shape_of(array);
  level.channels = shape.size() == 4 ? shape[3] : 1;
  if (fields.contains("geometry")) {
    level.geometry = py::cast<Geometry>(fields["geometry"]);
    if (level.geometry.size != std::array<std::size_t, 3>{shape[0], shape[1], shape[2]}) {
      throw py::value_error("latent level '" + level.name + "': its geometry's size differs from its array's shape");
    }
  } else {
    if (source.size != std::array<std::size_t, 3>{shape[0], shape[1], shape[2]}) {
      throw py::value_error("latent level '" + level.name +
                            "' is not on the source grid: give its 'geometry' (fusionflow.Geometry)");
    }
    level.geometry = source;
  }
  level.data.resize(static_cast<std::size_t>(array.size()));
  if (!level.data.empty()) std::memcpy(level.data.data(), array.data(), level.data.size() * sizeof(float));
  return level;
}

}  // namespace

// ----------------------------------------------------------------------------------

py::object to_python(const Payload& payload) {
  const std::string& type = payload.type_name();
  if (type == payload_type_name<Volume>()) {
    return py::cast(PyVolume{std::const_pointer_cast<Volume>(payload.get<Volume>()), false});
  }
  if (type == payload_type_name<Table>()) {
    return py::cast(PyTable{std::const_pointer_cast<Table>(payload.get<Table>()), false});
  }
  if (type == payload_type_name<Latent>()) {
    return py::cast(PyLatent{std::const_pointer_cast<Latent>(payload.get<Latent>()), false});
  }
  return py::cast(PyPayload{payload});
}

Payload from_python(py::handle value, const std::string& type, const std::string& where) {
  const auto refuse = [&](const std::string& advice) {
    return py::type_error(where + " takes a " + type + ", not " +
                          py::cast<std::string>(py::str(value.get_type().attr("__name__"))) + ": " + advice);
  };
  if (py::isinstance<PyPayload>(value)) {
    const Payload& payload = py::cast<const PyPayload&>(value).payload;
    if (payload.type_name() != type) throw refuse("it holds a " + payload.type_name());
    return payload;
  }
  if (type == payload_type_name<Volume>()) {
    if (!py::isinstance<PyVolume>(value)) {
      throw refuse("wrap an array with fusionflow.Volume(array, spacing=..., origin=..., direction=...)");
    }
    auto& volume = py::cast<PyVolume&>(value);
    volume.writable = false;
    return Payload::of<Volume>(volume.volume);
  }
  if (type == payload_type_name<Table>()) {
    if (py::isinstance<PyTable>(value)) {
      auto& table = py::cast<PyTable&>(value);
      table.writable = false;
      return Payload::of<Table>(table.table);
    }
    return Payload::of<Table>(std::shared_ptr<const Table>(table_from_python(value)));
  }
  if (type == payload_type_name<Latent>()) {
    if (!py::isinstance<PyLatent>(value)) throw refuse("make one with fusionflow.Latent(kind, levels, like=volume)");
    auto& latent = py::cast<PyLatent&>(value);
    latent.writable = false;
    return Payload::of<Latent>(latent.latent);
  }
  throw refuse("values of this type come from a pipeline (run outputs); pass one on as it is");
}

void bind_payloads(py::module_& module) {
  py::class_<Geometry>(module, "Geometry",
                       "A grid in world (LPS) coordinates: point = origin + direction @ (spacing * index).")
      .def(py::init([](const std::vector<std::size_t>& size, const py::object& spacing, const py::object& origin,
                       const py::object& direction) { return make_geometry(size, spacing, origin, direction); }),
           py::arg("size"), py::arg("spacing") = std::array<double, 3>{1, 1, 1},
           py::arg("origin") = std::array<double, 3>{0, 0, 0}, py::arg("direction") = py::none())
      .def_property_readonly("size", [](const Geometry& g) { return triple(g.size); })
      .def_property_readonly("spacing", [](const Geometry& g) { return triple(g.spacing); })
      .def_property_readonly("origin", [](const Geometry& g) { return triple(g.origin); })
      .def_property_readonly("direction", &direction_array, "3x3; its columns are the directions of i, j and k")
      .def_property_readonly("affine", &affine_lps, "4x4 index -> LPS point (mm)")
      .def("index_to_point",
           [](const Geometry& g, const std::array<double, 3>& index) { return triple(g.index_to_point(index)); })
      .def("point_to_index",
           [](const Geometry& g, const std::array<double, 3>& point) { return triple(g.point_to_index(point)); })
      .def("same_grid", &Geometry::same_grid, py::arg("other"), py::arg("tolerance") = 1e-6)
      .def("__repr__", [](const Geometry& g) {
        return "Geometry(size=" + g.size_string() + ", spacing=" + py::cast<std::string>(py::repr(triple(g.spacing))) +
               ", origin=" + py::cast<std::string>(py::repr(triple(g.origin))) + ")";
      });

  py::class_<PyVolume>(module, "Volume", R"(A 3D scalar image with its geometry and modality metadata.

`array` is a float32 NumPy view of the voxels, indexed [i, j, k] (i fastest in
memory, Fortran order, as nibabel's arrays): no copy is made. Volumes that came
out of a pipeline, or were handed to one, are read-only.)")
      .def(py::init([](const py::object& values, const py::object& copy, py::kwargs fields) {
             return volume_from_array(values, copy, std::move(fields));
           }),
           py::arg("array"), py::kw_only(), py::arg("copy") = py::none(),
           "A volume of `array` (i, j, k). A float32 array in Fortran order (nibabel's, or np.asfortranarray's) "
           "is borrowed, not copied: the volume and every pipeline it is given to read the array's own memory, "
           "so do not change the array while a run uses it. Any other array is converted (one copy). "
           "copy=True always copies; copy=False raises when a copy would be needed. Keywords: spacing, origin, "
           "direction, like, modality, units, quantity, source, series_description, extra.")
      .def_property_readonly(
          "borrowed", [](const PyVolume& v) { return v.volume->voxels.borrowed(); },
          "True when the voxels are a NumPy array's memory (no copy was made)")
      .def_static(
          "empty",
          [](const std::vector<std::size_t>& shape, py::kwargs fields) {
            auto volume = volume_from_keywords(shape, std::move(fields));
            volume->voxels.assign(volume->geometry.voxel_count(), 0.0f);
            return PyVolume{std::move(volume), true};
          },
          py::arg("shape"),
          "A zero-filled volume whose `array` is fusionflow's own memory: fill it in place and a pipeline takes it "
          "without a copy. Keywords as for Volume().")
      .def_property_readonly("array",
                             [](py::object self) {
                               const auto& held = py::cast<const PyVolume&>(self);
                               return float_view(self, held.volume->voxels.data(), volume_shape(held.volume->geometry),
                                                 held.writable);
                             })
      .def_property_readonly(
          "data_pointer", [](const PyVolume& v) { return reinterpret_cast<std::uintptr_t>(v.volume->voxels.data()); })
      .def_property_readonly("writable", [](const PyVolume& v) { return v.writable; })
      .def_property_readonly("shape", [](const PyVolume& v) { return triple(v.volume->geometry.size); })
      .def_property_readonly("geometry", [](const PyVolume& v) { return v.volume->geometry; })
      .def_property_readonly("spacing", [](const PyVolume& v) { return triple(v.volume->geometry.spacing); })
      .def_property_readonly("origin", [](const PyVolume& v) { return triple(v.volume->geometry.origin); })
      .def_property_readonly("direction", [](const PyVolume& v) { return direction_array(v.volume->geometry); })
      .def_property_readonly(
          "affine", [](const PyVolume& v) { return affine_lps(v.volume->geometry); },
          "4x4 index -> LPS point (mm); fusionflow.to_nibabel gives the RAS one")
      .def_property_readonly("metadata", [](const PyVolume& v) { return metadata_dict(v.volume->metadata); })
      .def_property_readonly("modality", [](const PyVolume& v) { return v.volume->metadata.modality; })
      .def_property_readonly("units", [](const PyVolume& v) { return v.volume->metadata.units; })
      .def(
          "set_metadata",
          [](PyVolume& v, py::kwargs fields) {
            require_writable(v.writable, "volume");
            apply_metadata(v.volume->metadata, fields);
          },
          "Sets modality, units, quantity, source, series_description or extra.")
      .def("copy",
           [](const PyVolume& v) {
             return PyVolume{std::make_shared<Volume>(*v.volume), true};
           })
      .def("__repr__", [](const PyVolume& v) {
        return "fusionflow.Volume(" + v.volume->geometry.size_string() + ", modality='" + v.volume->metadata.modality +
               "'" + (v.writable ? "" : ", read-only") + ")";
      });

  py::class_<PyTable>(module, "Table",
                      "Named columns of numbers or text. Made from a dict of columns or a list of rows (dicts).")
      .def(py::init([](const py::object& value) {
             return PyTable{table_from_python(value), true};
           }),
           py::arg("data"))
      .def_property_readonly("columns", [](const PyTable& t) { return t.table->columns; })
      .def("__len__", [](const PyTable& t) { return t.table->rows.size(); })
      .def(
          "rows",
          [](const PyTable& t) {
            py::list rows;
            for (const auto& row : t.table->rows) {
              py::dict entry;
              for (std::size_t c = 0; c < t.table->columns.size(); ++c) {
                entry[py::str(t.table->columns[c])] = cell_object(row[c]);
              }
              rows.append(entry);
            }
            return rows;
          },
          "The rows as dicts (None for an empty cell).")
      .def(
          "to_dict",
          [](const PyTable& t) {
            py::dict columns;
            for (std::size_t c = 0; c < t.table->columns.size(); ++c) {
              bool numeric = true;
              for (const auto& row : t.table->rows) numeric = numeric && !std::holds_alternative<std::string>(row[c]);
              if (numeric) {
                py::array_t<double> values(static_cast<py::ssize_t>(t.table->rows.size()));
                double* out = values.mutable_data();
                for (std::size_t r = 0; r < t.table->rows.size(); ++r) {
                  const auto* number = std::get_if<double>(&t.table->rows[r][c]);
                  out[r] = number != nullptr ? *number : std::nan("");
                }
                columns[py::str(t.table->columns[c])] = values;
              } else {
                py::list values;
                for (const auto& row : t.table->rows) values.append(cell_object(row[c]));
                columns[py::str(t.table->columns[c])] = values;
              }
            }
            return columns;
          },
          "Columns by name: float64 arrays (NaN for empty cells) for numeric columns, lists for text.")
      .def("to_csv", [](const PyTable& t) { return t.table->to_csv(); })
      .def("to_json", [](const PyTable& t) { return t.table->to_json(); })
      .def("__repr__", [](const PyTable& t) {
        return "fusionflow.Table(" + std::to_string(t.table->rows.size()) + " rows, " +
               std::to_string(t.table->columns.size()) + " columns)";
      });

  py::class_<PyLatentLevel>(module, "LatentLevel", "One level of a latent: its array is (i, j, k, channel), no copy.")
      .def_property_readonly("name", [](const PyLatentLevel& l) { return l.latent->levels[l.index].name; })
      .def_property_readonly("role", [](const PyLatentLevel& l) { return l.latent->levels[l.index].role; })
      .def_property_readonly("channels", [](const PyLatentLevel& l) { return l.latent->levels[l.index].channels; })
      .def_property_readonly("geometry", [](const PyLatentLevel& l) { return l.latent->levels[l.index].geometry; })
      .def_property_readonly("array", [](py::object self) {
        const auto& held = py::cast<const PyLatentLevel&>(self);
        const LatentLevel& level = held.latent->levels[held.index];
        std::vector<py::ssize_t> shape = volume_shape(level.geometry);
        shape.push_back(py::ssize_t(level.channels));
        return float_view(self, level.data.data(), shape, held.writable);
      });

  py::class_<PyLatent>(module, "Latent", R"(An image encoded into the shared latent space: a list of levels.

Made from a kind, levels (dicts with name, role, array (i, j, k[, channel]) and
optionally geometry) and the encoded image's grid and metadata (like=volume, or
source_geometry=...).)")
      .def(py::init([](const std::string& kind, const py::list& levels, const py::object& like,
                       const py::object& source_geometry, const std::map<std::string, std::string>& encoder_params) {
             auto latent = std::make_shared<Latent>();
             latent->kind = kind;
             latent->encoder_params = encoder_params;
             if (!like.is_none()) {
               const auto& volume = py::cast<const PyVolume&>(like);
               latent->source_geometry = volume.volume->geometry;
               latent->source_metadata = volume.volume->metadata;
             } else if (!source_geometry.is_none()) {
               latent->source_geometry = py::cast<Geometry>(source_geometry);
             } else {
               throw py::value_error("a latent needs the encoded image's grid: like=volume or source_geometry=...");
             }
             for (const auto& level : levels) {
               latent->levels.push_back(level_from_python(py::cast<py::dict>(level), latent->source_geometry));
             }
             return PyLatent{std::move(latent), true};
           }),
           py::arg("kind"), py::arg("levels"), py::kw_only(), py::arg("like") = py::none(),
           py::arg("source_geometry") = py::none(), py::arg("encoder_params") = std::map<std::string, std::string>{})
      .def_property_readonly("kind", [](const PyLatent& l) { return l.latent->kind; })
      .def_property_readonly("encoder_params", [](const PyLatent& l) { return l.latent->encoder_params; })
      .def_property_readonly("source_geometry", [](const PyLatent& l) { return l.latent->source_geometry; })
      .def_property_readonly("source_metadata",
                             [](const PyLatent& l) { return metadata_dict(l.latent->source_metadata); })
      .def_property_readonly("writable", [](const PyLatent& l) { return l.writable; })
      .def_property_readonly("levels",
                             [](const PyLatent& l) {
                               std::vector<PyLatentLevel> levels;
                               for (std::size_t n = 0; n < l.latent->levels.size(); ++n) {
                                 levels.push_back({l.latent, n, l.writable});
                               }
                               return levels;
                             })
      .def("__repr__", [](const PyLatent& l) {
        return "fusionflow.Latent('" + l.latent->kind + "', " + std::to_string(l.latent->levels.size()) + " levels)";
      });

  py::class_<PyPayload>(module, "Payload",
                        "A value of a type without a Python view (e.g. Transform): pass it on to another run.")
      .def_property_readonly("type_name", [](const PyPayload& p) { return p.payload.type_name(); })
      .def("__repr__", [](const PyPayload& p) { return "fusionflow.Payload('" + p.payload.type_name() + "')"; });
}

}  // namespace fusionflow::python
