#include "uncertainty/metrics.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <limits>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "core/error.h"

namespace spinbayes {
namespace {

const double kLn2 = std::log(2.0);

// Summary of a single pass (T = 1): mean_probs equals `rows` (n x classes) exactly.
PredictiveSummary one_pass(int classes, std::vector<float> rows) {
  McPredictions mc;
  mc.samples = 1;
  mc.classes = classes;
  mc.inputs = static_cast<int>(rows.size()) / classes;
  mc.probs = std::move(rows);
  return summarize(mc);
}

// Runs f, expects a spinbayes::Error with a one-line message containing `fragment`.
template <typename F>
void expect_error(F&& f, const std::string& fragment) {
  try {
    f();
    ADD_FAILURE() << "no Error thrown, expected one mentioning '" << fragment << "'";
  } catch (const Error& e) {
    const std::string message = e.what();
    EXPECT_NE(message.find(fragment), std::string::npos) << message;
    EXPECT_EQ(message.find('\n'), std::string::npos) << message;
  }
}

// ---------------------------------------------------------------------------------------------
// summarize

TEST(Summarize, EntropyMutualInformationVariance) {
  // T = 2 passes, n = 2 inputs, k = 3 classes; probs[(t * n + i) * k + j].
  McPredictions mc;
  mc.samples = 2;
  mc.inputs = 2;
  mc.classes = 3;
  mc.probs = {
      0.5f, 0.25f, 0.25f,  // t = 0, input 0
      1.0f, 0.0f,  0.0f,   // t = 0, input 1
      0.5f, 0.25f, 0.25f,  // t = 1, input 0 (agrees with t = 0)
      0.0f, 1.0f,  0.0f,   // t = 1, input 1 (disagrees with t = 0)
  };
  const PredictiveSummary s = summarize(mc);

  // Input 0: mean p = (0.5, 0.25, 0.25).
  EXPECT_DOUBLE_EQ(s.mean_probs[0], 0.5);
  EXPECT_DOUBLE_EQ(s.mean_probs[1], 0.25);
  EXPECT_DOUBLE_EQ(s.mean_probs[2], 0.25);
  // H = -(0.5 ln 0.5 + 2 * 0.25 ln 0.25) = 0.5 ln 2 + ln 2 = 1.5 ln 2 ~ 1.0397.
  EXPECT_NEAR(s.entropy[0], 1.5 * kLn2, 1e-12);
  // Both passes equal the mean: E_t H[p_t] = 1.5 ln 2, MI = 0, variance of {0.5, 0.5} = 0.
  EXPECT_NEAR(s.expected_entropy[0], 1.5 * kLn2, 1e-12);
  EXPECT_NEAR(s.mutual_information[0], 0.0, 1e-12);
  EXPECT_GE(s.mutual_information[0], 0.0);
  EXPECT_DOUBLE_EQ(s.variance[0], 0.0);
  EXPECT_EQ(s.predicted[0], 0);

  // Input 1: mean p = (0.5, 0.5, 0).
  EXPECT_DOUBLE_EQ(s.mean_probs[3], 0.5);
  EXPECT_DOUBLE_EQ(s.mean_probs[4], 0.5);
  EXPECT_DOUBLE_EQ(s.mean_probs[5], 0.0);
  // H = -(2 * 0.5 ln 0.5 + 0 ln 0) = ln 2 ~ 0.6931 (0 ln 0 = 0, not NaN).
  EXPECT_NEAR(s.entropy[1], kLn2, 1e-12);
  // Each pass is one-hot: H[p_t] = 0, so E_t H[p_t] = 0 and MI = ln 2 - 0 = ln 2 > 0.
  EXPECT_DOUBLE_EQ(s.expected_entropy[1], 0.0);
  EXPECT_NEAR(s.mutual_information[1], kLn2, 1e-12);
  // Classes 0 and 1 tie at 0.5: the lowest index wins.
  EXPECT_EQ(s.predicted[1], 0);
  // p_t[0] = {1, 0}, mean 0.5: ((0.5)^2 + (0.5)^2) / 2 = 0.25 (population variance).
  EXPECT_DOUBLE_EQ(s.variance[1], 0.25);
}

TEST(Summarize, MutualInformationNeverNegative) {
  // Five identical passes: MI is 0 in exact arithmetic, but H[mean p] and mean_t H[p_t] round
  // differently; with these values the raw difference comes out at -1.1e-16 (glibc, x86-64) and
  // must be clamped to 0.
  McPredictions mc;
  mc.samples = 5;
  mc.inputs = 1;
  mc.classes = 3;
  for (int t = 0; t < mc.samples; ++t) mc.probs.insert(mc.probs.end(), {0.46f, 0.49f, 0.05f});
  const PredictiveSummary s = summarize(mc);
  EXPECT_GE(s.mutual_information[0], 0.0);
  EXPECT_NEAR(s.mutual_information[0], 0.0, 1e-12);
  EXPECT_NEAR(s.variance[0], 0.0, 1e-15);
  EXPECT_EQ(s.predicted[0], 1);
}

TEST(Summarize, RejectsBadShapes) {
  McPredictions mc;
  mc.samples = 2;
  mc.inputs = 2;
  mc.classes = 3;
  mc.probs.assign(11, 0.0f);  // 2 * 2 * 3 = 12 expected
  expect_error([&] { summarize(mc); }, "probs has 11 values");
  mc.probs.assign(12, 0.0f);
  mc.samples = 0;
  expect_error([&] { summarize(mc); }, "must be positive");
  mc.samples = 2;
  mc.inputs = -2;
  expect_error([&] { summarize(mc); }, "must be positive");
  mc.inputs = 2;
  mc.classes = 0;
  expect_error([&] { summarize(mc); }, "must be positive");
}

// ---------------------------------------------------------------------------------------------
// accuracy, NLL, Brier

TEST(Quality, AccuracyNllBrier) {
  // 3 inputs, 2 classes.
  const PredictiveSummary s = one_pass(2, {0.75f, 0.25f,    // predicted 0, label 0: right
                                           0.5f, 0.5f,      // predicted 0 (tie), label 1: wrong
                                           1.0f, 0.0f});    // predicted 0, label 1: wrong
  const std::vector<std::int32_t> labels = {0, 1, 1};
  // 1 right out of 3.
  EXPECT_DOUBLE_EQ(accuracy(s, labels), 1.0 / 3.0);
  // (-ln 0.75 - ln 0.5 - ln 1e-12) / 3 = (0.28768 + 0.69315 + 27.63102) / 3 ~ 9.53728.
  EXPECT_NEAR(negative_log_likelihood(s, labels),
              (-std::log(0.75) + kLn2 + 12.0 * std::log(10.0)) / 3.0, 1e-12);
  // Per input: 0.25^2 + 0.25^2 = 0.125; 0.5^2 + 0.5^2 = 0.5; 1^2 + 1^2 = 2 (the maximum).
  // Mean: (0.125 + 0.5 + 2) / 3 = 0.875.
  EXPECT_DOUBLE_EQ(brier_score(s, labels, 2), 0.875);
}

TEST(Quality, PerfectPredictions) {
  const PredictiveSummary s = one_pass(3, {0.0f, 1.0f, 0.0f, 0.0f, 0.0f, 1.0f});
  const std::vector<std::int32_t> labels = {1, 2};
  EXPECT_DOUBLE_EQ(accuracy(s, labels), 1.0);
  EXPECT_DOUBLE_EQ(negative_log_likelihood(s, labels), 0.0);  // -ln 1 = 0
  EXPECT_DOUBLE_EQ(brier_score(s, labels, 3), 0.0);
}

TEST(Quality, RejectsBadLabels) {
  const PredictiveSummary s = one_pass(2, {0.75f, 0.25f, 0.5f, 0.5f});
  const std::vector<std::int32_t> too_few = {0};
  const std::vector<std::int32_t> negative = {0, -1};
  const std::vector<std::int32_t> too_large = {2, 0};
  expect_error([&] { accuracy(s, too_few); }, "1 labels for 2 inputs");
  expect_error([&] { accuracy(s, negative); }, "label[1] = -1");
  expect_error([&] { negative_log_likelihood(s, too_large); }, "label[0] = 2");
  expect_error([&] { brier_score(s, negative, 2); }, "label[1] = -1");
  expect_error([&] { expected_calibration_error(s, too_large, 2); }, "label[0] = 2");
  // mean_probs has 4 values: 3 classes would need 6.
  const std::vector<std::int32_t> ok = {0, 1};
  expect_error([&] { brier_score(s, ok, 3); }, "mean_probs has 4 values");
  expect_error([&] { expected_calibration_error(s, ok, 3); }, "mean_probs has 4 values");
  expect_error([&] { expected_calibration_error(s, ok, 2, 0); }, "bins must be positive");
  expect_error([&] { accuracy(PredictiveSummary{}, {}); }, "no inputs");
}

// ---------------------------------------------------------------------------------------------
// ECE

TEST(Calibration, EceZeroWhenCalibrated) {
  // Default 15 bins. Four inputs at confidence 0.75 (bin floor(11.25) = 11) with 3 of 4 right:
  // acc = conf = 0.75. One at confidence 1 (last bin, 14), right: gap 0. One all-zero row
  // (confidence 0, bin 0), wrong: acc = conf = 0. ECE = 0.
  const PredictiveSummary s = one_pass(2, {0.75f, 0.25f, 0.75f, 0.25f, 0.75f, 0.25f, 0.75f, 0.25f,
                                           1.0f, 0.0f, 0.0f, 0.0f});
  const std::vector<std::int32_t> labels = {0, 0, 0, 1, 0, 1};
  EXPECT_DOUBLE_EQ(expected_calibration_error(s, labels, 2), 0.0);
}

TEST(Calibration, EceBinEdgesByHand) {
  // 4 bins so that the inner edges 1/4, 1/2, 3/4 are exact in binary and conf * 4 is an exact
  // integer: floor() then puts an edge in the upper bin without rounding luck. (With 15 bins the
  // edges k/15 are not representable, so a "k/15" confidence may land on either side.)
  const PredictiveSummary s = one_pass(4, {
                                              1.0f,  0.0f,  0.0f,  0.0f,   // conf 1    -> bin 3
                                              0.75f, 0.25f, 0.0f,  0.0f,   // conf 3/4  -> bin 3
                                              0.5f,  0.5f,  0.0f,  0.0f,   // conf 1/2  -> bin 2
                                              0.25f, 0.25f, 0.25f, 0.25f,  // conf 1/4  -> bin 1
                                              0.0f,  0.0f,  0.0f,  0.0f,   // conf 0    -> bin 0
                                          });
  // All predictions are class 0 (ties go to the lowest index).
  const std::vector<std::int32_t> labels = {0, 1, 0, 1, 0};
  // bin 3: {conf 1 right, conf 0.75 wrong}: acc 0.5, conf 0.875, weight 2/5 -> 0.4 * 0.375 = 0.15
  // bin 2: {conf 0.5 right}:  |1 - 0.5|  = 0.5,  weight 1/5 -> 0.1
  // bin 1: {conf 0.25 wrong}: |0 - 0.25| = 0.25, weight 1/5 -> 0.05
  // bin 0: {conf 0 right}:    |1 - 0|    = 1,    weight 1/5 -> 0.2
  // ECE = 0.15 + 0.1 + 0.05 + 0.2 = 0.5. (Edges in the lower bin would give 0.2 instead.)
  EXPECT_NEAR(expected_calibration_error(s, labels, 4, 4), 0.5, 1e-15);
  // One bin: |acc - mean conf| = |3/5 - (1 + 0.75 + 0.5 + 0.25 + 0) / 5| = |0.6 - 0.5| = 0.1.
  EXPECT_NEAR(expected_calibration_error(s, labels, 4, 1), 0.1, 1e-15);
}

// ---------------------------------------------------------------------------------------------
// AUROC

TEST(Ood, AurocExtremesAndTies) {
  const std::vector<double> low = {0.0, 1.0}, high = {2.0, 3.0};
  EXPECT_DOUBLE_EQ(auroc(low, high), 1.0);  // every OOD score above every in-score
  EXPECT_DOUBLE_EQ(auroc(high, low), 0.0);  // every OOD score below
  const std::vector<double> tied_in = {0.5, 0.5}, tied_out = {0.5, 0.5, 0.5};
  EXPECT_DOUBLE_EQ(auroc(tied_in, tied_out), 0.5);  // all 6 pairs tie: 6 * 1/2 / 6
}

TEST(Ood, AurocByHandWithTies) {
  const std::vector<double> in = {0.1, 0.4, 0.4}, out = {0.4, 0.8};
  // Pairs (out, in): 0.4 vs 0.1 -> 1; 0.4 vs 0.4 -> 1/2 twice; 0.8 vs each of 3 -> 1 each.
  // U = 1 + 1/2 + 1/2 + 3 = 5 of n * m = 6 pairs.
  EXPECT_DOUBLE_EQ(auroc(in, out), 5.0 / 6.0);
}

TEST(Ood, AurocMatchesBruteForceOnRandomTies) {
  std::mt19937_64 rng(0x5eedu);
  std::uniform_int_distribution<int> size(1, 40), value(0, 6);  // 7 values: many ties
  for (int trial = 0; trial < 300; ++trial) {
    std::vector<double> in(size(rng)), out(size(rng));
    for (double& v : in) v = value(rng);
    for (double& v : out) v = value(rng);
    double u = 0.0;  // O(n m): #{out > in} + 1/2 #{out == in}
    for (double o : out) {
      for (double i : in) u += o > i ? 1.0 : (o == i ? 0.5 : 0.0);
    }
    const double brute = u / static_cast<double>(in.size() * out.size());
    ASSERT_DOUBLE_EQ(auroc(in, out), brute) << "trial " << trial;
    ASSERT_DOUBLE_EQ(auroc(out, in), 1.0 - brute) << "trial " << trial;  // swapping roles
  }
}

// ---------------------------------------------------------------------------------------------
// AUPR

TEST(Ood, AuprByHandWithTies) {
  const std::vector<double> in = {0.1, 0.4, 0.4}, out = {0.4, 0.8};
  // Descending thresholds, m = 2 OOD:
  //   t = 0.8: TP 1, FP 0: recall 1/2, precision 1   -> (1/2 - 0) * 1     = 0.5
  //   t = 0.4: TP 2, FP 2: recall 1,   precision 1/2 -> (1 - 1/2) * 1/2   = 0.25
  //   t = 0.1: TP 2, FP 3: recall 1                  -> 0
  // AP = 0.75. (Splitting the 0.4 tie with the OOD score first would give 1.)
  EXPECT_DOUBLE_EQ(aupr(in, out), 0.75);

  // Two OOD scores inside a tie, m = 3:
  //   t = 0.8: TP 1, FP 0: recall 1/3, precision 1   -> 1/3
  //   t = 0.4: TP 3, FP 1: recall 1,   precision 3/4 -> (2/3) * (3/4) = 1/2
  //   t = 0.1: TP 3, FP 2: recall 1                  -> 0
  // AP = 5/6. (Ordering the tie in-first without grouping gives 29/36, OOD-first gives 1.)
  const std::vector<double> in2 = {0.1, 0.4}, out2 = {0.4, 0.4, 0.8};
  EXPECT_DOUBLE_EQ(aupr(in2, out2), 5.0 / 6.0);
}

TEST(Ood, AuprExtremes) {
  const std::vector<double> low = {0.0, 1.0}, high = {2.0, 3.0};
  EXPECT_DOUBLE_EQ(aupr(low, high), 1.0);
  // OOD = {0, 1} ranked last: t = 3, 2: recall 0; t = 1: TP 1, FP 2 -> 1/2 * 1/3;
  // t = 0: TP 2, FP 2 -> 1/2 * 1/2. AP = 1/6 + 1/4 = 5/12.
  EXPECT_DOUBLE_EQ(aupr(high, low), 5.0 / 12.0);
  // All tied: one threshold, recall 1, precision = 1 / 3 (the OOD share).
  const std::vector<double> tied_in = {0.5, 0.5}, tied_out = {0.5};
  EXPECT_DOUBLE_EQ(aupr(tied_in, tied_out), 1.0 / 3.0);
}

// ---------------------------------------------------------------------------------------------
// FPR at 95 % TPR

TEST(Ood, FprAt95TprByHand) {
  // OOD = 1..20: the largest t with #{out >= t} / 20 >= 0.95 is t = 2 (19 / 20 = 0.95 exactly;
  // t = 3 gives 18 / 20). In-scores >= 2: {2, 2.5, 30} -> 3 / 5.
  std::vector<double> out;
  for (int v = 1; v <= 20; ++v) out.push_back(v);
  const std::vector<double> in = {0.0, 1.0, 2.0, 2.5, 30.0};
  EXPECT_DOUBLE_EQ(fpr_at_95_tpr(in, out), 0.6);

  // 3 OOD scores: 2 / 3 < 0.95, so all 3 are needed: t = min = 1. In >= 1: {1, 5} -> 2 / 3.
  const std::vector<double> out3 = {3.0, 1.0, 2.0}, in3 = {0.5, 1.0, 5.0};
  EXPECT_DOUBLE_EQ(fpr_at_95_tpr(in3, out3), 2.0 / 3.0);

  // Tied OOD scores: t = 5; in >= 5: {5} -> 1 / 2.
  const std::vector<double> out_tied = {5.0, 5.0, 5.0, 5.0}, in_tied = {5.0, 4.0};
  EXPECT_DOUBLE_EQ(fpr_at_95_tpr(in_tied, out_tied), 0.5);
}

// ---------------------------------------------------------------------------------------------
// Thresholds

TEST(Threshold, QuantileByHand) {
  const std::vector<double> v = {10, 3, 7, 1, 9, 2, 8, 4, 6, 5};  // unsorted 1..10
  // Smallest v with #{<= v} / 10 >= keep.
  EXPECT_DOUBLE_EQ(quantile_threshold(v, 0.95), 10.0);  // 9/10 < 0.95 <= 10/10
  EXPECT_DOUBLE_EQ(quantile_threshold(v, 0.9), 9.0);    // 9/10 = 0.9 exactly
  EXPECT_DOUBLE_EQ(quantile_threshold(v, 0.5), 5.0);    // 5/10
  EXPECT_DOUBLE_EQ(quantile_threshold(v, 1.0), 10.0);
  EXPECT_DOUBLE_EQ(quantile_threshold(v, 0.01), 1.0);   // 1/10 >= 0.01

  const std::vector<double> tied = {2, 1, 3, 2, 2};  // sorted: 1 2 2 2 3
  EXPECT_DOUBLE_EQ(quantile_threshold(tied, 0.2), 1.0);   // #{<= 1} = 1: 1/5 = 0.2
  EXPECT_DOUBLE_EQ(quantile_threshold(tied, 0.4), 2.0);   // #{<= 1} = 1/5 < 0.4, #{<= 2} = 4/5
  EXPECT_DOUBLE_EQ(quantile_threshold(tied, 0.8), 2.0);   // 4/5 = 0.8
  EXPECT_DOUBLE_EQ(quantile_threshold(tied, 0.81), 3.0);  // 4/5 < 0.81 <= 5/5
}

TEST(Threshold, DetectedPercentStrictlyAbove) {
  const std::vector<double> s = {1, 2, 3, 4};
  EXPECT_DOUBLE_EQ(detected_percent(s, 2.0), 50.0);   // {3, 4}; 2 itself is not counted
  EXPECT_DOUBLE_EQ(detected_percent(s, 3.5), 25.0);   // {4}
  EXPECT_DOUBLE_EQ(detected_percent(s, 4.0), 0.0);    // nothing strictly above the maximum
  EXPECT_DOUBLE_EQ(detected_percent(s, 0.5), 100.0);

  // On its own validation set, the 0.9-quantile threshold 9 flags only {10}: 10 %.
  const std::vector<double> v = {10, 3, 7, 1, 9, 2, 8, 4, 6, 5};
  EXPECT_DOUBLE_EQ(detected_percent(v, quantile_threshold(v, 0.9)), 10.0);
}

// ---------------------------------------------------------------------------------------------
// Errors on score arrays

TEST(Ood, RejectsEmptyOrNaNScores) {
  const std::vector<double> some = {0.1, 0.2}, none;
  const std::vector<double> with_nan = {0.1, std::numeric_limits<double>::quiet_NaN()};
  expect_error([&] { auroc(none, some); }, "in_scores is empty");
  expect_error([&] { auroc(some, none); }, "out_scores is empty");
  expect_error([&] { aupr(none, some); }, "in_scores is empty");
  expect_error([&] { aupr(some, none); }, "out_scores is empty");
  expect_error([&] { fpr_at_95_tpr(none, some); }, "in_scores is empty");
  expect_error([&] { fpr_at_95_tpr(some, none); }, "out_scores is empty");
  expect_error([&] { auroc(some, with_nan); }, "out_scores[1] is NaN");
  expect_error([&] { quantile_threshold(none, 0.95); }, "validation_scores is empty");
  expect_error([&] { quantile_threshold(some, 0.0); }, "keep must be in (0, 1]");
  expect_error([&] { quantile_threshold(some, 1.5); }, "keep must be in (0, 1]");
  expect_error([&] { quantile_threshold(some, std::nan("")); }, "keep must be in (0, 1]");
  expect_error([&] { detected_percent(none, 0.5); }, "scores is empty");
  expect_error([&] { detected_percent(some, std::nan("")); }, "threshold is NaN");
}

}  // namespace
}  // namespace spinbayes
