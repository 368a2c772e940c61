// `fusionflow cache prune|info FOLDER`: looking after a node cache folder
// (fusionflow/node_cache.hpp, docs/caching.md).
#include <filesystem>
#include <iostream>

#include <fusionflow/node_cache.hpp>
#include <spdlog/spdlog.h>

#include "commands.hpp"

namespace fusionflow::cli {

namespace {

// A cache command never creates the folder it is given: a typo must not
// make an empty cache and report it pruned.
bool is_cache_folder(const std::string& folder) {
  std::error_code ec;
  if (std::filesystem::is_directory(std::filesystem::path(folder) / "entries", ec)) return true;
  spdlog::error("'{}' is not a node cache folder (it has no entries/ folder; see `fusionflow run --cache`)", folder);
  return false;
}

}  // namespace

int cache_prune_command(const CacheArguments& arguments) {
  std::uint64_t limit = 0;
  try {
    limit = parse_byte_size(arguments.max_size);
  } catch (const std::invalid_argument& error) {
    spdlog::error("--max-size: {}", error.what());
    return kInvalid;
  }
  if (!is_cache_folder(arguments.folder)) return kInvalid;
  const NodeCache cache(arguments.folder);
  const CachePruneResult result = cache.prune(limit);
  std::cout << "removed " << result.removed_entries << " entries (" << format_byte_size(result.removed_bytes)
            << "); left " << result.left.entries << " entries (" << format_byte_size(result.left.bytes) << ")\n";
  return kSuccess;
}

int cache_info_command(const CacheArguments& arguments) {
  if (!is_cache_folder(arguments.folder)) return kInvalid;
  const NodeCache cache(arguments.folder);
  const CacheUsage usage = cache.usage();
  std::cout << cache.directory().string() << ": " << usage.entries << " entries, " << format_byte_size(usage.bytes)
            << "\n";
  return kSuccess;
}

}  // namespace fusionflow::cli
