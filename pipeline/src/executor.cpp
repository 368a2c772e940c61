#include "fusionflow/executor.hpp"

#include <sys/resource.h>
#include <time.h>
#if defined(__GLIBC__)
#include <malloc.h>
#endif

#include <oneapi/tbb/info.h>
#include <oneapi/tbb/task_arena.h>
#include <oneapi/tbb/task_group.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <ctime>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <thread>
#include <tuple>

#include "fusionflow/file_activity.hpp"
#include "fusionflow/node_cache.hpp"

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

std::string utc_now_iso8601() {
  const std::time_t now = std::time(nullptr);
  std::tm utc{};
  gmtime_r(&now, &utc);
  char text[32];
  std::strftime(text, sizeof text, "%Y-%m-%dT%H:%M:%SZ", &utc);
  return text;
}

std::size_t process_peak_memory_bytes() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  return static_cast<std::size_t>(usage.ru_maxrss) * 1024;  // Linux reports KiB
}

namespace {

double cpu_seconds_of(clockid_t clock) {
  timespec now{};
  clock_gettime(clock, &now);
  return static_cast<double>(now.tv_sec) + static_cast<double>(now.tv_nsec) * 1e-9;
}
double thread_cpu_seconds() { return cpu_seconds_of(CLOCK_THREAD_CPUTIME_ID); }
double process_cpu_seconds() { return cpu_seconds_of(CLOCK_PROCESS_CPUTIME_ID); }

// One output port's value, and how many consumer references still need it.
// With a cache, a value from a cache hit stays in the cache until a node that
// runs needs it (`cached`): nodes that hit too need only its content hash.
struct OutputSlot {
  Payload payload;
  std::atomic<int> remaining_consumers{0};
  std::string content_hash;  // with a cache: SHA-256 of the value's encoding, if its type has a codec
  std::shared_ptr<const CacheEntry> cached_entry;
  const CachedOutput* cached = nullptr;
  const PayloadCodec* codec = nullptr;
  std::mutex load_mutex;
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
    overlapped_.assign(count, 0);
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
      for (const OutputRef& ref : refs) values.push_back(slot_value(*slots_[ref.node].at(ref.port)));
    }
    return inputs;
  }

  // The slot's value, read from the cache the first time a running node needs it.
  Payload slot_value(OutputSlot& slot) const {
    std::lock_guard<std::mutex> lock(slot.load_mutex);
    if (slot.payload.empty() && slot.cached != nullptr) {
      slot.payload = options_.cache->load(*slot.cached_entry, *slot.cached, *slot.codec);
    }
    return slot.payload;
  }

  const PayloadCodec* codec_of(const std::string& type) const {
    const RegisteredPayloadType* registered = registry_.find_payload_type(type);
    return registered != nullptr && registered->codec.usable() ? &registered->codec : nullptr;
  }

  void log_for(std::size_t index, LogLevel level, const std::string& message) {
    if (!options_.on_log) return;
    std::lock_guard<std::mutex> lock(callback_mutex_);
    options_.on_log(index, level, message);
  }

  // --- the node cache -----------------------------------------------------------
  // The node's key, or why it has none (info.cache).
  std::optional<CacheKey> cache_key_for(std::size_t index, NodeRunInfo& info) const {
    const PipelineNode& node = pipeline_.nodes[index];
    std::string reason = node_uncacheable_reason(node, registry_);
    std::map<std::string, std::vector<std::string>> input_hashes;
    for (const auto& [port, refs] : node.inputs) {
      if (!reason.empty()) break;
      for (const OutputRef& ref : refs) {
        const OutputSlot& slot = *slots_[ref.node].at(ref.port);
        if (slot.content_hash.empty()) {
          reason = "input '" + port + "' from '" + pipeline_.nodes[ref.node].id + "' has no content hash (" +
                   pipeline_.nodes[ref.node].definition->spec().find_output(ref.port)->type + " without a codec)";
          break;
        }
        input_hashes[port].push_back(slot.content_hash);
      }
    }
    if (reason.empty()) {
      try {
        CacheKey key = node_cache_key(node, input_hashes, registry_);
        info.cache_key = key.hex;
        return key;
      } catch (const std::exception& error) {
        reason = error.what();
      }
    }
    info.cache = "not cacheable: " + reason;
    return std::nullopt;
  }

  void clear_cached_outputs(std::size_t index) {
    for (auto& [port, slot] : slots_[index]) {
      slot->payload = Payload();
      slot->content_hash.clear();
      slot->cached_entry.reset();
      slot->cached = nullptr;
      slot->codec = nullptr;
    }
  }

  // Takes the node's results from a cache entry: its files are written where
  // the node's output paths put them, its values wait in the cache. A loader
  // whose input file has moved gets its values with the new path.
  void use_cache_entry(std::size_t index, CacheEntry found) {
    const PipelineNode& node = pipeline_.nodes[index];
    const NodeCache& cache = *options_.cache;
    std::vector<std::pair<std::string, std::string>> moved;
    for (const auto& [param, old_value] : found.input_paths) {
      auto current = node.params.find(param);
      const auto* value = current == node.params.end() ? nullptr : std::get_if<std::string>(&current->second);
      if (value != nullptr && *value != old_value && !old_value.empty()) moved.emplace_back(old_value, *value);
    }
    const PortSpec* missing = nullptr;
    for (const PortSpec& port : node.definition->spec().outputs()) {
      const bool stored = std::any_of(found.outputs.begin(), found.outputs.end(),
                                      [&](const CachedOutput& output) { return output.port == port.name; });
      if (!stored && !port.optional) missing = &port;
    }
    if (missing != nullptr) throw std::runtime_error("the entry lacks output '" + missing->name + "'");
    cache.restore_files(found, node);
    auto entry = std::make_shared<const CacheEntry>(std::move(found));
    for (const CachedOutput& output : entry->outputs) {
      auto slot_it = slots_[index].find(output.port);
      if (slot_it == slots_[index].end())
        throw std::runtime_error("the entry has an unknown output '" + output.port + "'");
      OutputSlot& slot = *slot_it->second;
      const PayloadCodec* codec = codec_of(output.type);
      if (codec == nullptr || output.type != node.definition->spec().find_output(output.port)->type) {
        throw std::runtime_error("the entry's output '" + output.port + "' is of type " + output.type);
      }
      if (slot.remaining_consumers.load() == 0) continue;
      if (!moved.empty() && codec->relocate) {
        Payload value = cache.load(*entry, output, *codec);
        for (const auto& [from, to] : moved) value = codec->relocate(value, from, to);
        slot.content_hash = payload_content_sha256(*codec, value);
        slot.payload = std::move(value);
      } else {
        slot.content_hash = output.sha256;
        slot.cached_entry = entry;
        slot.cached = &output;
        slot.codec = codec;
      }
    }
  }

  // After the node ran: its results into the cache (when it has a key) and
  // the content hash of every value later nodes take.
  void record_outputs(std::size_t index, const std::optional<CacheKey>& key, const FileActivity& activity,
                      const std::map<std::string, Payload>& outputs, NodeRunInfo& info) {
    const PipelineNode& node = pipeline_.nodes[index];
    std::map<std::string, std::string> hashes;
    if (key && !activity.untracked.empty()) {
      info.cache = "not stored: " + activity.untracked.front();
    } else if (key) {
      std::vector<NodeCache::Value> values;
      for (const auto& [port, payload] : outputs) {
        values.push_back({port, payload.type_name(), &payload, codec_of(payload.type_name())});
      }
      try {
        hashes = options_.cache->store(*key, node, values, activity);
      } catch (const std::exception& error) {
        log_for(index, LogLevel::Warn, std::string("cache: the results were not stored: ") + error.what());
        info.cache = "not stored: " + std::string(error.what());
      }
    }
    for (const auto& [port, payload] : outputs) {
      OutputSlot& slot = *slots_[index].at(port);
      if (slot.remaining_consumers.load() == 0) continue;
      auto known = hashes.find(port);
      if (known != hashes.end()) {
        slot.content_hash = known->second;
      } else if (const PayloadCodec* codec = codec_of(payload.type_name())) {
        slot.content_hash = payload_content_sha256(*codec, payload);
      }
    }
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
      if (!running_nodes_.empty()) {
        overlapped_[index] = 1;
        for (std::size_t other : running_nodes_) overlapped_[other] = 1;
      }
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
    result_.nodes[index].ran_alone = overlapped_[index] == 0;
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
    CpuClocks cpu_start;
    // The process's interval encloses the thread's (read first, read last).
    cpu_start.process = process_cpu_seconds();
    cpu_start.thread = thread_cpu_seconds();

    std::map<std::string, Payload> outputs;
    std::optional<CacheKey> key;
    if (options_.cache != nullptr) {
      key = cache_key_for(index, info);
      if (key) {
        CacheLookup found = options_.cache->lookup(key->hex, node);
        if (found.corrupt) log_for(index, LogLevel::Warn, "cache: " + found.reason + "; recomputing");
        info.cache = found.entry ? "hit" : (found.reason.empty() ? "miss" : "miss: " + found.reason);
        if (found.entry) {
          try {
            use_cache_entry(index, std::move(*found.entry));
            info.status = NodeStatus::Succeeded;
          } catch (const std::exception& error) {
            clear_cached_outputs(index);
            log_for(index, LogLevel::Warn,
                    std::string("cache: the entry cannot be used (") + error.what() + "); recomputing");
            info.cache = std::string("miss: ") + error.what();
          }
        }
      }
    }
    if (info.status == NodeStatus::Succeeded) {
      finish_node_info(index, info, cpu_start, release_inputs(index));
      return;
    }
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
      FileActivityScope files;
      // Isolation keeps a node that uses TBB inside from picking up other
      // pipeline nodes while it waits on its own parallel work.
      tbb::this_task_arena::isolate([&] { node.definition->definition.run(context); });
      for (const PortSpec& port : spec.outputs()) {
        if (!port.optional && context.outputs().count(port.name) == 0) {
          throw std::runtime_error("the node did not produce its output '" + port.name + "'");
        }
      }
      outputs = context.take_outputs();
      if (options_.cache != nullptr) record_outputs(index, key, files.activity(), outputs, info);
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
    finish_node_info(index, info, cpu_start, freed);
  }

  struct CpuClocks {
    double thread = 0;
    double process = 0;
  };

  void finish_node_info(std::size_t index, NodeRunInfo& info, const CpuClocks& cpu_start, bool freed = false) {
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

    info.cpu_seconds = thread_cpu_seconds() - cpu_start.thread;
    info.process_cpu_seconds = process_cpu_seconds() - cpu_start.process;
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
  std::vector<char> overlapped_;  // per node: another node was running at some moment of its run
  int running_memory_intensive_ = 0;
  tbb::task_group* group_ = nullptr;
  std::mutex callback_mutex_;  // serialises user callbacks
  std::condition_variable stop_changed_;
  bool finished_ = false;
};

}  // namespace

namespace {

// Nodes allocate and free many buffers of a few MiB (a 512 x 512 slice in
// double is 2 MiB; metrics.fusion makes ~100 of them per slice). glibc
// serves such sizes by mmap, or trims them off its heaps once freed, so
// every one was faulted in and zeroed by the kernel again: a quarter of the
// time of metrics.fusion at 512 x 512 x 300 was system time. Buffers below
// 32 MiB now stay in the heaps between uses; memory goes back to the system
// when a node ends (malloc_trim in finish_node_info), so the peak is
// unchanged (measured: bench/pipeline, README).
void keep_medium_buffers_in_the_heap() {
#if defined(__GLIBC__)
  static std::once_flag once;
  std::call_once(once, [] {
    mallopt(M_MMAP_THRESHOLD, 32 << 20);
    mallopt(M_TRIM_THRESHOLD, 512 << 20);
  });
#endif
}

}  // namespace

RunResult run_pipeline(const Pipeline& pipeline, const NodeRegistry& registry, const RunOptions& options) {
  keep_medium_buffers_in_the_heap();
  const int threads = options.threads > 0 ? options.threads : tbb::info::default_concurrency();
  registry.apply_thread_budget(threads);
  return PipelineRun(pipeline, registry, options, threads).run();
}

}  // namespace fusionflow
