#pragma once
// `spinbayes test-chip`: a field test of simulated chips by their own uncertainty, with fault
// campaigns, on one process or over mpirun's ranks.
#include <CLI/CLI.hpp>
#include <memory>

#include "eval/chip_test.h"

namespace spinbayes {

struct TestChipCommand {
  CLI::App* app = nullptr;
  TestChipOptions options;
  bool quiet = false;
};

std::unique_ptr<TestChipCommand> add_test_chip_command(CLI::App& app);

// Runs it once parsed, on every rank; only rank 0 prints and writes. Throws Error on bad input.
void run_test_chip_command(TestChipCommand& command, const Ranks& ranks);

}  // namespace spinbayes
