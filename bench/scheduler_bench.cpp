// Scheduler overhead per node: pipelines of no-op nodes run by the executor.
// Target: at most 20 microseconds per node on a 2-core machine.
#include <benchmark/benchmark.h>

#include <fusionflow/executor.hpp>
#include <fusionflow/sdk.hpp>

#include <filesystem>
#include <stdexcept>
#include <string>

namespace {
using namespace fusionflow;

struct Token {
  int value = 0;
};
}  // namespace
FUSIONFLOW_PAYLOAD_TYPE(Token, "Token");

namespace {

NodeRegistry& registry() {
  static NodeRegistry instance = [] {
    NodeRegistry r;
    r.add_payload_type("Token", "benchmark token");
    NodeSpec spec("bench.noop", "1.0.0", "passes a token on");
    spec.multi_input<Token>("in", "tokens", true).output<Token>("out", "a token");
    r.add_node({spec, [](NodeContext& ctx) { ctx.output("out", Token{1}); }});
    return r;
  }();
  return instance;
}

std::string node(int index, const std::string& inputs) {
  return R"({"id": "n)" + std::to_string(index) + R"(", "type": "bench.noop")" +
         (inputs.empty() ? "" : R"(, "inputs": {"in": [)" + inputs + "]}") + "}";
}

std::string chain(int count) {
  std::string nodes = node(0, "");
  for (int i = 1; i < count; ++i) nodes += ",\n" + node(i, "\"n" + std::to_string(i - 1) + ".out\"");
  return nodes;
}

// One source, count - 2 parallel nodes, one sink that joins them all.
std::string fan_out_fan_in(int count) {
  std::string nodes = node(0, "");
  std::string joined;
  for (int i = 1; i < count - 1; ++i) {
    nodes += ",\n" + node(i, "\"n0.out\"");
    joined += (joined.empty() ? "\"n" : ", \"n") + std::to_string(i) + ".out\"";
  }
  nodes += ",\n" + node(count - 1, joined);
  return nodes;
}

Pipeline load(const std::string& nodes) {
  LoadResult result = load_pipeline_text(R"({"format_version": 1, "nodes": [)" + nodes + "]}", "bench",
                                         std::filesystem::current_path(), registry());
  if (!result.ok()) throw std::runtime_error(result.diagnostics.front().message);
  return std::move(*result.pipeline);
}

void run(benchmark::State& state, const Pipeline& pipeline) {
  RunOptions options;
  options.threads = static_cast<int>(state.range(1));
  for (auto _ : state) {
    RunResult result = run_pipeline(pipeline, registry(), options);
    if (!result.succeeded) state.SkipWithError(result.error.c_str());
    benchmark::DoNotOptimize(result);
  }
  const double nodes = static_cast<double>(pipeline.nodes.size());
  state.counters["per_node"] = benchmark::Counter(nodes * static_cast<double>(state.iterations()),
                                                  benchmark::Counter::kIsRate | benchmark::Counter::kInvert);
}

void BM_Chain(benchmark::State& state) { run(state, load(chain(static_cast<int>(state.range(0))))); }
void BM_FanOutFanIn(benchmark::State& state) { run(state, load(fan_out_fan_in(static_cast<int>(state.range(0))))); }

BENCHMARK(BM_Chain)
    ->ArgsProduct({{10, 100, 1000}, {2}})
    ->ArgNames({"nodes", "threads"})
    ->Unit(benchmark::kMicrosecond)
    ->UseRealTime();
BENCHMARK(BM_FanOutFanIn)
    ->ArgsProduct({{10, 100, 1000}, {2}})
    ->ArgNames({"nodes", "threads"})
    ->Unit(benchmark::kMicrosecond)
    ->UseRealTime();

}  // namespace

BENCHMARK_MAIN();
