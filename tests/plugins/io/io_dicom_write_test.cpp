// io.write_dicom and io.write_dicom_color: the series read back by
// fusionflow's own DICOM loader, validated by dciodvfy (dicom3tools),
// converted by dcm2niix and read by pydicom (independent readers, Debian
// packages); privacy of identifiers, what keep_identifiers links, UIDs,
// determinism, replacing an earlier series and refusing to touch anything
// else.
#include <gtest/gtest.h>

#include "io_test_files.hpp"
#include "test_support.hpp"

#include <fusionflow/color.hpp>
#include <fusionflow/payload_types.hpp>
#include <fusionflow/testing.hpp>
#include <fusionflow/volume.hpp>

#include <dcmtk/config/osconfig.h>
#include <dcmtk/dcmdata/dcdeftag.h>
#include <dcmtk/dcmdata/dcfilefo.h>
#include <dcmtk/dcmdata/dcitem.h>
#include <dcmtk/dcmdata/dcsequen.h>

#include <cmath>
#include <map>
#include <random>
#include <regex>
#include <set>
#include <sstream>

namespace fusionflow {
namespace {
namespace fs = std::filesystem;
using testing::NodeHarness;
using namespace io_test;

const NodeRegistry& bundled() { return testing::bundled_plugins(); }

class IoDicomWrite : public ::testing::Test {
 protected:
  void SetUp() override { dir_ = testing::fresh_temp_directory("io-dicom-write"); }
  void TearDown() override { fs::remove_all(dir_); }
  fs::path dir_;
};

// A volume on an oblique, anisotropic grid with an origin away from 0.
Volume oblique(std::array<std::size_t, 3> size, unsigned seed) {
  Volume volume;
  volume.geometry.size = size;
  volume.geometry.spacing = {0.9, 1.1, 2.5};
  volume.geometry.origin = {-20.5, 13.25, 40.0};
  const double a = 0.35, b = -0.2;
  const double rz[9] = {std::cos(a), -std::sin(a), 0, std::sin(a), std::cos(a), 0, 0, 0, 1};
  const double rx[9] = {1, 0, 0, 0, std::cos(b), -std::sin(b), 0, std::sin(b), std::cos(b)};
  for (int r = 0; r < 3; ++r) {
    for (int c = 0; c < 3; ++c) {
      double sum = 0;
      for (int k = 0; k < 3; ++k) sum += rz[r * 3 + k] * rx[k * 3 + c];
      volume.geometry.direction[r * 3 + c] = sum;
    }
  }
  volume.voxels.resize(volume.geometry.voxel_count());
  std::mt19937 random(seed);
  std::uniform_int_distribution<int> hu(-1024, 2500);
  for (float& v : volume.voxels) v = float(hu(random));
  volume.metadata.modality = "CT";
  volume.metadata.units = "HU";
  volume.metadata.quantity = "X-ray attenuation";
  return volume;
}

Volume fused_like(std::array<std::size_t, 3> size, unsigned seed) {
  Volume volume = oblique(size, seed);
  std::mt19937 random(seed + 1);
  std::uniform_real_distribution<float> unit(0.0f, 1.0f);
  for (float& v : volume.voxels) v = unit(random);
  volume.metadata.modality = "FUSED";
  volume.metadata.units = "a.u.";
  volume.metadata.quantity = "fused (local_energy detail, average base)";
  return volume;
}

struct Written {
  std::vector<std::pair<LogLevel, std::string>> log;
};

Written write_dicom(const Volume& volume, const fs::path& path,
                    const std::vector<std::pair<std::string, ParamValue>>& params = {},
                    const std::vector<Volume>& sources = {}) {
  NodeHarness node(bundled(), "io.write_dicom");
  node.set_input("volume", volume).set_param("path", path.string());
  for (const Volume& source : sources) node.add_input("sources", source);
  for (const auto& [name, value] : params) node.set_param(name, value);
  node.run();
  return {node.log()};
}

std::string write_error(const Volume& volume, const fs::path& path,
                        const std::vector<std::pair<std::string, ParamValue>>& params = {}) {
  NodeHarness node(bundled(), "io.write_dicom");
  node.set_input("volume", volume).set_param("path", path.string());
  for (const auto& [name, value] : params) node.set_param(name, value);
  return run_error(node);
}

void expect_geometry_near(const Geometry& actual, const Geometry& expected, double tolerance) {
  EXPECT_EQ(actual.size, expected.size);
  for (int n = 0; n < 3; ++n) {
    EXPECT_NEAR(actual.spacing[n], expected.spacing[n], tolerance) << "spacing " << n;
    EXPECT_NEAR(actual.origin[n], expected.origin[n], tolerance) << "origin " << n;
  }
  for (int n = 0; n < 9; ++n) EXPECT_NEAR(actual.direction[n], expected.direction[n], tolerance) << "direction " << n;
}

std::vector<fs::path> instances(const fs::path& folder) {
  std::vector<fs::path> files;
  for (const auto& entry : fs::directory_iterator(folder)) files.push_back(entry.path());
  std::sort(files.begin(), files.end());
  return files;
}

// dciodvfy's findings for every instance: its "Error" lines (none expected).
std::string dciodvfy_errors(const fs::path& folder) {
  std::string errors;
  for (const fs::path& file : instances(folder)) {
    const testing::CommandOutput out = testing::run_command("dciodvfy '" + file.string() + "' 2>&1");
    std::istringstream lines(out.text);
    for (std::string line; std::getline(lines, line);) {
      if (line.rfind("Error", 0) == 0) errors += file.filename().string() + ": " + line + "\n";
    }
  }
  return errors;
}

// What check_dicom_series.py printed, as key -> value.
std::map<std::string, std::string> independent_view(const fs::path& series, const fs::path& reference,
                                                    const fs::path& converted = {}) {
  const std::string command = std::string(PYDICOM_PYTHON) + " '" + FUSIONFLOW_SOURCE_DIR +
                              "/tests/plugins/io/check_dicom_series.py' '" + series.string() + "' '" +
                              reference.string() + "'" + (converted.empty() ? "" : " '" + converted.string() + "'");
  const testing::CommandOutput out = testing::run_command(command + " 2>&1");
  EXPECT_EQ(out.exit_code, 0) << out.text;
  return testing::key_value_lines(out.text);
}

// dcm2niix's NIfTI of a series (one file expected).
fs::path dcm2niix(const fs::path& series, const fs::path& out) {
  fs::create_directories(out);
  const testing::CommandOutput run =
      testing::run_command("dcm2niix -z n -b n -f converted -o '" + out.string() + "' '" + series.string() + "' 2>&1");
  EXPECT_EQ(run.exit_code, 0) << run.text;
  std::vector<fs::path> made;
  for (const auto& entry : fs::directory_iterator(out)) {
    if (entry.path().extension() == ".nii") made.push_back(entry.path());
  }
  EXPECT_EQ(made.size(), 1u) << run.text;
  return made.empty() ? fs::path() : made.front();
}

void write_nifti(const Volume& volume, const fs::path& path) {
  NodeHarness node(bundled(), "io.write");
  node.set_input("volume", volume).set_param("path", path.string());
  node.run();
}

std::string tag_of(const fs::path& file, const DcmTagKey& tag) {
  DcmFileFormat format;
  EXPECT_TRUE(format.loadFile(OFFilename(file.c_str())).good()) << file;
  OFString value;
  format.getDataset()->findAndGetOFStringArray(tag, value);
  return value.c_str();
}

bool contains(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

std::string log_text(const Written& written) {
  std::string text;
  for (const auto& [level, message] : written.log) text += message + "\n";
  return text;
}

// --- geometry and values ---------------------------------------------------------

TEST_F(IoDicomWrite, CtSeriesIsValidAndReadsBackExactlyInFusionflowDcm2niixAndPydicom) {
  const Volume ct = oblique({40, 36, 12}, 1);
  const fs::path series = dir_ / "ct_series";
  const Written written = write_dicom(ct, series, {{"series_number", ParamValue(std::int64_t{301})}});
  EXPECT_TRUE(contains(log_text(written), "values exact")) << log_text(written);
  ASSERT_EQ(instances(series).size(), 12u);
  EXPECT_EQ(tag_of(instances(series)[0], DCM_SOPClassUID), "1.2.840.10008.5.1.4.1.1.2");  // CT Image Storage
  EXPECT_EQ(tag_of(instances(series)[0], DCM_ImageType), "DERIVED\\SECONDARY\\AXIAL");
  EXPECT_EQ(dciodvfy_errors(series), "");

  const Volume back = load_volume("io.load_ct", series);
  expect_geometry_near(back.geometry, ct.geometry, 1e-4);
  ASSERT_EQ(back.voxels.size(), ct.voxels.size());
  for (std::size_t n = 0; n < ct.voxels.size(); ++n) ASSERT_EQ(back.voxels[n], ct.voxels[n]) << "voxel " << n;
  EXPECT_EQ(back.metadata.modality, "CT");
  EXPECT_EQ(back.metadata.units, "HU");

  write_nifti(ct, dir_ / "reference.nii");
  auto view = independent_view(series, dir_ / "reference.nii", dcm2niix(series, dir_ / "dcm2niix"));
  EXPECT_EQ(view["instances"], "12");
  EXPECT_EQ(view["pydicom_decoded"], "12");
  EXPECT_EQ(view["signed_permutation"], "1");
  EXPECT_LT(std::stod(view["geometry_error_mm"]), 1e-4);
  EXPECT_EQ(view["mapped_inside"], "1");
  EXPECT_EQ(std::stod(view["value_error"]), 0.0);
}

TEST_F(IoDicomWrite, FloatValuesComeBackWithinHalfTheRescaleSlope) {
  const Volume fused = fused_like({30, 28, 9}, 2);
  const fs::path series = dir_ / "fused";
  const Written written = write_dicom(fused, series);
  EXPECT_TRUE(contains(log_text(written), "values within")) << log_text(written);
  const fs::path first = instances(series).at(0);
  EXPECT_EQ(tag_of(first, DCM_SOPClassUID), "1.2.840.10008.5.1.4.1.1.7");  // Secondary Capture
  EXPECT_EQ(tag_of(first, DCM_Modality), "OT");
  EXPECT_EQ(tag_of(first, DCM_ImageType), "DERIVED\\SECONDARY");
  EXPECT_TRUE(contains(tag_of(first, DCM_SeriesDescription), "fused"));
  EXPECT_EQ(dciodvfy_errors(series), "");

  float low = fused.voxels[0], high = fused.voxels[0];
  for (float v : fused.voxels) low = std::min(low, v), high = std::max(high, v);
  const double slope = std::stod(tag_of(first, DCM_RescaleSlope));
  EXPECT_NEAR(slope, (high - low) / 65534.0, 1e-12);
  const double bound = 0.5 * slope * (1 + 1e-6) + 1e-6;
  const Volume back = load_volume("io.load_image", series);
  expect_geometry_near(back.geometry, fused.geometry, 1e-4);
  double worst = 0;
  for (std::size_t n = 0; n < fused.voxels.size(); ++n) {
    worst = std::max(worst, std::fabs(double(back.voxels[n]) - fused.voxels[n]));
  }
  EXPECT_LE(worst, bound);
  EXPECT_GT(worst, 0.0);  // not exact: the test would not see a wrong bound otherwise

  write_nifti(fused, dir_ / "reference.nii");
  auto view = independent_view(series, dir_ / "reference.nii", dcm2niix(series, dir_ / "dcm2niix"));
  EXPECT_EQ(view["pydicom_decoded"], "9");
  EXPECT_LT(std::stod(view["geometry_error_mm"]), 1e-4);
  EXPECT_LE(std::stod(view["value_error"]), bound + 1e-6);  // dcm2niix keeps float32 scaling
}

TEST_F(IoDicomWrite, PetKeepsItsUnitsAndOneSliceIsOneInstance) {
  Volume pet = fused_like({16, 12, 7}, 3);
  for (float& v : pet.voxels) v *= 25000.0f;
  pet.metadata.modality = "PT";
  pet.metadata.units = "Bq/mL";
  write_dicom(pet, dir_ / "pet");
  EXPECT_EQ(tag_of(instances(dir_ / "pet").at(0), DCM_Units), "BQML");
  const Volume back = load_volume("io.load_pet", dir_ / "pet", {{"suv", ParamValue(std::string("bq_ml"))}});
  EXPECT_EQ(back.metadata.units, "Bq/mL");

  Volume slice = oblique({20, 10, 1}, 4);
  write_dicom(slice, dir_ / "slice");
  ASSERT_EQ(instances(dir_ / "slice").size(), 1u);
  EXPECT_EQ(dciodvfy_errors(dir_ / "slice"), "");
  const Volume slice_back = load_volume("io.load_ct", dir_ / "slice");
  EXPECT_EQ(slice_back.geometry.size, slice.geometry.size);
  EXPECT_EQ(slice_back.voxels[17], slice.voxels[17]);
}

TEST_F(IoDicomWrite, ColourImageIsAnRgbSecondaryCapture) {
  ColorVolume image;
  image.geometry.size = {9, 7, 1};
  image.geometry.spacing = {0.5, 0.5, 1.0};
  for (auto& channel : image.rgb) channel.assign(63, 0.0f);
  for (std::size_t n = 0; n < 63; ++n) {
    image.rgb[0][n] = float(n * 4 % 256);
    image.rgb[1][n] = float(255 - n);
    image.rgb[2][n] = float(n % 7 * 30);
  }
  image.metadata.modality = "FUSED";
  NodeHarness node(bundled(), "io.write_dicom_color");
  node.set_input("image", image).set_param("path", (dir_ / "colour").string());
  node.run();
  const fs::path file = instances(dir_ / "colour").at(0);
  EXPECT_EQ(tag_of(file, DCM_PhotometricInterpretation), "RGB");
  EXPECT_EQ(dciodvfy_errors(dir_ / "colour"), "");
  const std::string check = std::string(PYDICOM_PYTHON) +
                            " -c \"import pydicom,sys; a=pydicom.dcmread(sys.argv[1]).pixel_array; "
                            "print(a.shape, int(a[2,3,0]), int(a[2,3,1]), int(a[2,3,2]))\" '" +
                            file.string() + "' 2>&1";
  const testing::CommandOutput out = testing::run_command(check);
  const std::size_t n = 2 * 9 + 3;
  std::ostringstream expected;
  expected << "(7, 9, 3) " << image.rgb[0][n] << " " << image.rgb[1][n] << " " << image.rgb[2][n];
  EXPECT_EQ(out.text.substr(0, out.text.find('\n')), expected.str()) << out.text;
}

// --- privacy and identity -----------------------------------------------------------

// A CT series with the fake identifiers of io_test's slices and a frame of reference.
fs::path identified_series(const fs::path& dir, const std::string& frame_uid) {
  std::vector<DicomSlice> slices = dicom_series("CT", "head CT", 5);
  for (DicomSlice& slice : slices) {
    slice.extra = [frame_uid](DcmDataset& data) { put_dicom_string(data, DCM_FrameOfReferenceUID, frame_uid); };
  }
  write_dicom_series(dir, slices);
  return dir;
}

std::string all_bytes(const fs::path& folder) {
  std::string bytes;
  for (const fs::path& file : instances(folder)) bytes += read_bytes(file);
  return bytes;
}

TEST_F(IoDicomWrite, IdentifiersReachTheSeriesOnlyWhenBothLoaderAndWriterKeepThem) {
  const std::string frame_uid = "1.2.826.0.1.3680043.2.1125.7.7";
  const fs::path source = identified_series(dir_ / "source", frame_uid);
  const std::vector<std::string> identifiers{
      "Doe^Jane", "PID-4711", "ACC-999", "19700101", "1.2.826.0.1.3680043.2.1125.1.1", frame_uid};
  const Volume plain = load_volume("io.load_ct", source);
  const Volume kept = load_volume("io.load_ct", source, {{"keep_identifiers", ParamValue(true)}});

  // The loader kept them, the writer does not: nothing reaches the files.
  write_dicom(kept, dir_ / "deidentified", {}, {kept});
  std::string bytes = all_bytes(dir_ / "deidentified");
  for (const std::string& identifier : identifiers) EXPECT_FALSE(contains(bytes, identifier)) << identifier;
  EXPECT_EQ(tag_of(instances(dir_ / "deidentified")[0], DCM_PatientIdentityRemoved), "YES");
  // The writer asks, but the loader did not keep them: still nothing, and a warning.
  const Written asked = write_dicom(plain, dir_ / "asked", {{"keep_identifiers", ParamValue(true)}}, {plain});
  bytes = all_bytes(dir_ / "asked");
  for (const std::string& identifier : identifiers) EXPECT_FALSE(contains(bytes, identifier)) << identifier;
  EXPECT_TRUE(contains(log_text(asked), "de-identified")) << log_text(asked);
  // Pseudonyms, for a cohort's subject labels.
  write_dicom(plain, dir_ / "pseudonym",
              {{"patient_id", ParamValue(std::string("sub-01"))}, {"patient_name", ParamValue(std::string("sub-01"))}});
  write_nifti(plain, dir_ / "plain.nii");
  auto view = independent_view(dir_ / "pseudonym", dir_ / "plain.nii");
  EXPECT_EQ(view["patient_id"], "sub-01");
  EXPECT_EQ(view["patient_birth_date"], "-");
  EXPECT_EQ(view["patient_modules"], "1");

  // Both keep them: patient, study and frame of reference are the source's,
  // and the source series is referenced instance by instance.
  write_dicom(kept, dir_ / "linked", {{"keep_identifiers", ParamValue(true)}}, {kept});
  const fs::path linked = instances(dir_ / "linked").at(0);
  EXPECT_EQ(tag_of(linked, DCM_PatientName), "Doe^Jane");
  EXPECT_EQ(tag_of(linked, DCM_PatientID), "PID-4711-SECRET");
  EXPECT_EQ(tag_of(linked, DCM_StudyInstanceUID), "1.2.826.0.1.3680043.2.1125.1.1");
  EXPECT_EQ(tag_of(linked, DCM_FrameOfReferenceUID), frame_uid);
  EXPECT_EQ(dciodvfy_errors(dir_ / "linked"), "");
  DcmFileFormat format;
  ASSERT_TRUE(format.loadFile(OFFilename(linked.c_str())).good());
  DcmItem* series = nullptr;
  ASSERT_TRUE(format.getDataset()->findAndGetSequenceItem(DCM_ReferencedSeriesSequence, series, 0).good());
  OFString series_uid;
  series->findAndGetOFString(DCM_SeriesInstanceUID, series_uid);
  EXPECT_EQ(std::string(series_uid.c_str()), tag_of(instances(source)[0], DCM_SeriesInstanceUID));
  DcmSequenceOfItems* referenced = nullptr;
  ASSERT_TRUE(series->findAndGetSequence(DCM_ReferencedInstanceSequence, referenced).good());
  EXPECT_EQ(referenced->card(), 5u);  // same grid: every source slice is one result slice's source
  DcmItem* source_image = nullptr;
  ASSERT_TRUE(format.getDataset()->findAndGetSequenceItem(DCM_SourceImageSequence, source_image, 0).good());
  OFString first_source;
  source_image->findAndGetOFString(DCM_ReferencedSOPInstanceUID, first_source);
  // Slice 1 of the result comes from the source slice at its position.
  std::map<double, std::string> by_position;
  for (const fs::path& file : instances(source)) {
    const std::string position = tag_of(file, DCM_ImagePositionPatient);
    by_position[std::stod(position.substr(position.rfind('\\') + 1))] = tag_of(file, DCM_SOPInstanceUID);
  }
  EXPECT_EQ(std::string(first_source.c_str()), by_position.begin()->second);
  std::set<std::string> source_instances;
  for (const fs::path& file : instances(source)) source_instances.insert(tag_of(file, DCM_SOPInstanceUID));
  for (unsigned long n = 0; n < referenced->card(); ++n) {
    OFString instance;
    referenced->getItem(n)->findAndGetOFString(DCM_ReferencedSOPInstanceUID, instance);
    EXPECT_EQ(source_instances.count(instance.c_str()), 1u) << instance;
  }
}

TEST_F(IoDicomWrite, UidsAreValidDerivedFromTheContentAndShareStudyAndFrameWithinARun) {
  const Volume ct = oblique({12, 10, 4}, 5);
  Volume fused = fused_like({12, 10, 4}, 6);
  write_dicom(ct, dir_ / "a", {}, {ct});
  write_dicom(fused, dir_ / "b", {}, {ct});
  const std::regex uid("2\\.25\\.[1-9][0-9]*");
  std::set<std::string> sop_instances;
  for (const char* name : {"a", "b"}) {
    for (const fs::path& file : instances(dir_ / name)) {
      const std::string instance = tag_of(file, DCM_SOPInstanceUID);
      EXPECT_TRUE(std::regex_match(instance, uid)) << instance;
      EXPECT_LE(instance.size(), 64u);
      sop_instances.insert(instance);
    }
  }
  EXPECT_EQ(sop_instances.size(), 8u);  // every instance its own UID
  const fs::path a = instances(dir_ / "a")[0], b = instances(dir_ / "b")[0];
  EXPECT_EQ(tag_of(a, DCM_StudyInstanceUID), tag_of(b, DCM_StudyInstanceUID));
  EXPECT_EQ(tag_of(a, DCM_FrameOfReferenceUID), tag_of(b, DCM_FrameOfReferenceUID));
  EXPECT_NE(tag_of(a, DCM_SeriesInstanceUID), tag_of(b, DCM_SeriesInstanceUID));

  // The same inputs give the same bytes; another volume, another series.
  write_dicom(ct, dir_ / "again", {}, {ct});
  EXPECT_EQ(all_bytes(dir_ / "again"), all_bytes(dir_ / "a"));
  Volume changed = ct;
  changed.voxels[3] += 1.0f;
  write_dicom(changed, dir_ / "changed", {}, {ct});
  EXPECT_NE(tag_of(instances(dir_ / "changed")[0], DCM_SeriesInstanceUID), tag_of(a, DCM_SeriesInstanceUID));
  // Under a user's root.
  write_dicom(ct, dir_ / "rooted", {{"uid_root", ParamValue(std::string("1.2.826.0.1.3680043.10.999"))}});
  const std::string rooted = tag_of(instances(dir_ / "rooted")[0], DCM_SOPInstanceUID);
  EXPECT_EQ(rooted.rfind("1.2.826.0.1.3680043.10.999.", 0), 0u) << rooted;
  EXPECT_LE(rooted.size(), 64u);
  EXPECT_TRUE(contains(write_error(ct, dir_ / "bad", {{"uid_root", ParamValue(std::string("1.02.3"))}}), "uid_root"));
}

// --- the folder ---------------------------------------------------------------------

TEST_F(IoDicomWrite, AnEarlierSeriesIsReplacedAndAnythingElseIsRefusedUntouched) {
  const Volume big = oblique({8, 8, 6}, 7), small = oblique({8, 8, 3}, 8);
  write_dicom(big, dir_ / "series");
  write_dicom(small, dir_ / "series");
  EXPECT_EQ(instances(dir_ / "series").size(), 3u);  // no slice of the earlier series left

  fs::create_directories(dir_ / "mine");
  write_bytes(dir_ / "mine" / "notes.txt", "keep me");
  EXPECT_TRUE(contains(write_error(small, dir_ / "mine"), "choose a new or empty folder"));
  EXPECT_EQ(read_bytes(dir_ / "mine" / "notes.txt"), "keep me");
  write_bytes(dir_ / "file.dcm", "x");
  EXPECT_TRUE(contains(write_error(small, dir_ / "file.dcm"), "it is a file"));

  // A cancelled write leaves nothing behind, not even its hidden folder.
  NodeHarness cancelled(bundled(), "io.write_dicom");
  cancelled.set_input("volume", small).set_param("path", (dir_ / "cancelled").string()).cancel();
  EXPECT_THROW(cancelled.run(), std::exception);
  for (const auto& entry : fs::directory_iterator(dir_)) {
    EXPECT_NE(entry.path().filename().string().rfind(".fftmp", 0), 0u) << entry.path();
  }
  EXPECT_FALSE(fs::exists(dir_ / "cancelled"));

  // Never into the folder the volume was read from.
  write_dicom(small, dir_ / "source");
  const Volume loaded = load_volume("io.load_ct", dir_ / "source");
  EXPECT_TRUE(contains(write_error(loaded, dir_ / "source"), "read from"));
  EXPECT_EQ(instances(dir_ / "source").size(), 3u);
}

}  // namespace
}  // namespace fusionflow
