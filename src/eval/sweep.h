#pragma once
// `spinbayes sweep`: accuracy, calibration and OOD detection of a model on simulated chips as one
// hardware parameter varies, averaged over several chips (chip seeds) per value, against the
// software engine on the same images and masks. Writes a CSV and a PNG. Under mpirun the chips
// spread over the ranks as `spinbayes chips` does (population/ranks.h), with the same results.
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

#include "eval/evaluation.h"
#include "population/ranks.h"

namespace spinbayes {

struct SweepOptions {
  EvalOptions eval;    // model, samples, seed, OOD sets, image counts, base hardware, threads
  std::string param;   // a numeric hardware key, e.g. mtj.sigma_rp
  std::vector<double> values;
  int chips = 3;
  std::filesystem::path out;  // writes <out>.csv and <out>.png
  std::function<void()> checks;  // rank 0's, before any chip is handed out (eval/population.h)
};

struct SweepPoint {
  double value = 0;
  std::uint64_t chip = 0;
  double accuracy = 0, ece = 0, nll = 0;
  std::vector<double> auroc;  // per OOD set
};

struct SweepReport {
  std::string param, unit;
  std::vector<std::string> ood;
  EvalReport software;  // the engine on the same images: the reference line
  std::vector<SweepPoint> points;
};

// On rank 0 the report; on the other ranks an empty one.
SweepReport run_sweep(const SweepOptions& options, const Ranks& ranks, bool progress = true);
SweepReport run_sweep(const SweepOptions& options, bool progress = true);  // this process alone
std::string sweep_csv(const SweepReport& report);
// The PNG's bytes: four panels (accuracy, ECE, NLL, OOD AUROC) against the parameter: the median
// over the chips with its 5th-95th percentile band, the software engine dashed.
std::string sweep_plot_png(const SweepReport& report);

}  // namespace spinbayes
