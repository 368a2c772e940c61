// Runs a loaded Pipeline on oneTBB: a node is ready as soon as all its inputs
// are, and independent branches overlap up to the thread limit. Which ready
// node starts first is chosen to keep memory low (see RunOptions and
// docs/pipeline-format.md, "Running"); results never depend on it.
#pragma once

#include <atomic>
#include <cstddef>
#include <functional>
#include <string>
#include <vector>

#include "fusionflow/node.hpp"
#include "fusionflow/pipeline.hpp"

namespace fusionflow {

class NodeCache;

enum class NodeStatus { NotRun, Running, Succeeded, Failed, Cancelled };
const char* to_string(NodeStatus status);

struct ProgressEvent {
  enum class Kind { Started, Progress, Finished };
  Kind kind;
  std::size_t node;   // index into Pipeline::nodes
  double fraction;    // 0..1
  NodeStatus status;  // for Finished
};

struct RunOptions {
  int threads = 0;                                                             // 0: one per core
  std::function<void(const ProgressEvent&)> on_progress;                       // called from worker threads, serialised
  std::function<void(std::size_t node, LogLevel, const std::string&)> on_log;  // serialised too
  const std::atomic<bool>* stop_requested = nullptr;                           // e.g. set by SIGINT
  // At most this many nodes whose type is declared memory-intensive
  // (NodeSpec::memory_intensive) run at the same time; 0: no limit.
  int max_memory_intensive_nodes = 1;
  // The node cache (fusionflow/node_cache.hpp), or nullptr for none.
  const NodeCache* cache = nullptr;
};

struct NodeRunInfo {
  NodeStatus status = NodeStatus::NotRun;
  double start_seconds = 0;  // since the run started
  double end_seconds = 0;
  double wall_seconds = 0;
  double cpu_seconds = 0;  // CPU time of the thread that ran the node
  // CPU time of all the process's threads while the node ran (TBB workers on
  // its parallel loops, threads ITK or Mesa start, the kernel's time for it).
  // When `ran_alone`, that is the node's whole CPU, and wall x threads minus it
  // the time its threads waited (a lock, a serial phase, the display, memory);
  // otherwise it also holds the nodes that ran beside it.
  double process_cpu_seconds = 0;
  bool ran_alone = false;             // no other node was running at any moment of its run
  std::size_t peak_memory_bytes = 0;  // process peak RSS when the node ended
  std::string error;
  // With a cache: "hit", "miss", "miss: <why the entry was not used>",
  // "not cacheable: <why>" or "not stored: <why>"; empty without one.
  std::string cache;
  std::string cache_key;  // when the node had one
};

struct RunResult {
  bool succeeded = false;
  bool stopped_by_user = false;
  std::string error;               // "node 'x' (type t) failed: message" for the first failure
  std::vector<NodeRunInfo> nodes;  // parallel to Pipeline::nodes
  int threads = 0;
  double wall_seconds = 0;
  std::size_t peak_memory_bytes = 0;
  std::string started_at_utc;  // ISO 8601
};

RunResult run_pipeline(const Pipeline& pipeline, const NodeRegistry& registry, const RunOptions& options = {});

// Process peak resident memory so far.
std::size_t process_peak_memory_bytes();

// The current time, e.g. "2026-12-02T19:58:42Z" (run records, cache entries).
std::string utc_now_iso8601();

}  // namespace fusionflow
