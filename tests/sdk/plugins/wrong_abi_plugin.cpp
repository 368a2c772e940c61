// Claims an ABI version this host does not speak.
#include <fusionflow/plugin.hpp>

static void never_called(fusionflow::PluginRegistrar&) { throw "the host must not call a plugin of another ABI"; }

extern "C" __attribute__((visibility("default"))) const fusionflow::PluginDescriptor* fusionflow_plugin_descriptor() {
  static const fusionflow::PluginDescriptor descriptor{999u, "wrong_abi", "1.0.0",      "", FUSIONFLOW_COMPILER_ID,
                                                       "",   "",          &never_called};
  return &descriptor;
}
