#pragma once
// Test fixtures shared by the simulator and cost-model tests: torch-free random networks and images.
#include <cmath>
#include <random>

#include <nlohmann/json.hpp>

#include "data/image_set.h"
#include "model/model_ir.h"

namespace spinbayes {

// A spec of a zoo network with dropout at p = 0.2 (p set by the caller otherwise).
inline ModelSpec spec_of(const std::string& architecture, int width, DropoutKind dropout) {
  ModelSpec spec;
  spec.architecture = architecture;
  spec.width = width;
  spec.dropout = dropout;
  spec.p = 0.2;
  return spec;
}

// A network file's layers (1 x 28 x 28 input, 10 classes) with every residual form: a maxpool, an
// identity block of one convolution, a downsampling block of two and one of a single strided 1x1.
inline constexpr const char* kResidualNetworkLayers = R"([
  {"type": "conv", "out": 6, "kernel": 3, "padding": 1},
  {"type": "maxpool"},
  {"type": "residual", "shortcut": "identity", "branch": [{"type": "conv", "out": 6, "kernel": 3, "padding": 1}]},
  {"type": "residual", "shortcut": "downsample", "branch": [
    {"type": "conv", "out": 10, "kernel": 3, "stride": 2, "padding": 1},
    {"type": "conv", "out": 10, "kernel": 3, "padding": 1}]},
  {"type": "residual", "shortcut": "downsample", "branch": [{"type": "conv", "out": 12, "kernel": 1, "stride": 2}]},
  {"type": "conv", "out": 8, "kernel": 3, "padding": 1},
  {"type": "maxpool"},
  {"type": "flatten"},
  {"type": "linear", "out": 10}])";

inline ModelSpec residual_network_spec(DropoutKind dropout) {
  ModelSpec spec = spec_of("custom", 0, dropout);
  spec.network = network_from_json(nlohmann::json::parse(kResidualNetworkLayers));
  return spec;
}

// A network file's layers whose binary layers set their own dropout sites (network.h): element
// at 0.3 in an identity block, none and spatial at 0.15 in a downsampling one, element at 0.4 on
// the output layer; the rest (one convolution) follow the model's kind and p.
inline constexpr const char* kOwnDropoutLayers = R"([
  {"type": "conv", "out": 6, "kernel": 3, "padding": 1},
  {"type": "maxpool"},
  {"type": "residual", "shortcut": "identity", "branch": [
    {"type": "conv", "out": 6, "kernel": 3, "padding": 1, "dropout": {"kind": "element", "p": 0.3}}]},
  {"type": "residual", "shortcut": "downsample", "branch": [
    {"type": "conv", "out": 10, "kernel": 3, "stride": 2, "padding": 1, "dropout": {"kind": "none"}},
    {"type": "conv", "out": 10, "kernel": 3, "padding": 1, "dropout": {"kind": "spatial", "p": 0.15}}]},
  {"type": "conv", "out": 8, "kernel": 3, "padding": 1},
  {"type": "maxpool"},
  {"type": "flatten"},
  {"type": "linear", "out": 10, "dropout": {"kind": "element", "p": 0.4}}])";

inline ModelSpec own_dropout_spec(DropoutKind dropout) {
  ModelSpec spec = spec_of("custom", 0, dropout);
  spec.network = network_from_json(nlohmann::json::parse(kOwnDropoutLayers));
  return spec;
}

// A network with random weights and batch-norm statistics spread so that each layer's thresholds
// fall inside the range of its dot products (many decisions near the threshold).
inline ModelIR spread_model_ir(const ModelSpec& spec, unsigned seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::uniform_real_distribution<float> uniform(0.0f, 1.0f);
  ModelIR ir;
  ir.spec = spec;
  for (const LayerSpec& l : build_layers(spec)) {
    BinaryLayerIR layer;
    layer.shape = l;
    layer.weights.resize(static_cast<std::size_t>(l.out_channels) * layer.fan_in());
    for (auto& w : layer.weights) w = (rng() & 1u) != 0 ? 1 : -1;
    const float spread = std::sqrt(static_cast<float>(layer.fan_in()));
    for (int c = 0; c < l.out_channels; ++c) {
      layer.bn_mean.push_back(normal(rng) * spread / 2);
      layer.bn_var.push_back(spread * spread * (0.5f + 1.5f * uniform(rng)));
      layer.bn_gamma.push_back(3.0f * uniform(rng) - 1.5f);
      layer.bn_beta.push_back(0.5f * normal(rng));
    }
    ir.layers.push_back(std::move(layer));
  }
  return ir;
}

inline ImageSet noise_images(int n, unsigned seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> u(0.0f, 1.0f);
  ImageSet set;
  set.name = "noise";
  set.n = n;
  set.c = 1;
  set.h = set.w = 28;
  set.pixels.resize(static_cast<std::size_t>(n) * 28 * 28);
  for (auto& p : set.pixels) p = u(rng);
  set.labels.assign(static_cast<std::size_t>(n), 0);
  return set;
}

}  // namespace spinbayes
