// The split of predictive uncertainty into the masks' part and the chips' part.
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "core/counter_rng.h"
#include "core/error.h"
#include "uncertainty/uncertainty_split.h"

namespace spinbayes {
namespace {

McPredictions passes(int samples, int inputs, int classes, std::vector<float> probs) {
  return {samples, inputs, classes, std::move(probs)};
}

TEST(UncertaintySplit, HandBuiltChipsSplitAsTheLawOfTotalVariance) {
  // One input, two classes; chip A's passes give p0 = 0.9, 0.7, chip B's 0.5, 0.3. For class 0:
  // total variance around 0.6 is (0.09 + 0.01 + 0.01 + 0.09) / 4 = 0.05, within the chips 0.01,
  // between their means 0.8 and 0.4: 0.04. Class 1 mirrors it; the sums over classes double.
  const std::vector<McPredictions> chips = {passes(2, 1, 2, {0.9f, 0.1f, 0.7f, 0.3f}),
                                            passes(2, 1, 2, {0.5f, 0.5f, 0.3f, 0.7f})};
  const UncertaintySplit s = split_uncertainty(chips);
  EXPECT_EQ(s.chips, 2);
  EXPECT_NEAR(s.variance_total[0], 0.10, 1e-6);
  EXPECT_NEAR(s.variance_masks[0], 0.02, 1e-6);
  EXPECT_NEAR(s.variance_chips[0], 0.08, 1e-6);
  // Mutual information from the entropies: H[pbar] with pbar = (0.6, 0.4), chip means (0.8, 0.2)
  // and (0.4, 0.6).
  const auto h = [](double p) { return -p * std::log(p) - (1 - p) * std::log(1 - p); };
  const double passes_entropy = (h(0.9) + h(0.7) + h(0.5) + h(0.3)) / 4;
  const double chip_entropy = (h(0.8) + h(0.4)) / 2;
  EXPECT_NEAR(s.mi_total[0], h(0.6) - passes_entropy, 1e-6);
  EXPECT_NEAR(s.mi_chips[0], h(0.6) - chip_entropy, 1e-6);
  EXPECT_NEAR(s.mi_masks[0], chip_entropy - passes_entropy, 1e-6);
}

TEST(UncertaintySplit, PartsAddUpAndIdenticalChipsAddNothing) {
  const int samples = 5, inputs = 7, classes = 4, chip_count = 3;
  std::vector<McPredictions> chips;
  for (int c = 0; c < chip_count; ++c) {
    McPredictions m{samples, inputs, classes, {}};
    for (int t = 0; t < samples; ++t) {
      for (int i = 0; i < inputs; ++i) {
        double row[classes], sum = 0;
        for (int j = 0; j < classes; ++j) {
          row[j] = 0.05 + uniform_at(c, t, i, j);
          sum += row[j];
        }
        for (int j = 0; j < classes; ++j) m.probs.push_back(static_cast<float>(row[j] / sum));
      }
    }
    chips.push_back(std::move(m));
  }
  const UncertaintySplit s = split_uncertainty(chips);
  for (int i = 0; i < inputs; ++i) {
    EXPECT_NEAR(s.variance_masks[i] + s.variance_chips[i], s.variance_total[i], 1e-12);
    EXPECT_NEAR(s.mi_masks[i] + s.mi_chips[i], s.mi_total[i], 1e-9);
    EXPECT_GT(s.variance_chips[i], 0.0);
    EXPECT_GE(s.mi_chips[i], 0.0);
  }
  // The pooled passes are the chips' passes in chip order.
  const McPredictions all = pooled_passes(chips);
  EXPECT_EQ(all.samples, samples * chip_count);
  EXPECT_EQ(all.probs[static_cast<std::size_t>(samples * inputs * classes)], chips[1].probs[0]);

  // The same chip three times: nothing between chips, and the masks' part is the one chip's MI.
  const std::vector<McPredictions> same = {chips[0], chips[0], chips[0]};
  const UncertaintySplit one = split_uncertainty(same);
  const PredictiveSummary alone = summarize(chips[0]);
  for (int i = 0; i < inputs; ++i) {
    EXPECT_NEAR(one.variance_chips[i], 0.0, 1e-15);
    EXPECT_NEAR(one.mi_chips[i], 0.0, 1e-12);
    EXPECT_NEAR(one.mi_masks[i], alone.mutual_information[i], 1e-12);
  }
  EXPECT_THROW(split_uncertainty(std::vector<McPredictions>{}), Error);
  EXPECT_THROW(split_uncertainty(std::vector<McPredictions>{chips[0], passes(1, inputs, classes, std::vector<float>(
                                                                                                   inputs * classes, 0.25f))}),
               Error);
}

}  // namespace
}  // namespace spinbayes
