// The field test's statistics: repeatability ranking on a hand-built case, the mu +- k sigma rule,
// the coverage curve's vector counts and the --vectors grammar.
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "core/error.h"
#include "population/field_test.h"

using namespace spinbayes;

TEST(FieldTest, RanksCandidatesByTheSignalToNoiseOfTheirEntropy) {
  // Three fault-free runs of five candidates:
  //   0: always 0 (certain: nothing a fault could lower) -> score 0
  //   1: 0.5, 0.5, 0.5 (uncertain and repeatable)         -> 0.5 / 1e-3 = 500
  //   2: 1.0, 1.2, 0.8 (uncertain, spread 0.2)             -> 1.0 / 0.201 = 4.975
  //   3: 0.2, 0.21, 0.19 (spread 0.01)                      -> 0.2 / 0.011 = 18.18
  //   4: 0.5, 0.5, 0.5 (ties with 1: the lower index first)
  const std::vector<std::vector<double>> entropy = {
      {0.0, 0.5, 1.0, 0.2, 0.5}, {0.0, 0.5, 1.2, 0.21, 0.5}, {0.0, 0.5, 0.8, 0.19, 0.5}};
  const std::vector<VectorRank> r = rank_by_repeatability(entropy);
  ASSERT_EQ(r.size(), 5u);
  const std::vector<int> order = {r[0].candidate, r[1].candidate, r[2].candidate, r[3].candidate, r[4].candidate};
  EXPECT_EQ(order, (std::vector<int>{1, 4, 3, 2, 0}));
  EXPECT_NEAR(r[0].score, 500.0, 1e-9);
  EXPECT_NEAR(r[2].mean, 0.2, 1e-12);
  EXPECT_NEAR(r[2].sd, 0.01, 1e-12);
  EXPECT_NEAR(r[2].score, 0.2 / 0.011, 1e-9);
  EXPECT_NEAR(r[3].score, 1.0 / (0.2 + 1e-3), 1e-9);
  EXPECT_EQ(r[4].score, 0.0);
  // One run cannot tell repeatability; runs of different candidates are not one ranking.
  EXPECT_THROW(rank_by_repeatability({{0.1, 0.2}}), Error);
  EXPECT_THROW(rank_by_repeatability({{0.1, 0.2}, {0.1}}), Error);
}

TEST(FieldTest, FlagsAChipOutsideMuPlusMinusKSigma) {
  const std::vector<double> reference = {1.0, 2.0, 3.0, 4.0, 5.0};  // mu 3, sigma sqrt(2.5)
  const Reference ref = fit_reference(reference);
  EXPECT_DOUBLE_EQ(ref.mu, 3.0);
  EXPECT_DOUBLE_EQ(ref.sigma, std::sqrt(2.5));
  EXPECT_EQ(ref.chips, 5);
  const double band = 3.0 * std::sqrt(2.5);
  EXPECT_FALSE(flagged(3.0 + band, ref, 3.0));  // on the bound: inside
  EXPECT_TRUE(flagged(3.0 + band * 1.0001, ref, 3.0));
  EXPECT_TRUE(flagged(3.0 - band * 1.0001, ref, 3.0));
  EXPECT_FALSE(flagged(3.0 - band * 0.9999, ref, 3.0));
  EXPECT_TRUE(flagged(3.0 + band * 0.9, ref, 2.0));  // a smaller k flags sooner
  // A reference of identical chips flags any other value.
  const Reference flat = fit_reference(std::vector<double>{0.25, 0.25, 0.25});
  EXPECT_FALSE(flagged(0.25, flat, 3.0));
  EXPECT_TRUE(flagged(0.2500001, flat, 3.0));
  EXPECT_THROW(fit_reference(std::vector<double>{1.0}), Error);
}

TEST(FieldTest, StatisticIsTheMeanEntropyOfTheFirstVectors) {
  const std::vector<double> e = {0.1, 0.3, 0.8, 2.0};
  EXPECT_DOUBLE_EQ(test_statistic(e, 1), 0.1);
  EXPECT_DOUBLE_EQ(test_statistic(e, 2), 0.2);
  EXPECT_DOUBLE_EQ(test_statistic(e, 4), 0.8);
  EXPECT_THROW(test_statistic(e, 0), Error);
  EXPECT_THROW(test_statistic(e, 5), Error);
  EXPECT_EQ(vector_counts(110), (std::vector<int>{7, 14, 28, 55, 110}));
  EXPECT_EQ(vector_counts(3), (std::vector<int>{1, 2, 3}));
  EXPECT_EQ(vector_counts(1), (std::vector<int>{1}));
}

TEST(FieldTest, VectorCountsAreCountsOrShares) {
  EXPECT_EQ(parse_vector_count("120", 55000), 120);
  EXPECT_EQ(parse_vector_count("0.2%", 55000), 110);
  EXPECT_EQ(parse_vector_count("100%", 300), 300);
  EXPECT_EQ(parse_vector_count("0.0001%", 300), 1);  // at least one
  EXPECT_EQ(parse_vector_count("300", 300), 300);
  for (const char* bad : {"", "%", "0", "0%", "-5", "1e9", "301", "12.5", "abc", "10%%", "nan", "inf%", " 5", "101%", "5x"}) {
    try {
      parse_vector_count(bad, 300);
      ADD_FAILURE() << "accepted '" << bad << "'";
    } catch (const Error& e) {
      EXPECT_EQ(std::string(e.what()).rfind("--vectors: ", 0), 0u) << e.what();
    }
  }
}
