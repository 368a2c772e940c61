// The run record: what ran, with which parameters and versions, how long each
// node took and how it ended. Written by `fusionflow run --record FILE`.
#pragma once

#include <string>
#include <vector>

#include "fusionflow/executor.hpp"
#include "fusionflow/pipeline.hpp"
#include "fusionflow/plugin_loader.hpp"

namespace fusionflow {

constexpr int kRunRecordFormatVersion = 1;

// Pretty-printed JSON. Holds no patient identifiers: only parameters the
// pipeline set, node timings and versions.
std::string run_record_json(const Pipeline& pipeline, const RunResult& result,
                            const std::vector<PluginLoadReport>& plugins, int exit_code);

// Hash of the pipeline after variable substitution: node ids, types, node
// versions, parameters and connections (stable across formatting changes of
// the file).
std::string resolved_pipeline_sha256(const Pipeline& pipeline);

}  // namespace fusionflow
