#include "io_test_files.hpp"

#include "test_support.hpp"

#include <gtest/gtest.h>

#include <dcmtk/dcmdata/dcdeftag.h>
#include <dcmtk/dcmdata/dcfilefo.h>
#include <dcmtk/dcmdata/dcuid.h>
#include <zlib.h>

#include <cstdio>
#include <cstring>
#include <fstream>
#include <sstream>

namespace fusionflow::io_test {
namespace fs = std::filesystem;

void write_bytes(const fs::path& path, const std::string& bytes) {
  fs::remove(path);
  std::ofstream out(path, std::ios::binary);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

std::string read_bytes(const fs::path& path) { return testing::read_file(path); }

std::string gzip(const std::string& bytes) {
  z_stream stream{};
  EXPECT_EQ(deflateInit2(&stream, 6, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY), Z_OK);
  std::string out(deflateBound(&stream, bytes.size()) + 64, '\0');
  stream.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(bytes.data()));
  stream.avail_in = static_cast<uInt>(bytes.size());
  stream.next_out = reinterpret_cast<Bytef*>(out.data());
  stream.avail_out = static_cast<uInt>(out.size());
  EXPECT_EQ(deflate(&stream, Z_FINISH), Z_STREAM_END);
  out.resize(stream.total_out);
  deflateEnd(&stream);
  return out;
}

std::string run_error(testing::NodeHarness& node) {
  try {
    node.run();
  } catch (const std::exception& error) {
    return error.what();
  }
  ADD_FAILURE() << "the node did not fail";
  return {};
}

Volume load_volume(const std::string& type, const fs::path& path, const NodeParams& params) {
  testing::NodeHarness node(testing::bundled_plugins(), type);
  node.set_param("path", path.string());
  for (const auto& [name, value] : params) node.set_param(name, value);
  node.run();
  return node.output<Volume>("volume");
}

std::string floats(const std::vector<float>& values) {
  return std::string(reinterpret_cast<const char*>(values.data()), values.size() * sizeof(float));
}

// Offsets of the NIfTI-1 header (nifti1.h), written by hand so that the
// files do not depend on the library the reader uses.
std::string nifti_file(const NiftiFields& f, const std::string& data) {
  std::string header(352, '\0');
  auto put = [&](std::size_t offset, const void* value, std::size_t size) {
    std::memcpy(&header[offset], value, size);
  };
  const std::int32_t sizeof_hdr = 348;
  put(0, &sizeof_hdr, 4);
  std::int16_t dim[8] = {static_cast<std::int16_t>(f.dims.size()), 1, 1, 1, 1, 1, 1, 1};
  for (std::size_t n = 0; n < f.dims.size() && n < 7; ++n) dim[n + 1] = f.dims[n];
  put(40, dim, sizeof dim);
  put(70, &f.datatype, 2);
  put(72, &f.bitpix, 2);
  const float pixdim[8] = {f.qfac, f.pixdim[0], f.pixdim[1], f.pixdim[2], 1, 1, 1, 1};
  put(76, pixdim, sizeof pixdim);
  put(108, &f.vox_offset, 4);
  put(112, &f.scl_slope, 4);
  put(116, &f.scl_inter, 4);
  put(252, &f.qform_code, 2);
  put(254, &f.sform_code, 2);
  put(256, f.quatern_bcd.data(), 12);
  put(268, f.qoffset.data(), 12);
  for (int row = 0; row < 3; ++row) put(280 + 16 * row, f.srow[row].data(), 16);
  put(344, "n+1\0", 4);
  return header + data;
}

std::string nifti_file(std::vector<std::int16_t> dims, std::int16_t datatype, std::int16_t bitpix,
                       const std::string& data) {
  NiftiFields fields;
  fields.dims = std::move(dims);
  fields.datatype = datatype;
  fields.bitpix = bitpix;
  return nifti_file(fields, data);
}

std::string meta_header(const std::string& dims, const std::string& element, const std::string& extra,
                        const std::string& data_file) {
  return "ObjectType = Image\nNDims = 3\nBinaryData = True\nBinaryDataByteOrderMSB = False\n" + extra +
         "DimSize = " + dims + "\nElementType = " + element + "\nElementDataFile = " + data_file + "\n";
}

int png_channels(int color_type) {
  switch (color_type) {
    case PNG_COLOR_TYPE_GRAY_ALPHA: return 2;
    case PNG_COLOR_TYPE_RGB: return 3;
    case PNG_COLOR_TYPE_RGB_ALPHA: return 4;
    default: return 1;
  }
}

namespace {

// All libpng calls of the writer; libpng's errors longjmp back here, so
// nothing with a destructor lives in this function.
bool write_png_file(std::FILE* file, const PngPicture* picture, png_bytepp rows) {
  png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, nullptr, nullptr, nullptr);
  if (png == nullptr) return false;
  png_infop info = png_create_info_struct(png);
  if (info == nullptr || setjmp(png_jmpbuf(png))) {
    png_destroy_write_struct(&png, &info);
    return false;
  }
  png_init_io(png, file);
  png_set_IHDR(png, info, picture->width, picture->height, picture->bit_depth, picture->color_type,
               picture->interlaced ? PNG_INTERLACE_ADAM7 : PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT,
               PNG_FILTER_TYPE_DEFAULT);
  if (!picture->palette.empty()) {
    png_set_PLTE(png, info, picture->palette.data(), static_cast<int>(picture->palette.size()));
  }
  if (!picture->palette_alpha.empty()) {
    png_set_tRNS(png, info, picture->palette_alpha.data(), static_cast<int>(picture->palette_alpha.size()), nullptr);
  }
  if (picture->transparent_colour) png_set_tRNS(png, info, nullptr, 0, &picture->transparent);
  if (picture->significant) png_set_sBIT(png, info, &picture->significant_bits);
  png_write_info(png, info);
  png_set_interlace_handling(png);
  png_write_image(png, rows);
  png_write_end(png, nullptr);
  png_destroy_write_struct(&png, &info);
  return true;
}

}  // namespace

void write_png(const fs::path& path, const PngPicture& picture) {
  const int channels = png_channels(picture.color_type);
  ASSERT_EQ(picture.samples.size(), std::size_t{picture.width} * picture.height * channels);
  const std::size_t row_bytes = (std::size_t{picture.width} * channels * picture.bit_depth + 7) / 8;
  std::vector<unsigned char> bytes(row_bytes * picture.height, 0);
  for (std::size_t y = 0; y < picture.height; ++y) {
    unsigned char* row = bytes.data() + y * row_bytes;
    for (std::size_t n = 0; n < std::size_t{picture.width} * channels; ++n) {
      const std::uint16_t value = picture.samples[y * picture.width * channels + n];
      if (picture.bit_depth == 16) {
        row[2 * n] = static_cast<unsigned char>(value >> 8);
        row[2 * n + 1] = static_cast<unsigned char>(value & 0xff);
      } else if (picture.bit_depth == 8) {
        row[n] = static_cast<unsigned char>(value);
      } else {  // packed, most significant bits first
        const std::size_t bit = n * picture.bit_depth;
        row[bit / 8] |= static_cast<unsigned char>(value << (8 - picture.bit_depth - bit % 8));
      }
    }
  }
  std::vector<png_bytep> rows(picture.height);
  for (std::size_t y = 0; y < rows.size(); ++y) rows[y] = bytes.data() + y * row_bytes;
  std::FILE* file = std::fopen(path.c_str(), "wb");
  ASSERT_NE(file, nullptr) << path;
  const bool written = write_png_file(file, &picture, rows.data());
  std::fclose(file);
  ASSERT_TRUE(written) << path;
}

PngPicture png_picture(std::uint32_t width, std::uint32_t height, int color_type, int bit_depth, unsigned seed) {
  PngPicture result;
  result.width = width;
  result.height = height;
  result.color_type = color_type;
  result.bit_depth = bit_depth;
  std::uint32_t state = seed * 2654435761u + 12345u;
  result.samples.resize(std::size_t{width} * height * png_channels(color_type));
  for (auto& sample : result.samples) {
    state = state * 1664525u + 1013904223u;
    sample = static_cast<std::uint16_t>((state >> 8) & ((1u << bit_depth) - 1));
  }
  return result;
}

std::string dicom_number(double value) {
  std::ostringstream text;
  text.precision(10);
  text << value;
  return text.str();
}

std::string new_dicom_uid() {
  char buffer[100];
  return dcmGenerateUniqueIdentifier(buffer, SITE_INSTANCE_UID_ROOT);
}

void put_dicom_string(DcmItem& item, const DcmTagKey& tag, const std::string& value) {
  ASSERT_TRUE(item.putAndInsertString(DcmTag(tag), value.c_str()).good()) << DcmTag(tag).getTagName();
}

void write_dicom_slice(const fs::path& path, const DicomSlice& s) {
  DcmFileFormat file;
  DcmDataset& d = *file.getDataset();
  const auto put = [&d](const DcmTagKey& tag, const std::string& value) { put_dicom_string(d, tag, value); };
  const auto& ds = dicom_number;
  const char* sop_class = s.modality == "PT"   ? UID_PositronEmissionTomographyImageStorage
                          : s.modality == "MR" ? UID_MRImageStorage
                                               : UID_CTImageStorage;
  put(DCM_SOPClassUID, sop_class);
  put(DCM_SOPInstanceUID, new_dicom_uid());
  put(DCM_StudyInstanceUID, "1.2.826.0.1.3680043.2.1125.1.1");
  put(DCM_SeriesInstanceUID, s.series_uid);
  put(DCM_Modality, s.modality);
  put(DCM_SeriesDescription, s.description);
  put(DCM_SeriesNumber, "7");
  put(DCM_PatientName, "Doe^Jane");
  put(DCM_PatientID, "PID-4711-SECRET");
  put(DCM_PatientBirthDate, "19700101");
  put(DCM_AccessionNumber, "ACC-999-SECRET");
  put(DCM_ImagePositionPatient, ds(s.position[0]) + "\\" + ds(s.position[1]) + "\\" + ds(s.position[2]));
  std::string orientation;
  for (int n = 0; n < 6; ++n) orientation += (n ? "\\" : "") + ds(s.orientation[n]);
  put(DCM_ImageOrientationPatient, orientation);
  put(DCM_PixelSpacing, ds(s.pixel_spacing[0]) + "\\" + ds(s.pixel_spacing[1]));
  put(DCM_SliceThickness, "2.5");
  put(DCM_RescaleSlope, ds(s.slope));
  put(DCM_RescaleIntercept, ds(s.intercept));
  put(DCM_SamplesPerPixel, "1");
  put(DCM_PhotometricInterpretation, "MONOCHROME2");
  ASSERT_TRUE(d.putAndInsertUint16(DCM_Rows, s.rows).good());
  ASSERT_TRUE(d.putAndInsertUint16(DCM_Columns, s.columns).good());
  ASSERT_TRUE(d.putAndInsertUint16(DCM_BitsAllocated, 16).good());
  ASSERT_TRUE(d.putAndInsertUint16(DCM_BitsStored, 16).good());
  ASSERT_TRUE(d.putAndInsertUint16(DCM_HighBit, 15).good());
  ASSERT_TRUE(d.putAndInsertUint16(DCM_PixelRepresentation, 1).good());
  ASSERT_EQ(s.stored.size(), std::size_t{s.rows} * s.columns);
  ASSERT_TRUE(d.putAndInsertUint16Array(DCM_PixelData, reinterpret_cast<const Uint16*>(s.stored.data()),
                                        static_cast<unsigned long>(s.stored.size()))
                  .good());
  if (s.extra) s.extra(d);
  ASSERT_TRUE(file.saveFile(OFFilename(path.c_str()), EXS_LittleEndianExplicit).good()) << path;
}

std::vector<Sint16> dicom_pattern(std::size_t count, int seed) {
  std::vector<Sint16> values(count);
  for (std::size_t n = 0; n < count; ++n) values[n] = static_cast<Sint16>((int(n) * 37 + seed * 101) % 900 - 100);
  return values;
}

std::vector<DicomSlice> dicom_series(const std::string& modality, const std::string& description, int count,
                                     std::array<double, 6> orientation, double spacing) {
  const std::string uid = new_dicom_uid();
  const std::array<double, 3> normal = {orientation[1] * orientation[5] - orientation[2] * orientation[4],
                                        orientation[2] * orientation[3] - orientation[0] * orientation[5],
                                        orientation[0] * orientation[4] - orientation[1] * orientation[3]};
  std::vector<DicomSlice> series;
  for (int k = 0; k < count; ++k) {
    DicomSlice slice;
    slice.modality = modality;
    slice.series_uid = uid;
    slice.description = description;
    slice.orientation = orientation;
    for (int n = 0; n < 3; ++n)
      slice.position[n] = std::array<double, 3>{-50.0, 20.0, 10.0}[n] + k * spacing * normal[n];
    slice.stored = dicom_pattern(std::size_t{slice.rows} * slice.columns, k);
    slice.intercept = modality == "CT" ? -1024.0 + 3 * k : 0.0;
    series.push_back(slice);
  }
  return series;
}

void write_dicom_series(const fs::path& dir, const std::vector<DicomSlice>& series, const std::string& prefix) {
  fs::create_directories(dir);
  for (std::size_t k = 0; k < series.size(); ++k) {
    const std::size_t name = (k * 7 + 1) % series.size() + 10 * series.size();  // a permutation (7 coprime to n < 7)
    write_dicom_slice(dir / (prefix + std::to_string(name) + ".dcm"), series[k]);
  }
}

}  // namespace fusionflow::io_test
