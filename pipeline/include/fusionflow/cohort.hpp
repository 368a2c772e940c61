// A cohort: one pipeline over many subjects. Each subject is a set of values
// for the pipeline's variables (its CT, MRI and PET files, ...), read from a
// subjects table or found in a BIDS-style dataset folder, and checked as a
// whole before anything runs (docs/cohorts.md).
//
// Sources:
//  - a table, FILE.csv or FILE.tsv: a header row naming a `subject` column
//    and pipeline variables, then one row per subject; file and folder paths
//    relative to the table's folder;
//  - a cohort file, FILE.json: {"format_version": 1, "table": "subjects.tsv"}
//    or {"format_version": 1, "bids": {"root": "dataset", "variables":
//    {"mri": "anat/*_T1w.nii.gz", "pet": "pet/*_pet.nii.gz", "ct": "ct/*_ct.nii.gz"}}}:
//    every sub-*/ (or sub-*/ses-*/) folder of the root is a subject
//    (sub-01, or sub-01_ses-1), and each variable is the one file its
//    pattern (fnmatch, one per path segment) matches there.
// `out` is OUT/<subject> unless the table gives it.
#pragma once

#include <filesystem>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "fusionflow/pipeline.hpp"
#include "fusionflow/registry.hpp"

namespace fusionflow {

// What a cohort needs to know of its pipeline: the variables it declares
// (true: with a default) and those its nodes read files or folders from
// (used directly in an input-path parameter), whose values must exist.
struct PipelineVariables {
  std::map<std::string, bool> declared;
  std::set<std::string> input_paths;
};

// Reads the pipeline file's variables and, with the registry's node types,
// which of them are input paths. Problems (unreadable file, not JSON) are
// diagnostics; the pipeline's other checks are load_pipeline_file's.
std::optional<PipelineVariables> read_pipeline_variables(const std::filesystem::path& pipeline_file,
                                                         const NodeRegistry& registry,
                                                         std::vector<Diagnostic>& problems);

struct CohortSubject {
  std::string id;                                // also its folder under OUT
  std::string origin;                            // "row 4" of a table, the dataset folder, or the pair's stem
  std::map<std::string, std::string> variables;  // the values to set (paths made absolute), `out` included
};

struct Cohort {
  std::filesystem::path source;
  std::vector<CohortSubject> subjects;  // in table order, or sorted by folder
};

struct CohortLoad {
  std::optional<Cohort> cohort;      // set only when problems is empty
  std::vector<Diagnostic> problems;  // every one, each with its row and column or folder
  bool ok() const { return cohort.has_value(); }
};

// Reads and checks a cohort against the pipeline's variables: a missing or
// unknown column, an empty value without a default, a file that does not
// exist, a duplicate subject, a subject id that cannot be a folder name, a
// ragged row, a dataset folder with no or several matches for a pattern.
CohortLoad load_cohort(const std::filesystem::path& file, const PipelineVariables& variables,
                       const std::filesystem::path& out_dir);

// The tables `tables` (subject id, CSV file) as one: a `subject` column,
// then the union of the tables' columns in first-seen order (a cell a table
// lacks stays empty), rows in the given order. Files that cannot be read or
// parsed are named in `problems` and left out.
struct SubjectTables {
  std::vector<std::string> columns;            // columns[0] == "subject"
  std::vector<std::vector<std::string>> rows;  // columns.size() cells each
};
SubjectTables merge_subject_tables(const std::vector<std::pair<std::string, std::filesystem::path>>& tables,
                                   std::vector<Diagnostic>& problems);
// As CSV (RFC 4180), with a last row, subject "mean", averaging each
// all-numeric column over the rows that have a value.
std::string subject_tables_csv(const SubjectTables& merged);
// A table cell's number: the whole cell parses (strtod) to a finite value.
std::optional<double> table_number(const std::string& cell);

}  // namespace fusionflow
