// The ONNX importer: what PyTorch's export of a binary network holds becomes the network's IR,
// whatever equivalent form the graph takes; anything else is a one-line error naming the node.
#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <string>
#include <vector>

#include "core/error.h"
#include "engine/engine.h"
#include "interop/onnx_import.h"
#include "model/model_ir.h"
#include "onnx_builder.h"

namespace spinbayes {
namespace {

using test::Lcg;
using test::OnnxBuilder;

std::string import_error(const std::string& bytes) {
  try {
    import_onnx(bytes, "model.onnx", ImportDropout{});
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}

TEST(OnnxImport, ResidualNetworkBecomesTheNetworkFileVocabulary) {
  const ModelIR ir = import_onnx(test::residual_onnx().bytes(), "model.onnx", ImportDropout{});
  EXPECT_EQ(ir.spec.architecture, "custom");
  EXPECT_EQ(ir.spec.channels, 1);
  EXPECT_EQ(ir.spec.height, 8);
  EXPECT_EQ(ir.spec.classes, 3);
  EXPECT_FLOAT_EQ(ir.spec.input_mean[0], 0.25f);
  EXPECT_FLOAT_EQ(ir.spec.input_std[0], 0.5f);
  const std::vector<NetLayer>& net = ir.spec.network;
  ASSERT_EQ(net.size(), 6u);  // conv, maxpool, identity block, downsampling block, flatten, linear
  EXPECT_EQ(net[0].kind, NetLayer::Kind::conv);
  EXPECT_EQ(net[1].kind, NetLayer::Kind::maxpool);
  EXPECT_EQ(net[2].kind, NetLayer::Kind::residual);
  EXPECT_FALSE(net[2].downsample);
  EXPECT_EQ(net[2].branch.size(), 2u);
  EXPECT_TRUE(net[3].downsample);
  EXPECT_EQ(net[3].branch[0].stride, 2);
  EXPECT_EQ(net[4].kind, NetLayer::Kind::flatten);
  EXPECT_EQ(net[5].out, 3);
  // Binary layers in build order: the downsampling shortcut before its branch.
  ASSERT_EQ(ir.layers.size(), 7u);
  EXPECT_TRUE(ir.layers[3].shape.shortcut_conv);
  EXPECT_EQ(ir.layers[2].shape.shortcut, 1);  // the identity block adds the pooled stem's map
  EXPECT_EQ(ir.layers[5].shape.shortcut, 4);  // the downsampling block adds its 1x1 convolution's
  EXPECT_TRUE(ir.layers[0].shape.pool_after);
  // Weights are the signs of the latent initializer, in PyTorch's (out, in, ky, kx) order.
  const OnnxBuilder model = test::residual_onnx();
  const auto& stem = model.graph().initializer(2);
  ASSERT_EQ(stem.name(), "stem.weight");
  const auto* latent = reinterpret_cast<const float*>(stem.raw_data().data());
  for (std::size_t i = 0; i < ir.layers[0].weights.size(); ++i) EXPECT_EQ(ir.layers[0].weights[i], latent[i] >= 0 ? 1 : -1);
  EXPECT_EQ(ir.spec.dropout, DropoutKind::none);
}

TEST(OnnxImport, DropoutIsChosenAtImport) {
  const ModelIR ir = import_onnx(test::residual_onnx().bytes(), "m", ImportDropout{DropoutKind::spatial, 0.2, "last:2"});
  EXPECT_EQ(ir.spec.dropout, DropoutKind::spatial);
  EXPECT_DOUBLE_EQ(ir.spec.p, 0.2);
  int sites = 0;
  for (const auto& l : ir.layers) sites += l.shape.dropout_before;
  EXPECT_EQ(sites, 2);
}

// One chain conv -> (normalization) -> sign -> linear, its post-convolution steps written by `steps`.
std::string chain_with(const std::function<std::string(OnnxBuilder&, const std::string&)>& steps,
                       test::WeightForm form = test::WeightForm::plus_minus_one) {
  OnnxBuilder b(1, 8, 8);
  Lcg rng(3);
  std::string w = form == test::WeightForm::plus_minus_one ? b.init("c.weight", {3, 1, 3, 3}, rng.signs(27))
                                                           : b.node("Sign", {b.init("c.weight", {3, 1, 3, 3}, rng.values(27, -1, 1))});
  std::string x = b.node("Conv", {"image", w}, {OnnxBuilder::ints("kernel_shape", {3, 3}), OnnxBuilder::ints("pads", {1, 1, 1, 1})});
  x = b.node("Sign", {steps(b, x)});
  x = b.node("Flatten", {x});
  b.output(b.node("Gemm", {x, b.init("fc.weight", {2, 192}, rng.signs(384))}, {OnnxBuilder::integer("transB", 1)}));
  return b.bytes();
}

TEST(OnnxImport, BatchNormAndItsArithmeticFormFoldToTheSameThresholds) {
  const std::vector<float> gamma{0.5f, -2.0f, 1.5f}, beta{0.25f, 1.0f, -0.75f}, mean{1.0f, -2.0f, 0.5f}, var{4.0f, 1.0f, 9.0f};
  const ModelIR bn = import_onnx(chain_with([&](OnnxBuilder& b, const std::string& x) {
                                   return b.node("BatchNormalization", {x, b.init("g", {3}, gamma), b.init("b", {3}, beta),
                                                                        b.init("m", {3}, mean), b.init("v", {3}, var)});
                                 }),
                                 "bn", ImportDropout{});
  // The same affine map as (x - mean) * k + beta, in per-channel Sub, Mul and Add nodes.
  std::vector<float> k(3);
  for (int c = 0; c < 3; ++c) k[c] = static_cast<float>(gamma[c] / std::sqrt(static_cast<double>(var[c]) + 1e-5));
  const ModelIR arithmetic = import_onnx(chain_with([&](OnnxBuilder& b, const std::string& x) {
                                           const std::string centred = b.node("Sub", {x, b.init("m", {1, 3, 1, 1}, mean)});
                                           return b.node("Add", {b.node("Mul", {centred, b.init("k", {3, 1, 1}, k)}),
                                                                 b.init("b", {1, 3, 1, 1}, beta)});
                                         }),
                                         "arith", ImportDropout{});
  for (int c = 0; c < 3; ++c) {
    const auto& l = bn.layers[0];
    const auto& a = arithmetic.layers[0];
    const FoldedThreshold tb = fold_batch_norm(l.bn_mean[c], l.bn_var[c], l.bn_gamma[c], l.bn_beta[c], l.bn_eps);
    const FoldedThreshold ta = fold_batch_norm(a.bn_mean[c], a.bn_var[c], a.bn_gamma[c], a.bn_beta[c], a.bn_eps);
    EXPECT_NEAR(tb.threshold, ta.threshold, 1e-5 * (1.0 + std::fabs(tb.threshold))) << c;
    EXPECT_EQ(tb.flip, ta.flip) << c;
    EXPECT_EQ(tb.flip, gamma[c] < 0.0f) << c;
    // The plain batch norm keeps its own statistics.
    EXPECT_EQ(l.bn_mean[c], mean[c]);
    EXPECT_EQ(l.bn_gamma[c], gamma[c]);
  }
}

TEST(OnnxImport, ScaledBinaryWeightsFoldTheirScaleIntoTheThreshold) {
  // XNOR-Net style: +-alpha per output channel. sign(alpha * dot) = sign(dot) for alpha > 0, and
  // the output layer's scale carries alpha.
  OnnxBuilder b(1, 8, 8);
  Lcg rng(5);
  std::vector<float> w = rng.signs(128);
  for (int i = 0; i < 64; ++i) w[i] *= 0.5f;  // output 0: alpha 0.5; output 1: alpha 1
  std::string x = b.node("Flatten", {"image"});
  x = b.node("Sign", {b.node("Gemm", {x, b.init("w1", {2, 64}, w)}, {OnnxBuilder::integer("transB", 1)})});
  std::vector<float> w2 = rng.signs(4);
  for (auto& v : w2) v *= 3.0f;
  b.output(b.node("Gemm", {x, b.init("w2", {2, 2}, w2), b.init("bias", {2}, {0.5f, -0.5f})}, {OnnxBuilder::integer("transB", 1)}));
  const ModelIR ir = import_onnx(b.bytes(), "m", ImportDropout{});
  ASSERT_EQ(ir.layers.size(), 2u);
  for (std::size_t i = 0; i < 4; ++i) EXPECT_EQ(ir.layers[1].weights[i], w2[i] > 0 ? 1 : -1);
  const OutputAffine out = fold_output(ir.layers[1].bn_mean[0], ir.layers[1].bn_var[0], ir.layers[1].bn_gamma[0],
                                       ir.layers[1].bn_beta[0], ir.layers[1].bn_eps);
  EXPECT_NEAR(out.scale, 3.0, 1e-6);
  EXPECT_NEAR(out.bias, 0.5, 1e-6);
  const FoldedThreshold t = fold_batch_norm(ir.layers[0].bn_mean[0], ir.layers[0].bn_var[0], ir.layers[0].bn_gamma[0],
                                            ir.layers[0].bn_beta[0], ir.layers[0].bn_eps);
  EXPECT_NEAR(t.threshold, 0.0, 1e-12);
}

TEST(OnnxImport, EquivalentWeightFormsGiveTheSameLogits) {
  // Sign of a latent initializer and the +-1 initializer it equals; Gemm(transB) and
  // MatMul(Transpose): the same network, so the same logits on the engine.
  const auto net = [](bool latent, bool matmul) {
    OnnxBuilder b(1, 8, 8);
    Lcg rng(9);
    const std::vector<float> latent_w = rng.values(27, -1.0, 1.0);
    std::vector<float> signs(latent_w.size());
    for (std::size_t i = 0; i < signs.size(); ++i) signs[i] = latent_w[i] >= 0 ? 1.0f : -1.0f;
    const std::string w = latent ? b.node("Sign", {b.init("w", {3, 1, 3, 3}, latent_w)}) : b.init("w", {3, 1, 3, 3}, signs);
    std::string x = b.node("Conv", {"image", w}, {OnnxBuilder::ints("pads", {1, 1, 1, 1})});
    x = b.node("Flatten", {b.node("Sign", {b.node("Add", {x, b.init("t", {1, 3, 1, 1}, {0.5f, -1.5f, 2.5f})})})});
    const std::vector<float> fc = rng.signs(384);  // 2 x 192
    if (matmul) {
      b.output(b.node("MatMul", {x, b.node("Transpose", {b.init("fc", {2, 192}, fc)}, {OnnxBuilder::ints("perm", {1, 0})})}));
    } else {
      b.output(b.node("Gemm", {x, b.init("fc", {2, 192}, fc)}, {OnnxBuilder::integer("transB", 1)}));
    }
    return import_onnx(b.bytes(), "m", ImportDropout{});
  };
  ImageSet images;
  images.name = "random";
  images.n = 16;
  images.c = 1;
  images.h = images.w = 8;
  Lcg rng(11);
  images.pixels = rng.values(16 * 64, -1.0, 1.0);
  std::vector<float> reference;
  Engine(net(false, false)).predict(images, 1, 1, false, nullptr, &reference);
  for (const auto& [latent, matmul] : {std::pair{true, false}, std::pair{false, true}, std::pair{true, true}}) {
    std::vector<float> logits;
    Engine(net(latent, matmul)).predict(images, 1, 1, false, nullptr, &logits);
    EXPECT_EQ(logits, reference);
  }
  // The logits are the integer dots of the output layer: not all equal.
  EXPECT_NE(*std::min_element(reference.begin(), reference.end()), *std::max_element(reference.begin(), reference.end()));
}

// Each case: a change to a valid model, and what its error must say.
struct BadModel {
  const char* name;
  std::function<void(onnx::ModelProto&)> change;
  const char* message;
};

onnx::NodeProto* first_node(onnx::ModelProto& m, const std::string& op, int skip = 0) {
  for (auto& n : *m.mutable_graph()->mutable_node()) {
    if (n.op_type() == op && skip-- == 0) return &n;
  }
  throw std::runtime_error("no node " + op);
}
onnx::TensorProto* initializer(onnx::ModelProto& m, const std::string& name) {
  for (auto& t : *m.mutable_graph()->mutable_initializer()) {
    if (t.name() == name) return &t;
  }
  throw std::runtime_error("no initializer " + name);
}
void set_float(onnx::TensorProto* t, std::size_t i, float v) {
  std::string raw = t->raw_data();
  std::memcpy(raw.data() + 4 * i, &v, 4);
  t->set_raw_data(raw);
}

TEST(OnnxImport, UnsupportedOrMalformedModelsAreOneLineErrorsNamingTheNode) {
  const std::vector<BadModel> cases = {
      {"unknown operator", [](auto& m) { first_node(m, "Sign", 1)->set_op_type("Relu"); }, "(Relu): operator not supported"},
      {"non-binary weight",
       [](auto& m) {
         first_node(m, "Conv")->set_input(1, "stem.weight");
         auto* t = initializer(m, "stem.weight");
         for (std::size_t i = 0; i < 36; ++i) set_float(t, i, i % 3 ? 1.0f : -1.0f);
         set_float(t, 12, 0.37f);
       },
       "(Conv): weights are not binary (0.37 at index 12)"},
      {"zero weight",
       [](auto& m) {
         first_node(m, "Sign", 0)->set_input(0, "stem.weight");  // the Sign of the latent weight stays
         auto* t = initializer(m, "stem.weight");
         set_float(t, 5, 0.0f);
       },
       "weights are not binary (0 at index 5)"},
      {"weights from the image", [](auto& m) { first_node(m, "Conv")->set_input(1, "image"); }, "(Conv): the weight is not a constant"},
      {"input of rank 3",
       [](auto& m) { m.mutable_graph()->mutable_input(0)->mutable_type()->mutable_tensor_type()->mutable_shape()->mutable_dim()->RemoveLast(); },
       "input \"image\": rank 3, expected 4"},
      {"symbolic channels",
       [](auto& m) { m.mutable_graph()->mutable_input(0)->mutable_type()->mutable_tensor_type()->mutable_shape()->mutable_dim(1)->set_dim_param("c"); },
       "dimension 1 must be a fixed size"},
      {"grouped convolution",
       [](auto& m) {
         for (auto& a : *first_node(m, "Conv", 1)->mutable_attribute()) {
           if (a.name() == "group") a.set_i(2);
         }
       },
       "grouped convolution"},
      {"3x3 max-pool",
       [](auto& m) {
         for (auto& a : *first_node(m, "MaxPool")->mutable_attribute()) {
           if (a.name() == "kernel_shape") a.set_ints(0, 3), a.set_ints(1, 3);
         }
       },
       "(MaxPool): only a 2x2 max-pool"},
      {"sum of two maps", [](auto& m) { first_node(m, "Add")->set_input(0, first_node(m, "Sign", 2)->output(0)); },
       "(Add): arithmetic on a binary map or a residual sum is not supported"},
      {"output is not linear", [](auto& m) { m.mutable_graph()->mutable_output(0)->set_name(first_node(m, "BatchNormalization", 0)->output(0)); },
       "(Conv): the last layer must be a linear layer"},
      {"two outputs", [](auto& m) { m.mutable_graph()->add_output()->set_name("image"); }, "2 outputs, expected 1"},
      {"undefined input", [](auto& m) { first_node(m, "Flatten")->set_input(0, "nowhere"); }, "input \"nowhere\" is not defined"},
      {"external data",
       [](auto& m) { initializer(m, "fc.weight")->set_data_location(onnx::TensorProto::EXTERNAL); }, "external tensor data is not supported"},
      {"short raw data",
       [](auto& m) { initializer(m, "fc.weight")->mutable_raw_data()->resize(7); }, "raw data of 7 bytes"},
      {"unsupported opset", [](auto& m) { m.mutable_opset_import(0)->set_version(99); }, "opset 99 is not supported"},
      {"dangling layer",
       [](auto& m) {
         // The downsampling shortcut's sign goes nowhere: its block adds the identity instead.
         first_node(m, "Add", 1)->set_input(1, first_node(m, "Sign", 3)->output(0));
       },
       ""},
  };
  const std::string valid = test::residual_onnx().bytes();
  ASSERT_EQ(import_error(valid), "(no error)");
  for (const BadModel& c : cases) {
    onnx::ModelProto m;
    ASSERT_TRUE(m.ParseFromString(valid));
    c.change(m);
    const std::string error = import_error(m.SerializeAsString());
    EXPECT_EQ(error.rfind("model.onnx: ", 0), 0u) << c.name << ": " << error;
    EXPECT_NE(error.find(c.message), std::string::npos) << c.name << ": " << error;
    EXPECT_EQ(error.find('\n'), std::string::npos) << c.name;
  }
}

TEST(OnnxImport, IdentityAndInferenceDropoutPassAPreActivationOn) {
  const auto with = [](const char* op) {
    return chain_with([op](OnnxBuilder& b, const std::string& x) {
      const std::string bn = b.node("BatchNormalization", {x, b.init("g", {3}, {1, 1, 1}), b.init("b", {3}, {0.5f, 0.5f, 0.5f}),
                                                           b.init("m", {3}, {0, 0, 0}), b.init("v", {3}, {1, 1, 1})});
      return b.node(op, {bn});
    });
  };
  const ModelIR plain = import_onnx(chain_with([](OnnxBuilder& b, const std::string& x) {
                                      return b.node("BatchNormalization", {x, b.init("g", {3}, {1, 1, 1}), b.init("b", {3}, {0.5f, 0.5f, 0.5f}),
                                                                           b.init("m", {3}, {0, 0, 0}), b.init("v", {3}, {1, 1, 1})});
                                    }),
                                    "m", ImportDropout{});
  for (const char* op : {"Identity", "Dropout"}) {
    const ModelIR ir = import_onnx(with(op), "m", ImportDropout{});
    EXPECT_EQ(ir.layers[0].bn_beta, plain.layers[0].bn_beta) << op;
  }
}

TEST(OnnxImport, NetworksBeyondWhatEveryCommandReadsAreRefused) {
  // 5000 output channels: more than a network file may hold (4096), so no command could read the run.
  OnnxBuilder b(1, 8, 8);
  Lcg rng(1);
  std::string x = b.node("Sign", {b.node("Conv", {"image", b.init("w", {5000, 1, 1, 1}, rng.signs(5000))})});
  b.output(b.node("Gemm", {b.node("Flatten", {x}), b.init("fc", {2, 5000 * 64}, rng.signs(2 * 5000 * 64))}, {OnnxBuilder::integer("transB", 1)}));
  EXPECT_NE(import_error(b.bytes()).find("5000 output channels, at most 4096"), std::string::npos) << import_error(b.bytes());
  // Many nodes that broadcast small constants into large ones, none of them used.
  OnnxBuilder big(1, 8, 8);
  std::vector<float> column(2048, 1.0f);
  const std::string c = big.init("c", {2048, 1}, column), r = big.init("r", {1, 2048}, column);
  for (int i = 0; i < 20; ++i) big.node("Add", {c, r});
  EXPECT_NE(import_error(big.bytes()).find("constants of more than 2^26 elements in all"), std::string::npos);
}

TEST(OnnxImport, ASignThatCanSeeExactlyZeroIsAWarning) {
  // No batch norm after the first layer: its threshold is 0, which a blank patch of the image reaches.
  std::vector<std::string> warnings;
  import_onnx(chain_with([](OnnxBuilder&, const std::string& x) { return x; }), "m.onnx", ImportDropout{}, &warnings);
  ASSERT_EQ(warnings.size(), 1u);
  EXPECT_NE(warnings[0].find("m.onnx: node \"/Conv_1\" (Conv): its Sign can see exactly 0"), std::string::npos) << warnings[0];
  warnings.clear();
  import_onnx(test::residual_onnx().bytes(), "m.onnx", ImportDropout{}, &warnings);
  EXPECT_TRUE(warnings.empty()) << warnings.front();
}

TEST(OnnxImport, BytesThatAreNotAModelAreOneLineErrors) {
  EXPECT_EQ(import_error("hello, world"), "model.onnx: not an ONNX model (the protobuf does not parse)");
  EXPECT_EQ(import_error(""), "model.onnx: not an ONNX model (no graph)");
  const std::string valid = test::residual_onnx().bytes();
  // Every truncation is an error, never a crash or a partial network.
  for (std::size_t cut = 1; cut < valid.size(); cut += 97) {
    const std::string error = import_error(valid.substr(0, cut));
    EXPECT_EQ(error.rfind("model.onnx: ", 0), 0u) << cut << ": " << error;
  }
}

}  // namespace
}  // namespace spinbayes
