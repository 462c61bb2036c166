#pragma once
// `spinbayes experiment`: its options (the --quick preset and the overrides) and its run.
#include <CLI/CLI.hpp>
#include <memory>
#include <string>

#include "eval/experiment.h"
#include "population/ranks.h"

namespace spinbayes {

struct ExperimentCommand {
  CLI::App* app = nullptr;
  ExperimentOptions options;
  std::string t_values, extra_p, sweep_values, ood, runs;
};

// Registers the subcommand. The defaults are the full run's, or the quick run's when --quick is
// among the arguments, so that any option given overrides the preset.
std::unique_ptr<ExperimentCommand> add_experiment_command(CLI::App& app, int argc, char** argv);

// Before MPI starts (the command starts itself again once, with OMP_WAIT_POLICY=passive, unless
// the environment sets a policy).
void restart_with_passive_openmp(char** argv);

// Runs it once parsed; throws Error on bad input. Under mpirun (2 or more seeds) the seeds are
// spread over the ranks and rank 0 writes the whole.
void run_experiment_command(ExperimentCommand& command, int argc, char** argv, const Ranks& ranks);

}  // namespace spinbayes
