// Network files and the zoo in their vocabulary: residual networks expand into the documented
// layers and maps, dropout sites skip shortcut convolutions unless named, the Monte Carlo part
// starts where one map carries the pass, and every bad file is a one-line error naming the file
// and the layer.
#include <gtest/gtest.h>

#include <tuple>

#include <nlohmann/json.hpp>
#include <string>

#include "core/error.h"
#include "hw/mapping.h"
#include "model/model_spec.h"
#include "model/network.h"

using namespace spinbayes;

namespace {

ModelSpec zoo(const std::string& architecture, int width, int channels, int side, const std::string& sites = "all") {
  ModelSpec spec;
  spec.architecture = architecture;
  spec.width = width;
  spec.channels = channels;
  spec.height = spec.width_px = side;
  spec.input_mean.assign(static_cast<std::size_t>(channels), 0.0f);
  spec.input_std.assign(static_cast<std::size_t>(channels), 1.0f);
  spec.dropout_layers = sites;
  return spec;
}

std::string file_with(const std::string& layers, const std::string& input = "1x28x28", int classes = 10) {
  return R"({"input": ")" + input + R"(", "classes": )" + std::to_string(classes) + R"(, "layers": )" + layers + "}";
}

void expect_file_error(const std::string& text, const std::vector<std::string>& parts) {
  try {
    parse_network_file(text, "net.json");
    ADD_FAILURE() << "accepted: " << text;
  } catch (const Error& e) {
    const std::string message = e.what();
    EXPECT_EQ(message.rfind("net.json: ", 0), 0u) << message;
    EXPECT_EQ(message.find('\n'), std::string::npos) << message;
    for (const auto& part : parts) EXPECT_NE(message.find(part), std::string::npos) << message << "\nlacks: " << part;
  }
}

}  // namespace

TEST(Network, Resnet20HasTheDocumentedLayersAndMaps) {
  const std::vector<LayerSpec> layers = build_layers(zoo("resnet20", 16, 1, 28));
  // Stem, 9 basic blocks of two convolutions, 2 downsampling shortcuts, the classifier.
  ASSERT_EQ(layers.size(), 22u);
  EXPECT_TRUE(layers[0].real_input);
  EXPECT_EQ(layers[0].out_channels, 16);
  int shortcut_convs = 0, residual_adds = 0;
  for (std::size_t i = 0; i < layers.size(); ++i) {
    const LayerSpec& l = layers[i];
    shortcut_convs += l.shortcut_conv ? 1 : 0;
    residual_adds += l.shortcut >= 0 ? 1 : 0;
    if (l.shortcut_conv) {
      EXPECT_EQ(l.kernel, 1);
      EXPECT_EQ(l.stride, 2);
      EXPECT_FALSE(l.dropout_before) << "layer " << i + 1 << ": shortcut convolutions take no dropout under 'all'";
    } else if (i > 0) {
      EXPECT_TRUE(l.dropout_before) << "layer " << i + 1;
    }
  }
  EXPECT_EQ(shortcut_convs, 2);
  EXPECT_EQ(residual_adds, 9);
  // Stage 2's first block: [sc1, conv a (stride 2), conv b (+ sc1's map)] after stage 1's last map.
  const LayerSpec& sc = layers[7];
  ASSERT_TRUE(sc.shortcut_conv);
  EXPECT_EQ(sc.source, 7);  // map 7: layer 6's output, the block's input
  EXPECT_EQ(sc.out_h, 14);
  EXPECT_EQ(layers[8].source, 7);
  EXPECT_EQ(layers[8].stride, 2);
  EXPECT_EQ(layers[9].source, 9);
  EXPECT_EQ(layers[9].shortcut, 8);  // sc1's output
  // Stage 1's first block adds the stem's map.
  EXPECT_EQ(layers[2].shortcut, 1);
  const LayerSpec& fc = layers.back();
  EXPECT_TRUE(fc.output);
  EXPECT_EQ(fc.in_channels, 64 * 7 * 7);
  // "all" starts the Monte Carlo part after the stem; "last:1" at the classifier, whose input is
  // one map; a site inside a block moves back to the block's input.
  EXPECT_EQ(prefix_end(layers), 1);
  EXPECT_EQ(prefix_end(build_layers(zoo("resnet20", 16, 1, 28, "last:1"))), 21);
  EXPECT_EQ(prefix_end(build_layers(zoo("resnet20", 16, 1, 28, "10"))), 7);  // conv b of stage 2's first block
  EXPECT_EQ(prefix_end(build_layers(zoo("resnet20", 16, 1, 28, "8"))), 7);   // its shortcut convolution, when named
}

TEST(Network, Resnet18OnColorImages) {
  const std::vector<LayerSpec> layers = build_layers(zoo("resnet18", 64, 3, 32));
  ASSERT_EQ(layers.size(), 21u);  // stem, 8 blocks of two, 3 shortcut convolutions, classifier
  EXPECT_EQ(layers[0].in_channels, 3);
  EXPECT_EQ(layers.back().in_channels, 512 * 4 * 4);
  std::int64_t macs = 0;
  for (const LayerSpec& l : layers) macs += l.macs();
  // 3x3 convolutions of the CIFAR ResNet-18 (no initial pool) and the 1x1 shortcuts, stem and
  // classifier: 0.56 G multiply-accumulates per image.
  EXPECT_GT(macs, 550'000'000);
  EXPECT_LT(macs, 560'000'000);
}

TEST(Network, ExplicitSitesMayNameShortcutConvolutions) {
  const std::vector<LayerSpec> layers = build_layers(zoo("resnet20", 4, 1, 28, "8,22"));
  for (std::size_t i = 0; i < layers.size(); ++i) EXPECT_EQ(layers[i].dropout_before, i == 7 || i == 21) << i;
  const std::vector<LayerSpec> last = build_layers(zoo("resnet20", 4, 1, 28, "last:3"));
  // The last three layers other than shortcut convolutions: two convolutions and the classifier.
  for (std::size_t i = 0; i < last.size(); ++i) EXPECT_EQ(last[i].dropout_before, i >= 19) << i;
}

// A layer's own dropout site replaces the model's kind, rate and choice of sites for it; the
// other layers follow the model; the sites round-trip through the spec's JSON.
TEST(Network, LayersOwnDropoutSitesReplaceTheModels) {
  const NetworkFile file = parse_network_file(file_with(R"([
    {"type": "conv", "out": 4, "kernel": 3, "padding": 1},
    {"type": "conv", "out": 4, "kernel": 3, "padding": 1, "dropout": {"kind": "element", "p": 0.3}},
    {"type": "residual", "shortcut": "downsample", "branch": [
      {"type": "conv", "out": 8, "kernel": 3, "stride": 2, "padding": 1, "dropout": {"kind": "none"}},
      {"type": "conv", "out": 8, "kernel": 3, "padding": 1, "dropout": {"kind": "spatial"}}]},
    {"type": "conv", "out": 8, "kernel": 3, "padding": 1},
    {"type": "flatten"}, {"type": "linear", "out": 10, "dropout": {"kind": "spatial", "p": 0.5}}])"), "net.json");
  ModelSpec spec = zoo("vgg-small", 0, 1, 28, "last:1");  // the model: spatial, p = 0.1, the last layer only
  apply_network_file(file, spec);
  spec.dropout_layers = "last:1";
  const std::vector<LayerSpec> layers = build_layers(spec);
  // conv, conv (element 0.3), shortcut conv (no site: "all"/"last" skip it), branch conv (none),
  // branch conv (spatial at the model's 0.1), conv (the model's "last:1" does not reach it), linear.
  ASSERT_EQ(layers.size(), 7u);
  const std::vector<std::pair<DropoutKind, double>> want = {
      {DropoutKind::none, 0.0},    {DropoutKind::element, 0.3}, {DropoutKind::none, 0.0}, {DropoutKind::none, 0.0},
      {DropoutKind::spatial, 0.1}, {DropoutKind::none, 0.0},    {DropoutKind::spatial, 0.5}};
  for (std::size_t i = 0; i < layers.size(); ++i) {
    EXPECT_EQ(layers[i].dropout_before, want[i].first != DropoutKind::none) << i;
    EXPECT_EQ(layers[i].dropout_kind, want[i].first) << i;
    EXPECT_EQ(layers[i].dropout_p, want[i].second) << i;
  }
  // Without a model kind the layers' own sites remain, and make the model stochastic.
  spec.dropout = DropoutKind::none;
  EXPECT_TRUE(spec.has_dropout());
  EXPECT_EQ(build_layers(spec)[1].dropout_kind, DropoutKind::element);
  EXPECT_FALSE(build_layers(spec)[5].dropout_before);
  const nlohmann::json j = spec;
  EXPECT_EQ(j["network"][1]["dropout"], nlohmann::json({{"kind", "element"}, {"p", 0.3}}));
  EXPECT_EQ(j["network"][2]["branch"][0]["dropout"], nlohmann::json({{"kind", "none"}}));
  EXPECT_EQ(j.get<ModelSpec>().network, file.layers);
  // An own site without p takes the model's, which must then be one.
  ModelSpec no_p = spec;
  no_p.p = 0.0;
  no_p.network[2].branch[1].dropout = SiteDropout{DropoutKind::spatial, 0.0};
  try {
    build_layers(no_p);
    ADD_FAILURE() << "an own site without p at model p 0 was accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("layer 3.2 (conv): dropout: no p given, and the model's p is 0"), std::string::npos)
        << e.what();
  }
  // Every site set to none: deterministic.
  ModelSpec quiet = zoo("vgg-small", 0, 1, 28);
  apply_network_file(parse_network_file(file_with(R"([{"type": "conv", "out": 4, "kernel": 3},
      {"type": "conv", "out": 4, "kernel": 3, "dropout": {"kind": "none"}}, {"type": "flatten"},
      {"type": "linear", "out": 10, "dropout": {"kind": "none"}}])"), "q.json"), quiet);
  EXPECT_FALSE(quiet.has_dropout());
  // ...and no layer runs once per sample: the cost model prices one pass.
  for (const LayerMapping& m : map_layers(quiet, CrossbarParams{})) EXPECT_FALSE(m.per_sample) << m.name;
}

TEST(Network, FilesRoundTripThroughTheSpec) {
  const NetworkFile file = parse_network_file(file_with(R"([
    {"type": "conv", "out": 4, "kernel": 3, "padding": 1},
    {"type": "residual", "shortcut": "downsample", "branch": [{"type": "conv", "out": 8, "kernel": 3, "stride": 2, "padding": 1}]},
    {"type": "maxpool"}, {"type": "flatten"}, {"type": "linear", "out": 3}])", "2x16x16", 3), "net.json");
  EXPECT_EQ(file.channels, 2);
  EXPECT_EQ(file.classes, 3);
  ModelSpec spec = zoo("vgg-small", 0, 2, 16);
  spec.architecture = "custom";
  spec.network = file.layers;
  spec.classes = 3;
  const nlohmann::json j = spec;
  EXPECT_EQ(j["network"], network_to_json(file.layers));
  const ModelSpec back = j.get<ModelSpec>();
  EXPECT_EQ(back.network, file.layers);
  // The file written back (a run's network.json) reads as the same network and shape.
  const NetworkFile again = parse_network_file(network_file_text(file), "network.json");
  EXPECT_EQ(again.layers, file.layers);
  EXPECT_EQ(std::tie(again.channels, again.height, again.width, again.classes), std::make_tuple(2, 16, 16, 3));
  const std::vector<LayerSpec> layers = build_layers(back);
  ASSERT_EQ(layers.size(), 4u);  // conv, the shortcut convolution, the branch's convolution, linear
  EXPECT_TRUE(layers[2].pool_after);
  EXPECT_EQ(layers[3].in_channels, 8 * 4 * 4);
  // A zoo spec's graph is its architecture's and reads back as the zoo network.
  const nlohmann::json z = zoo("resnet20", 4, 1, 28);
  EXPECT_EQ(z["network"], network_to_json(zoo_network("resnet20", 4, 10)));
  EXPECT_TRUE(z.get<ModelSpec>().network.empty());
}

TEST(Network, BadFilesNameTheFileAndTheLayer) {
  const std::string conv = R"({"type": "conv", "out": 4, "kernel": 3, "padding": 1})";
  const std::string tail = R"({"type": "flatten"}, {"type": "linear", "out": 10})";
  expect_file_error("{", {"not valid JSON"});
  expect_file_error("[]", {"expected an object"});
  expect_file_error(R"({"input": "1x28x28", "classes": 10})", {"missing key 'layers'"});
  expect_file_error(R"({"input": "1x28x28", "classes": 10, "layers": [], "name": "x"})", {"unknown key 'name'"});
  expect_file_error(file_with("[" + conv + "," + tail + "]", "1x28"), {"input: expected CxHxW"});
  expect_file_error(file_with("[" + conv + "," + tail + "]", "1x28x28", 1), {"'classes' must be an integer in 2..10000"});
  expect_file_error(file_with("[]"), {"layers: expected a non-empty array"});
  expect_file_error(file_with(R"([{"type": "conv", "out": 4, "out": 8, "kernel": 3}, )" + tail + "]"), {"duplicate key 'out'"});
  expect_file_error(R"({"input": "1x28x28", "classes": 10, "classes": 5, "layers": []})", {"duplicate key 'classes'"});
  expect_file_error(file_with("[" + conv + R"(, {"type": "pool"}, )" + tail + "]"), {"layer 2: unknown layer type 'pool'"});
  expect_file_error(file_with(R"([{"type": "conv", "out": 4}, )" + tail + "]"), {"layer 1 (conv): missing key 'kernel'"});
  expect_file_error(file_with(R"([{"type": "conv", "out": "4", "kernel": 3}, )" + tail + "]"),
                    {"layer 1 (conv): key 'out' has the wrong type"});
  expect_file_error(file_with(R"([{"type": "conv", "out": 4.5, "kernel": 3}, )" + tail + "]"), {"key 'out' has the wrong type"});
  expect_file_error(file_with(R"([{"type": "conv", "out": 0, "kernel": 3}, )" + tail + "]"), {"layer 1 (conv): key 'out' must be in 1..4096"});
  expect_file_error(file_with(R"([{"type": "conv", "out": -4, "kernel": 3}, )" + tail + "]"), {"key 'out' must be in 1..4096"});
  expect_file_error(file_with(R"([{"type": "conv", "out": 4, "kernel": 3, "stride": 0}, )" + tail + "]"), {"key 'stride' must be in 1..8"});
  expect_file_error(file_with(R"([{"type": "conv", "out": 4, "kernel": 3, "padding": 3}, )" + tail + "]"),
                    {"layer 1 (conv): padding must be smaller than the kernel"});
  expect_file_error(file_with(R"([{"type": "conv", "out": 4, "kernel": 3, "paddin": 1}, )" + tail + "]"), {"unknown key 'paddin'"});
  expect_file_error(file_with(R"([{"type": 3}])"), {"layer 1: key 'type' has the wrong type"});
  // Dropout sites.
  const std::string site = "[" + conv + R"(, {"type": "conv", "out": 4, "kernel": 3, "dropout": )";
  expect_file_error(file_with(site + R"("spatial"}, )" + tail + "]"), {"layer 2 (conv): dropout: expected an object"});
  expect_file_error(file_with(site + R"({"p": 0.1}}, )" + tail + "]"), {"layer 2 (conv): dropout: missing key 'kind'"});
  expect_file_error(file_with(site + R"({"kind": "layer"}}, )" + tail + "]"),
                    {"layer 2 (conv): dropout: kind must be \"none\", \"element\" or \"spatial\""});
  expect_file_error(file_with(site + R"({"kind": 1}}, )" + tail + "]"), {"dropout: kind must be"});
  for (const char* p : {"0", "1", "1.5", "-0.1", "1e300"})
    expect_file_error(file_with(site + R"({"kind": "element", "p": )" + p + "}}, " + tail + "]"),
                      {"layer 2 (conv): dropout: p must be in (0, 1), got"});
  expect_file_error(file_with(site + R"({"kind": "element", "p": "0.1"}}, )" + tail + "]"),
                    {"dropout: key 'p' has the wrong type (expected a number)"});
  expect_file_error(file_with(site + R"({"kind": "element", "rate": 0.1}}, )" + tail + "]"),
                    {"dropout: unknown key 'rate' (known: kind, p)"});
  expect_file_error(file_with(site + R"({"kind": "element"}}, {"type": "flatten", "dropout": {"kind": "none"}}, {"type": "linear", "out": 10}])"),
                    {"layer 3 (flatten): unknown key 'dropout'"});
  expect_file_error(file_with(R"([{"type": "conv", "out": 4, "kernel": 3, "dropout": {"kind": "spatial"}}, )" + tail + "]"),
                    {"layer 1 (conv): dropout: the first layer sees the image and takes none"});
  // Whatever follows a NUL byte would be ignored by the JSON parser.
  expect_file_error(file_with("[" + conv + "," + tail + "]") + std::string(1, '\0') + "{{{", {"not valid JSON (holds a NUL byte)"});
  expect_file_error(file_with(R"([7])"), {"layer 1: expected an object"});
  // Shapes that do not chain.
  expect_file_error(file_with(R"([{"type": "conv", "out": 4, "kernel": 15}, {"type": "conv", "out": 4, "kernel": 15}, )" + tail + "]"),
                    {"layer 2 (conv): a 15x15 kernel does not fit the 4x14x14 map"});
  expect_file_error(file_with("[" + conv + R"(, {"type": "flatten"}, )" + conv + R"(, {"type": "linear", "out": 10}])"),
                    {"layer 3 (conv): a convolution cannot follow a flatten"});
  expect_file_error(file_with("[" + conv + R"(, {"type": "linear", "out": 10}])"), {"layer 2 (linear): needs a flatten before it"});
  expect_file_error(file_with(R"([{"type": "maxpool"}, )" + conv + "," + tail + "]"), {"layer 1 (maxpool): must follow a binary layer"});
  expect_file_error(file_with("[" + conv + R"(, {"type": "maxpool"}, {"type": "maxpool"}, )" + tail + "]"),
                    {"layer 3 (maxpool): the map is pooled already"});
  expect_file_error(file_with(R"([{"type": "conv", "out": 4, "kernel": 3, "stride": 8}, {"type": "conv", "out": 4, "kernel": 3, "stride": 2},
                                  {"type": "maxpool"}, )" + tail + "]"),
                    {"layer 3 (maxpool): pools the 4x1x1 map below 1x1"});
  expect_file_error(file_with("[" + conv + R"(, {"type": "residual", "shortcut": "identity", "branch": [{"type": "conv", "out": 8, "kernel": 3, "padding": 1}]}, )" + tail + "]"),
                    {"layer 2 (residual): the branch gives a 8x28x28 map, the identity shortcut 4x28x28"});
  expect_file_error(file_with("[" + conv + R"(, {"type": "residual", "shortcut": "downsample", "branch": [{"type": "conv", "out": 8, "kernel": 3, "stride": 2}]}, )" + tail + "]"),
                    {"layer 2 (residual): the branch gives a 8x13x13 map, the downsampling shortcut 8x14x14"});
  expect_file_error(file_with(R"([{"type": "residual", "shortcut": "identity", "branch": [)" + conv + "]}, " + tail + "]"),
                    {"layer 1 (residual): needs a binary input"});
  expect_file_error(file_with("[" + conv + R"(, {"type": "residual", "shortcut": "identity", "branch": [{"type": "maxpool"}]}, )" + tail + "]"),
                    {"layer 2.1: a residual branch holds only convolutions"});
  expect_file_error(file_with("[" + conv + R"(, {"type": "residual", "shortcut": "identity", "branch": [{"type": "conv", "out": 4}]}, )" + tail + "]"),
                    {"layer 2.1 (conv): missing key 'kernel'"});
  expect_file_error(file_with("[" + conv + R"(, {"type": "residual", "shortcut": "none", "branch": [)" + conv + "]}, " + tail + "]"),
                    {"layer 2 (residual): key 'shortcut' must be"});
  expect_file_error(file_with("[" + conv + R"(, {"type": "residual", "shortcut": "identity", "branch": []}, )" + tail + "]"),
                    {"layer 2 (residual): key 'branch' must be an array of 1..16 convolutions"});
  expect_file_error(file_with("[" + conv + R"(, {"type": "flatten"}, {"type": "linear", "out": 7}])"),
                    {"layer 3: the last layer must be a linear layer with one output per class (10)"});
  expect_file_error(file_with("[" + conv + "]"), {"layer 1: the last layer must be a linear layer"});
  expect_file_error(file_with(R"([{"type": "flatten"}, {"type": "linear", "out": 10}])"), {"at least two binary layers"});
  expect_file_error(file_with(R"([{"type": "conv", "out": 4, "kernel": 3}, {"type": "conv", "out": 4, "kernel": 3, "stride": 2}, )" + tail + "]", "1x28x30"),
                    {"layer 4 (linear): flattens a non-square"});
}

// Found by red-teaming: a branch whose total stride overflowed an int (11 strides of 8 wrapped to 0
// and divided by it), networks too large to train, a huge key quoted whole.
TEST(Network, HostileSizesAreRefused) {
  std::string branch;
  for (int i = 0; i < 11; ++i) branch += std::string(i ? "," : "") + R"({"type": "conv", "out": 16, "kernel": 3, "padding": 1, "stride": 8})";
  expect_file_error(file_with(R"([{"type": "conv", "out": 8, "kernel": 3, "padding": 1},
    {"type": "residual", "shortcut": "downsample", "branch": [)" + branch + R"(]}, {"type": "flatten"}, {"type": "linear", "out": 10}])"),
                    {"layer 2 (residual): the branch's total stride is over 8"});
  expect_file_error(file_with(R"([{"type": "conv", "out": 8, "kernel": 3, "padding": 1}, {"type": "conv", "out": 4096, "kernel": 15, "padding": 7},
    {"type": "conv", "out": 4096, "kernel": 15, "padding": 7}, {"type": "flatten"}, {"type": "linear", "out": 10}])"),
                    {"layer 3 (conv): the network would hold", "weights, more than 268435456"});
  std::string blocks;
  for (int i = 0; i < 70; ++i) {
    blocks += R"({"type": "residual", "shortcut": "identity", "branch": [)";
    for (int k = 0; k < 16; ++k) blocks += std::string(k ? "," : "") + R"({"type": "conv", "out": 4, "kernel": 1})";
    blocks += "]},";
  }
  expect_file_error(file_with(R"([{"type": "conv", "out": 4, "kernel": 3}, )" + blocks + R"({"type": "flatten"}, {"type": "linear", "out": 10}])"),
                    {"more than 1000 binary layers"});
  const std::string key(100000, 'k');
  try {
    parse_network_file(file_with(R"([{"type": "conv", "out": 4, "kernel": 3, ")" + key + R"(": 1}])"), "net.json");
    ADD_FAILURE() << "accepted an unknown key";
  } catch (const Error& e) {
    EXPECT_LT(std::string(e.what()).size(), 400u);
    EXPECT_NE(std::string(e.what()).find("(100000 bytes)"), std::string::npos) << e.what();
  }
}

TEST(Network, LoadingNamesThePath) {
  try {
    load_network_file("/nonexistent/net.json");
    ADD_FAILURE() << "loaded a missing file";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("/nonexistent/net.json"), std::string::npos) << e.what();
  }
}
