// Pipeline definitions: loading a pipeline JSON file into a checked,
// ready-to-run Pipeline, or into the complete list of what is wrong with it.
//
// The format is documented in docs/pipeline-format.md with the JSON Schema in
// docs/pipeline.schema.json.
#pragma once

#include <cstddef>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "fusionflow/param.hpp"
#include "fusionflow/registry.hpp"

namespace fusionflow {

constexpr int kPipelineFormatVersion = 1;

// What a pipeline may hold (docs/pipeline-format.md, "Limits"). They are far
// above what real pipelines need and are checked before or while parsing, so
// that no file, whatever its bytes, can make loading crash, hang or exhaust
// memory.
struct PipelineLimits {
  // Size of the pipeline file (or text), checked before reading it.
  static constexpr std::size_t max_file_bytes = 16u << 20;
  // Objects and lists nested in each other, the document itself counting as 1
  // (a parameter list inside a node is at depth 5).
  static constexpr std::size_t max_depth = 64;
  // Node ids, node types and variable names.
  static constexpr std::size_t max_name_length = 256;
  // One variable or string parameter after ${name} substitution ...
  static constexpr std::size_t max_expanded_bytes = 1u << 20;
  // ... and all of them together.
  static constexpr std::size_t max_total_expanded_bytes = 64u << 20;
  // Problems listed for one file; the rest are counted.
  static constexpr std::size_t max_diagnostics = 1000;
};

// One problem found while loading: where (a JSON pointer such as
// "/nodes/2/params/sigma", or "line 4, column 7" for syntax errors), what,
// and what to do about it.
struct Diagnostic {
  std::string location;
  std::string message;
  std::string hint;
};

std::string format_diagnostic(const std::string& source_name, const Diagnostic& diagnostic);

struct OutputRef {
  std::size_t node = 0;  // index into Pipeline::nodes
  std::string port;
};

struct PipelineNode {
  std::string id;
  std::string type;
  const RegisteredNode* definition = nullptr;
  std::map<std::string, ParamValue> params;              // every declared parameter, defaults filled in
  std::map<std::string, std::vector<OutputRef>> inputs;  // by input port
};

struct Pipeline {
  std::string source_name;          // file path, or a label for in-memory text
  std::filesystem::path directory;  // ${pipeline_dir}
  std::string source_sha256;        // of the file's bytes
  int format_version = kPipelineFormatVersion;
  std::string description;
  std::map<std::string, std::string> variables;  // after --set overrides
  std::vector<PipelineNode> nodes;               // in file order
  std::vector<std::size_t> topological_order;

  std::optional<std::size_t> find_node(const std::string& id) const;
  // Output paths written by the pipeline's nodes, and input paths they read.
  std::vector<std::filesystem::path> input_paths() const;
};

struct LoadOptions {
  std::map<std::string, std::string> variable_overrides;  // --set name=value
  // Printed with "unknown node type" errors so the user sees why a plugin
  // that would provide it is missing.
  std::vector<std::string> plugin_failures;
};

struct LoadResult {
  std::optional<Pipeline> pipeline;  // set only when diagnostics is empty
  std::vector<Diagnostic> diagnostics;
  bool ok() const { return pipeline.has_value(); }
};

LoadResult load_pipeline_file(const std::filesystem::path& file, const NodeRegistry& registry,
                              const LoadOptions& options = {});
LoadResult load_pipeline_text(const std::string& text, const std::string& source_name,
                              const std::filesystem::path& directory, const NodeRegistry& registry,
                              const LoadOptions& options = {});

// Canonical JSON of a parameter value (for records and hashes).
std::string param_value_to_json(const ParamValue& value);

}  // namespace fusionflow
