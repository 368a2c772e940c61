// What every subcommand shares: logging set-up, the registry and the plugins
// loaded into it, and the exit codes.
#pragma once

#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include <fusionflow/pipeline.hpp>
#include <fusionflow/plugin_loader.hpp>
#include <fusionflow/registry.hpp>

namespace fusionflow::cli {

// Documented in README.md and docs/cli.md.
enum ExitCode : int { kSuccess = 0, kRunFailed = 1, kInvalid = 2 };

struct GlobalOptions {
  std::vector<std::string> plugin_dirs;
  std::string log_level = "info";
};

class Session {
 public:
  explicit Session(const GlobalOptions& options);

  NodeRegistry& registry() { return registry_; }
  const std::vector<PluginLoadReport>& plugin_reports() const { return plugin_reports_; }
  // "file: reason" for each plugin that did not load.
  std::vector<std::string> plugin_failures() const;
  // Warns (on stderr) about each plugin that did not load.
  void warn_about_plugin_failures() const;

  // Loads and checks a pipeline; prints every diagnostic on failure.
  std::optional<Pipeline> load_pipeline(const std::string& file, const std::vector<std::string>& set_options);

 private:
  NodeRegistry registry_;
  std::vector<PluginLoadReport> plugin_reports_;
};

// Parses "name=value" pairs from --set; throws std::invalid_argument on a
// malformed one.
std::map<std::string, std::string> parse_set_options(const std::vector<std::string>& set_options);

void configure_logging(const std::string& level);

}  // namespace fusionflow::cli
