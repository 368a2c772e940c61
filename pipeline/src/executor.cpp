#include "fusionflow/executor.hpp"

#include <sys/resource.h>
#include <time.h>
#if defined(__GLIBC__)
#include <malloc.h>
#endif

#include <oneapi/tbb/info.h>
#include <oneapi/tbb/task_arena.h>
#include <oneapi/tbb/task_group.h>

#include <chrono>
#include <condition_variable>
#include <ctime>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <thread>
#include <tuple>

namespace fusionflow {

const char* to_string(NodeStatus status) {
  switch (status) {
    case NodeStatus::NotRun: return "not_run";
    case NodeStatus::Running: return "running";
    case NodeStatus::Succeeded: return "succeeded";
    case NodeStatus::Failed: return "failed";
    case NodeStatus::Cancelled: return "cancelled";
  }
  return "unknown";
}

std::size_t process_peak_memory_bytes() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  return static_cast<std::size_t>(usage.ru_maxrss) * 1024;  // Linux reports KiB
}

namespace {

double thread_cpu_seconds() {
  timespec now{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &now);
  return static_cast<double>(now.tv_sec) + static_cast<double>(now.tv_nsec) * 1e-9;
}

std::string utc_now_iso8601() {
  const std::time_t now = std::time(nullptr);
  std::tm utc{};
  gmtime_r(&now, &utc);
  char text[32];
  std::strftime(text, sizeof text, "%Y-%m-%dT%H:%M:%SZ", &utc);
  return text;
}

// One output port's value, and how many consumer references still need it.
struct OutputSlot {
  Payload payload;
  std::atomic<int> remaining_consumers{0};
};

// One arena per thread count, kept for the process: creating an arena and
// waking its workers costs more than running a small pipeline.
tbb::task_arena& arena_for(int threads) {
  static std::mutex mutex;
  static std::map<int, std::unique_ptr<tbb::task_arena>> arenas;
  std::lock_guard<std::mutex> lock(mutex);
  auto& arena = arenas[threads];
  if (!arena) arena = std::make_unique<tbb::task_arena>(threads);
  return *arena;
}

class PipelineRun {
 public:
  PipelineRun(const Pipeline& pipeline, const NodeRegistry& registry, const RunOptions& options, int threads)
      : pipeline_(pipeline), registry_(registry), options_(options), threads_(threads), slots_(pipeline.nodes.size()) {
    result_.nodes.resize(pipeline.nodes.size());
    result_.threads = threads;
    for (std::size_t i = 0; i < pipeline.nodes.size(); ++i) {
      for (const PortSpec& port : pipeline.nodes[i].definition->spec().outputs()) {
        slots_[i].emplace(port.name, std::make_unique<OutputSlot>());
      }
    }
    const std::size_t count = pipeline.nodes.size();
    claims_.resize(count);
    successors_.resize(count);
    unfinished_producers_.assign(count, 0);
    for (std::size_t consumer = 0; consumer < count; ++consumer) {
      std::map<OutputSlot*, int> claims;
      std::set<std::size_t> producers;
      for (const auto& [port, refs] : pipeline.nodes[consumer].inputs) {
        for (const OutputRef& ref : refs) {
          ++claims[slots_[ref.node].at(ref.port).get()];
          producers.insert(ref.node);
        }
      }
      for (const auto& [slot, references] : claims) slot->remaining_consumers += references;
      claims_[consumer].assign(claims.begin(), claims.end());
      for (std::size_t producer : producers) successors_[producer].push_back(consumer);
      unfinished_producers_[consumer] = producers.size();
    }
  }

  RunResult run() {
    result_.started_at_utc = utc_now_iso8601();
    start_ = std::chrono::steady_clock::now();
    std::thread stop_watcher;
    if (options_.stop_requested != nullptr) stop_watcher = std::thread([this] { watch_for_stop(); });

    arena_for(threads_).execute([this] {
      tbb::task_group group;
      {
        std::lock_guard<std::mutex> lock(schedule_mutex_);
        group_ = &group;
        for (std::size_t i = 0; i < pipeline_.nodes.size(); ++i) {
          if (unfinished_producers_[i] == 0) ready_.push_back(i);
        }
        dispatch_ready_nodes();
      }
      group.wait();
      std::lock_guard<std::mutex> lock(schedule_mutex_);
      group_ = nullptr;
    });

    {
      std::lock_guard<std::mutex> lock(mutex_);
      finished_ = true;
    }
    stop_changed_.notify_all();
    if (stop_watcher.joinable()) stop_watcher.join();

    result_.wall_seconds = seconds_since_start();
    result_.peak_memory_bytes = process_peak_memory_bytes();
    result_.stopped_by_user = options_.stop_requested != nullptr && options_.stop_requested->load();
    bool all_succeeded = true;
    for (const NodeRunInfo& info : result_.nodes) all_succeeded = all_succeeded && info.status == NodeStatus::Succeeded;
    result_.succeeded = all_succeeded && result_.error.empty();
    if (!result_.succeeded && result_.error.empty()) {
      result_.error = result_.stopped_by_user ? "the run was stopped by the user" : "the run was cancelled";
    }
    return std::move(result_);
  }

 private:
  double seconds_since_start() const {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  }

  // Copies an external stop request (SIGINT) into the flag running nodes poll.
  void watch_for_stop() {
    std::unique_lock<std::mutex> lock(mutex_);
    while (!finished_) {
      if (options_.stop_requested->load()) {
        // Running nodes see cancelled(); no further node starts.
        cancel_.store(true);
        return;
      }
      stop_changed_.wait_for(lock, std::chrono::milliseconds(50));
    }
  }

  void emit(const ProgressEvent& event) {
    if (!options_.on_progress) return;
    std::lock_guard<std::mutex> lock(callback_mutex_);
    options_.on_progress(event);
  }

  void fail(std::size_t index, const std::string& message) {
    const PipelineNode& node = pipeline_.nodes[index];
    std::lock_guard<std::mutex> lock(mutex_);
    if (result_.error.empty()) {
      result_.error = "node '" + node.id + "' (type " + node.type + ") failed: " + message;
    }
    // Nodes not yet started will not start; running ones see cancelled().
    cancel_.store(true);
  }

  std::map<std::string, std::vector<Payload>> gather_inputs(const PipelineNode& node) const {
    std::map<std::string, std::vector<Payload>> inputs;
    for (const auto& [port, refs] : node.inputs) {
      std::vector<Payload>& values = inputs[port];
      for (const OutputRef& ref : refs) values.push_back(slots_[ref.node].at(ref.port)->payload);
    }
    return inputs;
  }

  // Drops this consumer's claims; the last consumer frees the payload.
  // Returns whether it freed one.
  bool release_inputs(std::size_t index) {
    bool freed = false;
    for (const auto& [slot, references] : claims_[index]) {
      if (slot->remaining_consumers.fetch_sub(references) == references) {
        slot->payload = Payload();
        freed = true;
      }
    }
    return freed;
  }

  // Whether any other node consumes the node's outputs (sinks do not).
  bool produces_for_others(std::size_t index) const { return !successors_[index].empty(); }

  // --- scheduling -------------------------------------------------------------
  // A node is ready when all its producers have finished. At most `threads_`
  // nodes run at once. With a memory limit (max_memory_intensive_nodes > 0) a
  // memory-intensive node waits while that many of them run, and while a
  // running sink (a node whose outputs nobody consumes, e.g. a writer) holds
  // the last claim on an input: that memory is gone when it ends. Of the
  // ready nodes that may start, the first to start is, in this order:
  //  1. the one that frees the most inputs (it holds their last claims),
  //  2. a sink before a node that makes values for others, so that shared
  //     inputs lose their claims before new values are made,
  //  3. the one listed first in the pipeline.
  // Nodes are pure, so the order changes when memory is used, never a result.

  bool memory_intensive(std::size_t index) const {
    return pipeline_.nodes[index].definition->spec().is_memory_intensive();
  }

  bool admissible(std::size_t index) const {
    const int limit = options_.max_memory_intensive_nodes;
    if (limit <= 0 || !memory_intensive(index)) return true;
    if (running_memory_intensive_ >= limit) return false;
    for (std::size_t other : running_nodes_) {
      if (!produces_for_others(other) && inputs_freed_by(other) > 0) return false;
    }
    return true;
  }

  // How many of the node's inputs are freed when it finishes.
  int inputs_freed_by(std::size_t index) const {
    int freed = 0;
    for (const auto& [slot, count] : claims_[index]) freed += slot->remaining_consumers.load() == count ? 1 : 0;
    return freed;
  }

  // Caller holds schedule_mutex_.
  void dispatch_ready_nodes() {
    if (cancel_.load()) ready_.clear();
    while (static_cast<int>(running_nodes_.size()) < threads_ && !ready_.empty()) {
      auto best = ready_.end();
      std::tuple<int, int, std::size_t> best_key{};
      for (auto it = ready_.begin(); it != ready_.end(); ++it) {
        if (!admissible(*it)) continue;
        // Larger is better: more inputs freed, a sink, listed earlier.
        const std::tuple<int, int, std::size_t> key{inputs_freed_by(*it), produces_for_others(*it) ? 0 : 1,
                                                    pipeline_.nodes.size() - *it};
        if (best == ready_.end() || key > best_key) {
          best = it;
          best_key = key;
        }
      }
      if (best == ready_.end()) return;  // only memory-intensive nodes wait
      const std::size_t index = *best;
      ready_.erase(best);
      running_nodes_.insert(index);
      if (memory_intensive(index)) ++running_memory_intensive_;
      group_->run([this, index] {
        execute_node(index);
        node_finished(index);
      });
    }
  }

  void node_finished(std::size_t index) {
    std::lock_guard<std::mutex> lock(schedule_mutex_);
    running_nodes_.erase(index);
    if (memory_intensive(index)) --running_memory_intensive_;
    for (std::size_t successor : successors_[index]) {
      if (--unfinished_producers_[successor] == 0) ready_.push_back(successor);
    }
    dispatch_ready_nodes();
  }

  void execute_node(std::size_t index) {
    const PipelineNode& node = pipeline_.nodes[index];
    NodeRunInfo& info = result_.nodes[index];
    if (cancel_.load()) {
      release_inputs(index);
      return;  // stays NotRun
    }
    const NodeSpec& spec = node.definition->spec();
    info.status = NodeStatus::Running;
    info.start_seconds = seconds_since_start();
    emit({ProgressEvent::Kind::Started, index, 0.0, NodeStatus::Running});
    const double cpu_start = thread_cpu_seconds();

    std::map<std::string, Payload> outputs;
    try {
      NodeContext::Callbacks callbacks;
      callbacks.progress = [this, index](double fraction) {
        emit({ProgressEvent::Kind::Progress, index, fraction, NodeStatus::Running});
      };
      callbacks.log = [this, index](LogLevel level, const std::string& message) {
        if (!options_.on_log) return;
        std::lock_guard<std::mutex> lock(callback_mutex_);
        options_.on_log(index, level, message);
      };
      NodeContext context(node.id, spec, node.params, gather_inputs(node), &cancel_, threads_, std::move(callbacks),
                          &registry_);
      // Isolation keeps a node that uses TBB inside from picking up other
      // pipeline nodes while it waits on its own parallel work.
      tbb::this_task_arena::isolate([&] { node.definition->definition.run(context); });
      for (const PortSpec& port : spec.outputs()) {
        if (!port.optional && context.outputs().count(port.name) == 0) {
          throw std::runtime_error("the node did not produce its output '" + port.name + "'");
        }
      }
      outputs = context.take_outputs();
      info.status = NodeStatus::Succeeded;
    } catch (const Cancelled&) {
      info.status = NodeStatus::Cancelled;
    } catch (const std::exception& error) {
      info.status = NodeStatus::Failed;
      info.error = error.what();
      fail(index, error.what());
    } catch (...) {
      info.status = NodeStatus::Failed;
      info.error = "unknown exception";
      fail(index, info.error);
    }
    bool freed = release_inputs(index);
    for (auto& [port, payload] : outputs) {
      OutputSlot& slot = *slots_[index].at(port);
      // Outputs nobody consumes are dropped now rather than at the end.
      if (slot.remaining_consumers.load() > 0) {
        slot.payload = std::move(payload);
      } else {
        freed = true;
      }
    }
    outputs.clear();
#if defined(__GLIBC__)
    // Hand the pages of freed values back to the system. glibc keeps freed
    // blocks below its (adaptive, up to 32 MiB) mmap threshold in its heaps,
    // where they would count towards the process's peak memory. Done when a
    // value was freed or a memory-intensive node's temporaries are gone
    // (each call takes a few microseconds).
    if (freed || memory_intensive(index)) malloc_trim(0);
#else
    (void)freed;
#endif

    info.cpu_seconds = thread_cpu_seconds() - cpu_start;
    info.end_seconds = seconds_since_start();
    info.wall_seconds = info.end_seconds - info.start_seconds;
    info.peak_memory_bytes = process_peak_memory_bytes();
    emit({ProgressEvent::Kind::Finished, index, 1.0, info.status});
  }

  const Pipeline& pipeline_;
  const NodeRegistry& registry_;
  const RunOptions& options_;
  const int threads_;
  std::vector<std::map<std::string, std::unique_ptr<OutputSlot>>> slots_;
  RunResult result_;
  std::atomic<bool> cancel_{false};
  std::chrono::steady_clock::time_point start_;
  std::mutex mutex_;  // error, finished_
  // Scheduling state, guarded by schedule_mutex_.
  std::mutex schedule_mutex_;
  std::vector<std::vector<std::pair<OutputSlot*, int>>> claims_;  // per node: input slots and its references to each
  std::vector<std::vector<std::size_t>> successors_;              // distinct consumers of each node
  std::vector<std::size_t> unfinished_producers_;
  std::vector<std::size_t> ready_;
  std::set<std::size_t> running_nodes_;
  int running_memory_intensive_ = 0;
  tbb::task_group* group_ = nullptr;
  std::mutex callback_mutex_;  // serialises user callbacks
  std::condition_variable stop_changed_;
  bool finished_ = false;
};

}  // namespace

RunResult run_pipeline(const Pipeline& pipeline, const NodeRegistry& registry, const RunOptions& options) {
  const int threads = options.threads > 0 ? options.threads : tbb::info::default_concurrency();
  registry.apply_thread_budget(threads);
  return PipelineRun(pipeline, registry, options, threads).run();
}

}  // namespace fusionflow
