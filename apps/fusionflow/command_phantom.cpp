// `fusionflow phantom`: writes the digital head phantom. Runs the
// testdata.write_phantom node from the testdata plugin, so the program itself
// knows nothing about phantoms.
#include <iostream>

#include <fusionflow/executor.hpp>
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include "commands.hpp"

namespace fusionflow::cli {

int phantom_command(Session& session, const PhantomArguments& arguments) {
  nlohmann::json params{{"out", arguments.out},
                        {"seed", arguments.seed},
                        {"anatomy_seed", arguments.anatomy_seed},
                        {"lesion_count", arguments.lesions},
                        {"pet_spacing_mm", arguments.pet_spacing_mm},
                        {"pet_fwhm_mm", arguments.pet_fwhm_mm}};
  if (arguments.size.size() == 1) {
    params["size"] = {arguments.size[0], arguments.size[0], arguments.size[0]};
  } else if (arguments.size.size() == 3) {
    params["size"] = arguments.size;
  } else {
    std::cerr << "error: --size takes one value (a cube) or three (i j k)\n";
    return kInvalid;
  }
  if (arguments.spacing_mm > 0) params["spacing"] = {arguments.spacing_mm, arguments.spacing_mm, arguments.spacing_mm};
  const nlohmann::json pipeline{
      {"format_version", 1},
      {"description", "fusionflow phantom"},
      {"nodes", {{{"id", "phantom"}, {"type", "testdata.write_phantom"}, {"params", params}}}}};
  LoadOptions options;
  options.plugin_failures = session.plugin_failures();
  LoadResult loaded = load_pipeline_text(pipeline.dump(), "fusionflow phantom", std::filesystem::current_path(),
                                         session.registry(), options);
  if (!loaded.ok()) {
    for (const Diagnostic& diagnostic : loaded.diagnostics) {
      // Locations point into the generated pipeline: name the option instead.
      std::cerr << "error: " << diagnostic.message << (diagnostic.hint.empty() ? "" : " (" + diagnostic.hint + ")")
                << "\n";
    }
    return kInvalid;
  }
  RunOptions run_options;
  run_options.threads = arguments.threads;
  run_options.on_log = [](std::size_t, LogLevel, const std::string& message) { spdlog::info("{}", message); };
  const RunResult result = run_pipeline(*loaded.pipeline, session.registry(), run_options);
  if (!result.succeeded) {
    spdlog::error("{}", result.error);
    return kRunFailed;
  }
  std::cout << "wrote ct.nii.gz, t1.nii.gz, t2.nii.gz, pet.nii.gz, labels.nii.gz and truth.json to " << arguments.out
            << " in " << result.wall_seconds << " s\n";
  return kSuccess;
}

}  // namespace fusionflow::cli
