#pragma once
// Temperature scaling (Guo, Pleiss, Sun and Weinberger, "On Calibration of Modern Neural Networks",
// ICML 2017) of a Monte Carlo model's predictive distribution. The T passes are averaged first and
// the average is rescaled, p = softmax(log(mean_t p_t) / tau) ("pool, then calibrate", which
// Rahaman and Thiery, NeurIPS 2021, find better for ensembles than scaling each member): tau is
// fitted by the NLL of the distribution that is evaluated, and the rescaling keeps the order of the
// classes, so the predicted class and the accuracy cannot change. For one pass it is the classic
// softmax(z / tau) of the logits z. tau < 1 sharpens an under-confident model, tau > 1 softens.
// The passes themselves are left as the network gives them: the expected entropy, the mutual
// information and the variance between passes keep their values.
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "uncertainty/metrics.h"

namespace spinbayes {

// The summary with mean_probs rescaled to softmax(log(mean_probs) / temperature) and the predictive
// entropy recomputed from them. Throws when the temperature is not a positive finite number.
PredictiveSummary with_temperature(PredictiveSummary summary, double temperature);

// NLL of the rescaled predictive distribution against labels.
double temperature_nll(const PredictiveSummary& summary, std::span<const std::int32_t> labels, double temperature);

// The temperatures a fit may return and a calibration file may hold: a model whose best
// temperature lies beyond them is not one that temperature scaling can fix.
inline constexpr double kMinTemperature = 1.0 / 20.0, kMaxTemperature = 20.0;

struct TemperatureFit {
  double temperature = 1.0;
  double nll_before = 0.0;  // at temperature 1
  double nll_after = 0.0;   // at the fitted temperature
};

// The temperature in [kMinTemperature, kMaxTemperature] minimising temperature_nll (at a bound when the optimum lies
// beyond it): a grid in log tau, then a golden-section search around its best point. The NLL is
// convex in 1/tau (a log-sum-exp of terms linear in 1/tau, less a linear term), so the search finds
// the one minimum.
TemperatureFit fit_temperature(const PredictiveSummary& summary, std::span<const std::int32_t> labels);

// One fitted temperature and what it was fitted on.
struct FittedTemperature {
  double temperature = 1.0;
  int samples = 1;                // T of the fit (1: one pass with dropout off)
  std::uint64_t seed = 0;         // of the dropout masks
  int validation_images = 0;
  double nll_before = 0.0, nll_after = 0.0;  // on the validation images
  double ece_before = 0.0, ece_after = 0.0;
};

// A run's calibration, DIR/calibration.json:
//   {"format": "spinbayes-calibration", "version": 1, "model_ir": "<fingerprint of model.sbir>",
//    "mc": {...}, "deterministic": {...}}
// "mc" (dropout models only) applies to Monte Carlo evaluation, "deterministic" to one pass with
// dropout off; each holds a FittedTemperature's fields.
struct CalibrationRecord {
  std::string model_ir;
  std::optional<FittedTemperature> mc, deterministic;
};
std::string calibration_json(const CalibrationRecord& record);
// Throws Error "<name>: <cause>" on anything but a well-formed record with temperatures in
// [kMinTemperature, kMaxTemperature] and at least one of "mc" and "deterministic".
CalibrationRecord parse_calibration(std::string_view text, const std::string& name);

}  // namespace spinbayes
