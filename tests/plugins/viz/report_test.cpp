// The run report: viz.report_volumes (the viewer's volumes: geometry, values,
// display defaults), and `fusionflow run --report` on the default pipeline,
// read as text (the run's pictures, measurements, registrations, graph and
// nodes are in it, nothing is fetched from elsewhere) and opened from disk in
// headless Chromium (tests/browser/check_report.mjs): no console errors, the
// slice viewer's canvas is not blank, and scrolling over a slice changes it.
// The study report of `fusionflow cohort run --report` and `cohort report`:
// every subject's page linked, the metrics across subjects plotted and
// summarised as metrics.csv holds them, and the page opens in Chromium.
#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <regex>
#include <sstream>

#include <fusionflow/itk_bridge.hpp>

#include "test_support.hpp"
#include "viz_test_support.hpp"

namespace fusionflow::viz_test {
namespace {
using testing::NodeHarness;

nlohmann::json read_json(const fs::path& path) { return nlohmann::json::parse(read_text(path)); }

// --- viz.report_volumes --------------------------------------------------------

// Runs viz.report_volumes on `volumes` into `dir`; returns its viewer.json.
nlohmann::json report_volumes(const fs::path& dir, const std::vector<const Volume*>& volumes,
                              const std::map<std::string, ParamValue>& params = {}) {
  NodeHarness node(bundled(), "viz.report_volumes");
  for (const Volume* volume : volumes) node.add_input("volumes", *volume);
  for (const auto& [name, value] : params) node.set_param(name, value);
  node.set_param("directory", dir.string());
  node.run();
  return read_json(dir / "viewer.json");
}

TEST(ReportVolumes, KeepsACtInHuExactlyAndItsGeometry) {
  const fs::path dir = scratch_dir("report-volumes-ct");
  const auto manifest = report_volumes(dir, {&phantom().ct});
  ASSERT_EQ(manifest.at("volumes").size(), 1u);
  const auto& entry = manifest.at("volumes").at(0);
  EXPECT_EQ(entry.at("modality"), "CT");
  EXPECT_EQ(entry.at("colormap"), "gray");
  EXPECT_EQ(entry.at("bin"), nlohmann::json::array({1, 1, 1}));
  const Volume back = read_volume(dir / entry.at("file").get<std::string>());
  const Geometry& original = phantom().ct.geometry;
  EXPECT_EQ(back.geometry.size, original.size);
  for (int axis = 0; axis < 3; ++axis) {
    EXPECT_NEAR(back.geometry.origin[axis], original.origin[axis], 1e-3);
    EXPECT_NEAR(back.geometry.spacing[axis], original.spacing[axis], 1e-5);
  }
  // The phantom's CT is in whole HU: stored as they are.
  double largest_error = 0;
  for (std::size_t v = 0; v < back.voxels.size(); ++v) {
    largest_error = std::max(largest_error, double(std::abs(back.voxels[v] - std::nearbyint(phantom().ct.voxels[v]))));
  }
  EXPECT_EQ(largest_error, 0.0);
}

TEST(ReportVolumes, ReducesByWholeBinsToMaxSizeKeepingTheFieldOfView) {
  const fs::path dir = scratch_dir("report-volumes-bins");
  const auto manifest = report_volumes(dir, {&phantom().ct, &phantom().pet},
                                       {{"labels", std::string("CT, PET")}, {"max_size", std::int64_t{30}}});
  ASSERT_EQ(manifest.at("volumes").size(), 2u);
  const auto& pet_entry = manifest.at("volumes").at(1);
  EXPECT_EQ(pet_entry.at("label"), "PET");
  EXPECT_EQ(pet_entry.at("colormap"), "hot");
  const Volume& pet = phantom().pet;
  const Volume back = read_volume(dir / pet_entry.at("file").get<std::string>());
  for (int axis = 0; axis < 3; ++axis) {
    const std::size_t bin = (pet.geometry.size[axis] + 29) / 30;
    EXPECT_EQ(pet_entry.at("bin").at(axis).get<std::size_t>(), bin);
    EXPECT_EQ(back.geometry.size[axis], pet.geometry.size[axis] / bin);
    EXPECT_NEAR(back.geometry.spacing[axis], pet.geometry.spacing[axis] * double(bin), 1e-4);
    // The first bin's centre: the mean of its voxels' centres.
    const double first_centre = pet.geometry.origin[axis] + 0.5 * double(bin - 1) * pet.geometry.spacing[axis];
    EXPECT_NEAR(back.geometry.origin[axis], first_centre, 1e-3);
  }
  // Values: each bin's mean, back within half a level of the int16 scale.
  const std::size_t b0 = pet_entry.at("bin").at(0), b1 = pet_entry.at("bin").at(1), b2 = pet_entry.at("bin").at(2);
  const auto [low, high] = std::minmax_element(back.voxels.begin(), back.voxels.end());
  const double half_level = 0.5 * (double(*high) - double(*low)) / 65535.0 * 1.01 + 1e-6;
  double largest_error = 0;
  for (std::size_t k = 0; k < back.geometry.size[2]; k += 3)
    for (std::size_t j = 0; j < back.geometry.size[1]; j += 3)
      for (std::size_t i = 0; i < back.geometry.size[0]; i += 3) {
        double sum = 0;
        for (std::size_t z = 0; z < b2; ++z)
          for (std::size_t y = 0; y < b1; ++y)
            for (std::size_t x = 0; x < b0; ++x) sum += pet.at(i * b0 + x, j * b1 + y, k * b2 + z);
        largest_error = std::max(largest_error, std::abs(back.at(i, j, k) - sum / double(b0 * b1 * b2)));
      }
  EXPECT_LE(largest_error, half_level + 1e-3 * std::abs(double(*high)));
  // The PET window starts above zero, so that the overlay leaves the anatomy clear.
  EXPECT_GT(pet_entry.at("cal_min").get<double>(), 0.0);
  EXPECT_GT(pet_entry.at("cal_max").get<double>(), pet_entry.at("cal_min").get<double>());
}

TEST(ReportVolumes, RefusesALabelCountThatDoesNotMatch) {
  const fs::path dir = scratch_dir("report-volumes-labels");
  try {
    report_volumes(dir, {&phantom().ct}, {{"labels", std::string("CT, PET")}});
    FAIL() << "two labels for one volume were accepted";
  } catch (const std::exception& error) {
    EXPECT_NE(std::string(error.what()).find("labels gives 2 names for the 1 volumes"), std::string::npos)
        << error.what();
  }
  EXPECT_FALSE(fs::exists(dir / "viewer.json"));
}

// --- fusionflow run --report ---------------------------------------------------

// Opens `page` from disk in headless Chromium (tests/browser/check_report.mjs,
// screenshots into `shots`) and checks that it loaded without console errors,
// uncaught exceptions or failed requests; returns what the script saw, or
// null (a failure) when it did not run.
nlohmann::json open_in_chromium(const fs::path& page, const fs::path& shots) {
  fs::create_directories(shots);
  const auto browser = testing::run_command(std::string(NODE_EXE) + " " + BROWSER_CHECK_SCRIPT + " " + page.string() +
                                            " " + shots.string() + " 2>&1");
  const auto line = browser.text.rfind("{\"console_errors\"");
  if (browser.exit_code != 0 || line == std::string::npos) {
    ADD_FAILURE() << "check_report.mjs did not run (exit " << browser.exit_code << "):\n" << browser.text;
    return nullptr;
  }
  auto result = nlohmann::json::parse(browser.text.substr(line, browser.text.find('\n', line) - line));
  EXPECT_TRUE(result.at("console_errors").empty()) << result.at("console_errors").dump(2);
  EXPECT_TRUE(result.at("page_errors").empty()) << result.at("page_errors").dump(2);
  EXPECT_TRUE(result.at("failed_requests").empty()) << result.at("failed_requests").dump(2);
  return result;
}

class RunReport : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    work_ = scratch_dir("run-report");
    const std::string exe = FUSIONFLOW_EXE;
    phantom_ = testing::run_command(exe + " phantom --size 64 --seed 5 --out " + (work_ / "phantom").string());
    run_ = testing::run_command(exe + " run " + FUSIONFLOW_SOURCE_DIR +
                                "/examples/pipelines/pet_ct_mri_fusion.json --threads 2 --no-progress --set out=" +
                                work_.string() + " --report " + (work_ / "report.html").string());
  }

  static fs::path work_;
  static testing::CommandOutput phantom_, run_;
};
fs::path RunReport::work_;
testing::CommandOutput RunReport::phantom_, RunReport::run_;

TEST_F(RunReport, HoldsTheRunsPicturesMeasurementsRegistrationsGraphAndNodes) {
  ASSERT_EQ(phantom_.exit_code, 0) << phantom_.text;
  ASSERT_EQ(run_.exit_code, 0) << run_.text;
  EXPECT_EQ(run_.text.find("warning: report:"), std::string::npos) << "the report left something out:\n" << run_.text;
  const std::string page = read_text(work_ / "report.html");
  // Every picture the pipeline wrote, embedded.
  for (const char* picture : {"fused_figure.png", "fused_3d.png", "pet_ct_overlay.png", "mri_registration_check.png",
                              "pet_registration_check.png", "histogram.png"}) {
    EXPECT_NE(page.find(std::string("alt=\"") + picture + "\" src=\"data:image/png;base64,"), std::string::npos)
        << picture;
  }
  // The metrics, as the table holds them (4 significant digits).
  const auto metrics = read_json(work_ / "metrics.json");
  const double vif = metrics.at("rows").at(0).at("vif");
  char expected[32];
  std::snprintf(expected, sizeof expected, "<td class=\"num\">%.4g</td>", vif);
  EXPECT_NE(page.find(expected), std::string::npos) << expected;
  // Both registrations with their final metric and transform.
  for (const char* node : {"mri_to_ct", "pet_to_ct"}) {
    EXPECT_NE(page.find(std::string("<h3><code>") + node + "</code> (register.rigid)"), std::string::npos) << node;
  }
  EXPECT_EQ(occurrences(page, "rigid registration: metric"), 2u * 2u)  // registration section and log
      << "each registration's result, in its section and in the log";
  EXPECT_NE(page.find("Translation x, y, z (LPS)"), std::string::npos);
  // The graph (Graphviz SVG) and the node table name every node.
  EXPECT_NE(page.find("<svg"), std::string::npos);
  for (const char* node : {"ct", "mri_to_ct", "fuse", "metrics", "report_volumes"}) {
    EXPECT_NE(page.find(std::string("font-size=\"14.00\">") + node + "</text>"), std::string::npos)
        << "graph: " << node;
    EXPECT_NE(page.find(std::string("<tr><td><code>") + node + "</code>"), std::string::npos) << "table: " << node;
  }
  // The PET loader's warning (no SUV without the patient's weight) is shown.
  EXPECT_NE(page.find("kept in Bq/mL"), std::string::npos);
  // Self-contained: no script, style, image or frame from elsewhere.
  const std::regex external(R"re((src|href)\s*=\s*["']?(https?:|//))re", std::regex::icase);
  EXPECT_FALSE(std::regex_search(page, external)) << "the page loads something from the network";
}

TEST_F(RunReport, OpensInChromiumFromDiskWithAWorkingSliceViewer) {
  ASSERT_EQ(run_.exit_code, 0) << run_.text;
  const fs::path shots = work_ / "browser";
  const auto result = open_in_chromium(work_ / "report.html", shots);
  ASSERT_FALSE(result.is_null());
  ASSERT_TRUE(result.at("viewer_ready").get<bool>()) << result.dump(2);
  EXPECT_EQ(result.at("viewer_volumes"), 4);
  for (const auto& image : result.at("images")) {
    EXPECT_TRUE(image.at("complete").get<bool>()) << image.dump();
    EXPECT_GT(image.at("width").get<int>(), 100) << image.dump();
  }

  // The canvas shows the head, not a blank or uniform rectangle ...
  const viz::RgbImage before = viz::read_png(shots / "viewer_before.png");
  const viz::RgbImage after = viz::read_png(shots / "viewer_after.png");
  EXPECT_GT(before.width, 400);
  const PictureStats stats = picture_stats(before);
  EXPECT_GT(stats.foreground, 0.10) << "the viewer's canvas is mostly background";
  EXPECT_GT(stats.grey_std, 20.0) << "the viewer's canvas is nearly uniform";
  // ... in colour where the PET overlay is (hot colour map: red well above blue).
  std::size_t warm = 0;
  for (int y = 0; y < before.height; ++y)
    for (int x = 0; x < before.width; ++x) {
      const std::uint8_t* p = before.at(x, y);
      if (p[0] > 150 && p[0] > p[2] + 80) ++warm;
    }
  EXPECT_GT(double(warm) / double(before.width * before.height), 0.01) << "no PET overlay on the canvas";
  // Scrolling over a slice moves it: the picture changes.
  EXPECT_GT(mean_difference(before, after), 1.0) << "scrolling did not change the canvas";
}

// --- fusionflow cohort run --report, cohort report ---------------------------

// The cells of a CSV without quoted values (metrics.csv as the study writes it).
std::vector<std::vector<std::string>> csv_rows(const std::string& text) {
  std::vector<std::vector<std::string>> rows;
  std::istringstream lines(text);
  for (std::string line; std::getline(lines, line);) {
    std::vector<std::string> cells;
    std::istringstream fields(line);
    for (std::string cell; std::getline(fields, cell, ',');) cells.push_back(cell);
    if (!line.empty() && line.back() == ',') cells.emplace_back();
    rows.push_back(std::move(cells));
  }
  return rows;
}

std::string four_digits(double value) {
  char text[32];
  std::snprintf(text, sizeof text, "%.4g", value);
  return text;
}

TEST(StudyReport, LinksEverySubjectsReportAndPlotsTheMetricsAcrossSubjects) {
  const fs::path work = scratch_dir("study-report");
  const std::string exe = FUSIONFLOW_EXE;
  for (const char* seed : {"1", "2"}) {
    const std::string phantom = (work / ("phantom" + std::string(seed))).string();
    ASSERT_EQ(testing::run_command(exe + " phantom --size 24 --anatomy-seed " + seed + " --out " + phantom).exit_code,
              0);
  }
  {  // s3's PET is cut short: that subject fails, alone
    const std::string pet = read_text(work / "phantom1/pet.nii.gz");
    std::ofstream(work / "cut_pet.nii.gz", std::ios::binary) << pet.substr(0, pet.size() / 3);
  }
  std::ofstream(work / "subjects.csv") << "subject,ct,mri,pet\n"
                                          "s1,phantom1/ct.nii.gz,phantom1/t1.nii.gz,phantom1/pet.nii.gz\n"
                                          "s2,phantom2/ct.nii.gz,phantom2/t1.nii.gz,phantom2/pet.nii.gz\n"
                                          "s3,phantom1/ct.nii.gz,phantom1/t1.nii.gz,cut_pet.nii.gz\n";
  const fs::path study = work / "study";
  const auto cohort = testing::run_command(exe + " cohort run " + (work / "subjects.csv").string() + " " +
                                           FUSIONFLOW_SOURCE_DIR + "/examples/pipelines/pet_ct_mri_fusion.json --out " +
                                           study.string() + " --threads 2 --report");
  ASSERT_EQ(cohort.exit_code, 1) << cohort.text;  // s3 failed
  EXPECT_NE(cohort.text.find("cohort: study report " + (study / "report.html").string()), std::string::npos)
      << cohort.text;
  for (const char* subject : {"s1", "s2", "s3"}) {
    EXPECT_TRUE(fs::is_regular_file(study / subject / "report.html")) << subject << " has no run report";
  }
  const std::string page = read_text(study / "report.html");
  for (const char* subject : {"s1", "s2", "s3"}) {
    EXPECT_NE(page.find(std::string("<a href=\"") + subject + "/report.html\">report</a>"), std::string::npos)
        << subject;
  }
  EXPECT_NE(page.find("is truncated"), std::string::npos) << "s3's error is not on the page";

  // Each metric a plot; the statistics are those of metrics.csv's rows.
  const auto rows = csv_rows(read_text(study / "metrics.csv"));
  ASSERT_EQ(rows.size(), 4u) << "header, s1, s2, mean";
  ASSERT_EQ(rows.back().at(0), "mean");
  std::size_t plotted = 0;
  for (std::size_t c = 0; c < rows[0].size(); ++c) {
    const std::string& column = rows[0][c];
    const std::string title = "font-weight=\"bold\">" + column + "</text>";
    if (column == "slice" || column == "slices" || rows[1].at(c).empty() || column == "subject" || column == "label" ||
        column == "scope") {
      EXPECT_EQ(page.find(title), std::string::npos) << column << " is plotted, but is not a measurement";
      continue;
    }
    ++plotted;
    EXPECT_NE(page.find(title), std::string::npos) << column << " has no plot";
    const double s1 = std::stod(rows[1].at(c)), s2 = std::stod(rows[2].at(c));
    ASSERT_NE(s1, s2) << column << ": the two phantoms should differ";
    // mean (metrics.csv's own mean row), then lowest and highest with their subjects
    const std::string stats = "<td class=\"num\">" + four_digits(std::stod(rows[3].at(c))) + "</td>";
    const std::string lowest = "<td class=\"num\">" + four_digits(std::min(s1, s2)) + " (" + (s1 < s2 ? "s1" : "s2") +
                               ")</td><td class=\"num\">" + four_digits(std::max(s1, s2)) + " (" +
                               (s1 < s2 ? "s2" : "s1") + ")</td>";
    const auto row = page.find("<tr><td>" + column + "</td>");
    ASSERT_NE(row, std::string::npos) << column << " has no statistics row";
    const std::string line = page.substr(row, page.find("</tr>", row) - row);
    EXPECT_NE(line.find(stats), std::string::npos) << column << ": " << line;
    EXPECT_NE(line.find(lowest), std::string::npos) << column << ": " << line;
  }
  EXPECT_GE(plotted, 6u) << "the default pipeline's metrics: EN, SD, SF, MI, VIF, Qabf, SSIM";
  const std::regex external(R"re((src|href)\s*=\s*["']?(https?:|//))re", std::regex::icase);
  EXPECT_FALSE(std::regex_search(page, external)) << "the page loads something from the network";

  // In Chromium from disk: no errors, every plot drawn with both done
  // subjects, every link to a file that exists.
  const fs::path shots = work / "browser";
  const auto result = open_in_chromium(study / "report.html", shots);
  ASSERT_FALSE(result.is_null());
  EXPECT_FALSE(result.at("viewer_present").get<bool>());
  std::size_t metric_plots = 0;
  for (const auto& svg : result.at("svgs")) {
    EXPECT_GT(svg.at("width").get<double>(), 400) << svg.dump();
    if (svg.at("circles").get<int>() == 2) ++metric_plots;  // s1 and s2
  }
  EXPECT_GE(metric_plots, plotted) << result.at("svgs").dump();
  std::size_t files = 0;
  for (const auto& link : result.at("links")) {
    const std::string url = link.get<std::string>();
    ASSERT_EQ(url.rfind("file://", 0), 0u) << url;
    if (url.find('#') != std::string::npos) continue;
    EXPECT_TRUE(fs::exists(url.substr(7))) << "a link to nothing: " << url;
    ++files;
  }
  EXPECT_GE(files, 2u + 3u * 2u) << "metrics.csv, cohort.json, and each subject's report and log";
  const PictureStats stats = picture_stats(viz::read_png(shots / "page.png"));
  EXPECT_GT(stats.grey_std, 10.0) << "the page looks blank";

  // `cohort report` writes the same page again from the study folder.
  const auto again = testing::run_command(exe + " cohort report " + study.string());
  ASSERT_EQ(again.exit_code, 0) << again.text;
  EXPECT_NE(again.text.find((study / "report.html").string()), std::string::npos) << again.text;
  EXPECT_EQ(read_text(study / "report.html"), page);
  EXPECT_EQ(testing::run_command(exe + " cohort report " + (work / "nothing").string()).exit_code, 2);
}

}  // namespace
}  // namespace fusionflow::viz_test
