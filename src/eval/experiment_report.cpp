#include "eval/experiment_report.h"

#include <algorithm>
#include <cmath>
#include <functional>
#include <map>
#include <vector>

#include <fmt/format.h>

#include "core/plot.h"
#include "eval/experiment.h"

namespace spinbayes {

namespace {

using nlohmann::json;

// One colour per model, in the order of results["models"]: deterministic, element, spatial, then
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

std::vector<std::size_t> main_models(const json& models) {
  std::vector<std::size_t> out;
  for (std::size_t k = 0; k < models.size(); ++k) {
    if (models[k].value("main", false)) out.push_back(k);
  }
  return out;
}

// The first OOD set's name (mnist unless the run was told otherwise).
std::string first_ood(const json& results) { return results["settings"]["ood"][0].get<std::string>(); }

double auroc_of(const json& report, const std::string& set) { return report["ood"][set]["auroc"].get<double>(); }

// A model in a legend: its role, with its rate where the role does not say it.
std::string series_name(const json& m) {
  if (m["dropout"].get<std::string>() == "none" || !m.value("main", false)) return m["role"].get<std::string>();
  return fmt::format("{}, p = {:g}", m["role"].get<std::string>(), m["p"].get<double>());
}

std::string test_images_text(int n) { return n > 0 ? fmt::format("{}", n) : "all"; }

// ---- figures ---------------------------------------------------------------------------------

// The title of a model's panel: its role and T.
std::string panel_title(const json& m) {
  return gp_string(fmt::format("{}, T = {}", m["role"].get<std::string>(), m["software"]["report"]["samples"].get<int>()));
}

// Ends the multiplot, renders it to `png` and describes the figure for the report.
json finish_figure(std::string script, const std::vector<std::pair<std::string, std::string>>& data,
                   const std::filesystem::path& png, const std::string& caption) {
  script += "unset multiplot\n";
  render_plot(script, data, png, "experiment");
  return {{"file", "figures/" + png.filename().string()}, {"caption", caption}};
}

json reliability_figure(const json& results, const std::filesystem::path& png) {
  const json& models = results["models"];
  std::vector<std::pair<std::string, std::string>> data;
  std::string script = header(1650, 560, "Reliability diagrams: accuracy against confidence in 15 bins (the ECE's)", 1, 3);
  script += "set xrange [0:1]\nset yrange [0:1.02]\nset key bottom right\nset size ratio -1\n";
  script += "set xlabel 'confidence: top-class mean softmax probability (fraction)'\n";
  script += "set ylabel 'accuracy in the bin (fraction correct)'\n";
  for (std::size_t k : main_models(models)) {
    const json& m = models[k];
    std::string plot = "plot x with lines dt 2 lw 1 lc rgb '#888888' title 'perfect calibration'";
    for (const char* where : {"software", "chip"}) {
      std::string rows = "# confidence accuracy images\n";
      for (const auto& bin : m[where]["reliability"]) {
        if (bin["images"].get<int>() > 0) {
          rows += fmt::format("{:.6g} {:.6g} {}\n", bin["confidence"].get<double>(), bin["accuracy"].get<double>(),
                              bin["images"].get<int>());
        }
      }
      const std::string file = fmt::format("rel{}-{}.dat", k, where);
      data.emplace_back(file, rows);
      const bool chip = std::string(where) == "chip";
      plot += fmt::format(", '{}' using 1:2 with linespoints lw 2 pt {} ps 1.2 lc rgb '{}' {} title {}", file,
                          chip ? 6 : 7, colour(k), chip ? "dt 3" : "",
                          gp_string(fmt::format("{} (ECE {:.3f})", chip ? "simulated chip" : "software",
                                             m[where]["report"]["ece"].get<double>())));
    }
    script += fmt::format("set title {}\n", panel_title(m));
    script += plot + "\n";
  }
  return finish_figure(script, data, png,
                       "Reliability diagrams of the three models, software engine (solid) and simulated chip (dotted): "
                      "the accuracy of the test images in each confidence bin against their mean confidence. "
                      "Points under the diagonal are over-confident.");
}

json entropy_figure(const json& results, const std::filesystem::path& png) {
  const json& models = results["models"];
  std::vector<std::pair<std::string, std::string>> data;
  std::string script = header(1650, 540, "Predictive entropy: in-distribution test images against OOD sets (software)", 1, 3);
  script += "set key top right\nset xlabel 'predictive entropy H[mean p] (nats; ln 10 = 2.30 is uniform)'\n";
  script += "set ylabel 'share of the set''s images (%)'\nset logscale y\nset yrange [0.1:100]\n";
  for (std::size_t k : main_models(models)) {
    const json& m = models[k];
    const json& histograms = m["software"]["entropy_histograms"];
    std::vector<std::string> sets = {"test"};
    for (const auto& name : results["settings"]["ood"]) sets.push_back(name.get<std::string>());
    const double top = histograms["test"]["max_nats"].get<double>();
    const std::size_t bins = histograms["test"]["percent"].size();
    std::string rows = "# entropy bin centre, then % of images per set:";
    for (const auto& s : sets) rows += " " + s;
    rows += "\n";
    for (std::size_t b = 0; b < bins; ++b) {
      rows += fmt::format("{:.6g}", (b + 0.5) * top / static_cast<double>(bins));
      // Empty bins are drawn at the bottom of the log axis.
      for (const auto& s : sets) rows += fmt::format(" {:.6g}", std::max(0.1, histograms[s]["percent"][b].get<double>()));
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

json t_axis_figure(const json& results, const std::filesystem::path& png) {
  const json& models = results["models"];
  const std::string ood = first_ood(results);
  const int images = results["settings"]["curve_test_count"].get<int>();
  std::vector<std::pair<std::string, std::string>> data;
  std::string script = header(1700, 620,
                              fmt::format("Software (engine) against the number of Monte Carlo samples T ({} test images)",
                                          test_images_text(images)),
                              1, 3);
  script += "set logscale x 2\nset xlabel 'Monte Carlo samples T (log scale)'\nset key outside bottom center horizontal maxrows 2\n";
  script += "set offsets graph 0.02, graph 0.02, graph 0.08, graph 0.08\n";
  const char* ylabels[] = {"accuracy (%)", "NLL (nats per image)", "AUROC against ood (by predictive entropy)"};
  int t_max = 1;
  for (const auto& m : models) {
    for (const auto& point : m["t_axis"]) t_max = std::max(t_max, point["report"]["samples"].get<int>());
  }
  script += fmt::format("set xrange [0.8:{}]\n", t_max * 1.25);
  for (std::size_t k = 0; k < models.size(); ++k) {
    std::string rows = "# T accuracy(%) nll auroc\n";
    for (const auto& point : models[k]["t_axis"]) {
      const json& r = point["report"];
      rows += fmt::format("{} {:.6g} {:.6g} {:.6g}\n", r["samples"].get<int>(), 100.0 * r["accuracy"].get<double>(),
                          r["nll"].get<double>(), auroc_of(r, ood));
    }
    data.emplace_back(fmt::format("t{}.dat", k), rows);
  }
  for (int panel = 0; panel < 3; ++panel) {
    std::string ylabel = ylabels[panel];
    if (panel == 2) ylabel = fmt::format("AUROC against {} (by {})", ood, models[0]["software"]["report"]["score"].get<std::string>());
    script += fmt::format("set ylabel {}\nset title {}\n", gp_string(ylabel),
                          gp_string(panel == 0 ? "accuracy" : panel == 1 ? "negative log-likelihood" : "OOD detection"));
    std::string plot = "plot ";
    for (std::size_t k = 0; k < models.size(); ++k) {
      const json& m = models[k];
      plot += k == 0 ? "" : ", ";
      if (m["t_axis"].size() == 1) {  // the deterministic network: the same at every T
        const json& r = m["t_axis"][0]["report"];
        const double y = panel == 0 ? 100.0 * r["accuracy"].get<double>() : panel == 1 ? r["nll"].get<double>() : auroc_of(r, ood);
        plot += fmt::format("{:.6g} with lines dt 2 lw 2 lc rgb '{}' title {}", y, colour(k),
                            gp_string(m["role"].get<std::string>() + " (one pass)"));
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

json variation_figure(const json& results, const std::filesystem::path& png) {
  const json& models = results["models"];
  std::vector<std::pair<std::string, std::string>> data;
  const json& first = models[main_models(models).front()]["variation"];
  const std::string param = first["param"].get<std::string>(), unit = first["unit"].get<std::string>();
  const std::string ood = first["ood"][0].get<std::string>();
  const json& sweep = results["settings"]["sweep"];
  std::string script = header(
      1500, 600,
      fmt::format("Simulated chip against device variation: {} chips per value (mean, min-max bars), T = {}, {} test "
                  "images; dashed: software",
                  sweep["chips"].get<int>(), sweep["samples"].get<int>(),
                  test_images_text(sweep["test_count"].get<int>())),
      1, 2);
  script += fmt::format("set xlabel {}\nset key bottom left\nset offsets graph 0.05, graph 0.05, graph 0.1, graph 0.1\n",
                        gp_string(param + (unit.empty() ? "" : " (" + unit + ")")));
  for (std::size_t k : main_models(models)) {
    const json& v = models[k]["variation"];
    std::vector<double> values;
    for (const auto& p : v["points"]) {
      const double x = p["value"].get<double>();
      if (std::find(values.begin(), values.end(), x) == values.end()) values.push_back(x);
    }
    std::string rows = "# value, mean min max of accuracy (%), then of AUROC\n";
    for (double x : values) {
      double stats[2][3] = {{0, 1e300, -1e300}, {0, 1e300, -1e300}};
      int n = 0;
      for (const auto& p : v["points"]) {
        if (p["value"].get<double>() != x) continue;
        const double y[2] = {100.0 * p["accuracy"].get<double>(), p["auroc"][0].get<double>()};
        for (int i = 0; i < 2; ++i) {
          stats[i][0] += y[i];
          stats[i][1] = std::min(stats[i][1], y[i]);
          stats[i][2] = std::max(stats[i][2], y[i]);
        }
        ++n;
      }
      rows += fmt::format("{:.6g} {:.6g} {:.6g} {:.6g} {:.6g} {:.6g} {:.6g}\n", x, stats[0][0] / n, stats[0][1],
                          stats[0][2], stats[1][0] / n, stats[1][1], stats[1][2]);
    }
    data.emplace_back(fmt::format("var{}.dat", k), rows);
  }
  for (int panel = 0; panel < 2; ++panel) {
    script += fmt::format("set ylabel {}\nset title {}\n",
                          gp_string(panel == 0 ? "accuracy (%)" : "AUROC against " + ood + " (by predictive entropy)"),
                          gp_string(panel == 0 ? "accuracy" : "OOD detection"));
    std::string plot = "plot ";
    for (std::size_t k : main_models(models)) {
      const json& m = models[k];
      const json& sw = m["variation"]["software"];
      const double software = panel == 0 ? 100.0 * sw["accuracy"].get<double>() : auroc_of(sw, ood);
      const int c = 2 + 3 * panel;
      plot += fmt::format("{}'var{}.dat' using 1:{}:{}:{} with yerrorlines lw 2 pt 7 lc rgb '{}' title {}, "
                          "{:.6g} with lines dt 2 lw 1 lc rgb '{}' notitle",
                          plot == "plot " ? "" : ", ", k, c, c + 1, c + 2, colour(k),
                          gp_string(m["role"].get<std::string>()), software, colour(k));
    }
    script += plot + "\n";
  }
  return finish_figure(script, data, png,
                       fmt::format("Accuracy and AUROC against {} on simulated chips as {} grows; the dashed lines are "
                                  "the software engine on the same images.",
                                  ood, param));
}

// The energy of a model's own scheme at T, from its cost stage.
double energy_nj(const json& model, int samples) {
  for (const auto& e : model["cost"]["energy_vs_t"]) {
    if (e["samples"].get<int>() == samples) return e["energy_pj"]["total"].get<double>() * 1e-3;
  }
  return 0;
}

json quality_energy_figure(const json& results, const std::filesystem::path& png) {
  const json& models = results["models"];
  const std::string ood = first_ood(results);
  std::vector<std::pair<std::string, std::string>> data;
  std::string script = header(1600, 620, "Uncertainty quality against energy per inference on the chip (cost model), across T and p", 1, 2);
  script += "set logscale x\nset xlabel 'energy per inference (nJ, log scale; T passes, own dropout scheme)'\n";
  script += "set key outside bottom center horizontal maxrows 2\nset offsets graph 0.05, graph 0.08, graph 0.08, graph 0.08\n";
  for (std::size_t k = 0; k < models.size(); ++k) {
    std::string rows = "# energy(nJ) auroc nll label\n";
    for (const auto& point : models[k]["t_axis"]) {
      const json& r = point["report"];
      const int t = r["samples"].get<int>();
      rows += fmt::format("{:.6g} {:.6g} {:.6g} \"T={}\"\n", energy_nj(models[k], t), auroc_of(r, ood),
                          r["nll"].get<double>(), t);
    }
    data.emplace_back(fmt::format("qe{}.dat", k), rows);
  }
  for (int panel = 0; panel < 2; ++panel) {
    script += fmt::format("set ylabel {}\nset title {}\n",
                          gp_string(panel == 0 ? "AUROC against " + ood + " (by predictive entropy)" : "NLL (nats per image)"),
                          gp_string(panel == 0 ? "OOD detection (higher is better)" : "negative log-likelihood (lower is better)"));
    std::string plot = "plot ";
    for (std::size_t k = 0; k < models.size(); ++k) {
      const json& m = models[k];
      const std::string name = series_name(m);
      plot += fmt::format("{}'qe{}.dat' using 1:{} with linespoints lw 2 pt 7 ps 1.3 lc rgb '{}' title {}, "
                          "'' using 1:{}:4 with labels offset 0,1 font 'sans,8' tc rgb '{}' notitle",
                          k == 0 ? "" : ", ", k, panel + 2, colour(k), gp_string(name), panel + 2, colour(k));
    }
    script += plot + "\n";
  }
  std::vector<std::string> rates;
  for (const auto& m : models) {
    if (m["dropout"].get<std::string>() == "spatial") rates.push_back(fmt::format("{:g}", m["p"].get<double>()));
  }
  std::string p_text;
  for (const auto& r : rates) p_text += (p_text.empty() ? "" : ", ") + r;
  return finish_figure(script, data, png,
                       fmt::format("AUROC against {} and NLL (software engine, {} test images) against the energy of "
                                  "one inference of T passes on the chip under each model's own dropout scheme. The p "
                                  "axis covers spatial-dropout models trained at p = {}; every model is evaluated at "
                                  "the rate it was trained with.",
                                  ood, test_images_text(results["settings"]["curve_test_count"].get<int>()), p_text));
}

// ---- report.md ---------------------------------------------------------------------------------

std::string command_text(const json& args) {
  return fmt::format("`{}`", shell_line(args.get<std::vector<std::string>>()));
}

std::string metrics_table(const json& results, const char* where) {
  const json& models = results["models"];
  std::vector<std::string> sets;
  for (const auto& name : results["settings"]["ood"]) sets.push_back(name.get<std::string>());
  std::string out = "| model | T | test images | accuracy | NLL | ECE | Brier | mean entropy | mean MI |";
  std::string rule = "|---|---|---|---|---|---|---|---|---|";
  for (const auto& s : sets) {
    out += fmt::format(" {} AUROC / FPR95 |", s);
    rule += "---|";
  }
  out += "\n" + rule + "\n";
  std::string commands;
  for (std::size_t k : main_models(models)) {
    const json& m = models[k];
    const json& r = m[where]["report"];
    out += fmt::format("| {} | {} | {} | {:.2f} % | {:.4f} | {:.4f} | {:.4f} | {:.4f} | {:.4f} |",
                       m["role"].get<std::string>(), r["samples"].get<int>(), r["test_images"].get<int>(),
                       100.0 * r["accuracy"].get<double>(), r["nll"].get<double>(), r["ece"].get<double>(),
                       r["brier"].get<double>(), r["mean_entropy"].get<double>(),
                       r["mean_mutual_information"].get<double>());
    for (const auto& s : sets) {
      out += fmt::format(" {:.4f} / {:.4f} |", r["ood"][s]["auroc"].get<double>(), r["ood"][s]["fpr95"].get<double>());
    }
    out += "\n";
    commands += fmt::format("- {}: {}\n", m["role"].get<std::string>(), command_text(m[where]["command"]));
  }
  return out + "\nReproduce each row (`--json FILE` writes the same figures as JSON):\n\n" + commands;
}

std::string cost_section(const json& results) {
  const json& models = results["models"];
  const json* spatial = nullptr;
  for (std::size_t k : main_models(models)) {
    if (models[k]["dropout"].get<std::string>() == "spatial") spatial = &models[k];
  }
  const json& c = (*spatial)["cost"]["report"];
  std::string out = fmt::format(
      "Priced by the cost model on the network of the spatial model ({} width {}, dropout on {}), every scheme at "
      "p = {:g}, T = {} samples per inference, hardware `{}`, technology `{}`. Energy and latency per inference "
      "(latency: windows one after another, nothing pipelined, an upper bound).\n\n",
      c["model"]["architecture"].get<std::string>(), c["model"]["width"].get<int>(),
      c["model"]["dropout_layers"].get<std::string>(), c["p"].get<double>(), c["samples"].get<int>(),
      c["hw"].get<std::string>(), c["tech"].get<std::string>());
  out += "| scheme | dropout modules | dropout-module energy (nJ) | total energy (nJ) | latency (µs) |\n";
  out += "|---|---|---|---|---|\n";
  for (const char* scheme : {"none", "element", "spatial", "layer"}) {
    const json& s = c["schemes"][scheme];
    out += fmt::format("| {} | {} | {:.3f} | {:.3f} | {:.2f} |\n", scheme, s["modules"].get<int>(),
                       s["energy_pj"]["modules"].get<double>() * 1e-3, s["energy_pj"]["total"].get<double>() * 1e-3,
                       s["latency_ns"].get<double>() * 1e-3);
  }
  const json& ratios = c["ratios"];
  out += fmt::format(
      "\nElement over spatial: **{:.2f}x** dropout modules, **{:.2f}x** dropout-module energy, {:.2f}x total energy, "
      "{:.2f}x latency (`layer`: one module per layer, a lower bound).\n\n",
      ratios["modules_element_over_spatial"].get<double>(), ratios["dropout_energy_element_over_spatial"].get<double>(),
      ratios["energy_element_over_spatial"].get<double>(), ratios["latency_element_over_spatial"].get<double>());
  out += "Each model under its own scheme, at its own p:\n\n| model | scheme | p | energy per inference (nJ) | latency (µs) | reproduce |\n|---|---|---|---|---|---|\n";
  const int samples = results["settings"]["samples"].get<int>();
  for (const auto& m : models) {
    for (const auto& e : m["cost"]["energy_vs_t"]) {
      if (e["samples"].get<int>() != samples) continue;
      const bool dropout = e["scheme"].get<std::string>() != "none";
      out += fmt::format("| {} | {} | {} | {:.3f} | {:.2f} | {} |\n", m["role"].get<std::string>(),
                         e["scheme"].get<std::string>(),
                         dropout ? fmt::format("{:g}", m["cost"]["report"]["p"].get<double>()) : "-",
                         e["energy_pj"]["total"].get<double>() * 1e-3, e["latency_ns"].get<double>() * 1e-3,
                         command_text(e["command"]));
    }
  }
  out += "\nReproduce the scheme table: " + command_text((*spatial)["cost"]["command"]) +
         " (`--json FILE` for every count).\n";
  return out;
}

}  // namespace

json write_experiment_figures(const json& results, const std::filesystem::path& dir) {
  return {{"reliability", reliability_figure(results, dir / "reliability.png")},
          {"entropy", entropy_figure(results, dir / "entropy.png")},
          {"t_axis", t_axis_figure(results, dir / "t_axis.png")},
          {"variation", variation_figure(results, dir / "variation.png")},
          {"quality_energy", quality_energy_figure(results, dir / "quality_energy.png")}};
}

std::string experiment_report_markdown(const json& results) {
  const json& run = results["run"];
  const json& s = results["settings"];
  const json& models = results["models"];
  std::string out = "# Deterministic BNN, MC-Dropout and MC-SpatialDropout: software and simulated chip\n\n";
  out += fmt::format("Made by `{}` on {} ({} cores), {}, in {:.0f} s ({} stages run, {} found finished: results "
                     "cached in `stages/` or training runs in place).\n\n",
                     run["command"].get<std::string>(), run["machine"]["cpu"].get<std::string>(),
                     run["machine"]["cores"].get<int>(), run["date"].get<std::string>(), run["seconds"].get<double>(),
                     run["stages_run"].get<int>(), run["stages_cached"].get<int>());
  out += fmt::format(
      "Fashion-MNIST; OOD sets: {}. Software: the bit-packed engine. Chip: the simulated spintronic chip, hardware "
      "`default`, chip seed {}. Evaluation seed {}. All numbers are in `results.json`.\n\n",
      [&] {
        std::string t;
        for (const auto& n : s["ood"]) t += (t.empty() ? "" : ", ") + n.get<std::string>();
        return t;
      }(),
      s["chip_seed"].get<std::uint64_t>(), s["eval_seed"].get<std::uint64_t>());

  out += "## Models\n\nTrained the same way: the same architecture, data, epochs, optimizer and seed; only the "
         "dropout kind (and, for the extra models, p) differs.\n\n";
  out += "| model | dropout | p | network | epochs | training images | validation images | validation accuracy | "
         "training time |\n|---|---|---|---|---|---|---|---|---|\n";
  for (const auto& m : models) {
    const json& t = m["training"];
    const json& st = t["settings"];
    const bool dropout = m["dropout"].get<std::string>() != "none";
    out += fmt::format("| {} | {} | {} | {} width {} | {} | {} | {} | {:.2f} % | {:.0f} s |\n",
                       m["role"].get<std::string>(), m["dropout"].get<std::string>(),
                       dropout ? fmt::format("{:g}", m["p"].get<double>()) : "-",
                       st["architecture"].get<std::string>(), st["width"].get<int>(), t["epochs"].get<int>(),
                       st["subset"].get<int>() > 0 ? std::to_string(st["subset"].get<int>())
                                                   : fmt::format("all ({})", 60000 - st["validation"].get<int>()),
                       st["validation"].get<int>(), 100.0 * t["validation_accuracy"].get<double>(),
                       t["seconds"].get<double>());
  }
  if (!run["reused_models"].empty()) {
    std::string names;
    for (const auto& n : run["reused_models"]) names += fmt::format("{}`{}`", names.empty() ? "" : ", ", n.get<std::string>());
    out += fmt::format("\nThis invocation found {} trained and finished in its models directory and reused them; "
                       "their training time above is the one recorded in their `train.jsonl`, not part of this "
                       "run's time.\n",
                       names);
  }
  out += "\nTrain each:\n\n";
  for (const auto& m : models) out += fmt::format("- {}: {}\n", m["role"].get<std::string>(), command_text(m["training"]["command"]));

  out += fmt::format("\n## In software (engine), T = {}\n\n", s["samples"].get<int>());
  out += metrics_table(results, "software");
  out += fmt::format("\n## On the simulated chip (`--hw default`), T = {}\n\n", s["samples"].get<int>());
  out += metrics_table(results, "chip");
  out += "\n## Hardware cost\n\n" + cost_section(results);

  out += "\n## Figures\n\n";
  const json& figures = results["figures"];
  auto figure = [&](const std::string& key, const std::string& title, const std::string& reproduce) {
    const json& f = figures[key];
    out += fmt::format("### {}\n\n![{}]({})\n\n", title, title, f["file"].get<std::string>());
    if (f.contains("caption")) out += f["caption"].get<std::string>() + "\n\n";
    if (!reproduce.empty()) out += reproduce + "\n\n";
  };
  auto listing = [&](const std::string& what, const std::function<std::string(const json&)>& pick) {
    std::string text = what + "\n\n";
    for (std::size_t k = 0; k < models.size(); ++k) {
      const std::string line = pick(models[k]);
      if (!line.empty()) text += fmt::format("- {}: {}\n", models[k]["role"].get<std::string>(), line);
    }
    return text;
  };
  figure("reliability", "Reliability diagrams", "The bins come from the evaluations of the two tables above.");
  figure("entropy", "Predictive entropy, in-distribution against OOD", "From the software evaluations above.");
  figure("t_axis", "Accuracy, NLL and AUROC against T",
         listing("Each point is one evaluation (`--samples` T):", [](const json& m) {
           std::string cmds;
           for (const auto& point : m["t_axis"]) cmds += (cmds.empty() ? "" : "; ") + command_text(point["command"]);
           return cmds;
         }));
  figure("variation", "Accuracy against device variation",
         listing("Each line is one sweep (it also writes a CSV and its own PNG):", [](const json& m) {
           return m.contains("variation") ? command_text(m["variation"]["command"]) : std::string();
         }));
  {
    const json& e = figures["energy"];
    out += fmt::format("### Energy per inference by component and scheme\n\n![energy]({})\n\n", e["file"].get<std::string>());
    out += "Left: energy per inference by component under each dropout scheme; right: energy against T. "
           "Reproduce: " + command_text(e["command"]) + "\n\n";
  }
  figure("quality_energy", "Uncertainty quality against energy",
         listing("Energies from `spinbayes cost --samples T` under each model's own scheme:", [](const json& m) {
           std::string cmds;
           for (const auto& e : m["cost"]["energy_vs_t"]) cmds += (cmds.empty() ? "" : "; ") + command_text(e["command"]);
           return cmds;
         }));
  out += "## What the charts cover\n\n";
  out += fmt::format(
      "- Main tables: T = {}; {} test images in software, {} on the chip; OOD sets of {} images; the OOD threshold comes from the {} validation images held out in training.\n",
      s["samples"].get<int>(), test_images_text(s["test_count"].get<int>()),
      test_images_text(s["chip_test_count"].get<int>()),
      s["ood_count"].get<int>() > 0 ? std::to_string(s["ood_count"].get<int>()) : std::string("as many as the test"),
      s["validation"].get<int>());
  out += fmt::format("- T axis: software only, T in {}, {} test images per point.\n", s["t_values"].dump(),
                     test_images_text(s["curve_test_count"].get<int>()));
  std::string rates;
  for (const auto& m : models) {
    if (m["dropout"].get<std::string>() == "spatial") rates += (rates.empty() ? "" : ", ") + fmt::format("{:g}", m["p"].get<double>());
  }
  out += fmt::format("- p axis: spatial-dropout models trained at p = {}{}. No model is evaluated at a rate it was not "
                     "trained with.\n",
                     rates, s["extra_p"].empty() ? " only (training more models did not fit this run's time budget; "
                                                   "`--extra-p` adds some)"
                                                 : "");
  out += fmt::format("- Device variation: `{}` over {} on {} chips per value, T = {}, {} test images, OOD set {}.\n",
                     s["sweep"]["param"].get<std::string>(), s["sweep"]["values"].dump(),
                     s["sweep"]["chips"].get<int>(), s["sweep"]["samples"].get<int>(),
                     test_images_text(s["sweep"]["test_count"].get<int>()), first_ood(results));
  return out;
}

}  // namespace spinbayes
