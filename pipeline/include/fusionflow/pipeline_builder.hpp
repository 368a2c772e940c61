// Building a pipeline in C++: add nodes, set parameters, connect ports, then
// build. The result goes through the same loader and checks as a pipeline
// file (one validator: node types, parameter values, connections, cycles,
// output paths), so a program or a test never writes JSON text to run a
// node, and gets the same diagnostics a file would.
//
//   PipelineBuilder builder("fusionflow phantom");
//   builder.add_node("phantom", "testdata.write_phantom").set_param("phantom", "out", "phantom/");
//   builder.add_node("ct", "io.load_ct").set_param("ct", "path", "phantom/ct.nii.gz");
//   builder.add_node("stats", "core.volume_stats").connect("ct.volume", "stats.volume");
//   LoadResult loaded = builder.build(registry);
//   if (loaded.ok()) run_pipeline(*loaded.pipeline, registry, options);
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <utility>
#include <vector>

#include "fusionflow/param.hpp"
#include "fusionflow/pipeline.hpp"

namespace fusionflow {

class PipelineBuilder {
 public:
  // `source_name` names the pipeline in diagnostics and run records.
  explicit PipelineBuilder(std::string source_name = "(built in code)");

  PipelineBuilder& description(std::string text);
  PipelineBuilder& add_node(std::string id, std::string type);
  // Throws std::invalid_argument if no node `id` was added (a bug in the
  // caller); the value itself is checked by build().
  PipelineBuilder& set_param(const std::string& id, const std::string& name, ParamValue value);
  PipelineBuilder& set_param(const std::string& id, const std::string& name, const char* text) {
    return set_param(id, name, ParamValue(std::string(text)));
  }
  PipelineBuilder& set_param(const std::string& id, const std::string& name, int number) {
    return set_param(id, name, ParamValue(std::int64_t{number}));
  }
  // A string parameter whose ${name} references are replaced by the
  // pipeline's variables when it is built, as in a file (set_param takes
  // text as it is).
  PipelineBuilder& set_param_template(const std::string& id, const std::string& name, const std::string& text);
  // "producer.port" feeds "consumer.port"; several producers of one
  // multi-input port are kept in the order they are connected.
  PipelineBuilder& connect(const std::string& output, const std::string& input);
  // A variable of the pipeline (docs/pipeline-format.md, "Variables") that
  // templates refer to as ${name}; LoadOptions::variable_overrides (--set)
  // replace its default. Declaring a name again replaces it.
  PipelineBuilder& variable(const std::string& name, const std::string& default_value,
                            const std::string& description = "");

  // The nodes added so far, as (id, type), in order.
  std::vector<std::pair<std::string, std::string>> nodes() const;
  // The node types' names of the nodes added so far, by id; empty if none.
  std::string node_type(const std::string& id) const;

  // A pipeline file's text as a builder, to change in code: its nodes,
  // parameters (${name} references kept), connections, variables and
  // description. Throws std::invalid_argument if the text is not JSON or
  // not shaped like a pipeline file; load it first (load_pipeline_text)
  // for the complete list of problems with their locations.
  static PipelineBuilder from_json(const std::string& text, std::string source_name);

  // The pipeline, checked as a file would be, or the complete list of what
  // is wrong. Relative paths are relative to `directory`.
  LoadResult build(const NodeRegistry& registry, const LoadOptions& options = {},
                   const std::filesystem::path& directory = std::filesystem::current_path()) const;
  // The same pipeline as a pipeline file (docs/pipeline-format.md).
  std::string to_json() const;

 private:
  // Parameter values and variables are kept as the JSON text they are
  // written as, so that a file read with from_json is written back as it was.
  struct Node {
    std::string id;
    std::string type;
    std::vector<std::pair<std::string, std::string>> params;               // name -> JSON value
    std::vector<std::pair<std::string, std::vector<std::string>>> inputs;  // port -> producers
  };
  Node& find(const std::string& id, const char* what);
  PipelineBuilder& set_param_json(const std::string& id, const std::string& name, std::string json_value);

  std::string source_name_;
  std::string description_;
  std::vector<std::pair<std::string, std::string>> variables_;  // name -> JSON of its entry
  std::vector<Node> nodes_;
};

}  // namespace fusionflow
