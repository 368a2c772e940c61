// The Volume payload: a 3D scalar image with physical geometry and modality
// metadata. Kept free of ITK/VTK so that every plugin and the core can include
// it cheaply; plugins convert to ITK images through fusionflow/itk_bridge.hpp.
#pragma once

#include <array>
#include <cstddef>
#include <map>
#include <string>
#include <vector>

namespace fusionflow {

// Physical geometry in ITK's convention: LPS world coordinates,
// point = origin + direction * (spacing .* index).
// `direction` is row-major; its columns are the world directions of the
// i, j and k voxel axes.
struct Geometry {
  std::array<std::size_t, 3> size{0, 0, 0};
  std::array<double, 3> spacing{1.0, 1.0, 1.0};
  std::array<double, 3> origin{0.0, 0.0, 0.0};
  std::array<double, 9> direction{1, 0, 0, 0, 1, 0, 0, 0, 1};

  std::size_t voxel_count() const { return size[0] * size[1] * size[2]; }
  std::size_t linear_index(std::size_t i, std::size_t j, std::size_t k) const {
    return i + size[0] * (j + size[1] * k);
  }
  // Continuous index -> LPS point (mm).
  std::array<double, 3> index_to_point(const std::array<double, 3>& index) const;
  // LPS point (mm) -> continuous index.
  std::array<double, 3> point_to_index(const std::array<double, 3>& point) const;
  // Same size, and spacing/origin/direction equal within `tolerance`
  // (relative to spacing for origins).
  bool same_grid(const Geometry& other, double tolerance = 1e-6) const;
  // "NxMxK", for messages.
  std::string size_string() const;
};

// What the intensities mean. Never holds patient identifiers: loaders keep
// those out unless the user explicitly asks for them.
struct VolumeMetadata {
  std::string modality;  // "CT", "MR", "PT", "LABELS", "FUSED", ...
  std::string units;     // "HU", "Bq/mL", "SUVbw", "a.u.", ...
  std::string quantity;  // e.g. "attenuation", "T1-weighted", "activity concentration"
  std::string source;    // file or node that produced it
  std::string series_description;
  std::map<std::string, std::string> extra;  // e.g. PET dose/weight for SUV
};

struct Volume {
  Geometry geometry;
  std::vector<float> voxels;  // x (i) fastest, then j, then k
  VolumeMetadata metadata;

  float at(std::size_t i, std::size_t j, std::size_t k) const { return voxels[geometry.linear_index(i, j, k)]; }
};

}  // namespace fusionflow
