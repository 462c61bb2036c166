#pragma once
// The binary network in LibTorch (BinaryNet, Hubara et al. 2016): latent real weights binarized
// with sign() in the forward pass and a straight-through estimator in the backward pass; binary
// activations sign(x) with the gradient passed where |x| <= 1. Block order:
// dropout -> binary conv/linear -> batch norm -> sign -> max-pool, so pooling acts on binary maps
// and batch norm + sign fold into one threshold per channel. Internal to src/train/.
#include <torch/torch.h>

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "model/model_spec.h"

namespace spinbayes {

// Which dropout masks a forward pass uses.
struct MaskContext {
  bool active = false;     // dropout on (training, or Monte Carlo inference)
  std::uint64_t seed = 0;  // stream seed
  std::uint64_t sample = 0;
  const std::int64_t* image_ids = nullptr;  // one id per image of the batch
};

// sign with sign(0) = +1, the convention of the sense amplifier (ties go high).
torch::Tensor binary_sign(const torch::Tensor& x);

class BinaryNetImpl : public torch::nn::Module {
 public:
  explicit BinaryNetImpl(const ModelSpec& spec);

  // Runs layers [from, to) on x (pixels in [0, 1] when from == 0, else map `from`: layer from - 1's
  // output). Returns real logits when `to` is the layer count, map `to` otherwise. No layer in
  // [from, to) may read a map older than `from`.
  torch::Tensor forward(const torch::Tensor& x, const MaskContext& masks, int from = 0, int to = -1);

  // Where the Monte Carlo part of a pass begins (prefix_end: the first dropout site, or earlier in a
  // residual network); the layer count without dropout.
  int first_dropout_layer() const;
  // Keeps latent weights in [-1, 1] after an optimizer step (BinaryNet's clipping).
  void clip_weights();
  // The inverted-dropout mask (0 or 1 / (1 - p)) for layer `layer`'s input: shape N x C x 1 x 1 for
  // spatial dropout on a convolution, the input's shape otherwise.
  torch::Tensor dropout_mask(const torch::Tensor& input, int layer, const MaskContext& masks) const;
  const ModelSpec& spec() const { return spec_; }
  const std::vector<LayerSpec>& layers() const { return layers_; }
  const std::vector<torch::Tensor>& weights() const { return weights_; }

 private:
  ModelSpec spec_;
  std::vector<LayerSpec> layers_;
  std::vector<torch::Tensor> weights_;
  // One of the two is set per layer (2-D for conv, 1-D for linear); the other stays empty.
  std::vector<torch::nn::BatchNorm2d> bn2d_;
  std::vector<torch::nn::BatchNorm1d> bn1d_;
};
TORCH_MODULE(BinaryNet);

// The network of a training run directory: DIR/config.json's architecture with DIR/checkpoint.pt's
// weights and batch-norm statistics. Throws Error naming the file on failure.
BinaryNet load_trained_net(const std::filesystem::path& run_dir);

// Writes a checkpoint archive atomically. It is serialized in memory and written by
// write_file_atomic: LibTorch's file writer throws from a destructor when the disk fills up, which
// ends the process; this way a full disk is an Error naming the file and no temporary is left.
void write_archive(torch::serialize::OutputArchive& archive, const std::filesystem::path& path);

// Throws Error("<origin>: tensor '<name>' holds non-finite values") unless every parameter and
// buffer of `net` is finite: a NaN weight would otherwise binarize silently to -1.
void check_finite_tensors(torch::nn::Module& net, const std::string& origin);
// The same check for any one tensor.
void check_finite_tensor(const torch::Tensor& tensor, const std::string& name, const std::string& origin);

}  // namespace spinbayes
