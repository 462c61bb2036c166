#pragma once
// A network as a user writes it: a list of layers in the vocabulary of network files, which the
// zoo is written in too. build_layers() (model_spec.h) expands it into the binary layers every
// backend runs.
//
// Network file (JSON):
//   {"input": "3x32x32", "classes": 10,
//    "layers": [
//      {"type": "conv", "out": 16, "kernel": 3, "stride": 1, "padding": 1},
//      {"type": "residual", "shortcut": "identity", "branch": [{"type": "conv", ...}, ...]},
//      {"type": "residual", "shortcut": "downsample", "branch": [...]},
//      {"type": "maxpool"},
//      {"type": "flatten"},
//      {"type": "linear", "out": 10}]}
// conv: "out" and "kernel" required, "stride" (default 1) and "padding" (default 0). linear: "out".
// conv and linear (not the first layer): "dropout": {"kind": "none" | "element" | "spatial",
// "p": rate in (0, 1), default the model's} sets that layer's dropout site.
// maxpool: 2x2, stride 2, after the binary layer before it (on its signs). flatten: before the
// first linear layer that follows a map. residual: a branch of binary convolutions whose last one
// adds the shortcut before its sign, out = sign(BN(branch) + s), with s the block input's bit
// ("identity") or the bit of a binary 1x1 convolution of the block input with the branch's total
// stride ("downsample"), which is a binary layer of its own. The last layer is a linear layer with
// one output per class.
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

namespace spinbayes {

// Where dropout's random bits fall, in training, on the chip and in the cost model alike: nowhere;
// one per input element (MC-Dropout; SpinDrop's hardware); one per input channel, held over the
// map (MC-SpatialDropout); one for a whole layer's input (the cost model's lower bound of
// Scale-Dropout's kind: priced, never trained).
enum class DropoutKind { none, element, spatial, layer };

// A binary layer's own dropout site, as a network file gives it: the kind (none, element or
// spatial) and the rate (0: the model's --p).
struct SiteDropout {
  DropoutKind kind = DropoutKind::none;
  double p = 0.0;
  bool operator==(const SiteDropout&) const = default;
};

struct NetLayer {
  enum class Kind { conv, linear, maxpool, flatten, residual };
  Kind kind = Kind::conv;
  int out = 0, kernel = 1, stride = 1, padding = 0;  // conv (all), linear (out)
  std::vector<NetLayer> branch;                      // residual: its convolutions, in order
  bool downsample = false;                           // residual: 1x1 convolution shortcut
  // conv, linear: this layer's dropout site, which replaces what --dropout, --p and
  // --dropout-layers say for it; none: they decide.
  std::optional<SiteDropout> dropout;

  bool operator==(const NetLayer&) const = default;
};

// The zoo's networks in the same vocabulary: mlp, lenet, vgg-small, resnet20 (CIFAR-style: 3x3
// stem, three stages of three basic blocks, widths W, 2W, 4W), resnet18 (CIFAR variant: 3x3 stem,
// no initial pool, four stages of two basic blocks, widths W..8W, W = 64 by default). `width` > 0.
std::vector<NetLayer> zoo_network(const std::string& architecture, int width, int classes);

// The first layer (as errors name it: "layer N", "layer N.M" in a branch) that sets its own
// dropout site, or "" where none does.
std::string first_own_dropout(const std::vector<NetLayer>& layers);

// The "layers" array of a network, and back. from_json throws Error("layer N: <cause>") with N
// counted from 1 over the top-level entries (a branch's convolution: "layer N.M").
nlohmann::json network_to_json(const std::vector<NetLayer>& layers);
std::vector<NetLayer> network_from_json(const nlohmann::json& layers);

// A network file: the layers, input shape and classes. Throws Error("<path>: <cause>"), the
// cause naming the layer where one is at fault (shapes are checked by build_layers).
struct NetworkFile {
  std::vector<NetLayer> layers;
  int channels = 1, height = 28, width = 28, classes = 10;
};
NetworkFile parse_network_file(const std::string& text, const std::string& origin);
NetworkFile load_network_file(const std::string& path);
// A network file's text (what parse_network_file reads back as the same network).
std::string network_file_text(const NetworkFile& file);

}  // namespace spinbayes
