// The subcommands of `fusionflow`. Each returns the process exit code.
#pragma once

#include <string>
#include <vector>

#include "session.hpp"

namespace fusionflow::cli {

struct PipelineArguments {
  std::string pipeline;
  std::vector<std::string> set_options;  // --set name=value
};

struct RunArguments : PipelineArguments {
  int threads = 0;
  std::string record_path;
  bool no_progress = false;
};

int run_command(Session& session, const RunArguments& arguments);
int validate_command(Session& session, const PipelineArguments& arguments);
int plugins_command(Session& session, bool as_json);
int graph_command(Session& session, const PipelineArguments& arguments, const std::string& output_path);

}  // namespace fusionflow::cli
