#include "data/idx.h"

#include <zlib.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <string>
#include <new>
#include <string_view>

#include "core/atomic_file.h"
#include "core/error.h"

namespace spinbayes {
namespace {

constexpr std::uint8_t kUnsignedByte = 0x08;
constexpr std::uint64_t kMaxDataBytes = std::uint64_t{1} << 31;

[[noreturn]] void fail(const std::filesystem::path& path, const std::string& what) {
  throw Error(path.string() + ": " + what);
}

std::string hex(unsigned value, int digits) {
  char text[16];
  std::snprintf(text, sizeof text, "0x%0*X", digits, value);
  return text;
}

std::string shape_string(const std::vector<std::uint32_t>& dims) {
  std::string text;
  for (const auto d : dims) text += (text.empty() ? "" : " x ") + std::to_string(d);
  return text;
}

std::uint32_t read_be32(const unsigned char* p) {
  return (std::uint32_t{p[0]} << 24) | (std::uint32_t{p[1]} << 16) | (std::uint32_t{p[2]} << 8) |
         std::uint32_t{p[3]};
}

void append_be32(std::string& out, std::uint32_t value) {
  for (int shift = 24; shift >= 0; shift -= 8)
    out.push_back(static_cast<char>((value >> shift) & 0xFF));
}

// Product of the dims in bytes, or fails when it would exceed 2^31 (checked before multiplying,
// so the 64-bit product cannot overflow either).
std::uint64_t data_size(const std::filesystem::path& path, const std::vector<std::uint32_t>& dims) {
  std::uint64_t bytes = 1;
  for (const auto d : dims) {
    if (d != 0 && bytes > kMaxDataBytes / d) {
      fail(path, "IDX data of " + shape_string(dims) + " bytes exceeds the 2^31-byte limit");
    }
    bytes *= d;
  }
  return bytes;
}

// A zlib reader that closes itself. gzread handles plain files transparently; gzdirect() tells
// which one it found (zlib checks for the 0x1f 0x8b gzip header).
class ZReader {
 public:
  explicit ZReader(const std::filesystem::path& path) : path_(path) {
    std::error_code ec;
    if (!std::filesystem::exists(path, ec)) fail(path, "file not found");
    if (std::filesystem::is_directory(path, ec)) fail(path, "is a directory, expected an IDX file");
    // A FIFO would block the open until someone writes; a device has no size to check against.
    if (!std::filesystem::is_regular_file(path, ec)) fail(path, "is not a regular file, expected an IDX file");
    file_ = gzopen(path.c_str(), "rb");
    if (file_ == nullptr)
      fail(path, std::string("cannot open for reading: ") + std::strerror(errno));
    gzbuffer(file_, 1 << 17);
  }
  ZReader(const ZReader&) = delete;
  ZReader& operator=(const ZReader&) = delete;
  ~ZReader() { gzclose(file_); }

  bool gzipped() { return gzdirect(file_) == 0; }

  // Reads up to `size` bytes, stopping early only at the end of the data.
  std::size_t read(void* buffer, std::size_t size) {
    auto* out = static_cast<unsigned char*>(buffer);
    std::size_t done = 0;
    while (done < size) {
      const auto chunk = static_cast<unsigned>(std::min<std::size_t>(size - done, 1u << 30));
      const int got = gzread(file_, out + done, chunk);
      if (got <= 0) break;
      done += static_cast<std::size_t>(got);
    }
    check();
    return done;
  }

 private:
  // zlib reports a gzip stream cut short as Z_BUF_ERROR (and otherwise as end of file).
  void check() {
    int code = Z_OK;
    const char* message = gzerror(file_, &code);
    if (code == Z_OK) return;
    if (code == Z_ERRNO) fail(path_, std::string("read error: ") + std::strerror(errno));
    if (code == Z_BUF_ERROR) fail(path_, "truncated gzip stream");
    // zlib's message starts with "<path>: " already.
    std::string text = message != nullptr ? message : "unknown error";
    const std::string prefix = path_.string() + ": ";
    if (text.starts_with(prefix)) text.erase(0, prefix.size());
    fail(path_, "corrupt gzip stream: " + text);
  }

  std::filesystem::path path_;
  gzFile file_ = nullptr;
};

}  // namespace

IdxArray read_idx(const std::filesystem::path& path, std::uint32_t max_items) {
  ZReader reader(path);
  unsigned char magic[4];
  if (reader.read(magic, 4) != 4) fail(path, "too short for an IDX header");
  if (magic[0] != 0 || magic[1] != 0) {
    const std::string kind = reader.gzipped() ? "gzip data is not an IDX file" : "not an IDX file";
    fail(path, "bad IDX magic " + hex(read_be32(magic), 8) + " (" + kind + ")");
  }
  if (magic[2] != kUnsignedByte) {
    fail(path, "unsupported IDX element type " + hex(magic[2], 2) +
                   " (only 0x08, unsigned byte, is supported)");
  }
  const int rank = magic[3];
  if (rank < 1 || rank > 4) {
    fail(path, "unsupported IDX rank " + std::to_string(rank) + " (expected 1 to 4 dimensions)");
  }

  IdxArray array;
  unsigned char sizes[16];
  const auto sizes_bytes = static_cast<std::size_t>(4 * rank);
  if (reader.read(sizes, sizes_bytes) != sizes_bytes) fail(path, "truncated IDX header");
  for (int i = 0; i < rank; ++i) array.dims.push_back(read_be32(sizes + 4 * i));

  const std::uint64_t announced = data_size(path, array.dims);
  const bool partial = max_items > 0 && max_items < array.dims[0];
  if (partial) array.dims[0] = max_items;
  const std::uint64_t expected = data_size(path, array.dims);
  // Memory follows the data actually there, not the header's claim: a plain file is checked
  // against its size first; gzip data grows the buffer as it decompresses.
  std::size_t got = 0;
  if (!reader.gzipped()) {
    std::error_code ec;
    const std::uint64_t header_bytes = 4 + sizes_bytes;
    const std::uint64_t file_size = std::filesystem::file_size(path, ec);
    if (!ec && file_size < header_bytes + announced) {
      fail(path, "truncated: expected " + std::to_string(announced) + " data bytes, got " +
                     std::to_string(file_size < header_bytes ? 0 : file_size - header_bytes));
    }
    array.data.resize(static_cast<std::size_t>(expected));
    got = reader.read(array.data.data(), array.data.size());
  } else {
    constexpr std::size_t kChunk = std::size_t{1} << 24;
    while (got < expected) {
      const auto want = static_cast<std::size_t>(std::min<std::uint64_t>(expected - got, kChunk));
      array.data.resize(got + want);
      const std::size_t n = reader.read(array.data.data() + got, want);
      got += n;
      if (n < want) break;
    }
  }
  if (got != expected) {
    fail(path, "truncated: expected " + std::to_string(expected) + " data bytes, got " +
                   std::to_string(got));
  }
  if (partial) return array;  // the rest is not read, so neither checked
  unsigned char extra;
  if (reader.read(&extra, 1) != 0) {
    fail(path, "trailing bytes after the " + std::to_string(expected) + " data bytes of a " +
                   shape_string(array.dims) + " array");
  }
  return array;
}

void write_idx(const std::filesystem::path& path, const std::vector<std::uint32_t>& dims,
               const std::vector<std::uint8_t>& data) {
  if (dims.empty() || dims.size() > 4) {
    fail(path, "cannot write an IDX array of rank " + std::to_string(dims.size()) + " (1 to 4)");
  }
  if (data_size(path, dims) != data.size()) {
    fail(path, "cannot write IDX: " + std::to_string(data.size()) + " bytes do not fill " +
                   shape_string(dims));
  }
  std::string content;
  content.reserve(4 + 4 * dims.size() + data.size());
  append_be32(content,
              (std::uint32_t{kUnsignedByte} << 8) | static_cast<std::uint32_t>(dims.size()));
  for (const auto d : dims) append_be32(content, d);
  content.append(reinterpret_cast<const char*>(data.data()), data.size());
  write_file_atomic(path, content);
}

namespace {
ImageSet load_idx_images_unguarded(const std::filesystem::path& images, const std::filesystem::path& labels,
                                   std::uint32_t max_images);
}  // namespace

ImageSet load_idx_images(const std::filesystem::path& images, const std::filesystem::path& labels,
                         std::uint32_t max_images) {
  try {
    return load_idx_images_unguarded(images, labels, max_images);
  } catch (const std::bad_alloc&) {
    fail(images, "out of memory loading its images" +
                     (max_images > 0 ? " (the first " + std::to_string(max_images) + ")" : std::string()));
  }
}

namespace {

ImageSet load_idx_images_unguarded(const std::filesystem::path& images, const std::filesystem::path& labels,
                                   std::uint32_t max_images) {
  const IdxArray array = read_idx(images, max_images);
  const auto& d = array.dims;
  if (d.size() != 3 && d.size() != 4) {
    fail(images, "expected 3-D (N x H x W) or 4-D (N x C x H x W) images, got " +
                     std::to_string(d.size()) + "-D (" + shape_string(d) + ")");
  }
  if (std::find(d.begin(), d.end(), 0u) != d.end())
    fail(images, "empty image array (" + shape_string(d) + ")");
  if (d[0] > static_cast<std::uint32_t>(INT_MAX)) fail(images, "too many images");

  ImageSet set;
  set.name = images.string();
  set.n = static_cast<int>(d[0]);
  set.c = d.size() == 4 ? static_cast<int>(d[1]) : 1;
  set.h = static_cast<int>(d[d.size() - 2]);
  set.w = static_cast<int>(d[d.size() - 1]);
  set.pixels.resize(array.data.size());
  std::transform(array.data.begin(), array.data.end(), set.pixels.begin(),
                 [](std::uint8_t v) { return static_cast<float>(v) / 255.0f; });

  if (!labels.empty()) {
    const IdxArray label_array = read_idx(labels, max_images);
    if (label_array.dims.size() != 1) {
      fail(labels, "expected 1-D labels, got " + std::to_string(label_array.dims.size()) + "-D (" +
                       shape_string(label_array.dims) + ")");
    }
    if (label_array.dims[0] != d[0]) {
      fail(labels, std::to_string(label_array.dims[0]) + " labels for " + std::to_string(d[0]) +
                       " images in " + images.string());
    }
    set.labels.assign(label_array.data.begin(), label_array.data.end());
  }
  return set;
}

}  // namespace

void save_idx_images(const ImageSet& set, const std::filesystem::path& images,
                     const std::filesystem::path& labels) {
  if (set.n < 0 || set.c <= 0 || set.h <= 0 || set.w <= 0 ||
      set.pixels.size() != static_cast<std::size_t>(set.n) * set.image_size()) {
    fail(images, "cannot save '" + set.name + "': pixel count does not match its shape");
  }
  std::vector<std::uint8_t> bytes(set.pixels.size());
  std::transform(set.pixels.begin(), set.pixels.end(), bytes.begin(), [](float p) {
    const float v = p * 255.0f;
    if (!(v > 0.0f)) return std::uint8_t{0};  // also NaN
    if (v >= 255.0f) return std::uint8_t{255};
    return static_cast<std::uint8_t>(std::lround(v));
  });
  auto dim = [](int v) { return static_cast<std::uint32_t>(v); };
  std::vector<std::uint32_t> dims{dim(set.n), dim(set.h), dim(set.w)};
  if (set.c != 1) dims.insert(dims.begin() + 1, dim(set.c));
  write_idx(images, dims, bytes);

  if (!set.has_labels() || labels.empty()) return;
  if (set.labels.size() != static_cast<std::size_t>(set.n)) {
    fail(labels, "cannot save '" + set.name + "': label count does not match image count");
  }
  std::vector<std::uint8_t> label_bytes(set.labels.size());
  for (std::size_t i = 0; i < set.labels.size(); ++i) {
    const auto label = set.labels[i];
    if (label < 0 || label > 255) {
      fail(labels, "label " + std::to_string(label) + " of image " + std::to_string(i) +
                       " does not fit in a byte");
    }
    label_bytes[i] = static_cast<std::uint8_t>(label);
  }
  write_idx(labels, {dim(set.n)}, label_bytes);
}

}  // namespace spinbayes
