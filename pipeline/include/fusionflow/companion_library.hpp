// A plugin's companion library: the part of a plugin that links something
// heavy (VTK for viz, LibTorch for learned), kept in a library of its own
// beside the plugin and opened only when a node first needs it, so that
// loading the plugin (for `fusionflow validate`, `plugins`, any run) stays
// cheap. The viz and learned plugins open their engines this way.
#pragma once

#include <filesystem>
#include <string>

namespace fusionflow {

// Opens the library at `relative` to the folder above the plugin's own folder
// (<libdir>/fusionflow/plugins/../<relative>), or the file the environment
// variable `override_variable` names when it is set, and returns its
// `symbol`. `anchor` is any function or object of the calling plugin (it
// finds the plugin's file). The library stays loaded. Throws
// std::runtime_error naming the file, the loader's reason and `hint`.
void* open_companion_symbol(const void* anchor, const std::filesystem::path& relative, const char* override_variable,
                            const char* symbol, const std::string& hint);

}  // namespace fusionflow
