#include "eval/calibrate.h"

#include <fmt/format.h>

#include "core/atomic_file.h"
#include "core/dir_lock.h"
#include "core/error.h"
#include "core/read_file.h"
#include "core/streams.h"
#include "engine/engine.h"
#include "eval/stage_cache.h"
#include "model/model_ir.h"
#include "train/export.h"
#include "train/run.h"

namespace spinbayes {

namespace {

FittedTemperature fit_on(const McPredictions& mc, const ImageSet& validation, int samples, std::uint64_t seed,
                         int classes) {
  const PredictiveSummary raw = summarize(mc);
  const TemperatureFit fit = fit_temperature(raw, validation.labels);
  const PredictiveSummary scaled = with_temperature(raw, fit.temperature);
  FittedTemperature f;
  f.temperature = fit.temperature;
  f.samples = samples;
  f.seed = seed;
  f.validation_images = validation.n;
  f.nll_before = fit.nll_before;
  f.nll_after = fit.nll_after;
  f.ece_before = expected_calibration_error(raw, validation.labels, classes);
  f.ece_after = expected_calibration_error(scaled, validation.labels, classes);
  return f;
}

}  // namespace

CalibrationMode parse_calibration_mode(const std::string& name) {
  if (name == "none") return CalibrationMode::none;
  if (name == "temperature") return CalibrationMode::temperature;
  throw Error("--calibration: unknown method '" + printable(name) + "' (known: none, temperature)");
}

std::filesystem::path calibration_path(const std::filesystem::path& run_dir) { return run_dir / "calibration.json"; }

void CalibrateOptions::validate() const {
  if (samples < 2 || samples > 10000) throw Error(fmt::format("--samples: must be in 2..10000, got {}", samples));
  if (validation_count < 0) throw Error(fmt::format("--validation-count: must be >= 0, got {}", validation_count));
  if (threads < 1 || threads > 256) throw Error(fmt::format("--threads: must be in 1..256, got {}", threads));
}

CalibrationRecord calibrate_run(const CalibrateOptions& options) {
  options.validate();
  const TrainOptions run = load_run_config(options.model);
  if (run.validation <= 0) {
    throw Error(printable(options.model.string()) +
                ": the run held out no validation images (--validation 0), so there is nothing to fit a "
                "temperature on");
  }
  if (options.validation_count > run.validation) {
    throw Error(fmt::format("--validation-count: the run held out {} validation images, fewer than the {} asked for",
                            run.validation, options.validation_count));
  }
  const int images = options.validation_count > 0 ? options.validation_count : run.validation;
  if (images < kMinCalibrationImages) {
    throw Error(options.validation_count > 0
                    ? fmt::format("--validation-count: a temperature fitted on {} images is noise; give at least {}",
                                  images, kMinCalibrationImages)
                    : fmt::format("{}: the run held out only {} validation images; a temperature needs at least {}",
                                  printable(options.model.string()), images, kMinCalibrationImages));
  }
  const std::filesystem::path out = options.out.empty() ? calibration_path(options.model) : options.out;
  check_output_path(out, "--out");
  std::vector<std::filesystem::path> inputs = run_files(options.model);
  std::erase(inputs, calibration_path(options.model));  // the default output
  check_not_an_input(out, inputs, "--out");
  // Training writes the run's files; a calibration reads them and writes its own.
  const DirectoryLock lock(options.model, "--model", "training run or calibration");
  configure_threads(options.threads);
  const std::filesystem::path ir_path = ensure_model_ir(options.model);
  const Engine engine(load_model_ir(ir_path));
  ImageSet validation = load_training_split(options.paths, run).validation;
  if (options.validation_count > 0 && options.validation_count < validation.n) {
    validation = first_images(validation, options.validation_count);
  }
  // The masks eval draws for the validation images under the same --seed.
  const std::uint64_t seed = stream_seed(options.seed, name_tag("validation"));
  const int classes = engine.spec().classes;
  CalibrationRecord record;
  record.model_ir = file_fingerprint(ir_path);
  if (engine.spec().has_dropout()) {
    record.mc = fit_on(engine.predict(validation, options.samples, seed, true), validation, options.samples,
                       options.seed, classes);
  }
  record.deterministic = fit_on(engine.predict(validation, 1, seed, false), validation, 1, options.seed, classes);
  write_file_atomic(out, calibration_json(record));
  return record;
}

bool calibration_is_current(const std::filesystem::path& run_dir) {
  try {
    const auto path = calibration_path(run_dir);
    const auto ir = run_dir / "model.sbir";
    if (!std::filesystem::is_regular_file(path) || !std::filesystem::is_regular_file(ir)) return false;
    return parse_calibration(read_file_bytes(path, std::uint64_t{1} << 20), path.string()).model_ir ==
           file_fingerprint(ir);
  } catch (const Error&) {
    return false;
  }
}

AppliedCalibration resolve_calibration(CalibrationMode mode, const std::filesystem::path& run_dir,
                                       const std::filesystem::path& file, const std::filesystem::path& model_ir,
                                       bool deterministic) {
  AppliedCalibration applied;
  if (mode == CalibrationMode::none) return applied;
  const std::filesystem::path path = file.empty() ? calibration_path(run_dir) : file;
  const std::string name = printable(path.string());
  std::error_code ec;
  // A dangling link is there, and an error when read; only a path with nothing at it is "none".
  if (!std::filesystem::exists(std::filesystem::symlink_status(path, ec))) {
    if (mode == CalibrationMode::automatic && file.empty()) return applied;
    throw Error(name + ": not found; fit one with `spinbayes calibrate --model " + printable(run_dir.string()) +
                "`, or evaluate with --calibration none");
  }
  const CalibrationRecord record = parse_calibration(read_file_bytes(path, std::uint64_t{1} << 20), name);
  if (record.model_ir != file_fingerprint(model_ir)) {
    throw Error(name + ": fitted for another model IR than " + printable(model_ir.string()) +
                " (the run was trained or exported again); fit it again with `spinbayes calibrate --model " +
                printable(run_dir.string()) + "`");
  }
  const std::optional<FittedTemperature>& fit = deterministic ? record.deterministic : record.mc;
  if (!fit) {
    throw Error(name + ": holds no temperature for " +
                (deterministic ? std::string("one pass with dropout off") : std::string("Monte Carlo passes")) +
                "; fit it again with `spinbayes calibrate`, or evaluate with --calibration none");
  }
  applied.method = "temperature";
  applied.temperature = fit->temperature;
  applied.file = path.string();
  applied.fit = fit;
  return applied;
}

}  // namespace spinbayes
