// The experiment's report.md, from its typed results.
#include <algorithm>
#include <functional>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "eval/experiment.h"
#include "eval/experiment_report.h"

namespace spinbayes {

std::string test_images_text(int n) { return n > 0 ? fmt::format("{}", n) : "all"; }

std::string spatial_rates_text(const ExperimentResults& results) {
  std::string rates;
  for (const auto& m : results.models) {
    if (m.dropout == "spatial") rates += (rates.empty() ? "" : ", ") + fmt::format("{:g}", m.p);
  }
  return rates;
}

namespace {

std::string command_text(const std::vector<std::string>& args) { return fmt::format("`{}`", shell_line(args)); }

std::string listed(const std::vector<std::string>& items, const char* separator, bool quoted) {
  std::string out;
  for (const auto& item : items) out += (out.empty() ? "" : separator) + (quoted ? "`" + item + "`" : item);
  return out;
}

// The main table of one place (software or chip) with the command behind each row.
std::string metrics_table(const ExperimentResults& results, bool chip) {
  const std::vector<std::string>& sets = results.settings.ood;
  std::string out = "| model | T | test images | temperature | accuracy | NLL | ECE | ECE at temperature 1 | Brier | mean entropy | mean MI |";
  std::string rule = "|---|---|---|---|---|---|---|---|---|---|---|";
  for (const auto& s : sets) {
    out += fmt::format(" {} AUROC / FPR95 |", s);
    rule += "---|";
  }
  out += "\n" + rule + "\n";
  std::string commands;
  for (const ModelResults* m : results.main_models()) {
    const Evaluation& e = chip ? *m->chip : *m->software;
    const EvalSummary& r = e.report;
    out += fmt::format("| {} | {} | {} | {:.3f} | {:.2f} % | {:.4f} | {:.4f} | {:.4f} | {:.4f} | {:.4f} | {:.4f} |", m->role,
                       r.samples, r.test_images, r.calibration.temperature, 100.0 * r.accuracy, r.nll, r.ece,
                       r.calibration.uncalibrated.ece, r.brier, r.mean_entropy, r.mean_mutual_information);
    for (const auto& s : sets) out += fmt::format(" {:.4f} / {:.4f} |", r.ood.at(s).auroc, r.ood.at(s).fpr95);
    out += "\n";
    commands += fmt::format("- {}: {}\n", m->role, command_text(e.command));
  }
  return out + "\nReproduce each row (`--json FILE` writes the same figures as JSON):\n\n" + commands;
}

// The per-layer element-over-spatial module ratios of the 3x3 convolutions with a dropout site,
// from `spinbayes cost --json`'s layers (the paper's "9x per layer").
std::vector<double> conv3x3_module_ratios(const CostSummary& c) {
  std::vector<double> ratios;
  const nlohmann::json& layers = c.document.value("layers", nlohmann::json::array());
  for (const auto& layer : layers) {
    if (layer.value("kind", "") != "conv3x3" || !layer.value("dropout", false)) continue;
    ratios.push_back(layer.at("ratios").at("modules_element_over_spatial").get<double>());
  }
  return ratios;
}

std::string ratio_range(const std::vector<double>& values) {
  if (values.empty()) return "-";
  const auto [lo, hi] = std::minmax_element(values.begin(), values.end());
  return *lo == *hi ? fmt::format("{:.2f}x", *lo) : fmt::format("{:.2f}-{:.2f}x", *lo, *hi);
}

// The answer first: the paper's claims beside this run's figures.
std::string headline_section(const ExperimentResults& results) {
  const ExperimentSettings& s = results.settings;
  const ModelResults& spatial = results.model(ModelRole::spatial);
  const CostSummary& c = spatial.cost.report;
  const std::vector<double> per_layer = conv3x3_module_ratios(c);
  std::string out = "## The answer\n\n";
  out += "The claims of Spatial-SpinDrop (Ahmed et al., IEEE TNANO 2024) against element-wise MC-Dropout on the same "
         "spintronic hardware, beside what this run measured (cost: `spinbayes cost` on the spatial model's network, "
         "every scheme at the same p and T):\n\n";
  out += "| claim | paper | this run |\n|---|---|---|\n";
  out += fmt::format("| dropout modules per 3x3 layer, element / spatial | 9x | {} ({} 3x3 layers with a dropout site) |\n",
                     ratio_range(per_layer), per_layer.size());
  out += fmt::format("| dropout modules per network, element / spatial | - | {:.2f}x ({} against {}) |\n",
                     c.ratios.modules_element_over_spatial, c.schemes.at("element").modules,
                     c.schemes.at("spatial").modules);
  out += fmt::format("| dropout-module energy per inference, element / spatial | 94.11x | {:.2f}x (p = {:g}, T = {}) |\n",
                     c.ratios.dropout_energy_element_over_spatial, c.p, c.samples);
  out += fmt::format("| total energy per inference, element / spatial | - | {:.2f}x |\n",
                     c.ratios.energy_element_over_spatial);
  out += "| accuracy and uncertainty | comparable | the table below |\n\n";

  const std::vector<std::string>& sets = s.ood;
  out += fmt::format("Quality at T = {} (NLL and ECE after temperature scaling, before it in brackets; the temperature is "
                     "fitted on the validation images and changes no prediction):\n\n",
                     s.samples);
  out += "| model | where | accuracy | NLL | ECE |";
  std::string rule = "|---|---|---|---|---|";
  for (const auto& set : sets) {
    out += fmt::format(" {} AUROC |", set);
    rule += "---|";
  }
  out += "\n" + rule + "\n";
  for (const ModelResults* m : results.main_models()) {
    for (const bool chip : {false, true}) {
      const std::optional<Evaluation>& e = chip ? m->chip : m->software;
      if (!e) continue;
      const EvalSummary& r = e->report;
      out += fmt::format("| {} | {} | {:.2f} % | {:.4f} ({:.4f}) | {:.4f} ({:.4f}) |", m->role,
                         chip ? "chip" : "software", 100.0 * r.accuracy, r.nll, r.calibration.uncalibrated.nll, r.ece,
                         r.calibration.uncalibrated.ece);
      for (const auto& set : sets) out += fmt::format(" {:.4f} |", r.ood.at(set).auroc);
      out += "\n";
    }
  }
  return out + "\nEach row's command is in the sections below.\n\n";
}

// "vgg-small width 32", or the network file's name for a custom network.
std::string network_text(const ExperimentSettings& settings, const std::string& architecture, int width) {
  if (architecture != "custom") return fmt::format("{} width {}", architecture, width);
  if (settings.network_file.empty()) return "custom network";
  return fmt::format("network file `{}`", std::filesystem::path(settings.network_file).filename().string());
}

std::string cost_section(const ExperimentResults& results) {
  const ModelResults& spatial = results.model(ModelRole::spatial);
  const CostSummary& c = spatial.cost.report;
  std::string out = fmt::format(
      "Priced by the cost model on the network of the spatial model ({}, dropout on {}), every scheme at "
      "p = {:g}, T = {} samples per inference, hardware `{}`, technology `{}`. Energy and latency per inference "
      "(latency: windows one after another, nothing pipelined, an upper bound).\n\n",
      network_text(results.settings, c.model.architecture, c.model.width), c.model.dropout_layers, c.p, c.samples,
      c.hw, c.tech);
  out += "| scheme | dropout modules | dropout-module energy (nJ) | total energy (nJ) | latency (µs) |\n";
  out += "|---|---|---|---|---|\n";
  for (const char* scheme : {"none", "element", "spatial", "layer"}) {
    const SchemeSummary& s = c.schemes.at(scheme);
    out += fmt::format("| {} | {} | {:.3f} | {:.3f} | {:.2f} |\n", scheme, s.modules, s.energy_pj.modules * 1e-3,
                       s.energy_pj.total * 1e-3, s.latency_ns * 1e-3);
  }
  out += fmt::format(
      "\nElement over spatial: **{:.2f}x** dropout modules, **{:.2f}x** dropout-module energy, {:.2f}x total energy, "
      "{:.2f}x latency (`layer`: one module per layer, a lower bound).\n\n",
      c.ratios.modules_element_over_spatial, c.ratios.dropout_energy_element_over_spatial,
      c.ratios.energy_element_over_spatial, c.ratios.latency_element_over_spatial);
  out += "Each model under its own scheme, at its own p:\n\n| model | scheme | p | energy per inference (nJ) | latency (µs) | reproduce |\n|---|---|---|---|---|---|\n";
  for (const auto& m : results.models) {
    for (const auto& e : m.cost.energy_vs_t) {
      if (e.samples != results.settings.samples) continue;
      out += fmt::format("| {} | {} | {} | {:.3f} | {:.2f} | {} |\n", m.role, e.scheme,
                         e.scheme != "none" ? fmt::format("{:g}", m.cost.report.p) : "-", e.energy_pj.total * 1e-3,
                         e.latency_ns * 1e-3, command_text(e.command));
    }
  }
  out += "\nReproduce the scheme table: " + command_text(spatial.cost.command) + " (`--json FILE` for every count).\n";
  return out;
}

std::string models_section(const ExperimentResults& results) {
  std::string out =
      results.settings.runs.empty()
          ? "## Models\n\nTrained the same way: the same architecture, data, epochs, optimizer and seed; only "
            "the dropout kind (and, for the extra models, p) differs.\n\n"
          : "## Models\n\nGiven as run directories (`--runs`) and evaluated as they are: the same network, each "
            "trained (or imported) on its own; an imported network's training is not known here.\n\n";
  out += "| model | dropout | p | network | epochs | training images | validation images | validation accuracy | "
         "training time |\n|---|---|---|---|---|---|---|---|---|\n";
  for (const auto& m : results.models) {
    const TrainingRecord& t = m.training;
    const TrainingSettings& st = t.settings;
    const std::string network = network_text(results.settings, st.architecture, st.width);
    const std::string p = m.has_dropout() ? fmt::format("{:g}", m.p) : "-";
    if (!t.imported.empty()) {
      out += fmt::format("| {} | {} | {} | {} | imported from `{}` | - | {} (held out for the OOD threshold) | - | - |\n",
                         m.role, m.dropout, p, network, std::filesystem::path(t.imported).filename().string(), st.validation);
      continue;
    }
    out += fmt::format("| {} | {} | {} | {} | {} | {} | {} | {:.2f} % | {:.0f} s |\n", m.role, m.dropout, p, network,
                       t.epochs, st.subset > 0 ? std::to_string(st.subset) : fmt::format("all ({})", 60000 - st.validation),
                       st.validation, 100.0 * t.validation_accuracy, t.seconds);
  }
  const int shared = results.settings.shared_epochs;
  if (shared > 0) {
    out += fmt::format("\nThe first {} of the {} epochs were trained once, without dropout, and every model started "
                       "from them (`spinbayes train --init`): each trained the remaining {} with its own dropout, "
                       "so the dropout models learned with dropout for those epochs only. The training times "
                       "include the shared epochs.\n",
                       shared, results.settings.epochs, results.settings.epochs - shared);
  }
  if (!results.run.reused_models.empty() && results.settings.runs.empty()) {
    out += fmt::format("\nThis invocation found {} trained and finished in its models directory and reused them; "
                       "their training time above is the one recorded in their `train.jsonl`, not part of this "
                       "run's time.\n",
                       listed(results.run.reused_models, ", ", true));
  }
  out += results.settings.runs.empty() ? "\nTrain each:\n\n" : "\nHow each run came to be:\n\n";
  if (shared > 0) {
    out += fmt::format("- the shared first {} epochs: {}\n", shared, command_text(results.settings.shared_command));
  }
  for (const auto& m : results.models) out += fmt::format("- {}: {}\n", m.role, command_text(m.training.command));
  out += "\nTemperature scaling: one temperature tau per model rescales its predictive distribution, "
         "softmax(log(mean_t p_t) / tau), fitted by NLL on the validation images (for the MC models at the main T). "
         "It keeps the order of the classes, so no prediction changes. Every evaluation below applies it; on the chip "
         "it is digital work where the passes are averaged (for one pass, a scale of the last layer's output affine), "
         "nothing analog.\n\n| model | temperature | fitted at T | validation NLL before / after | validation ECE "
         "before / after | reproduce |\n|---|---|---|---|---|---|\n";
  for (const auto& m : results.models) {
    if (!m.calibration) continue;
    const TemperatureFigures& t = m.calibration->applied;
    out += fmt::format("| {} | {:.4f} | {} | {:.4f} / {:.4f} | {:.4f} / {:.4f} | {} |\n", m.role, t.temperature, t.samples,
                       t.nll_before, t.nll_after, t.ece_before, t.ece_after, command_text(m.calibration->command));
  }
  return out;
}

std::string figures_section(const ExperimentResults& results) {
  std::string out = "\n## Figures\n\n";
  auto figure = [&](const Figure& f, const std::string& title, const std::string& reproduce) {
    out += fmt::format("### {}\n\n![{}]({})\n\n", title, title, f.file);
    if (!f.caption.empty()) out += f.caption + "\n\n";
    if (!reproduce.empty()) out += reproduce + "\n\n";
  };
  // A line per model with the commands `pick` names (none: no line).
  auto listing = [&](const std::string& what, const std::function<std::vector<std::string>(const ModelResults&)>& pick) {
    std::string text = what + "\n\n";
    for (const auto& m : results.models) {
      const std::vector<std::string> commands = pick(m);
      if (!commands.empty()) text += fmt::format("- {}: {}\n", m.role, listed(commands, "; ", false));
    }
    return text;
  };
  const ExperimentFigures& f = results.figures;
  figure(f.reliability, "Reliability diagrams", "The bins come from the evaluations of the two tables above.");
  figure(f.entropy, "Predictive entropy, in-distribution against OOD", "From the software evaluations above.");
  figure(f.t_axis, "Accuracy, NLL and AUROC against T",
         listing("Each point is one evaluation (`--samples` T):", [](const ModelResults& m) {
           std::vector<std::string> commands;
           for (const auto& point : m.t_axis) commands.push_back(command_text(point.command));
           return commands;
         }));
  figure(f.variation, "Accuracy against device variation",
         listing("Each line is one sweep (it also writes a CSV and its own PNG):", [](const ModelResults& m) {
           return m.variation ? std::vector<std::string>{command_text(m.variation->command)} : std::vector<std::string>{};
         }));
  out += fmt::format("### Energy per inference by component and scheme\n\n![energy]({})\n\n", f.energy.file);
  out += "Left: energy per inference by component under each dropout scheme; right: energy against T. "
         "Reproduce: " + command_text(f.energy.command) + "\n\n";
  figure(f.quality_energy, "Uncertainty quality against energy",
         listing("Energies from `spinbayes cost --samples T` under each model's own scheme:", [](const ModelResults& m) {
           std::vector<std::string> commands;
           for (const auto& e : m.cost.energy_vs_t) commands.push_back(command_text(e.command));
           return commands;
         }));
  return out;
}

std::string coverage_section(const ExperimentResults& results) {
  const ExperimentSettings& s = results.settings;
  std::string out = "## What the charts cover\n\n";
  out += fmt::format(
      "- Main tables: T = {}; {} test images in software, {} on the chip; OOD sets of {} images; the OOD threshold comes from the {} validation images held out in training.\n",
      s.samples, test_images_text(s.test_count), test_images_text(s.chip_test_count),
      s.ood_count > 0 ? std::to_string(s.ood_count) : std::string("as many as the test"), s.validation);
  out += fmt::format("- T axis: software only, T in {}, {} test images per point.\n", nlohmann::json(s.t_values).dump(),
                     test_images_text(s.curve_test_count));
  out += fmt::format("- p axis: spatial-dropout models trained at p = {}{}. No model is evaluated at a rate it was not "
                     "trained with.\n",
                     spatial_rates_text(results),
                     s.extra_p.empty() ? " only (training more models did not fit this run's time budget; "
                                         "`--extra-p` adds some)"
                                       : "");
  out += fmt::format("- Device variation: `{}` over {} on {} chips per value, T = {}, {} test images, OOD set {}.\n",
                     s.sweep.param, nlohmann::json(s.sweep.values).dump(), s.sweep.chips, s.sweep.samples,
                     test_images_text(s.sweep.test_count), s.ood.front());
  return out;
}

}  // namespace

// How much of each MC model's uncertainty on the chip comes from the chips rather than the masks.
std::string split_section(const ExperimentResults& results) {
  std::string out, commands;
  for (const ModelResults* m : results.main_models()) {
    if (!m->split) continue;
    const SplitRecord& s = *m->split;
    if (out.empty()) {
      out = fmt::format(
          "\n## How much of the uncertainty is the hardware's\n\n"
          "The first {} test images on {} chips x T = {} passes, pooled: the predictive variance (summed over the "
          "classes) split by the law of total variance into the masks' part (within a chip) and the chips' part "
          "(between chips), and the mutual information by the chain rule (`eval --backend cim --chips K`).\n\n"
          "| model | accuracy | variance | masks | chips | chips' share | MI | masks | chips | chips' share |\n"
          "|---|---|---|---|---|---|---|---|---|---|\n",
          s.test_images, s.chips, s.samples);
    }
    const auto share = [](double part, double total) { return total > 0.0 ? 100.0 * part / total : 0.0; };
    out += fmt::format("| {} | {:.2f} % | {:.4f} | {:.4f} | {:.4f} | {:.1f} % | {:.4f} | {:.4f} | {:.4f} | {:.1f} % |\n",
                       m->role, 100.0 * s.accuracy, s.variance_total, s.variance_masks, s.variance_chips,
                       share(s.variance_chips, s.variance_total), s.mi_total, s.mi_masks, s.mi_chips,
                       share(s.mi_chips, s.mi_total));
    commands += fmt::format("- {}: {}\n", m->role, command_text(s.command));
  }
  return out.empty() ? out : out + "\nReproduce each row:\n\n" + commands;
}

std::string experiment_report_markdown(const ExperimentResults& results) {
  const RunRecord& run = results.run;
  const ExperimentSettings& s = results.settings;
  std::string out = "# Deterministic BNN, MC-Dropout and MC-SpatialDropout: software and simulated chip\n\n";
  out += fmt::format("Made by `{}` on {} ({} cores), {}, in {:.0f} s ({} stages run, {} found finished: results "
                     "cached in `stages/` or training runs in place).\n\n",
                     run.command, run.machine.cpu, run.machine.cores, run.date, run.seconds, run.stages_run,
                     run.stages_cached);
  out += fmt::format(
      "Fashion-MNIST; OOD sets: {}. Software: the bit-packed engine. Chip: the simulated spintronic chip, hardware "
      "`{}`, chip seed {}. Evaluation seed {}. All numbers are in `results.json`.\n\n",
      listed(s.ood, ", ", false), s.hardware, s.chip_seed, s.eval_seed);
  out += headline_section(results);
  out += models_section(results);
  out += fmt::format("\n## In software (engine), T = {}\n\n", s.samples);
  out += metrics_table(results, false);
  out += fmt::format("\n## On the simulated chip (`--hw {}`), T = {}\n\n", s.hardware, s.samples);
  out += metrics_table(results, true);
  out += split_section(results);
  out += "\n## Hardware cost\n\n" + cost_section(results);
  out += figures_section(results);
  out += coverage_section(results);
  return out;
}

}  // namespace spinbayes
