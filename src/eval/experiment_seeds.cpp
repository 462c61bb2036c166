#include "eval/experiment_seeds.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <memory>
#include <optional>
#include <thread>

#include <fmt/format.h>

#include "core/atomic_file.h"
#include "core/dir_lock.h"
#include "core/error.h"
#include "core/plot.h"
#include "eval/experiment_plan.h"
#include "eval/experiment_report.h"

namespace spinbayes {

namespace fs = std::filesystem;
using nlohmann::json;

SeedSpread spread_of(const std::vector<double>& values) {
  const MetricSummary s = summarize_metric(values);
  return {s.mean, s.sd, s.min, s.max};
}

void to_json(json& j, const SeedComparison& c) {
  const PairedTest& t = c.test;
  j = json{{"a", c.a},
           {"b", c.b},
           {"where", c.where},
           {"metric", c.metric},
           {"differences", t.differences},
           {"mean", t.mean},
           {"sd", t.sd},
           {"t", t.t ? json(*t.t) : json(nullptr)},
           {"p_t", t.p_t},
           {"p_sign_flip", t.p_sign_flip},
           {"a_above_b", t.above},
           {"a_below_b", t.below}};
}

void from_json(const json& j, SeedComparison& c) {
  j.at("a").get_to(c.a);
  j.at("b").get_to(c.b);
  j.at("where").get_to(c.where);
  j.at("metric").get_to(c.metric);
  PairedTest& t = c.test;
  j.at("differences").get_to(t.differences);
  t.count = static_cast<int>(t.differences.size());
  j.at("mean").get_to(t.mean);
  j.at("sd").get_to(t.sd);
  if (!j.at("t").is_null()) t.t = j.at("t").get<double>();
  j.at("p_t").get_to(t.p_t);
  j.at("p_sign_flip").get_to(t.p_sign_flip);
  j.at("a_above_b").get_to(t.above);
  j.at("a_below_b").get_to(t.below);
}

const SeedValues& MultiSeedResults::find(const std::string& model, const std::string& where,
                                         const std::string& metric) const {
  for (const auto& v : values) {
    if (v.model == model && v.where == where && v.metric == metric) return v;
  }
  throw Error(fmt::format("experiment: no {} {} of the {} model over the seeds", where, metric, model));
}

const std::vector<std::string>& seed_model_keys() {
  static const std::vector<std::string> keys = {"deterministic", "element", "spatial"};
  return keys;
}

const std::vector<std::pair<std::string, std::string>>& seed_model_pairs() {
  static const std::vector<std::pair<std::string, std::string>> pairs = {
      {"spatial", "element"}, {"spatial", "deterministic"}, {"element", "deterministic"}};
  return pairs;
}

namespace {

ModelRole role_of(const std::string& key) {
  if (key == "deterministic") return ModelRole::deterministic;
  if (key == "element") return ModelRole::element;
  return ModelRole::spatial;
}

// The figures of one evaluation the seeds are compared on, by metric name.
std::vector<std::pair<std::string, double>> evaluation_figures(const EvalSummary& r) {
  std::vector<std::pair<std::string, double>> out = {
      {"accuracy", r.accuracy}, {"nll", r.nll},           {"ece", r.ece},
      {"brier", r.brier},       {"nll_t1", r.calibration.uncalibrated.nll}, {"ece_t1", r.calibration.uncalibrated.ece}};
  for (const auto& [set, detection] : r.ood) out.emplace_back("auroc." + set, detection.auroc);
  return out;
}

// Every figure of one model in one seed's results: (where, metric) -> value.
std::vector<std::tuple<std::string, std::string, double>> model_figures(const ExperimentResults& r,
                                                                        const std::string& key) {
  const ModelResults& m = r.model(role_of(key));
  std::vector<std::tuple<std::string, std::string, double>> out;
  for (const bool chip : {false, true}) {
    const std::optional<Evaluation>& e = chip ? m.chip : m.software;
    if (!e) continue;
    for (const auto& [metric, value] : evaluation_figures(e->report)) out.emplace_back(chip ? "chip" : "software", metric, value);
  }
  if (m.calibration) out.emplace_back("calibration", "temperature", m.calibration->applied.temperature);
  out.emplace_back("training", "validation_accuracy", m.training.validation_accuracy);
  out.emplace_back("training", "seconds", m.training.seconds);
  const CostSummary& c = m.cost.report;
  if (const auto scheme = c.schemes.find(m.cost.scheme); scheme != c.schemes.end()) {
    out.emplace_back("cost", "energy_pj", scheme->second.energy_pj.total);
    out.emplace_back("cost", "module_energy_pj", scheme->second.energy_pj.modules);
  }
  if (key == "spatial") {
    out.emplace_back("cost", "modules_element_over_spatial", c.ratios.modules_element_over_spatial);
    out.emplace_back("cost", "dropout_energy_element_over_spatial", c.ratios.dropout_energy_element_over_spatial);
    out.emplace_back("cost", "energy_element_over_spatial", c.ratios.energy_element_over_spatial);
  }
  return out;
}

}  // namespace

MultiSeedResults aggregate_seeds(const std::vector<std::uint64_t>& seeds, const std::vector<ExperimentResults>& per_seed) {
  if (seeds.empty() || seeds.size() != per_seed.size()) throw Error("experiment: the seeds and their results differ in number");
  MultiSeedResults out;
  out.seeds = seeds;
  out.settings = per_seed.front().settings;
  for (std::size_t s = 1; s < per_seed.size(); ++s) {
    const ExperimentSettings& other = per_seed[s].settings;
    if (other.ood != out.settings.ood || other.t_values != out.settings.t_values || other.samples != out.settings.samples) {
      throw Error(fmt::format("experiment: seed {}'s results have other OOD sets or T than seed {}'s", seeds[s], seeds[0]));
    }
  }
  for (const auto& key : seed_model_keys()) {
    out.roles[key] = per_seed.front().model(role_of(key)).role;
    // The figures in the first seed's order; every seed must have each of them.
    std::vector<std::tuple<std::string, std::string, double>> first = model_figures(per_seed.front(), key);
    std::vector<SeedValues> rows;
    for (const auto& [where, metric, value] : first) rows.push_back({key, where, metric, {value}, {}});
    for (std::size_t s = 1; s < per_seed.size(); ++s) {
      const auto figures = model_figures(per_seed[s], key);
      if (figures.size() != rows.size()) {
        throw Error(fmt::format("experiment: seed {}'s {} model has other figures than seed {}'s", seeds[s], key, seeds[0]));
      }
      for (std::size_t f = 0; f < rows.size(); ++f) {
        if (std::get<0>(figures[f]) != rows[f].where || std::get<1>(figures[f]) != rows[f].metric) {
          throw Error(fmt::format("experiment: seed {}'s {} model has other figures than seed {}'s", seeds[s], key, seeds[0]));
        }
        rows[f].values.push_back(std::get<2>(figures[f]));
      }
    }
    for (auto& row : rows) {
      row.spread = spread_of(row.values);
      out.values.push_back(std::move(row));
    }
    // The T axis.
    const ModelResults& first_model = per_seed.front().model(role_of(key));
    for (const std::string& metric : std::vector<std::string>{"accuracy", "nll", "auroc." + out.settings.ood.front()}) {
      SeedCurve curve{key, metric, {}, {}};
      for (const auto& point : first_model.t_axis) curve.samples.push_back(point.report.samples);
      for (std::size_t s = 0; s < per_seed.size(); ++s) {
        const ModelResults& m = per_seed[s].model(role_of(key));
        std::vector<double> row;
        for (std::size_t k = 0; k < m.t_axis.size(); ++k) {
          const EvalSummary& r = m.t_axis[k].report;
          if (k >= curve.samples.size() || r.samples != curve.samples[k]) {
            throw Error(fmt::format("experiment: seed {}'s {} model has another T axis than seed {}'s", seeds[s], key, seeds[0]));
          }
          row.push_back(metric == "accuracy" ? r.accuracy : metric == "nll" ? r.nll : r.auroc(out.settings.ood.front()));
        }
        if (row.size() != curve.samples.size()) {
          throw Error(fmt::format("experiment: seed {}'s {} model has another T axis than seed {}'s", seeds[s], key, seeds[0]));
        }
        curve.values.push_back(std::move(row));
      }
      out.curves.push_back(std::move(curve));
    }
  }
  // The pairs, in software and on the chip.
  std::vector<std::string> metrics = {"accuracy", "nll", "ece"};
  for (const auto& set : out.settings.ood) metrics.push_back("auroc." + set);
  for (const char* where : {"software", "chip"}) {
    for (const auto& metric : metrics) {
      for (const auto& [a, b] : seed_model_pairs()) {
        out.comparisons.push_back(
            {a, b, where, metric, paired_test(out.find(a, where, metric).values, out.find(b, where, metric).values)});
      }
    }
  }
  return out;
}

// ---- report ---------------------------------------------------------------------------------------

namespace {

bool percent_metric(const std::string& metric) { return metric == "accuracy" || metric == "validation_accuracy"; }

// A value as the tables write it: accuracy in %, the rest to 4 decimals.
std::string value_text(const std::string& metric, double v) {
  return percent_metric(metric) ? fmt::format("{:.2f}", 100.0 * v) : fmt::format("{:.4f}", v);
}

std::string signed_text(const std::string& metric, double v) {
  return percent_metric(metric) ? fmt::format("{:+.2f}", 100.0 * v) : fmt::format("{:+.4f}", v);
}

// A cell: the mean, then [min-max] for fewer than 4 seeds or +- sd for 4 or more.
std::string spread_text(const SeedValues& v) {
  const SeedSpread& s = v.spread;
  const std::string unit = percent_metric(v.metric) ? " %" : "";
  if (v.values.size() == 1) return value_text(v.metric, s.mean) + unit;
  if (v.values.size() < 4) {
    return fmt::format("{}{} [{}-{}]", value_text(v.metric, s.mean), unit, value_text(v.metric, s.min),
                       value_text(v.metric, s.max));
  }
  return fmt::format("{} +- {}{}", value_text(v.metric, s.mean), value_text(v.metric, s.sd), unit);
}

std::string metric_name(const std::string& metric) {
  if (metric == "accuracy") return "accuracy";
  if (metric == "nll") return "NLL";
  if (metric == "ece") return "ECE";
  if (metric.rfind("auroc.", 0) == 0) return metric.substr(6) + " AUROC";
  return metric;
}

// Which way is better: +1 higher, -1 lower.
int better_direction(const std::string& metric) { return metric == "nll" || metric == "ece" ? -1 : 1; }

std::string seeds_text(const std::vector<std::uint64_t>& seeds) {
  std::string out;
  for (auto s : seeds) out += (out.empty() ? "" : ", ") + std::to_string(s);
  return out;
}

std::string command_text(const std::vector<std::string>& args) { return fmt::format("`{}`", shell_line(args)); }

std::string quality_table(const MultiSeedResults& r) {
  std::string out = "| model | where | accuracy | NLL | ECE | ECE at temperature 1 |";
  std::string rule = "|---|---|---|---|---|---|";
  for (const auto& set : r.settings.ood) {
    out += fmt::format(" {} AUROC |", set);
    rule += "---|";
  }
  out += "\n" + rule + "\n";
  for (const auto& key : seed_model_keys()) {
    for (const char* where : {"software", "chip"}) {
      out += fmt::format("| {} | {} | {} | {} | {} | {} |", r.roles.at(key), where,
                         spread_text(r.find(key, where, "accuracy")), spread_text(r.find(key, where, "nll")),
                         spread_text(r.find(key, where, "ece")), spread_text(r.find(key, where, "ece_t1")));
      for (const auto& set : r.settings.ood) out += fmt::format(" {} |", spread_text(r.find(key, where, "auroc." + set)));
      out += "\n";
    }
  }
  return out;
}

std::string ratio_cell(const SeedValues& v) {
  const SeedSpread& s = v.spread;
  if (s.min == s.max) return fmt::format("{:.2f}x, every seed", s.mean);
  return fmt::format("{:.2f}x [{:.2f}-{:.2f}x]", s.mean, s.min, s.max);
}

std::string headline_section(const MultiSeedResults& r) {
  std::string out = "## The answer\n\n";
  out += "The claims of Spatial-SpinDrop (Ahmed et al., IEEE TNANO 2024) beside this run's figures. The cost is "
         "`spinbayes cost` on each seed's spatial model: the network is the same in every seed, so the counts and "
         "energies are too (a range would show otherwise).\n\n";
  out += "| claim | paper | this run |\n|---|---|---|\n";
  out += fmt::format("| dropout modules per network, element / spatial | - | {} |\n",
                     ratio_cell(r.find("spatial", "cost", "modules_element_over_spatial")));
  out += fmt::format("| dropout-module energy per inference, element / spatial | 94.11x | {} (p = {:g}, T = {}) |\n",
                     ratio_cell(r.find("spatial", "cost", "dropout_energy_element_over_spatial")), r.settings.p,
                     r.settings.samples);
  out += fmt::format("| total energy per inference, element / spatial | - | {} |\n",
                     ratio_cell(r.find("spatial", "cost", "energy_element_over_spatial")));
  out += "| accuracy and uncertainty | comparable | the tables below |\n\n";
  out += fmt::format("Quality at T = {} over the {} seeds (software: {} test images; chip: {}, hardware `{}`, chip "
                     "seed {}; NLL and ECE after temperature scaling, each seed's model with its own temperature). {}\n\n",
                     r.settings.samples, r.seeds.size(), test_images_text(r.settings.test_count),
                     test_images_text(r.settings.chip_test_count), r.settings.hardware, r.settings.chip_seed,
                     r.seeds.size() < 4 ? "Each cell: the mean over the seeds [lowest-highest seed]."
                                        : "Each cell: the mean over the seeds +- the standard deviation (n - 1).");
  return out + quality_table(r) + "\n";
}

// The findings: per figure, what holds in every seed and what does not.
std::string findings_section(const MultiSeedResults& r) {
  const std::size_t n = r.seeds.size();
  std::string out = "## Findings, seed by seed\n\n";
  out += fmt::format(
      "Each model pair compared seed by seed (the differences a - b, for seeds {} in that order). \"In every seed\" is the claim "
      "these runs can make; whether it would hold for more seeds, {} seeds cannot say: the exact sign-flip test's "
      "smallest p with {} seeds is {:.3g}, reached only when every seed agrees.\n\n",
      seeds_text(r.seeds), n, n, 2.0 / std::pow(2.0, static_cast<double>(n)));
  std::vector<std::string> every, equal, mixed;
  for (const auto& c : r.comparisons) {
    const PairedTest& t = c.test;
    std::string diffs;
    for (double d : t.differences) diffs += (diffs.empty() ? "" : ", ") + signed_text(c.metric, d);
    const std::string where = c.where == "software" ? "in software" : "on the chip";
    const std::string unit = percent_metric(c.metric) ? " points" : "";
    const std::string subject = fmt::format("{} {}", metric_name(c.metric), where);
    if (t.above == 0 && t.below == 0) {
      equal.push_back(fmt::format("- {}: {} and {} equal in every seed", subject, r.roles.at(c.a), r.roles.at(c.b)));
    } else if (t.above == static_cast<int>(n) || t.below == static_cast<int>(n)) {
      const bool higher = t.above == static_cast<int>(n);
      const bool better = (higher ? 1 : -1) == better_direction(c.metric);
      every.push_back(fmt::format("- {}: {} {} than {} in every seed ({}{}; {})", subject, r.roles.at(c.a),
                                  higher ? "higher" : "lower", r.roles.at(c.b), diffs, unit,
                                  better ? "better" : "worse"));
    } else {
      mixed.push_back(fmt::format("- {}: {} higher than {} in {} of {} seeds, lower in {} ({}{})", subject,
                                  r.roles.at(c.a), r.roles.at(c.b), t.above, n, t.below, diffs, unit));
    }
  }
  out += "**Holds in every seed:**\n\n";
  for (const auto& line : every) out += line + "\n";
  if (every.empty()) out += "- none of the compared differences\n";
  for (const auto& line : equal) out += line + "\n";
  out += "\n**Does not hold in every seed** (the order changes between seeds, or a seed ties):\n\n";
  for (const auto& line : mixed) out += line + "\n";
  if (mixed.empty()) out += "- none\n";
  return out + "\n";
}

std::string comparisons_section(const MultiSeedResults& r) {
  const std::size_t n = r.seeds.size();
  std::string out = "## Paired comparisons\n\n";
  out += fmt::format(
      "For each pair of models, the per-seed differences a - b (accuracy in points), their mean and standard deviation, "
      "Student's paired t with {} degrees of freedom and its two-sided p (it assumes the differences are normal), and "
      "the exact two-sided sign-flip p (the share of the {} sign assignments of the differences whose |mean| reaches "
      "the observed one; it assumes only that a difference is as likely positive as negative when the models are "
      "alike).\n\n",
      n - 1, 1u << n);
  out += "| figure | where | a - b | per seed | mean +- sd | t | p (t) | p (sign flip) | a above b |\n";
  out += "|---|---|---|---|---|---|---|---|---|\n";
  for (const auto& c : r.comparisons) {
    const PairedTest& t = c.test;
    std::string diffs;
    for (double d : t.differences) diffs += (diffs.empty() ? "" : ", ") + signed_text(c.metric, d);
    out += fmt::format("| {} | {} | {} - {} | {} | {} +- {} | {} | {} | {:.3g} | {} of {} |\n", metric_name(c.metric),
                       c.where, c.a, c.b, diffs, signed_text(c.metric, t.mean), value_text(c.metric, t.sd),
                       t.t ? fmt::format("{:.2f}", *t.t) : std::string("-"),
                       t.t || n > 1 ? fmt::format("{:.3g}", t.p_t) : std::string("-"), t.p_sign_flip, t.above, n);
  }
  return out + "\n";
}

std::string per_seed_section(const MultiSeedResults& r) {
  std::string out = "## Per seed\n\n";
  out += "Each seed's experiment is a whole single-seed experiment with its own report (linked), results and figures; "
         "the models of a seed other than 1 are named with `-s<seed>`.\n\n";
  out += "| seed | model | where | accuracy | NLL | ECE |";
  std::string rule = "|---|---|---|---|---|---|";
  for (const auto& set : r.settings.ood) {
    out += fmt::format(" {} AUROC |", set);
    rule += "---|";
  }
  out += " temperature | validation accuracy |\n" + rule + "---|---|\n";
  for (std::size_t s = 0; s < r.seeds.size(); ++s) {
    for (const auto& key : seed_model_keys()) {
      for (const char* where : {"software", "chip"}) {
        const bool software = std::string(where) == "software";
        out += fmt::format("| [{}]({}/report.md) | {} | {} | {} % | {} | {} |", r.seeds[s], r.runs.at(s).dir,
                           r.roles.at(key), where, value_text("accuracy", r.find(key, where, "accuracy").values[s]),
                           value_text("nll", r.find(key, where, "nll").values[s]),
                           value_text("ece", r.find(key, where, "ece").values[s]));
        for (const auto& set : r.settings.ood) out += fmt::format(" {} |", value_text("", r.find(key, where, "auroc." + set).values[s]));
        out += software ? fmt::format(" {:.3f} | {} % |\n", r.find(key, "calibration", "temperature").values[s],
                                      value_text("accuracy", r.find(key, "training", "validation_accuracy").values[s]))
                        : " | |\n";
      }
    }
  }
  out += "\nRun each seed alone (the same numbers, read from its stages):\n\n";
  for (const auto& run : r.runs) out += fmt::format("- seed {}: {}\n", run.seed, command_text(run.command));
  return out + "\n";
}

std::string training_section(const MultiSeedResults& r) {
  std::string out = "## Training\n\n";
  out += fmt::format("Every seed trains {} width {} for {} epochs (batch {}, lr {:g}, p = {:g}, {} validation "
                     "images); only the training seed differs. Training time per model (s, from each run's "
                     "`train.jsonl`):\n\n",
                     r.settings.architecture, r.settings.width, r.settings.epochs, r.settings.batch, r.settings.lr,
                     r.settings.p, r.settings.validation);
  out += "| model |";
  std::string rule = "|---|";
  for (auto s : r.seeds) {
    out += fmt::format(" seed {} |", s);
    rule += "---|";
  }
  out += "\n" + rule + "\n";
  for (const auto& key : seed_model_keys()) {
    out += "| " + r.roles.at(key) + " |";
    for (double v : r.find(key, "training", "seconds").values) out += fmt::format(" {:.0f} |", v);
    out += "\n";
  }
  return out + "\n";
}

}  // namespace

std::string multi_seed_report_markdown(const MultiSeedResults& r) {
  std::string out = fmt::format("# Deterministic BNN, MC-Dropout and MC-SpatialDropout over {} training seeds\n\n", r.seeds.size());
  out += fmt::format("Made by `{}` on {} ({} cores), {}, in {:.0f} s ({} stages run, {} found finished over the seeds). "
                     "Training seeds {}; every seed is evaluated with evaluation seed {} and chip seed {}.\n\n",
                     r.run.command, r.run.machine.cpu, r.run.machine.cores, r.run.date, r.run.seconds, r.run.stages_run,
                     r.run.stages_cached, seeds_text(r.seeds), r.settings.eval_seed, r.settings.chip_seed);
  out += fmt::format("Fashion-MNIST; OOD sets: {}. All numbers, each seed's value and the paired tests are in "
                     "`results.json`; each seed's own results in `seed-<s>/results.json`.\n\n",
                     [&] {
                       std::string sets;
                       for (const auto& s : r.settings.ood) sets += (sets.empty() ? "" : ", ") + s;
                       return sets;
                     }());
  out += headline_section(r);
  out += findings_section(r);
  out += comparisons_section(r);
  out += "## Figures\n\n";
  out += fmt::format("![The spread over the seeds]({})\n\n{}\n\n", r.figures.quality.file, r.figures.quality.caption);
  out += fmt::format("![The T axis over the seeds]({})\n\n{}\n\n", r.figures.t_axis.file, r.figures.t_axis.caption);
  out += per_seed_section(r);
  out += training_section(r);
  return out;
}

// ---- figures --------------------------------------------------------------------------------------

namespace {

using DataFiles = std::vector<std::pair<std::string, std::string>>;

const char* model_colour(std::size_t k) {
  static const char* colours[] = {"#555555", "#1f77b4", "#d62728"};
  return colours[std::min<std::size_t>(k, 2)];
}

std::string quoted(const std::string& text) { return fmt::format("'{}'", gnuplot_escaped(text)); }

Figure quality_figure(const MultiSeedResults& r, const fs::path& png) {
  std::vector<std::string> metrics = {"accuracy", "ece"};
  for (const auto& set : r.settings.ood) metrics.push_back("auroc." + set);
  const std::size_t panels = metrics.size();
  const std::size_t cols = std::min<std::size_t>(panels, 3), rows = (panels + cols - 1) / cols;
  std::string script = fmt::format(
      "set terminal pngcairo size {},{} font 'sans,11' noenhanced\nset output 'out.png'\n"
      "set multiplot layout {},{} title {} font 'sans,13'\nset grid ytics\n",
      550 * cols, 430 * rows, rows, cols,
      quoted(fmt::format("{} training seeds: each seed (small points), mean and lowest-highest seed (bars); "
                         "software (filled) and chip (open)",
                         r.seeds.size())));
  script += "set xrange [-0.6:2.6]\nset key off\nset offsets 0, 0, graph 0.08, graph 0.08\n";
  script += "set xtics ('deterministic' 0, 'element' 1, 'spatial' 2)\n";
  DataFiles data;
  for (std::size_t p = 0; p < panels; ++p) {
    const std::string& metric = metrics[p];
    const double scale = percent_metric(metric) ? 100.0 : 1.0;
    std::string mean_rows = "# x mean low high\n", seed_rows = "# x value\n";
    std::string mean_chip = mean_rows, seed_chip = seed_rows;
    for (std::size_t k = 0; k < seed_model_keys().size(); ++k) {
      for (const bool chip : {false, true}) {
        const SeedValues& v = r.find(seed_model_keys()[k], chip ? "chip" : "software", metric);
        const double x = static_cast<double>(k) + (chip ? 0.18 : -0.18);
        (chip ? mean_chip : mean_rows) += fmt::format("{} {:.6g} {:.6g} {:.6g} {}\n", x, scale * v.spread.mean,
                                                      scale * v.spread.min, scale * v.spread.max, k);
        for (double value : v.values) (chip ? seed_chip : seed_rows) += fmt::format("{} {:.6g} {}\n", x + 0.07, scale * value, k);
      }
    }
    data.emplace_back(fmt::format("mean{}.dat", p), mean_rows);
    data.emplace_back(fmt::format("seeds{}.dat", p), seed_rows);
    data.emplace_back(fmt::format("meanchip{}.dat", p), mean_chip);
    data.emplace_back(fmt::format("seedschip{}.dat", p), seed_chip);
    const std::string label = percent_metric(metric) ? "accuracy (%)" : metric == "ece" ? "ECE (after temperature scaling)"
                                                                                        : metric_name(metric) + " (by predictive entropy)";
    script += fmt::format("set title {}\nset ylabel {}\n", quoted(metric_name(metric)), quoted(label));
    script += "set palette defined (0 '#555555', 1 '#1f77b4', 2 '#d62728')\nunset colorbox\nset cbrange [0:2]\n";
    script += fmt::format(
        "plot 'mean{0}.dat' using 1:2:3:4:5 with yerrorbars pt 7 ps 1.6 lw 2 lc palette, "
        "'meanchip{0}.dat' using 1:2:3:4:5 with yerrorbars pt 6 ps 1.6 lw 2 lc palette, "
        "'seeds{0}.dat' using 1:2:3 with points pt 7 ps 0.6 lc palette, "
        "'seedschip{0}.dat' using 1:2:3 with points pt 6 ps 0.6 lc palette\n",
        p);
  }
  script += "unset multiplot\n";
  render_plot(script, data, png, "experiment");
  Figure f;
  f.file = "figures/" + png.filename().string();
  f.caption = fmt::format(
      "Accuracy, ECE and AUROC per OOD set of the three models over the {} training seeds, T = {}: the mean with a bar "
      "from the lowest to the highest seed, and each seed's value beside it; software engine filled, simulated chip "
      "open.",
      r.seeds.size(), r.settings.samples);
  return f;
}

Figure t_axis_figure(const MultiSeedResults& r, const fs::path& png) {
  const std::string& ood = r.settings.ood.front();
  const std::vector<std::string> metrics = {"accuracy", "nll", "auroc." + ood};
  std::string script = fmt::format(
      "set terminal pngcairo size 1650,540 font 'sans,11' noenhanced\nset output 'out.png'\n"
      "set multiplot layout 1,3 title {} font 'sans,13'\nset grid\n",
      quoted(fmt::format("Against T over {} training seeds: mean (line) and lowest-highest seed (band), software",
                         r.seeds.size())));
  script += "set logscale x\nset xlabel 'Monte Carlo samples T (log scale)'\nset key outside bottom center horizontal\n";
  int t_max = 1;
  for (const auto& c : r.curves) {
    for (int t : c.samples) t_max = std::max(t_max, t);
  }
  script += fmt::format("set xrange [0.8:{}]\n", t_max * 1.25);
  DataFiles data;
  for (std::size_t p = 0; p < metrics.size(); ++p) {
    const double scale = percent_metric(metrics[p]) ? 100.0 : 1.0;
    const std::string label = p == 0 ? "accuracy (%)" : p == 1 ? "NLL (nats per image)" : "AUROC against " + ood;
    script += fmt::format("set title {}\nset ylabel {}\n", quoted(metric_name(metrics[p])), quoted(label));
    std::string plot = "plot ";
    for (std::size_t k = 0; k < seed_model_keys().size(); ++k) {
      const std::string& key = seed_model_keys()[k];
      const SeedCurve* curve = nullptr;
      for (const auto& c : r.curves) {
        if (c.model == key && c.metric == metrics[p]) curve = &c;
      }
      if (curve == nullptr) continue;
      std::string rows = "# T mean low high\n";
      for (std::size_t i = 0; i < curve->samples.size(); ++i) {
        std::vector<double> at;
        for (const auto& seed_row : curve->values) at.push_back(scale * seed_row[i]);
        const SeedSpread s = spread_of(at);
        rows += fmt::format("{} {:.6g} {:.6g} {:.6g}\n", curve->samples[i], s.mean, s.min, s.max);
      }
      const std::string file = fmt::format("t{}-{}.dat", p, k);
      data.emplace_back(file, rows);
      plot += plot == "plot " ? "" : ", ";
      if (curve->samples.size() == 1) {  // the deterministic network: one pass, the same at every T
        std::vector<double> at;
        for (const auto& seed_row : curve->values) at.push_back(scale * seed_row[0]);
        const SeedSpread s = spread_of(at);
        plot += fmt::format("{:.6g} with lines dt 2 lw 2 lc rgb '{}' title {}, {:.6g} with lines dt 3 lw 1 lc rgb '{}' "
                            "notitle, {:.6g} with lines dt 3 lw 1 lc rgb '{}' notitle",
                            s.mean, model_colour(k), quoted(r.roles.at(key) + " (one pass; dotted: seed range)"), s.min,
                            model_colour(k), s.max, model_colour(k));
      } else {
        plot += fmt::format("'{0}' using 1:3:4 with filledcurves fs transparent solid 0.2 lc rgb '{1}' notitle, "
                            "'{0}' using 1:2 with linespoints lw 2 pt 7 lc rgb '{1}' title {2}",
                            file, model_colour(k), quoted(r.roles.at(key)));
      }
    }
    script += plot + "\n";
  }
  script += "unset multiplot\n";
  render_plot(script, data, png, "experiment");
  Figure f;
  f.file = "figures/" + png.filename().string();
  f.caption = fmt::format("Accuracy, NLL and AUROC against {} as T grows (software engine, {} test images per point), "
                          "mean over the {} seeds with the band from the lowest to the highest seed.",
                          ood, test_images_text(r.settings.curve_test_count), r.seeds.size());
  return f;
}

}  // namespace

SeedFigures write_multi_seed_figures(const MultiSeedResults& results, const fs::path& dir) {
  return {quality_figure(results, dir / "seeds_quality.png"), t_axis_figure(results, dir / "seeds_t_axis.png")};
}

// ---- the run --------------------------------------------------------------------------------------

namespace {

// `spinbayes experiment` of one seed alone: the options that differ from the defaults, and the
// seed's directory and the common models directory.
std::vector<std::string> seed_command(const ExperimentOptions& seed_options) {
  return with_hardware({"experiment", "--seeds", "1", "--seed", std::to_string(seed_options.seed), "--out",
                        seed_options.out.string(), "--models", seed_options.models.string()},
                       seed_options.hardware);
}

}  // namespace

namespace {

// One seed's whole experiment as one work item of distribute(): under mpirun the seeds run on
// whichever ranks ask (each into its own OUT/seed-<s>, which the ranks must share: one host or a
// shared file system), and rank 0 gathers their results as JSON (doubles written to round trip).
class SeedExperiments : public WorkItems {
 public:
  SeedExperiments(const ExperimentOptions& whole, const std::vector<ExperimentOptions>& seeds)
      : whole_(whole), seeds_(seeds), done_(seeds.size()) {}
  // The seeds' locks before OUT's, so that OUT, if this run created it and the seeds wrote
  // nothing, is left empty and removed with its own (DirectoryLock).
  ~SeedExperiments() override {
    while (!locks_.empty()) locks_.pop_back();
  }
  // Rank 0, before any work: OUT's and every seed directory's locks, held for the whole run, and
  // no other run writing a model directory the seeds train into. A conflict stops every rank at
  // once (distribute's failure path), not when some rank reaches it.
  std::vector<std::size_t> plan() override {
    locks_.push_back(std::make_unique<DirectoryLock>(whole_.out, "--out", "experiment"));
    for (const ExperimentOptions& s : seeds_) {
      locks_.push_back(std::make_unique<DirectoryLock>(s.out, "--out", "experiment"));
      const ExperimentPlan plan = plan_experiment(s);
      std::vector<fs::path> dirs;
      for (const PlannedModel& m : plan.models) dirs.push_back(m.dir);
      if (plan.shared) dirs.push_back(plan.shared->dir);
      std::error_code ec;
      for (const fs::path& dir : dirs) {
        if (fs::is_directory(dir, ec)) {
          const DirectoryLock probe(dir, "--models", "training run");
        }
      }
    }
    std::vector<std::size_t> items(seeds_.size());
    for (std::size_t k = 0; k < items.size(); ++k) items[k] = k;
    return items;
  }
  void prepare() override {}
  std::string compute(std::size_t k) override {
    const ExperimentOptions& s = seeds_.at(k);
    if (!whole_.quiet) {
      std::fprintf(stderr, "experiment: seed %llu of %zu seeds, into %s\n", static_cast<unsigned long long>(s.seed),
                   seeds_.size(), s.out.c_str());
    }
    const ExperimentResult r = run_experiment(s);  // its directory locked by rank 0
    return json{{"results", r.results},
                {"reused_models", r.reused_models},
                {"stages_run", r.stages_run},
                {"stages_cached", r.stages_cached},
                {"seconds", r.seconds}}
        .dump();
  }
  bool store(std::size_t k, const std::string& bytes) override {
    try {
      const json j = json::parse(bytes);
      ExperimentResult r;
      r.results = j.at("results").get<ExperimentResults>();
      r.reused_models = j.at("reused_models").get<std::vector<std::string>>();
      r.stages_run = j.at("stages_run").get<int>();
      r.stages_cached = j.at("stages_cached").get<int>();
      r.seconds = j.at("seconds").get<double>();
      done_.at(k) = std::move(r);
    } catch (const json::exception& e) {
      throw Error(fmt::format("experiment: seed {}'s results do not parse: {}", seeds_.at(k).seed,
                              printable_head(e.what())));
    }
    return true;
  }
  const std::vector<std::optional<ExperimentResult>>& done() const { return done_; }

 private:
  const ExperimentOptions& whole_;
  const std::vector<ExperimentOptions>& seeds_;
  std::vector<std::unique_ptr<DirectoryLock>> locks_;
  std::vector<std::optional<ExperimentResult>> done_;
};

}  // namespace

MultiSeedResult run_multi_seed_experiment(const ExperimentOptions& o, const Ranks& ranks) {
  o.validate();
  const auto start = std::chrono::steady_clock::now();
  std::vector<ExperimentOptions> seed_options;
  std::vector<std::vector<std::string>> commands;
  for (int k = 0; k < o.seeds; ++k) {
    ExperimentOptions s = o;
    s.seeds = 1;
    s.seed = o.seed + static_cast<std::uint64_t>(k);
    s.out = o.out / fmt::format("seed-{}", s.seed);
    if (o.models.empty()) {
      s.models = o.out / "models";
      s.own_models_dir = true;
    }
    std::vector<std::string> command = seed_command(s);
    if (o.quick) command.insert(command.begin() + 1, "--quick");
    s.command = shell_line(command);
    seed_options.push_back(std::move(s));
    commands.push_back(std::move(command));
  }
  SeedExperiments work(o, seed_options);
  distribute(ranks, work);
  MultiSeedResult result;
  if (!ranks.root()) return result;  // rank 0 writes the whole
  std::vector<std::uint64_t> seeds;
  std::vector<ExperimentResults> per_seed;
  std::vector<SeedRun> runs;
  for (std::size_t k = 0; k < seed_options.size(); ++k) {
    const ExperimentOptions& s = seed_options[k];
    if (!work.done()[k]) throw Error(fmt::format("experiment: seed {} gave no results", s.seed));
    const ExperimentResult& r = *work.done()[k];
    seeds.push_back(s.seed);
    per_seed.push_back(r.results);
    runs.push_back({s.seed, s.out.filename().string(), commands[k], r.seconds, r.stages_run, r.stages_cached, r.reused_models});
    result.stages_run += r.stages_run;
    result.stages_cached += r.stages_cached;
  }
  MultiSeedResults& results = result.results;
  results = aggregate_seeds(seeds, per_seed);
  results.runs = runs;
  std::error_code ec;
  fs::create_directories(o.out / "figures", ec);
  if (ec) throw Error("--out: cannot create '" + printable((o.out / "figures").string()) + "': " + ec.message());
  results.figures = write_multi_seed_figures(results, o.out / "figures");
  result.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  results.run = per_seed.front().run;
  results.run.command = o.command;
  results.run.seconds = result.seconds;
  results.run.stages_run = result.stages_run;
  results.run.stages_cached = result.stages_cached;
  results.run.reused_models.clear();
  for (const auto& run : runs) {
    results.run.reused_models.insert(results.run.reused_models.end(), run.reused_models.begin(), run.reused_models.end());
  }
  results.run.date = per_seed.back().run.date;
  write_file_atomic(o.out / "results.json", json(results).dump(1) + "\n");
  write_file_atomic(o.out / "report.md", multi_seed_report_markdown(results));
  return result;
}

}  // namespace spinbayes
