// Model IR reader past its checksum: the input is the payload (spec JSON and layers), wrapped in a
// valid header and CRC-32 so that every mutation reaches the payload parser. A model that loads
// must save and load back to the same bytes.
#include <zlib.h>

#include <cstdint>
#include <fstream>
#include <iterator>
#include <string>

#include "fuzz_input.h"
#include "model/model_ir.h"

namespace {

void put_le(std::string& out, std::uint64_t value, int bytes) {
  for (int i = 0; i < bytes; ++i) out.push_back(static_cast<char>((value >> (8 * i)) & 0xFF));
}

std::string read_all(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace spinbayes;
  std::string file = "SBIR";
  put_le(file, ModelIR::kVersion, 4);
  put_le(file, size, 8);
  file.append(reinterpret_cast<const char*>(data), size);
  put_le(file, crc32_z(crc32_z(0L, Z_NULL, 0), data, size), 4);
  const auto path = fuzz::write_input("model.sbir", file);
  return fuzz::run_parser([&] {
    const ModelIR ir = load_model_ir(path);
    const auto again = fuzz::scratch_dir() / "again.sbir";
    save_model_ir(ir, again);
    const ModelIR reloaded = load_model_ir(again);
    fuzz::require(reloaded.layers.size() == ir.layers.size(), "save + load keeps the layer count");
    // The writer's encoding of what was read is canonical: writing the reloaded model again gives
    // the same bytes.
    const auto third = fuzz::scratch_dir() / "third.sbir";
    save_model_ir(reloaded, third);
    fuzz::require(read_all(again) == read_all(third), "save is a fixed point of load");
  });
}
