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
