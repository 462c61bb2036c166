#include "model/model_spec.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <nlohmann/json.hpp>
#include <type_traits>

#include "core/error.h"
#include "core/text.h"

namespace spinbayes {

DropoutKind parse_dropout_kind(const std::string& name) {
  if (name == "none") return DropoutKind::none;
  if (name == "element") return DropoutKind::element;
  if (name == "spatial") return DropoutKind::spatial;
  throw Error("dropout: unknown kind '" + printable(name) + "' (known: none, element, spatial)");
}

std::string to_string(DropoutKind kind) {
  switch (kind) {
    case DropoutKind::none: return "none";
    case DropoutKind::element: return "element";
    case DropoutKind::spatial: return "spatial";
    case DropoutKind::layer: return "layer";
  }
  return "none";
}

std::vector<std::string> architecture_names() { return {"mlp", "lenet", "vgg-small"}; }

int default_width(const std::string& architecture) {
  if (architecture == "mlp") return 512;  // hidden units
  if (architecture == "lenet") return 32;  // channels of the first conv
  return 32;                                // vgg-small: channels of the first stage
}

namespace {

bool digits_only(const std::string& text) {
  return !text.empty() && text.size() < 6 && std::all_of(text.begin(), text.end(), [](char c) { return c >= '0' && c <= '9'; });
}

}  // namespace

void parse_input_shape(const std::string& text, ModelSpec& spec, const std::string& field) {
  const std::vector<std::string> parts = split_fields(text, 'x');
  int dims[3] = {0, 0, 0};
  if (parts.size() == 3 && std::all_of(parts.begin(), parts.end(), digits_only)) {
    for (int d = 0; d < 3; ++d) dims[d] = std::stoi(parts[static_cast<std::size_t>(d)]);
  }
  if (dims[0] < 1 || dims[1] < 1 || dims[2] < 1) {
    throw Error(field + ": expected CxHxW (channels x height x width, such as 3x32x32), got '" + printable(text) + "'");
  }
  spec.channels = dims[0];
  spec.height = dims[1];
  spec.width_px = dims[2];
  spec.input_mean.assign(static_cast<std::size_t>(std::min(dims[0], 64)), 0.0f);
  spec.input_std.assign(static_cast<std::size_t>(std::min(dims[0], 64)), 1.0f);
}

int ModelSpec::effective_width() const { return width > 0 ? width : default_width(architecture); }

namespace {

// The dropout sites a spec names: "all" (every binary layer but the first), "last:N" (the last N
// binary layers, the first excepted), or "i,j,k" (those layers, 1-based as the cost table numbers
// them, each at most once; the first layer sees the image and takes none). With `count` > 0 the
// sites as one flag per layer, checked against the network; with 0 only the text is checked.
std::vector<bool> dropout_sites(const std::string& text, int count) {
  const std::string expected = "dropout-layers: expected 'all', 'last:N' with N >= 1 or layer numbers 'i,j,k' (2 and up), got '" +
                               printable(text) + "'";
  std::vector<bool> sites(static_cast<std::size_t>(std::max(count, 0)), false);
  if (text == "all") {
    for (int i = 1; i < count; ++i) sites[static_cast<std::size_t>(i)] = true;
    return sites;
  }
  if (text.rfind("last:", 0) == 0) {
    const std::string digits = text.substr(5);
    if (!digits_only(digits) || std::stoi(digits) < 1) throw Error(expected);
    for (int i = std::max(1, count - std::stoi(digits)); i < count; ++i) sites[static_cast<std::size_t>(i)] = true;
    return sites;
  }
  std::vector<int> layers;
  for (const std::string& part : split_fields(text)) {
    if (!digits_only(part)) throw Error(expected);
    const int layer = std::stoi(part);
    if (layer < 2) throw Error("dropout-layers: layer " + std::to_string(layer) + " cannot take dropout (layer 1 sees the image; layers count from 1)");
    if (std::find(layers.begin(), layers.end(), layer) != layers.end()) {
      throw Error("dropout-layers: layer " + std::to_string(layer) + " is given twice");
    }
    if (layers.size() >= 1000) throw Error(expected);
    layers.push_back(layer);
  }
  for (const int layer : layers) {
    if (count > 0 && layer > count) {
      throw Error("dropout-layers: layer " + std::to_string(layer) + " is past the network's " + std::to_string(count) + " layers");
    }
    if (count > 0) sites[static_cast<std::size_t>(layer - 1)] = true;
  }
  return sites;
}

}  // namespace

void ModelSpec::validate() const {
  const auto names = architecture_names();
  if (std::find(names.begin(), names.end(), architecture) == names.end()) {
    throw Error("model: unknown architecture '" + printable(architecture) + "' (known: mlp, lenet, vgg-small)");
  }
  if (width < 0 || width > 4096) throw Error("width: must be in 1..4096 (0 = default), got " + std::to_string(width));
  if (!(p >= 0.0 && p < 1.0)) throw Error("p: dropout probability must be in [0, 1), got " + std::to_string(p));
  if (dropout == DropoutKind::layer) throw Error("dropout: 'layer' is a cost-model scheme, not one a model trains with");
  dropout_sites(dropout_layers, 0);
  if (channels < 1 || channels > 64 || height < 8 || height > 1024 || width_px < 8 || width_px > 1024 ||
      classes < 2 || classes > 10000) {
    throw Error("input shape: need channels in 1..64, height and width in 8..1024, classes in 2..10000");
  }
  if (input_mean.size() != static_cast<std::size_t>(channels) || input_std.size() != input_mean.size()) {
    throw Error("input_mean, input_std: need one value per input channel (" + std::to_string(channels) + ")");
  }
  for (std::size_t c = 0; c < input_mean.size(); ++c) {
    if (!std::isfinite(input_mean[c])) throw Error("input_mean: must be finite");
    if (!(input_std[c] > 0.0f && std::isfinite(input_std[c]))) throw Error("input_std: must be finite and positive");
  }
}

void ModelSpec::check_input(const std::string& name, int c, int h, int w) const {
  if (c != channels || h != height || w != width_px) {
    throw Error(name + ": image shape " + std::to_string(c) + "x" + std::to_string(h) + "x" + std::to_string(w) +
                " does not match the model's input " + std::to_string(channels) + "x" + std::to_string(height) +
                "x" + std::to_string(width_px));
  }
}

std::int64_t LayerSpec::macs() const {
  return static_cast<std::int64_t>(out_h) * out_w * out_channels * in_channels * kernel * kernel;
}

std::vector<LayerSpec> build_layers(const ModelSpec& spec) {
  spec.validate();
  const int w = spec.effective_width();
  std::vector<LayerSpec> layers;
  int c = spec.channels, h = spec.height, wd = spec.width_px;

  auto conv = [&](int out, int k, int pad, bool pool) {
    LayerSpec l;
    l.kind = LayerSpec::Kind::conv;
    l.in_channels = c;
    l.out_channels = out;
    l.kernel = k;
    l.padding = pad;
    l.in_h = h;
    l.in_w = wd;
    l.out_h = h + 2 * pad - k + 1;
    l.out_w = wd + 2 * pad - k + 1;
    if (l.out_h < 1 || l.out_w < 1 || (pool && (l.out_h < 2 || l.out_w < 2))) {
      throw Error("input shape: " + std::to_string(spec.height) + "x" + std::to_string(spec.width_px) +
                  " is too small for " + spec.architecture);
    }
    l.pool_after = pool;
    layers.push_back(l);
    c = out;
    h = l.pooled_h();
    wd = l.pooled_w();
  };
  auto linear = [&](int out) {
    LayerSpec l;
    l.kind = LayerSpec::Kind::linear;
    l.in_channels = c * h * wd;  // flattened input
    l.out_channels = out;
    layers.push_back(l);
    c = out;
    h = wd = 1;
  };

  if (spec.architecture == "mlp") {
    linear(w);
    linear(w);
    linear(spec.classes);
  } else if (spec.architecture == "lenet") {
    conv(w, 5, 0, true);
    conv(2 * w, 5, 0, true);
    linear(16 * w);
    linear(spec.classes);
  } else {  // vgg-small: three stages of two 3x3 convs and a max-pool, then a linear classifier
    for (int stage = 0; stage < 3; ++stage) {
      conv(w << stage, 3, 1, false);
      conv(w << stage, 3, 1, true);
    }
    linear(spec.classes);
  }
  layers.front().real_input = true;
  layers.back().output = true;

  if (spec.dropout != DropoutKind::none) {
    const std::vector<bool> sites = dropout_sites(spec.dropout_layers, static_cast<int>(layers.size()));
    // Dropout acts on binary inputs, so never on the first layer, whose input is the image.
    for (std::size_t i = 1; i < layers.size(); ++i) layers[i].dropout_before = sites[i];
  }
  return layers;
}

void to_json(nlohmann::json& j, const ModelSpec& s) {
  j = nlohmann::json{{"architecture", s.architecture}, {"width", s.effective_width()},
                     {"dropout", to_string(s.dropout)}, {"p", s.p},
                     {"dropout_layers", s.dropout_layers}, {"channels", s.channels},
                     {"height", s.height}, {"width_px", s.width_px}, {"classes", s.classes},
                     {"input_mean", s.input_mean}, {"input_std", s.input_std}};
}

void from_json(const nlohmann::json& j, ModelSpec& s) {
  auto get = [&](const char* key, auto& value) {
    if (!j.contains(key)) throw Error(std::string("model spec: missing key '") + key + "'");
    using T = std::decay_t<decltype(value)>;
    const nlohmann::json& v = j.at(key);
    // The JSON library converts numbers with a plain cast: a float into an int field, or a value
    // outside the field's range, would be undefined behaviour.
    if constexpr (std::is_same_v<T, int>) {
      if (!v.is_number_integer()) {
        throw Error(std::string("model spec: key '") + key + "' has the wrong type (expected an integer)");
      }
      const bool fits = v.is_number_unsigned() ? v.get<std::uint64_t>() <= std::numeric_limits<int>::max()
                                               : v.get<std::int64_t>() >= std::numeric_limits<int>::min() &&
                                                     v.get<std::int64_t>() <= std::numeric_limits<int>::max();
      if (!fits) throw Error(std::string("model spec: key '") + key + "' is out of range");
    } else if constexpr (std::is_same_v<T, float>) {
      if (v.is_number() && !(std::abs(v.get<double>()) <= std::numeric_limits<float>::max())) {
        throw Error(std::string("model spec: key '") + key + "' is out of range");
      }
    }
    try {
      j.at(key).get_to(value);
    } catch (const nlohmann::json::exception&) {
      throw Error(std::string("model spec: key '") + key + "' has the wrong type");
    }
  };
  std::string dropout;
  get("architecture", s.architecture);
  get("width", s.width);
  get("dropout", dropout);
  s.dropout = parse_dropout_kind(dropout);
  get("p", s.p);
  get("dropout_layers", s.dropout_layers);
  get("channels", s.channels);
  get("height", s.height);
  get("width_px", s.width_px);
  get("classes", s.classes);
  // One number (files from before per-channel normalization: the same for every channel) or an
  // array of one per channel.
  const auto per_channel = [&](const char* key, std::vector<float>& values) {
    if (!j.contains(key)) throw Error(std::string("model spec: missing key '") + key + "'");
    const nlohmann::json& v = j.at(key);
    if (v.is_number()) {
      float one = 0.0f;
      get(key, one);
      values.assign(static_cast<std::size_t>(std::clamp(s.channels, 1, 64)), one);
      return;
    }
    if (!v.is_array() || v.empty() || v.size() > 64) {
      throw Error(std::string("model spec: key '") + key + "' has the wrong type (expected a number or 1..64 numbers)");
    }
    values.clear();
    for (const auto& e : v) {
      if (!e.is_number()) throw Error(std::string("model spec: key '") + key + "' has the wrong type");
      if (!(std::abs(e.get<double>()) <= std::numeric_limits<float>::max())) {
        throw Error(std::string("model spec: key '") + key + "' is out of range");
      }
      values.push_back(e.get<float>());
    }
  };
  per_channel("input_mean", s.input_mean);
  per_channel("input_std", s.input_std);
  s.validate();
}

}  // namespace spinbayes
