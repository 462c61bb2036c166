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

double regularized_incomplete_beta(double x, double a, double b) {
  if (!(a > 0.0 && b > 0.0) || !(x >= 0.0 && x <= 1.0)) throw Error("incomplete beta: argument out of range");
  if (x == 0.0 || x == 1.0) return x;
  if (x > (a + 1.0) / (a + b + 2.0)) return 1.0 - regularized_incomplete_beta(1.0 - x, b, a);
  // x^a (1 - x)^b / (a B(a, b)) times the continued fraction 1 / (1 + d1 / (1 + d2 / (1 + ...))),
  // d_{2m+1} = -(a + m)(a + b + m) x / ((a + 2m)(a + 2m + 1)), d_{2m} = m (b - m) x / ((a + 2m - 1)(a + 2m)),
  // evaluated by the modified Lentz method.
  const double front = std::exp(a * std::log(x) + b * std::log1p(-x) + std::lgamma(a + b) - std::lgamma(a) -
                                std::lgamma(b)) / a;
  constexpr double tiny = 1e-300;
  auto guarded = [](double v) { return std::fabs(v) < tiny ? tiny : v; };
  double c = 1.0;
  double d = 1.0 / guarded(1.0 - (a + b) * x / (a + 1.0));
  double f = d;
  for (int m = 1; m <= 500; ++m) {
    const double dm = static_cast<double>(m);
    const double even = dm * (b - dm) * x / ((a + 2 * dm - 1.0) * (a + 2 * dm));
    d = 1.0 / guarded(1.0 + even * d);
    c = guarded(1.0 + even / c);
    f *= d * c;
    const double odd = -(a + dm) * (a + b + dm) * x / ((a + 2 * dm) * (a + 2 * dm + 1.0));
    d = 1.0 / guarded(1.0 + odd * d);
    c = guarded(1.0 + odd / c);
    const double step = d * c;
    f *= step;
    if (std::fabs(step - 1.0) < 1e-15) break;
  }
  return std::clamp(front * f, 0.0, 1.0);
}

double student_t_two_sided_p(double t, double df) {
  if (!(df > 0.0) || std::isnan(t)) throw Error("Student's t: degrees of freedom must be positive");
  if (std::isinf(t)) return 0.0;
  return regularized_incomplete_beta(df / (df + t * t), df / 2.0, 0.5);
}

PairedTest paired_test(const std::vector<double>& a, const std::vector<double>& b) {
  if (a.size() != b.size() || a.empty() || a.size() > 20) {
    throw Error("paired test: give 1 to 20 pairs of the same length");
  }
  PairedTest r;
  r.count = static_cast<int>(a.size());
  const double n = static_cast<double>(a.size());
  for (std::size_t i = 0; i < a.size(); ++i) {
    r.differences.push_back(a[i] - b[i]);
    r.above += a[i] > b[i];
    r.below += a[i] < b[i];
  }
  double sum = 0;
  for (double d : r.differences) sum += d;
  r.mean = sum / n;
  double squares = 0;
  for (double d : r.differences) squares += (d - r.mean) * (d - r.mean);
  r.sd = r.count > 1 ? std::sqrt(squares / (n - 1.0)) : 0.0;
  if (r.count > 1 && r.sd > 0.0) {
    r.t = r.mean / (r.sd / std::sqrt(n));
    r.p_t = student_t_two_sided_p(*r.t, n - 1.0);
  } else if (r.count > 1) {
    r.p_t = r.mean == 0.0 ? 1.0 : 0.0;
  }
  // Every sign assignment: flipping d_i's sign is what "a and b are exchangeable" allows.
  const double observed = std::fabs(sum);
  const std::uint32_t assignments = 1u << r.count;
  std::uint32_t reaching = 0;
  for (std::uint32_t signs = 0; signs < assignments; ++signs) {
    double flipped = 0;
    for (int i = 0; i < r.count; ++i) flipped += (signs >> i & 1u) ? -r.differences[i] : r.differences[i];
    // Ties count as reaching (a relative tolerance for sums of the same numbers in another order).
    reaching += std::fabs(flipped) >= observed - 1e-12 * (observed + 1e-300);
  }
  r.p_sign_flip = static_cast<double>(reaching) / static_cast<double>(assignments);
  return r;
}

}  // namespace spinbayes
