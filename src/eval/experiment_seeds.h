#pragma once
// `spinbayes experiment --seeds N`: the comparison over N training seeds. Each seed is one whole
// experiment (eval/experiment.h) in DIR/seed-<s>/, its models trained into the common models
// directory (seed 1's under the single-seed names, another seed s's with "-s<s>", see
// ExperimentOptions::model_suffix). What is gathered here from the seeds' results: each figure's
// per-seed values and their spread, the paired comparisons between the models across the seeds
// (population/statistics.h: Student's paired t and the exact sign-flip test), and the T axis per
// seed; written as DIR/results.json, DIR/report.md and two figures with the spread.
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "eval/experiment.h"
#include "eval/experiment_results.h"
#include "population/ranks.h"
#include "population/statistics.h"

namespace spinbayes {

// The spread of one figure over the seeds: mean, sample standard deviation (n - 1; 0 for one
// seed), min and max.
struct SeedSpread {
  double mean = 0, sd = 0, min = 0, max = 0;
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(SeedSpread, mean, sd, min, max)
SeedSpread spread_of(const std::vector<double>& values);  // throws Error when empty

// One figure of one model over the seeds.
struct SeedValues {
  std::string model;   // deterministic | element | spatial
  std::string where;   // software | chip | calibration | training | cost
  std::string metric;  // accuracy, nll, ece, brier, nll_t1, ece_t1, auroc.<set>, temperature, ...
  std::vector<double> values;  // in the order of the seeds
  SeedSpread spread;
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(SeedValues, model, where, metric, values, spread)

// Model a against model b on one figure, paired by seed: the differences are a - b.
struct SeedComparison {
  std::string a, b, where, metric;
  PairedTest test;
};
void to_json(nlohmann::json& j, const SeedComparison& c);
void from_json(const nlohmann::json& j, SeedComparison& c);

// One model's figure along the T axis (software): values[seed][k] at samples[k].
struct SeedCurve {
  std::string model, metric;
  std::vector<int> samples;
  std::vector<std::vector<double>> values;
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(SeedCurve, model, metric, samples, values)

// One seed's experiment, where it is and what it took.
struct SeedRun {
  std::uint64_t seed = 0;
  std::string dir;  // relative to the multi-seed directory: "seed-2"
  std::vector<std::string> command;  // `spinbayes experiment` of that seed alone
  double seconds = 0;
  int stages_run = 0, stages_cached = 0;
  std::vector<std::string> reused_models;
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(SeedRun, seed, dir, command, seconds, stages_run, stages_cached, reused_models)

struct SeedFigures {
  Figure quality, t_axis;
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(SeedFigures, quality, t_axis)

struct MultiSeedResults {
  std::vector<std::uint64_t> seeds;
  std::vector<SeedRun> runs;
  ExperimentSettings settings;  // the first seed's; every seed shares them but for the seed
  std::map<std::string, std::string> roles;  // model key -> how the report calls it
  std::vector<SeedValues> values;
  std::vector<SeedComparison> comparisons;
  std::vector<SeedCurve> curves;
  SeedFigures figures;
  RunRecord run;

  // The values of one figure; throws Error when there are none.
  const SeedValues& find(const std::string& model, const std::string& where, const std::string& metric) const;
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(MultiSeedResults, seeds, runs, settings, roles, values, comparisons, curves,
                                   figures, run)

// The main models' keys in the order of the tables, and the pairs compared (a, b).
const std::vector<std::string>& seed_model_keys();
const std::vector<std::pair<std::string, std::string>>& seed_model_pairs();

// Gathers the seeds' results (in the order of `seeds`): every figure of the three main models, the
// comparisons of the pairs on accuracy, NLL, ECE and each OOD set's AUROC in software and on the
// chip, and the T axis. Throws Error when the seeds' results do not hold the same models, OOD sets
// and T axis.
MultiSeedResults aggregate_seeds(const std::vector<std::uint64_t>& seeds, const std::vector<ExperimentResults>& per_seed);

// report.md and the figures (gnuplot PNGs into `dir`, returned relative to the experiment
// directory), drawn from the aggregate alone.
std::string multi_seed_report_markdown(const MultiSeedResults& results);
SeedFigures write_multi_seed_figures(const MultiSeedResults& results, const std::filesystem::path& dir);

struct MultiSeedResult {
  MultiSeedResults results;
  int stages_run = 0, stages_cached = 0;
  double seconds = 0;
};

// Runs the experiment once per seed (options.seed, options.seed + 1, ...; options.seeds of them)
// into DIR/seed-<s>/, then writes DIR/results.json, DIR/report.md and DIR/figures/seeds_*.png.
// Rank 0 locks DIR and every DIR/seed-<s> for the whole run, and checks that no other run writes a
// model directory the seeds train into, before any work (a conflict is an Error on rank 0 and
// FailedElsewhere on the others). Under mpirun the seeds are spread over the ranks (each rank one
// seed at a time, rank 0 too);
// rank 0 writes the whole and returns it, the other ranks return an empty result. Every figure
// is the same as one process's: a seed's run depends on its seed alone.
MultiSeedResult run_multi_seed_experiment(const ExperimentOptions& options, const Ranks& ranks = Ranks());

}  // namespace spinbayes
