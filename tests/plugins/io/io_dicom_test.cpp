// io.* loaders on DICOM: the real files shipped by Debian's python3-pydicom
// (expected values computed by pydicom itself, an independent reader), and
// series written here with DCMTK: slice ordering and geometry, series
// selection, inconsistent and corrupt series, PET SUVbw against a hand
// computation from the values written, and the privacy of identifiers.
#include <gtest/gtest.h>

#include "io_test_files.hpp"
#include "test_support.hpp"

#include <fusionflow/payload_types.hpp>
#include <fusionflow/plugin_loader.hpp>
#include <fusionflow/testing.hpp>
#include <fusionflow/volume.hpp>

#include <dcmtk/config/osconfig.h>
#include <dcmtk/dcmdata/dcdatset.h>
#include <dcmtk/dcmdata/dcdeftag.h>
#include <dcmtk/dcmdata/dcfilefo.h>
#include <dcmtk/dcmdata/dcitem.h>
#include <dcmtk/dcmdata/dcuid.h>

#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <functional>
#include <iterator>
#include <optional>
#include <random>
#include <sstream>

namespace fusionflow {
namespace {
namespace fs = std::filesystem;
using testing::NodeHarness;
using namespace io_test;

const fs::path kPydicomFiles = PYDICOM_TEST_FILES;

const NodeRegistry& bundled() { return testing::bundled_plugins(); }

class IoDicom : public ::testing::Test {
 protected:
  void SetUp() override { dir_ = testing::fresh_temp_directory("io-dicom"); }
  void TearDown() override { fs::remove_all(dir_); }
  fs::path dir_;
};

using Slice = io_test::DicomSlice;

std::string load_error(const std::string& type, const fs::path& path,
                       const std::vector<std::pair<std::string, ParamValue>>& params = {}) {
  NodeHarness node(bundled(), type);
  node.set_param("path", path.string());
  for (const auto& [name, value] : params) node.set_param(name, value);
  return run_error(node);
}

void expect_contains(const std::string& text, const std::string& part) {
  EXPECT_NE(text.find(part), std::string::npos) << "missing '" << part << "' in:\n" << text;
}

// --- the pydicom files: expected values from pydicom ------------------------------

struct PydicomSlice {
  std::size_t rows = 0, columns = 0;
  std::array<double, 2> pixel_spacing{};
  std::array<double, 3> position{};
  std::array<double, 6> orientation{};
  double slice_spacing = 0;
  std::vector<double> values;  // rescaled, row by row
};

// Reads `name` with pydicom (Debian's /usr/bin/python3 with python3-pydicom
// and numpy): an independent implementation of DICOM decoding and rescaling.
PydicomSlice read_with_pydicom(const std::string& name) {
  PydicomSlice slice;
  const fs::path file = kPydicomFiles / name;
  if (!fs::is_regular_file(file)) {
    ADD_FAILURE() << "pydicom's test file " << file
                  << " is missing: install Debian's python3-pydicom (scripts/setup.sh does)";
    return slice;
  }
  const std::string script =
      "import sys, pydicom\n"
      "d = pydicom.dcmread(sys.argv[1])\n"
      "a = d.pixel_array.astype('float64') * float(d.get('RescaleSlope', 1)) + float(d.get('RescaleIntercept', 0))\n"
      "print(d.Rows, d.Columns)\n"
      "print(*[float(x) for x in d.PixelSpacing])\n"
      "print(*[float(x) for x in d.ImagePositionPatient])\n"
      "print(*[float(x) for x in d.ImageOrientationPatient])\n"
      "print(float(d.get('SpacingBetweenSlices', d.get('SliceThickness', 1))))\n"
      "print(*a.ravel().tolist())\n";
  const testing::CommandOutput result =
      testing::run_command(std::string(PYDICOM_PYTHON) + " -c \"" + script + "\" " + file.string());
  const std::string& output = result.text;
  if (result.exit_code != 0) {
    ADD_FAILURE() << "pydicom could not read " << file << " (needs python3-pydicom and python3-numpy):\n" << output;
    return slice;
  }
  std::istringstream in(output);
  in >> slice.rows >> slice.columns;
  for (double& v : slice.pixel_spacing) in >> v;
  for (double& v : slice.position) in >> v;
  for (double& v : slice.orientation) in >> v;
  in >> slice.slice_spacing;
  double value = 0;
  while (in >> value) slice.values.push_back(value);
  EXPECT_EQ(slice.values.size(), slice.rows * slice.columns) << output.substr(0, 500);
  return slice;
}

void expect_matches_pydicom(const Volume& volume, const PydicomSlice& expected) {
  ASSERT_EQ(volume.geometry.size, (std::array<std::size_t, 3>{expected.columns, expected.rows, 1}));
  EXPECT_DOUBLE_EQ(volume.geometry.spacing[0], expected.pixel_spacing[1]);
  EXPECT_DOUBLE_EQ(volume.geometry.spacing[1], expected.pixel_spacing[0]);
  EXPECT_DOUBLE_EQ(volume.geometry.spacing[2], expected.slice_spacing);
  for (int n = 0; n < 3; ++n) EXPECT_DOUBLE_EQ(volume.geometry.origin[n], expected.position[n]);
  for (int r = 0; r < 3; ++r) {
    EXPECT_DOUBLE_EQ(volume.geometry.direction[r * 3 + 0], expected.orientation[r]);
    EXPECT_DOUBLE_EQ(volume.geometry.direction[r * 3 + 1], expected.orientation[3 + r]);
  }
  ASSERT_EQ(volume.voxels.size(), expected.values.size());
  for (std::size_t n = 0; n < expected.values.size(); ++n) {
    ASSERT_EQ(volume.voxels[n], expected.values[n]) << "pixel " << n;
  }
}

void expect_no_identifiers(const Volume& volume, const std::vector<std::string>& identifiers) {
  std::string everything = volume.metadata.modality + "|" + volume.metadata.units + "|" + volume.metadata.quantity +
                           "|" + volume.metadata.source + "|" + volume.metadata.series_description;
  for (const auto& [key, value] : volume.metadata.extra) everything += "|" + key + "=" + value;
  for (const std::string& identifier : identifiers) {
    EXPECT_EQ(everything.find(identifier), std::string::npos) << identifier << " leaked into: " << everything;
  }
}

TEST_F(IoDicom, PydicomCtSmallLoadsInHounsfieldUnitsWithItsGeometry) {
  const PydicomSlice expected = read_with_pydicom("CT_small.dcm");
  NodeHarness node(bundled(), "io.load_ct");
  node.set_param("path", (kPydicomFiles / "CT_small.dcm").string());
  node.run();
  const Volume& ct = node.output<Volume>("volume");
  expect_matches_pydicom(ct, expected);
  EXPECT_EQ(ct.metadata.modality, "CT");
  EXPECT_EQ(ct.metadata.units, "HU");
  EXPECT_EQ(ct.metadata.extra.at("dicom.rescale_intercept"), "-1024");
  EXPECT_EQ(ct.metadata.extra.at("io.format"), "dicom");
  // CT_small.dcm's patient name and ID are CompressedSamples^CT1 and 1CT1.
  expect_no_identifiers(ct, {"CompressedSamples", "1CT1"});
  for (const auto& [level, text] : node.log()) EXPECT_EQ(text.find("CompressedSamples"), std::string::npos) << text;
}

TEST_F(IoDicom, PydicomMrSmallLoadsAsMriWithItsGeometry) {
  const PydicomSlice expected = read_with_pydicom("MR_small.dcm");
  const Volume mr = load_volume("io.load_mri", kPydicomFiles / "MR_small.dcm");
  expect_matches_pydicom(mr, expected);
  EXPECT_EQ(mr.metadata.modality, "MR");
  EXPECT_EQ(mr.metadata.units, "a.u.");
  expect_no_identifiers(mr, {"CompressedSamples", "4MR1"});
}

TEST_F(IoDicom, KeepIdentifiersCopiesThemOnlyWhenAsked) {
  const Volume ct = load_volume("io.load_ct", kPydicomFiles / "CT_small.dcm", {{"keep_identifiers", ParamValue(true)}});
  EXPECT_EQ(ct.metadata.extra.at("dicom.patient_name"), "CompressedSamples^CT1");
  EXPECT_EQ(ct.metadata.extra.at("dicom.patient_id"), "1CT1");
}

TEST_F(IoDicom, LoaderRefusesAnotherModality) {
  const fs::path mr = kPydicomFiles / "MR_small.dcm";
  expect_contains(load_error("io.load_ct", mr), "'" + mr.string() +
                                                    "' holds a DICOM MR series, not CT; load it with "
                                                    "io.load_mri");
}

// --- series written here ----------------------------------------------------------

TEST_F(IoDicom, SeriesIsSortedByPositionWithObliqueGeometryAndPerSliceRescale) {
  const double t = 15.0 * M_PI / 180.0;
  const std::array<double, 6> orientation = {1, 0, 0, 0, std::cos(t), std::sin(t)};
  const std::vector<Slice> series = dicom_series("CT", "oblique", 5, orientation);
  write_dicom_series(dir_ / "ct", series);
  const Volume ct = load_volume("io.load_ct", dir_ / "ct");
  EXPECT_EQ(ct.geometry.size, (std::array<std::size_t, 3>{5, 4, 5}));
  EXPECT_NEAR(ct.geometry.spacing[0], 0.7, 1e-12);
  EXPECT_NEAR(ct.geometry.spacing[1], 0.8, 1e-12);
  EXPECT_NEAR(ct.geometry.spacing[2], 2.5, 1e-6);
  for (int n = 0; n < 3; ++n) EXPECT_NEAR(ct.geometry.origin[n], series[0].position[n], 1e-9);
  const std::array<double, 9> direction = {1, 0, 0, 0, std::cos(t), -std::sin(t), 0, std::sin(t), std::cos(t)};
  for (int n = 0; n < 9; ++n) EXPECT_NEAR(ct.geometry.direction[n], direction[n], 1e-6) << n;
  for (std::size_t k = 0; k < series.size(); ++k) {
    for (std::size_t n = 0; n < 20; ++n) {
      ASSERT_EQ(ct.voxels[k * 20 + n], float(series[k].stored[n] * series[k].slope + series[k].intercept))
          << "slice " << k << " pixel " << n;
    }
  }
  // The last slice lies where the geometry says.
  const auto last = ct.geometry.index_to_point({0, 0, 4});
  for (int n = 0; n < 3; ++n) EXPECT_NEAR(last[n], series[4].position[n], 1e-5);
  EXPECT_EQ(ct.metadata.extra.at("io.format"), "dicom-series");
  EXPECT_EQ(ct.metadata.extra.at("dicom.files"), "5");
  EXPECT_EQ(ct.metadata.series_description, "oblique");
  expect_no_identifiers(ct, {"Doe", "PID-4711", "ACC-999", "19700101"});
}

TEST_F(IoDicom, DirectoryWithSeveralSeriesListsThemAndSelectsByUidOrDescription) {
  const auto a = dicom_series("CT", "CT abdomen", 3);
  const auto b = dicom_series("CT", "CT abdomen", 4);
  const auto c = dicom_series("PT", "PET AC", 2);
  write_dicom_series(dir_ / "study", a, "a");
  write_dicom_series(dir_ / "study", b, "b");
  write_dicom_series(dir_ / "study", c, "c");
  const fs::path study = dir_ / "study";

  const std::string listing = load_error("io.load_image", study);
  expect_contains(listing, "DICOM directory '" + study.string() +
                               "' holds 3 series; choose one with parameter "
                               "series_uid or series_description");
  for (const auto* series : {&a, &b, &c}) expect_contains(listing, "series_uid '" + series->front().series_uid + "'");
  expect_contains(listing, "description 'PET AC', modality PT, series number 7, 2 files");
  expect_contains(load_error("io.load_ct", study), "holds 3 series");  // two CT series: no automatic choice

  EXPECT_EQ(load_volume("io.load_ct", study, {{"series_uid", ParamValue(b.front().series_uid)}}).geometry.size[2], 4u);
  expect_contains(load_error("io.load_pet", study, {{"series_description", ParamValue(std::string("PET AC"))}}),
                  "does not say what its PET values are (no DICOM Units (0054,1001))");
  EXPECT_EQ(load_volume("io.load_pet", study,
                        {{"series_description", ParamValue(std::string("PET AC"))},
                         {"input_units", ParamValue(std::string("bq_ml"))}})
                .geometry.size[2],
            2u);
  const std::string ambiguous =
      load_error("io.load_ct", study, {{"series_description", ParamValue(std::string("CT abdomen"))}});
  expect_contains(ambiguous, "holds 2 series described 'CT abdomen'; choose one with parameter series_uid");
  expect_contains(ambiguous, a.front().series_uid);
  expect_contains(ambiguous, b.front().series_uid);
  expect_contains(load_error("io.load_ct", study, {{"series_uid", ParamValue(std::string("1.2.3.4"))}}),
                  "holds no series with series_uid '1.2.3.4'; it holds:");

  // One CT and one PET series: each loader takes its own modality.
  write_dicom_series(dir_ / "petct", a, "a");
  write_dicom_series(dir_ / "petct", c, "c");
  NodeHarness node(bundled(), "io.load_ct");
  node.set_param("path", (dir_ / "petct").string());
  node.run();
  EXPECT_EQ(node.output<Volume>("volume").geometry.size[2], 3u);
  expect_contains(node.log().front().second, "using its only CT series");
}

TEST_F(IoDicom, InconsistentSeriesAreRefusedNamingTheFiles) {
  auto gap = dicom_series("CT", "gap", 5);
  for (int n = 0; n < 3; ++n) gap[4].position[n] += 2.5 * std::array<double, 3>{0, 0, 1}[n];  // a missing slice
  write_dicom_series(dir_ / "gap", gap);
  const std::string spacing = load_error("io.load_ct", dir_ / "gap");
  expect_contains(spacing, "inconsistent slice spacing in DICOM series in '" + (dir_ / "gap").string() + "'");
  expect_contains(spacing, "is 5 mm but the other slices are 2.5 mm apart (missing or extra slices?)");

  auto tilted = dicom_series("CT", "tilted", 4);
  tilted[2].orientation = {1, 0, 0, 0, std::cos(0.2), std::sin(0.2)};
  write_dicom_series(dir_ / "tilted", tilted);
  expect_contains(load_error("io.load_ct", dir_ / "tilted"),
                  "inconsistent slice orientation in DICOM series in '" + (dir_ / "tilted").string() + "'");

  auto twice = dicom_series("CT", "duplicates", 4);
  twice[3].position = twice[2].position;
  write_dicom_series(dir_ / "twice", twice);
  expect_contains(load_error("io.load_ct", dir_ / "twice"), "are at the same position");

  auto sizes = dicom_series("CT", "sizes", 3);
  sizes[1].rows = 2;
  sizes[1].stored.resize(10);
  write_dicom_series(dir_ / "sizes", sizes);
  expect_contains(load_error("io.load_ct", dir_ / "sizes"), "is 5x2 but");

  auto sheared = dicom_series("CT", "sheared", 4);
  for (std::size_t k = 0; k < sheared.size(); ++k) sheared[k].position[1] += 1.0 * double(k);  // gantry tilt
  write_dicom_series(dir_ / "sheared", sheared);
  expect_contains(load_error("io.load_ct", dir_ / "sheared"), "the slice positions do not follow the slice normal");
}

TEST_F(IoDicom, CorruptDicomFilesAreRefusedNamingTheFile) {
  const auto series = dicom_series("CT", "ct", 3);
  write_dicom_series(dir_ / "truncated", series);
  std::vector<fs::path> files;
  for (const auto& entry : fs::directory_iterator(dir_ / "truncated")) files.push_back(entry.path());
  std::sort(files.begin(), files.end());
  {
    std::ifstream in(files[1], std::ios::binary);
    std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    in.close();
    std::ofstream(files[1], std::ios::binary | std::ios::trunc).write(bytes.data(), std::streamsize(bytes.size() - 7));
  }
  const std::string truncated = load_error("io.load_ct", dir_ / "truncated");
  expect_contains(truncated, "cannot read DICOM file '" + files[1].string() + "': the file is truncated");

  std::mt19937 random(3);
  std::string garbage(2000, '\0');
  for (char& c : garbage) c = static_cast<char>(random());
  garbage.replace(128, 4, "DICM");
  std::ofstream(dir_ / "garbage.dcm", std::ios::binary).write(garbage.data(), std::streamsize(garbage.size()));
  expect_contains(load_error("io.load_ct", dir_ / "garbage.dcm"),
                  "cannot read DICOM file '" + (dir_ / "garbage.dcm").string() + "'");

  Slice colour = series[0];
  colour.extra = [](DcmDataset& d) { d.putAndInsertString(DCM_SamplesPerPixel, "3"); };
  write_dicom_slice(dir_ / "colour.dcm", colour);
  expect_contains(load_error("io.load_ct", dir_ / "colour.dcm"), "unsupported pixel type: 3 samples per pixel");

  Slice no_pixels = series[0];
  no_pixels.extra = [](DcmDataset& d) { delete d.remove(DCM_PixelData); };
  write_dicom_slice(dir_ / "report.dcm", no_pixels);
  expect_contains(load_error("io.load_ct", dir_ / "report.dcm"), "it holds no pixel data");
}

TEST_F(IoDicom, EveryPrefixOfCtSmallIsRefusedCleanly) {
  // GDCM (Debian, assertions on) aborts on some of these; the loader must
  // report every one as an error naming the file.
  const fs::path source = kPydicomFiles / "CT_small.dcm";
  ASSERT_TRUE(fs::is_regular_file(source)) << source << " missing: install python3-pydicom";
  std::ifstream in(source, std::ios::binary);
  const std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const fs::path cut = dir_ / "cut.dcm";
  for (std::size_t length = 0; length < bytes.size(); length += 97) {
    std::ofstream(cut, std::ios::binary | std::ios::trunc).write(bytes.data(), std::streamsize(length));
    expect_contains(load_error("io.load_ct", cut), "'" + cut.string() + "'");
  }
}

// --- PET ----------------------------------------------------------------------------

struct PetTags {
  std::optional<std::string> weight = "72.5";
  std::optional<std::string> dose = "370000000";
  std::optional<std::string> half_life = "6586.2";
  std::optional<std::string> injection_time = "093000.00";
  std::optional<std::string> injection_datetime;
  std::string series_date = "20240301", series_time = "103730";
  std::string decay_correction = "START";
  std::string units = "BQML";
  std::string corrected_image = "ATTN\\DECY";
};

std::vector<Slice> pet_series(const PetTags& tags) {
  auto series = dicom_series("PT", "PET AC", 3);
  for (std::size_t k = 0; k < series.size(); ++k) {
    series[k].slope = 0.5 + 0.25 * double(k);  // per-slice scaling, as PET scanners write
    for (auto& value : series[k].stored) value = static_cast<Sint16>(std::abs(value) + 10);
    const std::string acquisition = std::to_string(103730 + 30 * k);
    series[k].extra = [tags, acquisition](DcmDataset& d) {
      if (tags.weight) put_dicom_string(d, DCM_PatientWeight, *tags.weight);
      put_dicom_string(d, DCM_Units, tags.units);
      put_dicom_string(d, DCM_DecayCorrection, tags.decay_correction);
      put_dicom_string(d, DCM_CorrectedImage, tags.corrected_image);
      put_dicom_string(d, DCM_SeriesDate, tags.series_date);
      put_dicom_string(d, DCM_SeriesTime, tags.series_time);
      put_dicom_string(d, DCM_AcquisitionDate, tags.series_date);
      put_dicom_string(d, DCM_AcquisitionTime, acquisition);
      DcmItem* item = nullptr;
      ASSERT_TRUE(d.findOrCreateSequenceItem(DCM_RadiopharmaceuticalInformationSequence, item, 0).good());
      put_dicom_string(*item, DCM_Radiopharmaceutical, "Fluorodeoxyglucose");
      if (tags.dose) put_dicom_string(*item, DCM_RadionuclideTotalDose, *tags.dose);
      if (tags.half_life) put_dicom_string(*item, DCM_RadionuclideHalfLife, *tags.half_life);
      if (tags.injection_time) put_dicom_string(*item, DCM_RadiopharmaceuticalStartTime, *tags.injection_time);
      if (tags.injection_datetime)
        put_dicom_string(*item, DCM_RadiopharmaceuticalStartDateTime, *tags.injection_datetime);
    };
  }
  return series;
}

// SUVbw of every voxel by hand: Bq/mL = stored x slope + intercept, dose
// decayed over `uptake_s` with half-life `half_life_s`.
void expect_suv(const Volume& pet, const std::vector<Slice>& series, double weight_kg, double dose_bq,
                double half_life_s, double uptake_s) {
  const double decayed = dose_bq * std::pow(0.5, uptake_s / half_life_s);
  EXPECT_EQ(pet.metadata.units, "SUVbw");
  ASSERT_EQ(pet.voxels.size(), series.size() * 20);
  for (std::size_t k = 0; k < series.size(); ++k) {
    for (std::size_t n = 0; n < 20; ++n) {
      const double bq_ml = series[k].stored[n] * series[k].slope + series[k].intercept;
      const double suv = bq_ml * (weight_kg * 1000.0) / decayed;
      ASSERT_NEAR(pet.voxels[k * 20 + n], suv, 1e-5 * suv) << "slice " << k << " pixel " << n;
    }
  }
}

TEST_F(IoDicom, PetSeriesLoadsAsSuvMatchingAHandComputation) {
  const auto series = pet_series(PetTags{});
  write_dicom_series(dir_ / "pet", series);
  const Volume pet = load_volume("io.load_pet", dir_ / "pet", {{"suv", ParamValue(std::string("suvbw"))}});
  // Injection 09:30:00, series start 10:37:30: 1 h 7 min 30 s.
  const double uptake = 3600 + 7 * 60 + 30;
  expect_suv(pet, series, 72.5, 370e6, 6586.2, uptake);
  EXPECT_EQ(pet.metadata.modality, "PT");
  EXPECT_EQ(pet.metadata.extra.at("pet.uptake_s"), "4050");
  EXPECT_EQ(pet.metadata.extra.at("pet.weight_kg"), "72.5");
  EXPECT_EQ(pet.metadata.extra.at("pet.decay_correction"), "START");
  EXPECT_EQ(pet.metadata.extra.count("pet.parameters_used"), 0u);
  expect_no_identifiers(pet, {"Doe", "PID-4711", "ACC-999", "19700101"});

  // suv=bq_ml keeps the activity concentration.
  const Volume bq = load_volume("io.load_pet", dir_ / "pet", {{"suv", ParamValue(std::string("bq_ml"))}});
  EXPECT_EQ(bq.metadata.units, "Bq/mL");
  EXPECT_FLOAT_EQ(bq.voxels[20 + 3], float(series[1].stored[3] * series[1].slope));
}

TEST_F(IoDicom, PetUptakeAcrossMidnightUsesInjectionDateTime) {
  PetTags tags;
  tags.injection_time.reset();
  tags.injection_datetime = "20240301233000";
  tags.series_date = "20240302";
  tags.series_time = "003730";
  const auto series = pet_series(tags);
  write_dicom_series(dir_ / "pet", series);
  // Acquisition times (103730...) are later than the series time: the series
  // time (00:37:30) is the decay reference, 1 h 7 min 30 s after injection.
  const Volume pet = load_volume("io.load_pet", dir_ / "pet");
  expect_suv(pet, series, 72.5, 370e6, 6586.2, 4050);
}

TEST_F(IoDicom, PetWithoutWhatSuvNeedsNamesEveryMissingPieceOrUsesParameters) {
  PetTags tags;
  tags.weight.reset();
  tags.half_life.reset();
  tags.injection_time.reset();
  const auto series = pet_series(tags);
  write_dicom_series(dir_ / "pet", series);

  const std::string error = load_error("io.load_pet", dir_ / "pet", {{"suv", ParamValue(std::string("suvbw"))}});
  expect_contains(error, "cannot compute SUVbw for '" + (dir_ / "pet").string() + "': missing 3 pieces:");
  expect_contains(error, "the patient weight (DICOM PatientWeight (0010,1030) or parameter weight_kg)");
  expect_contains(error,
                  "the radionuclide half-life (DICOM RadionuclideHalfLife (0018,1075) or parameter half_life_s)");
  expect_contains(error, "the injection time (DICOM RadiopharmaceuticalStartTime (0018,1072)");

  // auto falls back to Bq/mL and says why.
  NodeHarness node(bundled(), "io.load_pet");
  node.set_param("path", (dir_ / "pet").string());
  node.run();
  const Volume& bq = node.output<Volume>("volume");
  EXPECT_EQ(bq.metadata.units, "Bq/mL");
  expect_contains(bq.metadata.extra.at("pet.suv_unavailable"), "the patient weight");
  bool warned = false;
  for (const auto& [level, text] : node.log())
    warned |= level == LogLevel::Warn && text.find("kept in Bq/mL") != std::string::npos;
  EXPECT_TRUE(warned);

  // Parameters complete the DICOM.
  const Volume pet = load_volume("io.load_pet", dir_ / "pet",
                                 {{"suv", ParamValue(std::string("suvbw"))},
                                  {"weight_kg", ParamValue(80.0)},
                                  {"half_life_s", ParamValue(6600.0)},
                                  {"injection_time", ParamValue(std::string("100000"))}});
  expect_suv(pet, series, 80.0, 370e6, 6600.0, 37 * 60 + 30);
  EXPECT_EQ(pet.metadata.extra.at("pet.parameters_used"), "weight_kg,half_life_s,injection_time");
}

TEST_F(IoDicom, PetDecayCorrectedToAdministrationNeedsNoTimes) {
  PetTags tags;
  tags.decay_correction = "ADMIN";
  tags.injection_time.reset();
  const auto series = pet_series(tags);
  write_dicom_series(dir_ / "pet", series);
  const Volume pet = load_volume("io.load_pet", dir_ / "pet", {{"suv", ParamValue(std::string("suvbw"))}});
  expect_suv(pet, series, 72.5, 370e6, 6586.2, 0.0);
}

TEST_F(IoDicom, PetWithoutDecayCorrectionIsNotConvertedUnlessTheUserSaysSo) {
  PetTags tags;
  tags.corrected_image = "ATTN";
  const auto series = pet_series(tags);
  write_dicom_series(dir_ / "pet", series);
  expect_contains(load_error("io.load_pet", dir_ / "pet", {{"suv", ParamValue(std::string("suvbw"))}}),
                  "decay-corrected images (DICOM DecayCorrection (0054,1102) is NONE or CorrectedImage (0028,0051) "
                  "lacks DECY");
  const Volume pet =
      load_volume("io.load_pet", dir_ / "pet",
                  {{"suv", ParamValue(std::string("suvbw"))}, {"decay_correction", ParamValue(std::string("start"))}});
  expect_suv(pet, series, 72.5, 370e6, 6586.2, 4050);
}

TEST_F(IoDicom, PetInCountsCannotBecomeSuv) {
  PetTags tags;
  tags.units = "CNTS";
  write_dicom_series(dir_ / "pet", pet_series(tags));
  expect_contains(load_error("io.load_pet", dir_ / "pet", {{"suv", ParamValue(std::string("suvbw"))}}),
                  "activity concentration in Bq/mL (the image's units are 'CNTS'");
  expect_contains(load_error("io.load_pet", dir_ / "pet"), "holds PET values in 'CNTS'");
}

// --- privacy end to end: a pipeline run with its record ------------------------

TEST_F(IoDicom, IdentifiersReachNoOutputFileLogOrRunRecord) {
  write_dicom_series(dir_ / "pet", pet_series(PetTags{}));
  const fs::path pipeline = dir_ / "pipeline.json";
  std::ofstream(pipeline) << R"({
  "format_version": 1,
  "variables": {"pet": null, "out": null},
  "nodes": [
    {"id": "pet", "type": "io.load_pet", "params": {"path": "${pet}"}},
    {"id": "nii", "type": "io.write", "params": {"path": "${out}/pet.nii.gz"}, "inputs": {"volume": "pet.volume"}},
    {"id": "nrrd", "type": "io.write", "params": {"path": "${out}/pet.nrrd"}, "inputs": {"volume": "pet.volume"}},
    {"id": "mha", "type": "io.write", "params": {"path": "${out}/pet.mha"}, "inputs": {"volume": "pet.volume"}}
  ]
})";
  const fs::path out = dir_ / "out";
  // Leak detection is off in this child process only: under UBSan, oneTBB's
  // flow graph (the executor, not io) triggers a vptr report whose
  // demangler leaks, which would turn the exit code into a failure. The io
  // code is leak-checked in this test process.
  const std::string command = "ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0 " +
                              std::string(FUSIONFLOW_EXE) + " run " + pipeline.string() +
                              " --set pet=" + (dir_ / "pet").string() + " --set out=" + out.string() + " --record " +
                              (out / "run.json").string() + " > " + (dir_ / "console.txt").string() + " 2>&1";
  const int status = std::system(command.c_str());
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << read_bytes(dir_ / "console.txt");
  std::vector<fs::path> checked = {dir_ / "console.txt"};
  for (const auto& entry : fs::directory_iterator(out)) checked.push_back(entry.path());
  ASSERT_EQ(checked.size(), 5u);
  for (const fs::path& file : checked) {
    const std::string bytes = read_bytes(file);
    EXPECT_FALSE(bytes.empty()) << file;
    for (const char* identifier : {"Doe^Jane", "PID-4711", "ACC-999", "19700101"}) {
      EXPECT_EQ(bytes.find(identifier), std::string::npos) << identifier << " found in " << file;
    }
  }
  EXPECT_EQ(load_volume("io.load_image", out / "pet.nrrd").geometry.size, (std::array<std::size_t, 3>{5, 4, 3}));
}

}  // namespace
}  // namespace fusionflow
