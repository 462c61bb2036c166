#include "eval/experiment_plan.h"

#include <algorithm>
#include <cstdint>

#include <fmt/format.h>

#include "core/error.h"
#include "cost/technology.h"
#include "hw/hardware_config.h"

namespace spinbayes {

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

std::string number_text(double x) { return fmt::format("{:g}", x); }

std::string joined(const std::vector<std::string>& items) {
  std::string out;
  for (const auto& item : items) out += (out.empty() ? "" : ",") + item;
  return out;
}

// ---- the subcommands that give the same numbers -------------------------------------------------

std::vector<std::string> data_arguments(const DataPaths& paths) {
  const DataPaths defaults = DataPaths::from_environment();
  std::vector<std::string> args;
  if (paths.fashion_mnist != defaults.fashion_mnist) args.insert(args.end(), {"--fashion-mnist", paths.fashion_mnist.string()});
  if (paths.mnist_digits != defaults.mnist_digits) args.insert(args.end(), {"--digits", paths.mnist_digits.string()});
  return args;
}

std::vector<std::string> with_data(std::vector<std::string> args, const DataPaths& paths) {
  const auto data = data_arguments(paths);
  args.insert(args.end(), data.begin(), data.end());
  return args;
}

std::vector<std::string> train_command(const TrainOptions& t, const fs::path& network_file) {
  std::vector<std::string> args = {"train", "--model"};
  if (network_file.empty()) {
    args.insert(args.end(), {t.spec.architecture, "--width", std::to_string(t.spec.effective_width())});
  } else {
    args.push_back(network_file.string());
  }
  args.insert(args.end(), {"--dropout", to_string(t.spec.dropout), "--p", number_text(t.spec.p), "--epochs",
                           std::to_string(t.epochs), "--batch", std::to_string(t.batch), "--lr", number_text(t.lr),
                           "--seed", std::to_string(t.seed), "--validation", std::to_string(t.validation), "--subset",
                           std::to_string(t.subset), "--out", t.out.string(), "--resume"});
  if (!t.init.empty()) args.insert(args.end(), {"--init", t.init.string()});
  return with_data(args, t.paths);
}

std::vector<std::string> eval_command(const EvalOptions& e) {
  std::vector<std::string> args = {"eval", "--model", e.model.string(), "--backend", to_string(e.backend),
                                   "--samples", std::to_string(e.samples), "--seed", std::to_string(e.seed),
                                   "--ood", e.ood.empty() ? "none" : joined(e.ood), "--test-count", std::to_string(e.test_count),
                                   "--ood-count", std::to_string(e.ood_count)};
  if (e.backend == Backend::cim) {
    args.insert(args.end(), {"--hw", e.hardware, "--chip-seed", std::to_string(e.chip_seed)});
    if (e.chips > 1) args.insert(args.end(), {"--chips", std::to_string(e.chips)});
  }
  if (e.validation_count != 0) args.insert(args.end(), {"--validation-count", std::to_string(e.validation_count)});
  if (!e.calibration_file.empty()) args.insert(args.end(), {"--calibration-file", e.calibration_file.string()});
  return with_data(args, e.paths);
}

std::vector<std::string> calibrate_command(const CalibrateOptions& c) {
  return with_data({"calibrate", "--model", c.model.string(), "--samples", std::to_string(c.samples), "--seed",
                    std::to_string(c.seed), "--out", c.out.string()},
                   c.paths);
}

std::vector<std::string> sweep_command(const SweepOptions& s) {
  std::vector<std::string> values;
  for (double v : s.values) values.push_back(number_text(v));
  std::vector<std::string> args = {"sweep", "--model", s.eval.model.string(), "--param", s.param, "--values",
                                   joined(values), "--chips", std::to_string(s.chips), "--samples",
                                   std::to_string(s.eval.samples), "--test-count", std::to_string(s.eval.test_count),
                                   "--ood", joined(s.eval.ood), "--seed", std::to_string(s.eval.seed)};
  args = with_hardware(std::move(args), s.eval.hardware);
  if (!s.eval.calibration_file.empty()) args.insert(args.end(), {"--calibration-file", s.eval.calibration_file.string()});
  return with_data(args, s.eval.paths);
}

// ---- the models ---------------------------------------------------------------------------------

// The run of the shared first epochs: dropout off, stopped after them.
fs::path shared_run_dir(const ExperimentOptions& o, const fs::path& models_dir) {
  return models_dir / fmt::format("{}-shared{}of{}{}", o.network_name(), o.shared_epochs, o.epochs, o.model_suffix());
}

PlannedModel planned_model(const ExperimentOptions& o, const fs::path& models_dir, ModelRole role, double p) {
  static constexpr DropoutKind kinds[] = {DropoutKind::none, DropoutKind::element, DropoutKind::spatial,
                                          DropoutKind::spatial};
  static constexpr const char* descriptions[] = {"deterministic BNN", "MC-Dropout (element)", "MC-SpatialDropout",
                                                 "MC-SpatialDropout"};
  const auto r = static_cast<std::size_t>(role);
  PlannedModel m;
  m.role = role;
  m.description = descriptions[r];
  if (role == ModelRole::extra_spatial) m.description += fmt::format(", p = {:g}", p);
  TrainOptions& t = m.train;
  t.spec = o.model_spec();
  t.spec.dropout = kinds[r];
  t.spec.p = p;
  t.spec.dropout_layers = "all";
  t.epochs = o.epochs;
  t.batch = o.batch;
  t.lr = o.lr;
  t.seed = o.seed;
  t.validation = o.validation;
  t.subset = o.train_subset;
  t.threads = o.threads;
  t.quiet = o.quiet;
  t.paths = o.paths;
  m.name = fmt::format("{}-{}", o.network_name(), to_string(kinds[r]));
  if (kinds[r] != DropoutKind::none && p != 0.1) m.name += fmt::format("-p{:g}", p);
  m.name += o.model_suffix();
  m.dir = models_dir / m.name;
  t.out = m.dir;
  if (o.shared_epochs > 0) {
    t.init = shared_run_dir(o, models_dir);
    t.init_epochs = o.shared_epochs;
  }
  return m;
}

// A model given as a run directory (--runs): the run's own settings, nothing to train.
PlannedModel given_model(const ExperimentOptions& o, ModelRole role) {
  static constexpr const char* descriptions[] = {"deterministic BNN", "MC-Dropout (element)", "MC-SpatialDropout"};
  const auto r = static_cast<std::size_t>(role);
  PlannedModel m;
  m.role = role;
  m.description = descriptions[r];
  m.dir = o.runs[r];
  m.name = (m.dir.has_filename() ? m.dir : m.dir.parent_path()).filename().string();
  m.train = load_run_config(m.dir);
  m.train.out = m.dir;
  m.train.threads = o.threads;
  m.train.quiet = o.quiet;
  m.train.paths = o.paths;
  return m;
}

// How a given run came to be: its `spinbayes import`, or the `train` it records.
std::vector<std::string> origin_command(const TrainOptions& t, const fs::path& network_file) {
  if (t.imported.empty()) {
    if (t.spec.architecture == "custom" && network_file.empty()) {
      // A run given as it is: its own network file (runs written before it had one: its config).
      std::error_code ec;
      if (fs::is_regular_file(t.out / "network.json", ec)) return train_command(t, t.out / "network.json");
      return train_command(t, (t.out / "config.json").string() + " (its model.network)");
    }
    return train_command(t, network_file);
  }
  std::vector<std::string> args = {"import", t.imported, "--out", t.out.string(), "--dropout", to_string(t.spec.dropout)};
  if (t.spec.dropout != DropoutKind::none) args.insert(args.end(), {"--p", number_text(t.spec.p), "--dropout-layers", t.spec.dropout_layers});
  return with_data(args, t.paths);
}

std::int64_t macs_per_image(const TrainOptions& t) {
  std::int64_t macs = 0;
  for (const auto& layer : build_layers(t.spec)) macs += layer.macs();
  return macs;
}

// Adds each model's stages to the plan, with the parts of their keys that every model shares.
class Planner {
 public:
  Planner(const ExperimentOptions& o, ExperimentPlan& plan) : o_(o), plan_(plan) {
    for (const auto& name : o.ood) {
      ood_key_.push_back(name.rfind("idx:", 0) == 0 ? json{{"name", name}, {"file", file_fingerprint(name.substr(4))}}
                                                    : json(name));
    }
    // Every value of the hardware and technology tables in force: a change to them redoes the chip
    // and cost stages.
    HardwareConfig hardware = HardwareConfig::load(o.hardware);
    Technology technology = Technology::load("default", hardware);
    hardware_key_ = fingerprint(hardware.table().to_commented_json());
    technology_key_ = fingerprint(technology.table().to_commented_json());
  }

  // The shared first epochs, before every model's stages.
  void add_shared_stage() {
    const PlannedModel& m = *plan_.shared;
    model_ = 0;
    const double train_images = m.train.subset > 0 ? m.train.subset : 60000 - m.train.validation;
    Stage& s = add(StageKind::train_shared, "train-" + m.name,
                   fmt::format("train {} (the first {} epochs, dropout off, shared by every model)", m.name,
                               m.train.stop_after_epochs),
                   {Work::train, static_cast<double>(macs_per_image(m.train)) * train_images * m.train.stop_after_epochs});
    s.command = train_command(m.train, o_.network_file);
    s.command.insert(s.command.end(), {"--stop-after", std::to_string(m.train.stop_after_epochs)});
  }

  void add_model_stages(std::size_t model) {
    const PlannedModel& m = plan_.models[model];
    model_ = model;
    // Element masks cost about twice spatial ones to draw (a bit per element, not per channel),
    // in software and on the chip alike (measured on vgg-small).
    mask_factor_ = m.train.spec.dropout == DropoutKind::element ? 2.0 : 1.0;
    macs_ = static_cast<double>(macs_per_image(m.train));
    dropout_ = m.train.spec.has_dropout();

    const double train_images = m.train.subset > 0 ? m.train.subset : 60000 - m.train.validation;
    const int own_epochs = m.train.epochs - m.train.init_epochs;
    Stage& train = add(StageKind::train, "train-" + m.name,
                       m.train.init_epochs > 0
                           ? fmt::format("train {} ({}, epochs {} to {})", m.name, m.description, m.train.init_epochs + 1,
                                         m.train.epochs)
                           : fmt::format("train {} ({}, {} epochs)", m.name, m.description, m.train.epochs),
                       {Work::train, macs_ * train_images * own_epochs});
    train.command = origin_command(m.train, o_.network_file);
    add_calibration();

    if (m.main()) {
      add_evaluation(StageKind::software_eval, o_.samples, o_.test_count);
      add_evaluation(StageKind::chip_eval, o_.samples, o_.chip_test_count);
      if (dropout_) add_split();
    }
    for (int t : t_axis(m)) {
      if (m.main() && t == o_.samples && o_.curve_test_count == o_.test_count) {
        plan_.stages[software_eval_].on_t_axis = true;  // the main table's evaluation is that point
      } else {
        add_evaluation(StageKind::curve_point, t, o_.curve_test_count);
      }
    }
    if (m.main()) add_sweep();

    Stage& cost = add(StageKind::cost, "cost-" + m.name, fmt::format("price {} under every dropout scheme", m.name),
                      {Work::engine, 0});
    cost.inputs = {{"samples", o_.samples}, {"t_values", plan_.priced_t}, {"hw", o_.hardware}, {"tech", "default"},
                   {"hardware_config", hardware_key_}, {"technology", technology_key_}};
    cost.command = cost_command(m, o_.samples, o_.hardware);
  }

 private:
  Stage& add(StageKind kind, std::string name, std::string what, WorkEstimate work) {
    Stage& s = plan_.stages.emplace_back();
    s.kind = kind;
    s.model = model_;
    s.name = std::move(name);
    s.what = std::move(what);
    s.work = work;
    return s;
  }

  // The temperatures, fitted at the main T with the evaluations' seed on the validation images.
  void add_calibration() {
    const PlannedModel& m = plan_.models[model_];
    CalibrateOptions c;
    c.model = m.dir;
    c.out = plan_.calibration_file(m);
    c.samples = std::max(2, o_.samples);
    c.seed = o_.eval_seed;
    c.threads = o_.threads;
    c.paths = o_.paths;
    const double validation = m.train.validation;
    Stage& s = add(StageKind::calibrate, "calibrate-" + m.name, fmt::format("fit the temperature of {}", m.name),
                   {Work::engine, mask_factor_ * macs_ * (passes(c.samples) + 1.0) * validation});
    s.inputs = {{"samples", c.samples}, {"seed", c.seed}, {"data", data_key()}};
    s.command = calibrate_command(c);
    s.calibrate = std::move(c);
  }

  // What every evaluation of the model applies: the calibration stage's temperature.
  void calibrated(EvalOptions& e, json& inputs) const {
    const PlannedModel& m = plan_.models[model_];
    e.calibration = CalibrationMode::temperature;
    e.calibration_file = plan_.calibration_file(m);
    inputs["calibration"] = {{"samples", std::max(2, o_.samples)}, {"seed", o_.eval_seed}};
  }

  // The T axis; the deterministic network is the same at every T, so it gets one point.
  std::vector<int> t_axis(const PlannedModel& m) const {
    std::vector<int> ts = o_.t_values;
    std::sort(ts.begin(), ts.end());
    ts.erase(std::unique(ts.begin(), ts.end()), ts.end());
    if (!m.train.spec.has_dropout()) ts = {1};
    return ts;
  }

  // Images an evaluation runs: test, OOD sets and the validation images behind the OOD threshold.
  double evaluated_images(int test_count) const {
    const double test = test_count > 0 ? test_count : 10000;
    const double ood = o_.ood_count > 0 ? o_.ood_count : test;
    return test + ood * static_cast<double>(o_.ood.size()) + plan_.models[model_].train.validation;
  }
  double passes(int t) const { return dropout_ ? t : 1; }  // without dropout one pass serves every T

  void add_evaluation(StageKind kind, int samples, int test_count) {
    const PlannedModel& m = plan_.models[model_];
    const bool chip = kind == StageKind::chip_eval;
    EvalOptions e;
    e.model = m.dir;
    e.backend = chip ? Backend::cim : Backend::engine;
    e.samples = samples;
    e.seed = o_.eval_seed;
    e.ood = o_.ood;
    e.test_count = test_count;
    e.ood_count = o_.ood_count;
    e.threads = o_.threads;
    e.hardware = o_.hardware;
    e.chip_seed = o_.chip_seed;
    e.paths = o_.paths;
    const bool curve = kind == StageKind::curve_point;
    Stage& s = add(kind,
                   curve ? fmt::format("curve-{}-T{}", m.name, samples)
                         : fmt::format("eval-{}-{}", m.name, to_string(e.backend)),
                   curve ? fmt::format("evaluate {} in software at T = {}", m.name, samples)
                         : fmt::format("evaluate {} {} (T = {})", m.name,
                                       chip ? "on the simulated chip" : "in software", samples),
                   {chip ? Work::chip : Work::engine, mask_factor_ * macs_ * passes(samples) * evaluated_images(test_count)});
    s.inputs = {{"backend", to_string(e.backend)}, {"samples", e.samples}, {"seed", e.seed}, {"ood", ood_key_},
                {"test_count", e.test_count}, {"ood_count", e.ood_count}, {"data", data_key()}};
    if (chip) {
      s.inputs["hardware"] = e.hardware;
      s.inputs["hardware_config"] = hardware_key_;
      s.inputs["chip_seed"] = e.chip_seed;
    }
    calibrated(e, s.inputs);
    s.command = eval_command(e);
    s.eval = std::move(e);
    if (kind == StageKind::software_eval) software_eval_ = plan_.stages.size() - 1;
  }

  // The MC model's test-set uncertainty on several chips, split into the masks' part and the chips'
  // (no OOD sets: the threshold and AUROCs are the chip evaluation's).
  void add_split() {
    const PlannedModel& m = plan_.models[model_];
    EvalOptions e;
    e.model = m.dir;
    e.backend = Backend::cim;
    e.samples = o_.samples;
    e.seed = o_.eval_seed;
    e.ood = {};
    e.test_count = o_.split_test_count;
    e.validation_count = -1;
    e.threads = o_.threads;
    e.hardware = o_.hardware;
    e.chip_seed = o_.chip_seed;
    e.chips = o_.split_chips;
    e.paths = o_.paths;
    const double images = o_.split_test_count > 0 ? o_.split_test_count : 10000;
    Stage& s = add(StageKind::split, "split-" + m.name,
                   fmt::format("split the uncertainty of {} over {} chips (T = {})", m.name, e.chips, e.samples),
                   {Work::chip, mask_factor_ * macs_ * passes(e.samples) * images * e.chips});
    s.inputs = {{"backend", "cim"},         {"samples", e.samples},         {"seed", e.seed},
                {"chips", e.chips},         {"test_count", e.test_count},   {"data", data_key()},
                {"hardware", e.hardware},   {"hardware_config", hardware_key_}, {"chip_seed", e.chip_seed}};
    calibrated(e, s.inputs);
    s.command = eval_command(e);
    s.eval = std::move(e);
  }

  void add_sweep() {
    const PlannedModel& m = plan_.models[model_];
    SweepOptions w;
    w.eval.model = m.dir;
    w.eval.samples = o_.sweep_samples;
    w.eval.test_count = o_.sweep_test_count;
    w.eval.validation_count = -1;  // as `spinbayes sweep` does: the threshold is not reported
    const bool has_mnist = std::find(o_.ood.begin(), o_.ood.end(), "mnist") != o_.ood.end();
    w.eval.ood = {has_mnist ? std::string("mnist") : o_.ood.front()};
    w.eval.seed = o_.eval_seed;
    w.eval.hardware = o_.hardware;
    w.eval.threads = o_.threads;
    w.eval.paths = o_.paths;
    w.param = o_.sweep_param;
    w.values = o_.sweep_values;
    w.chips = o_.sweep_chips;
    const double images = 2.0 * (o_.sweep_test_count > 0 ? o_.sweep_test_count : 10000);
    Stage& s = add(StageKind::sweep, "sweep-" + m.name,
                   fmt::format("{} of {} on {} chips per value", o_.sweep_param, m.name, o_.sweep_chips),
                   {Work::chip, mask_factor_ * macs_ * passes(o_.sweep_samples) * images *
                                    static_cast<double>(o_.sweep_values.size()) * o_.sweep_chips});
    s.inputs = {{"param", w.param}, {"values", w.values}, {"chips", w.chips}, {"samples", w.eval.samples},
                {"test_count", w.eval.test_count}, {"ood", w.eval.ood}, {"seed", w.eval.seed},
                {"hardware", w.eval.hardware}, {"hardware_config", hardware_key_}, {"data", data_key()}};
    calibrated(w.eval, s.inputs);
    s.command = sweep_command(w);
    s.sweep = std::move(w);
  }

  json data_key() const {
    return {{"fashion_mnist", o_.paths.fashion_mnist.string()}, {"digits", o_.paths.mnist_digits.string()}};
  }

  const ExperimentOptions& o_;
  ExperimentPlan& plan_;
  json ood_key_ = json::array();
  std::string hardware_key_, technology_key_;
  // The model whose stages are being added, and what its work estimates depend on.
  std::size_t model_ = 0, software_eval_ = 0;
  double mask_factor_ = 1, macs_ = 0;
  bool dropout_ = false;
};

}  // namespace

json PlannedModel::identity(const std::string& model_ir) const { return {{"name", name}, {"model_ir", model_ir}}; }

json Stage::key(const PlannedModel& m, const std::string& model_ir) const {
  json k = inputs;
  k["model"] = m.identity(model_ir);
  return k;
}

fs::path ExperimentPlan::calibration_file(const PlannedModel& m) const {
  return out / "calibration" / (m.name + ".json");
}

const PlannedModel& ExperimentPlan::model(ModelRole role) const {
  for (const auto& m : models) {
    if (m.role == role) return m;
  }
  throw Error("experiment: no model of the wanted role in the plan");
}

TrainingSettings training_settings(const TrainOptions& t) {
  TrainingSettings s{t.spec.architecture, t.spec.effective_width(), to_string(t.spec.dropout), t.spec.p,
                     t.spec.dropout_layers, t.epochs, t.batch, t.lr, t.seed, t.validation, t.subset, t.init_epochs, {}};
  if (t.spec.architecture == "custom") s.network = network_to_json(t.spec.network).dump();
  return s;
}

std::vector<std::string> with_hardware(std::vector<std::string> args, const std::string& hardware) {
  if (hardware != "default") args.insert(args.end(), {"--hw", hardware});
  return args;
}

std::vector<std::string> cost_command(const PlannedModel& m, int samples, const std::string& hardware) {
  return with_hardware({"cost", "--model", m.dir.string(), "--samples", std::to_string(samples)}, hardware);
}

ExperimentPlan plan_experiment(const ExperimentOptions& o) {
  ExperimentPlan plan;
  plan.out = o.out;
  plan.own_models = (o.models.empty() || o.own_models_dir) && o.runs.empty();
  plan.models_dir = !o.runs.empty() ? o.runs.front().parent_path() : o.models.empty() ? o.out / "models" : o.models;
  if (!o.runs.empty()) {
    for (const ModelRole role : {ModelRole::deterministic, ModelRole::element, ModelRole::spatial}) {
      plan.models.push_back(given_model(o, role));
    }
  } else {
    plan.models.push_back(planned_model(o, plan.models_dir, ModelRole::deterministic, o.p));
    plan.models.push_back(planned_model(o, plan.models_dir, ModelRole::element, o.p));
    plan.models.push_back(planned_model(o, plan.models_dir, ModelRole::spatial, o.p));
    for (double p : o.extra_p) plan.models.push_back(planned_model(o, plan.models_dir, ModelRole::extra_spatial, p));
  }

  // Pricing: the main T with every scheme, and the model's own scheme along the T axis.
  plan.samples = o.samples;
  plan.priced_t = o.t_values;
  plan.priced_t.push_back(o.samples);
  std::sort(plan.priced_t.begin(), plan.priced_t.end());
  plan.priced_t.erase(std::unique(plan.priced_t.begin(), plan.priced_t.end()), plan.priced_t.end());

  Planner planner(o, plan);
  if (o.shared_epochs > 0 && o.runs.empty()) {
    PlannedModel shared = planned_model(o, plan.models_dir, ModelRole::deterministic, o.p);
    shared.name = shared_run_dir(o, plan.models_dir).filename().string();
    shared.description = fmt::format("the first {} epochs, shared", o.shared_epochs);
    shared.dir = plan.models_dir / shared.name;
    shared.train.out = shared.dir;
    shared.train.init.clear();
    shared.train.init_epochs = 0;
    shared.train.stop_after_epochs = o.shared_epochs;
    plan.shared = std::move(shared);
    planner.add_shared_stage();
  }
  for (std::size_t m = 0; m < plan.models.size(); ++m) planner.add_model_stages(m);
  return plan;
}

}  // namespace spinbayes
