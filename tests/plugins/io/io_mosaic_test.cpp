// io.* loaders on Siemens MOSAIC DICOM and multi-frame layouts: the real
// mosaics shipped by Debian's python3-nibabel, unpacked and compared voxel by
// voxel and in geometry with nibabel's own unpacking (computed at test time);
// the CSA header parser against nibabel's and against corrupt bytes; mosaics
// whose header is damaged; and multi-frame files (written here with DCMTK)
// whose layout the loaders do not read.
#include <gtest/gtest.h>

#include "siemens_mosaic.hpp"
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
#include <zlib.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <fstream>
#include <functional>
#include <iterator>
#include <limits>
#include <random>
#include <sstream>

namespace fusionflow {
namespace {
namespace fs = std::filesystem;
using testing::NodeHarness;
using namespace io_test;

// nibabel's test data (Debian python3-nibabel): Siemens DWI mosaics and CSA headers.
const fs::path kNibabelData = NIBABEL_TEST_DATA;

const NodeRegistry& bundled() { return testing::bundled_plugins(); }

class IoMosaic : public ::testing::Test {
 protected:
  void SetUp() override { dir_ = testing::fresh_temp_directory("io-mosaic"); }
  void TearDown() override { fs::remove_all(dir_); }
  fs::path dir_;
};

// nibabel's file `name`, gunzipped into `dir` if it is compressed.
fs::path nibabel_file(const std::string& name, const fs::path& dir) {
  const fs::path source = kNibabelData / name;
  if (!fs::is_regular_file(source)) {
    ADD_FAILURE() << "nibabel's test file " << source << " is missing: install Debian's python3-nibabel";
    return source;
  }
  if (source.extension() != ".gz") return source;
  const fs::path target = dir / source.stem();
  gzFile in = gzopen(source.c_str(), "rb");
  EXPECT_NE(in, nullptr) << source;
  std::ofstream out(target, std::ios::binary);
  char buffer[65536];
  for (int count; in != nullptr && (count = gzread(in, buffer, sizeof buffer)) > 0;) out.write(buffer, count);
  if (in != nullptr) gzclose(in);
  return target;
}

std::string load_error(const std::string& type, const fs::path& path) {
  NodeHarness node(bundled(), type);
  node.set_param("path", path.string());
  return run_error(node);
}

void expect_contains(const std::string& text, const std::string& part) {
  EXPECT_NE(text.find(part), std::string::npos) << "missing '" << part << "' in:\n" << text;
}

// --- nibabel's unpacking, the expected values -----------------------------------

struct NibabelVolume {
  std::array<std::size_t, 3> size{};
  std::array<double, 3> spacing{}, origin{};
  std::array<double, 9> direction{};
  std::vector<double> voxels;  // x fastest, ITK's order
};

// nibabel's MosaicWrapper gives data[row, column, slice] and an affine from
// (row, column, slice) to DICOM patient coordinates (LPS, as ITK). The script
// turns that into ITK's index order (x along a row) and, like the loader,
// makes the slices run along row x column (reversing them if nibabel's run
// the other way), so that origin, spacing and direction compare directly.
const char* const kNibabelScript = R"(import sys
import numpy as np
from nibabel.nicom import dicomwrappers
wrapper = dicomwrappers.wrapper_from_file(sys.argv[1])
if not wrapper.is_mosaic:
    sys.exit('nibabel does not read ' + sys.argv[1] + ' as a Siemens mosaic')
data = np.asarray(wrapper.get_data(), dtype='<f8')
affine = np.asarray(wrapper.affine, dtype=float)
along_rows, along_columns, along_slices = affine[:3, 1], affine[:3, 0], affine[:3, 2]
origin = affine[:3, 3]
if np.dot(np.cross(along_rows, along_columns), along_slices) < 0:
    data = data[:, :, ::-1]
    origin = origin + along_slices * (data.shape[2] - 1)
    along_slices = -along_slices
steps = (along_rows, along_columns, along_slices)
spacing = [float(np.linalg.norm(v)) for v in steps]
direction = np.column_stack([v / s for v, s in zip(steps, spacing)])
print(data.shape[1], data.shape[0], data.shape[2])
print(*[repr(float(v)) for v in spacing])
print(*[repr(float(v)) for v in origin])
print(*[repr(float(v)) for v in direction.ravel()])
np.ascontiguousarray(data.transpose(2, 0, 1)).tofile(sys.argv[2])
)";

NibabelVolume read_with_nibabel(const fs::path& file, const fs::path& dir) {
  NibabelVolume expected;
  const fs::path script = dir / "nibabel_mosaic.py", raw = dir / "nibabel_voxels.raw";
  std::ofstream(script) << kNibabelScript;
  const testing::CommandOutput result = testing::run_command(
      std::string(PYDICOM_PYTHON) + " -W ignore " + script.string() + " " + file.string() + " " + raw.string());
  if (result.exit_code != 0) {
    ADD_FAILURE() << "nibabel could not read " << file << " (needs python3-nibabel, python3-pydicom):\n" << result.text;
    return expected;
  }
  std::istringstream in(result.text);
  for (auto& v : expected.size) in >> v;
  for (auto& v : expected.spacing) in >> v;
  for (auto& v : expected.origin) in >> v;
  for (auto& v : expected.direction) in >> v;
  EXPECT_TRUE(in) << result.text;
  const std::string bytes = read_bytes(raw);
  expected.voxels.resize(bytes.size() / sizeof(double));
  std::copy(bytes.begin(), bytes.end(), reinterpret_cast<char*>(expected.voxels.data()));
  EXPECT_EQ(expected.voxels.size(), expected.size[0] * expected.size[1] * expected.size[2]);
  return expected;
}

// Compares voxel by voxel and the geometry; prints the largest differences.
// nibabel scales the ImageOrientationPatient cosines as written (DS text, here
// |column cosine| = 0.9999997) where the loader normalises them, so the first
// tile's corner, 690 mm from the mosaic's, differs by 2e-4 mm, and the
// spacing by 1e-6 mm.
void expect_matches_nibabel(const Volume& volume, const NibabelVolume& expected, const std::string& label,
                            bool has_content = true) {
  ASSERT_EQ(volume.geometry.size, expected.size);
  double origin = 0, spacing = 0, direction = 0;
  for (int n = 0; n < 3; ++n) {
    origin = std::max(origin, std::abs(volume.geometry.origin[n] - expected.origin[n]));
    spacing = std::max(spacing, std::abs(volume.geometry.spacing[n] - expected.spacing[n]));
  }
  for (int n = 0; n < 9; ++n)
    direction = std::max(direction, std::abs(volume.geometry.direction[n] - expected.direction[n]));
  std::printf("[ nibabel  ] %s: largest difference to nibabel: origin %.3g mm, spacing %.3g mm, direction %.3g\n",
              label.c_str(), origin, spacing, direction);
  EXPECT_LE(origin, 5e-4);
  EXPECT_LE(spacing, 1e-5);
  EXPECT_LE(direction, 1e-9);
  // The far corner too (index (size - 1) of every axis).
  const auto& s = expected.size;
  const auto corner = volume.geometry.index_to_point({double(s[0] - 1), double(s[1] - 1), double(s[2] - 1)});
  for (int r = 0; r < 3; ++r) {
    double point = expected.origin[r];
    for (int c = 0; c < 3; ++c) point += expected.direction[r * 3 + c] * expected.spacing[c] * double(s[c] - 1);
    EXPECT_NEAR(corner[r], point, 1e-3) << "far corner, axis " << r;
  }
  ASSERT_EQ(volume.voxels.size(), expected.voxels.size());
  std::size_t nonzero = 0;
  for (std::size_t n = 0; n < expected.voxels.size(); ++n) {
    ASSERT_EQ(double(volume.voxels[n]), expected.voxels[n]) << "voxel " << n;
    nonzero += expected.voxels[n] != 0;
  }
  if (has_content) {
    EXPECT_GT(nonzero, expected.voxels.size() / 2) << label;
  }
}

Volume load_logged(const fs::path& path, std::vector<std::pair<LogLevel, std::string>>* log = nullptr) {
  NodeHarness node(bundled(), "io.load_mri");
  node.set_param("path", path.string());
  node.run();
  if (log != nullptr) *log = node.log();
  return node.output<Volume>("volume");
}

bool logged(const std::vector<std::pair<LogLevel, std::string>>& log, LogLevel level, const std::string& part) {
  return std::any_of(log.begin(), log.end(), [&](const auto& entry) {
    return entry.first == level && entry.second.find(part) != std::string::npos;
  });
}

// The real mosaic's DICOM, edited with DCMTK.
struct EditedMosaic {
  DcmFileFormat file;
  DcmDataset& data() { return *file.getDataset(); }
  std::string csa() {
    DcmElement* element = nullptr;
    EXPECT_TRUE(data().findAndGetElement(DcmTagKey(0x0029, 0x1010), element).good());
    Uint8* bytes = nullptr;
    EXPECT_TRUE(element->getUint8Array(bytes).good());
    return std::string(reinterpret_cast<const char*>(bytes), element->getLength());
  }
  void set_csa(const std::string& bytes) {
    DcmElement* element = nullptr;
    ASSERT_TRUE(data().findAndGetElement(DcmTagKey(0x0029, 0x1010), element).good());
    std::string padded = bytes;
    if (padded.size() % 2) padded.push_back('\0');
    ASSERT_TRUE(
        element->putUint8Array(reinterpret_cast<const Uint8*>(padded.data()), static_cast<unsigned long>(padded.size()))
            .good());
  }
  // nibabel's copies of the mosaics have their pixels zeroed (to compress
  // well): a pattern that depends on the pixel's place in the mosaic, below
  // 2^BitsStored, shows where each pixel goes.
  void fill_pattern() {
    Uint16 rows = 0, columns = 0, bits = 0;
    ASSERT_TRUE(data().findAndGetUint16(DCM_Rows, rows).good());
    ASSERT_TRUE(data().findAndGetUint16(DCM_Columns, columns).good());
    ASSERT_TRUE(data().findAndGetUint16(DCM_BitsStored, bits).good());
    std::vector<Uint16> pixels(std::size_t{rows} * columns);
    const std::size_t modulus = std::min<std::size_t>(4093, (std::size_t{1} << bits) - 1);
    for (std::size_t n = 0; n < pixels.size(); ++n) pixels[n] = Uint16(1 + (n * 7) % modulus);
    ASSERT_TRUE(
        data().putAndInsertUint16Array(DCM_PixelData, pixels.data(), static_cast<unsigned long>(pixels.size())).good());
  }
  void save(const fs::path& path) { ASSERT_TRUE(file.saveFile(OFFilename(path.c_str()), EXS_Unknown).good()) << path; }
};

void open_mosaic(EditedMosaic& mosaic, const fs::path& path) {
  ASSERT_TRUE(mosaic.file.loadFile(OFFilename(path.c_str())).good()) << path;
  mosaic.file.loadAllDataIntoMemory();
}

TEST_F(IoMosaic, SiemensDwiMosaicsUnpackIntoVolumesLikeNibabel) {
  for (const char* name : {"siemens_dwi_0.dcm.gz", "siemens_dwi_1000.dcm.gz"}) {
    const fs::path file = nibabel_file(name, dir_);
    const NibabelVolume expected = read_with_nibabel(file, dir_);
    std::vector<std::pair<LogLevel, std::string>> log;
    const Volume volume = load_logged(file, &log);
    EXPECT_EQ(volume.geometry.size, (std::array<std::size_t, 3>{128, 128, 48})) << name;
    expect_matches_nibabel(volume, expected, name, false);
    EXPECT_TRUE(logged(log, LogLevel::Info, "48 slices of 128x128 unpacked from its 896x896 mosaic")) << name;
    EXPECT_FALSE(logged(log, LogLevel::Warn, "")) << name;
    EXPECT_EQ(volume.metadata.modality, "MR");
  }
  // Its pixels, voxel by voxel.
  EditedMosaic mosaic;
  open_mosaic(mosaic, nibabel_file("siemens_dwi_1000.dcm.gz", dir_));
  mosaic.fill_pattern();
  const fs::path file = dir_ / "patterned.dcm";
  mosaic.save(file);
  const Volume volume = load_logged(file);
  expect_matches_nibabel(volume, read_with_nibabel(file, dir_), "siemens_dwi_1000 with patterned pixels");

  // Alone in a directory (a one-file series), it loads the same way.
  fs::create_directories(dir_ / "series");
  fs::copy_file(file, dir_ / "series" / "mosaic.dcm");
  const Volume from_directory = load_logged(dir_ / "series");
  EXPECT_TRUE(from_directory.geometry.same_grid(volume.geometry, 1e-12));
  EXPECT_EQ(from_directory.voxels, volume.voxels);
}

TEST_F(IoMosaic, TilesRunningAgainstTheRowColumnNormalAreReversedWhereNibabelPutsThem) {
  EditedMosaic patterned;
  open_mosaic(patterned, nibabel_file("siemens_dwi_1000.dcm.gz", dir_));
  patterned.fill_pattern();
  const fs::path original = dir_ / "patterned.dcm";
  patterned.save(original);
  EditedMosaic mosaic;
  open_mosaic(mosaic, original);
  // Negate the CSA SliceNormalVector (same lengths): the tiles now run from
  // the top slice down.
  std::string csa = mosaic.csa();
  const auto element = csa.find("SliceNormalVector");
  ASSERT_NE(element, std::string::npos);
  for (const std::string value : {"0.00000000", "0.00523632", "0.99998629"}) {
    const auto at = csa.find(value, element);
    ASSERT_NE(at, std::string::npos) << value;
    csa.replace(at, value.size(), "-" + value.substr(1));
  }
  mosaic.set_csa(csa);
  const fs::path flipped = dir_ / "flipped.dcm";
  mosaic.save(flipped);

  const NibabelVolume expected = read_with_nibabel(flipped, dir_);
  std::vector<std::pair<LogLevel, std::string>> log;
  const Volume volume = load_logged(flipped, &log);
  expect_matches_nibabel(volume, expected, "siemens_dwi_1000 with its CSA slice normal negated");
  EXPECT_TRUE(logged(log, LogLevel::Info, "(tiles in reverse slice order)"));
  // Same grid direction as the original; its slices in reverse order.
  const Volume upright = load_logged(original);
  const std::size_t slice = 128 * 128;
  for (std::size_t z = 0; z < 48; ++z) {
    ASSERT_TRUE(std::equal(volume.voxels.begin() + std::ptrdiff_t(z * slice),
                           volume.voxels.begin() + std::ptrdiff_t((z + 1) * slice),
                           upright.voxels.begin() + std::ptrdiff_t((47 - z) * slice)))
        << "slice " << z;
  }
}

TEST_F(IoMosaic, MosaicWithADamagedHeaderFallsBackOrIsRefused) {
  const fs::path original = nibabel_file("siemens_dwi_0.dcm.gz", dir_);
  const Volume upright = load_logged(original);

  // CSA header cut short: the count comes from (0019,100A), the slice normal
  // from the orientation, with a warning.
  EditedMosaic cut;
  open_mosaic(cut, original);
  cut.set_csa(cut.csa().substr(0, 1000));
  cut.save(dir_ / "cut.dcm");
  std::vector<std::pair<LogLevel, std::string>> log;
  const Volume fallback = load_logged(dir_ / "cut.dcm", &log);
  EXPECT_TRUE(fallback.geometry.same_grid(upright.geometry, 1e-9));
  EXPECT_EQ(fallback.voxels, upright.voxels);
  EXPECT_TRUE(
      logged(log, LogLevel::Warn, "(CSA header: the CSA header is corrupt: it announces 83 elements in 984 bytes)"));
  EXPECT_TRUE(logged(log, LogLevel::Warn, "its tiles are taken to run along the row x column normal"));

  // ... and without (0019,100A) nothing says how many slices there are.
  delete cut.data().remove(DcmTagKey(0x0019, 0x100A));
  cut.save(dir_ / "uncounted.dcm");
  const std::string uncounted = load_error("io.load_mri", dir_ / "uncounted.dcm");
  expect_contains(uncounted, "cannot read Siemens MOSAIC DICOM file '" + (dir_ / "uncounted.dcm").string() +
                                 "': it does not say how many slices it holds");
  expect_contains(uncounted, "(the CSA header is corrupt: it announces 83 elements in 984 bytes)");

  // The two counts disagree.
  EditedMosaic disagree;
  open_mosaic(disagree, original);
  DcmElement* count = nullptr;
  ASSERT_TRUE(disagree.data().findAndGetElement(DcmTagKey(0x0019, 0x100A), count).good());
  const Uint8 forty_seven[2] = {47, 0};  // implicit VR little endian file: the US value's bytes
  ASSERT_TRUE(count->putUint8Array(forty_seven, 2).good());
  disagree.save(dir_ / "disagree.dcm");
  expect_contains(load_error("io.load_mri", dir_ / "disagree.dcm"),
                  "its NumberOfImagesInMosaic is 48 in the CSA header but 47 in (0019,xx0A)");

  // A CSA slice normal that is not the orientation's.
  EditedMosaic skew;
  open_mosaic(skew, original);
  std::string csa = skew.csa();
  const auto at = csa.find("0.00000000", csa.find("SliceNormalVector"));
  ASSERT_NE(at, std::string::npos);
  csa.replace(at, 10, "0.50000000");  // 27 degrees off the orientation's normal
  skew.set_csa(csa);
  skew.save(dir_ / "skew.dcm");
  expect_contains(load_error("io.load_mri", dir_ / "skew.dcm"),
                  "its CSA SliceNormalVector is not perpendicular to its ImageOrientationPatient");
}

TEST_F(IoMosaic, MosaicWhoseTilesDoNotFitIsRefused) {
  // nibabel's 0.dcm: a 256x256 image said to hold 48 slices (7x7 tiles of
  // 36.57 pixels); nibabel's own get_data() fails on it.
  const fs::path file = nibabel_file("0.dcm", dir_);
  expect_contains(load_error("io.load_mri", file),
                  "cannot read Siemens MOSAIC DICOM file '" + file.string() +
                      "': its 256x256 pixels cannot be cut into 7x7 equal tiles for its 48 mosaic images");
}

TEST_F(IoMosaic, SeriesOfMosaicsIsRefusedSayingHowToLoadOne) {
  // Two DWI volumes (b=0, b=1000) of one series.
  fs::create_directories(dir_ / "dwi");
  const fs::path b0 = nibabel_file("siemens_dwi_0.dcm.gz", dir_), b1000 = nibabel_file("siemens_dwi_1000.dcm.gz", dir_);
  fs::copy_file(b0, dir_ / "dwi" / "b0.dcm");
  fs::copy_file(b1000, dir_ / "dwi" / "b1000.dcm");
  const std::string error = load_error("io.load_mri", dir_ / "dwi");
  expect_contains(error, "cannot read DICOM series in '" + (dir_ / "dwi").string() +
                             "': its 2 files are Siemens MOSAIC images, each a whole volume");
  expect_contains(error, "load one of them by its file path, e.g. '" + (dir_ / "dwi" / "b0.dcm").string() + "'");
}

// --- the CSA parser -------------------------------------------------------------------

// nibabel's csareader on `file`: one line per element ("T name count") and per
// value ("N number", or "S" and the text's latin-1 bytes in hex: values hold
// newlines).
const char* const kNibabelCsaScript = R"(import sys
from nibabel.nicom import csareader
header = csareader.read(open(sys.argv[1], 'rb').read())
for name, tag in sorted(header['tags'].items()):
    print('T', name, len(tag['items']))
    for item in tag['items']:
        if isinstance(item, (int, float)):
            print('N', repr(float(item)))
        else:
            data = item if isinstance(item, bytes) else item.encode('latin-1')
            print('S', data.hex())
)";

TEST_F(IoMosaic, CsaParserReadsNibabelsHeadersAsNibabelDoes) {
  for (const char* name : {"csa2_b0.bin", "csa2_b1000.bin", "csa2_zero_len.bin.gz"}) {
    const std::string bytes = read_bytes(nibabel_file(name, dir_));
    const io::CsaHeader header =
        io::parse_csa_header(reinterpret_cast<const std::uint8_t*>(bytes.data()), bytes.size());
    std::ofstream(dir_ / "csa.py") << kNibabelCsaScript;
    const fs::path file = nibabel_file(name, dir_);
    const auto result = testing::run_command(std::string(PYDICOM_PYTHON) + " -W ignore " + (dir_ / "csa.py").string() +
                                             " " + file.string());
    ASSERT_EQ(result.exit_code, 0) << result.text;
    std::istringstream in(result.text);
    std::size_t elements = 0, values = 0;
    std::string kind, element;
    std::size_t count = 0, index = 0;
    for (std::string line; std::getline(in, line);) {
      std::istringstream fields(line);
      fields >> kind;
      ASSERT_TRUE(kind == "T" || kind == "N" || kind == "S") << line;
      if (kind == "T") {
        fields >> element >> count;
        index = 0;
        ++elements;
        ASSERT_EQ(header.elements.count(element), 1u) << name << ": " << element;
        // Past nibabel's values (it stops a number list at its first empty item), only empty ones.
        const auto& mine = header.elements.at(element);
        ASSERT_LE(count, mine.size()) << name << ": " << element;
        for (std::size_t n = count; n < mine.size(); ++n) EXPECT_EQ(mine[n], "") << name << ": " << element << n;
        continue;
      }
      ASSERT_LT(index, header.elements.at(element).size()) << name << ": " << element;
      if (kind == "N") {
        double value = 0;
        fields >> value;
        const auto parsed = header.number(element, index);
        ASSERT_TRUE(parsed.has_value()) << name << ": " << element << " value " << index;
        EXPECT_EQ(*parsed, value) << name << ": " << element << " value " << index;
      } else {
        std::string hex, text;
        fields >> hex;
        for (std::size_t n = 0; n + 1 < hex.size(); n += 2)
          text.push_back(char(std::stoi(hex.substr(n, 2), nullptr, 16)));
        EXPECT_EQ(header.elements.at(element)[index], text) << name << ": " << element << " value " << index;
      }
      ++index;
      ++values;
    }
    EXPECT_EQ(elements, header.elements.size()) << name;
    EXPECT_GT(values, 50u) << name;
  }
  const std::string b0 = read_bytes(kNibabelData / "csa2_b0.bin");
  const io::CsaHeader header = io::parse_csa_header(reinterpret_cast<const std::uint8_t*>(b0.data()), b0.size());
  EXPECT_EQ(header.number("NumberOfImagesInMosaic"), 48.0);
  EXPECT_TRUE(header.has_text("AcquisitionMatrixText"));
}

// Parses or throws std::runtime_error, and keeps no more text than it was given.
void expect_parses_or_refuses(const std::string& bytes, const std::string& label) {
  try {
    const io::CsaHeader header =
        io::parse_csa_header(reinterpret_cast<const std::uint8_t*>(bytes.data()), bytes.size());
    std::size_t kept = 0;
    for (const auto& [name, values] : header.elements) {
      kept += name.size();
      for (const std::string& value : values) kept += value.size();
    }
    EXPECT_LE(kept, bytes.size()) << label;
  } catch (const std::runtime_error& error) {
    EXPECT_NE(std::string(error.what()).find("CSA header"), std::string::npos) << label << ": " << error.what();
  }
}

TEST(CsaHeader, AnyBytesGiveAHeaderOrAClearError) {
  const std::string good = read_bytes(kNibabelData / "csa2_b1000.bin");
  ASSERT_GT(good.size(), 10000u) << "install Debian's python3-nibabel";
  // Every truncation is an error, except of the unused bytes after the last
  // element (then the header is the same).
  const auto whole = io::parse_csa_header(reinterpret_cast<const std::uint8_t*>(good.data()), good.size());
  std::size_t refused = 0;
  for (std::size_t length = 0; length < good.size(); ++length) {
    try {
      const auto part = io::parse_csa_header(reinterpret_cast<const std::uint8_t*>(good.data()), length);
      EXPECT_EQ(part.elements, whole.elements) << length;
      EXPECT_GE(length, good.size() - 8) << "a truncated header read as complete";
    } catch (const std::runtime_error&) {
      ++refused;
    }
  }
  EXPECT_GE(refused, good.size() - 8);
  // Counts and lengths overwritten with extreme values, bytes flipped.
  std::mt19937 random(22);
  const std::int32_t extremes[] = {0,
                                   1,
                                   -1,
                                   2,
                                   77,
                                   205,
                                   1000,
                                   65535,
                                   std::numeric_limits<std::int32_t>::max(),
                                   std::numeric_limits<std::int32_t>::min(),
                                   std::int32_t(good.size())};
  for (int trial = 0; trial < 20000; ++trial) {
    std::string bytes = good;
    const int edits = 1 + int(random() % 4);
    for (int e = 0; e < edits; ++e) {
      const std::size_t at = (random() % (bytes.size() / 4)) * 4;
      if (random() % 2) {
        const std::int32_t value = random() % 3 ? extremes[random() % std::size(extremes)] : std::int32_t(random());
        for (int b = 0; b < 4; ++b) bytes[at + b] = static_cast<char>((std::uint32_t(value) >> (8 * b)) & 0xff);
      } else {
        bytes[at + random() % 4] = static_cast<char>(random());
      }
    }
    expect_parses_or_refuses(bytes, "trial " + std::to_string(trial));
  }
  // Random bytes behind the signature.
  for (int trial = 0; trial < 2000; ++trial) {
    std::string bytes = "SV10\4\3\2\1";
    bytes.resize(8 + random() % 3000);
    for (std::size_t n = 8; n < bytes.size(); ++n) bytes[n] = static_cast<char>(random());
    expect_parses_or_refuses(bytes, "random " + std::to_string(trial));
  }
  EXPECT_THROW(io::parse_csa_header(reinterpret_cast<const std::uint8_t*>("CSA1 header"), 11), std::runtime_error);
}

TEST(MosaicTiling, SquareTilingAsSiemensWritesIt) {
  const io::MosaicTiling tiling = io::mosaic_tiling(896, 896, 48);
  EXPECT_EQ(tiling.tiles_per_side, 7u);
  EXPECT_EQ(tiling.tile_columns, 128u);
  EXPECT_EQ(tiling.tile_rows, 128u);
  EXPECT_EQ(io::mosaic_tiling(384, 384, 36).tiles_per_side, 6u);
  EXPECT_EQ(io::mosaic_tiling(320, 320, 25).tiles_per_side, 5u);
  EXPECT_EQ(io::mosaic_tiling(64, 64, 1).tiles_per_side, 1u);
  EXPECT_THROW(io::mosaic_tiling(896, 896, 0), std::runtime_error);
  EXPECT_THROW(io::mosaic_tiling(4, 4, 17), std::runtime_error);
  EXPECT_THROW(io::mosaic_tiling(256, 256, 48), std::runtime_error);

  // 2x2 tiles of 3x2 pixels, 3 slices: pixel value = 100 * tile + 10 * y + x.
  const io::MosaicTiling small = io::mosaic_tiling(6, 4, 3);
  std::vector<float> mosaic(24, -1.0f);
  for (std::size_t tile = 0; tile < 4; ++tile)
    for (std::size_t y = 0; y < 2; ++y)
      for (std::size_t x = 0; x < 3; ++x)
        mosaic[((tile / 2) * 2 + y) * 6 + (tile % 2) * 3 + x] = float(100 * tile + 10 * y + x);
  for (bool reversed : {false, true}) {
    std::vector<float> volume(18, -2.0f);
    io::unpack_mosaic(mosaic.data(), small, reversed, volume.data());
    for (std::size_t k = 0; k < 3; ++k)
      for (std::size_t y = 0; y < 2; ++y)
        for (std::size_t x = 0; x < 3; ++x) {
          const std::size_t slice = reversed ? 2 - k : k;
          EXPECT_EQ(volume[slice * 6 + y * 3 + x], float(100 * k + 10 * y + x)) << reversed << k << y << x;
        }
  }
}

// --- multi-frame layouts ------------------------------------------------------------------

// A 5x4 grey multi-frame file of `frames` frames and SOP class `sop_class`;
// `extra` adds the layout.
void write_multiframe(const fs::path& path, const char* sop_class, const std::string& modality, int frames,
                      const std::function<void(DcmDataset&)>& extra) {
  DcmFileFormat file;
  DcmDataset& d = *file.getDataset();
  put_dicom_string(d, DCM_SOPClassUID, sop_class);
  put_dicom_string(d, DCM_SOPInstanceUID, new_dicom_uid());
  put_dicom_string(d, DCM_StudyInstanceUID, new_dicom_uid());
  put_dicom_string(d, DCM_SeriesInstanceUID, new_dicom_uid());
  put_dicom_string(d, DCM_Modality, modality);
  put_dicom_string(d, DCM_NumberOfFrames, std::to_string(frames));
  put_dicom_string(d, DCM_SamplesPerPixel, "1");
  put_dicom_string(d, DCM_PhotometricInterpretation, "MONOCHROME2");
  ASSERT_TRUE(d.putAndInsertUint16(DCM_Rows, 4).good());
  ASSERT_TRUE(d.putAndInsertUint16(DCM_Columns, 5).good());
  ASSERT_TRUE(d.putAndInsertUint16(DCM_BitsAllocated, 16).good());
  ASSERT_TRUE(d.putAndInsertUint16(DCM_BitsStored, 16).good());
  ASSERT_TRUE(d.putAndInsertUint16(DCM_HighBit, 15).good());
  ASSERT_TRUE(d.putAndInsertUint16(DCM_PixelRepresentation, 0).good());
  std::vector<Uint16> pixels(std::size_t(20 * frames));
  for (std::size_t n = 0; n < pixels.size(); ++n) pixels[n] = Uint16(n * 3 + 1);
  ASSERT_TRUE(
      d.putAndInsertUint16Array(DCM_PixelData, pixels.data(), static_cast<unsigned long>(pixels.size())).good());
  extra(d);
  ASSERT_TRUE(file.saveFile(OFFilename(path.c_str()), EXS_LittleEndianExplicit).good()) << path;
}

// An enhanced MR image of 5x4 pixels: frame k at (0, 0, z[k]), orientation,
// spacing and rescale shared; `per_frame` adds to frame k's groups.
void write_enhanced(const fs::path& path, const std::vector<double>& z,
                    const std::function<void(DcmItem&, int)>& per_frame = {}, int frames = -1,
                    bool shared_rescale = true) {
  write_multiframe(path, UID_EnhancedMRImageStorage, "MR", frames < 0 ? int(z.size()) : frames, [&](DcmDataset& d) {
    DcmItem* shared = nullptr;
    ASSERT_TRUE(d.findOrCreateSequenceItem(DCM_SharedFunctionalGroupsSequence, shared, -2).good());
    DcmItem* measures = nullptr;
    ASSERT_TRUE(shared->findOrCreateSequenceItem(DCM_PixelMeasuresSequence, measures, -2).good());
    put_dicom_string(*measures, DCM_PixelSpacing, "0.8\\0.7");
    put_dicom_string(*measures, DCM_SliceThickness, "2");
    DcmItem* orientation = nullptr;
    ASSERT_TRUE(shared->findOrCreateSequenceItem(DCM_PlaneOrientationSequence, orientation, -2).good());
    put_dicom_string(*orientation, DCM_ImageOrientationPatient, "1\\0\\0\\0\\1\\0");
    if (shared_rescale) {
      DcmItem* rescale = nullptr;
      ASSERT_TRUE(shared->findOrCreateSequenceItem(DCM_PixelValueTransformationSequence, rescale, -2).good());
      put_dicom_string(*rescale, DCM_RescaleSlope, "2");
      put_dicom_string(*rescale, DCM_RescaleIntercept, "-5");
      put_dicom_string(*rescale, DCM_RescaleType, "US");
    }
    for (std::size_t k = 0; k < z.size(); ++k) {
      DcmItem* frame = nullptr;
      ASSERT_TRUE(d.findOrCreateSequenceItem(DCM_PerFrameFunctionalGroupsSequence, frame, -2).good());
      DcmItem* plane = nullptr;
      ASSERT_TRUE(frame->findOrCreateSequenceItem(DCM_PlanePositionSequence, plane, -2).good());
      std::ostringstream position;
      position << "0\\0\\" << z[k];
      put_dicom_string(*plane, DCM_ImagePositionPatient, position.str());
      if (per_frame) per_frame(*frame, int(k));
    }
  });
}

TEST_F(IoMosaic, EnhancedMultiFrameLoadsFrameByFrameOrIsRefusedWithItsName) {
  // One stack, frames written top down: sorted by their own positions.
  const fs::path stack = dir_ / "enhanced_mr.dcm";
  write_enhanced(stack, {4, 2, 0});
  NodeHarness node(bundled(), "io.load_mri");
  node.set_param("path", stack.string());
  node.run();
  const Volume& volume = node.output<Volume>("volume");
  EXPECT_EQ(volume.geometry.size, (std::array<std::size_t, 3>{5, 4, 3}));
  EXPECT_EQ(volume.geometry.spacing, (std::array<double, 3>{0.7, 0.8, 2.0}));
  EXPECT_EQ(volume.geometry.origin, (std::array<double, 3>{0, 0, 0}));
  EXPECT_EQ(volume.geometry.direction, (std::array<double, 9>{1, 0, 0, 0, 1, 0, 0, 0, 1}));
  for (std::size_t k = 0; k < 3; ++k) {
    const std::size_t frame = 2 - k;  // the frame at z = 2k
    for (std::size_t n = 0; n < 20; ++n) {
      ASSERT_EQ(volume.voxels[k * 20 + n], 2.0f * float((frame * 20 + n) * 3 + 1) - 5.0f)
          << "slice " << k << " pixel " << n;
    }
  }

  // One frame: its geometry is in the functional groups too.
  const fs::path single = dir_ / "single.dcm";
  write_enhanced(single, {3});
  NodeHarness one(bundled(), "io.load_mri");
  one.set_param("path", single.string());
  one.run();
  const Volume& slice = one.output<Volume>("volume");
  EXPECT_EQ(slice.geometry.size, (std::array<std::size_t, 3>{5, 4, 1}));
  EXPECT_EQ(slice.geometry.origin, (std::array<double, 3>{0, 0, 3}));
  EXPECT_EQ(slice.geometry.spacing, (std::array<double, 3>{0.7, 0.8, 2.0}));
  EXPECT_EQ(slice.voxels[7], 2.0f * float(7 * 3 + 1) - 5.0f);
  for (const auto& [level, text] : one.log()) EXPECT_NE(level, LogLevel::Warn) << text;

  // Two volumes (e.g. two echoes) interleaved in one file.
  const fs::path echoes = dir_ / "echoes.dcm";
  write_enhanced(echoes, {0, 2, 0, 2});
  const std::string twice = load_error("io.load_mri", echoes);
  expect_contains(twice, "cannot read DICOM file '" + echoes.string() +
                             "': it is an enhanced multi-frame image ('EnhancedMRImageStorage', 4 frames) whose frames "
                             "do not form one regular stack of slices: ");
  expect_contains(twice, "are at the same position (0 mm along the normal)");
  expect_contains(twice, "convert it first, e.g. to NIfTI with dcm2niix");

  // The same rescale given frame by frame.
  const fs::path each = dir_ / "each.dcm";
  write_enhanced(
      each, {0, 2, 4},
      [](DcmItem& frame, int) {
        DcmItem* rescale = nullptr;
        ASSERT_TRUE(frame.findOrCreateSequenceItem(DCM_PixelValueTransformationSequence, rescale, -2).good());
        put_dicom_string(*rescale, DCM_RescaleSlope, "3");
        put_dicom_string(*rescale, DCM_RescaleIntercept, "7");
      },
      -1, false);
  NodeHarness per_frame(bundled(), "io.load_mri");
  per_frame.set_param("path", each.string());
  per_frame.run();
  EXPECT_EQ(per_frame.output<Volume>("volume").voxels[25], 3.0f * float(25 * 3 + 1) + 7.0f);

  // Frames rescaled one by one.
  const fs::path rescaled = dir_ / "rescaled.dcm";
  write_enhanced(rescaled, {0, 2, 4}, [](DcmItem& frame, int k) {
    DcmItem* rescale = nullptr;
    ASSERT_TRUE(frame.findOrCreateSequenceItem(DCM_PixelValueTransformationSequence, rescale, -2).good());
    put_dicom_string(*rescale, DCM_RescaleSlope, std::to_string(1 + k));
    put_dicom_string(*rescale, DCM_RescaleIntercept, "0");
  });
  expect_contains(load_error("io.load_mri", rescaled),
                  "('EnhancedMRImageStorage', 3 frames) whose frames are rescaled differently (frame 2 has another "
                  "RescaleSlope/RescaleIntercept than frame 1)");

  // Fewer per-frame groups than frames.
  const fs::path short_groups = dir_ / "short.dcm";
  write_enhanced(short_groups, {0, 2}, {}, 3);
  expect_contains(load_error("io.load_image", short_groups),
                  "('EnhancedMRImageStorage', 3 frames) whose frames cannot be placed: its per-frame functional "
                  "groups (5200,9230) describe 2 frames, not its 3");
}

TEST_F(IoMosaic, MultiFrameFilesWhoseFramesAreNotSlicesAreRefusedWithTheirName) {
  // An ultrasound cine: its frames are time points.
  const fs::path cine = dir_ / "cine.dcm";
  write_multiframe(cine, UID_UltrasoundMultiframeImageStorage, "US", 4, [](DcmDataset& d) {
    ASSERT_TRUE(d.putAndInsertTagKey(DCM_FrameIncrementPointer, DCM_FrameTime).good());
    put_dicom_string(d, DCM_FrameTime, "33.3");
  });
  expect_contains(load_error("io.load_image", cine),
                  "cannot read DICOM file '" + cine.string() +
                      "': it is a multi-frame image ('UltrasoundMultiframeImageStorage', 4 frames) whose frames are "
                      "not the slices of one volume: its FrameIncrementPointer (0028,0009) steps through FrameTime "
                      "(0018,1063)");
  const fs::path unsaid = dir_ / "unsaid.dcm";
  write_multiframe(unsaid, UID_MultiframeGrayscaleWordSecondaryCaptureImageStorage, "OT", 2, [](DcmDataset&) {});
  expect_contains(load_error("io.load_image", unsaid), "its FrameIncrementPointer (0028,0009) is missing");

  // A multi-frame file whose frames are slices still loads, as before.
  const fs::path nm = dir_ / "nm.dcm";
  write_multiframe(nm, UID_NuclearMedicineImageStorage, "NM", 3, [](DcmDataset& d) {
    ASSERT_TRUE(d.putAndInsertTagKey(DCM_FrameIncrementPointer, DCM_SliceVector).good());
    ASSERT_TRUE(d.putAndInsertString(DCM_SliceVector, "1\\2\\3").good());
    put_dicom_string(d, DCM_PixelSpacing, "2\\2");
    put_dicom_string(d, DCM_SpacingBetweenSlices, "2");
  });
  NodeHarness node(bundled(), "io.load_image");
  node.set_param("path", nm.string());
  node.run();
  const Volume& volume = node.output<Volume>("volume");
  EXPECT_EQ(volume.geometry.size, (std::array<std::size_t, 3>{5, 4, 3}));
  for (std::size_t n = 0; n < 60; ++n) ASSERT_EQ(volume.voxels[n], float(n * 3 + 1)) << n;
}

}  // namespace
}  // namespace fusionflow
