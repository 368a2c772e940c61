// Cohorts (fusionflow/cohort.hpp): subjects tables and BIDS-style datasets,
// checked against the pipeline's variables before anything runs.
#include <fusionflow/cohort.hpp>

#include <gtest/gtest.h>

#include <fstream>

#include "test_support.hpp"

namespace fusionflow {
namespace {
namespace fs = std::filesystem;

using testing::write_file;

// ct, mri and pet are files the nodes read (pet has a default); level is a
// plain value with a default; out is the study's.
PipelineVariables fusion_variables() {
  PipelineVariables variables;
  variables.declared = {{"ct", false}, {"mri", false}, {"pet", true}, {"level", true}, {"out", true}};
  variables.input_paths = {"ct", "mri", "pet"};
  return variables;
}

bool has_problem(const CohortLoad& load, const std::string& location, const std::string& message) {
  for (const Diagnostic& problem : load.problems) {
    if (problem.location.find(location) != std::string::npos && problem.message.find(message) != std::string::npos) {
      return true;
    }
  }
  return false;
}

std::string all_problems(const CohortLoad& load) {
  std::string text;
  for (const Diagnostic& problem : load.problems) text += problem.location + ": " + problem.message + "\n";
  return text;
}

class CohortTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = testing::fresh_temp_directory("cohort");
    for (const char* file : {"data/s1_ct.nii.gz", "data/s1_t1.nii.gz", "data/s2_ct.nii.gz", "data/s2 t1.nii.gz"}) {
      write_file(dir_ / file, "x");
    }
  }
  void TearDown() override { fs::remove_all(dir_); }
  fs::path dir_;
};

TEST_F(CohortTest, ACsvTableGivesEachSubjectItsValuesWithPathsFromTheTablesFolder) {
  write_file(dir_ / "study/subjects.csv",
             "\xEF\xBB\xBFsubject,ct,mri,level\r\n"
             "s1,../data/s1_ct.nii.gz,../data/s1_t1.nii.gz,3\r\n"
             "\r\n"
             "s2,../data/s2_ct.nii.gz,\"../data/s2 t1.nii.gz\",\r\n");
  const CohortLoad load = load_cohort(dir_ / "study/subjects.csv", fusion_variables(), dir_ / "out");
  ASSERT_TRUE(load.ok()) << all_problems(load);
  const auto& subjects = load.cohort->subjects;
  ASSERT_EQ(subjects.size(), 2u);
  EXPECT_EQ(subjects[0].id, "s1");
  EXPECT_EQ(subjects[0].origin, "row 2");
  EXPECT_EQ(subjects[0].variables.at("ct"), (dir_ / "data/s1_ct.nii.gz").string());
  EXPECT_EQ(subjects[0].variables.at("level"), "3");
  EXPECT_EQ(subjects[0].variables.at("out"), (dir_ / "out/s1").string());
  EXPECT_EQ(subjects[1].origin, "row 4");
  EXPECT_EQ(subjects[1].variables.at("mri"), (dir_ / "data/s2 t1.nii.gz").string());
  EXPECT_EQ(subjects[1].variables.count("level"), 0u);  // empty: the pipeline's default
  EXPECT_EQ(subjects[1].variables.count("pet"), 0u);
}

TEST_F(CohortTest, EveryProblemOfTheRowsIsReportedAtOnceWithItsRowAndColumn) {
  write_file(dir_ / "subjects.tsv",
             "subject\tct\tmri\n"
             "s1\tdata/s1_ct.nii.gz\tdata/s1_t1.nii.gz\n"
             "s1\tdata/s2_ct.nii.gz\tdata/nowhere.nii.gz\n"
             "../up\tdata/s1_ct.nii.gz\tdata/s1_t1.nii.gz\n"
             "s4\tdata/s1_ct.nii.gz\n"
             "s5\t\tdata/s1_t1.nii.gz\n");
  const CohortLoad load = load_cohort(dir_ / "subjects.tsv", fusion_variables(), dir_ / "out");
  EXPECT_FALSE(load.ok());
  EXPECT_TRUE(has_problem(load, "row 3, column 'subject'", "subject 's1' is already on row 2")) << all_problems(load);
  EXPECT_TRUE(has_problem(load, "row 3, column 'mri'", "nowhere.nii.gz does not exist")) << all_problems(load);
  EXPECT_TRUE(has_problem(load, "row 4, column 'subject'", "'../up' cannot name a folder")) << all_problems(load);
  EXPECT_TRUE(has_problem(load, "row 5", "has 2 values for 3 columns")) << all_problems(load);
  EXPECT_TRUE(has_problem(load, "row 6, column 'ct'", "no value, and the pipeline's variable 'ct' has no default"))
      << all_problems(load);
  EXPECT_EQ(load.problems.size(), 5u) << all_problems(load);
}

TEST_F(CohortTest, HeaderProblemsNameTheColumn) {
  write_file(dir_ / "subjects.csv", "subject,ct,mir,ct,extra\ns1,data/s1_ct.nii.gz,x,y,z\n");
  CohortLoad load = load_cohort(dir_ / "subjects.csv", fusion_variables(), dir_ / "out");
  EXPECT_TRUE(has_problem(load, "row 1, column 3", "column 'mir' is not a variable of the pipeline"));
  EXPECT_EQ(load.problems.front().hint.rfind("did you mean 'mri'?", 0), 0u) << load.problems.front().hint;
  EXPECT_TRUE(has_problem(load, "row 1, column 4", "column 'ct' appears twice"));
  EXPECT_TRUE(has_problem(load, "row 1, column 5", "column 'extra' is not a variable"));
  EXPECT_TRUE(has_problem(load, "row 1", "no column 'mri'")) << all_problems(load);
  write_file(dir_ / "nosubject.csv", "ct,mri\ndata/s1_ct.nii.gz,data/s1_t1.nii.gz\n");
  load = load_cohort(dir_ / "nosubject.csv", fusion_variables(), dir_ / "out");
  EXPECT_TRUE(has_problem(load, "row 1", "no 'subject' column")) << all_problems(load);
  write_file(dir_ / "quote.csv", "subject,ct,mri\ns1,\"data/s1_ct.nii.gz,data/s1_t1.nii.gz\n");
  load = load_cohort(dir_ / "quote.csv", fusion_variables(), dir_ / "out");
  EXPECT_TRUE(has_problem(load, "line 2", "a quoted value is not closed")) << all_problems(load);
  load = load_cohort(dir_ / "subjects.txt", fusion_variables(), dir_ / "out");
  EXPECT_TRUE(has_problem(load, "subjects.txt", "is not a cohort")) << all_problems(load);
}

TEST_F(CohortTest, ABidsDatasetGivesOneSubjectPerSubjectOrSessionFolder) {
  const fs::path ds = dir_ / "ds";
  write_file(ds / "sub-01/ses-a/anat/sub-01_ses-a_T1w.nii.gz", "x");
  write_file(ds / "sub-01/ses-a/ct/sub-01_ses-a_ct.nii.gz", "x");
  write_file(ds / "sub-01/ses-b/anat/sub-01_ses-b_T1w.nii.gz", "x");
  write_file(ds / "sub-01/ses-b/ct/sub-01_ses-b_ct.nii", "x");
  write_file(ds / "sub-02/anat/sub-02_T1w.nii.gz", "x");
  write_file(ds / "sub-02/ct/sub-02_ct.nii.gz", "x");
  write_file(ds / "README", "not a subject");
  write_file(dir_ / "cohort.json", R"({"format_version": 1, "bids": {"root": "ds",
    "variables": {"mri": "anat/*_T1w.nii*", "ct": "ct/*_ct.nii*"}}})");
  CohortLoad load = load_cohort(dir_ / "cohort.json", fusion_variables(), dir_ / "out");
  ASSERT_TRUE(load.ok()) << all_problems(load);
  const auto& subjects = load.cohort->subjects;
  ASSERT_EQ(subjects.size(), 3u);
  EXPECT_EQ(subjects[0].id, "sub-01_ses-a");
  EXPECT_EQ(subjects[1].id, "sub-01_ses-b");
  EXPECT_EQ(subjects[1].variables.at("ct"), (ds / "sub-01/ses-b/ct/sub-01_ses-b_ct.nii").string());
  EXPECT_EQ(subjects[2].id, "sub-02");
  EXPECT_EQ(subjects[2].variables.at("out"), (dir_ / "out/sub-02").string());

  write_file(ds / "sub-02/anat/sub-02_run-2_T1w.nii.gz", "x");
  fs::remove(ds / "sub-01/ses-a/ct/sub-01_ses-a_ct.nii.gz");
  load = load_cohort(dir_ / "cohort.json", fusion_variables(), dir_ / "out");
  EXPECT_TRUE(has_problem(load, "sub-01/ses-a", "no file matches ct/*_ct.nii* (variable 'ct')")) << all_problems(load);
  EXPECT_TRUE(has_problem(load, "sub-02", "2 files match anat/*_T1w.nii* (variable 'mri')")) << all_problems(load);
  EXPECT_EQ(load.problems.size(), 2u) << all_problems(load);
}

TEST_F(CohortTest, AFolderOfPairsGivesOneSubjectPerFileStem) {
  const fs::path pairs = dir_ / "harvard";
  for (const char* file : {"MRI/1.png", "MRI/2.png", "PET/1.png", "PET/2.png", "PET/notes.txt"})
    write_file(pairs / file, "x");
  write_file(dir_ / "pairs.json", R"({"format_version": 1, "pairs": {"root": "harvard",
    "variables": {"ct": "MRI/*.png", "mri": "PET/*.png"}}})");
  PipelineVariables variables = fusion_variables();
  variables.declared["subject"] = true;
  CohortLoad load = load_cohort(dir_ / "pairs.json", variables, dir_ / "out");
  ASSERT_TRUE(load.ok()) << all_problems(load);
  const auto& subjects = load.cohort->subjects;
  ASSERT_EQ(subjects.size(), 2u);
  EXPECT_EQ(subjects[0].id, "1");
  EXPECT_EQ(subjects[0].variables.at("ct"), (pairs / "MRI/1.png").string());
  EXPECT_EQ(subjects[0].variables.at("mri"), (pairs / "PET/1.png").string());
  EXPECT_EQ(subjects[1].variables.at("subject"), "2") << "the pipeline's subject variable holds the stem";
  EXPECT_EQ(subjects[1].variables.at("out"), (dir_ / "out/2").string());

  write_file(pairs / "PET/3.png", "x");
  load = load_cohort(dir_ / "pairs.json", variables, dir_ / "out");
  EXPECT_TRUE(
      has_problem(load, "PET/3.png", "has no partner for variable 'ct' (no file of stem '3' matches MRI/*.png)"))
      << all_problems(load);
  EXPECT_EQ(load.problems.size(), 1u) << all_problems(load);
}

TEST_F(CohortTest, TheStudysMetricsEndWithTheMeanOfEveryNumericColumn) {
  write_file(dir_ / "a.csv", "label,ssim,note\nx,0.5,fine\n");
  write_file(dir_ / "b.csv", "label,ssim,en\nx,1.5,4\n");
  std::vector<Diagnostic> problems;
  const std::string merged =
      subject_tables_csv(merge_subject_tables({{"a", dir_ / "a.csv"}, {"b", dir_ / "b.csv"}}, problems));
  EXPECT_TRUE(problems.empty());
  EXPECT_EQ(merged,
            "subject,label,ssim,note,en\n"
            "a,x,0.5,fine,\n"
            "b,x,1.5,,4\n"
            "mean,,1,,4\n");
}

TEST_F(CohortTest, ACohortFileIsCheckedKeyByKey) {
  write_file(dir_ / "a.json", R"({"format_version": 2, "table": "t.csv", "bids": {}, "subjects": 3})");
  CohortLoad load = load_cohort(dir_ / "a.json", fusion_variables(), dir_ / "out");
  EXPECT_TRUE(has_problem(load, "/format_version", "must be 1"));
  EXPECT_TRUE(has_problem(load, "/subjects", "unknown key 'subjects'"));
  EXPECT_TRUE(has_problem(load, "a.json", "needs exactly one of \"table\", \"bids\" and \"pairs\""))
      << all_problems(load);
  write_file(dir_ / "b.json", R"({"format_version": 1, "bids": {"root": "ds", "variables": {"mrri": "anat/*"}}})");
  fs::create_directories(dir_ / "ds");
  load = load_cohort(dir_ / "b.json", fusion_variables(), dir_ / "out");
  EXPECT_TRUE(has_problem(load, "/bids/variables/mrri", "'mrri' is not an input variable")) << all_problems(load);
  write_file(dir_ / "list/subjects.csv", "subject,ct,mri\ns1,../data/s1_ct.nii.gz,../data/s1_t1.nii.gz\n");
  write_file(dir_ / "c.json", R"({"format_version": 1, "table": "list/subjects.csv"})");
  load = load_cohort(dir_ / "c.json", fusion_variables(), dir_ / "out");
  ASSERT_TRUE(load.ok()) << all_problems(load);
  EXPECT_EQ(load.cohort->subjects.at(0).variables.at("ct"), (dir_ / "data/s1_ct.nii.gz").string());
}

}  // namespace
}  // namespace fusionflow
