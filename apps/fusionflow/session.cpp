#include "session.hpp"

#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include <iostream>
#include <stdexcept>

namespace fusionflow::cli {

void configure_logging(const std::string& level) {
  auto logger = spdlog::stderr_color_mt("fusionflow");
  logger->set_pattern("%^%l%$: %v");
  logger->set_level(spdlog::level::from_str(level));
  spdlog::set_default_logger(logger);
}

Session::Session(const GlobalOptions& options) {
  std::vector<std::filesystem::path> cli_dirs(options.plugin_dirs.begin(), options.plugin_dirs.end());
  const auto search_path = plugin_search_path(cli_dirs);
  for (const auto& dir : search_path) spdlog::debug("plugin directory: {}", dir.string());
  plugin_reports_ = load_plugins(search_path, registry_);
  for (const PluginLoadReport& report : plugin_reports_) {
    if (report.loaded) {
      spdlog::debug("loaded plugin {} {} from {} ({} node types)", report.plugin_name, report.plugin_version,
                    report.file.string(), report.node_types.size());
    }
    for (const std::string& warning : report.warnings) spdlog::warn("plugin {}: {}", report.file.string(), warning);
  }
}

std::vector<std::string> Session::plugin_failures() const {
  std::vector<std::string> failures;
  for (const PluginLoadReport& report : plugin_reports_) {
    if (!report.loaded) failures.push_back(report.file.string() + ": " + report.error);
  }
  return failures;
}

void Session::warn_about_plugin_failures() const {
  for (const std::string& failure : plugin_failures()) spdlog::warn("plugin not loaded: {}", failure);
}

std::map<std::string, std::string> parse_set_options(const std::vector<std::string>& set_options) {
  std::map<std::string, std::string> values;
  for (const std::string& option : set_options) {
    const auto equals = option.find('=');
    if (equals == std::string::npos || equals == 0) {
      throw std::invalid_argument("--set expects name=value, got '" + option + "'");
    }
    values[option.substr(0, equals)] = option.substr(equals + 1);
  }
  return values;
}

std::optional<Pipeline> Session::load_pipeline(const std::string& file, const std::vector<std::string>& set_options) {
  LoadOptions options;
  try {
    options.variable_overrides = parse_set_options(set_options);
  } catch (const std::invalid_argument& error) {
    std::cerr << "error: " << error.what() << "\n";
    return std::nullopt;
  }
  options.plugin_failures = plugin_failures();
  LoadResult result = load_pipeline_file(file, registry_, options);
  if (!result.ok()) {
    for (const Diagnostic& diagnostic : result.diagnostics) std::cerr << format_diagnostic(file, diagnostic) << "\n";
    std::cerr << file << ": " << result.diagnostics.size()
              << (result.diagnostics.size() == 1 ? " problem" : " problems") << " found; nothing was run\n";
    return std::nullopt;
  }
  return std::move(result.pipeline);
}

}  // namespace fusionflow::cli
