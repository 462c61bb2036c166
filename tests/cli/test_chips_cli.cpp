// `spinbayes chips` and `sweep` end to end: one process against mpirun's ranks, resuming after a
// stop or a kill, and the one-line errors of bad input.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "cli_runner.h"

namespace fs = std::filesystem;
using spinbayes::expect_cli_error;
using spinbayes::run_cli;
using spinbayes::run_shell;

namespace {

fs::path fresh_dir(const std::string& name) { return spinbayes::fresh_test_dir("chips", name); }

std::string read_file(const fs::path& path) { return spinbayes::file_bytes(path); }

const fs::path& tiny_run() { return spinbayes::tiny_spatial_run(); }

std::string chips_args(const fs::path& out, int chips = 6, int threads = 1) {
  return "chips --model " + tiny_run().string() + " --chips " + std::to_string(chips) + " --threads " +
         std::to_string(threads) +
         " --samples 3 --test-count 60 --ood mnist,gaussian --ood-count 40 --validation-count 50 --quiet "
         "--spec \"accuracy>=0.1,auroc.mnist>=0.3\" --out " + out.string();
}

// The launcher as a test runs it: as root it needs --allow-run-as-root, and more ranks than cores
// --oversubscribe.
std::string mpirun(int ranks) {
  return "mpirun --allow-run-as-root --oversubscribe -np " + std::to_string(ranks) + " ";
}

const std::vector<std::string> kOutputs = {"chips.csv", "chips.json", "chips.png", "population.json",
                                           "chips/software.json", "chips/chip-1.json", "chips/chip-6.json"};

void expect_same_outputs(const fs::path& a, const fs::path& b) {
  for (const auto& name : kOutputs) {
    ASSERT_TRUE(fs::exists(a / name)) << a / name;
    ASSERT_TRUE(fs::exists(b / name)) << b / name;
    EXPECT_EQ(read_file(a / name), read_file(b / name)) << name << " differs between " << a << " and " << b;
  }
}

TEST(ChipsCli, RanksGiveTheSameBytesAsOneProcess) {
  const auto dir = fresh_dir("ranks");
  auto r = run_cli(chips_args(dir / "one"));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("6 chips evaluated now, 0 stored before"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("yield"), std::string::npos) << r.output;
  const std::string csv = read_file(dir / "one" / "chips.csv");
  EXPECT_EQ(csv.rfind("chip,accuracy,nll,ece,", 0), 0u) << csv;
  EXPECT_NE(csv.find("\nsoftware,"), std::string::npos);
  EXPECT_NE(csv.find("\n6,"), std::string::npos);
  const std::string json = read_file(dir / "one" / "chips.json");
  for (const char* key : {"\"summary\"", "\"p95\"", "\"yield\"", "\"ci_low\"", "Clopper-Pearson"}) {
    EXPECT_NE(json.find(key), std::string::npos) << key;
  }
  // Chips differ from one another (their own device variation).
  EXPECT_NE(read_file(dir / "one" / "chips/chip-1.json"), read_file(dir / "one" / "chips/chip-2.json"));

  r = run_shell(mpirun(2) + SPINBAYES_CLI_PATH " " + chips_args(dir / "two"));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  expect_same_outputs(dir / "one", dir / "two");
  r = run_shell(mpirun(3) + SPINBAYES_CLI_PATH " " + chips_args(dir / "three", 6, 2));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  expect_same_outputs(dir / "one", dir / "three");
  fs::remove_all(dir);
}

TEST(ChipsCli, AStoppedOrKilledRunResumesToTheSameOutput) {
  const auto dir = fresh_dir("resume");
  ASSERT_EQ(run_cli(chips_args(dir / "whole")).exit_code, 0);

  auto r = run_cli(chips_args(dir / "stopped") + " --stop-after 2");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("stopped after 2 new chips"), std::string::npos) << r.output;
  EXPECT_FALSE(fs::exists(dir / "stopped" / "chips.csv"));
  r = run_cli(chips_args(dir / "stopped"));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("4 chips evaluated now, 2 stored before"), std::string::npos) << r.output;
  expect_same_outputs(dir / "whole", dir / "stopped");

  // Killed (SIGKILL) during a run of 40 chips, then the first six finished over two ranks.
  r = run_shell("timeout -s KILL 1.5 " SPINBAYES_CLI_PATH " " + chips_args(dir / "killed", 40));
  EXPECT_EQ(r.exit_code, 128 + 9) << r.output;
  EXPECT_FALSE(fs::exists(dir / "killed" / "chips.csv"));
  r = run_shell(mpirun(2) + SPINBAYES_CLI_PATH " " + chips_args(dir / "killed"));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  expect_same_outputs(dir / "whole", dir / "killed");
  // mpirun stopped by a signal (its ranks with it), then the rest on one process.
  r = run_shell("timeout -s TERM 2 " + mpirun(2) + SPINBAYES_CLI_PATH " " + chips_args(dir / "terminated"));
  r = run_cli(chips_args(dir / "terminated"));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  expect_same_outputs(dir / "whole", dir / "terminated");

  // More chips later: the first six are reused.
  r = run_cli(chips_args(dir / "whole", 8));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("2 chips evaluated now, 6 stored before"), std::string::npos) << r.output;
  fs::remove_all(dir);
}

TEST(ChipsCli, BadInputIsOneLineAndWritesNothing) {
  const auto dir = fresh_dir("bad");
  const std::string base = "chips --model " + tiny_run().string() + " --test-count 40 --validation-count 50 --threads 1 "
                           "--quiet";
  const std::string run = base + " --ood gaussian";
  const std::string model = run + " --samples 2";
  expect_cli_error(run_cli(model + " --chips 0 --out " + (dir / "a").string()), {"--chips", "must be in 1..100000"});
  expect_cli_error(run_cli(model + " --chips -3 --out " + (dir / "a").string()), {"--chips"});
  expect_cli_error(run_cli(model + " --chips 2 --spec \"accuracy>>0.9\" --out " + (dir / "a").string()),
                        {"--spec", "'>0.9' is not a finite number"});
  expect_cli_error(run_cli(model + " --chips 2 --spec accuracy --out " + (dir / "a").string()),
                        {"--spec", "no comparison"});
  expect_cli_error(run_cli(model + " --chips 2 --spec \"auroc.mnist>=0.9\" --out " + (dir / "a").string()),
                        {"--spec", "unknown metric 'auroc.mnist'", "auroc.gaussian"});
  expect_cli_error(run_cli(model + " --chips 2 --first-seed 18446744073709551615 --out " + (dir / "a").string()),
                        {"--first-seed", "would pass"});
  EXPECT_FALSE(fs::exists(dir / "a"));
  // More ranks than chips: one line from rank 0 (mpirun adds its own note of the exit status).
  auto r = run_shell(mpirun(3) + SPINBAYES_CLI_PATH " " + model + " --chips 2 --out " + (dir / "a").string());
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.output.find("spinbayes: error: mpirun: 3 ranks for 2 chips"), std::string::npos) << r.output;
  EXPECT_EQ(r.output.find("spinbayes: error"), r.output.rfind("spinbayes: error")) << "one error line: " << r.output;
  EXPECT_FALSE(fs::exists(dir / "a"));
  // Other commands are one process's work.
  r = run_shell(mpirun(2) + SPINBAYES_CLI_PATH " hw");
  EXPECT_NE(r.output.find("spinbayes: error: mpirun: hw runs as one process"), std::string::npos) << r.output;

  // A directory of another configuration's chips, or of anything else, is refused as it is.
  ASSERT_EQ(run_cli(model + " --chips 2 --out " + (dir / "pop").string()).exit_code, 0);
  const std::string csv = read_file(dir / "pop" / "chips.csv");
  expect_cli_error(run_cli(run + " --chips 2 --samples 3 --out " + (dir / "pop").string()),
                        {"--out", "holds the chips of another model or configuration", "samples is 2 there, 3 here"});
  expect_cli_error(run_cli(model + " --chips 2 --hw ideal --out " + (dir / "pop").string()),
                        {"--out", "another model or configuration", "hardware_config"});
  expect_cli_error(run_cli(model + " --chips 2 --calibration none --out " + (dir / "pop").string()),
                        {"--out", "another model or configuration", "calibration"});
  EXPECT_EQ(read_file(dir / "pop" / "chips.csv"), csv);
  expect_cli_error(run_cli(model + " --chips 2 --out " + tiny_run().string()),
                        {"--out", "is not empty and holds no chip population"});
  // A record that is not one, or of another population, names its file.
  std::ofstream(dir / "pop" / "chips" / "chip-2.json") << "{\"format\":\"spinbayes-chip\"";
  expect_cli_error(run_cli(model + " --chips 2 --out " + (dir / "pop").string()), {"chip-2.json", "not valid JSON"});
  fs::copy_file(dir / "pop" / "chips" / "chip-1.json", dir / "pop" / "chips" / "chip-2.json",
                fs::copy_options::overwrite_existing);
  expect_cli_error(run_cli(model + " --chips 2 --out " + (dir / "pop").string()),
                        {"chip-2.json", "holds the record of another chip"});
  EXPECT_EQ(read_file(dir / "pop" / "chips.csv"), csv);

  // Values no evaluation gives, or metrics this population has not, in a record.
  const fs::path chip1 = dir / "pop" / "chips" / "chip-1.json";
  const std::string original = read_file(chip1);
  std::string record = original;
  const auto at = record.find("\"accuracy\":") + 11;
  std::ofstream(chip1) << record.substr(0, at) + "7.5," + record.substr(record.find(',', at) + 1);
  expect_cli_error(run_cli(model + " --chips 2 --out " + (dir / "pop").string()),
                   {"chip-1.json", "metrics.accuracy = 7.5 is outside [0, 1]"});
  record.insert(record.find("\"metrics\":{") + 11, "\"bogus\":1,");
  std::ofstream(chip1) << record;
  expect_cli_error(run_cli(model + " --chips 2 --out " + (dir / "pop").string()),
                   {"chip-1.json", "holds metrics this population has not"});
  std::ofstream(chip1) << original;
  // An output that is a link elsewhere is refused, the file it points to untouched.
  std::ofstream(dir / "victim") << "precious";
  fs::remove(dir / "pop" / "chips.csv");
  fs::create_symlink(dir / "victim", dir / "pop" / "chips.csv");
  expect_cli_error(run_cli(model + " --chips 2 --out " + (dir / "pop").string()),
                   {"chips.csv: is a symbolic link; a population writes only its own files"});
  EXPECT_EQ(read_file(dir / "victim"), "precious");
  // A run that fails before its first chip leaves no configuration to refuse the corrected one.
  expect_cli_error(run_cli(base + " --samples 2 --chips 2 --ood idx:" + (dir / "nosuch").string() + " --out " +
                           (dir / "fixed").string()),
                   {"nosuch"});
  EXPECT_FALSE(fs::exists(dir / "fixed" / "population.json"));
  EXPECT_EQ(run_cli(model + " --chips 2 --out " + (dir / "fixed").string()).exit_code, 0);
  // Options: an OOD set twice, an empty --hw, a chips/ that is a file, a bound far out.
  expect_cli_error(run_cli(base + " --samples 2 --chips 2 --ood gaussian,gaussian --out " + (dir / "b").string()),
                   {"ood: 'gaussian' is given twice"});
  expect_cli_error(run_cli(model + " --chips 2 --hw '' --out " + (dir / "b").string()), {"--hw: empty"});
  fs::create_directories(dir / "c");
  std::ofstream(dir / "c" / "chips") << "x";
  expect_cli_error(run_cli(model + " --chips 2 --out " + (dir / "c").string()), {"--out: ", "chips: "});
  EXPECT_EQ(run_cli(model + " --chips 2 --spec \"accuracy>=-1e308\" --out " + (dir / "fixed").string()).exit_code, 0);

  // A second run into a population that another one is writing.
  // The first run starts LibTorch before it takes the lock: on a loaded machine that takes seconds,
  // so the second one waits for its population.json, and the first is stopped once checked.
  run_shell("timeout -s KILL 60 " SPINBAYES_CLI_PATH " " + model + " --chips 4000 --out " + (dir / "busy").string() +
            " > /dev/null 2>&1 &");
  for (int i = 0; i < 3000 && !fs::exists(dir / "busy" / "population.json"); ++i) ::usleep(20000);
  ASSERT_TRUE(fs::exists(dir / "busy" / "population.json"));
  expect_cli_error(run_cli(model + " --chips 2 --out " + (dir / "busy").string()),
                   {"--out", "another chip population is writing into this directory"});
  run_shell("pkill -KILL -f -- '--chips 4000 --out " + (dir / "busy").string() + "'; sleep 1");
  fs::remove_all(dir);
}

TEST(ChipsCli, SweepOnRanksEqualsOneProcess) {
  const auto dir = fresh_dir("sweep");
  const std::string sweep = "sweep --model " + tiny_run().string() +
                            " --param mtj.sigma_rp --values 0,0.1 --chips 3 --samples 2 --test-count 40 --ood gaussian "
                            "--threads 1 --out ";
  auto r = run_cli(sweep + (dir / "one").string());
  ASSERT_EQ(r.exit_code, 0) << r.output;
  r = run_shell(mpirun(2) + SPINBAYES_CLI_PATH " " + sweep + (dir / "two").string());
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_EQ(read_file(dir / "one.csv"), read_file(dir / "two.csv"));
  EXPECT_EQ(read_file(dir / "one.png"), read_file(dir / "two.png"));
  EXPECT_NE(read_file(dir / "one.csv").find("mtj.sigma_rp,0.1,3,"), std::string::npos);
  fs::remove_all(dir);
}

TEST(ChipsCli, EvalOnSeveralChipsSplitsTheUncertainty) {
  const auto dir = fresh_dir("split");
  const std::string eval = "eval --model " + tiny_run().string() + " --samples 3 --test-count 60 --ood gaussian --threads 1";
  ASSERT_EQ(run_cli(eval + " --backend engine --json " + (dir / "engine.json").string()).exit_code, 0);
  auto r = run_cli(eval + " --backend cim --hw ideal --chips 3 --json " + (dir / "ideal.json").string());
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("uncertainty over 3 chips (seeds 1..3) x T = 3"), std::string::npos) << r.output;
  r = run_cli(eval + " --backend cim --chips 3 --json " + (dir / "default.json").string());
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const auto engine = nlohmann::json::parse(read_file(dir / "engine.json"));
  const auto ideal = nlohmann::json::parse(read_file(dir / "ideal.json"));
  const auto chips = nlohmann::json::parse(read_file(dir / "default.json"));
  // Ideal chips are the engine three times over: the same predictive, nothing between chips.
  EXPECT_EQ(ideal["accuracy"], engine["accuracy"]);
  EXPECT_NEAR(ideal["nll"].get<double>(), engine["nll"].get<double>(), 1e-9);
  EXPECT_NEAR(ideal["uncertainty_split"]["variance"]["chips"].get<double>(), 0.0, 1e-12);
  EXPECT_NEAR(ideal["uncertainty_split"]["mutual_information"]["chips"].get<double>(), 0.0, 1e-12);
  EXPECT_NEAR(ideal["mean_mutual_information"].get<double>(), engine["mean_mutual_information"].get<double>(), 1e-9);
  // Chips with device variation add a part of their own; the parts add up to the total.
  const auto& split = chips["uncertainty_split"];
  EXPECT_EQ(chips["chips"], 3);
  EXPECT_GT(split["variance"]["chips"].get<double>(), 0.0);
  EXPECT_NEAR(split["variance"]["masks"].get<double>() + split["variance"]["chips"].get<double>(),
              split["variance"]["total"].get<double>(), 1e-12);
  EXPECT_NEAR(split["mutual_information"]["masks"].get<double>() + split["mutual_information"]["chips"].get<double>(),
              split["mutual_information"]["total"].get<double>(), 1e-9);
  EXPECT_EQ(split["per_input"]["variance_chips"].size(), 60u);
  // The pooled predictive's mutual information is the split's total.
  EXPECT_NEAR(chips["mean_mutual_information"].get<double>(), split["mutual_information"]["total"].get<double>(), 1e-9);
  expect_cli_error(run_cli(eval + " --backend engine --chips 2"), {"--chips: several chips need --backend cim"});
  expect_cli_error(run_cli(eval + " --backend cim --chips 0"), {"--chips: must be in 1..1000, got 0"});
  expect_cli_error(run_cli(eval + " --backend cim --chips 2 --chip-seed 18446744073709551615"), {"--chip-seed", "would pass"});
  fs::remove_all(dir);
}

}  // namespace
