#pragma once
// Statistics of a chip population: one metric's summary over the chips, and the binomial
// confidence interval of a yield.
#include <cstdint>
#include <vector>

namespace spinbayes {

struct MetricSummary {
  int count = 0;
  double mean = 0, sd = 0;  // sd: sample standard deviation (n - 1); 0 for one chip
  double min = 0, p5 = 0, p50 = 0, p95 = 0, max = 0;
};

// The q-quantile (q in [0, 1]) of `sorted` (ascending, not empty), interpolated linearly between
// the order statistics at h = (n - 1) q (Hyndman and Fan's type 7, the default of R and NumPy).
double percentile(const std::vector<double>& sorted, double q);
MetricSummary summarize_metric(std::vector<double> values);  // throws Error when empty

// The exact (Clopper-Pearson) two-sided interval of a binomial proportion: `passed` successes in
// `trials`, at `confidence` (0.95). Bounds solve P(X >= k | p_lo) = alpha/2 and
// P(X <= k | p_hi) = alpha/2 (Clopper and Pearson, Biometrika 26:404, 1934); p_lo = 0 when k = 0,
// p_hi = 1 when k = n.
struct BinomialInterval {
  double low = 0, high = 1;
};
BinomialInterval clopper_pearson(std::int64_t passed, std::int64_t trials, double confidence = 0.95);
// P(X <= k) for X ~ Binomial(n, p).
double binomial_cdf(std::int64_t k, std::int64_t n, double p);

}  // namespace spinbayes
