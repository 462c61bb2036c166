#include "model/model_ir.h"

#include <zlib.h>

#include <bit>
#include <cmath>
#include <fstream>
#include <limits>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

#include "core/atomic_file.h"
#include "core/error.h"

namespace spinbayes {

static_assert(std::numeric_limits<float>::is_iec559, "the IR stores IEEE-754 binary32 floats");

FoldedThreshold fold_batch_norm(float mean, float var, float gamma, float beta, float eps, double shift) {
  constexpr double inf = std::numeric_limits<double>::infinity();
  FoldedThreshold t;
  const double offset = static_cast<double>(beta) + shift;
  if (gamma == 0.0f) {
    // BN(x) = beta for every x: always +1 (sign(0) = +1) or always -1.
    t.threshold = offset >= 0.0 ? -inf : inf;
    return t;
  }
  const double sd = std::sqrt(static_cast<double>(var) + static_cast<double>(eps));
  t.threshold = static_cast<double>(mean) - offset * sd / static_cast<double>(gamma);
  t.flip = gamma < 0.0f;  // dividing by a negative gamma turns >= into <=
  return t;
}

OutputAffine fold_output(float mean, float var, float gamma, float beta, float eps) {
  OutputAffine a;
  a.scale = static_cast<double>(gamma) / std::sqrt(static_cast<double>(var) + static_cast<double>(eps));
  a.bias = static_cast<double>(beta) - static_cast<double>(mean) * a.scale;
  return a;
}

namespace {

constexpr std::string_view kMagic = "SBIR";
constexpr std::size_t kHeaderBytes = 4 + 4 + 8;  // magic, version, payload length
constexpr std::size_t kChecksumBytes = 4;

bool same_shape(const LayerSpec& a, const LayerSpec& b) {
  return a.kind == b.kind && a.in_channels == b.in_channels && a.out_channels == b.out_channels &&
         a.kernel == b.kernel && a.stride == b.stride && a.padding == b.padding && a.in_h == b.in_h &&
         a.in_w == b.in_w && a.out_h == b.out_h && a.out_w == b.out_w && a.pool_after == b.pool_after &&
         a.real_input == b.real_input && a.output == b.output && a.dropout_before == b.dropout_before &&
         a.dropout_kind == b.dropout_kind && a.dropout_p == b.dropout_p &&
         a.source == b.source && a.shortcut == b.shortcut && a.shortcut_conv == b.shortcut_conv &&
         a.src_c == b.src_c && a.src_h == b.src_h && a.src_w == b.src_w;
}

// fan_in in 64 bits (LayerSpec::fan_in() is an int product).
std::int64_t fan_in_of(const LayerSpec& l) {
  return static_cast<std::int64_t>(l.in_channels) * l.kernel * l.kernel;
}

std::size_t row_bytes(std::int64_t fan_in) { return static_cast<std::size_t>((fan_in + 7) / 8); }

void check_bn_array(const std::vector<float>& values, const char* name, std::size_t out, std::size_t layer,
                    bool non_negative) {
  const std::string where = "layer " + std::to_string(layer) + ": " + name;
  if (values.size() != out) {
    throw Error(where + " has " + std::to_string(values.size()) + " entries, expected " + std::to_string(out));
  }
  for (std::size_t c = 0; c < out; ++c) {
    if (!std::isfinite(values[c])) throw Error(where + "[" + std::to_string(c) + "] is not finite");
    if (non_negative && values[c] < 0.0f) throw Error(where + "[" + std::to_string(c) + "] is negative");
  }
}

// Little-endian encoding, independent of the host's byte order.
void put_u32(std::string& out, std::uint32_t v) {
  for (int i = 0; i < 4; ++i) out.push_back(static_cast<char>((v >> (8 * i)) & 0xFFu));
}
void put_u64(std::string& out, std::uint64_t v) {
  for (int i = 0; i < 8; ++i) out.push_back(static_cast<char>((v >> (8 * i)) & 0xFFu));
}
void put_f32(std::string& out, float v) { put_u32(out, std::bit_cast<std::uint32_t>(v)); }

std::uint32_t get_u32(const unsigned char* p) {
  std::uint32_t v = 0;
  for (int i = 0; i < 4; ++i) v |= static_cast<std::uint32_t>(p[i]) << (8 * i);
  return v;
}
std::uint64_t get_u64(const unsigned char* p) {
  std::uint64_t v = 0;
  for (int i = 0; i < 8; ++i) v |= static_cast<std::uint64_t>(p[i]) << (8 * i);
  return v;
}
float get_f32(const unsigned char* p) { return std::bit_cast<float>(get_u32(p)); }

std::uint32_t crc_of(const unsigned char* data, std::size_t size) {
  return static_cast<std::uint32_t>(crc32_z(crc32_z(0L, Z_NULL, 0), data, size));
}

// Bounds-checked sequential reads over the payload; every count is checked against the bytes
// left before anything is allocated.
class PayloadReader {
 public:
  PayloadReader(const unsigned char* data, std::size_t size) : p_(data), end_(data + size) {}

  std::size_t remaining() const { return static_cast<std::size_t>(end_ - p_); }

  const unsigned char* take(std::size_t n, const std::string& what) {
    if (n > remaining()) {
      throw Error("corrupt payload: ends inside " + what + " (needs " + std::to_string(n) + " bytes, " +
                  std::to_string(remaining()) + " left)");
    }
    const unsigned char* at = p_;
    p_ += n;
    return at;
  }
  std::uint32_t u32(const std::string& what) { return get_u32(take(4, what)); }

 private:
  const unsigned char* p_;
  const unsigned char* end_;
};

ModelSpec parse_spec(std::string_view text) {
  try {
    return nlohmann::json::parse(text).get<ModelSpec>();
  } catch (const nlohmann::json::exception& e) {
    // nlohmann's messages are one line, but may quote the input: keep only printable ASCII.
    std::string what = std::string(e.what()).substr(0, 160);
    for (char& c : what) {
      if (c < 0x20 || c > 0x7e) c = '?';
    }
    throw Error("corrupt model spec JSON (" + what + ")");
  } catch (const Error& e) {
    throw Error(std::string("corrupt model spec: ") + e.what());
  }
}

ModelIR parse_payload(const unsigned char* data, std::size_t size) {
  PayloadReader in(data, size);
  ModelIR ir;
  const std::uint32_t json_bytes = in.u32("the spec length");
  const auto* json = in.take(json_bytes, "the spec JSON");
  ir.spec = parse_spec(std::string_view(reinterpret_cast<const char*>(json), json_bytes));

  const std::vector<LayerSpec> expected = build_layers(ir.spec);
  for (std::size_t i = 0; i < expected.size(); ++i) {
    const LayerSpec& l = expected[i];
    const std::string name = "layer " + std::to_string(i);
    const std::int64_t out = in.u32(name + " shape");
    const std::int64_t fan_in = in.u32(name + " shape");
    if (out != l.out_channels || fan_in != fan_in_of(l)) {
      throw Error(name + ": stored shape " + std::to_string(out) + " x " + std::to_string(fan_in) +
                  " does not match the spec's " + std::to_string(l.out_channels) + " x " +
                  std::to_string(fan_in_of(l)));
    }
    // out and fan_in are now bounded by the spec and fit in 32 bits, so these products cannot overflow.
    const std::size_t rows = static_cast<std::size_t>(out), cols = static_cast<std::size_t>(fan_in);
    const std::size_t stride = row_bytes(fan_in);
    const auto* bits = in.take(rows * stride, name + " weights");
    const auto* bn = in.take(rows * 16, name + " batch norm");
    const auto* eps = in.take(4, name + " batch-norm eps");

    BinaryLayerIR layer;
    layer.shape = l;
    layer.weights.resize(rows * cols);
    for (std::size_t r = 0; r < rows; ++r) {
      const unsigned char* row = bits + r * stride;
      for (std::size_t c = 0; c < cols; ++c) {
        layer.weights[r * cols + c] = ((row[c / 8] >> (c % 8)) & 1u) != 0 ? 1 : -1;
      }
      // Padding bits past fan_in in the last byte of a row must be zero.
      if (cols % 8 != 0 && (row[stride - 1] >> (cols % 8)) != 0) {
        throw Error(name + ": padding bits of weight row " + std::to_string(r) + " are set");
      }
    }
    layer.bn_mean.resize(rows);
    layer.bn_var.resize(rows);
    layer.bn_gamma.resize(rows);
    layer.bn_beta.resize(rows);
    for (std::size_t c = 0; c < rows; ++c) {
      const unsigned char* p = bn + c * 16;
      layer.bn_mean[c] = get_f32(p);
      layer.bn_var[c] = get_f32(p + 4);
      layer.bn_gamma[c] = get_f32(p + 8);
      layer.bn_beta[c] = get_f32(p + 12);
    }
    layer.bn_eps = get_f32(eps);
    ir.layers.push_back(std::move(layer));
  }
  if (in.remaining() != 0) {
    throw Error("corrupt payload: " + std::to_string(in.remaining()) + " unexpected bytes after the last layer");
  }
  return ir;
}

}  // namespace

void ModelIR::validate() const {
  const std::vector<LayerSpec> expected = build_layers(spec);  // validates the spec itself
  if (layers.size() != expected.size()) {
    throw Error("model IR has " + std::to_string(layers.size()) + " layers, the spec (" + spec.architecture +
                ") has " + std::to_string(expected.size()));
  }
  for (std::size_t i = 0; i < layers.size(); ++i) {
    const BinaryLayerIR& l = layers[i];
    const std::string name = "layer " + std::to_string(i);
    if (!same_shape(l.shape, expected[i])) throw Error(name + ": shape does not match the spec");
    const auto out = static_cast<std::size_t>(expected[i].out_channels);
    const auto fan_in = static_cast<std::size_t>(fan_in_of(expected[i]));
    if (l.weights.size() != out * fan_in) {
      throw Error(name + ": " + std::to_string(l.weights.size()) + " weights, expected " +
                  std::to_string(out) + " x " + std::to_string(fan_in));
    }
    for (std::size_t k = 0; k < l.weights.size(); ++k) {
      if (l.weights[k] != 1 && l.weights[k] != -1) {
        throw Error(name + ": weight " + std::to_string(k) + " is " + std::to_string(l.weights[k]) +
                    ", not +1 or -1");
      }
    }
    check_bn_array(l.bn_mean, "bn_mean", out, i, false);
    check_bn_array(l.bn_var, "bn_var", out, i, true);
    check_bn_array(l.bn_gamma, "bn_gamma", out, i, false);
    check_bn_array(l.bn_beta, "bn_beta", out, i, false);
    if (!(std::isfinite(l.bn_eps) && l.bn_eps > 0.0f)) throw Error(name + ": bn_eps must be finite and positive");
  }
}

void save_model_ir(const ModelIR& ir, const std::filesystem::path& path) {
  try {
    ir.validate();
  } catch (const Error& e) {
    throw Error(path.string() + ": " + e.what());
  }
  std::string payload;
  const std::string json = nlohmann::json(ir.spec).dump();
  put_u32(payload, static_cast<std::uint32_t>(json.size()));
  payload += json;
  for (const BinaryLayerIR& l : ir.layers) {
    const auto out = static_cast<std::size_t>(l.shape.out_channels);
    const auto fan_in = static_cast<std::size_t>(fan_in_of(l.shape));
    put_u32(payload, static_cast<std::uint32_t>(out));
    put_u32(payload, static_cast<std::uint32_t>(fan_in));
    // Bit c of a row is bit (c % 8) of byte c / 8, least significant first; padding bits stay 0.
    const std::size_t stride = row_bytes(static_cast<std::int64_t>(fan_in));
    std::string bits(out * stride, '\0');
    for (std::size_t r = 0; r < out; ++r) {
      for (std::size_t c = 0; c < fan_in; ++c) {
        if (l.weights[r * fan_in + c] > 0) bits[r * stride + c / 8] |= static_cast<char>(1u << (c % 8));
      }
    }
    payload += bits;
    for (std::size_t c = 0; c < out; ++c) {
      put_f32(payload, l.bn_mean[c]);
      put_f32(payload, l.bn_var[c]);
      put_f32(payload, l.bn_gamma[c]);
      put_f32(payload, l.bn_beta[c]);
    }
    put_f32(payload, l.bn_eps);
  }

  std::string file(kMagic);
  put_u32(file, ModelIR::kVersion);
  put_u64(file, payload.size());
  file += payload;
  put_u32(file, crc_of(reinterpret_cast<const unsigned char*>(payload.data()), payload.size()));
  write_file_atomic(path, file);
}

ModelIR load_model_ir(const std::filesystem::path& path) {
  const std::string prefix = path.string() + ": ";
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) throw Error(prefix + "not found");
  if (!std::filesystem::is_regular_file(path, ec)) throw Error(prefix + "not a regular file");
  std::ifstream file(path, std::ios::binary);
  if (!file) throw Error(prefix + "cannot open for reading");

  // The header first, so a large file of another kind is rejected without reading it all.
  std::string header(kHeaderBytes, '\0');
  file.read(header.data(), static_cast<std::streamsize>(header.size()));
  header.resize(static_cast<std::size_t>(file.gcount()));
  if (header.empty()) throw Error(prefix + "empty file (not a spinbayes model IR file)");
  if (kMagic.substr(0, header.size()) != std::string_view(header).substr(0, kMagic.size())) {
    throw Error(prefix + "not a spinbayes model IR file");
  }
  if (header.size() < kHeaderBytes) {
    throw Error(prefix + "truncated (" + std::to_string(header.size()) + " bytes, shorter than the " +
                std::to_string(kHeaderBytes) + "-byte header)");
  }
  const auto* h = reinterpret_cast<const unsigned char*>(header.data());
  const std::uint32_t version = get_u32(h + 4);
  // Version 1 held zoo networks only, whose graph its spec's architecture names: it reads the same.
  if (version != ModelIR::kVersion && version != 1) {
    throw Error(prefix + "unsupported model IR version " + std::to_string(version) + " (this build reads versions 1 and " +
                std::to_string(ModelIR::kVersion) + "; re-export it with 'spinbayes export --model RUN_DIR')");
  }
  const std::uint64_t payload_size = get_u64(h + 8);

  const auto file_size = static_cast<std::uint64_t>(std::filesystem::file_size(path, ec));
  if (ec) throw Error(prefix + "cannot determine the file size");
  const std::uint64_t room = file_size < kHeaderBytes + kChecksumBytes ? 0 : file_size - kHeaderBytes - kChecksumBytes;
  if (file_size < kHeaderBytes + kChecksumBytes || payload_size > room) {
    throw Error(prefix + "truncated (" + std::to_string(file_size) + " bytes, the header announces a " +
                std::to_string(payload_size) + "-byte payload)");
  }
  if (payload_size < room) {
    throw Error(prefix + std::to_string(room - payload_size) + " trailing bytes after the checksum");
  }

  std::string body(static_cast<std::size_t>(payload_size) + kChecksumBytes, '\0');
  file.read(body.data(), static_cast<std::streamsize>(body.size()));
  if (static_cast<std::size_t>(file.gcount()) != body.size()) throw Error(prefix + "read failed (file changed?)");
  const auto* payload = reinterpret_cast<const unsigned char*>(body.data());
  if (crc_of(payload, static_cast<std::size_t>(payload_size)) != get_u32(payload + payload_size)) {
    throw Error(prefix + "checksum mismatch (file corrupt)");
  }

  try {
    ModelIR ir = parse_payload(payload, static_cast<std::size_t>(payload_size));
    ir.validate();
    return ir;
  } catch (const Error& e) {
    throw Error(prefix + e.what());
  }
}

}  // namespace spinbayes
