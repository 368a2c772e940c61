#include <iostream>

#include <fusionflow/atomic_file.hpp>
#include <fusionflow/graph.hpp>
#include <spdlog/spdlog.h>

#include "commands.hpp"

namespace fusionflow::cli {

int graph_command(Session& session, const PipelineArguments& arguments, const std::string& output_path) {
  auto pipeline = session.load_pipeline(arguments.pipeline, arguments.set_options);
  if (!pipeline) return kInvalid;
  const std::string dot = pipeline_to_dot(*pipeline);
  if (output_path.empty() || output_path == "-") {
    std::cout << dot;
    return kSuccess;
  }
  try {
    write_file_atomically(output_path, dot);
  } catch (const std::exception& error) {
    spdlog::error("{}", error.what());
    return kRunFailed;
  }
  return kSuccess;
}

}  // namespace fusionflow::cli
