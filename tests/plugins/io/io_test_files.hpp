// Image files made byte by byte or with the format's reference library
// (zlib, libpng, DCMTK), independent of the readers under test: what the io
// suites write to test them.
#pragma once

#include <dcmtk/config/osconfig.h>
#include <dcmtk/dcmdata/dcdatset.h>
#include <dcmtk/dcmdata/dcitem.h>
#include <png.h>

#include <fusionflow/testing.hpp>
#include <fusionflow/payload_types.hpp>

#include <array>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

namespace fusionflow::io_test {

// Removes the file first: truncating an existing file makes ext4 flush it
// (auto_da_alloc), which made truncation sweeps 10x slower.
void write_bytes(const std::filesystem::path& path, const std::string& bytes);
std::string read_bytes(const std::filesystem::path& path);
std::string gzip(const std::string& bytes);
std::string floats(const std::vector<float>& values);

// Runs a node that must fail and returns its error message.
std::string run_error(testing::NodeHarness& node);

// Runs the bundled loader `type` on `path` with `params` and returns its volume.
using NodeParams = std::vector<std::pair<std::string, ParamValue>>;
Volume load_volume(const std::string& type, const std::filesystem::path& path, const NodeParams& params = {});

// A NIfTI-1 single file (.nii) written field by field. `dims` are dim[1..];
// without sform/qform codes the file has neither (ITK then uses pixdim).
struct NiftiFields {
  std::vector<std::int16_t> dims;
  std::int16_t datatype = 16;  // float32
  std::int16_t bitpix = 32;
  std::array<float, 3> pixdim{1, 1, 1};
  float vox_offset = 352;
  float scl_slope = 1, scl_inter = 0;
  std::int16_t qform_code = 0, sform_code = 0;
  std::array<float, 3> quatern_bcd{0, 0, 0}, qoffset{0, 0, 0};
  float qfac = 1;
  std::array<std::array<float, 4>, 3> srow{{{1, 0, 0, 0}, {0, 1, 0, 0}, {0, 0, 1, 0}}};
};
std::string nifti_file(const NiftiFields& fields, const std::string& data);
// The shorthand most cases need: no transform codes, unit pixdim.
std::string nifti_file(std::vector<std::int16_t> dims, std::int16_t datatype, std::int16_t bitpix,
                       const std::string& data);

std::string meta_header(const std::string& dims, const std::string& element, const std::string& extra = "",
                        const std::string& data_file = "LOCAL");

// A PNG written with libpng. `samples` are the stored values, row-major,
// png_channels(color_type) per pixel (palette images: indices).
struct PngPicture {
  std::uint32_t width = 0, height = 0;
  int bit_depth = 8;
  int color_type = PNG_COLOR_TYPE_GRAY;
  bool interlaced = false;
  std::vector<std::uint16_t> samples;
  std::vector<png_color> palette;
  std::vector<png_byte> palette_alpha;  // tRNS of a palette image
  bool transparent_colour = false;      // tRNS of a grey or RGB image
  png_color_16 transparent{};
  bool significant = false;  // sBIT
  png_color_8 significant_bits{};
};
int png_channels(int color_type);
void write_png(const std::filesystem::path& path, const PngPicture& picture);
// A picture whose samples follow a fixed pseudo-random sequence below 2^bit_depth.
PngPicture png_picture(std::uint32_t width, std::uint32_t height, int color_type, int bit_depth, unsigned seed = 1);

// One DICOM slice, written with DCMTK; patient identifiers are fixed fake
// values that the privacy tests look for.
struct DicomSlice {
  std::string modality = "CT";
  std::string series_uid;
  std::string description = "test series";
  std::array<double, 3> position{0, 0, 0};
  std::array<double, 6> orientation{1, 0, 0, 0, 1, 0};
  std::array<double, 2> pixel_spacing{0.8, 0.7};  // between rows, between columns
  Uint16 rows = 4, columns = 5;
  std::vector<Sint16> stored;  // rows x columns, row by row
  double slope = 1.0, intercept = 0.0;
  std::function<void(DcmDataset&)> extra;
};
std::string dicom_number(double value);
std::string new_dicom_uid();
void put_dicom_string(DcmItem& item, const DcmTagKey& tag, const std::string& value);
void write_dicom_slice(const std::filesystem::path& path, const DicomSlice& slice);
std::vector<Sint16> dicom_pattern(std::size_t count, int seed);
// A series of `count` parallel slices along the normal of `orientation`.
std::vector<DicomSlice> dicom_series(const std::string& modality, const std::string& description, int count,
                                     std::array<double, 6> orientation = {1, 0, 0, 0, 1, 0}, double spacing = 2.5);
// Writes the slices under names that do not follow their positions.
void write_dicom_series(const std::filesystem::path& dir, const std::vector<DicomSlice>& series,
                        const std::string& prefix = "img");

}  // namespace fusionflow::io_test
