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
  throw Error("dropout: unknown kind '" + printable_head(name) + "' (known: none, element, spatial)");
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

std::vector<std::string> architecture_names() { return {"mlp", "lenet", "vgg-small", "resnet20", "resnet18"}; }

int default_width(const std::string& architecture) {
  if (architecture == "mlp") return 512;      // hidden units
  if (architecture == "lenet") return 32;     // channels of the first conv
  if (architecture == "resnet20") return 16;  // channels of the stem and the first stage
  if (architecture == "resnet18") return 64;
  if (architecture == "custom") return 0;     // the network file gives every size
  return 32;                                  // vgg-small: channels of the first stage
}

void apply_network_file(const NetworkFile& file, ModelSpec& spec) {
  spec.architecture = "custom";
  spec.network = file.layers;
  spec.width = 0;
  spec.channels = file.channels;
  spec.height = file.height;
  spec.width_px = file.width;
  spec.classes = file.classes;
  spec.input_mean.assign(static_cast<std::size_t>(std::clamp(file.channels, 1, 64)), 0.0f);
  spec.input_std.assign(static_cast<std::size_t>(std::clamp(file.channels, 1, 64)), 1.0f);
}

std::vector<NetLayer> spec_network(const ModelSpec& spec) {
  if (spec.architecture == "custom") return spec.network;
  return zoo_network(spec.architecture, spec.effective_width(), spec.classes);
}

std::string network_description(const std::string& architecture, int width, int channels, int height, int width_px,
                                int classes) {
  if (architecture == "custom")
    return "custom network (" + std::to_string(channels) + "x" + std::to_string(height) + "x" +
           std::to_string(width_px) + " in, " + std::to_string(classes) + " classes)";
  return architecture + " width " + std::to_string(width);
}

std::string network_description(const ModelSpec& spec) {
  return network_description(spec.architecture, spec.effective_width(), spec.channels, spec.height, spec.width_px,
                             spec.classes);
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
    throw Error(field + ": expected CxHxW (channels x height x width, such as 3x32x32), got '" + printable_head(text) + "'");
  }
  spec.channels = dims[0];
  spec.height = dims[1];
  spec.width_px = dims[2];
  spec.input_mean.assign(static_cast<std::size_t>(std::min(dims[0], 64)), 0.0f);
  spec.input_std.assign(static_cast<std::size_t>(std::min(dims[0], 64)), 1.0f);
}

int ModelSpec::effective_width() const { return width > 0 ? width : default_width(architecture); }

bool ModelSpec::has_dropout() const {
  if (first_own_dropout(network).empty()) return dropout != DropoutKind::none && p > 0.0;
  const std::vector<LayerSpec> layers = build_layers(*this);
  return std::any_of(layers.begin(), layers.end(), [](const LayerSpec& l) { return l.dropout_before; });
}

namespace {

// The dropout sites a spec names: "all" (every binary layer but the first and the residual
// blocks' shortcut convolutions), "last:N" (the last N of those), or "i,j,k" (those layers,
// 1-based as the cost table numbers them, each at most once, shortcut convolutions included; the
// first layer sees the image and takes none). With `layers` the sites as one flag per layer,
// checked against the network; without only the text is checked.
std::vector<bool> dropout_sites(const std::string& text, const std::vector<LayerSpec>* layers) {
  const int count = layers != nullptr ? static_cast<int>(layers->size()) : 0;
  auto eligible = [&](int i) { return i >= 1 && !(*layers)[static_cast<std::size_t>(i)].shortcut_conv; };
  const std::string expected = "dropout-layers: expected 'all', 'last:N' with N >= 1 or layer numbers 'i,j,k' (2 and up), got '" +
                               printable_head(text) + "'";
  std::vector<bool> sites(static_cast<std::size_t>(std::max(count, 0)), false);
  if (text == "all") {
    for (int i = 1; i < count; ++i) sites[static_cast<std::size_t>(i)] = eligible(i);
    return sites;
  }
  if (text.rfind("last:", 0) == 0) {
    const std::string digits = text.substr(5);
    if (!digits_only(digits) || std::stoi(digits) < 1) throw Error(expected);
    int left = std::stoi(digits);
    for (int i = count - 1; i >= 1 && left > 0; --i) {
      if (eligible(i)) {
        sites[static_cast<std::size_t>(i)] = true;
        --left;
      }
    }
    return sites;
  }
  std::vector<int> numbers;
  for (const std::string& part : split_fields(text)) {
    if (!digits_only(part)) throw Error(expected);
    const int layer = std::stoi(part);
    if (layer < 2) throw Error("dropout-layers: layer " + std::to_string(layer) + " cannot take dropout (layer 1 sees the image; layers count from 1)");
    if (std::find(numbers.begin(), numbers.end(), layer) != numbers.end()) {
      throw Error("dropout-layers: layer " + std::to_string(layer) + " is given twice");
    }
    if (numbers.size() >= 1000) throw Error(expected);
    numbers.push_back(layer);
  }
  for (const int layer : numbers) {
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
    if (architecture != "custom") {
      throw Error("model: unknown architecture '" + printable_head(architecture) +
                  "' (known: mlp, lenet, vgg-small, resnet20, resnet18, or a network file)");
    }
  }
  if ((architecture == "custom") == network.empty()) {
    throw Error(architecture == "custom" ? "network: a custom model needs its layers" : "network: only a custom model lists its layers");
  }
  if (width < 0 || width > 4096) throw Error("width: must be in 1..4096 (0 = default), got " + std::to_string(width));
  if (!(p >= 0.0 && p < 1.0)) throw Error("p: dropout probability must be in [0, 1), got " + std::to_string(p));
  if (dropout == DropoutKind::layer) throw Error("dropout: 'layer' is a cost-model scheme, not one a model trains with");
  dropout_sites(dropout_layers, nullptr);
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

namespace {

struct MapShape {
  int c = 0, h = 0, w = 0;
  std::string text() const { return std::to_string(c) + "x" + std::to_string(h) + "x" + std::to_string(w); }
  bool operator==(const MapShape&) const = default;
};

// Expands a network into binary layers, tracking the shape of every map.
class Expansion {
 public:
  explicit Expansion(const ModelSpec& spec) : maps_{{spec.channels, spec.height, spec.width_px}} {}

  void add(const NetLayer& nl, const std::string& where) {
    switch (nl.kind) {
      case NetLayer::Kind::conv: current_ = conv(nl, current_, where); break;
      case NetLayer::Kind::linear: linear(nl, where); break;
      case NetLayer::Kind::maxpool: pool(where); break;
      case NetLayer::Kind::flatten:
        if (flat_) throw Error(where + " (flatten): the map is flat already");
        flat_ = true;
        break;
      case NetLayer::Kind::residual: residual(nl, where); break;
    }
  }
  std::vector<LayerSpec> finish(const ModelSpec& spec, const NetLayer& last, const std::string& where) {
    if (last.kind != NetLayer::Kind::linear || last.out != spec.classes) {
      throw Error(where + ": the last layer must be a linear layer with one output per class (" +
                  std::to_string(spec.classes) + ")");
    }
    if (layers_.size() < 2) throw Error(where + ": a network needs at least two binary layers (the first sees the image)");
    layers_.front().real_input = true;
    layers_.back().output = true;
    return std::move(layers_);
  }

 public:
  // Each binary layer's own dropout site, where the network file gives one, and the layer as
  // errors name it ("layer 3 (conv)").
  const std::vector<std::optional<SiteDropout>>& own_dropout() const { return own_dropout_; }
  const std::vector<std::string>& names() const { return names_; }

 private:
  int conv(const NetLayer& nl, int source, const std::string& where) {
    if (flat_) throw Error(where + " (conv): a convolution cannot follow a flatten");
    const MapShape in = maps_[static_cast<std::size_t>(source)];
    LayerSpec l;
    l.kind = LayerSpec::Kind::conv;
    l.in_channels = in.c;
    l.out_channels = nl.out;
    l.kernel = nl.kernel;
    l.stride = nl.stride;
    l.padding = nl.padding;
    l.in_h = in.h;
    l.in_w = in.w;
    if (in.h + 2 * nl.padding < nl.kernel || in.w + 2 * nl.padding < nl.kernel) {
      throw Error(where + " (conv): a " + std::to_string(nl.kernel) + "x" + std::to_string(nl.kernel) +
                  " kernel does not fit the " + in.text() + " map");
    }
    l.out_h = (in.h + 2 * nl.padding - nl.kernel) / nl.stride + 1;
    l.out_w = (in.w + 2 * nl.padding - nl.kernel) / nl.stride + 1;
    return push(l, nl, source, {nl.out, l.out_h, l.out_w}, where);
  }
  void linear(const NetLayer& nl, const std::string& where) {
    const MapShape in = maps_[static_cast<std::size_t>(current_)];
    if (!flat_) throw Error(where + " (linear): needs a flatten before it");
    // The engine runs a linear layer as a convolution whose kernel covers the map.
    if (in.h != in.w) throw Error(where + " (linear): flattens a non-square " + in.text() + " map, which the engine does not run");
    LayerSpec l;
    l.kind = LayerSpec::Kind::linear;
    l.in_channels = in.c * in.h * in.w;
    l.out_channels = nl.out;
    current_ = push(l, nl, current_, {nl.out, 1, 1}, where);
  }
  void pool(const std::string& where) {
    if (current_ == 0 || layers_.empty() || current_ != static_cast<int>(layers_.size()) || flat_) {
      throw Error(where + " (maxpool): must follow a convolution or a residual block");
    }
    LayerSpec& l = layers_.back();
    if (l.pool_after) throw Error(where + " (maxpool): the map is pooled already");
    if (l.out_h < 2 || l.out_w < 2) {
      throw Error(where + " (maxpool): pools the " + maps_.back().text() + " map below 1x1");
    }
    l.pool_after = true;
    maps_.back() = {l.out_channels, l.pooled_h(), l.pooled_w()};
  }
  void residual(const NetLayer& nl, const std::string& where) {
    if (current_ == 0) throw Error(where + " (residual): needs a binary input (put a convolution before the first block)");
    if (flat_) throw Error(where + " (residual): a residual block cannot follow a flatten");
    const int input = current_;
    int shortcut = input;
    if (nl.downsample) {
      int stride = 1;
      for (const NetLayer& b : nl.branch) {
        stride *= b.stride;  // each stride is at most 8: no overflow before the check
        if (stride > 8) throw Error(where + " (residual): the branch's total stride is over 8");
      }
      NetLayer one;
      one.out = nl.branch.back().out;
      one.stride = stride;
      shortcut = conv(one, input, where + " shortcut");
      layers_.back().shortcut_conv = true;
    }
    int at = input;
    for (std::size_t m = 0; m < nl.branch.size(); ++m) at = conv(nl.branch[m], at, where + "." + std::to_string(m + 1));
    const MapShape branch = maps_[static_cast<std::size_t>(at)], bypass = maps_[static_cast<std::size_t>(shortcut)];
    if (!(branch == bypass)) {
      throw Error(where + " (residual): the branch gives a " + branch.text() + " map, the " +
                  (nl.downsample ? "downsampling" : "identity") + " shortcut " + bypass.text());
    }
    layers_.back().shortcut = shortcut;
    current_ = at;
  }
  int push(LayerSpec& l, const NetLayer& nl, int source, MapShape out, const std::string& where) {
    const MapShape in = maps_[static_cast<std::size_t>(source)];
    if (layers_.empty() && nl.dropout) {
      throw Error(where + (l.kind == LayerSpec::Kind::conv ? " (conv)" : " (linear)") +
                  ": dropout: the first layer sees the image and takes none");
    }
    l.source = source;
    l.src_c = in.c;
    l.src_h = in.h;
    l.src_w = in.w;
    const std::string kind = l.kind == LayerSpec::Kind::conv ? " (conv)" : " (linear)";
    const std::int64_t fan_in = static_cast<std::int64_t>(l.in_channels) * l.kernel * l.kernel;
    if (fan_in > (std::int64_t{1} << 24) || static_cast<std::int64_t>(out.c) * out.h * out.w > (std::int64_t{1} << 26)) {
      throw Error(where + kind + ": the layer is too large (fan-in " + std::to_string(fan_in) + " over 2^24, or an output map over 2^26 values)");
    }
    // Training holds each weight with its gradient and optimizer state in float.
    weights_ += fan_in * l.out_channels;
    if (weights_ > kMaxWeights) {
      throw Error(where + kind + ": the network would hold " + std::to_string(weights_) + " weights, more than " +
                  std::to_string(kMaxWeights));
    }
    if (layers_.size() >= 1000) throw Error(where + kind + ": more than 1000 binary layers");
    layers_.push_back(l);
    own_dropout_.push_back(nl.dropout);
    names_.push_back(where + kind);
    maps_.push_back(out);
    return static_cast<int>(maps_.size()) - 1;
  }

  static constexpr std::int64_t kMaxWeights = std::int64_t{1} << 28;
  std::vector<MapShape> maps_;
  std::vector<LayerSpec> layers_;
  std::vector<std::optional<SiteDropout>> own_dropout_;
  std::vector<std::string> names_;
  std::int64_t weights_ = 0;
  int current_ = 0;
  bool flat_ = false;
};

}  // namespace

std::vector<LayerSpec> build_layers(const ModelSpec& spec) {
  spec.validate();
  const std::vector<NetLayer> network = spec_network(spec);
  Expansion expansion(spec);
  std::string where;
  for (std::size_t i = 0; i < network.size(); ++i) {
    where = "layer " + std::to_string(i + 1);
    if (i == 0 && network[i].kind == NetLayer::Kind::maxpool) throw Error(where + " (maxpool): must follow a binary layer");
    expansion.add(network[i], where);
  }
  std::vector<LayerSpec> layers = expansion.finish(spec, network.back(), where);
  const std::vector<bool> sites = spec.dropout != DropoutKind::none ? dropout_sites(spec.dropout_layers, &layers)
                                                                     : std::vector<bool>(layers.size(), false);
  // Dropout acts on binary inputs, so never on the first layer, whose input is the image. A
  // layer's own site (a network file's) replaces the model's kind, rate and choice of sites.
  for (std::size_t i = 1; i < layers.size(); ++i) {
    SiteDropout site{sites[i] ? spec.dropout : DropoutKind::none, spec.p};
    if (const auto& own = expansion.own_dropout()[i]) {
      if (own->kind != DropoutKind::none && own->p == 0.0 && !(spec.p > 0.0))
        throw Error(expansion.names()[i] + ": dropout: no p given, and the model's p is 0; give the layer its p");
      site = {own->kind, own->p > 0.0 ? own->p : spec.p};
    }
    LayerSpec& l = layers[i];
    l.dropout_before = site.kind != DropoutKind::none && site.p > 0.0;
    l.dropout_kind = l.dropout_before ? site.kind : DropoutKind::none;
    l.dropout_p = l.dropout_before ? site.p : 0.0;
  }
  return layers;
}

int prefix_end(const std::vector<LayerSpec>& layers) {
  const int count = static_cast<int>(layers.size());
  int end = count - 1;  // the output layer always runs per sample
  for (int i = 0; i < count; ++i) {
    if (layers[static_cast<std::size_t>(i)].dropout_before) {
      end = i;
      break;
    }
  }
  // Map k is layer k - 1's output: the cut before layer k is clean when no layer from k on reads
  // a map older than k. Map 1 (the first layer's) always qualifies.
  auto clean = [&](int k) {
    for (int i = k; i < count; ++i) {
      const LayerSpec& l = layers[static_cast<std::size_t>(i)];
      if (l.source < k || (l.shortcut >= 0 && l.shortcut < k)) return false;
    }
    return true;
  };
  while (end > 1 && !clean(end)) --end;
  return end;
}

void to_json(nlohmann::json& j, const ModelSpec& s) {
  j = nlohmann::json{{"architecture", s.architecture}, {"width", s.effective_width()},
                     {"dropout", to_string(s.dropout)}, {"p", s.p},
                     {"dropout_layers", s.dropout_layers}, {"channels", s.channels},
                     {"height", s.height}, {"width_px", s.width_px}, {"classes", s.classes},
                     {"input_mean", s.input_mean}, {"input_std", s.input_std},
                     {"network", network_to_json(spec_network(s))}};
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
  // The graph (written since model IR version 2): a custom model's layers; a zoo model's must be
  // its architecture's.
  s.network.clear();
  if (s.architecture == "custom" && !j.contains("network")) throw Error("model spec: missing key 'network'");
  if (j.contains("network")) {
    std::vector<NetLayer> network;
    try {
      network = network_from_json(j.at("network"));
    } catch (const Error& e) {
      throw Error(std::string("model spec: network: ") + e.what());
    }
    if (s.architecture == "custom") {
      s.network = std::move(network);
    } else {
      s.validate();
      if (network != spec_network(s)) {
        throw Error("model spec: network: not the layers of " + printable(s.architecture) + " at width " +
                    std::to_string(s.effective_width()));
      }
    }
  }
  s.validate();
}

}  // namespace spinbayes
