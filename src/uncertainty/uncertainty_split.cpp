#include "uncertainty/uncertainty_split.h"

#include <algorithm>
#include <string>

#include "core/error.h"

namespace spinbayes {

namespace {

void check_shapes(std::span<const McPredictions> chips) {
  if (chips.empty()) throw Error("uncertainty split: no chips");
  for (const auto& c : chips) {
    if (c.samples != chips[0].samples || c.inputs != chips[0].inputs || c.classes != chips[0].classes ||
        c.probs.size() != static_cast<std::size_t>(c.samples) * static_cast<std::size_t>(c.inputs) *
                              static_cast<std::size_t>(c.classes)) {
      throw Error("uncertainty split: the chips' predictions differ in shape");
    }
  }
}

}  // namespace

McPredictions pooled_passes(std::span<const McPredictions> chips) {
  check_shapes(chips);
  McPredictions all;
  all.samples = 0;
  all.inputs = chips[0].inputs;
  all.classes = chips[0].classes;
  for (const auto& c : chips) {
    all.samples += c.samples;
    all.probs.insert(all.probs.end(), c.probs.begin(), c.probs.end());
  }
  return all;
}

UncertaintySplit split_uncertainty(std::span<const McPredictions> chips) {
  check_shapes(chips);
  const auto c_count = chips.size();
  const auto t_count = static_cast<std::size_t>(chips[0].samples);
  const auto n = static_cast<std::size_t>(chips[0].inputs);
  const auto k = static_cast<std::size_t>(chips[0].classes);
  UncertaintySplit s;
  s.chips = static_cast<int>(c_count);
  s.variance_total.assign(n, 0.0);
  s.variance_masks.assign(n, 0.0);
  s.variance_chips.assign(n, 0.0);

  std::vector<double> chip_mean(c_count);
  for (std::size_t i = 0; i < n; ++i) {
    for (std::size_t j = 0; j < k; ++j) {
      double pooled = 0;
      for (std::size_t c = 0; c < c_count; ++c) {
        double sum = 0;
        for (std::size_t t = 0; t < t_count; ++t) sum += chips[c].probs[(t * n + i) * k + j];
        chip_mean[c] = sum / static_cast<double>(t_count);
        pooled += chip_mean[c];
      }
      pooled /= static_cast<double>(c_count);
      double total = 0, within = 0, between = 0;
      for (std::size_t c = 0; c < c_count; ++c) {
        for (std::size_t t = 0; t < t_count; ++t) {
          const double p = chips[c].probs[(t * n + i) * k + j];
          total += (p - pooled) * (p - pooled);
          within += (p - chip_mean[c]) * (p - chip_mean[c]);
        }
        between += (chip_mean[c] - pooled) * (chip_mean[c] - pooled);
      }
      const double passes = static_cast<double>(c_count * t_count);
      s.variance_total[i] += total / passes;
      s.variance_masks[i] += within / passes;
      s.variance_chips[i] += between / static_cast<double>(c_count);
    }
  }

  // Entropies from the summaries: the pooled one, and each chip's.
  const PredictiveSummary all = summarize(pooled_passes(chips));
  std::vector<double> chip_entropy(n, 0.0), chip_expected(n, 0.0);
  for (const auto& c : chips) {
    const PredictiveSummary one = summarize(c);
    for (std::size_t i = 0; i < n; ++i) {
      chip_entropy[i] += one.entropy[i] / static_cast<double>(c_count);
      chip_expected[i] += one.expected_entropy[i] / static_cast<double>(c_count);
    }
  }
  s.mi_total.resize(n);
  s.mi_masks.resize(n);
  s.mi_chips.resize(n);
  for (std::size_t i = 0; i < n; ++i) {
    // Each part is >= 0 (concavity of H); rounding below zero is clamped, as summarize() does.
    s.mi_total[i] = std::max(0.0, all.entropy[i] - all.expected_entropy[i]);
    s.mi_chips[i] = std::max(0.0, all.entropy[i] - chip_entropy[i]);
    s.mi_masks[i] = std::max(0.0, chip_entropy[i] - chip_expected[i]);
  }
  return s;
}

}  // namespace spinbayes
