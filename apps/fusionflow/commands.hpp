// The subcommands of `fusionflow`. Each returns the process exit code.
#pragma once

#include <filesystem>
#include <optional>
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
  std::string report_path;  // --report: the run report page (empty: none)
  bool no_progress = false;
  std::string cache_dir;       // --cache: the node cache folder (empty: none)
  std::string cache_max_size;  // --cache-max-size: prune to this after the run (empty: no limit)
};

struct CacheArguments {
  std::string folder;
  std::string max_size;
};

struct PhantomArguments {
  std::vector<int> size{64};
  double spacing_mm = 0;  // 0: a 240 mm field of view
  int seed = 1;
  int anatomy_seed = 1;
  int lesions = 1;
  double pet_spacing_mm = 3.0;
  double pet_fwhm_mm = 6.0;
  double deformation_mm = 0.0;              // MRI and PET, each its own field
  double deformation_smoothness_mm = 20.0;  // correlation length
  std::string out;
  int threads = 0;
};

struct CohortArguments {
  std::string cohort;
  std::string pipeline;
  std::string out = "fusionflow-out";
  int threads = 0;   // the whole budget (0: all cores)
  int parallel = 0;  // subjects at once (0: as many as the budget allows)
  bool retry_failed = false;
  std::string engine = "local";  // local | slurm
  // slurm: per-task CPUs (each subject's --threads), memory, and what sbatch passes on
  int cpus_per_task = 1;
  long mem_mb = 0;  // 0: the cluster's default
  std::string partition, account, time_limit;
  bool wait = false;
  std::string cache_dir;  // passed to every subject's run (a folder all tasks can reach)
  std::string cache_max_size;
  bool report = false;  // --report: each subject's run report and the study's DIR/report.html
};

int phantom_command(Session& session, const PhantomArguments& arguments);
int cohort_check_command(Session& session, const CohortArguments& arguments);
int cohort_run_command(Session& session, const GlobalOptions& global, const CohortArguments& arguments);
int cohort_status_command(const std::string& folder, bool summary_only);
// DIR/metrics.csv and DIR/report.html from DIR/cohort.json and the subjects' outputs.
int cohort_report_command(const std::string& folder);
// `fusionflow NAME ARGS...` for a command a plugin registered
// (fusionflow/plugin_command.hpp); nullopt when no plugin has NAME.
std::optional<int> plugin_command(Session& session, const std::string& name, const std::vector<std::string>& arguments);
// Lines "  name  summary [plugin]" for the commands plugins add (for --help).
std::string plugin_command_list(Session& session);
int run_command(Session& session, const RunArguments& arguments);
int cache_prune_command(const CacheArguments& arguments);
int cache_info_command(const CacheArguments& arguments);
int validate_command(Session& session, const PipelineArguments& arguments);
int plugins_command(Session& session, bool as_json);
int graph_command(Session& session, const PipelineArguments& arguments, const std::string& output_path);
// Replaces the process with fusionflow-view (next to this program); returns only on failure.
int view_command(const std::vector<std::string>& arguments);

// This fusionflow program's own file (from /proc/self/exe), or an empty path
// if it cannot be read: the programs and data installed beside it are found
// from there.
std::filesystem::path this_program();

}  // namespace fusionflow::cli
