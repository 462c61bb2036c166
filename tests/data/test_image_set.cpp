// Image sets: selection, deterministic splits, subsets and shuffles.
#include <gtest/gtest.h>
#include <sys/resource.h>
#include <unistd.h>

#include <cstdlib>
#include <optional>

#include "data_fixtures.h"

using namespace spinbayes;
using namespace spinbayes::testing;

TEST(ImageSetTest, SelectImages) {
  const ImageSet set = make_set(5, 2, 2, 2);
  const ImageSet picked = select_images(set, {4, 0, 4});
  EXPECT_EQ(picked.n, 3);
  EXPECT_EQ(picked.labels, (std::vector<std::int32_t>{4, 0, 4}));
  EXPECT_TRUE(std::equal(set.image(4), set.image(4) + 8, picked.image(0)));
  EXPECT_TRUE(std::equal(set.image(0), set.image(0) + 8, picked.image(1)));
  expect_error([&] { select_images(set, {5}); }, {"synthetic"});
  expect_error([&] { select_images(set, {-1}); }, {"synthetic"});
}

TEST(ImageSetTest, SplitIsDeterministicDisjointAndComplete) {
  const ImageSet set = indexed_set(50);
  const auto [train, validation] = split_train_validation(set, 12, 7);
  EXPECT_EQ(train.n, 38);
  EXPECT_EQ(validation.n, 12);
  EXPECT_TRUE(std::is_sorted(train.labels.begin(), train.labels.end()));  // train keeps its order
  std::set<int> all;
  for (const int i : ids(train)) all.insert(i);
  for (const int i : ids(validation)) all.insert(i);
  EXPECT_EQ(all.size(), 50u);
  EXPECT_EQ(*all.begin(), 0);
  EXPECT_EQ(*all.rbegin(), 49);
  for (int i = 0; i < train.n; ++i)
    EXPECT_EQ(train.image(i)[0], static_cast<float>(train.labels[i]));

  const auto again = split_train_validation(set, 12, 7);
  EXPECT_EQ(ids(again.first), ids(train));
  EXPECT_EQ(ids(again.second), ids(validation));
  EXPECT_NE(ids(split_train_validation(set, 12, 8).second), ids(validation));

  EXPECT_EQ(split_train_validation(set, 0, 7).first.n, 50);
  EXPECT_EQ(split_train_validation(set, 50, 7).second.n, 50);
  expect_error([&] { split_train_validation(set, 51, 7); }, {"indexed"});
  expect_error([&] { split_train_validation(set, -1, 7); }, {"indexed"});
}

TEST(ImageSetTest, RandomSubsetIsDeterministicAndDistinct) {
  const ImageSet set = indexed_set(100);
  const ImageSet subset = random_subset(set, 30, 1);
  EXPECT_EQ(subset.n, 30);
  const std::vector<int> picked = ids(subset);
  EXPECT_EQ(std::set<int>(picked.begin(), picked.end()).size(), 30u);
  EXPECT_EQ(ids(random_subset(set, 30, 1)), picked);
  EXPECT_NE(ids(random_subset(set, 30, 2)), picked);
  // A shorter draw is a prefix of a longer one with the same seed.
  const std::vector<int> longer = ids(random_subset(set, 60, 1));
  EXPECT_TRUE(std::equal(picked.begin(), picked.end(), longer.begin()));
  // count >= n: unchanged, in order.
  EXPECT_EQ(ids(random_subset(set, 100, 1)), ids(set));
  EXPECT_EQ(ids(random_subset(set, 1000, 1)), ids(set));
  EXPECT_EQ(random_subset(set, 0, 1).n, 0);
  expect_error([&] { random_subset(set, -1, 1); }, {"indexed"});
}

TEST(ImageSetTest, ShuffleIsPinned) {
  // The shuffle is our own Fisher-Yates over SplitMix64, so this order must hold on every platform.
  EXPECT_EQ(ids(random_subset(indexed_set(10), 9, 42)),
            (std::vector<int>{3, 2, 4, 5, 8, 7, 0, 9, 6}));
}
