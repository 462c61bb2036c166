// IDX reader (plain and gzip): read_idx and load_idx_images. An input holding the magic of a
// 1-D unsigned-byte array (00 00 08 01) after its first byte is split there into an image file
// and a label file. A set that loads must survive save_idx_images + load_idx_images unchanged.
#include <cstdint>
#include <string_view>

#include "data/idx.h"
#include "fuzz_input.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace spinbayes;
  const std::string_view input = fuzz::as_text(data, size);
  constexpr std::string_view kLabelMagic("\0\0\x08\x01", 4);
  const auto split = input.size() > 1 ? input.find(kLabelMagic, 1) : std::string_view::npos;
  const auto images = fuzz::write_input("images", input.substr(0, split));
  std::filesystem::path labels;
  if (split != std::string_view::npos) labels = fuzz::write_input("labels", input.substr(split));

  fuzz::run_parser([&] { read_idx(images); });
  return fuzz::run_parser([&] {
    const ImageSet set = load_idx_images(images, labels);
    fuzz::require(set.n > 0 && set.pixels.size() == static_cast<std::size_t>(set.n) * set.image_size(),
                  "pixel count matches the shape");
    fuzz::require(labels.empty() || set.labels.size() == static_cast<std::size_t>(set.n), "one label per image");
    const auto again_images = fuzz::scratch_dir() / "again-images";
    const auto again_labels = fuzz::scratch_dir() / "again-labels";
    save_idx_images(set, again_images, again_labels);
    const ImageSet again = load_idx_images(again_images, set.has_labels() ? again_labels : std::filesystem::path{});
    fuzz::require(again.n == set.n && again.c == set.c && again.h == set.h && again.w == set.w,
                  "save + load keeps the shape");
    fuzz::require(again.pixels == set.pixels && again.labels == set.labels, "save + load keeps pixels and labels");
  });
}
