// The study report (`fusionflow cohort run --report`, `fusionflow cohort
// report STUDY`; docs/cohorts.md, "Study report"): one HTML page for a
// cohort, beside its cohort.json. It links every subject's own run report
// and log, and shows the study's metrics across subjects as plots (a box
// and the subjects' points per metric), with run time and peak memory the
// same way, so that the subject that went wrong stands out. Self-contained:
// the style is inside, the plots are inline SVG, links are relative.
#pragma once

#include <filesystem>
#include <string>

#include <fusionflow/cohort.hpp>
#include <nlohmann/json.hpp>

namespace fusionflow::cli {

struct StudyReportInput {
  // cohort.json of the study, each subject's state as its run record says.
  const nlohmann::ordered_json* study = nullptr;
  std::filesystem::path folder;            // the study folder: links are relative to it
  const SubjectTables* metrics = nullptr;  // the subjects' metrics tables (metrics.csv without its mean row)
};

std::string study_report_html(const StudyReportInput& input, const std::filesystem::path& web_directory);

}  // namespace fusionflow::cli
