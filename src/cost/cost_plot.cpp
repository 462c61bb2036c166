// The cost plot: gnuplot (pngcairo) draws from data files and a script written to a private
// temporary directory; the PNG is then copied to its destination atomically.
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <sstream>

#include <fmt/format.h>

#include "core/atomic_file.h"
#include "core/error.h"
#include "cost/cost_model.h"

namespace spinbayes {

namespace {

struct TempDir {
  std::filesystem::path path;
  TempDir() {
    const auto base = std::filesystem::temp_directory_path();
    for (int attempt = 0; attempt < 100; ++attempt) {
      path = base / fmt::format("spinbayes-plot-{}-{}", ::getpid(), attempt);
      std::error_code ec;
      if (std::filesystem::create_directory(path, ec)) return;
    }
    throw Error("plot: cannot create a temporary directory in " + base.string());
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
};

void write_text(const std::filesystem::path& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary);
  out << text;
  if (!out) throw Error(path.string() + ": cannot write");
}

std::string read_text(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

// A path inside a gnuplot single-quoted string.
std::string quoted(const std::filesystem::path& path) {
  const std::string s = path.string();
  if (s.find('\'') != std::string::npos) throw Error("plot: temporary path " + s + " contains a quote");
  return "'" + s + "'";
}

// Text inside a gnuplot single-quoted string: a quote is written twice.
std::string escaped(const std::string& text) {
  std::string out;
  for (char c : text) out += c == '\'' ? std::string("''") : std::string(1, c);
  return out;
}

}  // namespace

void write_cost_plot(const CostReport& r, const std::filesystem::path& png) {
  if (std::system("command -v gnuplot >/dev/null 2>&1") != 0) {
    throw Error("--plot: gnuplot not found (install the Debian package gnuplot-nox)");
  }
  TempDir dir;
  constexpr double uj = 1e-6;  // uJ per pJ

  // The dropout-module part is printed above each bar: on the spatial and layer bars it is too
  // thin to see.
  std::string bars = "# scheme  modules  crossbar  sense_adc  digital  total (uJ per inference)  label\n";
  for (const SchemeCost& c : r.schemes) {
    const EnergyBreakdown& e = c.total.energy;
    bars += fmt::format("{} {:.6g} {:.6g} {:.6g} {:.6g} {:.6g} \"modules {:.4g} nJ\"\n", to_string(c.scheme),
                        e.modules_pj * uj, e.crossbar_pj * uj, e.sense_adc_pj * uj, e.digital_pj * uj,
                        e.total_pj() * uj, e.modules_pj * 1e-3);
  }
  write_text(dir.path / "bars.dat", bars);

  std::string curves = "# T  total: none element spatial layer  dropout modules: element spatial layer (uJ)\n";
  const int t_max = std::max(100, r.samples);
  for (int t = 1; t <= t_max; ++t) {
    curves += fmt::format("{}", t);
    for (const SchemeCost& c : r.schemes) curves += fmt::format(" {:.6g}", c.energy_at(t).total_pj() * uj);
    for (DropoutScheme s : {DropoutScheme::element, DropoutScheme::spatial, DropoutScheme::layer}) {
      curves += fmt::format(" {:.6g}", r.scheme(s).energy_at(t).modules_pj * uj);
    }
    curves += "\n";
  }
  write_text(dir.path / "curves.dat", curves);

  const std::string title =
      fmt::format("{} (width {}), dropout sites {}, p = {:g}; hw {}, tech {}", r.spec.architecture,
                  r.spec.effective_width(), r.spec.dropout_layers, r.p, r.hw_source, r.tech_source);
  const auto out = dir.path / "plot.png";
  const auto bars_file = quoted(dir.path / "bars.dat"), curves_file = quoted(dir.path / "curves.dat");
  std::string script;
  script += "set encoding utf8\n";
  script += "set terminal pngcairo size 1500,680 font 'sans,11'\n";
  script += "set output " + quoted(out) + "\n";
  script += "set multiplot layout 1,2 title '" + escaped(title) + "' font 'sans,12'\n";
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
            "'' using 0:6:7 with labels offset 0,0.8 font 'sans,10' notitle\n";
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
  write_text(dir.path / "plot.gp", script);

  const auto errors = dir.path / "gnuplot.err";
  const int rc = std::system(fmt::format("gnuplot {} 2>{}", quoted(dir.path / "plot.gp"), quoted(errors)).c_str());
  if (rc != 0 || !std::filesystem::exists(out)) {
    std::string why = read_text(errors);
    why = why.substr(0, why.find_first_of('\n', why.find_first_not_of(" \n")));
    throw Error("--plot: gnuplot failed" + (why.empty() ? std::string() : ": " + why));
  }
  write_file_atomic(png, read_text(out));
}

}  // namespace spinbayes
