// The data sets a run names: OOD and shifted sets, Fashion-MNIST and the data paths.
#include <gtest/gtest.h>
#include <sys/resource.h>
#include <unistd.h>

#include <cstdlib>
#include <optional>

#include "data_fixtures.h"

using namespace spinbayes;
using namespace spinbayes::testing;

class OodTest : public TempDirTest {
 protected:
  void SetUp() override {
    TempDirTest::SetUp();
    reference_ = make_set(6, 1, 4, 4);
    reference_.name = "reference";
    paths_.fashion_mnist = path("no-fashion");
    paths_.mnist_digits = path("mnist-digits");
  }
  ImageSet make(const std::string& name, int count, std::uint64_t seed = 1) const {
    return make_ood_set(name, reference_, count, paths_, seed);
  }

  ImageSet reference_;
  DataPaths paths_;
};

TEST_F(OodTest, NamesAreListed) {
  EXPECT_EQ(ood_set_names(), (std::vector<std::string>{"mnist", "gaussian", "uniform", "rotate90",
                                                       "invert", "idx:PATH"}));
}

TEST_F(OodTest, NoiseSetsHaveShapeRangeAndDeterminism) {
  for (const std::string name : {"gaussian", "uniform"}) {
    SCOPED_TRACE(name);
    const ImageSet set = make(name, 20);  // noise sets are not limited by reference.n
    EXPECT_EQ(set.name, name);
    EXPECT_EQ(set.n, 20);
    EXPECT_EQ(set.c, 1);
    EXPECT_EQ(set.h, 4);
    EXPECT_EQ(set.w, 4);
    EXPECT_EQ(set.pixels.size(), 20u * 16u);
    EXPECT_FALSE(set.has_labels());
    expect_in_unit_interval(set);
    EXPECT_EQ(make(name, 20).pixels, set.pixels);
    EXPECT_NE(make(name, 20, 2).pixels, set.pixels);
    EXPECT_GT(std::set<float>(set.pixels.begin(), set.pixels.end()).size(), 100u);
  }
  EXPECT_NE(make("gaussian", 20).pixels, make("uniform", 20).pixels);
}

TEST_F(OodTest, GaussianMatchesReferenceStatistics) {
  // Reference pixels 0.3 and 0.5 in equal numbers: mean 0.4, std 0.1, far from the clip bounds.
  ImageSet reference = make_set(100, 1, 4, 4);
  for (std::size_t i = 0; i < reference.pixels.size(); ++i)
    reference.pixels[i] = i % 2 ? 0.3f : 0.5f;
  const ImageSet set = make_ood_set("gaussian", reference, 500, paths_, 3);
  double sum = 0, sum_sq = 0;
  for (const float p : set.pixels) {
    sum += p;
    sum_sq += static_cast<double>(p) * p;
  }
  const double mean = sum / static_cast<double>(set.pixels.size());
  const double var = sum_sq / static_cast<double>(set.pixels.size()) - mean * mean;
  EXPECT_NEAR(mean, 0.4, 0.01);
  EXPECT_NEAR(std::sqrt(var), 0.1, 0.01);

  // Color: each channel's noise has that channel's statistics.
  ImageSet color = make_set(60, 3, 4, 4);
  for (int i = 0; i < color.n; ++i) {
    for (int k = 0; k < 48; ++k) {
      const int ch = k / 16;
      const_cast<float*>(color.image(i))[k] = ch == 0 ? (k % 2 ? 0.7f : 0.9f) : (ch == 1 ? 0.2f : (k % 2 ? 0.4f : 0.6f));
    }
  }
  const std::vector<PixelStatistics> noise = channel_statistics(make_ood_set("gaussian", color, 400, paths_, 3));
  ASSERT_EQ(noise.size(), 3u);
  EXPECT_NEAR(noise[0].mean, 0.8, 0.01);
  EXPECT_NEAR(noise[0].std, 0.1, 0.01);
  EXPECT_NEAR(noise[1].mean, 0.2, 1e-6);
  EXPECT_NEAR(noise[1].std, 0.0, 1e-6);
  EXPECT_NEAR(noise[2].mean, 0.5, 0.01);
}

TEST_F(OodTest, UniformCoversTheUnitInterval) {
  const ImageSet set = make("uniform", 200);
  const auto [lo, hi] = std::minmax_element(set.pixels.begin(), set.pixels.end());
  EXPECT_LT(*lo, 0.01f);
  EXPECT_GT(*hi, 0.99f);
  EXPECT_LT(*hi, 1.0f);
}

TEST_F(OodTest, Rotate90CounterClockwise) {
  ImageSet reference = make_set(2, 1, 3, 3);
  for (int i = 0; i < 9; ++i)
    reference.pixels[static_cast<std::size_t>(i)] = static_cast<float>(i) / 8.0f;
  const ImageSet set = make_ood_set("rotate90", reference, 10, paths_, 1);
  EXPECT_EQ(set.name, "rotate90");
  EXPECT_EQ(set.n, 2);  // at most reference.n
  EXPECT_EQ(set.labels, reference.labels);
  // 0 1 2       2 5 8
  // 3 4 5  ->   1 4 7
  // 6 7 8       0 3 6
  const std::vector<float> expected{2, 5, 8, 1, 4, 7, 0, 3, 6};
  for (int i = 0; i < 9; ++i)
    EXPECT_FLOAT_EQ(set.image(0)[i] * 8.0f, expected[static_cast<std::size_t>(i)]);
  // Four turns give the original back.
  ImageSet turned = reference;
  for (int k = 0; k < 4; ++k) turned = make_ood_set("rotate90", turned, 10, paths_, 1);
  EXPECT_EQ(turned.pixels, reference.pixels);

  expect_error([&] { make_ood_set("rotate90", make_set(2, 1, 3, 4), 2, paths_, 1); }, {"1x3x4"});
}

TEST_F(OodTest, DerivedSetsKeepShapeLabelsAndAreDeterministic) {
  for (const std::string name : {"rotate90", "invert"}) {
    SCOPED_TRACE(name);
    const ImageSet set = make(name, 4);
    EXPECT_EQ(set.name, name);
    EXPECT_EQ(set.n, 4);
    EXPECT_EQ(set.c, reference_.c);
    EXPECT_EQ(set.h, reference_.h);
    EXPECT_EQ(set.w, reference_.w);
    EXPECT_EQ(set.labels, (std::vector<std::int32_t>(reference_.labels.begin(),
                                                     reference_.labels.begin() + 4)));
    expect_in_unit_interval(set);
    EXPECT_EQ(make(name, 4, 99).pixels, set.pixels);
    EXPECT_EQ(make(name, 100).n, reference_.n);
  }
  const ImageSet inverted = make("invert", 100);
  for (std::size_t i = 0; i < inverted.pixels.size(); ++i)
    EXPECT_FLOAT_EQ(inverted.pixels[i], 1.0f - reference_.pixels[i]);
}

TEST_F(OodTest, IdxFile) {
  save_idx_images(make_set(8, 1, 4, 4), path("ood-images"), {});
  const std::string name = "idx:" + path("ood-images").string();
  const ImageSet set = make(name, 5);
  EXPECT_EQ(set.name, name);
  EXPECT_EQ(set.n, 5);
  EXPECT_EQ(set.c, 1);
  EXPECT_EQ(set.h, 4);
  EXPECT_EQ(set.w, 4);
  EXPECT_FALSE(set.has_labels());
  expect_in_unit_interval(set);
  EXPECT_EQ(make(name, 100).n, 8);

  save_idx_images(make_set(3, 1, 5, 5), path("wrong-shape"), {});
  expect_error([&] { make("idx:" + path("wrong-shape").string(), 3); },
               {path("wrong-shape").string() + ": ", "1x5x5", "1x4x4"});
  expect_error([&] { make("idx:" + path("absent").string(), 3); },
               {path("absent").string() + ": "});
}

TEST_F(OodTest, MnistFromConvertedDigits) {
  expect_error(
      [&] { make("mnist", 3); },
      {(paths_.mnist_digits / "images-idx3-ubyte").string() + ": ", "bash scripts/setup.sh"});
  ImageSet digits = make_set(5, 1, 4, 4);  // stands in for 28 x 28 digits, to match the reference
  save_idx_images(digits, paths_.mnist_digits / "images-idx3-ubyte",
                  paths_.mnist_digits / "labels-idx1-ubyte");
  const ImageSet set = make("mnist", 3);
  EXPECT_EQ(set.name, "mnist");
  EXPECT_EQ(set.n, 3);
  EXPECT_EQ(set.h, 4);
  expect_in_unit_interval(set);
  EXPECT_EQ(make("mnist", 50).n, 5);
}

TEST_F(OodTest, UnknownNameAndBadCount) {
  expect_error(
      [&] { make("foo", 3); },
      {"unknown OOD set 'foo' (known: mnist, gaussian, uniform, rotate90, invert, idx:PATH)"});
  expect_error([&] { make("idx:", 3); }, {"unknown OOD set 'idx:'"});
  expect_error([&] { make("uniform", 0); }, {"uniform"});
}

using DatasetsTest = TempDirTest;

TEST_F(DatasetsTest, FashionMnistMissing) {
  DataPaths paths;
  paths.fashion_mnist = path("nowhere");
  expect_error(
      [&] { load_fashion_mnist(paths, "train"); },
      {(path("nowhere") / "train-images-idx3-ubyte.gz").string() +
       ": Fashion-MNIST not found (install the Debian package dataset-fashion-mnist or set "
       "SPINBAYES_FASHION_MNIST)"});
  expect_error([&] { load_fashion_mnist(paths, "validation"); }, {"validation"});
}

TEST_F(DatasetsTest, FashionMnistAcceptsUncompressedFiles) {
  ImageSet set = make_set(3, 1, 28, 28);
  save_idx_images(set, path("t10k-images-idx3-ubyte"), path("t10k-labels-idx1-ubyte"));
  DataPaths paths;
  paths.fashion_mnist = dir_;
  const ImageSet test = load_fashion_mnist(paths, "test");
  EXPECT_EQ(test.n, 3);
  EXPECT_EQ(test.labels, set.labels);
}

TEST(FashionMnistTest, RealTestSplit) {
  DataPaths paths;  // the Debian location
  if (!fs::is_directory(paths.fashion_mnist)) GTEST_SKIP() << paths.fashion_mnist << " is absent";
  const ImageSet test = load_fashion_mnist(paths, "test");
  EXPECT_EQ(test.n, 10000);
  EXPECT_EQ(test.c, 1);
  EXPECT_EQ(test.h, 28);
  EXPECT_EQ(test.w, 28);
  ASSERT_EQ(test.labels.size(), 10000u);
  std::vector<int> counts(10, 0);
  for (const auto label : test.labels) {
    ASSERT_GE(label, 0);
    ASSERT_LE(label, 9);
    ++counts[static_cast<std::size_t>(label)];
  }
  for (const int count : counts) EXPECT_EQ(count, 1000);  // the test split is balanced
  expect_in_unit_interval(test);
}

namespace {

// Sets or unsets an environment variable for one scope.
class ScopedEnv {
 public:
  ScopedEnv(const char* name, const char* value) : name_(name) {
    if (const char* old = std::getenv(name)) old_ = old;
    if (value)
      ::setenv(name, value, 1);
    else
      ::unsetenv(name);
  }
  ~ScopedEnv() {
    if (old_)
      ::setenv(name_, old_->c_str(), 1);
    else
      ::unsetenv(name_);
  }
  ScopedEnv(const ScopedEnv&) = delete;
  ScopedEnv& operator=(const ScopedEnv&) = delete;

 private:
  const char* name_;
  std::optional<std::string> old_;
};

}  // namespace

TEST(DataPathsTest, FromEnvironment) {
  {
    ScopedEnv fashion("SPINBAYES_FASHION_MNIST", "/data/fm");
    ScopedEnv cache("SPINBAYES_DATA_CACHE", "/data/cache");
    const DataPaths paths = DataPaths::from_environment();
    EXPECT_EQ(paths.fashion_mnist, fs::path("/data/fm"));
    EXPECT_EQ(paths.mnist_digits, fs::path("/data/cache/mnist-digits"));
  }
  {
    ScopedEnv fashion("SPINBAYES_FASHION_MNIST", nullptr);
    ScopedEnv cache("SPINBAYES_DATA_CACHE", nullptr);
    ScopedEnv home("HOME", "/home/someone");
    const DataPaths paths = DataPaths::from_environment();
    EXPECT_EQ(paths.fashion_mnist, fs::path("/usr/share/datasets/fashion-mnist"));
    EXPECT_EQ(paths.mnist_digits, fs::path("/home/someone/.cache/spinbayes/mnist-digits"));
  }
}

// The in-distribution data sets by spec (--data): their forms, the canonical text a run records,
// and the errors of a bad spec.
TEST(DataSetTest, SpecsParseToTheirCanonicalText) {
  EXPECT_EQ(parse_data_set("fashion-mnist").kind, DataSet::Kind::fashion_mnist);
  EXPECT_EQ(parse_data_set("mnist").spec(), "mnist");
  const DataSet cifar = parse_data_set("cifar10:/data/cifar/../cifar-10-batches-bin");
  EXPECT_EQ(cifar.kind, DataSet::Kind::cifar10);
  EXPECT_EQ(cifar.spec(), "cifar10:/data/cifar-10-batches-bin");
  // Relative paths are made absolute, so the run's record holds wherever it is read from.
  const DataSet idx = parse_data_set("idx:a,b,/c,d");
  ASSERT_EQ(idx.files.size(), 4u);
  EXPECT_TRUE(idx.files[0].is_absolute());
  EXPECT_EQ(idx.files[0], std::filesystem::current_path() / "a");
  EXPECT_EQ(idx.files[2], std::filesystem::path("/c"));
  EXPECT_EQ(parse_data_set(idx.spec()).spec(), idx.spec());
  EXPECT_EQ(parse_data_set(cifar.spec()).spec(), cifar.spec());
}

TEST(DataSetTest, BadSpecsAreOneLineErrors) {
  expect_error([] { parse_data_set("cifar100:/x", "--data"); },
               {"--data: unknown data set 'cifar100:/x' (known: fashion-mnist, mnist, cifar10:DIR, idx:"});
  expect_error([] { parse_data_set("", "--data"); }, {"--data: unknown data set ''"});
  expect_error([] { parse_data_set("cifar10:", "--data"); }, {"--data: cifar10: needs the directory"});
  expect_error([] { parse_data_set("idx:a,b,c", "--data"); }, {"--data: idx: needs 4 files", "got 3"});
  expect_error([] { parse_data_set("idx:a,b,c,d,e", "--data"); }, {"got 5"});
  expect_error([] { parse_data_set("idx:a,,c,d", "--data"); }, {"--data: idx: has an empty path"});
  expect_error([] { parse_data_set("idx:a,b,c,", "--data"); }, {"--data: idx: has an empty path"});
  expect_error([] { parse_data_set("Fashion-MNIST\n", "--data"); }, {"unknown data set"});
}

using DataSplitTest = TempDirTest;

namespace {

std::string cifar_records(int count, int first_label) {
  std::string bytes;
  for (int r = 0; r < count; ++r) {
    bytes.push_back(static_cast<char>((first_label + r) % 10));
    for (int i = 0; i < 3072; ++i) bytes.push_back(static_cast<char>((i / 1024 == 0 ? 200 : 20) + r % 7));
  }
  return bytes;
}

}  // namespace

TEST_F(DataSplitTest, CifarDirectoryGivesFiveTrainingBatchesAndTheTestBatch) {
  for (int b = 1; b <= 5; ++b) write_bytes(path("cifar/data_batch_" + std::to_string(b) + ".bin"), cifar_records(3, b));
  write_bytes(path("cifar/test_batch.bin"), cifar_records(4, 0));
  const DataSet data = parse_data_set("cifar10:" + path("cifar").string());
  const DataPaths paths;
  const ImageSet train = load_data_split(data, paths, "train");
  EXPECT_EQ(train.n, 15);
  EXPECT_EQ(train.c, 3);
  EXPECT_EQ(train.labels[3], 2);  // batch 2's first record
  const ImageSet test = load_data_split(data, paths, "test", 2);
  EXPECT_EQ(test.n, 2);
  EXPECT_EQ(test.name, "cifar10-test");
  EXPECT_EQ(class_count(data, train), 10);  // CIFAR-10's, whatever labels this subset holds
  // Per channel: red is bright, green and blue dark, each with the same spread.
  const std::vector<PixelStatistics> stats = channel_statistics(train);
  ASSERT_EQ(stats.size(), 3u);
  EXPECT_NEAR(stats[0].mean * 255.0, 200.0 + (0 + 1 + 2) / 3.0, 1e-3);
  EXPECT_NEAR(stats[1].mean * 255.0, 20.0 + 1.0, 1e-3);
  EXPECT_NEAR(stats[2].mean, stats[1].mean, 1e-9);
  EXPECT_NEAR(stats[0].std * 255.0, std::sqrt(2.0 / 3.0), 1e-3);

  std::filesystem::remove(path("cifar/data_batch_4.bin"));
  expect_error([&] { load_data_split(data, paths, "train"); }, {path("cifar/data_batch_4.bin").string() + ": CIFAR-10 batch file not found"});
  write_bytes(path("cifar/data_batch_4.bin"), cifar_records(2, 0).substr(1));
  expect_error([&] { load_data_split(data, paths, "train"); }, {"data_batch_4.bin: size 6145 is not a whole number of 3073-byte"});
  std::string bad = cifar_records(1, 0);
  bad[0] = 10;
  write_bytes(path("cifar/test_batch.bin"), bad);
  expect_error([&] { load_data_split(data, paths, "test"); }, {"test_batch.bin: record 0 has label 10"});
}

TEST_F(DataSplitTest, IdxFilesGiveTheirSplitsAndTheirClassCount) {
  ImageSet train = make_set(12, 3, 8, 8), test = make_set(5, 3, 8, 8);
  for (auto& l : train.labels) l %= 4;
  for (auto& l : test.labels) l %= 4;
  save_idx_images(train, path("tr-img"), path("tr-lab"));
  save_idx_images(test, path("te-img"), path("te-lab"));
  const DataSet data = parse_data_set("idx:" + path("tr-img").string() + "," + path("tr-lab").string() + "," +
                                      path("te-img").string() + "," + path("te-lab").string());
  const DataPaths paths;
  const ImageSet a = load_data_split(data, paths, "train");
  EXPECT_EQ(a.n, 12);
  EXPECT_EQ(a.c, 3);
  EXPECT_EQ(class_count(data, a), 4);
  EXPECT_EQ(load_data_split(data, paths, "test").n, 5);
  // Labels are required: a missing label file names itself.
  const DataSet unlabelled = parse_data_set("idx:" + path("tr-img").string() + "," + path("none").string() + "," +
                                            path("te-img").string() + "," + path("te-lab").string());
  expect_error([&] { load_data_split(unlabelled, paths, "train"); }, {path("none").string()});
}

TEST_F(DataSplitTest, MnistDigitsSplitEverySixthImageIntoTest) {
  DataPaths paths;
  paths.mnist_digits = path("digits");
  expect_error([&] { load_data_split(parse_data_set("mnist"), paths, "train"); }, {"bash scripts/setup.sh"});
  ImageSet digits = make_set(13, 1, 8, 8);
  save_idx_images(digits, paths.mnist_digits / "images-idx3-ubyte", paths.mnist_digits / "labels-idx1-ubyte");
  const ImageSet train = load_data_split(parse_data_set("mnist"), paths, "train");
  const ImageSet test = load_data_split(parse_data_set("mnist"), paths, "test");
  EXPECT_EQ(train.n, 11);
  EXPECT_EQ(test.n, 2);
  EXPECT_EQ(test.labels, (std::vector<std::int32_t>{5, 1}));  // images 5 and 11
  EXPECT_EQ(train.labels[5], 6);
  EXPECT_EQ(load_data_split(parse_data_set("mnist"), paths, "train", 4).n, 4);
}
