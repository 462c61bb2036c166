#include "eval/experiment.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <ctime>
#include <fstream>
#include <functional>
#include <iterator>
#include <set>
#include <string_view>
#include <thread>

#include <fmt/format.h>

#include "core/atomic_file.h"
#include "core/error.h"
#include "cost/cost_model.h"
#include "cost/technology.h"
#include "eval/evaluation.h"
#include "eval/experiment_report.h"
#include "eval/sweep.h"
#include "hw/hardware_config.h"
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

std::string read_bytes(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(path.string() + ": cannot read");
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

// FNV-1a (64 bit): the fingerprint a cached stage keeps of its input files and configurations.
std::string fingerprint(std::string_view bytes) {
  std::uint64_t h = 0xcbf29ce484222325ULL;
  for (const char c : bytes) {
    h ^= static_cast<unsigned char>(c);
    h *= 0x100000001b3ULL;
  }
  return fmt::format("{:016x}", h);
}
std::string file_fingerprint(const fs::path& path) { return fingerprint(read_bytes(path)); }

std::string duration_text(double seconds) {
  const long s = std::lround(std::max(0.0, seconds));
  if (s < 60) return fmt::format("{}s", s);
  if (s < 3600) return fmt::format("{}m{:02}s", s / 60, s % 60);
  return fmt::format("{}h{:02}m", s / 3600, (s % 3600) / 60);
}

std::string number_text(double x) { return fmt::format("{:g}", x); }

std::string joined(const std::vector<std::string>& items) {
  std::string out;
  for (const auto& item : items) out += (out.empty() ? "" : ",") + item;
  return out;
}

// ---- the models ------------------------------------------------------------------------------

struct Model {
  std::string name;  // run directory name, e.g. vgg32-spatial
  std::string role;  // how the report calls it
  bool main = false; // one of the three compared models (the others add points on the p axis)
  TrainOptions train;
  fs::path dir;
  std::string ir_fingerprint;  // of DIR/model.sbir once trained
  json identity() const { return {{"name", name}, {"model_ir", ir_fingerprint}}; }
};

std::string short_architecture(const std::string& architecture) {
  return architecture == "vgg-small" ? "vgg" : architecture;
}

std::vector<Model> plan_models(const ExperimentOptions& o, const fs::path& models_dir) {
  std::vector<Model> models;
  auto add = [&](DropoutKind kind, double p, bool main, const std::string& role) {
    Model m;
    m.train.spec.architecture = o.architecture;
    m.train.spec.width = o.width;
    m.train.spec.dropout = kind;
    m.train.spec.p = p;
    m.train.spec.dropout_layers = "all";
    m.train.epochs = o.epochs;
    m.train.batch = o.batch;
    m.train.lr = o.lr;
    m.train.seed = o.seed;
    m.train.validation = o.validation;
    m.train.subset = o.train_subset;
    m.train.threads = o.threads;
    m.train.quiet = o.quiet;
    m.train.paths = o.paths;
    m.name = fmt::format("{}{}-{}", short_architecture(o.architecture), m.train.spec.effective_width(),
                         to_string(kind));
    if (kind != DropoutKind::none && p != 0.1) m.name += fmt::format("-p{:g}", p);
    m.main = main;
    m.role = role;
    m.dir = models_dir / m.name;
    m.train.out = m.dir;
    models.push_back(m);
  };
  add(DropoutKind::none, o.p, true, "deterministic BNN");
  add(DropoutKind::element, o.p, true, "MC-Dropout (element)");
  add(DropoutKind::spatial, o.p, true, "MC-SpatialDropout");
  for (double p : o.extra_p) add(DropoutKind::spatial, p, false, fmt::format("MC-SpatialDropout, p = {:g}", p));
  return models;
}

// The settings that decide what training produces (thread count and paths aside).
json training_settings(const TrainOptions& t) {
  return {{"architecture", t.spec.architecture}, {"width", t.spec.effective_width()},
          {"dropout", to_string(t.spec.dropout)}, {"p", t.spec.p},
          {"dropout_layers", t.spec.dropout_layers}, {"epochs", t.epochs},
          {"batch", t.batch}, {"lr", t.lr},
          {"seed", t.seed}, {"validation", t.validation},
          {"subset", t.subset}};
}

std::vector<std::string> data_arguments(const DataPaths& paths) {
  const DataPaths defaults = DataPaths::from_environment();
  std::vector<std::string> args;
  if (paths.fashion_mnist != defaults.fashion_mnist) args.insert(args.end(), {"--fashion-mnist", paths.fashion_mnist.string()});
  if (paths.mnist_digits != defaults.mnist_digits) args.insert(args.end(), {"--digits", paths.mnist_digits.string()});
  return args;
}

std::vector<std::string> train_command(const Model& m) {
  const TrainOptions& t = m.train;
  std::vector<std::string> args = {"train", "--model", t.spec.architecture, "--width",
                                   std::to_string(t.spec.effective_width()), "--dropout", to_string(t.spec.dropout),
                                   "--p", number_text(t.spec.p), "--epochs", std::to_string(t.epochs),
                                   "--batch", std::to_string(t.batch), "--lr", number_text(t.lr),
                                   "--seed", std::to_string(t.seed), "--validation", std::to_string(t.validation),
                                   "--subset", std::to_string(t.subset), "--out", t.out.string(), "--resume"};
  const auto data = data_arguments(t.paths);
  args.insert(args.end(), data.begin(), data.end());
  return args;
}

std::vector<std::string> eval_command(const EvalOptions& e) {
  std::vector<std::string> args = {"eval", "--model", e.model.string(), "--backend", to_string(e.backend),
                                   "--samples", std::to_string(e.samples), "--seed", std::to_string(e.seed),
                                   "--ood", joined(e.ood), "--test-count", std::to_string(e.test_count),
                                   "--ood-count", std::to_string(e.ood_count)};
  if (e.backend == Backend::cim) {
    args.insert(args.end(), {"--hw", e.hardware, "--chip-seed", std::to_string(e.chip_seed)});
  }
  const auto data = data_arguments(e.paths);
  args.insert(args.end(), data.begin(), data.end());
  return args;
}

std::vector<std::string> cost_command(const Model& m, int samples) {
  return {"cost", "--model", m.dir.string(), "--samples", std::to_string(samples)};
}

// ---- stages: cached results with progress and ETA --------------------------------------------

// Work estimates in multiply-accumulates, turned into seconds at rates measured on the 2-core
// development machine with vgg-small width 32 and spatial dropout: 75 s per training epoch of
// 55 000 images, 51 s for an engine evaluation of 45 000 images x 10 samples, 98 s for 13 000
// images x 10 samples on the default chip. As stages finish, the measured time per estimated
// second of each kind corrects the rest.
enum class Work { train, engine, chip };
constexpr double kMacsPerSecond[] = {2.1e10, 2.6e11, 3.9e10};

class Stages {
 public:
  Stages(fs::path dir, bool quiet) : dir_(std::move(dir)), quiet_(quiet), start_(Clock::now()) {
    fs::create_directories(dir_);
  }

  // Announces the plan: the estimated seconds of every stage, in the order they will run. A stage
  // that will be reused (`done`: a finished training run, or a stored result under the same key)
  // adds nothing to the ETA.
  void plan(const std::string& name, Work kind, double macs, bool done) {
    planned_.push_back({name, kind, done ? 0.0 : macs / kMacsPerSecond[static_cast<int>(kind)]});
  }

  // The result stored for `name` under `key`, or null.
  json stored(const std::string& name, const json& key) const {
    const fs::path file = dir_ / (name + ".json");
    if (!fs::exists(file)) return json();
    try {
      json entry = json::parse(read_bytes(file));
      if (entry.value("key", json()) == key && entry.contains("result")) return entry["result"];
    } catch (const json::exception&) {
      // An unreadable entry is recomputed.
    }
    return json();
  }

  // The stored result of `name` when its key matches, else compute() stored with the key.
  json run(const std::string& name, const json& key, const std::string& what, const std::function<json()>& compute) {
    const fs::path file = dir_ / (name + ".json");
    if (json result = stored(name, key); !result.is_null()) {
      finish(name, what, 0.0, true);
      return result;
    }
    announce(name, what);
    const auto start = Clock::now();
    json result = compute();
    write_file_atomic(file, json{{"stage", name}, {"key", key}, {"result", result}}.dump(1) + "\n");
    finish(name, what, seconds_since(start), false);
    return result;
  }

  // For stages that keep their own state (training runs): report a stage done or reused.
  void announce(const std::string& name, const std::string& what) {
    if (quiet_) return;
    const Planned* p = find(name);
    std::fprintf(stderr, "[%2d/%zu] %s (estimate %s) ...\n", position(name), planned_.size(), what.c_str(),
                 duration_text(p != nullptr ? p->estimate * correction(p->kind) : 0).c_str());
  }
  void finish(const std::string& name, const std::string& what, double seconds, bool cached) {
    Planned* p = find(name);
    if (p != nullptr) {
      p->done = true;
      if (!cached) {
        measured_[static_cast<int>(p->kind)] += seconds;
        estimated_[static_cast<int>(p->kind)] += p->estimate;
      }
    }
    cached ? ++cached_ : ++run_;
    if (quiet_) return;
    double remaining = 0;
    for (const auto& q : planned_) {
      if (!q.done) remaining += q.estimate * correction(q.kind);
    }
    std::fprintf(stderr, "[%2d/%zu] %s: %s   elapsed %s, ETA %s\n", position(name), planned_.size(), what.c_str(),
                 cached ? "cached" : fmt::format("done in {:.1f} s", seconds).c_str(),
                 duration_text(seconds_since(start_)).c_str(), duration_text(remaining).c_str());
  }
  int stages_run() const { return run_; }
  int stages_cached() const { return cached_; }

 private:
  struct Planned {
    std::string name;
    Work kind;
    double estimate;
    bool done = false;
  };
  Planned* find(const std::string& name) {
    for (auto& p : planned_) {
      if (p.name == name) return &p;
    }
    return nullptr;
  }
  int position(const std::string& name) const {
    for (std::size_t i = 0; i < planned_.size(); ++i) {
      if (planned_[i].name == name) return static_cast<int>(i) + 1;
    }
    return 0;
  }
  // Measured over estimated time: of this kind when measured, else of all kinds.
  double correction(Work kind) const {
    const int k = static_cast<int>(kind);
    if (estimated_[k] > 1.0) return measured_[k] / estimated_[k];
    const double m = measured_[0] + measured_[1] + measured_[2], e = estimated_[0] + estimated_[1] + estimated_[2];
    return e > 1.0 ? m / e : 1.0;
  }

  fs::path dir_;
  bool quiet_;
  Clock::time_point start_;
  std::vector<Planned> planned_;
  double measured_[3] = {0, 0, 0}, estimated_[3] = {0, 0, 0};
  int run_ = 0, cached_ = 0;
};

std::int64_t macs_per_image(const TrainOptions& t) {
  std::int64_t macs = 0;
  for (const auto& layer : build_layers(t.spec)) macs += layer.macs();
  return macs;
}

// ---- what a stage stores -------------------------------------------------------------------

// Reliability diagram over the ECE's bins: confidence = max mean probability, bin
// floor(confidence * bins) (confidence 1 in the last bin).
json reliability_bins(const PredictiveSummary& s, const std::vector<std::int32_t>& labels, int classes, int bins) {
  std::vector<double> confidence_sum(static_cast<std::size_t>(bins)), correct(static_cast<std::size_t>(bins));
  std::vector<int> count(static_cast<std::size_t>(bins));
  for (std::size_t i = 0; i < labels.size(); ++i) {
    const double c = s.mean_probs[i * static_cast<std::size_t>(classes) + static_cast<std::size_t>(s.predicted[i])];
    const auto b = static_cast<std::size_t>(std::clamp(static_cast<int>(c * bins), 0, bins - 1));
    confidence_sum[b] += c;
    correct[b] += s.predicted[i] == labels[i] ? 1.0 : 0.0;
    ++count[b];
  }
  json out = json::array();
  for (std::size_t b = 0; b < static_cast<std::size_t>(bins); ++b) {
    out.push_back({{"lo", static_cast<double>(b) / bins}, {"hi", static_cast<double>(b + 1) / bins},
                   {"images", count[b]},
                   {"confidence", count[b] > 0 ? confidence_sum[b] / count[b] : 0.0},
                   {"accuracy", count[b] > 0 ? correct[b] / count[b] : 0.0}});
  }
  return out;
}

// Share of images (%) per predictive-entropy bin over [0, ln classes].
json entropy_histogram(const std::vector<double>& entropy, int classes, int bins) {
  const double top = std::log(static_cast<double>(classes));
  std::vector<int> count(static_cast<std::size_t>(bins));
  for (double h : entropy) ++count[static_cast<std::size_t>(std::clamp(static_cast<int>(h / top * bins), 0, bins - 1))];
  json shares = json::array();
  for (int c : count) shares.push_back(entropy.empty() ? 0.0 : 100.0 * c / static_cast<double>(entropy.size()));
  return {{"max_nats", top}, {"percent", shares}};
}

json eval_result(const EvalReport& r, const EvalOptions& e, bool figures) {
  json result = {{"report", report_json(r)}, {"command", eval_command(e)}};
  if (figures) {
    result["reliability"] = reliability_bins(r.test_summary, r.test_labels, r.spec.classes, 15);
    json histograms = {{"test", entropy_histogram(r.test_summary.entropy, r.spec.classes, 30)}};
    for (std::size_t k = 0; k < r.ood.size(); ++k) {
      histograms[r.ood[k].name] = entropy_histogram(r.ood_summaries[k].entropy, r.spec.classes, 30);
    }
    result["entropy_histograms"] = histograms;
  }
  return result;
}

json sweep_result(const SweepReport& r, const SweepOptions& o) {
  json points = json::array();
  for (const auto& p : r.points) {
    points.push_back({{"value", p.value}, {"chip", p.chip}, {"accuracy", p.accuracy}, {"ece", p.ece},
                      {"nll", p.nll}, {"auroc", p.auroc}});
  }
  std::vector<std::string> values;
  for (double v : o.values) values.push_back(number_text(v));
  std::vector<std::string> command = {"sweep", "--model", o.eval.model.string(), "--param", o.param,
                                      "--values", joined(values), "--chips", std::to_string(o.chips),
                                      "--samples", std::to_string(o.eval.samples), "--test-count",
                                      std::to_string(o.eval.test_count), "--ood", joined(o.eval.ood),
                                      "--seed", std::to_string(o.eval.seed)};
  const auto data = data_arguments(o.eval.paths);
  command.insert(command.end(), data.begin(), data.end());
  return {{"param", r.param}, {"unit", r.unit}, {"ood", r.ood}, {"points", points},
          {"software", report_json(r.software)}, {"command", command}};
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
  fs::create_directories(out / "figures", ec);
  if (ec) throw Error("--out: cannot create '" + printable((out / "figures").string()) + "': " + ec.message());
}

// A training run is current when it holds the wanted settings and all its epochs.
bool run_is_finished(const Model& m) {
  if (!fs::exists(m.dir / "model.sbir") || !fs::exists(m.dir / "train.jsonl")) return false;
  const std::string history = read_bytes(m.dir / "train.jsonl");
  return std::count(history.begin(), history.end(), '\n') >= m.train.epochs;
}

json training_record(const Model& m) {
  json last;
  std::string line;
  std::ifstream in(m.dir / "train.jsonl");
  while (std::getline(in, line)) {
    if (!line.empty()) last = json::parse(line, nullptr, false);
  }
  if (last.is_discarded() || !last.is_object()) throw Error((m.dir / "train.jsonl").string() + ": corrupt training history");
  return {{"settings", training_settings(m.train)},
          {"epochs", last.value("epoch", 0)},
          {"validation_accuracy", last.value("validation_accuracy", 0.0)},
          {"seconds", last.value("seconds", 0.0)},
          {"command", train_command(m)}};
}

}  // namespace

// ---- options -------------------------------------------------------------------------------

ExperimentOptions ExperimentOptions::full() {
  ExperimentOptions o;
  o.out = "runs/experiment";
  return o;
}

ExperimentOptions ExperimentOptions::quick_run() {
  ExperimentOptions o;
  o.out = "runs/experiment-quick";
  o.quick = true;
  o.width = 16;
  o.epochs = 5;
  o.train_subset = 8000;
  o.validation = 1000;
  o.extra_p = {0.05, 0.2};
  o.t_values = {1, 3, 10, 30};
  o.test_count = 1000;
  o.chip_test_count = 500;
  o.curve_test_count = 1000;
  o.sweep_values = {0, 0.05, 0.1};
  o.sweep_test_count = 200;
  return o;
}

void ExperimentOptions::validate() const {
  auto in_range = [](const char* name, long long v, long long lo, long long hi) {
    if (v < lo || v > hi) throw Error(fmt::format("{}: must be in {}..{}, got {}", name, lo, hi, v));
  };
  if (!(p > 0.0 && p < 1.0)) throw Error(fmt::format("--p: dropout probability must be in (0, 1), got {:g}", p));
  in_range("--width", width, 0, 4096);
  ModelSpec spec;
  spec.architecture = architecture;
  spec.width = width;
  spec.p = p;
  spec.validate();
  in_range("--epochs", epochs, 1, 1000);
  in_range("--batch", batch, 1, 60000);
  if (!(lr > 0.0 && lr <= 1.0)) throw Error(fmt::format("--lr: must be in (0, 1], got {:g}", lr));
  in_range("--train-subset", train_subset, 0, 60000);
  in_range("--validation", validation, 0, 59000);
  std::set<double> rates = {p};
  for (double q : extra_p) {
    if (!(q > 0.0 && q < 1.0)) throw Error(fmt::format("--extra-p: dropout probability must be in (0, 1), got {:g}", q));
    if (!rates.insert(q).second) throw Error(fmt::format("--extra-p: {:g} is given twice (or equals --p)", q));
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
  in_range("--sweep-samples", sweep_samples, 1, 10000);
  in_range("--sweep-test-count", sweep_test_count, 0, 10000);
  in_range("--threads", threads, 1, 256);
  HardwareConfig probe = HardwareConfig::load("default");
  if (probe.table().number_unit(sweep_param) == nullptr) {
    throw Error("--sweep-param: '" + printable(sweep_param) + "' is not a numeric hardware parameter");
  }
  for (double v : sweep_values) {
    HardwareConfig hw = probe;
    hw.table().apply(json{{sweep_param, v}}, "--sweep-values");
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

// ---- the run ---------------------------------------------------------------------------------

ExperimentResult run_experiment(const ExperimentOptions& o) {
  o.validate();
  const auto start = Clock::now();
  prepare_out_dir(o.out);
  const bool own_models = o.models.empty();
  const fs::path models_dir = own_models ? o.out / "models" : o.models;
  std::vector<Model> models = plan_models(o, models_dir);

  // Every OOD set is built once on a few test images before anything runs, so that a missing
  // data set or an unreadable idx: file fails now rather than after training.
  {
    const ImageSet probe = first_images(load_fashion_mnist(o.paths, "test"), 8);
    for (const auto& name : o.ood) make_ood_set(name, probe, 8, o.paths, o.eval_seed);
  }
  json ood_key = json::array();
  for (const auto& name : o.ood) {
    ood_key.push_back(name.rfind("idx:", 0) == 0 ? json{{"name", name}, {"file", file_fingerprint(name.substr(4))}}
                                                 : json(name));
  }
  const json data_key = {{"fashion_mnist", o.paths.fashion_mnist.string()},
                         {"digits", o.paths.mnist_digits.string()}};
  // Every value of the default hardware and technology tables: a change to them redoes the chip
  // and cost stages.
  HardwareConfig hardware = HardwareConfig::load("default");
  Technology technology = Technology::load("default", hardware);
  const std::string hardware_key = fingerprint(hardware.table().to_commented_json());
  const std::string technology_key = fingerprint(technology.table().to_commented_json());

  auto eval_options = [&](const Model& m, Backend backend, int samples, int test_count) {
    EvalOptions e;
    e.model = m.dir;
    e.backend = backend;
    e.samples = samples;
    e.seed = o.eval_seed;
    e.ood = o.ood;
    e.test_count = test_count;
    e.ood_count = o.ood_count;
    e.threads = o.threads;
    e.hardware = "default";
    e.chip_seed = o.chip_seed;
    e.paths = o.paths;
    return e;
  };
  auto eval_key = [&](const Model& m, const EvalOptions& e) {
    json key = {{"model", m.identity()}, {"backend", to_string(e.backend)}, {"samples", e.samples},
                {"seed", e.seed}, {"ood", ood_key}, {"test_count", e.test_count},
                {"ood_count", e.ood_count}, {"data", data_key}};
    if (e.backend == Backend::cim) {
      key["hardware"] = e.hardware;
      key["hardware_config"] = hardware_key;
      key["chip_seed"] = e.chip_seed;
    }
    return key;
  };
  auto sweep_options = [&](const Model& m) {
    SweepOptions s;
    s.eval.model = m.dir;
    s.eval.samples = o.sweep_samples;
    s.eval.test_count = o.sweep_test_count;
    s.eval.validation_count = -1;  // as `spinbayes sweep` does: the threshold is not reported
    const bool has_mnist = std::find(o.ood.begin(), o.ood.end(), "mnist") != o.ood.end();
    s.eval.ood = {has_mnist ? std::string("mnist") : o.ood.front()};
    s.eval.seed = o.eval_seed;
    s.eval.threads = o.threads;
    s.eval.paths = o.paths;
    s.param = o.sweep_param;
    s.values = o.sweep_values;
    s.chips = o.sweep_chips;
    return s;
  };
  auto sweep_key = [&](const Model& m, const SweepOptions& s) {
    return json{{"model", m.identity()}, {"param", s.param}, {"values", s.values}, {"chips", s.chips},
                {"samples", s.eval.samples}, {"test_count", s.eval.test_count}, {"ood", s.eval.ood},
                {"seed", s.eval.seed}, {"hardware", s.eval.hardware}, {"hardware_config", hardware_key},
                {"data", data_key}};
  };
  // Pricing: the main T with every scheme, and the model's own scheme along the T axis.
  std::vector<int> cost_ts = o.t_values;
  cost_ts.push_back(o.samples);
  std::sort(cost_ts.begin(), cost_ts.end());
  cost_ts.erase(std::unique(cost_ts.begin(), cost_ts.end()), cost_ts.end());
  auto cost_key = [&](const Model& m) {
    return json{{"model", m.identity()}, {"samples", o.samples}, {"t_values", cost_ts}, {"hw", "default"},
                {"tech", "default"}, {"hardware_config", hardware_key}, {"technology", technology_key}};
  };
  // The T axis; the deterministic network is the same at every T, so it gets one point.
  auto t_axis = [&](const Model& m) {
    std::vector<int> ts = o.t_values;
    std::sort(ts.begin(), ts.end());
    ts.erase(std::unique(ts.begin(), ts.end()), ts.end());
    if (!m.train.spec.has_dropout()) ts = {1};
    return ts;
  };
  auto same_as_main = [&](int t) { return t == o.samples && o.curve_test_count == o.test_count; };

  // The plan, with work estimates for the progress lines.
  Stages stages(o.out / "stages", o.quiet);
  {
    auto images = [&](const TrainOptions& t, int test_count, int ood_count, bool validation) {
      const double test = test_count > 0 ? test_count : 10000;
      const double ood = ood_count > 0 ? ood_count : test;
      return test + ood * static_cast<double>(o.ood.size()) + (validation ? t.validation : 0);
    };
    for (Model m : models) {
      // A finished run's stages are known to be stored when their keys match already.
      const bool trained = run_is_finished(m) && fs::exists(m.dir / "config.json") &&
                           training_settings(load_run_config(m.dir)) == training_settings(m.train);
      if (trained) m.ir_fingerprint = file_fingerprint(m.dir / "model.sbir");
      auto done = [&](const std::string& name, const json& key) {
        return trained && !stages.stored(name, key).is_null();
      };
      // Element masks cost about twice spatial ones to draw (a bit per element, not per channel),
      // in software and on the chip alike (measured on vgg-small).
      const double mask_factor = m.train.spec.dropout == DropoutKind::element ? 2.0 : 1.0;
      const double macs = static_cast<double>(macs_per_image(m.train));
      const double train_images = m.train.subset > 0 ? m.train.subset : 60000 - m.train.validation;
      const bool dropout = m.train.spec.has_dropout();
      auto passes = [&](int t) { return dropout ? t : 1; };  // without dropout one pass serves every T
      stages.plan("train-" + m.name, Work::train, macs * train_images * m.train.epochs, trained);
      if (m.main) {
        for (const Backend backend : {Backend::engine, Backend::cim}) {
          const bool chip = backend == Backend::cim;
          const EvalOptions e = eval_options(m, backend, o.samples, chip ? o.chip_test_count : o.test_count);
          const std::string name = fmt::format("eval-{}-{}", m.name, to_string(backend));
          stages.plan(name, chip ? Work::chip : Work::engine,
                      mask_factor * macs * passes(o.samples) * images(m.train, e.test_count, o.ood_count, true),
                      done(name, eval_key(m, e)));
        }
      }
      for (int t : t_axis(m)) {
        if (m.main && same_as_main(t)) continue;
        const EvalOptions e = eval_options(m, Backend::engine, t, o.curve_test_count);
        const std::string name = fmt::format("curve-{}-T{}", m.name, t);
        stages.plan(name, Work::engine,
                    mask_factor * macs * passes(t) * images(m.train, o.curve_test_count, o.ood_count, true),
                    done(name, eval_key(m, e)));
      }
      if (m.main) {
        const double sweep_images = 2.0 * (o.sweep_test_count > 0 ? o.sweep_test_count : 10000);
        stages.plan("sweep-" + m.name, Work::chip,
                    mask_factor * macs * passes(o.sweep_samples) * sweep_images *
                        static_cast<double>(o.sweep_values.size()) * o.sweep_chips,
                    done("sweep-" + m.name, sweep_key(m, sweep_options(m))));
      }
      stages.plan("cost-" + m.name, Work::engine, 0, true);
    }
  }

  json model_results = json::array();
  std::vector<std::string> reused;  // training runs finished before this invocation
  for (Model& m : models) {
    // Training: reuse a finished run with the same settings, resume an interrupted one.
    const std::string train_stage = "train-" + m.name;
    const std::string train_what = fmt::format("train {} ({}, {} epochs)", m.name, m.role, m.train.epochs);
    bool reuse = false;
    if (fs::exists(m.dir / "config.json")) {
      const TrainOptions saved = load_run_config(m.dir);
      if (training_settings(saved) != training_settings(m.train)) {
        if (!own_models) {
          throw Error(m.dir.string() + ": holds a run trained with other settings (" +
                      training_settings(saved).dump() + "); remove it or choose another --models");
        }
        if (!o.quiet) std::fprintf(stderr, "%s: settings changed, training again\n", m.dir.c_str());
        fs::remove_all(m.dir);
      } else {
        reuse = run_is_finished(m);
      }
    }
    if (reuse) {
      reused.push_back(m.name);
      stages.finish(train_stage, train_what, 0, true);
    } else {
      stages.announce(train_stage, train_what);
      const auto train_start = Clock::now();
      TrainOptions t = m.train;
      t.resume = true;  // continues from the last checkpoint, or starts afresh
      train_model(t);
      stages.finish(train_stage, train_what, seconds_since(train_start), false);
    }
    m.ir_fingerprint = file_fingerprint(ensure_model_ir(m.dir));

    json entry = {{"name", m.name}, {"role", m.role}, {"main", m.main},
                  {"dropout", to_string(m.train.spec.dropout)}, {"p", m.train.spec.p},
                  {"dir", m.dir.string()}, {"model_ir", m.ir_fingerprint}, {"training", training_record(m)}};

    if (m.main) {
      for (const Backend backend : {Backend::engine, Backend::cim}) {
        const EvalOptions e = eval_options(m, backend, o.samples,
                                           backend == Backend::cim ? o.chip_test_count : o.test_count);
        const std::string where = backend == Backend::cim ? "on the simulated chip" : "in software";
        entry[backend == Backend::cim ? "chip" : "software"] = stages.run(
            fmt::format("eval-{}-{}", m.name, to_string(backend)), eval_key(m, e),
            fmt::format("evaluate {} {} (T = {})", m.name, where, o.samples),
            [&] { return eval_result(evaluate(e), e, true); });
      }
    }

    json curve = json::array();
    for (int t : t_axis(m)) {
      json point;
      if (m.main && same_as_main(t)) {
        point = entry["software"];
      } else {
        const EvalOptions e = eval_options(m, Backend::engine, t, o.curve_test_count);
        point = stages.run(fmt::format("curve-{}-T{}", m.name, t), eval_key(m, e),
                           fmt::format("evaluate {} in software at T = {}", m.name, t),
                           [&] { return eval_result(evaluate(e), e, false); });
      }
      point.erase("reliability");
      point.erase("entropy_histograms");
      curve.push_back(point);
    }
    entry["t_axis"] = curve;

    if (m.main) {
      const SweepOptions s = sweep_options(m);
      entry["variation"] = stages.run(
          "sweep-" + m.name, sweep_key(m, s),
          fmt::format("{} of {} on {} chips per value", o.sweep_param, m.name, o.sweep_chips),
          [&] { return sweep_result(run_sweep(s, !o.quiet), s); });
    }

    entry["cost"] = stages.run(
        "cost-" + m.name, cost_key(m), fmt::format("price {} under every dropout scheme", m.name), [&] {
          const fs::path ir = ensure_model_ir(m.dir);
          auto priced = [&](int t) {
            CostOptions c;
            c.model_ir = ir;
            c.samples = t;
            return run_cost(c);
          };
          const DropoutKind own = m.train.spec.dropout;
          json along_t = json::array();
          for (int t : cost_ts) {
            const CostReport r = priced(t);
            along_t.push_back({{"samples", t}, {"scheme", to_string(own)},
                               {"energy_pj", energy_json(r.scheme(own).total.energy)},
                               {"latency_ns", r.scheme(own).total.latency_ns},
                               {"command", cost_command(m, t)}});
          }
          return json{{"report", cost_json(priced(o.samples))}, {"scheme", to_string(own)},
                      {"energy_vs_t", along_t}, {"command", cost_command(m, o.samples)}};
        });
    model_results.push_back(entry);
  }

  json settings = {{"quick", o.quick},
                   {"architecture", o.architecture},
                   {"width", models.front().train.spec.effective_width()},
                   {"epochs", o.epochs},
                   {"batch", o.batch},
                   {"lr", o.lr},
                   {"train_subset", o.train_subset},
                   {"validation", o.validation},
                   {"seed", o.seed},
                   {"p", o.p},
                   {"extra_p", o.extra_p},
                   {"samples", o.samples},
                   {"t_values", o.t_values},
                   {"test_count", o.test_count},
                   {"chip_test_count", o.chip_test_count},
                   {"curve_test_count", o.curve_test_count},
                   {"ood_count", o.ood_count},
                   {"ood", o.ood},
                   {"eval_seed", o.eval_seed},
                   {"chip_seed", o.chip_seed},
                   {"hardware", "default"},
                   {"sweep", {{"param", o.sweep_param}, {"values", o.sweep_values}, {"chips", o.sweep_chips},
                              {"samples", o.sweep_samples}, {"test_count", o.sweep_test_count}}}};

  ExperimentResult result;
  result.results = {{"format", "spinbayes-experiment"}, {"version", 1}, {"settings", settings},
                    {"models", model_results}};

  // Figures and the report are drawn from the results alone (the energy chart is `spinbayes
  // cost --plot` of the spatial model).
  const Model& spatial = models[2];
  {
    CostOptions c;
    c.model_ir = ensure_model_ir(spatial.dir);
    c.samples = o.samples;
    write_cost_plot(run_cost(c), o.out / "figures" / "energy.png");
  }
  result.results["figures"] = write_experiment_figures(result.results, o.out / "figures");
  result.results["figures"]["energy"] = {
      {"file", "figures/energy.png"},
      {"command", std::vector<std::string>{"cost", "--model", spatial.dir.string(), "--samples",
                                           std::to_string(o.samples), "--plot", "energy.png"}}};

  result.reused_models = reused;
  result.stages_run = stages.stages_run();
  result.stages_cached = stages.stages_cached();
  result.seconds = seconds_since(start);
  result.results["run"] = {{"command", o.command},
                           {"machine", {{"cpu", machine_cpu()}, {"cores", std::thread::hardware_concurrency()}}},
                           {"date", utc_now()},
                           {"seconds", result.seconds},
                           {"reused_models", reused},
                           {"stages_run", result.stages_run},
                           {"stages_cached", result.stages_cached}};
  write_file_atomic(o.out / "results.json", result.results.dump(1) + "\n");
  write_file_atomic(o.out / "report.md", experiment_report_markdown(result.results));
  return result;
}

}  // namespace spinbayes
