// Host side of the plugin ABI: finds plugin libraries, checks their
// descriptors and moves their registrations into a NodeRegistry. A broken
// plugin is reported (file and reason) and skipped; the others still load.
#pragma once

#include <filesystem>
#include <string>
#include <vector>

#include "fusionflow/registry.hpp"

namespace fusionflow {

struct PluginLoadReport {
  std::filesystem::path file;
  bool loaded = false;  // false: the whole plugin was refused
  std::string plugin_name;
  std::string plugin_version;
  std::string error;                    // why it was refused
  std::vector<std::string> node_types;  // registered from this file
  std::vector<std::string> commands;    // fusionflow subcommands registered from this file
  std::vector<std::string> warnings;    // e.g. a node type skipped as duplicate
};

// Directories to search, in order: `cli_dirs` (--plugin-dir), then the entries
// of FUSIONFLOW_PLUGIN_PATH (colon-separated), then default_plugin_dir().
std::vector<std::filesystem::path> plugin_search_path(const std::vector<std::filesystem::path>& cli_dirs);

// <directory of libfusionflow>/fusionflow/plugins: the build tree's and the
// installation's bundled plugins.
std::filesystem::path default_plugin_dir();

// Loads every "*.so" file in each directory (sorted by name within a
// directory). A plugin name already loaded from an earlier directory is
// skipped with a warning, so --plugin-dir can override a bundled plugin.
std::vector<PluginLoadReport> load_plugins(const std::vector<std::filesystem::path>& directories,
                                           NodeRegistry& registry);

PluginLoadReport load_plugin_file(const std::filesystem::path& file, NodeRegistry& registry);

// Plugins, payload types, latent decoders, commands and node types (ports,
// parameters) as the JSON document `fusionflow plugins --json` prints.
std::string registry_json(const NodeRegistry& registry, const std::vector<PluginLoadReport>& plugins);

// The versions this host was built with, checked against each plugin.
struct HostBuildInfo {
  std::uint32_t abi_version;
  std::string compiler;
  std::string itk_version;  // empty if the build has no ITK
  std::string vtk_version;
};
HostBuildInfo host_build_info();

}  // namespace fusionflow
