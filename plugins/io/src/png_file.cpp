// PNG files through libpng directly, instead of ITK's PNGImageIO:
// - libpng reports every error by longjmp. ITK's reader does not guard all of
//   libpng's calls, and some truncated or corrupt files ended the process with
//   SIGABRT. Here every libpng call sits in one of two small C-style functions
//   (read_png_header, read_png_rows) that set the jump target and hold no
//   object with a destructor, so the jump skips none; the error handler copies
//   libpng's message into a plain buffer and the caller turns it into an
//   exception naming the file. The png structs themselves are released by
//   PngReader's destructor, in ordinary C++ code.
// - the header (IHDR) is checked before any pixel buffer exists: the voxel
//   count against the ceiling, and the raw data it announces against what a
//   file of this size can hold after zlib decompression.
// - colour: PNG stores grey, grey+alpha, palette, RGB and RGBA at 1 to 16
//   bits. Grey PNGs read as before (the values ITK gave: 1, 2 and 4-bit grey
//   scaled to 0..255, an sBIT chunk shifting samples down to their significant
//   bits, 16-bit samples as 0..65535). An image whose every pixel has
//   R = G = B (a grey palette, grey saved as RGB) is grey and reads exactly,
//   whatever ColorOptions say; other colour images become luma, one channel,
//   or an error (ColorOptions). Alpha (an alpha channel or tRNS transparency)
//   is ignored: the colour values are read as stored, and the volume's
//   metadata says so.
// - geometry: one slice, spacing 1, origin 0, identity direction, as ITK gave.
//   A PNG's pHYs chunk (pixels per metre of a screen or print) is not the
//   spacing of a scan, so it is not used.
//
// Metadata written (VolumeMetadata::extra, absent for plain grey PNGs):
//   io.png_color_type  palette | grey+alpha | rgb | rgba, with the bit depth ("rgb, 8-bit")
//   io.color           how colour became one value: equal channels read as grey,
//                      luma (BT.601) or the channel used
//   io.alpha           "ignored" when the file has an alpha channel or tRNS transparency
#include "io_internal.hpp"

#include <png.h>
#include <unistd.h>

#include <cerrno>
#include <csetjmp>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <stdexcept>
#include <string>
#include <system_error>
#include <vector>

namespace fusionflow::io {
namespace {
namespace fs = std::filesystem;

// Filled by the libpng callbacks; plain C data only (the callbacks run inside
// libpng, between setjmp and longjmp).
struct PngMessages {
  char error[256] = {};
  char first_warning[256] = {};
  int warnings = 0;
};

void copy_message(char (&target)[256], const char* message) {
  std::snprintf(target, sizeof target, "%s", message != nullptr ? message : "unknown error");
}

extern "C" {
static void on_png_error(png_structp png, png_const_charp message) {
  auto* messages = static_cast<PngMessages*>(png_get_error_ptr(png));
  copy_message(messages->error, message);
  png_longjmp(png, 1);
}

static void on_png_warning(png_structp png, png_const_charp message) {
  auto* messages = static_cast<PngMessages*>(png_get_error_ptr(png));
  if (messages->warnings++ == 0) copy_message(messages->first_warning, message);
}
}

// What read_png_header learns: the IHDR as stored, and the rows libpng will
// hand out after the transformations below.
struct PngLayout {
  png_uint_32 width = 0, height = 0;
  int bit_depth = 0;          // stored: 1, 2, 4, 8 or 16
  int color_type = 0;         // stored: PNG_COLOR_TYPE_*
  int interlace = 0;          // PNG_INTERLACE_NONE or PNG_INTERLACE_ADAM7
  bool transparency = false;  // tRNS chunk present
  int channels = 0;           // delivered per pixel: 1 grey, 2 grey+alpha, 3 RGB, 4 RGBA
  int sample_bits = 0;        // delivered: 8 or 16 (16-bit samples are big-endian)
  std::size_t row_bytes = 0;  // delivered bytes per row
};

// Reads the signature's remainder and the chunks up to the image data, sets
// the transformations and reports the layout. Returns false on a libpng
// error (message in the error callback's PngMessages). No C++ objects with
// destructors here: libpng may longjmp out of any call below.
bool read_png_header(png_structp png, png_infop info, std::FILE* file, PngLayout* layout) {
  if (setjmp(png_jmpbuf(png))) return false;
  png_init_io(png, file);
  png_set_sig_bytes(png, 8);  // the caller has read and checked the signature
  png_read_info(png, info);
  int compression = 0, filter = 0;
  png_get_IHDR(png, info, &layout->width, &layout->height, &layout->bit_depth, &layout->color_type, &layout->interlace,
               &compression, &filter);
  layout->transparency = png_get_valid(png, info, PNG_INFO_tRNS) != 0;
  if (layout->color_type == PNG_COLOR_TYPE_PALETTE) {
    // Palette entries become RGB (RGBA with tRNS); the colour rules then
    // see a grey palette as an image with equal channels.
    png_set_palette_to_rgb(png);
  } else {
    // As ITK did: 1, 2 and 4-bit grey scaled to 0..255; sBIT shifts samples
    // down to their significant bits, when every colour channel declares
    // the same count (unequal counts, e.g. RGB 5-6-5, keep the stored values
    // so that the channels stay on one scale). Alpha is not shifted.
    if (layout->color_type == PNG_COLOR_TYPE_GRAY && layout->bit_depth < 8) png_set_expand_gray_1_2_4_to_8(png);
    png_color_8p significant = nullptr;
    if (png_get_sBIT(png, info, &significant) != 0 && significant != nullptr) {
      png_color_8 shift = *significant;
      const bool colour = (layout->color_type & PNG_COLOR_MASK_COLOR) != 0;
      if (!colour || (shift.red == shift.green && shift.green == shift.blue)) {
        shift.alpha = static_cast<png_byte>(layout->bit_depth);
        png_set_shift(png, &shift);
      }
    }
  }
  png_set_interlace_handling(png);
  png_read_update_info(png, info);
  layout->channels = png_get_channels(png, info);
  layout->sample_bits = png_get_bit_depth(png, info);
  layout->row_bytes = png_get_rowbytes(png, info);
  return true;
}

// Decodes every row (all Adam7 passes) and reads the chunks after the image
// data up to IEND, so that a file cut short anywhere is an error. Same rules
// as read_png_header: nothing with a destructor here.
bool read_png_rows(png_structp png, png_infop info, png_bytepp rows) {
  if (setjmp(png_jmpbuf(png))) return false;
  png_read_image(png, rows);
  png_read_end(png, info);
  return true;
}

// Owns the file and libpng's structs for one read.
class PngReader {
 public:
  explicit PngReader(const fs::path& path) : file_(std::fopen(path.c_str(), "rb")) {}
  ~PngReader() {
    if (png_ != nullptr) png_destroy_read_struct(&png_, info_ != nullptr ? &info_ : nullptr, nullptr);
    if (file_ != nullptr) std::fclose(file_);
  }
  PngReader(const PngReader&) = delete;
  PngReader& operator=(const PngReader&) = delete;

  std::FILE* file() const { return file_; }
  // False if libpng could not allocate its structs.
  bool create() {
    png_ = png_create_read_struct(PNG_LIBPNG_VER_STRING, &messages_, on_png_error, on_png_warning);
    if (png_ == nullptr) return false;
    info_ = png_create_info_struct(png_);
    return info_ != nullptr;
  }
  png_structp png() const { return png_; }
  png_infop info() const { return info_; }
  const PngMessages& messages() const { return messages_; }

 private:
  std::FILE* file_ = nullptr;
  png_structp png_ = nullptr;
  png_infop info_ = nullptr;
  PngMessages messages_;
};

// libpng's message, phrased for the user.
std::string libpng_reason(const PngMessages& messages) {
  const std::string message = messages.error;
  // png_default_read_data's message when fread comes up short.
  if (message == "Read Error") return "the file is truncated: it ends before its PNG data is complete";
  return "the PNG data is corrupt (libpng: " + message + ")";
}

std::string color_type_name(int color_type) {
  switch (color_type) {
    case PNG_COLOR_TYPE_GRAY: return "grey";
    case PNG_COLOR_TYPE_GRAY_ALPHA: return "grey+alpha";
    case PNG_COLOR_TYPE_PALETTE: return "palette";
    case PNG_COLOR_TYPE_RGB: return "rgb";
    case PNG_COLOR_TYPE_RGB_ALPHA: return "rgba";
    default: return "colour type " + std::to_string(color_type);
  }
}

const char* channel_name(int channel) {
  static const char* const names[] = {"red", "green", "blue"};
  return channel >= 0 && channel < 3 ? names[channel] : "?";
}

// The decoded rows, one sample at a time.
struct Samples {
  const std::vector<unsigned char>& bytes;
  std::size_t row_bytes;
  int channels;
  bool wide;  // 16-bit big-endian samples

  std::uint32_t at(std::size_t x, std::size_t y, int channel) const {
    const std::size_t index = std::size_t(channels) * x + std::size_t(channel);
    const unsigned char* row = bytes.data() + y * row_bytes;
    if (!wide) return row[index];
    return (std::uint32_t(row[2 * index]) << 8) | row[2 * index + 1];
  }
};

// zlib cannot compress by more than about 1032:1: a header announcing more
// image data than 1100 times the file's size (plus slack) is corrupt, whatever
// the file holds. Checked before the pixel buffer is allocated.
void check_plausible_size(const fs::path& path, const PngLayout& layout, std::uint64_t file_size) {
  const int stored_channels = layout.color_type == PNG_COLOR_TYPE_RGB          ? 3
                              : layout.color_type == PNG_COLOR_TYPE_RGB_ALPHA  ? 4
                              : layout.color_type == PNG_COLOR_TYPE_GRAY_ALPHA ? 2
                                                                               : 1;  // grey, palette index
  const long double row_bits = static_cast<long double>(layout.width) * stored_channels * layout.bit_depth;
  const long double raw_bytes = static_cast<long double>(layout.height) * (row_bits / 8.0L + 1.0L);  // + filter byte
  const long double bound = static_cast<long double>(file_size) * 1100.0L + 65536.0L;
  if (raw_bytes > bound) {
    throw std::runtime_error("cannot read " + quoted(path) + ": its header announces " + std::to_string(layout.width) +
                             "x" + std::to_string(layout.height) + " pixels (" +
                             std::to_string(static_cast<std::uint64_t>(raw_bytes)) +
                             " bytes of image data) but the file holds only " + std::to_string(file_size) +
                             " bytes, more than any compression could explain: the header is corrupt or the file "
                             "truncated");
  }
}

// The decoded pixels of a PNG file: every check before any pixel buffer exists.
struct DecodedPng {
  PngLayout layout;
  std::vector<unsigned char> bytes;
  Samples samples() const { return Samples{bytes, layout.row_bytes, layout.channels, layout.sample_bits == 16}; }
};

DecodedPng decode_png(const fs::path& path, std::uint64_t max_voxels, NodeContext& ctx) {
  PngReader reader(path);
  if (reader.file() == nullptr) {
    throw std::runtime_error("cannot open " + quoted(path) + ": " + std::strerror(errno) +
                             "; check the file's permissions");
  }
  std::error_code ec;
  const std::uint64_t file_size = fs::file_size(path, ec);
  if (ec) throw std::runtime_error("cannot read " + quoted(path) + ": " + ec.message());
  if (file_size == 0) throw std::runtime_error("cannot read " + quoted(path) + ": the file is empty");
  unsigned char signature[8] = {};
  const std::size_t got = std::fread(signature, 1, sizeof signature, reader.file());
  if (png_sig_cmp(signature, 0, got) != 0) {
    throw std::runtime_error("cannot read " + quoted(path) +
                             ": not a PNG file (it does not start with the PNG signature)");
  }
  if (got < sizeof signature) {
    throw std::runtime_error("cannot read " + quoted(path) + ": the file is truncated: " + std::to_string(got) +
                             " bytes, shorter than the PNG signature");
  }
  if (!reader.create()) throw std::runtime_error("cannot read " + quoted(path) + ": libpng is out of memory");

  DecodedPng decoded;
  PngLayout& layout = decoded.layout;
  if (!read_png_header(reader.png(), reader.info(), reader.file(), &layout)) {
    throw std::runtime_error("cannot read " + quoted(path) + ": " + libpng_reason(reader.messages()) +
                             "; re-export or re-copy the file");
  }
  const std::string grid = std::to_string(layout.width) + "x" + std::to_string(layout.height);
  const std::uint64_t voxels = std::uint64_t{layout.width} * layout.height;  // < 2^40: libpng caps 10^6 per axis
  if (voxels > max_voxels) {
    throw std::runtime_error("cannot read " + quoted(path) + ": its header announces " + grid +
                             " pixels, more than the limit of " + std::to_string(max_voxels) +
                             " voxels: the header is corrupt or the image too large");
  }
  check_plausible_size(path, layout, file_size);
  if (layout.channels < 1 || layout.channels > 4 || (layout.sample_bits != 8 && layout.sample_bits != 16) ||
      layout.row_bytes !=
          std::size_t{layout.width} * std::size_t(layout.channels) * std::size_t(layout.sample_bits / 8)) {
    throw std::runtime_error("cannot read " + quoted(path) + ": unsupported PNG layout (" +
                             color_type_name(layout.color_type) + ", " + std::to_string(layout.bit_depth) + "-bit)");
  }
  ctx.throw_if_cancelled();

  std::vector<unsigned char>& bytes = decoded.bytes;
  bytes.resize(layout.row_bytes * layout.height);
  std::vector<png_bytep> rows(layout.height);
  for (std::size_t y = 0; y < rows.size(); ++y) rows[y] = bytes.data() + y * layout.row_bytes;
  if (!read_png_rows(reader.png(), reader.info(), rows.data())) {
    throw std::runtime_error("cannot read the pixels of " + quoted(path) + ": " + libpng_reason(reader.messages()) +
                             "; re-export or re-copy the file");
  }
  if (reader.messages().warnings > 0) {
    ctx.log(LogLevel::Info,
            "libpng warning reading " + quoted(path) + ": " + reader.messages().first_warning +
                (reader.messages().warnings > 1 ? " (and " + std::to_string(reader.messages().warnings - 1) + " more)"
                                                : ""));
  }
  return decoded;
}

}  // namespace

LoadedImage read_png_file(const LoadRequest& request, NodeContext& ctx) {
  const fs::path& path = request.path;
  const ColorOptions& color = request;
  const DecodedPng decoded = decode_png(path, request.max_voxels, ctx);
  const PngLayout& layout = decoded.layout;
  const std::uint64_t voxels = std::uint64_t{layout.width} * layout.height;

  LoadedImage loaded;
  loaded.format = "png";
  Volume& volume = loaded.volume;
  volume.metadata.source = path.string();
  volume.geometry.size = {layout.width, layout.height, 1};
  volume.voxels.resize(voxels);
  auto& extra = volume.metadata.extra;
  const Samples samples = decoded.samples();
  const std::size_t width = layout.width, height = layout.height;
  const bool colour = layout.channels >= 3;
  const bool alpha = layout.channels == 2 || layout.channels == 4;
  if (layout.color_type != PNG_COLOR_TYPE_GRAY) {
    extra["io.png_color_type"] = color_type_name(layout.color_type) + ", " + std::to_string(layout.bit_depth) + "-bit";
  }
  if (alpha || layout.transparency) {
    extra["io.alpha"] = "ignored";
    if (alpha) {
      const std::uint32_t opaque = layout.sample_bits == 16 ? 65535 : 255;
      std::size_t translucent = 0;
      for (std::size_t y = 0; y < height; ++y) {
        for (std::size_t x = 0; x < width; ++x) translucent += samples.at(x, y, layout.channels - 1) != opaque;
      }
      if (translucent > 0) {
        ctx.log(LogLevel::Warn, quoted(path) + ": alpha ignored, " + std::to_string(translucent) + " of " +
                                    std::to_string(voxels) + " pixels are not opaque; their colour is read as stored");
      }
    }
  }

  if (!colour) {
    for (std::size_t y = 0; y < height; ++y) {
      for (std::size_t x = 0; x < width; ++x) volume.voxels[y * width + x] = float(samples.at(x, y, 0));
    }
    return loaded;
  }

  // Colour: grey when every pixel has R = G = B.
  std::size_t first_x = 0, first_y = 0;
  bool equal = true;
  for (std::size_t y = 0; y < height && equal; ++y) {
    for (std::size_t x = 0; x < width; ++x) {
      const std::uint32_t red = samples.at(x, y, 0);
      if (red != samples.at(x, y, 1) || red != samples.at(x, y, 2)) {
        equal = false;
        first_x = x;
        first_y = y;
        break;
      }
    }
  }
  if (equal) {
    for (std::size_t y = 0; y < height; ++y) {
      for (std::size_t x = 0; x < width; ++x) volume.voxels[y * width + x] = float(samples.at(x, y, 0));
    }
    extra["io.color"] = "grey: every pixel has R = G = B, read exactly";
    return loaded;
  }
  switch (color.mode) {
    case ColorOptions::Mode::Error:
      throw std::runtime_error(
          "cannot read " + quoted(path) + ": a colour PNG (" + color_type_name(layout.color_type) + ", " +
          std::to_string(layout.bit_depth) + "-bit) whose channels differ (the first at pixel (" +
          std::to_string(first_x) + ", " + std::to_string(first_y) + "): R " +
          std::to_string(samples.at(first_x, first_y, 0)) + ", G " + std::to_string(samples.at(first_x, first_y, 1)) +
          ", B " + std::to_string(samples.at(first_x, first_y, 2)) +
          "), and color=error; set color=luma (ITU-R BT.601 luma) or color=channel with channel 0, 1 or 2");
    case ColorOptions::Mode::Channel: {
      if (color.channel < 0 || color.channel > 2) {
        throw std::invalid_argument("channel must be 0 (red), 1 (green) or 2 (blue), got " +
                                    std::to_string(color.channel));
      }
      for (std::size_t y = 0; y < height; ++y) {
        for (std::size_t x = 0; x < width; ++x) volume.voxels[y * width + x] = float(samples.at(x, y, color.channel));
      }
      extra["io.color"] = "channel " + std::to_string(color.channel) + " (" + channel_name(color.channel) + ")";
      break;
    }
    case ColorOptions::Mode::Luma: {
      // In double, rounded once to float; not rounded to integers, so 8-bit
      // input gives fractional values in [0, 255] (16-bit: [0, 65535]).
      for (std::size_t y = 0; y < height; ++y) {
        for (std::size_t x = 0; x < width; ++x) {
          const double luma = 0.299 * samples.at(x, y, 0) + 0.587 * samples.at(x, y, 1) + 0.114 * samples.at(x, y, 2);
          volume.voxels[y * width + x] = static_cast<float>(luma);
        }
      }
      extra["io.color"] = "luma: Y = 0.299 R + 0.587 G + 0.114 B (ITU-R BT.601), not rounded";
      ctx.log(LogLevel::Info, quoted(path) +
                                  " is a colour PNG: read as its luma (ITU-R BT.601; color=channel or "
                                  "color=error to change)");
      break;
    }
  }
  return loaded;
}

ColorVolume read_png_color(const fs::path& path, std::uint64_t max_voxels, NodeContext& ctx) {
  const DecodedPng decoded = decode_png(path, max_voxels, ctx);
  const PngLayout& layout = decoded.layout;
  const Samples samples = decoded.samples();
  ColorVolume image;
  image.geometry.size = {layout.width, layout.height, 1};
  image.max_value = layout.sample_bits == 16 ? 65535.0 : 255.0;
  image.metadata.source = path.string();
  image.metadata.extra["io.format"] = "png";
  image.metadata.extra["io.png_color_type"] =
      color_type_name(layout.color_type) + ", " + std::to_string(layout.bit_depth) + "-bit";
  if (layout.channels == 2 || layout.channels == 4 || layout.transparency) image.metadata.extra["io.alpha"] = "ignored";
  const bool colour = layout.channels >= 3;
  const std::size_t width = layout.width, height = layout.height;
  for (auto& channel : image.rgb) channel.resize(width * height);
  for (std::size_t y = 0; y < height; ++y) {
    for (std::size_t x = 0; x < width; ++x) {
      for (int c = 0; c < 3; ++c) image.rgb[c][y * width + x] = float(samples.at(x, y, colour ? c : 0));
    }
  }
  return image;
}

namespace {

// Writes the rows; false on a libpng error (message in PngMessages). No C++
// objects with destructors here: libpng may longjmp out of any call.
bool write_png_rows(png_structp png, png_infop info, std::FILE* file, png_uint_32 width, png_uint_32 height,
                    int bit_depth, int color_type, png_bytepp rows) {
  if (setjmp(png_jmpbuf(png))) return false;
  png_init_io(png, file);
  png_set_IHDR(png, info, width, height, bit_depth, color_type, PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT,
               PNG_FILTER_TYPE_DEFAULT);
  png_write_info(png, info);
  png_write_image(png, rows);
  png_write_end(png, nullptr);
  return true;
}

}  // namespace

void write_png_file(const fs::path& file, std::size_t width, std::size_t height, int channels, int bits,
                    const std::vector<std::uint16_t>& samples) {
  if ((channels != 1 && channels != 3) || (bits != 8 && bits != 16) ||
      samples.size() != width * height * std::size_t(channels) || width == 0 || height == 0 ||
      width > PNG_USER_WIDTH_MAX || height > PNG_USER_HEIGHT_MAX) {
    throw std::invalid_argument("cannot write a PNG of " + std::to_string(width) + "x" + std::to_string(height) +
                                " pixels, " + std::to_string(channels) + " channels, " + std::to_string(bits) +
                                " bits");
  }
  const std::size_t bytes_per_sample = bits / 8;
  const std::size_t row_bytes = width * std::size_t(channels) * bytes_per_sample;
  std::vector<unsigned char> bytes(row_bytes * height);
  for (std::size_t n = 0; n < samples.size(); ++n) {
    if (bits == 8) {
      bytes[n] = static_cast<unsigned char>(samples[n]);
    } else {  // PNG stores 16-bit samples big-endian
      bytes[2 * n] = static_cast<unsigned char>(samples[n] >> 8);
      bytes[2 * n + 1] = static_cast<unsigned char>(samples[n] & 0xff);
    }
  }
  std::vector<png_bytep> rows(height);
  for (std::size_t y = 0; y < height; ++y) rows[y] = bytes.data() + y * row_bytes;

  std::FILE* out = std::fopen(file.c_str(), "wb");
  if (out == nullptr) throw std::runtime_error("cannot create " + quoted(file) + ": " + std::strerror(errno));
  PngMessages messages;
  png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, &messages, on_png_error, on_png_warning);
  png_infop info = png != nullptr ? png_create_info_struct(png) : nullptr;
  const bool written =
      info != nullptr && write_png_rows(png, info, out, png_uint_32(width), png_uint_32(height), bits,
                                        channels == 3 ? PNG_COLOR_TYPE_RGB : PNG_COLOR_TYPE_GRAY, rows.data());
  png_destroy_write_struct(&png, &info);
  const bool flushed = std::fflush(out) == 0 && ::fsync(::fileno(out)) == 0;
  const bool closed = std::fclose(out) == 0;
  if (!written) {
    throw std::runtime_error("cannot write " + quoted(file) + ": " +
                             (messages.error[0] != 0 ? messages.error : "libpng is out of memory"));
  }
  if (!flushed || !closed) throw std::runtime_error("cannot write " + quoted(file) + ": " + std::strerror(errno));
}

}  // namespace fusionflow::io
