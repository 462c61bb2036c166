#include "eval/sweep.h"

#include <algorithm>
#include <cstdio>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/plot.h"
#include "hw/hardware_config.h"

namespace spinbayes {

SweepReport run_sweep(const SweepOptions& o, bool progress) {
  HardwareConfig probe = HardwareConfig::load(o.eval.hardware);
  const ConfigTable table = probe.table();
  const std::string* unit = table.number_unit(o.param);
  if (unit == nullptr) {
    std::string keys;
    for (const auto& k : table.number_keys()) keys += (keys.empty() ? "" : ", ") + k;
    throw Error("--param: '" + o.param + "' is not a numeric hardware parameter (known: " + keys + ")");
  }
  if (o.values.empty()) throw Error("--values: give at least one value");
  if (o.chips < 1 || o.chips > 1000) throw Error("--chips: must be in 1..1000");
  // Every value is checked against the parameter's range before anything runs.
  for (double v : o.values) {
    HardwareConfig hw = probe;
    hw.table().apply(nlohmann::json{{o.param, v}}, "--values");
    hw.validate("--values");  // the rules across keys too (tile_rows a multiple of 64)
    const std::string coarse = hw.coarse_adc();
    if (progress && !coarse.empty()) std::fprintf(stderr, "spinbayes: warning: --values %g: %s\n", v, coarse.c_str());
  }

  SweepReport r;
  r.param = o.param;
  r.unit = *unit;
  r.ood = o.eval.ood;
  EvalOptions software = o.eval;
  software.backend = Backend::engine;
  r.software = evaluate(software);
  const int total = static_cast<int>(o.values.size()) * o.chips;
  int done = 0;
  for (double v : o.values) {
    for (int chip = 1; chip <= o.chips; ++chip) {
      EvalOptions e = o.eval;
      e.backend = Backend::cim;
      e.chip_seed = static_cast<std::uint64_t>(chip);
      e.hardware_overrides.emplace_back(o.param, v);
      const EvalReport report = evaluate(e);
      SweepPoint p;
      p.value = v;
      p.chip = e.chip_seed;
      p.accuracy = report.accuracy;
      p.ece = report.ece;
      p.nll = report.nll;
      for (const auto& ood : report.ood) p.auroc.push_back(ood.auroc);
      r.points.push_back(p);
      if (progress) {
        std::fprintf(stderr, "sweep %s = %g, chip %d: accuracy %.2f %%, ECE %.4f  [%d/%d, %.1f s]\n",
                     o.param.c_str(), v, chip, 100.0 * p.accuracy, p.ece, ++done, total, report.seconds);
      }
    }
  }
  return r;
}

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
  std::string data = "# value, then mean min max of: accuracy (%), ECE, NLL, AUROC per OOD set\n";
  for (double v : values) {
    data += fmt::format("{:.6g}", v);
    for (std::size_t k = 0; k < 3 + sets; ++k) {
      double sum = 0, lo = 1e300, hi = -1e300;
      int n = 0;
      for (const auto& p : r.points) {
        if (p.value != v) continue;
        const double x = metric(p, k);
        sum += x;
        lo = std::min(lo, x);
        hi = std::max(hi, x);
        ++n;
      }
      data += fmt::format(" {:.6g} {:.6g} {:.6g}", sum / n, lo, hi);
    }
    data += "\n";
  }
  const int chips = values.empty() ? 0 : static_cast<int>(r.points.size() / values.size());
  const std::string xlabel = gnuplot_escaped(r.param + (r.unit.empty() ? "" : " (" + r.unit + ")"));
  std::string script = "set terminal pngcairo size 1200,900 font 'sans,10' noenhanced\nset output 'out.png'\n";
  script += fmt::format(
      "set multiplot layout 2,2 title '{}'\n",
      gnuplot_escaped(fmt::format("{} width {}, {} dropout p = {:g}, T = {}: {} simulated chips per value "
                                  "(mean, min-max bars); dashed = software engine",
                                  r.software.spec.architecture, r.software.spec.effective_width(),
                                  to_string(r.software.spec.dropout), r.software.spec.p, r.software.samples, chips)));
  script += "set grid\nset key bottom left\nset offsets graph 0.05, graph 0.05, graph 0.1, graph 0.1\n";
  const char* titles[] = {"accuracy (%)", "ECE (15 bins)", "NLL (nats)"};
  const double software[] = {100.0 * r.software.accuracy, r.software.ece, r.software.nll};
  for (int k = 0; k < 3; ++k) {
    script += fmt::format("set xlabel '{}'\nset ylabel '{}'\n", xlabel, titles[k]);
    script += fmt::format(
        "plot 'sweep.dat' using 1:{}:{}:{} with yerrorlines lw 2 pt 7 title 'chip', {:.6g} with lines dt 2 lw 2 "
        "lc rgb '#555555' title 'software'\n",
        2 + 3 * k, 3 + 3 * k, 4 + 3 * k, software[k]);
  }
  script += fmt::format("set xlabel '{}'\nset ylabel 'OOD AUROC (by {})'\n", xlabel, gnuplot_escaped(r.software.score));
  std::string plot = "plot ";
  for (std::size_t s = 0; s < sets; ++s) {
    const std::size_t c = 2 + 3 * (3 + s);
    plot += fmt::format("'sweep.dat' using 1:{}:{}:{} with yerrorlines lw 2 pt 7 lc {} title '{}', ", c, c + 1,
                        c + 2, s + 1, gnuplot_escaped(r.ood[s]));
    plot += fmt::format("{:.6g} with lines dt 2 lw 1 lc {} notitle, ", r.software.ood[s].auroc, s + 1);
  }
  if (sets == 0) plot += "0.5 with lines title 'no OOD sets', ";
  script += plot.substr(0, plot.size() - 2) + "\nunset multiplot\n";
  return render_plot_png(script, {{"sweep.dat", data}}, "sweep");
}

}  // namespace spinbayes
