// The content-addressed node cache (`fusionflow run --cache DIR`, and
// `fusionflow cohort run --cache DIR`): a node whose type, version, plugin,
// parameters and input values are those of an earlier run takes that run's
// results instead of running again. docs/caching.md describes it for users.
//
// A node's key is the SHA-256 of (canonical JSON):
//   - the cache format, the byte order and the fusionflow version;
//   - the node's id, type and type version, its plugin's name and version;
//   - its parameters after variable substitution, where an input path counts
//     by the content of what it names (a file's SHA-256, or a directory's
//     files and their SHA-256s), not by its name, and an output path by its
//     file name only (its folder can change);
//   - the content hash of every input value (the SHA-256 of its encoding,
//     fusionflow/payload_codec.hpp), port by port, in pipeline order;
//   - for a node that takes latents: every registered latent decoder and its
//     plugin version (decode.latent dispatches on the latent's kind).
// An entry holds the node's output values (encoded), the files it committed
// (restored where the node's output paths put them now), and the further
// files it read (checked again before the entry is used).
//
// Layout of DIR: entries/<first two hex digits>/<key>/{manifest.json,
// out-N.bin, file-N.bin}; tmp/ for entries being written (each is built
// there and renamed into place, so an entry appears whole or not at all);
// CACHEDIR.TAG, so backup tools skip the folder.
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "fusionflow/file_activity.hpp"
#include "fusionflow/payload.hpp"
#include "fusionflow/payload_codec.hpp"
#include "fusionflow/pipeline.hpp"
#include "fusionflow/registry.hpp"

namespace fusionflow {

constexpr int kNodeCacheFormatVersion = 1;

struct CacheKey {
  std::string hex;       // SHA-256 of `material`
  std::string material;  // the canonical JSON the key is the hash of
};

// Why the node can never be cached (declared by its type, or an output type
// without a codec); empty if it can.
std::string node_uncacheable_reason(const PipelineNode& node, const NodeRegistry& registry);

// `input_hashes`: per input port, the content hash of each producer's value.
// Throws std::runtime_error if an input path cannot be read to hash it.
CacheKey node_cache_key(const PipelineNode& node, const std::map<std::string, std::vector<std::string>>& input_hashes,
                        const NodeRegistry& registry);

// Where a file an entry records lies, relative to one of the node's path
// parameters, so that it follows the parameter when its folder changes.
struct CachedLocation {
  std::string param;     // empty for an absolute path
  std::string relation;  // "self" (the parameter's path), "inside" (a directory's), "beside" (same folder), "absolute"
  std::string path;      // relative to the directory the relation names; absolute for "absolute"
};

struct CachedOutput {
  std::string port;
  std::string type;
  std::string file;  // out-N.bin
  std::string sha256;
  std::uint64_t bytes = 0;
};

struct CachedFile {  // a file the node committed
  CachedLocation location;
  std::string file;  // file-N.bin
  std::string sha256;
  std::uint64_t bytes = 0;
};

struct CachedRead {  // a file the node read beyond its input paths
  CachedLocation location;
  std::string sha256;
};

struct CacheEntry {
  std::string key;
  std::filesystem::path directory;
  std::vector<CachedOutput> outputs;
  std::vector<CachedFile> files;
  std::vector<CachedRead> reads;
  std::map<std::string, std::string> input_paths;  // input path parameter -> its value when stored
};

struct CacheLookup {
  std::optional<CacheEntry> entry;  // set on a hit
  // On a miss: empty if there was no entry, else why it was not used.
  std::string reason;
  bool corrupt = false;  // the entry was damaged (removed; warn)
};

struct CacheUsage {
  std::size_t entries = 0;
  std::uint64_t bytes = 0;
};

struct CachePruneResult {
  std::size_t removed_entries = 0;
  std::uint64_t removed_bytes = 0;
  CacheUsage left;
};

class NodeCache {
 public:
  // Creates the folder if needed. Throws std::runtime_error naming it if it
  // cannot be created or written.
  explicit NodeCache(std::filesystem::path directory);
  const std::filesystem::path& directory() const { return directory_; }

  // The entry of `key`, with every stored file's size and SHA-256 verified
  // and every recorded read file unchanged (found from the node's current
  // parameters). A damaged entry is removed and reported as corrupt. A hit
  // marks the entry as used now (for prune).
  CacheLookup lookup(const std::string& key, const PipelineNode& node) const;

  struct Value {
    std::string port;
    std::string type;
    const Payload* payload;
    const PayloadCodec* codec;
  };
  // Stores a node's results. Returns the content hash of each value (by
  // port), computed while it is written. Throws std::runtime_error if the
  // entry cannot be written (nothing is left behind).
  std::map<std::string, std::string> store(const CacheKey& key, const PipelineNode& node,
                                           const std::vector<Value>& values, const FileActivity& activity) const;

  // Decodes one stored value, checking its SHA-256 again as it is read.
  Payload load(const CacheEntry& entry, const CachedOutput& output, const PayloadCodec& codec) const;
  // Writes the entry's files (atomically) where the node's output paths put them now.
  void restore_files(const CacheEntry& entry, const PipelineNode& node) const;

  CacheUsage usage() const;
  // Removes the least recently used entries until the cache holds at most
  // `max_bytes`, and leftovers of interrupted writes.
  CachePruneResult prune(std::uint64_t max_bytes) const;

 private:
  std::filesystem::path entry_directory(const std::string& key) const;
  void remove_entry(const std::filesystem::path& directory) const;

  std::filesystem::path directory_;
};

// "10G", "512M", "1.5T", "4096" (bytes; K/M/G/T are powers of 1024).
// Throws std::invalid_argument for anything else.
std::uint64_t parse_byte_size(const std::string& text);
std::string format_byte_size(std::uint64_t bytes);

}  // namespace fusionflow
