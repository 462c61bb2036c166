#include "train/binary_net.h"

#include <ATen/Parallel.h>

#include <cmath>
#include <sstream>
#include <string>

#include "core/atomic_file.h"
#include "core/error.h"
#include "model/dropout_mask.h"
#include "train/run.h"

namespace spinbayes {

torch::Tensor binary_sign(const torch::Tensor& x) {
  return torch::where(x >= 0, torch::ones_like(x), -torch::ones_like(x));
}

namespace {

// Straight-through estimator for weights: forward sign(w), backward identity
// (the clip to [-1, 1] after each step keeps the latent weights where the gradient is meaningful).
torch::Tensor binarize_weights(const torch::Tensor& w) { return w + (binary_sign(w) - w).detach(); }

// Straight-through estimator for activations: forward sign(x), backward 1{|x| <= 1}
// (the gradient of hardtanh).
torch::Tensor binarize_activations(const torch::Tensor& x) {
  const auto clipped = torch::hardtanh(x);
  return clipped + (binary_sign(x) - clipped).detach();
}

}  // namespace

BinaryNetImpl::BinaryNetImpl(const ModelSpec& spec) : spec_(spec), layers_(build_layers(spec)) {
  for (std::size_t i = 0; i < layers_.size(); ++i) {
    const LayerSpec& l = layers_[i];
    const std::string name = "layer" + std::to_string(i);
    torch::Tensor w;
    if (l.kind == LayerSpec::Kind::conv) {
      w = torch::empty({l.out_channels, l.in_channels, l.kernel, l.kernel});
      bn2d_.push_back(register_module(name + "_bn", torch::nn::BatchNorm2d(l.out_channels)));
      bn1d_.emplace_back(nullptr);
    } else {
      w = torch::empty({l.out_channels, l.in_channels});
      bn1d_.push_back(register_module(name + "_bn", torch::nn::BatchNorm1d(l.out_channels)));
      bn2d_.emplace_back(nullptr);
    }
    // Latent weights start small and symmetric; their signs are what the network uses.
    const double bound = 1.0 / std::sqrt(static_cast<double>(w.numel() / l.out_channels));
    torch::nn::init::uniform_(w, -bound, bound);
    weights_.push_back(register_parameter(name + "_weight", w));
  }
}

int BinaryNetImpl::first_dropout_layer() const {
  for (std::size_t i = 0; i < layers_.size(); ++i) {
    if (layers_[i].dropout_before) return prefix_end(layers_);
  }
  return static_cast<int>(layers_.size());
}

void BinaryNetImpl::clip_weights() {
  torch::NoGradGuard no_grad;
  for (auto& w : weights_) w.clamp_(-1.0, 1.0);
}

torch::Tensor BinaryNetImpl::dropout_mask(const torch::Tensor& input, int layer,
                                          const MaskContext& masks) const {
  const LayerSpec& l = layers_[static_cast<std::size_t>(layer)];
  const double p = l.dropout_p;
  const bool per_channel = l.dropout_kind == DropoutKind::spatial && l.kind == LayerSpec::Kind::conv;
  const std::int64_t n = input.size(0);
  // Spatial: one draw per (image, channel), broadcast over H x W. Element (and every linear layer):
  // one draw per input element.
  const std::int64_t units = per_channel ? input.size(1) : input.numel() / n;
  auto mask = torch::empty({n, units});
  float* m = mask.data_ptr<float>();
  const float keep_scale = static_cast<float>(1.0 / (1.0 - p));  // inverted dropout
  at::parallel_for(0, n, 1, [&](std::int64_t begin, std::int64_t end) {
    for (std::int64_t i = begin; i < end; ++i) {
      const DropoutDraws draws(masks.seed, static_cast<std::uint64_t>(masks.image_ids[i]), masks.sample, layer, p);
      for (std::int64_t u0 = 0; u0 < units; u0 += 64) {
        const int count = static_cast<int>(std::min<std::int64_t>(64, units - u0));
        const std::uint64_t bits = draws.keep_bits(static_cast<std::uint64_t>(u0), 1, count);
        for (int k = 0; k < count; ++k) m[i * units + u0 + k] = (bits >> k) & 1u ? keep_scale : 0.0f;
      }
    }
  });
  if (per_channel) return mask.view({n, units, 1, 1});
  return mask.view(input.sizes());
}

torch::Tensor BinaryNetImpl::forward(const torch::Tensor& x, const MaskContext& masks, int from, int to) {
  const int count = static_cast<int>(layers_.size());
  if (to < 0) to = count;
  torch::Tensor h = x;
  if (from == 0) {
    const auto channel = [&](const std::vector<float>& v) {
      return torch::tensor(v, x.options()).view({1, static_cast<std::int64_t>(v.size()), 1, 1});
    };
    h = (x - channel(spec_.input_mean)) / channel(spec_.input_std);
  }
  // maps[k]: map k of the graph (model_spec.h); the pass starts from map `from`.
  std::vector<torch::Tensor> maps(static_cast<std::size_t>(count) + 1);
  maps[static_cast<std::size_t>(from)] = h;
  for (int i = from; i < to; ++i) {
    const LayerSpec& l = layers_[static_cast<std::size_t>(i)];
    if (l.source < from || (l.shortcut >= 0 && l.shortcut < from)) {
      throw Error("forward: layer " + std::to_string(i) + " reads a map from before layer " + std::to_string(from));
    }
    h = maps[static_cast<std::size_t>(l.source)];
    if (l.kind == LayerSpec::Kind::linear) h = h.flatten(1);
    if (l.dropout_before && masks.active) h = h * dropout_mask(h, i, masks);
    const auto wb = binarize_weights(weights_[static_cast<std::size_t>(i)]);
    if (l.kind == LayerSpec::Kind::conv) {
      h = torch::conv2d(h, wb, {}, l.stride, l.padding);
      h = bn2d_[static_cast<std::size_t>(i)]->forward(h);
    } else {
      h = torch::linear(h, wb);
      h = bn1d_[static_cast<std::size_t>(i)]->forward(h);
    }
    if (l.output) break;
    // A residual block: the shortcut's +-1 joins before the sign, sign(BN(x) + s).
    if (l.shortcut >= 0) h = h + maps[static_cast<std::size_t>(l.shortcut)];
    h = binarize_activations(h);
    if (l.pool_after) h = torch::max_pool2d(h, 2, 2);
    maps[static_cast<std::size_t>(i) + 1] = h;
  }
  return h;
}

BinaryNet load_trained_net(const std::filesystem::path& run_dir) {
  const TrainOptions options = load_run_config(run_dir);
  BinaryNet net(options.spec);
  const auto checkpoint = run_dir / "checkpoint.pt";
  if (!std::filesystem::exists(checkpoint)) throw Error(checkpoint.string() + ": not found (train the model first)");
  if (!std::filesystem::is_regular_file(checkpoint)) throw Error(checkpoint.string() + ": not a regular file");
  try {
    torch::serialize::InputArchive archive;
    archive.load_from(checkpoint.string());
    net->load(archive);
  } catch (const std::exception&) {  // c10::Error, and the archive reader's own parse errors
    throw Error(checkpoint.string() + ": corrupt or incompatible checkpoint");
  }
  check_finite_tensors(*net, checkpoint.string());
  net->eval();
  return net;
}

void check_finite_tensor(const torch::Tensor& tensor, const std::string& name, const std::string& origin) {
  if (!tensor.defined() || !tensor.is_floating_point()) return;
  if (!torch::isfinite(tensor).all().item<bool>()) {
    throw Error(printable(origin) + ": tensor '" + name + "' holds non-finite values (NaN or infinity)");
  }
}

void check_finite_tensors(torch::nn::Module& net, const std::string& origin) {
  for (const auto& item : net.named_parameters()) check_finite_tensor(item.value(), item.key(), origin);
  for (const auto& item : net.named_buffers()) check_finite_tensor(item.value(), item.key(), origin);
}

void write_archive(torch::serialize::OutputArchive& archive, const std::filesystem::path& path) {
  std::ostringstream bytes;
  try {
    archive.save_to(bytes);
  } catch (const c10::Error&) {
    throw Error(path.string() + ": cannot serialize the checkpoint");
  }
  write_file_atomic(path, bytes.str());
}

}  // namespace spinbayes
