// Variable substitution: the first line of the input is a parameter value
// (a template such as "${out}/x.csv"), every further line `name=value`
// declares a pipeline variable with that default, and lines starting with
// `!` are --set overrides (`!name=value`). Names, values and the template
// are put into the JSON properly escaped, so the fuzzer works on the
// substitution rules rather than on JSON syntax.
#include <cstddef>
#include <cstdint>
#include <sstream>
#include <string>
#include <nlohmann/json.hpp>
#include "fuzz_support.hpp"
#include "fusionflow/pipeline.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const fusionflow::NodeRegistry& registry = fusionflow::fuzz::bundled_registry();
  std::istringstream lines(std::string(reinterpret_cast<const char*>(data), size));
  std::string value_template;
  std::getline(lines, value_template);
  nlohmann::json variables = nlohmann::json::object();
  fusionflow::LoadOptions options;
  for (std::string line; std::getline(lines, line);) {
    const bool is_override = !line.empty() && line[0] == '!';
    const std::string assignment = is_override ? line.substr(1) : line;
    const std::size_t equals = assignment.find('=');
    if (equals == std::string::npos) continue;
    const std::string name = assignment.substr(0, equals);
    const std::string value = assignment.substr(equals + 1);
    if (is_override) {
      options.variable_overrides[name] = value;
    } else {
      variables[name] = value;
    }
  }
  nlohmann::json pipeline = {
      {"format_version", 1},
      {"variables", variables},
      {"nodes",
       {{{"id", "table"}, {"type", "core.volume_stats"}, {"inputs", {{"volume", "volume.volume"}}}},
        {{"id", "volume"}, {"type", "core.synthetic_volume"}},
        {{"id", "write"},
         {"type", "core.write_table"},
         {"params", {{"path", value_template}}},
         {"inputs", {{"table", "table.stats"}}}}}}};
  std::string text;
  try {
    text = pipeline.dump();
  } catch (const nlohmann::json::exception&) {
    return 0;  // not UTF-8: nlohmann refuses to write it, so no pipeline file could hold it
  }
  const fusionflow::LoadResult result =
      fusionflow::load_pipeline_text(text, "fuzz.json", "/nonexistent", registry, options);
  if (result.ok() == !result.diagnostics.empty()) __builtin_trap();
  return 0;
}
