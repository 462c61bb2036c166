#pragma once
// The architecture of a binary network, independent of any backend: which zoo model, its width,
// where dropout sits and of which kind. The layer list derived from it is what the trainer, the
// inference engine and the hardware cost model all walk.
#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "model/network.h"

namespace spinbayes {

inline constexpr std::array<DropoutKind, 4> kDropoutKinds = {DropoutKind::none, DropoutKind::element,
                                                             DropoutKind::spatial, DropoutKind::layer};
// A kind a model can be trained with (none, element, spatial); throws Error for any other name.
DropoutKind parse_dropout_kind(const std::string& name);
std::string to_string(DropoutKind kind);

struct ModelSpec {
  std::string architecture = "vgg-small";  // a zoo name (architecture_names()) or "custom"
  std::vector<NetLayer> network;           // "custom": the network file's layers; else empty
  int width = 0;                           // 0 = the architecture's default (see default_width)
  DropoutKind dropout = DropoutKind::spatial;
  double p = 0.1;                          // drop probability, in [0, 1)
  // all (every binary layer but the first) | last:N | i,j,k (layers numbered from 1, 2 and up)
  std::string dropout_layers = "all";
  int channels = 1, height = 28, width_px = 28, classes = 10;
  // Input normalization per channel, (x - mean[c]) / std[c], from the training set's pixels.
  std::vector<float> input_mean{0.0f}, input_std{1.0f};

  int effective_width() const;
  // Does any binary layer take dropout (the model's kind and sites, or a layer's own)?
  bool has_dropout() const;
  // Throws Error("<name>: image shape CxHxW does not match the model's input") on a mismatch.
  void check_input(const std::string& name, int c, int h, int w) const;
  void validate() const;  // throws Error naming the field
};

// A custom spec of a network file: its layers, input shape and classes (normalization reset to
// none, one value per channel; the width unused).
void apply_network_file(const NetworkFile& file, ModelSpec& spec);

// The zoo: mlp, lenet, vgg-small, resnet20, resnet18.
std::vector<std::string> architecture_names();
// The layers the spec describes: its own (custom) or its zoo network's.
std::vector<NetLayer> spec_network(const ModelSpec& spec);
// The network in words, for reports: "vgg-small width 32", or "custom network (1x28x28 in, 10 classes)".
std::string network_description(const ModelSpec& spec);
std::string network_description(const std::string& architecture, int width, int channels, int height, int width_px,
                                int classes);
// "CxHxW" (channels, height, width) into the spec's input shape; throws Error("<field>: ...").
void parse_input_shape(const std::string& text, ModelSpec& spec, const std::string& field = "--input");
int default_width(const std::string& architecture);

// One binary layer: a convolution (KxK, stride, padding) or a linear layer (kernel 1 on a 1x1 map),
// followed by batch norm and, except for the output layer, sign and an optional 2x2 max-pool.
// The layers form a graph over maps: map 0 is the image, map k + 1 the (pooled) output of layer k.
// A layer reads map `source`; the last convolution of a residual block also reads map `shortcut`
// (the same shape as its own output), whose bit s enters before the sign: sign(BN(x) + s).
struct LayerSpec {
  enum class Kind { conv, linear };
  Kind kind = Kind::conv;
  int in_channels = 0, out_channels = 0;
  int kernel = 1, stride = 1, padding = 0;
  int in_h = 1, in_w = 1;    // input map size (1x1 for linear)
  int out_h = 1, out_w = 1;  // output map size before pooling
  bool pool_after = false;   // 2x2 max-pool, stride 2, floor
  bool real_input = false;   // first layer: sees real-valued pixels
  bool output = false;       // last layer: real logits (batch-norm scale and bias, no sign)
  bool dropout_before = false;  // dropout on this layer's (binary) input
  // Its site's kind (element or spatial) and rate when dropout_before: the model's, or the
  // layer's own from a network file.
  DropoutKind dropout_kind = DropoutKind::none;
  double dropout_p = 0.0;
  int source = 0;               // the map this layer reads
  int shortcut = -1;            // residual: the map added before the sign, or -1
  bool shortcut_conv = false;   // a residual block's downsampling 1x1 convolution
  int src_c = 0, src_h = 0, src_w = 0;  // map `source`'s shape (a linear layer flattens it)

  int pooled_h() const { return pool_after ? out_h / 2 : out_h; }
  int pooled_w() const { return pool_after ? out_w / 2 : out_w; }
  // Multiply-accumulates of one forward pass of one image through this layer.
  std::int64_t macs() const;
};

// The spec's network expanded into binary layers, in an order where every map is made before it
// is read. Throws Error("layer N: <cause>") when the shapes do not chain, N counting the
// network's entries from 1.
std::vector<LayerSpec> build_layers(const ModelSpec& spec);
// Where the Monte Carlo part of a pass begins: the first dropout site (the output layer without
// any), moved back to a layer from which on no layer reads a map made before it, so that one map
// carries a pass from the prefix to the rest.
int prefix_end(const std::vector<LayerSpec>& layers);

void to_json(nlohmann::json& j, const ModelSpec& spec);
void from_json(const nlohmann::json& j, ModelSpec& spec);  // validates; throws Error naming the key

}  // namespace spinbayes
