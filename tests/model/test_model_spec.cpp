#include <gtest/gtest.h>

#include <cstdint>
#include <limits>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "model/dropout_mask.h"
#include "model/model_spec.h"

using namespace spinbayes;

TEST(ModelSpec, VggSmallLayersHaveTheDocumentedShapes) {
  ModelSpec spec;
  spec.architecture = "vgg-small";
  spec.width = 32;
  const auto layers = build_layers(spec);
  ASSERT_EQ(layers.size(), 7u);
  // 28 -> (conv, conv, pool) 14 -> 7 -> 3 (floor), then a linear classifier on 128 * 3 * 3 inputs.
  EXPECT_EQ(layers[0].in_channels, 1);
  EXPECT_EQ(layers[1].out_channels, 32);
  EXPECT_TRUE(layers[1].pool_after);
  EXPECT_EQ(layers[2].in_h, 14);
  EXPECT_EQ(layers[5].out_channels, 128);
  EXPECT_EQ(layers[5].pooled_h(), 3);
  EXPECT_EQ(layers[6].kind, LayerSpec::Kind::linear);
  EXPECT_EQ(layers[6].in_channels, 128 * 9);
  EXPECT_TRUE(layers[0].real_input);
  EXPECT_TRUE(layers[6].output);
  // Layer 1: 28 * 28 windows x 32 outputs x 32 * 9 inputs.
  EXPECT_EQ(layers[1].macs(), 28LL * 28 * 32 * 32 * 9);
}

TEST(ModelSpec, DropoutSitesSkipTheImageInput) {
  ModelSpec spec;
  spec.architecture = "lenet";
  spec.dropout = DropoutKind::spatial;
  auto layers = build_layers(spec);
  ASSERT_EQ(layers.size(), 4u);
  EXPECT_FALSE(layers[0].dropout_before);
  for (std::size_t i = 1; i < layers.size(); ++i) EXPECT_TRUE(layers[i].dropout_before);

  spec.dropout_layers = "last:2";
  layers = build_layers(spec);
  EXPECT_FALSE(layers[1].dropout_before);
  EXPECT_TRUE(layers[2].dropout_before);
  EXPECT_TRUE(layers[3].dropout_before);

  spec.dropout_layers = "last:99";  // clamps at the first binary-input layer
  layers = build_layers(spec);
  EXPECT_FALSE(layers[0].dropout_before);
  EXPECT_TRUE(layers[1].dropout_before);

  // Layers by number, as the cost table counts them (conv1 = 1).
  spec.dropout_layers = "4,2";
  layers = build_layers(spec);
  EXPECT_EQ((std::vector<bool>{layers[0].dropout_before, layers[1].dropout_before, layers[2].dropout_before,
                               layers[3].dropout_before}),
            (std::vector<bool>{false, true, false, true}));
  const auto expect_refused = [&](const std::string& sites, const std::string& part) {
    spec.dropout_layers = sites;
    try {
      build_layers(spec);
      ADD_FAILURE() << sites << " accepted";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(part), std::string::npos) << e.what();
    }
  };
  expect_refused("1,3", "layer 1 cannot take dropout (layer 1 sees the image");
  expect_refused("0", "layer 0 cannot take dropout");
  expect_refused("3,3", "layer 3 is given twice");
  expect_refused("2,5", "layer 5 is past the network's 4 layers");
  for (const char* bad : {"2,", ",2", "2;3", "-2", "2,x", "", "99999999"}) expect_refused(bad, "dropout-layers: expected");

  spec.dropout_layers = "all";
  spec.dropout = DropoutKind::none;
  for (const auto& l : build_layers(spec)) EXPECT_FALSE(l.dropout_before);
}

TEST(ModelSpec, RejectsBadFieldsNamingThem) {
  ModelSpec spec;
  spec.p = 1.0;
  EXPECT_THROW(
      {
        try {
          spec.validate();
        } catch (const Error& e) {
          EXPECT_NE(std::string(e.what()).find("p:"), std::string::npos);
          throw;
        }
      },
      Error);
  spec.p = -0.1;
  EXPECT_THROW(spec.validate(), Error);
  spec.p = 0.1;
  spec.architecture = "resnet";
  EXPECT_THROW(spec.validate(), Error);
  spec.architecture = "mlp";
  spec.dropout_layers = "last:0";
  EXPECT_THROW(spec.validate(), Error);
  spec.dropout_layers = "first:2";
  EXPECT_THROW(spec.validate(), Error);
  EXPECT_THROW(parse_dropout_kind("gaussian"), Error);
  // One bit per layer is a scheme the cost model prices, not one a model trains with.
  EXPECT_EQ(to_string(DropoutKind::layer), "layer");
  EXPECT_THROW(parse_dropout_kind("layer"), Error);
  spec.dropout_layers = "all";
  spec.dropout = DropoutKind::layer;
  try {
    spec.validate();
    ADD_FAILURE() << "a model with one dropout bit per layer validated";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("dropout: 'layer'"), std::string::npos) << e.what();
  }
}

TEST(ModelSpec, NonFiniteNormalizationIsRejected) {
  ModelSpec spec;
  spec.architecture = "mlp";
  spec.input_mean = {std::numeric_limits<float>::quiet_NaN()};
  EXPECT_THROW(spec.validate(), Error);
  spec.input_mean = {0.3f};
  spec.input_std = {std::numeric_limits<float>::infinity()};
  try {
    spec.validate();
    ADD_FAILURE() << "an infinite input_std validated";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("input_std"), std::string::npos) << e.what();
  }
}

TEST(ModelSpec, JsonRoundTrip) {
  ModelSpec spec;
  spec.architecture = "mlp";
  spec.width = 64;
  spec.dropout = DropoutKind::element;
  spec.p = 0.25;
  spec.dropout_layers = "last:1";
  spec.input_mean = {0.3f};
  spec.input_std = {0.35f};
  const nlohmann::json j = spec;
  const auto back = j.get<ModelSpec>();
  EXPECT_EQ(back.architecture, "mlp");
  EXPECT_EQ(back.width, 64);
  EXPECT_EQ(back.dropout, DropoutKind::element);
  EXPECT_DOUBLE_EQ(back.p, 0.25);
  EXPECT_EQ(back.dropout_layers, "last:1");
  EXPECT_EQ(back.input_std, std::vector<float>{0.35f});
  nlohmann::json broken = j;
  broken.erase("classes");
  EXPECT_THROW(broken.get<ModelSpec>(), Error);
}

// Normalization per channel: one number per channel, or (files from before) one for all.
TEST(ModelSpec, NormalizationIsPerChannel) {
  ModelSpec spec;
  spec.architecture = "vgg-small";
  spec.channels = 3;
  spec.height = spec.width_px = 32;
  spec.input_mean = {0.5f, 0.4f, 0.3f};
  spec.input_std = {0.2f, 0.25f, 0.3f};
  nlohmann::json j = spec;
  EXPECT_EQ(j.get<ModelSpec>().input_mean, spec.input_mean);
  j["input_mean"] = 0.45;
  EXPECT_EQ(j.get<ModelSpec>().input_mean, std::vector<float>(3, 0.45f));
  j["input_std"] = nlohmann::json::array({0.2, 0.3});
  try {
    j.get<ModelSpec>();
    ADD_FAILURE() << "two deviations for three channels accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("one value per input channel (3)"), std::string::npos) << e.what();
  }
  for (const nlohmann::json& bad : {nlohmann::json::array(), nlohmann::json("0.3"), nlohmann::json::array({"a", 1, 2}),
                                    nlohmann::json::array({1e39, 1, 1}), nlohmann::json::array({0.2, -0.1, 0.3})}) {
    j["input_std"] = bad;
    EXPECT_THROW(j.get<ModelSpec>(), Error) << bad.dump();
  }
}

// A spec read from a file (model IR, run config): numbers that do not fit their field and names
// holding control characters give one-line errors naming the key.
TEST(ModelSpec, JsonValuesThatDoNotFitTheirFieldAreRejected) {
  ModelSpec spec;
  spec.architecture = "mlp";
  const nlohmann::json good = spec;
  const auto expect_rejected = [&](const char* key, const nlohmann::json& value, const std::string& part) {
    nlohmann::json j = good;
    j[key] = value;
    try {
      j.get<ModelSpec>();
      ADD_FAILURE() << key << " = " << value.dump() << " accepted";
    } catch (const Error& e) {
      const std::string message = e.what();
      EXPECT_EQ(message.find_first_of("\r\n"), std::string::npos) << message;
      EXPECT_NE(message.find(part), std::string::npos) << message << "\nlacks: " << part;
    }
  };
  expect_rejected("width", 1e20, "'width' has the wrong type");  // a float into an int field
  expect_rejected("width", 64.5, "'width' has the wrong type");
  expect_rejected("classes", 4294967306LL, "'classes' is out of range");  // 2^32 + 10 is not 10
  expect_rejected("height", -4294967268LL, "'height' is out of range");
  expect_rejected("channels", 18446744073709551615ULL, "'channels' is out of range");
  expect_rejected("input_std", 1e300, "'input_std' is out of range");
  expect_rejected("input_mean", -1e39, "'input_mean' is out of range");
  expect_rejected("architecture", "ml\np", "ml\\np");
  expect_rejected("dropout", "spa\ttial", "spa\\ttial");
  expect_rejected("dropout_layers", "last:\r1", "last:\\r1");
  nlohmann::json whole = good;
  whole["width"] = 64.0;  // integral, but written as a float
  EXPECT_THROW(whole.get<ModelSpec>(), Error);
  whole["width"] = 64;
  EXPECT_THROW(whole.get<ModelSpec>(), Error);  // the graph was written for width 512
  whole.erase("network");
  EXPECT_EQ(whole.get<ModelSpec>().width, 64);
}

TEST(DropoutMask, IsAPureFunctionWithTheRequestedRate) {
  // Same key, same bit; the keep rate over many units approaches 1 - p.
  int kept = 0;
  const int units = 200000;
  for (int u = 0; u < units; ++u) {
    const bool a = dropout_keeps(7, 3, 1, 2, static_cast<std::uint64_t>(u), 0.3);
    EXPECT_EQ(a, dropout_keeps(7, 3, 1, 2, static_cast<std::uint64_t>(u), 0.3));
    kept += a;
  }
  // Binomial standard deviation sqrt(n p (1-p)) ~ 205: allow 5 sigma.
  EXPECT_NEAR(kept, 0.7 * units, 1025);
  // Different samples give different masks.
  int differ = 0;
  for (int u = 0; u < 1000; ++u) {
    differ += dropout_keeps(7, 3, 1, 2, static_cast<std::uint64_t>(u), 0.5) !=
              dropout_keeps(7, 3, 2, 2, static_cast<std::uint64_t>(u), 0.5);
  }
  EXPECT_GT(differ, 400);
  EXPECT_LT(differ, 600);
}

TEST(DropoutMask, BatchedDrawsEqualTheReferenceFunction) {
  for (const double p : {0.0, 1e-9, 0.1, 0.25, 0.5, 0.9, 0.999999}) {
    for (std::uint64_t image = 0; image < 3; ++image) {
      const DropoutDraws draws(123, image, 4, 5, p);
      for (std::uint64_t unit = 0; unit < 5000; ++unit) {
        ASSERT_EQ(draws.keeps(unit), dropout_keeps(123, image, 4, 5, unit, p)) << "p " << p << " unit " << unit;
      }
    }
  }
}

TEST(DropoutMask, PackedDrawsEqualOneByOneDraws) {
  for (const double p : {0.0, 0.1, 0.5, 0.97}) {
    const DropoutDraws draws(9, 2, 3, 4, p);
    for (const int count : {1, 5, 8, 13, 63, 64}) {
      for (const std::uint64_t stride : {1ULL, 784ULL, 0x9e3779b97f4a7c15ULL}) {
        const std::uint64_t first = 1000 + count;
        const std::uint64_t fast = draws.keep_bits(first, stride, count);
        EXPECT_EQ(fast, draws.keep_bits_reference(first, stride, count));
        for (int i = 0; i < count; ++i) {
          EXPECT_EQ(((fast >> i) & 1u) != 0, draws.keeps(first + i * stride)) << "p " << p << " i " << i;
        }
        if (count < 64) {
          EXPECT_EQ(fast >> count, 0u);
        }
      }
    }
  }
}

// Units with their own probability (the chip's dropout modules): each draw against its own bound.
TEST(DropoutMask, PackedDrawsWithOwnBoundsEqualOneByOneDraws) {
  const DropoutDraws draws(9, 2, 3, 4, 0.1);
  std::vector<std::uint64_t> bounds(64);
  for (std::size_t i = 0; i < bounds.size(); ++i) bounds[i] = DropoutDraws::bound_for(0.02 * static_cast<double>(i % 40));
  int kept = 0;
  for (const int count : {1, 7, 8, 9, 63, 64}) {
    for (const std::uint64_t first : {0ULL, 5000ULL, 123456789ULL}) {
      const std::uint64_t fast = draws.keep_bits(first, 1, count, bounds.data());
      EXPECT_EQ(fast, draws.keep_bits_reference(first, 1, count, bounds.data()));
      for (int i = 0; i < count; ++i) {
        const bool keep = draws.draw53(first + static_cast<std::uint64_t>(i)) >= bounds[static_cast<std::size_t>(i)];
        EXPECT_EQ(((fast >> i) & 1u) != 0, keep) << "count " << count << " i " << i;
        kept += keep;
      }
      if (count < 64) {
        EXPECT_EQ(fast >> count, 0u);
      }
    }
  }
  EXPECT_GT(kept, 0);
}
