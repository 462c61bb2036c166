// `--data` (train, eval) and a run's recorded data set: parse_data_set either returns a data set
// whose canonical text parses back to itself, with absolute paths, or throws a one-line Error.
// `cost --input CxHxW`: parse_input_shape gives positive sizes that print back to the text's
// numbers, or throws.
#include <cstdint>
#include <string>

#include "data/datasets.h"
#include "fuzz_input.h"
#include "model/model_spec.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace spinbayes;
  const std::string text(fuzz::as_text(data, size));
  fuzz::run_parser([&] {
    ModelSpec spec;
    parse_input_shape(text, spec);
    fuzz::require(spec.channels >= 1 && spec.height >= 1 && spec.width_px >= 1, "positive sizes");
    ModelSpec again;
    parse_input_shape(std::to_string(spec.channels) + "x" + std::to_string(spec.height) + "x" +
                          std::to_string(spec.width_px), again);
    fuzz::require(again.channels == spec.channels && again.height == spec.height && again.width_px == spec.width_px,
                  "the shape reads back from its numbers");
  });
  return fuzz::run_parser([&] {
    const DataSet d = parse_data_set(text, "--data");
    const std::string canonical = d.spec();
    fuzz::require(parse_data_set(canonical, "--data").spec() == canonical, "the canonical text reads back to itself");
    fuzz::require(d.dir.empty() || d.dir.is_absolute(), "a CIFAR-10 directory is absolute");
    for (const auto& f : d.files) fuzz::require(f.is_absolute(), "IDX files are absolute");
    fuzz::require(d.kind != DataSet::Kind::idx || d.files.size() == 4, "four IDX files");
  });
}
