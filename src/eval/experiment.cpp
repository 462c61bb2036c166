#include "eval/experiment.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <fstream>
#include <functional>
#include <thread>

#include "core/atomic_file.h"
#include "core/error.h"
#include "core/read_file.h"
#include "cost/cost_model.h"
#include "eval/calibrate.h"
#include "eval/evaluation.h"
#include "eval/experiment_plan.h"
#include "eval/experiment_report.h"
#include "eval/stage_cache.h"
#include "eval/sweep.h"
#include "train/export.h"
#include "train/run.h"

namespace spinbayes {

namespace {

using nlohmann::json;
using Clock = std::chrono::steady_clock;
namespace fs = std::filesystem;

double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

std::string machine_cpu() {
  std::ifstream in("/proc/cpuinfo");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("model name", 0) == 0) {
      const auto colon = line.find(':');
      if (colon != std::string::npos) return line.substr(line.find_first_not_of(' ', colon + 1));
    }
  }
  return "unknown CPU";
}

std::string utc_now() {
  const std::time_t now = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&now, &tm);
  char text[64];
  std::strftime(text, sizeof text, "%Y-%m-%d %H:%M UTC", &tm);
  return text;
}

void prepare_out_dir(const fs::path& out) {
  if (out.empty()) throw Error("--out: must not be empty");
  std::error_code ec;
  if (fs::exists(out, ec) && !fs::is_directory(out, ec)) {
    throw Error("--out: '" + printable(out.string()) + "' exists and is not a directory");
  }
  fs::create_directories(out / "stages", ec);
  if (ec) throw Error("--out: cannot create '" + printable(out.string()) + "': " + ec.message());
  fs::create_directories(out / "calibration", ec);
  if (ec) throw Error("--out: cannot create '" + printable((out / "calibration").string()) + "': " + ec.message());
  fs::create_directories(out / "figures", ec);
  if (ec) throw Error("--out: cannot create '" + printable((out / "figures").string()) + "': " + ec.message());
}

// ---- training runs -------------------------------------------------------------------------------

// A training run is current when it holds the wanted settings and all its epochs.
// Epochs a run's train.jsonl records (0 when there is none).
int epochs_recorded(const fs::path& dir) {
  if (!fs::exists(dir / "train.jsonl")) return 0;
  const std::string history = read_file_bytes(dir / "train.jsonl");
  return static_cast<int>(std::count(history.begin(), history.end(), '\n'));
}

bool run_is_finished(const PlannedModel& m) {
  return fs::exists(m.dir / "model.sbir") && epochs_recorded(m.dir) >= m.train.epochs;
}

bool trained_as_planned(const PlannedModel& m) {
  return run_is_finished(m) && fs::exists(m.dir / "config.json") &&
         training_settings(load_run_config(m.dir)) == training_settings(m.train);
}

// Epochs the run of the shared first epochs has finished (0 when there is none).
int shared_epochs_done(const PlannedModel& shared) {
  return fs::exists(shared.dir / "checkpoint.pt") ? epochs_recorded(shared.dir) : 0;
}

TrainingRecord training_record(const PlannedModel& m, const std::vector<std::string>& command) {
  if (!m.train.imported.empty()) {
    TrainingRecord r{training_settings(m.train), 0, 0.0, 0.0, command, m.train.imported};
    return r;
  }
  json last;
  std::string line;
  std::ifstream in(m.dir / "train.jsonl");
  while (std::getline(in, line)) {
    if (!line.empty()) last = json::parse(line, nullptr, false);
  }
  if (last.is_discarded() || !last.is_object()) throw Error((m.dir / "train.jsonl").string() + ": corrupt training history");
  return {training_settings(m.train), last.value("epoch", 0), last.value("validation_accuracy", 0.0),
          last.value("seconds", 0.0), command, {}};
}

}  // namespace

// ---- the run ---------------------------------------------------------------------------------

namespace {

// Walks the plan: runs each stage, or takes its stored result, and puts what it finds into the
// results of its model.
class ExperimentRun {
 public:
  ExperimentRun(const ExperimentOptions& o, const ExperimentPlan& plan)
      : o_(o), plan_(plan), cache_(o.out / "stages"), progress_(o.quiet), model_ir_(plan.models.size()) {
    // A finished run's stages are known to be stored when their keys match already.
    for (std::size_t m = 0; m < plan.models.size(); ++m) {
      if (trained_as_planned(plan.models[m])) model_ir_[m] = file_fingerprint(plan.models[m].dir / "model.sbir");
    }
    for (const Stage& s : plan.stages) {
      const std::string& model_ir = model_ir_[s.model];
      const bool done = s.kind == StageKind::train_shared
                            ? shared_epochs_done(*plan.shared) >= plan.shared->train.stop_after_epochs ||
                                  std::all_of(model_ir_.begin(), model_ir_.end(), [](const auto& f) { return !f.empty(); })
                            : !model_ir.empty() && (s.kind == StageKind::train || s.kind == StageKind::cost ||
                                                    !cache_.stored(s.name, s.key(plan.models[s.model], model_ir)).is_null());
      progress_.plan(s.work, done);
    }
  }

  std::vector<ModelResults> run() {
    std::vector<ModelResults> models(plan_.models.size());
    for (std::size_t i = 0; i < plan_.stages.size(); ++i) {
      const Stage& s = plan_.stages[i];
      const PlannedModel& m = plan_.models[s.model];
      ModelResults& r = models[s.model];
      switch (s.kind) {
        case StageKind::train_shared:
          train_shared(i, *plan_.shared);
          break;
        case StageKind::train:
          train(i, m);
          r.name = m.name;
          r.role = m.description;
          r.main = m.main();
          r.dropout = to_string(m.train.spec.dropout);
          r.p = m.train.spec.p;
          r.dir = m.dir.string();
          r.model_ir = model_ir_[s.model];
          r.training = training_record(m, s.command);
          break;
        case StageKind::calibrate:
          r.calibration = stage<Calibration>(i, [&] { return calibrate(s); });
          // A stored stage's file is put back as the stage found it, for the evaluations to read.
          if (!fs::exists(s.calibrate.out) || read_file_bytes(s.calibrate.out) != r.calibration->record) {
            write_file_atomic(s.calibrate.out, r.calibration->record);
          }
          break;
        case StageKind::software_eval:
          r.software = stage<Evaluation>(i, [&] { return evaluation_of(evaluate(s.eval), s.command, true); });
          if (s.on_t_axis) r.t_axis.push_back({r.software->report, r.software->command, std::nullopt});
          break;
        case StageKind::chip_eval:
          r.chip = stage<Evaluation>(i, [&] { return evaluation_of(evaluate(s.eval), s.command, true); });
          break;
        case StageKind::split:
          r.split = stage<SplitRecord>(i, [&] { return split_of(evaluate(s.eval), s.command); });
          break;
        case StageKind::curve_point:
          r.t_axis.push_back(stage<Evaluation>(i, [&] { return evaluation_of(evaluate(s.eval), s.command, false); }));
          break;
        case StageKind::sweep:
          r.variation = stage<Variation>(i, [&] { return variation_of(run_sweep(s.sweep, !o_.quiet), s.command); });
          break;
        case StageKind::cost:
          r.cost = stage<Pricing>(i, [&] { return price(m, s.command); });
          break;
      }
    }
    for (auto& r : models) {
      std::stable_sort(r.t_axis.begin(), r.t_axis.end(),
                       [](const Evaluation& a, const Evaluation& b) { return a.report.samples < b.report.samples; });
    }
    return models;
  }

  const std::vector<std::string>& reused_models() const { return reused_; }
  const Progress& progress() const { return progress_; }

 private:
  // The shared first epochs: trained until the run has them, unless every model is trained already.
  void train_shared(std::size_t stage, const PlannedModel& shared) {
    const std::string& what = plan_.stages[stage].what;
    const int wanted = shared.train.stop_after_epochs;
    bool needed = false;
    for (const PlannedModel& m : plan_.models) needed = needed || !trained_as_planned(m);
    discard_if_trained_otherwise(shared);
    const int done = shared_epochs_done(shared);
    if (!needed || done >= wanted) {
      progress_.finish(stage, what, 0, true);
      return;
    }
    progress_.start(stage, what);
    const auto start = Clock::now();
    TrainOptions t = shared.train;
    t.resume = true;
    t.stop_after_epochs = wanted - done;
    train_model(t);
    progress_.finish(stage, what, seconds_since(start), false);
  }

  // A run directory holding a run trained with other settings is removed (in the experiment's own
  // models directory) or an error (in a --models directory, where nothing is ever deleted).
  void discard_if_trained_otherwise(const PlannedModel& m) const {
    if (!fs::exists(m.dir / "config.json")) return;
    const TrainingSettings saved = training_settings(load_run_config(m.dir));
    if (saved == training_settings(m.train)) return;
    if (!plan_.own_models) {
      throw Error(m.dir.string() + ": holds a run trained with other settings (" + json(saved).dump() +
                  "); remove it or choose another --models");
    }
    if (!o_.quiet) std::fprintf(stderr, "%s: settings changed, training again\n", m.dir.c_str());
    fs::remove_all(m.dir);
  }

  // Training: reuse a finished run with the same settings, resume an interrupted one.
  void train(std::size_t stage, const PlannedModel& m) {
    const std::string& what = plan_.stages[stage].what;
    discard_if_trained_otherwise(m);
    const bool reuse = run_is_finished(m);
    if (!reuse && !o_.runs.empty()) {
      throw Error("--runs: " + m.dir.string() + ": the run has " + std::to_string(epochs_recorded(m.dir)) + " of its " +
                  std::to_string(m.train.epochs) + " epochs; finish it (spinbayes train --out DIR --resume) first");
    }
    if (reuse) {
      reused_.push_back(m.name);
      progress_.finish(stage, what, 0, true);
    } else {
      progress_.start(stage, what);
      const auto start = Clock::now();
      TrainOptions t = m.train;
      t.resume = true;  // continues from the last checkpoint, or starts afresh
      train_model(t);
      progress_.finish(stage, what, seconds_since(start), false);
    }
    model_ir_[plan_.stages[stage].model] = file_fingerprint(ensure_model_ir(m.dir));
  }

  // The stored result of a stage when its key matches, else compute()'s, stored with the key.
  template <class Result>
  Result stage(std::size_t index, const std::function<Result()>& compute) {
    const Stage& s = plan_.stages[index];
    const json key = s.key(plan_.models[s.model], model_ir_[s.model]);
    if (std::optional<Result> stored = cache_.stored_as<Result>(s.name, key)) {
      progress_.finish(index, s.what, 0.0, true);
      return *stored;
    }
    progress_.start(index, s.what);
    const auto start = Clock::now();
    Result result = compute();
    cache_.store(s.name, key, result);
    progress_.finish(index, s.what, seconds_since(start), false);
    return result;
  }

  Calibration calibrate(const Stage& s) const {
    const CalibrationRecord record = calibrate_run(s.calibrate);
    const FittedTemperature& fit = record.mc ? *record.mc : *record.deterministic;
    Calibration c;
    c.applied = {fit.temperature, fit.samples, fit.validation_images, fit.nll_before, fit.nll_after, fit.ece_before,
                 fit.ece_after};
    c.file = fs::relative(s.calibrate.out, o_.out).string();
    c.record = calibration_json(record);
    c.command = s.command;
    return c;
  }

  // Pricing: the main T with every scheme, and the model's own scheme along the T axis.
  Pricing price(const PlannedModel& m, const std::vector<std::string>& command) const {
    const fs::path ir = ensure_model_ir(m.dir);
    auto priced = [&](int t) {
      CostOptions c;
      c.model_ir = ir;
      c.hw = o_.hardware;
      c.samples = t;
      return run_cost(c);
    };
    const DropoutKind own = m.train.spec.dropout;
    Pricing p;
    p.scheme = to_string(own);
    p.command = command;
    for (int t : plan_.priced_t) {
      const SchemeCost& c = priced(t).scheme(own);
      p.energy_vs_t.push_back({t, p.scheme, energy_json(c.total.energy).get<EnergyPj>(), c.total.latency_ns,
                               cost_command(m, t, o_.hardware)});
    }
    p.report = cost_json(priced(plan_.samples)).get<CostSummary>();
    return p;
  }

  const ExperimentOptions& o_;
  const ExperimentPlan& plan_;
  StageCache cache_;
  Progress progress_;
  std::vector<std::string> model_ir_;  // per model: the fingerprint of its model IR once trained
  std::vector<std::string> reused_;    // training runs finished before this invocation
};

ExperimentSettings settings_of_options(const ExperimentOptions& o, const ExperimentPlan& plan) {
  return {.quick = o.quick,
          .architecture = o.architecture,
          .network_file = o.network_file.string(),
          .width = plan.model(ModelRole::deterministic).train.spec.effective_width(),
          .epochs = o.epochs,
          .shared_epochs = o.shared_epochs,
          .batch = o.batch,
          .shared_command = plan.shared ? plan.stages.front().command : std::vector<std::string>{},
          .lr = o.lr,
          .train_subset = o.train_subset,
          .validation = o.validation,
          .seed = o.seed,
          .p = o.p,
          .extra_p = o.extra_p,
          .samples = o.samples,
          .t_values = o.t_values,
          .test_count = o.test_count,
          .chip_test_count = o.chip_test_count,
          .curve_test_count = o.curve_test_count,
          .ood_count = o.ood_count,
          .ood = o.ood,
          .eval_seed = o.eval_seed,
          .chip_seed = o.chip_seed,
          .hardware = o.hardware,
          .sweep = {o.sweep_param, o.sweep_values, o.sweep_chips, o.sweep_samples, o.sweep_test_count},
          .runs = {}};
}

ExperimentSettings settings_of(const ExperimentOptions& o, const ExperimentPlan& plan) {
  ExperimentSettings s = settings_of_options(o, plan);
  if (o.runs.empty()) return s;
  // The network and training are the runs' (the spatial one's, where they differ).
  const TrainOptions& t = plan.model(ModelRole::spatial).train;
  s.architecture = t.spec.architecture;
  s.network_file.clear();
  s.width = t.spec.effective_width();
  s.epochs = t.epochs;
  s.shared_epochs = 0;
  s.batch = t.batch;
  s.lr = t.lr;
  s.train_subset = t.subset;
  s.validation = t.validation;
  s.seed = t.seed;
  s.p = t.spec.p;
  s.extra_p.clear();
  for (const auto& m : plan.models) s.runs.push_back(m.dir.string());
  return s;
}

}  // namespace

void probe_experiment_data(const ExperimentOptions& o) {
  const ImageSet probe = first_images(load_fashion_mnist(o.paths, "test"), 8);
  for (const auto& name : o.ood) {
    try {
      make_ood_set(name, probe, 8, o.paths, o.eval_seed);
    } catch (const Error& e) {
      throw Error("--ood: " + printable_head(name) + ": " + e.what());
    }
  }
}

ExperimentResult run_experiment(const ExperimentOptions& o) {
  o.validate();
  const auto start = Clock::now();
  probe_experiment_data(o);
  prepare_out_dir(o.out);
  const ExperimentPlan plan = plan_experiment(o);
  ExperimentRun run(o, plan);

  ExperimentResult result;
  ExperimentResults& results = result.results;
  results.settings = settings_of(o, plan);
  results.models = run.run();

  // Figures and the report are drawn from the results alone (the energy chart is `spinbayes
  // cost --plot` of the spatial model).
  const PlannedModel& spatial = plan.model(ModelRole::spatial);
  {
    CostOptions c;
    c.model_ir = ensure_model_ir(spatial.dir);
    c.hw = o.hardware;
    c.samples = o.samples;
    write_cost_plot(run_cost(c), o.out / "figures" / "energy.png");
  }
  results.figures = write_experiment_figures(results, o.out / "figures");
  results.figures.energy.file = "figures/energy.png";
  results.figures.energy.command = cost_command(spatial, o.samples, o.hardware);
  results.figures.energy.command.insert(results.figures.energy.command.end(), {"--plot", "energy.png"});

  result.reused_models = run.reused_models();
  result.stages_run = run.progress().stages_run();
  result.stages_cached = run.progress().stages_cached();
  result.seconds = seconds_since(start);
  results.run = {.command = o.command,
                 .machine = {machine_cpu(), std::thread::hardware_concurrency()},
                 .date = utc_now(),
                 .seconds = result.seconds,
                 .reused_models = result.reused_models,
                 .stages_run = result.stages_run,
                 .stages_cached = result.stages_cached};
  write_file_atomic(o.out / "results.json", json(results).dump(1) + "\n");
  write_file_atomic(o.out / "report.md", experiment_report_markdown(results));
  return result;
}

}  // namespace spinbayes
