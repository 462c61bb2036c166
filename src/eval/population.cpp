#include "eval/population.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <limits>
#include <memory>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "core/atomic_file.h"
#include "core/dir_lock.h"
#include "core/error.h"
#include "core/plot.h"
#include "core/read_file.h"
#include "eval/stage_cache.h"
#include "hw/hardware_config.h"
#include "train/export.h"
#include "train/run.h"

namespace spinbayes {

namespace fs = std::filesystem;
using nlohmann::json;

void ChipsOptions::validate() const {
  eval.validate();
  if (chips < 1 || chips > kMaxChips) throw Error(fmt::format("--chips: must be in 1..{}, got {}", kMaxChips, chips));
  if (first_seed > std::numeric_limits<std::uint64_t>::max() - static_cast<std::uint64_t>(chips - 1)) {
    throw Error("--first-seed: the chips' seeds would pass 18446744073709551615");
  }
  if (stop_after < 0) throw Error("--stop-after: must be >= 0");
  if (out.empty()) throw Error("--out: empty path");
}

std::vector<std::string> population_metrics(const std::vector<std::string>& ood) {
  std::vector<std::string> m = {"accuracy",           "nll",     "ece",
                                "brier",              "nll_uncalibrated", "ece_uncalibrated",
                                "brier_uncalibrated", "entropy", "mutual_information",
                                "ood_threshold"};
  for (const auto& set : ood) {
    for (const char* what : {"auroc", "aupr", "fpr95", "detected_pct"}) m.push_back(std::string(what) + "." + set);
  }
  return m;
}

ChipRecord evaluate_member(const EvalOptions& options, const EvalData& data, const std::string& population,
                           bool software, std::uint64_t chip_seed) {
  EvalOptions o = options;
  o.backend = software ? Backend::engine : Backend::cim;
  o.chip_seed = chip_seed;
  const EvalReport r = evaluate(o, data);
  ChipRecord c;
  c.population = population;
  c.software = software;
  c.chip_seed = software ? 0 : chip_seed;
  c.metrics = {{"accuracy", r.accuracy},
               {"nll", r.nll},
               {"ece", r.ece},
               {"brier", r.brier},
               {"nll_uncalibrated", r.nll_uncalibrated},
               {"ece_uncalibrated", r.ece_uncalibrated},
               {"brier_uncalibrated", r.brier_uncalibrated},
               {"entropy", r.mean_entropy},
               {"mutual_information", r.mean_mutual_information},
               {"ood_threshold", r.threshold}};
  for (const auto& ood : r.ood) {
    c.metrics.emplace_back("auroc." + ood.name, ood.auroc);
    c.metrics.emplace_back("aupr." + ood.name, ood.aupr);
    c.metrics.emplace_back("fpr95." + ood.name, ood.fpr95);
    c.metrics.emplace_back("detected_pct." + ood.name, ood.detected_pct);
  }
  return c;
}

namespace {

// What a metric can be: shares and AUROCs in [0, 1], percentages in [0, 100], the rest >= 0.
std::pair<double, double> metric_range(const std::string& name) {
  const double inf = std::numeric_limits<double>::infinity();
  if (name.rfind("detected_pct.", 0) == 0) return {0.0, 100.0};
  if (name == "accuracy" || name.rfind("ece", 0) == 0 || name.rfind("brier", 0) == 0 || name.rfind("auroc.", 0) == 0 ||
      name.rfind("aupr.", 0) == 0 || name.rfind("fpr95.", 0) == 0) {
    return {0.0, name.rfind("brier", 0) == 0 ? 2.0 : 1.0};
  }
  return {0.0, inf};
}

// What the chips of a population were evaluated with: two runs with the same identity compute the
// same records, so one may finish what the other began.
json population_identity(const EvalOptions& e, const HardwareConfig& hw, const AppliedCalibration& calibration,
                         const fs::path& ir_path) {
  json identity{{"model_ir", file_fingerprint(ir_path)},
              {"hardware_config", fingerprint(HardwareConfig(hw).table().to_commented_json())},
              {"samples", e.samples},
              {"seed", e.seed},
              {"deterministic", e.deterministic},
              {"score", e.score == OodScore::entropy ? "entropy" : "mi"},
              {"test_count", e.test_count},
              {"ood", e.ood},
              {"ood_count", e.ood_count},
              {"validation_count", e.validation_count},
              {"calibration", {{"method", calibration.method}, {"temperature", calibration.temperature}}},
              {"data", {{"fashion_mnist", e.paths.fashion_mnist.string()}, {"digits", e.paths.mnist_digits.string()}}}};
  if (!e.data.empty()) identity["data"]["set"] = data_identity(parse_data_set(e.data), e.paths);
  return identity;
}

class PopulationWork final : public WorkItems {
 public:
  PopulationWork(const ChipsOptions& o, ChipPopulation& p) : o_(o), p_(p) {}

  std::vector<std::size_t> plan() override {
    start_ = std::chrono::steady_clock::now();
    if (o_.checks) o_.checks();
    const EvalOptions& e = o_.eval;
    const TrainOptions run = load_run_config(e.model);
    const fs::path ir = ensure_model_ir(e.model);
    const HardwareConfig hw = hardware_in_force(e);
    if (const std::string coarse = hw.coarse_adc(); o_.progress && !coarse.empty()) {
      std::fprintf(stderr, "spinbayes: warning: --hw %s: %s\n", printable(e.hardware).c_str(), coarse.c_str());
    }
    const AppliedCalibration calibration = resolve_calibration(
        e.calibration, e.model, e.calibration_file, ir, e.deterministic || !run.spec.has_dropout());
    identity_ = population_identity(e, hw, calibration, ir).dump();
    population_ = fingerprint(identity_);
    p_.spec = run.spec;
    open_directory();

    records_.assign(static_cast<std::size_t>(o_.chips) + 1, std::nullopt);
    std::vector<std::size_t> todo;
    for (std::size_t i = 0; i < records_.size(); ++i) {
      const fs::path file = record_path(i);
      std::error_code ec;
      if (!fs::exists(fs::symlink_status(file, ec))) {
        todo.push_back(i);
        continue;
      }
      records_[i] = checked(read_file_bytes(file, 1 << 20), i);
    }
    p_.computed = 0;
    return todo;
  }

  void prepare() override { data_ = std::make_unique<EvalData>(load_eval_data(o_.eval)); }

  // On any rank: the record without its population's fingerprint, which rank 0 alone knows.
  std::string compute(std::size_t item) override {
    return chip_record_json(evaluate_member(o_.eval, *data_, "", item == 0, seed_of(item)));
  }

  bool store(std::size_t item, const std::string& result) override {
    ChipRecord record = parse_chip_record(result, record_path(item).string());
    record.population = population_;
    const std::string bytes = chip_record_json(record);
    records_[item] = checked(bytes, item);
    if (manifest_pending_) {
      write_file_atomic(o_.out / "population.json", population_manifest_json(identity_));
      manifest_pending_ = false;
    }
    write_file_atomic(record_path(item), bytes);
    if (item == 0) return true;
    ++p_.computed;
    if (o_.progress) {
      const double* accuracy = records_[item]->metric("accuracy");
      const double* ece = records_[item]->metric("ece");
      std::fprintf(stderr, "chip %llu: accuracy %.2f %%, ECE %.4f  [%d new, %.1f s]\n",
                   static_cast<unsigned long long>(seed_of(item)), 100.0 * *accuracy, *ece, p_.computed,
                   std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count());
    }
    return o_.stop_after == 0 || p_.computed < o_.stop_after;
  }

  const std::vector<std::optional<ChipRecord>>& records() const { return records_; }

 private:
  std::uint64_t seed_of(std::size_t item) const { return o_.first_seed + (item - 1); }

  fs::path record_path(std::size_t item) const {
    return o_.out / "chips" / (item == 0 ? std::string("software.json") : fmt::format("chip-{}.json", seed_of(item)));
  }

  // A record as stored: of this population, of this member.
  ChipRecord checked(const std::string& bytes, std::size_t item) const {
    const fs::path file = record_path(item);
    ChipRecord r = parse_chip_record(bytes, file.string());
    if (r.population != population_) {
      throw Error(file.string() + ": a chip of another population (" + printable(r.population, true) + ", not " +
                  population_ + "); remove it or give another --out");
    }
    if (r.software != (item == 0) || (item > 0 && r.chip_seed != seed_of(item))) {
      throw Error(file.string() + ": holds the record of another chip");
    }
    const std::vector<std::string> names = population_metrics(o_.eval.ood);
    for (const auto& name : names) {
      const double* value = r.metric(name);
      if (value == nullptr) throw Error(file.string() + ": metrics: '" + name + "' missing");
      const auto [lo, hi] = metric_range(name);
      if (*value < lo || *value > hi) {
        throw Error(fmt::format("{}: metrics.{} = {} is outside [{}, {}]", file.string(), name, *value, lo, hi));
      }
    }
    if (r.metrics.size() != names.size()) throw Error(file.string() + ": metrics: holds metrics this population has not");
    return r;
  }

  // DIR: new, empty, or a population of this identity; locked for the run.
  void open_directory() {
    const fs::path& dir = o_.out;
    const fs::path manifest = dir / "population.json";
    std::error_code ec;
    const auto status = fs::symlink_status(dir, ec);
    if (fs::exists(status) && !fs::is_directory(fs::status(dir, ec))) {
      throw Error("--out: " + dir.string() + ": not a directory");
    }
    // The outputs are this population's own files: never a link to somewhere else.
    for (const char* name : {"chips.csv", "chips.json", "chips.png", "population.json"}) {
      if (fs::is_symlink(fs::symlink_status(dir / name, ec))) {
        throw Error("--out: " + (dir / name).string() + ": is a symbolic link; a population writes only its own files");
      }
    }
    if (fs::exists(status) && !fs::exists(fs::symlink_status(manifest, ec))) {
      for (const auto& entry : fs::directory_iterator(dir)) {
        const std::string name = entry.path().filename().string();
        if (name != DirectoryLock::kFileName && name != "chips") {
          throw Error("--out: " + dir.string() + " is not empty and holds no chip population (population.json); "
                      "give a new or empty directory");
        }
      }
    }
    lock_ = std::make_unique<DirectoryLock>(dir, "--out", "chip population");
    if (fs::exists(fs::symlink_status(manifest, ec))) {
      if (const std::string difference = manifest_difference(manifest, identity_); !difference.empty()) {
        throw Error("--out: " + dir.string() + " holds the chips of another model or configuration (" + difference +
                    "); give another --out, or remove it");
      }
    } else {
      make_directory(dir / "chips");
      for (const auto& entry : fs::directory_iterator(dir / "chips")) {
        if (entry.path().filename().string().find(".tmp.") == std::string::npos) {
          throw Error("--out: " + (dir / "chips").string() + " holds files but " + manifest.string() +
                      " is missing; remove it or give another --out");
        }
      }
      // Written with the first record, so that a run failing before any (a missing OOD file)
      // leaves no configuration behind to refuse the corrected one.
      manifest_pending_ = true;
    }
    make_directory(dir / "chips");
  }

  static void make_directory(const fs::path& dir) {
    std::error_code ec;
    fs::create_directories(dir, ec);
    if (ec || !fs::is_directory(dir)) {
      throw Error("--out: " + dir.string() + ": " + (ec ? ec.message() : std::string("not a directory")));
    }
  }

  const ChipsOptions& o_;
  ChipPopulation& p_;
  std::chrono::steady_clock::time_point start_;
  std::string identity_, population_;
  std::unique_ptr<DirectoryLock> lock_;
  bool manifest_pending_ = false;
  std::unique_ptr<EvalData> data_;
  std::vector<std::optional<ChipRecord>> records_;  // 0: software, i: chip first_seed + i - 1
};

}  // namespace

ChipPopulation run_chips(const ChipsOptions& o, const Ranks& ranks) {
  o.validate();
  if (ranks.size() > o.chips) {
    throw Error(fmt::format("mpirun: {} ranks for {} chips: give at least as many chips as ranks", ranks.size(), o.chips));
  }
  ChipPopulation p;
  p.metrics = population_metrics(o.eval.ood);
  if (!o.spec.empty()) p.spec_required = parse_yield_spec(o.spec, p.metrics);
  PopulationWork work(o, p);
  p.distribution = distribute(ranks, work);
  if (!ranks.root()) return ChipPopulation{};

  p.model_dir = o.eval.model.string();
  p.hardware = o.eval.hardware;
  p.samples = o.eval.deterministic || !p.spec.has_dropout() ? 1 : o.eval.samples;
  p.ood = o.eval.ood;
  p.first_seed = o.first_seed;
  const auto& records = work.records();
  p.complete = std::all_of(records.begin(), records.end(), [](const auto& r) { return r.has_value(); });
  if (!p.complete) return p;
  p.software = *records[0];
  for (std::size_t i = 1; i < records.size(); ++i) p.chips.push_back(*records[i]);
  for (const auto& name : p.metrics) {
    std::vector<double> values;
    for (const auto& c : p.chips) values.push_back(*c.metric(name));
    p.summaries.push_back(summarize_metric(std::move(values)));
  }
  if (p.spec_required) {
    for (const auto& c : p.chips) {
      const bool met = std::all_of(p.spec_required->requirements.begin(), p.spec_required->requirements.end(),
                                   [&](const Requirement& r) { return r.met_by(*c.metric(r.metric)); });
      p.passed += met ? 1 : 0;
    }
    p.yield_ci = clopper_pearson(p.passed, static_cast<std::int64_t>(p.chips.size()));
  }
  return p;
}

std::string chips_csv(const ChipPopulation& p) {
  std::string out = "chip";
  for (const auto& m : p.metrics) out += "," + m;
  out += "\n";
  const auto row = [&](const std::string& name, const ChipRecord& r) {
    out += name;
    for (const auto& m : p.metrics) out += fmt::format(",{:.9g}", *r.metric(m));
    out += "\n";
  };
  row("software", p.software);
  for (const auto& c : p.chips) row(std::to_string(c.chip_seed), c);
  return out;
}

json chips_json(const ChipPopulation& p) {
  const auto metrics_of = [&](const ChipRecord& r) {
    json j = json::object();
    for (const auto& m : p.metrics) j[m] = *r.metric(m);
    return j;
  };
  json chips = json::array();
  for (const auto& c : p.chips) {
    json row = metrics_of(c);
    row["chip"] = c.chip_seed;
    chips.push_back(std::move(row));
  }
  json summary = json::object();
  for (std::size_t k = 0; k < p.metrics.size(); ++k) {
    const MetricSummary& s = p.summaries[k];
    summary[p.metrics[k]] = {{"mean", s.mean}, {"sd", s.sd}, {"min", s.min}, {"p5", s.p5},
                             {"p50", s.p50},   {"p95", s.p95}, {"max", s.max}};
  }
  json j = {{"model_dir", p.model_dir}, {"model", p.spec},           {"hardware", p.hardware},
            {"samples", p.samples},     {"ood", p.ood},              {"first_seed", p.first_seed},
            {"chips", chips},           {"software", metrics_of(p.software)}, {"summary", summary}};
  if (p.spec_required) {
    j["yield"] = {{"spec", p.spec_required->text()},
                  {"passed", p.passed},
                  {"chips", p.chips.size()},
                  {"fraction", static_cast<double>(p.passed) / static_cast<double>(p.chips.size())},
                  {"ci_low", p.yield_ci.low},
                  {"ci_high", p.yield_ci.high},
                  {"confidence", 0.95},
                  {"interval", "Clopper-Pearson (exact binomial)"}};
  }
  return j;
}

std::string chips_table(const ChipPopulation& p) {
  std::string out = fmt::format("{}, {} dropout p = {:g}, T = {}: {} simulated chips (seeds {}..{}) of hardware '{}'\n",
                                network_description(p.spec), to_string(p.spec.dropout), p.spec.p,
                                p.samples, p.chips.size(), p.first_seed, p.first_seed + p.chips.size() - 1, p.hardware);
  out += fmt::format("  {:<24} {:>10} {:>10} {:>10} {:>10} {:>10} {:>10}\n", "metric", "software", "mean", "sd", "p5",
                     "p50", "p95");
  for (std::size_t k = 0; k < p.metrics.size(); ++k) {
    const std::string& m = p.metrics[k];
    if (m.rfind("aupr.", 0) == 0 || m.rfind("fpr95.", 0) == 0 || m == "ood_threshold") continue;  // in the files
    const MetricSummary& s = p.summaries[k];
    const std::string name = m.size() > 24 ? m.substr(0, 21) + "..." : m;
    out += fmt::format("  {:<24} {:>10.4f} {:>10.4f} {:>10.4f} {:>10.4f} {:>10.4f} {:>10.4f}\n", name,
                       *p.software.metric(m), s.mean, s.sd, s.p5, s.p50, s.p95);
  }
  if (p.spec_required) {
    const double n = static_cast<double>(p.chips.size());
    out += fmt::format("yield     {} of {} chips meet {}: {:.1f} % (95 % interval {:.1f}-{:.1f} %, Clopper-Pearson)\n",
                       p.passed, p.chips.size(), p.spec_required->text(), 100.0 * static_cast<double>(p.passed) / n,
                       100.0 * p.yield_ci.low, 100.0 * p.yield_ci.high);
  }
  return out;
}

std::string chips_plot_png(const ChipPopulation& p) {
  struct Panel {
    std::string title;
    std::vector<std::string> metrics;  // one ECDF each
    double scale = 1.0;
  };
  std::vector<Panel> panels = {{"accuracy (%)", {"accuracy"}, 100.0}, {"ECE (15 bins)", {"ece"}, 1.0},
                               {"NLL (nats)", {"nll"}, 1.0}, {"OOD AUROC", {}, 1.0}};
  for (const auto& set : p.ood) panels[3].metrics.push_back("auroc." + set);
  if (p.ood.empty()) panels.pop_back();

  std::vector<std::pair<std::string, std::string>> files;
  std::string script = "set terminal pngcairo size 1200,900 font 'sans,10' noenhanced\nset output 'out.png'\n";
  std::string title = fmt::format("{}, {} p = {:g}, T = {}: {} chips of '{}'", network_description(p.spec),
                                  to_string(p.spec.dropout), p.spec.p, p.samples,
                                  p.chips.size(), p.hardware);
  if (p.spec_required) title += fmt::format(", yield {} of {} (dotted: the spec's bounds)", p.passed, p.chips.size());
  title += "; dashed: software";
  script += fmt::format("set multiplot layout 2,2 title '{}'\n", gnuplot_escaped(title));
  script += "set grid\nset key bottom right\nset ylabel 'share of chips'\nset yrange [0:1.05]\n";
  int file_index = 0;
  for (const Panel& panel : panels) {
    script += fmt::format("set xlabel '{}'\nunset arrow\n", gnuplot_escaped(panel.title));
    std::string plot = "plot ";
    int colour = 1;
    for (const auto& m : panel.metrics) {
      std::vector<double> values;
      for (const auto& c : p.chips) values.push_back(panel.scale * *c.metric(m));
      std::sort(values.begin(), values.end());
      std::string data = "# value, share of chips at or below\n";
      for (std::size_t i = 0; i < values.size(); ++i) {
        data += fmt::format("{:.9g} {:.9g}\n", values[i], static_cast<double>(i + 1) / static_cast<double>(values.size()));
      }
      const std::string file = fmt::format("m{}.dat", file_index++);
      files.emplace_back(file, data);
      const std::string label = m.rfind("auroc.", 0) == 0 ? m.substr(6) : "chips";
      plot += fmt::format("'{}' using 1:2 with steps lw 2 lc {} title '{}', ", file, colour, gnuplot_escaped(label));
      script += fmt::format("set arrow from {:.9g}, graph 0 to {:.9g}, graph 1 nohead dt 2 lw 2 lc {}\n",
                            panel.scale * *p.software.metric(m), panel.scale * *p.software.metric(m), colour);
      if (p.spec_required) {
        for (const auto& r : p.spec_required->requirements) {
          if (r.metric != m || !std::isfinite(panel.scale * r.bound)) continue;
          script += fmt::format("set arrow from {:.9g}, graph 0 to {:.9g}, graph 1 nohead dt 3 lw 2 lc rgb '#cc0000'\n",
                                panel.scale * r.bound, panel.scale * r.bound);
        }
      }
      ++colour;
    }
    script += plot.substr(0, plot.size() - 2) + "\n";
  }
  script += "unset multiplot\n";
  return render_plot_png(script, files, "chips.png");
}

std::string distribution_table(const Distribution& d) {
  std::string out;
  double end = 0;
  for (const auto& r : d.ranks) end = std::max(end, r.finished_at);
  for (std::size_t i = 0; i < d.ranks.size(); ++i) {
    const RankActivity& r = d.ranks[i];
    const double idle = end - r.finished_at;
    out += fmt::format("rank {}: {} items, {:.1f} s busy, done {:.1f} s before the last ({:.1f} % of the run)\n", i,
                       r.items, r.busy_seconds, idle, end > 0 ? 100.0 * idle / end : 0.0);
  }
  return out;
}

}  // namespace spinbayes
