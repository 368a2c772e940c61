// Shows a run's progress: a live status line on a terminal, plain log lines
// otherwise (CI logs, pipes).
#pragma once

#include <chrono>
#include <cstddef>
#include <string>
#include <vector>

#include <fusionflow/executor.hpp>

namespace fusionflow::cli {

class ProgressDisplay {
 public:
  ProgressDisplay(const Pipeline& pipeline, bool live);
  ~ProgressDisplay();

  // Both are called serialised by the executor.
  void on_progress(const ProgressEvent& event);
  void on_log(std::size_t node, LogLevel level, const std::string& message);

 private:
  void redraw(bool force);
  void clear_line();

  const Pipeline& pipeline_;
  const bool live_;
  std::vector<double> fraction_;
  std::vector<NodeStatus> status_;
  std::size_t finished_ = 0;
  std::chrono::steady_clock::time_point last_draw_{};
  bool line_shown_ = false;
};

// The end-of-run table: per node status, wall and CPU time, peak memory.
std::string format_summary(const Pipeline& pipeline, const RunResult& result);
// "cache: 7 hits, 2 misses, 1 not cacheable (...)" for a run with --cache.
std::string format_cache_summary(const RunResult& result);

}  // namespace fusionflow::cli
