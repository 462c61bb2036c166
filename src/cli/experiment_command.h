#pragma once
// `spinbayes experiment`: its options (the --quick preset and the overrides) and its run.
#include <CLI/CLI.hpp>
#include <memory>
#include <string>

#include "eval/experiment.h"

namespace spinbayes {

struct ExperimentCommand {
  CLI::App* app = nullptr;
  ExperimentOptions options;
  std::string t_values, extra_p, sweep_values, ood, runs;
};

// Registers the subcommand. The defaults are the full run's, or the quick run's when --quick is
// among the arguments, so that any option given overrides the preset.
std::unique_ptr<ExperimentCommand> add_experiment_command(CLI::App& app, int argc, char** argv);

// Runs it once parsed; throws Error on bad input.
void run_experiment_command(ExperimentCommand& command, int argc, char** argv);

}  // namespace spinbayes
