// What every fusionflow fuzzer shares: the bundled plugins of this build,
// loaded once per process.
#pragma once
#include <cstdio>
#include <cstdlib>
#include "fusionflow/plugin_loader.hpp"
#include "fusionflow/registry.hpp"

namespace fusionflow::fuzz {

inline const NodeRegistry& bundled_registry() {
  static const NodeRegistry* registry = [] {
    auto* loaded = new NodeRegistry();  // lives for the process, as plugins do
    for (const PluginLoadReport& report : load_plugins({FUSIONFLOW_FUZZ_PLUGIN_DIR}, *loaded)) {
      if (!report.loaded) {
        std::fprintf(stderr, "fuzzer: plugin %s refused: %s\n", report.file.c_str(), report.error.c_str());
        std::abort();  // a broken build, not a finding
      }
    }
    return loaded;
  }();
  return *registry;
}

}  // namespace fusionflow::fuzz
