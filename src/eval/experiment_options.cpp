// The experiment's two presets, the checks of its options, and the command lines the report quotes.
#include <cctype>
#include <limits>
#include <set>

#include <fmt/format.h>

#include "core/error.h"
#include "eval/evaluation.h"
#include "eval/experiment.h"
#include "hw/hardware_config.h"
#include "train/run.h"

namespace spinbayes {

ExperimentOptions ExperimentOptions::full() {
  ExperimentOptions o;
  o.out = "runs/experiment";
  o.seeds = 3;  // differences between the models are read seed by seed (experiment_seeds.h)
  return o;
}

ExperimentOptions ExperimentOptions::quick_run() {
  ExperimentOptions o;
  o.out = "runs/experiment-quick";
  o.quick = true;
  // Every training image for 4 epochs, the first 3 shared (see shared_epochs): 6 epochs of
  // training for the three models instead of 12. More training did not fit 10 minutes on 2 cores;
  // neither did the extra spatial rates.
  o.width = 16;
  o.epochs = 4;
  o.shared_epochs = 3;
  o.train_subset = 0;
  o.validation = 5000;
  o.t_values = {1, 3, 10, 30};
  o.test_count = 0;  // the whole test set in software
  o.ood_count = 2000;
  o.chip_test_count = 500;
  o.curve_test_count = 1000;
  o.sweep_values = {0, 0.05, 0.1};
  o.sweep_chips = 5;
  o.sweep_test_count = 200;
  o.split_chips = 3;
  o.split_test_count = 200;
  return o;
}

ModelSpec ExperimentOptions::model_spec() const {
  if (!runs.empty()) return load_run_config(runs.back()).spec;
  ModelSpec spec;
  if (!network_file.empty()) {
    apply_network_file(load_network_file(network_file), spec);
  } else {
    spec.architecture = architecture;
    spec.width = width;
  }
  spec.p = p;
  return spec;
}

std::string ExperimentOptions::model_suffix() const { return seed == 1 ? "" : fmt::format("-s{}", seed); }

std::string ExperimentOptions::network_name() const {
  if (!network_file.empty()) {
    // The stem, kept to characters safe in a directory name.
    std::string name = network_file.stem().string();
    for (char& ch : name)
      if (!std::isalnum(static_cast<unsigned char>(ch)) && ch != '-' && ch != '_') ch = '_';
    return name.empty() ? "network" : name.substr(0, 64);
  }
  const int w = ModelSpec{.architecture = architecture, .network = {}, .width = width}.effective_width();
  if (architecture == "vgg-small") return fmt::format("vgg{}", w);
  // "lenet32", "mlp512"; "resnet20-16", where the name ends in a digit.
  return fmt::format("{}{}{}", architecture, std::isdigit(static_cast<unsigned char>(architecture.back())) ? "-" : "", w);
}

namespace {

// --runs: a deterministic, an element and a spatial run of one network on Fashion-MNIST, each
// finished (its model IR exported or exportable).
void validate_runs(const std::vector<std::filesystem::path>& runs) {
  if (runs.size() != 3) {
    throw Error(fmt::format("--runs: give 3 run directories (deterministic, element, spatial), got {}", runs.size()));
  }
  static constexpr DropoutKind kinds[] = {DropoutKind::none, DropoutKind::element, DropoutKind::spatial};
  static constexpr const char* roles[] = {"deterministic", "element", "spatial"};
  std::vector<TrainOptions> loaded;
  for (std::size_t r = 0; r < 3; ++r) {
    const TrainOptions t = load_run_config(runs[r]);  // errors name DIR/config.json
    const std::string dir = printable_head(runs[r].string());
    const bool fits = r == 0 ? !t.spec.has_dropout() : t.spec.dropout == kinds[r] && t.spec.has_dropout();
    if (!fits) {
      throw Error(fmt::format("--runs: {}: a model with {} dropout, given as the {} model", dir,
                              t.spec.has_dropout() ? to_string(t.spec.dropout) : "no", roles[r]));
    }
    if (t.data.kind != DataSet::Kind::fashion_mnist) {
      throw Error(fmt::format("--runs: {}: a model of {}; the experiment runs on Fashion-MNIST", dir, t.data.spec()));
    }
    std::error_code ec;
    if (!std::filesystem::exists(runs[r] / "model.sbir", ec) && !std::filesystem::exists(runs[r] / "checkpoint.pt", ec)) {
      throw Error(fmt::format("--runs: {}: holds no trained model (model.sbir or checkpoint.pt)", dir));
    }
    if (!loaded.empty() && spec_network(t.spec) != spec_network(loaded.front().spec)) {
      throw Error(fmt::format("--runs: {}: another network than {}'s", dir, printable_head(runs[0].string())));
    }
    loaded.push_back(t);
  }
}

// A network the experiment trains. The experiment sets each model's kind on every site itself: a
// layer's own site would make the deterministic model stochastic and the element and spatial
// models alike there.
void check_network(const ModelSpec& spec, const std::filesystem::path& network_file) {
  if (const std::string own = first_own_dropout(spec.network); !own.empty())
    throw Error(fmt::format("--model: {}: {} sets its own dropout site; the experiment compares no dropout, element "
                            "and spatial dropout on the same sites, so give it a network without \"dropout\" keys",
                            network_file.string(), own));
  // The experiment's data: Fashion-MNIST, with MNIST digits as the OOD set.
  if (spec.channels != 1 || spec.height != 28 || spec.width_px != 28 || spec.classes != 10)
    throw Error(fmt::format("--model: {}: the network reads {}x{}x{} images into {} classes; the experiment runs "
                            "on Fashion-MNIST (1x28x28, 10 classes)",
                            network_file.string(), spec.channels, spec.height, spec.width_px, spec.classes));
}

}  // namespace

void ExperimentOptions::validate() const {
  auto in_range = [](const char* name, long long v, long long lo, long long hi) {
    if (v < lo || v > hi) throw Error(fmt::format("{}: must be in {}..{}, got {}", name, lo, hi, v));
  };
  if (!runs.empty()) {
    validate_runs(runs);
    if (!extra_p.empty()) throw Error("--extra-p: the experiment trains the extra models; not with --runs");
    if (seeds != 1) throw Error("--seeds: the runs are one seed's models; give --seeds 1 with --runs");
  }
  if (!(p > 0.0 && p < 1.0)) throw Error(fmt::format("--p: dropout probability must be in (0, 1), got {:g}", p));
  in_range("--width", width, 0, 4096);
  const ModelSpec spec = model_spec();
  spec.validate();
  if (runs.empty()) check_network(spec, network_file);
  in_range("--epochs", epochs, 1, 1000);
  in_range("--shared-epochs", shared_epochs, 0, epochs - 1);
  in_range("--batch", batch, 1, 60000);
  if (!(lr > 0.0 && lr <= 1.0)) throw Error(fmt::format("--lr: must be in (0, 1], got {:g}", lr));
  in_range("--train-subset", train_subset, 0, 60000);
  in_range("--validation", validation, 0, 59000);
  std::set<double> rates = {p};
  for (double q : extra_p) {
    if (!(q > 0.0 && q < 1.0)) throw Error(fmt::format("--extra-p: dropout probability must be in (0, 1), got {:g}", q));
    if (!rates.insert(q).second) throw Error(fmt::format("--extra-p: {:g} is given twice (or equals --p)", q));
  }
  in_range("--seeds", seeds, 1, 20);
  if (seed > std::numeric_limits<std::uint64_t>::max() - static_cast<std::uint64_t>(seeds)) {
    throw Error(fmt::format("--seed: {} + {} seeds overflows 64 bits", seed, seeds));
  }
  in_range("--samples", samples, 1, 10000);
  if (t_values.empty()) throw Error("--t-values: give at least one T");
  for (int t : t_values) in_range("--t-values", t, 1, 10000);
  in_range("--test-count", test_count, 0, 10000);
  in_range("--chip-test-count", chip_test_count, 0, 10000);
  in_range("--curve-test-count", curve_test_count, 0, 10000);
  in_range("--ood-count", ood_count, 0, 10000);
  if (ood.empty()) throw Error("--ood: give at least one OOD set");
  for (const auto& name : ood) check_ood_set_name(name, "--ood");
  if (sweep_values.empty()) throw Error("--sweep-values: give at least one value");
  in_range("--sweep-chips", sweep_chips, 1, 100);
  in_range("--split-chips", split_chips, 2, 100);
  in_range("--split-test-count", split_test_count, 0, 10000);
  in_range("--sweep-samples", sweep_samples, 1, 10000);
  in_range("--sweep-test-count", sweep_test_count, 0, 10000);
  in_range("--threads", threads, 1, 256);
  HardwareConfig probe = HardwareConfig::load(hardware);
  if (probe.table().number_unit(sweep_param) == nullptr) {
    throw Error("--sweep-param: '" + printable(sweep_param) + "' is not a numeric hardware parameter");
  }
  for (double v : sweep_values) {
    HardwareConfig hw = probe;
    hw.table().apply(nlohmann::json{{sweep_param, v}}, "--sweep-values");
  }
}

std::string shell_line(const std::vector<std::string>& args) {
  std::string out = "spinbayes";
  for (const auto& a : args) {
    const bool plain = !a.empty() && a.find_first_not_of("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                                                         "0123456789-_./,:=+@%") == std::string::npos;
    if (plain) {
      out += " " + a;
    } else {
      std::string quoted = "'";
      for (char c : a) quoted += c == '\'' ? std::string("'\\''") : std::string(1, c);
      out += " " + quoted + "'";
    }
  }
  return out;
}

}  // namespace spinbayes
