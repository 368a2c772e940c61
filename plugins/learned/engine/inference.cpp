// The learned engine: model loading, slice-wise encode/decode, the random
// generator demo, and the C entry point the plugin opens.
#include <tbb/blocked_range.h>
#include <tbb/parallel_for.h>
#include <tbb/task_arena.h>

#include <cmath>
#include <cstdio>
#include <mutex>
#include <sstream>

#include "learned/engine.hpp"
#include "model_file.hpp"
#include "networks.hpp"
#include "slices.hpp"
#include "training.hpp"

namespace fusionflow::learned {
namespace {

constexpr std::size_t kSliceBatch = 4;  // fixed partition: results never depend on the thread count
const char* const kLatentKind = "learned";

std::string number(double value) {
  char text[40];
  std::snprintf(text, sizeof text, "%.17g", value);
  return text;
}

// Runs body(first_slice, count) over fixed batches of slices, `threads` at a
// time, each with one LibTorch thread and no autograd.
template <class Body>
void for_slice_batches(std::size_t slices, const RunControl& control, Body body) {
  const std::size_t batches = (slices + kSliceBatch - 1) / kSliceBatch;
  std::atomic<std::size_t> done{0};
  std::mutex progress_mutex;
  tbb::task_arena arena(std::max(1, control.threads));
  arena.execute([&] {
    tbb::parallel_for(
        tbb::blocked_range<std::size_t>(0, batches, 1),
        [&](const tbb::blocked_range<std::size_t>& range) {
          at::set_num_threads(1);
          at::globalContext().setFlushDenormal(true);  // per thread (MXCSR): same result on every thread
          c10::InferenceMode guard;
          for (std::size_t b = range.begin(); b != range.end(); ++b) {
            control.cancel_point();
            const std::size_t first = b * kSliceBatch;
            body(first, std::min(kSliceBatch, slices - first));
            const std::size_t finished = ++done;
            if (control.progress) {
              std::lock_guard<std::mutex> lock(progress_mutex);
              control.report(double(finished) / double(batches));
            }
          }
        },
        tbb::simple_partitioner());
  });
}

class TorchModel final : public Model {
 public:
  TorchModel(std::filesystem::path file, ModelContainer container)
      : path_(std::move(file)), header_(std::move(container.header)) {
    const std::string who = "model file " + path_.string();
    try {
      architecture_ = architecture_from_json(header_.at("architecture"), who + ": /architecture");
      for (const auto& [name, info] : header_.at("modalities").items()) {
        modalities_.emplace(name, modality_from_json(info, name, who + ": /modalities/" + name));
      }
    } catch (const nlohmann::json::exception& error) {
      throw std::runtime_error(who + ": header incomplete: " + error.what());
    } catch (const std::invalid_argument& error) {
      throw std::runtime_error(error.what());
    }
    if (modalities_.empty()) throw std::runtime_error(who + ": header lists no modalities");
    net_ = LatentModel(architecture_, modalities());
    load_module_bytes(*net_, container.weights, who);
    net_->eval();
    sha_ = header_.value("weights_sha256", "");
  }

  const nlohmann::json& header() const override { return header_; }
  std::filesystem::path path() const override { return path_; }
  std::vector<std::string> modalities() const override {
    std::vector<std::string> names;
    for (const auto& [name, info] : modalities_) names.push_back(name);
    return names;
  }

  const ModalityInfo& info(const std::string& modality) const {
    auto it = modalities_.find(modality);
    if (it == modalities_.end()) {
      std::string known;
      for (const auto& name : modalities()) known += (known.empty() ? "" : ", ") + name;
      throw std::invalid_argument("model " + path_.string() + " has no encoder/decoder for modality '" + modality +
                                  "' (it knows " + known + "): use a model trained on " + modality +
                                  " or set the node's modality parameter");
    }
    return it->second;
  }

  void check_input(const Volume& volume, const std::string& modality) const override {
    const ModalityInfo& m = info(modality);
    if (!volume.metadata.modality.empty() && volume.metadata.modality != modality) {
      throw std::invalid_argument("the input volume is modality '" + volume.metadata.modality +
                                  "' but the node encodes '" + modality + "' with model " + path_.string() +
                                  ": connect a " + modality + " volume or change the node's modality parameter");
    }
    if (volume.metadata.units != m.units) {
      throw std::invalid_argument("model " + path_.string() + " expects " + modality + " in units '" + m.units +
                                  "' (normalisation " + m.normalisation.kind + " " + number(m.normalisation.low) +
                                  ".." + number(m.normalisation.high) + ") but the input volume is in '" +
                                  volume.metadata.units +
                                  "': convert the input (e.g. io.load_pet output_units) or "
                                  "train a model for these units");
    }
  }

  Volume normalise(const Volume& volume, const std::string& modality) const override {
    const auto [low, high] = normalisation_range(volume, info(modality).normalisation);
    return normalised_copy(volume, low, high);
  }

  // `volume` mapped linearly from low..high to the network's 0..1.
  static Volume normalised_copy(const Volume& volume, double low, double high) {
    Volume out;
    out.geometry = volume.geometry;
    out.metadata = volume.metadata;
    out.metadata.units = "normalised";
    out.metadata.quantity =
        volume.metadata.quantity + " (model normalisation " + number(low) + ".." + number(high) + " -> 0..1)";
    out.voxels.resize(volume.voxels.size());
    const double scale = 1.0 / (high - low);
    for (std::size_t v = 0; v < volume.voxels.size(); ++v) out.voxels[v] = float((volume.voxels[v] - low) * scale);
    return out;
  }

  Latent encode(const Volume& volume, const std::string& modality, const RunControl& control,
                Volume* normalised_out) const override {
    check_input(volume, modality);
    const Geometry& g = volume.geometry;
    if (g.voxel_count() == 0) throw std::invalid_argument("cannot encode an empty volume");
    const auto [low, high] = normalisation_range(volume, info(modality).normalisation);
    Volume normalised = normalised_copy(volume, low, high);
    const int factor = 1 << architecture_.downsampling;
    const std::size_t px = round_up(g.size[0], std::size_t(factor)), py = round_up(g.size[1], std::size_t(factor));
    Latent latent;
    latent.kind = kLatentKind;
    latent.encoder_params = encoder_params();
    latent.source_geometry = g;
    latent.source_metadata = volume.metadata;
    latent.source_metadata.extra["learned_norm_low"] = number(low);
    latent.source_metadata.extra["learned_norm_high"] = number(high);
    LatentLevel level;
    level.name = "features";
    level.role = "features";
    level.geometry = latent_geometry(g, factor);
    level.channels = std::size_t(architecture_.latent_channels);
    const std::size_t lx = level.geometry.size[0], ly = level.geometry.size[1];
    const std::size_t level_voxels = level.geometry.voxel_count();
    level.data.assign(level.channels * level_voxels, 0.0f);
    Encoder encoder = net_->encoders.at(modality);
    VectorQuantizer quantizer = net_->quantizer;
    const auto style_dim = std::size_t(architecture_.style_dim);
    std::vector<float> styles(g.size[2] * style_dim);
    for_slice_batches(g.size[2], control, [&](std::size_t k0, std::size_t count) {
      torch::Tensor input =
          slices_to_tensor(normalised.voxels.data(), g, k0, count, architecture_.context_slices, px, py);
      auto [code, style] = encoder->encode(input);
      if (quantizer) code = quantizer->forward(code).first;
      code = code.contiguous();
      if (style.defined()) {
        style = style.contiguous();
        std::copy(style.data_ptr<float>(), style.data_ptr<float>() + count * style_dim,
                  styles.begin() + std::ptrdiff_t(k0 * style_dim));
      }
      const float* src = code.data_ptr<float>();
      for (std::size_t b = 0; b < count; ++b)
        for (std::size_t c = 0; c < level.channels; ++c) {
          const float* plane = src + (b * level.channels + c) * lx * ly;
          std::copy(plane, plane + lx * ly, level.data.begin() + std::ptrdiff_t(c * level_voxels + (k0 + b) * lx * ly));
        }
    });
    latent.levels.push_back(std::move(level));
    if (style_dim > 0) {  // per-slice styles, for decoding with the same modality
      std::string text;
      for (float value : styles) text += (text.empty() ? "" : ",") + number(value);
      latent.source_metadata.extra["learned_style"] = text;
      latent.source_metadata.extra["learned_style_modality"] = modality;
    }
    if (normalised_out != nullptr) *normalised_out = std::move(normalised);
    return latent;
  }

  std::vector<float> style_of(const Volume& volume, const std::string& modality,
                              const RunControl& control) const override {
    const auto style_dim = std::size_t(architecture_.style_dim);
    if (style_dim == 0) return {};
    const Latent latent = encode(volume, modality, control, nullptr);
    std::vector<double> sum(style_dim, 0.0);
    const std::vector<float> styles = parse_styles(latent.source_metadata.extra.at("learned_style"));
    for (std::size_t v = 0; v < styles.size(); ++v) sum[v % style_dim] += styles[v];
    std::vector<float> mean(style_dim);
    for (std::size_t d = 0; d < style_dim; ++d) mean[d] = float(sum[d] / double(volume.geometry.size[2]));
    return mean;
  }

  static std::vector<float> parse_styles(const std::string& text) {
    std::vector<float> values;
    std::size_t at = 0;
    while (at < text.size()) {
      const std::size_t end = std::min(text.find(',', at), text.size());
      values.push_back(std::stof(text.substr(at, end - at)));
      at = end + 1;
    }
    return values;
  }

  Volume decode(const Latent& latent, const std::string& modality, bool to_units, const RunControl& control,
                const std::vector<float>& style) const override {
    const ModalityInfo& m = info(modality);
    if (latent.kind != kLatentKind) {
      throw std::invalid_argument("latent of kind '" + latent.kind +
                                  "' cannot be decoded by a learned model: use "
                                  "decode.latent for classical encoders");
    }
    const auto params = encoder_params();
    if (latent.encoder_params != params) {
      auto it = latent.encoder_params.find("model_sha256");
      throw std::invalid_argument("the latent was encoded by another model (weights sha256 " +
                                  (it == latent.encoder_params.end() ? std::string("?") : it->second.substr(0, 12)) +
                                  "...) than " + path_.string() + " (" + sha_.substr(0, 12) +
                                  "...): decode with the model that encoded it");
    }
    if (latent.levels.size() != 1 || latent.levels[0].channels != std::size_t(architecture_.latent_channels)) {
      throw std::invalid_argument("learned latent must have one 'features' level with " +
                                  std::to_string(architecture_.latent_channels) + " channels");
    }
    const LatentLevel& level = latent.levels[0];
    const Geometry& g = latent.source_geometry;
    const int factor = 1 << architecture_.downsampling;
    const Geometry expected = latent_geometry(g, factor);
    if (level.geometry.size != expected.size || level.data.size() != level.channels * level.voxel_count()) {
      throw std::invalid_argument("learned latent level grid does not match its source grid");
    }
    const std::size_t lx = level.geometry.size[0], ly = level.geometry.size[1], nx = g.size[0], ny = g.size[1];
    const std::size_t level_voxels = level.voxel_count();
    Volume volume;
    volume.geometry = g;
    volume.voxels.assign(g.voxel_count(), 0.0f);
    Decoder decoder = net_->decoders.at(modality);
    // Styles per slice: the given one, the latent's own (same modality), or none (zero).
    const auto style_dim = std::size_t(architecture_.style_dim);
    std::vector<float> styles;
    if (style_dim > 0) {
      const auto& extra = latent.source_metadata.extra;
      if (!style.empty()) {
        if (style.size() != style_dim) throw std::invalid_argument("style vector has the wrong length");
        for (std::size_t k = 0; k < g.size[2]; ++k) styles.insert(styles.end(), style.begin(), style.end());
      } else if (extra.count("learned_style") && extra.count("learned_style_modality") &&
                 extra.at("learned_style_modality") == modality) {
        styles = parse_styles(extra.at("learned_style"));
        if (styles.size() != g.size[2] * style_dim) throw std::invalid_argument("latent's learned_style is damaged");
      }
    }
    for_slice_batches(g.size[2], control, [&](std::size_t k0, std::size_t count) {
      torch::Tensor input = torch::empty({long(count), long(level.channels), long(ly), long(lx)});
      float* dst = input.data_ptr<float>();
      for (std::size_t b = 0; b < count; ++b)
        for (std::size_t c = 0; c < level.channels; ++c) {
          const float* plane = level.data.data() + c * level_voxels + (k0 + b) * lx * ly;
          std::copy(plane, plane + lx * ly, dst + (b * level.channels + c) * lx * ly);
        }
      torch::Tensor style_batch;
      if (!styles.empty()) {
        style_batch = torch::empty({long(count), long(style_dim)});
        std::copy(styles.begin() + std::ptrdiff_t(k0 * style_dim),
                  styles.begin() + std::ptrdiff_t((k0 + count) * style_dim), style_batch.data_ptr<float>());
      }
      torch::Tensor image = decoder->forward(input, style_batch).contiguous();
      const float* src = image.data_ptr<float>();
      const std::size_t px = lx * std::size_t(factor);
      const std::size_t py = ly * std::size_t(factor);
      for (std::size_t b = 0; b < count; ++b)
        for (std::size_t j = 0; j < ny; ++j) {
          const float* row = src + b * px * py + j * px;
          std::copy(row, row + nx, volume.voxels.begin() + std::ptrdiff_t((k0 + b) * nx * ny + j * nx));
        }
    });
    // Metadata: the decoded modality (or FUSED with its sources), in its units.
    const VolumeMetadata& source = latent.source_metadata;
    const bool fused = source.modality == "FUSED";
    volume.metadata = source;
    volume.metadata.extra.erase("learned_norm_low");
    volume.metadata.extra.erase("learned_norm_high");
    volume.metadata.extra.erase("learned_style");
    volume.metadata.extra.erase("learned_style_modality");
    volume.metadata.extra["learned_decoder"] = modality;
    volume.metadata.extra["learned_model"] = path_.string();
    if (!fused) {
      volume.metadata.modality = modality;
      volume.metadata.quantity = source.modality == modality
                                     ? source.quantity + " (learned reconstruction)"
                                     : "synthetic " + modality + " from " + source.modality + " (learned)";
    }
    double low = 0.0, high = 1.0;
    bool have_range = false;
    if (m.normalisation.kind == "window") {
      low = m.normalisation.low, high = m.normalisation.high, have_range = true;
    } else if (m.normalisation.kind == "scale") {
      high = m.normalisation.high, have_range = true;
    } else if (source.modality == modality && source.extra.count("learned_norm_low")) {
      low = std::stod(source.extra.at("learned_norm_low"));
      high = std::stod(source.extra.at("learned_norm_high"));
      have_range = true;
    }
    if (to_units && have_range) {
      volume.metadata.units = m.units;
      const double scale = high - low;
      for (float& v : volume.voxels) v = float(v * scale + low);
    } else {
      volume.metadata.units = "normalised";
    }
    return volume;
  }

  std::map<std::string, std::string> encoder_params() const {
    return {{"model_sha256", sha_},
            {"codebook_size", std::to_string(architecture_.codebook_size)},
            {"latent_channels", std::to_string(architecture_.latent_channels)},
            {"downsampling", std::to_string(architecture_.downsampling)}};
  }

 private:
  std::filesystem::path path_;
  nlohmann::json header_;
  Architecture architecture_;
  std::map<std::string, ModalityInfo> modalities_;
  LatentModel net_{nullptr};
  std::string sha_;
};

// MUNIT's decoder in miniature: the style vector sets, through an MLP, the
// scale and bias of adaptive instance normalisation (AdaIN) after each
// upsampling convolution; the content starts as a linear map of the vector.
struct RandomGeneratorImpl : torch::nn::Module {
  RandomGeneratorImpl(int latent_dim, int width, int stages) : width_(width) {
    start = register_module("start", torch::nn::Linear(latent_dim, width * 4 * 4));
    mlp1 = register_module("mlp1", torch::nn::Linear(latent_dim, 64));
    mlp2 = register_module("mlp2", torch::nn::Linear(64, 2 * width * stages));
    for (int s = 0; s < stages; ++s) convs.push_back(register_module("up" + std::to_string(s), conv(width, width, 3)));
    out = register_module("out", conv(width, 3, 3));
  }
  torch::Tensor forward(const torch::Tensor& z) {
    torch::Tensor x = start(z).view({z.size(0), width_, 4, 4});
    torch::Tensor style = mlp2(torch::relu(mlp1(z)));
    for (std::size_t s = 0; s < convs.size(); ++s) {
      x = torch::nn::functional::interpolate(x, torch::nn::functional::InterpolateFuncOptions()
                                                    .scale_factor(std::vector<double>{2.0, 2.0})
                                                    .mode(torch::kNearest));
      x = convs[s](x);
      const auto mean = x.mean({2, 3}, true);
      const auto stdev = (x.var({2, 3}, false, true) + 1e-5).sqrt();
      const auto gamma = style.narrow(1, long(2 * s) * width_, width_).view({z.size(0), width_, 1, 1});
      const auto beta = style.narrow(1, long(2 * s + 1) * width_, width_).view({z.size(0), width_, 1, 1});
      x = torch::relu((x - mean) / stdev * (1 + gamma) + beta);
    }
    return torch::tanh(out(x));
  }
  int width_;
  torch::nn::Linear start{nullptr}, mlp1{nullptr}, mlp2{nullptr};
  std::vector<torch::nn::Conv2d> convs;
  torch::nn::Conv2d out{nullptr};
};
TORCH_MODULE(RandomGenerator);

class TorchEngine final : public Engine {
 public:
  std::shared_ptr<const Model> load_model(const std::filesystem::path& file) override {
    std::error_code ec;
    const auto size = std::filesystem::file_size(file, ec);
    const auto time = std::filesystem::last_write_time(file, ec);
    const std::string key = std::filesystem::absolute(file).string() + "|" + std::to_string(ec ? 0 : size) + "|" +
                            std::to_string(ec ? 0 : time.time_since_epoch().count());
    std::lock_guard<std::mutex> lock(mutex_);
    if (auto it = cache_.find(key); it != cache_.end()) return it->second;
    auto model = std::make_shared<TorchModel>(file, read_model_container(file));
    cache_[key] = model;
    return model;
  }

  int train(const TrainRequest& request) override { return run_training(request); }

  Volume random_generator(const RandomGeneratorOptions& o) override {
    int stages = 0;
    while ((4 << stages) < o.size) ++stages;
    if ((4 << stages) != o.size || o.size < 8) throw std::invalid_argument("size must be a power of two >= 8");
    std::lock_guard<std::mutex> lock(mutex_);  // the global torch RNG
    at::set_num_threads(1);
    torch::manual_seed(o.seed);
    RandomGenerator generator(o.latent_dim, o.width, stages);
    generator->eval();
    c10::InferenceMode guard;
    const torch::Tensor z = torch::randn({1, o.latent_dim});
    const torch::Tensor image = generator->forward(z).contiguous();
    Volume volume;
    const auto n = std::size_t(o.size);
    volume.geometry.size = {n, n, 3};
    volume.voxels.resize(n * n * 3);
    std::copy(image.data_ptr<float>(), image.data_ptr<float>() + n * n * 3, volume.voxels.begin());
    volume.metadata.modality = "GENERATED";
    volume.metadata.units = "a.u.";
    volume.metadata.quantity = "untrained MUNIT-style generator output (tanh, -1..1), channels as slices";
    volume.metadata.extra["generator_seed"] = std::to_string(o.seed);
    volume.metadata.extra["image_shape"] = "3x" + std::to_string(o.size) + "x" + std::to_string(o.size);
    return volume;
  }

  std::string torch_version() const override { return TORCH_VERSION; }

 private:
  std::mutex mutex_;
  std::map<std::string, std::shared_ptr<const Model>> cache_;
};

}  // namespace
}  // namespace fusionflow::learned

extern "C" __attribute__((visibility("default"))) fusionflow::learned::Engine* fusionflow_learned_engine_v1() {
  static fusionflow::learned::TorchEngine engine;
  return &engine;
}
