#include "fusionflow/node_cache.hpp"

#include <unistd.h>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <fstream>
#include <regex>
#include <stdexcept>
#include <system_error>

#include "fusionflow/atomic_file.hpp"
#include "fusionflow/executor.hpp"
#include "fusionflow/sha256.hpp"
#include "fusionflow/version.hpp"

namespace fusionflow {
namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {

std::atomic<unsigned long> temp_counter{0};

fs::path normal_absolute(const fs::path& path) {
  std::error_code ec;
  fs::path absolute = fs::absolute(path, ec);
  return (ec ? path : absolute).lexically_normal();
}

bool is_inside(const fs::path& file, const fs::path& directory) {
  const fs::path relative = file.lexically_relative(directory);
  return !relative.empty() && *relative.begin() != ".." && relative != ".";
}

// An input path by its content: a file's SHA-256, or for a directory (a DICOM
// series) the SHA-256 of its files' relative names and SHA-256s.
json content_of_input_path(const fs::path& path) {
  std::error_code ec;
  if (fs::is_regular_file(path, ec)) return {{"sha256", sha256_file_hex(path)}};
  if (!fs::is_directory(path, ec)) {
    throw std::runtime_error("input path '" + path.string() + "' is neither a file nor a directory");
  }
  std::vector<std::pair<std::string, std::string>> files;
  for (auto it = fs::recursive_directory_iterator(path, fs::directory_options::skip_permission_denied, ec);
       !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
    std::error_code type_error;
    if (!it->is_regular_file(type_error)) continue;
    files.emplace_back(it->path().lexically_relative(path).generic_string(), sha256_file_hex(it->path()));
  }
  if (ec) throw std::runtime_error("cannot list input directory '" + path.string() + "': " + ec.message());
  std::sort(files.begin(), files.end());
  std::string listing;
  for (const auto& [name, hash] : files) listing += name + '\t' + hash + '\n';
  return {{"directory_sha256", sha256_hex(listing)}, {"files", files.size()}};
}

const ParamSpec* param_spec(const PipelineNode& node, const std::string& name) {
  return node.definition->spec().find_param(name);
}

std::string path_param_value(const PipelineNode& node, const std::string& name) {
  auto it = node.params.find(name);
  if (it == node.params.end()) return {};
  const auto* text = std::get_if<std::string>(&it->second);
  return text != nullptr ? *text : std::string();
}

// Where `file` lies relative to the node's parameters of `kind`.
CachedLocation locate(const fs::path& file, const PipelineNode& node, ParamKind kind) {
  for (const ParamSpec& spec : node.definition->spec().params()) {
    if (spec.kind != kind) continue;
    const std::string value = path_param_value(node, spec.name);
    if (value.empty()) continue;
    const fs::path base = normal_absolute(value);
    if (file == base) return {spec.name, "self", ""};
    if (is_inside(file, base)) return {spec.name, "inside", file.lexically_relative(base).generic_string()};
    if (file.parent_path() == base.parent_path()) return {spec.name, "beside", file.filename().string()};
  }
  return {"", "absolute", file.string()};
}

fs::path resolve(const CachedLocation& location, const PipelineNode& node) {
  if (location.relation == "absolute") return location.path;
  const std::string value = path_param_value(node, location.param);
  if (value.empty()) throw std::runtime_error("the entry names parameter '" + location.param + "', which is empty");
  const fs::path base = normal_absolute(value);
  if (location.relation == "self") return base;
  if (location.relation == "inside") return base / location.path;
  if (location.relation == "beside") return base.parent_path() / location.path;
  throw std::runtime_error("the entry has an unknown location relation '" + location.relation + "'");
}

json location_json(const CachedLocation& location) {
  return {{"param", location.param}, {"relation", location.relation}, {"path", location.path}};
}

CachedLocation location_from(const json& value) {
  CachedLocation location{value.at("param").get<std::string>(), value.at("relation").get<std::string>(),
                          value.at("path").get<std::string>()};
  // A relative location never leaves the folder it is relative to, whatever
  // the manifest says.
  if (location.relation != "absolute") {
    const fs::path relative(location.path);
    if (relative.is_absolute() ||
        std::any_of(relative.begin(), relative.end(), [](const fs::path& part) { return part == ".."; })) {
      throw std::runtime_error("the entry's location '" + location.path + "' leaves its folder");
    }
  }
  return location;
}

// Names the manifest gives to stored files must be our own.
std::string blob_name(const json& value) {
  static const std::regex pattern("(out|file)-[0-9]{1,6}\\.bin");
  const auto name = value.get<std::string>();
  if (!std::regex_match(name, pattern)) throw std::runtime_error("the entry names a file '" + name + "'");
  return name;
}

// Streams a stored file through SHA-256, comparing size and digest.
std::string verify_blob(const fs::path& file, std::uint64_t bytes, const std::string& sha256) {
  std::error_code ec;
  const auto size = fs::file_size(file, ec);
  if (ec) return file.filename().string() + " is missing";
  if (size != bytes) {
    return file.filename().string() + " holds " + std::to_string(size) + " bytes, not " + std::to_string(bytes);
  }
  if (sha256_file_hex(file) != sha256) return file.filename().string() + " does not match its SHA-256";
  return {};
}

// Writes bytes to a file and to a hash at once.
class HashingFile {
 public:
  explicit HashingFile(const fs::path& path) : path_(path), out_(path, std::ios::binary | std::ios::trunc) {
    if (!out_) throw std::runtime_error("cannot create cache file '" + path.string() + "'");
  }
  void write(const void* data, std::size_t size) {
    out_.write(static_cast<const char*>(data), static_cast<std::streamsize>(size));
    hash_.update(data, size);
    bytes_ += size;
  }
  // Returns the SHA-256; throws if anything failed to be written.
  std::string finish() {
    out_.close();
    if (!out_) throw std::runtime_error("cannot write cache file '" + path_.string() + "' (disk full?)");
    return hash_.hex_digest();
  }
  std::uint64_t bytes() const { return bytes_; }

 private:
  fs::path path_;
  std::ofstream out_;
  Sha256 hash_;
  std::uint64_t bytes_ = 0;
};

// Copies a file into a cache file or back out of one (restore_files).
void copy_file_hashing(const fs::path& from, HashingFile& to) {
  std::ifstream in(from, std::ios::binary);
  if (!in) throw std::runtime_error("cannot read '" + from.string() + "'");
  std::vector<char> block(1 << 20);
  while (in) {
    in.read(block.data(), static_cast<std::streamsize>(block.size()));
    if (in.gcount() > 0) to.write(block.data(), static_cast<std::size_t>(in.gcount()));
  }
  if (in.bad()) throw std::runtime_error("cannot read '" + from.string() + "'");
}

}  // namespace

// --- keys ----------------------------------------------------------------------

std::string node_uncacheable_reason(const PipelineNode& node, const NodeRegistry& registry) {
  const NodeSpec& spec = node.definition->spec();
  if (!spec.uncacheable_reason().empty()) return spec.uncacheable_reason();
  for (const PortSpec& port : spec.outputs()) {
    const RegisteredPayloadType* type = registry.find_payload_type(port.type);
    if (type == nullptr || !type->codec.usable()) return "output '" + port.name + "' (" + port.type + ") has no codec";
  }
  return {};
}

CacheKey node_cache_key(const PipelineNode& node, const std::map<std::string, std::vector<std::string>>& input_hashes,
                        const NodeRegistry& registry) {
  const NodeSpec& spec = node.definition->spec();
  json params = json::object();
  for (const auto& [name, value] : node.params) {
    const ParamSpec* declared = param_spec(node, name);
    const std::string text = path_param_value(node, name);
    if (declared != nullptr && declared->kind == ParamKind::InputPath && !text.empty()) {
      params[name] = content_of_input_path(text);
    } else if (declared != nullptr && declared->kind == ParamKind::OutputPath) {
      params[name] = {{"file_name", fs::path(text).filename().string()}};
    } else if (declared != nullptr && declared->confidential) {
      // The entry keeps its key material in the clear: not a patient identifier.
      params[name] = {{"sha256", sha256_hex(param_value_to_json(value))}};
    } else {
      params[name] = json::parse(param_value_to_json(value));
    }
  }
  json inputs = json::object();
  bool takes_latents = false;
  for (const PortSpec& port : spec.inputs()) {
    takes_latents = takes_latents || port.type == "Latent";
    auto it = input_hashes.find(port.name);
    inputs[port.name] = it == input_hashes.end() ? json::array() : json(it->second);
  }
  json material{
      {"cache_format", kNodeCacheFormatVersion},
      {"byte_order", __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__ ? "little" : "big"},
      {"fusionflow", version_string()},
      {"node", {{"id", node.id}, {"type", node.type}, {"version", spec.version()}}},
      {"plugin", {{"name", node.definition->origin.plugin_name}, {"version", node.definition->origin.plugin_version}}},
      {"params", std::move(params)},
      {"inputs", std::move(inputs)}};
  if (takes_latents) {
    json decoders = json::array();
    for (const RegisteredLatentDecoder* decoder : registry.latent_decoders()) {
      decoders.push_back({{"kind", decoder->decoder.kind},
                          {"plugin", decoder->origin.plugin_name},
                          {"version", decoder->origin.plugin_version}});
    }
    material["latent_decoders"] = std::move(decoders);
  }
  CacheKey key;
  key.material = material.dump();
  key.hex = sha256_hex(key.material);
  return key;
}

// --- the cache folder ------------------------------------------------------------

NodeCache::NodeCache(fs::path directory) : directory_(normal_absolute(directory)) {
  std::error_code ec;
  fs::create_directories(directory_ / "entries", ec);
  if (!ec) fs::create_directories(directory_ / "tmp", ec);
  if (ec) throw std::runtime_error("cannot create the cache folder '" + directory_.string() + "': " + ec.message());
  if (::access(directory_.c_str(), W_OK) != 0) {
    throw std::runtime_error("the cache folder '" + directory_.string() + "' is not writable");
  }
  const fs::path tag = directory_ / "CACHEDIR.TAG";
  if (!fs::exists(tag, ec)) {
    write_file_atomically(tag,
                          "Signature: 8a477f597d28d172789f06886806bc55\n"
                          "# This folder is a fusionflow node cache (docs/caching.md); it can be deleted.\n");
  }
}

fs::path NodeCache::entry_directory(const std::string& key) const {
  return directory_ / "entries" / key.substr(0, 2) / key;
}

void NodeCache::remove_entry(const fs::path& directory) const {
  // Out of the way first, so no reader finds half of it.
  const fs::path trash =
      directory_ / "tmp" / ("removed-" + std::to_string(::getpid()) + "-" + std::to_string(temp_counter++));
  std::error_code ec;
  fs::rename(directory, trash, ec);
  fs::remove_all(ec ? directory : trash, ec);
}

CacheLookup NodeCache::lookup(const std::string& key, const PipelineNode& node) const {
  CacheLookup result;
  const fs::path directory = entry_directory(key);
  const fs::path manifest_path = directory / "manifest.json";
  std::error_code ec;
  if (!fs::exists(manifest_path, ec)) {
    if (fs::exists(directory, ec)) {
      remove_entry(directory);
      result.corrupt = true;
      result.reason = "the entry has no manifest";
    }
    return result;
  }
  CacheEntry entry;
  entry.key = key;
  entry.directory = directory;
  try {
    std::ifstream in(manifest_path, std::ios::binary);
    const json manifest = json::parse(in);
    if (manifest.at("cache_format").get<int>() != kNodeCacheFormatVersion || manifest.at("key") != key) {
      throw std::runtime_error("its manifest is of another format or key");
    }
    for (const json& value : manifest.at("outputs")) {
      entry.outputs.push_back({value.at("port").get<std::string>(), value.at("type").get<std::string>(),
                               blob_name(value.at("file")), value.at("sha256").get<std::string>(),
                               value.at("bytes").get<std::uint64_t>()});
    }
    for (const json& value : manifest.at("files")) {
      entry.files.push_back({location_from(value.at("location")), blob_name(value.at("file")),
                             value.at("sha256").get<std::string>(), value.at("bytes").get<std::uint64_t>()});
    }
    for (const json& value : manifest.at("reads")) {
      entry.reads.push_back({location_from(value.at("location")), value.at("sha256").get<std::string>()});
    }
    entry.input_paths = manifest.at("input_paths").get<std::map<std::string, std::string>>();
    for (const CachedOutput& output : entry.outputs) {
      std::string problem = verify_blob(directory / output.file, output.bytes, output.sha256);
      if (!problem.empty()) throw std::runtime_error(problem);
    }
    for (const CachedFile& file : entry.files) {
      std::string problem = verify_blob(directory / file.file, file.bytes, file.sha256);
      if (!problem.empty()) throw std::runtime_error(problem);
    }
  } catch (const std::exception& error) {
    remove_entry(directory);
    result.corrupt = true;
    result.reason = std::string("entry ") + key.substr(0, 12) + " is damaged (" + error.what() + ")";
    return result;
  }
  for (const CachedRead& read : entry.reads) {
    fs::path file;
    try {
      file = resolve(read.location, node);
    } catch (const std::exception& error) {
      result.reason = error.what();
      return result;
    }
    std::error_code exists_error;
    if (!fs::is_regular_file(file, exists_error) || sha256_file_hex(file) != read.sha256) {
      result.reason = "'" + file.string() + "', which it read, has changed";
      return result;
    }
  }
  fs::last_write_time(manifest_path, fs::file_time_type::clock::now(), ec);  // used now (prune keeps it longer)
  result.entry = std::move(entry);
  return result;
}

std::map<std::string, std::string> NodeCache::store(const CacheKey& key, const PipelineNode& node,
                                                    const std::vector<Value>& values,
                                                    const FileActivity& activity) const {
  const fs::path temp =
      directory_ / "tmp" /
      (std::to_string(::getpid()) + "-" + std::to_string(temp_counter++) + "-" + key.hex.substr(0, 16));
  std::error_code ec;
  fs::create_directories(temp, ec);
  if (ec) throw std::runtime_error("cannot create '" + temp.string() + "': " + ec.message());
  struct RemoveUnlessMoved {
    fs::path path;
    ~RemoveUnlessMoved() {
      std::error_code ignored;
      if (!path.empty()) fs::remove_all(path, ignored);
    }
  } cleanup{temp};

  std::map<std::string, std::string> hashes;
  json outputs = json::array();
  for (std::size_t n = 0; n < values.size(); ++n) {
    const Value& value = values[n];
    const std::string name = "out-" + std::to_string(n) + ".bin";
    HashingFile file(temp / name);
    value.codec->encode(*value.payload, [&file](const void* data, std::size_t size) { file.write(data, size); });
    const std::string sha256 = file.finish();
    hashes[value.port] = sha256;
    outputs.push_back(
        {{"port", value.port}, {"type", value.type}, {"file", name}, {"sha256", sha256}, {"bytes", file.bytes()}});
  }
  json files = json::array();
  std::vector<fs::path> written = activity.written;
  std::sort(written.begin(), written.end());
  written.erase(std::unique(written.begin(), written.end()), written.end());
  for (std::size_t n = 0; n < written.size(); ++n) {
    const std::string name = "file-" + std::to_string(n) + ".bin";
    HashingFile file(temp / name);
    copy_file_hashing(written[n], file);
    const std::string sha256 = file.finish();
    files.push_back({{"location", location_json(locate(written[n], node, ParamKind::OutputPath))},
                     {"file", name},
                     {"sha256", sha256},
                     {"bytes", file.bytes()}});
  }
  json reads = json::array();
  std::vector<fs::path> read = activity.read;
  std::sort(read.begin(), read.end());
  read.erase(std::unique(read.begin(), read.end()), read.end());
  for (const fs::path& file : read) {
    const CachedLocation location = locate(file, node, ParamKind::InputPath);
    if (location.relation == "self") continue;  // in the key already
    reads.push_back({{"location", location_json(location)}, {"sha256", sha256_file_hex(file)}});
  }
  json input_paths = json::object();
  for (const ParamSpec& spec : node.definition->spec().params()) {
    if (spec.kind == ParamKind::InputPath) input_paths[spec.name] = path_param_value(node, spec.name);
  }
  const json manifest{{"cache_format", kNodeCacheFormatVersion},
                      {"key", key.hex},
                      {"created_utc", utc_now_iso8601()},
                      {"node", {{"id", node.id}, {"type", node.type}}},
                      {"key_material", json::parse(key.material)},
                      {"outputs", std::move(outputs)},
                      {"files", std::move(files)},
                      {"reads", std::move(reads)},
                      {"input_paths", std::move(input_paths)}};
  {
    std::ofstream out(temp / "manifest.json", std::ios::binary);
    out << manifest.dump(2) << '\n';
    out.close();
    if (!out) throw std::runtime_error("cannot write the cache manifest in '" + temp.string() + "' (disk full?)");
  }
  const fs::path final_directory = entry_directory(key.hex);
  fs::create_directories(final_directory.parent_path(), ec);
  fs::rename(temp, final_directory, ec);
  // Another run stored the same key first: its entry has the same content.
  if (!ec || fs::exists(final_directory / "manifest.json")) {
    if (!ec) cleanup.path.clear();
    return hashes;
  }
  throw std::runtime_error("cannot move the cache entry into '" + final_directory.string() + "': " + ec.message());
}

Payload NodeCache::load(const CacheEntry& entry, const CachedOutput& output, const PayloadCodec& codec) const {
  const fs::path file = entry.directory / output.file;
  std::ifstream in(file, std::ios::binary);
  if (!in)
    throw std::runtime_error("cache file '" + file.string() + "' has gone (was the cache pruned during the run?)");
  // Hash while decoding: the bytes read are the bytes verified.
  struct HashingBuffer : std::streambuf {
    std::istream& source;
    Sha256& hash;
    std::vector<char> block = std::vector<char>(1 << 20);
    HashingBuffer(std::istream& in, Sha256& h) : source(in), hash(h) {}
    int_type underflow() override {
      source.read(block.data(), static_cast<std::streamsize>(block.size()));
      const auto got = source.gcount();
      if (got <= 0) return traits_type::eof();
      hash.update(block.data(), static_cast<std::size_t>(got));
      setg(block.data(), block.data(), block.data() + got);
      return traits_type::to_int_type(block[0]);
    }
  };
  Sha256 hash;
  HashingBuffer buffer(in, hash);
  std::istream hashed(&buffer);
  ByteSource source(hashed, output.bytes);
  Payload value;
  try {
    value = codec.decode(source);
  } catch (const std::exception& error) {
    remove_entry(entry.directory);
    throw std::runtime_error("cache entry " + entry.key.substr(0, 12) + " cannot be decoded (" + error.what() +
                             "); it was removed, run again to recompute it");
  }
  if (hash.hex_digest() != output.sha256) {
    remove_entry(entry.directory);
    throw std::runtime_error("cache entry " + entry.key.substr(0, 12) +
                             " changed while it was used; it was removed, run again to recompute it");
  }
  return value;
}

void NodeCache::restore_files(const CacheEntry& entry, const PipelineNode& node) const {
  for (const CachedFile& file : entry.files) {
    const fs::path target = resolve(file.location, node);
    AtomicFileWriter writer(target);
    {
      HashingFile out(writer.temp_path());
      copy_file_hashing(entry.directory / file.file, out);
      if (out.finish() != file.sha256) {
        throw std::runtime_error("cache entry " + entry.key.substr(0, 12) + " changed while '" + target.string() +
                                 "' was restored from it");
      }
    }
    writer.commit();
  }
}

CacheUsage NodeCache::usage() const {
  CacheUsage usage;
  std::error_code ec;
  for (auto it = fs::recursive_directory_iterator(directory_ / "entries", ec);
       !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
    std::error_code type_error;
    if (it->is_regular_file(type_error)) {
      usage.bytes += it->file_size(type_error);
      if (it->path().filename() == "manifest.json") ++usage.entries;
    }
  }
  return usage;
}

CachePruneResult NodeCache::prune(std::uint64_t max_bytes) const {
  struct Found {
    fs::file_time_type used;
    std::uint64_t bytes;
    fs::path directory;
  };
  std::vector<Found> entries;
  std::error_code ec;
  for (auto shard = fs::directory_iterator(directory_ / "entries", ec); !ec && shard != fs::directory_iterator();
       shard.increment(ec)) {
    std::error_code inner;
    for (auto entry = fs::directory_iterator(shard->path(), inner); !inner && entry != fs::directory_iterator();
         entry.increment(inner)) {
      Found found{fs::file_time_type::min(), 0, entry->path()};
      std::error_code file_error;
      for (auto file = fs::directory_iterator(entry->path(), file_error);
           !file_error && file != fs::directory_iterator(); file.increment(file_error)) {
        std::error_code size_error;
        found.bytes += file->file_size(size_error);
      }
      std::error_code time_error;
      const auto used = fs::last_write_time(entry->path() / "manifest.json", time_error);
      if (!time_error) found.used = used;  // no manifest: first to go
      entries.push_back(std::move(found));
    }
  }
  std::sort(entries.begin(), entries.end(), [](const Found& a, const Found& b) {
    return a.used != b.used ? a.used < b.used : a.directory < b.directory;
  });
  CachePruneResult result;
  std::uint64_t total = 0;
  for (const Found& found : entries) total += found.bytes;
  for (const Found& found : entries) {
    if (total <= max_bytes && found.used != fs::file_time_type::min()) break;
    remove_entry(found.directory);
    total -= found.bytes;
    ++result.removed_entries;
    result.removed_bytes += found.bytes;
  }
  // Leftovers of writes a killed run did not finish (an hour is far longer
  // than writing any entry takes).
  const auto stale = fs::file_time_type::clock::now() - std::chrono::hours(1);
  for (auto it = fs::directory_iterator(directory_ / "tmp", ec); !ec && it != fs::directory_iterator();
       it.increment(ec)) {
    std::error_code time_error;
    if (fs::last_write_time(it->path(), time_error) < stale && !time_error) {
      std::error_code ignored;
      fs::remove_all(it->path(), ignored);
    }
  }
  result.left = usage();
  return result;
}

std::uint64_t parse_byte_size(const std::string& text) {
  static const std::regex pattern(R"(\s*([0-9]+(\.[0-9]+)?)\s*([KMGT]i?B?|B)?\s*)", std::regex::icase);
  std::smatch match;
  if (!std::regex_match(text, match, pattern)) {
    throw std::invalid_argument("'" + text + "' is not a size (e.g. 4096, 512M, 10G, 1.5T)");
  }
  const double number = std::stod(match[1].str());
  double scale = 1;
  const std::string unit = match[3].str();
  if (!unit.empty()) {
    switch (std::toupper(static_cast<unsigned char>(unit[0]))) {
      case 'K': scale = 1024.0; break;
      case 'M': scale = 1024.0 * 1024; break;
      case 'G': scale = 1024.0 * 1024 * 1024; break;
      case 'T': scale = 1024.0 * 1024 * 1024 * 1024; break;
      default: break;
    }
  }
  const double bytes = number * scale;
  if (!(bytes < 1.8e19)) throw std::invalid_argument("'" + text + "' is too large");
  return static_cast<std::uint64_t>(std::floor(bytes + 0.5));
}

std::string format_byte_size(std::uint64_t bytes) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  double value = static_cast<double>(bytes);
  int unit = 0;
  while (value >= 1024 && unit < 4) {
    value /= 1024;
    ++unit;
  }
  char text[32];
  std::snprintf(text, sizeof text, unit == 0 ? "%.0f %s" : "%.1f %s", value, units[unit]);
  return text;
}

}  // namespace fusionflow
