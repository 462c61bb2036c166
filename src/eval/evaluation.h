#pragma once
// Monte Carlo evaluation of a trained run: accuracy, calibration and uncertainty on the test set,
// and out-of-distribution detection against named OOD / shifted sets.
#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "data/datasets.h"
#include "eval/calibrate.h"
#include "hw/hardware_config.h"
#include "hw/ledger.h"
#include "model/model_ir.h"
#include "model/model_spec.h"
#include "train/run.h"
#include "uncertainty/metrics.h"
#include "uncertainty/uncertainty_split.h"

namespace spinbayes {

enum class OodScore { entropy, mutual_information };
OodScore parse_ood_score(const std::string& name);  // "entropy" | "mi"

// Which implementation runs the network: LibTorch (the training graph in eval mode), the
// bit-packed XNOR-popcount engine on the exported model IR (DIR/model.sbir), or the engine on a
// simulated spintronic chip (MTJ dropout modules and crossbars, hw/chip.h).
enum class Backend { torch, engine, cim };
Backend parse_backend(const std::string& name);
std::string to_string(Backend backend);
inline constexpr int kMaxOodImages = 1000000;

struct EvalOptions {
  std::filesystem::path model;  // a training run directory
  Backend backend = Backend::engine;
  int samples = 20;             // T stochastic passes
  std::uint64_t seed = 1;
  bool deterministic = false;   // dropout off, one pass
  std::vector<std::string> ood = {"mnist", "gaussian", "uniform"};
  OodScore score = OodScore::entropy;
  int test_count = 0;  // evaluate the first N test images (0 = all)
  int ood_count = 0;   // images per OOD set (0 = as many as test images)
  int threads = 2;
  std::string hardware = "default";  // cim: "default", "wired", "unwired", "ideal" or a hardware config file
  std::uint64_t chip_seed = 1;       // cim: which simulated chip (device variation and faults)
  // cim: evaluate every input on this many chips (seeds chip_seed, chip_seed + 1, ...) x T passes,
  // pool the passes, and split the uncertainty into masks and chips (uncertainty/uncertainty_split.h).
  int chips = 1;
  // cim: hardware parameters set over the config (dotted key, value), e.g. {"mtj.sigma_rp", 0.05}.
  std::vector<std::pair<std::string, double>> hardware_overrides;
  int validation_count = 0;  // held-out images for the OOD threshold: 0 = all, -1 = none (use the test set)
  // Temperature scaling (eval/calibrate.h): the run's temperature when it has one, by default.
  CalibrationMode calibration = CalibrationMode::automatic;
  std::filesystem::path calibration_file;  // empty: DIR/calibration.json
  DataPaths paths = DataPaths::from_environment();
  // The test images' data set (a spec, datasets.h): empty for the run's own.
  std::string data;

  void validate() const;  // throws Error naming the field, including unknown OOD names
};

// cim: the hardware config the options name, with their overrides applied and checked.
HardwareConfig hardware_in_force(const EvalOptions& options);

struct OodResult {
  std::string name;
  int images = 0;
  double auroc = 0, aupr = 0, fpr95 = 0, detected_pct = 0, mean_score = 0;
};

struct EvalReport {
  ModelSpec spec;
  std::string model_dir;
  std::string backend;
  std::string data;  // the test images' data set (its spec)
  int samples = 0, test_images = 0, validation_images = 0;
  std::uint64_t seed = 0;  // of the dropout masks and the noise OOD sets
  bool deterministic = false;
  std::string score;
  double accuracy = 0, nll = 0, ece = 0, brier = 0;  // at the applied temperature
  AppliedCalibration calibration;
  double nll_uncalibrated = 0, ece_uncalibrated = 0, brier_uncalibrated = 0;  // at temperature 1
  double mean_entropy = 0, mean_mutual_information = 0, mean_variance = 0;
  double threshold = 0;           // OOD score threshold keeping 95 % of validation inputs below
  std::string threshold_source;   // "validation", or "test" when the run held out no validation set
  double seconds = 0;
  std::vector<OodResult> ood;
  // cim only: the chip, how the model sits on it, and what the whole run did (every set).
  std::string hardware;
  std::uint64_t chip_seed = 0;
  int chips = 1;                         // pooled: chips x samples passes per input
  std::optional<UncertaintySplit> split;  // of the test set, when chips > 1
  std::vector<LayerMapping> mapping;
  Ledger ledger;
  // The per-input predictions behind the figures (not in the JSON): the test set's summary and
  // labels, and each OOD set's summary in the order of `ood`.
  PredictiveSummary test_summary;
  std::vector<std::int32_t> test_labels;
  std::vector<PredictiveSummary> ood_summaries;
};

EvalReport evaluate(const EvalOptions& options);

// What an evaluation reads besides the network: the run's settings, its model IR, and the test,
// OOD and validation images. Loaded once, it serves many evaluations of one run that differ only
// in the backend, the hardware or the chip (a chip population).
struct EvalData {
  TrainOptions run;
  std::filesystem::path ir_path;  // the run's model IR, current
  std::shared_ptr<const ModelIR> ir;  // read once (none for the torch backend)
  DataSet data;                   // the test images' data set
  ImageSet test, validation;      // validation empty when the threshold comes from the test set
  std::vector<ImageSet> ood_sets;  // in the order of EvalOptions::ood
};
EvalData load_eval_data(const EvalOptions& options);
// `options` must name the same run, images and OOD sets as the options `data` was loaded with.
EvalReport evaluate(const EvalOptions& options, const EvalData& data);
nlohmann::json report_json(const EvalReport& report);
std::string report_table(const EvalReport& report);

}  // namespace spinbayes
