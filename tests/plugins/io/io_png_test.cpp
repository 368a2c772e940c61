// PNG files through the io loaders: every PNG colour type and bit depth
// (written here with libpng), grey read as ITK read it, the colour rules
// (equal channels exactly grey, luma, channel, error), and damaged files
// (every truncation, byte flips, impossible headers) as errors naming the
// file, never a crash.
#include <gtest/gtest.h>

#include "test_support.hpp"

#include <fusionflow/itk_bridge.hpp>
#include <fusionflow/payload_types.hpp>
#include <fusionflow/testing.hpp>

#include <itkImageFileReader.h>
#include <itkPNGImageIO.h>
#include <png.h>
#include <zlib.h>

#include <csetjmp>
#include <cstdint>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

namespace fusionflow {
namespace {
namespace fs = std::filesystem;
using testing::NodeHarness;

const NodeRegistry& bundled() { return testing::bundled_plugins(); }

class IoPng : public ::testing::Test {
 protected:
  void SetUp() override { dir_ = testing::fresh_temp_directory("io-png"); }
  void TearDown() override { fs::remove_all(dir_); }
  fs::path dir_;
};

// --- writing PNGs with libpng ---------------------------------------------------

// A PNG to write. `samples` are the stored values, row-major, channels_of
// (color_type) per pixel (palette images: indices).
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

int channels_of(int color_type) {
  switch (color_type) {
    case PNG_COLOR_TYPE_GRAY_ALPHA:
      return 2;
    case PNG_COLOR_TYPE_RGB:
      return 3;
    case PNG_COLOR_TYPE_RGB_ALPHA:
      return 4;
    default:
      return 1;
  }
}

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

void write_png(const fs::path& path, const PngPicture& picture) {
  const int channels = channels_of(picture.color_type);
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

// A picture whose samples follow a fixed pseudo-random sequence below 2^bits.
PngPicture picture(std::uint32_t width, std::uint32_t height, int color_type, int bit_depth, unsigned seed = 1) {
  PngPicture result;
  result.width = width;
  result.height = height;
  result.color_type = color_type;
  result.bit_depth = bit_depth;
  std::uint32_t state = seed * 2654435761u + 12345u;
  result.samples.resize(std::size_t{width} * height * channels_of(color_type));
  for (auto& sample : result.samples) {
    state = state * 1664525u + 1013904223u;
    sample = static_cast<std::uint16_t>((state >> 8) & ((1u << bit_depth) - 1));
  }
  return result;
}

std::string read_bytes(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

// Removes the file first: truncating an existing file makes ext4 flush it
// (auto_da_alloc), which made the sweeps below 10x slower.
void write_bytes(const fs::path& path, const std::string& bytes) {
  fs::remove(path);
  std::ofstream out(path, std::ios::binary);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

std::uint32_t big_endian(const std::string& bytes, std::size_t at) {
  std::uint32_t value = 0;
  for (int n = 0; n < 4; ++n) value = (value << 8) | static_cast<unsigned char>(bytes[at + n]);
  return value;
}

void put_big_endian(std::string& bytes, std::size_t at, std::uint32_t value) {
  for (int n = 3; n >= 0; --n, value >>= 8) bytes[at + n] = static_cast<char>(value & 0xff);
}

// Recomputes the CRC of every chunk that lies wholly in `bytes`, so that
// libpng reads corrupt content instead of stopping at the CRC.
void fix_crcs(std::string& bytes) {
  std::size_t at = 8;
  while (at + 12 <= bytes.size()) {
    const std::uint64_t length = big_endian(bytes, at);
    if (at + 12 + length > bytes.size()) break;
    const auto* data = reinterpret_cast<const Bytef*>(bytes.data() + at + 4);
    put_big_endian(bytes, at + 8 + length, static_cast<std::uint32_t>(crc32(0, data, uInt(4 + length))));
    at += 12 + length;
  }
}

// --- loading ---------------------------------------------------------------------

struct Loaded {
  Volume volume;
  std::vector<std::pair<LogLevel, std::string>> log;
};

Loaded load(const fs::path& path, const std::string& color = "luma", int channel = 0,
            const std::string& type = "io.load_image") {
  NodeHarness node(bundled(), type);
  node.set_param("path", path.string()).set_param("color", color.c_str()).set_param("channel", channel);
  node.run();
  return {node.output<Volume>("volume"), node.log()};
}

// The error loading `path` gives (fails the test if there is none).
std::string load_error(const fs::path& path, const std::string& color = "luma") {
  try {
    load(path, color);
  } catch (const std::exception& error) {
    return error.what();
  }
  ADD_FAILURE() << "loading " << path << " did not fail";
  return {};
}

// What ITK's own PNG reader makes of the file (the io loaders' PNG path
// before libpng was used directly).
Volume itk_read(const fs::path& path) {
  register_itk_image_io();
  auto reader = itk::ImageFileReader<ItkFloatImage>::New();
  reader->SetImageIO(itk::PNGImageIO::New());
  reader->SetFileName(path.string());
  reader->Update();
  return from_itk(*reader->GetOutput(), VolumeMetadata{});
}

std::vector<float> channel_values(const PngPicture& png, int channel) {
  const int channels = channels_of(png.color_type);
  std::vector<float> values;
  for (std::size_t n = channel; n < png.samples.size(); n += channels) values.push_back(float(png.samples[n]));
  return values;
}

float bt601(double red, double green, double blue) {
  return static_cast<float>(0.299 * red + 0.587 * green + 0.114 * blue);
}

// --- grey ------------------------------------------------------------------------

TEST_F(IoPng, GreyPngsReadAsItkReadThemAtEveryBitDepth) {
  for (int depth : {1, 2, 4, 8, 16}) {
    for (bool sbit : {false, true}) {
      if (sbit && depth < 4) continue;
      PngPicture png = picture(13, 7, PNG_COLOR_TYPE_GRAY, depth, unsigned(depth));
      const int significant = depth - 2;
      if (sbit) {
        png.significant = true;
        png.significant_bits.gray = static_cast<png_byte>(significant);
      }
      const fs::path path = dir_ / ("grey" + std::to_string(depth) + (sbit ? "s" : "") + ".png");
      write_png(path, png);
      const Loaded loaded = load(path);
      const Volume itk = itk_read(path);
      SCOPED_TRACE(path.filename().string());
      EXPECT_EQ(loaded.volume.voxels, itk.voxels);
      EXPECT_EQ(loaded.volume.geometry.size, itk.geometry.size);
      EXPECT_EQ(loaded.volume.geometry.spacing, itk.geometry.spacing);
      EXPECT_EQ(loaded.volume.geometry.origin, itk.geometry.origin);
      EXPECT_EQ(loaded.volume.geometry.direction, itk.geometry.direction);
      // And the values themselves: low depths scaled to 0..255, sBIT shifts
      // the samples down to their significant bits.
      const int scale = depth == 1 ? 255 : depth == 2 ? 85 : depth == 4 ? 17 : 1;
      ASSERT_EQ(loaded.volume.voxels.size(), png.samples.size());
      for (std::size_t n = 0; n < png.samples.size(); ++n) {
        const std::uint32_t expected =
            sbit ? (std::uint32_t(png.samples[n]) * scale) >> (depth < 8 ? 8 - significant : depth - significant)
                 : std::uint32_t(png.samples[n]) * scale;
        ASSERT_EQ(loaded.volume.voxels[n], float(expected)) << "sample " << n;
      }
      EXPECT_EQ(loaded.volume.geometry.size, (std::array<std::size_t, 3>{13, 7, 1}));
      EXPECT_EQ(loaded.volume.metadata.extra.at("io.format"), "png");
      EXPECT_EQ(loaded.volume.metadata.extra.count("io.color"), 0u);
      EXPECT_EQ(loaded.volume.metadata.extra.count("io.png_color_type"), 0u);
    }
  }
}

TEST_F(IoPng, InterlacedPngsReadLikeTheirPlainTwins) {
  for (const auto& [type, depth] : std::vector<std::pair<int, int>>{{PNG_COLOR_TYPE_GRAY, 2},
                                                                    {PNG_COLOR_TYPE_GRAY, 16},
                                                                    {PNG_COLOR_TYPE_RGB, 16},
                                                                    {PNG_COLOR_TYPE_RGB_ALPHA, 8}}) {
    PngPicture png = picture(11, 9, type, depth, unsigned(type * 31 + depth));
    write_png(dir_ / "plain.png", png);
    png.interlaced = true;
    write_png(dir_ / "adam7.png", png);
    EXPECT_NE(read_bytes(dir_ / "plain.png"), read_bytes(dir_ / "adam7.png"));
    EXPECT_EQ(load(dir_ / "adam7.png").volume.voxels, load(dir_ / "plain.png").volume.voxels)
        << "type " << type << ", " << depth << "-bit";
  }
  // And the plain grey one as ITK reads it.
  write_png(dir_ / "grey.png", picture(11, 9, PNG_COLOR_TYPE_GRAY, 8));
  PngPicture interlaced = picture(11, 9, PNG_COLOR_TYPE_GRAY, 8);
  interlaced.interlaced = true;
  write_png(dir_ / "grey_adam7.png", interlaced);
  EXPECT_EQ(load(dir_ / "grey_adam7.png").volume.voxels, itk_read(dir_ / "grey.png").voxels);
}

TEST_F(IoPng, GreyWithAlphaOrTransparencyReadsTheGreyAndSaysAlphaIsIgnored) {
  PngPicture png = picture(6, 5, PNG_COLOR_TYPE_GRAY_ALPHA, 16);
  for (std::size_t n = 1; n < png.samples.size(); n += 2) png.samples[n] = 65535;
  png.samples[3] = 100;  // one translucent pixel
  write_png(dir_ / "ga.png", png);
  const Loaded loaded = load(dir_ / "ga.png", "error");
  EXPECT_EQ(loaded.volume.voxels, channel_values(png, 0));
  EXPECT_EQ(loaded.volume.metadata.extra.at("io.alpha"), "ignored");
  EXPECT_EQ(loaded.volume.metadata.extra.at("io.png_color_type"), "grey+alpha, 16-bit");
  EXPECT_EQ(loaded.volume.metadata.extra.count("io.color"), 0u);
  bool warned = false;
  for (const auto& [level, text] : loaded.log) {
    warned |= level == LogLevel::Warn && text.find("1 of 30 pixels are not opaque") != std::string::npos;
  }
  EXPECT_TRUE(warned);

  PngPicture keyed = picture(6, 5, PNG_COLOR_TYPE_GRAY, 8, 3);
  keyed.transparent_colour = true;
  keyed.transparent.gray = keyed.samples[0];
  write_png(dir_ / "keyed.png", keyed);
  const Loaded keyed_loaded = load(dir_ / "keyed.png");
  EXPECT_EQ(keyed_loaded.volume.voxels, channel_values(keyed, 0));
  EXPECT_EQ(keyed_loaded.volume.metadata.extra.at("io.alpha"), "ignored");
}

// --- palette -----------------------------------------------------------------------

TEST_F(IoPng, GreyPalettesReadAsTheirGreyValuesExactly) {
  for (int depth : {1, 2, 4, 8}) {
    const int entries = 1 << depth;
    PngPicture png = picture(10, 6, PNG_COLOR_TYPE_PALETTE, depth, unsigned(depth) + 7);
    // Grey levels in an order unrelated to the indices (an ITK-style
    // "colormap" PNG of a grey slice).
    for (int n = 0; n < entries; ++n) {
      const auto grey = static_cast<png_byte>((n * 97 + 31) % 256);
      png.palette.push_back(png_color{grey, grey, grey});
    }
    const fs::path path = dir_ / ("palette" + std::to_string(depth) + ".png");
    write_png(path, png);
    for (const char* color : {"luma", "channel", "error"}) {
      const Loaded loaded = load(path, color, 2);
      ASSERT_EQ(loaded.volume.voxels.size(), png.samples.size());
      for (std::size_t n = 0; n < png.samples.size(); ++n) {
        ASSERT_EQ(loaded.volume.voxels[n], float(png.palette[png.samples[n]].red)) << depth << "-bit, " << n;
      }
      EXPECT_EQ(loaded.volume.metadata.extra.at("io.png_color_type"), "palette, " + std::to_string(depth) + "-bit");
      EXPECT_EQ(loaded.volume.metadata.extra.at("io.color"), "grey: every pixel has R = G = B, read exactly");
      EXPECT_EQ(loaded.volume.metadata.extra.count("io.alpha"), 0u);
    }
  }
}

TEST_F(IoPng, ColourPalettesFollowTheColourRules) {
  PngPicture png = picture(8, 4, PNG_COLOR_TYPE_PALETTE, 4, 5);
  for (int n = 0; n < 16; ++n) {
    png.palette.push_back(png_color{png_byte(n * 16), png_byte(255 - n * 3), png_byte(n * n)});
  }
  png.palette_alpha = {255, 128};  // tRNS: entry 1 translucent
  write_png(dir_ / "colour.png", png);
  const Loaded luma = load(dir_ / "colour.png");
  const Loaded green = load(dir_ / "colour.png", "channel", 1);
  ASSERT_EQ(luma.volume.voxels.size(), png.samples.size());
  for (std::size_t n = 0; n < png.samples.size(); ++n) {
    const png_color entry = png.palette[png.samples[n]];
    EXPECT_EQ(luma.volume.voxels[n], bt601(entry.red, entry.green, entry.blue)) << n;
    EXPECT_EQ(green.volume.voxels[n], float(entry.green)) << n;
  }
  EXPECT_EQ(luma.volume.metadata.extra.at("io.color"),
            "luma: Y = 0.299 R + 0.587 G + 0.114 B (ITU-R BT.601), not rounded");
  EXPECT_EQ(green.volume.metadata.extra.at("io.color"), "channel 1 (green)");
  EXPECT_EQ(luma.volume.metadata.extra.at("io.alpha"), "ignored");
  const std::string error = load_error(dir_ / "colour.png", "error");
  EXPECT_NE(error.find("'" + (dir_ / "colour.png").string() + "'"), std::string::npos) << error;
  EXPECT_NE(error.find("color=luma"), std::string::npos) << error;
}

// --- RGB -----------------------------------------------------------------------------

TEST_F(IoPng, RgbWithEqualChannelsReadsExactlyAsGrey) {
  // The public 2D fusion benchmarks store MRI, CT, PET and SPECT slices this
  // way: 8-bit RGB (sometimes RGBA) with R = G = B.
  for (const auto& [type, depth] : std::vector<std::pair<int, int>>{
           {PNG_COLOR_TYPE_RGB, 8}, {PNG_COLOR_TYPE_RGB, 16}, {PNG_COLOR_TYPE_RGB_ALPHA, 8}}) {
    const PngPicture grey = picture(9, 8, PNG_COLOR_TYPE_GRAY, depth, 11);
    PngPicture png = grey;
    png.color_type = type;
    const int channels = channels_of(type);
    png.samples.clear();
    for (std::uint16_t value : grey.samples) {
      for (int c = 0; c < 3; ++c) png.samples.push_back(value);
      if (channels == 4) png.samples.push_back(depth == 16 ? 65535 : 255);
    }
    const fs::path path = dir_ / ("equal" + std::to_string(type) + "_" + std::to_string(depth) + ".png");
    write_png(path, png);
    write_png(dir_ / "grey.png", grey);
    for (const char* color : {"luma", "channel", "error"}) {
      const Loaded loaded = load(path, color, 1);
      EXPECT_EQ(loaded.volume.voxels, channel_values(grey, 0)) << path << " " << color;
      EXPECT_EQ(loaded.volume.voxels, load(dir_ / "grey.png").volume.voxels);
      EXPECT_EQ(loaded.volume.metadata.extra.at("io.color"), "grey: every pixel has R = G = B, read exactly");
    }
  }
}

TEST_F(IoPng, RgbColourReadsAsLumaOrAChannelOrIsRefused) {
  for (const auto& [type, depth] : std::vector<std::pair<int, int>>{{PNG_COLOR_TYPE_RGB, 8},
                                                                    {PNG_COLOR_TYPE_RGB, 16},
                                                                    {PNG_COLOR_TYPE_RGB_ALPHA, 8},
                                                                    {PNG_COLOR_TYPE_RGB_ALPHA, 16}}) {
    PngPicture png = picture(7, 5, type, depth, unsigned(depth + type));
    const int channels = channels_of(type);
    // Pixel 0: pure red at full scale; pixel 1: (10, 20, 30); alpha opaque.
    const std::uint16_t full = depth == 16 ? 65535 : 255;
    const std::vector<std::uint16_t> first = {full, 0, 0, 10, 20, 30};
    for (int pixel = 0; pixel < 2; ++pixel) {
      for (int c = 0; c < 3; ++c) png.samples[pixel * channels + c] = first[pixel * 3 + c];
    }
    if (channels == 4) {
      for (std::size_t n = 3; n < png.samples.size(); n += 4) png.samples[n] = full;
    }
    const fs::path path = dir_ / ("rgb" + std::to_string(type) + "_" + std::to_string(depth) + ".png");
    write_png(path, png);
    SCOPED_TRACE(path.filename().string());

    const Loaded luma = load(path);
    ASSERT_EQ(luma.volume.voxels.size(), std::size_t{35});
    EXPECT_EQ(luma.volume.geometry.size, (std::array<std::size_t, 3>{7, 5, 1}));
    EXPECT_FLOAT_EQ(luma.volume.voxels[0], depth == 16 ? 19594.965f : 76.245f);  // 0.299 x full scale
    EXPECT_FLOAT_EQ(luma.volume.voxels[1], 18.15f);                              // 2.99 + 11.74 + 3.42
    for (std::size_t pixel = 0; pixel < 35; ++pixel) {
      const std::uint16_t* rgb = &png.samples[pixel * channels];
      EXPECT_EQ(luma.volume.voxels[pixel], bt601(rgb[0], rgb[1], rgb[2])) << pixel;
    }
    EXPECT_EQ(luma.volume.metadata.extra.at("io.color"),
              "luma: Y = 0.299 R + 0.587 G + 0.114 B (ITU-R BT.601), not rounded");
    EXPECT_EQ(luma.volume.metadata.extra.at("io.png_color_type"),
              std::string(channels == 4 ? "rgba, " : "rgb, ") + std::to_string(depth) + "-bit");
    EXPECT_EQ(luma.volume.metadata.extra.count("io.alpha"), channels == 4 ? 1u : 0u);

    for (int channel = 0; channel < 3; ++channel) {
      const Loaded picked = load(path, "channel", channel);
      EXPECT_EQ(picked.volume.voxels, channel_values(png, channel)) << channel;
      EXPECT_EQ(picked.volume.metadata.extra.at("io.color"), "channel " + std::to_string(channel) + " (" +
                                                                 (channel == 0   ? "red"
                                                                  : channel == 1 ? "green"
                                                                                 : "blue") +
                                                                 ")");
    }

    const std::string error = load_error(path, "error");
    EXPECT_NE(error.find("'" + path.string() + "'"), std::string::npos) << error;
    EXPECT_NE(error.find("pixel (0, 0)"), std::string::npos) << error;
    EXPECT_NE(error.find("color=luma"), std::string::npos) << error;
  }
}

TEST_F(IoPng, SignificantBitsShiftColourOnlyWhenEveryChannelAgrees) {
  PngPicture twelve = picture(5, 4, PNG_COLOR_TYPE_RGB, 16, 31);
  twelve.significant = true;
  twelve.significant_bits = png_color_8{12, 12, 12, 0, 0};  // red, green, blue, grey, alpha
  write_png(dir_ / "twelve.png", twelve);
  std::vector<float> shifted;
  for (float value : channel_values(twelve, 1)) shifted.push_back(float(std::uint32_t(value) >> 4));
  EXPECT_EQ(load(dir_ / "twelve.png", "channel", 1).volume.voxels, shifted);

  PngPicture mixed = picture(5, 4, PNG_COLOR_TYPE_RGB, 8, 32);
  mixed.significant = true;
  mixed.significant_bits = png_color_8{5, 6, 5, 0, 0};
  write_png(dir_ / "mixed.png", mixed);
  EXPECT_EQ(load(dir_ / "mixed.png", "channel", 1).volume.voxels, channel_values(mixed, 1));
}

TEST_F(IoPng, ColourRulesApplyToEveryLoader) {
  PngPicture png = picture(4, 3, PNG_COLOR_TYPE_RGB, 8, 9);
  write_png(dir_ / "rgb.png", png);
  for (const char* type : {"io.load_ct", "io.load_mri", "io.load_pet"}) {
    EXPECT_EQ(load(dir_ / "rgb.png", "channel", 2, type).volume.voxels, channel_values(png, 2)) << type;
  }
}

// --- damaged files ---------------------------------------------------------------------

std::vector<PngPicture> small_pictures() {
  std::vector<PngPicture> pictures;
  PngPicture grey = picture(16, 12, PNG_COLOR_TYPE_GRAY, 8, 21);
  grey.interlaced = true;
  pictures.push_back(grey);
  PngPicture palette = picture(9, 7, PNG_COLOR_TYPE_PALETTE, 4, 22);
  for (int n = 0; n < 16; ++n) palette.palette.push_back(png_color{png_byte(n * 15), png_byte(n), png_byte(200)});
  palette.palette_alpha = {0, 64, 255};
  pictures.push_back(palette);
  pictures.push_back(picture(7, 5, PNG_COLOR_TYPE_RGB, 16, 23));
  PngPicture rgba = picture(6, 6, PNG_COLOR_TYPE_RGB_ALPHA, 8, 24);
  rgba.interlaced = true;
  pictures.push_back(rgba);
  return pictures;
}

TEST_F(IoPng, EveryTruncationIsAnErrorNamingTheFile) {
  int case_number = 0;
  for (const PngPicture& png : small_pictures()) {
    const fs::path whole = dir_ / ("whole" + std::to_string(case_number++) + ".png");
    write_png(whole, png);
    ASSERT_EQ(load(whole).volume.voxels.size(), std::size_t{png.width} * png.height);
    const std::string bytes = read_bytes(whole);
    const fs::path cut = dir_ / "cut.png";
    for (std::size_t length = 0; length < bytes.size(); ++length) {
      write_bytes(cut, bytes.substr(0, length));
      const std::string error = load_error(cut);
      ASSERT_NE(error.find("'" + cut.string() + "'"), std::string::npos) << length << ": " << error;
      ASSERT_NE(error.find(length == 0 ? "empty" : "truncated"), std::string::npos) << length << ": " << error;
    }
  }
}

TEST_F(IoPng, ByteFlipsAreErrorsNamingTheFileOrLoad) {
  int case_number = 0;
  std::size_t loads = 0;
  for (const PngPicture& png : small_pictures()) {
    const fs::path whole = dir_ / ("whole" + std::to_string(case_number++) + ".png");
    write_png(whole, png);
    const std::string bytes = read_bytes(whole);
    const fs::path flipped = dir_ / "flipped.png";
    std::size_t failures = 0;
    // Each byte flipped as stored (CRCs catch it) and with the CRCs
    // recomputed (libpng and zlib meet the corrupt content itself).
    for (bool recompute : {false, true}) {
      for (std::size_t at = 0; at < bytes.size(); ++at) {
        for (unsigned char mask : {0x01, 0x80, 0xff}) {
          std::string damaged = bytes;
          damaged[at] = static_cast<char>(damaged[at] ^ mask);
          if (recompute) fix_crcs(damaged);
          write_bytes(flipped, damaged);
          try {
            const Loaded loaded = load(flipped);
            ++loads;
            EXPECT_EQ(loaded.volume.voxels.size(), loaded.volume.geometry.voxel_count());
          } catch (const std::exception& error) {
            ++failures;
            ASSERT_NE(std::string(error.what()).find("'" + flipped.string() + "'"), std::string::npos)
                << at << ": " << error.what();
          }
        }
      }
    }
    EXPECT_GT(failures, bytes.size());  // most flips are found
  }
  EXPECT_GT(loads, 0u);  // some flips leave a readable image (e.g. another palette colour)
}

TEST_F(IoPng, ImpossibleHeadersAreRefusedBeforeAllocating) {
  write_png(dir_ / "small.png", picture(4, 4, PNG_COLOR_TYPE_GRAY, 8));
  const std::string bytes = read_bytes(dir_ / "small.png");
  // IHDR: length at 8, type at 12, width at 16, height at 20.
  auto with_size = [&](std::uint32_t width, std::uint32_t height, const std::string& name) {
    std::string header = bytes;
    put_big_endian(header, 16, width);
    put_big_endian(header, 20, height);
    fix_crcs(header);
    write_bytes(dir_ / name, header);
    return load_error(dir_ / name);
  };
  const std::string too_many = with_size(60000, 60000, "too_many.png");  // 3.6e9 voxels
  EXPECT_NE(too_many.find("'" + (dir_ / "too_many.png").string() + "'"), std::string::npos) << too_many;
  EXPECT_NE(too_many.find("limit of 2147483648 voxels"), std::string::npos) << too_many;
  const std::string implausible = with_size(40000, 40000, "implausible.png");  // 1.6e9 bytes in ~70
  EXPECT_NE(implausible.find("more than any compression could explain"), std::string::npos) << implausible;
  const std::string too_wide = with_size(5000000, 1, "too_wide.png");  // beyond libpng's limit
  EXPECT_NE(too_wide.find("'" + (dir_ / "too_wide.png").string() + "'"), std::string::npos) << too_wide;
  EXPECT_NE(too_wide.find("corrupt"), std::string::npos) << too_wide;
}

TEST_F(IoPng, FilesThatAreNotPngSaySo) {
  write_bytes(dir_ / "text.png", "this is not an image\n");
  EXPECT_NE(load_error(dir_ / "text.png").find("not a PNG file"), std::string::npos);
  const std::string missing = load_error(dir_ / "missing.png");
  EXPECT_NE(missing.find("no such file"), std::string::npos) << missing;
}

TEST_F(IoPng, TheCommandLineReportsATruncatedPngAndExitsWithOne) {
  write_png(dir_ / "whole.png", picture(16, 12, PNG_COLOR_TYPE_RGB, 8));
  const std::string bytes = read_bytes(dir_ / "whole.png");
  write_bytes(dir_ / "cut.png", bytes.substr(0, bytes.size() / 2));
  std::ofstream(dir_ / "pipeline.json") << R"({
  "format_version": 1,
  "variables": {"mri": null},
  "nodes": [{"id": "mri", "type": "io.load_mri", "params": {"path": "${mri}"}}]
})";
  const testing::CommandOutput run =
      testing::run_command("ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0 " + std::string(FUSIONFLOW_EXE) +
                           " run " + (dir_ / "pipeline.json").string() + " --set mri=" + (dir_ / "cut.png").string());
  EXPECT_EQ(run.exit_code, 1) << run.text;
  EXPECT_NE(run.text.find("'" + (dir_ / "cut.png").string() + "'"), std::string::npos) << run.text;
  EXPECT_NE(run.text.find("truncated"), std::string::npos) << run.text;
}

}  // namespace
}  // namespace fusionflow
