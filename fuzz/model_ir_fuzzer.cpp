// Model IR reader on whole files: header, length, checksum and, past those, the payload.
#include <cstdint>

#include "fuzz_input.h"
#include "model/model_ir.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace spinbayes;
  const auto path = spinbayes::fuzz::write_input("model.sbir", fuzz::as_text(data, size));
  return fuzz::run_parser([&] {
    const ModelIR ir = load_model_ir(path);
    ir.validate();
  });
}
