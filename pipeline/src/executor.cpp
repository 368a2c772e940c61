#include "fusionflow/executor.hpp"

#include <sys/resource.h>
#include <time.h>

#include <oneapi/tbb/flow_graph.h>
#include <oneapi/tbb/info.h>
#include <oneapi/tbb/task_arena.h>

#include <chrono>
#include <condition_variable>
#include <ctime>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <thread>

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
  PipelineRun(const Pipeline& pipeline, const RunOptions& options, int threads)
      : pipeline_(pipeline), options_(options), threads_(threads), slots_(pipeline.nodes.size()) {
    result_.nodes.resize(pipeline.nodes.size());
    result_.threads = threads;
    for (std::size_t i = 0; i < pipeline.nodes.size(); ++i) {
      for (const PortSpec& port : pipeline.nodes[i].definition->spec().outputs()) {
        slots_[i].emplace(port.name, std::make_unique<OutputSlot>());
      }
    }
    for (const PipelineNode& node : pipeline.nodes) {
      for (const auto& [port, refs] : node.inputs) {
        for (const OutputRef& ref : refs) ++slots_[ref.node].at(ref.port)->remaining_consumers;
      }
    }
  }

  RunResult run() {
    result_.started_at_utc = utc_now_iso8601();
    start_ = std::chrono::steady_clock::now();
    std::thread stop_watcher;
    if (options_.stop_requested != nullptr) stop_watcher = std::thread([this] { watch_for_stop(); });

    arena_for(threads_).execute([this] {
      tbb::flow::graph graph;
      {
        std::lock_guard<std::mutex> lock(mutex_);
        graph_ = &graph;
      }
      using FlowNode = tbb::flow::continue_node<tbb::flow::continue_msg>;
      std::vector<std::unique_ptr<FlowNode>> flow_nodes;
      for (std::size_t i = 0; i < pipeline_.nodes.size(); ++i) {
        flow_nodes.push_back(std::make_unique<FlowNode>(graph, [this, i](const tbb::flow::continue_msg&) {
          execute_node(i);
          return tbb::flow::continue_msg();
        }));
      }
      std::set<std::pair<std::size_t, std::size_t>> edges;
      for (std::size_t consumer = 0; consumer < pipeline_.nodes.size(); ++consumer) {
        for (const auto& [port, refs] : pipeline_.nodes[consumer].inputs) {
          for (const OutputRef& ref : refs) edges.emplace(ref.node, consumer);
        }
      }
      std::vector<bool> has_predecessor(pipeline_.nodes.size(), false);
      for (const auto& [producer, consumer] : edges) {
        tbb::flow::make_edge(*flow_nodes[producer], *flow_nodes[consumer]);
        has_predecessor[consumer] = true;
      }
      for (std::size_t i = 0; i < pipeline_.nodes.size(); ++i) {
        if (!has_predecessor[i]) flow_nodes[i]->try_put(tbb::flow::continue_msg());
      }
      graph.wait_for_all();
      std::lock_guard<std::mutex> lock(mutex_);
      graph_ = nullptr;
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
        cancel_.store(true);
        if (graph_ != nullptr) graph_->cancel();
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
    cancel_.store(true);
    // Nodes not yet started will not start; running ones see cancelled().
    if (graph_ != nullptr) graph_->cancel();
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
  void release_inputs(const PipelineNode& node) {
    for (const auto& [port, refs] : node.inputs) {
      for (const OutputRef& ref : refs) {
        OutputSlot& slot = *slots_[ref.node].at(ref.port);
        if (slot.remaining_consumers.fetch_sub(1) == 1) slot.payload = Payload();
      }
    }
  }

  void execute_node(std::size_t index) {
    const PipelineNode& node = pipeline_.nodes[index];
    NodeRunInfo& info = result_.nodes[index];
    if (cancel_.load()) {
      release_inputs(node);
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
      NodeContext context(node.id, spec, node.params, gather_inputs(node), &cancel_, threads_, std::move(callbacks));
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
    release_inputs(node);
    for (auto& [port, payload] : outputs) {
      OutputSlot& slot = *slots_[index].at(port);
      // Outputs nobody consumes are dropped now rather than at the end.
      if (slot.remaining_consumers.load() > 0) slot.payload = std::move(payload);
    }
    outputs.clear();

    info.cpu_seconds = thread_cpu_seconds() - cpu_start;
    info.end_seconds = seconds_since_start();
    info.wall_seconds = info.end_seconds - info.start_seconds;
    info.peak_memory_bytes = process_peak_memory_bytes();
    emit({ProgressEvent::Kind::Finished, index, 1.0, info.status});
  }

  const Pipeline& pipeline_;
  const RunOptions& options_;
  const int threads_;
  std::vector<std::map<std::string, std::unique_ptr<OutputSlot>>> slots_;
  RunResult result_;
  std::atomic<bool> cancel_{false};
  tbb::flow::graph* graph_ = nullptr;
  std::chrono::steady_clock::time_point start_;
  std::mutex mutex_;           // error, graph_, finished_
  std::mutex callback_mutex_;  // serialises user callbacks
  std::condition_variable stop_changed_;
  bool finished_ = false;
};

}  // namespace

RunResult run_pipeline(const Pipeline& pipeline, const NodeRegistry& registry, const RunOptions& options) {
  const int threads = options.threads > 0 ? options.threads : tbb::info::default_concurrency();
  registry.apply_thread_budget(threads);
  return PipelineRun(pipeline, options, threads).run();
}

}  // namespace fusionflow
