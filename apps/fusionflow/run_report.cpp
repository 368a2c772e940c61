#include "run_report.hpp"

#include "commands.hpp"
#include "report_html.hpp"

#include <openssl/evp.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <map>
#include <memory>
#include <optional>
#include <regex>
#include <sstream>

#include <fusionflow/graph.hpp>
#include <fusionflow/version.hpp>
#include <nlohmann/json.hpp>
#include <spdlog/fmt/fmt.h>

namespace fusionflow::cli {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

std::string base64(std::string_view bytes) {
  std::string out(4 * ((bytes.size() + 2) / 3) + 1, '\0');
  const int length =
      EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                      reinterpret_cast<const unsigned char*>(bytes.data()), static_cast<int>(bytes.size()));
  out.resize(static_cast<std::size_t>(std::max(length, 0)));
  return out;
}

std::string format_cell(const json& value) {
  if (value.is_null()) return "&ndash;";
  if (value.is_number()) return format_number(value.get<double>());
  if (value.is_string()) return escape_html(value.get<std::string>());
  if (value.is_boolean()) return value.get<bool>() ? "yes" : "no";
  return escape_html(value.dump());
}

const char* level_name(LogLevel level) {
  switch (level) {
    case LogLevel::Trace: return "trace";
    case LogLevel::Debug: return "debug";
    case LogLevel::Info: return "info";
    case LogLevel::Warn: return "warning";
    case LogLevel::Error: return "error";
  }
  return "info";
}

// A file a node wrote: an output_path parameter of a node that succeeded.
struct OutputFile {
  std::size_t node = 0;
  fs::path path;
};

std::vector<OutputFile> output_files(const Pipeline& pipeline, const RunResult& result) {
  std::vector<OutputFile> files;
  for (std::size_t n = 0; n < pipeline.nodes.size(); ++n) {
    if (n >= result.nodes.size() || result.nodes[n].status != NodeStatus::Succeeded) continue;
    const PipelineNode& node = pipeline.nodes[n];
    if (node.definition == nullptr) continue;
    for (const ParamSpec& spec : node.definition->spec().params()) {
      if (spec.kind != ParamKind::OutputPath) continue;
      const auto found = node.params.find(spec.name);
      if (found == node.params.end()) continue;
      const auto* text = std::get_if<std::string>(&found->second);
      if (text == nullptr || text->empty()) continue;
      files.push_back({n, fs::absolute(*text).lexically_normal()});
    }
  }
  return files;
}

bool has_extension(const fs::path& path, std::string_view extension) {
  const std::string name = path.filename().string();
  return name.size() >= extension.size() &&
         std::equal(extension.rbegin(), extension.rend(), name.rbegin(), [](char a, char b) {
           return std::tolower(static_cast<unsigned char>(a)) == std::tolower(static_cast<unsigned char>(b));
         });
}

std::string node_caption(const PipelineNode& node) {
  return "<code>" + escape_html(node.id) + "</code> (" + escape_html(node.type) + ")";
}

// --- sections --------------------------------------------------------------

std::string summary_section(const RunReportInput& input, const json& record) {
  const Pipeline& pipeline = *input.pipeline;
  const RunResult& result = *input.result;
  std::string status = result.succeeded ? "succeeded" : (result.stopped_by_user ? "stopped" : "failed");
  std::string html = "<section id=\"summary\"><h2>Run</h2><table class=\"facts\">";
  html += "<tr><th>Pipeline</th><td><code>" + escape_html(pipeline.source_name) + "</code></td></tr>";
  html += "<tr><th>Status</th><td><span class=\"status " + status + "\">" + status + "</span>" +
          (result.error.empty() ? "" : " " + escape_html(result.error)) + "</td></tr>";
  html += "<tr><th>Started</th><td>" + escape_html(result.started_at_utc) + "</td></tr>";
  html += "<tr><th>Wall time</th><td>" + fmt::format("{:.2f}", result.wall_seconds) + " s on " +
          std::to_string(result.threads) + " threads</td></tr>";
  html += "<tr><th>Peak memory</th><td>" + mebibytes(static_cast<double>(result.peak_memory_bytes)) +
          " MiB (process resident)</td></tr>";
  html += "<tr><th>fusionflow</th><td>" + escape_html(version_string()) + "</td></tr>";
  if (record.contains("variables") && record["variables"].is_object()) {
    for (const auto& [name, value] : record["variables"].items()) {
      html += "<tr><th>${" + escape_html(name) + "}</th><td><code>" + format_cell(value) + "</code></td></tr>";
    }
  }
  html += "</table>";
  if (!pipeline.description.empty()) html += "<p class=\"description\">" + escape_html(pipeline.description) + "</p>";
  return html + "</section>\n";
}

std::string warnings_section(const RunReportInput& input) {
  std::string items;
  for (const NodeLogMessage& message : input.messages) {
    if (message.level != LogLevel::Warn && message.level != LogLevel::Error) continue;
    items += "<li class=\"" + std::string(level_name(message.level)) + "\">" +
             node_caption(input.pipeline->nodes[message.node]) + ": " + escape_html(message.message) + "</li>";
  }
  if (!input.result->error.empty()) items += "<li class=\"error\">" + escape_html(input.result->error) + "</li>";
  std::string html = "<section id=\"warnings\"><h2>Warnings</h2>";
  html += items.empty() ? "<p>None.</p>" : "<ul class=\"messages\">" + items + "</ul>";
  return html + "</section>\n";
}

std::string figures_section(const RunReportInput& input, const std::vector<OutputFile>& files) {
  std::string html = "<section id=\"figures\"><h2>Pictures</h2><div class=\"figures\">";
  int shown = 0;
  for (const OutputFile& file : files) {
    if (!has_extension(file.path, ".png")) continue;
    const auto bytes = read_bounded_file(file.path, kMaxEmbeddedFileBytes);
    if (!bytes) continue;
    const PipelineNode& node = input.pipeline->nodes[file.node];
    html += "<figure><img alt=\"" + escape_html(file.path.filename().string()) + "\" src=\"data:image/png;base64," +
            base64(*bytes) + "\"><figcaption><code>" + escape_html(file.path.filename().string()) + "</code> from " +
            node_caption(node);
    if (node.definition != nullptr) html += ": " + escape_html(node.definition->spec().description());
    html += "</figcaption></figure>";
    ++shown;
  }
  html += "</div>";
  if (shown == 0) html += "<p>The pipeline wrote no PNG pictures.</p>";
  return html + "</section>\n";
}

// A table as core.write_table writes it in JSON: {"columns": [...], "rows": [{...}]}.
std::optional<std::string> table_html(const std::string& text) {
  const json table = json::parse(text, nullptr, false);
  if (table.is_discarded() || !table.is_object() || !table.contains("columns") || !table.contains("rows") ||
      !table["columns"].is_array() || !table["rows"].is_array()) {
    return std::nullopt;
  }
  std::string html = "<div class=\"scroll\"><table class=\"data\"><thead><tr>";
  for (const json& column : table["columns"]) html += "<th>" + format_cell(column) + "</th>";
  html += "</tr></thead><tbody>";
  std::size_t rows = 0;
  for (const json& row : table["rows"]) {
    if (++rows > 2000) {
      html += "<tr><td colspan=\"" + std::to_string(table["columns"].size()) +
              "\">(further rows are in the file)</td></tr>";
      break;
    }
    html += "<tr>";
    for (const json& column : table["columns"]) {
      const std::string key = column.is_string() ? column.get<std::string>() : column.dump();
      const bool present = row.is_object() && row.contains(key);
      html += std::string(present && row[key].is_number() ? "<td class=\"num\">" : "<td>") +
              (present ? format_cell(row[key]) : std::string("&ndash;")) + "</td>";
    }
    html += "</tr>";
  }
  return html + "</tbody></table></div>";
}

std::string tables_section(const RunReportInput& input, const std::vector<OutputFile>& files) {
  std::string html = "<section id=\"metrics\"><h2>Measurements</h2>";
  int shown = 0;
  for (const OutputFile& file : files) {
    if (!has_extension(file.path, ".json")) continue;
    const auto text = read_bounded_file(file.path, kMaxTextFileBytes);
    if (!text) continue;
    const auto table = table_html(*text);
    if (!table) continue;
    html += "<h3><code>" + escape_html(file.path.filename().string()) + "</code> from " +
            node_caption(input.pipeline->nodes[file.node]) + "</h3>" + *table;
    ++shown;
  }
  if (shown == 0) html += "<p>The pipeline wrote no tables as JSON (core.write_table with a .json path).</p>";
  return html + "</section>\n";
}

// An ITK transform file's first transform: its class and parameters.
struct TransformText {
  std::string type;
  std::vector<double> parameters;
  std::vector<double> fixed_parameters;
};

std::vector<double> numbers_after(const std::string& line, std::string_view key) {
  std::vector<double> values;
  std::istringstream in(line.substr(key.size()));
  double value = 0;
  while (in >> value) values.push_back(value);
  return values;
}

std::optional<TransformText> read_transform_text(const fs::path& path) {
  const auto text = read_bounded_file(path, kMaxTextFileBytes);
  if (!text) return std::nullopt;
  TransformText transform;
  std::istringstream lines(*text);
  std::string line;
  while (std::getline(lines, line)) {
    if (line.rfind("Transform: ", 0) == 0 && transform.type.empty()) {
      transform.type = line.substr(11);
    } else if (line.rfind("Parameters: ", 0) == 0 && transform.parameters.empty()) {
      transform.parameters = numbers_after(line, "Parameters: ");
    } else if (line.rfind("FixedParameters: ", 0) == 0 && transform.fixed_parameters.empty()) {
      transform.fixed_parameters = numbers_after(line, "FixedParameters: ");
    }
  }
  if (transform.type.empty()) return std::nullopt;
  return transform;
}

std::string transform_html(const fs::path& path, const TransformText& transform) {
  std::string html = "<p>Transform <code>" + escape_html(path.filename().string()) +
                     "</code>: " + escape_html(transform.type) + "</p>";
  const auto& p = transform.parameters;
  if (transform.type.rfind("Euler3DTransform", 0) == 0 && p.size() == 6) {
    constexpr double kDegrees = 180.0 / 3.14159265358979323846;
    html += "<table class=\"facts\"><tr><th>Rotation about x, y, z</th><td>" +
            fmt::format("{:.3f}&deg;, {:.3f}&deg;, {:.3f}&deg;", p[0] * kDegrees, p[1] * kDegrees, p[2] * kDegrees) +
            "</td></tr><tr><th>Translation x, y, z (LPS)</th><td>" +
            fmt::format("{:.3f}, {:.3f}, {:.3f} mm", p[3], p[4], p[5]) + "</td></tr>";
    if (transform.fixed_parameters.size() >= 3) {
      const auto& c = transform.fixed_parameters;
      html += "<tr><th>Centre of rotation</th><td>" + fmt::format("{:.2f}, {:.2f}, {:.2f} mm", c[0], c[1], c[2]) +
              "</td></tr>";
    }
    return html + "</table>";
  }
  std::string values;
  for (const double value : p) values += (values.empty() ? "" : ", ") + format_number(value);
  return html + "<p class=\"numbers\">Parameters: " + values + "</p>";
}

std::string registration_section(const RunReportInput& input, const json& record,
                                 const std::vector<OutputFile>& files) {
  const Pipeline& pipeline = *input.pipeline;
  std::string html = "<section id=\"registration\"><h2>Registration</h2>";
  int shown = 0;
  for (std::size_t n = 0; n < pipeline.nodes.size(); ++n) {
    const PipelineNode& node = pipeline.nodes[n];
    const bool registers =
        node.definition != nullptr && node.definition->spec().inputs().size() >= 2 &&
        std::any_of(node.definition->spec().inputs().begin(), node.definition->spec().inputs().end(),
                    [](const PortSpec& port) { return port.name == "fixed"; }) &&
        std::any_of(node.definition->spec().outputs().begin(), node.definition->spec().outputs().end(),
                    [](const PortSpec& port) { return port.name == "transform"; });
    if (!registers) continue;
    ++shown;
    html += "<h3>" + node_caption(node) + " &mdash; " + to_string(input.result->nodes[n].status) + "</h3>";
    std::string inputs;
    for (const auto& [port, refs] : node.inputs) {
      for (const OutputRef& ref : refs) {
        inputs += (inputs.empty() ? "" : ", ") + escape_html(port) + " = <code>" +
                  escape_html(pipeline.nodes[ref.node].id + "." + ref.port) + "</code>";
      }
    }
    html += "<p>" + inputs + "</p><ul class=\"messages\">";
    for (const NodeLogMessage& message : input.messages) {
      if (message.node == n) html += "<li>" + escape_html(message.message) + "</li>";
    }
    html += "</ul>";
    // Transforms written from this node's transform output.
    for (const OutputFile& file : files) {
      const PipelineNode& writer = pipeline.nodes[file.node];
      const bool from_here = std::any_of(writer.inputs.begin(), writer.inputs.end(), [&](const auto& entry) {
        return std::any_of(entry.second.begin(), entry.second.end(),
                           [&](const OutputRef& ref) { return ref.node == n && ref.port == "transform"; });
      });
      if (!from_here) continue;
      if (const auto transform = read_transform_text(file.path)) html += transform_html(file.path, *transform);
    }
    std::string parameters;
    const json* recorded = record.contains("nodes") && record["nodes"].is_array() && n < record["nodes"].size()
                               ? &record["nodes"][n]
                               : nullptr;
    if (recorded != nullptr && recorded->contains("params") && (*recorded)["params"].is_object()) {
      for (const auto& [name, value] : (*recorded)["params"].items()) {
        parameters +=
            "<tr><th>" + escape_html(name) + "</th><td><code>" + escape_html(value.dump()) + "</code></td></tr>";
      }
    }
    html += "<details><summary>Parameters</summary><table class=\"facts\">" + parameters + "</table></details>";
  }
  if (shown == 0) html += "<p>The pipeline registers nothing.</p>";
  return html + "</section>\n";
}

// Graphviz's SVG of the pipeline, or nullopt if `dot` is missing or fails.
std::optional<std::string> graph_svg(const Pipeline& pipeline) {
  // The description is the page's own paragraph; as the graph's label it
  // would stretch the drawing to its length.
  const std::string dot = std::regex_replace(pipeline_to_dot(pipeline), std::regex("\nlabel=\"[^\n]*\";\n"), "\n");
  const fs::path temp_dir = fs::temp_directory_path();
  std::string pattern = (temp_dir / "fusionflow-graph-XXXXXX").string();
  const int fd = ::mkstemp(pattern.data());
  if (fd < 0) return std::nullopt;
  const fs::path dot_file = pattern;
  const bool written = ::write(fd, dot.data(), dot.size()) == static_cast<ssize_t>(dot.size());
  ::close(fd);
  std::optional<std::string> svg;
  if (written) {
    // mkstemp's name holds only the temp folder and [A-Za-z0-9]; quoted for the shell all the same.
    const std::string command = "dot -Tsvg '" + dot_file.string() + "' 2>/dev/null";
    std::unique_ptr<FILE, int (*)(FILE*)> pipe(::popen(command.c_str(), "r"), &::pclose);
    if (pipe) {
      std::string out;
      std::array<char, 65536> buffer{};
      std::size_t got = 0;
      while ((got = std::fread(buffer.data(), 1, buffer.size(), pipe.get())) > 0) out.append(buffer.data(), got);
      const int status = ::pclose(pipe.release());
      const auto start = out.find("<svg");
      if (status == 0 && start != std::string::npos) svg = out.substr(start);
    }
  }
  std::error_code ignored;
  fs::remove(dot_file, ignored);
  return svg;
}

std::string graph_section(const RunReportInput& input, std::vector<std::string>& notes) {
  std::string html = "<section id=\"graph\"><h2>Pipeline graph</h2>";
  if (const auto svg = graph_svg(*input.pipeline)) {
    html += "<div class=\"graph\">" + *svg + "</div>";
  } else {
    notes.push_back(
        "the pipeline graph is left out: Graphviz's `dot` did not run (scripts/setup.sh installs graphviz)");
    html +=
        "<p>Graphviz's <code>dot</code> did not run (scripts/setup.sh installs <code>graphviz</code>); the graph "
        "in DOT:</p><pre>" +
        escape_html(pipeline_to_dot(*input.pipeline)) + "</pre>";
  }
  return html + "</section>\n";
}

// One bar per node from its start to its end: what overlapped, what waited.
std::string timeline_svg(const Pipeline& pipeline, const RunResult& result) {
  const double total = std::max(result.wall_seconds, 1e-6);
  constexpr int kLabelWidth = 200, kBarsWidth = 700, kRow = 18;
  const int height = kRow * static_cast<int>(pipeline.nodes.size()) + 24;
  std::string svg = fmt::format(
      "<svg class=\"timeline\" xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 {} {}\" width=\"{}\" height=\"{}\" "
      "font-family=\"sans-serif\" font-size=\"11\">",
      kLabelWidth + kBarsWidth + 10, height, kLabelWidth + kBarsWidth + 10, height);
  for (std::size_t n = 0; n < pipeline.nodes.size() && n < result.nodes.size(); ++n) {
    const NodeRunInfo& info = result.nodes[n];
    const int y = kRow * static_cast<int>(n);
    const double x0 = kLabelWidth + kBarsWidth * std::clamp(info.start_seconds / total, 0.0, 1.0);
    const double width = std::max(1.0, kBarsWidth * std::clamp(info.wall_seconds / total, 0.0, 1.0));
    const char* colour = info.status == NodeStatus::Succeeded ? "#4c78a8"
                         : info.status == NodeStatus::Failed  ? "#d62728"
                                                              : "#bbbbbb";
    svg += fmt::format("<text x=\"{}\" y=\"{}\" text-anchor=\"end\">{}</text>", kLabelWidth - 6, y + 13,
                       escape_html(pipeline.nodes[n].id));
    svg += fmt::format(
        "<rect x=\"{:.1f}\" y=\"{}\" width=\"{:.1f}\" height=\"{}\" fill=\"{}\"><title>{}: {:.3f} s "
        "wall, {:.3f} s CPU</title></rect>",
        x0, y + 3, width, kRow - 5, colour, escape_html(pipeline.nodes[n].id), info.wall_seconds, info.cpu_seconds);
  }
  const int axis_y = height - 8;
  for (int tick = 0; tick <= 4; ++tick) {
    const double x = kLabelWidth + kBarsWidth * tick / 4.0;
    svg += fmt::format("<text x=\"{:.1f}\" y=\"{}\" text-anchor=\"middle\">{:.1f} s</text>", x, axis_y,
                       total * tick / 4.0);
  }
  return svg + "</svg>";
}

std::string nodes_section(const RunReportInput& input) {
  const Pipeline& pipeline = *input.pipeline;
  const RunResult& result = *input.result;
  std::string html = "<section id=\"nodes\"><h2>Nodes: times, memory, versions</h2>";
  html += timeline_svg(pipeline, result);
  html +=
      "<div class=\"scroll\"><table class=\"data\"><thead><tr><th>node</th><th>type</th><th>version</th>"
      "<th>status</th><th class=\"num\">start s</th><th class=\"num\">wall s</th><th class=\"num\">CPU s "
      "(its thread)</th><th class=\"num\">CPU s (all threads; * shared with nodes beside it)</th>"
      "<th class=\"num\">peak MiB (process, at its end)</th><th>cache</th></tr></thead><tbody>";
  for (std::size_t n = 0; n < pipeline.nodes.size() && n < result.nodes.size(); ++n) {
    const PipelineNode& node = pipeline.nodes[n];
    const NodeRunInfo& info = result.nodes[n];
    const std::string version = node.definition != nullptr ? node.definition->spec().version() : "";
    html += "<tr><td><code>" + escape_html(node.id) + "</code></td><td>" + escape_html(node.type) + "</td><td>" +
            escape_html(version) + "</td><td class=\"status " + to_string(info.status) + "\">" +
            to_string(info.status) + (info.error.empty() ? "" : ": " + escape_html(info.error)) +
            "</td><td class=\"num\">" + fmt::format("{:.3f}", info.start_seconds) + "</td><td class=\"num\">" +
            fmt::format("{:.3f}", info.wall_seconds) + "</td><td class=\"num\">" +
            fmt::format("{:.3f}", info.cpu_seconds) + "</td><td class=\"num\">" +
            fmt::format("{:.3f}{}", info.process_cpu_seconds, info.ran_alone ? "" : " *") + "</td><td class=\"num\">" +
            mebibytes(static_cast<double>(info.peak_memory_bytes)) + "</td><td>" +
            escape_html(info.cache.empty() ? "" : info.cache) + "</td></tr>";
  }
  html +=
      "</tbody></table></div><h3>Plugins</h3><table class=\"data\"><thead><tr><th>plugin</th><th>version</th>"
      "<th>file</th><th>loaded</th></tr></thead><tbody>";
  for (const PluginLoadReport& plugin : *input.plugins) {
    html += "<tr><td>" + escape_html(plugin.plugin_name) + "</td><td>" + escape_html(plugin.plugin_version) +
            "</td><td><code>" + escape_html(plugin.file.filename().string()) + "</code></td><td>" +
            (plugin.loaded ? "yes" : "no: " + escape_html(plugin.error)) + "</td></tr>";
  }
  return html + "</tbody></table></section>\n";
}

std::string log_section(const RunReportInput& input) {
  std::string html = "<section id=\"log\"><h2>Log</h2><details><summary>" + std::to_string(input.messages.size()) +
                     " messages from the nodes</summary><ul class=\"messages log\">";
  for (const NodeLogMessage& message : input.messages) {
    html += "<li class=\"" + std::string(level_name(message.level)) + "\">" + level_name(message.level) + " " +
            node_caption(input.pipeline->nodes[message.node]) + ": " + escape_html(message.message) + "</li>";
  }
  return html + "</ul></details></section>\n";
}

// The viewer's data: every viz.report_volumes folder's viewer.json, its
// volumes embedded as base64.
std::optional<json> viewer_data(const std::vector<OutputFile>& files, std::vector<std::string>& notes) {
  for (const OutputFile& file : files) {
    const fs::path manifest_path = file.path / "viewer.json";
    const auto text = read_bounded_file(manifest_path, kMaxTextFileBytes);
    if (!text) continue;
    json manifest = json::parse(*text, nullptr, false);
    if (manifest.is_discarded() || !manifest.is_object() ||
        manifest.value("format", "") != "fusionflow-report-volumes" || !manifest.contains("volumes") ||
        !manifest["volumes"].is_array()) {
      notes.push_back("'" + manifest_path.string() + "' is not a viz.report_volumes list; the viewer is left out");
      continue;
    }
    for (json& volume : manifest["volumes"]) {
      const std::string name = volume.value("file", "");
      // Only a plain file name inside the folder.
      const auto bytes = name.empty() || name.find('/') != std::string::npos || name.rfind("..", 0) == 0
                             ? std::nullopt
                             : read_bounded_file(file.path / name, kMaxEmbeddedFileBytes);
      if (!bytes) {
        notes.push_back("viewer volume '" + (file.path / name).string() + "' cannot be read; the viewer is left out");
        return std::nullopt;
      }
      volume["nifti_base64"] = base64(*bytes);
    }
    return manifest;
  }
  return std::nullopt;
}

std::string viewer_section(const Pipeline& pipeline, const std::vector<OutputFile>& files,
                           const fs::path& web_directory, std::vector<std::string>& notes, std::string& scripts) {
  std::string html = "<section id=\"viewer\"><h2>Slice viewer</h2>";
  const auto data = viewer_data(files, notes);
  const auto niivue = read_bounded_file(web_directory / "niivue.umd.js", kMaxEmbeddedFileBytes);
  const auto viewer_script = read_bounded_file(web_directory / "report-viewer.js", kMaxTextFileBytes);
  if (!data) {
    const bool declared = std::any_of(pipeline.nodes.begin(), pipeline.nodes.end(),
                                      [](const PipelineNode& node) { return node.type == "viz.report_volumes"; });
    const std::string why =
        declared ? "the viz.report_volumes node did not succeed" : "the pipeline has no viz.report_volumes node";
    notes.push_back("no slice viewer: " + why);
    return html + "<p>No viewer volumes: " + escape_html(why) + ".</p></section>\n";
  }
  if (!niivue || !viewer_script) {
    notes.push_back("no slice viewer: '" + (web_directory / "niivue.umd.js").string() +
                    "' or report-viewer.js is "
                    "missing (scripts/setup.sh fetches NiiVue; set FUSIONFLOW_WEB_DIR for an uninstalled build)");
    return html + "<p>The viewer's scripts were not found when the report was written.</p></section>\n";
  }
  html += R"(<div class="viewer-controls">
<label>Overlay <select id="viewer-overlay"></select></label>
<label>Opacity <input id="viewer-opacity" type="range" min="0" max="1" step="0.05" value="0.5"></label>
<label>Window of <select id="viewer-window-layer"><option value="background">background</option><option value="overlay">overlay</option></select></label>
<label>min <input id="viewer-cal-min" type="number" step="any"></label>
<label>max <input id="viewer-cal-max" type="number" step="any"></label>
<label>Layout <select id="viewer-layout"><option value="multiplanar">3 planes</option><option value="axial">axial</option><option value="coronal">coronal</option><option value="sagittal">sagittal</option><option value="render">3D</option></select></label>
</div>
<div class="viewer-frame"><canvas id="viewer-canvas"></canvas></div>
<p id="viewer-location" class="numbers">&nbsp;</p>
<p class="hint">Scroll over a slice to move through the volume, click to place the crosshair, drag with the right
button to change the window. The viewer shows the volumes at the resolution viz.report_volumes reduced them to;
the full-resolution files are beside this page. Viewer: NiiVue (BSD-2-Clause).</p>
)";
  scripts += "<script>" + escape_script(*niivue) + "</script>\n";
  scripts += "<script type=\"application/json\" id=\"viewer-data\">" + escape_script(data->dump()) + "</script>\n";
  scripts += "<script>" + escape_script(*viewer_script) + "</script>\n";
  return html + "</section>\n";
}

}  // namespace

fs::path web_assets_directory() {
  if (const char* configured = std::getenv("FUSIONFLOW_WEB_DIR"); configured != nullptr && *configured != '\0') {
    return configured;
  }
  const fs::path executable = this_program();
  if (executable.empty()) return {};
  return executable.parent_path().parent_path() / "share" / "fusionflow" / "web";
}

std::string run_report_html(const RunReportInput& input, const fs::path& web_directory,
                            std::vector<std::string>& notes) {
  const std::vector<OutputFile> files = output_files(*input.pipeline, *input.result);
  std::string scripts;
  const auto css = read_bounded_file(web_directory / "report.css", kMaxTextFileBytes);
  std::string title = "fusionflow run: " + fs::path(input.pipeline->source_name).filename().string();
  std::string html = "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>" + escape_html(title) +
                     "</title><style>" + (css ? *css : std::string()) + "</style></head><body>\n<header><h1>" +
                     escape_html(title) +
                     "</h1><nav><a href=\"#summary\">Run</a> <a href=\"#warnings\">Warnings</a> "
                     "<a href=\"#viewer\">Viewer</a> <a href=\"#figures\">Pictures</a> <a href=\"#metrics\">"
                     "Measurements</a> <a href=\"#registration\">Registration</a> <a href=\"#graph\">Graph</a> "
                     "<a href=\"#nodes\">Nodes</a> <a href=\"#log\">Log</a></nav></header>\n<main>\n";
  json record = json::parse(input.run_record, nullptr, false);
  if (record.is_discarded()) record = json::object();
  html += summary_section(input, record);
  html += warnings_section(input);
  html += viewer_section(*input.pipeline, files, web_directory, notes, scripts);
  html += figures_section(input, files);
  html += tables_section(input, files);
  html += registration_section(input, record, files);
  html += graph_section(input, notes);
  html += nodes_section(input);
  html += log_section(input);
  html += "</main>\n" + scripts + "</body></html>\n";
  return html;
}

}  // namespace fusionflow::cli
