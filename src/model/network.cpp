#include "model/network.h"

#include <algorithm>
#include <filesystem>
#include <limits>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/json_input.h"
#include "core/read_file.h"
#include "model/model_spec.h"

namespace spinbayes {

namespace {

NetLayer layer(NetLayer::Kind kind, int out = 0, int kernel = 1, int stride = 1, int padding = 0) {
  NetLayer l;
  l.kind = kind;
  l.out = out;
  l.kernel = kernel;
  l.stride = stride;
  l.padding = padding;
  return l;
}
NetLayer conv(int out, int kernel, int stride, int padding) { return layer(NetLayer::Kind::conv, out, kernel, stride, padding); }
NetLayer linear(int out) { return layer(NetLayer::Kind::linear, out); }
NetLayer maxpool() { return layer(NetLayer::Kind::maxpool); }
NetLayer flatten() { return layer(NetLayer::Kind::flatten); }

// A basic block: two 3x3 convolutions, the first with `stride`; a downsampling shortcut where the
// block changes the map's shape.
NetLayer basic_block(int in, int out, int stride) {
  NetLayer block = layer(NetLayer::Kind::residual);
  block.branch = {conv(out, 3, stride, 1), conv(out, 3, 1, 1)};
  block.downsample = stride != 1 || in != out;
  return block;
}

// The residual networks' stages: `blocks` basic blocks per stage, widths w, 2w, 4w, ..., every
// stage after the first halving the map in its first block.
std::vector<NetLayer> residual_network(int width, int stages, int blocks, int classes) {
  std::vector<NetLayer> net{conv(width, 3, 1, 1)};
  int channels = width;
  for (int stage = 0; stage < stages; ++stage) {
    const int out = width << stage;
    for (int b = 0; b < blocks; ++b) {
      net.push_back(basic_block(channels, out, stage > 0 && b == 0 ? 2 : 1));
      channels = out;
    }
  }
  net.push_back(flatten());
  net.push_back(linear(classes));
  return net;
}

const char* kind_name(NetLayer::Kind kind) {
  switch (kind) {
    case NetLayer::Kind::conv: return "conv";
    case NetLayer::Kind::linear: return "linear";
    case NetLayer::Kind::maxpool: return "maxpool";
    case NetLayer::Kind::flatten: return "flatten";
    case NetLayer::Kind::residual: return "residual";
  }
  return "conv";
}

// One layer entry; `where` is "layer N" (or "layer N.M" in a branch).
NetLayer layer_from_json(const nlohmann::json& j, const std::string& where, bool in_branch) {
  if (!j.is_object()) throw Error(where + ": expected an object such as {\"type\": \"conv\", ...}");
  if (!j.contains("type")) throw Error(where + ": missing key 'type'");
  if (!j.at("type").is_string()) throw Error(where + ": key 'type' has the wrong type (expected a string)");
  const std::string type = j.at("type").get<std::string>();
  NetLayer l;
  std::vector<std::string> allowed{"type"};
  auto integer = [&](const char* key, int& value, bool required, int lo, int hi) {
    allowed.emplace_back(key);
    if (!j.contains(key)) {
      if (required) throw Error(where + " (" + type + "): missing key '" + key + "'");
      return;
    }
    const nlohmann::json& v = j.at(key);
    if (!v.is_number_integer()) throw Error(where + " (" + type + "): key '" + key + "' has the wrong type (expected an integer)");
    const bool fits = v.is_number_unsigned()
                          ? v.get<std::uint64_t>() <= static_cast<std::uint64_t>(hi) && v.get<std::uint64_t>() >= static_cast<std::uint64_t>(lo)
                          : v.get<std::int64_t>() >= lo && v.get<std::int64_t>() <= hi;
    if (!fits) {
      throw Error(where + " (" + type + "): key '" + key + "' must be in " + std::to_string(lo) + ".." + std::to_string(hi));
    }
    value = static_cast<int>(v.get<std::int64_t>());
  };
  // "dropout": {"kind": ..., "p": ...} on a binary layer.
  auto site = [&] {
    allowed.emplace_back("dropout");
    if (!j.contains("dropout")) return;
    const std::string at = where + " (" + type + "): dropout";
    const nlohmann::json& d = j.at("dropout");
    if (!d.is_object()) throw Error(at + ": expected an object such as {\"kind\": \"spatial\", \"p\": 0.1}");
    SiteDropout s;
    for (const auto& item : d.items()) {
      if (item.key() != "kind" && item.key() != "p")
        throw Error(at + ": unknown key '" + printable_head(item.key()) + "' (known: kind, p)");
    }
    if (!d.contains("kind")) throw Error(at + ": missing key 'kind'");
    const nlohmann::json& kind = d.at("kind");
    const std::string name = kind.is_string() ? kind.get<std::string>() : std::string();
    if (name != "none" && name != "element" && name != "spatial")
      throw Error(at + ": kind must be \"none\", \"element\" or \"spatial\"");
    s.kind = name == "none" ? DropoutKind::none : name == "element" ? DropoutKind::element : DropoutKind::spatial;
    if (d.contains("p")) {
      const nlohmann::json& p = d.at("p");
      if (!p.is_number()) throw Error(at + ": key 'p' has the wrong type (expected a number)");
      s.p = p.get<double>();
      if (!(s.p > 0.0 && s.p < 1.0)) throw Error(at + ": p must be in (0, 1), got " + p.dump());
    }
    l.dropout = s;
  };
  if (type == "conv") {
    l.kind = NetLayer::Kind::conv;
    site();
    integer("out", l.out, true, 1, 4096);
    integer("kernel", l.kernel, true, 1, 15);
    integer("stride", l.stride, false, 1, 8);
    integer("padding", l.padding, false, 0, 7);
    if (l.padding >= l.kernel) throw Error(where + " (conv): padding must be smaller than the kernel");
  } else if (type == "linear" || type == "maxpool" || type == "flatten" || type == "residual") {
    if (in_branch) throw Error(where + ": a residual branch holds only convolutions, got '" + type + "'");
    if (type == "linear") {
      l.kind = NetLayer::Kind::linear;
      integer("out", l.out, true, 1, 10000);
      site();
    } else if (type == "maxpool") {
      l.kind = NetLayer::Kind::maxpool;
    } else if (type == "flatten") {
      l.kind = NetLayer::Kind::flatten;
    } else {
      l.kind = NetLayer::Kind::residual;
      allowed.insert(allowed.end(), {"branch", "shortcut"});
      if (!j.contains("shortcut")) throw Error(where + " (residual): missing key 'shortcut'");
      const nlohmann::json& s = j.at("shortcut");
      if (!s.is_string() || (s.get<std::string>() != "identity" && s.get<std::string>() != "downsample")) {
        throw Error(where + " (residual): key 'shortcut' must be \"identity\" or \"downsample\"");
      }
      l.downsample = s.get<std::string>() == "downsample";
      if (!j.contains("branch")) throw Error(where + " (residual): missing key 'branch'");
      const nlohmann::json& b = j.at("branch");
      if (!b.is_array() || b.empty() || b.size() > 16) {
        throw Error(where + " (residual): key 'branch' must be an array of 1..16 convolutions");
      }
      for (std::size_t m = 0; m < b.size(); ++m) {
        l.branch.push_back(layer_from_json(b[m], where + "." + std::to_string(m + 1), true));
      }
    }
  } else {
    throw Error(where + ": unknown layer type '" + printable_head(type) +
                "' (known: conv, linear, maxpool, flatten, residual)");
  }
  for (const auto& item : j.items()) {
    if (std::find(allowed.begin(), allowed.end(), item.key()) == allowed.end()) {
      throw Error(where + " (" + type + "): unknown key '" + printable_head(item.key()) + "'");
    }
  }
  return l;
}

nlohmann::json layer_to_json(const NetLayer& l) {
  nlohmann::json j{{"type", kind_name(l.kind)}};
  if (l.kind == NetLayer::Kind::conv) {
    j["out"] = l.out;
    j["kernel"] = l.kernel;
    j["stride"] = l.stride;
    j["padding"] = l.padding;
  } else if (l.kind == NetLayer::Kind::linear) {
    j["out"] = l.out;
  } else if (l.kind == NetLayer::Kind::residual) {
    j["shortcut"] = l.downsample ? "downsample" : "identity";
    j["branch"] = network_to_json(l.branch);
  }
  if (l.dropout) {
    const char* kind = l.dropout->kind == DropoutKind::element   ? "element"
                       : l.dropout->kind == DropoutKind::spatial ? "spatial"
                                                                 : "none";
    j["dropout"] = {{"kind", kind}};
    if (l.dropout->p > 0.0) j["dropout"]["p"] = l.dropout->p;
  }
  return j;
}

}  // namespace

std::vector<NetLayer> zoo_network(const std::string& architecture, int w, int classes) {
  if (architecture == "mlp") return {flatten(), linear(w), linear(w), linear(classes)};
  if (architecture == "lenet") {
    return {conv(w, 5, 1, 0), maxpool(), conv(2 * w, 5, 1, 0), maxpool(), flatten(), linear(16 * w), linear(classes)};
  }
  if (architecture == "vgg-small") {  // three stages of two 3x3 convs and a max-pool
    std::vector<NetLayer> net;
    for (int stage = 0; stage < 3; ++stage) {
      net.push_back(conv(w << stage, 3, 1, 1));
      net.push_back(conv(w << stage, 3, 1, 1));
      net.push_back(maxpool());
    }
    net.push_back(flatten());
    net.push_back(linear(classes));
    return net;
  }
  if (architecture == "resnet20") return residual_network(w, 3, 3, classes);
  if (architecture == "resnet18") return residual_network(w, 4, 2, classes);
  throw Error("model: unknown architecture '" + printable(architecture) + "'");
}

std::string first_own_dropout(const std::vector<NetLayer>& layers) {
  for (std::size_t i = 0; i < layers.size(); ++i) {
    const std::string where = "layer " + std::to_string(i + 1);
    if (layers[i].dropout) return where;
    for (std::size_t m = 0; m < layers[i].branch.size(); ++m)
      if (layers[i].branch[m].dropout) return where + "." + std::to_string(m + 1);
  }
  return "";
}

nlohmann::json network_to_json(const std::vector<NetLayer>& layers) {
  nlohmann::json j = nlohmann::json::array();
  for (const NetLayer& l : layers) j.push_back(layer_to_json(l));
  return j;
}

std::vector<NetLayer> network_from_json(const nlohmann::json& layers) {
  if (!layers.is_array() || layers.empty()) throw Error("layers: expected a non-empty array of layers");
  if (layers.size() > 1000) throw Error("layers: more than 1000 layers");
  std::vector<NetLayer> out;
  for (std::size_t i = 0; i < layers.size(); ++i) out.push_back(layer_from_json(layers[i], "layer " + std::to_string(i + 1), false));
  return out;
}

NetworkFile parse_network_file(const std::string& text, const std::string& origin) {
  const std::string where = printable(origin);
  nlohmann::json j;
  try {
    j = parse_user_json(text);
  } catch (const nlohmann::json::exception&) {
    throw Error(where + ": not valid JSON");
  } catch (const Error& e) {
    throw Error(where + ": " + e.what());
  }
  try {
    if (!j.is_object()) throw Error("expected an object with 'input', 'classes' and 'layers'");
    for (const auto& item : j.items()) {
      if (item.key() != "input" && item.key() != "classes" && item.key() != "layers") {
        throw Error("unknown key '" + printable_head(item.key()) + "' (known: input, classes, layers)");
      }
    }
    for (const char* key : {"input", "classes", "layers"}) {
      if (!j.contains(key)) throw Error(std::string("missing key '") + key + "'");
    }
    NetworkFile file;
    if (!j.at("input").is_string()) throw Error("key 'input' has the wrong type (expected a string such as \"3x32x32\")");
    ModelSpec shape;
    parse_input_shape(j.at("input").get<std::string>(), shape, "input");
    const nlohmann::json& classes = j.at("classes");
    if (!classes.is_number_integer() || classes.get<std::int64_t>() < 2 || classes.get<std::int64_t>() > 10000) {
      throw Error("key 'classes' must be an integer in 2..10000");
    }
    file.channels = shape.channels;
    file.height = shape.height;
    file.width = shape.width_px;
    file.classes = static_cast<int>(classes.get<std::int64_t>());
    file.layers = network_from_json(j.at("layers"));
    // The shapes must chain: expand once, as every backend will.
    ModelSpec spec;
    apply_network_file(file, spec);
    spec.dropout = DropoutKind::none;
    build_layers(spec);
    return file;
  } catch (const Error& e) {
    throw Error(where + ": " + e.what());
  }
}

std::string network_file_text(const NetworkFile& file) {
  const nlohmann::json j = {{"input", std::to_string(file.channels) + "x" + std::to_string(file.height) + "x" +
                                          std::to_string(file.width)},
                            {"classes", file.classes},
                            {"layers", network_to_json(file.layers)}};
  return j.dump(2) + "\n";
}

NetworkFile load_network_file(const std::string& path) {
  // A regular file, read whole: a FIFO or a device would make train and experiment wait on its
  // writer (cost refuses them too).
  std::error_code ec;
  if (std::filesystem::exists(path, ec) && !std::filesystem::is_directory(path, ec) &&
      !std::filesystem::is_regular_file(path, ec))
    throw Error(printable_head(path) + ": not a regular file (a network file is read from disk, whole)");
  return parse_network_file(read_file_bytes(path, std::uint64_t{1} << 22), path);
}

}  // namespace spinbayes
