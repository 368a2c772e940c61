#include "fusionflow/cohort.hpp"

#include <fnmatch.h>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <regex>
#include <sstream>
#include <system_error>

namespace fusionflow {

namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {

// A table or cohort file is small text; refuse what is not, before reading it.
constexpr std::uintmax_t kMaxFileBytes = 64u << 20;
constexpr std::size_t kMaxSubjects = 100000;
constexpr std::size_t kMaxCellBytes = 4096;

std::optional<std::string> read_small_file(const fs::path& file, const char* what, std::vector<Diagnostic>& problems) {
  std::error_code ec;
  if (!fs::is_regular_file(file, ec)) {
    problems.push_back({file.string(), std::string("the ") + what + " file does not exist or is not a regular file",
                        "check the path"});
    return std::nullopt;
  }
  const auto size = fs::file_size(file, ec);
  if (ec || size > kMaxFileBytes) {
    problems.push_back(
        {file.string(), std::string("the ") + what + " file is larger than 64 MiB", "is it the right file?"});
    return std::nullopt;
  }
  std::ifstream in(file, std::ios::binary);
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (!in.good() && !in.eof()) {
    problems.push_back({file.string(), std::string("cannot read the ") + what, "check its permissions"});
    return std::nullopt;
  }
  return text;
}

// Table cells by row (RFC 4180 CSV: quotes, "" inside quotes, CRLF or LF;
// TSV: tab-separated, no quoting). Written here: no CSV library in the
// stack, and the grammar is small. Rows keep their 1-based line number.
struct TableRow {
  std::size_t line = 0;
  std::vector<std::string> cells;
};

std::vector<TableRow> parse_table(const std::string& text, char separator, const std::string& source,
                                  std::vector<Diagnostic>& problems) {
  std::vector<TableRow> rows;
  std::size_t at = text.rfind("\xEF\xBB\xBF", 0) == 0 ? 3 : 0;  // UTF-8 byte order mark
  std::size_t line = 1;
  const bool quoting = separator == ',';
  while (at < text.size()) {
    TableRow row;
    row.line = line;
    std::string cell;
    bool quoted = false, row_done = false;
    while (!row_done) {
      if (at >= text.size()) {
        if (quoted) {
          problems.push_back({source + " line " + std::to_string(row.line), "a quoted value is not closed",
                              "close it with \" (a \" inside a value is written \"\")"});
          return rows;
        }
        row.cells.push_back(cell);
        row_done = true;
        break;
      }
      const char c = text[at++];
      if (quoted) {
        if (c == '"') {
          if (at < text.size() && text[at] == '"') {
            cell += '"';
            ++at;
          } else {
            quoted = false;
          }
        } else {
          if (c == '\n') ++line;
          cell += c;
        }
      } else if (quoting && c == '"' && cell.empty()) {
        quoted = true;
      } else if (c == separator) {
        row.cells.push_back(cell);
        cell.clear();
      } else if (c == '\n' || c == '\r') {
        if (c == '\r' && at < text.size() && text[at] == '\n') ++at;
        ++line;
        row.cells.push_back(cell);
        row_done = true;
      } else {
        cell += c;
      }
      if (cell.size() > kMaxCellBytes) {
        problems.push_back({source + " line " + std::to_string(row.line), "a value is longer than 4096 bytes",
                            "is the file a subjects table?"});
        return rows;
      }
    }
    const bool blank = row.cells.size() == 1 && row.cells[0].find_first_not_of(" \t") == std::string::npos;
    if (!blank) rows.push_back(std::move(row));
    if (rows.size() > kMaxSubjects + 1) {
      problems.push_back({source, "more than " + std::to_string(kMaxSubjects) + " subjects", "split the study"});
      return rows;
    }
  }
  return rows;
}

std::string trim(const std::string& text) {
  const auto first = text.find_first_not_of(" \t");
  if (first == std::string::npos) return {};
  return text.substr(first, text.find_last_not_of(" \t") - first + 1);
}

// A subject id names its output folder: letters, digits, '.', '_', '-'.
bool valid_subject_id(const std::string& id) {
  static const std::regex kId("[A-Za-z0-9][A-Za-z0-9._-]{0,127}");
  return std::regex_match(id, kId);
}

std::string nearest_name(const std::string& wrong, const std::map<std::string, bool>& names) {
  std::string best;
  std::size_t best_distance = 3;  // a typo: at most two edits
  for (const auto& [name, ignored] : names) {
    const std::size_t distance = edit_distance(wrong, name);
    if (distance < best_distance) best_distance = distance, best = name;
  }
  return best;
}

std::string declared_list(const std::map<std::string, bool>& declared) {
  std::string list;
  for (const auto& [name, ignored] : declared) list += (list.empty() ? "" : ", ") + name;
  return list;
}

// The checks every subject's values go through, wherever they came from.
void check_subject_values(CohortSubject& subject, const PipelineVariables& variables, const fs::path& base,
                          const std::string& where, bool check_required, std::vector<Diagnostic>& problems) {
  for (auto& [name, value] : subject.variables) {
    if (variables.input_paths.count(name) == 0 || value.empty()) continue;
    fs::path path = value;
    if (path.is_relative()) path = base / path;
    std::error_code ec;
    if (!fs::exists(path, ec)) {
      problems.push_back({where + ", column '" + name + "'", "file " + path.string() + " does not exist",
                          "paths are relative to the table's folder (" + base.string() + ")"});
    }
    value = path.lexically_normal().string();
  }
  for (const auto& [name, has_default] : variables.declared) {
    if (!check_required || name == "out" || has_default) continue;
    const auto it = subject.variables.find(name);
    if (it == subject.variables.end() || it->second.empty()) {
      problems.push_back({where + ", column '" + name + "'",
                          "no value, and the pipeline's variable '" + name + "' has no default",
                          "give every subject a value"});
    }
  }
}

std::optional<Cohort> load_table(const fs::path& table, const PipelineVariables& variables, const fs::path& out_dir,
                                 std::vector<Diagnostic>& problems) {
  const auto text = read_small_file(table, "cohort", problems);
  if (!text) return std::nullopt;
  const std::string extension = table.extension().string();
  const char separator = extension == ".tsv" || extension == ".TSV" ? '\t' : ',';
  const std::string source = table.string();
  const auto rows = parse_table(*text, separator, source, problems);
  if (!problems.empty()) return std::nullopt;
  if (rows.empty()) {
    problems.push_back({source, "the table is empty", "the first row names the columns: subject, then variables"});
    return std::nullopt;
  }
  // The header: `subject`, then declared variables, each once.
  std::vector<std::string> columns;
  std::set<std::string> seen;
  const std::string header = source + " row " + std::to_string(rows[0].line);  // after any blank lines
  for (std::size_t c = 0; c < rows[0].cells.size(); ++c) {
    const std::string name = trim(rows[0].cells[c]);
    const std::string where = header + ", column " + std::to_string(c + 1);
    if (!seen.insert(name).second) {
      problems.push_back({where, "column '" + name + "' appears twice", "keep one"});
    } else if (name != "subject" && variables.declared.count(name) == 0) {
      const std::string near = nearest_name(name, variables.declared);
      problems.push_back({where, "column '" + name + "' is not a variable of the pipeline",
                          (near.empty() ? std::string() : "did you mean '" + near + "'? ") +
                              "the pipeline declares: " + declared_list(variables.declared)});
    }
    columns.push_back(name);
  }
  if (seen.count("subject") == 0) {
    problems.push_back({header, "no 'subject' column", "name the column of subject ids 'subject'"});
  }
  for (const auto& [name, has_default] : variables.declared) {
    if (name != "out" && !has_default && seen.count(name) == 0) {
      problems.push_back({header, "no column '" + name + "', and the pipeline's variable '" + name + "' has no default",
                          "add a column '" + name + "'"});
    }
  }
  if (!problems.empty()) return std::nullopt;

  Cohort cohort;
  cohort.source = table;
  const fs::path base = table.parent_path().empty() ? fs::current_path() : fs::absolute(table.parent_path());
  std::map<std::string, std::size_t> first_row_of;
  for (std::size_t r = 1; r < rows.size(); ++r) {
    const TableRow& row = rows[r];
    // Rows are numbered as a spreadsheet shows them: the file's line numbers.
    const std::string where = source + " row " + std::to_string(row.line);
    if (row.cells.size() != columns.size()) {
      problems.push_back(
          {where,
           "has " + std::to_string(row.cells.size()) + " values for " + std::to_string(columns.size()) + " columns",
           separator == ',' ? "quote values that hold a comma" : "separate values by one tab"});
      continue;
    }
    CohortSubject subject;
    subject.origin = "row " + std::to_string(row.line);
    for (std::size_t c = 0; c < columns.size(); ++c) {
      const std::string value = trim(row.cells[c]);
      if (columns[c] == "subject") {
        subject.id = value;
      } else if (!value.empty()) {
        subject.variables[columns[c]] = value;
      }
    }
    if (!valid_subject_id(subject.id)) {
      problems.push_back(
          {where + ", column 'subject'",
           subject.id.empty() ? "no subject id" : "subject id '" + subject.id.substr(0, 40) + "' cannot name a folder",
           "use letters, digits, '.', '_' and '-', starting with a letter or digit"});
    } else if (const auto [it, fresh] = first_row_of.emplace(subject.id, row.line); !fresh) {
      problems.push_back({where + ", column 'subject'",
                          "subject '" + subject.id + "' is already on row " + std::to_string(it->second),
                          "give each subject one row"});
    }
    check_subject_values(subject, variables, base, where, true, problems);
    if (subject.variables.count("out") == 0) subject.variables["out"] = (out_dir / subject.id).string();
    cohort.subjects.push_back(std::move(subject));
  }
  if (cohort.subjects.empty() && problems.empty()) {
    problems.push_back({source, "the table has no subjects", "add one row per subject below the header"});
  }
  if (!problems.empty()) return std::nullopt;
  return cohort;
}

// The entries of `directory` whose names match `pattern` (fnmatch), sorted.
std::vector<fs::path> matching(const fs::path& directory, const std::string& pattern) {
  std::vector<fs::path> found;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(directory, ec)) {
    const std::string name = entry.path().filename().string();
    if (fnmatch(pattern.c_str(), name.c_str(), FNM_PERIOD) == 0) found.push_back(entry.path());
  }
  std::sort(found.begin(), found.end());
  return found;
}

// Files below `folder` matching `pattern`, one fnmatch pattern per segment.
std::vector<fs::path> glob_below(const fs::path& folder, const std::string& pattern) {
  std::vector<fs::path> current{folder};
  std::stringstream segments(pattern);
  std::string segment;
  while (std::getline(segments, segment, '/')) {
    if (segment.empty()) continue;
    std::vector<fs::path> next;
    for (const fs::path& directory : current) {
      for (fs::path& match : matching(directory, segment)) next.push_back(std::move(match));
    }
    current = std::move(next);
  }
  return current;
}

// The folder a cohort file's "bids" or "pairs" section names (relative to the
// cohort file), after checking the section has a root and variables.
std::optional<fs::path> dataset_root(const fs::path& cohort_file, const json& section, const std::string& key,
                                     const std::string& example, std::vector<Diagnostic>& problems) {
  const std::string source = cohort_file.string();
  if (!section.is_object() || !section.contains("root") || !section["root"].is_string() ||
      !section.contains("variables") || !section["variables"].is_object() || section["variables"].empty()) {
    problems.push_back(
        {source + " /" + key, "must be an object with \"root\" (a folder) and \"variables\"", "e.g. " + example});
    return std::nullopt;
  }
  const fs::path base =
      cohort_file.parent_path().empty() ? fs::current_path() : fs::absolute(cohort_file.parent_path());
  fs::path root = section["root"].get<std::string>();
  if (root.is_relative()) root = base / root;
  std::error_code ec;
  if (!fs::is_directory(root, ec)) {
    problems.push_back({source + " /" + key + "/root", "folder " + root.string() + " does not exist",
                        "paths are relative to the cohort file's folder"});
    return std::nullopt;
  }
  return root;
}

// A "bids" or "pairs" section's variable patterns, each checked: a pattern,
// of an input variable of the pipeline (not out or subject, which the cohort
// sets), and one for every variable that has no default.
std::map<std::string, std::string> dataset_patterns(const fs::path& cohort_file, const json& section,
                                                    const std::string& key, const PipelineVariables& variables,
                                                    const std::string& example, const std::string& add_example,
                                                    std::vector<Diagnostic>& problems) {
  const std::string source = cohort_file.string();
  std::map<std::string, std::string> patterns;
  for (const auto& [name, pattern] : section["variables"].items()) {
    const std::string where = source + " /" + key + "/variables/" + name;
    if (!pattern.is_string() || pattern.get<std::string>().empty()) {
      problems.push_back({where, "must be a file pattern", "e.g. \"" + example + "\""});
    } else if (variables.declared.count(name) == 0 || name == "out" || name == "subject") {
      const std::string near = nearest_name(name, variables.declared);
      problems.push_back({where, "'" + name + "' is not an input variable of the pipeline",
                          (near.empty() ? std::string() : "did you mean '" + near + "'? ") +
                              "the pipeline declares: " + declared_list(variables.declared)});
    } else {
      patterns[name] = pattern.get<std::string>();
    }
  }
  for (const auto& [name, has_default] : variables.declared) {
    if (name != "out" && name != "subject" && !has_default && patterns.count(name) == 0) {
      problems.push_back({source + " /" + key + "/variables",
                          "no pattern for '" + name + "', and the pipeline's variable '" + name + "' has no default",
                          "add \"" + name + "\": \"" + add_example + "\""});
    }
  }
  return patterns;
}

std::optional<Cohort> load_bids(const fs::path& cohort_file, const json& bids, const PipelineVariables& variables,
                                const fs::path& out_dir, std::vector<Diagnostic>& problems) {
  const std::string source = cohort_file.string();
  const auto found_root =
      dataset_root(cohort_file, bids, "bids",
                   "\"bids\": {\"root\": \"dataset\", \"variables\": {\"mri\": \"anat/*_T1w.nii.gz\"}}", problems);
  if (!found_root) return std::nullopt;
  const fs::path& root = *found_root;
  std::error_code ec;
  const std::map<std::string, std::string> patterns = dataset_patterns(
      cohort_file, bids, "bids", variables, "anat/*_T1w.nii.gz", "<folder>/*_<suffix>.nii.gz", problems);
  if (!problems.empty()) return std::nullopt;
  Cohort cohort;
  cohort.source = cohort_file;
  for (const fs::path& subject_dir : matching(root, "sub-*")) {
    if (!fs::is_directory(subject_dir, ec)) continue;
    std::vector<fs::path> sessions;
    for (const fs::path& session : matching(subject_dir, "ses-*")) {
      if (fs::is_directory(session, ec)) sessions.push_back(session);
    }
    if (sessions.empty()) sessions.push_back(subject_dir);
    for (const fs::path& folder : sessions) {
      CohortSubject subject;
      subject.id = folder == subject_dir ? subject_dir.filename().string()
                                         : subject_dir.filename().string() + "_" + folder.filename().string();
      subject.origin = folder.string();
      const std::string where = folder.string();
      for (const auto& [name, pattern] : patterns) {
        const auto found = glob_below(folder, pattern);
        if (found.size() == 1) {
          subject.variables[name] = found.front().string();
        } else {
          problems.push_back({where,
                              (found.empty() ? "no file matches " : std::to_string(found.size()) + " files match ") +
                                  pattern + " (variable '" + name + "')",
                              found.empty() ? "check the pattern, or leave the subject out of the dataset"
                                            : "make the pattern match one file, e.g. with the acquisition's label"});
        }
      }
      if (!valid_subject_id(subject.id)) {
        problems.push_back({where, "folder name '" + subject.id.substr(0, 40) + "' cannot name a subject's output",
                            "use letters, digits, '.', '_' and '-'"});
      }
      check_subject_values(subject, variables, root, where, false, problems);
      subject.variables["out"] = (out_dir / subject.id).string();
      cohort.subjects.push_back(std::move(subject));
    }
  }
  if (cohort.subjects.empty() && problems.empty()) {
    problems.push_back({root.string(), "no sub-* folders", "a BIDS dataset holds one sub-<label> folder per subject"});
  }
  if (!problems.empty()) return std::nullopt;
  return cohort;
}

// The file's stem without its image extensions: "12.png" -> "12", "a.nii.gz" -> "a".
std::string file_stem(const fs::path& file) {
  std::string name = file.filename().string();
  const auto ends_with = [&name](const std::string& suffix) {
    return name.size() > suffix.size() && name.compare(name.size() - suffix.size(), suffix.size(), suffix) == 0;
  };
  if (ends_with(".nii.gz")) return name.substr(0, name.size() - 7);
  if (ends_with(".gz")) name.resize(name.size() - 3);
  return fs::path(name).stem().string();
}

// A folder of pairs (or triples): each variable's pattern matches one file per
// subject, and files of the same stem belong together ("MRI/12.png" and
// "PET/12.png" are subject 12), as the public 2D fusion sets are laid out.
std::optional<Cohort> load_pairs(const fs::path& cohort_file, const json& pairs, const PipelineVariables& variables,
                                 const fs::path& out_dir, std::vector<Diagnostic>& problems) {
  const std::string source = cohort_file.string();
  const auto found_root = dataset_root(
      cohort_file, pairs, "pairs",
      "\"pairs\": {\"root\": \"data\", \"variables\": {\"mri\": \"MRI/*.png\", \"pet\": \"PET/*.png\"}}", problems);
  if (!found_root) return std::nullopt;
  const fs::path& root = *found_root;
  const std::map<std::string, std::string> patterns =
      dataset_patterns(cohort_file, pairs, "pairs", variables, "MRI/*.png", "<folder>/*.png", problems);
  // stem -> variable -> file
  std::map<std::string, std::map<std::string, fs::path>> by_stem;
  for (const auto& [name, pattern] : patterns) {
    for (const fs::path& file : glob_below(root, pattern)) {
      const std::string stem = file_stem(file);
      auto& slot = by_stem[stem][name];
      if (!slot.empty()) {
        problems.push_back({file.string(),
                            "has the same stem '" + stem + "' as " + slot.string() + " (variable '" + name + "')",
                            "make the pattern match one file per subject"});
      }
      slot = file;
    }
  }
  if (!problems.empty()) return std::nullopt;
  Cohort cohort;
  cohort.source = cohort_file;
  for (const auto& [stem, files] : by_stem) {
    CohortSubject subject;
    subject.id = stem;
    subject.origin = root.string() + " (stem " + stem + ")";
    for (const auto& [name, pattern] : patterns) {
      auto it = files.find(name);
      if (it == files.end()) {
        problems.push_back(
            {files.begin()->second.string(),
             "has no partner for variable '" + name + "' (no file of stem '" + stem + "' matches " + pattern + ")",
             "add the missing file, or remove this one"});
      } else {
        subject.variables[name] = it->second.string();
      }
    }
    if (!valid_subject_id(subject.id)) {
      problems.push_back({subject.origin, "file stem '" + subject.id.substr(0, 40) + "' cannot name a subject's output",
                          "use letters, digits, '.', '_' and '-'"});
    }
    check_subject_values(subject, variables, root, subject.origin, false, problems);
    subject.variables["out"] = (out_dir / subject.id).string();
    cohort.subjects.push_back(std::move(subject));
  }
  if (cohort.subjects.empty() && problems.empty()) {
    problems.push_back({root.string(), "no file matches the patterns", "check the patterns under /pairs/variables"});
  }
  if (!problems.empty()) return std::nullopt;
  return cohort;
}

}  // namespace

std::optional<PipelineVariables> read_pipeline_variables(const fs::path& pipeline_file, const NodeRegistry& registry,
                                                         std::vector<Diagnostic>& problems) {
  const auto text = read_small_file(pipeline_file, "pipeline", problems);
  if (!text) return std::nullopt;
  const json document = json::parse(*text, nullptr, false);
  if (document.is_discarded() || !document.is_object()) {
    problems.push_back({pipeline_file.string(), "is not a pipeline file (a JSON object)",
                        "check it with: fusionflow validate " + pipeline_file.string()});
    return std::nullopt;
  }
  PipelineVariables result;
  if (document.contains("variables") && document["variables"].is_object()) {
    for (const auto& [name, entry] : document["variables"].items()) {
      const json& value = entry.is_object() ? (entry.contains("default") ? entry["default"] : json()) : entry;
      result.declared[name] = !value.is_null();
    }
  }
  // Variables used in an input-path parameter name files the subject must have.
  static const std::regex kReference(R"(\$\{([A-Za-z_][A-Za-z0-9_]*)\})");
  if (document.contains("nodes") && document["nodes"].is_array()) {
    for (const json& node : document["nodes"]) {
      if (!node.is_object() || !node.contains("type") || !node["type"].is_string() || !node.contains("params") ||
          !node["params"].is_object()) {
        continue;
      }
      const RegisteredNode* definition = registry.find_node(node["type"].get<std::string>());
      if (definition == nullptr) continue;
      for (const ParamSpec& param : definition->spec().params()) {
        if (param.kind != ParamKind::InputPath || !node["params"].contains(param.name) ||
            !node["params"][param.name].is_string()) {
          continue;
        }
        const std::string value = node["params"][param.name].get<std::string>();
        for (auto it = std::sregex_iterator(value.begin(), value.end(), kReference); it != std::sregex_iterator();
             ++it) {
          result.input_paths.insert((*it)[1].str());
        }
      }
    }
  }
  return result;
}

SubjectTables merge_subject_tables(const std::vector<std::pair<std::string, fs::path>>& tables,
                                   std::vector<Diagnostic>& problems) {
  SubjectTables merged;
  merged.columns = {"subject"};
  std::map<std::string, std::size_t> column_of{{"subject", 0}};
  std::vector<std::map<std::size_t, std::string>> rows;
  for (const auto& [subject, file] : tables) {
    std::vector<Diagnostic> found;
    const auto text = read_small_file(file, "table", found);
    std::vector<TableRow> parsed;
    if (text) parsed = parse_table(*text, ',', file.string(), found);
    if (!found.empty() || parsed.empty()) {
      problems.insert(problems.end(), found.begin(), found.end());
      if (found.empty()) problems.push_back({file.string(), "the table is empty", ""});
      continue;
    }
    std::vector<std::size_t> index;
    for (const std::string& name : parsed[0].cells) {
      const auto [it, fresh] = column_of.emplace(name, merged.columns.size());
      if (fresh) merged.columns.push_back(name);
      index.push_back(it->second);
    }
    for (std::size_t r = 1; r < parsed.size(); ++r) {
      std::map<std::size_t, std::string> row{{0, subject}};
      for (std::size_t c = 0; c < parsed[r].cells.size() && c < index.size(); ++c) {
        if (index[c] != 0) row[index[c]] = parsed[r].cells[c];
      }
      rows.push_back(std::move(row));
    }
  }
  for (const auto& row : rows) {
    std::vector<std::string> cells(merged.columns.size());
    for (const auto& [column, cell] : row) cells[column] = cell;
    merged.rows.push_back(std::move(cells));
  }
  return merged;
}

std::optional<double> table_number(const std::string& cell) {
  if (cell.empty()) return std::nullopt;
  char* end = nullptr;
  const double value = std::strtod(cell.c_str(), &end);
  if (end == cell.c_str() || *end != '\0' || !std::isfinite(value)) return std::nullopt;
  return value;
}

std::string subject_tables_csv(const SubjectTables& merged) {
  const auto quoted = [](const std::string& cell) {
    if (cell.find_first_of(",\"\r\n") == std::string::npos) return cell;
    std::string text = "\"";
    for (const char c : cell) text += c == '"' ? std::string("\"\"") : std::string(1, c);
    return text + "\"";
  };
  const auto line = [&](const std::vector<std::string>& cells) {
    std::string text;
    for (std::size_t c = 0; c < cells.size(); ++c) text += (c ? "," : "") + quoted(cells[c]);
    return text + "\n";
  };
  std::string csv = line(merged.columns);
  for (const auto& row : merged.rows) csv += line(row);
  // The last row, subject "mean": each column whose cells are all numbers
  // (empty cells aside), averaged over the rows that have one.
  if (!merged.rows.empty()) {
    std::vector<std::string> mean(merged.columns.size());
    mean[0] = "mean";
    for (std::size_t c = 1; c < merged.columns.size(); ++c) {
      double sum = 0;
      std::size_t count = 0;
      bool numeric = true;
      for (const auto& row : merged.rows) {
        if (row[c].empty()) continue;
        const auto value = table_number(row[c]);
        if (!value) {
          numeric = false;
          break;
        }
        sum += *value;
        ++count;
      }
      if (numeric && count > 0) {
        char text[32];
        std::snprintf(text, sizeof text, "%.17g", sum / double(count));
        mean[c] = text;
      }
    }
    csv += line(mean);
  }
  return csv;
}

CohortLoad load_cohort(const fs::path& file, const PipelineVariables& variables, const fs::path& out_dir) {
  CohortLoad result;
  const std::string extension = file.extension().string();
  if (extension == ".json") {
    const auto text = read_small_file(file, "cohort", result.problems);
    if (!text) return result;
    const json document = json::parse(*text, nullptr, false);
    if (document.is_discarded() || !document.is_object()) {
      result.problems.push_back({file.string(), "is not a JSON object", "see docs/cohorts.md"});
      return result;
    }
    if (!document.contains("format_version") || document["format_version"] != 1) {
      result.problems.push_back({file.string() + " /format_version", "must be 1", "\"format_version\": 1"});
    }
    for (const auto& [key, ignored] : document.items()) {
      if (key != "format_version" && key != "table" && key != "bids" && key != "pairs" && key != "description") {
        result.problems.push_back({file.string() + " /" + key, "unknown key '" + key + "'",
                                   "a cohort file has format_version, description, and table, bids or pairs"});
      }
    }
    const bool has_table = document.contains("table"), has_bids = document.contains("bids");
    const bool has_pairs = document.contains("pairs");
    if (int(has_table) + int(has_bids) + int(has_pairs) != 1) {
      result.problems.push_back({file.string(), "needs exactly one of \"table\", \"bids\" and \"pairs\"",
                                 "\"table\": \"subjects.tsv\", \"bids\": {\"root\": ..., \"variables\": ...} or "
                                 "\"pairs\": {\"root\": ..., \"variables\": ...}"});
    }
    if (!result.problems.empty()) return result;
    if (has_table) {
      if (!document["table"].is_string()) {
        result.problems.push_back({file.string() + " /table", "must be the path of a .csv or .tsv file", ""});
        return result;
      }
      fs::path table = document["table"].get<std::string>();
      if (table.is_relative()) table = file.parent_path() / table;
      result.cohort = load_table(table, variables, out_dir, result.problems);
    } else if (has_bids) {
      result.cohort = load_bids(file, document["bids"], variables, out_dir, result.problems);
    } else {
      result.cohort = load_pairs(file, document["pairs"], variables, out_dir, result.problems);
    }
  } else if (extension == ".csv" || extension == ".tsv" || extension == ".CSV" || extension == ".TSV") {
    result.cohort = load_table(file, variables, out_dir, result.problems);
  } else {
    result.problems.push_back({file.string(), "is not a cohort: a subjects table (.csv, .tsv) or a cohort file (.json)",
                               "see docs/cohorts.md"});
  }
  if (!result.problems.empty()) result.cohort.reset();
  // A pipeline that declares `subject` gets each subject's id in it (e.g. to
  // name its outputs after the source's file stem).
  if (result.cohort && variables.declared.count("subject") != 0) {
    for (CohortSubject& subject : result.cohort->subjects) subject.variables.emplace("subject", subject.id);
  }
  return result;
}

}  // namespace fusionflow
