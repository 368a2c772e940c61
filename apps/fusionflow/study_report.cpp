#include "study_report.hpp"

#include <algorithm>
#include <cmath>
#include <map>
#include <optional>
#include <vector>

#include <fusionflow/version.hpp>
#include <spdlog/fmt/fmt.h>

#include "report_html.hpp"

namespace fusionflow::cli {
namespace {

namespace fs = std::filesystem;
using ordered_json = nlohmann::ordered_json;

// Beyond this many subjects a plot shows the box alone: the points would
// only blacken the row and weigh megabytes.
constexpr std::size_t kMaxPlottedPoints = 2000;

// metrics.fusion's columns that say which rows a table has (the slice a row
// is of, how many slices a mean row averages): numbers, but not measurements.
bool is_row_column(const std::string& name) { return name == "slice" || name == "slices"; }

struct Point {
  std::string subject;
  double value = 0;
};

struct Series {
  std::string label;  // e.g. "laplacian_local_energy mean"
  std::vector<Point> points;
};

// Order statistics of a series: linear interpolation between closest ranks.
double quantile(std::vector<double> sorted, double q) {
  if (sorted.empty()) return std::nan("");
  const double at = q * double(sorted.size() - 1);
  const auto below = static_cast<std::size_t>(std::floor(at));
  const std::size_t above = std::min(sorted.size() - 1, below + 1);
  return sorted[below] + (at - double(below)) * (sorted[above] - sorted[below]);
}

std::vector<double> sorted_values(const Series& series) {
  std::vector<double> values;
  for (const Point& point : series.points) values.push_back(point.value);
  std::sort(values.begin(), values.end());
  return values;
}

// Tick positions: a step of 1, 2 or 5 times a power of ten, about `count` ticks.
std::vector<double> ticks(double low, double high, int count) {
  const double raw = (high - low) / count;
  const double power = std::pow(10.0, std::floor(std::log10(raw)));
  const double fraction = raw / power;
  const double step = (fraction < 1.5 ? 1 : fraction < 3.5 ? 2 : fraction < 7.5 ? 5 : 10) * power;
  std::vector<double> at;
  for (double tick = std::ceil(low / step) * step; tick <= high + step * 1e-9; tick += step) {
    at.push_back(std::fabs(tick) < step * 1e-9 ? 0.0 : tick);
  }
  return at;
}

// One row per series: the box from the first to the third quartile with the
// median, whiskers to the smallest and largest value, the mean as a diamond,
// and each subject as a point (a link to its report, its value on hover).
std::string strip_plot_svg(const std::string& title, const std::vector<Series>& series,
                           const std::map<std::string, std::string>& report_links) {
  double low = INFINITY, high = -INFINITY;
  for (const Series& each : series) {
    for (const Point& point : each.points) {
      low = std::min(low, point.value);
      high = std::max(high, point.value);
    }
  }
  if (!std::isfinite(low)) return {};
  if (high - low < 1e-12 * std::max(1.0, std::fabs(high))) {
    const double pad = std::fabs(low) > 0 ? std::fabs(low) * 0.05 : 1.0;
    low -= pad;
    high += pad;
  }
  const double pad = (high - low) * 0.04;
  low -= pad;
  high += pad;
  constexpr int kLabelWidth = 230, kPlotWidth = 620, kRow = 34, kTop = 22, kAxis = 30;
  const int height = kTop + kRow * static_cast<int>(series.size()) + kAxis;
  const auto x_of = [&](double value) { return kLabelWidth + kPlotWidth * (value - low) / (high - low); };
  std::string svg = fmt::format(
      "<svg class=\"plot\" xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 {0} {1}\" width=\"{0}\" height=\"{1}\" "
      "font-family=\"sans-serif\" font-size=\"11\"><text x=\"4\" y=\"14\" font-weight=\"bold\">{2}</text>",
      kLabelWidth + kPlotWidth + 20, height, escape_html(title));
  const int axis_y = kTop + kRow * static_cast<int>(series.size());
  for (const double tick : ticks(low, high, 5)) {
    const double x = x_of(tick);
    svg += fmt::format(
        "<line x1=\"{0:.1f}\" x2=\"{0:.1f}\" y1=\"{1}\" y2=\"{2}\" stroke=\"#e3e6ea\"/><text x=\"{0:.1f}\" y=\"{3}\" "
        "text-anchor=\"middle\">{4}</text>",
        x, kTop, axis_y, axis_y + 16, format_number(tick));
  }
  for (std::size_t s = 0; s < series.size(); ++s) {
    const Series& each = series[s];
    const int centre = kTop + kRow * static_cast<int>(s) + kRow / 2;
    const std::vector<double> values = sorted_values(each);
    if (values.empty()) continue;
    double sum = 0;
    for (const double value : values) sum += value;
    const double mean = sum / double(values.size());
    const double q1 = quantile(values, 0.25), median = quantile(values, 0.5), q3 = quantile(values, 0.75);
    svg += fmt::format("<text x=\"{}\" y=\"{}\" text-anchor=\"end\">{}</text>", kLabelWidth - 8, centre + 4,
                       escape_html(each.label));
    svg += fmt::format(
        "<line x1=\"{:.1f}\" x2=\"{:.1f}\" y1=\"{}\" y2=\"{}\" stroke=\"#7a8896\"/>"
        "<rect x=\"{:.1f}\" y=\"{}\" width=\"{:.1f}\" height=\"{}\" fill=\"#dbe6f3\" stroke=\"#4c78a8\">"
        "<title>{}: n {}, median {}, quartiles {} to {}, range {} to {}</title></rect>"
        "<line x1=\"{:.1f}\" x2=\"{:.1f}\" y1=\"{}\" y2=\"{}\" stroke=\"#1f3a5f\" stroke-width=\"2\"/>",
        x_of(values.front()), x_of(values.back()), centre, centre, x_of(q1), centre - 9,
        std::max(1.0, x_of(q3) - x_of(q1)), 18, escape_html(each.label), values.size(), format_number(median),
        format_number(q1), format_number(q3), format_number(values.front()), format_number(values.back()), x_of(median),
        x_of(median), centre - 9, centre + 9);
    if (values.size() <= kMaxPlottedPoints) {
      for (std::size_t p = 0; p < each.points.size(); ++p) {
        const Point& point = each.points[p];
        // A fixed spread of heights, so that equal values stay apart and the
        // page is the same bytes for the same study.
        const int offset = static_cast<int>((p * 7) % 13) - 6;
        const std::string dot =
            fmt::format("<circle cx=\"{:.1f}\" cy=\"{}\" r=\"3.5\"><title>{}: {}</title></circle>", x_of(point.value),
                        centre + offset, escape_html(point.subject), format_number(point.value));
        const auto link = report_links.find(point.subject);
        svg += link == report_links.end() ? dot : "<a href=\"" + escape_html(link->second) + "\">" + dot + "</a>";
      }
    }
    svg += fmt::format(
        "<path d=\"M {0:.1f} {1} l 5 5 l -5 5 l -5 -5 z\" fill=\"#f58518\" stroke=\"#fff\"><title>mean {2}</title>"
        "</path>",
        x_of(mean), centre - 5, format_number(mean));
  }
  return svg + "</svg>";
}

// A statistics row per series: n, mean, SD, the smallest and largest value
// with their subjects.
std::string stats_rows(const std::string& quantity, const std::vector<Series>& series) {
  std::string html;
  for (const Series& each : series) {
    if (each.points.empty()) continue;
    const auto [lowest, highest] = std::minmax_element(
        each.points.begin(), each.points.end(), [](const Point& a, const Point& b) { return a.value < b.value; });
    double sum = 0, squares = 0;
    for (const Point& point : each.points) sum += point.value;
    const double mean = sum / double(each.points.size());
    for (const Point& point : each.points) squares += (point.value - mean) * (point.value - mean);
    const double sd = each.points.size() > 1 ? std::sqrt(squares / double(each.points.size() - 1)) : 0.0;
    html += "<tr><td>" + escape_html(quantity) + "</td><td>" + escape_html(each.label) + "</td><td class=\"num\">" +
            std::to_string(each.points.size()) + "</td><td class=\"num\">" + format_number(mean) +
            "</td><td class=\"num\">" + format_number(sd) + "</td><td class=\"num\">" +
            format_number(quantile(sorted_values(each), 0.5)) + "</td><td class=\"num\">" +
            format_number(lowest->value) + " (" + escape_html(lowest->subject) + ")</td><td class=\"num\">" +
            format_number(highest->value) + " (" + escape_html(highest->subject) + ")</td></tr>";
  }
  return html;
}

const char* kStatsHeader =
    "<div class=\"scroll\"><table class=\"data\"><thead><tr><th>quantity</th><th>rows</th><th class=\"num\">n</th>"
    "<th class=\"num\">mean</th><th class=\"num\">SD</th><th class=\"num\">median</th><th class=\"num\">lowest "
    "(subject)</th><th class=\"num\">highest (subject)</th></tr></thead><tbody>";

std::string text_of(const ordered_json& object, const char* key) {
  return object.is_object() && object.contains(key) && object[key].is_string() ? object[key].get<std::string>()
                                                                               : std::string();
}

double number_of(const ordered_json& object, const char* key) {
  return object.is_object() && object.contains(key) && object[key].is_number() ? object[key].get<double>() : 0.0;
}

// A path relative to the study folder, for a link that works wherever the
// folder is moved or copied.
std::string relative_link(const fs::path& target, const fs::path& folder) {
  std::error_code error;
  const fs::path relative = fs::relative(target, folder, error);
  return (error || relative.empty() ? target : relative).generic_string();
}

std::string summary_section(const ordered_json& study, const fs::path& folder) {
  std::string html = "<section id=\"summary\"><h2>Study</h2><table class=\"facts\">";
  html += "<tr><th>Folder</th><td><code>" + escape_html(folder.string()) + "</code></td></tr>";
  html += "<tr><th>Cohort</th><td><code>" + escape_html(text_of(study, "cohort")) + "</code></td></tr>";
  html += "<tr><th>Pipeline</th><td><code>" + escape_html(text_of(study, "pipeline")) + "</code> (SHA-256 " +
          escape_html(text_of(study, "pipeline_sha256").substr(0, 16)) + "&hellip;)</td></tr>";
  std::string counts;
  if (study.contains("counts") && study["counts"].is_object()) {
    for (const auto& [state, count] : study["counts"].items()) {
      counts += (counts.empty() ? "" : ", ") + std::string("<span class=\"status ") + escape_html(state) + "\">" +
                escape_html(state) + "</span> " + escape_html(count.dump());
    }
  }
  const std::size_t subjects =
      study.contains("subjects") && study["subjects"].is_array() ? study["subjects"].size() : 0;
  html += "<tr><th>Subjects</th><td>" + std::to_string(subjects) + (counts.empty() ? "" : ": " + counts) + "</td></tr>";
  html += "<tr><th>fusionflow</th><td>" + escape_html(text_of(study, "fusionflow_version")) +
          " (this page: " + escape_html(version_string()) + ")</td></tr>";
  std::string plugins;
  if (study.contains("plugins") && study["plugins"].is_array()) {
    for (const auto& plugin : study["plugins"]) {
      plugins += (plugins.empty() ? "" : ", ") + escape_html(text_of(plugin, "name")) + " " +
                 escape_html(text_of(plugin, "version"));
    }
  }
  html += "<tr><th>Plugins</th><td>" + plugins + "</td></tr></table>";
  html +=
      "<p class=\"hint\">The study's tables are beside this page: <a href=\"metrics.csv\">metrics.csv</a> (every "
      "subject's metrics with a subject column) and <a href=\"cohort.json\">cohort.json</a> (each subject's state). "
      "A point in a plot links to its subject's report.</p>";
  return html + "</section>\n";
}

std::string subjects_section(const ordered_json& study, const fs::path& folder,
                             const std::map<std::string, std::string>& report_links) {
  std::string html =
      "<section id=\"subjects\"><h2>Subjects</h2><div class=\"scroll\"><table class=\"data\"><thead><tr>"
      "<th>subject</th><th>from</th><th>state</th><th class=\"num\">seconds</th><th class=\"num\">peak MiB</th>"
      "<th>report</th><th>log</th><th>error</th></tr></thead><tbody>";
  for (const auto& subject : study["subjects"]) {
    const std::string id = text_of(subject, "subject");
    const std::string state = text_of(subject, "state");
    const auto report = report_links.find(id);
    const std::string log = text_of(subject, "log");
    html += "<tr><td><code>" + escape_html(id) + "</code></td><td>" + escape_html(text_of(subject, "origin")) +
            "</td><td class=\"status " + escape_html(state) + "\">" + escape_html(state) + "</td><td class=\"num\">" +
            fmt::format("{:.1f}", number_of(subject, "seconds")) + "</td><td class=\"num\">" +
            mebibytes(number_of(subject, "peak_memory_bytes")) + "</td><td>" +
            (report == report_links.end() ? std::string("&ndash;")
                                          : "<a href=\"" + escape_html(report->second) + "\">report</a>") +
            "</td><td>" +
            (log.empty() ? std::string("&ndash;")
                         : "<a href=\"" + escape_html(relative_link(log, folder)) + "\">run.log</a>") +
            "</td><td class=\"error-text\">" + escape_html(text_of(subject, "error")) + "</td></tr>";
  }
  return html + "</tbody></table></div></section>\n";
}

// The subjects' metrics by column: each numeric column a plot, each
// combination of the text columns (the table's label, the scope) a row of it.
std::string metrics_section(const SubjectTables* metrics, const std::map<std::string, std::string>& report_links) {
  std::string html = "<section id=\"metrics\"><h2>Metrics across subjects</h2>";
  if (metrics == nullptr || metrics->rows.empty()) {
    return html +
           "<p>No subject that is done wrote a metrics table (metrics*.csv in its output folder).</p></section>\n";
  }
  const std::size_t columns = metrics->columns.size();
  std::vector<bool> numeric(columns, false), text(columns, false);
  for (std::size_t c = 1; c < columns; ++c) {
    bool any = false, all = true;
    for (const auto& row : metrics->rows) {
      if (row[c].empty()) continue;
      any = true;
      all = all && table_number(row[c]).has_value();
    }
    numeric[c] = any && all && !is_row_column(metrics->columns[c]);
    text[c] = any && !all;
  }
  const auto scope = std::find(metrics->columns.begin(), metrics->columns.end(), "scope");
  const std::size_t scope_column = static_cast<std::size_t>(scope - metrics->columns.begin());
  std::string plots, stats;
  for (std::size_t c = 1; c < columns; ++c) {
    if (!numeric[c]) continue;
    std::vector<Series> series;
    std::map<std::string, std::size_t> series_of;
    for (const auto& row : metrics->rows) {
      // Per-slice rows of metrics.fusion: a subject's slices, not subjects.
      if (scope_column < columns && row[scope_column] == "slice") continue;
      const auto value = table_number(row[c]);
      if (!value) continue;
      std::string label;
      for (std::size_t k = 1; k < columns; ++k) {
        if (text[k] && !row[k].empty()) label += (label.empty() ? "" : " ") + row[k];
      }
      if (label.empty()) label = "all rows";
      const auto [it, fresh] = series_of.emplace(label, series.size());
      if (fresh) series.push_back({label, {}});
      series[it->second].points.push_back({row[0], *value});
    }
    plots += strip_plot_svg(metrics->columns[c], series, report_links);
    stats += stats_rows(metrics->columns[c], series);
  }
  std::size_t per_slice_rows = 0;
  if (scope_column < columns) {
    per_slice_rows = static_cast<std::size_t>(std::count_if(
        metrics->rows.begin(), metrics->rows.end(), [&](const auto& row) { return row[scope_column] == "slice"; }));
  }
  if (plots.empty()) return html + "<p>The metrics tables have no numeric column.</p></section>\n";
  html +=
      "<p class=\"hint\">Each row of a plot: the box from the first to the third quartile, the median as a bar, "
      "whiskers to the lowest and highest subject, the mean as a diamond, one point per subject";
  html += per_slice_rows > 0 ? " (the " + std::to_string(per_slice_rows) +
                                   " per-slice rows of the tables are in metrics.csv, not in the plots)."
                             : ".";
  html += "</p><div class=\"plots\">" + plots + "</div><h3>Statistics</h3>" + kStatsHeader + stats +
          "</tbody></table></div>";
  return html + "</section>\n";
}

std::string resources_section(const ordered_json& study, const std::map<std::string, std::string>& report_links) {
  Series seconds{"done", {}}, memory{"done", {}}, failed_seconds{"failed", {}};
  for (const auto& subject : study["subjects"]) {
    const std::string state = text_of(subject, "state");
    const std::string id = text_of(subject, "subject");
    if (state == "done") {
      seconds.points.push_back({id, number_of(subject, "seconds")});
      memory.points.push_back({id, number_of(subject, "peak_memory_bytes") / (1024.0 * 1024.0)});
    } else if (state == "failed") {
      failed_seconds.points.push_back({id, number_of(subject, "seconds")});
    }
  }
  std::string html = "<section id=\"resources\"><h2>Run time and memory</h2>";
  if (seconds.points.empty() && failed_seconds.points.empty())
    return html + "<p>No subject has ended yet.</p></section>\n";
  std::vector<Series> time_series;
  if (!seconds.points.empty()) time_series.push_back(seconds);
  if (!failed_seconds.points.empty()) time_series.push_back(failed_seconds);
  html += "<div class=\"plots\">" + strip_plot_svg("wall seconds per subject", time_series, report_links);
  if (!memory.points.empty()) {
    html += strip_plot_svg("peak memory per subject (MiB, process resident)", {memory}, report_links);
  }
  html += "</div>" + std::string(kStatsHeader) + stats_rows("wall seconds", time_series) +
          stats_rows("peak MiB", {memory}) + "</tbody></table></div>";
  return html + "</section>\n";
}

}  // namespace

std::string study_report_html(const StudyReportInput& input, const fs::path& web_directory) {
  const ordered_json& study = *input.study;
  // Each subject's report, where it wrote one: beside its run record.
  std::map<std::string, std::string> report_links;
  if (study.contains("subjects") && study["subjects"].is_array()) {
    for (const auto& subject : study["subjects"]) {
      const std::string record = text_of(subject, "run_record");
      if (record.empty()) continue;
      const fs::path report = fs::path(record).parent_path() / "report.html";
      std::error_code error;
      if (fs::is_regular_file(report, error)) {
        report_links[text_of(subject, "subject")] = relative_link(report, input.folder);
      }
    }
  }
  const auto css = read_bounded_file(web_directory / "report.css", kMaxTextFileBytes);
  const std::string title = "fusionflow study: " + input.folder.filename().string();
  std::string html = "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>" + escape_html(title) +
                     "</title><style>" + (css ? *css : std::string()) + "</style></head><body>\n<header><h1>" +
                     escape_html(title) +
                     "</h1><nav><a href=\"#summary\">Study</a> <a href=\"#subjects\">Subjects</a> "
                     "<a href=\"#metrics\">Metrics</a> <a href=\"#resources\">Time and memory</a></nav></header>\n"
                     "<main>\n";
  html += summary_section(study, input.folder);
  if (study.contains("subjects") && study["subjects"].is_array()) {
    html += subjects_section(study, input.folder, report_links);
    html += metrics_section(input.metrics, report_links);
    html += resources_section(study, report_links);
  }
  return html + "</main>\n</body></html>\n";
}

}  // namespace fusionflow::cli
