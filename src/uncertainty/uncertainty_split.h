#pragma once
// The predictive uncertainty of Monte Carlo passes on several chips, split into the part the
// dropout masks give (within a chip) and the part the chips give (between chips).
//
// Variance, by the law of total variance over the C x T passes (population variances, summed over
// the classes): Var_{c,t}[p] = E_c[Var_t p] (masks) + Var_c[E_t p] (chips).
// Mutual information between the prediction y and the pass, by the chain rule
// I(y; c, t) = I(y; c) + I(y; t | c), with pbar the pooled mean and pbar_c each chip's:
//   total  H[pbar] - E_{c,t} H[p_{c,t}]
//   chips  H[pbar] - E_c H[pbar_c]
//   masks  E_c (H[pbar_c] - E_t H[p_{c,t}])
#include <span>
#include <vector>

#include "uncertainty/metrics.h"

namespace spinbayes {

struct UncertaintySplit {
  int chips = 0;
  // Per input.
  std::vector<double> variance_total, variance_masks, variance_chips;
  std::vector<double> mi_total, mi_masks, mi_chips;
};

// `chips`: each chip's predictions of the same inputs, with the same T and classes. Throws Error
// on an empty list or predictions of other shapes.
UncertaintySplit split_uncertainty(std::span<const McPredictions> chips);

// The chips' passes as one set of C x T passes (chip-major), what the pooled predictive averages.
McPredictions pooled_passes(std::span<const McPredictions> chips);

}  // namespace spinbayes
