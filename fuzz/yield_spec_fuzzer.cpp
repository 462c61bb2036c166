// `chips --spec`: parse_yield_spec either returns requirements on known metrics with finite bounds
// or throws a one-line Error, and a spec it returns reads back from its own canonical text.
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "fuzz_input.h"
#include "population/yield_spec.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace spinbayes;
  static const std::vector<std::string> metrics = {"accuracy", "ece", "nll", "auroc.mnist", "auroc.idx:/a-b_c"};
  return fuzz::run_parser([&] {
    const YieldSpec spec = parse_yield_spec(fuzz::as_text(data, size), metrics);
    fuzz::require(!spec.requirements.empty(), "a spec holds a requirement");
    for (const auto& r : spec.requirements) fuzz::require(std::isfinite(r.bound), "finite bounds");
    const std::string text = spec.text();
    fuzz::require(parse_yield_spec(text, metrics).text() == text, "the spec reads back from its text");
  });
}
