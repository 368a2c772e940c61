#include "fusionflow/companion_library.hpp"

#include <dlfcn.h>

#include <cstdlib>
#include <stdexcept>

namespace fusionflow {

void* open_companion_symbol(const void* anchor, const std::filesystem::path& relative, const char* override_variable,
                            const char* symbol, const std::string& hint) {
  std::filesystem::path file;
  if (const char* value = std::getenv(override_variable); value != nullptr && *value != '\0') {
    file = value;
  } else {
    Dl_info info{};
    if (dladdr(anchor, &info) == 0 || info.dli_fname == nullptr) {
      throw std::runtime_error("cannot tell which library holds the plugin, to find " + relative.string());
    }
    file = std::filesystem::path(info.dli_fname).parent_path().parent_path() / relative;
  }
  void* handle = dlopen(file.c_str(), RTLD_NOW | RTLD_LOCAL | RTLD_NODELETE);
  if (handle == nullptr) {
    const char* error = dlerror();
    throw std::runtime_error("cannot load " + file.string() + ": " + (error != nullptr ? error : "unknown reason") +
                             " (" + hint + ")");
  }
  void* entry = dlsym(handle, symbol);
  if (entry == nullptr) throw std::runtime_error(file.string() + " has no entry point " + symbol);
  return entry;
}

}  // namespace fusionflow
