// The Table payload: named columns of numbers or text, for statistics,
// metrics and measurements. Written as CSV or JSON.
#pragma once

#include <string>
#include <variant>
#include <vector>

namespace fusionflow {

struct Table {
  using Cell = std::variant<std::monostate, double, std::string>;  // monostate: empty cell

  std::vector<std::string> columns;
  std::vector<std::vector<Cell>> rows;  // each row has columns.size() cells

  // Appends a row; cells are matched to columns by name, new names add
  // columns (earlier rows get empty cells there).
  void add_row(const std::vector<std::pair<std::string, Cell>>& named_cells);
  std::size_t column_index(const std::string& name) const;  // columns.size() if absent

  // RFC 4180 CSV; numbers with 17 significant digits so they read back exactly.
  std::string to_csv() const;
  // {"columns": [...], "rows": [{column: value, ...}, ...]}
  std::string to_json() const;
};

}  // namespace fusionflow
