// The experiment's gnuplot figures, from its typed results.
#include <algorithm>
#include <string>
#include <utility>
#include <vector>

#include <fmt/format.h>

#include "core/plot.h"
#include "eval/experiment_report.h"
#include "population/statistics.h"

namespace spinbayes {

namespace {

namespace fs = std::filesystem;
using DataFiles = std::vector<std::pair<std::string, std::string>>;  // gnuplot data: file name, rows

// One colour per model, in the order of the results' models: deterministic, element, spatial, then
// the extra spatial rates.
const char* colour(std::size_t k) {
  static const char* colours[] = {"#555555", "#1f77b4", "#d62728", "#ff7f0e", "#2ca02c", "#9467bd", "#8c564b"};
  return colours[std::min<std::size_t>(k, 6)];
}

std::string gp_string(const std::string& text) { return fmt::format("'{}'", gnuplot_escaped(text)); }

std::string header(int width, int height, const std::string& title, int rows, int cols) {
  return fmt::format(
      "set terminal pngcairo size {},{} font 'sans,11' noenhanced\nset output 'out.png'\n"
      "set multiplot layout {},{} title {} font 'sans,13'\nset grid\n",
      width, height, rows, cols, gp_string(title));
}

// The positions of the three compared models among the results' models (they pick the colours).
std::vector<std::size_t> main_models(const ExperimentResults& results) {
  std::vector<std::size_t> out;
  for (std::size_t k = 0; k < results.models.size(); ++k) {
    if (results.models[k].main) out.push_back(k);
  }
  return out;
}

// A model in a legend: its role, with its rate where the role does not say it.
std::string series_name(const ModelResults& m) {
  if (!m.has_dropout() || !m.main) return m.role;
  return fmt::format("{}, p = {:g}", m.role, m.p);
}

// The title of a model's panel: its role and T.
std::string panel_title(const ModelResults& m) {
  return gp_string(fmt::format("{}, T = {}", m.role, m.software->report.samples));
}

// Ends the multiplot, renders it to `png` and describes the figure for the report.
Figure finish_figure(std::string script, const DataFiles& data, const fs::path& png, const std::string& caption) {
  script += "unset multiplot\n";
  render_plot(script, data, png, "experiment");
  Figure figure;
  figure.file = "figures/" + png.filename().string();
  figure.caption = caption;
  return figure;
}

Figure reliability_figure(const ExperimentResults& results, const fs::path& png) {
  DataFiles data;
  std::string script = header(1650, 560, "Reliability diagrams: accuracy against confidence in 15 bins (the ECE's)", 1, 3);
  script += "set xrange [0:1]\nset yrange [0:1.02]\nset key bottom right\nset size ratio -1\n";
  script += "set xlabel 'confidence: top-class mean softmax probability (fraction)'\n";
  script += "set ylabel 'accuracy in the bin (fraction correct)'\n";
  for (std::size_t k : main_models(results)) {
    const ModelResults& m = results.models[k];
    std::string plot = "plot x with lines dt 2 lw 1 lc rgb '#888888' title 'perfect calibration'";
    for (const bool chip : {false, true}) {
      const Evaluation& e = chip ? *m.chip : *m.software;
      std::string rows = "# confidence accuracy images\n";
      for (const auto& bin : e.distributions->reliability) {
        if (bin.images > 0) rows += fmt::format("{:.6g} {:.6g} {}\n", bin.confidence, bin.accuracy, bin.images);
      }
      const std::string file = fmt::format("rel{}-{}.dat", k, chip ? "chip" : "software");
      data.emplace_back(file, rows);
      plot += fmt::format(", '{}' using 1:2 with linespoints lw 2 pt {} ps 1.2 lc rgb '{}' {} title {}", file,
                          chip ? 6 : 7, colour(k), chip ? "dt 3" : "",
                          gp_string(fmt::format("{} (ECE {:.3f})", chip ? "simulated chip" : "software", e.report.ece)));
    }
    script += fmt::format("set title {}\n", panel_title(m));
    script += plot + "\n";
  }
  return finish_figure(script, data, png,
                       "Reliability diagrams of the three models, software engine (solid) and simulated chip (dotted), "
                       "each at its model's temperature: the accuracy of the test images in each confidence bin "
                       "against their mean confidence. Points under the diagonal are over-confident.");
}

Figure entropy_figure(const ExperimentResults& results, const fs::path& png) {
  DataFiles data;
  std::string script = header(1650, 540, "Predictive entropy: in-distribution test images against OOD sets (software)", 1, 3);
  script += "set key top right\nset xlabel 'predictive entropy H[mean p] (nats; ln 10 = 2.30 is uniform)'\n";
  script += "set ylabel 'share of the set''s images (%)'\nset logscale y\nset yrange [0.1:100]\n";
  std::vector<std::string> sets = {"test"};
  sets.insert(sets.end(), results.settings.ood.begin(), results.settings.ood.end());
  for (std::size_t k : main_models(results)) {
    const ModelResults& m = results.models[k];
    const auto& histograms = m.software->distributions->entropy_histograms;
    const double top = histograms.at("test").max_nats;
    const std::size_t bins = histograms.at("test").percent.size();
    std::string rows = "# entropy bin centre, then % of images per set:";
    for (const auto& s : sets) rows += " " + s;
    rows += "\n";
    for (std::size_t b = 0; b < bins; ++b) {
      rows += fmt::format("{:.6g}", (b + 0.5) * top / static_cast<double>(bins));
      // Empty bins are drawn at the bottom of the log axis.
      for (const auto& s : sets) rows += fmt::format(" {:.6g}", std::max(0.1, histograms.at(s).percent.at(b)));
      rows += "\n";
    }
    const std::string file = fmt::format("entropy{}.dat", k);
    data.emplace_back(file, rows);
    std::string plot = "plot ";
    for (std::size_t s = 0; s < sets.size(); ++s) {
      const bool in = s == 0;
      plot += fmt::format("{}'{}' using 1:{} with histeps lw {} lc {} title {}", s == 0 ? "" : ", ", file, s + 2,
                          in ? 3 : 2, in ? "rgb '#000000'" : std::to_string(s), gp_string(in ? "test (in-distribution)" : sets[s]));
    }
    script += fmt::format("set title {}\n", panel_title(m));
    script += plot + "\n";
  }
  return finish_figure(script, data, png,
                       "Histograms of the predictive entropy, software engine: test images against each OOD set "
                      "(log scale; the higher an OOD set's mass at high entropy, the better it is detected).");
}

// A point of the T axis in one of the panels: accuracy (%), NLL or AUROC against `ood`.
double t_axis_value(const EvalSummary& r, int panel, const std::string& ood) {
  return panel == 0 ? 100.0 * r.accuracy : panel == 1 ? r.nll : r.auroc(ood);
}

Figure t_axis_figure(const ExperimentResults& results, const fs::path& png) {
  const std::string& ood = results.settings.ood.front();
  const int images = results.settings.curve_test_count;
  DataFiles data;
  std::string script = header(1700, 620,
                              fmt::format("Software (engine) against the number of Monte Carlo samples T ({} test images)",
                                          test_images_text(images)),
                              1, 3);
  script += "set logscale x 2\nset xlabel 'Monte Carlo samples T (log scale)'\nset key outside bottom center horizontal maxrows 2\n";
  script += "set offsets graph 0.02, graph 0.02, graph 0.08, graph 0.08\n";
  int t_max = 1;
  for (const auto& m : results.models) {
    for (const auto& point : m.t_axis) t_max = std::max(t_max, point.report.samples);
  }
  script += fmt::format("set xrange [0.8:{}]\n", t_max * 1.25);
  for (std::size_t k = 0; k < results.models.size(); ++k) {
    std::string rows = "# T accuracy(%) nll auroc\n";
    for (const auto& point : results.models[k].t_axis) {
      const EvalSummary& r = point.report;
      rows += fmt::format("{} {:.6g} {:.6g} {:.6g}\n", r.samples, 100.0 * r.accuracy, r.nll, r.auroc(ood));
    }
    data.emplace_back(fmt::format("t{}.dat", k), rows);
  }
  const std::string score = results.model(ModelRole::deterministic).software->report.score;
  const std::string ylabels[] = {"accuracy (%)", "NLL (nats per image)", fmt::format("AUROC against {} (by {})", ood, score)};
  const char* titles[] = {"accuracy", "negative log-likelihood", "OOD detection"};
  for (int panel = 0; panel < 3; ++panel) {
    script += fmt::format("set ylabel {}\nset title {}\n", gp_string(ylabels[panel]), gp_string(titles[panel]));
    std::string plot = "plot ";
    for (std::size_t k = 0; k < results.models.size(); ++k) {
      const ModelResults& m = results.models[k];
      plot += k == 0 ? "" : ", ";
      if (m.t_axis.size() == 1) {  // the deterministic network: the same at every T
        plot += fmt::format("{:.6g} with lines dt 2 lw 2 lc rgb '{}' title {}", t_axis_value(m.t_axis[0].report, panel, ood),
                            colour(k), gp_string(m.role + " (one pass)"));
      } else {
        plot += fmt::format("'t{}.dat' using 1:{} with linespoints lw 2 pt 7 lc rgb '{}' title {}", k, panel + 2,
                            colour(k), gp_string(series_name(m)));
      }
    }
    script += plot + "\n";
  }
  return finish_figure(script, data, png,
                       fmt::format("Accuracy, NLL and AUROC against {} as T grows, software engine, {} test images; "
                                  "each model evaluated at the dropout rate it was trained with.",
                                  ood, test_images_text(images)));
}

// Per value of the swept parameter: median, 5th and 95th percentile over its chips of accuracy (%)
// and AUROC.
std::string variation_rows(const Variation& v) {
  std::vector<double> values;
  for (const auto& p : v.points) {
    if (std::find(values.begin(), values.end(), p.value) == values.end()) values.push_back(p.value);
  }
  std::string rows = "# value, median p5 p95 of accuracy (%), then of AUROC\n";
  for (double x : values) {
    std::vector<double> accuracy, auroc;
    for (const auto& p : v.points) {
      if (p.value != x) continue;
      accuracy.push_back(100.0 * p.accuracy);
      auroc.push_back(p.auroc.at(0));
    }
    const MetricSummary a = summarize_metric(accuracy), o = summarize_metric(auroc);
    rows += fmt::format("{:.6g} {:.6g} {:.6g} {:.6g} {:.6g} {:.6g} {:.6g}\n", x, a.p50, a.p5, a.p95, o.p50, o.p5, o.p95);
  }
  return rows;
}

Figure variation_figure(const ExperimentResults& results, const fs::path& png) {
  DataFiles data;
  const Variation& first = *results.main_models().front()->variation;
  const std::string& ood = first.ood.at(0);
  const SweepSettings& sweep = results.settings.sweep;
  std::string script = header(
      1500, 600,
      fmt::format("Simulated chip against device variation: {} chips per value (median, 5-95 % band), T = {}, {} test "
                  "images; dashed: software",
                  sweep.chips, sweep.samples, test_images_text(sweep.test_count)),
      1, 2);
  script += fmt::format("set xlabel {}\nset key bottom left\nset offsets graph 0.05, graph 0.05, graph 0.1, graph 0.1\n",
                        gp_string(first.param + (first.unit.empty() ? "" : " (" + first.unit + ")")));
  for (std::size_t k : main_models(results)) {
    data.emplace_back(fmt::format("var{}.dat", k), variation_rows(*results.models[k].variation));
  }
  for (int panel = 0; panel < 2; ++panel) {
    script += fmt::format("set ylabel {}\nset title {}\n",
                          gp_string(panel == 0 ? "accuracy (%)" : "AUROC against " + ood + " (by predictive entropy)"),
                          gp_string(panel == 0 ? "accuracy" : "OOD detection"));
    std::string plot = "plot ";
    for (std::size_t k : main_models(results)) {
      const ModelResults& m = results.models[k];
      const EvalSummary& sw = m.variation->software;
      const double software = panel == 0 ? 100.0 * sw.accuracy : sw.auroc(ood);
      const int c = 2 + 3 * panel;
      plot += fmt::format("{}'var{}.dat' using 1:{}:{} with filledcurves fs transparent solid 0.2 lc rgb '{}' notitle, "
                          "'var{}.dat' using 1:{} with linespoints lw 2 pt 7 lc rgb '{}' title {}, "
                          "{:.6g} with lines dt 2 lw 1 lc rgb '{}' notitle",
                          plot == "plot " ? "" : ", ", k, c + 1, c + 2, colour(k), k, c, colour(k), gp_string(m.role),
                          software, colour(k));
    }
    script += plot + "\n";
  }
  return finish_figure(script, data, png,
                       fmt::format("Accuracy and AUROC against {} on simulated chips as {} grows; the dashed lines are "
                                  "the software engine on the same images.",
                                  ood, first.param));
}

// The energy of a model's own scheme at T (nJ), from its cost stage; 0 where T was not priced.
double energy_nj(const ModelResults& m, int samples) {
  const PricePoint* point = m.cost.at(samples);
  return point != nullptr ? point->energy_pj.total * 1e-3 : 0;
}

Figure quality_energy_figure(const ExperimentResults& results, const fs::path& png) {
  const std::string& ood = results.settings.ood.front();
  DataFiles data;
  std::string script = header(1600, 620, "Uncertainty quality against energy per inference on the chip (cost model), across T and p", 1, 2);
  script += "set logscale x\nset xlabel 'energy per inference (nJ, log scale; T passes, own dropout scheme)'\n";
  script += "set key outside bottom center horizontal maxrows 2\nset offsets graph 0.05, graph 0.08, graph 0.08, graph 0.08\n";
  for (std::size_t k = 0; k < results.models.size(); ++k) {
    std::string rows = "# energy(nJ) auroc nll label\n";
    for (const auto& point : results.models[k].t_axis) {
      const EvalSummary& r = point.report;
      rows += fmt::format("{:.6g} {:.6g} {:.6g} \"T={}\"\n", energy_nj(results.models[k], r.samples), r.auroc(ood),
                          r.nll, r.samples);
    }
    data.emplace_back(fmt::format("qe{}.dat", k), rows);
  }
  for (int panel = 0; panel < 2; ++panel) {
    script += fmt::format("set ylabel {}\nset title {}\n",
                          gp_string(panel == 0 ? "AUROC against " + ood + " (by predictive entropy)" : "NLL (nats per image)"),
                          gp_string(panel == 0 ? "OOD detection (higher is better)" : "negative log-likelihood (lower is better)"));
    std::string plot = "plot ";
    for (std::size_t k = 0; k < results.models.size(); ++k) {
      plot += fmt::format("{}'qe{}.dat' using 1:{} with linespoints lw 2 pt 7 ps 1.3 lc rgb '{}' title {}, "
                          "'' using 1:{}:4 with labels offset 0,1 font 'sans,8' tc rgb '{}' notitle",
                          k == 0 ? "" : ", ", k, panel + 2, colour(k), gp_string(series_name(results.models[k])),
                          panel + 2, colour(k));
    }
    script += plot + "\n";
  }
  return finish_figure(script, data, png,
                       fmt::format("AUROC against {} and NLL (software engine, {} test images) against the energy of "
                                  "one inference of T passes on the chip under each model's own dropout scheme. The p "
                                  "axis covers spatial-dropout models trained at p = {}; every model is evaluated at "
                                  "the rate it was trained with.",
                                  ood, test_images_text(results.settings.curve_test_count), spatial_rates_text(results)));
}

}  // namespace

ExperimentFigures write_experiment_figures(const ExperimentResults& results, const fs::path& dir) {
  return {.reliability = reliability_figure(results, dir / "reliability.png"),
          .entropy = entropy_figure(results, dir / "entropy.png"),
          .t_axis = t_axis_figure(results, dir / "t_axis.png"),
          .variation = variation_figure(results, dir / "variation.png"),
          .energy = {},
          .quality_energy = quality_energy_figure(results, dir / "quality_energy.png")};
}

}  // namespace spinbayes
