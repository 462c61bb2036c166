#include "train/torch_model.h"

#include <algorithm>
#include <cstring>

#include "core/error.h"
#include "train/binary_net.h"

namespace spinbayes {

struct TorchModel::Impl {
  ModelSpec spec;
  BinaryNet net{nullptr};
};

TorchModel::TorchModel(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
TorchModel::TorchModel(TorchModel&&) noexcept = default;
TorchModel& TorchModel::operator=(TorchModel&&) noexcept = default;
TorchModel::~TorchModel() = default;

const ModelSpec& TorchModel::spec() const { return impl_->spec; }

TorchModel TorchModel::load(const std::filesystem::path& dir) {
  auto impl = std::make_unique<Impl>();
  impl->net = load_trained_net(dir);
  impl->spec = impl->net->spec();
  return TorchModel(std::move(impl));
}

McPredictions TorchModel::predict(const ImageSet& images, int samples, std::uint64_t seed, bool dropout,
                                  int batch) const {
  if (samples < 1) throw Error("samples: must be >= 1");
  const ModelSpec& spec = impl_->spec;
  spec.check_input(images.name, images.c, images.h, images.w);
  auto& net = impl_->net;
  torch::NoGradGuard no_grad;
  const bool stochastic = dropout && spec.has_dropout();
  if (!stochastic) samples = 1;
  const int layer_count = static_cast<int>(net->layers().size());
  const int prefix_end = stochastic ? net->first_dropout_layer() : layer_count;

  McPredictions mc;
  mc.samples = samples;
  mc.inputs = images.n;
  mc.classes = spec.classes;
  mc.probs.resize(static_cast<std::size_t>(samples) * images.n * spec.classes);
  std::vector<std::int64_t> ids;
  for (int start = 0; start < images.n; start += batch) {
    const int count = std::min(batch, images.n - start);
    auto x = torch::from_blob(const_cast<float*>(images.image(start)),
                              {count, images.c, images.h, images.w}, torch::kFloat32);
    ids.resize(static_cast<std::size_t>(count));
    for (int i = 0; i < count; ++i) ids[static_cast<std::size_t>(i)] = start + i;
    const MaskContext off;
    const auto prefix = net->forward(x, off, 0, prefix_end);
    for (int t = 0; t < samples; ++t) {
      torch::Tensor logits = prefix;
      if (prefix_end < layer_count) {
        MaskContext masks{true, seed, static_cast<std::uint64_t>(t), ids.data()};
        logits = net->forward(prefix, masks, prefix_end, layer_count);
      }
      const auto probs = torch::softmax(logits, 1).contiguous();
      std::memcpy(mc.probs.data() + (static_cast<std::size_t>(t) * images.n + start) * spec.classes,
                  probs.data_ptr<float>(), sizeof(float) * static_cast<std::size_t>(count) * spec.classes);
    }
  }
  return mc;
}

}  // namespace spinbayes
