// CSA2 header layout (little endian), as SPM's spm_dicom_headers and nibabel's
// csareader describe it:
//   "SV10", 4 unused bytes, uint32 element count, uint32 unused;
//   per element: 64-byte NUL-terminated name, int32 value multiplicity (VM),
//     4-byte VR, int32 syngo data type, int32 item count, int32 unused;
//   per item: 4 x int32 (the second is the value's length), then the value's
//     bytes (NUL-terminated text), padded to a multiple of 4.
// Items past the VM are empty padding items; a VM of 0 means "as many as there
// are items".
#include "siemens_mosaic.hpp"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <stdexcept>

namespace fusionflow::io {
namespace {

class CsaReader {
 public:
  CsaReader(const std::uint8_t* bytes, std::size_t size) : bytes_(bytes), size_(size) {}

  std::size_t remaining() const { return size_ - position_; }
  std::size_t position() const { return position_; }

  void need(std::size_t count, const char* what) const {
    if (count > remaining()) {
      throw std::runtime_error("the CSA header is truncated or corrupt: " + std::string(what) + " at byte " +
                               std::to_string(position_) + " needs " + std::to_string(count) + " bytes, " +
                               std::to_string(remaining()) + " remain");
    }
  }
  std::int64_t int32(const char* what) {
    need(4, what);
    const std::uint32_t value = std::uint32_t{bytes_[position_]} | std::uint32_t{bytes_[position_ + 1]} << 8 |
                                std::uint32_t{bytes_[position_ + 2]} << 16 | std::uint32_t{bytes_[position_ + 3]} << 24;
    position_ += 4;
    return std::int64_t(std::int32_t(value));
  }
  // `count` bytes as text, up to the first NUL.
  std::string text(std::size_t count, const char* what) {
    need(count, what);
    const char* begin = reinterpret_cast<const char*>(bytes_ + position_);
    std::size_t length = 0;
    while (length < count && begin[length] != '\0') ++length;
    position_ += count;
    return std::string(begin, length);
  }
  void skip(std::size_t count, const char* what) {
    need(count, what);
    position_ += count;
  }

 private:
  const std::uint8_t* bytes_;
  std::size_t size_;
  std::size_t position_ = 0;
};

constexpr std::size_t kElementHeaderBytes = 64 + 4 + 4 + 4 + 4 + 4;
constexpr std::size_t kItemHeaderBytes = 16;

// Element names come from the bytes: keep messages printable.
std::string printable(std::string text) {
  for (char& c : text) {
    if (static_cast<unsigned char>(c) < 0x20 || static_cast<unsigned char>(c) > 0x7e) c = '?';
  }
  return text;
}

std::string trimmed(const std::string& text) {
  const auto first = text.find_first_not_of(" \t\r\n");
  if (first == std::string::npos) return {};
  const auto last = text.find_last_not_of(" \t\r\n");
  return text.substr(first, last - first + 1);
}

}  // namespace

std::optional<double> CsaHeader::number(const std::string& name, std::size_t index) const {
  const auto it = elements.find(name);
  if (it == elements.end() || index >= it->second.size()) return std::nullopt;
  const std::string text = trimmed(it->second[index]);
  if (text.empty()) return std::nullopt;
  double value = 0;
  const char* end = text.data() + text.size();
  const auto [stop, error] = std::from_chars(text.data() + (text.front() == '+' ? 1 : 0), end, value);
  if (error != std::errc() || stop != end || !std::isfinite(value)) return std::nullopt;
  return value;
}

bool CsaHeader::has_text(const std::string& name) const {
  const auto it = elements.find(name);
  return it != elements.end() && !it->second.empty() && !trimmed(it->second.front()).empty();
}

CsaHeader parse_csa_header(const std::uint8_t* bytes, std::size_t size) {
  CsaReader in(bytes, size);
  if (size < 4 || std::string(reinterpret_cast<const char*>(bytes), 4) != "SV10") {
    throw std::runtime_error(
        "the CSA header does not start with 'SV10' (an old CSA1 header, which is not supported, "
        "or not a CSA header)");
  }
  in.skip(8, "the CSA2 signature");
  const std::int64_t count = in.int32("the element count");
  in.skip(4, "the header");
  // Each element needs at least its fixed-size header.
  if (count <= 0 || std::uint64_t(count) > in.remaining() / kElementHeaderBytes) {
    throw std::runtime_error("the CSA header is corrupt: it announces " + std::to_string(count) + " elements in " +
                             std::to_string(in.remaining()) + " bytes");
  }
  CsaHeader header;
  for (std::int64_t e = 0; e < count; ++e) {
    const std::string name = in.text(64, "an element name");
    const std::int64_t multiplicity = in.int32("a value multiplicity");
    in.skip(4 + 4, "a VR and data type");
    const std::int64_t items = in.int32("an item count");
    in.skip(4, "an element header");
    if (multiplicity < 0 || items < 0 || std::uint64_t(items) > in.remaining() / kItemHeaderBytes) {
      throw std::runtime_error("the CSA header is corrupt: element '" + printable(name) + "' announces " +
                               std::to_string(items) + " items (value multiplicity " + std::to_string(multiplicity) +
                               ") in " + std::to_string(in.remaining()) + " bytes");
    }
    const std::int64_t wanted = multiplicity > 0 ? std::min(multiplicity, items) : items;
    std::vector<std::string> values;
    for (std::int64_t n = 0; n < items; ++n) {
      in.skip(4, "an item header");
      const std::int64_t length = in.int32("an item length");
      in.skip(8, "an item header");
      if (length < 0 || std::uint64_t(length) > in.remaining()) {
        throw std::runtime_error("the CSA header is corrupt: an item of element '" + printable(name) + "' at byte " +
                                 std::to_string(in.position()) + " is " + std::to_string(length) + " bytes long but " +
                                 std::to_string(in.remaining()) + " remain");
      }
      std::string value = in.text(std::size_t(length), "an item");
      if (n < wanted) values.push_back(std::move(value));
      // Padding to 4 bytes; the last item of a header may end without it.
      in.skip(std::min<std::size_t>((4 - std::size_t(length) % 4) % 4, in.remaining()), "item padding");
    }
    header.elements.emplace(name, std::move(values));  // the first of duplicate names wins
  }
  return header;
}

MosaicTiling mosaic_tiling(std::size_t columns, std::size_t rows, std::size_t images) {
  if (images == 0 || images > columns * rows) {
    throw std::runtime_error("its NumberOfImagesInMosaic (" + std::to_string(images) + ") cannot fit a " +
                             std::to_string(columns) + "x" + std::to_string(rows) + " mosaic");
  }
  MosaicTiling tiling;
  tiling.images = images;
  while (tiling.tiles_per_side * tiling.tiles_per_side < images) ++tiling.tiles_per_side;
  if (columns % tiling.tiles_per_side != 0 || rows % tiling.tiles_per_side != 0) {
    throw std::runtime_error("its " + std::to_string(columns) + "x" + std::to_string(rows) +
                             " pixels cannot be cut into " + std::to_string(tiling.tiles_per_side) + "x" +
                             std::to_string(tiling.tiles_per_side) + " equal tiles for its " + std::to_string(images) +
                             " mosaic images (NumberOfImagesInMosaic); the header is corrupt");
  }
  tiling.tile_columns = columns / tiling.tiles_per_side;
  tiling.tile_rows = rows / tiling.tiles_per_side;
  return tiling;
}

void unpack_mosaic(const float* mosaic, const MosaicTiling& tiling, bool reversed, float* volume) {
  const std::size_t mosaic_columns = tiling.tiles_per_side * tiling.tile_columns;
  const std::size_t tile_pixels = tiling.tile_columns * tiling.tile_rows;
  for (std::size_t k = 0; k < tiling.images; ++k) {
    const std::size_t tile_row = k / tiling.tiles_per_side, tile_column = k % tiling.tiles_per_side;
    float* slice = volume + (reversed ? tiling.images - 1 - k : k) * tile_pixels;
    for (std::size_t y = 0; y < tiling.tile_rows; ++y) {
      const float* source =
          mosaic + (tile_row * tiling.tile_rows + y) * mosaic_columns + tile_column * tiling.tile_columns;
      std::copy(source, source + tiling.tile_columns, slice + y * tiling.tile_columns);
    }
  }
}

}  // namespace fusionflow::io
