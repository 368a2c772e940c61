// The run report (`fusionflow run --report FILE`, docs/visualization.md, "Run
// report"): one self-contained HTML page that shows what a run did and
// whether it worked. It is built after the run from what the run produced:
// the pictures, tables and transforms its nodes wrote (their output_path
// parameters), the slice viewer's volumes (a viz.report_volumes folder), the
// node timings and versions of the run record, the messages nodes logged and
// the pipeline graph (Graphviz). Everything is inside the page (images,
// volumes, the NiiVue viewer), so it opens from a file:// URL with no network.
#pragma once

#include <cstddef>
#include <filesystem>
#include <string>
#include <vector>

#include <fusionflow/executor.hpp>
#include <fusionflow/pipeline.hpp>
#include <fusionflow/plugin_loader.hpp>

namespace fusionflow::cli {

struct NodeLogMessage {
  std::size_t node = 0;  // index into Pipeline::nodes
  LogLevel level = LogLevel::Info;
  std::string message;
};

struct RunReportInput {
  const Pipeline* pipeline = nullptr;
  const RunResult* result = nullptr;
  const std::vector<PluginLoadReport>* plugins = nullptr;
  std::vector<NodeLogMessage> messages;  // in the order nodes logged them
  // run_record_json() of the run: the page shows variables and parameters as
  // the record does, confidential ones withheld.
  std::string run_record;
};

// The folder with the page's scripts (niivue.umd.js): $FUSIONFLOW_WEB_DIR, else
// <prefix>/share/fusionflow/web beside the executable's bin/ folder.
std::filesystem::path web_assets_directory();

// The page. Missing pieces (no viewer volumes, no NiiVue bundle, no Graphviz)
// are said so in the page; `notes` receives one line for each.
std::string run_report_html(const RunReportInput& input, const std::filesystem::path& web_directory,
                            std::vector<std::string>& notes);

}  // namespace fusionflow::cli
