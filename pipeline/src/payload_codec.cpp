// The SDK payload types' encodings. Each is a header (the value's structure
// as CBOR through nlohmann-json, whose objects are sorted by key, so the
// bytes are canonical) followed by the raw float arrays the header counts:
//
//   u64 little-endian header length | CBOR header | float32 arrays (native byte order)
//
// The arrays are written as they lie in memory (no per-voxel conversion), so
// an entry belongs to machines of the same byte order; the node cache puts
// the byte order into every key.
#include "fusionflow/payload_codec.hpp"

#include <nlohmann/json.hpp>

#include <cstring>
#include <limits>
#include <stdexcept>
#include <vector>

#include "fusionflow/color.hpp"
#include "fusionflow/latent.hpp"
#include "fusionflow/payload_types.hpp"
#include "fusionflow/sha256.hpp"
#include "fusionflow/transform.hpp"

namespace fusionflow {

using json = nlohmann::json;

void ByteSource::read(void* data, std::size_t size) {
  if (size > remaining_) {
    throw std::runtime_error("the encoding ends early (" + std::to_string(size) + " bytes wanted, " +
                             std::to_string(remaining_) + " left)");
  }
  in_.read(static_cast<char*>(data), static_cast<std::streamsize>(size));
  if (static_cast<std::size_t>(in_.gcount()) != size) throw std::runtime_error("cannot read the encoding's bytes");
  remaining_ -= size;
}

namespace {

// Headers of the SDK's types are small; a larger length is a broken entry.
constexpr std::uint64_t kMaxHeaderBytes = 64u << 20;

void write_header(const json& header, const ByteSink& out) {
  const std::vector<std::uint8_t> bytes = json::to_cbor(header);
  const std::uint64_t length = bytes.size();
  std::uint8_t prefix[8];
  for (int n = 0; n < 8; ++n) prefix[n] = static_cast<std::uint8_t>(length >> (8 * n));
  out(prefix, sizeof prefix);
  out(bytes.data(), bytes.size());
}

json read_header(ByteSource& in) {
  std::uint8_t prefix[8];
  in.read(prefix, sizeof prefix);
  std::uint64_t length = 0;
  for (int n = 0; n < 8; ++n) length |= static_cast<std::uint64_t>(prefix[n]) << (8 * n);
  if (length > kMaxHeaderBytes || length > in.remaining()) {
    throw std::runtime_error("the encoding's header length " + std::to_string(length) + " is impossible");
  }
  std::vector<std::uint8_t> bytes(static_cast<std::size_t>(length));
  in.read(bytes.data(), bytes.size());
  try {
    return json::from_cbor(bytes);
  } catch (const json::exception& error) {
    throw std::runtime_error(std::string("the encoding's header is not valid CBOR: ") + error.what());
  }
}

// Any contiguous float container: a std::vector or a Volume's VoxelBuffer
// (which may be borrowed memory, written without a copy).
template <class Floats>
void write_floats(const Floats& values, const ByteSink& out) {
  out(values.data(), values.size() * sizeof(float));
}

std::vector<float> read_floats(ByteSource& in, std::uint64_t count) {
  if (count > in.remaining() / sizeof(float)) {
    throw std::runtime_error("the encoding announces " + std::to_string(count) + " values but holds only " +
                             std::to_string(in.remaining()) + " bytes");
  }
  std::vector<float> values(static_cast<std::size_t>(count));
  in.read(values.data(), values.size() * sizeof(float));
  return values;
}

void expect_end(const ByteSource& in) {
  if (in.remaining() != 0) {
    throw std::runtime_error("the encoding has " + std::to_string(in.remaining()) + " bytes after its end");
  }
}

// nlohmann's typed getters throw json::exception on a wrong shape; the cache
// reports a broken entry as std::runtime_error.
template <class Decode>
Payload decoding(Decode decode) {
  try {
    return decode();
  } catch (const json::exception& error) {
    throw std::runtime_error(std::string("the encoding's header has the wrong shape: ") + error.what());
  }
}

json geometry_json(const Geometry& geometry) {
  return {{"size", geometry.size},
          {"spacing", geometry.spacing},
          {"origin", geometry.origin},
          {"direction", geometry.direction}};
}

Geometry geometry_from(const json& value) {
  Geometry geometry;
  geometry.size = value.at("size").get<std::array<std::size_t, 3>>();
  geometry.spacing = value.at("spacing").get<std::array<double, 3>>();
  geometry.origin = value.at("origin").get<std::array<double, 3>>();
  geometry.direction = value.at("direction").get<std::array<double, 9>>();
  std::uint64_t voxels = 1;
  for (std::size_t extent : geometry.size) {
    if (extent != 0 && voxels > std::numeric_limits<std::uint64_t>::max() / extent) {
      throw std::runtime_error("the encoding's grid size overflows");
    }
    voxels *= extent;
  }
  return geometry;
}

json metadata_json(const VolumeMetadata& metadata) {
  return {{"modality", metadata.modality},
          {"units", metadata.units},
          {"quantity", metadata.quantity},
          {"source", metadata.source},
          {"series_description", metadata.series_description},
          {"extra", metadata.extra}};
}

VolumeMetadata metadata_from(const json& value) {
  VolumeMetadata metadata;
  metadata.modality = value.at("modality").get<std::string>();
  metadata.units = value.at("units").get<std::string>();
  metadata.quantity = value.at("quantity").get<std::string>();
  metadata.source = value.at("source").get<std::string>();
  metadata.series_description = value.at("series_description").get<std::string>();
  metadata.extra = value.at("extra").get<std::map<std::string, std::string>>();
  return metadata;
}

}  // namespace

PayloadCodec volume_codec() {
  PayloadCodec codec;
  codec.encode = [](const Payload& value, const ByteSink& out) {
    const Volume& volume = *value.get<Volume>();
    write_header({{"type", "Volume"},
                  {"geometry", geometry_json(volume.geometry)},
                  {"metadata", metadata_json(volume.metadata)},
                  {"voxels", volume.voxels.size()}},
                 out);
    write_floats(volume.voxels, out);
  };
  codec.decode = [](ByteSource& in) {
    return decoding([&] {
      const json header = read_header(in);
      Volume volume;
      volume.geometry = geometry_from(header.at("geometry"));
      volume.metadata = metadata_from(header.at("metadata"));
      const auto count = header.at("voxels").get<std::uint64_t>();
      if (count != volume.geometry.voxel_count()) {
        throw std::runtime_error("the encoding's voxel count does not match its grid");
      }
      volume.voxels = read_floats(in, count);
      expect_end(in);
      return Payload::of<Volume>(std::make_shared<const Volume>(std::move(volume)));
    });
  };
  codec.relocate = [](const Payload& value, const std::string& from, const std::string& to) {
    const auto& volume = value.get<Volume>();
    if (volume->metadata.source != from) return value;
    auto moved = std::make_shared<Volume>(*volume);
    moved->metadata.source = to;
    return Payload::of<Volume>(std::shared_ptr<const Volume>(std::move(moved)));
  };
  return codec;
}

PayloadCodec table_codec() {
  PayloadCodec codec;
  codec.encode = [](const Payload& value, const ByteSink& out) {
    const Table& table = *value.get<Table>();
    json rows = json::array();
    for (const auto& row : table.rows) {
      json cells = json::array();
      for (const Table::Cell& cell : row) {
        if (const auto* number = std::get_if<double>(&cell)) {
          cells.push_back(*number);  // CBOR keeps every double bit for bit, NaN included
        } else if (const auto* text = std::get_if<std::string>(&cell)) {
          cells.push_back(*text);
        } else {
          cells.push_back(nullptr);
        }
      }
      rows.push_back(std::move(cells));
    }
    write_header({{"type", "Table"}, {"columns", table.columns}, {"rows", std::move(rows)}}, out);
  };
  codec.decode = [](ByteSource& in) {
    return decoding([&] {
      const json header = read_header(in);
      expect_end(in);
      Table table;
      table.columns = header.at("columns").get<std::vector<std::string>>();
      for (const json& row : header.at("rows")) {
        if (!row.is_array() || row.size() != table.columns.size()) {
          throw std::runtime_error("a table row in the encoding has the wrong number of cells");
        }
        std::vector<Table::Cell> cells;
        for (const json& cell : row) {
          if (cell.is_number()) {
            cells.emplace_back(cell.get<double>());
          } else if (cell.is_string()) {
            cells.emplace_back(cell.get<std::string>());
          } else {
            cells.emplace_back(std::monostate{});
          }
        }
        table.rows.push_back(std::move(cells));
      }
      return Payload::of<Table>(std::make_shared<const Table>(std::move(table)));
    });
  };
  return codec;
}

PayloadCodec latent_codec() {
  PayloadCodec codec;
  codec.encode = [](const Payload& value, const ByteSink& out) {
    const Latent& latent = *value.get<Latent>();
    json levels = json::array();
    for (const LatentLevel& level : latent.levels) {
      levels.push_back({{"name", level.name},
                        {"role", level.role},
                        {"geometry", geometry_json(level.geometry)},
                        {"channels", level.channels},
                        {"values", level.data.size()}});
    }
    write_header({{"type", "Latent"},
                  {"kind", latent.kind},
                  {"encoder_params", latent.encoder_params},
                  {"source_geometry", geometry_json(latent.source_geometry)},
                  {"source_metadata", metadata_json(latent.source_metadata)},
                  {"levels", std::move(levels)}},
                 out);
    for (const LatentLevel& level : latent.levels) write_floats(level.data, out);
  };
  codec.decode = [](ByteSource& in) {
    return decoding([&] {
      const json header = read_header(in);
      Latent latent;
      latent.kind = header.at("kind").get<std::string>();
      latent.encoder_params = header.at("encoder_params").get<std::map<std::string, std::string>>();
      latent.source_geometry = geometry_from(header.at("source_geometry"));
      latent.source_metadata = metadata_from(header.at("source_metadata"));
      std::vector<std::uint64_t> counts;
      for (const json& entry : header.at("levels")) {
        LatentLevel level;
        level.name = entry.at("name").get<std::string>();
        level.role = entry.at("role").get<std::string>();
        level.geometry = geometry_from(entry.at("geometry"));
        level.channels = entry.at("channels").get<std::size_t>();
        counts.push_back(entry.at("values").get<std::uint64_t>());
        latent.levels.push_back(std::move(level));
      }
      for (std::size_t n = 0; n < latent.levels.size(); ++n) latent.levels[n].data = read_floats(in, counts[n]);
      expect_end(in);
      return Payload::of<Latent>(std::make_shared<const Latent>(std::move(latent)));
    });
  };
  codec.relocate = [](const Payload& value, const std::string& from, const std::string& to) {
    const auto& latent = value.get<Latent>();
    if (latent->source_metadata.source != from) return value;
    auto moved = std::make_shared<Latent>(*latent);
    moved->source_metadata.source = to;
    return Payload::of<Latent>(std::shared_ptr<const Latent>(std::move(moved)));
  };
  return codec;
}

PayloadCodec color_volume_codec() {
  PayloadCodec codec;
  codec.encode = [](const Payload& value, const ByteSink& out) {
    const ColorVolume& image = *value.get<ColorVolume>();
    write_header({{"type", "ColorVolume"},
                  {"geometry", geometry_json(image.geometry)},
                  {"metadata", metadata_json(image.metadata)},
                  {"max_value", image.max_value},
                  {"voxels", {image.rgb[0].size(), image.rgb[1].size(), image.rgb[2].size()}}},
                 out);
    for (const auto& channel : image.rgb) write_floats(channel, out);
  };
  codec.decode = [](ByteSource& in) {
    return decoding([&] {
      const json header = read_header(in);
      ColorVolume image;
      image.geometry = geometry_from(header.at("geometry"));
      image.metadata = metadata_from(header.at("metadata"));
      image.max_value = header.at("max_value").get<double>();
      const auto counts = header.at("voxels").get<std::array<std::uint64_t, 3>>();
      for (std::size_t c = 0; c < 3; ++c) {
        if (counts[c] != image.geometry.voxel_count()) {
          throw std::runtime_error("the encoding's voxel count does not match its grid");
        }
        image.rgb[c] = read_floats(in, counts[c]);
      }
      expect_end(in);
      return Payload::of<ColorVolume>(std::make_shared<const ColorVolume>(std::move(image)));
    });
  };
  codec.relocate = [](const Payload& value, const std::string& from, const std::string& to) {
    const auto& image = value.get<ColorVolume>();
    if (image->metadata.source != from) return value;
    auto moved = std::make_shared<ColorVolume>(*image);
    moved->metadata.source = to;
    return Payload::of<ColorVolume>(std::shared_ptr<const ColorVolume>(std::move(moved)));
  };
  return codec;
}

PayloadCodec transform_codec() {
  PayloadCodec codec;
  codec.encode = [](const Payload& value, const ByteSink& out) {
    const Transform& transform = *value.get<Transform>();
    json header{{"type", "Transform"},
                {"kind", transform.kind},
                {"matrix", transform.matrix},
                {"center", transform.center},
                {"translation", transform.translation},
                {"description", transform.description}};
    if (transform.deformation) {
      const Geometry& lattice = transform.deformation->lattice;
      header["bspline"] = {{"size", lattice.size},
                           {"spacing", lattice.spacing},
                           {"origin", lattice.origin},
                           {"direction", lattice.direction},
                           {"coefficients", transform.deformation->coefficients}};
    }
    write_header(header, out);
  };
  codec.decode = [](ByteSource& in) {
    return decoding([&] {
      const json header = read_header(in);
      expect_end(in);
      Transform transform;
      transform.kind = header.at("kind").get<std::string>();
      transform.matrix = header.at("matrix").get<std::array<double, 9>>();
      transform.center = header.at("center").get<std::array<double, 3>>();
      transform.translation = header.at("translation").get<std::array<double, 3>>();
      transform.description = header.at("description").get<std::string>();
      if (header.contains("bspline")) {
        const json& bspline = header.at("bspline");
        auto deformation = std::make_shared<BSplineDeformation>();
        deformation->lattice.size = bspline.at("size").get<std::array<std::size_t, 3>>();
        deformation->lattice.spacing = bspline.at("spacing").get<std::array<double, 3>>();
        deformation->lattice.origin = bspline.at("origin").get<std::array<double, 3>>();
        deformation->lattice.direction = bspline.at("direction").get<std::array<double, 9>>();
        deformation->coefficients = bspline.at("coefficients").get<std::vector<double>>();
        if (deformation->coefficients.size() != 3 * deformation->lattice.voxel_count()) {
          throw std::runtime_error("B-spline transform with " + std::to_string(deformation->coefficients.size()) +
                                   " coefficients for " + std::to_string(deformation->lattice.voxel_count()) +
                                   " control points (3 each)");
        }
        transform.deformation = std::move(deformation);
      }
      return Payload::of<Transform>(std::make_shared<const Transform>(std::move(transform)));
    });
  };
  return codec;
}

std::string payload_content_sha256(const PayloadCodec& codec, const Payload& value) {
  Sha256 hash;
  codec.encode(value, [&hash](const void* data, std::size_t size) { hash.update(data, size); });
  return hash.hex_digest();
}

}  // namespace fusionflow
