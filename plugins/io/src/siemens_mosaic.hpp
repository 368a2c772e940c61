// Siemens MOSAIC DICOM: the CSA private header and the tiling of a mosaic.
//
// Siemens stores an EPI/DWI volume (fMRI, diffusion) as one 2D DICOM image,
// its slices tiled row by row into a square grid of ceil(sqrt(n)) x
// ceil(sqrt(n)) tiles; the number of slices n and the slice normal (whose
// sign gives the order of the tiles) are in the CSA image header, a binary
// private element (0029,xx10). DCMTK does not decode CSA; GDCM's
// gdcm::CSAHeader does, but it asserts on unexpected values (Debian builds GDCM
// with assertions: the process aborts) and allocates whatever length an item
// announces. So it is parsed here (format as SPM and nibabel document it).
// Plain C++, no DCMTK or ITK types: the unit tests compile this file alone.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace fusionflow::io {

// The CSA header: each element's name with its values as text (numbers too,
// as Siemens writes them), the first value multiplicity of them.
struct CsaHeader {
  std::map<std::string, std::vector<std::string>> elements;

  // Value `index` of element `name` as a finite number; nullopt if absent,
  // empty or not a number.
  std::optional<double> number(const std::string& name, std::size_t index = 0) const;
  // True if element `name` has a non-empty first value.
  bool has_text(const std::string& name) const;
};

// Parses a CSA2 ("SV10") header. Every count and length is checked against
// the bytes that remain, so any input ends in a result or a
// std::runtime_error saying what is wrong (memory used is bounded by `size`).
CsaHeader parse_csa_header(const std::uint8_t* bytes, std::size_t size);

// How the slices of a mosaic image of `columns` x `rows` pixels holding
// `images` slices are tiled. Throws std::runtime_error (a reason, without the
// file name) if the mosaic cannot hold them.
struct MosaicTiling {
  std::size_t tiles_per_side = 0;  // ceil(sqrt(images))
  std::size_t tile_columns = 0, tile_rows = 0;
  std::size_t images = 0;
};
MosaicTiling mosaic_tiling(std::size_t columns, std::size_t rows, std::size_t images);

// Copies the tiles of `mosaic` (row by row, tiling.tiles_per_side *
// tile_columns pixels a row) into `volume` (tile_columns x tile_rows x images,
// slice by slice): tile k becomes slice k, or slice images - 1 - k if
// `reversed`.
void unpack_mosaic(const float* mosaic, const MosaicTiling& tiling, bool reversed, float* volume);

}  // namespace fusionflow::io
