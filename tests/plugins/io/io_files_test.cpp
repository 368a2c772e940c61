// io.* nodes on image files (NIfTI, NRRD, MetaImage, PNG): round trips
// through io.write and the loaders, the writer's guarantees, and the corpus of
// bad files generated here, each with the message it must produce.
#include <gtest/gtest.h>

#include "io_test_files.hpp"
#include "test_support.hpp"

#include <fusionflow/itk_bridge.hpp>
#include <fusionflow/payload_types.hpp>
#include <fusionflow/plugin_loader.hpp>
#include <fusionflow/testing.hpp>

#include <itkImageFileWriter.h>
#include <zlib.h>

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <random>
#include <sstream>

// ITK 5.2's NrrdImageIO leaks its teem structures and error text when a
// read fails (NrrdImageIO::Read throws without nrrdNuke/biff cleanup); the
// truncated-NRRD cases below go through that path. Outside our code, so
// LeakSanitizer is told to ignore exactly those allocations.
extern "C" const char* __lsan_default_suppressions() {
  return "leak:itk_biffGet\nleak:itk_nrrdNew\nleak:itk_airArrayNew\nleak:itk_nrrdIoStateNew\n";
}

namespace fusionflow {
namespace {
namespace fs = std::filesystem;
using testing::NodeHarness;
using namespace io_test;

const NodeRegistry& bundled() { return testing::bundled_plugins(); }

class IoFiles : public ::testing::Test {
 protected:
  void SetUp() override { dir_ = testing::fresh_temp_directory("io-files"); }
  void TearDown() override { fs::remove_all(dir_); }
  fs::path dir_;
};

// A test volume whose direction is an oblique proper rotation (or an
// improper one, a reflection, with `flip`). Spacings and origin are exact in
// float32 so that NIfTI's single-precision header can hold them.
Volume oblique_volume(std::array<std::size_t, 3> size, bool flip = false, unsigned seed = 1) {
  Volume volume;
  volume.geometry.size = size;
  volume.geometry.spacing = {0.75, 1.25, 2.5};
  volume.geometry.origin = {-100.5, 20.25, 7.0};
  const double a = 30.0 * M_PI / 180.0, b = 20.0 * M_PI / 180.0;
  // Rz(a) * Rx(b)
  const double rz[9] = {std::cos(a), -std::sin(a), 0, std::sin(a), std::cos(a), 0, 0, 0, 1};
  const double rx[9] = {1, 0, 0, 0, std::cos(b), -std::sin(b), 0, std::sin(b), std::cos(b)};
  for (int r = 0; r < 3; ++r) {
    for (int c = 0; c < 3; ++c) {
      double sum = 0;
      for (int k = 0; k < 3; ++k) sum += rz[r * 3 + k] * rx[k * 3 + c];
      volume.geometry.direction[r * 3 + c] = (flip && c == 2) ? -sum : sum;
    }
  }
  std::mt19937 random(seed);
  std::uniform_real_distribution<float> uniform(-1000.0f, 3000.0f);
  volume.voxels.resize(volume.geometry.voxel_count());
  for (float& v : volume.voxels) v = uniform(random);
  volume.metadata.modality = "CT";
  volume.metadata.units = "HU";
  return volume;
}

void write_node(const Volume& volume, const fs::path& path, const std::string& storage = "float32") {
  NodeHarness node(bundled(), "io.write");
  node.set_input("volume", volume).set_param("path", path.string()).set_param("storage", storage);
  node.run();
}

Volume load_node(const std::string& type, const fs::path& path) {
  NodeHarness node(bundled(), type);
  node.set_param("path", path.string());
  node.run();
  return node.output<Volume>("volume");
}

// Runs `type` on `path`; returns the error message (fails the test if none).
std::string load_error(const fs::path& path, const std::string& type = "io.load_image") {
  NodeHarness node(bundled(), type);
  node.set_param("path", path.string());
  try {
    node.run();
  } catch (const std::exception& error) {
    return error.what();
  }
  ADD_FAILURE() << "loading " << path << " did not fail";
  return {};
}

void expect_geometry_near(const Geometry& actual, const Geometry& expected, double tolerance) {
  EXPECT_EQ(actual.size, expected.size);
  for (int n = 0; n < 3; ++n) {
    EXPECT_NEAR(actual.spacing[n], expected.spacing[n], tolerance) << "spacing " << n;
    EXPECT_NEAR(actual.origin[n], expected.origin[n], tolerance) << "origin " << n;
  }
  for (int n = 0; n < 9; ++n) EXPECT_NEAR(actual.direction[n], expected.direction[n], tolerance) << "direction " << n;
}

// --- round trips ---------------------------------------------------------------

class RoundTrip : public IoFiles, public ::testing::WithParamInterface<std::string> {};

TEST_P(RoundTrip, VoxelsAreIdenticalAndGeometryPreservedWithObliqueDirections) {
  for (bool flip : {false, true}) {
    const Volume original = oblique_volume({7, 6, 5}, flip);
    const fs::path path = dir_ / ("volume" + GetParam());
    write_node(original, path);
    const Volume loaded = load_node("io.load_image", path);
    // NIfTI stores geometry in float32 (and direction as a quaternion).
    const double tolerance = GetParam().find(".nii") != std::string::npos ? 2e-6 : 1e-9;
    expect_geometry_near(loaded.geometry, original.geometry, tolerance);
    ASSERT_EQ(loaded.voxels.size(), original.voxels.size());
    for (std::size_t n = 0; n < original.voxels.size(); ++n) {
      ASSERT_EQ(loaded.voxels[n], original.voxels[n]) << "voxel " << n << " of " << path;
    }
    EXPECT_EQ(loaded.metadata.source, path.string());
  }
}

INSTANTIATE_TEST_SUITE_P(Formats, RoundTrip, ::testing::Values(".nii", ".nii.gz", ".nrrd", ".mha"),
                         [](const auto& param_info) {
                           std::string name = param_info.param.substr(1);
                           for (char& c : name) c = c == '.' ? '_' : c;
                           return name;
                         });

TEST_F(IoFiles, IntegerStorageRoundTripsIntegralVoxelsAndAutoPicksTheSmallestExactType) {
  Volume volume = oblique_volume({4, 4, 3});
  for (std::size_t n = 0; n < volume.voxels.size(); ++n) volume.voxels[n] = float(int(n * 37 % 2000) - 1000);
  write_node(volume, dir_ / "ct_int16.nii.gz", "int16");
  write_node(volume, dir_ / "ct_auto.nrrd", "auto");
  Volume labels = volume;
  for (std::size_t n = 0; n < labels.voxels.size(); ++n) labels.voxels[n] = float(n % 5);
  write_node(labels, dir_ / "labels_auto.mha", "auto");
  Volume fractional = volume;
  fractional.voxels[3] = 0.5f;
  write_node(fractional, dir_ / "fractional_auto.mha", "auto");

  EXPECT_EQ(load_node("io.load_image", dir_ / "ct_int16.nii.gz").voxels, volume.voxels);
  EXPECT_EQ(load_node("io.load_image", dir_ / "ct_auto.nrrd").voxels, volume.voxels);
  EXPECT_EQ(load_node("io.load_image", dir_ / "labels_auto.mha").voxels, labels.voxels);
  EXPECT_EQ(load_node("io.load_image", dir_ / "fractional_auto.mha").voxels, fractional.voxels);
  // What auto chose, read from the MetaImage headers.
  EXPECT_NE(read_bytes(dir_ / "ct_auto.nrrd").find("type: short"), std::string::npos);
  EXPECT_NE(read_bytes(dir_ / "labels_auto.mha").find("ElementType = MET_UCHAR"), std::string::npos);
  EXPECT_NE(read_bytes(dir_ / "fractional_auto.mha").find("ElementType = MET_FLOAT"), std::string::npos);
}

TEST_F(IoFiles, Uint8StorageClampsAndWarns) {
  Volume volume = oblique_volume({3, 2, 1});
  volume.voxels = {-5.0f, 0.4f, 1.6f, 254.5f, 300.0f, 17.0f};
  NodeHarness node(bundled(), "io.write");
  node.set_input("volume", volume).set_param("path", (dir_ / "u8.nrrd").string()).set_param("storage", "uint8");
  node.run();
  ASSERT_FALSE(node.log().empty());
  EXPECT_EQ(node.log().front().first, LogLevel::Warn);
  EXPECT_NE(node.log().front().second.find("changes voxel values"), std::string::npos);
  // Nearest integer (254.5 rounds to even), clamped to [0, 255].
  EXPECT_EQ(load_node("io.load_image", dir_ / "u8.nrrd").voxels, (std::vector<float>{0, 0, 2, 254, 255, 17}));
}

TEST_F(IoFiles, MetaImageWithDetachedDataFileLoads) {
  // Written by hand: header + raw little-endian floats in a separate file.
  const std::vector<float> values = {1.5f, -2.0f, 3.25f, 4.0f, 5.0f, 6.0f, 7.0f, 8.0f};
  write_bytes(dir_ / "detached.raw", floats(values));
  write_bytes(dir_ / "detached.mhd",
              meta_header("2 2 2", "MET_FLOAT", "ElementSpacing = 0.5 0.75 2\nOffset = 1 2 3\n", "detached.raw"));
  const Volume loaded = load_node("io.load_image", dir_ / "detached.mhd");
  EXPECT_EQ(loaded.voxels, values);
  EXPECT_EQ(loaded.geometry.spacing, (std::array<double, 3>{0.5, 0.75, 2}));
  EXPECT_EQ(loaded.geometry.origin, (std::array<double, 3>{1, 2, 3}));
  EXPECT_EQ(loaded.metadata.extra.at("io.format"), "metaimage");
}

// Text voxels (BinaryData = False): read by MetaIO as numbers, each cast to
// the ElementType (integers truncated toward zero), in a 3D image.
TEST_F(IoFiles, MetaImageWithTextVoxelsLoadsTheNumbersAsTheirElementType) {
  const std::string header =
      "ObjectType = Image\nNDims = 3\nBinaryData = False\nElementSpacing = 1 2 3\n"
      "DimSize = 2 2 2\nElementType = ";
  write_bytes(dir_ / "text_float.mha", header + "MET_FLOAT\nElementDataFile = LOCAL\n1.5 -2 3.25e1\n4 5\t6 7 8\n");
  const Volume floats_loaded = load_node("io.load_image", dir_ / "text_float.mha");
  EXPECT_EQ(floats_loaded.voxels, (std::vector<float>{1.5f, -2.0f, 32.5f, 4, 5, 6, 7, 8}));
  EXPECT_EQ(floats_loaded.geometry.spacing, (std::array<double, 3>{1, 2, 3}));
  write_bytes(dir_ / "text_short.mha", header + "MET_SHORT\nElementDataFile = LOCAL\n3.7 -3.7 0 1 2 3 4 32767\n");
  const Volume shorts_loaded = load_node("io.load_image", dir_ / "text_short.mha");
  EXPECT_EQ(shorts_loaded.voxels, (std::vector<float>{3, -3, 0, 1, 2, 3, 4, 32767}));
}

TEST_F(IoFiles, PngLoadsAsOneSliceVolume) {
  using Image2D = itk::Image<unsigned char, 2>;
  auto image = Image2D::New();
  Image2D::SizeType size;
  size[0] = 5;
  size[1] = 3;
  image->SetRegions(size);
  image->Allocate();
  for (std::size_t n = 0; n < 15; ++n) image->GetBufferPointer()[n] = static_cast<unsigned char>(n * 17);
  register_itk_image_io();
  auto writer = itk::ImageFileWriter<Image2D>::New();
  writer->SetInput(image);
  writer->SetFileName((dir_ / "slice.png").string());
  writer->Update();

  const Volume loaded = load_node("io.load_image", dir_ / "slice.png");
  EXPECT_EQ(loaded.geometry.size, (std::array<std::size_t, 3>{5, 3, 1}));
  for (std::size_t n = 0; n < 15; ++n) EXPECT_EQ(loaded.voxels[n], float(n * 17));
  EXPECT_EQ(loaded.metadata.extra.at("io.format"), "png");
}

// --- writer ------------------------------------------------------------------

TEST_F(IoFiles, WriterCreatesDirectoriesAndLeavesNoTemporaryFiles) {
  const fs::path path = dir_ / "a" / "b" / "out.nii.gz";
  write_node(oblique_volume({3, 3, 3}), path);
  EXPECT_TRUE(fs::is_regular_file(path));
  std::size_t entries = 0;
  for (const auto& entry : fs::directory_iterator(path.parent_path())) {
    ++entries;
    EXPECT_EQ(entry.path().filename(), "out.nii.gz");
  }
  EXPECT_EQ(entries, 1u);
}

TEST_F(IoFiles, WriterReplacesAnExistingOutputWhole) {
  const fs::path path = dir_ / "out.mha";
  write_node(oblique_volume({9, 9, 9}, false, 1), path);
  const Volume small = oblique_volume({2, 2, 2}, false, 2);
  write_node(small, path);
  EXPECT_EQ(load_node("io.load_image", path).voxels, small.voxels);
}

TEST_F(IoFiles, WriterRefusesToOverwriteTheVolumesSourceFile) {
  const fs::path path = dir_ / "input.nrrd";
  write_node(oblique_volume({3, 3, 3}), path);
  const std::string before = read_bytes(path);
  const Volume loaded = load_node("io.load_image", path);
  for (const fs::path& target : {path, dir_ / "." / "input.nrrd"}) {
    NodeHarness node(bundled(), "io.write");
    node.set_input("volume", loaded).set_param("path", target.string());
    try {
      node.run();
      ADD_FAILURE() << "overwrote " << target;
    } catch (const std::invalid_argument& error) {
      EXPECT_NE(std::string(error.what()).find("it is the file this volume was read from"), std::string::npos)
          << error.what();
    }
  }
  EXPECT_EQ(read_bytes(path), before);
}

TEST_F(IoFiles, WriterRefusesUnsupportedExtensionsAndInconsistentVolumes) {
  NodeHarness mhd(bundled(), "io.write");
  mhd.set_input("volume", oblique_volume({2, 2, 2})).set_param("path", (dir_ / "x.mhd").string());
  EXPECT_THROW(mhd.run(), std::invalid_argument);
  NodeHarness txt(bundled(), "io.write");
  txt.set_input("volume", oblique_volume({2, 2, 2})).set_param("path", (dir_ / "x.txt").string());
  EXPECT_THROW(txt.run(), std::invalid_argument);
  Volume broken = oblique_volume({2, 2, 2});
  broken.voxels.pop_back();
  NodeHarness bad(bundled(), "io.write");
  bad.set_input("volume", broken).set_param("path", (dir_ / "x.nii").string());
  EXPECT_THROW(bad.run(), std::invalid_argument);
  EXPECT_TRUE(fs::is_empty(dir_));
}

// --- bad files: one clear message each ---------------------------------------------

struct BadCase {
  std::string name;      // file name
  std::string content;   // bytes
  std::string expected;  // part of the message
};

TEST_F(IoFiles, BadFileCorpusGivesOneClearMessageEach) {
  std::vector<float> ramp(64 * 64 * 64);
  for (std::size_t n = 0; n < ramp.size(); ++n) ramp[n] = float(n % 977);
  const std::string good_nifti = nifti_file({64, 64, 64}, 16, 32, floats(ramp));
  const std::string good_gz = gzip(good_nifti);
  const std::string raw_meta = meta_header("64 64 64", "MET_FLOAT") + floats(ramp);
  const std::string compressed_voxels = [&] {
    // zlib (not gzip) stream, as MetaIO writes it.
    uLongf size = compressBound(uLong(ramp.size() * 4));
    std::string out(size, '\0');
    compress(reinterpret_cast<Bytef*>(out.data()), &size, reinterpret_cast<const Bytef*>(ramp.data()),
             uLong(ramp.size() * 4));
    out.resize(size);
    return out;
  }();
  const std::string compressed_meta =
      meta_header("64 64 64", "MET_FLOAT",
                  "CompressedData = True\nCompressedDataSize = " + std::to_string(compressed_voxels.size()) + "\n") +
      compressed_voxels;
  const std::string nrrd_header =
      "NRRD0004\ntype: float\ndimension: 3\nsizes: 64 64 64\nendian: little\nencoding: raw\n\n";

  std::vector<BadCase> cases = {
      {"empty.nii", "", "the file is empty"},
      {"garbage.nii", std::string(1000, '\x5a'), "not a valid NIfTI file"},
      {"garbage.nii.gz", gzip(std::string(1000, '\x5a')), "not a valid NIfTI file"},
      {"not_gzip.nii.gz", "hello, world", "not a valid NIfTI file"},
      {"header_only.nii", good_nifti.substr(0, 200), "not a valid NIfTI file"},
      {"truncated.nii", good_nifti.substr(0, good_nifti.size() / 2), "the file is truncated"},
      {"truncated.nii.gz", good_gz.substr(0, good_gz.size() / 2), "the file is truncated"},
      {"corrupt.nii.gz",
       [&] {
         std::string bytes = good_gz;
         for (std::size_t n = bytes.size() / 2; n < bytes.size() / 2 + 64; ++n) bytes[n] = char(~bytes[n]);
         return bytes;
       }(),
       "corrupt"},
      {"truncated.mha", raw_meta.substr(0, raw_meta.size() - 1000), "the file is truncated"},
      {"truncated_compressed.mha", compressed_meta.substr(0, compressed_meta.size() - 100), "the file is truncated"},
      {"missing_data.mhd", meta_header("4 4 4", "MET_FLOAT", "", "nowhere.raw"), "does not exist"},
      {"truncated.nrrd", nrrd_header + floats(ramp).substr(0, 1000), "cannot read the voxels"},
      {"bad_type.nrrd", "NRRD0004\ntype: flot\ndimension: 3\nsizes: 4 4 4\n\n", "corrupt NRRD header"},
      {"complex.nii", nifti_file({4, 5, 6}, 32, 64, std::string(4 * 5 * 6 * 8, '\0')), "unsupported pixel type"},
      {"rgb.mha", meta_header("4 4 4", "MET_UCHAR", "ElementNumberOfChannels = 3\n") + std::string(192, '\0'),
       "unsupported pixel type"},
      {"four_d.nii", nifti_file({4, 5, 6, 3}, 16, 32, std::string(4 * 5 * 6 * 3 * 4, '\0')),
       "a 4D image (4x5x6x3), but a 3D volume is expected"},
      {"absurd.nii", nifti_file({10000, 10000, 10000}, 16, 32, std::string(100, '\0')),
       "10000x10000x10000 voxels, more than the limit"},
      {"absurd.mha", meta_header("10000 10000 10000", "MET_FLOAT"), "10000x10000x10000 voxels, more than the limit"},
      {"absurd.nrrd",
       "NRRD0004\ntype: float\ndimension: 3\nsizes: 10000 10000 10000\nendian: little\nencoding: "
       "gzip\n\n",
       "10000x10000x10000 voxels, more than the limit"},
      {"negative.mha", meta_header("-4 4 4", "MET_FLOAT") + std::string(256, '\0'), "more than the limit"},
      {"implausible.nrrd",
       "NRRD0004\ntype: float\ndimension: 3\nsizes: 1000 1000 1000\nendian: little\nencoding: gzip\n\nxx",
       "more than any compression could explain"},
      {"zero_spacing.mha", meta_header("2 2 2", "MET_FLOAT", "ElementSpacing = 1 0 1\n") + std::string(32, '\0'),
       "spacings must be positive"},
      {"notes.txt", "hello", "unrecognised file type '.txt'"},
  };
  for (const BadCase& bad : cases) {
    const fs::path path = dir_ / bad.name;
    write_bytes(path, bad.content);
    const std::string message = load_error(path);
    EXPECT_NE(message.find(bad.expected), std::string::npos) << bad.name << ": " << message;
    EXPECT_NE(message.find(path.string()), std::string::npos) << bad.name << " not named in: " << message;
  }
  // The good versions of the same files load.
  write_bytes(dir_ / "good.nii", good_nifti);
  write_bytes(dir_ / "good.nii.gz", good_gz);
  write_bytes(dir_ / "good.mha", raw_meta);
  write_bytes(dir_ / "good_compressed.mha", compressed_meta);
  write_bytes(dir_ / "good.nrrd", nrrd_header + floats(ramp));
  for (const char* name : {"good.nii", "good.nii.gz", "good.mha", "good_compressed.mha", "good.nrrd"}) {
    EXPECT_EQ(load_node("io.load_image", dir_ / name).voxels, ramp) << name;
  }
}

TEST_F(IoFiles, MissingFileAndEmptyDirectoryAreNamed) {
  const std::string missing = load_error(dir_ / "nothing.nii.gz", "io.load_ct");
  EXPECT_NE(missing.find("'" + (dir_ / "nothing.nii.gz").string() + "': no such file or directory"), std::string::npos)
      << missing;
  fs::create_directories(dir_ / "empty");
  const std::string empty = load_error(dir_ / "empty", "io.load_mri");
  EXPECT_NE(empty.find("no DICOM files in directory '" + (dir_ / "empty").string() + "'"), std::string::npos) << empty;
}

TEST_F(IoFiles, EveryPrefixOfAValidFileIsRefusedCleanly) {
  // Truncation at many points, per format and encoding: an error naming the
  // file every time, never a crash, a hang or a silently zero-filled volume.
  const Volume volume = oblique_volume({12, 10, 8});
  for (const char* name : {"v.nii", "v.nii.gz", "v.nrrd", "v.mha"}) {
    const fs::path full = dir_ / name;
    write_node(volume, full);
    const std::string bytes = read_bytes(full);
    const fs::path cut = dir_ / (std::string("cut_") + name);
    const std::size_t step = std::max<std::size_t>(1, bytes.size() / 40);
    for (std::size_t length = 0; length < bytes.size(); length += step) {
      write_bytes(cut, bytes.substr(0, length));
      const std::string message = load_error(cut);
      EXPECT_NE(message.find(cut.string()), std::string::npos) << name << " cut at " << length << ": " << message;
    }
    EXPECT_EQ(load_node("io.load_image", full).voxels, volume.voxels);
  }
}

TEST_F(IoFiles, NonFiniteVoxelsAreReportedOrReplacedInEveryFormat) {
  Volume volume = oblique_volume({4, 3, 2});
  volume.voxels[5] = NAN;  // voxel (1, 1, 0)
  volume.voxels[7] = INFINITY;
  volume.voxels[20] = -INFINITY;
  for (const char* extension : {".nii", ".nii.gz", ".nrrd", ".mha"}) {
    const fs::path path = dir_ / (std::string("nonfinite") + extension);
    write_node(volume, path);

    const std::string message = load_error(path, "io.load_ct");
    EXPECT_NE(message.find("'" + path.string() +
                           "' has 3 non-finite voxels (1 NaN, 1 +Inf, 1 -Inf; the first at "
                           "voxel (1, 1, 0))"),
              std::string::npos)
        << message;

    NodeHarness node(bundled(), "io.load_ct");
    node.set_param("path", path.string()).set_param("nonfinite", "replace").set_param("nonfinite_value", -1024.0);
    node.run();
    const Volume& loaded = node.output<Volume>("volume");
    for (std::size_t n = 0; n < volume.voxels.size(); ++n) {
      EXPECT_EQ(loaded.voxels[n], std::isfinite(volume.voxels[n]) ? volume.voxels[n] : -1024.0f) << extension << n;
    }
    ASSERT_EQ(loaded.metadata.extra.count("io.nonfinite_replaced"), 1u) << extension;
    EXPECT_EQ(loaded.metadata.extra.at("io.nonfinite_replaced"), "3");
    bool warned = false;
    for (const auto& [level, text] : node.log()) {
      warned |= level == LogLevel::Warn && text.find("replaced with -1024") != std::string::npos;
    }
    EXPECT_TRUE(warned) << extension;
  }
}

// The loader skips its pass that restores non-finite voxels when the
// truncation check, which inflates a .nii.gz anyway, saw none. A file of many
// compressed blocks with non-finite voxels at its first voxel (inside the
// first 540 bytes), in its middle and at its very last voxel, and one with a
// single NaN at the end, are still reported voxel for voxel; a file with none
// loads exactly.
TEST_F(IoFiles, NonFiniteVoxelsAnywhereInALargeCompressedFileAreFound) {
  Volume volume = oblique_volume({210, 130, 40});  // 4.4 MB of float voxels: several gzip members
  const std::size_t last = volume.voxels.size() - 1;
  const fs::path clean = dir_ / "clean.nii.gz";
  write_node(volume, clean);
  NodeHarness plain(bundled(), "io.load_image");
  plain.set_param("path", clean.string()).run();
  EXPECT_EQ(plain.output<Volume>("volume").voxels, volume.voxels);

  Volume last_only = volume;
  last_only.voxels[last] = NAN;
  write_node(last_only, dir_ / "last.nii.gz");
  EXPECT_NE(load_error(dir_ / "last.nii.gz")
                .find("1 non-finite voxel (1 NaN, 0 +Inf, 0 -Inf; the first at voxel "
                      "(209, 129, 39))"),
            std::string::npos)
      << load_error(dir_ / "last.nii.gz");

  volume.voxels[0] = INFINITY;
  volume.voxels[last / 2 + 1] = -INFINITY;
  volume.voxels[last] = NAN;
  write_node(volume, dir_ / "three.nii.gz");
  NodeHarness node(bundled(), "io.load_image");
  node.set_param("path", (dir_ / "three.nii.gz").string()).set_param("nonfinite", "replace");
  node.set_param("nonfinite_value", -5.0).run();
  const Volume& loaded = node.output<Volume>("volume");
  EXPECT_EQ(loaded.metadata.extra.at("io.nonfinite_replaced"), "3");
  for (std::size_t n : {std::size_t{0}, last / 2 + 1, last}) EXPECT_EQ(loaded.voxels[n], -5.0f) << n;
  EXPECT_EQ(loaded.voxels[1], volume.voxels[1]);
}

}  // namespace
}  // namespace fusionflow
