// The cost plot: energy per inference by component and scheme, and against T (core/plot.h).
#include <algorithm>

#include <fmt/format.h>

#include "core/atomic_file.h"
#include "core/plot.h"
#include "cost/cost_model.h"

namespace spinbayes {

void write_cost_plot(const CostReport& r, const std::filesystem::path& png) {
  write_file_atomic(png, cost_plot_png(r));
}

std::string cost_plot_png(const CostReport& r) {
  constexpr double uj = 1e-6;  // uJ per pJ

  // The dropout-module part is printed above each bar: on the spatial and layer bars it is too
  // thin to see.
  std::string bars = "# scheme  modules  crossbar  sense_adc  digital  peripherals  total (uJ per inference)  label\n";
  for (const SchemeCost& c : r.schemes) {
    const EnergyBreakdown& e = c.total.energy;
    bars += fmt::format("{} {:.6g} {:.6g} {:.6g} {:.6g} {:.6g} {:.6g} \"modules {:.4g} nJ\"\n", to_string(c.scheme),
                        e.modules_pj * uj, e.crossbar_pj * uj, e.sense_adc_pj * uj, e.digital_pj * uj,
                        e.peripherals_pj * uj, e.total_pj() * uj, e.modules_pj * 1e-3);
  }


  std::string curves = "# T  total: none element spatial layer  dropout modules: element spatial layer (uJ)\n";
  const int t_max = std::max(100, r.samples);
  for (int t = 1; t <= t_max; ++t) {
    curves += fmt::format("{}", t);
    for (const SchemeCost& c : r.schemes) curves += fmt::format(" {:.6g}", c.energy_at(t).total_pj() * uj);
    for (DropoutKind s : {DropoutKind::element, DropoutKind::spatial, DropoutKind::layer}) {
      curves += fmt::format(" {:.6g}", r.scheme(s).energy_at(t).modules_pj * uj);
    }
    curves += "\n";
  }


  const std::string title =
      fmt::format("{} (width {}), dropout sites {}, p = {:g}; hw {}, tech {}", r.spec.architecture,
                  r.spec.effective_width(), r.spec.dropout_layers, r.p, r.hw_source, r.tech_source);
  const std::string bars_file = "'bars.dat'", curves_file = "'curves.dat'";
  std::string script;
  script += "set encoding utf8\n";
  script += "set terminal pngcairo size 1500,680 font 'sans,11'\n";
  script += "set output 'out.png'\n";
  script += "set multiplot layout 1,2 title '" + gnuplot_escaped(title) + "' font 'sans,12'\n";
  script += "set grid ytics\n";
  // Left: stacked energy per inference by component.
  script += fmt::format("set title 'Energy per inference by component (T = {})'\n", r.samples);
  script += "set style data histograms\nset style histogram rowstacked\n";
  script += "set style fill solid 0.85 border -1\nset boxwidth 0.6\n";
  script += "set xlabel 'dropout scheme (layer = one module per layer, a lower bound)'\n";
  script += "set ylabel 'energy per inference (µJ)'\nset yrange [0:*]\nset offsets 0,0,graph 0.08,0\n";
  script += "set key top right\n";
  script += "plot " + bars_file + " using 2:xtic(1) title 'dropout modules' lc rgb '#d62728', " +
            "'' using 3 title 'crossbar (cells + word lines)' lc rgb '#1f77b4', " +
            "'' using 4 title 'sense amplifiers + ADCs' lc rgb '#2ca02c', " +
            "'' using 5 title 'digital' lc rgb '#9467bd', " +
            "'' using 6 title 'peripherals (DACs, decoders, wires)' lc rgb '#ff7f0e', " +
            "'' using 0:7:8 with labels offset 0,0.8 font 'sans,10' notitle\n";
  // Right: energy per inference against T, total and the dropout modules' part.
  script += "set title 'Energy per inference vs Monte Carlo samples'\n";
  script += "set style data lines\nunset xtics\nset xtics\nset yrange [*:*]\n";
  script += "set xlabel 'Monte Carlo samples T'\nset ylabel 'energy per inference (µJ, log scale)'\n";
  script += "set offsets 0,0,0,0\nset logscale y\nset format y '10^{%L}'\n";
  script += "set key inside bottom right maxrows 4 box opaque samplen 3\n";
  script += "plot " + curves_file + " using 1:3 title 'element, total' lw 2 lc rgb '#d62728', " +
            "'' using 1:4 title 'spatial, total' lw 4 lc rgb '#1f77b4', " +
            "'' using 1:5 title 'layer, total' lw 1.5 lc rgb '#2ca02c', " +
            "'' using 1:2 title 'none (one pass), total' lw 2 lc rgb '#7f7f7f', " +
            "'' using 1:6 title 'element, dropout modules' lw 2 dt 2 lc rgb '#d62728', " +
            "'' using 1:7 title 'spatial, dropout modules' lw 2 dt 2 lc rgb '#1f77b4', " +
            "'' using 1:8 title 'layer, dropout modules' lw 2 dt 2 lc rgb '#2ca02c'\n";
  script += "unset multiplot\n";
  return render_plot_png(script, {{"bars.dat", bars}, {"curves.dat", curves}}, "--plot");
}

}  // namespace spinbayes
