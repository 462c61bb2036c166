// The statistics, yield specification, chip records and single-process distribution behind
// `spinbayes chips`.
#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

#include "core/error.h"
#include "core/fingerprint.h"
#include "error_checks.h"
#include "population/chip_record.h"
#include "population/ranks.h"
#include "population/statistics.h"
#include "population/yield_spec.h"

namespace spinbayes {
namespace {

using testing::expect_error;

TEST(PopulationStatistics, PercentilesInterpolateBetweenOrderStatistics) {
  const std::vector<double> v = {1, 2, 3, 4};
  EXPECT_NEAR(percentile(v, 0.05), 1.15, 1e-12);  // NumPy: np.percentile([1, 2, 3, 4], 5)
  EXPECT_NEAR(percentile(v, 0.5), 2.5, 1e-12);
  EXPECT_NEAR(percentile(v, 0.95), 3.85, 1e-12);
  EXPECT_EQ(percentile({7.0}, 0.95), 7.0);
  const MetricSummary s = summarize_metric({4, 1, 3, 2});
  EXPECT_EQ(s.count, 4);
  EXPECT_NEAR(s.mean, 2.5, 1e-12);
  EXPECT_NEAR(s.sd, std::sqrt(5.0 / 3.0), 1e-12);
  EXPECT_EQ(s.min, 1);
  EXPECT_EQ(s.max, 4);
  EXPECT_NEAR(s.p5, 1.15, 1e-12);
  EXPECT_EQ(summarize_metric({0.3}).sd, 0.0);
  EXPECT_THROW(summarize_metric({}), Error);
}

TEST(PopulationStatistics, BinomialCdfMatchesTheDirectSum) {
  for (int n : {1, 5, 12}) {
    for (double p : {0.1, 0.5, 0.83}) {
      double sum = 0, choose = 1;
      for (int k = 0; k <= n; ++k) {
        if (k > 0) choose = choose * (n - k + 1) / k;
        sum += choose * std::pow(p, k) * std::pow(1 - p, n - k);
        EXPECT_NEAR(binomial_cdf(k, n, p), std::min(sum, 1.0), 1e-12) << n << " " << p << " " << k;
      }
    }
  }
}

TEST(PopulationStatistics, ClopperPearsonGivesTheExactInterval) {
  // Closed forms at the ends: k = 0 gives [0, 1 - (alpha/2)^(1/n)], k = n its mirror.
  const BinomialInterval none = clopper_pearson(0, 10);
  EXPECT_EQ(none.low, 0.0);
  EXPECT_NEAR(none.high, 1.0 - std::pow(0.025, 0.1), 1e-9);
  const BinomialInterval all = clopper_pearson(10, 10);
  EXPECT_NEAR(all.low, std::pow(0.025, 0.1), 1e-9);
  EXPECT_EQ(all.high, 1.0);
  // 5 of 10: [0.187086, 0.812914] (tables of the Clopper-Pearson interval).
  const BinomialInterval half = clopper_pearson(5, 10);
  EXPECT_NEAR(half.low, 0.187086, 1e-6);
  EXPECT_NEAR(half.high, 0.812914, 1e-6);
  // The interval of k of n mirrors that of n - k, and holds the estimate.
  for (int k = 0; k <= 100; k += 7) {
    const BinomialInterval a = clopper_pearson(k, 100), b = clopper_pearson(100 - k, 100);
    EXPECT_NEAR(a.low, 1.0 - b.high, 1e-9);
    EXPECT_LE(a.low, k / 100.0);
    EXPECT_GE(a.high, k / 100.0);
  }
  EXPECT_THROW(clopper_pearson(3, 2), Error);
  EXPECT_THROW(clopper_pearson(0, 0), Error);
}

TEST(PopulationStatistics, IncompleteBetaAndStudentsTMatchClosedForms) {
  // I_x(1, 1) = x, I_x(a, 1) = x^a, I_x(1, b) = 1 - (1 - x)^b, and the symmetry I_x(a, b) = 1 - I_{1-x}(b, a).
  for (double x : {0.0, 0.01, 0.3, 0.5, 0.77, 0.999, 1.0}) {
    EXPECT_NEAR(regularized_incomplete_beta(x, 1, 1), x, 1e-13);
    EXPECT_NEAR(regularized_incomplete_beta(x, 3.5, 1), std::pow(x, 3.5), 1e-13);
    EXPECT_NEAR(regularized_incomplete_beta(x, 1, 2.5), 1 - std::pow(1 - x, 2.5), 1e-13);
    EXPECT_NEAR(regularized_incomplete_beta(x, 2.2, 7.1), 1 - regularized_incomplete_beta(1 - x, 7.1, 2.2), 1e-13);
  }
  // Student's t: df = 1 is Cauchy, p = 1 - (2 / pi) atan|t|; df = 2 has p = 1 - |t| / sqrt(2 + t^2);
  // a large df approaches the normal (p = 0.05 at t = 1.959964).
  const double pi = std::acos(-1.0);
  for (double t : {0.0, 0.3, -1.0, 2.5, 12.7, -40.0}) {
    EXPECT_NEAR(student_t_two_sided_p(t, 1), 1 - 2 / pi * std::atan(std::fabs(t)), 1e-12) << t;
    EXPECT_NEAR(student_t_two_sided_p(t, 2), 1 - std::fabs(t) / std::sqrt(2 + t * t), 1e-12) << t;
  }
  EXPECT_NEAR(student_t_two_sided_p(1.959964, 1e7), 0.05, 1e-6);
  // Tables of Student's t: the two-sided 5 % point for df = 4 is 2.776445, for df = 10 2.228139.
  EXPECT_NEAR(student_t_two_sided_p(2.776445, 4), 0.05, 1e-6);
  EXPECT_NEAR(student_t_two_sided_p(2.228139, 10), 0.05, 1e-6);
  EXPECT_THROW(regularized_incomplete_beta(1.5, 1, 1), Error);
  EXPECT_THROW(student_t_two_sided_p(1.0, 0), Error);
}

TEST(PopulationStatistics, PairedTestsGiveTheDifferencesTAndTheExactSignFlipP) {
  const PairedTest r = paired_test({0.93, 0.91, 0.95}, {0.90, 0.90, 0.91});
  ASSERT_EQ(r.differences.size(), 3u);
  EXPECT_NEAR(r.differences[0], 0.03, 1e-12);
  EXPECT_NEAR(r.mean, (0.03 + 0.01 + 0.04) / 3, 1e-12);
  const double sd = std::sqrt((std::pow(0.03 - r.mean, 2) + std::pow(0.01 - r.mean, 2) + std::pow(0.04 - r.mean, 2)) / 2);
  EXPECT_NEAR(r.sd, sd, 1e-12);
  ASSERT_TRUE(r.t.has_value());
  EXPECT_NEAR(*r.t, r.mean / (sd / std::sqrt(3.0)), 1e-9);
  EXPECT_NEAR(r.p_t, 1 - *r.t / std::sqrt(2 + *r.t * *r.t), 1e-12);  // df = 2
  // Every difference positive: only the all-plus and all-minus assignments reach |mean|: 2 of 8.
  EXPECT_DOUBLE_EQ(r.p_sign_flip, 0.25);
  EXPECT_EQ(r.above, 3);
  EXPECT_EQ(r.below, 0);
  // Mixed signs, differences +1, -1, +3: the 8 assignments sum to 3, 5, 1, 3 and their negatives, so
  // 6 of 8 reach the observed |sum| = 3.
  const PairedTest mixed = paired_test({1, 0, 3}, {0, 1, 0});
  EXPECT_DOUBLE_EQ(mixed.p_sign_flip, 0.75);
  EXPECT_EQ(mixed.above, 2);
  EXPECT_EQ(mixed.below, 1);
  // No spread: no t; p is 0 for a constant nonzero difference, 1 for none.
  const PairedTest constant = paired_test({2, 3}, {1, 2});
  EXPECT_FALSE(constant.t.has_value());
  EXPECT_EQ(constant.p_t, 0.0);
  EXPECT_EQ(paired_test({1, 2}, {1, 2}).p_t, 1.0);
  EXPECT_EQ(paired_test({1, 2}, {1, 2}).p_sign_flip, 1.0);
  EXPECT_THROW(paired_test({1, 2}, {1}), Error);
  EXPECT_THROW(paired_test({}, {}), Error);
}

const std::vector<std::string> kMetrics = {"accuracy", "ece", "auroc.mnist"};

TEST(YieldSpec, ParsesRequirementsAndChecksChips) {
  const YieldSpec s = parse_yield_spec(" accuracy >= 0.89, ece<=0.05,auroc.mnist>0.9 ", kMetrics);
  ASSERT_EQ(s.requirements.size(), 3u);
  EXPECT_EQ(s.text(), "accuracy>=0.89,ece<=0.05,auroc.mnist>0.9");
  EXPECT_TRUE(s.requirements[0].met_by(0.89));
  EXPECT_FALSE(s.requirements[0].met_by(0.8899));
  EXPECT_TRUE(s.requirements[1].met_by(0.05));
  EXPECT_FALSE(s.requirements[2].met_by(0.9));
  EXPECT_TRUE(parse_yield_spec("ece<1e-2", kMetrics).requirements[0].met_by(0.005));
}

TEST(YieldSpec, RefusesWhatDoesNotParse) {
  expect_error([] { parse_yield_spec("", kMetrics); }, {"--spec", "empty specification"});
  expect_error([] { parse_yield_spec("accuracy", kMetrics); }, {"--spec", "'accuracy' has no comparison"});
  expect_error([] { parse_yield_spec("accuracy==0.9", kMetrics); }, {"unknown comparison"});
  expect_error([] { parse_yield_spec("accuracy=>0.9", kMetrics); }, {"unknown comparison"});
  expect_error([] { parse_yield_spec("accuracy>=0.9,", kMetrics); }, {"an empty requirement"});
  expect_error([] { parse_yield_spec(">=0.9", kMetrics); }, {"names no metric"});
  expect_error([] { parse_yield_spec("acc>=0.9", kMetrics); },
               {"unknown metric 'acc'", "known: accuracy, ece, auroc.mnist"});
  expect_error([] { parse_yield_spec("auroc.gaussian>=0.9", kMetrics); }, {"unknown metric 'auroc.gaussian'"});
  expect_error([] { parse_yield_spec("accuracy>=0.9x", kMetrics); }, {"'0.9x' is not a finite number"});
  expect_error([] { parse_yield_spec("accuracy>=", kMetrics); }, {"'' is not a finite number"});
  expect_error([] { parse_yield_spec("accuracy>=inf", kMetrics); }, {"'inf' is not a finite number"});
  expect_error([] { parse_yield_spec("accuracy>=nan", kMetrics); }, {"not a finite number"});
  expect_error([] { parse_yield_spec("accuracy>=1e999", kMetrics); }, {"'1e999' is outside the range of a double"});
  expect_error([] { parse_yield_spec("accuracy>=1e-400", kMetrics); }, {"outside the range of a double"});
  expect_error([] { parse_yield_spec(std::string(500, 'a') + ">=1", kMetrics); }, {"unknown metric 'aaaa", "a...'"});
  expect_error([] { parse_yield_spec(std::string("accuracy>=0.9\n,x", 16), kMetrics); }, {"\\n"});
}

ChipRecord sample_record() {
  ChipRecord r;
  r.population = "0123456789abcdef";
  r.chip_seed = 18446744073709551615ULL;
  r.metrics = {{"accuracy", 0.1 + 0.2}, {"ece", 1e-300}, {"auroc.idx:/data/x-y_z", 0.875}};
  return r;
}

TEST(ChipRecords, ReadBackToTheSameBits) {
  const ChipRecord r = sample_record();
  const std::string text = chip_record_json(r);
  const ChipRecord back = parse_chip_record(text, "chip.json");
  EXPECT_EQ(back.population, r.population);
  EXPECT_EQ(back.chip_seed, r.chip_seed);
  EXPECT_FALSE(back.software);
  ASSERT_EQ(back.metrics.size(), 3u);
  for (std::size_t i = 0; i < 3; ++i) {
    EXPECT_EQ(back.metrics[i].first, r.metrics[i].first);
    EXPECT_EQ(back.metrics[i].second, r.metrics[i].second);  // bit for bit
  }
  EXPECT_EQ(chip_record_json(back), text);
  ChipRecord software = r;
  software.software = true;
  EXPECT_TRUE(parse_chip_record(chip_record_json(software), "s.json").software);
}

TEST(ChipRecords, RefuseWhatTheyCouldNotHaveWritten) {
  const std::string head = R"({"format":"spinbayes-chip","version":1,"population":"p",)";
  expect_error([] { parse_chip_record(std::string("{\0}", 3), "c.json"); }, {"c.json", "NUL"});
  expect_error([] { parse_chip_record("{", "c.json"); }, {"c.json", "not valid JSON"});
  expect_error([] { parse_chip_record("[1]", "c.json"); }, {"not a spinbayes chip record"});
  expect_error([&] { parse_chip_record(R"({"format":"spinbayes-chip","version":2})", "c.json"); }, {"unsupported version"});
  expect_error([&] { parse_chip_record(head + R"("chip":-1,"metrics":{}})", "c.json"); }, {"chip: not a chip seed"});
  expect_error([&] { parse_chip_record(head + R"("chip":1.5,"metrics":{}})", "c.json"); }, {"chip: not a chip seed"});
  expect_error([&] { parse_chip_record(head + R"("chip":"x","metrics":{}})", "c.json"); }, {"chip: not a chip seed"});
  expect_error([&] { parse_chip_record(head + R"("chip":1,"metrics":[]})", "c.json"); }, {"metrics: missing or not an object"});
  expect_error([&] { parse_chip_record(head + R"("chip":1,"metrics":{"a":"1"}})", "c.json"); }, {"metrics.a: not a finite number"});
  expect_error([&] { parse_chip_record(head + R"("chip":1,"metrics":{"a b":1}})", "c.json"); }, {"is not a metric name"});
  expect_error([&] { parse_chip_record(head + R"("chip":1,"metrics":{},"x":1})", "c.json"); }, {"unknown key 'x'"});
  expect_error([&] { parse_chip_record(R"({"format":"spinbayes-chip","version":1,"chip":1,"metrics":{}})", "c.json"); },
               {"population: missing"});
}

TEST(ChipRecords, ManifestsNameTheirIdentityAndItsDifferences) {
  const std::string identity = R"({"model_ir":"aa","samples":10})";
  const std::string manifest = population_manifest_json(identity);
  EXPECT_EQ(parse_population_manifest(manifest, "population.json"), identity);
  std::string edited = manifest;
  edited.replace(edited.find("10"), 2, "20");
  expect_error([&] { parse_population_manifest(edited, "population.json"); }, {"population.json", "fingerprint"});
  expect_error([] { parse_population_manifest("{}", "population.json"); }, {"not a spinbayes chip population"});
  EXPECT_EQ(identity_difference(identity, identity), "");
  EXPECT_EQ(identity_difference(identity, R"({"model_ir":"aa","samples":20})"), "samples is 10 there, 20 here");
  EXPECT_EQ(identity_difference(identity, R"({"model_ir":"aa"})"), "samples is 10 there, not here");
  EXPECT_NE(fingerprint(identity), fingerprint(R"({"model_ir":"ab","samples":10})"));
}

// A fake workload: results are the item's square; store stops after `stop_after` results.
class Squares final : public WorkItems {
 public:
  std::vector<std::size_t> todo;
  int prepared = 0;
  std::size_t stop_after = 0;
  std::vector<std::pair<std::size_t, std::string>> stored;

  std::vector<std::size_t> plan() override { return todo; }
  void prepare() override { ++prepared; }
  std::string compute(std::size_t item) override {
    if (item == 99) throw Error("item 99 fails");
    return std::to_string(item * item);
  }
  bool store(std::size_t item, const std::string& result) override {
    stored.emplace_back(item, result);
    return stop_after == 0 || stored.size() < stop_after;
  }
};

TEST(Distribution, OneProcessComputesEveryItemInOrder) {
  const Ranks alone;
  EXPECT_EQ(alone.size(), 1);
  EXPECT_TRUE(alone.root());
  Squares work;
  work.todo = {3, 1, 4};
  const Distribution d = distribute(alone, work);
  EXPECT_EQ(work.prepared, 1);
  ASSERT_EQ(work.stored.size(), 3u);
  EXPECT_EQ(work.stored[0], (std::pair<std::size_t, std::string>{3, "9"}));
  EXPECT_EQ(work.stored[2], (std::pair<std::size_t, std::string>{4, "16"}));
  ASSERT_EQ(d.ranks.size(), 1u);
  EXPECT_EQ(d.ranks[0].items, 3);

  Squares stopped;
  stopped.todo = {1, 2, 3, 4};
  stopped.stop_after = 2;
  distribute(alone, stopped);
  EXPECT_EQ(stopped.stored.size(), 2u);

  Squares nothing;  // nothing to do: nothing loaded
  distribute(alone, nothing);
  EXPECT_EQ(nothing.prepared, 0);

  Squares failing;
  failing.todo = {1, 99, 2};
  expect_error([&] { distribute(alone, failing); }, {"item 99 fails"});
  EXPECT_EQ(failing.stored.size(), 1u);
}

}  // namespace
}  // namespace spinbayes
