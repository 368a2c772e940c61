// The pipeline loader on arbitrary bytes: any input must end in a loaded
// pipeline or in diagnostics, never in a crash, a hang or a runaway
// allocation (libFuzzer's -timeout and -rss_limit_mb catch the last two).
#include <cstddef>
#include <cstdint>
#include <string>
#include "fuzz_support.hpp"
#include "fusionflow/pipeline.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const fusionflow::NodeRegistry& registry = fusionflow::fuzz::bundled_registry();
  const std::string text(reinterpret_cast<const char*>(data), size);
  const fusionflow::LoadResult result = fusionflow::load_pipeline_text(text, "fuzz.json", "/nonexistent", registry);
  // Every refusal says where and what.
  for (const fusionflow::Diagnostic& diagnostic : result.diagnostics) {
    if (diagnostic.message.empty()) __builtin_trap();
  }
  if (result.ok() == !result.diagnostics.empty()) __builtin_trap();
  return 0;
}
