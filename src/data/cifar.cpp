#include "data/cifar.h"

#include <climits>
#include <fstream>
#include <iterator>
#include <string>

#include "core/error.h"

namespace spinbayes {
namespace {

constexpr int kSide = 32;
constexpr int kChannels = 3;
constexpr std::size_t kImageBytes = kChannels * kSide * kSide;  // 1024 R, 1024 G, 1024 B
constexpr std::size_t kRecordBytes = 1 + kImageBytes;           // label byte first
constexpr int kClasses = 10;

std::vector<unsigned char> read_whole_file(const std::filesystem::path& path) {
  std::error_code ec;
  if (!std::filesystem::exists(path, ec))
    throw Error(path.string() + ": CIFAR-10 batch file not found");
  if (std::filesystem::is_directory(path, ec)) {
    throw Error(path.string() + ": is a directory, expected a CIFAR-10 batch file");
  }
  if (!std::filesystem::is_regular_file(path, ec)) {
    throw Error(path.string() + ": is not a regular file, expected a CIFAR-10 batch file");
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(path.string() + ": cannot open for reading");
  std::vector<unsigned char> bytes((std::istreambuf_iterator<char>(in)),
                                   std::istreambuf_iterator<char>());
  if (in.bad()) throw Error(path.string() + ": read error");
  return bytes;
}

}  // namespace

ImageSet read_cifar10(const std::vector<std::filesystem::path>& batch_files) {
  if (batch_files.empty()) throw Error("CIFAR-10: no batch files given");
  ImageSet set;
  set.name = batch_files.size() == 1 ? batch_files.front().string()
                                     : batch_files.front().parent_path().string() + " (CIFAR-10)";
  set.c = kChannels;
  set.h = kSide;
  set.w = kSide;
  for (const auto& path : batch_files) {
    const std::vector<unsigned char> bytes = read_whole_file(path);
    if (bytes.empty()) throw Error(path.string() + ": empty CIFAR-10 batch file");
    if (bytes.size() % kRecordBytes != 0) {
      throw Error(path.string() + ": size " + std::to_string(bytes.size()) +
                  " is not a whole number of " + std::to_string(kRecordBytes) +
                  "-byte CIFAR-10 records");
    }
    const std::size_t records = bytes.size() / kRecordBytes;
    if (records > static_cast<std::size_t>(INT_MAX - set.n))
      throw Error(path.string() + ": too many images");
    set.pixels.reserve(set.pixels.size() + records * kImageBytes);
    set.labels.reserve(set.labels.size() + records);
    for (std::size_t r = 0; r < records; ++r) {
      const unsigned char* record = bytes.data() + r * kRecordBytes;
      if (record[0] >= kClasses) {
        throw Error(path.string() + ": record " + std::to_string(r) + " has label " +
                    std::to_string(record[0]) + " (expected 0..9)");
      }
      set.labels.push_back(record[0]);
      // The stored layout is already channel-major (C x H x W), as ImageSet wants.
      for (std::size_t i = 1; i < kRecordBytes; ++i)
        set.pixels.push_back(static_cast<float>(record[i]) / 255.0f);
    }
    set.n += static_cast<int>(records);
  }
  return set;
}

}  // namespace spinbayes
