#pragma once
// What `spinbayes experiment` finds, as DIR/results.json holds it: per model its training record,
// its evaluations in software and on the chip, its T axis, its device-variation sweep and its
// price, and the run's settings, figures and record. Each struct converts to and from the JSON
// layout of results.json (and of the stage files in DIR/stages/, which hold the same parts).
//
// The documents other subcommands write (`spinbayes eval --json`, `spinbayes cost --json`) are
// kept as they were written; their summaries type the few values the report shows.
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "eval/sweep.h"

namespace spinbayes {

// The models of the comparison: the three main ones and the extra spatial rates of the p axis.
enum class ModelRole { deterministic, element, spatial, extra_spatial };

// ---- evaluations (`spinbayes eval`) ----------------------------------------------------------

struct OodDetection {
  double auroc = 0, fpr95 = 0;
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(OodDetection, auroc, fpr95)

// What the report reads of `spinbayes eval --json`.
// The calibration figures at temperature 1.
struct UncalibratedFigures {
  double nll = 0, ece = 0, brier = 0;
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(UncalibratedFigures, nll, ece, brier)

struct EvalCalibration {
  std::string method;  // none | temperature
  double temperature = 1;
  UncalibratedFigures uncalibrated;
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(EvalCalibration, method, temperature, uncalibrated)

// What the report reads of `spinbayes eval --json`; accuracy, NLL, ECE, Brier and the OOD figures
// are at the applied temperature.
struct EvalMetrics {
  int samples = 0, test_images = 0;
  double accuracy = 0, nll = 0, ece = 0, brier = 0, mean_entropy = 0, mean_mutual_information = 0;
  EvalCalibration calibration;
  std::string score;  // the OOD score: entropy or mutual information
  std::map<std::string, OodDetection> ood;
  double auroc(const std::string& set) const { return ood.at(set).auroc; }
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(EvalMetrics, samples, test_images, accuracy, nll, ece, brier, mean_entropy,
                                   mean_mutual_information, calibration, score, ood)

// `spinbayes eval --json`: the document as written, and its metrics.
struct EvalSummary : EvalMetrics {
  nlohmann::json document;
};
void to_json(nlohmann::json& j, const EvalSummary& s);  // the document as written
void from_json(const nlohmann::json& j, EvalSummary& s);

// A reliability-diagram bin over the ECE's bins.
struct ReliabilityBin {
  double lo = 0, hi = 0;
  int images = 0;
  double confidence = 0, accuracy = 0;
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(ReliabilityBin, lo, hi, images, confidence, accuracy)

// Share of a set's images (%) per predictive-entropy bin over [0, max_nats].
struct EntropyHistogram {
  double max_nats = 0;
  std::vector<double> percent;
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(EntropyHistogram, max_nats, percent)

// The distributions behind the reliability and entropy figures (main evaluations only).
struct Distributions {
  std::vector<ReliabilityBin> reliability;
  std::map<std::string, EntropyHistogram> entropy_histograms;  // "test" and each OOD set
};

struct Evaluation {
  EvalSummary report;
  std::vector<std::string> command;  // `spinbayes eval` arguments that print the same report
  std::optional<Distributions> distributions;
};
void to_json(nlohmann::json& j, const Evaluation& e);  // the distributions only where there are
void from_json(const nlohmann::json& j, Evaluation& e);

// ---- device variation (`spinbayes sweep`) -----------------------------------------------------

// `spinbayes sweep`'s points as the sweep stage stores them.
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(SweepPoint, value, chip, accuracy, ece, nll, auroc)

struct Variation {
  std::string param, unit;
  std::vector<std::string> ood;
  std::vector<SweepPoint> points;
  EvalSummary software;  // the engine on the same images
  std::vector<std::string> command;
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(Variation, param, unit, ood, points, software, command)

// ---- the uncertainty split (`spinbayes eval --backend cim --chips K`) ------------------------------

// The test set's predictive uncertainty on K chips x T passes, averaged over the images: the
// variance (summed over classes) and the mutual information, each total = masks + chips
// (uncertainty/uncertainty_split.h).
struct SplitRecord {
  int chips = 0, samples = 0, test_images = 0;
  double accuracy = 0;
  double variance_total = 0, variance_masks = 0, variance_chips = 0;
  double mi_total = 0, mi_masks = 0, mi_chips = 0;
  std::vector<std::string> command;
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(SplitRecord, chips, samples, test_images, accuracy, variance_total, variance_masks,
                                   variance_chips, mi_total, mi_masks, mi_chips, command)

// ---- price (`spinbayes cost`) -----------------------------------------------------------------

// Energy of one inference by component (pJ), as the cost model writes it.
struct EnergyPj {
  double modules = 0, crossbar = 0, sense_adc = 0, digital = 0, peripherals = 0, total = 0;
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(EnergyPj, modules, crossbar, sense_adc, digital, peripherals, total)

struct SchemeSummary {
  int modules = 0;
  EnergyPj energy_pj;
  double latency_ns = 0;
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(SchemeSummary, modules, energy_pj, latency_ns)

// What the report reads of `spinbayes cost --json`.
struct CostModel {
  std::string architecture;
  int width = 0;
  std::string dropout_layers;
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(CostModel, architecture, width, dropout_layers)

struct CostRatios {  // element over spatial
  double modules_element_over_spatial = 0, dropout_energy_element_over_spatial = 0,
         energy_element_over_spatial = 0, latency_element_over_spatial = 0;
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(CostRatios, modules_element_over_spatial, dropout_energy_element_over_spatial,
                                   energy_element_over_spatial, latency_element_over_spatial)

struct CostMetrics {
  CostModel model;
  std::string hw, tech;
  int samples = 0;
  double p = 0;
  std::map<std::string, SchemeSummary> schemes;
  CostRatios ratios;
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(CostMetrics, model, hw, tech, samples, p, schemes, ratios)

// `spinbayes cost --json`: the document as written, and its metrics.
struct CostSummary : CostMetrics {
  nlohmann::json document;
};

// The model's own scheme at one T.
struct PricePoint {
  int samples = 0;
  std::string scheme;
  EnergyPj energy_pj;
  double latency_ns = 0;
  std::vector<std::string> command;
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(PricePoint, samples, scheme, energy_pj, latency_ns, command)

void to_json(nlohmann::json& j, const CostSummary& c);  // the document as written
void from_json(const nlohmann::json& j, CostSummary& c);

struct Pricing {
  CostSummary report;  // every scheme at the main T
  std::string scheme;  // the model's own
  std::vector<PricePoint> energy_vs_t;
  std::vector<std::string> command;
  const PricePoint* at(int samples) const;  // null where T was not priced
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(Pricing, report, scheme, energy_vs_t, command)

// ---- training ---------------------------------------------------------------------------------

// The settings that decide what training produces (thread count and paths aside).
struct TrainingSettings {
  std::string architecture;
  int width = 0;
  std::string dropout;
  double p = 0;
  std::string dropout_layers;
  int epochs = 0, batch = 0;
  double lr = 0;
  std::uint64_t seed = 0;
  int validation = 0, subset = 0;
  int shared_epochs = 0;  // the first epochs, trained once without dropout and shared by the models
  std::string network;    // architecture "custom": the network file's layers as JSON text; else empty
  bool operator==(const TrainingSettings&) const = default;
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(TrainingSettings, architecture, width, dropout, p, dropout_layers,
                                                epochs, batch, lr, seed, validation, subset, shared_epochs, network)

struct TrainingRecord {
  TrainingSettings settings;
  int epochs = 0;  // as recorded in train.jsonl
  double validation_accuracy = 0, seconds = 0;
  std::vector<std::string> command;
  std::string imported;  // a network imported from this ONNX file (no training here); else empty
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(TrainingRecord, settings, epochs, validation_accuracy, seconds, command, imported)

// ---- calibration (`spinbayes calibrate`) --------------------------------------------------------

// One fitted temperature as calibration.json holds it.
struct TemperatureFigures {
  double temperature = 1;
  int samples = 0, validation_images = 0;
  double nll_before = 0, nll_after = 0, ece_before = 0, ece_after = 0;
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(TemperatureFigures, temperature, samples, validation_images, nll_before, nll_after,
                                   ece_before, ece_after)

// The calibration stage: the temperature the model's evaluations apply, the file they read it
// from (relative to the experiment directory) and that file's text.
struct Calibration {
  TemperatureFigures applied;  // Monte Carlo for dropout models, one pass for the deterministic one
  std::string file, record;
  std::vector<std::string> command;
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(Calibration, applied, file, record, command)

// ---- the run ----------------------------------------------------------------------------------

// What the results hold of every model...
struct ModelEntry {
  std::string name;  // run directory name
  std::string role;  // how the report calls it
  bool main = false;
  std::string dropout;
  double p = 0;
  std::string dir, model_ir;
  TrainingRecord training;
  std::vector<Evaluation> t_axis;  // software, by T
  Pricing cost;
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(ModelEntry, name, role, main, dropout, p, dir, model_ir, training, t_axis, cost)

// ... and what the main models add.
struct ModelResults : ModelEntry {
  std::optional<Calibration> calibration;
  std::optional<Evaluation> software, chip;
  std::optional<SplitRecord> split;  // the MC models
  std::optional<Variation> variation;

  ModelRole kind() const;
  bool has_dropout() const { return dropout != "none"; }
};

struct SweepSettings {
  std::string param;
  std::vector<double> values;
  int chips = 0, samples = 0, test_count = 0;
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(SweepSettings, param, values, chips, samples, test_count)

struct ExperimentSettings {
  bool quick = false;
  std::string architecture;
  std::string network_file;  // architecture "custom": the network file; else empty
  int width = 0, epochs = 0, shared_epochs = 0, batch = 0;
  std::vector<std::string> shared_command;  // `spinbayes train` of the shared first epochs
  double lr = 0;
  int train_subset = 0, validation = 0;
  std::uint64_t seed = 0;
  double p = 0;
  std::vector<double> extra_p;
  int samples = 0;
  std::vector<int> t_values;
  int test_count = 0, chip_test_count = 0, curve_test_count = 0, ood_count = 0;
  std::vector<std::string> ood;
  std::uint64_t eval_seed = 0, chip_seed = 0;
  std::string hardware;
  SweepSettings sweep;
  std::vector<std::string> runs;  // --runs: the run directories compared as given; empty: trained here
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(ExperimentSettings, quick, architecture, network_file, width, epochs, shared_epochs, shared_command, batch, lr, train_subset,
                                   validation, seed, p, extra_p, samples, t_values, test_count, chip_test_count,
                                   curve_test_count, ood_count, ood, eval_seed, chip_seed, hardware, sweep, runs)

// A figure of the report: its file (relative to the experiment directory), and a caption or the
// command that draws it.
struct Figure {
  std::string file, caption;
  std::vector<std::string> command;
};

void to_json(nlohmann::json& j, const Figure& f);  // caption and command only where given
void from_json(const nlohmann::json& j, Figure& f);

struct ExperimentFigures {
  Figure reliability, entropy, t_axis, variation, energy, quality_energy;
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(ExperimentFigures, reliability, entropy, t_axis, variation, energy, quality_energy)

struct Machine {
  std::string cpu;
  unsigned cores = 0;
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(Machine, cpu, cores)

struct RunRecord {
  std::string command;
  Machine machine;
  std::string date;
  double seconds = 0;
  std::vector<std::string> reused_models;  // finished training runs found in place
  int stages_run = 0, stages_cached = 0;
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(RunRecord, command, machine, date, seconds, reused_models, stages_run, stages_cached)

struct ExperimentResults {
  ExperimentSettings settings;
  std::vector<ModelResults> models;  // deterministic, element, spatial, then the extra rates
  ExperimentFigures figures;
  RunRecord run;

  const ModelResults& model(ModelRole role) const;  // the first of that role
  std::vector<const ModelResults*> main_models() const;
};

void to_json(nlohmann::json& j, const ModelResults& m);
void from_json(const nlohmann::json& j, ModelResults& m);
void to_json(nlohmann::json& j, const ExperimentResults& r);
void from_json(const nlohmann::json& j, ExperimentResults& r);

// The stage results, from what the library calls return.
Evaluation evaluation_of(const EvalReport& report, std::vector<std::string> command, bool distributions);
// The averages of a report evaluated on several chips (it must hold a split).
SplitRecord split_of(const EvalReport& report, std::vector<std::string> command);
Variation variation_of(const SweepReport& report, std::vector<std::string> command);

}  // namespace spinbayes
