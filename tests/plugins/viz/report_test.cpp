// The run report: viz.report_volumes (the viewer's volumes: geometry, values,
// display defaults), and `fusionflow run --report` on the default pipeline,
// read as text (the run's pictures, measurements, registrations, graph and
// nodes are in it, nothing is fetched from elsewhere) and opened from disk in
// headless Chromium (tests/browser/check_report.mjs): no console errors, the
// slice viewer's canvas is not blank, and scrolling over a slice changes it.
#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <regex>

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
  fs::create_directories(shots);
  const auto browser = testing::run_command(std::string(NODE_EXE) + " " + BROWSER_CHECK_SCRIPT + " " +
                                            (work_ / "report.html").string() + " " + shots.string() + " 2>&1");
  ASSERT_EQ(browser.exit_code, 0) << browser.text;
  const auto line = browser.text.rfind("{\"console_errors\"");
  ASSERT_NE(line, std::string::npos) << browser.text;
  const auto result = nlohmann::json::parse(browser.text.substr(line, browser.text.find('\n', line) - line));
  EXPECT_TRUE(result.at("console_errors").empty()) << result.at("console_errors").dump(2);
  EXPECT_TRUE(result.at("page_errors").empty()) << result.at("page_errors").dump(2);
  EXPECT_TRUE(result.at("failed_requests").empty()) << result.at("failed_requests").dump(2);
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

}  // namespace
}  // namespace fusionflow::viz_test
