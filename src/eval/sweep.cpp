#include "eval/sweep.h"

#include <algorithm>
#include <chrono>
#include <memory>
#include <cstdio>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/plot.h"
#include "eval/population.h"
#include "hw/hardware_config.h"
#include "population/chip_record.h"

namespace spinbayes {

namespace {

class SweepWork final : public WorkItems {
 public:
  SweepWork(const SweepOptions& o, SweepReport& r, bool progress) : o_(o), r_(r), progress_(progress) {}

  std::vector<std::size_t> plan() override {
    if (o_.checks) o_.checks();
    HardwareConfig probe = HardwareConfig::load(o_.eval.hardware);
    const ConfigTable table = probe.table();
    const std::string* unit = table.number_unit(o_.param);
    if (unit == nullptr) {
      std::string keys;
      for (const auto& k : table.number_keys()) keys += (keys.empty() ? "" : ", ") + k;
      throw Error("--param: '" + o_.param + "' is not a numeric hardware parameter (known: " + keys + ")");
    }
    // Every value is checked against the parameter's range before anything runs.
    for (double v : o_.values) {
      HardwareConfig hw = probe;
      hw.table().apply(nlohmann::json{{o_.param, v}}, "--values");
      hw.validate("--values");  // the rules across keys too (tile_rows a multiple of 64)
      const std::string coarse = hw.coarse_adc();
      if (progress_ && !coarse.empty()) std::fprintf(stderr, "spinbayes: warning: --values %g: %s\n", v, coarse.c_str());
    }
    r_.param = o_.param;
    r_.unit = *unit;
    r_.ood = o_.eval.ood;
    prepare();
    EvalOptions software = o_.eval;
    software.backend = Backend::engine;
    r_.software = evaluate(software, *data_);
    r_.points.assign(o_.values.size() * static_cast<std::size_t>(o_.chips), SweepPoint{});
    std::vector<std::size_t> items(r_.points.size());
    for (std::size_t i = 0; i < items.size(); ++i) items[i] = i;
    start_ = std::chrono::steady_clock::now();
    return items;
  }

  void prepare() override {
    if (data_ == nullptr) data_ = std::make_unique<EvalData>(load_eval_data(o_.eval));
  }

  std::string compute(std::size_t item) override {
    EvalOptions e = o_.eval;
    e.hardware_overrides.emplace_back(o_.param, value_of(item));
    return chip_record_json(evaluate_member(e, *data_, "sweep", false, chip_of(item)));
  }

  bool store(std::size_t item, const std::string& result) override {
    const ChipRecord c = parse_chip_record(result, "sweep point");
    SweepPoint& p = r_.points[item];
    p.value = value_of(item);
    p.chip = chip_of(item);
    p.accuracy = *c.metric("accuracy");
    p.ece = *c.metric("ece");
    p.nll = *c.metric("nll");
    for (const auto& set : o_.eval.ood) p.auroc.push_back(*c.metric("auroc." + set));
    if (progress_) {
      std::fprintf(stderr, "sweep %s = %g, chip %llu: accuracy %.2f %%, ECE %.4f  [%d/%zu, %.1f s]\n", o_.param.c_str(),
                   p.value, static_cast<unsigned long long>(p.chip), 100.0 * p.accuracy, p.ece, ++done_,
                   r_.points.size(), std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count());
    }
    return true;
  }

 private:
  double value_of(std::size_t item) const { return o_.values[item / static_cast<std::size_t>(o_.chips)]; }
  std::uint64_t chip_of(std::size_t item) const { return item % static_cast<std::size_t>(o_.chips) + 1; }

  const SweepOptions& o_;
  SweepReport& r_;
  bool progress_;
  std::unique_ptr<EvalData> data_;
  std::chrono::steady_clock::time_point start_;
  int done_ = 0;
};

}  // namespace

SweepReport run_sweep(const SweepOptions& o, const Ranks& ranks, bool progress) {
  if (o.values.empty()) throw Error("--values: give at least one value");
  if (o.chips < 1 || o.chips > kMaxChips) throw Error(fmt::format("--chips: must be in 1..{}", kMaxChips));
  o.eval.validate();
  SweepReport r;
  SweepWork work(o, r, progress);
  distribute(ranks, work);
  return ranks.root() ? r : SweepReport{};
}

SweepReport run_sweep(const SweepOptions& o, bool progress) { return run_sweep(o, Ranks(), progress); }

std::string sweep_csv(const SweepReport& r) {
  std::string out = "param,value,chip,accuracy,ece,nll";
  for (const auto& name : r.ood) out += ",auroc_" + name;
  out += "\n";
  auto row = [&](const std::string& value, const std::string& chip, double acc, double ece, double nll,
                 const std::vector<double>& auroc) {
    out += fmt::format("{},{},{},{:.6f},{:.6f},{:.6f}", r.param, value, chip, acc, ece, nll);
    for (double a : auroc) out += fmt::format(",{:.6f}", a);
    out += "\n";
  };
  std::vector<double> software_auroc;
  for (const auto& o : r.software.ood) software_auroc.push_back(o.auroc);
  row("software", "engine", r.software.accuracy, r.software.ece, r.software.nll, software_auroc);
  for (const auto& p : r.points) row(fmt::format("{:g}", p.value), std::to_string(p.chip), p.accuracy, p.ece, p.nll, p.auroc);
  return out;
}

std::string sweep_plot_png(const SweepReport& r) {
  // One line per value: value, then mean / min / max of each metric over the chips.
  std::vector<double> values;
  for (const auto& p : r.points) {
    if (std::find(values.begin(), values.end(), p.value) == values.end()) values.push_back(p.value);
  }
  const std::size_t sets = r.ood.size();
  auto metric = [&](const SweepPoint& p, std::size_t k) {
    switch (k) {
      case 0: return 100.0 * p.accuracy;
      case 1: return p.ece;
      case 2: return p.nll;
      default: return p.auroc[k - 3];
    }
  };
  std::string data = "# value, then the median, 5th and 95th percentile over the chips of: accuracy (%), ECE, NLL, "
                     "AUROC per OOD set\n";
  for (double v : values) {
    data += fmt::format("{:.6g}", v);
    for (std::size_t k = 0; k < 3 + sets; ++k) {
      std::vector<double> chips;
      for (const auto& p : r.points) {
        if (p.value == v) chips.push_back(metric(p, k));
      }
      const MetricSummary s = summarize_metric(std::move(chips));
      data += fmt::format(" {:.6g} {:.6g} {:.6g}", s.p50, s.p5, s.p95);
    }
    data += "\n";
  }
  const int chips = values.empty() ? 0 : static_cast<int>(r.points.size() / values.size());
  const std::string xlabel = gnuplot_escaped(r.param + (r.unit.empty() ? "" : " (" + r.unit + ")"));
  std::string script = "set terminal pngcairo size 1200,900 font 'sans,10' noenhanced\nset output 'out.png'\n";
  script += fmt::format(
      "set multiplot layout 2,2 title '{}'\n",
      gnuplot_escaped(fmt::format("{}, {} dropout p = {:g}, T = {}: {} simulated chips per value "
                                  "(median, 5th-95th percentile band); dashed = software engine",
                                  network_description(r.software.spec),
                                  to_string(r.software.spec.dropout), r.software.spec.p, r.software.samples, chips)));
  script += "set grid\nset key bottom left\nset offsets graph 0.05, graph 0.05, graph 0.1, graph 0.1\n";
  const char* titles[] = {"accuracy (%)", "ECE (15 bins)", "NLL (nats)"};
  const double software[] = {100.0 * r.software.accuracy, r.software.ece, r.software.nll};
  for (int k = 0; k < 3; ++k) {
    script += fmt::format("set xlabel '{}'\nset ylabel '{}'\n", xlabel, titles[k]);
    script += fmt::format(
        "plot 'sweep.dat' using 1:{}:{} with filledcurves fs transparent solid 0.25 lc 1 title 'chips, 5-95 %', "
        "'sweep.dat' using 1:{} with linespoints lw 2 pt 7 lc 1 title 'chips, median', {:.6g} with lines dt 2 lw 2 "
        "lc rgb '#555555' title 'software'\n",
        3 + 3 * k, 4 + 3 * k, 2 + 3 * k, software[k]);
  }
  script += fmt::format("set xlabel '{}'\nset ylabel 'OOD AUROC (by {})'\n", xlabel, gnuplot_escaped(r.software.score));
  std::string plot = "plot ";
  for (std::size_t s = 0; s < sets; ++s) {
    const std::size_t c = 2 + 3 * (3 + s);
    plot += fmt::format("'sweep.dat' using 1:{}:{} with filledcurves fs transparent solid 0.2 lc {} notitle, ", c + 1,
                        c + 2, s + 1);
    plot += fmt::format("'sweep.dat' using 1:{} with linespoints lw 2 pt 7 lc {} title '{}', ", c, s + 1,
                        gnuplot_escaped(r.ood[s]));
    plot += fmt::format("{:.6g} with lines dt 2 lw 1 lc {} notitle, ", r.software.ood[s].auroc, s + 1);
  }
  if (sets == 0) plot += "0.5 with lines title 'no OOD sets', ";
  script += plot.substr(0, plot.size() - 2) + "\nunset multiplot\n";
  return render_plot_png(script, {{"sweep.dat", data}}, "sweep");
}

}  // namespace spinbayes
