// fusionflow: run, check and inspect fusion pipelines.
// Exit codes: 0 success, 1 a run failed, 2 the command or pipeline is invalid.
#include <CLI/CLI.hpp>
#include <spdlog/spdlog.h>

#include <iostream>

#include <fusionflow/version.hpp>

#include "commands.hpp"

using namespace fusionflow::cli;

int main(int argc, char** argv) {
  CLI::App app{
      "fusionflow: dataflow pipelines for multimodal medical image fusion (MRI, CT, PET).\n"
      "Exit codes: 0 success, 1 a run failed, 2 the command or pipeline is invalid."};
  app.set_version_flag("--version", fusionflow::version_string());
  app.require_subcommand(1);
  app.fallthrough();

  GlobalOptions global;
  app.add_option("--plugin-dir", global.plugin_dirs,
                 "Directory to load plugins from (repeatable; searched before FUSIONFLOW_PLUGIN_PATH and the "
                 "bundled plugins)");
  app.add_option("--log-level", global.log_level, "trace, debug, info, warn, error or off")
      ->check(CLI::IsMember({"trace", "debug", "info", "warn", "error", "off"}));

  RunArguments run_arguments;
  auto* run = app.add_subcommand("run", "Validate a pipeline, then run it");
  run->add_option("pipeline", run_arguments.pipeline, "Pipeline JSON file")->required();
  run->add_option("--set", run_arguments.set_options, "Set a pipeline variable: name=value (repeatable)");
  run->add_option("--threads", run_arguments.threads, "Threads for the whole run, nodes and ITK filters (0: all cores)")
      ->check(CLI::Range(0, 1024));
  run->add_option("--record", run_arguments.record_path, "Write a JSON run record to this file");
  run->add_option("--report", run_arguments.report_path,
                  "Write the run report, one self-contained HTML page, to this file (docs/visualization.md)");
  run->add_flag("--no-progress", run_arguments.no_progress, "No live progress line, plain log lines only");
  run->add_option("--cache", run_arguments.cache_dir,
                  "Node cache folder: nodes whose inputs and parameters are those of an earlier run take its results "
                  "(docs/caching.md)");
  run->add_option("--cache-max-size", run_arguments.cache_max_size,
                  "With --cache: afterwards remove the least recently used entries beyond this size (e.g. 20G)");

  CacheArguments cache_arguments;
  auto* cache = app.add_subcommand("cache", "Look after a node cache folder (docs/caching.md)");
  cache->require_subcommand(1);
  auto* cache_prune = cache->add_subcommand("prune", "Remove the least recently used entries beyond a size");
  cache_prune->add_option("folder", cache_arguments.folder, "Cache folder (run --cache)")->required();
  cache_prune->add_option("--max-size", cache_arguments.max_size, "Size to keep, e.g. 20G, 512M (0: empty it)")
      ->required();
  auto* cache_info = cache->add_subcommand("info", "How many entries and bytes a cache folder holds");
  cache_info->add_option("folder", cache_arguments.folder, "Cache folder (run --cache)")->required();

  PipelineArguments validate_arguments;
  auto* validate = app.add_subcommand("validate", "Check a pipeline without running it; lists every problem");
  validate->add_option("pipeline", validate_arguments.pipeline, "Pipeline JSON file")->required();
  validate->add_option("--set", validate_arguments.set_options, "Set a pipeline variable: name=value (repeatable)");

  bool plugins_json = false;
  auto* plugins = app.add_subcommand("plugins", "List loaded plugins and node types with ports and parameters");
  plugins->add_flag("--json", plugins_json, "Machine-readable output");

  PipelineArguments graph_arguments;
  std::string graph_output;
  auto* graph = app.add_subcommand("graph", "Write the pipeline as a Graphviz DOT graph (e.g. | dot -Tpng -o g.png)");
  graph->add_option("pipeline", graph_arguments.pipeline, "Pipeline JSON file")->required();
  graph->add_option("--set", graph_arguments.set_options, "Set a pipeline variable: name=value (repeatable)");
  graph->add_option("-o,--output", graph_output, "Output file (default: standard output)");

  PhantomArguments phantom_arguments;
  auto* phantom = app.add_subcommand("phantom", "Write the digital head phantom (CT, T1, T2, PET, labels, truth.json)");
  phantom->add_option("--size", phantom_arguments.size, "Grid size: N for N^3, or three values")
      ->expected(1, 3)
      ->check(CLI::Range(8, 1024));
  phantom->add_option("--spacing", phantom_arguments.spacing_mm, "CT/MRI voxel spacing in mm (default: 240 mm / size)")
      ->check(CLI::Range(0.05, 20.0));
  phantom->add_option("--seed", phantom_arguments.seed, "Noise seed")->check(CLI::NonNegativeNumber);
  phantom->add_option("--anatomy-seed", phantom_arguments.anatomy_seed, "Anatomy seed")->check(CLI::NonNegativeNumber);
  phantom->add_option("--lesions", phantom_arguments.lesions, "Number of lesions")->check(CLI::Range(0, 20));
  phantom->add_option("--pet-spacing", phantom_arguments.pet_spacing_mm, "PET voxel spacing in mm");
  phantom->add_option("--pet-fwhm", phantom_arguments.pet_fwhm_mm, "PET resolution (FWHM) in mm");
  phantom
      ->add_option("--deform", phantom_arguments.deformation_mm,
                   "Deform MRI and PET smoothly by at most this many mm before their rigid motion (0: none; "
                   "each gets its own random field, written as mri/pet_displacement.nrrd)")
      ->check(CLI::Range(0.0, 30.0));
  phantom
      ->add_option("--deform-smoothness", phantom_arguments.deformation_smoothness_mm,
                   "Correlation length of the deformation in mm")
      ->check(CLI::Range(5.0, 200.0));
  phantom->add_option("--out", phantom_arguments.out, "Output directory")->required();
  phantom->add_option("--threads", phantom_arguments.threads, "Threads (0: all cores)")->check(CLI::Range(0, 1024));

  CohortArguments cohort_arguments;
  auto* cohort = app.add_subcommand("cohort", "One pipeline over many subjects (docs/cohorts.md)");
  cohort->require_subcommand(1);
  auto* cohort_check = cohort->add_subcommand(
      "check",
      "Check a cohort (subjects table or BIDS dataset) and the pipeline for every subject; lists every problem");
  cohort_check->add_option("cohort", cohort_arguments.cohort, "Subjects table (.csv, .tsv) or cohort file (.json)")
      ->required();
  cohort_check->add_option("pipeline", cohort_arguments.pipeline, "Pipeline JSON file")->required();
  cohort_check->add_option("--out", cohort_arguments.out, "Study output folder (each subject's out is OUT/<subject>)");
  auto* cohort_run = cohort->add_subcommand(
      "run", "Run the pipeline for every subject (each its own process); again: resume, skipping done subjects");
  cohort_run->add_option("cohort", cohort_arguments.cohort, "Subjects table (.csv, .tsv) or cohort file (.json)")
      ->required();
  cohort_run->add_option("pipeline", cohort_arguments.pipeline, "Pipeline JSON file")->required();
  cohort_run->add_option("--out", cohort_arguments.out, "Study folder: cohort.json, metrics.csv, OUT/<subject>/")
      ->required();
  cohort_run->add_option("--threads", cohort_arguments.threads, "Threads for the whole study (0: all cores)")
      ->check(CLI::Range(0, 1024));
  cohort_run
      ->add_option("--parallel", cohort_arguments.parallel,
                   "Subjects at once (0: the thread budget; each gets threads / parallel)")
      ->check(CLI::Range(0, 1024));
  cohort_run->add_flag("--retry-failed", cohort_arguments.retry_failed, "Run only the subjects that failed");
  cohort_run->add_option("--engine", cohort_arguments.engine, "local (this machine) or slurm (one sbatch job array)")
      ->check(CLI::IsMember({"local", "slurm"}));
  cohort_run->add_option("--cpus-per-task", cohort_arguments.cpus_per_task, "slurm: CPUs (and threads) per subject")
      ->check(CLI::Range(1, 1024));
  cohort_run->add_option("--mem-mb", cohort_arguments.mem_mb, "slurm: memory per subject in MB (0: the cluster's)")
      ->check(CLI::Range(0L, 100000000L));
  cohort_run->add_option("--partition", cohort_arguments.partition, "slurm: partition");
  cohort_run->add_option("--account", cohort_arguments.account, "slurm: account");
  cohort_run->add_option("--time", cohort_arguments.time_limit, "slurm: time limit per task (e.g. 01:00:00)");
  cohort_run->add_flag("--wait", cohort_arguments.wait, "slurm: return when the job array has ended");
  cohort_run->add_option("--cache", cohort_arguments.cache_dir,
                         "Node cache folder for every subject's run (on a cluster: on the shared filesystem)");
  cohort_run->add_option("--cache-max-size", cohort_arguments.cache_max_size,
                         "With --cache: prune it to this size when the study ends (e.g. 20G)");
  cohort_run->add_flag(
      "--report", cohort_arguments.report,
      "Write each subject's run report (<subject>/report.html) and the study report (OUT/report.html)");
  std::string cohort_folder;
  auto* cohort_status = cohort->add_subcommand("status", "Each subject's state in a study folder");
  cohort_status->add_option("folder", cohort_folder, "Study folder (cohort run --out)")->required();
  auto* cohort_summary = cohort->add_subcommand("summary", "How many subjects are done, failed, ...");
  cohort_summary->add_option("folder", cohort_folder, "Study folder (cohort run --out)")->required();
  auto* cohort_report = cohort->add_subcommand(
      "report", "Write the study report (report.html: every subject's report, metrics across subjects as plots)");
  cohort_report->add_option("folder", cohort_folder, "Study folder (cohort run --out)")->required();

  // `view` hands everything after it to the fusionflow-view program (whose
  // --help lists its options and keys), before any parsing here.
  app.add_subcommand("view", "Interactive 3D viewer: view VOLUME [--overlay VOLUME] (runs fusionflow-view)");

  // The first word that is not a global option names the command. `view` and
  // the commands plugins add (e.g. the learned plugin's `train`) take the
  // rest of the line as it is; the global options before them apply.
  GlobalOptions early;
  for (int i = 1; i < argc; ++i) {
    const std::string argument = argv[i];
    if (argument == "--plugin-dir" || argument == "--log-level") {
      if (i + 1 >= argc) break;  // CLI11 reports the missing value
      (argument == "--plugin-dir" ? early.plugin_dirs.emplace_back(argv[i + 1]) : early.log_level) = argv[i + 1];
      ++i;
      continue;
    }
    if (argument.rfind("--plugin-dir=", 0) == 0) {
      early.plugin_dirs.push_back(argument.substr(13));
      continue;
    }
    if (argument.rfind("--log-level=", 0) == 0) {
      early.log_level = argument.substr(12);
      continue;
    }
    if (argument.empty() || argument[0] == '-') break;  // --help, --version, or an error CLI11 reports
    const std::vector<std::string> rest(argv + i + 1, argv + argc);
    if (argument == "view") return view_command(rest);
    const auto built_in =
        app.get_subcommands([&argument](CLI::App* command) { return command->get_name() == argument; });
    if (!built_in.empty()) break;  // one of the program's own commands
    try {
      configure_logging(early.log_level);
      Session session(early);
      if (const auto code = plugin_command(session, argument, rest)) return *code;
      const std::string commands = plugin_command_list(session);
      std::string own;
      for (const CLI::App* command : app.get_subcommands([](CLI::App*) { return true; })) {
        own += (own.empty() ? "" : ", ") + command->get_name();
      }
      std::cerr << "error: '" << argument << "' is not a fusionflow command: the program's own are " << own
                << (commands.empty() ? std::string() : "; from plugins:\n" + commands) << "\n";
      return kInvalid;
    } catch (const std::exception& error) {
      std::cerr << "error: " << error.what() << "\n";
      return kInvalid;
    }
  }

  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& help) {
    const int code = app.exit(help);
    if (app.get_subcommands().empty()) {  // the program's help: also list the plugins' commands
      try {
        configure_logging("error");
        Session session(early);
        const std::string commands = plugin_command_list(session);
        if (!commands.empty())
          std::cout << "Commands from plugins (fusionflow NAME --help for their options):\n" << commands;
      } catch (const std::exception&) {
        // the help text itself was printed; a plugin that does not load is reported by `fusionflow plugins`
      }
    }
    return code;
  } catch (const CLI::CallForAllHelp& help) {
    return app.exit(help);
  } catch (const CLI::CallForVersion& version) {
    return app.exit(version);
  } catch (const CLI::ParseError& error) {
    app.exit(error);
    return kInvalid;
  }

  try {
    configure_logging(global.log_level);
    if (*cache_prune) return cache_prune_command(cache_arguments);
    if (*cache_info) return cache_info_command(cache_arguments);
    Session session(global);
    if (*run) return run_command(session, run_arguments);
    if (*validate) return validate_command(session, validate_arguments);
    if (*plugins) return plugins_command(session, plugins_json);
    if (*graph) return graph_command(session, graph_arguments, graph_output);
    if (*phantom) return phantom_command(session, phantom_arguments);
    if (*cohort_check) return cohort_check_command(session, cohort_arguments);
    if (*cohort_run) return cohort_run_command(session, global, cohort_arguments);
    if (*cohort_status) return cohort_status_command(cohort_folder, false);
    if (*cohort_summary) return cohort_status_command(cohort_folder, true);
    if (*cohort_report) return cohort_report_command(cohort_folder);
  } catch (const std::exception& error) {
    spdlog::error("{}", error.what());
    return kRunFailed;
  }
  return kInvalid;
}
