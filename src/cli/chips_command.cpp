#include "cli/chips_command.h"

#include <cstdio>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "cli/arguments.h"
#include "core/atomic_file.h"
#include "core/error.h"
#include "core/text.h"
#include "train/run.h"

namespace spinbayes {

std::unique_ptr<ChipsCommand> add_chips_command(CLI::App& app) {
  auto c = std::make_unique<ChipsCommand>();
  ChipsOptions& o = c->options;
  o.eval.backend = Backend::cim;
  o.eval.samples = 10;
  o.eval.test_count = 1000;
  o.eval.validation_count = 1000;
  auto* cmd = app.add_subcommand(
      "chips", "A population of simulated chips: per-chip figures, their spread and the yield (runs under mpirun too)");
  c->app = cmd;
  cmd->add_option("--model", o.eval.model, "Training run directory")->required();
  cmd->add_option("--chips", o.chips, "Simulated chips")->capture_default_str();
  cmd->add_option("--first-seed", o.first_seed, "Chip seed of the first chip (the rest follow)")
      ->check(seed_value())
      ->capture_default_str();
  cmd->add_option("--hw", o.eval.hardware, "Hardware: default, wired, unwired, ideal or a config file")->capture_default_str();
  cmd->add_option("--samples", o.eval.samples, "Monte Carlo samples T")->capture_default_str();
  cmd->add_option("--seed", o.eval.seed, "Seed of the dropout masks and noise OOD sets")
      ->check(seed_value())
      ->capture_default_str();
  cmd->add_flag("--deterministic", o.eval.deterministic, "Dropout off, one pass");
  cmd->add_option("--test-count", o.eval.test_count, "First N test images (0 = all)")->capture_default_str();
  cmd->add_option("--ood", c->ood, "OOD sets: mnist,gaussian,uniform,rotate90,invert,idx:PATH")->capture_default_str();
  cmd->add_option("--ood-count", o.eval.ood_count, "Images per OOD set (0 = as many as test images)")
      ->capture_default_str();
  cmd->add_option("--validation-count", o.eval.validation_count,
                  "Validation images for the OOD threshold (0 = all the run held out, -1 = none: the test images)")
      ->capture_default_str();
  cmd->add_option("--score", c->score, "OOD score: entropy | mi")->capture_default_str();
  cmd->add_option("--spec", o.spec, "Yield specification, e.g. \"accuracy>=0.89,ece<=0.05,auroc.mnist>=0.9\"");
  cmd->add_option("--calibration", c->calibration, "none | temperature (default: the run's temperature when it has one)");
  cmd->add_option("--calibration-file", o.eval.calibration_file, "Temperatures to apply (default DIR/calibration.json)");
  cmd->add_option("--threads", o.eval.threads, "Threads per rank")->capture_default_str();
  cmd->add_option("--out", o.out, "Population directory (resumed when it holds this configuration's chips)")->required();
  cmd->add_option("--stop-after", o.stop_after,
                  "Hand out no more chips once this many new ones are stored, as an interruption would")
      ->capture_default_str();
  cmd->add_flag("--quiet", c->quiet, "No progress output");
  cmd->add_option("--fashion-mnist", o.eval.paths.fashion_mnist, "Directory with the Fashion-MNIST IDX files")
      ->capture_default_str();
  cmd->add_option("--digits", o.eval.paths.mnist_digits, "Directory with the MNIST digits as IDX (OOD set)")
      ->capture_default_str();
  return c;
}

void run_chips_command(ChipsCommand& c, const Ranks& ranks) {
  ChipsOptions& o = c.options;
  o.eval.ood = split_list(c.ood);
  o.eval.score = parse_ood_score(c.score);
  if (!c.calibration.empty()) o.eval.calibration = parse_calibration_mode(c.calibration);
  if (c.app->count("--calibration-file") > 0 && o.eval.calibration_file.empty()) {
    throw Error("--calibration-file: empty path");
  }
  o.progress = !c.quiet && ranks.root();
  const auto csv = o.out / "chips.csv", json_path = o.out / "chips.json", png = o.out / "chips.png";
  o.checks = [&] {
    std::vector<std::filesystem::path> inputs = run_files(o.eval.model);
    if (!o.eval.calibration_file.empty()) inputs.push_back(o.eval.calibration_file);
    if (!HardwareConfig::is_preset(o.eval.hardware)) inputs.push_back(o.eval.hardware);
    for (const auto& path : {csv, json_path, png}) {
      check_output_path(path, "--out");
      check_not_an_input(path, inputs, "--out");
    }
  };
  const ChipPopulation p = run_chips(o, ranks);
  if (!ranks.root()) return;
  if (ranks.size() > 1 && o.progress) std::fputs(distribution_table(p.distribution).c_str(), stderr);
  if (!p.complete) {
    std::printf("stopped after %d new chips (--stop-after); run the same command again to finish %s\n", p.computed,
                o.out.c_str());
    return;
  }
  // Every record's metrics are finite and in range (checked as stored), so their summaries are too.
  const nlohmann::json json = chips_json(p);
  const std::string table = chips_table(p);
  // All three or none: the figure is drawn before any is written.
  write_files_atomic({{csv, chips_csv(p)}, {json_path, json.dump(2) + "\n"}, {png, chips_plot_png(p)}});
  std::fputs(table.c_str(), stdout);
  std::printf("%d chips evaluated now, %zu stored before; wrote %s, %s and %s\n", p.computed,
              p.chips.size() - static_cast<std::size_t>(p.computed), csv.c_str(), json_path.c_str(), png.c_str());
}

}  // namespace spinbayes
