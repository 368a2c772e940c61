// The torch-free parts of the learned engine: the .ffmodel container, the
// model header, intensity normalisation and latent grids.
//
// Container (little endian):
//   8 bytes   magic "FFMODEL1"
//   8 bytes   header length H
//   H bytes   JSON header (UTF-8), including "weights_sha256"
//   8 bytes   weights length W
//   W bytes   LibTorch archive (torch::serialize::OutputArchive)
// Nothing may follow. Files are written atomically.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "fusionflow/latent.hpp"
#include "fusionflow/sha256.hpp"
#include "fusionflow/volume.hpp"

namespace fusionflow::learned {

inline constexpr int kModelFormatVersion = 1;
inline constexpr char kModelMagic[9] = "FFMODEL1";

struct ModelContainer {
  nlohmann::json header;
  std::string weights;
};

// Throws std::runtime_error naming the file: not a model file, truncated,
// unreadable header, checksum mismatch, unsupported format version.
ModelContainer read_model_container(const std::filesystem::path& file);
// Adds "weights_sha256" to the header and writes atomically.
void write_model_container(const std::filesystem::path& file, nlohmann::json header, const std::string& weights);

// Intensity normalisation of one modality to the network's [0, 1]:
//   window:     (v - low) / (high - low), low/high in the modality's units
//               (CT: HU window)
//   percentile: per volume, low/high are percentiles (robust MRI scaling);
//               the values used are kept in the latent for decoding
//   scale:      v / high (PET in Bq/mL or SUV)
// Values are not clipped (the network sees what lies outside the window).
struct Normalisation {
  std::string kind = "window";
  double low = 0.0;
  double high = 1.0;
};

struct ModalityInfo {
  std::string name;   // metadata modality: "CT", "MR", "PT"
  std::string units;  // expected metadata units: "HU", "a.u.", "Bq/mL", "SUVbw"
  Normalisation normalisation;
};

nlohmann::json to_json(const ModalityInfo& info);
// `where` prefixes error messages (a JSON location).
ModalityInfo modality_from_json(const nlohmann::json& json, const std::string& name, const std::string& where);

// The intensities at which `volume` is mapped to 0 and 1.
std::pair<double, double> normalisation_range(const Volume& volume, const Normalisation& normalisation);

struct Architecture {
  int width = 32;           // feature channels
  int latent_channels = 8;  // C of the learned Latent's "features" level
  int downsampling = 1;     // stride-2 steps: the latent grid is 2^downsampling coarser in-plane
  int context_slices = 1;   // neighbouring axial slices on each side as extra input channels
  int residual_blocks = 2;
  // > 0: VQ-VAE-style vector quantisation of the latent with a learned
  // codebook of this many C-dimensional entries, shared by all modalities.
  int codebook_size = 0;
  // > 0: MUNIT-style content/style split. The encoder also gives a style
  // vector of this length per slice (global average of its features); the
  // decoder applies it with adaptive instance normalisation (AdaIN) after
  // each residual block. The latent holds the content; the style travels in
  // its metadata.
  int style_dim = 0;
};
nlohmann::json to_json(const Architecture& architecture);
Architecture architecture_from_json(const nlohmann::json& json, const std::string& where);

// The latent level's grid: in-plane (i, j) sizes rounded up to whole blocks
// of `factor`, spacing times `factor`, same origin and direction (latent
// voxel a is centred on source voxel factor * a); slices unchanged.
Geometry latent_geometry(const Geometry& source, int factor);

}  // namespace fusionflow::learned
