#include <unistd.h>

#include <atomic>
#include <csignal>
#include <iostream>

#include <fusionflow/atomic_file.hpp>
#include <fusionflow/executor.hpp>
#include <fusionflow/run_record.hpp>
#include <spdlog/spdlog.h>

#include "commands.hpp"
#include "progress_display.hpp"

namespace fusionflow::cli {

namespace {

std::atomic<bool> g_stop_requested{false};

// First Ctrl-C asks the run to stop cleanly; a second one kills the process.
extern "C" void request_stop(int) {
  g_stop_requested.store(true);
  std::signal(SIGINT, SIG_DFL);
}

}  // namespace

int validate_command(Session& session, const PipelineArguments& arguments) {
  auto pipeline = session.load_pipeline(arguments.pipeline, arguments.set_options);
  if (!pipeline) return kInvalid;
  std::cout << arguments.pipeline << ": valid (" << pipeline->nodes.size() << " nodes)\n";
  return kSuccess;
}

int run_command(Session& session, const RunArguments& arguments) {
  auto pipeline = session.load_pipeline(arguments.pipeline, arguments.set_options);
  if (!pipeline) return kInvalid;
  session.warn_about_plugin_failures();

  ProgressDisplay display(*pipeline, !arguments.no_progress && ::isatty(STDERR_FILENO) != 0);
  RunOptions options;
  options.threads = arguments.threads;
  options.stop_requested = &g_stop_requested;
  options.on_progress = [&display](const ProgressEvent& event) { display.on_progress(event); };
  options.on_log = [&display](std::size_t node, LogLevel level, const std::string& message) {
    display.on_log(node, level, message);
  };
  auto previous_handler = std::signal(SIGINT, request_stop);
  RunResult result = run_pipeline(*pipeline, session.registry(), options);
  std::signal(SIGINT, previous_handler);

  const int exit_code = result.succeeded ? kSuccess : kRunFailed;
  std::cout << format_summary(*pipeline, result);
  if (!result.succeeded) spdlog::error("{}", result.error);
  if (!arguments.record_path.empty()) {
    try {
      write_file_atomically(arguments.record_path,
                            run_record_json(*pipeline, result, session.plugin_reports(), exit_code));
      spdlog::info("run record written to {}", arguments.record_path);
    } catch (const std::exception& error) {
      spdlog::error("cannot write the run record: {}", error.what());
      return kRunFailed;
    }
  }
  return exit_code;
}

}  // namespace fusionflow::cli
