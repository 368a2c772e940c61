// `fusionflow phantom`: writes the digital head phantom. Runs the
// testdata.write_phantom node from the testdata plugin, so the program itself
// knows nothing about phantoms.
#include <cstdint>
#include <iostream>
#include <vector>

#include <fusionflow/executor.hpp>
#include <fusionflow/pipeline_builder.hpp>
#include <spdlog/spdlog.h>

#include "commands.hpp"

namespace fusionflow::cli {

int phantom_command(Session& session, const PhantomArguments& arguments) {
  std::vector<std::int64_t> size;
  if (arguments.size.size() == 1) {
    size.assign(3, arguments.size[0]);
  } else if (arguments.size.size() == 3) {
    size.assign(arguments.size.begin(), arguments.size.end());
  } else {
    std::cerr << "error: --size takes one value (a cube) or three (i j k)\n";
    return kInvalid;
  }
  PipelineBuilder pipeline("fusionflow phantom");
  pipeline.description("fusionflow phantom")
      .add_node("phantom", "testdata.write_phantom")
      .set_param("phantom", "out", ParamValue(arguments.out))
      .set_param("phantom", "seed", ParamValue(std::int64_t(arguments.seed)))
      .set_param("phantom", "anatomy_seed", ParamValue(std::int64_t(arguments.anatomy_seed)))
      .set_param("phantom", "lesion_count", ParamValue(std::int64_t(arguments.lesions)))
      .set_param("phantom", "pet_spacing_mm", ParamValue(double(arguments.pet_spacing_mm)))
      .set_param("phantom", "pet_fwhm_mm", ParamValue(double(arguments.pet_fwhm_mm)))
      .set_param("phantom", "mri_deformation_mm", ParamValue(double(arguments.deformation_mm)))
      .set_param("phantom", "pet_deformation_mm", ParamValue(double(arguments.deformation_mm)))
      .set_param("phantom", "deformation_smoothness_mm", ParamValue(double(arguments.deformation_smoothness_mm)))
      .set_param("phantom", "size", ParamValue(size));
  if (arguments.spacing_mm > 0) {
    pipeline.set_param("phantom", "spacing", ParamValue(std::vector<double>(3, arguments.spacing_mm)));
  }
  LoadOptions options;
  options.plugin_failures = session.plugin_failures();
  LoadResult loaded = pipeline.build(session.registry(), options);
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
  std::cout << "wrote ct.nii.gz, t1.nii.gz, t2.nii.gz, pet.nii.gz, labels.nii.gz"
            << (arguments.deformation_mm > 0 ? ", mri_displacement.nrrd, pet_displacement.nrrd" : "")
            << " and truth.json to " << arguments.out << " in " << result.wall_seconds << " s\n";
  return kSuccess;
}

}  // namespace fusionflow::cli
