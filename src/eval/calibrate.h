#pragma once
// A run's temperature (uncertainty/calibration.h): fitted by `spinbayes calibrate` (and at the end
// of `spinbayes train`) with the engine on the run's validation split, stored as
// DIR/calibration.json beside the model IR it was fitted for, and applied by `eval` on every
// backend. On the chip it acts where the T passes are averaged, in the digital periphery: for one
// pass it is a scale of the last layer's output affine (a z + b becomes (a / tau) z + b / tau), and
// for T passes a log, a scale and a softmax of the average, once per inference; nothing analog.
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>

#include "data/datasets.h"
#include "uncertainty/calibration.h"

namespace spinbayes {

// eval --calibration: automatic applies the run's temperature when it has one.
enum class CalibrationMode { automatic, none, temperature };
CalibrationMode parse_calibration_mode(const std::string& name);  // "none" | "temperature"

std::filesystem::path calibration_path(const std::filesystem::path& run_dir);  // DIR/calibration.json

// Fewer validation images than this give a temperature that fits their noise.
inline constexpr int kMinCalibrationImages = 100;

struct CalibrateOptions {
  std::filesystem::path model;  // a training run directory
  std::filesystem::path out;    // empty: DIR/calibration.json
  int samples = 20;             // T of the Monte Carlo fit (dropout models)
  std::uint64_t seed = 1;       // of the dropout masks, as eval's --seed
  int validation_count = 0;     // first N validation images (0 = all the run held out)
  int threads = 2;
  DataPaths paths = DataPaths::from_environment();

  void validate() const;  // throws Error naming the field
};

// Fits the run's temperatures (Monte Carlo at T = samples for dropout models, and one pass with
// dropout off) on its validation images with the engine, and writes them atomically, holding the
// run's lock. Throws when the run held out fewer than kMinCalibrationImages validation images.
CalibrationRecord calibrate_run(const CalibrateOptions& options);

// Whether DIR/calibration.json reads and was fitted for the run's current model.sbir.
bool calibration_is_current(const std::filesystem::path& run_dir);

// The temperature an evaluation applies.
struct AppliedCalibration {
  std::string method = "none";  // "none" | "temperature"
  double temperature = 1.0;
  std::string file;             // where it was read
  std::optional<FittedTemperature> fit;
};

// What eval applies under `mode` for a model whose IR is `model_ir`, evaluated deterministically
// (one pass, dropout off) or not. `file` empty: the run's own calibration.json. Throws on a corrupt
// file, on one fitted for another model IR, and when `temperature` is asked of a run that has none
// for this kind of evaluation.
AppliedCalibration resolve_calibration(CalibrationMode mode, const std::filesystem::path& run_dir,
                                       const std::filesystem::path& file, const std::filesystem::path& model_ir,
                                       bool deterministic);

}  // namespace spinbayes
