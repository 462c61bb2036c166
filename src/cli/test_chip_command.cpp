#include "cli/test_chip_command.h"

#include <cstdio>
#include <system_error>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "cli/arguments.h"
#include "core/atomic_file.h"
#include "core/dir_lock.h"
#include "core/error.h"
#include "core/plot.h"
#include "eval/population.h"
#include "train/run.h"

namespace spinbayes {

std::unique_ptr<TestChipCommand> add_test_chip_command(CLI::App& app) {
  auto c = std::make_unique<TestChipCommand>();
  TestChipOptions& o = c->options;
  std::string classes;
  for (const FaultClass& f : fault_classes()) {
    classes += fmt::format("\n    {} ({}; default {:g}, {:g}, {:g}): {}", f.name, f.unit, f.severities[0], f.severities[1],
                           f.severities[2], f.what);
  }
  auto* cmd = app.add_subcommand(
      "test-chip",
      "Field test of simulated chips by their uncertainty: test vectors by repeatability ranking, a mu +- k sigma "
      "check against fault-free chips, and its coverage and false alarms per fault class and severity (runs under "
      "mpirun too)");
  c->app = cmd;
  cmd->add_option("--model", o.model, "Training run directory")->required();
  cmd->add_option("--hw", o.hardware, "Hardware of every chip: default, wired, unwired, ideal or a config file")->capture_default_str();
  cmd->add_option("--vectors", o.vectors, "Test vectors: a count K or a share of the training images (P%)")
      ->capture_default_str();
  cmd->add_option("--candidates", o.candidates, "Training images ranked for the vectors (0 = 10 K)")->capture_default_str();
  cmd->add_option("--ranking-chips", o.ranking_chips, "Fault-free chips the candidates are ranked on")->capture_default_str();
  cmd->add_option("--faults", o.faults, "Fault cells CLASS[:SEVERITY],... or all; a class alone runs its three defaults:" + classes)
      ->capture_default_str();
  cmd->add_option("--chips", o.chips, "Chips per set: fault-free reference, fault-free hold-out, and each fault cell")
      ->capture_default_str();
  cmd->add_option("--first-seed", o.first_seed, "Chip seed of the first reference chip (the rest follow)")
      ->check(seed_value())
      ->capture_default_str();
  cmd->add_option("--samples", o.samples, "Monte Carlo passes T per test")->capture_default_str();
  cmd->add_option("--seed", o.seed, "Seed of the candidates and of each chip's masks")->check(seed_value())->capture_default_str();
  cmd->add_option("--k", o.k, "Flag a chip whose statistic leaves mu +- k sigma")->capture_default_str();
  cmd->add_flag("--random-baseline", o.random_baseline,
                "Also test with K random training images (the ranking's baseline; twice the images per chip)");
  cmd->add_option("--threads", o.threads, "Threads per rank")->capture_default_str();
  cmd->add_option("--stop-after", o.stop_after,
                  "Hand out no more chips once this many new ones are stored, as an interruption would")
      ->capture_default_str();
  cmd->add_option("--out", o.out, "Output directory: test_chip.json, test_chip.csv, vectors.csv, test_chip.png")->required();
  cmd->add_option("--fashion-mnist", o.paths.fashion_mnist, "Directory with the Fashion-MNIST IDX files")->capture_default_str();
  cmd->add_flag("--quiet", c->quiet, "No progress output");
  return c;
}

void run_test_chip_command(TestChipCommand& c, const Ranks& ranks) {
  TestChipOptions& o = c.options;
  o.progress = !c.quiet && ranks.root();
  const auto json_path = o.out / "test_chip.json", csv = o.out / "test_chip.csv", vectors = o.out / "vectors.csv",
             png = o.out / "test_chip.png";
  std::unique_ptr<DirectoryLock> lock;
  o.checks = [&] {
    std::error_code ec;
    if (std::filesystem::exists(o.out, ec) && !std::filesystem::is_directory(o.out, ec)) {
      throw Error("--out: " + o.out.string() + ": not a directory");
    }
    std::vector<std::filesystem::path> inputs = run_files(o.model);
    if (!HardwareConfig::is_preset(o.hardware)) inputs.push_back(o.hardware);
    check_gnuplot("--out");  // the figure is drawn at the end: fail now, not after the chips
    lock = std::make_unique<DirectoryLock>(o.out, "--out", "chip test");
    for (const auto& path : {json_path, csv, vectors, png}) {
      // The outputs are this test's own files: never a link to somewhere else.
      if (std::filesystem::is_symlink(std::filesystem::symlink_status(path, ec))) {
        throw Error("--out: " + path.string() + ": is a symbolic link; a chip test writes only its own files");
      }
      check_output_path(path, "--out");
      check_not_an_input(path, inputs, "--out");
    }
  };
  const TestChipResult r = run_test_chip(o, ranks);
  if (!ranks.root()) return;
  if (!r.complete) {
    std::printf("stopped (--stop-after); run the same command again to finish %s\n", o.out.c_str());
    return;
  }
  if (ranks.size() > 1 && o.progress) std::fputs(distribution_table(r.distribution).c_str(), stderr);
  const std::string table = test_chip_table(r);
  write_files_atomic({{json_path, test_chip_json(r).dump(2) + "\n"},
                      {csv, test_chip_csv(r)},
                      {vectors, vectors_csv(r)},
                      {png, test_chip_plot_png(r)}});
  std::fputs(table.c_str(), stdout);
  std::printf("%zu fault cells x %d chips in %.0f s; wrote %s, %s, %s and %s\n", r.cells.size(), r.chips, r.seconds,
              json_path.c_str(), csv.c_str(), vectors.c_str(), png.c_str());
}

}  // namespace spinbayes
