#include "population/statistics.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"

namespace spinbayes {

double percentile(const std::vector<double>& sorted, double q) {
  const double h = static_cast<double>(sorted.size() - 1) * q;
  const auto lo = static_cast<std::size_t>(std::floor(h));
  const std::size_t hi = std::min(lo + 1, sorted.size() - 1);
  return sorted[lo] + (h - static_cast<double>(lo)) * (sorted[hi] - sorted[lo]);
}

MetricSummary summarize_metric(std::vector<double> values) {
  if (values.empty()) throw Error("summary of no chips");
  std::sort(values.begin(), values.end());
  MetricSummary s;
  s.count = static_cast<int>(values.size());
  double sum = 0;
  for (double v : values) sum += v;
  s.mean = sum / static_cast<double>(values.size());
  double squares = 0;
  for (double v : values) squares += (v - s.mean) * (v - s.mean);
  s.sd = values.size() > 1 ? std::sqrt(squares / static_cast<double>(values.size() - 1)) : 0.0;
  s.min = values.front();
  s.max = values.back();
  s.p5 = percentile(values, 0.05);
  s.p50 = percentile(values, 0.50);
  s.p95 = percentile(values, 0.95);
  return s;
}

double binomial_cdf(std::int64_t k, std::int64_t n, double p) {
  if (k < 0) return 0.0;
  if (k >= n) return 1.0;
  if (p <= 0.0) return 1.0;
  if (p >= 1.0) return 0.0;
  // Terms in log space: log C(n, i) + i log p + (n - i) log(1 - p).
  const double lp = std::log(p), lq = std::log1p(-p);
  const double ln_n = std::lgamma(static_cast<double>(n) + 1.0);
  double total = 0.0;
  for (std::int64_t i = 0; i <= k; ++i) {
    const double di = static_cast<double>(i);
    const double log_term =
        ln_n - std::lgamma(di + 1.0) - std::lgamma(static_cast<double>(n - i) + 1.0) + di * lp + (static_cast<double>(n) - di) * lq;
    total += std::exp(log_term);
  }
  return std::min(total, 1.0);
}

namespace {

// The p in [0, 1] where the decreasing function f crosses `target`, by bisection.
template <class F>
double crossing(F f, double target) {
  double lo = 0.0, hi = 1.0;
  for (int i = 0; i < 200 && hi - lo > 1e-15; ++i) {
    const double mid = 0.5 * (lo + hi);
    (f(mid) > target ? lo : hi) = mid;
  }
  return 0.5 * (lo + hi);
}

}  // namespace

BinomialInterval clopper_pearson(std::int64_t passed, std::int64_t trials, double confidence) {
  if (trials < 1 || passed < 0 || passed > trials) throw Error("yield: needs 0 <= passed <= trials and trials >= 1");
  if (!(confidence > 0.0 && confidence < 1.0)) throw Error("yield: confidence must be in (0, 1)");
  const double alpha = 1.0 - confidence;
  BinomialInterval ci;
  // P(X >= k | p) = 1 - cdf(k - 1) grows with p; P(X <= k | p) falls with p.
  if (passed > 0) ci.low = crossing([&](double p) { return binomial_cdf(passed - 1, trials, p); }, 1.0 - alpha / 2);
  if (passed < trials) ci.high = crossing([&](double p) { return binomial_cdf(passed, trials, p); }, alpha / 2);
  return ci;
}

}  // namespace spinbayes
