#include "cli/experiment_command.h"

#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <string_view>

#include <fmt/format.h>

#include "cli/arguments.h"
#include "core/dir_lock.h"
#include "core/error.h"
#include "core/text.h"
#include "eval/experiment_seeds.h"
#include "model/model_spec.h"
#include "model/network.h"

namespace spinbayes {

namespace {

std::string text_of(const std::vector<double>& values) {
  std::string out;
  for (double v : values) out += (out.empty() ? "" : ",") + fmt::format("{:g}", v);
  return out;
}

}  // namespace

std::unique_ptr<ExperimentCommand> add_experiment_command(CLI::App& app, int argc, char** argv) {
  auto c = std::make_unique<ExperimentCommand>();
  bool quick = false;
  for (int i = 1; i < argc; ++i) quick = quick || std::string_view(argv[i]) == "--quick";
  c->options = quick ? ExperimentOptions::quick_run() : ExperimentOptions::full();
  ExperimentOptions& o = c->options;
  std::string t_text;
  for (int t : o.t_values) t_text += (t_text.empty() ? "" : ",") + std::to_string(t);
  c->t_values = t_text;
  c->extra_p = text_of(o.extra_p);
  c->sweep_values = text_of(o.sweep_values);

  auto* cmd = app.add_subcommand(
      "experiment",
      "Train (or reuse) a deterministic BNN, MC-Dropout and MC-SpatialDropout; evaluate them in software and on "
      "the simulated chip; price them; write DIR/report.md, DIR/results.json and figures");
  c->app = cmd;
  cmd->add_flag("--quick", o.quick, "vgg-small width 16, 4 epochs of which 3 shared, fewer chip images (under 10 minutes on 2 cores)");
  cmd->add_option("--out", o.out, "Output directory (stages/ caches each finished stage)")->capture_default_str();
  cmd->add_option("--models", o.models, "Directory of the training runs (default: OUT/models)");
  cmd->add_option("--runs", c->runs,
                  "Compare these runs instead of training: DETERMINISTIC,ELEMENT,SPATIAL run directories (trained or "
                  "imported from ONNX)");
  cmd->add_option("--model", o.architecture,
                  "Network: a zoo name (mlp, lenet, vgg-small, resnet20, resnet18) or a network file (JSON)")
      ->capture_default_str();
  cmd->add_option("--width", o.width, "Width (0 = the architecture's default)")->capture_default_str();
  cmd->add_option("--epochs", o.epochs)->capture_default_str();
  cmd->add_option("--shared-epochs", o.shared_epochs,
                  "First epochs trained once without dropout and shared by every model (0 = none shared)")
      ->capture_default_str();
  cmd->add_option("--batch", o.batch)->capture_default_str();
  cmd->add_option("--lr", o.lr)->capture_default_str();
  cmd->add_option("--train-subset", o.train_subset, "Training images (0 = all)")->capture_default_str();
  cmd->add_option("--validation", o.validation, "Training images held out (OOD threshold)")->capture_default_str();
  cmd->add_option("--seed", o.seed, "Training seed (the first of --seeds)")->check(seed_value())->capture_default_str();
  cmd->add_option("--seeds", o.seeds,
                  "Training seeds: SEED, SEED+1, ...; each a whole experiment in OUT/seed-<s>, then their spread and "
                  "paired comparisons (the full run 3, --quick 1)")
      ->capture_default_str();
  cmd->add_option("--p", o.p, "Dropout rate of the element and spatial models")->capture_default_str();
  cmd->add_option("--extra-p", c->extra_p, "More spatial models at these rates (comma-separated; the p axis)")
      ->capture_default_str();
  cmd->add_option("--samples", o.samples, "Monte Carlo samples T of the tables")->capture_default_str();
  cmd->add_option("--t-values", c->t_values, "The T axis (comma-separated)")->capture_default_str();
  cmd->add_option("--test-count", o.test_count, "Test images in software (0 = all)")->capture_default_str();
  cmd->add_option("--chip-test-count", o.chip_test_count, "Test images on the chip (0 = all)")->capture_default_str();
  cmd->add_option("--curve-test-count", o.curve_test_count, "Test images per point of the T axis (0 = all)")
      ->capture_default_str();
  cmd->add_option("--ood-count", o.ood_count, "Images per OOD set (0 = as many as test images)")->capture_default_str();
  cmd->add_option("--ood", c->ood, "OOD sets besides mnist, gaussian, rotate90 (e.g. idx:PATH; comma-separated)");
  cmd->add_option("--eval-seed", o.eval_seed, "Seed of the dropout masks and noise sets")->check(seed_value())->capture_default_str();
  cmd->add_option("--chip-seed", o.chip_seed, "Which simulated chip")->check(seed_value())->capture_default_str();
  cmd->add_option("--hw", o.hardware, "Hardware of the chip stages, sweeps and prices: default, wired, unwired, ideal or a "
                  "config file")->capture_default_str();
  cmd->add_option("--sweep-param", o.sweep_param, "Hardware parameter of the device-variation chart")
      ->capture_default_str();
  cmd->add_option("--sweep-values", c->sweep_values, "Its values (comma-separated)")->capture_default_str();
  cmd->add_option("--sweep-chips", o.sweep_chips, "Chips per value")->capture_default_str();
  cmd->add_option("--split-chips", o.split_chips, "Chips the MC models' uncertainty is split over")->capture_default_str();
  cmd->add_option("--split-test-count", o.split_test_count, "Test images of the uncertainty split (0 = all)")
      ->capture_default_str();
  cmd->add_option("--sweep-samples", o.sweep_samples, "T of the sweep")->capture_default_str();
  cmd->add_option("--sweep-test-count", o.sweep_test_count, "Test images of the sweep")->capture_default_str();
  cmd->add_option("--threads", o.threads)->capture_default_str();
  cmd->add_flag("--quiet", o.quiet, "No progress output");
  cmd->add_option("--fashion-mnist", o.paths.fashion_mnist, "Directory with the Fashion-MNIST IDX files")
      ->capture_default_str();
  cmd->add_option("--digits", o.paths.mnist_digits, "Directory with the MNIST digits as IDX (OOD set)")
      ->capture_default_str();
  return c;
}

void restart_with_passive_openmp(char** argv) {
  // LibTorch's OpenMP threads spin while they wait (libgomp's default policy). On the 2-core
  // machine shared with one other busy process, a training epoch then took 10x longer (64.6 s
  // against 6.5 s with passive waiting, same weights). libgomp reads the policy when it loads, so
  // the command starts itself again with it set; should that fail, it runs as it is.
  if (std::getenv("OMP_WAIT_POLICY") == nullptr) {
    ::setenv("OMP_WAIT_POLICY", "passive", 1);
    ::execv("/proc/self/exe", argv);
  }
}

void run_experiment_command(ExperimentCommand& c, int argc, char** argv, const Ranks& ranks) {
  ExperimentOptions& o = c.options;
  o.t_values.clear();
  for (const auto& t : split_list(c.t_values)) {
    const double v = parse_number("--t-values", t);
    if (!(v >= 1 && v <= 10000)) throw Error("--t-values: '" + printable(t) + "' is not in 1..10000");
    if (v != static_cast<double>(static_cast<int>(v))) throw Error("--t-values: '" + printable(t) + "' is not a whole number");
    o.t_values.push_back(static_cast<int>(v));
  }
  o.extra_p = parse_number_list("--extra-p", c.extra_p);
  o.sweep_values = parse_number_list("--sweep-values", c.sweep_values);
  for (const auto& name : split_list(c.ood)) {
    if (std::find(o.ood.begin(), o.ood.end(), name) == o.ood.end()) o.ood.push_back(name);
  }
  if (c.app->count("--runs") > 0) {
    // The runs give the network and its training.
    for (const char* option : {"--model", "--width", "--epochs", "--shared-epochs", "--batch", "--lr", "--train-subset",
                               "--validation", "--seed", "--p", "--extra-p", "--models"}) {
      if (c.app->count(option) > 0) throw Error(std::string(option) + ": the runs give it; not with --runs");
    }
    // The runs are one seed's models; the full run's 3 seeds do not apply (an explicit --seeds N > 1 is refused).
    if (c.app->count("--seeds") == 0) o.seeds = 1;
    for (const auto& dir : split_list(c.runs)) o.runs.push_back(std::filesystem::absolute(dir));
    if (o.runs.size() != 3) throw Error("--runs: give 3 run directories (deterministic, element, spatial), got " + std::to_string(o.runs.size()));
    o.extra_p.clear();
    o.shared_epochs = 0;
  }
  const auto zoo = architecture_names();
  if (o.runs.empty() && std::find(zoo.begin(), zoo.end(), o.architecture) == zoo.end()) {
    std::error_code ec;
    if (o.architecture.empty() || !std::filesystem::exists(o.architecture, ec))
      throw Error("--model: '" + printable_head(o.architecture) +
                  "' is neither a zoo network (mlp, lenet, vgg-small, resnet20, resnet18) nor a network file");
    if (c.app->count("--width") > 0) throw Error("--width: a network file gives every size; drop --width");
    load_network_file(o.architecture);  // one-line errors naming the file and the layer
    o.network_file = std::filesystem::absolute(o.architecture);
    o.architecture = "custom";
    o.width = 0;
  }
  o.command = "spinbayes";
  for (int i = 1; i < argc; ++i) o.command += std::string(" ") + argv[i];
  std::error_code ec;
  if (!o.models.empty() && std::filesystem::exists(o.models, ec) && !std::filesystem::is_directory(o.models, ec)) {
    throw Error("--models: '" + printable(o.models.string()) + "' exists and is not a directory");
  }
  if (o.train_subset > 0 && o.train_subset < o.batch) {
    throw Error("--train-subset: " + std::to_string(o.train_subset) + " images are fewer than one batch of " +
                std::to_string(o.batch) + "; lower --batch or train on more images");
  }
  o.validate();  // before the lock creates the directory
  if (o.out.empty()) throw Error("--out: must not be empty");
  probe_experiment_data(o);  // the data and OOD sets, before the lock creates the directory
  if (ranks.size() > 1 && o.seeds < 2) {
    throw Error(fmt::format("--seeds: mpirun spreads the seeds over its {} ranks; one seed runs as one process",
                            ranks.size()));
  }
  if (o.seeds > 1) {
    // Rank 0 locks OUT and the seeds' directories before any work (a second experiment into the
    // same directory stops there, on every rank).
    const MultiSeedResult r = run_multi_seed_experiment(o, ranks);
    if (!ranks.root()) return;
    std::printf("wrote %s, %s and %s/figures over %d seeds, each in %s/seed-<s> (%d stages run, %d cached, %.1f s)\n",
                (o.out / "report.md").c_str(), (o.out / "results.json").c_str(), o.out.c_str(), o.seeds, o.out.c_str(),
                r.stages_run, r.stages_cached, r.seconds);
    return;
  }
  // Held for the whole run: a second experiment into the same directory stops here.
  const DirectoryLock lock(o.out, "--out", "experiment");
  const ExperimentResult r = run_experiment(o);
  std::printf("wrote %s, %s and %s/figures (%d stages run, %d cached, %.1f s)\n", (o.out / "report.md").c_str(),
              (o.out / "results.json").c_str(), o.out.c_str(), r.stages_run, r.stages_cached, r.seconds);
}

}  // namespace spinbayes
