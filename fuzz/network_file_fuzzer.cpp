// `--model FILE.json`: parse_network_file either returns a network whose shapes chain (every
// binary layer's input is a map made before it, a residual block's branch and shortcut agree, the
// last layer gives the classes) and whose layers write back to JSON that parses to the same
// network, or throws a one-line Error naming the file.
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>

#include "fuzz_input.h"
#include "model/model_spec.h"
#include "model/network.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace spinbayes;
  const auto path = fuzz::write_input("network.json", fuzz::as_text(data, size));
  return fuzz::run_parser([&] {
    const NetworkFile file = load_network_file(path.string());
    fuzz::require(network_from_json(network_to_json(file.layers)) == file.layers, "the layers write back to themselves");
    ModelSpec spec;
    apply_network_file(file, spec);
    spec.dropout_layers = "all";
    const std::vector<LayerSpec> layers = build_layers(spec);
    fuzz::require(layers.size() >= 2 && layers.front().real_input && layers.back().output, "a first and an output layer");
    fuzz::require(layers.back().out_channels == file.classes, "one output per class");
    for (std::size_t i = 0; i < layers.size(); ++i) {
      const LayerSpec& l = layers[i];
      fuzz::require(l.source <= static_cast<int>(i) && l.shortcut <= static_cast<int>(i), "maps are made before they are read");
      fuzz::require((l.source == 0) == (i == 0), "only the first layer reads the image");
      fuzz::require(l.out_h >= 1 && l.out_w >= 1 && l.pooled_h() >= 1 && l.pooled_w() >= 1, "maps of 1x1 or more");
      if (l.shortcut >= 0) {
        const LayerSpec& s = layers[static_cast<std::size_t>(l.shortcut - 1)];
        fuzz::require(s.out_channels == l.out_channels && s.pooled_h() == l.out_h && s.pooled_w() == l.out_w,
                      "a residual block's shortcut has the branch's shape");
      }
    }
    const int end = prefix_end(layers);
    fuzz::require(end >= 1 && end < static_cast<int>(layers.size()), "the Monte Carlo part starts inside the network");
  });
}
