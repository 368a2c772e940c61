// The image corpus: malformed and unusual image files of every format and
// class the io readers meet, generated here (no committed binaries), each run
// through the real program (`fusionflow run` of a load -> statistics -> table
// pipeline) with the exit code and the message pattern it must produce. A
// case that loads also states the voxel count of what it loaded.
#include <gtest/gtest.h>

#include "io_test_files.hpp"
#include "test_support.hpp"

#include <fusionflow/testing.hpp>

#include <dcmtk/dcmdata/dcdeftag.h>
#include <nlohmann/json.hpp>
#include <sys/stat.h>
#include <zlib.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <functional>
#include <map>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <vector>

namespace fusionflow {
namespace {
namespace fs = std::filesystem;
using namespace io_test;

struct ImageCase {
  std::string name;
  // Writes the input into the folder and returns its path.
  std::function<fs::path(const fs::path& dir)> make;
  int exit_code = 1;
  std::string pattern;                               // ECMAScript regex searched in what the program printed
  nlohmann::json params = nlohmann::json::object();  // extra io.load_image parameters
  std::int64_t voxels = -1;                          // exit 0: the voxel count loaded
};

void PrintTo(const ImageCase& c, std::ostream* out) { *out << c.name; }

// --- building blocks ---------------------------------------------------------------

std::vector<float> ramp(std::size_t count) {
  std::vector<float> values(count);
  for (std::size_t n = 0; n < count; ++n) values[n] = float(n % 977) - 100.0f;
  return values;
}

std::function<fs::path(const fs::path&)> file(const std::string& name, std::function<std::string()> bytes) {
  return [name, bytes](const fs::path& dir) {
    write_bytes(dir / name, bytes());
    return dir / name;
  };
}

std::string nifti_ramp(std::vector<std::int16_t> dims) {
  std::size_t count = 1;
  for (auto d : dims) count *= std::size_t(d);
  return nifti_file(dims, 16, 32, floats(ramp(count)));
}

NiftiFields sheared(float shear) {
  NiftiFields fields;
  fields.dims = {8, 8, 6};
  fields.sform_code = 1;
  fields.srow = {{{1.5f, shear, 0, -10}, {0, 1.5f, 0, 20}, {0, 0, 2.0f, 5}}};
  fields.pixdim = {1.5f, 1.5f, 2.0f};
  return fields;
}

std::string with_byte(std::string bytes, std::size_t at, char value) {
  bytes.at(at) = value;
  return bytes;
}

template <class T>
std::string with_field(std::string bytes, std::size_t at, T value) {
  std::memcpy(&bytes.at(at), &value, sizeof value);
  return bytes;
}

// Every NIfTI-1 header field big-endian: a valid file from a big-endian machine.
std::string byte_swapped_nifti() {
  std::string bytes = nifti_ramp({4, 3, 2});
  auto swap = [&](std::size_t at, std::size_t size) { std::reverse(bytes.begin() + at, bytes.begin() + at + size); };
  swap(0, 4);
  for (std::size_t n = 0; n < 8; ++n) swap(40 + 2 * n, 2);
  swap(70, 2);
  swap(72, 2);
  for (std::size_t n = 0; n < 8; ++n) swap(76 + 4 * n, 4);
  swap(108, 4);
  swap(112, 4);
  for (std::size_t n = 0; n < 24; ++n) swap(352 + 4 * n, 4);
  return bytes;
}

std::string nrrd(const std::string& fields, const std::string& data) {
  return "NRRD0004\ntype: float\ndimension: 3\n" + fields + "endian: little\n\n" + data;
}

std::string compressed_meta(const std::vector<float>& values, std::size_t keep) {
  uLongf size = compressBound(uLong(values.size() * 4));
  std::string out(size, '\0');
  compress(reinterpret_cast<Bytef*>(out.data()), &size, reinterpret_cast<const Bytef*>(values.data()),
           uLong(values.size() * 4));
  out.resize(std::min<std::size_t>(size, keep));
  return meta_header("6 5 4", "MET_FLOAT",
                     "CompressedData = True\nCompressedDataSize = " + std::to_string(size) + "\n") +
         out;
}

std::function<fs::path(const fs::path&)> png(const std::string& name, std::function<PngPicture()> make_picture,
                                             std::function<std::string(std::string)> damage = nullptr) {
  return [=](const fs::path& dir) {
    write_png(dir / name, make_picture());
    if (damage) write_bytes(dir / name, damage(read_bytes(dir / name)));
    return dir / name;
  };
}

PngPicture grey_rgb(int bit_depth) {
  PngPicture picture = png_picture(7, 5, PNG_COLOR_TYPE_RGB, bit_depth);
  for (std::size_t n = 0; n < picture.samples.size(); n += 3)
    picture.samples[n + 1] = picture.samples[n + 2] = picture.samples[n];
  return picture;
}

PngPicture grey_palette() {
  PngPicture picture = png_picture(7, 5, PNG_COLOR_TYPE_PALETTE, 4);
  for (int n = 0; n < 16; ++n) {
    const auto v = static_cast<png_byte>(n * 17);
    picture.palette.push_back(png_color{v, v, v});
  }
  return picture;
}

std::function<fs::path(const fs::path&)> dicom(const std::string& name, std::function<void(DicomSlice&)> change,
                                               std::function<std::string(std::string)> damage = nullptr) {
  return [=](const fs::path& dir) {
    DicomSlice slice = dicom_series("CT", "corpus", 1).front();
    if (change) change(slice);
    write_dicom_slice(dir / name, slice);
    if (damage) write_bytes(dir / name, damage(read_bytes(dir / name)));
    return dir / name;
  };
}

// Debian's python3-nibabel ships real Siemens mosaics (gzip-compressed).
std::function<fs::path(const fs::path&)> nibabel_mosaic(const std::string& name) {
  return [name](const fs::path& dir) {
    const fs::path source = fs::path(NIBABEL_TEST_DATA) / (name + ".gz");
    gzFile in = gzopen(source.c_str(), "rb");
    EXPECT_NE(in, nullptr) << source;
    std::string bytes;
    char buffer[65536];
    for (int got; in != nullptr && (got = gzread(in, buffer, sizeof buffer)) > 0;)
      bytes.append(buffer, std::size_t(got));
    if (in != nullptr) gzclose(in);
    write_bytes(dir / name, bytes);
    return dir / name;
  };
}

std::vector<ImageCase> image_cases() {
  const std::string nii = nifti_ramp({6, 5, 4});
  const std::string nii_gz = gzip(nii);
  const std::vector<float> values = ramp(6 * 5 * 4);
  const std::string raw_meta = meta_header("6 5 4", "MET_FLOAT") + floats(values);
  const std::string nrrd_fields = "sizes: 6 5 4\nencoding: raw\n";
  std::vector<ImageCase> cases = {
      // --- NIfTI ---
      {"nifti_good", file("good.nii", [=] { return nii; }), 0, "", {}, 120},
      {"nifti_gz_good", file("good.nii.gz", [=] { return nii_gz; }), 0, "", {}, 120},
      {"nifti_gz_two_members", file("two.nii.gz", [=] { return gzip(nii.substr(0, 200)) + gzip(nii.substr(200)); }), 0,
       "", {}, 120},
      {"nifti_big_endian", file("big_endian.nii", byte_swapped_nifti), 0, "", {}, 24},
      {"nifti_empty", file("empty.nii", [] { return std::string(); }), 1, "the file is empty"},
      {"nifti_garbage", file("garbage.nii", [] { return std::string(1000, 'Z'); }), 1, "not a valid NIfTI file"},
      {"nifti_gz_garbage", file("garbage.nii.gz", [] { return gzip(std::string(1000, 'Z')); }), 1,
       "not a valid NIfTI file"},
      {"nifti_gz_not_gzip", file("plain.nii.gz", [] { return std::string("hello, world"); }), 1,
       "not a valid NIfTI file"},
      {"nifti_header_only", file("header.nii", [=] { return nii.substr(0, 200); }), 1, "not a valid NIfTI file"},
      {"nifti_truncated", file("cut.nii", [=] { return nii.substr(0, nii.size() - 9); }), 1, "the file is truncated"},
      {"nifti_gz_truncated", file("cut.nii.gz", [=] { return nii_gz.substr(0, nii_gz.size() / 2); }), 1,
       "the file is truncated"},
      {"nifti_gz_bad_checksum", file("crc.nii.gz", [=] { return with_byte(nii_gz, nii_gz.size() - 6, '\x55'); }), 1,
       "corrupt|checksum|truncated"},
      {"nifti_wrong_sizeof_hdr", file("sizeof.nii", [=] { return with_field<std::int32_t>(nii, 0, 340); }), 1,
       "not a valid NIfTI file"},
      {"nifti_zero_dims", file("dim0.nii", [=] { return with_field<std::int16_t>(nii, 40, 0); }), 1,
       "NIfTI|dimension|corrupt"},
      {"nifti_negative_size", file("negative.nii", [=] { return with_field<std::int16_t>(nii, 42, -6); }), 1,
       "corrupt|size|not a valid"},
      {"nifti_absurd_size",
       file("absurd.nii", [] { return nifti_file({30000, 30000, 30000}, 16, 32, std::string(64, '\0')); }), 1,
       "30000x30000x30000 voxels, more than the limit"},
      {"nifti_over_max_voxels", file("max.nii", [=] { return nii; }), 1, "more than the limit.*max_voxels",
       {{"max_voxels", 100}}},
      {"nifti_unknown_datatype", file("dtype.nii", [=] { return with_field<std::int16_t>(nii, 70, 3333); }), 1,
       "not a valid NIfTI|unsupported|corrupt"},
      {"nifti_complex", file("complex.nii", [] { return nifti_file({4, 5, 6}, 32, 64, std::string(960, '\0')); }), 1,
       "unsupported pixel type"},
      {"nifti_rgb24", file("rgb.nii", [] { return nifti_file({4, 5, 6}, 128, 24, std::string(360, '\0')); }), 1,
       "unsupported pixel type|colour|color"},
      {"nifti_zero_pixdim", file("pixdim.nii", [=] { return with_field<float>(nii, 84, 0.0f); }), 1,
       "spacing|pixdim"},
      {"nifti_nan_pixdim", file("nan_pixdim.nii", [=] { return with_field<float>(nii, 80, NAN); }), 1,
       "spacing|pixdim|finite"},
      {"nifti_voxels_past_the_end", file("offset.nii", [=] { return with_field<float>(nii, 108, 4000.0f); }), 1,
       "truncated|offset"},
      // found by fuzz_nifti: a vox_offset beyond 2^64 did not convert to an integer (UBSan)
      {"nifti_vox_offset_beyond_any_integer",
       file("far.nii", [=] { return with_field<float>(nii, 108, 2.7e28f); }), 1, "the file is truncated"},
      {"nifti_nan_voxel", file("nan.nii", [=] { return with_field<float>(nii, 352 + 4 * 7, NAN); }), 1,
       "1 non-finite voxel \\(1 NaN"},
      {"nifti_nan_voxel_replaced", file("nan_ok.nii", [=] { return with_field<float>(nii, 352 + 4 * 7, NAN); }), 0,
       "", {{"nonfinite", "replace"}}, 120},
      {"nifti_4d_without_index", file("four_d.nii", [] { return nifti_ramp({4, 3, 2, 5}); }), 1,
       "5 volumes.*volume_index"},
      {"nifti_4d_with_index", file("four_d.nii", [] { return nifti_ramp({4, 3, 2, 5}); }), 0, "", {{"volume_index", 3}},
       24},
      {"nifti_4d_index_out_of_range", file("four_d.nii", [] { return nifti_ramp({4, 3, 2, 5}); }), 1,
       "volume_index 5.*5 volumes|out of range", {{"volume_index", 5}}},
      {"nifti_5d", file("five_d.nii", [] { return nifti_ramp({4, 3, 2, 2, 2}); }), 1, "5D|dimensions"},
      {"nifti_sheared_sform_small",
       file("shear.nii", [] { return nifti_file(sheared(0.01f), floats(ramp(8 * 8 * 6))); }), 0,
       "shear|orthonormal", {}, 384},
      {"nifti_sheared_sform_large",
       file("shear_large.nii", [] { return nifti_file(sheared(0.6f), floats(ramp(8 * 8 * 6))); }), 1,
       "max_shear_error_mm"},
      {"nifti_sheared_sform_tolerated",
       file("shear_large.nii", [] { return nifti_file(sheared(0.6f), floats(ramp(8 * 8 * 6))); }), 0,
       "shear|orthonormal", {{"max_shear_error_mm", 100.0}}, 384},
      {"nifti_qform_sform_disagree",
       file("disagree.nii",
            [] {
              NiftiFields fields = sheared(0.0f);
              fields.qform_code = 1;
              fields.qoffset = {30, -40, 50};  // far from the sform's origin
              return nifti_file(fields, floats(ramp(8 * 8 * 6)));
            }),
       0, "qform.*sform|sform.*qform", {}, 384},
      {"nifti_nan_sform",
       file("nan_sform.nii",
            [] {
              NiftiFields fields = sheared(0.0f);
              fields.srow[1][1] = NAN;
              return nifti_file(fields, floats(ramp(8 * 8 * 6)));
            }),
       1, "sform|finite|corrupt"},
      // found by fuzz_nifti: vnl's SVD (inside ITK) never ended on such values
      {"nifti_sform_extreme_values",
       file("extreme.nii",
            [] {
              NiftiFields fields = sheared(0.0f);
              fields.srow[0] = {3e-37f, -2.2e38f, 2e-39f, 2e-38f};
              return nifti_file(fields, floats(ramp(8 * 8 * 6)));
            }),
       1, "sform .* outside what any image has"},
      {"nifti_singular_sform",
       file("singular.nii",
            [] {
              NiftiFields fields = sheared(0.0f);
              fields.srow[2] = {0, 0, 0, 5};
              return nifti_file(fields, floats(ramp(8 * 8 * 6)));
            }),
       1, "sform|singular|corrupt|spacing"},
      // --- NRRD ---
      {"nrrd_good", file("good.nrrd", [=] { return nrrd(nrrd_fields, floats(values)); }), 0, "", {}, 120},
      {"nrrd_gzip_good",
       file("gz.nrrd", [=] { return nrrd("sizes: 6 5 4\nencoding: gzip\n", gzip(floats(values))); }), 0, "", {}, 120},
      {"nrrd_ascii_good",
       file("ascii.nrrd",
            [=] {
              std::string text;
              for (float v : values) text += std::to_string(v) + " ";
              return nrrd("sizes: 6 5 4\nencoding: ascii\n", text);
            }),
       0, "", {}, 120},
      {"nrrd_truncated", file("cut.nrrd", [=] { return nrrd(nrrd_fields, floats(values).substr(0, 100)); }), 1,
       "cannot read the voxels"},
      {"nrrd_bad_type", file("type.nrrd", [] { return std::string("NRRD0004\ntype: flot\ndimension: 3\nsizes: 4 4 4\n\n"); }),
       1, "corrupt NRRD header"},
      {"nrrd_absurd", file("absurd.nrrd", [] { return nrrd("sizes: 10000 10000 10000\nencoding: gzip\n", ""); }), 1,
       "more than the limit"},
      {"nrrd_implausible",
       file("implausible.nrrd", [] { return nrrd("sizes: 1000 1000 1000\nencoding: gzip\n", "xx"); }), 1,
       "more than any compression could explain"},
      {"nrrd_missing_data_file",
       file("detached.nhdr", [] { return nrrd("sizes: 6 5 4\nencoding: raw\ndata file: nowhere.raw\n", ""); }), 1,
       "nowhere.raw|cannot read|corrupt"},
      {"nrrd_zero_spacing",
       file("spacing.nrrd",
            [=] {
              return nrrd("sizes: 6 5 4\nencoding: raw\nspace: left-posterior-superior\n"
                          "space directions: (1,0,0) (0,0,0) (0,0,1)\n",
                          floats(values));
            }),
       1, "spacing|direction|corrupt"},
      {"nrrd_nan_origin",
       file("origin.nrrd",
            [=] {
              return nrrd("sizes: 6 5 4\nencoding: raw\nspace: left-posterior-superior\n"
                          "space directions: (1,0,0) (0,1,0) (0,0,1)\nspace origin: (nan,0,0)\n",
                          floats(values));
            }),
       1, "origin|finite|corrupt"},
      {"nrrd_4d_with_index",
       file("four_d.nrrd",
            [] {
              return std::string("NRRD0004\ntype: float\ndimension: 4\nsizes: 4 3 2 5\nendian: little\nencoding: raw\n\n") +
                     floats(ramp(120));
            }),
       0, "", {{"volume_index", 1}}, 24},
      // --- MetaImage ---
      {"metaimage_good", file("good.mha", [=] { return raw_meta; }), 0, "", {}, 120},
      {"metaimage_compressed_good", file("zip.mha", [=] { return compressed_meta(values, 1 << 20); }), 0, "", {}, 120},
      {"metaimage_truncated", file("cut.mha", [=] { return raw_meta.substr(0, raw_meta.size() - 50); }), 1,
       "the file is truncated"},
      {"metaimage_compressed_truncated", file("cut_zip.mha", [=] { return compressed_meta(values, 40); }), 1,
       "the file is truncated"},
      {"metaimage_missing_data_file",
       file("detached.mhd", [] { return meta_header("4 4 4", "MET_FLOAT", "", "nowhere.raw"); }), 1, "does not exist"},
      // found by fuzz_metaimage: without ElementDataFile MetaIO allocated 2^64 - 1 bytes
      {"metaimage_no_element_data_file",
       file("no_data.mha", [=] {
         std::string bytes = compressed_meta(values, 1 << 20);
         return bytes.replace(bytes.find("ElementDataFile = LOCAL"), 23, "ElementDataFile");
       }),
       1, "line 9 \\(ElementDataFile\\) is not a 'Name = Value' line"},
      // found by fuzz_metaimage: MetaIO sized its arrays from NDims before reading them
      {"metaimage_ndims_huge", file("ndims.mha", [] {
         return std::string("ObjectType = Image\nNDims = 77777777777773\nDimSize = 5 4 3\nElementType = MET_SHORT\n"
                            "ElementDataFile = LOCAL\n") + std::string(120, '\0');
       }),
       1, "NDims is '77777777777773', not a whole number from 1 to 8"},
      // found by fuzz_metaimage: MetaIO divides by the size of an unknown element type (0)
      {"metaimage_element_type_unknown", file("bad_type.mha", [=] {
         std::string bytes = raw_meta;
         return bytes.replace(bytes.find("MET_FLOAT"), 9, "MET_FLOTE");
       }),
       1, "ElementType 'MET_FLOTE' is not a MetaIO scalar type"},
      // found by fuzz_metaimage: MetaIO copies field names into 255 bytes unchecked
      {"metaimage_field_name_too_long", file("long_name.mha", [] {
         return "ObjectType = Image\nNDims = 3\n" + std::string(300, 'N') +
                " = 1\nDimSize = 5 4 3\nElementType = MET_SHORT\nElementDataFile = LOCAL\n" +
                std::string(120, '\0');
       }),
       1, "line 3 \\(N{40}\\) has a field name of 300 bytes; MetaIO takes names of at most 254"},
      // found by fuzz_metaimage: MetaIO copies Name (and Comment, ObjectType, ...) into
      // 255 bytes of MetaObject; past them lies MetaImage's compression table pointer
      {"metaimage_name_longer_than_metaio_buffer",
       file("long_value.mha",
            [] { return meta_header("2 2 2", "MET_FLOAT", "Name = " + std::string(400, 'A') + "\n") + floats(ramp(8)); }),
       1, "line 5 \\(Name\\) has a value of 400 bytes; MetaIO takes at most 254"},
      {"metaimage_line_without_separator",
       file("no_separator.mha",
            [] { return meta_header("2 2 2", "MET_FLOAT", "Comment\n= shifted\n") + floats(ramp(8)); }),
       1, "line 5 \\(Comment\\) is not a 'Name = Value' line"},
      {"metaimage_dim_size_shorter_than_ndims",
       file("short_dims.mha", [] { return meta_header("2 2", "MET_FLOAT") + floats(ramp(8)); }), 1,
       "line 5 \\(DimSize\\) has 2 numbers where it needs 3 \\(NDims = 3\\)"},
      {"metaimage_ndims_empty",
       file("empty_ndims.mha",
            [] {
              return std::string("ObjectType = Image\nNDims =\n3\nDimSize = 2 2 2\nElementType = MET_FLOAT\n"
                                 "ElementDataFile = LOCAL\n") +
                     floats(ramp(8));
            }),
       1, "line 2 \\(NDims\\) is not a number"},
      {"metaimage_sequence_id_then_more_dimensions",
       file("sequence_id.mha",
            [] {
              return std::string("ObjectType = Image\nNDims = 3\nSequenceID = 1 2 3\nNDims = 6\n"
                                 "DimSize = 2 2 2 1 1 1\nElementType = MET_FLOAT\nElementDataFile = LOCAL\n") +
                     floats(ramp(8));
            }),
       1, "MetaIO reads at most 4 SequenceID values, and NDims is 6"},
      // found by fuzz_metaimage with MetaIO built with ASan: a 2D file goes
      // through MetaIO's region reader, which overruns its buffer for text voxels
      // found by fuzz_metaimage with MetaIO built with UBSan: MetaIO casts DimSize to int
      {"metaimage_dim_size_beyond_int", file("dim_int.mha", [] {
         return std::string("ObjectType = Image\nNDims = 3\nDimSize = 5999999999999999999999 4 3\n"
                            "ElementType = MET_SHORT\nElementDataFile = LOCAL\n") +
                std::string(120, '\0');
       }),
       1, "line 3 \\(DimSize\\) has a number beyond the range of MetaIO's int"},
      {"metaimage_dim_size_nan", file("dim_nan.mha", [] {
         return std::string("ObjectType = Image\nNDims = 3\nDimSize = 2 nan 2\n"
                            "ElementType = MET_SHORT\nElementDataFile = LOCAL\n") +
                std::string(16, '\0');
       }),
       1, "line 3 \\(DimSize\\) has 1 numbers where it needs 3"},
      {"metaimage_text_voxels_in_2d", file("text_2d.mha", [] {
         return std::string("ObjectType = Image\nNDims = 2\nBinaryData = False\nDimSize = 5 4\n"
                            "ElementType = MET_SHORT\nElementDataFile = LOCAL\n") +
                std::string(60, '7');
       }),
       1, "voxels are text \\(BinaryData = False\\) in a 2D MetaImage"},
      {"metaimage_text_voxels_in_4d", file("text_4d.mha", [] {
         return std::string("ObjectType = Image\nNDims = 4\nBinaryData = False\nDimSize = 2 2 2 2\n"
                            "ElementType = MET_FLOAT\nElementDataFile = LOCAL\n1 2 3 4 5 6 7 8 1 2 3 4 5 6 7 8\n");
       }),
       1, "in a 4D MetaImage, which ITK's MetaIO reads wrongly", {{"volume_index", 1}}},
      {"metaimage_text_voxels_truncated", file("text_short.mha", [] {
         return std::string("ObjectType = Image\nNDims = 3\nBinaryData = False\nDimSize = 2 2 2\n"
                            "ElementType = MET_FLOAT\nElementDataFile = LOCAL\n1 2 3 4 5\n");
       }),
       1, "holds 5 numbers where its header \\(2x2x2\\) needs 8"},
      {"metaimage_text_voxels_not_numbers", file("text_words.mha", [] {
         return std::string("ObjectType = Image\nNDims = 3\nBinaryData = False\nDimSize = 2 2 2\n"
                            "ElementType = MET_FLOAT\nElementDataFile = LOCAL\n1 2 3 nan 5 6 7 8\n");
       }),
       1, "holds 3 numbers where its header \\(2x2x2\\) needs 8"},
      {"metaimage_text_voxel_outside_its_type", file("text_range.mha", [] {
         return std::string("ObjectType = Image\nNDims = 3\nBinaryData = False\nDimSize = 2 2 2\n"
                            "ElementType = MET_UCHAR\nElementDataFile = LOCAL\n1 2 3 256 5 6 7 8\n");
       }),
       1, "text voxel 3 \\(256\\) does not fit its ElementType MET_UCHAR"},
      {"metaimage_text_voxels_good", file("text.mha", [] {
         return std::string("ObjectType = Image\nNDims = 3\nBinaryData = False\nDimSize = 3 2 2\n"
                            "ElementType = MET_USHORT\nElementDataFile = LOCAL\n1 2 3\n4 5 6\n\n7 8 9 10 11 12");
       }),
       0, "", {}, 12},
      {"metaimage_crlf_good",
       file("crlf.mha",
            [] {
              std::string header = meta_header("2 2 2", "MET_FLOAT", "Name = phantom\n");
              for (std::size_t at = header.find('\n'); at != std::string::npos; at = header.find('\n', at + 2))
                header.insert(at, "\r");
              return header + floats(ramp(8));
            }),
       0, "", {}, 8},
      // found by fuzz_metaimage: MetaIO sizes DimSize by each NDims it reads, not the last
      {"metaimage_ndims_huge_then_declared_again", file("ndims_twice.mha", [] {
         return std::string("ObjectType = Image\nNDims = 33333333333333\nDimSize = 5 4 3\nNDims = 3\n"
                            "ElementType = MET_SHORT\nElementDataFile = LOCAL\n") +
                std::string(120, '\0');
       }),
       1, "NDims is '33333333333333', not a whole number from 1 to 8"},
      // found by fuzz_metaimage: MetaIO allocated CompressedDataSize bytes before reading
      {"metaimage_compressed_size_beyond_the_file",
       file("huge_zip.mha",
            [=] {
              std::string bytes = compressed_meta(values, 1 << 20);
              const auto at = bytes.find("CompressedDataSize = ") + 21;
              return bytes.replace(at, bytes.find('\n', at) - at, "1e31");
            }),
       1, "CompressedDataSize '1e31' is not a byte count the file holds"},
      // found by fuzz_metaimage: MetaIO inflates only CompressedDataSize bytes (a shorter
      // size silently cut the image; with a preset-dictionary stream it never returned)
      {"metaimage_compressed_size_shorter_than_stream",
       file("short_size.mha",
            [=] {
              std::string bytes = compressed_meta(values, 1 << 20);
              const auto at = bytes.find("CompressedDataSize = ") + 21;
              return bytes.replace(at, bytes.find('\n', at) - at, "20");
            }),
       1, "does not end within the 20 bytes its CompressedDataSize gives"},
      // found by fuzz_metaimage: MetaIO ends names at a NUL, so this is CompressedData
      {"metaimage_field_name_with_nul_bytes",
       file("nul_name.mha",
            [=] {
              std::string bytes = compressed_meta(values, 1 << 20);
              bytes.replace(bytes.find("CompressedData = True"), 21, std::string("CompressedData") +
                                                                         std::string(5, '\0') + " = True");
              const auto at = bytes.find("ElementDataFile = LOCAL\n") + 24;
              bytes[at] = '\x78';  // a preset-dictionary stream: MetaIO's inflate would never return
              bytes[at + 1] = '\xbb';
              return bytes;
            }),
       1, "preset dictionary"},
      {"metaimage_zlib_preset_dictionary",
       file("dictionary.mha",
            [=] {
              std::string bytes = compressed_meta(values, 1 << 20);
              const auto at = bytes.find("ElementDataFile = LOCAL\n") + 24;
              bytes[at] = '\x78';  // 0x78BB: a valid zlib header with FDICT set
              bytes[at + 1] = '\xbb';
              return bytes;
            }),
       1, "preset dictionary"},
      // MetaIO reads booleans from their first letter and accepts ':' as the separator
      {"metaimage_compressed_flag_spelt_1_and_colon",
       file("colon.mha",
            [=] {
              std::string bytes = compressed_meta(values, 1 << 20);
              return bytes.replace(bytes.find("CompressedData = True"), 21, "CompressedData: 1");
            }),
       0, "", {}, 120},
      // found by fuzz_metaimage: MetaIO formats file-name patterns with the header's text
      {"metaimage_data_file_pattern",
       file("pattern.mhd", [] { return meta_header("4 4 4", "MET_FLOAT", "", "slice%03d.raw 1 4 1"); }), 1,
       "names a series of data files"},
      {"metaimage_data_file_list",
       file("list.mhd", [] { return meta_header("4 4 2", "MET_FLOAT", "", "LIST 2D") + "/dev/zero\n/dev/zero\n"; }),
       1, "names a series of data files"},
      {"metaimage_data_file_is_a_device",
       file("device.mhd", [] { return meta_header("4 4 4", "MET_FLOAT", "", "/dev/zero"); }), 1,
       "truncated|regular|device"},
      {"metaimage_negative_size",
       file("negative.mha", [] { return meta_header("-4 4 4", "MET_FLOAT") + std::string(256, '\0'); }), 1,
       "more than the limit"},
      {"metaimage_zero_spacing",
       file("spacing.mha",
            [] { return meta_header("2 2 2", "MET_FLOAT", "ElementSpacing = 1 0 1\n") + std::string(32, '\0'); }),
       1, "spacings must be positive"},
      {"metaimage_rgb",
       file("rgb.mha",
            [] { return meta_header("4 4 4", "MET_UCHAR", "ElementNumberOfChannels = 3\n") + std::string(192, '\0'); }),
       1, "unsupported pixel type"},
      {"metaimage_one_d", file("line.mha", [] {
         return std::string("ObjectType = Image\nNDims = 1\nDimSize = 8\nElementType = MET_FLOAT\nElementDataFile = "
                            "LOCAL\n") +
                std::string(32, '\0');
       }),
       1, "1D image"},
      {"metaimage_absurd", file("absurd.mha", [] { return meta_header("10000 10000 10000", "MET_FLOAT"); }), 1,
       "more than the limit"},
      // --- PNG ---
      {"png_grey8", png("grey8.png", [] { return png_picture(7, 5, PNG_COLOR_TYPE_GRAY, 8); }), 0, "", {}, 35},
      {"png_grey16", png("grey16.png", [] { return png_picture(7, 5, PNG_COLOR_TYPE_GRAY, 16); }), 0, "", {}, 35},
      {"png_grey1", png("grey1.png", [] { return png_picture(9, 5, PNG_COLOR_TYPE_GRAY, 1); }), 0, "", {}, 45},
      {"png_interlaced",
       png("adam7.png",
           [] {
             PngPicture picture = png_picture(9, 7, PNG_COLOR_TYPE_GRAY, 8);
             picture.interlaced = true;
             return picture;
           }),
       0, "", {}, 63},
      {"png_grey_palette", png("palette.png", grey_palette), 0, "", {}, 35},
      {"png_equal_channel_rgb", png("grey_rgb.png", [] { return grey_rgb(8); }), 0, "", {{"color", "error"}}, 35},
      {"png_equal_channel_rgb16", png("grey_rgb16.png", [] { return grey_rgb(16); }), 0, "", {{"color", "error"}}, 35},
      {"png_colour_as_luma", png("rgb.png", [] { return png_picture(7, 5, PNG_COLOR_TYPE_RGB, 8); }), 0, "", {}, 35},
      {"png_colour_refused", png("rgb.png", [] { return png_picture(7, 5, PNG_COLOR_TYPE_RGB, 8); }), 1,
       "colour|color", {{"color", "error"}}},
      {"png_rgba_channel", png("rgba.png", [] { return png_picture(7, 5, PNG_COLOR_TYPE_RGB_ALPHA, 8); }), 0, "",
       {{"color", "channel"}, {"channel", 2}}, 35},
      {"png_truncated",
       png("cut.png", [] { return png_picture(7, 5, PNG_COLOR_TYPE_GRAY, 8); },
           [](std::string bytes) { return bytes.substr(0, bytes.size() - 20); }),
       1, "truncated"},
      {"png_bad_crc",
       png("crc.png", [] { return png_picture(7, 5, PNG_COLOR_TYPE_GRAY, 8); },
           [](std::string bytes) { return with_byte(bytes, 29, char(bytes[29] ^ 0x40)); }),
       1, "corrupt|CRC|crc"},
      {"png_signature_only", file("sig.png", [] { return std::string("\x89PNG\r\n\x1a\n", 8); }), 1,
       "truncated|not a valid PNG|corrupt"},
      {"png_not_png", file("text.png", [] { return std::string("this is not a picture"); }), 1, "not a (valid )?PNG"},
      {"png_invalid_color_parameter", png("grey8.png", [] { return png_picture(7, 5, PNG_COLOR_TYPE_GRAY, 8); }), 2,
       "/nodes/0/params/color", {{"color", "purple"}}},
      // --- DICOM ---
      {"dicom_good", dicom("good.dcm", nullptr), 0, "", {}, 20},
      {"dicom_truncated",
       dicom("cut.dcm", nullptr, [](std::string bytes) { return bytes.substr(0, bytes.size() - 15); }), 1,
       "cut.dcm"},
      {"dicom_not_dicom", file("text.dcm", [] { return std::string(400, 'x'); }), 1, "text.dcm"},
      {"dicom_preamble_only",
       file("dicm.dcm", [] { return std::string(128, '\0') + "DICM" + std::string(64, '\xff'); }), 1, "dicm.dcm"},
      {"dicom_zero_rows", dicom("rows.dcm", [](DicomSlice& s) {
         s.extra = [](DcmDataset& d) { d.putAndInsertUint16(DCM_Rows, 0); };
       }),
       1, "rows.dcm"},
      {"dicom_short_pixel_data", dicom("short.dcm", [](DicomSlice& s) {
         s.extra = [](DcmDataset& d) {
           const Uint16 few[3] = {1, 2, 3};
           d.putAndInsertUint16Array(DCM_PixelData, few, 3);
         };
       }),
       1, "short.dcm"},
      {"dicom_nan_spacing", dicom("spacing.dcm", [](DicomSlice& s) { s.pixel_spacing = {NAN, 0.7}; }), 1,
       "spacing.dcm"},
      {"dicom_multiframe_without_frame_increment", dicom("frames.dcm", [](DicomSlice& s) {
         s.extra = [](DcmDataset& d) {
           put_dicom_string(d, DCM_NumberOfFrames, "3");
           const std::vector<Sint16> frames = dicom_pattern(3 * 4 * 5, 2);
           d.putAndInsertUint16Array(DCM_PixelData, reinterpret_cast<const Uint16*>(frames.data()), 60);
         };
       }),
       1, "3 frames"},
      {"dicom_siemens_mosaic", nibabel_mosaic("siemens_dwi_1000.dcm"), 0, "", {}, 128 * 128 * 48},
      // --- what is not a file ---
      {"unknown_extension", file("notes.txt", [] { return std::string("hello"); }), 1, "unrecognised file type '.txt'"},
      {"missing_file", [](const fs::path& dir) { return dir / "nothing.nii.gz"; }, 1, "no such file or directory"},
      {"empty_directory",
       [](const fs::path& dir) {
         fs::create_directories(dir / "empty");
         return dir / "empty";
       },
       1, "no DICOM files in directory"},
      {"fifo_named_like_nifti",
       [](const fs::path& dir) {
         EXPECT_EQ(::mkfifo((dir / "pipe.nii").c_str(), 0600), 0);
         return dir / "pipe.nii";
       },
       1, "not a regular file or directory"},
      {"fifo_named_like_dicom",
       [](const fs::path& dir) {
         EXPECT_EQ(::mkfifo((dir / "pipe.dcm").c_str(), 0600), 0);
         return dir / "pipe.dcm";
       },
       1, "not a regular file or directory"},
      {"device", [](const fs::path&) { return fs::path("/dev/zero"); }, 1, "not a regular file or directory"},
      {"symlink_loop",
       [](const fs::path& dir) {
         fs::create_symlink(dir / "b.nii", dir / "a.nii");
         fs::create_symlink(dir / "a.nii", dir / "b.nii");
         return dir / "a.nii";
       },
       1, "symbolic links"},
  };
  return cases;
}

class ImageCorpus : public ::testing::TestWithParam<ImageCase> {
 protected:
  void SetUp() override { dir_ = testing::fresh_temp_directory("io-corpus"); }
  void TearDown() override { fs::remove_all(dir_); }
  fs::path dir_;
};

TEST_P(ImageCorpus, GivesItsExitCodeAndMessage) {
  const ImageCase& c = GetParam();
  const fs::path input = c.make(dir_);
  nlohmann::json load_params = {{"path", "${image}"}};
  if (c.params.is_object()) load_params.update(c.params);
  const nlohmann::json pipeline = {
      {"format_version", 1},
      {"variables", {{"image", nullptr}, {"out", nullptr}}},
      {"nodes",
       {{{"id", "load"}, {"type", "io.load_image"}, {"params", load_params}},
        {{"id", "stats"}, {"type", "core.volume_stats"}, {"inputs", {{"volume", "load.volume"}}}},
        {{"id", "write"},
         {"type", "core.write_table"},
         {"params", {{"path", "${out}/stats.csv"}}},
         {"inputs", {{"table", "stats.stats"}}}}}}};
  write_bytes(dir_ / "pipeline.json", pipeline.dump(2));
  const auto result = testing::run_command(std::string(FUSIONFLOW_EXE) + " run " + (dir_ / "pipeline.json").string() +
                                           " --threads 1 --set image='" + input.string() + "' --set out='" +
                                           (dir_ / "out").string() + "'");
  EXPECT_EQ(result.exit_code, c.exit_code) << result.text;
  if (!c.pattern.empty()) {
    EXPECT_TRUE(std::regex_search(result.text, std::regex(c.pattern))) << "/" << c.pattern << "/ not in:\n"
                                                                       << result.text;
  }
  if (c.exit_code == 1) {  // a refused file is named
    EXPECT_NE(result.text.find(input.filename().string()), std::string::npos) << result.text;
  }
  if (c.exit_code == 0) {
    std::istringstream table(read_bytes(dir_ / "out" / "stats.csv"));
    std::string header, row;
    std::getline(table, header);
    std::getline(table, row);
    std::vector<std::string> cells;
    std::stringstream split(row);
    for (std::string cell; std::getline(split, cell, ',');) cells.push_back(cell);
    ASSERT_GT(cells.size(), 3u) << header << "\n" << row;
    EXPECT_EQ(cells[3], std::to_string(c.voxels)) << header << "\n" << row;
  }
}

INSTANTIATE_TEST_SUITE_P(Files, ImageCorpus, ::testing::ValuesIn(image_cases()),
                         [](const ::testing::TestParamInfo<ImageCase>& param_info) { return param_info.param.name; });

// Every input a fuzzer found a crash, hang or sanitizer report with
// (tests/data/fuzz-regressions/<format>/, named after what it broke) loads or
// is refused naming the file; the sanitizer suite runs this too.
TEST(FuzzRegressions, EveryFindingLoadsOrIsRefusedNamingTheFile) {
  const fs::path root = fs::path(FUSIONFLOW_SOURCE_DIR) / "tests/data/fuzz-regressions";
  const std::map<std::string, std::string> extension = {
      {"nifti", ".nii"}, {"nrrd", ".nrrd"}, {"metaimage", ".mha"}, {"png", ".png"}, {"dicom", ".dcm"}};
  const fs::path dir = testing::fresh_temp_directory("fuzz-regressions");
  std::size_t count = 0;
  for (const auto& [format, suffix] : extension) {
    if (!fs::is_directory(root / format)) continue;
    for (const auto& entry : fs::directory_iterator(root / format)) {
      const fs::path input = dir / (entry.path().stem().string() + suffix);
      write_bytes(input, read_bytes(entry.path()));
      testing::NodeHarness node(testing::bundled_plugins(), "io.load_image");
      node.set_param("path", input.string());
      try {
        node.run();
      } catch (const std::exception& error) {
        EXPECT_NE(std::string(error.what()).find(input.string()), std::string::npos) << error.what();
      }
      ++count;
    }
  }
  fs::remove_all(dir);
  EXPECT_GE(count, 1u);
}

TEST(ImageCorpusSize, HoldsAtLeastSixtyCasesWithUniqueNames) {
  const auto cases = image_cases();
  EXPECT_GE(cases.size(), 60u);
  std::set<std::string> names;
  for (const auto& c : cases) EXPECT_TRUE(names.insert(c.name).second) << c.name;
}

}  // namespace
}  // namespace fusionflow
