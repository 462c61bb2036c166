#include "eval/experiment_results.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"
#include "uncertainty/metrics.h"

namespace spinbayes {

using nlohmann::json;

namespace {

// The parts of a model's entry that only the main models have.
template <class T>
void put_if(json& j, const char* key, const std::optional<T>& value) {
  if (value) j[key] = *value;
}
template <class T>
void get_if(const json& j, const char* key, std::optional<T>& value) {
  value.reset();
  if (j.contains(key)) value = j.at(key).get<T>();
}

// Reliability diagram over the ECE's bins: confidence = max mean probability, bin
// floor(confidence * bins) (confidence 1 in the last bin).
std::vector<ReliabilityBin> reliability_bins(const PredictiveSummary& s, const std::vector<std::int32_t>& labels,
                                             int classes, int bins) {
  std::vector<double> confidence_sum(static_cast<std::size_t>(bins)), correct(static_cast<std::size_t>(bins));
  std::vector<int> count(static_cast<std::size_t>(bins));
  for (std::size_t i = 0; i < labels.size(); ++i) {
    const double c = s.mean_probs[i * static_cast<std::size_t>(classes) + static_cast<std::size_t>(s.predicted[i])];
    const auto b = static_cast<std::size_t>(std::clamp(static_cast<int>(c * bins), 0, bins - 1));
    confidence_sum[b] += c;
    correct[b] += s.predicted[i] == labels[i] ? 1.0 : 0.0;
    ++count[b];
  }
  std::vector<ReliabilityBin> out;
  for (std::size_t b = 0; b < static_cast<std::size_t>(bins); ++b) {
    out.push_back({static_cast<double>(b) / bins, static_cast<double>(b + 1) / bins, count[b],
                   count[b] > 0 ? confidence_sum[b] / count[b] : 0.0, count[b] > 0 ? correct[b] / count[b] : 0.0});
  }
  return out;
}

// Share of images (%) per predictive-entropy bin over [0, ln classes].
EntropyHistogram entropy_histogram(const std::vector<double>& entropy, int classes, int bins) {
  const double top = std::log(static_cast<double>(classes));
  std::vector<int> count(static_cast<std::size_t>(bins));
  for (double h : entropy) ++count[static_cast<std::size_t>(std::clamp(static_cast<int>(h / top * bins), 0, bins - 1))];
  EntropyHistogram out{top, {}};
  for (int c : count) out.percent.push_back(entropy.empty() ? 0.0 : 100.0 * c / static_cast<double>(entropy.size()));
  return out;
}

}  // namespace

// ---- stage results from the library's reports ---------------------------------------------------

SplitRecord split_of(const EvalReport& r, std::vector<std::string> command) {
  if (!r.split) throw Error("uncertainty split: the evaluation ran on one chip");
  const UncertaintySplit& u = *r.split;
  SplitRecord s;
  s.chips = u.chips;
  s.samples = r.samples;
  s.test_images = r.test_images;
  s.accuracy = r.accuracy;
  s.variance_total = mean_of(u.variance_total);
  s.variance_masks = mean_of(u.variance_masks);
  s.variance_chips = mean_of(u.variance_chips);
  s.mi_total = mean_of(u.mi_total);
  s.mi_masks = mean_of(u.mi_masks);
  s.mi_chips = mean_of(u.mi_chips);
  s.command = std::move(command);
  return s;
}

Evaluation evaluation_of(const EvalReport& r, std::vector<std::string> command, bool distributions) {
  Evaluation e{report_json(r).get<EvalSummary>(), std::move(command), std::nullopt};
  if (distributions) {
    Distributions d;
    d.reliability = reliability_bins(r.test_summary, r.test_labels, r.spec.classes, 15);
    d.entropy_histograms["test"] = entropy_histogram(r.test_summary.entropy, r.spec.classes, 30);
    for (std::size_t k = 0; k < r.ood.size(); ++k) {
      d.entropy_histograms[r.ood[k].name] = entropy_histogram(r.ood_summaries[k].entropy, r.spec.classes, 30);
    }
    e.distributions = std::move(d);
  }
  return e;
}

Variation variation_of(const SweepReport& r, std::vector<std::string> command) {
  return {r.param, r.unit, r.ood, r.points, report_json(r.software).get<EvalSummary>(), std::move(command)};
}

// ---- lookups ----------------------------------------------------------------------------------

const PricePoint* Pricing::at(int samples) const {
  for (const auto& point : energy_vs_t) {
    if (point.samples == samples) return &point;
  }
  return nullptr;
}

ModelRole ModelResults::kind() const {
  if (dropout == "none") return ModelRole::deterministic;
  if (dropout == "element") return ModelRole::element;
  return main ? ModelRole::spatial : ModelRole::extra_spatial;
}

const ModelResults& ExperimentResults::model(ModelRole role) const {
  for (const auto& m : models) {
    if (m.kind() == role) return m;
  }
  throw Error("results.json: no model of the wanted role");
}

std::vector<const ModelResults*> ExperimentResults::main_models() const {
  std::vector<const ModelResults*> out;
  for (const auto& m : models) {
    if (m.main) out.push_back(&m);
  }
  return out;
}

// ---- JSON ---------------------------------------------------------------------------------------

void to_json(json& j, const EvalSummary& s) { j = s.document; }
void from_json(const json& j, EvalSummary& s) {
  static_cast<EvalMetrics&>(s) = j.get<EvalMetrics>();
  s.document = j;
}

void to_json(json& j, const Evaluation& e) {
  j = {{"report", e.report}, {"command", e.command}};
  if (e.distributions) {
    j["reliability"] = e.distributions->reliability;
    j["entropy_histograms"] = e.distributions->entropy_histograms;
  }
}
void from_json(const json& j, Evaluation& e) {
  j.at("report").get_to(e.report);
  j.at("command").get_to(e.command);
  e.distributions.reset();
  if (j.contains("reliability")) {
    e.distributions = Distributions{j.at("reliability").get<std::vector<ReliabilityBin>>(),
                                    j.at("entropy_histograms").get<std::map<std::string, EntropyHistogram>>()};
  }
}

void to_json(json& j, const CostSummary& c) { j = c.document; }
void from_json(const json& j, CostSummary& c) {
  static_cast<CostMetrics&>(c) = j.get<CostMetrics>();
  c.document = j;
}

void to_json(json& j, const ModelResults& m) {
  j = static_cast<const ModelEntry&>(m);
  put_if(j, "calibration", m.calibration);
  put_if(j, "software", m.software);
  put_if(j, "chip", m.chip);
  put_if(j, "split", m.split);
  put_if(j, "variation", m.variation);
}
void from_json(const json& j, ModelResults& m) {
  static_cast<ModelEntry&>(m) = j.get<ModelEntry>();
  get_if(j, "calibration", m.calibration);
  get_if(j, "software", m.software);
  get_if(j, "chip", m.chip);
  get_if(j, "split", m.split);
  get_if(j, "variation", m.variation);
}

void to_json(json& j, const Figure& f) {
  j = {{"file", f.file}};
  if (!f.caption.empty()) j["caption"] = f.caption;
  if (!f.command.empty()) j["command"] = f.command;
}
void from_json(const json& j, Figure& f) {
  j.at("file").get_to(f.file);
  f.caption = j.value("caption", std::string());
  f.command = j.value("command", std::vector<std::string>());
}

void to_json(json& j, const ExperimentResults& r) {
  j = {{"format", "spinbayes-experiment"}, {"version", 1},       {"settings", r.settings},
       {"models", r.models},               {"figures", r.figures}, {"run", r.run}};
}
void from_json(const json& j, ExperimentResults& r) {
  if (j.value("format", std::string()) != "spinbayes-experiment" || j.value("version", 0) != 1) {
    throw Error("results.json: not a spinbayes-experiment version 1 document");
  }
  j.at("settings").get_to(r.settings);
  j.at("models").get_to(r.models);
  j.at("figures").get_to(r.figures);
  j.at("run").get_to(r.run);
}

}  // namespace spinbayes
