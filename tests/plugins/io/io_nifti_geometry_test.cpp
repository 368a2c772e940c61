// io.* loaders on NIfTI geometry ITK 5.2 does not handle (sheared sforms,
// qform/sform disagreement), 4D files (volume_index) and the voxel ceiling
// (max_voxels). The files are written, and the expected geometry, position
// errors and voxels computed, by nibabel and numpy (Debian's python3-nibabel
// and python3-numpy): an implementation independent of ITK and niftilib.
#include <gtest/gtest.h>

#include "test_support.hpp"

#include <fusionflow/payload_types.hpp>
#include <fusionflow/plugin_loader.hpp>
#include <fusionflow/testing.hpp>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <sstream>

namespace fusionflow {
namespace {
namespace fs = std::filesystem;
using testing::NodeHarness;

const NodeRegistry& bundled() { return testing::bundled_plugins(); }

class IoNiftiGeometry : public ::testing::Test {
 protected:
  void SetUp() override { dir_ = testing::fresh_temp_directory("io-nifti-geometry"); }
  void TearDown() override { fs::remove_all(dir_); }

  // Runs a Python script (nibabel, numpy) with `arguments`; returns what it
  // printed, split into whitespace-separated numbers (the test fails if it
  // does not run).
  std::vector<double> python(const std::string& script, const std::string& arguments) {
    const fs::path file = dir_ / "script.py";
    std::ofstream(file) << "import sys, itertools\nimport numpy as np\nimport nibabel as nib\n" << script;
    const testing::CommandOutput result =
        testing::run_command(std::string(PYDICOM_PYTHON) + " " + file.string() + " " + arguments);
    if (result.exit_code != 0) {
      ADD_FAILURE() << "the script failed (needs Debian's python3-nibabel and python3-numpy):\n" << result.text;
      return {};
    }
    std::istringstream in(result.text);
    std::vector<double> numbers;
    double value = 0;
    while (in >> value) numbers.push_back(value);
    return numbers;
  }

  fs::path dir_;
};

// Python helpers: a random float32 or int16 image saved with given affines,
// and what nibabel/numpy make of it.
const char* kWriteImage = R"(
def save(path, shape, sform, sform_code, qform=None, qform_code=0, dtype='float32', slope=None, nan_at=None):
    rng = np.random.default_rng(7)
    if dtype == 'int16':
        data = rng.integers(-2000, 3000, size=shape).astype(np.int16)
    else:
        data = rng.uniform(-1000, 3000, size=shape).astype(np.float32)
        if nan_at is not None:
            data[nan_at] = np.nan
    image = nib.Nifti1Image(data, None)
    image.set_sform(np.array(sform, dtype=float), code=sform_code)
    if qform is None:
        image.set_qform(None, code=0)
    else:
        image.set_qform(np.array(qform, dtype=float), code=qform_code)
    if slope is not None:
        image.header.set_slope_inter(slope[0], slope[1])
    nib.save(image, path)

# The geometry fusionflow is expected to give a sheared affine, computed with
# numpy's SVD: direction R = U V^T of A = U S V^T, spacing = column norms
# (nibabel's zooms), LPS; and the largest displacement over the corner voxels.
def polar(affine, shape):
    A = affine[:3, :3]
    U, s, Vt = np.linalg.svd(A)
    R = U @ Vt
    zooms = np.sqrt((A * A).sum(axis=0))
    corners = itertools.product(*[(0, n - 1) for n in shape[:3]])
    error = max(np.linalg.norm((A - R * zooms) @ np.array(c, dtype=float)) for c in corners)
    flip = np.diag([-1.0, -1.0, 1.0])
    return error, flip @ R, zooms, flip @ affine[:3, 3]

def print_all(*values):
    print(' '.join(repr(float(v)) for v in np.concatenate([np.ravel(np.asarray(v, dtype=float)) for v in values])))
)";

std::string warnings_of(const NodeHarness& node) {
  std::string text;
  for (const auto& [level, message] : node.log()) {
    if (level == LogLevel::Warn) text += message + "\n";
  }
  return text;
}

// Runs io.load_image on `path` with `params`; returns the error message, or
// "" when it loads.
std::string load_error(const fs::path& path, const std::vector<std::pair<std::string, ParamValue>>& params = {}) {
  NodeHarness node(bundled(), "io.load_image");
  node.set_param("path", path.string());
  for (const auto& [name, value] : params) node.set_param(name, value);
  try {
    node.run();
  } catch (const std::exception& error) {
    return error.what();
  }
  return {};
}

// The number that follows `marker` in `text` (NaN if absent).
double number_after(const std::string& text, const std::string& marker) {
  const auto at = text.find(marker);
  if (at == std::string::npos) return std::nan("");
  return std::strtod(text.c_str() + at + marker.size(), nullptr);
}

// A sheared sform, as registration or diffusion tools write them: 2 mm
// voxels, a rotation about z, and shear terms of about 1%.
const char* kShearedAffine =
    "[[1.985, -0.235, 0.02, -80.5], [0.2438, 1.985, 0.01, 60.25], [0.0, 0.02, 3.0, -20.0], "
    "[0, 0, 0, 1]]";

TEST_F(IoNiftiGeometry, ShearedSformWithoutQformLoadsWithTheNearestOrthonormalGeometryAndTheErrorStated) {
  for (const std::string name : {"sheared.nii", "sheared.nii.gz"}) {
    const fs::path path = dir_ / name;
    // int16 with a slope: voxels as nibabel scales them, in float32.
    const std::vector<double> expected = python(std::string(kWriteImage) + R"(
affine = np.array()" + kShearedAffine + R"()
save(sys.argv[1], (24, 20, 10), affine, 2, dtype='int16', slope=(0.5, -3.0))
image = nib.load(sys.argv[1])
error, direction, zooms, origin = polar(image.affine, image.shape)
print_all([error], direction, zooms, origin, image.get_fdata().astype(np.float32).ravel(order='F'))
)",
                                                path.string());
    ASSERT_EQ(expected.size(), 1u + 9 + 3 + 3 + 24 * 20 * 10);
    NodeHarness node(bundled(), "io.load_image");
    node.set_param("path", path.string());
    node.run();
    const Volume& volume = node.output<Volume>("volume");
    const Geometry& g = volume.geometry;
    EXPECT_EQ(g.size, (std::array<std::size_t, 3>{24, 20, 10}));
    for (int n = 0; n < 9; ++n) EXPECT_NEAR(g.direction[n], expected[1 + n], 1e-9) << "direction " << n;
    for (int n = 0; n < 3; ++n) {
      EXPECT_NEAR(g.spacing[n], expected[10 + n], 1e-9) << "spacing " << n;
      EXPECT_NEAR(g.origin[n], expected[13 + n], 1e-9) << "origin " << n;
    }
    ASSERT_EQ(volume.voxels.size(), 24u * 20 * 10);
    for (std::size_t n = 0; n < volume.voxels.size(); ++n) {
      ASSERT_EQ(volume.voxels[n], static_cast<float>(expected[16 + n])) << "voxel " << n;
    }
    const double error = expected[0];
    ASSERT_GT(error, 0.05);  // a real shear, far above float noise
    ASSERT_LT(error, 1.0);   // within the default max_shear_error_mm
    const std::string warnings = warnings_of(node);
    EXPECT_NE(warnings.find("sform (code 2: aligned) is sheared"), std::string::npos) << warnings;
    EXPECT_NEAR(number_after(warnings, "places voxels up to "), error, 1e-4) << warnings;
    EXPECT_NEAR(std::stod(volume.metadata.extra.at("nifti.shear_error_mm")), error, 1e-4);
    EXPECT_EQ(volume.metadata.extra.at("nifti.geometry"),
              "sform (code 2: aligned), sheared: nearest orthonormal direction");
  }
}

TEST_F(IoNiftiGeometry, ShearBeyondMaxShearErrorIsRefusedWithTheError) {
  const fs::path path = dir_ / "sheared.nii";
  const std::vector<double> expected = python(std::string(kWriteImage) + R"(
affine = np.array([[1.0, 0.2, 0.0, 0.0], [0.0, 1.0, 0.0, 0.0], [0.0, 0.0, 1.0, 0.0], [0, 0, 0, 1]])
save(sys.argv[1], (30, 30, 4), affine, 1)
image = nib.load(sys.argv[1])
print_all([polar(image.affine, image.shape)[0]])
)",
                                              path.string());
  ASSERT_EQ(expected.size(), 1u);
  ASSERT_GT(expected[0], 1.0);  // beyond the default tolerance
  std::string message = load_error(path);
  EXPECT_NE(message.find(path.string()), std::string::npos) << message;
  EXPECT_NE(message.find("more than max_shear_error_mm (1 mm)"), std::string::npos) << message;
  EXPECT_NEAR(number_after(message, "by up to "), expected[0], 1e-4) << message;
  // Raising the tolerance loads it; a tolerance below a smaller error refuses.
  EXPECT_EQ(load_error(path, {{"max_shear_error_mm", ParamValue(expected[0] + 0.01)}}), "");
  message = load_error(path, {{"max_shear_error_mm", ParamValue(expected[0] - 0.01)}});
  EXPECT_NE(message.find("max_shear_error_mm"), std::string::npos) << message;
}

// Integer NIfTI data with a scale: ITK reports it as float (4 bytes a voxel),
// the file holds 2 bytes a voxel; it loads, scaled as nibabel scales it.
TEST_F(IoNiftiGeometry, ScaledInt16LoadsWithItsScale) {
  for (const std::string name : {"scaled.nii", "scaled.nii.gz"}) {
    const fs::path path = dir_ / name;
    const std::vector<double> expected = python(std::string(kWriteImage) + R"(
affine = np.array([[0.8, 0, 0, -10], [0, 0.9, 0, 20], [0, 0, 2.5, 30], [0, 0, 0, 1]])
save(sys.argv[1], (9, 8, 7), affine, 1, qform=affine, qform_code=1, dtype='int16', slope=(0.25, 7.0))
print_all(nib.load(sys.argv[1]).get_fdata().astype(np.float32).ravel(order='F'))
)",
                                                path.string());
    ASSERT_EQ(expected.size(), 9u * 8 * 7);
    NodeHarness node(bundled(), "io.load_image");
    node.set_param("path", path.string());
    node.run();
    const Volume& volume = node.output<Volume>("volume");
    ASSERT_EQ(volume.voxels.size(), expected.size());
    for (std::size_t n = 0; n < expected.size(); ++n) {
      ASSERT_EQ(volume.voxels[n], static_cast<float>(expected[n])) << name << " voxel " << n;
    }
  }
}

// ITK 5.2 also refuses an orthonormal sform in metres without a qform (its
// scale check compares pixdim converted to mm with the sform in metres): read
// from the sform, converted to mm, with nothing to warn about.
TEST_F(IoNiftiGeometry, OrthonormalSformInMetresIsReadInMillimetres) {
  const fs::path path = dir_ / "metres.nii";
  python(std::string(kWriteImage) + R"(
affine = np.array([[0.001, 0, 0, 0.01], [0, 0.001, 0, 0.02], [0, 0, 0.002, 0.03], [0, 0, 0, 1]])
save(sys.argv[1], (4, 4, 3), affine, 2)
image = nib.load(sys.argv[1])
image.header.set_xyzt_units('meter')
nib.save(image, sys.argv[1])
)",
         path.string());
  NodeHarness node(bundled(), "io.load_image");
  node.set_param("path", path.string());
  node.run();
  const Volume& volume = node.output<Volume>("volume");
  const std::array<double, 3> spacing{1, 1, 2}, origin{-10, -20, 30};  // LPS mm
  for (int n = 0; n < 3; ++n) {
    EXPECT_NEAR(volume.geometry.spacing[n], spacing[n], 1e-6) << n;
    EXPECT_NEAR(volume.geometry.origin[n], origin[n], 1e-5) << n;
  }
  EXPECT_EQ(volume.geometry.direction, (std::array<double, 9>{-1, 0, 0, 0, -1, 0, 0, 0, 1}));
  EXPECT_EQ(volume.metadata.extra.at("nifti.geometry"), "sform (code 2: aligned)");
  EXPECT_EQ(warnings_of(node), "");
}

TEST_F(IoNiftiGeometry, QformSformDisagreementIsReportedAndTheTransformUsedIsRecorded) {
  // Both orthonormal; the sform 3 mm (along x) and 4 mm (along z) from the
  // qform: 5 mm everywhere. ITK 5.2 takes the qform unless the sform's code
  // is 1 (scanner); the volume's origin shows which it took.
  const char* script = R"(
q = np.array([[2.0, 0, 0, -50.0], [0, 2.0, 0, 30.0], [0, 0, 2.5, 10.0], [0, 0, 0, 1]])
s = q.copy(); s[0, 3] += 3.0; s[2, 3] += 4.0
save(sys.argv[1], (8, 7, 6), s, int(sys.argv[2]), qform=q, qform_code=1)
)";
  struct Case {
    int sform_code;
    const char* used;
    std::array<double, 3> origin;  // LPS
  };
  for (const Case& c : {Case{2, "qform (code 1: scanner)", {50.0, -30.0, 10.0}},
                        Case{1, "sform (code 1: scanner)", {47.0, -30.0, 14.0}}}) {
    const fs::path path = dir_ / ("disagree" + std::to_string(c.sform_code) + ".nii");
    python(std::string(kWriteImage) + script, path.string() + " " + std::to_string(c.sform_code));
    NodeHarness node(bundled(), "io.load_image");
    node.set_param("path", path.string());
    node.run();
    const Volume& volume = node.output<Volume>("volume");
    for (int n = 0; n < 3; ++n) EXPECT_NEAR(volume.geometry.origin[n], c.origin[n], 1e-5) << c.used;
    EXPECT_EQ(volume.metadata.extra.at("nifti.geometry"), c.used);
    EXPECT_NEAR(std::stod(volume.metadata.extra.at("nifti.qform_sform_difference_mm")), 5.0, 1e-4);
    const std::string warnings = warnings_of(node);
    const std::string sform = "sform (code " + std::to_string(c.sform_code) + ": ";
    EXPECT_NE(warnings.find("qform (code 1: scanner) and " + sform), std::string::npos) << warnings;
    EXPECT_NEAR(number_after(warnings, "disagree by up to "), 5.0, 1e-4) << warnings;
    EXPECT_NE(warnings.find(std::string("taken from the ") + c.used), std::string::npos) << warnings;
  }
  // A file whose qform and sform agree (as io.write and ITK write them): no
  // warning, and the transform used is still recorded.
  Volume plain;
  plain.geometry.size = {4, 3, 2};
  plain.geometry.origin = {1.5, -2.0, 3.0};
  plain.voxels.assign(24, 1.0f);
  NodeHarness write(bundled(), "io.write");
  write.set_input("volume", plain).set_param("path", (dir_ / "plain.nii").string());
  write.run();
  NodeHarness node(bundled(), "io.load_image");
  node.set_param("path", (dir_ / "plain.nii").string());
  node.run();
  EXPECT_EQ(warnings_of(node), "");
  EXPECT_EQ(node.output<Volume>("volume").metadata.extra.at("nifti.geometry"), "sform (code 1: scanner)");
  EXPECT_EQ(node.output<Volume>("volume").metadata.extra.count("nifti.qform_sform_difference_mm"), 0u);
}

// 4D NIfTI written by nibabel; each volume also saved alone as a 3D file.
const char* kWrite4d = R"(
affine = np.array(eval(sys.argv[3]))
save(sys.argv[1], (7, 6, 5, 4), affine, 1, qform=None if sys.argv[4] == 'sheared' else affine,
     qform_code=0 if sys.argv[4] == 'sheared' else 1, nan_at=(1, 2, 3, 2))
image = nib.load(sys.argv[1])
data = image.get_fdata(dtype=np.float32)
for t in range(4):
    single = nib.Nifti1Image(data[..., t], None, image.header.copy())
    single.set_sform(image.get_sform(), code=1)
    single.set_qform(None if sys.argv[4] == 'sheared' else image.get_qform(), code=0 if sys.argv[4] == 'sheared' else 1)
    nib.save(single, sys.argv[2] + str(t) + '.nii')
)";

TEST_F(IoNiftiGeometry, VolumeIndexSelectsOneVolumeOfA4dFile) {
  const std::string oblique = "[[0, -1.5, 0, 10], [1.5, 0, 0, -20], [0, 0, 2.5, 5], [0, 0, 0, 1]]";
  for (const std::string kind : {"oblique", "sheared"}) {
    for (const std::string suffix : {".nii", ".nii.gz"}) {
      const fs::path path = dir_ / (kind + "4d" + suffix);
      const std::string affine = kind == "sheared" ? kShearedAffine : oblique.c_str();
      python(std::string(kWriteImage) + kWrite4d,
             path.string() + " " + (dir_ / (kind + "3d")).string() + " \"" + affine + "\" " + kind);
      std::string message = load_error(path);
      EXPECT_NE(message.find("a 4D image (7x6x5x4), but a 3D volume is expected: it holds 4 volumes"),
                std::string::npos)
          << message;
      EXPECT_NE(message.find("set volume_index (0 to 3)"), std::string::npos) << message;
      message = load_error(path, {{"volume_index", ParamValue(std::int64_t{4})}});
      EXPECT_NE(message.find("volume_index 4 is out of range: the file holds 4 volumes"), std::string::npos) << message;
      // Volume 2 holds a NaN (at voxel (1, 2, 3)): reported, not hidden.
      message = load_error(path, {{"volume_index", ParamValue(std::int64_t{2})}});
      EXPECT_NE(message.find("1 non-finite voxel (1 NaN, 0 +Inf, 0 -Inf; the first at voxel (1, 2, 3))"),
                std::string::npos)
          << kind << suffix << ": " << message;
      for (std::int64_t t = 0; t < 4; ++t) {
        NodeHarness node(bundled(), "io.load_image");
        node.set_param("path", path.string()).set_param("volume_index", ParamValue(t));
        node.set_param("nonfinite", "replace").set_param("nonfinite_value", ParamValue(-7.0));
        node.run();
        const Volume& volume = node.output<Volume>("volume");
        NodeHarness single(bundled(), "io.load_image");
        single.set_param("path", (dir_ / (kind + "3d" + std::to_string(t) + ".nii")).string());
        single.set_param("nonfinite", "replace").set_param("nonfinite_value", ParamValue(-7.0));
        single.run();
        const Volume& alone = single.output<Volume>("volume");
        EXPECT_TRUE(volume.geometry.same_grid(alone.geometry, 1e-12)) << kind << suffix << " volume " << t;
        EXPECT_EQ(volume.voxels, alone.voxels) << kind << suffix << " volume " << t;
        EXPECT_EQ(volume.metadata.extra.at("io.volume_index"), std::to_string(t) + " of 4");
        EXPECT_EQ(volume.metadata.extra.count("io.nonfinite_replaced"), t == 2 ? 1u : 0u);
      }
    }
  }
}

TEST_F(IoNiftiGeometry, VolumeIndexSelectsOneVolumeOf4dMetaImageAndNrrd) {
  // 3x2x2 voxels, 3 volumes; voxel value = 100 * volume + index.
  std::vector<float> values(3 * 2 * 2 * 3);
  for (std::size_t n = 0; n < values.size(); ++n) values[n] = float(100 * (n / 12) + n % 12);
  const std::string data(reinterpret_cast<const char*>(values.data()), values.size() * sizeof(float));
  std::ofstream(dir_ / "series.mha", std::ios::binary)
      << "ObjectType = Image\nNDims = 4\nBinaryData = True\nBinaryDataByteOrderMSB = False\n"
         "ElementSpacing = 1.5 2 2.5 1\nOffset = 10 20 30 0\nDimSize = 3 2 2 3\nElementType = MET_FLOAT\n"
         "ElementDataFile = LOCAL\n"
      << data;
  std::ofstream(dir_ / "series.nrrd", std::ios::binary)
      << "NRRD0004\ntype: float\ndimension: 4\nsizes: 3 2 2 3\nspacings: 1.5 2 2.5 1\n"
         "axis mins: 10 20 30 0\ncenters: node node node node\nendian: little\nencoding: raw\n\n"
      << data;
  for (const char* name : {"series.mha", "series.nrrd"}) {
    EXPECT_NE(load_error(dir_ / name)
                  .find("it holds 3 volumes (e.g. time frames or diffusion directions); set volume_index (0 to 2)"),
              std::string::npos)
        << name << ": " << load_error(dir_ / name);
    for (std::int64_t t = 0; t < 3; ++t) {
      NodeHarness node(bundled(), "io.load_image");
      node.set_param("path", (dir_ / name).string()).set_param("volume_index", ParamValue(t));
      node.run();
      const Volume& volume = node.output<Volume>("volume");
      EXPECT_EQ(volume.geometry.size, (std::array<std::size_t, 3>{3, 2, 2})) << name;
      EXPECT_EQ(volume.geometry.spacing, (std::array<double, 3>{1.5, 2, 2.5})) << name;
      EXPECT_EQ(volume.geometry.origin, (std::array<double, 3>{10, 20, 30})) << name;
      const std::vector<float> expected(values.begin() + t * 12, values.begin() + (t + 1) * 12);
      EXPECT_EQ(volume.voxels, expected) << name << " volume " << t;
    }
  }
  // max_voxels counts what is allocated: one volume of the MetaImage, which
  // ITK streams, but the whole NRRD, which ITK reads whole to extract one.
  auto load_with_ceiling = [&](const char* name, std::int64_t ceiling) {
    NodeHarness node(bundled(), "io.load_image");
    node.set_param("path", (dir_ / name).string()).set_param("volume_index", ParamValue(std::int64_t{1}));
    node.set_param("max_voxels", ParamValue(ceiling));
    try {
      node.run();
    } catch (const std::exception& error) {
      return std::string(error.what());
    }
    return std::string();
  };
  EXPECT_EQ(load_with_ceiling("series.mha", 12), "");
  EXPECT_NE(load_with_ceiling("series.nrrd", 12)
                .find("more than the limit of 12 voxels (parameter max_voxels) (ITK "
                      "reads all volumes of this file to extract one)"),
            std::string::npos)
      << load_with_ceiling("series.nrrd", 12);
  EXPECT_EQ(load_with_ceiling("series.nrrd", 36), "");
}

TEST_F(IoNiftiGeometry, MaxVoxelsIsCheckedFromTheHeaderBeforeReading) {
  const fs::path path = dir_ / "ten.nii.gz";
  const fs::path series = dir_ / "series.nii";
  python(std::string(kWriteImage) + R"(
affine = np.diag([1.0, 1.0, 1.0, 1.0])
save(sys.argv[1], (10, 10, 10), affine, 1, qform=affine, qform_code=1)
save(sys.argv[2], (10, 10, 10, 3), affine, 1, qform=affine, qform_code=1)
)",
         path.string() + " " + series.string());
  std::string message = load_error(path, {{"max_voxels", ParamValue(std::int64_t{999})}});
  EXPECT_NE(message.find("the header announces 10x10x10 voxels, more than the limit of 999 voxels (parameter "
                         "max_voxels)"),
            std::string::npos)
      << message;
  EXPECT_EQ(load_error(path, {{"max_voxels", ParamValue(std::int64_t{1000})}}), "");
  // A 4D NIfTI: only the selected volume is allocated, so it is what counts.
  EXPECT_EQ(load_error(series,
                       {{"max_voxels", ParamValue(std::int64_t{1000})}, {"volume_index", ParamValue(std::int64_t{1})}}),
            "");
  message = load_error(series,
                       {{"max_voxels", ParamValue(std::int64_t{999})}, {"volume_index", ParamValue(std::int64_t{1})}});
  EXPECT_NE(message.find("more than the limit of 999 voxels"), std::string::npos) << message;
  // DICOM (pydicom's CT_small.dcm, 128x128) goes by the same parameter.
  NodeHarness node(bundled(), "io.load_ct");
  node.set_param("path", (fs::path(PYDICOM_TEST_FILES) / "CT_small.dcm").string());
  node.set_param("max_voxels", ParamValue(std::int64_t{16383}));
  try {
    node.run();
    ADD_FAILURE() << "CT_small.dcm loaded despite max_voxels";
  } catch (const std::exception& error) {
    EXPECT_NE(std::string(error.what()).find("exceed the limit of 16383 voxels (parameter max_voxels)"),
              std::string::npos)
        << error.what();
  }
}

}  // namespace
}  // namespace fusionflow
