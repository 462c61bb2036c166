#pragma once
// `spinbayes chips`: a population of simulated chips, on one process or over mpirun's ranks.
#include <CLI/CLI.hpp>
#include <memory>
#include <string>

#include "eval/population.h"

namespace spinbayes {

struct ChipsCommand {
  CLI::App* app = nullptr;
  ChipsOptions options;
  std::string ood = "mnist", score = "entropy", calibration;
  bool quiet = false;
};

std::unique_ptr<ChipsCommand> add_chips_command(CLI::App& app);

// Runs it once parsed, on every rank; only rank 0 prints and writes. Throws Error on bad input.
void run_chips_command(ChipsCommand& command, const Ranks& ranks);

}  // namespace spinbayes
