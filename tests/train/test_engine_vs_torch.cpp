// The bit-packed engine against the LibTorch path: same masks, same integer popcounts, same
// logits, on every zoo model and dropout kind; and thread-count independence.
#include <gtest/gtest.h>
#include <omp.h>

#include <filesystem>
#include <random>

#include <nlohmann/json.hpp>

#include "engine/engine.h"
#include "model/dropout_mask.h"
#include "train/binary_net.h"
#include "train/export.h"
#include "train/run.h"
#include "train/torch_model.h"
#include "random_networks.h"

using namespace spinbayes;

namespace {

// A run directory holding a network with random weights and batch-norm statistics spread so that
// every layer's thresholds fall inside the range of its dot products.
std::filesystem::path random_run(const ModelSpec& spec, const std::string& name, std::uint64_t seed) {
  const auto dir = std::filesystem::temp_directory_path() / ("spinbayes-engine-" + name);
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  torch::manual_seed(seed);
  BinaryNet net(spec);
  {
    torch::NoGradGuard no_grad;
    for (auto& w : net->weights()) w.uniform_(-1.0, 1.0);
    for (auto& item : net->named_children()) {
      const auto layer = std::stoi(item.key().substr(5));  // "layer<i>_bn"
      const auto& l = net->layers()[static_cast<std::size_t>(layer)];
      const double spread = std::sqrt(static_cast<double>(l.in_channels * l.kernel * l.kernel));
      for (auto& buffer : item.value()->named_buffers()) {
        if (buffer.key() == "running_mean") buffer.value().normal_(0.0, spread / 2);
        if (buffer.key() == "running_var") buffer.value().uniform_(0.5 * spread * spread, 2.0 * spread * spread);
      }
      for (auto& param : item.value()->named_parameters()) {
        if (param.key() == "weight") param.value().uniform_(-1.5, 1.5);  // negative gamma flips
        if (param.key() == "bias") param.value().normal_(0.0, 0.5);
      }
    }
  }
  TrainOptions options;
  options.spec = spec;
  options.out = dir;
  save_run_config(options);
  torch::serialize::OutputArchive archive;
  net->save(archive);
  archive.save_to((dir / "checkpoint.pt").string());
  return dir;
}

ImageSet random_images(int n, std::uint64_t seed, int channels = 1, int side = 28) {
  ImageSet set;
  set.name = "random";
  set.n = n;
  set.c = channels;
  set.h = set.w = side;
  std::mt19937_64 rng(seed);
  set.pixels.resize(static_cast<std::size_t>(n) * set.image_size());
  for (auto& p : set.pixels) p = static_cast<float>(rng() % 256) / 255.0f;
  return set;
}

// Torch's binary layer input (N x C x H x W, +-1) as the engine's channels-last map, image i.
BinaryMap to_map(const torch::Tensor& x, int i) {
  const auto t = x.dim() == 2 ? x.view({x.size(0), x.size(1), 1, 1}) : x;
  BinaryMap map;
  map.channels = static_cast<int>(t.size(1));
  map.height = static_cast<int>(t.size(2));
  map.width = static_cast<int>(t.size(3));
  map.signs = BitMatrix(map.height * map.width, map.channels);
  const auto a = t.accessor<float, 4>();
  for (int y = 0; y < map.height; ++y) {
    for (int xx = 0; xx < map.width; ++xx) {
      for (int c = 0; c < map.channels; ++c) map.signs.set(y * map.width + xx, c, a[i][c][y][xx] > 0);
    }
  }
  return map;
}

struct Case {
  const char* architecture;
  int width;
  DropoutKind kind;
  int channels = 1, side = 28;  // color images: 3 x 32 x 32, normalized per channel
  const char* network = nullptr;  // "custom": the layers, as a network file's JSON array
};

constexpr const char* kResidualNetwork = kResidualNetworkLayers;
constexpr const char* kOwnDropout = kOwnDropoutLayers;

void PrintTo(const Case& c, std::ostream* os) {
  *os << c.architecture << " width " << c.width << " " << to_string(c.kind) << " dropout on " << c.channels << "x"
      << c.side << "x" << c.side;
}

}  // namespace

class EngineVsTorch : public ::testing::TestWithParam<Case> {};

TEST_P(EngineVsTorch, SamePopcountsAndLogitsUnderTheSameMasks) {
  const Case c = GetParam();
  ModelSpec spec;
  spec.architecture = c.architecture;
  spec.width = c.width;
  if (c.network != nullptr) spec.network = network_from_json(nlohmann::json::parse(c.network));
  spec.dropout = c.kind;
  spec.p = 0.25;
  spec.channels = c.channels;
  spec.height = spec.width_px = c.side;
  spec.input_mean = c.channels == 1 ? std::vector<float>{0.29f} : std::vector<float>{0.49f, 0.48f, 0.45f};
  spec.input_std = c.channels == 1 ? std::vector<float>{0.35f} : std::vector<float>{0.25f, 0.24f, 0.26f};
  const auto dir = random_run(spec, std::string(c.architecture) + "-" + to_string(c.kind) + "-c" + std::to_string(c.channels), 11);
  BinaryNet net = load_trained_net(dir);
  const Engine engine(export_model_ir(dir));
  const ImageSet images = random_images(6, 3, c.channels, c.side);
  const int layer_count = static_cast<int>(net->layers().size());
  const std::uint64_t seed = 77;
  torch::NoGradGuard no_grad;
  const auto x = torch::from_blob(const_cast<float*>(images.pixels.data()), {images.n, c.channels, c.side, c.side}, torch::kFloat32);
  std::vector<std::int64_t> ids(static_cast<std::size_t>(images.n));
  for (int i = 0; i < images.n; ++i) ids[static_cast<std::size_t>(i)] = i;

  for (int sample = 0; sample < 3; ++sample) {
    const bool dropout = spec.has_dropout();
    const MaskContext masks{dropout, seed, static_cast<std::uint64_t>(sample), ids.data()};
    // Every binary layer: the engine's integer dot products equal LibTorch's convolution of the
    // same (masked) binary input, divided by the dropout scale.
    for (int layer = 1; layer < layer_count; ++layer) {
      const auto& l = net->layers()[static_cast<std::size_t>(layer)];
      const auto input = net->forward(x, masks, 0, l.source);  // binary input of `layer`
      auto h = l.kind == LayerSpec::Kind::linear ? input.flatten(1) : input;
      const bool masked = dropout && l.dropout_before;
      if (masked) h = h * net->dropout_mask(h, layer, masks);
      const auto wb = binary_sign(net->weights()[static_cast<std::size_t>(layer)]);
      auto pre = l.kind == LayerSpec::Kind::conv ? torch::conv2d(h, wb, {}, l.stride, l.padding) : torch::linear(h, wb);
      const double scale = masked ? static_cast<float>(1.0 / (1.0 - l.dropout_p)) : 1.0;
      if (pre.dim() == 2) pre = pre.view({pre.size(0), pre.size(1), 1, 1});
      const auto torch_dots = (pre / scale).permute({0, 2, 3, 1}).contiguous();  // channels last
      for (int i = 0; i < images.n; ++i) {
        const auto dots = engine.layer_dots(
            to_map(input, i), MaskKey{seed, static_cast<std::uint64_t>(i), static_cast<std::uint64_t>(sample), layer},
            masked);
        const auto expected = torch_dots[i].flatten();
        ASSERT_EQ(static_cast<std::int64_t>(dots.size()), expected.numel());
        const float* e = expected.data_ptr<float>();
        for (std::size_t k = 0; k < dots.size(); ++k) {
          ASSERT_NEAR(e[k], static_cast<float>(dots[k]), 1e-3) << "layer " << layer << " image " << i;
        }
        if (l.output) continue;
        // The layer's decisions, a residual block's through the threshold its shortcut bit selects.
        BinaryMap shortcut;
        if (l.shortcut >= 0) shortcut = to_map(net->forward(x, masks, 0, l.shortcut), i);
        const BinaryMap out = engine.layer_output(layer, dots.data(), masked, l.shortcut >= 0 ? &shortcut : nullptr);
        const BinaryMap want = to_map(net->forward(x, masks, 0, layer + 1), i);
        ASSERT_EQ(out.signs.data, want.signs.data) << "layer " << layer << " image " << i;
      }
    }
    // Logits: the whole network, prefix reuse included.
    const auto torch_logits = net->forward(x, masks);
    for (int i = 0; i < images.n; ++i) {
      std::vector<float> logits(10);
      const BinaryMap prefix = engine.run_prefix(images.image(i));
      engine.run_suffix(prefix, seed, static_cast<std::uint64_t>(i), sample, 1, dropout, logits.data());
      for (int k = 0; k < 10; ++k) {
        const float t = torch_logits[i][k].item<float>();
        EXPECT_NEAR(logits[static_cast<std::size_t>(k)], t, 1e-5 * (1.0 + std::abs(t))) << "image " << i;
      }
    }
  }
  std::filesystem::remove_all(dir);
}

INSTANTIATE_TEST_SUITE_P(
    Zoo, EngineVsTorch,
    ::testing::Values(Case{"mlp", 40, DropoutKind::none}, Case{"mlp", 70, DropoutKind::spatial},
                      Case{"mlp", 33, DropoutKind::element}, Case{"lenet", 5, DropoutKind::none},
                      Case{"lenet", 5, DropoutKind::spatial}, Case{"lenet", 3, DropoutKind::element},
                      Case{"vgg-small", 8, DropoutKind::none}, Case{"vgg-small", 8, DropoutKind::spatial},
                      Case{"vgg-small", 7, DropoutKind::element}, Case{"vgg-small", 24, DropoutKind::spatial},
                      Case{"mlp", 16, DropoutKind::spatial, 3, 32}, Case{"lenet", 4, DropoutKind::element, 3, 32},
                      Case{"vgg-small", 8, DropoutKind::spatial, 3, 32}, Case{"resnet20", 4, DropoutKind::spatial},
                      Case{"resnet20", 4, DropoutKind::element}, Case{"resnet20", 3, DropoutKind::none},
                      Case{"resnet18", 4, DropoutKind::spatial, 3, 32},
                      Case{"custom", 0, DropoutKind::spatial, 3, 32, kResidualNetwork},
                      Case{"custom", 0, DropoutKind::element, 1, 28, kResidualNetwork},
                      Case{"custom", 0, DropoutKind::spatial, 1, 28, kOwnDropout},
                      Case{"custom", 0, DropoutKind::none, 1, 28, kOwnDropout}),
    [](const auto& info) {
      std::string name = std::string(info.param.architecture) + "_w" + std::to_string(info.param.width) + "_" +
                         to_string(info.param.kind) + (info.param.channels == 1 ? "" : "_color") +
                         (info.param.network == kOwnDropout ? "_own_sites" : "");
      std::replace(name.begin(), name.end(), '-', '_');
      return name;
    });

TEST(Engine, PredictionsMatchTorchModelAndIgnoreThreadCount) {
  ModelSpec spec;
  spec.architecture = "lenet";
  spec.width = 6;
  spec.dropout = DropoutKind::spatial;
  spec.p = 0.3;
  const auto dir = random_run(spec, "predict", 5);
  const TorchModel torch_model = TorchModel::load(dir);
  const Engine engine(export_model_ir(dir));
  const ImageSet images = random_images(40, 9);
  const int threads = omp_get_max_threads();
  omp_set_num_threads(1);
  const auto one = engine.predict(images, 5, 123, true);
  omp_set_num_threads(2);
  const auto two = engine.predict(images, 5, 123, true);
  omp_set_num_threads(threads);
  EXPECT_EQ(one.probs, two.probs);
  const auto reference = torch_model.predict(images, 5, 123, true);
  ASSERT_EQ(reference.probs.size(), one.probs.size());
  for (std::size_t k = 0; k < one.probs.size(); ++k) EXPECT_NEAR(one.probs[k], reference.probs[k], 1e-5);
  // Deterministic mode: one pass, no masks.
  const auto off = engine.predict(images, 5, 123, false);
  EXPECT_EQ(off.samples, 1);
  const auto reference_off = torch_model.predict(images, 5, 123, false);
  for (std::size_t k = 0; k < off.probs.size(); ++k) EXPECT_NEAR(off.probs[k], reference_off.probs[k], 1e-5);
  std::filesystem::remove_all(dir);
}
