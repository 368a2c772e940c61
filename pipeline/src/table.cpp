#include "fusionflow/table.hpp"

#include <nlohmann/json.hpp>

#include <cmath>
#include <cstdio>

namespace fusionflow {

std::size_t Table::column_index(const std::string& name) const {
  for (std::size_t i = 0; i < columns.size(); ++i) {
    if (columns[i] == name) return i;
  }
  return columns.size();
}

void Table::add_row(const std::vector<std::pair<std::string, Cell>>& named_cells) {
  std::vector<Cell> row(columns.size());
  for (const auto& [name, cell] : named_cells) {
    std::size_t index = column_index(name);
    if (index == columns.size()) {
      columns.push_back(name);
      for (auto& existing : rows) existing.emplace_back();
      row.emplace_back();
    }
    row[index] = cell;
  }
  rows.push_back(std::move(row));
}

namespace {

std::string format_number(double value) {
  if (std::isnan(value)) return "nan";
  if (std::isinf(value)) return value > 0 ? "inf" : "-inf";
  char buffer[32];
  std::snprintf(buffer, sizeof buffer, "%.17g", value);
  return buffer;
}

std::string csv_field(const std::string& text) {
  if (text.find_first_of(",\"\n\r") == std::string::npos) return text;
  std::string quoted = "\"";
  for (char c : text) {
    if (c == '"') quoted += '"';
    quoted += c;
  }
  return quoted + "\"";
}

}  // namespace

std::string Table::to_csv() const {
  std::string csv;
  for (std::size_t i = 0; i < columns.size(); ++i) csv += (i ? "," : "") + csv_field(columns[i]);
  csv += "\n";
  for (const auto& row : rows) {
    for (std::size_t i = 0; i < columns.size(); ++i) {
      if (i) csv += ",";
      if (i >= row.size()) continue;
      if (const auto* number = std::get_if<double>(&row[i])) csv += format_number(*number);
      if (const auto* text = std::get_if<std::string>(&row[i])) csv += csv_field(*text);
    }
    csv += "\n";
  }
  return csv;
}

std::string Table::to_json() const {
  nlohmann::ordered_json rows_json = nlohmann::ordered_json::array();
  for (const auto& row : rows) {
    nlohmann::ordered_json object = nlohmann::ordered_json::object();
    for (std::size_t i = 0; i < columns.size() && i < row.size(); ++i) {
      if (const auto* number = std::get_if<double>(&row[i])) {
        // JSON has no NaN/Inf: write them as strings so no value is lost.
        object[columns[i]] =
            std::isfinite(*number) ? nlohmann::ordered_json(*number) : nlohmann::ordered_json(format_number(*number));
      } else if (const auto* text = std::get_if<std::string>(&row[i])) {
        object[columns[i]] = *text;
      } else {
        object[columns[i]] = nullptr;
      }
    }
    rows_json.push_back(std::move(object));
  }
  nlohmann::ordered_json document{{"columns", columns}, {"rows", std::move(rows_json)}};
  return document.dump(2) + "\n";
}

}  // namespace fusionflow
