// LibTorch networks of the learned engine. Included only by the engine's
// torch translation units (inference.cpp, train.cpp).
//
// Every network is 2D, fully convolutional and works on axial slices of any
// in-plane size that is a multiple of 2^downsampling (callers pad and crop).
// No batch normalisation: training and inference compute the same function.
#pragma once

#include <torch/torch.h>

#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "model_file.hpp"

namespace fusionflow::learned {

inline torch::nn::Conv2d conv(int in, int out, int kernel, int stride = 1, int dilation = 1) {
  return torch::nn::Conv2d(torch::nn::Conv2dOptions(in, out, kernel)
                               .stride(stride)
                               .padding(dilation * (kernel / 2))
                               .dilation(dilation)
                               .padding_mode(torch::kReplicate));
}

inline torch::Tensor lrelu(const torch::Tensor& x) { return torch::leaky_relu(x, 0.2); }

// x + conv(lrelu(conv(lrelu(x)))), the second convolution dilated to widen
// the receptive field cheaply.
struct ResBlockImpl : torch::nn::Module {
  ResBlockImpl(int width, int dilation) : c1(conv(width, width, 3)), c2(conv(width, width, 3, 1, dilation)) {
    register_module("c1", c1);
    register_module("c2", c2);
  }
  torch::Tensor forward(const torch::Tensor& x) { return x + c2(lrelu(c1(lrelu(x)))); }
  torch::nn::Conv2d c1, c2;
};
TORCH_MODULE(ResBlock);

// Slice (with 2 * context neighbours as channels) -> C latent channels on a
// grid 2^downsampling coarser in-plane.
struct EncoderImpl : torch::nn::Module {
  explicit EncoderImpl(const Architecture& a) {
    head = register_module("head", conv(1 + 2 * a.context_slices, a.width, 3));
    for (int d = 0; d < a.downsampling; ++d)
      down.push_back(register_module("down" + std::to_string(d), conv(a.width, a.width, 3, 2)));
    for (int b = 0; b < a.residual_blocks; ++b)
      blocks.push_back(register_module("block" + std::to_string(b), ResBlock(a.width, 1 << (b % 3 + 1))));
    tail = register_module("tail", conv(a.width, a.latent_channels, 1));
    if (a.style_dim > 0) style_head = register_module("style_head", torch::nn::Linear(a.width, a.style_dim));
  }
  // Content code and (with a style head) the style vector of each slice.
  std::pair<torch::Tensor, torch::Tensor> encode(torch::Tensor x) {
    x = lrelu(head(x));
    for (auto& d : down) x = lrelu(d(x));
    for (auto& b : blocks) x = b(x);
    const torch::Tensor features = lrelu(x);
    return {tail(features), style_head ? style_head(features.mean({2, 3})) : torch::Tensor()};
  }
  torch::Tensor forward(torch::Tensor x) { return encode(std::move(x)).first; }
  torch::nn::Linear style_head{nullptr};
  torch::nn::Conv2d head{nullptr}, tail{nullptr};
  std::vector<torch::nn::Conv2d> down;
  std::vector<ResBlock> blocks;
};
TORCH_MODULE(Encoder);

// C latent channels -> one slice of normalised intensities.
struct DecoderImpl : torch::nn::Module {
  explicit DecoderImpl(const Architecture& a) {
    head = register_module("head", conv(a.latent_channels, a.width, 3));
    for (int b = 0; b < a.residual_blocks; ++b)
      blocks.push_back(register_module("block" + std::to_string(b), ResBlock(a.width, 1 << (b % 3 + 1))));
    for (int d = 0; d < a.downsampling; ++d)
      up.push_back(register_module("up" + std::to_string(d), conv(a.width, a.width, 3)));
    tail = register_module("tail", conv(a.width, 1, 3));
    if (a.style_dim > 0) {
      style_dim_ = a.style_dim;
      width_ = a.width;
      style_mlp =
          register_module("style_mlp", torch::nn::Linear(a.style_dim, 2 * a.width * std::max(1, a.residual_blocks)));
    }
  }
  // `style`: [B, style_dim] (MUNIT's AdaIN parameters come from it); undefined
  // means the zero vector (the prior's mean).
  torch::Tensor forward(torch::Tensor x, torch::Tensor style = {}) {
    x = lrelu(head(x));
    if (style_mlp && !style.defined()) style = torch::zeros({x.size(0), style_dim_});
    const torch::Tensor adain = style_mlp ? style_mlp(style) : torch::Tensor();
    auto apply_style = [&](torch::Tensor y, long b) {
      const auto mean = y.mean({2, 3}, true);
      const auto stdev = (y.var({2, 3}, false, true) + 1e-5).sqrt();
      const auto gamma = adain.narrow(1, 2 * b * width_, width_).view({y.size(0), width_, 1, 1});
      const auto beta = adain.narrow(1, (2 * b + 1) * width_, width_).view({y.size(0), width_, 1, 1});
      return (y - mean) / stdev * (1 + gamma) + beta;
    };
    if (style_mlp && blocks.empty()) x = apply_style(x, 0);
    for (std::size_t b = 0; b < blocks.size(); ++b) {
      x = blocks[b](x);
      if (style_mlp) x = apply_style(x, long(b));
    }
    for (auto& u : up) {
      x = torch::nn::functional::interpolate(x, torch::nn::functional::InterpolateFuncOptions()
                                                    .scale_factor(std::vector<double>{2.0, 2.0})
                                                    .mode(torch::kNearest));
      x = lrelu(u(x));
    }
    return tail(x);
  }
  torch::nn::Conv2d head{nullptr}, tail{nullptr};
  std::vector<ResBlock> blocks;
  std::vector<torch::nn::Conv2d> up;
  torch::nn::Linear style_mlp{nullptr};
  long style_dim_ = 0, width_ = 0;
};
TORCH_MODULE(Decoder);

// VQ-VAE (van den Oord et al. 2017) quantiser: each C-dimensional code is
// replaced by its nearest codebook entry (squared Euclidean distance).
struct VectorQuantizerImpl : torch::nn::Module {
  VectorQuantizerImpl(int entries, int channels) {
    codebook = register_parameter("codebook", torch::randn({entries, channels}) * 0.1);
  }
  // Quantised codes [B, C, H, W] and the chosen entry of every position.
  std::pair<torch::Tensor, torch::Tensor> forward(const torch::Tensor& z) {
    const long channels = codebook.size(1);
    const torch::Tensor flat = z.permute({0, 2, 3, 1}).reshape({-1, channels});
    const torch::Tensor distance =
        flat.pow(2).sum(1, true) - 2 * flat.matmul(codebook.t()) + codebook.pow(2).sum(1).unsqueeze(0);
    const torch::Tensor index = distance.argmin(1);
    const torch::Tensor q = codebook.index_select(0, index).view({z.size(0), z.size(2), z.size(3), channels});
    return {q.permute({0, 3, 1, 2}).contiguous(), index};
  }
  torch::Tensor codebook;
};
TORCH_MODULE(VectorQuantizer);

// One encoder and one decoder per modality, sharing the latent space (and,
// optionally, one codebook quantising it).
struct LatentModelImpl : torch::nn::Module {
  LatentModelImpl(const Architecture& a, const std::vector<std::string>& modalities) {
    for (const auto& m : modalities) {
      encoders.emplace(m, register_module("encoder_" + m, Encoder(a)));
      decoders.emplace(m, register_module("decoder_" + m, Decoder(a)));
    }
    if (a.codebook_size > 0)
      quantizer = register_module("quantizer", VectorQuantizer(a.codebook_size, a.latent_channels));
  }
  std::map<std::string, Encoder> encoders;
  std::map<std::string, Decoder> decoders;
  VectorQuantizer quantizer{nullptr};
};
TORCH_MODULE(LatentModel);

// PatchGAN-style discriminator (Isola et al. 2017), small: each output
// value judges one overlapping patch of a slice.
struct PatchDiscriminatorImpl : torch::nn::Module {
  explicit PatchDiscriminatorImpl(int width) {
    c1 = register_module("c1", conv(1, width, 4, 2));
    c2 = register_module("c2", conv(width, 2 * width, 4, 2));
    c3 = register_module("c3", conv(2 * width, 2 * width, 3));
    c4 = register_module("c4", conv(2 * width, 1, 3));
  }
  torch::Tensor forward(torch::Tensor x) { return c4(lrelu(c3(lrelu(c2(lrelu(c1(x))))))); }
  torch::nn::Conv2d c1{nullptr}, c2{nullptr}, c3{nullptr}, c4{nullptr};
};
TORCH_MODULE(PatchDiscriminator);

inline std::string save_archive(torch::serialize::OutputArchive& archive) {
  std::ostringstream stream(std::ios::binary);
  archive.save_to(stream);
  return stream.str();
}

inline std::string module_bytes(const torch::nn::Module& module) {
  torch::serialize::OutputArchive archive;
  module.save(archive);
  return save_archive(archive);
}

// Throws std::runtime_error (with `who`) if the bytes do not hold the
// module's parameters.
inline void load_module_bytes(torch::nn::Module& module, const std::string& bytes, const std::string& who) {
  try {
    std::istringstream stream(bytes, std::ios::binary);
    torch::serialize::InputArchive archive;
    archive.load_from(stream);
    module.load(archive);
  } catch (const c10::Error& error) {
    throw std::runtime_error(who + ": the weights do not fit the architecture in the header: " +
                             std::string(error.what_without_backtrace()));
  }
}

}  // namespace fusionflow::learned
