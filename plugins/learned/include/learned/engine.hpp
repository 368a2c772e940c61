// The torch-free boundary between the learned.* plugin and its LibTorch
// engine.
//
// The plugin (libfusionflow-learned.so) declares the node types and does not
// link LibTorch: loading libtorch_cpu takes 0.7-1.6 s here, and every
// `fusionflow` process loads every bundled plugin. The engine
// (libfusionflow-learned-engine.so, in <libdir>/fusionflow/learned/) holds the
// networks, the model file, inference and training; the plugin opens it on the
// first learned.* node run (or `fusionflow train`) through the one C entry
// point below, which returns an object implementing Engine.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "fusionflow/latent.hpp"
#include "fusionflow/run_control.hpp"
#include "fusionflow/volume.hpp"

namespace fusionflow::learned {

// Inference runs RunControl::threads slice batches in parallel (each with
// one LibTorch thread), in a fixed partition, so results are the same bytes
// for any thread count.

// A loaded model: per-modality encoders into one latent space and decoders
// out of it, with each modality's intensity normalisation.
class Model {
 public:
  virtual ~Model() = default;
  // The file's JSON header (see docs/learned.md).
  virtual const nlohmann::json& header() const = 0;
  virtual std::filesystem::path path() const = 0;
  virtual std::vector<std::string> modalities() const = 0;
  // Throws std::invalid_argument with what mismatched and what to do if the
  // model has no encoder for the volume's modality or expects other units.
  virtual void check_input(const Volume& volume, const std::string& modality) const = 0;
  // The model's normalisation of `volume` (to the network's [0, 1] range).
  virtual Volume normalise(const Volume& volume, const std::string& modality) const = 0;
  // Checks the input (as check_input). With `normalised` set, also hands
  // out the normalised volume the encoder ran on (as normalise() gives).
  virtual Latent encode(const Volume& volume, const std::string& modality, const RunControl& control,
                        Volume* normalised = nullptr) const = 0;
  // `to_units`: invert the modality's normalisation (HU for CT); otherwise
  // the network's normalised [0, 1] intensities. Models with a content/style
  // split decode with `style` if given (e.g. style_of a reference), else with
  // the latent's own per-slice styles if it was encoded from `modality`,
  // else with the zero style (the prior's mean).
  virtual Volume decode(const Latent& latent, const std::string& modality, bool to_units, const RunControl& control,
                        const std::vector<float>& style = {}) const = 0;
  // Mean style vector of a volume of `modality` (empty without a style split).
  virtual std::vector<float> style_of(const Volume& volume, const std::string& modality,
                                      const RunControl& control) const = 0;
};

struct TrainRequest {
  std::filesystem::path config;
  bool resume = false;
  std::int64_t iterations = -1;  // >= 0 overrides the config
  std::string output;            // non-empty overrides the config's output path
  bool quiet = false;            // no progress output
};

struct RandomGeneratorOptions {
  std::uint64_t seed = 0;
  int latent_dim = 8;
  int width = 64;  // channels of the first feature map
  int size = 64;   // output is 3 x size x size (size a power of two >= 8)
};

class Engine {
 public:
  virtual ~Engine() = default;
  // Loads (and caches by path, size and modification time) a model file.
  // Throws std::runtime_error naming the file and the problem.
  virtual std::shared_ptr<const Model> load_model(const std::filesystem::path& file) = 0;
  // Runs `fusionflow train`; returns the process exit code (0 ok, 1 failed,
  // 2 invalid configuration). Prints its own progress and errors.
  virtual int train(const TrainRequest& request) = 0;
  // An untrained MUNIT-style generator with random weights from `seed`:
  // random style vector -> image of 3 x size x size, returned as a volume of
  // size x size x 3 (the channels as slices).
  virtual Volume random_generator(const RandomGeneratorOptions& options) = 0;
  virtual std::string torch_version() const = 0;
};

}  // namespace fusionflow::learned

#define FUSIONFLOW_LEARNED_ENGINE_SYMBOL "fusionflow_learned_engine_v1"
extern "C" fusionflow::learned::Engine* fusionflow_learned_engine_v1();
