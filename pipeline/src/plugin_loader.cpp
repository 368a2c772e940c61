#include "fusionflow/plugin_loader.hpp"

#include <dlfcn.h>

#include <algorithm>
#include <cstdlib>
#include <exception>
#include <set>
#include <sstream>

#include "fusionflow/plugin.hpp"

#ifndef FUSIONFLOW_HOST_ITK_VERSION
#define FUSIONFLOW_HOST_ITK_VERSION ""
#endif
#ifndef FUSIONFLOW_HOST_VTK_VERSION
#define FUSIONFLOW_HOST_VTK_VERSION ""
#endif

namespace fusionflow {
namespace fs = std::filesystem;

HostBuildInfo host_build_info() {
  return {FUSIONFLOW_PLUGIN_ABI_VERSION, FUSIONFLOW_COMPILER_ID, FUSIONFLOW_HOST_ITK_VERSION,
          FUSIONFLOW_HOST_VTK_VERSION};
}

fs::path default_plugin_dir() {
  Dl_info info{};
  // Any symbol of this library locates libfusionflow.so itself.
  if (dladdr(reinterpret_cast<void*>(&default_plugin_dir), &info) == 0 || info.dli_fname == nullptr) return {};
  std::error_code ec;
  fs::path library = fs::canonical(info.dli_fname, ec);
  if (ec) return {};
  return library.parent_path() / "fusionflow" / "plugins";
}

std::vector<fs::path> plugin_search_path(const std::vector<fs::path>& cli_dirs) {
  std::vector<fs::path> dirs = cli_dirs;
  if (const char* env = std::getenv("FUSIONFLOW_PLUGIN_PATH")) {
    std::stringstream entries(env);
    std::string entry;
    while (std::getline(entries, entry, ':')) {
      if (!entry.empty()) dirs.emplace_back(entry);
    }
  }
  fs::path bundled = default_plugin_dir();
  if (!bundled.empty()) dirs.push_back(bundled);
  return dirs;
}

namespace {

// "gcc 12.2.0" -> "gcc 12": the parts whose change breaks the C++ ABI.
std::string compiler_major(const std::string& compiler) {
  const auto space = compiler.find(' ');
  if (space == std::string::npos) return compiler;
  const auto dot = compiler.find('.', space);
  return compiler.substr(0, dot);
}

// "5.2.1" -> "5.2"
std::string major_minor(const std::string& version) {
  const auto first = version.find('.');
  if (first == std::string::npos) return version;
  return version.substr(0, version.find('.', first + 1));
}

std::string check_descriptor(const PluginDescriptor& descriptor) {
  const HostBuildInfo host = host_build_info();
  auto text = [](const char* value) { return std::string(value == nullptr ? "" : value); };
  if (descriptor.name == nullptr || descriptor.version == nullptr || descriptor.register_plugin == nullptr) {
    return "its descriptor is incomplete (name, version or registration function missing)";
  }
  if (compiler_major(text(descriptor.compiler)) != compiler_major(host.compiler)) {
    return "it was built with " + text(descriptor.compiler) + " but fusionflow with " + host.compiler +
           "; rebuild the plugin with the same compiler";
  }
  for (const auto& [library, plugin_version, host_version] :
       {std::tuple<const char*, std::string, std::string>{"ITK", text(descriptor.itk_version), host.itk_version},
        std::tuple<const char*, std::string, std::string>{"VTK", text(descriptor.vtk_version), host.vtk_version}}) {
    if (plugin_version.empty()) continue;
    if (host_version.empty()) {
      return std::string("it needs ") + library + " " + plugin_version + " but this fusionflow was built without " +
             library;
    }
    if (major_minor(plugin_version) != major_minor(host_version)) {
      return std::string("it was built against ") + library + " " + plugin_version + " but fusionflow uses " + library +
             " " + host_version + "; rebuild the plugin against the installed SDK";
    }
  }
  return {};
}

}  // namespace

namespace {

// Opens a library and checks its descriptor; fills report.error on refusal.
const PluginDescriptor* open_plugin(const fs::path& file, PluginLoadReport& report) {
  report.file = file;
  // RTLD_NODELETE: a plugin is never unmapped, so thread-local destructors
  // and std::function targets it registered stay valid until exit.
  void* handle = dlopen(file.c_str(), RTLD_NOW | RTLD_LOCAL | RTLD_NODELETE);
  if (handle == nullptr) {
    const char* reason = dlerror();
    report.error = std::string("not a loadable shared library: ") + (reason ? reason : "unknown reason");
    return nullptr;
  }
  dlerror();
  void* symbol = dlsym(handle, FUSIONFLOW_PLUGIN_ENTRY_SYMBOL);
  if (symbol == nullptr) {
    report.error = std::string("no '") + FUSIONFLOW_PLUGIN_ENTRY_SYMBOL +
                   "' entry point; is it a fusionflow plugin built with FUSIONFLOW_PLUGIN(...)?";
    dlclose(handle);
    return nullptr;
  }
  using EntryPoint = const PluginDescriptor* (*)();
  const PluginDescriptor* descriptor = reinterpret_cast<EntryPoint>(symbol)();
  if (descriptor == nullptr) {
    report.error = "its entry point returned no descriptor";
    return nullptr;
  }
  // Only abi_version is read before it has been checked.
  if (descriptor->abi_version != FUSIONFLOW_PLUGIN_ABI_VERSION) {
    report.error = "built for plugin ABI version " + std::to_string(descriptor->abi_version) +
                   " but this fusionflow expects ABI version " + std::to_string(FUSIONFLOW_PLUGIN_ABI_VERSION) +
                   "; rebuild the plugin against the installed fusionflow SDK";
    return nullptr;
  }
  if (std::string problem = check_descriptor(*descriptor); !problem.empty()) {
    report.error = "refused: " + problem;
    return nullptr;
  }
  report.plugin_name = descriptor->name;
  report.plugin_version = descriptor->version;
  return descriptor;
}

// Runs the plugin's registration; its types enter the registry only if it
// returns normally.
void register_plugin(const PluginDescriptor& descriptor, NodeRegistry& registry, PluginLoadReport& report) {
  PluginRegistrar registrar;
  try {
    descriptor.register_plugin(registrar);
  } catch (const std::exception& error) {
    report.error = std::string("its registration function threw: ") + error.what();
    return;
  } catch (...) {
    report.error = "its registration function threw a non-standard exception";
    return;
  }

  const Origin origin{report.plugin_name, report.plugin_version, report.file.string()};
  for (auto& type : registrar.payload_types()) {
    try {
      registry.add_payload_type(type.name, type.description, origin, type.codec);
    } catch (const std::exception& error) {
      report.warnings.push_back(std::string("payload type skipped: ") + error.what());
    }
  }
  for (NodeDefinition& definition : registrar.nodes()) {
    const std::string type = definition.spec.type();
    try {
      registry.add_node(std::move(definition), origin);
      report.node_types.push_back(type);
    } catch (const std::exception& error) {
      report.warnings.push_back(std::string("node type skipped: ") + error.what());
    }
  }
  for (LatentDecoder& decoder : registrar.latent_decoders()) {
    try {
      registry.add_latent_decoder(std::move(decoder), origin);
    } catch (const std::exception& error) {
      report.warnings.push_back(std::string("latent decoder skipped: ") + error.what());
    }
  }
  for (PluginCommand& command : registrar.commands()) {
    const std::string name = command.name;
    try {
      registry.add_command(std::move(command), origin);
      report.commands.push_back(name);
    } catch (const std::exception& error) {
      report.warnings.push_back(std::string("command skipped: ") + error.what());
    }
  }
  for (auto& hook : registrar.thread_budget_hooks()) registry.add_thread_budget_hook(std::move(hook));
  report.loaded = true;
}

}  // namespace

PluginLoadReport load_plugin_file(const fs::path& file, NodeRegistry& registry) {
  PluginLoadReport report;
  if (const PluginDescriptor* descriptor = open_plugin(file, report)) register_plugin(*descriptor, registry, report);
  return report;
}

std::vector<PluginLoadReport> load_plugins(const std::vector<fs::path>& directories, NodeRegistry& registry) {
  std::vector<PluginLoadReport> reports;
  std::set<std::string> loaded_names;
  std::set<fs::path> visited_dirs;
  for (const fs::path& directory : directories) {
    std::error_code ec;
    const fs::path canonical = fs::weakly_canonical(directory, ec);
    if (!visited_dirs.insert(ec ? directory : canonical).second) continue;
    if (!fs::is_directory(directory, ec)) continue;
    std::vector<fs::path> files;
    for (const auto& entry : fs::directory_iterator(directory, ec)) {
      if (entry.path().extension() == ".so" && !entry.is_directory()) files.push_back(entry.path());
    }
    std::sort(files.begin(), files.end());
    for (const fs::path& file : files) {
      PluginLoadReport report;
      const PluginDescriptor* descriptor = open_plugin(file, report);
      if (descriptor != nullptr && loaded_names.count(report.plugin_name) != 0) {
        // An earlier directory (e.g. --plugin-dir) overrides this one.
        report.error =
            "skipped: a plugin named '" + report.plugin_name + "' was already loaded from an earlier directory";
      } else if (descriptor != nullptr) {
        register_plugin(*descriptor, registry, report);
        if (report.loaded) loaded_names.insert(report.plugin_name);
      }
      reports.push_back(std::move(report));
    }
  }
  return reports;
}

}  // namespace fusionflow
