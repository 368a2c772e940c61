// The main job end to end: the default MRI + CT + PET fusion pipeline
// (examples/pipelines/pet_ct_mri_fusion.json) on a small phantom, through the
// real `fusionflow` program.
#include <gtest/gtest.h>

#include "test_support.hpp"

#include <sys/wait.h>

#include <array>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <algorithm>
#include <cmath>
#include <map>
#include <sstream>

#include <fusionflow/itk_bridge.hpp>
#include <fusionflow/sha256.hpp>
#include <zlib.h>

namespace {
namespace fs = std::filesystem;

using Output = fusionflow::testing::CommandOutput;

Output run(const std::string& arguments) {
  return fusionflow::testing::run_command(std::string(FUSIONFLOW_EXE) + " " + arguments);
}

std::vector<std::string> split(const std::string& line) {
  std::vector<std::string> cells;
  std::stringstream stream(line);
  std::string cell;
  while (std::getline(stream, cell, ',')) cells.push_back(cell);
  if (!line.empty() && line.back() == ',') cells.emplace_back();
  return cells;
}

class DefaultPipeline : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    work_ = fs::temp_directory_path() / ("fusionflow-default-" + std::to_string(::getpid()));
    fs::remove_all(work_);
    phantom_ = run("phantom --size 64 --seed 3 --out " + (work_ / "phantom").string());
    pipeline_ = run("run " + std::string(FUSIONFLOW_SOURCE_DIR) + "/examples/pipelines/pet_ct_mri_fusion.json" +
                    " --threads 2 --set ct=" + (work_ / "phantom/ct.nii.gz").string() + " --set mri=" +
                    (work_ / "phantom/t1.nii.gz").string() + " --set pet=" + (work_ / "phantom/pet.nii.gz").string() +
                    " --set out=" + (work_ / "out").string() + " --record " + (work_ / "out/run.json").string() +
                    " --report " + (work_ / "out/report.html").string());
  }
  static void TearDownTestSuite() { fs::remove_all(work_); }

  static fs::path work_;
  static Output phantom_, pipeline_;
};
fs::path DefaultPipeline::work_;
Output DefaultPipeline::phantom_, DefaultPipeline::pipeline_;

TEST_F(DefaultPipeline, RunsAndWritesEveryOutput) {
  ASSERT_EQ(phantom_.exit_code, 0) << phantom_.text;
  ASSERT_EQ(pipeline_.exit_code, 0) << pipeline_.text;
  for (const char* file :
       {"fused.nii.gz", "fused_dicom/slice-0001.dcm", "mri_on_ct.nii.gz", "pet_on_ct.nii.gz", "mri_to_ct.tfm",
        "pet_to_ct.tfm", "fused_3d.png", "pet_ct_3d.png", "pet_ct_overlay.png", "fused_figure.png",
        "mri_registration_check.png", "pet_registration_check.png", "histogram.png", "histogram.csv", "metrics.csv",
        "metrics.json", "run.json", "report_volumes/viewer.json", "report.html"}) {
    EXPECT_TRUE(fs::exists(work_ / "out" / file)) << file;
    EXPECT_GT(fs::file_size(work_ / "out" / file), 100u) << file;
  }
}

// The bytes a gzip file holds, as zlib's gzread (ITK's NIfTI reader) reads them.
std::string gunzip(const fs::path& path) {
  gzFile file = gzopen(path.c_str(), "rb");
  if (file == nullptr) return {};
  std::string bytes;
  std::array<char, 1 << 16> buffer{};
  int got = 0;
  while ((got = gzread(file, buffer.data(), static_cast<unsigned>(buffer.size()))) > 0) {
    bytes.append(buffer.data(), static_cast<std::size_t>(got));
  }
  gzclose(file);
  return got == 0 ? bytes : std::string();
}

// Optimisations must keep the output bytes: these SHA-256 digests were taken
// from this phantom's outputs before the speed work of issue 21 (metrics.fusion's
// vectorised filters and shared VIF scales, the executor's heap settings;
// before/after checked also for the 3D metrics mode, per-slice rows and the 2D
// paper protocol). The NIfTI files' digests are of their uncompressed bytes
// (header and voxels): since the block-parallel gzip writer (libdeflate) the
// compressed bytes differ from ITK's zlib stream, the image in them does not
// (checked when the writer changed: the uncompressed bytes recompressed with
// zlib at level 6, as ITK wrote them, gave the earlier files' digests). A change that means
// to change an output updates its digest here, and says why in its commit.
TEST_F(DefaultPipeline, OutputsKeepTheirBytesAcrossSpeedWork) {
  ASSERT_EQ(pipeline_.exit_code, 0) << pipeline_.text;
  EXPECT_EQ(fusionflow::sha256_file_hex(work_ / "out/metrics.csv"),
            "4c8283f1462b3dd432aa101daa4df0974fc6d0cfcb7a06b4e78291fc598e8d02");
  const std::map<std::string, std::string> uncompressed{
      {"fused.nii.gz", "ef1b773930f371ace2c990ed44f7bf09b807f7abb2dc384e0fba3e0289ce5ade"},
      {"mri_on_ct.nii.gz", "91f7fb36fbb5b35347d8e44bc7163d0967fe169fd677765e776082b27145cffb"},
      {"pet_on_ct.nii.gz", "f227ebd3b2e0b6aa24a16236d8c4f0179b68cf4abfbb58e66b2cf629edbe34c6"}};
  for (const auto& [file, digest] : uncompressed) {
    const std::string bytes = gunzip(work_ / "out" / file);
    ASSERT_GT(bytes.size(), 352u) << file << " is not a readable gzip file";
    EXPECT_EQ(fusionflow::sha256_hex(bytes), digest) << file;
  }
}

TEST_F(DefaultPipeline, FusedVolumeHasTheCtGeometry) {
  ASSERT_EQ(pipeline_.exit_code, 0) << pipeline_.text;
  const fusionflow::Volume ct = fusionflow::read_volume(work_ / "phantom/ct.nii.gz");
  const fusionflow::Volume fused = fusionflow::read_volume(work_ / "out/fused.nii.gz");
  EXPECT_TRUE(fused.geometry.same_grid(ct.geometry, 1e-5));
  const auto [low, high] = std::minmax_element(fused.voxels.begin(), fused.voxels.end());
  EXPECT_GT(*high - *low, 0.5f);  // not a constant image
}

TEST_F(DefaultPipeline, MetricsAreInPlausibleRanges) {
  ASSERT_EQ(pipeline_.exit_code, 0) << pipeline_.text;
  std::ifstream csv(work_ / "out/metrics.csv");
  std::string header_line, row_line;
  std::getline(csv, header_line);
  std::getline(csv, row_line);
  const auto header = split(header_line), row = split(row_line);
  auto value = [&](const std::string& name) {
    for (std::size_t i = 0; i < header.size(); ++i) {
      if (header[i] == name) return std::stod(row.at(i));
    }
    throw std::runtime_error("no column " + name + " in " + header_line);
  };
  EXPECT_GT(value("en_bits"), 1.0);
  EXPECT_LE(value("en_bits"), 8.0);  // 256 grey levels
  EXPECT_GT(value("mi_bits"), 0.5);  // summed over three sources
  EXPECT_GT(value("qabf"), 0.2);
  EXPECT_LE(value("qabf"), 1.0);
  EXPECT_GT(value("ssim"), 0.5);
  EXPECT_LE(value("ssim"), 3.0);  // summed over three sources
  EXPECT_GT(value("sd"), 5.0);
}

TEST_F(DefaultPipeline, RunRecordListsEveryNodeWithItsTime) {
  ASSERT_EQ(pipeline_.exit_code, 0) << pipeline_.text;
  std::ifstream record_file(work_ / "out/run.json");
  const auto record = nlohmann::json::parse(record_file);
  std::ifstream pipeline_file(std::string(FUSIONFLOW_SOURCE_DIR) + "/examples/pipelines/pet_ct_mri_fusion.json");
  const auto pipeline = nlohmann::json::parse(pipeline_file);
  ASSERT_EQ(record["nodes"].size(), pipeline["nodes"].size());
  for (const auto& node : record["nodes"]) {
    EXPECT_EQ(node["status"], "succeeded") << node["id"];
    EXPECT_GE(node["wall_seconds"].get<double>(), 0.0) << node["id"];
    EXPECT_GE(node["cpu_seconds"].get<double>(), 0.0) << node["id"];
  }
  EXPECT_EQ(record["exit_status"], "succeeded");
  EXPECT_EQ(record["threads"], 2);
}

TEST_F(DefaultPipeline, RegistrationMovedTheMriOntoTheCtAnatomy) {
  ASSERT_EQ(pipeline_.exit_code, 0) << pipeline_.text;
  // The phantom's T1 is written on the CT grid but displaced (about 6 degrees
  // and 8 mm). Predict each voxel's T1 from the CT's own tissue labels (the
  // tissue values recorded in truth.json): the registered MRI must follow
  // that prediction much more closely than the raw one.
  const fusionflow::Volume labels = fusionflow::read_volume(work_ / "phantom/labels.nii.gz");
  std::ifstream truth_file(work_ / "phantom/truth.json");
  const auto truth = nlohmann::json::parse(truth_file);
  std::map<int, double> t1_of_label;
  for (const auto& tissue : truth["tissues"]) t1_of_label[tissue["label"].get<int>()] = tissue["t1"].get<double>();
  auto correlation = [&](const fusionflow::Volume& t1) {
    double sx = 0, sy = 0, sxx = 0, syy = 0, sxy = 0;
    const double n = double(labels.voxels.size());
    for (std::size_t v = 0; v < labels.voxels.size(); ++v) {
      const int label = static_cast<int>(labels.voxels[v]);
      const double x = t1_of_label.count(label) ? t1_of_label[label] : t1_of_label[6];
      const double y = t1.voxels[v];
      sx += x, sy += y, sxx += x * x, syy += y * y, sxy += x * y;
    }
    return (sxy - sx * sy / n) / std::sqrt((sxx - sx * sx / n) * (syy - sy * sy / n));
  };
  const double raw = correlation(fusionflow::read_volume(work_ / "phantom/t1.nii.gz"));
  const double registered = correlation(fusionflow::read_volume(work_ / "out/mri_on_ct.nii.gz"));
  EXPECT_GT(registered, raw + 0.05) << "raw " << raw << ", registered " << registered;
  EXPECT_GT(registered, 0.85);
}

// --- the fused volume as DICOM ------------------------------------------------------

// dciodvfy's "Error" lines over every instance of a series (none expected).
std::string dciodvfy_errors(const fs::path& series) {
  std::string errors;
  for (const auto& entry : fs::directory_iterator(series)) {
    const Output out = fusionflow::testing::run_command("dciodvfy '" + entry.path().string() + "' 2>&1");
    std::istringstream lines(out.text);
    for (std::string line; std::getline(lines, line);) {
      if (line.rfind("Error", 0) == 0) errors += entry.path().filename().string() + ": " + line + "\n";
    }
  }
  return errors;
}

// Reads a DICOM series with fusionflow's loader and writes it as NIfTI.
Output dicom_to_nifti(const fs::path& series, const fs::path& nifti, const fs::path& work) {
  const fs::path pipeline = work / "dicom_to_nifti.json";
  fusionflow::testing::write_file(pipeline, R"({"format_version": 1, "nodes": [
        {"id": "load", "type": "io.load_image", "params": {"path": ")" +
                                                series.string() + R"("}},
        {"id": "write", "type": "io.write", "inputs": {"volume": "load.volume"},
         "params": {"path": ")" + nifti.string() +
                                                R"("}}]})");
  return run("run " + pipeline.string());
}

std::map<std::string, std::string> independent_view(const fs::path& series, const fs::path& reference,
                                                    const fs::path& converted) {
  const Output out = fusionflow::testing::run_command(
      std::string(PYDICOM_PYTHON) + " '" + FUSIONFLOW_SOURCE_DIR + "/tests/plugins/io/check_dicom_series.py' '" +
      series.string() + "' '" + reference.string() + "' '" + converted.string() + "' 2>&1");
  EXPECT_EQ(out.exit_code, 0) << out.text;
  return fusionflow::testing::key_value_lines(out.text);
}

TEST_F(DefaultPipeline, FusedDicomSeriesIsValidAndReadsBackWithTheFusedGeometryInFusionflowAndDcm2niix) {
  ASSERT_EQ(pipeline_.exit_code, 0) << pipeline_.text;
  const fs::path series = work_ / "out/fused_dicom";
  EXPECT_EQ(dciodvfy_errors(series), "");
  const fusionflow::Volume fused = fusionflow::read_volume(work_ / "out/fused.nii.gz");
  const auto [low, high] = std::minmax_element(fused.voxels.begin(), fused.voxels.end());
  const double half_slope = 0.5 * (*high - *low) / 65534.0;

  const Output back = dicom_to_nifti(series, work_ / "fused_from_dicom.nii", work_);
  ASSERT_EQ(back.exit_code, 0) << back.text;
  const fusionflow::Volume read = fusionflow::read_volume(work_ / "fused_from_dicom.nii");
  EXPECT_TRUE(read.geometry.same_grid(fused.geometry, 1e-4));
  ASSERT_EQ(read.voxels.size(), fused.voxels.size());
  double worst = 0;
  for (std::size_t n = 0; n < fused.voxels.size(); ++n) {
    worst = std::max(worst, std::fabs(double(read.voxels[n]) - fused.voxels[n]));
  }
  EXPECT_LE(worst, half_slope * 1.001 + 1e-6);

  fs::create_directories(work_ / "dcm2niix");
  const Output converted = fusionflow::testing::run_command(
      "dcm2niix -z n -b n -f fused -o '" + (work_ / "dcm2niix").string() + "' '" + series.string() + "' 2>&1");
  ASSERT_EQ(converted.exit_code, 0) << converted.text;
  auto view = independent_view(series, work_ / "out/fused.nii.gz", work_ / "dcm2niix/fused.nii");
  EXPECT_EQ(view["instances"], std::to_string(fused.geometry.size[2]));
  EXPECT_EQ(view["pydicom_decoded"], view["instances"]);
  EXPECT_EQ(view["signed_permutation"], "1");
  EXPECT_LT(std::stod(view["geometry_error_mm"]), 1e-4);
  EXPECT_LE(std::stod(view["value_error"]), half_slope * 1.001 + 1e-5);
  EXPECT_EQ(view["patient_name"], "-");
  EXPECT_EQ(view["patient_id"], "-");
}

// The default pipeline on the phantom as DICOM series whose patient module
// holds identifiers: none of them reaches any output (the fused series, the
// run record, the tables, the log).
class DefaultPipelineFromDicom : public ::testing::Test {
 protected:
  void SetUp() override {
    work_ = fs::temp_directory_path() / ("fusionflow-default-dicom-" + std::to_string(::getpid()));
    fs::remove_all(work_);
  }
  void TearDown() override { fs::remove_all(work_); }
  fs::path work_;
};

std::string every_byte_under(const fs::path& folder) {
  std::string bytes;
  for (const auto& entry : fs::recursive_directory_iterator(folder)) {
    if (entry.is_regular_file()) bytes += fusionflow::testing::read_file(entry.path());
  }
  return bytes;
}

TEST_F(DefaultPipelineFromDicom, PatientIdentifiersReachNoOutput) {
  const Output phantom = run("phantom --size 48 --seed 5 --out " + (work_ / "phantom").string());
  ASSERT_EQ(phantom.exit_code, 0) << phantom.text;
  const std::string examples = std::string(FUSIONFLOW_SOURCE_DIR) + "/examples/pipelines/";
  const Output converted = run("run " + examples + "to_dicom.json --set out=" + (work_ / "dicom").string() +
                               " --set ct=" + (work_ / "phantom/ct.nii.gz").string() +
                               " --set mri=" + (work_ / "phantom/t1.nii.gz").string() +
                               " --set pet=" + (work_ / "phantom/pet.nii.gz").string() +
                               " --set patient_name=Phantom^Jane --set patient_id=FF-PHANTOM-17");
  ASSERT_EQ(converted.exit_code, 0) << converted.text;
  // The identifiers are in the input series.
  ASSERT_NE(every_byte_under(work_ / "dicom").find("FF-PHANTOM-17"), std::string::npos);

  const Output fused =
      run("run " + examples + "pet_ct_mri_fusion.json --threads 2 --set ct=" + (work_ / "dicom/ct").string() +
          " --set mri=" + (work_ / "dicom/mri").string() + " --set pet=" + (work_ / "dicom/pet").string() +
          " --set out=" + (work_ / "out").string() + " --record " + (work_ / "out/run.json").string());
  ASSERT_EQ(fused.exit_code, 0) << fused.text;
  ASSERT_TRUE(fs::exists(work_ / "out/fused_dicom/slice-0001.dcm"));
  const std::string outputs = every_byte_under(work_ / "out") + fused.text;
  for (const char* identifier : {"FF-PHANTOM-17", "Phantom^Jane"}) {
    EXPECT_EQ(outputs.find(identifier), std::string::npos) << identifier;
  }
  EXPECT_EQ(dciodvfy_errors(work_ / "out/fused_dicom"), "");
}

}  // namespace
