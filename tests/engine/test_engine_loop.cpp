// The Monte Carlo loop on the software backend, without LibTorch: every pass of random networks
// against a plain forward pass written from the model IR alone (float maps of +-1 and 0, masks from
// dropout_keeps(), batch norm folded per channel), and the predictions against the thread count.
#include <gtest/gtest.h>
#include <omp.h>

#include <cstdint>
#include <vector>

#include "core/error.h"
#include "engine/engine.h"
#include "engine/ideal_backend.h"
#include "model/dropout_mask.h"
#include "random_networks.h"

namespace spinbayes {
namespace {

ModelSpec loop_spec(const std::string& architecture, int width, DropoutKind kind, const std::string& layers) {
  ModelSpec spec;
  spec.architecture = architecture;
  spec.width = width;
  spec.dropout = kind;
  spec.p = 0.3;
  spec.dropout_layers = layers;
  return spec;
}

// A map in LibTorch's layout (c, y, x): +1, -1, or 0 for a dropped input.
struct Map {
  int c = 0, h = 0, w = 0;
  std::vector<int> v;
  int& at(int ch, int y, int x) { return v[(static_cast<std::size_t>(ch) * h + y) * w + x]; }
};

Map from_binary(const BinaryMap& m) {
  Map out{m.channels, m.height, m.width, std::vector<int>(static_cast<std::size_t>(m.channels) * m.height * m.width)};
  for (int y = 0; y < m.height; ++y)
    for (int x = 0; x < m.width; ++x)
      for (int ch = 0; ch < m.channels; ++ch) out.at(ch, y, x) = m.signs.get(y * m.width + x, ch) ? 1 : -1;
  return out;
}

// Layers [first, end) of one pass, plainly: returns the logits.
std::vector<float> plain_suffix(const ModelIR& ir, int first, Map x, std::uint64_t seed, std::uint64_t image,
                                std::uint64_t sample) {
  const ModelSpec& spec = ir.spec;
  const double scale_on = static_cast<float>(1.0 / (1.0 - spec.p));
  for (int i = first; i < static_cast<int>(ir.layers.size()); ++i) {
    const BinaryLayerIR& layer = ir.layers[static_cast<std::size_t>(i)];
    const LayerSpec& l = layer.shape;
    const bool masked = l.dropout_before && spec.has_dropout();
    if (masked) {
      for (int ch = 0; ch < x.c; ++ch)
        for (int y = 0; y < x.h; ++y)
          for (int xx = 0; xx < x.w; ++xx) {
            const std::uint64_t unit = spec.dropout == DropoutKind::spatial && l.kind == LayerSpec::Kind::conv
                                           ? static_cast<std::uint64_t>(ch)
                                           : (static_cast<std::uint64_t>(ch) * x.h + y) * x.w + xx;
            if (!dropout_keeps(seed, image, sample, i, unit, spec.p)) x.at(ch, y, xx) = 0;
          }
    }
    const double scale = masked ? scale_on : 1.0;
    const int k = l.kind == LayerSpec::Kind::conv ? l.kernel : x.h;
    const int stride = l.kind == LayerSpec::Kind::conv ? l.stride : 1;
    const int pad = l.kind == LayerSpec::Kind::conv ? l.padding : 0;
    Map out{l.out_channels, l.out_h, l.out_w, std::vector<int>(static_cast<std::size_t>(l.out_channels) * l.out_h * l.out_w)};
    std::vector<float> logits;
    for (int oc = 0; oc < l.out_channels; ++oc) {
      for (int oy = 0; oy < l.out_h; ++oy) {
        for (int ox = 0; ox < l.out_w; ++ox) {
          long dot = 0;
          for (int ch = 0; ch < x.c; ++ch)
            for (int ky = 0; ky < k; ++ky)
              for (int kx = 0; kx < k; ++kx) {
                const int y = oy * stride - pad + ky, xx = ox * stride - pad + kx;
                if (y < 0 || y >= x.h || xx < 0 || xx >= x.w) continue;
                const int w = layer.weights[((static_cast<std::size_t>(oc) * x.c + ch) * k + ky) * k + kx];
                dot += w * x.at(ch, y, xx);
              }
          const auto c = static_cast<std::size_t>(oc);
          if (l.output) {
            const OutputAffine a =
                fold_output(layer.bn_mean[c], layer.bn_var[c], layer.bn_gamma[c], layer.bn_beta[c], layer.bn_eps);
            logits.push_back(static_cast<float>(a.scale * (static_cast<double>(dot) * scale) + a.bias));
          } else {
            const FoldedThreshold t =
                fold_batch_norm(layer.bn_mean[c], layer.bn_var[c], layer.bn_gamma[c], layer.bn_beta[c], layer.bn_eps);
            out.at(oc, oy, ox) = fires(static_cast<double>(dot) * scale, t) ? 1 : -1;
          }
        }
      }
    }
    if (l.output) return logits;
    if (l.pool_after) {
      Map pooled{out.c, out.h / 2, out.w / 2, std::vector<int>(static_cast<std::size_t>(out.c) * (out.h / 2) * (out.w / 2))};
      for (int ch = 0; ch < out.c; ++ch)
        for (int y = 0; y < pooled.h; ++y)
          for (int xx = 0; xx < pooled.w; ++xx)
            pooled.at(ch, y, xx) = std::max(std::max(out.at(ch, 2 * y, 2 * xx), out.at(ch, 2 * y, 2 * xx + 1)),
                                            std::max(out.at(ch, 2 * y + 1, 2 * xx), out.at(ch, 2 * y + 1, 2 * xx + 1)));
      out = std::move(pooled);
    }
    x = std::move(out);
  }
  return {};
}

TEST(EngineLoop, EveryPassEqualsThePlainForwardPass) {
  struct Case {
    const char* architecture;
    int width;
    DropoutKind kind;
    const char* layers;
  };
  for (const Case& c : {Case{"vgg-small", 8, DropoutKind::spatial, "all"}, Case{"vgg-small", 12, DropoutKind::element, "all"},
                        Case{"lenet", 4, DropoutKind::spatial, "last:2"}, Case{"mlp", 24, DropoutKind::element, "all"},
                        Case{"vgg-small", 8, DropoutKind::none, "all"}}) {
    SCOPED_TRACE(std::string(c.architecture) + " " + to_string(c.kind) + " " + c.layers);
    const ModelIR ir = spread_model_ir(loop_spec(c.architecture, c.width, c.kind, c.layers), 21);
    const Engine engine(ir);
    const ImageSet images = noise_images(3, 4);
    const int first = engine.first_dropout_layer();
    int compared = 0;
    for (int i = 0; i < images.n; ++i) {
      // The layers before the first dropout site run once per image; the plain pass starts from
      // their output, the map every sample shares.
      const BinaryMap prefix = engine.run_prefix(images.image(i));
      for (std::uint64_t sample = 0; sample < 4; ++sample) {
        std::vector<float> logits(static_cast<std::size_t>(ir.spec.classes));
        engine.run_suffix(prefix, 9, static_cast<std::uint64_t>(i), static_cast<int>(sample), 1, true, logits.data());
        const std::vector<float> plain = plain_suffix(ir, first, from_binary(prefix), 9, static_cast<std::uint64_t>(i), sample);
        ASSERT_EQ(plain.size(), logits.size());
        for (std::size_t k = 0; k < plain.size(); ++k) EXPECT_EQ(logits[k], plain[k]) << "image " << i << " class " << k;
        ++compared;
      }
    }
    EXPECT_EQ(compared, 12);
  }
}

// A whole hidden layer as a pass runs it (hidden_layer: a narrow 1x1 convolution's decisions made
// in its own pass, the rest through the sense stage) against its dots then its thresholds, layer
// by layer through residual networks whose 1x1 layers are shortcuts of 4 to 32 channels, masked
// or not, and a block's last convolution (with its shortcut's select bits).
TEST(EngineLoop, WholeLayersEqualTheirDotsThenTheirDecisions) {
  for (const DropoutKind kind : {DropoutKind::spatial, DropoutKind::element}) {
    for (const std::string architecture : {"resnet20", "resnet18", "custom"}) {
      SCOPED_TRACE(architecture + " " + to_string(kind));
      const ModelIR ir = spread_model_ir(architecture == "custom" ? residual_network_spec(kind)
                                                                  : spec_of(architecture, architecture == "resnet20" ? 4 : 8, kind),
                                         13);
      const Engine engine(ir);
      ASSERT_EQ(engine.first_dropout_layer(), 1);
      const ImageSet images = noise_images(2, 6);
      LayerScratch scratch;
      int pointwise = 0;
      for (int i = 0; i < images.n; ++i) {
        std::vector<BinaryMap> maps(engine.layers().size() + 1);
        maps[1] = engine.run_prefix(images.image(i));
        for (int layer = 1; !engine.layers()[static_cast<std::size_t>(layer)].shape.output; ++layer) {
          const LayerSpec& l = engine.layers()[static_cast<std::size_t>(layer)].shape;
          const BinaryMap* shortcut = l.shortcut >= 0 ? &maps[static_cast<std::size_t>(l.shortcut)] : nullptr;
          const BinaryMap& input = maps[static_cast<std::size_t>(l.source)];
          const MaskKey key{9, static_cast<std::uint64_t>(i), 3, layer};
          const BinaryMap whole = engine.hidden_layer(input, key, true, shortcut, scratch);
          const BinaryMap parts = engine.layer_output(layer, engine.layer_dots(input, key, true).data(), true, shortcut);
          ASSERT_EQ(whole.signs.data, parts.signs.data) << "layer " << layer;
          ASSERT_EQ(whole.height * whole.width, parts.height * parts.width);
          pointwise += l.kind == LayerSpec::Kind::conv && l.kernel == 1 ? 1 : 0;
          maps[static_cast<std::size_t>(layer) + 1] = whole;
        }
      }
      EXPECT_GT(pointwise, 0);
    }
  }
  const ModelIR ir = spread_model_ir(spec_of("resnet20", 4, DropoutKind::spatial), 13);
  const Engine engine(ir);
  LayerScratch scratch;
  BinaryMap map;
  EXPECT_THROW(engine.hidden_layer(map, MaskKey{0, 0, 0, static_cast<int>(engine.layers().size()) - 1}, true, nullptr, scratch),
               Error);
}

TEST(EngineLoop, PredictionsIgnoreTheThreadCountAndCountTheDigitalLayer) {
  const ModelIR ir = spread_model_ir(loop_spec("vgg-small", 8, DropoutKind::spatial, "all"), 5);
  const Engine engine(ir);
  const ImageSet images = noise_images(9, 2);
  const int threads = omp_get_max_threads();
  omp_set_num_threads(1);
  Ledger one;
  const McPredictions a = engine.predict(images, 5, 3, true, &one);
  omp_set_num_threads(2);
  Ledger two;
  const McPredictions b = engine.predict(images, 5, 3, true, &two);
  omp_set_num_threads(threads);
  EXPECT_EQ(a.probs, b.probs);
  EXPECT_EQ(one.total(), two.total());
  // The software backend counts only the first layer's digital multiply-accumulates.
  EXPECT_EQ(one.total().digital_macs, static_cast<std::uint64_t>(images.n) * build_layers(ir.spec)[0].macs());
  EXPECT_EQ(one.total().module_writes, 0u);
  // Dropout off: one pass, whatever `samples` says, and no sample differs from it.
  const McPredictions off = engine.predict(images, 5, 3, false);
  EXPECT_EQ(off.samples, 1);
}

TEST(EngineLoop, SoftwareMasksComeByChannelForSpatialConvolutionsElsePerElement) {
  const auto model = std::make_shared<const CompiledModel>(
      spread_model_ir(loop_spec("lenet", 4, DropoutKind::spatial, "all"), 1));
  const PrngMasks masks(model);
  EXPECT_EQ(masks.grain(1), MaskGrain::channel);  // conv
  EXPECT_EQ(masks.grain(2), MaskGrain::element);  // linear: each input its own unit
  Patches patches;
  LayerEvents events;
  EXPECT_THROW(masks.mask_patches(MaskKey{1, 0, 0, 1}, patches, 0, events), Error);
}

}  // namespace
}  // namespace spinbayes
