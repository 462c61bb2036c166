#include "interop/onnx_import.h"

#include <onnx/onnx_pb.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "core/error.h"
#include "core/read_file.h"

namespace spinbayes {

namespace {

static_assert(std::endian::native == std::endian::little, "ONNX raw tensor data is little-endian");

// Bounds on what a hostile file can make the importer hold: a tensor's elements (a layer's
// weights are far fewer), and a constant computed by broadcasting (normalization, shapes).
constexpr std::int64_t kMaxElements = std::int64_t{1} << 26;
constexpr std::int64_t kMaxBroadcast = std::int64_t{1} << 22;
constexpr std::size_t kMaxRank = 8;

// A constant tensor, its values widened to double (float, double and integer tensors alike).
struct Constant {
  std::vector<std::int64_t> dims;
  std::vector<double> values;
  std::int64_t size() const { return static_cast<std::int64_t>(values.size()); }
};

std::int64_t element_count(const std::vector<std::int64_t>& dims, const std::string& what) {
  if (dims.size() > kMaxRank) throw Error(what + ": rank " + std::to_string(dims.size()) + " is over " + std::to_string(kMaxRank));
  std::int64_t n = 1;
  for (const std::int64_t d : dims) {
    if (d < 0) throw Error(what + ": negative dimension " + std::to_string(d));
    if (d > 0 && n > kMaxElements / d) throw Error(what + ": more than 2^26 elements");
    n *= d;
  }
  return n;
}

template <typename T>
std::vector<double> raw_values(const std::string& raw, std::int64_t n, const std::string& what) {
  if (raw.size() != static_cast<std::size_t>(n) * sizeof(T)) {
    throw Error(what + ": raw data of " + std::to_string(raw.size()) + " bytes for " + std::to_string(n) +
                " elements of " + std::to_string(sizeof(T)) + " bytes");
  }
  std::vector<double> v(static_cast<std::size_t>(n));
  for (std::int64_t i = 0; i < n; ++i) {
    T x;
    std::memcpy(&x, raw.data() + i * static_cast<std::int64_t>(sizeof(T)), sizeof(T));
    v[static_cast<std::size_t>(i)] = static_cast<double>(x);
  }
  return v;
}

template <typename Field>
std::vector<double> typed_values(const Field& field, std::int64_t n, const std::string& what) {
  if (field.size() != n) {
    throw Error(what + ": " + std::to_string(field.size()) + " values for " + std::to_string(n) + " elements");
  }
  return std::vector<double>(field.begin(), field.end());
}

Constant tensor_constant(const onnx::TensorProto& t, const std::string& what) {
  if (t.data_location() == onnx::TensorProto::EXTERNAL) throw Error(what + ": external tensor data is not supported");
  Constant c;
  c.dims.assign(t.dims().begin(), t.dims().end());
  const std::int64_t n = element_count(c.dims, what);
  const bool raw = t.has_raw_data();
  switch (t.data_type()) {
    case onnx::TensorProto::FLOAT:
      c.values = raw ? raw_values<float>(t.raw_data(), n, what) : typed_values(t.float_data(), n, what);
      break;
    case onnx::TensorProto::DOUBLE:
      c.values = raw ? raw_values<double>(t.raw_data(), n, what) : typed_values(t.double_data(), n, what);
      break;
    case onnx::TensorProto::INT64:
      c.values = raw ? raw_values<std::int64_t>(t.raw_data(), n, what) : typed_values(t.int64_data(), n, what);
      break;
    case onnx::TensorProto::INT32:
      c.values = raw ? raw_values<std::int32_t>(t.raw_data(), n, what) : typed_values(t.int32_data(), n, what);
      break;
    default:
      throw Error(what + ": data type " + std::to_string(t.data_type()) + " is not supported (float, double, int32, int64)");
  }
  for (const double v : c.values) {
    if (!std::isfinite(v)) throw Error(what + ": a value is not finite");
  }
  return c;
}

// Numpy-style broadcasting of two constants.
template <typename Op>
Constant broadcast(const Constant& a, const Constant& b, Op op, const std::string& what) {
  const std::size_t rank = std::max(a.dims.size(), b.dims.size());
  std::vector<std::int64_t> dims(rank), da(rank, 1), db(rank, 1);
  std::copy(a.dims.begin(), a.dims.end(), da.begin() + static_cast<std::ptrdiff_t>(rank - a.dims.size()));
  std::copy(b.dims.begin(), b.dims.end(), db.begin() + static_cast<std::ptrdiff_t>(rank - b.dims.size()));
  for (std::size_t i = 0; i < rank; ++i) {
    if (da[i] != db[i] && da[i] != 1 && db[i] != 1) throw Error(what + ": shapes do not broadcast");
    dims[i] = da[i] == 1 ? db[i] : da[i];
  }
  Constant c;
  c.dims = dims;
  const std::int64_t n = element_count(dims, what);
  if (n > kMaxBroadcast) throw Error(what + ": a computed constant of more than 2^22 elements");
  c.values.resize(static_cast<std::size_t>(n));
  std::vector<std::int64_t> index(rank, 0);
  for (std::int64_t k = 0; k < n; ++k) {
    std::int64_t ia = 0, ib = 0;
    for (std::size_t i = 0; i < rank; ++i) {
      ia = ia * da[i] + (da[i] == 1 ? 0 : index[i]);
      ib = ib * db[i] + (db[i] == 1 ? 0 : index[i]);
    }
    c.values[static_cast<std::size_t>(k)] = op(a.values[static_cast<std::size_t>(ia)], b.values[static_cast<std::size_t>(ib)]);
    for (std::size_t i = rank; i-- > 0;) {
      if (++index[i] < dims[i]) break;
      index[i] = 0;
    }
  }
  return c;
}

// A constant that acts per channel on a tensor of rank `rank` with `channels` channels on axis 1
// (a scalar, [C], [C,1,1], [1,C,1,1] and the like): its value per channel.
std::vector<double> per_channel(const Constant& c, int channels, std::size_t rank, const std::string& what) {
  if (c.dims.size() > rank) throw Error(what + ": a constant of rank " + std::to_string(c.dims.size()) + " on a tensor of rank " + std::to_string(rank));
  const std::size_t offset = rank - c.dims.size();
  std::int64_t along = 1;
  for (std::size_t i = 0; i < c.dims.size(); ++i) {
    const std::size_t axis = offset + i;
    if (axis == 1) {
      along = c.dims[i];
      if (along != 1 && along != channels) {
        throw Error(what + ": a constant of " + std::to_string(along) + " channels on a tensor of " + std::to_string(channels));
      }
    } else if (c.dims[i] != 1) {
      throw Error(what + ": not a per-channel constant (it varies along axis " + std::to_string(axis) + ")");
    }
  }
  if (c.values.empty()) throw Error(what + ": an empty constant");
  std::vector<double> v(static_cast<std::size_t>(channels));
  for (int ch = 0; ch < channels; ++ch) v[static_cast<std::size_t>(ch)] = c.values[along == 1 ? 0 : static_cast<std::size_t>(ch)];
  return v;
}

// ---- attributes

const onnx::AttributeProto* find_attribute(const onnx::NodeProto& n, std::string_view name) {
  for (const auto& a : n.attribute()) {
    if (a.name() == name) return &a;
  }
  return nullptr;
}

std::vector<std::int64_t> ints_attribute(const onnx::NodeProto& n, std::string_view name, const std::string& where,
                                         std::vector<std::int64_t> fallback) {
  const auto* a = find_attribute(n, name);
  if (a == nullptr) return fallback;
  if (a->type() != onnx::AttributeProto::INTS) throw Error(where + ": attribute " + std::string(name) + " is not a list of integers");
  return {a->ints().begin(), a->ints().end()};
}

std::int64_t int_attribute(const onnx::NodeProto& n, std::string_view name, const std::string& where, std::int64_t fallback) {
  const auto* a = find_attribute(n, name);
  if (a == nullptr) return fallback;
  if (a->type() != onnx::AttributeProto::INT) throw Error(where + ": attribute " + std::string(name) + " is not an integer");
  return a->i();
}

double float_attribute(const onnx::NodeProto& n, std::string_view name, const std::string& where, double fallback) {
  const auto* a = find_attribute(n, name);
  if (a == nullptr) return fallback;
  if (a->type() != onnx::AttributeProto::FLOAT) throw Error(where + ": attribute " + std::string(name) + " is not a float");
  if (!std::isfinite(a->f())) throw Error(where + ": attribute " + std::string(name) + " is not finite");
  return a->f();
}

std::string string_attribute(const onnx::NodeProto& n, std::string_view name, const std::string& where, std::string fallback) {
  const auto* a = find_attribute(n, name);
  if (a == nullptr) return fallback;
  if (a->type() != onnx::AttributeProto::STRING) throw Error(where + ": attribute " + std::string(name) + " is not a string");
  return a->s();
}

// ---- the graph as the importer sees it

// One step between a layer's integer dot product and what its Sign (or the output) sees.
struct Step {
  enum class Kind { add, mul, batch_norm } kind = Kind::add;
  std::vector<double> values;                   // add, mul: per output channel
  std::vector<double> mean, var, gamma, beta;   // batch_norm
  double eps = 0.0;
};

// A binary layer found in the graph.
struct Found {
  std::string label;  // the node, as errors name it
  bool conv = true;
  int in_c = 0, out = 0, kernel = 1, stride = 1, padding = 0;
  int out_h = 1, out_w = 1;
  int source = 0;      // the map it reads (0 = the image)
  int shortcut = -1;   // residual: the map added before the sign
  bool activated = false, pooled = false;
  std::vector<std::int8_t> weights;  // out x fan_in, fan-in ordered (in, ky, kx)
  std::vector<Step> steps;
};

struct MapShape {
  int c = 0, h = 0, w = 0;
  bool operator==(const MapShape&) const = default;
};

struct Value {
  enum class Kind { constant, image, preact, sum, map, flat } kind = Kind::constant;
  Constant constant;
  int layer = -1;          // preact, sum
  int token = -1;          // preact, sum: consumed at most once
  int map = 0;             // map, flat: the map (0 = the image); sum: the shortcut's
  bool pooled = false;     // map, flat: the pooled view of the layer's signs
  std::vector<double> mul, add;  // image: x * mul + add per channel (normalization)
};

// Elements of constants computed by all nodes together (a small file of many broadcasting nodes
// must not exhaust memory).
constexpr std::int64_t kMaxComputedElements = std::int64_t{1} << 26;

Value constant_value(Constant c) {
  Value v;
  v.kind = Value::Kind::constant;
  v.constant = std::move(c);
  return v;
}

NetLayer max_pool_layer() {
  NetLayer l;
  l.kind = NetLayer::Kind::maxpool;
  return l;
}

class Importer {
 public:
  Importer(const onnx::ModelProto& model, const ImportDropout& dropout, std::vector<std::string>* warnings)
      : model_(model), dropout_(dropout), warnings_(warnings) {}

  ModelIR run() {
    const auto& g = model_.graph();
    for (const auto& t : g.initializer()) {
      Value v;
      v.kind = Value::Kind::constant;
      v.constant = tensor_constant(t, "initializer \"" + printable_head(t.name()) + "\"");
      define(t.name(), std::move(v), "initializer");
    }
    find_input(g);
    for (int i = 0; i < g.node_size(); ++i) visit(g.node(i), i);
    if (g.output_size() != 1) throw Error("the graph has " + std::to_string(g.output_size()) + " outputs, expected 1 (the logits)");
    return assemble(g.output(0).name());
  }

 private:
  void define(const std::string& name, Value v, const std::string& what) {
    if (name.empty()) return;
    if (v.kind == Value::Kind::constant && what != "initializer") {
      computed_elements_ += v.constant.size();
      if (computed_elements_ > kMaxComputedElements) {
        throw Error(what + ": the graph computes constants of more than 2^26 elements in all");
      }
    }
    if (!values_.emplace(name, std::move(v)).second) {
      throw Error(what + ": \"" + printable_head(name) + "\" is defined twice");
    }
  }

  void find_input(const onnx::GraphProto& g) {
    const onnx::ValueInfoProto* image = nullptr;
    for (const auto& in : g.input()) {
      if (values_.count(in.name())) continue;  // an initializer listed as an input
      if (image != nullptr) throw Error("the graph has more than one input (\"" + printable_head(image->name()) + "\", \"" + printable_head(in.name()) + "\")");
      image = &in;
    }
    if (image == nullptr) throw Error("the graph has no input");
    const std::string where = "input \"" + printable_head(image->name()) + "\"";
    if (!image->type().has_tensor_type()) throw Error(where + ": not a tensor");
    const auto& tt = image->type().tensor_type();
    if (tt.elem_type() != onnx::TensorProto::FLOAT) throw Error(where + ": element type " + std::to_string(tt.elem_type()) + ", expected float");
    if (!tt.has_shape() || tt.shape().dim_size() != 4) {
      throw Error(where + ": rank " + (tt.has_shape() ? std::to_string(tt.shape().dim_size()) : std::string("unknown")) +
                  ", expected 4 (N x C x H x W)");
    }
    int dims[3];
    for (int i = 1; i < 4; ++i) {
      const auto& d = tt.shape().dim(i);
      if (!d.has_dim_value() || d.dim_value() < 1 || d.dim_value() > 4096) {
        throw Error(where + ": dimension " + std::to_string(i) + " must be a fixed size in 1..4096");
      }
      dims[i - 1] = static_cast<int>(d.dim_value());
    }
    if (dims[0] > 64 || dims[1] < 8 || dims[1] > 1024 || dims[2] < 8 || dims[2] > 1024) {
      throw Error(where + ": " + std::to_string(dims[0]) + "x" + std::to_string(dims[1]) + "x" + std::to_string(dims[2]) +
                  " images; a network takes 1..64 channels of 8..1024 x 8..1024 pixels");
    }
    input_ = {dims[0], dims[1], dims[2]};
    maps_.push_back(input_);
    Value v;
    v.kind = Value::Kind::image;
    v.mul.assign(static_cast<std::size_t>(dims[0]), 1.0);
    v.add.assign(static_cast<std::size_t>(dims[0]), 0.0);
    define(image->name(), std::move(v), where);
  }

  const Value& input(const onnx::NodeProto& n, int k, const std::string& where) const {
    if (k >= n.input_size() || n.input(k).empty()) throw Error(where + ": input " + std::to_string(k + 1) + " is missing");
    const auto it = values_.find(n.input(k));
    if (it == values_.end()) throw Error(where + ": input \"" + printable_head(n.input(k)) + "\" is not defined before the node");
    return it->second;
  }
  bool has_input(const onnx::NodeProto& n, int k) const { return k < n.input_size() && !n.input(k).empty(); }
  const Constant& constant_input(const onnx::NodeProto& n, int k, const std::string& where, const char* role) const {
    const Value& v = input(n, k, where);
    if (v.kind != Value::Kind::constant) throw Error(where + ": " + role + " is not a constant");
    return v.constant;
  }
  void expect_inputs(const onnx::NodeProto& n, int lo, int hi, const std::string& where) const {
    if (n.input_size() < lo || n.input_size() > hi) {
      throw Error(where + ": " + std::to_string(n.input_size()) + " inputs, expected " + std::to_string(lo) +
                  (lo == hi ? "" : ".." + std::to_string(hi)));
    }
  }
  void output(const onnx::NodeProto& n, Value v, const std::string& where) {
    if (n.output_size() < 1 || n.output(0).empty()) throw Error(where + ": has no output");
    for (int k = 1; k < n.output_size(); ++k) {
      if (!n.output(k).empty()) values_used_extra_.emplace(n.output(k), where);
    }
    define(n.output(0), std::move(v), where);
  }

  Value consume(const onnx::NodeProto& n, int k, const std::string& where) {
    Value v = input(n, k, where);
    if (v.kind == Value::Kind::preact || v.kind == Value::Kind::sum) {
      if (v.token < static_cast<int>(consumed_.size()) && consumed_[static_cast<std::size_t>(v.token)]) {
        throw Error(where + ": reads the pre-activation of " + found_[static_cast<std::size_t>(v.layer)].label +
                    " a second time (it may feed one node only)");
      }
      consumed_[static_cast<std::size_t>(v.token)] = true;
    }
    return v;
  }
  Value preact(int layer) {
    Value v;
    v.kind = Value::Kind::preact;
    v.layer = layer;
    v.token = static_cast<int>(consumed_.size());
    consumed_.push_back(false);
    return v;
  }
  MapShape shape_of(const Value& v) const {
    MapShape s = maps_[static_cast<std::size_t>(v.map)];
    if (v.pooled) s = {s.c, s.h / 2, s.w / 2};
    return s;
  }
  void note_map_use(const Value& v, const std::string& where) {
    if (v.map == 0) return;
    auto& f = found_[static_cast<std::size_t>(v.map - 1)];
    if (v.pooled) return;
    if (f.pooled) throw Error(where + ": reads the signs of " + f.label + " before its MaxPool, which other nodes read after it");
    unpooled_use_[v.map] = where;
  }

  void visit(const onnx::NodeProto& n, int index) {
    const std::string op = n.op_type();
    const std::string where = "node " + (n.name().empty() ? "#" + std::to_string(index + 1) : "\"" + printable_head(n.name()) + "\"") +
                              " (" + printable_head(op) + ")";
    if (!n.domain().empty() && n.domain() != "ai.onnx") throw Error(where + ": operator domain \"" + printable_head(n.domain()) + "\" is not supported");
    for (const auto& in : n.input()) {
      if (values_used_extra_.count(in)) throw Error(where + ": reads \"" + printable_head(in) + "\", a secondary output of " + values_used_extra_.at(in) + ", which is not supported");
    }
    if (op == "Constant") return output(n, constant_value(constant_attribute(n, where)), where);
    if (op == "Identity" || op == "Dropout") {
      expect_inputs(n, 1, 3, where);
      if (op == "Dropout" && has_input(n, 2)) {
        const Value& mode = input(n, 2, where);
        if (mode.kind != Value::Kind::constant || std::any_of(mode.constant.values.begin(), mode.constant.values.end(), [](double x) { return x != 0.0; })) {
          throw Error(where + ": dropout in training mode (sites and p are chosen at import: --dropout, --p)");
        }
      }
      if (op == "Identity") expect_inputs(n, 1, 1, where);
      Value v = consume(n, 0, where);
      if (v.kind == Value::Kind::preact || v.kind == Value::Kind::sum) {  // the same value, read once more
        v.token = static_cast<int>(consumed_.size());
        consumed_.push_back(false);
      }
      return output(n, std::move(v), where);
    }
    if (op == "Sign") return sign(n, where);
    if (op == "Conv") return conv(n, where);
    if (op == "Gemm" || op == "MatMul") return linear(n, where, op == "Gemm");
    if (op == "BatchNormalization") return batch_norm(n, where);
    if (op == "Add" || op == "Sub" || op == "Mul" || op == "Div") return arithmetic(n, where, op[0]);
    if (op == "MaxPool") return max_pool(n, where);
    if (op == "Flatten" || op == "Reshape") return flatten(n, where, op == "Flatten");
    if (op == "Transpose" || op == "Unsqueeze" || op == "Squeeze" || op == "Cast" || op == "Neg") return constant_op(n, where, op);
    throw Error(where + ": operator not supported in a binary network");
  }

  Constant constant_attribute(const onnx::NodeProto& n, const std::string& where) {
    const auto* a = find_attribute(n, "value");
    if (a != nullptr && a->type() == onnx::AttributeProto::TENSOR) return tensor_constant(a->t(), where);
    if (const auto* f = find_attribute(n, "value_float"); f != nullptr && f->type() == onnx::AttributeProto::FLOAT) {
      return Constant{{}, {static_cast<double>(f->f())}};
    }
    if (const auto* i = find_attribute(n, "value_int"); i != nullptr && i->type() == onnx::AttributeProto::INT) {
      return Constant{{}, {static_cast<double>(i->i())}};
    }
    if (const auto* fs = find_attribute(n, "value_floats"); fs != nullptr && fs->type() == onnx::AttributeProto::FLOATS) {
      return Constant{{fs->floats_size()}, std::vector<double>(fs->floats().begin(), fs->floats().end())};
    }
    if (const auto* is = find_attribute(n, "value_ints"); is != nullptr && is->type() == onnx::AttributeProto::INTS) {
      return Constant{{is->ints_size()}, std::vector<double>(is->ints().begin(), is->ints().end())};
    }
    throw Error(where + ": no value of a supported kind");
  }

  // Operators on constants only (weights, shapes, normalization): evaluated here.
  void constant_op(const onnx::NodeProto& n, const std::string& where, const std::string& op) {
    expect_inputs(n, 1, 2, where);
    const Constant& a = constant_input(n, 0, where, "its input");
    Constant c;
    if (op == "Transpose") {
      std::vector<std::int64_t> perm = ints_attribute(n, "perm", where, {});
      const std::size_t rank = a.dims.size();
      if (perm.empty()) {
        for (std::size_t i = 0; i < rank; ++i) perm.push_back(static_cast<std::int64_t>(rank - 1 - i));
      }
      std::vector<bool> seen(rank, false);
      if (perm.size() != rank) throw Error(where + ": perm does not match the rank");
      for (const auto p : perm) {
        if (p < 0 || p >= static_cast<std::int64_t>(rank) || seen[static_cast<std::size_t>(p)]) throw Error(where + ": perm is not a permutation");
        seen[static_cast<std::size_t>(p)] = true;
      }
      c.dims.resize(rank);
      for (std::size_t i = 0; i < rank; ++i) c.dims[i] = a.dims[static_cast<std::size_t>(perm[i])];
      c.values.resize(a.values.size());
      std::vector<std::int64_t> stride_in(rank, 1);
      for (std::size_t i = rank; i-- > 1;) stride_in[i - 1] = stride_in[i] * a.dims[i];
      std::vector<std::int64_t> index(rank, 0);
      for (std::size_t k = 0; k < c.values.size(); ++k) {
        std::int64_t from = 0;
        for (std::size_t i = 0; i < rank; ++i) from += index[i] * stride_in[static_cast<std::size_t>(perm[i])];
        c.values[k] = a.values[static_cast<std::size_t>(from)];
        for (std::size_t i = rank; i-- > 0;) {
          if (++index[i] < c.dims[i]) break;
          index[i] = 0;
        }
      }
    } else if (op == "Unsqueeze" || op == "Squeeze") {
      std::vector<std::int64_t> axes = ints_attribute(n, "axes", where, {});
      if (has_input(n, 1)) {
        for (const double x : constant_input(n, 1, where, "axes").values) axes.push_back(static_cast<std::int64_t>(x));
      }
      c.values = a.values;
      if (op == "Squeeze") {
        const auto rank = static_cast<std::int64_t>(a.dims.size());
        for (std::int64_t i = 0; i < rank; ++i) {
          const bool listed = std::any_of(axes.begin(), axes.end(), [&](std::int64_t x) { return x == i || x + rank == i; });
          if ((axes.empty() && a.dims[static_cast<std::size_t>(i)] == 1) || (listed && a.dims[static_cast<std::size_t>(i)] == 1)) continue;
          if (listed) throw Error(where + ": squeezes an axis that is not 1");
          c.dims.push_back(a.dims[static_cast<std::size_t>(i)]);
        }
      } else {
        const auto rank = static_cast<std::int64_t>(a.dims.size() + axes.size());
        if (rank > static_cast<std::int64_t>(kMaxRank)) throw Error(where + ": rank over 8");
        std::size_t from = 0;
        for (std::int64_t i = 0; i < rank; ++i) {
          const bool listed = std::any_of(axes.begin(), axes.end(), [&](std::int64_t x) { return x == i || x + rank == i; });
          if (listed) {
            c.dims.push_back(1);
          } else {
            if (from >= a.dims.size()) throw Error(where + ": bad axes");
            c.dims.push_back(a.dims[from++]);
          }
        }
        if (from != a.dims.size()) throw Error(where + ": bad axes");
      }
    } else if (op == "Cast") {
      c = a;
      const auto to = int_attribute(n, "to", where, onnx::TensorProto::FLOAT);
      if (to == onnx::TensorProto::INT64 || to == onnx::TensorProto::INT32) {
        for (double& x : c.values) x = std::trunc(x);
      } else if (to == onnx::TensorProto::FLOAT) {
        for (double& x : c.values) x = static_cast<double>(static_cast<float>(x));
      } else if (to != onnx::TensorProto::DOUBLE) {
        throw Error(where + ": cast to data type " + std::to_string(to) + " is not supported");
      }
    } else {  // Neg
      c = a;
      for (double& x : c.values) x = -x;
    }
    output(n, constant_value(std::move(c)), where);
  }

  void sign(const onnx::NodeProto& n, const std::string& where) {
    expect_inputs(n, 1, 1, where);
    Value v = consume(n, 0, where);
    if (v.kind == Value::Kind::constant) {
      for (double& x : v.constant.values) x = x > 0.0 ? 1.0 : (x < 0.0 ? -1.0 : 0.0);
      return output(n, std::move(v), where);
    }
    if (v.kind != Value::Kind::preact && v.kind != Value::Kind::sum) {
      throw Error(where + ": the sign of something other than a layer's pre-activation (a convolution or linear layer, its batch norm, a residual sum)");
    }
    Found& f = found_[static_cast<std::size_t>(v.layer)];
    if (f.activated) throw Error(where + ": " + f.label + " is activated twice");
    f.activated = true;
    if (v.kind == Value::Kind::sum) f.shortcut = v.map;
    Value m;
    m.kind = Value::Kind::map;
    m.map = v.layer + 1;
    output(n, std::move(m), where);
  }

  // The weight of a binary layer: +-1, or +-alpha per output row (row-major out x fan_in). Returns
  // the signs; alpha, where any row's is not 1, becomes the layer's first step.
  std::vector<std::int8_t> binary_weights(const std::vector<double>& w, int out, std::int64_t fan_in, std::vector<double>& alpha,
                                          const std::string& where) {
    std::vector<std::int8_t> signs(w.size());
    alpha.assign(static_cast<std::size_t>(out), 1.0);
    bool scaled = false;
    for (int o = 0; o < out; ++o) {
      const double a = std::fabs(w[static_cast<std::size_t>(o * fan_in)]);
      for (std::int64_t k = 0; k < fan_in; ++k) {
        const std::size_t i = static_cast<std::size_t>(o * fan_in + k);
        if (w[i] == 0.0 || std::fabs(w[i]) != a) {
          char value[32];
          std::snprintf(value, sizeof value, "%.6g", w[i]);
          throw Error(where + ": weights are not binary (" + value + " at index " + std::to_string(i) + ")");
        }
        signs[i] = w[i] > 0.0 ? 1 : -1;
      }
      alpha[static_cast<std::size_t>(o)] = a;
      scaled = scaled || a != 1.0;
    }
    if (!scaled) alpha.clear();
    return signs;
  }

  int new_layer(Found f, const std::vector<double>& alpha, const Constant* bias, const std::string& where) {
    if (!alpha.empty()) f.steps.push_back(Step{Step::Kind::mul, alpha, {}, {}, {}, {}, 0.0});
    if (bias != nullptr) {
      if (bias->size() != f.out) throw Error(where + ": bias has " + std::to_string(bias->size()) + " values for " + std::to_string(f.out) + " outputs");
      f.steps.push_back(Step{Step::Kind::add, bias->values, {}, {}, {}, {}, 0.0});
    }
    if (found_.size() >= 1000) throw Error(where + ": more than 1000 binary layers");
    found_.push_back(std::move(f));
    const Found& l = found_.back();
    maps_.push_back({l.out, l.out_h, l.out_w});
    return static_cast<int>(found_.size()) - 1;
  }

  void take_image(const Value& v, const std::string& where) {
    if (normalization_taken_) throw Error(where + ": a second layer reads the image");
    normalization_taken_ = true;
    for (std::size_t c = 0; c < v.mul.size(); ++c) {
      if (!(v.mul[c] > 0.0)) throw Error(where + ": the input normalization scales channel " + std::to_string(c) + " by a non-positive factor");
    }
    mul_ = v.mul;
    add_ = v.add;
  }

  void conv(const onnx::NodeProto& n, const std::string& where) {
    expect_inputs(n, 2, 3, where);
    const Value x = consume(n, 0, where);
    if (x.kind != Value::Kind::image && x.kind != Value::Kind::map) {
      throw Error(where + ": its input is neither the image nor a binary map (a Sign, maybe max-pooled)");
    }
    const Constant& w = constant_input(n, 1, where, "the weight");
    const MapShape in = x.kind == Value::Kind::image ? input_ : shape_of(x);
    if (w.dims.size() != 4) throw Error(where + ": weight of rank " + std::to_string(w.dims.size()) + ", expected 4");
    if (int_attribute(n, "group", where, 1) != 1) throw Error(where + ": grouped convolution is not supported");
    const auto pad_mode = string_attribute(n, "auto_pad", where, "NOTSET");
    if (pad_mode != "NOTSET" && pad_mode != "VALID") throw Error(where + ": auto_pad " + printable_head(pad_mode) + " is not supported (give explicit pads)");
    for (const auto d : ints_attribute(n, "dilations", where, {1, 1})) {
      if (d != 1) throw Error(where + ": dilation is not supported");
    }
    const auto kernel = ints_attribute(n, "kernel_shape", where, {w.dims[2], w.dims[3]});
    const auto strides = ints_attribute(n, "strides", where, {1, 1});
    const auto pads = ints_attribute(n, "pads", where, {0, 0, 0, 0});
    if (kernel.size() != 2 || kernel[0] != w.dims[2] || kernel[1] != w.dims[3] || kernel[0] != kernel[1]) {
      throw Error(where + ": kernel must be square and match the weight");
    }
    if (strides.size() != 2 || strides[0] != strides[1] || strides[0] < 1 || strides[0] > 8) {
      throw Error(where + ": strides must be equal and in 1..8");
    }
    // The limits of network files (model/network.h), so that every command reads the run.
    if (pads.size() != 4 || std::any_of(pads.begin(), pads.end(), [&](std::int64_t p) { return p != pads[0]; }) || pads[0] < 0 ||
        pads[0] > 7 || pads[0] >= kernel[0]) {
      throw Error(where + ": padding must be the same on every side, in 0..7 and below the kernel");
    }
    if (w.dims[0] < 1 || w.dims[0] > 4096) throw Error(where + ": " + std::to_string(w.dims[0]) + " output channels, at most 4096");
    if (w.dims[2] < 1 || w.dims[2] > 15) throw Error(where + ": a " + std::to_string(w.dims[2]) + "x" + std::to_string(w.dims[2]) + " kernel, at most 15x15");
    if (w.dims[1] != in.c) {
      throw Error(where + ": weight for " + std::to_string(w.dims[1]) + " input channels on a map of " + std::to_string(in.c));
    }
    Found f;
    f.label = where;
    f.conv = true;
    f.in_c = in.c;
    f.out = static_cast<int>(w.dims[0]);
    f.kernel = static_cast<int>(kernel[0]);
    f.stride = static_cast<int>(strides[0]);
    f.padding = static_cast<int>(pads[0]);
    if (in.h + 2 * f.padding < f.kernel || in.w + 2 * f.padding < f.kernel) throw Error(where + ": the kernel does not fit the map");
    f.out_h = (in.h + 2 * f.padding - f.kernel) / f.stride + 1;
    f.out_w = (in.w + 2 * f.padding - f.kernel) / f.stride + 1;
    const std::int64_t fan_in = static_cast<std::int64_t>(in.c) * f.kernel * f.kernel;
    std::vector<double> alpha;
    f.weights = binary_weights(w.values, f.out, fan_in, alpha, where);
    if (x.kind == Value::Kind::image) {
      take_image(x, where);
      f.source = 0;
    } else {
      note_map_use(x, where);
      f.source = x.map;
    }
    const Constant* bias = has_input(n, 2) ? &constant_input(n, 2, where, "the bias") : nullptr;
    output(n, preact(new_layer(std::move(f), alpha, bias, where)), where);
  }

  void linear(const onnx::NodeProto& n, const std::string& where, bool gemm) {
    expect_inputs(n, 2, gemm ? 3 : 2, where);
    const Value x = consume(n, 0, where);
    int source = 0;
    MapShape in;
    if (x.kind == Value::Kind::flat) {
      in = shape_of(x);
      source = x.map;
    } else if (x.kind == Value::Kind::map && !x.pooled && x.map > 0 && !found_[static_cast<std::size_t>(x.map - 1)].conv) {
      in = shape_of(x);  // a linear layer's signs: flat already
      source = x.map;
    } else {
      throw Error(where + ": its input is not a flattened binary map or image");
    }
    if (source > 0) {
      Value seen = x;
      seen.kind = Value::Kind::map;
      note_map_use(seen, where);
    }
    const Constant& w = constant_input(n, 1, where, "the weight");
    if (w.dims.size() != 2) throw Error(where + ": weight of rank " + std::to_string(w.dims.size()) + ", expected 2");
    bool trans_b = false;
    double alpha_all = 1.0;
    if (gemm) {
      if (int_attribute(n, "transA", where, 0) != 0) throw Error(where + ": transA is not supported");
      trans_b = int_attribute(n, "transB", where, 0) != 0;
      alpha_all = float_attribute(n, "alpha", where, 1.0);
    }
    const std::int64_t fan_in = static_cast<std::int64_t>(in.c) * in.h * in.w;
    const std::int64_t rows = trans_b ? w.dims[1] : w.dims[0], out = trans_b ? w.dims[0] : w.dims[1];
    if (rows != fan_in) {
      throw Error(where + ": weight for " + std::to_string(rows) + " inputs on " + std::to_string(fan_in) + " features");
    }
    if (out < 1 || out > 10000) throw Error(where + ": " + std::to_string(out) + " outputs, expected 1..10000");
    std::vector<double> wt(w.values.size());
    for (std::int64_t o = 0; o < out; ++o) {
      for (std::int64_t k = 0; k < fan_in; ++k) {
        wt[static_cast<std::size_t>(o * fan_in + k)] =
            w.values[static_cast<std::size_t>(trans_b ? o * fan_in + k : k * out + o)] * alpha_all;
      }
    }
    Found f;
    f.label = where;
    f.conv = false;
    f.in_c = static_cast<int>(fan_in);
    f.out = static_cast<int>(out);
    f.source = source;
    std::vector<double> alpha;
    f.weights = binary_weights(wt, f.out, fan_in, alpha, where);
    if (source == 0) take_image(x, where);
    std::optional<Constant> bias;
    if (gemm && has_input(n, 2)) {
      const Constant& c = constant_input(n, 2, where, "the bias");
      const double beta = float_attribute(n, "beta", where, 1.0);
      std::vector<double> b = per_channel(c, f.out, 2, where + ": bias");
      for (double& v : b) v *= beta;
      bias = Constant{{f.out}, std::move(b)};
    }
    output(n, preact(new_layer(std::move(f), alpha, bias ? &*bias : nullptr, where)), where);
  }

  void batch_norm(const onnx::NodeProto& n, const std::string& where) {
    expect_inputs(n, 5, 5, where);
    if (n.output_size() > 1) {
      for (int k = 1; k < n.output_size(); ++k) {
        if (!n.output(k).empty()) throw Error(where + ": training mode (running statistics as outputs) is not supported");
      }
    }
    if (int_attribute(n, "training_mode", where, 0) != 0) throw Error(where + ": training mode is not supported");
    Value x = consume(n, 0, where);
    if (x.kind != Value::Kind::preact) throw Error(where + ": normalizes something other than a convolution's or linear layer's output");
    Found& f = found_[static_cast<std::size_t>(x.layer)];
    Step s;
    s.kind = Step::Kind::batch_norm;
    const std::size_t rank = 2;  // BatchNormalization's parameters are 1-D, one value per channel
    s.gamma = per_channel(constant_input(n, 1, where, "scale"), f.out, rank, where + ": scale");
    s.beta = per_channel(constant_input(n, 2, where, "bias"), f.out, rank, where + ": bias");
    s.mean = per_channel(constant_input(n, 3, where, "mean"), f.out, rank, where + ": mean");
    s.var = per_channel(constant_input(n, 4, where, "var"), f.out, rank, where + ": var");
    s.eps = float_attribute(n, "epsilon", where, 1e-5);
    for (int c = 0; c < f.out; ++c) {
      if (!(s.var[static_cast<std::size_t>(c)] + s.eps > 0.0)) throw Error(where + ": var + epsilon is not positive for channel " + std::to_string(c));
    }
    f.steps.push_back(std::move(s));
    output(n, preact(x.layer), where);
  }

  void arithmetic(const onnx::NodeProto& n, const std::string& where, char op) {
    expect_inputs(n, 2, 2, where);
    const Value a = consume(n, 0, where), b = consume(n, 1, where);
    using K = Value::Kind;
    if (a.kind == K::constant && b.kind == K::constant) {
      const auto f = [op](double x, double y) {
        return op == 'A' ? x + y : op == 'S' ? x - y : op == 'M' ? x * y : (y == 0.0 ? std::numeric_limits<double>::infinity() : x / y);
      };
      Constant c = broadcast(a.constant, b.constant, f, where);
      for (const double v : c.values) {
        if (!std::isfinite(v)) throw Error(where + ": a constant that is not finite");
      }
      return output(n, constant_value(std::move(c)), where);
    }
    // A residual sum: a pre-activation plus a binary map of the same shape.
    if (op == 'A' && ((a.kind == K::preact && b.kind == K::map) || (a.kind == K::map && b.kind == K::preact))) {
      const Value& pre = a.kind == K::preact ? a : b;
      const Value& map = a.kind == K::map ? a : b;
      const Found& f = found_[static_cast<std::size_t>(pre.layer)];
      if (map.map == 0) throw Error(where + ": adds the image, not a binary map, to " + f.label);
      if (map.kind == K::flat) throw Error(where + ": adds a flattened map to " + f.label);
      const MapShape own{f.out, f.out_h, f.out_w};
      if (!f.conv || !(shape_of(map) == own)) {
        throw Error(where + ": adds a " + std::to_string(shape_of(map).c) + "x" + std::to_string(shape_of(map).h) + "x" +
                    std::to_string(shape_of(map).w) + " map to the output of " + f.label + " (" + std::to_string(own.c) + "x" +
                    std::to_string(own.h) + "x" + std::to_string(own.w) + ")");
      }
      note_map_use(map, where);
      Value s = preact(pre.layer);
      s.kind = K::sum;
      s.map = map.map;
      s.pooled = map.pooled;
      return output(n, std::move(s), where);
    }
    const bool a_const = a.kind == K::constant, b_const = b.kind == K::constant;
    if (!a_const && !b_const) throw Error(where + ": combines two computed tensors (only a residual sum of a pre-activation and a binary map is supported)");
    const Value& x = a_const ? b : a;
    const Constant& c = a_const ? a.constant : b.constant;
    if (op == 'D' && a_const) throw Error(where + ": divides a constant by a computed tensor");
    if (x.kind == K::image) {
      Value v = x;
      const std::vector<double> k = per_channel(c, input_.c, 4, where);
      for (std::size_t ch = 0; ch < k.size(); ++ch) {
        switch (op) {
          case 'A': v.add[ch] += k[ch]; break;
          case 'S':
            if (a_const) {  // k - x
              v.mul[ch] = -v.mul[ch];
              v.add[ch] = k[ch] - v.add[ch];
            } else {
              v.add[ch] -= k[ch];
            }
            break;
          case 'M': v.mul[ch] *= k[ch]; v.add[ch] *= k[ch]; break;
          default:
            if (k[ch] == 0.0) throw Error(where + ": divides by zero");
            v.mul[ch] /= k[ch];
            v.add[ch] /= k[ch];
        }
      }
      return output(n, std::move(v), where);
    }
    if (x.kind != K::preact) throw Error(where + ": arithmetic on a binary map or a residual sum is not supported");
    Found& f = found_[static_cast<std::size_t>(x.layer)];
    std::vector<double> k = per_channel(c, f.out, f.conv ? 4 : 2, where);
    if (op == 'S' && a_const) {  // k - x = -x + k
      f.steps.push_back(Step{Step::Kind::mul, std::vector<double>(k.size(), -1.0), {}, {}, {}, {}, 0.0});
      f.steps.push_back(Step{Step::Kind::add, k, {}, {}, {}, {}, 0.0});
    } else {
      if (op == 'S') {
        for (double& v : k) v = -v;
      } else if (op == 'D') {
        for (double& v : k) {
          if (v == 0.0) throw Error(where + ": divides by zero");
          v = 1.0 / v;
        }
      }
      f.steps.push_back(Step{op == 'A' || op == 'S' ? Step::Kind::add : Step::Kind::mul, k, {}, {}, {}, {}, 0.0});
    }
    output(n, preact(x.layer), where);
  }

  void max_pool(const onnx::NodeProto& n, const std::string& where) {
    expect_inputs(n, 1, 1, where);
    const Value x = consume(n, 0, where);
    if (x.kind != Value::Kind::map || x.map == 0) throw Error(where + ": pools something other than a layer's signs");
    if (x.pooled) throw Error(where + ": pools a map that is pooled already");
    Found& f = found_[static_cast<std::size_t>(x.map - 1)];
    if (!f.conv) throw Error(where + ": pools a linear layer's output");
    const auto ks = ints_attribute(n, "kernel_shape", where, {});
    const auto st = ints_attribute(n, "strides", where, {1, 1});
    const auto pads = ints_attribute(n, "pads", where, {0, 0, 0, 0});
    const auto dil = ints_attribute(n, "dilations", where, {1, 1});
    const auto pad_mode = string_attribute(n, "auto_pad", where, "NOTSET");
    if (ks != std::vector<std::int64_t>{2, 2} || st != std::vector<std::int64_t>{2, 2}) {
      throw Error(where + ": only a 2x2 max-pool with stride 2 is supported");
    }
    if (std::any_of(pads.begin(), pads.end(), [](std::int64_t p) { return p != 0; }) || dil != std::vector<std::int64_t>{1, 1} ||
        int_attribute(n, "ceil_mode", where, 0) != 0 || int_attribute(n, "storage_order", where, 0) != 0 ||
        (pad_mode != "NOTSET" && pad_mode != "VALID")) {
      throw Error(where + ": padding, dilation and ceil mode are not supported");
    }
    if (f.out_h < 2 || f.out_w < 2) throw Error(where + ": pools a map below 1x1");
    if (unpooled_use_.count(x.map)) {
      throw Error(where + ": pools the signs of " + f.label + ", which " + unpooled_use_.at(x.map) + " reads unpooled");
    }
    f.pooled = true;
    Value v = x;
    v.pooled = true;
    output(n, std::move(v), where);
  }

  void flatten(const onnx::NodeProto& n, const std::string& where, bool is_flatten) {
    expect_inputs(n, is_flatten ? 1 : 2, is_flatten ? 1 : 2, where);
    const Value x = consume(n, 0, where);
    if (x.kind != Value::Kind::map && x.kind != Value::Kind::image && x.kind != Value::Kind::flat) {
      throw Error(where + ": flattens something other than a binary map or the image");
    }
    const MapShape s = x.kind == Value::Kind::image ? input_ : shape_of(x);
    const std::int64_t features = static_cast<std::int64_t>(s.c) * s.h * s.w;
    if (is_flatten) {
      if (int_attribute(n, "axis", where, 1) != 1) throw Error(where + ": only axis 1 (keeping the batch) is supported");
    } else {
      const Constant& shape = constant_input(n, 1, where, "the shape");
      const auto& d = shape.values;
      if (int_attribute(n, "allowzero", where, 0) != 0) throw Error(where + ": allowzero is not supported");
      const bool batch_ok = d.size() == 2 && (d[0] == -1.0 || d[0] == 0.0 || d[0] >= 1.0);
      const bool features_ok = d.size() == 2 && (d[1] == static_cast<double>(features) || (d[1] == -1.0 && d[0] != -1.0));
      if (!batch_ok || !features_ok) {
        throw Error(where + ": only a reshape to [N, " + std::to_string(features) + "] (a flatten) is supported");
      }
    }
    Value v = x;  // a flattened image keeps its normalization, per channel before the flatten
    v.kind = Value::Kind::flat;
    output(n, std::move(v), where);
  }

  // ---- from the layers found to the network's vocabulary

  // The composed steps as a batch norm with eps 1e-5 (what the trainer's LibTorch layers use, so
  // a checkpoint written from the IR computes the same): y = gamma * (x - mean) / sqrt(var + eps) + beta.
  static void fold_steps(const Found& f, BinaryLayerIR& l) {
    const double eps = static_cast<double>(1e-5f);
    const auto out = static_cast<std::size_t>(f.out);
    l.bn_eps = static_cast<float>(eps);
    l.bn_mean.assign(out, 0.0f);
    l.bn_var.assign(out, 0.0f);
    l.bn_gamma.assign(out, 0.0f);
    l.bn_beta.assign(out, 0.0f);
    // The common case, [bias] then one batch norm: its own statistics, the bias moved into the mean.
    const bool plain = (f.steps.size() == 1 && f.steps[0].kind == Step::Kind::batch_norm) ||
                       (f.steps.size() == 2 && f.steps[0].kind == Step::Kind::add && f.steps[1].kind == Step::Kind::batch_norm);
    for (std::size_t c = 0; c < out; ++c) {
      if (plain) {
        const Step& bn = f.steps.back();
        const double bias = f.steps.size() == 2 ? f.steps[0].values[c] : 0.0;
        const double var = bn.var[c] + bn.eps - eps;
        l.bn_mean[c] = static_cast<float>(bn.mean[c] - bias);
        l.bn_beta[c] = static_cast<float>(bn.beta[c]);
        if (var >= 0.0) {
          l.bn_var[c] = static_cast<float>(var);
          l.bn_gamma[c] = static_cast<float>(bn.gamma[c]);
        } else {  // var + eps below 1e-5: the scale moves into gamma
          l.bn_gamma[c] = static_cast<float>(bn.gamma[c] * std::sqrt(eps / (bn.var[c] + bn.eps)));
        }
        continue;
      }
      double a = 1.0, b = 0.0;  // y = a * x + b
      for (const Step& s : f.steps) {
        switch (s.kind) {
          case Step::Kind::add: b += s.values[c]; break;
          case Step::Kind::mul: a *= s.values[c]; b *= s.values[c]; break;
          case Step::Kind::batch_norm: {
            const double k = s.gamma[c] / std::sqrt(s.var[c] + s.eps);
            a *= k;
            b = (b - s.mean[c]) * k + s.beta[c];
            break;
          }
        }
      }
      // gamma * x / sqrt(1 - eps + eps) + beta = a x + b
      l.bn_var[c] = static_cast<float>(1.0 - eps);
      l.bn_gamma[c] = static_cast<float>(a);
      l.bn_beta[c] = static_cast<float>(b);
    }
    const auto finite = [](const std::vector<float>& v) {
      return std::all_of(v.begin(), v.end(), [](float x) { return std::isfinite(x); });
    };
    if (!finite(l.bn_mean) || !finite(l.bn_var) || !finite(l.bn_gamma) || !finite(l.bn_beta)) {
      throw Error(f.label + ": its batch norm and scales fold to a threshold or scale that is not a finite float");
    }
  }

  NetLayer net_layer(const Found& f) const {
    NetLayer nl;
    nl.kind = f.conv ? NetLayer::Kind::conv : NetLayer::Kind::linear;
    nl.out = f.out;
    nl.kernel = f.kernel;
    nl.stride = f.stride;
    nl.padding = f.padding;
    return nl;
  }

  ModelIR assemble(const std::string& output_name) {
    const auto it = values_.find(output_name);
    if (it == values_.end()) throw Error("output \"" + printable_head(output_name) + "\" is not computed by any node");
    const Value& out = it->second;
    if (out.kind != Value::Kind::preact) {
      throw Error("output \"" + printable_head(output_name) + "\": the graph must end with a linear layer's logits (and its batch norm or bias)");
    }
    Found& last = found_[static_cast<std::size_t>(out.layer)];
    if (last.conv) throw Error(last.label + ": the last layer must be a linear layer (Gemm or MatMul) giving the logits");
    if (last.activated) throw Error(last.label + ": the output layer's logits also go through a Sign");

    const std::size_t count = found_.size();
    std::vector<std::vector<int>> readers(count + 1), shortcut_readers(count + 1);
    for (std::size_t i = 0; i < count; ++i) {
      const Found& f = found_[i];
      if (static_cast<int>(i) != out.layer && !f.activated) throw Error(f.label + ": its output reaches no Sign (every layer but the last is binary)");
      readers[static_cast<std::size_t>(f.source)].push_back(static_cast<int>(i));
      if (f.shortcut >= 0) shortcut_readers[static_cast<std::size_t>(f.shortcut)].push_back(static_cast<int>(i));
    }
    const auto not_chain = [&](int map, const std::string& why) {
      const std::string of = map == 0 ? "the image" : "the signs of " + found_[static_cast<std::size_t>(map - 1)].label;
      return Error(of + ": " + why + "; the graph must be a chain of layers and residual blocks");
    };

    std::vector<NetLayer> network;
    std::vector<int> order;  // found layers in the order build_layers makes them
    std::vector<bool> emitted(count, false);
    bool flat = false;
    int cur = 0;
    const auto emit = [&](int i) {
      emitted[static_cast<std::size_t>(i)] = true;
      order.push_back(i);
    };
    while (cur != out.layer + 1) {
      const auto& rd = readers[static_cast<std::size_t>(cur)];
      const auto& sc = shortcut_readers[static_cast<std::size_t>(cur)];
      if (cur > 0 && !found_[static_cast<std::size_t>(cur - 1)].conv && !flat) flat = true;  // a linear layer's output
      if (sc.size() > 1) throw not_chain(cur, "it is the shortcut of " + std::to_string(sc.size()) + " blocks");
      // A downsampling block: one reader is a 1x1 convolution whose signs are only a shortcut.
      int down = -1;
      for (const int r : rd) {
        const auto m = static_cast<std::size_t>(r + 1);
        if (readers[m].empty() && shortcut_readers[m].size() == 1 && found_[static_cast<std::size_t>(r)].conv) down = r;
      }
      if (sc.empty() && down < 0) {
        if (rd.size() != 1) throw not_chain(cur, rd.empty() ? "no layer reads it" : "it is read by " + std::to_string(rd.size()) + " layers");
        const Found& f = found_[static_cast<std::size_t>(rd[0])];
        if (!f.conv && !flat) {
          NetLayer fl;
          fl.kind = NetLayer::Kind::flatten;
          network.push_back(fl);
          flat = true;
        }
        network.push_back(net_layer(f));
        emit(rd[0]);
        if (f.pooled) network.push_back(max_pool_layer());
        cur = rd[0] + 1;
        continue;
      }
      if (cur == 0) throw not_chain(cur, "a residual block needs a binary input");
      if (!sc.empty() && down >= 0) throw not_chain(cur, "it is both a block's shortcut and a downsampling shortcut's input");
      if (rd.size() != (down >= 0 ? 2u : 1u)) throw not_chain(cur, "it is read by " + std::to_string(rd.size()) + " layers");
      const int end = down >= 0 ? shortcut_readers[static_cast<std::size_t>(down + 1)][0] : sc[0];
      NetLayer block;
      block.kind = NetLayer::Kind::residual;
      block.downsample = down >= 0;
      int at = rd[0] == down ? rd[1] : rd[0];
      std::vector<int> branch;
      int total_stride = 1;
      while (true) {
        const Found& f = found_[static_cast<std::size_t>(at)];
        if (!f.conv) throw Error(f.label + ": a residual branch holds convolutions only");
        branch.push_back(at);
        total_stride *= f.stride;
        if (total_stride > 8) throw Error(f.label + ": the branch's total stride is over 8");
        block.branch.push_back(net_layer(f));
        if (at == end) break;
        if (f.pooled) throw Error(f.label + ": a max-pool inside a residual branch is not supported");
        const auto m = static_cast<std::size_t>(at + 1);
        if (readers[m].size() != 1 || !shortcut_readers[m].empty()) throw not_chain(at + 1, "inside a residual branch it is read more than once");
        at = readers[m][0];
        if (branch.size() > 64) throw Error(f.label + ": a residual branch of more than 64 layers");
      }
      if (down >= 0) {
        const Found& d = found_[static_cast<std::size_t>(down)];
        if (d.kernel != 1 || d.padding != 0 || d.stride != total_stride || d.pooled) {
          throw Error(d.label + ": a downsampling shortcut must be a 1x1 convolution with the branch's stride (" +
                      std::to_string(total_stride) + ") and no padding or pooling");
        }
        emit(down);
      }
      for (const int b : branch) emit(b);
      network.push_back(block);
      if (found_[static_cast<std::size_t>(end)].pooled) network.push_back(max_pool_layer());
      cur = end + 1;
    }
    for (std::size_t i = 0; i < count; ++i) {
      if (!emitted[i]) throw Error(found_[i].label + ": not on the path from the input to the output");
    }

    ModelIR ir;
    ModelSpec& spec = ir.spec;
    spec.architecture = "custom";
    spec.network = network;
    spec.width = 0;
    spec.channels = input_.c;
    spec.height = input_.h;
    spec.width_px = input_.w;
    spec.classes = last.out;
    spec.input_mean.resize(mul_.size());
    spec.input_std.resize(mul_.size());
    for (std::size_t c = 0; c < mul_.size(); ++c) {
      // x * mul + add = (x - mean) / std
      spec.input_std[c] = static_cast<float>(1.0 / mul_[c]);
      spec.input_mean[c] = static_cast<float>(-add_[c] / mul_[c]);
    }
    spec.dropout = dropout_.kind;
    spec.p = dropout_.kind == DropoutKind::none ? 0.0 : dropout_.p;
    spec.dropout_layers = dropout_.layers;
    if (spec.dropout != DropoutKind::none && !(spec.p > 0.0)) throw Error("--p: dropout " + to_string(spec.dropout) + " needs p > 0");
    const std::vector<LayerSpec> built = build_layers(spec);
    if (built.size() != order.size()) throw Error("internal: the network expands to " + std::to_string(built.size()) + " layers, found " + std::to_string(order.size()));
    for (std::size_t i = 0; i < order.size(); ++i) {
      const Found& f = found_[static_cast<std::size_t>(order[i])];
      BinaryLayerIR l;
      l.shape = built[i];
      if (l.shape.out_channels != f.out || l.shape.in_channels != f.in_c || l.shape.kernel != f.kernel || l.shape.stride != f.stride ||
          l.shape.padding != f.padding || l.shape.source != (f.source == 0 ? 0 : position(order, f.source - 1) + 1)) {
        throw Error(f.label + ": its shape does not match the network it was read into");
      }
      l.weights = f.weights;
      fold_steps(f, l);
      if (warnings_ != nullptr && !l.shape.output) warn_of_ties(f, l);
      ir.layers.push_back(std::move(l));
    }
    ir.validate();
    return ir;
  }

  // A Sign whose input can be exactly 0: ONNX's Sign gives 0 there, the engine and the chip +1
  // (their comparison is dot >= threshold). Without dropout a binary layer's dot product is an
  // integer of its fan-in's parity (its shortcut adds +-1); the first layer's is 0 on a blank patch.
  void warn_of_ties(const Found& f, const BinaryLayerIR& l) const {
    const LayerSpec& s = l.shape;
    const int fan_in = s.in_channels * s.kernel * s.kernel;
    for (std::size_t c = 0; c < l.bn_mean.size(); ++c) {
      for (const double shift : s.shortcut >= 0 ? std::vector<double>{-1.0, 1.0} : std::vector<double>{0.0}) {
        const double t = fold_batch_norm(l.bn_mean[c], l.bn_var[c], l.bn_gamma[c], l.bn_beta[c], l.bn_eps, shift).threshold;
        const bool reachable = s.real_input ? t == 0.0
                                            : std::isfinite(t) && t == std::round(t) && std::fabs(t) <= fan_in &&
                                                  (static_cast<long long>(std::fabs(t)) % 2) == fan_in % 2;
        if (reachable) {
          char value[32];
          std::snprintf(value, sizeof value, "%g", t);
          warnings_->push_back(f.label + ": its Sign can see exactly 0 (channel " + std::to_string(c) + "'s threshold " + value +
                               " is a value its dot product takes), where ONNX's Sign gives 0 and the chip +1; a batch "
                               "norm or bias before the Sign avoids it");
          return;
        }
      }
    }
  }

  static int position(const std::vector<int>& order, int layer) {
    return static_cast<int>(std::find(order.begin(), order.end(), layer) - order.begin());
  }

  const onnx::ModelProto& model_;
  ImportDropout dropout_;
  std::vector<std::string>* warnings_;
  std::unordered_map<std::string, Value> values_;
  std::unordered_map<std::string, std::string> values_used_extra_;
  std::map<int, std::string> unpooled_use_;
  std::vector<bool> consumed_;
  std::vector<Found> found_;
  std::vector<MapShape> maps_;
  MapShape input_;
  std::vector<double> mul_, add_;
  bool normalization_taken_ = false;
  std::int64_t computed_elements_ = 0;
};

}  // namespace

ModelIR import_onnx(const std::string& bytes, const std::string& origin, const ImportDropout& dropout,
                    std::vector<std::string>* warnings) {
  try {
    onnx::ModelProto model;
    if (bytes.size() > static_cast<std::size_t>(INT32_MAX) || !model.ParseFromArray(bytes.data(), static_cast<int>(bytes.size()))) {
      throw Error("not an ONNX model (the protobuf does not parse)");
    }
    if (!model.has_graph()) throw Error("not an ONNX model (no graph)");
    for (const auto& opset : model.opset_import()) {
      if ((opset.domain().empty() || opset.domain() == "ai.onnx") && (opset.version() < 7 || opset.version() > 18)) {
        throw Error("opset " + std::to_string(opset.version()) + " is not supported (7..18)");
      }
    }
    std::vector<std::string> found;
    ModelIR ir = Importer(model, dropout, warnings != nullptr ? &found : nullptr).run();
    for (const auto& w : found) warnings->push_back(origin + ": " + w);
    return ir;
  } catch (const Error& e) {
    throw Error(origin + ": " + e.what());
  }
}

ModelIR import_onnx_file(const std::filesystem::path& path, const ImportDropout& dropout, std::vector<std::string>* warnings) {
  std::error_code ec;
  if (std::filesystem::exists(path, ec) && !std::filesystem::is_regular_file(path, ec)) {
    throw Error(printable_head(path.string()) + ": not a regular file");
  }
  return import_onnx(read_file_bytes(path, std::uint64_t{1} << 30), printable_head(path.string()), dropout, warnings);
}

}  // namespace spinbayes
