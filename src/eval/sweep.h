#pragma once
// `spinbayes sweep`: accuracy, calibration and OOD detection of a model on simulated chips as one
// hardware parameter varies, averaged over several chips (chip seeds) per value, against the
// software engine on the same images and masks. Writes a CSV and a PNG.
#include <filesystem>
#include <string>
#include <vector>

#include "eval/evaluation.h"

namespace spinbayes {

struct SweepOptions {
  EvalOptions eval;    // model, samples, seed, OOD sets, image counts, base hardware, threads
  std::string param;   // a numeric hardware key, e.g. mtj.sigma_rp
  std::vector<double> values;
  int chips = 3;
  std::filesystem::path out;  // writes <out>.csv and <out>.png
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

SweepReport run_sweep(const SweepOptions& options, bool progress = true);
std::string sweep_csv(const SweepReport& report);
// The PNG's bytes: four panels (accuracy, ECE, NLL, OOD AUROC) against the parameter, mean over
// chips with min-max bars, the software engine dashed.
std::string sweep_plot_png(const SweepReport& report);

}  // namespace spinbayes
