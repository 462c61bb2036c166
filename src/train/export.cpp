#include "train/export.h"

#include <cmath>
#include <memory>
#include <string>

#include "core/error.h"
#include "train/binary_net.h"

namespace spinbayes {

namespace {

// A tensor's values as floats, in row-major order.
std::vector<float> to_floats(const torch::Tensor& t) {
  const auto values = t.detach().to(torch::kCPU, torch::kFloat32).contiguous();
  const float* p = values.data_ptr<float>();
  return {p, p + values.numel()};
}

// The batch norm registered as "layer<i>_bn" (BatchNorm2d after a conv, BatchNorm1d after a linear layer).
struct BatchNormView {
  torch::Tensor mean, var, gamma, beta;
  double eps = 0.0;
};

BatchNormView batch_norm_of(BinaryNetImpl& net, std::size_t layer) {
  const std::string name = "layer" + std::to_string(layer) + "_bn";
  const auto modules = net.named_children();
  const std::shared_ptr<torch::nn::Module>* module = modules.find(name);
  if (module == nullptr) throw Error("network has no module '" + name + "'");
  BatchNormView bn;
  if (const auto bn2d = std::dynamic_pointer_cast<torch::nn::BatchNorm2dImpl>(*module)) {
    bn = {bn2d->running_mean, bn2d->running_var, bn2d->weight, bn2d->bias, bn2d->options.eps()};
  } else if (const auto bn1d = std::dynamic_pointer_cast<torch::nn::BatchNorm1dImpl>(*module)) {
    bn = {bn1d->running_mean, bn1d->running_var, bn1d->weight, bn1d->bias, bn1d->options.eps()};
  } else {
    throw Error("module '" + name + "' is not a batch norm");
  }
  if (!bn.mean.defined() || !bn.var.defined() || !bn.gamma.defined() || !bn.beta.defined()) {
    throw Error("batch norm '" + name + "' lacks running statistics or affine parameters");
  }
  return bn;
}

}  // namespace

ModelIR export_model_ir(const std::filesystem::path& run_dir) {
  BinaryNet net = load_trained_net(run_dir);
  const auto checkpoint = run_dir / "checkpoint.pt";

  ModelIR ir;
  ir.spec = net->spec();
  torch::NoGradGuard no_grad;
  try {
    for (std::size_t i = 0; i < net->layers().size(); ++i) {
      BinaryLayerIR layer;
      layer.shape = net->layers()[i];
      // Conv weights are out x in x ky x kx, linear ones out x in: row-major is the IR's fan-in order.
      for (const float w : to_floats(net->weights()[i])) layer.weights.push_back(w >= 0.0f ? 1 : -1);
      const BatchNormView bn = batch_norm_of(*net, i);
      layer.bn_mean = to_floats(bn.mean);
      layer.bn_var = to_floats(bn.var);
      layer.bn_gamma = to_floats(bn.gamma);
      layer.bn_beta = to_floats(bn.beta);
      layer.bn_eps = static_cast<float>(bn.eps);
      ir.layers.push_back(std::move(layer));
    }
    ir.validate();
  } catch (const Error& e) {
    throw Error(checkpoint.string() + ": " + e.what());
  }
  return ir;
}

void save_checkpoint_of_ir(const ModelIR& ir, const std::filesystem::path& path) {
  ir.validate();
  BinaryNet net(ir.spec);
  if (net->layers().size() != ir.layers.size()) throw Error(path.string() + ": the IR and its network differ in layers");
  torch::NoGradGuard no_grad;
  const auto tensor = [](const auto& values) {
    std::vector<float> v(values.begin(), values.end());
    return torch::tensor(v, torch::kFloat32);
  };
  for (std::size_t i = 0; i < ir.layers.size(); ++i) {
    const BinaryLayerIR& l = ir.layers[i];
    if (std::fabs(static_cast<double>(l.bn_eps) - 1e-5) > 1e-9) {
      throw Error(path.string() + ": layer " + std::to_string(i) + ": batch-norm eps " + std::to_string(l.bn_eps) + ", LibTorch's layers use 1e-5");
    }
    auto& w = net->weights()[i];
    w.copy_(tensor(l.weights).view(w.sizes()));
    const BatchNormView bn = batch_norm_of(*net, i);
    bn.mean.copy_(tensor(l.bn_mean));
    bn.var.copy_(tensor(l.bn_var));
    bn.gamma.copy_(tensor(l.bn_gamma));
    bn.beta.copy_(tensor(l.bn_beta));
  }
  torch::serialize::OutputArchive archive;
  net->save(archive);
  write_archive(archive, path);
}

void export_run(const std::filesystem::path& run_dir) {
  save_model_ir(export_model_ir(run_dir), run_dir / "model.sbir");
}

std::filesystem::path ensure_model_ir(const std::filesystem::path& run_dir) {
  const auto ir = run_dir / "model.sbir";
  const auto checkpoint = run_dir / "checkpoint.pt";
  std::error_code ec;
  const bool stale = !std::filesystem::exists(ir, ec) ||
                     (std::filesystem::exists(checkpoint, ec) &&
                      std::filesystem::last_write_time(ir, ec) < std::filesystem::last_write_time(checkpoint, ec));
  if (stale) export_run(run_dir);
  return ir;
}

}  // namespace spinbayes
