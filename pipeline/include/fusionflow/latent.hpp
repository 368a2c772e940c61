// The Latent payload: an image encoded into a shared latent representation.
//
// Each modality is encoded by the same kind of encoder into a list of levels
// (scales, sub-bands, base/detail layers, or a learned network's feature
// maps); fusion combines latents level by level, and the matching decoder
// brings the fused latent back to image space. Classical multiscale
// transforms and learned encoders (C-channel feature maps) share this type.
#pragma once

#include <cstddef>
#include <map>
#include <string>
#include <vector>

#include "fusionflow/payload.hpp"
#include "fusionflow/volume.hpp"

namespace fusionflow {

struct LatentLevel {
  std::string name;  // e.g. "detail_0", "base", "features"
  // How fusion rules treat the level: "detail" (band-pass: edges, texture),
  // "base" (low-pass: intensity and contrast), or "features" (learned codes).
  std::string role;
  Geometry geometry;  // the level's own grid (pyramids shrink it)
  std::size_t channels = 1;
  // Channel-major: value of channel c at voxel v is data[c * voxel_count + v],
  // voxels ordered as in Volume (i fastest).
  std::vector<float> data;

  std::size_t voxel_count() const { return geometry.voxel_count(); }
  float at(std::size_t channel, std::size_t voxel) const { return data[channel * voxel_count() + voxel]; }
};

struct Latent {
  // Which encoder made it, e.g. "laplacian_pyramid"; only latents of the same
  // kind and parameters can be fused or decoded together.
  std::string kind;
  std::map<std::string, std::string> encoder_params;
  // The encoded image's grid and metadata, restored by the decoder.
  Geometry source_geometry;
  VolumeMetadata source_metadata;
  std::vector<LatentLevel> levels;
};

}  // namespace fusionflow

FUSIONFLOW_PAYLOAD_TYPE(fusionflow::Latent, "Latent");
