#pragma once
// The statistics of a field test of an MC-dropout chip by its own uncertainty.
//
// Test vectors by repeatability ranking: each candidate image is run T passes on R fault-free
// chips; its predictive entropy on chip r is H_r. An image makes a good test vector when its
// uncertainty is there to move (a fault that removes randomness, such as modules stuck at P, can
// only lower an entropy above zero) and when fault-free chips agree on it (what they disagree on
// widens the reference and hides faults). The score is the signal-to-noise ratio of the entropy
// over the fault-free runs,
//   repeatability = mean_r H_r / (sd_r H_r + eps),   eps = 1e-3 nats,
// and the K images of highest score are the test vectors, best first. eps keeps images of
// (numerically) constant entropy finite and ranks a constant zero last.
//
// Detection: the test statistic of a chip is the mean predictive entropy over the test vectors.
// Over fault-free chips it has mean mu and standard deviation sigma; a chip is flagged when its
// statistic leaves mu +- k sigma (k = 3 by default).
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace spinbayes {

inline constexpr double kRepeatabilityEps = 1e-3;

struct VectorRank {
  int candidate = 0;  // index into the candidates
  double mean = 0, sd = 0, score = 0;
};

// `entropy[r][i]`: candidate i's predictive entropy on fault-free run r (R >= 2 runs of the same
// candidates). Every candidate, best first; ties by candidate index.
std::vector<VectorRank> rank_by_repeatability(const std::vector<std::vector<double>>& entropy);

struct Reference {
  double mu = 0, sigma = 0;
  int chips = 0;
};
// Mean and sample standard deviation (n - 1) of the fault-free statistics (at least two).
Reference fit_reference(std::span<const double> statistics);
// Whether `statistic` lies outside mu +- k sigma (strictly).
bool flagged(double statistic, const Reference& reference, double k);

// A chip's statistic over the first n test vectors: the mean of their entropies.
double test_statistic(std::span<const double> entropy, int n);

// The test-set sizes a coverage curve is drawn at: K/16, K/8, K/4, K/2 and K, rounded, at least
// one, each once, ascending.
std::vector<int> vector_counts(int k);

// One chip's test: each image's predictive entropy (nats) and predicted class, in image order.
struct ChipOutput {
  std::vector<double> entropy;
  std::vector<int> predicted;
};
// As stored (DIR/chips/*.json) and sent between ranks: {"test": KEY, "entropy": [...],
// "predicted": [...]}, KEY the fingerprint of the test's configuration ("" between ranks).
std::string chip_output_json(const ChipOutput& output, const std::string& test);
// Throws Error("<name>: ...") unless `text` is such a record of `test` for n images, with finite
// entropies in [0, 50] and classes in [0, 1000000].
ChipOutput parse_chip_output(std::string_view text, const std::string& test, std::size_t n, const std::string& name);

// K from "--vectors" for a training set of `training_images`: "K" or "P%" (rounded, at least 1).
// Throws Error("--vectors: ...") on a malformed value, zero, or more than the training images.
int parse_vector_count(const std::string& text, int training_images);

}  // namespace spinbayes
