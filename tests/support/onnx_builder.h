#pragma once
// Small ONNX models built in memory, as torch.onnx.export writes them for binary networks: for the
// importer's tests and the fuzzer's seeds.
#include <onnx/onnx_pb.h>

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace spinbayes::test {

class OnnxBuilder {
 public:
  // A graph with one float input N x C x H x W (N symbolic).
  OnnxBuilder(int c, int h, int w, int opset = 13) {
    model_.set_ir_version(8);
    model_.set_producer_name("spinbayes-tests");
    auto* op = model_.add_opset_import();
    op->set_domain("");
    op->set_version(opset);
    graph_ = model_.mutable_graph();
    graph_->set_name("net");
    auto* in = graph_->add_input();
    in->set_name("image");
    auto* tt = in->mutable_type()->mutable_tensor_type();
    tt->set_elem_type(onnx::TensorProto::FLOAT);
    auto* shape = tt->mutable_shape();
    shape->add_dim()->set_dim_param("n");
    for (const int d : {c, h, w}) shape->add_dim()->set_dim_value(d);
  }

  // An initializer of float values (raw little-endian data, as PyTorch writes them).
  std::string init(const std::string& name, const std::vector<std::int64_t>& dims, const std::vector<float>& values) {
    auto* t = graph_->add_initializer();
    t->set_name(name);
    t->set_data_type(onnx::TensorProto::FLOAT);
    for (const auto d : dims) t->add_dims(d);
    t->set_raw_data(std::string(reinterpret_cast<const char*>(values.data()), values.size() * sizeof(float)));
    return name;
  }
  std::string init_int64(const std::string& name, const std::vector<std::int64_t>& values) {
    auto* t = graph_->add_initializer();
    t->set_name(name);
    t->set_data_type(onnx::TensorProto::INT64);
    t->add_dims(static_cast<std::int64_t>(values.size()));
    for (const auto v : values) t->add_int64_data(v);
    return name;
  }

  struct Attribute {
    std::string name;
    std::vector<std::int64_t> ints;
    bool is_int = false;
    float f = 0.0f;
    bool is_float = false;
  };
  static Attribute ints(std::string name, std::vector<std::int64_t> v) { return {std::move(name), std::move(v), false, 0.0f, false}; }
  static Attribute integer(std::string name, std::int64_t v) { return {std::move(name), {v}, true, 0.0f, false}; }
  static Attribute real(std::string name, float v) { return {std::move(name), {}, false, v, true}; }

  // A node; returns its (first) output's name.
  std::string node(const std::string& op, const std::vector<std::string>& inputs, const std::vector<Attribute>& attributes = {}) {
    auto* n = graph_->add_node();
    const std::string name = "/" + op + "_" + std::to_string(graph_->node_size());
    n->set_name(name);
    n->set_op_type(op);
    for (const auto& i : inputs) n->add_input(i);
    n->add_output(name + "_output_0");
    for (const auto& a : attributes) {
      auto* p = n->add_attribute();
      p->set_name(a.name);
      if (a.is_float) {
        p->set_type(onnx::AttributeProto::FLOAT);
        p->set_f(a.f);
      } else if (a.is_int) {
        p->set_type(onnx::AttributeProto::INT);
        p->set_i(a.ints[0]);
      } else {
        p->set_type(onnx::AttributeProto::INTS);
        for (const auto v : a.ints) p->add_ints(v);
      }
    }
    return n->output(0);
  }

  void output(const std::string& name) {
    auto* out = graph_->add_output();
    out->set_name(name);
    out->mutable_type()->mutable_tensor_type()->set_elem_type(onnx::TensorProto::FLOAT);
  }

  onnx::ModelProto& model() { return model_; }
  onnx::GraphProto& graph() { return *graph_; }
  const onnx::GraphProto& graph() const { return *graph_; }
  std::string bytes() const { return model_.SerializeAsString(); }

 private:
  onnx::ModelProto model_;
  onnx::GraphProto* graph_ = nullptr;
};

// Deterministic pseudo-random values for weights and statistics.
class Lcg {
 public:
  explicit Lcg(std::uint64_t seed) : state_(seed * 6364136223846793005ull + 1442695040888963407ull) {}
  double uniform() {
    state_ = state_ * 6364136223846793005ull + 1442695040888963407ull;
    return static_cast<double>(state_ >> 11) * 0x1.0p-53;
  }
  std::vector<float> signs(std::size_t n) {
    std::vector<float> v(n);
    for (auto& x : v) x = uniform() < 0.5 ? -1.0f : 1.0f;
    return v;
  }
  std::vector<float> values(std::size_t n, double lo, double hi) {
    std::vector<float> v(n);
    for (auto& x : v) x = static_cast<float>(lo + (hi - lo) * uniform());
    return v;
  }

 private:
  std::uint64_t state_;
};

// How a binary layer's weight reaches its node.
enum class WeightForm { plus_minus_one, sign_of_latent };

// A conv (+-1 weights) and its batch norm, as PyTorch exports them; returns the BN's output.
inline std::string conv_bn(OnnxBuilder& b, Lcg& rng, const std::string& x, const std::string& name, int in, int out, int kernel,
                           int stride, int padding, WeightForm form = WeightForm::sign_of_latent) {
  const auto n = static_cast<std::size_t>(out) * in * kernel * kernel;
  std::string w;
  if (form == WeightForm::sign_of_latent) {
    w = b.node("Sign", {b.init(name + ".weight", {out, in, kernel, kernel}, rng.values(n, -1.0, 1.0))});
  } else {
    w = b.init(name + ".weight", {out, in, kernel, kernel}, rng.signs(n));
  }
  const std::string conv = b.node("Conv", {x, w},
                                  {OnnxBuilder::ints("dilations", {1, 1}), OnnxBuilder::integer("group", 1),
                                   OnnxBuilder::ints("kernel_shape", {kernel, kernel}),
                                   OnnxBuilder::ints("pads", {padding, padding, padding, padding}),
                                   OnnxBuilder::ints("strides", {stride, stride})});
  const auto o = static_cast<std::size_t>(out);
  return b.node("BatchNormalization",
                {conv, b.init(name + ".bn.weight", {out}, rng.values(o, 0.5, 1.5)), b.init(name + ".bn.bias", {out}, rng.values(o, -1.0, 1.0)),
                 b.init(name + ".bn.mean", {out}, rng.values(o, -3.0, 3.0)), b.init(name + ".bn.var", {out}, rng.values(o, 1.0, 9.0))},
                {OnnxBuilder::real("epsilon", 1e-5f), OnnxBuilder::real("momentum", 0.9f)});
}

// Flatten, a linear layer as MatMul of Transpose(Sign(W)), and its batch norm: the logits.
inline std::string linear_bn(OnnxBuilder& b, Lcg& rng, const std::string& x, const std::string& name, int in, int out) {
  const auto n = static_cast<std::size_t>(out) * in;
  const std::string w = b.node("Transpose", {b.node("Sign", {b.init(name + ".weight", {out, in}, rng.values(n, -1.0, 1.0))})},
                               {OnnxBuilder::ints("perm", {1, 0})});
  const std::string mm = b.node("MatMul", {x, w});
  const auto o = static_cast<std::size_t>(out);
  return b.node("BatchNormalization",
                {mm, b.init(name + ".bn.weight", {out}, rng.values(o, 0.5, 1.5)), b.init(name + ".bn.bias", {out}, rng.values(o, -1.0, 1.0)),
                 b.init(name + ".bn.mean", {out}, rng.values(o, -3.0, 3.0)), b.init(name + ".bn.var", {out}, rng.values(o, 1.0, 9.0))},
                {OnnxBuilder::real("epsilon", 1e-5f)});
}

// 1x8x8 in: Sub/Div normalization, conv 4 + pool, an identity block, a downsampling block, linear 3.
inline OnnxBuilder residual_onnx(std::uint64_t seed = 1) {
  OnnxBuilder b(1, 8, 8);
  Lcg rng(seed);
  std::string x = b.node("Div", {b.node("Sub", {"image", b.init("mean", {}, {0.25f})}), b.init("std", {}, {0.5f})});
  x = b.node("MaxPool", {b.node("Sign", {conv_bn(b, rng, x, "stem", 1, 4, 3, 1, 1)})},
             {OnnxBuilder::ints("kernel_shape", {2, 2}), OnnxBuilder::ints("strides", {2, 2}), OnnxBuilder::ints("pads", {0, 0, 0, 0})});
  const std::string a = b.node("Sign", {conv_bn(b, rng, x, "a1", 4, 4, 3, 1, 1)});
  x = b.node("Sign", {b.node("Add", {conv_bn(b, rng, a, "a2", 4, 4, 3, 1, 1), x})});
  const std::string s = b.node("Sign", {conv_bn(b, rng, x, "short", 4, 8, 1, 2, 0)});
  const std::string d = b.node("Sign", {conv_bn(b, rng, x, "d1", 4, 8, 3, 2, 1)});
  x = b.node("Sign", {b.node("Add", {conv_bn(b, rng, d, "d2", 8, 8, 3, 1, 1), s})});
  b.output(linear_bn(b, rng, b.node("Flatten", {x}, {OnnxBuilder::integer("axis", 1)}), "fc", 8 * 2 * 2, 3));
  return b;
}

}  // namespace spinbayes::test
