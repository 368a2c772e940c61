// JPEG output through libjpeg-turbo. libjpeg reports errors through
// error_exit, which must not return: it longjmps back to compress_rows,
// which holds no object with a destructor (the jump skips none).
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <csetjmp>
#include <cstddef>
#include <cstdio>
#include <cstring>
#include <stdexcept>
#include <vector>

// jpeglib.h uses size_t and FILE without including their headers.
#include <jpeglib.h>

#include "io_internal.hpp"

namespace fusionflow::io {
namespace {

struct JpegErrors {
  jpeg_error_mgr manager;  // first: libjpeg passes a pointer to it
  std::jmp_buf jump;
  char message[JMSG_LENGTH_MAX];
};

extern "C" {
static void on_jpeg_error(j_common_ptr info) {
  auto* errors = reinterpret_cast<JpegErrors*>(info->err);
  (*info->err->format_message)(info, errors->message);
  std::longjmp(errors->jump, 1);
}
static void on_jpeg_message(j_common_ptr, int) {}  // warnings and traces: not printed
}

bool compress_rows(jpeg_compress_struct* info, JpegErrors* errors, std::FILE* file, JDIMENSION width, JDIMENSION height,
                   int channels, int quality, unsigned char* bytes) {
  if (setjmp(errors->jump)) {
    jpeg_destroy_compress(info);
    return false;
  }
  jpeg_create_compress(info);
  jpeg_stdio_dest(info, file);
  info->image_width = width;
  info->image_height = height;
  info->input_components = channels;
  info->in_color_space = channels == 3 ? JCS_RGB : JCS_GRAYSCALE;
  jpeg_set_defaults(info);
  jpeg_set_quality(info, quality, TRUE);
  info->dct_method = JDCT_ISLOW;  // the exact integer DCT: the same bytes on every machine
  for (int c = 0; c < info->num_components; ++c) {
    info->comp_info[c].h_samp_factor = 1;  // no chroma subsampling: a pseudo-colour map keeps its edges
    info->comp_info[c].v_samp_factor = 1;
  }
  jpeg_start_compress(info, TRUE);
  const std::size_t row_bytes = std::size_t(width) * std::size_t(channels);
  while (info->next_scanline < info->image_height) {
    JSAMPROW row = bytes + std::size_t(info->next_scanline) * row_bytes;
    jpeg_write_scanlines(info, &row, 1);
  }
  jpeg_finish_compress(info);
  jpeg_destroy_compress(info);
  return true;
}

}  // namespace

void write_jpeg_file(const std::filesystem::path& file, std::size_t width, std::size_t height, int channels,
                     int quality, const std::vector<std::uint16_t>& samples) {
  if ((channels != 1 && channels != 3) || samples.size() != width * height * std::size_t(channels) || width == 0 ||
      height == 0 || width > JPEG_MAX_DIMENSION || height > JPEG_MAX_DIMENSION || quality < 1 || quality > 100) {
    throw std::invalid_argument("cannot write a JPEG of " + std::to_string(width) + "x" + std::to_string(height) +
                                " pixels, " + std::to_string(channels) + " channels (at most " +
                                std::to_string(JPEG_MAX_DIMENSION) + " per side), quality " + std::to_string(quality));
  }
  std::vector<unsigned char> bytes(samples.size());
  for (std::size_t n = 0; n < samples.size(); ++n)
    bytes[n] = static_cast<unsigned char>(std::min<int>(samples[n], 255));
  std::FILE* out = std::fopen(file.c_str(), "wb");
  if (out == nullptr) throw std::runtime_error("cannot create " + quoted(file) + ": " + std::strerror(errno));
  jpeg_compress_struct info{};
  JpegErrors errors{};
  info.err = jpeg_std_error(&errors.manager);
  errors.manager.error_exit = on_jpeg_error;
  errors.manager.emit_message = on_jpeg_message;
  const bool written =
      compress_rows(&info, &errors, out, JDIMENSION(width), JDIMENSION(height), channels, quality, bytes.data());
  const bool flushed = std::fflush(out) == 0 && ::fsync(::fileno(out)) == 0;
  const bool closed = std::fclose(out) == 0;
  if (!written) throw std::runtime_error("cannot write " + quoted(file) + ": " + errors.message);
  if (!flushed || !closed) throw std::runtime_error("cannot write " + quoted(file) + ": " + std::strerror(errno));
}

}  // namespace fusionflow::io
