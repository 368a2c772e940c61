// learned.* nodes: a learned shared latent space (one encoder per modality
// into it, one decoder per modality out of it; docs/learned.md).
//
// This plugin does not link LibTorch. The first learned.* node that runs
// opens the engine library (libfusionflow-learned-engine.so, installed in
// <libdir>/fusionflow/learned/), so every other fusionflow process, which
// loads all bundled plugins, does not pay LibTorch's start-up.

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdio>
#include <map>
#include <memory>
#include <mutex>
#include <numeric>

#include <CLI/CLI.hpp>
#include <fusionflow/companion_library.hpp>
#include <fusionflow/sdk.hpp>

#include "learned/engine.hpp"

namespace fusionflow::learned_nodes {
namespace {

using learned::Engine;

// <libdir>/fusionflow/learned/libfusionflow-learned-engine.so, or
// $FUSIONFLOW_LEARNED_ENGINE.
Engine& engine() {
  static std::mutex mutex;
  static Engine* instance = nullptr;
  std::lock_guard<std::mutex> lock(mutex);
  if (instance == nullptr) {
    void* entry = open_companion_symbol(
        reinterpret_cast<const void*>(&engine), "learned/libfusionflow-learned-engine.so", "FUSIONFLOW_LEARNED_ENGINE",
        FUSIONFLOW_LEARNED_ENGINE_SYMBOL, "is libtorch-dev installed? scripts/setup.sh installs it");
    instance = reinterpret_cast<Engine* (*)()>(entry)();
  }
  return *instance;
}

// Models this process has loaded, by the SHA-256 their latents carry
// (encoder_params "model_sha256"): decode.latent decodes a learned latent
// with the model that encoded it.
class ModelsInUse {
 public:
  void remember(const Latent& latent, std::shared_ptr<const learned::Model> model) {
    auto sha = latent.encoder_params.find("model_sha256");
    if (sha == latent.encoder_params.end()) return;
    std::lock_guard<std::mutex> lock(mutex_);
    models_[sha->second] = std::move(model);
  }
  std::shared_ptr<const learned::Model> find(const Latent& latent) const {
    auto sha = latent.encoder_params.find("model_sha256");
    if (sha == latent.encoder_params.end()) return nullptr;
    std::lock_guard<std::mutex> lock(mutex_);
    auto it = models_.find(sha->second);
    return it == models_.end() ? nullptr : it->second;
  }

 private:
  mutable std::mutex mutex_;
  std::map<std::string, std::shared_ptr<const learned::Model>> models_;
};

ModelsInUse& models_in_use() {
  static ModelsInUse models;
  return models;
}

// decode.latent on a learned latent: the encoding model's decoder for the
// latent's own modality, in that modality's units (a fused latent has no
// modality of its own: learned.decode says which decoder).
Volume decode_learned_latent(const Latent& latent, NodeContext& ctx) {
  const auto model = models_in_use().find(latent);
  if (model == nullptr) {
    throw std::invalid_argument(
        "this learned latent's model was not loaded by this run; decode it with learned.decode and the model file");
  }
  const std::string& modality = latent.source_metadata.modality;
  const auto known = model->modalities();
  if (std::find(known.begin(), known.end(), modality) == known.end()) {
    throw std::invalid_argument("the learned latent's modality '" + modality +
                                "' has no decoder in the model (a fused latent has none of its own): use "
                                "learned.decode with modality set to one of the model's");
  }
  return model->decode(latent, modality, true, run_control(ctx));
}

const char* kModelHelp =
    "model file (.ffmodel) written by `fusionflow train`; the repository's phantom model is "
    "models/phantom_ct_mri.ffmodel";

struct EncodeOptions {
  std::filesystem::path model;
  std::string modality;
};

constexpr InputPort<Volume> kVolumeIn{"volume"};
constexpr OutputPort<Latent> kLatentOut{"latent"};
constexpr OutputPort<Volume> kNormalisedOut{"normalised"};

NodeType<EncodeOptions> encode_node() {
  NodeType<EncodeOptions> node(
      "learned.encode", "1.0.0",
      "Encodes a volume into the learned shared latent space with the model's encoder for its modality: "
      "the model's intensity normalisation (e.g. CT HU window, MRI percentiles), then a 2D network on "
      "every axial slice (with neighbouring slices as channels). The latent (kind 'learned') has one "
      "level 'features' (role features, C channels) on the source grid made 2^downsampling coarser "
      "in-plane (origin and direction kept); fuse with fuse.latent, decode with learned.decode.");
  node.input(kVolumeIn, "the volume, in the units the model expects (e.g. CT in HU)")
      .memory_intensive()
      .output(kLatentOut, "kind 'learned'")
      .optional_output(kNormalisedOut, "the input after the model's normalisation (0..1), e.g. for metrics")
      .input_path(&EncodeOptions::model, "model", kModelHelp)
      .param(&EncodeOptions::modality, "modality",
             "the model's encoder to use (CT, MR, ...); empty: the volume's modality");
  return node;
}

enum class DecodeUnits { Modality, Normalised };
const ChoiceList<DecodeUnits> kDecodeUnitsNames{{DecodeUnits::Modality, "modality"},
                                                {DecodeUnits::Normalised, "normalised"}};

struct DecodeOptions {
  std::filesystem::path model;
  std::string modality = "CT";
  DecodeUnits units = DecodeUnits::Modality;
};

constexpr InputPort<Latent> kLatentIn{"latent"};
constexpr OutputPort<Volume> kVolumeOut{"volume"};

NodeType<DecodeOptions> decode_node() {
  NodeType<DecodeOptions> node(
      "learned.decode", "1.0.0",
      "Decodes a learned latent (encoded or fused) with the model's decoder for `modality`, back on the "
      "source grid. Decoding another modality's latent translates (e.g. MR latent -> CT decoder = "
      "synthetic CT). units 'modality' inverts the normalisation (HU for CT); MR percentile "
      "normalisation is only invertible for a latent of the same MR volume, otherwise the output stays "
      "normalised.");
  node.input(kLatentIn, "a latent from learned.encode or fuse.latent")
      .memory_intensive()
      .output(kVolumeOut, "the decoded volume on the source grid")
      .input_path(&DecodeOptions::model, "model", kModelHelp)
      .param(&DecodeOptions::modality, "modality", "whose decoder: CT, MR, ... (a modality of the model)")
      .choice(&DecodeOptions::units, "units", kDecodeUnitsNames,
              "modality: the modality's units (e.g. HU); normalised: the network's 0..1 scale");
  return node;
}

struct SynthesizeOptions {
  std::filesystem::path model;
  std::string source_modality;
  std::string target_modality = "CT";
};

constexpr InputPort<Volume> kStyleReferenceIn{"style_reference"};

NodeType<SynthesizeOptions> synthesize_node() {
  NodeType<SynthesizeOptions> node(
      "learned.synthesize", "1.0.0",
      "Cross-modal synthesis: encodes the volume with its modality's encoder and decodes the code with "
      "the target modality's decoder, e.g. MRI -> synthetic CT in HU (learned.encode + learned.decode in "
      "one node).");
  node.input(kVolumeIn, "the source volume (e.g. T1 MRI)")
      .memory_intensive()
      .optional_input(kStyleReferenceIn,
                      "models with a content/style split: a volume of the target modality whose mean style "
                      "the output takes (MUNIT's example-guided translation); unset: the zero style")
      .output(kVolumeOut, "the synthetic volume on the source grid, in the target's units")
      .input_path(&SynthesizeOptions::model, "model", kModelHelp)
      .param(&SynthesizeOptions::source_modality, "source_modality", "encoder to use; empty: the volume's modality")
      .param(&SynthesizeOptions::target_modality, "target_modality", "decoder to use");
  return node;
}

NodeType<learned::RandomGeneratorOptions> random_generator_node() {
  using O = learned::RandomGeneratorOptions;
  NodeType<O> node("learned.random_generator", "1.0.0",
                   "An untrained MUNIT-style generator with random weights from `seed` maps a random style vector to "
                   "a 3 x size x size image (AdaIN decoder: linear map to 4x4 features, then upsampling "
                   "convolutions with style-driven adaptive instance normalisation, tanh). The image is returned as "
                   "a size x size x 3 volume (channels as slices); its size is logged.");
  node.output(kVolumeOut, "the image, size x size x 3, values in -1..1")
      .param(&O::seed, "seed", Limits::range(0, 1e15), "seed of the weights and of the random vector")
      .param(&O::latent_dim, "latent_dim", Limits::range(1, 1024), "length of the random vector")
      .param(&O::width, "width", Limits::range(4, 512), "feature channels")
      .param(&O::size, "size", Limits::range(8, 1024), "image width and height (a power of two)");
  return node;
}

void run_encode(NodeContext& ctx, const EncodeOptions& options) {
  const Volume& volume = ctx.input(kVolumeIn);
  const std::string modality = options.modality.empty() ? volume.metadata.modality : options.modality;
  auto model = engine().load_model(options.model);
  Volume normalised;
  Latent latent = model->encode(volume, modality, run_control(ctx), &normalised);
  models_in_use().remember(latent, model);
  ctx.log(LogLevel::Info, "encoded " + modality + " " + volume.geometry.size_string() + " into " +
                              std::to_string(latent.levels[0].channels) + " channels on " +
                              latent.levels[0].geometry.size_string());
  ctx.output(kNormalisedOut, std::move(normalised));
  ctx.output(kLatentOut, std::move(latent));
}

void run_decode(NodeContext& ctx, const DecodeOptions& options) {
  const Latent& latent = ctx.input(kLatentIn);
  auto model = engine().load_model(options.model);
  const std::string& modality = options.modality;
  Volume volume = model->decode(latent, modality, options.units == DecodeUnits::Modality, run_control(ctx));
  ctx.log(LogLevel::Info, "decoded " + latent.source_metadata.modality + " latent with the " + modality +
                              " decoder to " + volume.geometry.size_string() + " (" + volume.metadata.units + ")");
  ctx.output(kVolumeOut, std::move(volume));
}

void run_synthesize(NodeContext& ctx, const SynthesizeOptions& request) {
  const Volume& volume = ctx.input(kVolumeIn);
  const std::string source = request.source_modality.empty() ? volume.metadata.modality : request.source_modality;
  const std::string& target = request.target_modality;
  auto model = engine().load_model(request.model);
  const RunControl control = run_control(ctx);
  const Latent latent = model->encode(volume, source, control.sub(0.0, 0.5));
  std::vector<float> style;
  if (ctx.has_input(kStyleReferenceIn)) {
    const Volume& reference = ctx.input(kStyleReferenceIn);
    model->check_input(reference, target);  // also for models without a style, which ignore it
    style = model->style_of(reference, target, control.without_progress());
    if (style.empty()) ctx.log(LogLevel::Warn, "the model has no content/style split: style_reference is ignored");
  }
  Volume result = model->decode(latent, target, true, control.sub(0.5, 1.0), style);
  ctx.log(LogLevel::Info, "synthesised " + target + " (" + result.metadata.units + ") from " + source + " " +
                              volume.geometry.size_string());
  ctx.output(kVolumeOut, std::move(result));
}

void run_random_generator(NodeContext& ctx, const learned::RandomGeneratorOptions& options) {
  Volume image = engine().random_generator(options);
  const auto [min, max] = std::minmax_element(image.voxels.begin(), image.voxels.end());
  ctx.log(LogLevel::Info, "generated image of size 3x" + std::to_string(options.size) + "x" +
                              std::to_string(options.size) + " (channels x height x width) from a random vector of " +
                              std::to_string(options.latent_dim) + " values; pixel range " + std::to_string(*min) +
                              " .. " + std::to_string(*max));
  ctx.output(kVolumeOut, std::move(image));
}

// `fusionflow train CONFIG [--resume] [--iterations N] [--output FILE] [--quiet]`,
// a command of this plugin: the program itself never links LibTorch.
int train_command(const std::vector<std::string>& arguments) {
  CLI::App app{
      "fusionflow train: train a learned shared-latent model (see docs/learned.md).\n"
      "Exit codes: 0 done, 1 training failed, 2 invalid arguments or configuration.",
      "fusionflow train"};
  learned::TrainRequest request;
  std::string config;
  long long iterations = -1;
  app.add_option("config", config, "Training configuration JSON (see docs/learned.md)")->required();
  app.add_flag("--resume", request.resume, "Continue from the configuration's checkpoint if it exists");
  app.add_option("--iterations", iterations, "Override training.iterations")->check(CLI::Range(0LL, 100000000LL));
  app.add_option("--output", request.output, "Override the output model path (checkpoint and log go next to it)");
  app.add_flag("--quiet", request.quiet, "No progress output");
  try {
    std::vector<std::string> reversed(arguments.rbegin(), arguments.rend());  // CLI11 takes them last first
    app.parse(reversed);
  } catch (const CLI::ParseError& error) {
    const int code = app.exit(error);
    return code == 0 ? 0 : 2;
  }
  request.config = config;
  request.iterations = iterations;
  return engine().train(request);
}

}  // namespace
}  // namespace fusionflow::learned_nodes

FUSIONFLOW_PLUGIN("learned", "1.0.0",
                  "Learned shared latent space (LibTorch): per-modality encoders/decoders, synthesis, demo generator") {
  using namespace fusionflow::learned_nodes;
  registrar.add_node(encode_node(), run_encode);
  registrar.add_node(decode_node(), run_decode);
  registrar.add_node(synthesize_node(), run_synthesize);
  registrar.add_node(random_generator_node(), run_random_generator);
  registrar.add_command("train", "Train a learned shared-latent model (LibTorch) from a JSON configuration",
                        train_command);
  registrar.add_latent_decoder("learned", "the encoding model's decoder for the latent's modality, in its units",
                               decode_learned_latent);
}
