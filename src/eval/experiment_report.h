#pragma once
// The experiment's figures (experiment_figures.cpp) and report.md (experiment_markdown.cpp), drawn
// from its results alone (eval/experiment_results.h), so that a resumed run writes the same report
// as an uninterrupted one.
#include <filesystem>
#include <string>

#include "eval/experiment_results.h"

namespace spinbayes {

// Writes the PNGs (gnuplot, each atomically) into `dir` and returns, per figure, its file name
// relative to the experiment directory and a caption. The energy chart is not among them: it is
// `spinbayes cost --plot` of the spatial model.
ExperimentFigures write_experiment_figures(const ExperimentResults& results, const std::filesystem::path& dir);

// report.md: how and where it was made, tables per model in software and on the chip, the cost
// table, the figures, and the command that reproduces each number.
std::string experiment_report_markdown(const ExperimentResults& results);

// How figures and report write an image count (0: all) and the rates of the spatial models.
std::string test_images_text(int n);
std::string spatial_rates_text(const ExperimentResults& results);

}  // namespace spinbayes
