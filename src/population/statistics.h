#pragma once
// Statistics of a chip population: one metric's summary over the chips, and the binomial
// confidence interval of a yield.
#include <cstdint>
#include <optional>
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

// The regularized incomplete beta function I_x(a, b), x in [0, 1], a, b > 0, by its continued
// fraction (DLMF 8.17.22) where it converges fast, x < (a + 1) / (a + b + 2), and by
// I_x(a, b) = 1 - I_{1-x}(b, a) elsewhere.
double regularized_incomplete_beta(double x, double a, double b);
// Two-sided p of Student's t with df degrees of freedom: P(|T| >= |t|) = I_{df/(df+t^2)}(df/2, 1/2).
double student_t_two_sided_p(double t, double df);

// A paired comparison of two figures measured on the same units (training seeds): the
// differences d_i = a_i - b_i, Student's paired t test on them, and the exact sign-flip
// (randomization) test, which assumes only that each d_i is as likely positive as negative under
// "no difference": p is the share of the 2^n sign assignments whose |mean| reaches the observed one,
// so with n = 3 it is never below 2/8 = 0.25.
struct PairedTest {
  int count = 0;
  std::vector<double> differences;  // a_i - b_i
  double mean = 0, sd = 0;          // of the differences; sd with n - 1, 0 for one pair
  std::optional<double> t;          // mean / (sd / sqrt(n)); none for one pair or sd = 0
  double p_t = 1;                   // two-sided, n - 1 degrees of freedom (0 where sd = 0 < |mean|)
  double p_sign_flip = 1;           // exact, two-sided
  int above = 0, below = 0;         // pairs with a > b, a < b
};
// Throws Error when the sizes differ, are 0 or exceed 20 (2^20 sign assignments).
PairedTest paired_test(const std::vector<double>& a, const std::vector<double>& b);

}  // namespace spinbayes
