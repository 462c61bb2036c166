#pragma once
// `spinbayes chips`: a population of simulated chips, each evaluated as `eval --backend cim` would
// (same images, masks and temperature; its own device variation and faults from its chip seed),
// beside the software engine. Per-chip rows, each metric's spread (mean, sd, 5th / 50th / 95th
// percentiles), and the yield against a specification with its exact binomial interval.
//
// DIR holds population.json (what the chips were evaluated with: model IR, hardware, evaluation),
// chips/<chip-S>.json (one record per finished chip, written atomically) and chips/software.json,
// and the outputs chips.csv, chips.json and chips.png. A run that stops (killed, a rank lost,
// --stop-after) resumes from the records; a run over a DIR of another configuration is refused.
// Under mpirun the chips spread over the ranks (population/ranks.h); the outputs are the same
// bytes for any number of ranks, threads or hosts.
#include <cstdint>
#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "eval/evaluation.h"
#include "population/chip_record.h"
#include "population/ranks.h"
#include "population/statistics.h"
#include "population/yield_spec.h"

namespace spinbayes {

inline constexpr int kMaxChips = 100000;

struct ChipsOptions {
  EvalOptions eval;  // the model and everything eval takes; backend cim, hardware the base config
  int chips = 16;
  std::uint64_t first_seed = 1;  // chips first_seed .. first_seed + chips - 1
  std::string spec;              // empty: no yield
  std::filesystem::path out;
  int stop_after = 0;  // hand out no more chips once this many new ones are stored (0: finish)
  bool progress = true;
  // Checks of rank 0 before any chip is handed out (outputs against inputs), so that a failure
  // stops every rank instead of leaving them waiting.
  std::function<void()> checks;

  void validate() const;  // throws Error naming the option
};

// The metrics every record holds, in column order, for these OOD sets.
std::vector<std::string> population_metrics(const std::vector<std::string>& ood);

// One record (software, or one chip of `chip_seed`) of `options.eval` on loaded data.
ChipRecord evaluate_member(const EvalOptions& options, const EvalData& data, const std::string& population,
                           bool software, std::uint64_t chip_seed);

struct ChipPopulation {
  ModelSpec spec;
  std::string model_dir, hardware;
  int samples = 0, test_images = 0;
  std::vector<std::string> ood, metrics;
  std::uint64_t first_seed = 1;
  ChipRecord software;
  std::vector<ChipRecord> chips;  // by chip seed
  std::vector<MetricSummary> summaries;  // per metric, in `metrics` order
  std::optional<YieldSpec> spec_required;
  std::int64_t passed = 0;
  BinomialInterval yield_ci;
  bool complete = false;  // every chip stored (false after --stop-after)
  int computed = 0;       // chips evaluated by this invocation
  Distribution distribution;
};

// On rank 0: the population (complete unless stopped); on the other ranks: an empty one.
ChipPopulation run_chips(const ChipsOptions& options, const Ranks& ranks);
std::string chips_csv(const ChipPopulation& population);
nlohmann::json chips_json(const ChipPopulation& population);
std::string chips_table(const ChipPopulation& population);
// ECDF of accuracy, ECE, NLL and each OOD set's AUROC over the chips; software marked dashed, the
// spec's bounds dotted.
std::string chips_plot_png(const ChipPopulation& population);
// Per rank: items, busy time and idle time at the end (for runs on several ranks).
std::string distribution_table(const Distribution& distribution);

}  // namespace spinbayes
