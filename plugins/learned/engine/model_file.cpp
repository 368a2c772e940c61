#include "model_file.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <fstream>
#include <sstream>
#include <stdexcept>

#include "fusionflow/atomic_file.hpp"
#include "fusionflow/statistics.hpp"

namespace fusionflow::learned {
namespace {

void put_u64(std::string& out, std::uint64_t value) {
  for (int b = 0; b < 8; ++b) out.push_back(static_cast<char>((value >> (8 * b)) & 0xffu));
}

std::uint64_t get_u64(const std::string& in, std::size_t at) {
  std::uint64_t value = 0;
  for (int b = 0; b < 8; ++b) value |= std::uint64_t(static_cast<unsigned char>(in[at + b])) << (8 * b);
  return value;
}

}  // namespace

ModelContainer read_model_container(const std::filesystem::path& file) {
  const std::string who = "model file " + file.string();
  std::ifstream stream(file, std::ios::binary);
  if (!stream) throw std::runtime_error(who + ": cannot open it (does it exist? train one with `fusionflow train`)");
  std::ostringstream buffer;
  buffer << stream.rdbuf();
  const std::string bytes = buffer.str();
  if (bytes.size() < 8 || std::memcmp(bytes.data(), kModelMagic, 8) != 0) {
    throw std::runtime_error(who + ": not a fusionflow model (magic 'FFMODEL1' missing)");
  }
  if (bytes.size() < 16) throw std::runtime_error(who + ": truncated (no header length)");
  const std::uint64_t header_length = get_u64(bytes, 8);
  if (header_length > bytes.size() - 16) {
    throw std::runtime_error(who + ": truncated (header of " + std::to_string(header_length) + " bytes, file has " +
                             std::to_string(bytes.size()) + ")");
  }
  ModelContainer container;
  try {
    container.header = nlohmann::json::parse(bytes.substr(16, header_length));
  } catch (const std::exception& error) {
    throw std::runtime_error(who + ": the JSON header does not parse: " + error.what());
  }
  if (!container.header.is_object()) throw std::runtime_error(who + ": the header is not a JSON object");
  const std::size_t weights_at = 16 + header_length;
  if (bytes.size() < weights_at + 8) throw std::runtime_error(who + ": truncated (no weights length)");
  const std::uint64_t weights_length = get_u64(bytes, weights_at);
  if (weights_length != bytes.size() - weights_at - 8) {
    throw std::runtime_error(who + ": truncated or padded (weights of " + std::to_string(weights_length) +
                             " bytes announced, " + std::to_string(bytes.size() - weights_at - 8) + " present)");
  }
  const int version = container.header.value("format_version", -1);
  if (version != kModelFormatVersion) {
    throw std::runtime_error(who + ": format_version " + std::to_string(version) + ", this fusionflow reads " +
                             std::to_string(kModelFormatVersion) + " (retrain or update fusionflow)");
  }
  container.weights = bytes.substr(weights_at + 8);
  const std::string expected = container.header.value("weights_sha256", "");
  const std::string actual = sha256_hex(container.weights);
  if (expected != actual) {
    throw std::runtime_error(who + ": weights checksum mismatch (header says " + expected + ", data is " + actual +
                             "): the file is damaged");
  }
  return container;
}

void write_model_container(const std::filesystem::path& file, nlohmann::json header, const std::string& weights) {
  header["format_version"] = kModelFormatVersion;
  header["weights_sha256"] = sha256_hex(weights);
  const std::string text = header.dump(2);
  std::string bytes(kModelMagic, 8);
  put_u64(bytes, text.size());
  bytes += text;
  put_u64(bytes, weights.size());
  bytes += weights;
  write_file_atomically(file, bytes);
}

nlohmann::json to_json(const ModalityInfo& info) {
  return {{"units", info.units},
          {"normalization",
           {{"kind", info.normalisation.kind}, {"low", info.normalisation.low}, {"high", info.normalisation.high}}}};
}

ModalityInfo modality_from_json(const nlohmann::json& json, const std::string& name, const std::string& where) {
  if (!json.is_object()) throw std::invalid_argument(where + ": expected an object {\"units\", \"normalization\"}");
  ModalityInfo info;
  info.name = name;
  if (!json.contains("units") || !json["units"].is_string()) {
    throw std::invalid_argument(where + "/units: required string (the units the volumes carry, e.g. \"HU\")");
  }
  info.units = json["units"].get<std::string>();
  if (!json.contains("normalization") || !json["normalization"].is_object()) {
    throw std::invalid_argument(where + "/normalization: required object {\"kind\", \"low\", \"high\"}");
  }
  const auto& n = json["normalization"];
  const std::string nwhere = where + "/normalization";
  if (!n.contains("kind") || !n["kind"].is_string()) throw std::invalid_argument(nwhere + "/kind: required string");
  info.normalisation.kind = n["kind"].get<std::string>();
  if (info.normalisation.kind != "window" && info.normalisation.kind != "percentile" &&
      info.normalisation.kind != "scale") {
    throw std::invalid_argument(nwhere + "/kind: '" + info.normalisation.kind +
                                "' is not one of window, percentile, scale");
  }
  for (const char* key : {"low", "high"}) {
    if (!n.contains(key) || !n[key].is_number()) throw std::invalid_argument(nwhere + "/" + key + ": required number");
  }
  info.normalisation.low = n["low"].get<double>();
  info.normalisation.high = n["high"].get<double>();
  if (info.normalisation.kind != "scale" && !(info.normalisation.high > info.normalisation.low)) {
    throw std::invalid_argument(nwhere + ": high must be greater than low");
  }
  if (info.normalisation.kind == "scale" && !(info.normalisation.high > 0)) {
    throw std::invalid_argument(nwhere + "/high: must be positive for kind scale");
  }
  if (info.normalisation.kind == "percentile" &&
      !(info.normalisation.low >= 0 && info.normalisation.low < info.normalisation.high &&
        info.normalisation.high <= 100)) {
    throw std::invalid_argument(nwhere + ": percentiles must satisfy 0 <= low < high <= 100");
  }
  return info;
}

std::pair<double, double> normalisation_range(const Volume& volume, const Normalisation& n) {
  if (n.kind == "window") return {n.low, n.high};
  if (n.kind == "scale") return {0.0, n.high};
  // percentile: subsample large volumes (every 7th voxel) for speed; the same
  // input always gives the same values.
  std::vector<float> sample;
  const std::size_t stride = volume.voxels.size() > 4'000'000 ? 7 : 1;
  sample.reserve(volume.voxels.size() / stride + 1);
  for (std::size_t v = 0; v < volume.voxels.size(); v += stride) {
    if (std::isfinite(volume.voxels[v])) sample.push_back(volume.voxels[v]);
  }
  if (sample.empty()) return {0.0, 1.0};
  const double low = fusionflow::percentile(sample, n.low);
  double high = fusionflow::percentile(sample, n.high);
  if (!(high > low)) high = low + 1.0;
  return {low, high};
}

nlohmann::json to_json(const Architecture& a) {
  nlohmann::json json{{"type", "slice2d_conv_autoencoder"},   {"width", a.width},
                      {"latent_channels", a.latent_channels}, {"downsampling", a.downsampling},
                      {"context_slices", a.context_slices},   {"residual_blocks", a.residual_blocks}};
  if (a.codebook_size > 0) json["codebook_size"] = a.codebook_size;  // absent: no quantiser
  if (a.style_dim > 0) json["style_dim"] = a.style_dim;              // absent: no style
  return json;
}

Architecture architecture_from_json(const nlohmann::json& json, const std::string& where) {
  if (!json.is_object()) throw std::invalid_argument(where + ": expected an object");
  Architecture a;
  auto read = [&](const char* key, int& value, int low, int high) {
    if (!json.contains(key)) return;
    if (!json[key].is_number_integer()) throw std::invalid_argument(where + "/" + key + ": expected an integer");
    value = json[key].get<int>();
    if (value < low || value > high) {
      throw std::invalid_argument(where + "/" + key + ": " + std::to_string(value) + " is outside [" +
                                  std::to_string(low) + ", " + std::to_string(high) + "]");
    }
  };
  for (const auto& [key, value] : json.items()) {
    if (key != "type" && key != "width" && key != "latent_channels" && key != "downsampling" &&
        key != "context_slices" && key != "residual_blocks" && key != "codebook_size" && key != "style_dim") {
      throw std::invalid_argument(where + "/" + key + ": unknown key");
    }
    (void)value;
  }
  read("width", a.width, 4, 256);
  read("latent_channels", a.latent_channels, 1, 256);
  read("downsampling", a.downsampling, 0, 4);
  read("context_slices", a.context_slices, 0, 4);
  read("residual_blocks", a.residual_blocks, 0, 8);
  read("codebook_size", a.codebook_size, 0, 65536);
  read("style_dim", a.style_dim, 0, 256);
  return a;
}

Geometry latent_geometry(const Geometry& source, int factor) {
  Geometry g = source;
  for (int axis = 0; axis < 2; ++axis) {
    g.size[axis] = (source.size[axis] + std::size_t(factor) - 1) / std::size_t(factor);
    g.spacing[axis] = source.spacing[axis] * factor;
  }
  return g;
}

}  // namespace fusionflow::learned
