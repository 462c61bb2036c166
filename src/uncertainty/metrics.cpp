#include "uncertainty/metrics.h"

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <functional>
#include <string>
#include <vector>

#include "core/error.h"

namespace spinbayes {

double mean_of(std::span<const double> values) {
  double sum = 0.0;
  for (double x : values) sum += x;
  return values.empty() ? 0.0 : sum / static_cast<double>(values.size());
}

namespace {

// H[p] = -sum_j p_j log p_j in nats, with 0 log 0 = 0.
template <typename Real>
double entropy_nats(const Real* p, std::size_t k) {
  double h = 0.0;
  for (std::size_t j = 0; j < k; ++j) {
    const double q = p[j];
    if (q > 0.0) h -= q * std::log(q);
  }
  return h;
}

// Checks a summary of `classes` columns against its labels; returns the number of inputs.
std::size_t check_labels(const std::string& fn, const PredictiveSummary& s,
                         std::span<const std::int32_t> labels, int classes) {
  const std::size_t n = s.predicted.size();
  if (n == 0) throw Error(fn + ": the summary has no inputs");
  if (classes <= 0 || s.mean_probs.size() != n * static_cast<std::size_t>(classes)) {
    throw Error(fn + ": mean_probs has " + std::to_string(s.mean_probs.size()) +
                " values, expected inputs * classes = " + std::to_string(n) + " * " +
                std::to_string(classes));
  }
  if (labels.size() != n) {
    throw Error(fn + ": " + std::to_string(labels.size()) + " labels for " + std::to_string(n) +
                " inputs");
  }
  for (std::size_t i = 0; i < n; ++i) {
    if (labels[i] < 0 || labels[i] >= classes) {
      throw Error(fn + ": label[" + std::to_string(i) + "] = " + std::to_string(labels[i]) +
                  " is outside [0, " + std::to_string(classes) + ")");
    }
    if (s.predicted[i] < 0 || s.predicted[i] >= classes) {
      throw Error(fn + ": predicted[" + std::to_string(i) + "] = " +
                  std::to_string(s.predicted[i]) + " is outside [0, " + std::to_string(classes) +
                  ")");
    }
  }
  return n;
}

// Column count implied by a summary (mean_probs is inputs x classes); 0 when it is not whole.
int classes_of(const PredictiveSummary& s) {
  const std::size_t n = s.predicted.size();
  if (n == 0 || s.mean_probs.size() % n != 0) return 0;
  return static_cast<int>(s.mean_probs.size() / n);
}

void check_scores(const std::string& fn, const char* name, std::span<const double> scores) {
  if (scores.empty()) throw Error(fn + ": " + name + " is empty");
  for (std::size_t i = 0; i < scores.size(); ++i) {
    if (std::isnan(scores[i])) {
      throw Error(fn + ": " + name + "[" + std::to_string(i) + "] is NaN");
    }
  }
}

// Counts of in-distribution and OOD scores sharing one score value.
struct TieGroup {
  double in = 0.0, out = 0.0;
};

// Groups of tied scores over both sets, ordered by score (ascending, or descending).
std::vector<TieGroup> tie_groups(const std::string& fn, std::span<const double> in_scores,
                                 std::span<const double> out_scores, bool descending) {
  check_scores(fn, "in_scores", in_scores);
  check_scores(fn, "out_scores", out_scores);
  struct Scored {
    double score;
    bool out;
  };
  std::vector<Scored> all;
  all.reserve(in_scores.size() + out_scores.size());
  for (double v : in_scores) all.push_back({v, false});
  for (double v : out_scores) all.push_back({v, true});
  std::sort(all.begin(), all.end(), [descending](const Scored& a, const Scored& b) {
    return descending ? a.score > b.score : a.score < b.score;
  });
  std::vector<TieGroup> groups;
  for (std::size_t i = 0; i < all.size();) {
    TieGroup g;
    std::size_t j = i;
    for (; j < all.size() && all[j].score == all[i].score; ++j) (all[j].out ? g.out : g.in) += 1.0;
    groups.push_back(g);
    i = j;
  }
  return groups;
}

// Smallest k in [1, n] with k / n >= fraction (fraction in (0, 1]), using the same division as
// the definition so that e.g. 19 / 20 >= 0.95 holds exactly.
std::size_t smallest_count(std::size_t n, double fraction) {
  const double nd = static_cast<double>(n);
  auto k = static_cast<std::size_t>(std::clamp(std::ceil(fraction * nd), 1.0, nd));
  while (k > 1 && static_cast<double>(k - 1) / nd >= fraction) --k;
  while (k < n && static_cast<double>(k) / nd < fraction) ++k;
  return k;
}

}  // namespace

PredictiveSummary summarize(const McPredictions& mc) {
  if (mc.samples <= 0 || mc.inputs <= 0 || mc.classes <= 0) {
    throw Error("summarize: samples, inputs and classes must be positive (got " +
                std::to_string(mc.samples) + ", " + std::to_string(mc.inputs) + ", " +
                std::to_string(mc.classes) + ")");
  }
  const auto t_count = static_cast<std::size_t>(mc.samples);
  const auto n = static_cast<std::size_t>(mc.inputs);
  const auto k = static_cast<std::size_t>(mc.classes);
  const std::size_t expected = t_count * n * k;
  if (mc.probs.size() != expected) {
    throw Error("summarize: probs has " + std::to_string(mc.probs.size()) +
                " values, expected samples * inputs * classes = " + std::to_string(expected));
  }
  const auto sample_row = [&](std::size_t t, std::size_t i) { return &mc.probs[(t * n + i) * k]; };

  PredictiveSummary s;
  s.mean_probs.assign(n * k, 0.0);
  s.entropy.assign(n, 0.0);
  s.expected_entropy.assign(n, 0.0);
  s.mutual_information.assign(n, 0.0);
  s.variance.assign(n, 0.0);
  s.predicted.assign(n, 0);

  // Sums over t of p_t and of H[p_t]; divided by T below.
  for (std::size_t t = 0; t < t_count; ++t) {
    for (std::size_t i = 0; i < n; ++i) {
      const float* p = sample_row(t, i);
      double* mean = &s.mean_probs[i * k];
      for (std::size_t j = 0; j < k; ++j) mean[j] += p[j];
      s.expected_entropy[i] += entropy_nats(p, k);
    }
  }
  const double inv_t = 1.0 / static_cast<double>(t_count);
  for (double& v : s.mean_probs) v *= inv_t;

  for (std::size_t i = 0; i < n; ++i) {
    const double* mean = &s.mean_probs[i * k];
    s.expected_entropy[i] *= inv_t;
    s.entropy[i] = entropy_nats(mean, k);
    // MI = H[mean p] - mean_t H[p_t] >= 0 (concavity); clamp rounding below zero.
    s.mutual_information[i] = std::max(0.0, s.entropy[i] - s.expected_entropy[i]);
    // max_element returns the first maximum, so the lowest index wins ties.
    const auto c = static_cast<std::size_t>(std::max_element(mean, mean + k) - mean);
    s.predicted[i] = static_cast<int>(c);
    // Population variance: (1/T) sum_t (p_t[c] - mean[c])^2.
    double ss = 0.0;
    for (std::size_t t = 0; t < t_count; ++t) {
      const double d = sample_row(t, i)[c] - mean[c];
      ss += d * d;
    }
    s.variance[i] = ss * inv_t;
  }
  return s;
}

double accuracy(const PredictiveSummary& s, std::span<const std::int32_t> labels) {
  const std::size_t n = check_labels("accuracy", s, labels, classes_of(s));
  std::size_t correct = 0;
  for (std::size_t i = 0; i < n; ++i) correct += s.predicted[i] == labels[i] ? 1 : 0;
  return static_cast<double>(correct) / static_cast<double>(n);
}

double negative_log_likelihood(const PredictiveSummary& s, std::span<const std::int32_t> labels) {
  const int k = classes_of(s);
  const std::size_t n = check_labels("negative_log_likelihood", s, labels, k);
  // (1/n) sum_i -log max(p_i[y_i], 1e-12)
  double total = 0.0;
  for (std::size_t i = 0; i < n; ++i) {
    const double p = s.mean_probs[i * static_cast<std::size_t>(k) + labels[i]];
    total -= std::log(std::max(p, 1e-12));
  }
  return total / static_cast<double>(n);
}

double brier_score(const PredictiveSummary& s, std::span<const std::int32_t> labels, int classes) {
  const std::size_t n = check_labels("brier_score", s, labels, classes);
  const auto k = static_cast<std::size_t>(classes);
  // (1/n) sum_i sum_j (p_ij - [j == y_i])^2, in [0, 2].
  double total = 0.0;
  for (std::size_t i = 0; i < n; ++i) {
    for (std::size_t j = 0; j < k; ++j) {
      const double onehot = static_cast<std::size_t>(labels[i]) == j ? 1.0 : 0.0;
      const double d = s.mean_probs[i * k + j] - onehot;
      total += d * d;
    }
  }
  return total / static_cast<double>(n);
}

double expected_calibration_error(const PredictiveSummary& s, std::span<const std::int32_t> labels,
                                  int classes, int bins) {
  if (bins <= 0) {
    throw Error("expected_calibration_error: bins must be positive (got " + std::to_string(bins) +
                ")");
  }
  const std::size_t n = check_labels("expected_calibration_error", s, labels, classes);
  const auto k = static_cast<std::size_t>(classes);
  std::vector<double> count(bins, 0.0), correct(bins, 0.0), confidence(bins, 0.0);
  for (std::size_t i = 0; i < n; ++i) {
    const double conf = s.mean_probs[i * k + static_cast<std::size_t>(s.predicted[i])];
    // Bin b holds [b/B, (b+1)/B); conf = 1 goes to the last bin.
    const int b = std::clamp(static_cast<int>(std::floor(conf * bins)), 0, bins - 1);
    count[b] += 1.0;
    correct[b] += s.predicted[i] == labels[i] ? 1.0 : 0.0;
    confidence[b] += conf;
  }
  // ECE = sum_b (|B_b| / n) |acc_b - conf_b|.
  double ece = 0.0;
  for (int b = 0; b < bins; ++b) {
    if (count[b] == 0.0) continue;
    ece += count[b] / static_cast<double>(n) *
           std::abs(correct[b] / count[b] - confidence[b] / count[b]);
  }
  return ece;
}

double auroc(std::span<const double> in_scores, std::span<const double> out_scores) {
  // Mann-Whitney U = #{out > in} + 1/2 #{out == in}, from ascending tie groups: each OOD score in
  // a group beats every in-score below the group and ties with the in-scores inside it (the same
  // as the average-rank formula). AUROC = U / (n m).
  double u = 0.0, in_below = 0.0;
  for (const TieGroup& g : tie_groups("auroc", in_scores, out_scores, /*descending=*/false)) {
    u += g.out * (in_below + 0.5 * g.in);
    in_below += g.in;
  }
  return u / (static_cast<double>(in_scores.size()) * static_cast<double>(out_scores.size()));
}

double aupr(std::span<const double> in_scores, std::span<const double> out_scores) {
  // AP = sum over thresholds (one per tie group, descending) of (R_i - R_{i-1}) P_i with
  // R = TP / m, P = TP / (TP + FP).
  const double m = static_cast<double>(out_scores.size());
  double tp = 0.0, fp = 0.0, ap = 0.0;
  for (const TieGroup& g : tie_groups("aupr", in_scores, out_scores, /*descending=*/true)) {
    tp += g.out;
    fp += g.in;
    ap += (g.out / m) * (tp / (tp + fp));
  }
  return ap;
}

double fpr_at_95_tpr(std::span<const double> in_scores, std::span<const double> out_scores) {
  check_scores("fpr_at_95_tpr", "in_scores", in_scores);
  check_scores("fpr_at_95_tpr", "out_scores", out_scores);
  // The largest t with #{out >= t} / m >= 0.95 is the k-th largest OOD score, k = the smallest
  // count with k / m >= 0.95.
  std::vector<double> out(out_scores.begin(), out_scores.end());
  const std::size_t k = smallest_count(out.size(), 0.95);
  std::nth_element(out.begin(), out.begin() + static_cast<std::ptrdiff_t>(k - 1), out.end(),
                   std::greater<>());
  const double t = out[k - 1];
  const auto false_positives = std::count_if(in_scores.begin(), in_scores.end(),
                                             [t](double v) { return v >= t; });
  return static_cast<double>(false_positives) / static_cast<double>(in_scores.size());
}

double quantile_threshold(std::span<const double> validation_scores, double keep) {
  if (!(keep > 0.0 && keep <= 1.0)) {
    throw Error("quantile_threshold: keep must be in (0, 1] (got " + std::to_string(keep) + ")");
  }
  check_scores("quantile_threshold", "validation_scores", validation_scores);
  // The smallest v with #{s <= v} / n >= keep is the k-th smallest score, k = the smallest count
  // with k / n >= keep.
  std::vector<double> sorted(validation_scores.begin(), validation_scores.end());
  const std::size_t k = smallest_count(sorted.size(), keep);
  std::nth_element(sorted.begin(), sorted.begin() + static_cast<std::ptrdiff_t>(k - 1),
                   sorted.end());
  return sorted[k - 1];
}

double detected_percent(std::span<const double> scores, double threshold) {
  if (std::isnan(threshold)) throw Error("detected_percent: threshold is NaN");
  check_scores("detected_percent", "scores", scores);
  // 100 * #{s > threshold} / n
  const auto above = std::count_if(scores.begin(), scores.end(),
                                   [threshold](double v) { return v > threshold; });
  return 100.0 * static_cast<double>(above) / static_cast<double>(scores.size());
}

}  // namespace spinbayes
