// The model IR: batch-norm folding, the .sbir file format (round trip, every kind of corrupt file),
// and the export of a LibTorch checkpoint into the IR.
#include <gtest/gtest.h>
#include <unistd.h>
#include <zlib.h>

#include <bit>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <initializer_list>
#include <iterator>
#include <limits>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <vector>

#include "core/error.h"
#include "model/model_ir.h"
#include "model/model_spec.h"
#include "model_ir_checks.h"

using namespace spinbayes;
namespace fs = std::filesystem;

namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();

// The folded comparison: +1 iff (flip ? x <= threshold : x >= threshold).
bool folded_positive(const FoldedThreshold& t, double x) { return t.flip ? x <= t.threshold : x >= t.threshold; }

// Random signs and batch-norm values, including the edge cases gamma == 0, gamma < 0 and var == 0.
ModelIR random_ir(const ModelSpec& spec, unsigned seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::uniform_real_distribution<float> uniform(0.0f, 2.0f);
  ModelIR ir;
  ir.spec = spec;
  for (const LayerSpec& l : build_layers(spec)) {
    BinaryLayerIR layer;
    layer.shape = l;
    layer.weights.resize(static_cast<std::size_t>(l.out_channels) * layer.fan_in());
    for (auto& w : layer.weights) w = (rng() & 1u) != 0 ? 1 : -1;
    for (int c = 0; c < l.out_channels; ++c) {
      layer.bn_mean.push_back(10.0f * normal(rng));
      layer.bn_var.push_back(c == 1 ? 0.0f : uniform(rng));
      layer.bn_gamma.push_back(c == 2 ? 0.0f : normal(rng));
      layer.bn_beta.push_back(normal(rng));
    }
    layer.bn_eps = 1e-5f * (1.0f + uniform(rng));
    ir.layers.push_back(std::move(layer));
  }
  return ir;
}

// An independent encoder of the documented format, for payloads the library would refuse to write.
void put_u32(std::string& out, std::uint32_t v) {
  for (int i = 0; i < 4; ++i) out.push_back(static_cast<char>((v >> (8 * i)) & 0xFFu));
}
void put_u64(std::string& out, std::uint64_t v) {
  for (int i = 0; i < 8; ++i) out.push_back(static_cast<char>((v >> (8 * i)) & 0xFFu));
}
void put_f32(std::string& out, float v) { put_u32(out, std::bit_cast<std::uint32_t>(v)); }

void put_spec(std::string& payload, const ModelSpec& spec, bool version1 = false) {
  nlohmann::json j = spec;
  if (version1) j.erase("network");  // version 1 named its zoo network only
  const std::string json = j.dump();
  put_u32(payload, static_cast<std::uint32_t>(json.size()));
  payload += json;
}

// One layer as stored: out and fan_in from l.shape, signs LSB-first per byte, rows padded to bytes.
void put_layer(std::string& payload, const BinaryLayerIR& l) {
  const int out = l.shape.out_channels, fan_in = l.fan_in();
  put_u32(payload, static_cast<std::uint32_t>(out));
  put_u32(payload, static_cast<std::uint32_t>(fan_in));
  const int stride = (fan_in + 7) / 8;
  for (int r = 0; r < out; ++r) {
    std::string row(static_cast<std::size_t>(stride), '\0');
    for (int c = 0; c < fan_in; ++c) {
      if (l.weights[static_cast<std::size_t>(r) * fan_in + c] > 0) row[c / 8] |= static_cast<char>(1 << (c % 8));
    }
    payload += row;
  }
  for (int c = 0; c < out; ++c) {
    put_f32(payload, l.bn_mean[c]);
    put_f32(payload, l.bn_var[c]);
    put_f32(payload, l.bn_gamma[c]);
    put_f32(payload, l.bn_beta[c]);
  }
  put_f32(payload, l.bn_eps);
}

std::string encode_payload(const ModelIR& ir, bool version1 = false) {
  std::string payload;
  put_spec(payload, ir.spec, version1);
  for (const auto& l : ir.layers) put_layer(payload, l);
  return payload;
}

std::uint32_t crc_of(const std::string& bytes) {
  return static_cast<std::uint32_t>(
      crc32(crc32(0L, Z_NULL, 0), reinterpret_cast<const Bytef*>(bytes.data()), static_cast<uInt>(bytes.size())));
}

// A whole file around `payload` with a correct length and checksum.
std::string wrap_payload(const std::string& payload, std::uint32_t version = 2) {
  std::string file = "SBIR";
  put_u32(file, version);
  put_u64(file, payload.size());
  file += payload;
  put_u32(file, crc_of(payload));
  return file;
}

std::string read_bytes(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

void write_bytes(const fs::path& path, const std::string& bytes) {
  fs::remove(path);  // a fresh file: overwriting by truncation makes ext4 flush on close (slow)
  std::ofstream out(path, std::ios::binary);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

class ModelIRFile : public ::testing::Test {
 protected:
  void SetUp() override {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    dir_ = fs::temp_directory_path() /
           ("spinbayes_test_ir_" + std::to_string(::getpid()) + "_" + info->test_suite_name() + "_" + info->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  // Loading `path` throws an Error naming the path and containing `cause`, on one line.
  static void expect_load_error(const fs::path& path, const std::string& cause) {
    try {
      load_model_ir(path);
      ADD_FAILURE() << path << " loaded, expected an error containing '" << cause << "'";
    } catch (const Error& e) {
      const std::string message = e.what();
      EXPECT_NE(message.find(path.string()), std::string::npos) << message;
      EXPECT_NE(message.find(cause), std::string::npos) << message;
      EXPECT_EQ(message.find('\n'), std::string::npos) << message;
    }
  }
  // Writes `bytes` to a file and expects loading it to fail with `cause`.
  void expect_bytes_error(const std::string& bytes, const std::string& cause) {
    const fs::path path = dir_ / "model.sbir";
    write_bytes(path, bytes);
    expect_load_error(path, cause);
  }
  // A valid file, as save_model_ir writes it.
  std::string valid_file(const ModelIR& ir) {
    const fs::path path = dir_ / "valid.sbir";
    save_model_ir(ir, path);
    return read_bytes(path);
  }

  fs::path dir_;
};

}  // namespace

TEST(FoldBatchNorm, PositiveGamma) {
  // sd = sqrt(3 + 1) = 2: BN(x) >= 0 iff x >= 1 - 4 * 2 / 2 = -3.
  const auto t = fold_batch_norm(1.0f, 3.0f, 2.0f, 4.0f, 1.0f);
  EXPECT_DOUBLE_EQ(t.threshold, -3.0);
  EXPECT_FALSE(t.flip);
}

TEST(FoldBatchNorm, NegativeGammaFlips) {
  // BN(x) = -(x - 1) + 4 >= 0 iff x <= 1 - 4 * 2 / -2 = 5.
  const auto t = fold_batch_norm(1.0f, 3.0f, -2.0f, 4.0f, 1.0f);
  EXPECT_DOUBLE_EQ(t.threshold, 5.0);
  EXPECT_TRUE(t.flip);
  EXPECT_TRUE(folded_positive(t, 5.0));
  EXPECT_FALSE(folded_positive(t, 5.5));
}

TEST(FoldBatchNorm, ZeroGammaIsTheConstantSignOfBeta) {
  auto t = fold_batch_norm(1.0f, 3.0f, 0.0f, 0.5f, 1.0f);
  EXPECT_EQ(t.threshold, -kInf);
  EXPECT_FALSE(t.flip);
  t = fold_batch_norm(1.0f, 3.0f, 0.0f, -0.5f, 1.0f);
  EXPECT_EQ(t.threshold, kInf);
  EXPECT_FALSE(t.flip);
  EXPECT_FALSE(folded_positive(t, 1e300));
  // beta == 0: BN(x) = 0 and sign(0) = +1.
  t = fold_batch_norm(1.0f, 3.0f, 0.0f, 0.0f, 1.0f);
  EXPECT_EQ(t.threshold, -kInf);
  EXPECT_TRUE(folded_positive(t, -1e300));
}

TEST(FoldBatchNorm, AgreesWithSignOfBatchNormOnRandomInputs) {
  std::mt19937 rng(42);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::uniform_real_distribution<float> positive(0.0f, 4.0f);
  std::uniform_real_distribution<double> input(-200.0, 200.0);
  int checked = 0;
  for (int trial = 0; trial < 2000; ++trial) {
    const float mean = 20.0f * normal(rng), var = positive(rng), beta = 2.0f * normal(rng);
    const float gamma = trial % 10 == 0 ? 0.0f : 2.0f * normal(rng);
    const float eps = trial % 3 == 0 ? 1e-5f : 0.1f;
    const auto t = fold_batch_norm(mean, var, gamma, beta, eps);
    for (int k = 0; k < 50; ++k) {
      const double x = std::round(input(rng));  // pre-activations are integers (times a dropout scale)
      if (std::abs(x - t.threshold) < 1e-9) continue;
      const double bn = (x - mean) / std::sqrt(static_cast<double>(var) + eps) * gamma + beta;
      ASSERT_EQ(bn >= 0.0, folded_positive(t, x))
          << "mean " << mean << " var " << var << " gamma " << gamma << " beta " << beta << " x " << x;
      ++checked;
    }
  }
  EXPECT_GT(checked, 90000);
}

TEST(FoldOutput, ScaleAndBias) {
  // scale = 2 / sqrt(3 + 1) = 1, bias = 4 - 1 * 1 = 3.
  auto a = fold_output(1.0f, 3.0f, 2.0f, 4.0f, 1.0f);
  EXPECT_DOUBLE_EQ(a.scale, 1.0);
  EXPECT_DOUBLE_EQ(a.bias, 3.0);
  // scale = -3 / sqrt(8 + 1) = -1, bias = 0.5 - 2 * -1 = 2.5.
  a = fold_output(2.0f, 8.0f, -3.0f, 0.5f, 1.0f);
  EXPECT_DOUBLE_EQ(a.scale, -1.0);
  EXPECT_DOUBLE_EQ(a.bias, 2.5);
  // Matches the batch norm it replaces.
  const float mean = 0.3f, var = 2.5f, gamma = 0.7f, beta = -1.2f, eps = 1e-5f;
  a = fold_output(mean, var, gamma, beta, eps);
  for (double x : {-40.0, -3.0, 0.0, 7.0, 129.0}) {
    const double bn = (x - mean) / std::sqrt(static_cast<double>(var) + eps) * gamma + beta;
    EXPECT_NEAR(a.scale * x + a.bias, bn, 1e-12);
  }
}

TEST(ModelIRValidate, AcceptsConsistentAndRejectsInconsistentModels) {
  const ModelIR good = random_ir(small_spec("lenet", 4), 1);
  EXPECT_NO_THROW(good.validate());

  auto expect_invalid = [](const ModelIR& ir, const std::string& cause) {
    try {
      ir.validate();
      ADD_FAILURE() << "validated, expected '" << cause << "'";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(cause), std::string::npos) << e.what();
    }
  };
  ModelIR ir = good;
  ir.layers.pop_back();
  expect_invalid(ir, "3 layers");
  ir = good;
  ir.layers[1].shape.pool_after = false;
  expect_invalid(ir, "layer 1: shape");
  ir = good;
  ir.layers[2].weights.pop_back();
  expect_invalid(ir, "layer 2:");
  ir = good;
  ir.layers[0].weights[7] = 0;
  expect_invalid(ir, "not +1 or -1");
  ir = good;
  ir.layers[3].bn_beta.push_back(0.0f);
  expect_invalid(ir, "bn_beta");
  ir = good;
  ir.layers[1].bn_var[0] = -1.0f;
  expect_invalid(ir, "negative");
  ir = good;
  ir.layers[1].bn_mean[2] = std::numeric_limits<float>::quiet_NaN();
  expect_invalid(ir, "not finite");
  ir = good;
  ir.layers[0].bn_eps = 0.0f;
  expect_invalid(ir, "bn_eps");
  ir = good;
  ir.spec.p = 1.5;
  expect_invalid(ir, "p:");
}

TEST_F(ModelIRFile, RoundTripIsExact) {
  for (const auto& [architecture, width] : {std::pair<std::string, int>{"mlp", 16}, {"lenet", 4}}) {
    SCOPED_TRACE(architecture);
    const ModelIR ir = random_ir(small_spec(architecture, width), 7);
    const fs::path path = dir_ / (architecture + ".sbir");
    save_model_ir(ir, path);
    expect_same_ir(ir, load_model_ir(path));
    // The library's writer and the test's encoder of the documented format agree byte for byte.
    EXPECT_EQ(read_bytes(path), wrap_payload(encode_payload(ir)));
    // No temporary file is left beside it.
    EXPECT_EQ(std::distance(fs::directory_iterator(dir_), fs::directory_iterator()), 1);
    fs::remove(path);
  }
}

TEST_F(ModelIRFile, SaveRefusesAnInvalidModel) {
  ModelIR ir = random_ir(small_spec("mlp", 16), 3);
  ir.layers[1].bn_gamma[0] = std::numeric_limits<float>::infinity();
  const fs::path path = dir_ / "bad.sbir";
  try {
    save_model_ir(ir, path);
    ADD_FAILURE() << "saved an invalid model";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(path.string()), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("not finite"), std::string::npos) << e.what();
  }
  EXPECT_FALSE(fs::exists(path));
}

TEST_F(ModelIRFile, MissingEmptyAndForeignFiles) {
  expect_load_error(dir_ / "absent.sbir", "not found");
  expect_bytes_error("", "empty");
  expect_bytes_error("PK\x03\x04 this is a zip file, not a model", "not a spinbayes model IR file");
  expect_bytes_error("{\"format\": \"spinbayes-run\"}", "not a spinbayes model IR file");
  expect_bytes_error("SBIX", "not a spinbayes model IR file");
}

TEST_F(ModelIRFile, UnsupportedVersion) {
  const ModelIR ir = random_ir(small_spec("mlp", 16), 4);
  std::string bytes = valid_file(ir);
  bytes[4] = 3;  // version 3, little-endian
  expect_bytes_error(bytes, "version 3");
  expect_bytes_error(bytes, "versions 1 and 2");
  expect_bytes_error(bytes, "spinbayes export --model");
  expect_bytes_error(wrap_payload(encode_payload(ir), 0x01000000u), "version 16777216");
}

TEST_F(ModelIRFile, TruncatedFiles) {
  const std::string bytes = valid_file(random_ir(small_spec("lenet", 4), 5));
  // Inside the magic, inside the header, just past it, inside the payload, inside the checksum.
  for (std::size_t length : {std::size_t{1}, std::size_t{3}, std::size_t{4}, std::size_t{7}, std::size_t{15},
                             std::size_t{16}, std::size_t{19}, std::size_t{20}, std::size_t{100}, bytes.size() / 2,
                             bytes.size() - 5, bytes.size() - 1}) {
    SCOPED_TRACE(length);
    expect_bytes_error(bytes.substr(0, length), "truncated");
  }
}

TEST_F(ModelIRFile, CorruptedBytesFailTheChecksum) {
  const std::string bytes = valid_file(random_ir(small_spec("lenet", 4), 6));
  for (std::size_t at : {std::size_t{16}, std::size_t{40}, bytes.size() / 2, bytes.size() - 5, bytes.size() - 1}) {
    SCOPED_TRACE(at);
    std::string corrupt = bytes;
    corrupt[at] = static_cast<char>(corrupt[at] ^ 0x10);
    expect_bytes_error(corrupt, "checksum mismatch (file corrupt)");
  }
}

TEST_F(ModelIRFile, TrailingGarbage) {
  const std::string bytes = valid_file(random_ir(small_spec("mlp", 16), 8));
  expect_bytes_error(bytes + "x", "trailing");
  expect_bytes_error(bytes + bytes, "trailing");
}

// The documented format, encoded independently of the library, loads.
TEST_F(ModelIRFile, HandBuiltPayloadLoads) {
  const ModelIR ir = random_ir(small_spec("lenet", 4), 9);
  const fs::path path = dir_ / "hand.sbir";
  write_bytes(path, wrap_payload(encode_payload(ir)));
  expect_same_ir(ir, load_model_ir(path));
}

// Files of version 1 (a zoo network named by its architecture, no graph) still load.
TEST_F(ModelIRFile, VersionOneFilesLoad) {
  for (const auto& [architecture, width] : {std::pair<std::string, int>{"mlp", 16}, {"lenet", 4}}) {
    SCOPED_TRACE(architecture);
    const ModelIR ir = random_ir(small_spec(architecture, width), 10);
    const fs::path path = dir_ / "v1.sbir";
    write_bytes(path, wrap_payload(encode_payload(ir, true), 1));
    expect_same_ir(ir, load_model_ir(path));
  }
}

// A version-2 spec whose graph is not its zoo architecture's is refused.
TEST_F(ModelIRFile, GraphContradictingTheArchitecture) {
  const ModelIR ir = random_ir(small_spec("lenet", 4), 11);
  std::string payload;
  nlohmann::json j = ir.spec;
  j["network"][0]["out"] = 5;
  const std::string json = j.dump();
  put_u32(payload, static_cast<std::uint32_t>(json.size()));
  payload += json;
  for (const auto& l : ir.layers) put_layer(payload, l);
  expect_bytes_error(wrap_payload(payload), "network: not the layers of lenet");
}

// Below: payloads with a valid checksum whose content is wrong; the parser must catch every one.

TEST_F(ModelIRFile, WrongLayerCount) {
  const ModelIR ir = random_ir(small_spec("mlp", 16), 10);
  std::string payload;
  put_spec(payload, ir.spec);
  put_layer(payload, ir.layers[0]);
  put_layer(payload, ir.layers[1]);
  expect_bytes_error(wrap_payload(payload), "ends inside layer 2");  // one layer missing

  payload = encode_payload(ir);
  put_layer(payload, ir.layers[2]);
  expect_bytes_error(wrap_payload(payload), "after the last layer");  // one layer too many
}

TEST_F(ModelIRFile, InconsistentSizes) {
  const ModelIR ir = random_ir(small_spec("mlp", 16), 11);
  // Layer 1 stored with 17 outputs (and 17 of everything) where the spec says 16.
  ModelIR wide = ir;
  BinaryLayerIR& l = wide.layers[1];
  l.shape.out_channels = 17;
  l.weights.resize(17u * 16u, 1);
  for (auto* v : {&l.bn_mean, &l.bn_var, &l.bn_gamma, &l.bn_beta}) v->push_back(1.0f);
  expect_bytes_error(wrap_payload(encode_payload(wide)), "layer 1: stored shape 17 x 16");

  // The spec length runs past the payload; a huge count must not be allocated.
  std::string payload;
  put_u32(payload, 0xFFFFFFF0u);
  payload += "{}";
  expect_bytes_error(wrap_payload(payload), "spec JSON");
  // An empty payload.
  expect_bytes_error(wrap_payload(""), "corrupt payload");
  // A spec that is not JSON, and one that is JSON but not a valid spec.
  payload.clear();
  put_u32(payload, 5);
  payload += "{not}";
  expect_bytes_error(wrap_payload(payload), "corrupt model spec JSON");
  nlohmann::json j = ir.spec;
  j["architecture"] = "resnet";
  payload.clear();
  put_u32(payload, static_cast<std::uint32_t>(j.dump().size()));
  payload += j.dump();
  expect_bytes_error(wrap_payload(payload), "unknown architecture");
}

TEST_F(ModelIRFile, NonFiniteOrInvalidBatchNorm) {
  const ModelIR ir = random_ir(small_spec("lenet", 4), 12);
  ModelIR bad = ir;
  bad.layers[2].bn_gamma[5] = std::numeric_limits<float>::quiet_NaN();
  expect_bytes_error(wrap_payload(encode_payload(bad)), "layer 2: bn_gamma[5] is not finite");
  bad = ir;
  bad.layers[0].bn_var[1] = std::numeric_limits<float>::infinity();
  expect_bytes_error(wrap_payload(encode_payload(bad)), "layer 0: bn_var[1] is not finite");
  bad = ir;
  bad.layers[3].bn_var[0] = -0.5f;
  expect_bytes_error(wrap_payload(encode_payload(bad)), "layer 3: bn_var[0] is negative");
  bad = ir;
  bad.layers[1].bn_eps = 0.0f;
  expect_bytes_error(wrap_payload(encode_payload(bad)), "layer 1: bn_eps");
}

TEST_F(ModelIRFile, WeightLayoutContradictingTheSpec) {
  const ModelIR ir = random_ir(small_spec("lenet", 4), 13);
  // Layer 0 stored as 4 x 32 (whole bytes, no padding) where the spec's 5x5 kernel gives 4 x 25.
  std::string payload;
  put_spec(payload, ir.spec);
  {
    std::string layer;
    put_u32(layer, 4);
    put_u32(layer, 32);
    layer += std::string(4 * 4, '\xff');
    for (int c = 0; c < 4; ++c) {
      for (int k = 0; k < 4; ++k) put_f32(layer, 1.0f);
    }
    put_f32(layer, 1e-5f);
    payload += layer;
  }
  for (std::size_t i = 1; i < ir.layers.size(); ++i) put_layer(payload, ir.layers[i]);
  expect_bytes_error(wrap_payload(payload), "layer 0: stored shape 4 x 32 does not match the spec's 4 x 25");

  // Right shape, but a padding bit past fan_in = 25 set in row 2 of layer 0 (byte 3, bit 1).
  payload = encode_payload(ir);
  const std::size_t json_bytes = nlohmann::json(ir.spec).dump().size();
  const std::size_t row2_last_byte = 4 + json_bytes + 8 + 2 * 4 + 3;
  payload[row2_last_byte] = static_cast<char>(payload[row2_last_byte] | 0x02);
  expect_bytes_error(wrap_payload(payload), "layer 0: padding bits of weight row 2 are set");
}

TEST_F(ModelIRFile, RandomlyCorruptedPayloadsGiveErrorsNotCrashes) {
  const ModelIR ir = random_ir(small_spec("lenet", 4), 14);
  const std::string payload = encode_payload(ir);
  const fs::path path = dir_ / "fuzz.sbir";
  std::mt19937 rng(15);
  int loaded = 0, rejected = 0;
  for (int trial = 0; trial < 2000; ++trial) {
    std::string corrupt = payload;
    // Up to three random byte changes, then sometimes a cut or an extension, under a valid checksum.
    for (int k = static_cast<int>(rng() % 3); k >= 0; --k) corrupt[rng() % corrupt.size()] = static_cast<char>(rng());
    if (trial % 4 == 1) corrupt.resize(rng() % corrupt.size());
    if (trial % 4 == 2) corrupt += std::string(rng() % 64, static_cast<char>(rng()));
    write_bytes(path, wrap_payload(corrupt));
    try {
      load_model_ir(path).validate();
      ++loaded;
    } catch (const Error& e) {
      EXPECT_EQ(std::string(e.what()).find('\n'), std::string::npos) << e.what();
      ++rejected;
    }
  }
  EXPECT_GT(rejected, 0);
  EXPECT_EQ(loaded + rejected, 2000);
}
