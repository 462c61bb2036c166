#pragma once
// Uncertainty and quality metrics on Monte Carlo predictions. No LibTorch here: plain arrays.
//
// Layout of MC predictions: probs[(t * n + i) * k + j] = softmax probability of class j for
// input i in stochastic pass t (T passes, n inputs, k classes).
#include <cstdint>
#include <span>
#include <vector>

namespace spinbayes {

struct McPredictions {
  int samples = 0, inputs = 0, classes = 0;
  std::vector<float> probs;  // samples * inputs * classes
};

// Per-input summaries of MC predictions.
struct PredictiveSummary {
  std::vector<double> mean_probs;          // inputs * classes: average of the T softmax outputs
  std::vector<double> entropy;             // H[mean p] (nats), total predictive uncertainty
  std::vector<double> expected_entropy;    // mean over t of H[p_t] (aleatoric part)
  std::vector<double> mutual_information;  // entropy - expected_entropy (epistemic part), >= 0
  std::vector<double> variance;            // variance over t of p_t[argmax mean p], per input
  std::vector<int> predicted;              // argmax of mean_probs
};
PredictiveSummary summarize(const McPredictions& mc);
// The mean of per-input figures (0 for none).
double mean_of(std::span<const double> values);

// Calibration and accuracy on mean probabilities (inputs x classes) against labels.
double accuracy(const PredictiveSummary& s, std::span<const std::int32_t> labels);
double negative_log_likelihood(const PredictiveSummary& s, std::span<const std::int32_t> labels);
double brier_score(const PredictiveSummary& s, std::span<const std::int32_t> labels, int classes);
// Expected calibration error with `bins` equal-width confidence bins over [0, 1]; a confidence
// of exactly 1 falls in the last bin, a confidence on an inner edge b/bins in the upper bin.
double expected_calibration_error(const PredictiveSummary& s, std::span<const std::int32_t> labels,
                                  int classes, int bins = 15);

// OOD detection: OOD inputs are the positive class and a larger score means "more OOD".
// AUROC counts ties as one half (Mann-Whitney U).
double auroc(std::span<const double> in_scores, std::span<const double> out_scores);
// Average precision (area under the precision-recall curve, step-wise), ties grouped.
double aupr(std::span<const double> in_scores, std::span<const double> out_scores);
// False-positive rate on in-distribution inputs at the largest threshold that still flags >= 95 % of
// OOD inputs.
double fpr_at_95_tpr(std::span<const double> in_scores, std::span<const double> out_scores);
// The score threshold that keeps `keep` (e.g. 0.95) of the validation scores at or below it.
double quantile_threshold(std::span<const double> validation_scores, double keep);
// Share (in %) of scores strictly above the threshold.
double detected_percent(std::span<const double> scores, double threshold);

}  // namespace spinbayes
