// `spinbayes import MODEL.onnx`: import_onnx either returns a network whose IR is consistent (its
// layers those of the network it names, every weight +-1, every statistic finite) and survives a
// save and load unchanged, or throws a one-line Error naming the file.
#include <cstdint>
#include <string>

#include "fuzz_input.h"
#include "interop/onnx_import.h"
#include "model/model_ir.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace spinbayes;
  const std::string bytes(reinterpret_cast<const char*>(data), size);
  return fuzz::run_parser([&] {
    const ModelIR ir = import_onnx(bytes, "model.onnx", ImportDropout{DropoutKind::spatial, 0.1, "all"});
    ir.validate();
    fuzz::require(ir.spec.architecture == "custom" && !ir.spec.network.empty(), "a network of its own");
    const std::vector<LayerSpec> layers = build_layers(ir.spec);
    fuzz::require(layers.size() == ir.layers.size(), "one IR layer per binary layer");
    for (const BinaryLayerIR& l : ir.layers) {
      for (const std::int8_t w : l.weights) fuzz::require(w == 1 || w == -1, "weights are +-1");
    }
    const auto path = fuzz::write_input("model.sbir", "");
    save_model_ir(ir, path);
    const ModelIR back = load_model_ir(path);
    fuzz::require(back.layers.size() == ir.layers.size() && back.layers.back().weights == ir.layers.back().weights,
                  "the IR survives a save and a load");
  });
}
