#include "eval/evaluation.h"

#include <chrono>
#include <cmath>
#include <functional>
#include <limits>
#include <memory>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "model/dropout_mask.h"
#include "train/run.h"
#include "train/export.h"
#include "train/torch_model.h"
#include "engine/engine.h"
#include "hw/chip.h"
#include "hw/hardware_config.h"
#include "uncertainty/calibration.h"
#include "uncertainty/metrics.h"

namespace spinbayes {

OodScore parse_ood_score(const std::string& name) {
  if (name == "entropy") return OodScore::entropy;
  if (name == "mi") return OodScore::mutual_information;
  throw Error("score: unknown OOD score '" + name + "' (known: entropy, mi)");
}

Backend parse_backend(const std::string& name) {
  if (name == "torch") return Backend::torch;
  if (name == "engine") return Backend::engine;
  if (name == "cim") return Backend::cim;
  throw Error("backend: unknown backend '" + name + "' (known: torch, engine, cim)");
}

std::string to_string(Backend backend) {
  switch (backend) {
    case Backend::torch: return "torch";
    case Backend::engine: return "engine";
    case Backend::cim: return "cim";
  }
  return "?";
}

void EvalOptions::validate() const {
  if (samples < 1 || samples > 10000) throw Error("samples: must be in 1..10000, got " + std::to_string(samples));
  if (test_count < 0) throw Error("test-count: must be >= 0");
  if (ood_count < 0) throw Error("ood-count: must be >= 0");
  // Generated sets (noise, idx: files) hold this many images in memory, at 3 KiB each for 28x28.
  if (ood_count > kMaxOodImages) throw Error(fmt::format("ood-count: must be <= {}, got {}", kMaxOodImages, ood_count));
  HardwareConfig::require_source(hardware);
  if (chips < 1 || chips > 1000) throw Error(fmt::format("--chips: must be in 1..1000, got {}", chips));
  if (chips > 1 && backend != Backend::cim) throw Error("--chips: several chips need --backend cim");
  if (chip_seed > std::numeric_limits<std::uint64_t>::max() - static_cast<std::uint64_t>(chips - 1)) {
    throw Error("--chip-seed: the chips' seeds would pass 18446744073709551615");
  }
  if (validation_count < -1) throw Error("validation-count: must be >= -1");
  if (threads < 1 || threads > 256) throw Error("threads: must be in 1..256");
  if (!data.empty()) parse_data_set(data, "--data");
  if (calibration == CalibrationMode::none && !calibration_file.empty()) {
    throw Error("--calibration-file: given with --calibration none, which applies no file");
  }
  for (std::size_t i = 0; i < ood.size(); ++i) {
    check_ood_set_name(ood[i]);
    for (std::size_t j = 0; j < i; ++j) {
      if (ood[j] == ood[i]) throw Error("ood: '" + printable(ood[i]) + "' is given twice");
    }
  }
}

HardwareConfig hardware_in_force(const EvalOptions& options) {
  HardwareConfig hw = HardwareConfig::load(options.hardware);
  for (const auto& [key, value] : options.hardware_overrides) {
    const ConfigTable table = hw.table();
    if (table.number_unit(key) == nullptr) throw Error("--param: '" + key + "' is not a numeric hardware key");
    hw.table().apply(nlohmann::json{{key, value}}, "--param");
  }
  hw.validate("--param");
  return hw;
}

namespace {

// One interface over the backends: the spec and a predict() with TorchModel's signature (plus
// the ledger the chip fills).
struct Predictor {
  using Predict = std::function<McPredictions(const ImageSet&, int, std::uint64_t, bool, Ledger*)>;
  ModelSpec spec;
  Predict predict;
  std::shared_ptr<const Chip> chip;  // cim: the first chip
  // cim: each chip's predictions of a set, in chip order (predict pools them).
  std::function<std::vector<McPredictions>(const ImageSet&, int, std::uint64_t, bool, Ledger*)> per_chip;
};

// `data.ir`: the run's model IR, current (ensure_model_ir), read once for every evaluation of it.
Predictor load_predictor(const EvalOptions& options, const EvalData& data) {
  const std::filesystem::path& dir = options.model;
  if (options.backend == Backend::torch) {
    auto model = std::make_shared<TorchModel>(TorchModel::load(dir));
    return {model->spec(),
            [model](const ImageSet& set, int samples, std::uint64_t seed, bool dropout, Ledger*) {
              return model->predict(set, samples, seed, dropout);
            },
            nullptr, nullptr};
  }
  const ModelIR& ir = *data.ir;
  if (options.backend == Backend::cim) {
    const HardwareConfig hw = hardware_in_force(options);
    std::vector<std::shared_ptr<const Chip>> chips;
    for (int c = 0; c < options.chips; ++c) {
      chips.push_back(std::make_shared<const Chip>(ir, hw, options.chip_seed + static_cast<std::uint64_t>(c)));
    }
    auto per_chip = [chips](const ImageSet& set, int samples, std::uint64_t seed, bool dropout, Ledger* ledger) {
      std::vector<McPredictions> out;
      for (const auto& chip : chips) out.push_back(chip->predict(set, samples, seed, dropout, ledger));
      return out;
    };
    Predictor p{chips.front()->spec(), nullptr, chips.front(), per_chip};
    p.predict = [per_chip](const ImageSet& set, int samples, std::uint64_t seed, bool dropout, Ledger* ledger) {
      const std::vector<McPredictions> each = per_chip(set, samples, seed, dropout, ledger);
      return each.size() == 1 ? each.front() : pooled_passes(each);
    };
    return p;
  }
  auto engine = std::make_shared<Engine>(ir);
  return {engine->spec(),
          [engine](const ImageSet& set, int samples, std::uint64_t seed, bool dropout, Ledger*) {
            return engine->predict(set, samples, seed, dropout);
          },
          nullptr, nullptr};
}

const std::vector<double>& ood_scores(const PredictiveSummary& s, OodScore score) {
  return score == OodScore::entropy ? s.entropy : s.mutual_information;
}


}  // namespace

EvalData load_eval_data(const EvalOptions& options) {
  options.validate();
  EvalData d;
  d.run = load_run_config(options.model);
  d.ir_path = ensure_model_ir(options.model);
  if (options.backend != Backend::torch) d.ir = std::make_shared<const ModelIR>(load_model_ir(d.ir_path));
  d.data = options.data.empty() ? d.run.data : parse_data_set(options.data, "--data");
  d.test = load_data_split(d.data, options.paths, "test", options.test_count);
  d.run.spec.check_input(d.test.name, d.test.c, d.test.h, d.test.w);
  for (std::size_t i = 0; i < d.test.labels.size(); ++i) {
    if (d.test.labels[i] >= d.run.spec.classes) {
      throw Error((options.data.empty() ? "training.data" : "--data") + std::string(": ") + d.data.spec() +
                  ": test label " + std::to_string(d.test.labels[i]) + " of image " + std::to_string(i) +
                  " is not one of the model's " + std::to_string(d.run.spec.classes) + " classes");
    }
  }
  // OOD sets are built before any inference so that a bad name or file fails fast.
  const int ood_count = options.ood_count > 0 ? options.ood_count : d.test.n;
  for (const auto& name : options.ood) {
    d.ood_sets.push_back(make_ood_set(name, d.test, ood_count, options.paths, options.seed));
  }
  if (d.run.validation > 0 && options.validation_count >= 0) {
    d.validation = load_training_split(options.paths, d.run).validation;
    if (options.validation_count > 0 && options.validation_count < d.validation.n) {
      d.validation = first_images(d.validation, options.validation_count);
    }
  }
  return d;
}

EvalReport evaluate(const EvalOptions& options) {
  options.validate();
  const auto start = std::chrono::steady_clock::now();
  EvalReport r = evaluate(options, load_eval_data(options));
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return r;
}

EvalReport evaluate(const EvalOptions& options, const EvalData& data) {
  options.validate();
  const auto start = std::chrono::steady_clock::now();
  configure_threads(options.threads);
  const std::filesystem::path& ir_path = data.ir_path;
  if (options.backend != Backend::torch && data.ir == nullptr) throw Error("evaluate: the model IR was not loaded");
  const Predictor model = load_predictor(options, data);
  // Mutual information is the spread between stochastic passes: with one pass it is 0 for every
  // input, and an OOD detector on it would report AUROC 0.5 as if it were a result.
  if (options.score == OodScore::mutual_information &&
      (options.deterministic || !model.spec.has_dropout() || options.samples < 2)) {
    const std::string why = options.deterministic ? "--deterministic runs one pass"
                            : !model.spec.has_dropout() ? "the model was trained without dropout, so every pass is the same"
                                                        : "--samples 1 runs one pass";
    throw Error("score: mutual information needs several stochastic passes, but " + why + "; use --score entropy");
  }

  const ImageSet& test = data.test;
  const ImageSet& validation = data.validation;
  const std::vector<ImageSet>& ood_sets = data.ood_sets;

  const bool dropout = !options.deterministic;
  EvalReport r;
  r.calibration = resolve_calibration(options.calibration, options.model, options.calibration_file, ir_path,
                                      !dropout || !model.spec.has_dropout());
  // The predictive distribution at the applied temperature (temperature 1: as the network gives it).
  auto predict_raw = [&](const ImageSet& set, const char* tag) {
    return summarize(
        model.predict(set, options.samples, stream_seed(options.seed, name_tag(tag)), dropout, &r.ledger));
  };
  auto calibrated = [&](PredictiveSummary raw) { return with_temperature(std::move(raw), r.calibration.temperature); };
  auto predict = [&](const ImageSet& set, const char* tag) { return calibrated(predict_raw(set, tag)); };
  if (model.chip != nullptr) {
    r.hardware = options.hardware;
    r.chip_seed = options.chip_seed;
    r.chips = options.chips;
    r.mapping = model.chip->mapping();
  }
  r.spec = model.spec;
  r.model_dir = options.model.string();
  r.data = data.data.spec();
  r.backend = to_string(options.backend);
  r.deterministic = options.deterministic;
  r.score = options.score == OodScore::entropy ? "entropy" : "mi";
  PredictiveSummary raw;
  if (options.chips > 1) {
    // Each chip's passes of the test set, kept apart for the split, then pooled.
    const std::vector<McPredictions> each =
        model.per_chip(test, options.samples, stream_seed(options.seed, name_tag("test")), dropout, &r.ledger);
    r.split = split_uncertainty(each);
    raw = summarize(pooled_passes(each));
  } else {
    raw = predict_raw(test, "test");
  }
  const PredictiveSummary s = calibrated(raw);
  r.nll_uncalibrated = negative_log_likelihood(raw, test.labels);
  r.ece_uncalibrated = expected_calibration_error(raw, test.labels, model.spec.classes, 15);
  r.brier_uncalibrated = brier_score(raw, test.labels, model.spec.classes);
  r.samples = dropout && r.spec.has_dropout() ? options.samples : 1;
  r.test_images = test.n;
  r.accuracy = accuracy(s, test.labels);
  r.nll = negative_log_likelihood(s, test.labels);
  r.ece = expected_calibration_error(s, test.labels, r.spec.classes, 15);
  r.brier = brier_score(s, test.labels, r.spec.classes);
  r.mean_entropy = mean_of(s.entropy);
  r.mean_mutual_information = mean_of(s.mutual_information);
  r.mean_variance = mean_of(s.variance);

  const auto& in_scores = ood_scores(s, options.score);
  if (validation.n > 0) {
    const PredictiveSummary v = predict(validation, "validation");
    r.threshold = quantile_threshold(ood_scores(v, options.score), 0.95);
    r.validation_images = validation.n;
    r.threshold_source = "validation";
  } else {
    r.threshold = quantile_threshold(in_scores, 0.95);
    r.threshold_source = "test";
  }
  for (std::size_t k = 0; k < ood_sets.size(); ++k) {
    const ImageSet& set = ood_sets[k];
    const PredictiveSummary o = predict(set, set.name.c_str());
    const auto& out_scores = ood_scores(o, options.score);
    OodResult result;
    result.name = options.ood[k];
    result.images = set.n;
    result.auroc = auroc(in_scores, out_scores);
    result.aupr = aupr(in_scores, out_scores);
    result.fpr95 = fpr_at_95_tpr(in_scores, out_scores);
    result.detected_pct = detected_percent(out_scores, r.threshold);
    result.mean_score = mean_of(out_scores);
    r.ood.push_back(result);
    r.ood_summaries.push_back(o);
  }
  // Every figure must be a number: settings that the model cannot compute (a NaN in a
  // probability) fail here, naming what ran, instead of reporting NaN as a result.
  const auto finite = [&](double value, const std::string& name) {
    if (std::isfinite(value)) return;
    std::string what = r.backend + " backend";
    if (model.chip != nullptr) what += " on hardware '" + options.hardware + "'";
    for (const auto& [key, v] : options.hardware_overrides) what += fmt::format(" with {} = {:g}", key, v);
    throw Error(fmt::format("{}: {} is {} on the {}; these settings give no computable predictions",
                            options.model.string(), name, value, what));
  };
  finite(r.accuracy, "accuracy");
  finite(r.nll, "NLL");
  finite(r.ece, "ECE");
  finite(r.brier, "Brier score");
  finite(r.nll_uncalibrated, "NLL at temperature 1");
  finite(r.ece_uncalibrated, "ECE at temperature 1");
  finite(r.brier_uncalibrated, "Brier score at temperature 1");
  finite(r.mean_entropy, "mean entropy");
  finite(r.mean_mutual_information, "mean mutual information");
  finite(r.mean_variance, "mean variance");
  finite(r.threshold, "the OOD threshold");
  for (const OodResult& o : r.ood) {
    for (const double v : {o.auroc, o.aupr, o.fpr95, o.detected_pct, o.mean_score}) finite(v, "OOD '" + o.name + "' figure");
  }
  r.seed = options.seed;
  r.test_summary = s;
  r.test_labels = test.labels;
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return r;
}

namespace {

// What was applied, where it came from, and the calibration figures without it.
nlohmann::json calibration_json(const EvalReport& r) {
  nlohmann::json j = {{"method", r.calibration.method},
                      {"temperature", r.calibration.temperature},
                      {"uncalibrated", {{"nll", r.nll_uncalibrated}, {"ece", r.ece_uncalibrated}, {"brier", r.brier_uncalibrated}}}};
  if (r.calibration.fit) {
    j["file"] = r.calibration.file;
    j["fitted_on"] = {{"validation_images", r.calibration.fit->validation_images},
                      {"samples", r.calibration.fit->samples},
                      {"seed", r.calibration.fit->seed}};
  }
  return j;
}

}  // namespace

nlohmann::json report_json(const EvalReport& r) {
  nlohmann::json ood = nlohmann::json::object();
  for (const auto& o : r.ood) {
    ood[o.name] = {{"images", o.images}, {"auroc", o.auroc}, {"aupr", o.aupr}, {"fpr95", o.fpr95},
                   {"detected_pct", o.detected_pct}, {"mean_score", o.mean_score}};
  }
  nlohmann::json j = {{"model_dir", r.model_dir},
          {"model", r.spec},
          {"data", r.data},
          {"backend", r.backend},
          {"deterministic", r.deterministic},
          {"samples", r.samples},
          {"seed", r.seed},
          {"test_images", r.test_images},
          {"validation_images", r.validation_images},
          {"accuracy", r.accuracy},
          {"nll", r.nll},
          {"ece", r.ece},
          {"brier", r.brier},
          {"calibration", calibration_json(r)},
          {"mean_entropy", r.mean_entropy},
          {"mean_mutual_information", r.mean_mutual_information},
          {"mean_variance", r.mean_variance},
          {"score", r.score},
          {"ood_threshold", r.threshold},
          {"ood_threshold_source", r.threshold_source},
          {"seconds", r.seconds},
          {"ood", ood}};
  if (!r.mapping.empty()) {
    j["hardware"] = r.hardware;
    j["chip_seed"] = r.chip_seed;
    j["chips"] = r.chips;
    j["ledger"] = ledger_json(r.ledger, r.mapping);
  }
  if (r.split) {
    const UncertaintySplit& u = *r.split;
    j["uncertainty_split"] = {
        {"chips", u.chips},
        {"variance", {{"total", mean_of(u.variance_total)}, {"masks", mean_of(u.variance_masks)},
                      {"chips", mean_of(u.variance_chips)}}},
        {"mutual_information", {{"total", mean_of(u.mi_total)}, {"masks", mean_of(u.mi_masks)},
                                {"chips", mean_of(u.mi_chips)}}},
        {"per_input", {{"variance_masks", u.variance_masks}, {"variance_chips", u.variance_chips},
                       {"mi_masks", u.mi_masks}, {"mi_chips", u.mi_chips}}}};
  }
  return j;
}

std::string report_table(const EvalReport& r) {
  std::string out;
  out += fmt::format("model     {} (dropout {} p={} on {}){}\n", network_description(r.spec),
                     to_string(r.spec.dropout), r.spec.p, r.spec.dropout_layers,
                     r.deterministic ? ", evaluated deterministically" : "");
  out += fmt::format("samples   T = {}   test images {}   {:.1f} s\n", r.samples, r.test_images, r.seconds);
  out += fmt::format("  accuracy  {:7.2f} %\n", 100.0 * r.accuracy);
  if (r.calibration.method == "temperature") {
    out += fmt::format("  temperature {:.4f} (fitted on {} validation images at T = {}; {})\n", r.calibration.temperature,
                       r.calibration.fit->validation_images, r.calibration.fit->samples, r.calibration.file);
    out += fmt::format("  NLL       {:7.4f}   ({:.4f} before temperature scaling)\n", r.nll, r.nll_uncalibrated);
    out += fmt::format("  ECE       {:7.4f}   (15 bins; {:.4f} before temperature scaling)\n", r.ece, r.ece_uncalibrated);
    out += fmt::format("  Brier     {:7.4f}   ({:.4f} before temperature scaling)\n", r.brier, r.brier_uncalibrated);
  } else {
    out += fmt::format("  NLL       {:7.4f}\n", r.nll);
    out += fmt::format("  ECE       {:7.4f}   (15 bins; no temperature scaling)\n", r.ece);
    out += fmt::format("  Brier     {:7.4f}\n", r.brier);
  }
  out += fmt::format("  entropy   {:7.4f}   mutual information {:.4f}   variance {:.5f}\n", r.mean_entropy,
                     r.mean_mutual_information, r.mean_variance);
  if (!r.mapping.empty()) {
    const LayerEvents t = r.ledger.total();
    const double left_ap = t.module_writes > 0 ? 100.0 * static_cast<double>(t.module_writes_ap) /
                                                     static_cast<double>(t.module_writes)
                                               : 0.0;
    out += fmt::format("chip      {} (seed {}): {} module writes ({:.2f} % left in AP), {} module reads, {} word-line "
                       "drives, {} sense decisions, {} ADC conversions\n",
                       r.hardware, r.chip_seed, t.module_writes, left_ap, t.module_reads, t.wordline_drives,
                       t.sense_decisions, t.adc_conversions);
    if (r.split) {
      const UncertaintySplit& u = *r.split;
      const auto share = [](double part, double total) { return total > 0 ? 100.0 * part / total : 0.0; };
      const double v = mean_of(u.variance_total), mi = mean_of(u.mi_total);
      out += fmt::format("uncertainty over {} chips (seeds {}..{}) x T = {}: variance {:.5f} = masks {:.5f} ({:.1f} %) "
                         "+ chips {:.5f} ({:.1f} %); mutual information {:.4f} = masks {:.4f} + chips {:.4f}\n",
                         u.chips, r.chip_seed, r.chip_seed + static_cast<std::uint64_t>(u.chips - 1), r.samples, v,
                         mean_of(u.variance_masks), share(mean_of(u.variance_masks), v), mean_of(u.variance_chips),
                         share(mean_of(u.variance_chips), v), mi, mean_of(u.mi_masks), mean_of(u.mi_chips));
    }
  }
  if (!r.ood.empty()) {
    out += fmt::format("OOD detection by {} (threshold {:.4f} keeps 95 % of {} inputs below)\n", r.score,
                       r.threshold, r.threshold_source);
    out += fmt::format("  {:<12} {:>7} {:>7} {:>7} {:>7} {:>10}\n", "set", "images", "AUROC", "AUPR", "FPR95",
                       "detected");
    for (const auto& o : r.ood) {
      out += fmt::format("  {:<12} {:>7} {:>7.4f} {:>7.4f} {:>7.4f} {:>9.2f}%\n",
                         o.name.size() > 12 ? o.name.substr(0, 9) + "..." : o.name, o.images, o.auroc, o.aupr,
                         o.fpr95, o.detected_pct);
    }
  }
  return out;
}

}  // namespace spinbayes
