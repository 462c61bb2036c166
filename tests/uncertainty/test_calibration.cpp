// Temperature scaling: the fit against a case with a known optimum, the predictions it cannot move,
// and the calibration record's parser on bad files.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "core/counter_rng.h"
#include "error_checks.h"
#include "uncertainty/calibration.h"

using namespace spinbayes;
using spinbayes::testing::expect_error;

namespace {

// Softmax outputs of random logits: T passes of n inputs over k classes.
McPredictions random_passes(int samples, int inputs, int classes, std::uint64_t seed, double spread) {
  McPredictions mc;
  mc.samples = samples;
  mc.inputs = inputs;
  mc.classes = classes;
  std::vector<double> z(static_cast<std::size_t>(classes));
  for (int row = 0; row < samples * inputs; ++row) {
    double total = 0;
    for (int j = 0; j < classes; ++j) {
      z[j] = std::exp(spread * (2.0 * to_unit_double(hash_key(seed, static_cast<std::uint64_t>(row), j)) - 1.0));
      total += z[j];
    }
    for (int j = 0; j < classes; ++j) mc.probs.push_back(static_cast<float>(z[j] / total));
  }
  return mc;
}

// One pass of n two-class inputs with logits (s, 0): p = (sigmoid(s), sigmoid(-s)).
PredictiveSummary two_class(double s, int n, int samples) {
  McPredictions mc;
  mc.samples = samples;
  mc.inputs = n;
  mc.classes = 2;
  const double p = 1.0 / (1.0 + std::exp(-s));
  for (int k = 0; k < samples * n; ++k) mc.probs.insert(mc.probs.end(), {static_cast<float>(p), static_cast<float>(1 - p)});
  return summarize(mc);
}

}  // namespace

// Labels 0 on a share q of inputs whose logits are (s, 0): the rescaled distribution is
// (sigmoid(s / tau), sigmoid(-s / tau)), and the NLL -[q log sigmoid(s / tau) + (1 - q) log
// sigmoid(-s / tau)] is least where sigmoid(s / tau) = q, at tau* = s / log(q / (1 - q)), where it
// equals the labels' entropy.
TEST(TemperatureScaling, FitFindsTheKnownOptimum) {
  struct Case {
    double s;
    int zeros, n;
  };
  for (const Case& c : {Case{4.0, 80, 100}, Case{1.0, 95, 100}, Case{9.0, 90, 100}}) {
    const double q = static_cast<double>(c.zeros) / c.n;
    const double expected = c.s / std::log(q / (1.0 - q));
    std::vector<std::int32_t> labels;
    for (int i = 0; i < c.n; ++i) labels.push_back(i < c.zeros ? 0 : 1);
    for (int samples : {1, 3}) {
      SCOPED_TRACE(::testing::Message() << "s = " << c.s << ", q = " << q << ", T = " << samples);
      const PredictiveSummary summary = two_class(c.s, c.n, samples);
      const TemperatureFit fit = fit_temperature(summary, labels);
      // The probabilities are floats: s is known to about 1e-7 relative.
      EXPECT_NEAR(fit.temperature, expected, 1e-5 * expected);
      EXPECT_NEAR(fit.nll_after, -(q * std::log(q) + (1 - q) * std::log(1 - q)), 1e-9);
      // Float probabilities sum to 1 within float rounding; the fit renormalises them.
      EXPECT_NEAR(fit.nll_before, negative_log_likelihood(summary, labels), 1e-6);
      EXPECT_LT(fit.nll_after, fit.nll_before);
    }
  }
}

// Several different passes: no closed form, but the fit beats every other temperature.
TEST(TemperatureScaling, FitMinimisesTheNllOfTheAverage) {
  const McPredictions mc = random_passes(5, 300, 4, 11, 3.0);
  const PredictiveSummary summary = summarize(mc);
  std::vector<std::int32_t> labels;
  for (int i = 0; i < mc.inputs; ++i) labels.push_back(i % 3 == 0 ? (summary.predicted[i] + 1) % 4 : summary.predicted[i]);
  const TemperatureFit fit = fit_temperature(summary, labels);
  const double at = temperature_nll(summary, labels, fit.temperature);
  EXPECT_DOUBLE_EQ(at, fit.nll_after);
  EXPECT_DOUBLE_EQ(negative_log_likelihood(with_temperature(summary, fit.temperature), labels), at);
  for (double factor : {0.9, 0.99, 1.01, 1.1}) EXPECT_GT(temperature_nll(summary, labels, fit.temperature * factor), at);
  for (double tau = 0.05; tau < 20.0; tau *= 1.25) EXPECT_GE(temperature_nll(summary, labels, tau), at - 1e-12) << tau;
}

// softmax(log p / tau) keeps the order of the classes of every input: no prediction, so neither
// the accuracy, changes, with one pass or many. The spread between passes is left as it is.
TEST(TemperatureScaling, NoPredictionChanges) {
  for (int samples : {1, 7}) {
    const PredictiveSummary summary = summarize(random_passes(samples, 400, 10, 3 + samples, 4.0));
    std::vector<std::int32_t> labels;
    for (int i = 0; i < 400; ++i) labels.push_back(i % 10);
    for (double tau : {0.07, 0.5, 2.0, 13.0}) {
      SCOPED_TRACE(::testing::Message() << "T = " << samples << ", tau = " << tau);
      const PredictiveSummary scaled = with_temperature(summary, tau);
      EXPECT_EQ(scaled.predicted, summary.predicted);
      EXPECT_EQ(accuracy(scaled, labels), accuracy(summary, labels));
      EXPECT_EQ(scaled.mutual_information, summary.mutual_information);
      EXPECT_EQ(scaled.variance, summary.variance);
      for (int i = 0; i < 400; ++i) {
        const double* p = &scaled.mean_probs[static_cast<std::size_t>(i) * 10];
        EXPECT_EQ(std::max_element(p, p + 10) - p, summary.predicted[i]);
        double total = 0, h = 0;
        for (int j = 0; j < 10; ++j) total += p[j], h -= p[j] > 0 ? p[j] * std::log(p[j]) : 0.0;
        EXPECT_NEAR(total, 1.0, 1e-12);
        EXPECT_NEAR(scaled.entropy[i], h, 1e-12);
      }
      // Sharpening lowers the entropy of the average, softening raises it.
      EXPECT_EQ(scaled.entropy[0] < summary.entropy[0], tau < 1.0);
    }
  }
}

TEST(TemperatureScaling, OnePassIsTheSoftmaxOfScaledLogitsAndBadTemperaturesAreRefused) {
  McPredictions mc;
  mc.samples = 1, mc.inputs = 1, mc.classes = 3;
  const double total = std::exp(1.0) + std::exp(2.0) + std::exp(3.0);
  for (double z : {1.0, 2.0, 3.0}) mc.probs.push_back(static_cast<float>(std::exp(z) / total));
  const PredictiveSummary scaled = with_temperature(summarize(mc), 2.0);
  const double half = std::exp(0.5) + std::exp(1.0) + std::exp(1.5);
  EXPECT_NEAR(scaled.mean_probs[0], std::exp(0.5) / half, 1e-7);
  EXPECT_NEAR(scaled.mean_probs[2], std::exp(1.5) / half, 1e-7);
  for (double bad : {0.0, -1.0, std::numeric_limits<double>::infinity(), std::numeric_limits<double>::quiet_NaN()}) {
    expect_error([&] { with_temperature(summarize(mc), bad); }, {"temperature must be a positive finite number"});
  }
  expect_error([&] { with_temperature(PredictiveSummary{}, 1.0); }, {"with_temperature", "0 inputs"});
}

TEST(CalibrationRecord, RoundTripsAndRejectsBadFiles) {
  CalibrationRecord record;
  record.model_ir = "0123456789abcdef";
  record.mc = FittedTemperature{1.25, 20, 1, 5000, 0.31, 0.29, 0.03, 0.01};
  record.deterministic = FittedTemperature{0.9, 1, 1, 5000, 0.33, 0.32, 0.02, 0.015};
  const std::string text = calibration_json(record);
  const CalibrationRecord back = parse_calibration(text, "c.json");
  EXPECT_EQ(back.model_ir, record.model_ir);
  ASSERT_TRUE(back.mc && back.deterministic);
  EXPECT_EQ(back.mc->temperature, 1.25);
  EXPECT_EQ(back.mc->samples, 20);
  EXPECT_EQ(back.deterministic->ece_after, 0.015);

  const auto with = [&](const std::string& from, const std::string& to) {
    std::string t = text;
    const auto at = t.find(from);
    EXPECT_NE(at, std::string::npos) << from;
    return t.replace(at, from.size(), to);
  };
  struct Case {
    std::string text, cause;
  };
  const std::vector<Case> cases = {
      {"", "not valid JSON"},
      {"[1, 2]", "not a spinbayes calibration"},
      {with("\"spinbayes-calibration\"", "\"spinbayes-run\""), "not a spinbayes calibration"},
      {with("\"version\": 1", "\"version\": 2"), "unsupported version"},
      {with("\"temperature\": 1.25", "\"temperature\": -1.25"), "mc.temperature: must be in [0.05, 20]"},
      {with("\"temperature\": 1.25", "\"temperature\": 0"), "mc.temperature: must be in [0.05, 20]"},
      {with("\"temperature\": 1.25", "\"temperature\": 1e-320"), "mc.temperature: must be in [0.05, 20]"},
      {with("\"temperature\": 1.25", "\"temperature\": 1e308"), "mc.temperature: must be in [0.05, 20]"},
      {text + std::string(1, '\0') + "garbage", "holds a NUL byte"},
      {with("\"samples\": 20", "\"samples\": 1"), "mc.samples: must be at least 2"},
      {with("\"temperature\": 1.25", "\"temperature\": 1e999"), "not valid JSON"},  // overflows a double
      {with("\"temperature\": 0.9", "\"temperature\": \"0.9\""), "deterministic.temperature: must be a number"},
      {with("\"temperature\": 0.9", "\"temperatur\": 0.9"), "deterministic.temperature: missing"},
      {with("\"samples\": 20", "\"samples\": 0"), "mc.samples: must be in 1..10000"},
      {with("\"samples\": 1,", "\"samples\": 5,"), "deterministic.samples: must be 1"},
      {with("\"model_ir\"", "\"model\""), "model_ir: missing"},
      {with("\"mc\"", "\"monte_carlo\""), "unknown key 'monte_carlo'"},
      {calibration_json(CalibrationRecord{"x", std::nullopt, std::nullopt}), "holds no temperature"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.cause);
    expect_error([&] { parse_calibration(c.text, "c.json"); }, {"c.json: ", c.cause});
  }
}
