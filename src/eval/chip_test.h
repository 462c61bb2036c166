#pragma once
// `spinbayes test-chip`: a field test of simulated chips by their own uncertainty
// (population/field_test.h), and how well it finds each injected fault (hw/fault_campaign.h).
//
// 1. Test vectors: `candidates` training images drawn by the seed are run T passes on
//    `ranking_chips` fault-free chips and ranked by repeatability; the best K are the vectors.
// 2. Reference: N fault-free chips give mu and sigma of the test statistic (mean predictive
//    entropy over the vectors), at every vector count of the coverage curve.
// 3. False alarms: N other fault-free chips (the hold-out), flagged or not.
// 4. Each fault cell (class, severity): the hold-out's N chips with the fault injected, so each
//    faulty chip has a fault-free twin (same devices, same masks) and the outputs the fault changed
//    are counted against it.
// Every finished chip is stored in DIR/chips/ (DIR/test.json names the configuration): a run that
// stops (killed, a rank lost, --stop-after) resumes with only the missing chips.
// Chip seeds: reference first_seed.., hold-out and faulty first_seed + N.., ranking
// first_seed + 2N..; each chip's masks come from (seed, chip seed), as a chip's own MTJs would.
// Under mpirun the chips spread over the ranks; the outputs do not depend on how many.
#include <cstdint>
#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "data/datasets.h"
#include "hw/fault_campaign.h"
#include "population/field_test.h"
#include "population/ranks.h"
#include "population/statistics.h"

namespace spinbayes {

struct TestChipOptions {
  std::filesystem::path model;
  std::string hardware = "default";  // the chips' config: "default", "wired", "unwired", "ideal" or a file
  std::string vectors = "0.2%";      // K, or a percentage of the run's training images
  int candidates = 0;                // images ranked (0: 10 K, at most the training images)
  int ranking_chips = 8;
  std::string faults = "all";        // CLASS[:SEVERITY],...
  int chips = 100;                   // per set: reference, hold-out, and each fault cell
  std::uint64_t first_seed = 1;
  int samples = 10;                  // T
  std::uint64_t seed = 1;            // the candidates and every chip's masks
  double k = 3.0;                    // flag outside mu +- k sigma
  bool random_baseline = false;      // also test with the first K candidates, unranked
  int stop_after = 0;                // hand out no more chips once this many new ones are stored (0: finish)
  int threads = 2;
  std::filesystem::path out;
  DataPaths paths = DataPaths::from_environment();
  bool progress = true;
  std::function<void()> checks;  // rank 0, before any chip (outputs against inputs)

  void validate() const;  // throws Error naming the option
};

// What the test finds with one choice of vectors: the ranked ones, or as many random candidates
// (the baseline the ranking is measured against).
struct SelectionResult {
  std::vector<int> flagged;        // chips flagged, per vector count
  std::vector<double> statistic;   // per chip, at K vectors
  double accuracy = 0;             // on these vectors, mean over chips
  double changed_outputs = 0;      // mean share of these vectors whose prediction the fault changed
  int chips_changed = 0;           // chips with at least one changed prediction
};

struct FaultCellResult {
  FaultCell cell;  // fault empty: the fault-free hold-out
  std::string unit;
  int chips = 0;
  SelectionResult ranked;
  std::optional<SelectionResult> random;
};

struct SelectionReference {
  std::vector<Reference> by_count;  // per vector count
  std::vector<double> statistic;    // per reference chip, at K vectors
  double accuracy = 0;
};

struct TestChipResult {
  std::string model_dir, hardware;
  int samples = 0, training_images = 0, candidates = 0, ranking_chips = 0, vectors = 0, chips = 0;
  double k = 3.0;
  std::uint64_t seed = 0, first_seed = 0;
  std::vector<VectorRank> ranking;  // the K vectors, best first (candidate = training image index)
  std::vector<int> random_vectors;  // the baseline's training images (empty without it)
  std::vector<int> counts;          // vector counts of the coverage curve
  SelectionReference reference;
  std::optional<SelectionReference> reference_random;
  FaultCellResult fault_free;       // the hold-out
  std::vector<FaultCellResult> cells;
  Distribution distribution;
  double seconds = 0;
  bool complete = true;  // false: stopped (--stop-after) before every chip was stored
};

// On rank 0: the result; on the other ranks: an empty one.
TestChipResult run_test_chip(const TestChipOptions& options, const Ranks& ranks);
nlohmann::json test_chip_json(const TestChipResult& result);
std::string test_chip_csv(const TestChipResult& result);    // a row per cell and vector count
std::string vectors_csv(const TestChipResult& result);      // the ranked vectors
std::string test_chip_table(const TestChipResult& result);  // coverage at K vectors, per cell
std::string test_chip_plot_png(const TestChipResult& result);  // coverage against vector count

}  // namespace spinbayes
