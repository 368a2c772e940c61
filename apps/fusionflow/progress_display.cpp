#include "progress_display.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cstdio>
#include <map>
#include <sstream>

namespace fusionflow::cli {

ProgressDisplay::ProgressDisplay(const Pipeline& pipeline, bool live)
    : pipeline_(pipeline),
      live_(live),
      fraction_(pipeline.nodes.size(), 0.0),
      status_(pipeline.nodes.size(), NodeStatus::NotRun) {}

ProgressDisplay::~ProgressDisplay() { clear_line(); }

void ProgressDisplay::clear_line() {
  if (live_ && line_shown_) {
    std::fputs("\r\033[K", stderr);
    std::fflush(stderr);
    line_shown_ = false;
  }
}

void ProgressDisplay::on_progress(const ProgressEvent& event) {
  const PipelineNode& node = pipeline_.nodes[event.node];
  switch (event.kind) {
    case ProgressEvent::Kind::Started:
      status_[event.node] = NodeStatus::Running;
      if (!live_) spdlog::info("started  {} ({})", node.id, node.type);
      redraw(true);
      break;
    case ProgressEvent::Kind::Progress:
      fraction_[event.node] = event.fraction;
      redraw(false);
      break;
    case ProgressEvent::Kind::Finished:
      status_[event.node] = event.status;
      fraction_[event.node] = 1.0;
      ++finished_;
      clear_line();
      if (event.status == NodeStatus::Succeeded) {
        spdlog::info("finished {} ({})", node.id, node.type);
      } else {
        spdlog::warn("{} {} ({})", to_string(event.status), node.id, node.type);
      }
      redraw(true);
      break;
  }
}

void ProgressDisplay::on_log(std::size_t node, LogLevel level, const std::string& message) {
  clear_line();
  const std::string& id = pipeline_.nodes[node].id;
  switch (level) {
    case LogLevel::Trace: spdlog::trace("[{}] {}", id, message); break;
    case LogLevel::Debug: spdlog::debug("[{}] {}", id, message); break;
    case LogLevel::Info: spdlog::info("[{}] {}", id, message); break;
    case LogLevel::Warn: spdlog::warn("[{}] {}", id, message); break;
    case LogLevel::Error: spdlog::error("[{}] {}", id, message); break;
  }
  redraw(true);
}

void ProgressDisplay::redraw(bool force) {
  if (!live_) return;
  const auto now = std::chrono::steady_clock::now();
  if (!force && now - last_draw_ < std::chrono::milliseconds(100)) return;
  last_draw_ = now;
  std::ostringstream line;
  line << "[" << finished_ << "/" << pipeline_.nodes.size() << "]";
  for (std::size_t i = 0; i < status_.size(); ++i) {
    if (status_[i] != NodeStatus::Running) continue;
    line << "  " << pipeline_.nodes[i].id << " " << static_cast<int>(fraction_[i] * 100.0) << "%";
  }
  std::string text = line.str();
  if (text.size() > 118) text = text.substr(0, 115) + "...";
  std::fprintf(stderr, "\r\033[K%s", text.c_str());
  std::fflush(stderr);
  line_shown_ = true;
}

std::string format_summary(const Pipeline& pipeline, const RunResult& result) {
  std::size_t id_width = 4, type_width = 4;
  for (const PipelineNode& node : pipeline.nodes) {
    id_width = std::max(id_width, node.id.size());
    type_width = std::max(type_width, node.type.size());
  }
  const bool cached = std::any_of(result.nodes.begin(), result.nodes.end(),
                                  [](const NodeRunInfo& info) { return !info.cache.empty(); });
  std::ostringstream table;
  char buffer[512];
  std::snprintf(buffer, sizeof buffer, "%-*s  %-*s  %-9s  %9s  %9s  %12s%s\n", int(id_width), "node", int(type_width),
                "type", "status", "wall s", "cpu s", "peak MiB", cached ? "  cache" : "");
  table << buffer;
  for (std::size_t i = 0; i < pipeline.nodes.size(); ++i) {
    const NodeRunInfo& info = result.nodes[i];
    // The column shows the outcome; the record says why.
    const std::string cache = info.cache.empty() ? std::string() : "  " + info.cache.substr(0, info.cache.find(':'));
    if (info.status == NodeStatus::NotRun) {
      std::snprintf(buffer, sizeof buffer, "%-*s  %-*s  %-9s  %9s  %9s  %12s\n", int(id_width),
                    pipeline.nodes[i].id.c_str(), int(type_width), pipeline.nodes[i].type.c_str(), "not_run", "-", "-",
                    "-");
      table << buffer;
      continue;
    } else {
      std::snprintf(buffer, sizeof buffer, "%-*s  %-*s  %-9s  %9.3f  %9.3f  %12.1f\n", int(id_width),
                    pipeline.nodes[i].id.c_str(), int(type_width), pipeline.nodes[i].type.c_str(),
                    to_string(info.status), info.wall_seconds, info.cpu_seconds,
                    double(info.peak_memory_bytes) / (1024.0 * 1024.0));
    }
    std::string line = buffer;
    if (!cache.empty()) line.insert(line.size() - 1, cache);
    table << line;
  }
  std::snprintf(buffer, sizeof buffer, "total: %.3f s wall on %d thread%s, peak memory %.1f MiB\n", result.wall_seconds,
                result.threads, result.threads == 1 ? "" : "s", double(result.peak_memory_bytes) / (1024.0 * 1024.0));
  table << buffer;
  return table.str();
}

std::string format_cache_summary(const RunResult& result) {
  std::map<std::string, int> counts;
  for (const NodeRunInfo& info : result.nodes) {
    if (!info.cache.empty()) ++counts[info.cache.substr(0, info.cache.find(':'))];
  }
  std::string text = "cache:";
  const char* separator = " ";
  for (const auto& [outcome, count] : counts) {
    text += separator + std::to_string(count) + " " + outcome;
    separator = ", ";
  }
  return text + (counts.empty() ? " no node used it\n" : " (a run record, --record, says why for each node)\n");
}

}  // namespace fusionflow::cli
