#include <unistd.h>

#include <atomic>
#include <csignal>
#include <iostream>

#include <fusionflow/atomic_file.hpp>
#include <fusionflow/executor.hpp>
#include <fusionflow/node_cache.hpp>
#include <fusionflow/run_record.hpp>
#include <spdlog/spdlog.h>

#include "commands.hpp"
#include "progress_display.hpp"
#include "run_report.hpp"

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
  std::optional<std::uint64_t> cache_limit;
  if (!arguments.cache_max_size.empty()) {
    if (arguments.cache_dir.empty()) {
      spdlog::error("--cache-max-size needs --cache DIR");
      return kInvalid;
    }
    try {
      cache_limit = parse_byte_size(arguments.cache_max_size);
    } catch (const std::invalid_argument& error) {
      spdlog::error("--cache-max-size: {}", error.what());
      return kInvalid;
    }
  }
  auto pipeline = session.load_pipeline(arguments.pipeline, arguments.set_options);
  if (!pipeline) return kInvalid;
  session.warn_about_plugin_failures();
  std::optional<NodeCache> cache;
  if (!arguments.cache_dir.empty()) {
    try {
      cache.emplace(arguments.cache_dir);
    } catch (const std::exception& error) {
      spdlog::error("--cache: {}", error.what());
      return kInvalid;
    }
  }

  ProgressDisplay display(*pipeline, !arguments.no_progress && ::isatty(STDERR_FILENO) != 0);
  RunOptions options;
  options.threads = arguments.threads;
  options.stop_requested = &g_stop_requested;
  if (cache) options.cache = &*cache;
  options.on_progress = [&display](const ProgressEvent& event) { display.on_progress(event); };
  std::vector<NodeLogMessage> messages;  // for the report; on_log calls are serialised
  const bool keep_messages = !arguments.report_path.empty();
  options.on_log = [&display, &messages, keep_messages](std::size_t node, LogLevel level, const std::string& message) {
    display.on_log(node, level, message);
    if (keep_messages) messages.push_back({node, level, message});
  };
  auto previous_handler = std::signal(SIGINT, request_stop);
  RunResult result = run_pipeline(*pipeline, session.registry(), options);
  std::signal(SIGINT, previous_handler);

  const int exit_code = result.succeeded ? kSuccess : kRunFailed;
  std::cout << format_summary(*pipeline, result);
  if (!result.succeeded) spdlog::error("{}", result.error);
  if (cache) {
    std::cout << format_cache_summary(result);
    if (cache_limit) {
      const CachePruneResult pruned = cache->prune(*cache_limit);
      if (pruned.removed_entries > 0) {
        spdlog::info("cache pruned to {}: {} entries ({}) removed", format_byte_size(*cache_limit),
                     pruned.removed_entries, format_byte_size(pruned.removed_bytes));
      }
    }
  }
  // The run record, for --record and for the report's variables and parameters.
  const std::string record = arguments.record_path.empty() && arguments.report_path.empty()
                                 ? std::string()
                                 : run_record_json(*pipeline, result, session.plugin_reports(), exit_code);
  if (!arguments.record_path.empty()) {
    try {
      write_file_atomically(arguments.record_path, record);
      spdlog::info("run record written to {}", arguments.record_path);
    } catch (const std::exception& error) {
      spdlog::error("cannot write the run record: {}", error.what());
      return kRunFailed;
    }
  }
  if (!arguments.report_path.empty()) {
    // Written for failed runs too: what ran, what failed and why.
    try {
      std::vector<std::string> notes;
      const std::string page = run_report_html(
          {&*pipeline, &result, &session.plugin_reports(), std::move(messages), record}, web_assets_directory(), notes);
      for (const std::string& note : notes) spdlog::warn("report: {}", note);
      write_file_atomically(arguments.report_path, page);
      spdlog::info("run report written to {}", arguments.report_path);
    } catch (const std::exception& error) {
      spdlog::error("cannot write the run report: {}", error.what());
      return kRunFailed;
    }
  }
  return exit_code;
}

}  // namespace fusionflow::cli
