#pragma once
// The experiment's figures and report.md, drawn from its results JSON alone (eval/experiment.h),
// so that a resumed run writes the same report as an uninterrupted one.
#include <filesystem>
#include <string>

#include <nlohmann/json.hpp>

namespace spinbayes {

// Writes the PNGs (gnuplot, each atomically) into `dir` and returns, per figure, its file name
// relative to the experiment directory and a caption: {"reliability": {"file", "caption"}, ...}.
nlohmann::json write_experiment_figures(const nlohmann::json& results, const std::filesystem::path& dir);

// report.md: how and where it was made, tables per model in software and on the chip, the cost
// table, the figures, and the command that reproduces each number.
std::string experiment_report_markdown(const nlohmann::json& results);

}  // namespace spinbayes
