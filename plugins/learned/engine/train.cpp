// `fusionflow train config.json`: trains the per-modality encoders and
// decoders of a learned shared latent space on co-registered volumes.
// See docs/learned.md for the configuration format and the losses.
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <random>
#include <set>
#include <sstream>

#include "fusionflow/atomic_file.hpp"
#include "fusionflow/itk_bridge.hpp"
#include "fusionflow/version.hpp"
#include "model_file.hpp"
#include "networks.hpp"
#include "phantom.hpp"
#include "slices.hpp"
#include "training.hpp"

namespace fusionflow::learned {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

struct ConfigError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

const std::vector<std::string> kLossNames{"reconstruction", "latent_norm",       "translation", "cycle",
                                          "alignment_l1",   "alignment_infonce", "adversarial", "vector_quantization"};

struct TrainConfig {
  json raw;
  fs::path base_dir;
  fs::path output, checkpoint, log;
  std::uint64_t seed = 1;
  int threads = 2;
  std::vector<ModalityInfo> modalities;  // training order
  Architecture architecture;
  std::int64_t iterations = 1000, batch_size = 8, patch_size = 64, log_every = 10, checkpoint_every = 200;
  double learning_rate = 1e-3;
  double gradient_clip = 1.0;             // max gradient norm per step; 0: off
  std::map<std::string, double> weights;  // enabled losses only
  double infonce_temperature = 0.1;
  std::int64_t infonce_samples = 128;
  double commitment = 0.25;  // VQ-VAE commitment weight (beta)
  int discriminator_width = 16;
  // data
  json phantom;  // {seeds, size, options, sources}
  std::vector<std::map<std::string, fs::path>> volume_sets;
};

// Small helpers that throw ConfigError with the JSON location.
const json& member(const json& object, const std::string& key, const std::string& where) {
  if (!object.is_object() || !object.contains(key)) throw ConfigError(where + "/" + key + ": required");
  return object.at(key);
}
template <class T>
T get_number(const json& object, const std::string& key, const std::string& where, T fallback, double low,
             double high) {
  if (!object.contains(key)) return fallback;
  const json& v = object.at(key);
  if (!v.is_number() || (std::is_integral_v<T> && !v.is_number_integer())) {
    throw ConfigError(where + "/" + key + ": expected " + (std::is_integral_v<T> ? "an integer" : "a number"));
  }
  const double d = v.get<double>();
  if (d < low || d > high) {
    throw ConfigError(where + "/" + key + ": " + v.dump() + " is outside [" + json(low).dump() + ", " +
                      json(high).dump() + "]");
  }
  return v.get<T>();
}
void only_keys(const json& object, const std::string& where, std::set<std::string> allowed) {
  if (!object.is_object()) throw ConfigError(where + ": expected an object");
  for (const auto& [key, value] : object.items()) {
    (void)value;
    if (!allowed.count(key)) {
      std::string list;
      for (const auto& a : allowed) list += (list.empty() ? "" : ", ") + a;
      throw ConfigError(where + "/" + key + ": unknown key (known: " + list + ")");
    }
  }
}

TrainConfig parse_config(const fs::path& file) {
  std::ifstream stream(file);
  if (!stream) throw ConfigError(file.string() + ": cannot open the training configuration");
  TrainConfig c;
  try {
    c.raw = json::parse(stream);
  } catch (const json::parse_error& error) {
    throw ConfigError(file.string() + ": not valid JSON: " + error.what());
  }
  c.base_dir = fs::absolute(file).parent_path();
  const json& r = c.raw;
  only_keys(r, "",
            {"format_version", "description", "output", "checkpoint", "log", "seed", "threads", "modalities", "data",
             "model", "training", "losses"});
  if (r.value("format_version", 0) != 1) throw ConfigError("/format_version: must be 1");
  auto path_of = [&](const std::string& key, const std::string& fallback) {
    if (r.contains(key) && !r[key].is_string()) throw ConfigError("/" + key + ": expected a path string");
    const fs::path p = r.value(key, fallback);
    return p.is_absolute() ? p : c.base_dir / p;
  };
  if (!r.contains("output")) throw ConfigError("/output: required (the .ffmodel file to write)");
  c.output = path_of("output", "");
  c.checkpoint = path_of("checkpoint", r["output"].get<std::string>() + ".ckpt");
  c.log = path_of("log", r["output"].get<std::string>() + ".log.jsonl");
  c.seed = get_number<std::uint64_t>(r, "seed", "", 1, 0, 1e18);
  c.threads = get_number<int>(r, "threads", "", 2, 1, 256);

  const json& modalities = member(r, "modalities", "");
  if (!modalities.is_object() || modalities.size() < 1)
    throw ConfigError("/modalities: expected an object of modalities");
  for (const auto& [name, info] : modalities.items()) {
    try {
      c.modalities.push_back(modality_from_json(info, name, "/modalities/" + name));
    } catch (const std::invalid_argument& error) {
      throw ConfigError(error.what());
    }
  }
  try {
    c.architecture = architecture_from_json(r.value("model", json::object()), "/model");
  } catch (const std::invalid_argument& error) {
    throw ConfigError(error.what());
  }

  const json training = r.value("training", json::object());
  only_keys(training, "/training",
            {"iterations", "batch_size", "patch_size", "learning_rate", "log_every", "checkpoint_every",
             "discriminator_width", "gradient_clip"});
  c.iterations = get_number<std::int64_t>(training, "iterations", "/training", 1000, 1, 1e8);
  c.batch_size = get_number<std::int64_t>(training, "batch_size", "/training", 8, 1, 1024);
  c.patch_size = get_number<std::int64_t>(training, "patch_size", "/training", 64, 8, 4096);
  c.learning_rate = get_number<double>(training, "learning_rate", "/training", 1e-3, 1e-7, 1.0);
  c.log_every = get_number<std::int64_t>(training, "log_every", "/training", 10, 1, 1e8);
  c.checkpoint_every = get_number<std::int64_t>(training, "checkpoint_every", "/training", 200, 1, 1e8);
  c.discriminator_width = get_number<int>(training, "discriminator_width", "/training", 16, 4, 256);
  c.gradient_clip = get_number<double>(training, "gradient_clip", "/training", 1.0, 0.0, 1e6);
  if (c.patch_size % (1 << c.architecture.downsampling) != 0) {
    throw ConfigError("/training/patch_size: must be a multiple of 2^model.downsampling = " +
                      std::to_string(1 << c.architecture.downsampling));
  }

  const json losses = r.value("losses", json{{"reconstruction", {{"weight", 1.0}}}});
  only_keys(losses, "/losses", std::set<std::string>(kLossNames.begin(), kLossNames.end()));
  for (const auto& [name, spec] : losses.items()) {
    const std::string where = "/losses/" + name;
    only_keys(spec, where, {"enabled", "weight", "temperature", "samples", "commitment"});
    if (spec.contains("enabled") && !spec["enabled"].is_boolean())
      throw ConfigError(where + "/enabled: expected true or false");
    const double weight = get_number<double>(spec, "weight", where, 1.0, 0.0, 1e6);
    if (spec.value("enabled", true) && weight > 0) c.weights[name] = weight;
    if (name == "alignment_infonce") {
      c.infonce_temperature = get_number<double>(spec, "temperature", where, 0.1, 1e-4, 100);
      c.infonce_samples = get_number<std::int64_t>(spec, "samples", where, 128, 2, 65536);
    }
    if (name == "vector_quantization") c.commitment = get_number<double>(spec, "commitment", where, 0.25, 0.0, 100);
  }
  if (c.weights.empty()) throw ConfigError("/losses: every loss is disabled");
  if (c.architecture.codebook_size > 0 && !c.weights.count("vector_quantization")) {
    throw ConfigError("/losses/vector_quantization: required (with a weight > 0) when model.codebook_size > 0");
  }
  if (c.architecture.codebook_size == 0 && c.weights.count("vector_quantization")) {
    throw ConfigError("/losses/vector_quantization: needs model.codebook_size > 0");
  }
  if (c.modalities.size() < 2) {
    for (const char* cross : {"translation", "cycle", "alignment_l1", "alignment_infonce", "adversarial"}) {
      if (c.weights.count(cross)) throw ConfigError(std::string("/losses/") + cross + ": needs two or more modalities");
    }
  }

  const json& data = member(r, "data", "");
  only_keys(data, "/data", {"phantom", "volumes"});
  if (data.contains("phantom") == data.contains("volumes")) {
    throw ConfigError("/data: give exactly one of 'phantom' (seeds of the digital phantom) or 'volumes' (your files)");
  }
  if (data.contains("phantom")) {
    c.phantom = data["phantom"];
    only_keys(c.phantom, "/data/phantom", {"seeds", "size", "options", "sources"});
    const json& seeds = member(c.phantom, "seeds", "/data/phantom");
    if (!seeds.is_array() || seeds.empty())
      throw ConfigError("/data/phantom/seeds: expected a non-empty array of integers");
    for (std::size_t i = 0; i < seeds.size(); ++i)
      if (!seeds[i].is_number_unsigned())
        throw ConfigError("/data/phantom/seeds/" + std::to_string(i) + ": expected a non-negative integer");
    const json& sources = member(c.phantom, "sources", "/data/phantom");
    for (const auto& m : c.modalities) {
      if (!sources.contains(m.name)) {
        throw ConfigError("/data/phantom/sources/" + m.name + ": required: which phantom volume (ct, t1, t2) is " +
                          m.name);
      }
      const std::string s = sources[m.name].is_string() ? sources[m.name].get<std::string>() : "";
      if (s != "ct" && s != "t1" && s != "t2") {
        throw ConfigError("/data/phantom/sources/" + m.name + ": expected \"ct\", \"t1\" or \"t2\"");
      }
    }
  } else {
    const json& sets = data["volumes"];
    if (!sets.is_array() || sets.empty())
      throw ConfigError("/data/volumes: expected a non-empty array of {modality: path}");
    for (std::size_t i = 0; i < sets.size(); ++i) {
      const std::string where = "/data/volumes/" + std::to_string(i);
      std::map<std::string, fs::path> set;
      for (const auto& m : c.modalities) {
        const json& p = member(sets[i], m.name, where);
        if (!p.is_string()) throw ConfigError(where + "/" + m.name + ": expected a file path");
        const fs::path path = fs::path(p.get<std::string>()).is_absolute() ? fs::path(p.get<std::string>())
                                                                           : c.base_dir / p.get<std::string>();
        if (!fs::exists(path)) throw ConfigError(where + "/" + m.name + ": " + path.string() + " does not exist");
        set[m.name] = path;
      }
      c.volume_sets.push_back(std::move(set));
    }
  }
  return c;
}

// One co-registered training case: each modality normalised to [0, 1] on one grid.
struct Case {
  Geometry geometry;
  std::vector<std::vector<float>> channels;  // per modality, config order
  std::vector<std::size_t> slices;           // slices with enough foreground to train on
};

std::vector<float> normalised(const Volume& volume, const ModalityInfo& m) {
  const auto [low, high] = normalisation_range(volume, m.normalisation);
  std::vector<float> out(volume.voxels.size());
  for (std::size_t v = 0; v < out.size(); ++v) out[v] = float((volume.voxels[v] - low) / (high - low));
  return out;
}

std::vector<Case> load_data(const TrainConfig& c, json& hashes, const std::function<void(const std::string&)>& say) {
  std::vector<Case> cases;
  auto finish = [&](Case item) {
    const std::size_t plane = item.geometry.size[0] * item.geometry.size[1];
    for (std::size_t k = 0; k < item.geometry.size[2]; ++k) {
      std::size_t foreground = 0;
      for (std::size_t v = 0; v < plane; ++v) foreground += item.channels[0][k * plane + v] > 0.1f ? 1 : 0;
      if (foreground * 20 >= plane) item.slices.push_back(k);
    }
    if (item.slices.empty()) throw std::runtime_error("a training case has no slice with foreground");
    cases.push_back(std::move(item));
  };
  if (!c.phantom.is_null()) {
    for (const auto& seed_json : c.phantom["seeds"]) {
      const auto seed = seed_json.get<std::uint64_t>();
      json options_json = c.phantom.value("options", json::object());
      options_json["seed"] = seed;
      options_json["anatomy_seed"] = seed;
      if (c.phantom.contains("size")) options_json["size"] = c.phantom["size"];
      testdata::PhantomOptions options;
      try {
        options = testdata::phantom_options_from_json(options_json);
      } catch (const std::exception& error) {
        throw ConfigError(std::string("/data/phantom/options: ") + error.what());
      }
      options.mri_displacement = {};  // co-registered training pairs
      options.pet_displacement = {};
      say("generating phantom seed " + std::to_string(seed));
      const testdata::Phantom phantom = testdata::generate_phantom(options);
      Case item;
      item.geometry = phantom.ct.geometry;
      for (const auto& m : c.modalities) {
        const std::string source = c.phantom["sources"][m.name].get<std::string>();
        const Volume& v = source == "ct" ? phantom.ct : source == "t1" ? phantom.t1 : phantom.t2;
        item.channels.push_back(normalised(v, m));
      }
      const std::string options_text = testdata::to_json(options).dump();
      hashes.push_back({{"phantom_seed", seed}, {"options_sha256", sha256_hex(options_text)}});
      finish(std::move(item));
    }
  } else {
    register_itk_image_io();
    for (const auto& set : c.volume_sets) {
      Case item;
      json entry = json::object();
      for (const auto& m : c.modalities) {
        const fs::path& path = set.at(m.name);
        say("reading " + path.string());
        Volume v = read_volume(path);
        if (item.channels.empty()) {
          item.geometry = v.geometry;
        } else if (!v.geometry.same_grid(item.geometry, 1e-4)) {
          throw std::runtime_error(path.string() +
                                   " is not on the grid of the other volumes of its case: training "
                                   "needs co-registered volumes resampled onto one grid");
        }
        item.channels.push_back(normalised(v, m));
        std::ifstream in(path, std::ios::binary);
        std::ostringstream bytes;
        bytes << in.rdbuf();
        const std::string text = bytes.str();
        entry[m.name] = {{"file", path.filename().string()}, {"sha256", sha256_hex(text)}};
      }
      hashes.push_back(entry);
      finish(std::move(item));
    }
  }
  return cases;
}

struct Networks {
  LatentModel model{nullptr};
  std::map<std::string, PatchDiscriminator> discriminators;
  std::unique_ptr<torch::optim::Adam> optimizer, discriminator_optimizer;
};

Networks make_networks(const TrainConfig& c) {
  torch::manual_seed(c.seed);
  Networks n;
  std::vector<std::string> names;
  for (const auto& m : c.modalities) names.push_back(m.name);
  n.model = LatentModel(c.architecture, names);
  const auto adam = torch::optim::AdamOptions(c.learning_rate).betas({0.5, 0.999});
  n.optimizer = std::make_unique<torch::optim::Adam>(n.model->parameters(), adam);
  if (c.weights.count("adversarial")) {
    std::vector<torch::Tensor> parameters;
    for (const auto& name : names) {
      auto d = PatchDiscriminator(c.discriminator_width);
      n.discriminators.emplace(name, d);
      for (auto& p : d->parameters()) parameters.push_back(p);
    }
    n.discriminator_optimizer = std::make_unique<torch::optim::Adam>(parameters, adam);
  }
  return n;
}

std::string archive_bytes(const std::function<void(torch::serialize::OutputArchive&)>& fill) {
  torch::serialize::OutputArchive archive;
  fill(archive);
  return save_archive(archive);
}

std::string config_fingerprint(const TrainConfig& c) {
  json essential = c.raw;
  essential.erase("description");
  if (essential.contains("training")) essential["training"].erase("iterations");  // may be extended on resume
  const std::string text = essential.dump();
  return sha256_hex(text);
}

json library_versions() {
  return {{"fusionflow", version_string()},
          {"libtorch", std::to_string(TORCH_VERSION_MAJOR) + "." + std::to_string(TORCH_VERSION_MINOR) + "." +
                           std::to_string(TORCH_VERSION_PATCH)}};
}

void save_checkpoint(const TrainConfig& c, Networks& n, std::int64_t iteration,
                     const std::vector<std::int64_t>& usage) {
  const std::string weights = archive_bytes([&](torch::serialize::OutputArchive& a) {
    torch::serialize::OutputArchive model, optimizer;
    n.model->save(model);
    n.optimizer->save(optimizer);
    a.write("model", model);
    a.write("optimizer", optimizer);
    if (n.discriminator_optimizer) {
      torch::serialize::OutputArchive discriminators, d_optimizer;
      for (auto& [name, d] : n.discriminators) {
        torch::serialize::OutputArchive one;
        d->save(one);
        discriminators.write(name, one);
      }
      n.discriminator_optimizer->save(d_optimizer);
      a.write("discriminators", discriminators);
      a.write("discriminator_optimizer", d_optimizer);
    }
  });
  write_model_container(c.checkpoint,
                        {{"checkpoint", true},
                         {"iteration", iteration},
                         {"config_sha256", config_fingerprint(c)},
                         {"libraries", library_versions()},
                         {"codebook_usage", usage}},
                        weights);
}

std::int64_t load_checkpoint(const TrainConfig& c, Networks& n, std::vector<std::int64_t>& usage) {
  const ModelContainer container = read_model_container(c.checkpoint);
  if (!container.header.value("checkpoint", false)) {
    throw std::runtime_error(c.checkpoint.string() + " is not a training checkpoint");
  }
  if (container.header.value("config_sha256", "") != config_fingerprint(c)) {
    throw std::runtime_error("checkpoint " + c.checkpoint.string() +
                             " was written with a different configuration "
                             "(only training/iterations may change on resume): delete it or restore the config");
  }
  try {
    std::istringstream stream(container.weights, std::ios::binary);
    torch::serialize::InputArchive a;
    a.load_from(stream);
    torch::serialize::InputArchive model, optimizer;
    a.read("model", model);
    a.read("optimizer", optimizer);
    n.model->load(model);
    n.optimizer->load(optimizer);
    if (n.discriminator_optimizer) {
      torch::serialize::InputArchive discriminators, d_optimizer;
      a.read("discriminators", discriminators);
      for (auto& [name, d] : n.discriminators) {
        torch::serialize::InputArchive one;
        discriminators.read(name, one);
        d->load(one);
      }
      a.read("discriminator_optimizer", d_optimizer);
      n.discriminator_optimizer->load(d_optimizer);
    }
  } catch (const c10::Error& error) {
    throw std::runtime_error("checkpoint " + c.checkpoint.string() +
                             " does not fit the configuration: " + error.what_without_backtrace());
  }
  if (container.header.contains("codebook_usage")) {
    usage = container.header["codebook_usage"].get<std::vector<std::int64_t>>();
  }
  return container.header.value("iteration", std::int64_t{0});
}

struct Batch {
  std::vector<torch::Tensor> inputs;   // per modality [B, 2c+1, P, P]
  std::vector<torch::Tensor> targets;  // per modality [B, 1, P, P] (the centre slice)
};

// The batch of iteration `iteration` depends only on the seed and the
// iteration, so a resumed run sees the same batches as an uninterrupted one.
Batch make_batch(const TrainConfig& c, const std::vector<Case>& cases, std::int64_t iteration) {
  std::mt19937_64 rng(c.seed * 0x9E3779B97F4A7C15ull + std::uint64_t(iteration));
  const int ctx = c.architecture.context_slices;
  const auto patch = std::size_t(c.patch_size);
  Batch batch;
  for (std::size_t m = 0; m < c.modalities.size(); ++m) {
    batch.inputs.push_back(torch::empty({c.batch_size, 2 * ctx + 1, long(patch), long(patch)}));
  }
  for (std::int64_t b = 0; b < c.batch_size; ++b) {
    const Case& item = cases[rng() % cases.size()];
    const std::size_t k = item.slices[rng() % item.slices.size()];
    const std::size_t nx = item.geometry.size[0], ny = item.geometry.size[1];
    const std::size_t x0 = nx > patch ? rng() % (nx - patch + 1) : 0;
    const std::size_t y0 = ny > patch ? rng() % (ny - patch + 1) : 0;
    const bool flip = rng() % 2 == 1;  // left-right mirror augmentation
    for (std::size_t m = 0; m < c.modalities.size(); ++m) {
      float* out = batch.inputs[m].data_ptr<float>() + b * (2 * ctx + 1) * long(patch * patch);
      for (int ch = 0; ch < 2 * ctx + 1; ++ch) {
        const long kk = std::clamp<long>(long(k) + ch - ctx, 0, long(item.geometry.size[2]) - 1);
        const float* slice = item.channels[m].data() + std::size_t(kk) * nx * ny;
        for (std::size_t y = 0; y < patch; ++y)
          for (std::size_t x = 0; x < patch; ++x) {
            const std::size_t sx = std::min(x0 + (flip ? patch - 1 - x : x), nx - 1);
            const std::size_t sy = std::min(y0 + y, ny - 1);
            out[std::size_t(ch) * patch * patch + y * patch + x] = slice[sy * nx + sx];
          }
      }
    }
  }
  for (auto& input : batch.inputs) batch.targets.push_back(input.narrow(1, ctx, 1));
  return batch;
}

torch::Tensor as_input(const torch::Tensor& slice, int context) {
  return context == 0 ? slice : slice.repeat({1, 2 * context + 1, 1, 1});
}

// CLIP-style InfoNCE between the codes of two modalities at the same
// (randomly chosen) positions: each code must pick its partner among all.
torch::Tensor info_nce(const torch::Tensor& za, const torch::Tensor& zb, const torch::Tensor& index,
                       double temperature) {
  auto flat = [&](const torch::Tensor& z) {
    return torch::nn::functional::normalize(z.permute({0, 2, 3, 1}).reshape({-1, z.size(1)}).index_select(0, index),
                                            torch::nn::functional::NormalizeFuncOptions().dim(1));
  };
  const torch::Tensor a = flat(za), b = flat(zb);
  const torch::Tensor logits = a.matmul(b.t()) / temperature;
  const torch::Tensor labels = torch::arange(logits.size(0), torch::kLong);
  return 0.5 * (torch::nn::functional::cross_entropy(logits, labels) +
                torch::nn::functional::cross_entropy(logits.t(), labels));
}

class Progress {
 public:
  Progress(bool quiet, std::int64_t total) : quiet_(quiet), tty_(isatty(STDERR_FILENO) != 0), total_(total) {}
  void update(std::int64_t iteration, double loss, double seconds, std::int64_t start) {
    if (quiet_) return;
    const double rate = seconds > 0 ? double(iteration - start) / seconds : 0;
    const double eta = rate > 0 ? double(total_ - iteration) / rate : 0;
    if (tty_) {
      const int width = 30, filled = int(width * double(iteration) / double(total_));
      std::fprintf(stderr, "\r[%s%s] %lld/%lld loss %.4f  %.1f it/s  eta %.0f s ",
                   std::string(std::size_t(filled), '#').c_str(), std::string(std::size_t(width - filled), '.').c_str(),
                   static_cast<long long>(iteration), static_cast<long long>(total_), loss, rate, eta);
      if (iteration == total_) std::fprintf(stderr, "\n");
    } else if (iteration == total_ || iteration - last_line_ >= std::max<std::int64_t>(1, total_ / 20)) {
      std::fprintf(stderr, "iteration %lld/%lld loss %.4f (%.1f it/s, eta %.0f s)\n", static_cast<long long>(iteration),
                   static_cast<long long>(total_), loss, rate, eta);
      last_line_ = iteration;
    }
    std::fflush(stderr);
  }

 private:
  bool quiet_, tty_;
  std::int64_t total_, last_line_ = 0;
};

}  // namespace

int run_training(const TrainRequest& request) {
  auto say = [&](const std::string& text) {
    if (!request.quiet) std::fprintf(stderr, "%s\n", text.c_str());
  };
  TrainConfig c;
  try {
    c = parse_config(request.config);
    if (request.iterations >= 0) c.iterations = request.iterations;
    if (!request.output.empty()) {
      c.output = fs::absolute(request.output);
      c.checkpoint = c.output.string() + ".ckpt";
      c.log = c.output.string() + ".log.jsonl";
    }
  } catch (const ConfigError& error) {
    std::fprintf(stderr, "error: %s: %s\n", request.config.string().c_str(), error.what());
    return 2;
  }
  try {
    at::set_num_threads(c.threads);
    // Denormal floats (tiny gradients, Adam moments) slow x86 arithmetic by
    // orders of magnitude; flush them to zero.
    at::globalContext().setFlushDenormal(true);
    json hashes = json::array();
    const auto t0 = std::chrono::steady_clock::now();
    const std::vector<Case> cases = load_data(c, hashes, say);
    Networks n = make_networks(c);
    std::int64_t start = 0;
    // How often each codebook entry was chosen (all modalities, all iterations).
    std::vector<std::int64_t> usage(std::size_t(c.architecture.codebook_size), 0);
    if (request.resume) {
      if (fs::exists(c.checkpoint)) {
        start = load_checkpoint(c, n, usage);
        say("resuming from " + c.checkpoint.string() + " at iteration " + std::to_string(start));
      } else {
        say("no checkpoint at " + c.checkpoint.string() + ": starting from scratch");
      }
    }
    if (start > c.iterations) throw std::runtime_error("checkpoint is past the configured iterations");
    if (start == c.iterations && fs::exists(c.output)) {
      say("already trained to " + std::to_string(start) + " iterations (" + c.output.string() +
          "): nothing to do; raise training.iterations (or --iterations) to continue");
      return 0;
    }
    std::ofstream log(c.log, start > 0 ? std::ios::app : std::ios::trunc);
    if (!log) throw std::runtime_error("cannot write the training log " + c.log.string());
    say("training " + std::to_string(c.modalities.size()) + " modalities on " + std::to_string(cases.size()) +
        " cases, iterations " + std::to_string(start) + ".." + std::to_string(c.iterations) + ", " +
        std::to_string(c.threads) + " threads");
    const auto w = [&](const char* name) {
      auto it = c.weights.find(name);
      return it == c.weights.end() ? 0.0 : it->second;
    };
    const std::size_t M = c.modalities.size();
    const int ctx = c.architecture.context_slices;
    Progress progress(request.quiet, c.iterations);
    const auto train_start = std::chrono::steady_clock::now();
    json last_terms;
    n.model->train();
    for (std::int64_t iteration = start + 1; iteration <= c.iterations; ++iteration) {
      const Batch batch = make_batch(c, cases, iteration);
      std::vector<torch::Tensor> codes;
      std::vector<torch::Tensor> styles;  // undefined without a content/style split
      for (std::size_t m = 0; m < M; ++m) {
        auto [content, style] = n.model->encoders.at(c.modalities[m].name)->encode(batch.inputs[m]);
        codes.push_back(content);
        styles.push_back(style);
      }
      std::map<std::string, torch::Tensor> terms;
      auto add = [&](const std::string& name, const torch::Tensor& value) {
        terms[name] = terms.count(name) ? terms[name] + value : value;
      };
      json codebook_stats;
      if (n.model->quantizer) {  // VQ-VAE: codebook + commitment loss, straight-through gradients
        std::vector<std::int64_t> batch_usage(usage.size(), 0);
        for (std::size_t m = 0; m < M; ++m) {
          auto [q, index] = n.model->quantizer->forward(codes[m]);
          add("vector_quantization",
              (torch::mse_loss(q, codes[m].detach()) + c.commitment * torch::mse_loss(codes[m], q.detach())) /
                  double(M));
          codes[m] = codes[m] + (q - codes[m]).detach();
          const torch::Tensor counts = torch::bincount(index, {}, long(usage.size())).contiguous();
          for (std::size_t e = 0; e < usage.size(); ++e) batch_usage[e] += counts.data_ptr<std::int64_t>()[e];
        }
        double total_count = 0, entropy = 0;
        std::int64_t used = 0;
        for (std::size_t e = 0; e < usage.size(); ++e) {
          usage[e] += batch_usage[e];
          total_count += double(batch_usage[e]);
          used += batch_usage[e] > 0 ? 1 : 0;
        }
        for (auto count : batch_usage)
          if (count > 0) entropy -= double(count) / total_count * std::log(double(count) / total_count);
        codebook_stats = {{"codebook_used", used}, {"codebook_perplexity", std::exp(entropy)}};
      }
      std::vector<std::pair<std::size_t, torch::Tensor>> fakes;  // (target modality, translated slice)
      for (std::size_t m = 0; m < M; ++m) {
        auto decoder_m = n.model->decoders.at(c.modalities[m].name);
        if (w("reconstruction") > 0)
          add("reconstruction", torch::l1_loss(decoder_m->forward(codes[m], styles[m]), batch.targets[m]) / double(M));
        if (w("latent_norm") > 0) {
          add("latent_norm", codes[m].pow(2).mean() / double(M));
          if (styles[m].defined()) add("latent_norm", styles[m].pow(2).mean() / double(M));  // style prior N(0, I)
        }
        for (std::size_t o = 0; o < M; ++o) {
          if (o == m) continue;
          const double pairs = double(M * (M - 1));
          const bool need_translation = w("translation") > 0 || w("cycle") > 0 || w("adversarial") > 0;
          if (!need_translation) continue;
          // With styles: the target's own style (paired, example-guided translation).
          const torch::Tensor translated = n.model->decoders.at(c.modalities[o].name)->forward(codes[m], styles[o]);
          if (w("translation") > 0) add("translation", torch::l1_loss(translated, batch.targets[o]) / pairs);
          if (w("cycle") > 0) {
            const torch::Tensor back = decoder_m->forward(
                n.model->encoders.at(c.modalities[o].name)->forward(as_input(translated, ctx)), styles[m]);
            add("cycle", torch::l1_loss(back, batch.targets[m]) / pairs);
          }
          if (w("adversarial") > 0) fakes.emplace_back(o, translated);
        }
      }
      if (w("alignment_l1") > 0 || w("alignment_infonce") > 0) {
        std::mt19937_64 rng(c.seed * 31 + std::uint64_t(iteration));
        const std::int64_t positions = codes[0].size(0) * codes[0].size(2) * codes[0].size(3);
        std::vector<std::int64_t> picks;
        for (std::int64_t s = 0; s < std::min(c.infonce_samples, positions); ++s)
          picks.push_back(std::int64_t(rng() % std::uint64_t(positions)));
        const torch::Tensor index = torch::tensor(picks, torch::kLong);
        const double pairs = double(M * (M - 1) / 2);
        for (std::size_t a = 0; a < M; ++a)
          for (std::size_t b = a + 1; b < M; ++b) {
            if (w("alignment_l1") > 0) add("alignment_l1", torch::l1_loss(codes[a], codes[b]) / pairs);
            if (w("alignment_infonce") > 0)
              add("alignment_infonce", info_nce(codes[a], codes[b], index, c.infonce_temperature) / pairs);
          }
      }
      if (w("adversarial") > 0) {  // least-squares GAN: translations should look real to D
        for (const auto& [o, fake] : fakes) {
          add("adversarial",
              (n.discriminators.at(c.modalities[o].name)->forward(fake) - 1).pow(2).mean() / double(fakes.size()));
        }
      }
      torch::Tensor total = torch::zeros({});
      for (const auto& [name, value] : terms) total = total + c.weights.at(name) * value;
      if (!std::isfinite(total.item<double>())) {
        throw std::runtime_error("training diverged at iteration " + std::to_string(iteration) +
                                 " (loss not finite): lower training.learning_rate or training.gradient_clip");
      }
      n.optimizer->zero_grad();
      total.backward();
      if (c.gradient_clip > 0) torch::nn::utils::clip_grad_norm_(n.model->parameters(), c.gradient_clip);
      n.optimizer->step();
      double discriminator_loss = 0;
      if (w("adversarial") > 0) {
        torch::Tensor d_loss = torch::zeros({});
        for (const auto& [o, fake] : fakes) {
          auto& d = n.discriminators.at(c.modalities[o].name);
          d_loss =
              d_loss + ((d->forward(batch.targets[o]) - 1).pow(2).mean() + d->forward(fake.detach()).pow(2).mean()) /
                           double(2 * fakes.size());
        }
        n.discriminator_optimizer->zero_grad();
        d_loss.backward();
        if (c.gradient_clip > 0) {
          for (auto& [name, d] : n.discriminators) torch::nn::utils::clip_grad_norm_(d->parameters(), c.gradient_clip);
        }
        n.discriminator_optimizer->step();
        discriminator_loss = d_loss.item<double>();
      }
      const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - train_start).count();
      if (iteration % c.log_every == 0 || iteration == c.iterations) {
        json line{{"iteration", iteration}, {"seconds", seconds}, {"total", total.item<double>()}};
        for (const auto& [name, value] : terms) line[name] = value.item<double>();
        if (w("adversarial") > 0) line["discriminator"] = discriminator_loss;
        if (!codebook_stats.is_null()) line.update(codebook_stats);
        log << line.dump() << "\n" << std::flush;
        last_terms = line;
      }
      if (iteration % c.log_every == 0 || iteration == c.iterations)
        progress.update(iteration, total.item<double>(), seconds, start);
      if (iteration % c.checkpoint_every == 0 && iteration < c.iterations) save_checkpoint(c, n, iteration, usage);
    }
    // The model file: no timestamps, so the same config, data and thread
    // count give the same bytes.
    json modalities = json::object();
    for (const auto& m : c.modalities) modalities[m.name] = to_json(m);
    json header{
        {"kind", "fusionflow learned shared latent model"},
        {"modalities", modalities},
        {"modality_order",
         [&] {
           json order = json::array();
           for (const auto& m : c.modalities) order.push_back(m.name);
           return order;
         }()},
        {"architecture", to_json(c.architecture)},
        {"latent",
         {{"channels", c.architecture.latent_channels},
          {"downsampling_factor", 1 << c.architecture.downsampling},
          {"level", "features"}}},
        {"training",
         {{"config", c.raw}, {"iterations", c.iterations}, {"threads", c.threads}, {"final_losses", last_terms}}},
        {"data", hashes},
        {"libraries", library_versions()}};
    header["training"]["final_losses"].erase("seconds");
    if (!usage.empty()) {  // absent without a codebook: older files stay byte-identical
      std::int64_t used = 0;
      for (auto count : usage) used += count > 0 ? 1 : 0;
      header["codebook"] = {{"size", usage.size()}, {"entries_used", used}, {"usage_counts", usage}};
    }
    write_model_container(c.output, header, module_bytes(*n.model));
    save_checkpoint(c, n, c.iterations, usage);
    const double total_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    say("wrote " + c.output.string() + " (checkpoint " + c.checkpoint.string() + ", log " + c.log.string() + ") in " +
        std::to_string(int(std::lround(total_seconds))) + " s");
    return 0;
  } catch (const ConfigError& error) {
    std::fprintf(stderr, "error: %s: %s\n", request.config.string().c_str(), error.what());
    return 2;
  } catch (const c10::Error& error) {
    std::fprintf(stderr, "error: training failed: %s\n", error.what_without_backtrace());
    return 1;
  } catch (const std::exception& error) {
    std::fprintf(stderr, "error: training failed: %s\n", error.what());
    return 1;
  }
}

}  // namespace fusionflow::learned
