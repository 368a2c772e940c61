// `fusionflow train config.json`: trains a learned shared-latent model. The
// training code (LibTorch) lives in the learned plugin's engine; this command
// finds the plugin on the normal plugin search path and calls its extra entry
// point `fusionflow_learned_train`, so this program never links LibTorch.
#include <dlfcn.h>

#include <iostream>

#include "commands.hpp"

namespace fusionflow::cli {

int train_command(Session& session, const TrainArguments& arguments) {
  const PluginLoadReport* learned = nullptr;
  for (const PluginLoadReport& report : session.plugin_reports()) {
    if (report.loaded && report.plugin_name == "learned") learned = &report;
  }
  if (learned == nullptr) {
    std::cerr << "error: `train` needs the learned plugin (libfusionflow-learned.so), which is not on the plugin "
                 "search path or did not load (see `fusionflow plugins`; it is built when libtorch-dev is installed)\n";
    return kRunFailed;
  }
  void* handle = dlopen(learned->file.c_str(), RTLD_NOW | RTLD_LOCAL | RTLD_NODELETE);
  using TrainFunction = int (*)(const char*, int, long long, const char*, int);
  auto train = handle ? reinterpret_cast<TrainFunction>(dlsym(handle, "fusionflow_learned_train")) : nullptr;
  if (train == nullptr) {
    std::cerr << "error: " << learned->file.string() << " has no entry point fusionflow_learned_train\n";
    return kRunFailed;
  }
  return train(arguments.config.c_str(), arguments.resume ? 1 : 0, arguments.iterations, arguments.output.c_str(),
               arguments.quiet ? 1 : 0);
}

}  // namespace fusionflow::cli
