// NIfTI, NRRD and MetaImage files through ITK, with the checks ITK does not
// make (PNG files are read with libpng, png_file.cpp):
// - the ImageIO is chosen from the file name, so a damaged file is never
//   handed to another format's reader (GDCM, built with assertions on Debian,
//   aborts the process on some non-DICOM input);
// - dimensions, pixel type, voxel count and geometry are checked from the
//   header (ImageIOBase::ReadImageInformation) before any voxel buffer exists;
// - the file must be able to hold the voxel data its header announces. ITK's
//   NIfTI and MetaImage readers zero-fill missing data without an error, so
//   uncompressed files are checked against their size and compressed ones
//   (.nii.gz, compressed MetaImage) are inflated once with zlib to check that
//   the stream is complete and long enough.
#include "io_internal.hpp"

#include <fusionflow/itk_bridge.hpp>

#include <itkExtractImageFilter.h>
#include <itkImageFileReader.h>
#include <itkImageIOBase.h>
#include <itkMetaImageIO.h>
#include <itkNiftiImageIO.h>
#include <itkNrrdImageIO.h>
#include <zlib.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <functional>
#include <iterator>
#include <limits>
#include <map>
#include <optional>
#include <set>
#include <sstream>
#include <stdexcept>
#include <string>
#include <system_error>
#include <tuple>
#include <utility>
#include <vector>

namespace fusionflow::io {
namespace {
namespace fs = std::filesystem;

enum class FileFormat { Nifti, Nrrd, MetaImage, Png };

const char* format_name(FileFormat format) {
  switch (format) {
    case FileFormat::Nifti: return "NIfTI";
    case FileFormat::Nrrd: return "NRRD";
    case FileFormat::MetaImage: return "MetaImage";
    case FileFormat::Png: return "PNG";
  }
  return "image";
}

const char* format_key(FileFormat format) {
  switch (format) {
    case FileFormat::Nifti: return "nifti";
    case FileFormat::Nrrd: return "nrrd";
    case FileFormat::MetaImage: return "metaimage";
    case FileFormat::Png: return "png";
  }
  return "image";
}

std::string number_text(double value) {
  std::ostringstream text;
  text << value;
  return text.str();
}

FileFormat format_from_name(const fs::path& path) {
  const std::string name = lower(path.filename().string());
  for (const char* suffix : {".nii", ".nii.gz", ".hdr", ".img", ".img.gz"}) {
    if (ends_with(name, suffix)) return FileFormat::Nifti;
  }
  if (ends_with(name, ".nrrd") || ends_with(name, ".nhdr")) return FileFormat::Nrrd;
  if (ends_with(name, ".mha") || ends_with(name, ".mhd")) return FileFormat::MetaImage;
  if (ends_with(name, ".png")) return FileFormat::Png;
  throw std::runtime_error("cannot read " + quoted(path) + ": unrecognised file type '" + path.extension().string() +
                           "'; supported: .nii, .nii.gz, .nrrd, .nhdr, .mha, .mhd, .png, DICOM files (.dcm, or "
                           "with a DICM preamble) and directories holding a DICOM series");
}

itk::ImageIOBase::Pointer make_io(FileFormat format) {
  switch (format) {
    case FileFormat::Nifti: return itk::NiftiImageIO::New().GetPointer();
    case FileFormat::Nrrd: return itk::NrrdImageIO::New().GetPointer();
    case FileFormat::MetaImage: return itk::MetaImageIO::New().GetPointer();
    case FileFormat::Png:  // read_png_file
      break;
  }
  return nullptr;
}

std::uint64_t size_of_file(const fs::path& path) {
  std::error_code ec;
  const auto size = fs::file_size(path, ec);
  if (ec) throw std::runtime_error("cannot read " + quoted(path) + ": " + ec.message());
  return size;
}

std::string read_prefix(const fs::path& path, std::size_t count) {
  std::ifstream in(path, std::ios::binary);
  std::string bytes(count, '\0');
  in.read(bytes.data(), static_cast<std::streamsize>(count));
  bytes.resize(static_cast<std::size_t>(std::max<std::streamsize>(0, in.gcount())));
  return bytes;
}

bool is_gzip(const fs::path& path) {
  const std::string magic = read_prefix(path, 2);
  return magic.size() == 2 && static_cast<unsigned char>(magic[0]) == 0x1f &&
         static_cast<unsigned char>(magic[1]) == 0x8b;
}

// Result of inflating a zlib or gzip stream to its end.
struct InflateResult {
  std::uint64_t bytes = 0;  // decompressed bytes produced
  bool complete = false;    // the (last) stream ended with a valid trailer
  std::string error;        // zlib's message for corrupt data
  std::string head;         // first bytes of the decompressed data
};

// Inflates the file from `offset` to its end, or over `length` bytes when
// given, without keeping the output (zlib with automatic zlib/gzip header
// detection; concatenated gzip members are followed). Reads everything so
// that the trailer's checksum is verified.
// `sink`, when given, sees every decompressed byte, in order.
using InflateSink = std::function<void(const unsigned char* bytes, std::size_t size)>;
InflateResult inflate_file(const fs::path& path, std::uint64_t offset, std::size_t head_bytes,
                           std::optional<std::uint64_t> length = std::nullopt, const InflateSink& sink = {}) {
  InflateResult result;
  std::ifstream in(path, std::ios::binary);
  in.seekg(static_cast<std::streamoff>(offset));
  std::uint64_t unread = length.value_or(std::numeric_limits<std::uint64_t>::max());
  z_stream stream{};
  if (inflateInit2(&stream, 15 + 32) != Z_OK) {
    result.error = "zlib initialisation failed";
    return result;
  }
  std::vector<unsigned char> input(1 << 16);
  std::vector<unsigned char> output(1 << 18);
  bool stream_ended = false;
  int status = Z_OK;
  while (true) {
    if (stream.avail_in == 0) {
      const auto want = static_cast<std::streamsize>(std::min<std::uint64_t>(input.size(), unread));
      if (want == 0) break;
      in.read(reinterpret_cast<char*>(input.data()), want);
      const auto got = in.gcount();
      if (got <= 0) break;
      unread -= static_cast<std::uint64_t>(got);
      stream.next_in = input.data();
      stream.avail_in = static_cast<uInt>(got);
    }
    if (stream_ended) {
      // Another gzip member may follow (as written by bgzip); anything else
      // is trailing padding and ignored, as gzip does.
      if (stream.avail_in >= 2 && stream.next_in[0] == 0x1f && stream.next_in[1] == 0x8b) {
        inflateReset(&stream);
        stream_ended = false;
      } else {
        break;
      }
    }
    stream.next_out = output.data();
    stream.avail_out = static_cast<uInt>(output.size());
    status = inflate(&stream, Z_NO_FLUSH);
    const std::size_t produced = output.size() - stream.avail_out;
    if (result.head.size() < head_bytes) {
      const std::size_t take = std::min(produced, head_bytes - result.head.size());
      result.head.append(reinterpret_cast<const char*>(output.data()), take);
    }
    result.bytes += produced;
    if (sink && produced > 0) sink(output.data(), produced);
    if (status == Z_STREAM_END) {
      stream_ended = true;
      continue;
    }
    if (status == Z_BUF_ERROR && stream.avail_in == 0) continue;  // needs more input
    if (status == Z_NEED_DICT) {
      // A zlib stream made with a preset dictionary (FDICT): no image writer
      // uses one, and MetaIO's inflate loop never returns on it (found by
      // fuzz_metaimage).
      result.error = "the zlib stream asks for a preset dictionary, which image files never use";
      break;
    }
    if (status != Z_OK) {
      result.error = stream.msg != nullptr ? stream.msg : ("zlib error " + std::to_string(status));
      break;
    }
  }
  result.complete = stream_ended && result.error.empty();
  inflateEnd(&stream);
  return result;
}

// The zlib compression ratio cannot exceed about 1032:1; a header announcing
// more voxel data than that is corrupt whatever the encoding.
void check_plausible_size(const fs::path& path, std::uint64_t data_file_size, std::uint64_t voxel_bytes,
                          const std::string& grid) {
  const long double bound = static_cast<long double>(data_file_size) * 1100.0L + 65536.0L;
  if (static_cast<long double>(voxel_bytes) > bound) {
    throw std::runtime_error("cannot read " + quoted(path) + ": the header announces " + grid + " voxels (" +
                             std::to_string(voxel_bytes) + " bytes) but the file holds only " +
                             std::to_string(data_file_size) +
                             " bytes, more than any compression could explain: the header is corrupt or the file "
                             "truncated");
  }
}

// `where` completes "... but <where> <available> bytes".
[[noreturn]] void throw_truncated(const fs::path& path, const std::string& grid, std::uint64_t needed,
                                  std::uint64_t available, const std::string& where) {
  throw std::runtime_error("cannot read " + quoted(path) + ": the file is truncated: its header announces " + grid +
                           " voxels (" + std::to_string(needed) + " bytes of voxel data) but " + where + " " +
                           std::to_string(available) + " bytes; re-export or re-copy the file");
}

std::uint32_t read_u32(const std::string& bytes, std::size_t offset, bool swap) {
  std::uint32_t value = 0;
  std::memcpy(&value, bytes.data() + offset, sizeof value);
  return swap ? __builtin_bswap32(value) : value;
}

// NIfTI-1 / NIfTI-2 header: size and voxel offset (hand-read: ITK's NIfTI IO
// does not expose the voxel offset). Returns the offset of the voxel data,
// at most kBeyondAnyFile (an offset no file reaches, which the size checks
// then report as truncation; a larger float would not convert, and offset
// arithmetic near 2^64 would wrap).
constexpr std::uint64_t kBeyondAnyFile = std::uint64_t{1} << 62;
std::uint64_t nifti_data_offset(const fs::path& path, const std::string& head) {
  if (head.size() < 348) {
    throw std::runtime_error("cannot read " + quoted(path) + ": the NIfTI header is truncated (" +
                             std::to_string(head.size()) + " of at least 348 bytes)");
  }
  const bool nifti1 = read_u32(head, 0, false) == 348 || read_u32(head, 0, true) == 348;
  const bool swap = read_u32(head, 0, false) != 348 && read_u32(head, 0, false) != 540;
  if (nifti1) {
    std::uint32_t raw = read_u32(head, 108, swap);
    float vox_offset = 0.0f;
    std::memcpy(&vox_offset, &raw, sizeof vox_offset);
    const double offset = std::isfinite(vox_offset) && vox_offset > 0 ? double(vox_offset) : 0.0;
    if (offset >= double(kBeyondAnyFile)) return kBeyondAnyFile;
    return std::max<std::uint64_t>(348, static_cast<std::uint64_t>(offset));
  }
  if (head.size() >= 176) {
    std::uint64_t value = 0;
    std::memcpy(&value, head.data() + 168, sizeof value);
    if (swap) value = __builtin_bswap64(value);
    return std::clamp<std::uint64_t>(value, 540, kBeyondAnyFile);
  }
  return 540;
}

// A NIfTI-1 or NIfTI-2 header as the file holds it, before niftilib's
// repairs (zlib's gzread reads plain and gzip files alike).
struct RawNiftiHeader {
  std::string head;
  bool nifti1 = false, swap = false;
  std::uint16_t u16(std::size_t offset) const {
    std::uint16_t value = 0;
    std::memcpy(&value, head.data() + offset, sizeof value);
    return swap ? __builtin_bswap16(value) : value;
  }
  double f32(std::size_t offset) const {
    const std::uint32_t raw = read_u32(head, offset, swap);
    float value = 0;
    std::memcpy(&value, &raw, sizeof value);
    return double(value);
  }
  double f64(std::size_t offset) const {
    std::uint64_t raw = 0;
    std::memcpy(&raw, head.data() + offset, sizeof raw);
    if (swap) raw = __builtin_bswap64(raw);
    double value = 0;
    std::memcpy(&value, &raw, sizeof value);
    return value;
  }
  // pixdim[n], n = 0..7
  double pixdim(int n) const { return nifti1 ? f32(76 + 4 * std::size_t(n)) : f64(104 + 8 * std::size_t(n)); }
};

// From the first (up to) 540 bytes of the file's uncompressed data.
std::optional<RawNiftiHeader> parse_raw_nifti_header(std::string head) {
  RawNiftiHeader header;
  header.head = std::move(head);
  if (header.head.size() < 348) return std::nullopt;
  header.nifti1 = read_u32(header.head, 0, false) == 348 || read_u32(header.head, 0, true) == 348;
  header.swap = read_u32(header.head, 0, false) != 348 && read_u32(header.head, 0, false) != 540;
  if (!header.nifti1 && header.head.size() < 540) return std::nullopt;
  return header;
}

std::optional<RawNiftiHeader> read_raw_nifti_header(const fs::path& path) {
  const std::string name = lower(path.filename().string());
  if (!ends_with(name, ".nii") && !ends_with(name, ".nii.gz")) return std::nullopt;
  gzFile file = gzopen(path.c_str(), "rb");
  if (file == nullptr) return std::nullopt;
  std::string head(540, '\0');
  const int got = gzread(file, head.data(), static_cast<unsigned>(head.size()));
  gzclose(file);
  head.resize(got > 0 ? static_cast<std::size_t>(got) : 0);
  return parse_raw_nifti_header(std::move(head));
}

// FLOAT32 (16) and FLOAT64 (64) voxels are the only ones that can be
// non-finite: their size in bytes, else 0.
std::size_t float_voxel_bytes(const RawNiftiHeader& header) {
  const unsigned datatype = header.nifti1 ? header.u16(70) : header.u16(12);
  return datatype == 16 ? 4 : datatype == 64 ? 8 : 0;
}

// Watches a .nii.gz file's uncompressed bytes go by (the truncation check
// inflates them anyway) for a NaN or Inf among the float voxels, so that the
// pass that puts them back after niftilib (restore_nifti_nonfinite, which
// inflates the file once more) runs only for files that have one. Values
// beyond the voxel data count too: a false alarm only costs that pass.
class NonFiniteScan {
 public:
  explicit NonFiniteScan(const fs::path& path) : path_(path) {}

  void consume(const unsigned char* bytes, std::size_t size) {
    if (!parsed_) {
      const std::size_t take = std::min(size, kHeadBytes - head_.size());
      head_.append(reinterpret_cast<const char*>(bytes), take);
      if (head_.size() < kHeadBytes) return;  // all of it was header
      parse_and_scan_head();
      scan(kHeadBytes, bytes + take, size - take);
      return;
    }
    scan(position_, bytes, size);
  }

  // True unless every float voxel went by and none was NaN or Inf.
  bool may_hold_nonfinite() {
    if (!parsed_) parse_and_scan_head();  // a file shorter than 540 bytes
    if (!header_) return true;            // not understood here: the restore pass decides
    return value_bytes_ != 0 && found_;
  }

 private:
  static constexpr std::size_t kHeadBytes = 540;

  // The head may already hold voxels (NIfTI-1's data often starts at 352).
  void parse_and_scan_head() {
    parsed_ = true;
    header_ = parse_raw_nifti_header(head_);
    if (!header_) return;
    value_bytes_ = float_voxel_bytes(*header_);
    data_offset_ = nifti_data_offset(path_, header_->head);
    scan(0, reinterpret_cast<const unsigned char*>(head_.data()), head_.size());
  }

  // `bytes` hold the uncompressed stream from `at` on.
  void scan(std::uint64_t at, const unsigned char* bytes, std::size_t size) {
    position_ = at + size;
    if (!header_ || value_bytes_ == 0 || found_) return;
    std::size_t i = 0;
    if (at < data_offset_) i = static_cast<std::size_t>(std::min<std::uint64_t>(size, data_offset_ - at));
    for (; i < size; ++i) {
      partial_[partial_size_++] = bytes[i];
      if (partial_size_ < value_bytes_) continue;
      partial_size_ = 0;
      if (value_bytes_ == 4) {
        std::uint32_t raw = 0;
        std::memcpy(&raw, partial_.data(), 4);
        if (header_->swap) raw = __builtin_bswap32(raw);
        found_ = (raw & 0x7f800000u) == 0x7f800000u;
      } else {
        std::uint64_t raw = 0;
        std::memcpy(&raw, partial_.data(), 8);
        if (header_->swap) raw = __builtin_bswap64(raw);
        found_ = (raw & 0x7ff0000000000000ull) == 0x7ff0000000000000ull;
      }
      if (found_) return;
    }
  }

  fs::path path_;
  std::string head_;
  bool parsed_ = false;
  std::optional<RawNiftiHeader> header_;
  std::size_t value_bytes_ = 0;
  std::uint64_t data_offset_ = 0;
  std::uint64_t position_ = 0;
  std::array<unsigned char, 8> partial_{};
  std::size_t partial_size_ = 0;
  bool found_ = false;
};

// What niftilib lets through and then misreads: a header size that is
// neither NIfTI-1's nor NIfTI-2's, and a zero or non-finite pixdim, which it
// replaces by 1 without a word (where the spacing comes from pixdim, no
// sform, the image would get a 1 mm spacing nobody wrote).
void check_raw_nifti_header(const fs::path& path, const NiftiHeader& nifti) {
  const auto raw = read_raw_nifti_header(path);
  if (!raw) return;
  const std::uint32_t sizeof_hdr = read_u32(raw->head, 0, raw->swap);
  if (sizeof_hdr != 348 && sizeof_hdr != 540) {
    throw std::runtime_error("cannot read " + quoted(path) +
                             ": not a valid NIfTI file: its header size (sizeof_hdr) "
                             "is " +
                             std::to_string(read_u32(raw->head, 0, false)) +
                             ", not 348 (NIfTI-1) or 540 (NIfTI-2): the header is corrupt");
  }
  if (nifti.sform_code > 0) return;  // the sform's columns give the spacing
  for (int axis = 1; axis <= std::min(3, nifti.ndim); ++axis) {
    const double value = raw->pixdim(axis);
    if (!std::isfinite(value) || value == 0.0) {
      throw std::runtime_error("cannot read " + quoted(path) + ": the header's voxel size pixdim[" +
                               std::to_string(axis) + "] is " + number_text(value) +
                               " and no sform gives the geometry: the header is corrupt (its spacing is unknown)");
    }
  }
}

// niftilib (inside ITK's NIfTI reader) replaces NaN and Inf voxels of
// float files by 0 without a word, which would hide them from the loaders'
// non-finite check. This puts them back from the file (hand-read header
// fields). `first_voxel`: where the volume starts in the file's voxel data
// (4D files).
void restore_nifti_nonfinite(const fs::path& path, Volume& volume, std::uint64_t first_voxel = 0) {
  const auto header = read_raw_nifti_header(path);
  if (!header) return;
  const bool nifti1 = header->nifti1, swap = header->swap;
  gzFile file = gzopen(path.c_str(), "rb");
  if (file == nullptr) return;
  const std::uint64_t offset = nifti_data_offset(path, header->head);
  double slope = nifti1 ? header->f32(112) : header->f64(176);
  const double intercept_raw = nifti1 ? header->f32(116) : header->f64(184);
  if (slope == 0.0 || !std::isfinite(slope)) slope = 1.0;
  const double intercept = std::isfinite(intercept_raw) ? intercept_raw : 0.0;
  const std::size_t bytes = float_voxel_bytes(*header);
  if (bytes == 0 || gzseek(file, static_cast<z_off_t>(offset + first_voxel * bytes), SEEK_SET) < 0) {
    gzclose(file);
    return;
  }
  std::vector<unsigned char> chunk(bytes * 65536);
  std::size_t index = 0;
  const std::size_t count = volume.voxels.size();
  while (index < count) {
    const std::size_t want = std::min(count - index, std::size_t{65536}) * bytes;
    const int read = gzread(file, chunk.data(), static_cast<unsigned>(want));
    if (read <= 0) break;
    const std::size_t values = static_cast<std::size_t>(read) / bytes;
    for (std::size_t n = 0; n < values; ++n, ++index) {
      double value = 0;
      if (bytes == 4) {
        std::uint32_t raw = 0;
        std::memcpy(&raw, chunk.data() + n * 4, 4);
        if (swap) raw = __builtin_bswap32(raw);
        float single = 0;
        std::memcpy(&single, &raw, 4);
        value = single;
      } else {
        std::uint64_t raw = 0;
        std::memcpy(&raw, chunk.data() + n * 8, 8);
        if (swap) raw = __builtin_bswap64(raw);
        std::memcpy(&value, &raw, 8);
      }
      if (!std::isfinite(value)) volume.voxels[index] = static_cast<float>(value * slope + intercept);
    }
    if (static_cast<std::size_t>(read) < want) break;
  }
  gzclose(file);
}

// Returns false when the check saw every voxel and none was a non-finite
// float (restore_nifti_nonfinite would change nothing), else true.
bool check_nifti_container(const fs::path& path, std::uint64_t voxel_bytes, const std::string& grid) {
  const std::string name = lower(path.filename().string());
  if (ends_with(name, ".hdr")) {
    // Analyze/NIfTI pair: the voxels live in the .img next to it.
    fs::path image = path;
    image.replace_extension(".img");
    std::error_code ec;
    for (const fs::path& candidate : {image, fs::path(image.string() + ".gz")}) {
      if (fs::is_regular_file(candidate, ec)) note_file_read(candidate);  // for the node cache
    }
    if (fs::is_regular_file(image, ec) && !is_gzip(image)) {
      const auto size = size_of_file(image);
      if (size < voxel_bytes) throw_truncated(path, grid, voxel_bytes, size, quoted(image) + " holds only");
    }
    return true;
  }
  if (ends_with(name, ".img") || ends_with(name, ".img.gz")) {  // ITK reads the header next to it
    fs::path header = ends_with(name, ".gz") ? path.parent_path() / path.stem() : path;
    note_file_read(header.replace_extension(".hdr"));
    return true;
  }
  const std::uint64_t size = size_of_file(path);
  if (!is_gzip(path)) {
    const std::uint64_t offset = nifti_data_offset(path, read_prefix(path, 540));
    if (size < offset + voxel_bytes) {
      throw_truncated(path, grid, voxel_bytes, size > offset ? size - offset : 0,
                      "the data after its header (offset " + std::to_string(offset) + ") is only");
    }
    return true;  // the restore pass reads the plain file: no inflating to save
  }
  check_plausible_size(path, size, voxel_bytes, grid);
  NonFiniteScan scan(path);
  const InflateResult inflated = inflate_file(
      path, 0, 540, std::nullopt, [&](const unsigned char* bytes, std::size_t count) { scan.consume(bytes, count); });
  if (!inflated.error.empty()) {
    throw std::runtime_error("cannot read " + quoted(path) + ": the gzip data is corrupt (" + inflated.error +
                             "); re-export or re-copy the file");
  }
  const std::uint64_t offset = nifti_data_offset(path, inflated.head);
  if (!inflated.complete || inflated.bytes < offset + voxel_bytes) {
    const std::uint64_t available = inflated.bytes > offset ? inflated.bytes - offset : 0;
    throw_truncated(
        path, grid, voxel_bytes, available,
        inflated.complete ? "the decompressed data after the header is only" : "the gzip stream ends after");
  }
  return scan.may_hold_nonfinite();
}

// MetaImage header fields up to ElementDataFile, where the header ends, and
// the first thing in it MetaIO would misread. ITK's MetaImageIO does not
// expose the data offset, MetaIO only prints a warning for missing data, and
// MetaIO (built without bounds checks) reads its header as a character stream
// into fixed-size buffers. So the header is read here first, line by line, and
// any header MetaIO would read differently from that, or past one of its
// buffers, is refused before MetaIO sees it.
struct MetaHeader {
  bool compressed = false;
  // BinaryData (MetaImage's default is binary): false means the voxels are
  // decimal text, which MetaIO reads correctly only through its whole-image
  // path, the one ITK takes for 3D files (see check_meta_counts).
  bool binary = true;
  std::string compressed_size;  // CompressedDataSize as written, if given
  // NDims, ElementNumberOfChannels as written, every time they are: MetaIO
  // sizes the arrays that follow each one by it (found by fuzz_metaimage: a
  // huge NDims followed by DimSize, then NDims = 4).
  std::vector<std::string> ndims, channels;
  // Every ElementType given: MetaIO takes an unknown one as size 0 and
  // divides by it (found by fuzz_metaimage: SIGFPE in MetaImage::ReadStream).
  std::vector<std::string> element_types;
  bool sequence_id = false;  // MetaIO reads NDims values of it (the last NDims) into 4 floats
  std::string problem;       // the first line MetaIO would misread or overflow on, or empty
  std::string data_file;
  std::uint64_t data_offset = 0;
};

// What MET_Read (ITK 5.2's MetaIO) does with a header, and what follows for a
// line-by-line reading to be the same as its own:
// - a field name runs to the first '=', ':', CR or LF, at most 500 bytes; a
//   name ended by CR or LF takes its value from after the next '=' or ':',
//   lines later: every field line must have its separator on it;
// - text values are read with getline(500) and numbers with operator>>, which
//   skips line ends: a numeric field with nothing after its '=' takes the next
//   line's number, an array with fewer numbers than it needs goes on into the
//   next lines, and a line of 499 bytes or more puts the stream in a failed
//   state;
// - unknown field names are copied into 255-byte buffers, and Comment,
//   ObjectType, ObjectSubType, Name and AcquisitionDate values into 255-byte
//   members of MetaObject (found by fuzz_metaimage: a long Name overwrote the
//   MetaImage object's compression table pointer, freed later: heap
//   corruption in MetaObject::ClearFields; a 270-byte field name aborted in
//   strcpy);
// - SequenceID is read into a 4-element array, NDims values of it;
// - names and values are C strings (a NUL ends them) and booleans are read
//   from their first letter (found by fuzz_metaimage: "CompressedData<NUL...>
//   = True" is CompressedData to MetaIO).
constexpr std::size_t kMetaIoBufferBytes = 255;  // MET_FieldRecordType::name, MetaObject::m_Name, ...
constexpr std::size_t kMetaIoLineBytes = 499;    // getline(s, 500)

MetaHeader parse_meta_header(const fs::path& path) {
  const std::string head = read_prefix(path, 1 << 20);
  MetaHeader header;
  static const std::set<std::string> kNumbers{"NDims",
                                              "ID",
                                              "ParentID",
                                              "CompressedDataSize",
                                              "FileFormatVersion",
                                              "HeaderSize",
                                              "ElementMin",
                                              "ElementMax",
                                              "ElementNumberOfChannels",
                                              "ElementNBits",
                                              "ElementToIntensityFunctionSlope",
                                              "ElementToIntensityFunctionOffset"};
  // Arrays with NDims values (Color has 4; the matrices NDims x NDims).
  static const std::set<std::string> kVectors{"Position",         "Origin",         "Offset",
                                              "CenterOfRotation", "ElementSpacing", "DimSize",
                                              "ImagePosition",    "SequenceID",     "ElementSize"};
  static const std::set<std::string> kMatrices{"TransformMatrix", "Rotation", "Orientation"};
  static const std::set<std::string> kBoundedTexts{"Comment", "ObjectType", "ObjectSubType", "Name", "AcquisitionDate"};
  static const std::set<std::string> kOtherFields{
      "Color",         "CompressedData",        "BinaryData", "ElementByteOrderMSB", "BinaryDataByteOrderMSB",
      "DistanceUnits", "AnatomicalOrientation", "Modality",   "ElementType",         "ElementDataFile"};
  const auto is_space = [](char c) { return std::isspace(static_cast<unsigned char>(c)) != 0; };
  const auto is_blank = [](char c) { return c == ' ' || c == '\t'; };
  const auto c_string = [](const std::string& text) { return text.substr(0, text.find('\0')); };
  const auto printable = [](const std::string& text) {
    std::string shown;
    for (const char c : text.substr(0, 40)) shown += std::isprint(static_cast<unsigned char>(c)) ? c : '?';
    return shown;
  };
  long dimensions = 0;  // the NDims in force, as MetaIO sizes arrays by it
  std::size_t position = 0;
  int line_number = 0;
  while (position < head.size() && header.problem.empty()) {
    std::size_t end = head.find('\n', position);
    const bool last = end == std::string::npos;
    if (last) end = head.size();
    const std::string line = head.substr(position, end - position);
    position = last ? end : end + 1;
    ++line_number;
    // Values are never shown: a MetaImage Name or Comment may hold a patient's name.
    std::string where = "line " + std::to_string(line_number);
    std::size_t name_start = 0;
    while (name_start < line.size() && is_space(line[name_start])) ++name_start;
    if (name_start == line.size()) continue;  // MetaIO skips blank lines
    if (line.size() >= kMetaIoLineBytes) {
      header.problem = where + " is " + std::to_string(line.size()) +
                       " bytes long; MetaIO reads header lines of at most " + std::to_string(kMetaIoLineBytes - 1);
      break;
    }
    const std::size_t name_end = line.find_first_of("=:\r", name_start);
    if (name_end == std::string::npos || line[name_end] == '\r') {
      // Named only when it is a MetaIO field: the line may be any text.
      std::string name = c_string(line.substr(name_start, std::min(name_end, line.size()) - name_start));
      while (!name.empty() && is_space(name.back())) name.pop_back();
      const bool known = kNumbers.count(name) != 0 || kVectors.count(name) != 0 || kMatrices.count(name) != 0 ||
                         kBoundedTexts.count(name) != 0 || kOtherFields.count(name) != 0;
      header.problem = where + (known ? " (" + name + ")" : std::string()) +
                       " is not a 'Name = Value' line (MetaIO would take the next line's value for it)";
      break;
    }
    std::size_t trimmed_end = name_end;
    while (trimmed_end > name_start && is_blank(line[trimmed_end - 1])) --trimmed_end;
    const std::string raw_name = line.substr(name_start, trimmed_end - name_start);
    const std::string key = c_string(raw_name);
    where += " (" + printable(key) + ")";
    if (raw_name.size() >= kMetaIoBufferBytes) {
      header.problem = where + " has a field name of " + std::to_string(raw_name.size()) +
                       " bytes; MetaIO takes names of at most " + std::to_string(kMetaIoBufferBytes - 1);
      break;
    }
    std::size_t value_start = name_end;
    while (value_start < line.size() &&
           (line[value_start] == '=' || line[value_start] == ':' || is_blank(line[value_start]))) {
      ++value_start;
    }
    const std::string raw_value = c_string(line.substr(value_start));
    const auto final = raw_value.find_last_not_of(" \t\r");
    const std::string value = final == std::string::npos ? std::string() : raw_value.substr(0, final + 1);
    // The numbers operator>> would read from the value, in a row (strtod
    // also takes nan, inf and hexadecimal numbers, which operator>> does not).
    const auto read_numbers = [&value]() {
      std::vector<double> numbers;
      const char* cursor = value.c_str();
      for (;;) {
        char* after = nullptr;
        const double number = std::strtod(cursor, &after);
        if (after == cursor || std::any_of(cursor, static_cast<const char*>(after), [](char c) {
              return std::isalpha(static_cast<unsigned char>(c)) && c != 'e' && c != 'E';
            })) {
          return numbers;
        }
        numbers.push_back(number);
        cursor = after;
      }
    };
    const auto count_numbers = [&read_numbers]() { return read_numbers().size(); };
    if (kNumbers.count(key) != 0 && count_numbers() == 0) {
      header.problem = where + " is not a number";
    } else if (kBoundedTexts.count(key) != 0 && raw_value.size() >= kMetaIoBufferBytes) {
      header.problem = where + " has a value of " + std::to_string(raw_value.size()) + " bytes; MetaIO takes at most " +
                       std::to_string(kMetaIoBufferBytes - 1);
    } else if (key == "Color" || (dimensions > 0 && (kVectors.count(key) != 0 || kMatrices.count(key) != 0))) {
      const std::size_t needed = key == "Color"              ? 4
                                 : kMatrices.count(key) != 0 ? std::size_t(dimensions * dimensions)
                                                             : std::size_t(dimensions);
      const std::size_t given = count_numbers();
      if (given < needed) {
        header.problem = where + " has " + std::to_string(given) + " numbers where it needs " + std::to_string(needed) +
                         (key == "Color" ? std::string() : " (NDims = " + std::to_string(dimensions) + ")") +
                         " (MetaIO would read the rest from the next lines)";
      } else if (key == "SequenceID" && dimensions > 4) {
        header.problem =
            where + ": MetaIO reads at most 4 SequenceID values, and NDims is " + std::to_string(dimensions);
      }
    }
    // MetaIO casts these to int (UB beyond its range; found by
    // fuzz_metaimage with MetaIO built with UBSan: DimSize 6e21).
    if (header.problem.empty() && (key == "DimSize" || key == "HeaderSize" || key == "ID" || key == "ParentID")) {
      const std::vector<double> numbers = read_numbers();
      const std::size_t used = key == "DimSize" && dimensions > 0 ? std::size_t(dimensions) : 1;
      for (std::size_t n = 0; n < std::min(used, numbers.size()); ++n) {
        if (!(numbers[n] > -2147483649.0 && numbers[n] < 2147483648.0)) {
          header.problem = where + " has a number beyond the range of MetaIO's int (" +
                           std::to_string(std::numeric_limits<int>::min()) + " to " +
                           std::to_string(std::numeric_limits<int>::max()) + ")";
          break;
        }
      }
    }
    if (!header.problem.empty()) break;
    if (key == "CompressedData")
      header.compressed = !value.empty() && (value[0] == 'T' || value[0] == 't' || value[0] == '1');
    if (key == "BinaryData") header.binary = !value.empty() && (value[0] == 'T' || value[0] == 't' || value[0] == '1');
    if (key == "CompressedDataSize") header.compressed_size = value;
    if (key == "ElementType") header.element_types.push_back(value);
    if (key == "NDims") {
      header.ndims.push_back(value);
      // Out of range ones are refused by check_meta_counts; until then arrays are not checked.
      const long parsed = std::strtol(value.c_str(), nullptr, 10);
      dimensions = parsed >= 1 && parsed <= 8 ? parsed : 0;
    }
    if (key == "ElementNumberOfChannels") header.channels.push_back(value);
    if (key == "SequenceID") header.sequence_id = true;
    if (key == "ElementDataFile") {
      header.data_file = value;
      header.data_offset = position;
      break;
    }
  }
  return header;
}

// MetaIO sizes its arrays from NDims and ElementNumberOfChannels before
// reading them (found by fuzz_metaimage: NDims = 77777777777773 kept it busy
// for minutes): counts no image has, and headers MetaIO would misread (see
// parse_meta_header), are refused before MetaIO reads the file.
MetaHeader check_meta_counts(const fs::path& path) {
  MetaHeader header = parse_meta_header(path);
  const auto check = [&](const std::string& value, const char* field, long largest) {
    if (value.empty()) return;
    char* end = nullptr;
    const long count = std::strtol(value.c_str(), &end, 10);
    if (end == value.c_str() || *end != '\0' || count < 1 || count > largest) {
      throw std::runtime_error("cannot read " + quoted(path) + ": corrupt MetaImage header: " + field + " is '" +
                               value.substr(0, 40) + "', not a whole number from 1 to " + std::to_string(largest));
    }
  };
  // NDims first: the array checks in parse_meta_header take it as given.
  for (const std::string& value : header.ndims) check(value, "NDims", 8);
  // MetaImage::M_Read copies SequenceID for the NDims in force at the end,
  // which may be declared again after SequenceID.
  if (header.sequence_id && !header.ndims.empty() && std::strtol(header.ndims.back().c_str(), nullptr, 10) > 4) {
    throw std::runtime_error("cannot read " + quoted(path) +
                             ": corrupt MetaImage header: MetaIO reads at most 4 SequenceID values, and NDims is " +
                             header.ndims.back());
  }
  if (!header.problem.empty()) {
    throw std::runtime_error("cannot read " + quoted(path) + ": corrupt MetaImage header: " + header.problem);
  }
  static const std::set<std::string> kElementTypes{"MET_CHAR",  "MET_UCHAR",  "MET_SHORT",     "MET_USHORT",
                                                   "MET_INT",   "MET_UINT",   "MET_LONG",      "MET_ULONG",
                                                   "MET_FLOAT", "MET_DOUBLE", "MET_LONG_LONG", "MET_ULONG_LONG"};
  for (const std::string& type : header.element_types) {
    if (kElementTypes.count(type) == 0) {
      throw std::runtime_error("cannot read " + quoted(path) + ": corrupt MetaImage header: ElementType '" +
                               type.substr(0, 40) +
                               "' is not a MetaIO scalar type (MET_UCHAR, MET_SHORT, MET_FLOAT, ...)");
    }
  }
  for (const std::string& value : header.channels) check(value, "ElementNumberOfChannels", 4096);
  // ITK reads a file with other than 3 dimensions (a 2D slice, a 4D series)
  // through MetaIO's region reader, which for text voxels writes a byte
  // count of values into the buffer, past its end (found by fuzz_metaimage
  // with MetaIO built with ASan: heap-buffer-overflow in MET_DoubleToValue).
  const std::string dimensions = header.ndims.empty() ? std::string() : header.ndims.back();
  if (!header.binary && std::strtol(dimensions.c_str(), nullptr, 10) != 3) {
    throw std::runtime_error("cannot read " + quoted(path) + ": its voxels are text (BinaryData = False) in a " +
                             dimensions +
                             "D MetaImage, which ITK's MetaIO reads wrongly (past its buffer) unless the image is "
                             "3D; save it with binary data (BinaryData = True, as ITK and 3D Slicer write)");
  }
  return header;
}

// How many of the `needed` values MetaIO would read from the text voxel data
// of a MetaImage at `offset` of `data_path` (MetaImage::M_ReadElementData:
// operator>> then one character skipped), each checked against `type`'s
// range (MetaIO casts them to it). MetaIO reads a missing value as 0 and goes
// on, so a short file would load without a word.
void check_meta_text_voxels(const fs::path& path, const fs::path& data_path, std::uint64_t offset, std::uint64_t needed,
                            const std::string& type, const std::string& grid) {
  static const std::map<std::string, std::pair<double, double>> kRanges{
      {"MET_CHAR", {-128.0, 127.0}},
      {"MET_UCHAR", {0.0, 255.0}},
      {"MET_SHORT", {-32768.0, 32767.0}},
      {"MET_USHORT", {0.0, 65535.0}},
      {"MET_INT", {-2147483648.0, 2147483647.0}},
      {"MET_UINT", {0.0, 4294967295.0}},
      {"MET_LONG", {-2147483648.0, 2147483647.0}},  // MetaIO's MET_LONG is 4 bytes
      {"MET_ULONG", {0.0, 4294967295.0}},
      {"MET_LONG_LONG", {-9223372036854775808.0, 9223372036854775807.0}},
      {"MET_ULONG_LONG", {0.0, 18446744073709551615.0}},
      {"MET_FLOAT", {-double(std::numeric_limits<float>::max()), double(std::numeric_limits<float>::max())}},
      {"MET_DOUBLE", {-std::numeric_limits<double>::max(), std::numeric_limits<double>::max()}}};
  const auto range = kRanges.find(type);
  const bool integral = type != "MET_FLOAT" && type != "MET_DOUBLE";
  std::ifstream in(data_path, std::ios::binary);
  in.seekg(static_cast<std::streamoff>(offset));
  std::istreambuf_iterator<char> at(in), end;
  std::uint64_t count = 0;
  std::string token;
  const auto is_digit = [](char c) { return c >= '0' && c <= '9'; };
  while (count < needed) {
    while (at != end && std::isspace(static_cast<unsigned char>(*at))) ++at;
    // A decimal number as operator>> reads one: sign, digits, point, exponent.
    token.clear();
    if (at != end && (*at == '+' || *at == '-')) token += *at++;
    std::size_t digits = 0;
    while (at != end && is_digit(*at)) token += *at++, ++digits;
    if (at != end && *at == '.') {
      token += *at++;
      while (at != end && is_digit(*at)) token += *at++, ++digits;
    }
    if (digits > 0 && at != end && (*at == 'e' || *at == 'E')) {
      token += *at++;
      if (at != end && (*at == '+' || *at == '-')) token += *at++;
      std::size_t exponent_digits = 0;
      while (at != end && is_digit(*at)) token += *at++, ++exponent_digits;
      if (exponent_digits == 0) digits = 0;  // "1e": not a number operator>> accepts
    }
    if (digits == 0 || token.size() > 400) break;
    const double value = std::strtod(token.c_str(), nullptr);
    const bool fits = range != kRanges.end() && std::isfinite(value) &&
                      (integral ? value > range->second.first - 1.0 && value < range->second.second + 1.0
                                : value >= range->second.first && value <= range->second.second);
    if (!fits) {
      throw std::runtime_error("cannot read " + quoted(path) + ": text voxel " + std::to_string(count) + " (" +
                               token.substr(0, 40) + ") does not fit its ElementType " + type +
                               ": the file is corrupt");
    }
    ++count;
    if (at != end) ++at;  // MetaIO skips one character after each value
  }
  if (count < needed) {
    throw std::runtime_error("cannot read " + quoted(path) + ": its text voxel data (BinaryData = False) holds " +
                             std::to_string(count) + " numbers where its header (" + grid + ") needs " +
                             std::to_string(needed) + ": the file is truncated or corrupt");
  }
}

// `header`: check_meta_counts' reading of `path` (read once).
void check_meta_container(const fs::path& path, const MetaHeader& header, std::uint64_t voxels,
                          std::uint64_t voxel_bytes, const std::string& grid) {
  fs::path data_path;
  std::uint64_t offset = 0;
  if (header.data_file == "LOCAL") {
    data_path = path;
    offset = header.data_offset;
  } else if (header.data_file.empty()) {
    // MetaIO goes on without it and, for compressed data, allocates a size it
    // never learnt (found by fuzz_metaimage: 2^64 - 1 bytes).
    throw std::runtime_error("cannot read " + quoted(path) +
                             ": corrupt MetaImage header: no 'ElementDataFile = ...' line (LOCAL or the data file)");
  } else if (header.data_file.find("LIST") == 0 || header.data_file.find('%') != std::string::npos ||
             header.data_file.find(' ') != std::string::npos) {
    // A series of data files. MetaIO formats a pattern with the file's own
    // text as the printf format (a format-string hole on untrusted files) and
    // loops over whatever range the header gives (found by fuzz_metaimage: a
    // stray '%' took minutes); a LIST may name devices or FIFOs.
    throw std::runtime_error("cannot read " + quoted(path) + ": its ElementDataFile '" +
                             header.data_file.substr(0, 80) +
                             "' names a series of data files (a file-name pattern or LIST), which fusionflow does not "
                             "read; save the image as one .mha, or an .mhd with one data file");
  } else {
    data_path = path.parent_path() / header.data_file;
    std::error_code ec;
    if (!fs::is_regular_file(data_path, ec)) {
      throw std::runtime_error("cannot read " + quoted(path) + ": its data file " + quoted(data_path) +
                               " (ElementDataFile) does not exist");
    }
    note_file_read(data_path);  // for the node cache
  }
  if (!header.binary) {  // MetaIO ignores CompressedData for text voxels
    check_meta_text_voxels(path, data_path, offset, voxels,
                           header.element_types.empty() ? std::string() : header.element_types.back(), grid);
    return;
  }
  const std::uint64_t size = size_of_file(data_path);
  const std::uint64_t available = size > offset ? size - offset : 0;
  if (!header.compressed) {
    if (available < voxel_bytes) {
      throw_truncated(path, grid, voxel_bytes, available,
                      data_path == path ? "the data after its header is only" : quoted(data_path) + " holds only");
    }
    return;
  }
  std::optional<std::uint64_t> compressed_bytes;
  if (!header.compressed_size.empty()) {
    // MetaIO allocates CompressedDataSize bytes before reading them (found by
    // fuzz_metaimage: 1e31 made it ask for 2^63 bytes), and inflates only
    // those: the stream must end within them, or the image would be silently
    // cut short.
    char* end = nullptr;
    const double declared = std::strtod(header.compressed_size.c_str(), &end);
    if (end == header.compressed_size.c_str() || !std::isfinite(declared) || declared < 0 ||
        declared > double(available)) {
      throw std::runtime_error("cannot read " + quoted(path) + ": its CompressedDataSize '" +
                               header.compressed_size.substr(0, 40) + "' is not a byte count the file holds (" +
                               std::to_string(available) +
                               " bytes of data): the file is truncated or its header "
                               "corrupt");
    }
    // 0 is what MetaIO writes when it did not know the size: it then reads to the end.
    if (declared >= 1) compressed_bytes = static_cast<std::uint64_t>(declared);
  }
  check_plausible_size(path, available, voxel_bytes, grid);
  const InflateResult inflated = inflate_file(data_path, offset, 0, compressed_bytes);
  if (!inflated.error.empty()) {
    throw std::runtime_error("cannot read " + quoted(path) + ": the compressed voxel data is corrupt (" +
                             inflated.error + "); re-export or re-copy the file");
  }
  if (!inflated.complete && compressed_bytes) {
    throw std::runtime_error("cannot read " + quoted(path) + ": its compressed voxel data does not end within the " +
                             std::to_string(*compressed_bytes) + " bytes its CompressedDataSize gives (" +
                             std::to_string(inflated.bytes) + " of " + std::to_string(voxel_bytes) +
                             " bytes inflated): the header is corrupt or the data truncated; re-export the file");
  }
  if (!inflated.complete || inflated.bytes < voxel_bytes) {
    throw_truncated(path, grid, voxel_bytes, inflated.bytes,
                    inflated.complete ? "its decompressed data is only" : "its compressed stream ends after");
  }
}

void check_geometry(const fs::path& path, const itk::ImageIOBase& io) {
  const unsigned dims = std::min(3u, io.GetNumberOfDimensions());
  for (unsigned axis = 0; axis < dims; ++axis) {
    const double spacing = io.GetSpacing(axis);
    if (!std::isfinite(spacing) || spacing <= 0.0) {
      throw std::runtime_error("cannot read " + quoted(path) + ": the header gives voxel spacing " +
                               number_text(spacing) + " along axis " + std::to_string(axis) +
                               "; spacings must be positive: the header is corrupt");
    }
    if (!std::isfinite(io.GetOrigin(axis))) {
      throw std::runtime_error("cannot read " + quoted(path) +
                               ": the header gives a non-finite origin: the header is "
                               "corrupt");
    }
  }
  // Direction cosines must form an orthonormal basis (Volume and every
  // resampler assume it).
  for (unsigned a = 0; a < dims; ++a) {
    const auto column_a = io.GetDirection(a);
    for (unsigned b = a; b < dims; ++b) {
      const auto column_b = io.GetDirection(b);
      double dot = 0.0;
      for (unsigned r = 0; r < std::min<std::size_t>(column_a.size(), column_b.size()); ++r) {
        dot += column_a[r] * column_b[r];
      }
      const double expected = a == b ? 1.0 : 0.0;
      if (!std::isfinite(dot) || std::abs(dot - expected) > 1e-3) {
        throw std::runtime_error("cannot read " + quoted(path) +
                                 ": the header's direction matrix is not orthonormal (sheared or corrupt "
                                 "orientation); resample the image to an orthonormal grid first");
      }
    }
  }
}

}  // namespace

std::string itk_reason(const std::string& description) {
  // Drop "itk::ERROR: NrrdImageIO(0x55d0c0de): " style prefixes, join lines.
  std::string text;
  std::istringstream lines(description);
  std::string line;
  while (std::getline(lines, line)) {
    for (const char* prefix : {"itk::ERROR: ", "ITK ERROR: "}) {
      if (line.rfind(prefix, 0) == 0) line = line.substr(std::strlen(prefix));
    }
    const auto object = line.find("(0x");
    const auto colon = line.find("): ");
    if (object != std::string::npos && colon != std::string::npos && object < colon && line.find(' ') > object) {
      line = line.substr(colon + 3);
    }
    const auto first = line.find_first_not_of(" \t\r");
    if (first == std::string::npos) continue;
    line = line.substr(first);
    while (!line.empty() && (line.back() == ' ' || line.back() == ':' || line.back() == '\r')) line.pop_back();
    if (!line.empty()) text += (text.empty() ? "" : "; ") + line;
  }
  return text.empty() ? "no reason given" : text;
}

bool looks_like_dicom_file(const fs::path& path) {
  const std::string name = lower(path.filename().string());
  if (ends_with(name, ".dcm") || ends_with(name, ".ima") || ends_with(name, ".dicom")) return true;
  const std::string head = read_prefix(path, 132);
  return head.size() == 132 && head.compare(128, 4, "DICM") == 0;
}

namespace {

// qform and sform both set but further apart than this (mm, anywhere in the
// image) is reported: well above single-precision noise of the header
// (about 1e-4 mm over 500 mm), well below anything that matters clinically.
constexpr double kQformSformToleranceMm = 0.01;

// The header transform ITK 5.2 took its geometry from (ITK does not say): the
// code > 0 candidate whose translation and normalised columns are nearest to
// ITK's origin and direction (in LPS).
bool itk_used_sform(const NiftiHeader& header, const itk::ImageIOBase& io) {
  auto deviation = [&](const NiftiAffine& affine) {
    double largest = 0;
    for (unsigned r = 0; r < 3 && r < io.GetNumberOfDimensions(); ++r) {
      const double sign = r < 2 ? -1.0 : 1.0;
      largest = std::max(largest, std::abs(io.GetOrigin(r) - sign * affine[r][3]));
    }
    for (unsigned c = 0; c < 3 && c < io.GetNumberOfDimensions(); ++c) {
      const double norm =
          std::sqrt(affine[0][c] * affine[0][c] + affine[1][c] * affine[1][c] + affine[2][c] * affine[2][c]);
      const auto column = io.GetDirection(c);
      for (unsigned r = 0; r < 3 && r < column.size(); ++r) {
        const double sign = r < 2 ? -1.0 : 1.0;
        largest = std::max(largest, std::abs(column[r] - sign * affine[r][c] / norm));
      }
    }
    return largest;
  };
  if (header.sform_code <= 0) return false;
  if (header.qform_code <= 0) return true;
  return deviation(header.sform) <= deviation(header.qform);
}

// Reads volume `volume` of a 4D image through ITK, streaming only that
// volume from the file where the ImageIO can (NIfTI, uncompressed MetaImage).
Volume read_itk_volume_of_4d(const fs::path& path, itk::ImageIOBase* io, std::size_t volume) {
  using Image4 = itk::Image<float, 4>;
  auto reader = itk::ImageFileReader<Image4>::New();
  reader->SetImageIO(io);
  reader->SetFileName(path.string());
  reader->UpdateOutputInformation();
  auto region = reader->GetOutput()->GetLargestPossibleRegion();
  region.SetIndex(3, region.GetIndex(3) + static_cast<itk::IndexValueType>(volume));
  region.SetSize(3, 0);  // collapse the 4th axis
  auto extract = itk::ExtractImageFilter<Image4, ItkFloatImage>::New();
  extract->SetInput(reader->GetOutput());
  extract->SetExtractionRegion(region);
  extract->SetDirectionCollapseToSubmatrix();
  extract->Update();
  VolumeMetadata metadata;
  metadata.source = path.string();
  return from_itk(*extract->GetOutput(), std::move(metadata));
}

// Whether ITK reads volume `volume` of a 4D image alone (NIfTI, uncompressed
// MetaImage) or the whole image (NRRD, compressed MetaImage), as ITK's
// ImageFileReader (which streams by default) decides it.
bool itk_streams_one_volume(itk::ImageIOBase& io, std::size_t volume) {
  io.SetUseStreamedReading(true);
  itk::ImageIORegion requested(io.GetNumberOfDimensions());
  for (unsigned axis = 0; axis < io.GetNumberOfDimensions(); ++axis) {
    requested.SetIndex(axis, 0);
    requested.SetSize(axis, io.GetDimensions(axis));
  }
  requested.SetIndex(3, static_cast<itk::IndexValueType>(volume));
  requested.SetSize(3, 1);
  return io.GenerateStreamableReadRegionFromRequestedRegion(requested).GetSize(3) == 1;
}

bool supported_nifti_datatype(int datatype) {
  // NIfTI-1 DT_UINT8, INT16, INT32, FLOAT32, FLOAT64, INT8, UINT16, UINT32, INT64, UINT64.
  for (int scalar : {2, 4, 8, 16, 64, 256, 512, 768, 1024, 1280}) {
    if (datatype == scalar) return true;
  }
  return false;
}

}  // namespace

LoadedImage read_image_file(const LoadRequest& request, NodeContext& ctx) {
  const fs::path& path = request.path;
  register_itk_image_io();
  const FileFormat format = format_from_name(path);
  if (format == FileFormat::Png) return read_png_file(request, ctx);
  {
    std::ifstream probe(path, std::ios::binary);
    if (!probe) {
      throw std::runtime_error("cannot open " + quoted(path) + ": " + std::strerror(errno) +
                               "; check the file's permissions");
    }
  }
  if (size_of_file(path) == 0) {
    throw std::runtime_error("cannot read " + quoted(path) + ": the file is empty");
  }
  itk::ImageIOBase::Pointer io = make_io(format);
  const std::string kind = format_name(format);
  if (!io->CanReadFile(path.c_str())) {
    throw std::runtime_error("cannot read " + quoted(path) + ": not a valid " + kind +
                             " file (unreadable, truncated or corrupt header)");
  }
  io->SetFileName(path.string());
  // NIfTI: the header as niftilib reads it, for the geometry reports, and for
  // the sforms ITK 5.2 refuses ("ITK only supports orthonormal direction
  // cosines": sheared, or scales it does not expect), whose geometry is then
  // made here and whose voxels niftilib reads.
  std::optional<NiftiHeader> nifti;
  if (format == FileFormat::Nifti) nifti = read_nifti_header(path);
  if (nifti) {
    // ITK's NIfTI reader hands the transforms to vnl, which calls abort() on
    // a matrix with non-finite elements, and whose SVD never ends on
    // extreme ones (found by fuzz_nifti: elements of 1e-37 and 1e38): refuse
    // transforms no scanner writes before ITK sees them. Voxel sizes and
    // offsets beyond a kilometre, or voxel sizes below a nanometre, are
    // corrupt, whatever the units.
    constexpr double kLargestMm = 1e6, kSmallestVoxelMm = 1e-6;
    const auto implausible = [&](const NiftiAffine& affine) -> std::string {
      for (const auto& row : affine)
        for (double value : row)
          if (!std::isfinite(value)) return "holds non-finite numbers (NaN or infinity)";
      for (int column = 0; column < 4; ++column) {
        double norm = 0;
        for (int row = 0; row < 3; ++row) norm += affine[row][column] * affine[row][column];
        norm = std::sqrt(norm);
        if (norm > kLargestMm || (column < 3 && norm < kSmallestVoxelMm)) {
          return std::string("gives ") + (column < 3 ? "a voxel size of " : "an origin ") + number_text(norm) + " mm" +
                 (column < 3 ? " along axis " + std::to_string(column) : std::string(" away")) +
                 ", outside what any image has";
        }
      }
      return {};
    };
    for (const auto& [code, affine, name] : {std::tuple{nifti->sform_code, &nifti->sform, "sform (srow_x/y/z)"},
                                             std::tuple{nifti->qform_code, &nifti->qform,
                                                        "qform (quatern_*, qoffset_*, "
                                                        "pixdim)"}}) {
      const std::string problem = code > 0 ? implausible(*affine) : std::string();
      if (!problem.empty()) {
        throw std::runtime_error("cannot read " + quoted(path) + ": the header's " + name + " " + problem +
                                 ": the header is corrupt");
      }
    }
    check_raw_nifti_header(path, *nifti);
  }
  bool own_geometry = false;
  std::vector<std::uint64_t> size;
  std::uint64_t component_size = 0;
  std::optional<MetaHeader> meta_header;
  if (format == FileFormat::MetaImage) meta_header = check_meta_counts(path);
  try {
    io->ReadImageInformation();
    for (unsigned axis = 0; axis < io->GetNumberOfDimensions(); ++axis) size.push_back(io->GetDimensions(axis));
  } catch (const itk::ExceptionObject& error) {
    const std::string reason = itk_reason(error.GetDescription());
    own_geometry = nifti && nifti->sform_code > 0 && nifti->qform_code <= 0 &&
                   reason.find("orthonormal direction cosines") != std::string::npos;
    if (!own_geometry) {
      throw std::runtime_error("cannot read " + quoted(path) + ": corrupt " + kind + " header: " + reason);
    }
  }
  if (own_geometry) {
    size.assign(nifti->dim.begin(), nifti->dim.begin() + std::clamp(nifti->ndim, 0, 7));
    component_size = static_cast<std::uint64_t>(std::max(0, nifti->bytes_per_voxel));
    if (!supported_nifti_datatype(nifti->datatype)) {
      throw std::runtime_error("cannot read " + quoted(path) + ": unsupported pixel type (NIfTI datatype " +
                               std::to_string(nifti->datatype) +
                               "); the io loaders read single-component (grey-level) images: convert colour or "
                               "complex images first");
    }
  }

  // Dimensions: at most 3 that are larger than 1, or a 4th one choosing
  // among volumes (volume_index).
  const auto dims = static_cast<unsigned>(size.size());
  std::string grid;
  for (unsigned axis = 0; axis < dims; ++axis) grid += (axis ? "x" : "") + std::to_string(size[axis]);
  if (dims < 2) {
    throw std::runtime_error("cannot read " + quoted(path) + ": a " + std::to_string(dims) +
                             "D image; the io loaders read 2D and 3D images");
  }
  for (unsigned axis = 4; axis < dims; ++axis) {
    if (size[axis] > 1) {
      throw std::runtime_error("cannot read " + quoted(path) + ": a " + std::to_string(dims) + "D image (" + grid +
                               "), but a 3D volume (or a 4D series of them, with volume_index) is expected");
    }
  }
  for (unsigned axis = 0; axis < dims; ++axis) {
    if (size[axis] == 0) {
      throw std::runtime_error("cannot read " + quoted(path) + ": the header gives size 0 along axis " +
                               std::to_string(axis) + " (" + grid + "): the header is corrupt");
    }
  }
  const std::uint64_t volumes = dims > 3 ? size[3] : 1;
  std::size_t volume = 0;
  if (request.volume_index >= 0) {
    if (static_cast<std::uint64_t>(request.volume_index) >= volumes) {
      throw std::runtime_error("cannot read " + quoted(path) + ": volume_index " +
                               std::to_string(request.volume_index) + " is out of range: the file holds " +
                               std::to_string(volumes) + " volume" + (volumes == 1 ? "" : "s") + " (" + grid +
                               "), indices 0 to " + std::to_string(volumes - 1));
    }
    volume = static_cast<std::size_t>(request.volume_index);
  } else if (volumes > 1) {
    throw std::runtime_error("cannot read " + quoted(path) + ": a " + std::to_string(dims) + "D image (" + grid +
                             "), but a 3D volume is expected: it holds " + std::to_string(volumes) +
                             " volumes (e.g. time frames or diffusion directions); set volume_index (0 to " +
                             std::to_string(volumes - 1) + ") to read one");
  }
  if (!own_geometry) {
    // Pixel type: one scalar component of a plain numeric type.
    const auto pixel = io->GetPixelType();
    const auto component = io->GetComponentType();
    if (pixel != itk::IOPixelEnum::SCALAR || io->GetNumberOfComponents() != 1 ||
        component == itk::IOComponentEnum::UNKNOWNCOMPONENTTYPE) {
      throw std::runtime_error("cannot read " + quoted(path) + ": unsupported pixel type '" +
                               itk::ImageIOBase::GetPixelTypeAsString(pixel) + "' of " +
                               itk::ImageIOBase::GetComponentTypeAsString(component) + " with " +
                               std::to_string(io->GetNumberOfComponents()) +
                               " component(s); the io loaders read single-component (grey-level) images: convert "
                               "colour or complex images first");
    }
    // The bytes a voxel takes in the file: for NIfTI, niftilib's (ITK reports
    // integer data with scl_slope/scl_inter as float, 4 bytes).
    component_size = nifti ? static_cast<std::uint64_t>(std::max(0, nifti->bytes_per_voxel)) : io->GetComponentSize();
  }
  // Voxel counts without overflow: what is allocated (one volume, or the
  // whole 4D image where ITK cannot stream one volume) against max_voxels,
  // and the whole image for the file size checks.
  std::uint64_t volume_voxels = 1, total_voxels = 1;
  bool overflow = false;
  for (unsigned axis = 0; axis < dims; ++axis) {
    overflow = overflow || __builtin_mul_overflow(total_voxels, size[axis], &total_voxels);
    if (axis < 3) overflow = overflow || __builtin_mul_overflow(volume_voxels, size[axis], &volume_voxels);
  }
  const bool whole_4d = volumes > 1 && !own_geometry && !overflow && !itk_streams_one_volume(*io, volume);
  const std::uint64_t allocated = whole_4d ? total_voxels : volume_voxels;
  std::uint64_t voxel_bytes = 0;
  overflow = overflow || __builtin_mul_overflow(total_voxels, component_size, &voxel_bytes);
  if (overflow || allocated > request.max_voxels) {
    throw std::runtime_error("cannot read " + quoted(path) + ": the header announces " + grid +
                             " voxels, more than the limit of " + std::to_string(request.max_voxels) +
                             " voxels (parameter max_voxels)" +
                             (whole_4d ? " (ITK reads all volumes of this file to extract one)" : "") +
                             ": the header is corrupt or the image too large; raise max_voxels if the machine has "
                             "the memory (4 bytes a voxel)");
  }
  if (!own_geometry) check_geometry(path, *io);

  bool nifti_may_hold_nonfinite = true;
  switch (format) {
    case FileFormat::Nifti: nifti_may_hold_nonfinite = check_nifti_container(path, voxel_bytes, grid); break;
    case FileFormat::MetaImage: check_meta_container(path, *meta_header, total_voxels, voxel_bytes, grid); break;
    case FileFormat::Nrrd:
      // teem reports truncated raw and compressed data itself; only refuse
      // headers no file of this size could satisfy (detached .nhdr data
      // files are checked by teem).
      if (!ends_with(lower(path.filename().string()), ".nhdr")) {
        check_plausible_size(path, size_of_file(path), voxel_bytes, grid);
      } else {
        note_untracked_input("a detached NRRD header (.nhdr) names data files the cache does not track");
      }
      break;
    case FileFormat::Png:  // read_png_file
      break;
  }
  ctx.throw_if_cancelled();

  LoadedImage loaded;
  loaded.format = format_key(format);
  auto& extra = loaded.volume.metadata.extra;
  const std::array<std::size_t, 3> grid3{size[0], size[1], dims > 2 ? size[2] : 1};
  if (own_geometry) {
    for (const auto& row : nifti->sform) {
      for (double value : row) {
        if (!std::isfinite(value)) {
          throw std::runtime_error("cannot read " + quoted(path) +
                                   ": the header's sform is not finite: the header is corrupt");
        }
      }
    }
    const PolarGeometry polar = polar_geometry(nifti->sform, grid3);
    for (unsigned axis = 0; axis < 3; ++axis) {
      if (!std::isfinite(polar.geometry.spacing[axis]) || !(polar.geometry.spacing[axis] > 0) ||
          !std::isfinite(polar.geometry.origin[axis]) || !std::isfinite(polar.error_mm)) {
        throw std::runtime_error("cannot read " + quoted(path) +
                                 ": the header's sform is degenerate or not finite: the header is corrupt");
      }
    }
    const std::string error = number_text(polar.error_mm);
    if (!nifti->sform_usable_by_itk && polar.error_mm > request.max_shear_error_mm) {
      throw std::runtime_error("cannot read " + quoted(path) + ": its " + nifti->describe(true) +
                               " is sheared (not a rotation times voxel sizes), and its nearest orthonormal "
                               "geometry would misplace voxels by up to " +
                               error + " mm over the image, more than max_shear_error_mm (" +
                               number_text(request.max_shear_error_mm) +
                               " mm); resample the image to an orthonormal grid, or raise max_shear_error_mm");
    }
    loaded.volume.geometry = polar.geometry;
    loaded.volume.voxels = read_nifti_volume(path, volume);
    loaded.volume.metadata.source = path.string();
    if (nifti->sform_usable_by_itk) {
      // Orthonormal, refused by ITK for its scales (e.g. pixdim against the
      // column norms): read exactly, nothing to warn about.
      extra["nifti.geometry"] = nifti->describe(true);
    } else {
      extra["nifti.geometry"] = nifti->describe(true) + ", sheared: nearest orthonormal direction";
      extra["nifti.shear_error_mm"] = error;
      ctx.log(LogLevel::Warn, "'" + path.string() + "': its " + nifti->describe(true) +
                                  " is sheared; read with the nearest orthonormal direction (polar decomposition), "
                                  "which places voxels up to " +
                                  error + " mm from where the file's affine puts them (at most max_shear_error_mm = " +
                                  number_text(request.max_shear_error_mm) + " mm)");
    }
  } else if (volumes > 1) {
    try {
      loaded.volume = read_itk_volume_of_4d(path, io, volume);
    } catch (const itk::ExceptionObject& error) {
      throw std::runtime_error("cannot read the voxels of " + quoted(path) + ": the file is truncated or corrupt (" +
                               itk_reason(error.GetDescription()) + ")");
    }
  } else {
    auto reader = itk::ImageFileReader<ItkFloatImage>::New();
    reader->SetImageIO(io);
    reader->SetFileName(path.string());
    try {
      reader->Update();
    } catch (const itk::ExceptionObject& error) {
      throw std::runtime_error("cannot read the voxels of " + quoted(path) + ": the file is truncated or corrupt (" +
                               itk_reason(error.GetDescription()) + ")");
    }
    VolumeMetadata metadata;
    metadata.source = path.string();
    loaded.volume = from_itk(*reader->GetOutput(), std::move(metadata));
  }
  if (format == FileFormat::Nifti && nifti_may_hold_nonfinite) {
    restore_nifti_nonfinite(path, loaded.volume, volume * volume_voxels);
  }
  if (volumes > 1) extra["io.volume_index"] = std::to_string(volume) + " of " + std::to_string(volumes);
  if (nifti) {
    if (!own_geometry) {
      extra["nifti.geometry"] = nifti->qform_code <= 0 && nifti->sform_code <= 0
                                    ? "none (qform and sform codes 0: Analyze orientation, origin 0)"
                                    : nifti->describe(itk_used_sform(*nifti, *io));
    }
    if (nifti->qform_code > 0 && nifti->sform_code > 0) {
      const double difference = max_corner_distance(nifti->qform, nifti->sform, grid3);
      if (difference > kQformSformToleranceMm) {
        extra["nifti.qform_sform_difference_mm"] = number_text(difference);
        ctx.log(LogLevel::Warn, "'" + path.string() + "': its " + nifti->describe(false) + " and " +
                                    nifti->describe(true) + " disagree by up to " + number_text(difference) +
                                    " mm over the image; the geometry is taken from the " + extra["nifti.geometry"] +
                                    " (ITK's choice); check which one is right");
      }
    }
  }
  return loaded;
}

}  // namespace fusionflow::io
