// `spinbayes test-chip` end to end: one process against mpirun's ranks, every coverage figure
// recomputed from the per-chip statistics it prints, and the one-line errors of bad input.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <set>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "cli_runner.h"

namespace fs = std::filesystem;
using nlohmann::json;
using spinbayes::expect_cli_error;
using spinbayes::run_cli;
using spinbayes::run_shell;

namespace {

fs::path fresh_dir(const std::string& name) { return spinbayes::fresh_test_dir("test-chip", name); }

const fs::path& tiny_run() { return spinbayes::tiny_spatial_run(); }

std::string args(const fs::path& out, const std::string& extra = "") {
  return "test-chip --model " + tiny_run().string() +
         " --vectors 8 --candidates 30 --ranking-chips 3 --chips 6 --samples 4 --threads 1 --quiet --random-baseline "
         "--faults module_stuck_ap:0.4,dead_tile:1,tmr_drift:-0.5 " + extra + " --out " + out.string();
}

std::string mpirun(int ranks) { return "mpirun --allow-run-as-root --oversubscribe -np " + std::to_string(ranks) + " "; }

// mu and the sample sigma of the reference chips' statistics.
std::pair<double, double> moments(const std::vector<double>& v) {
  double mu = 0.0, ss = 0.0;
  for (double x : v) mu += x / static_cast<double>(v.size());
  for (double x : v) ss += (x - mu) * (x - mu);
  return {mu, std::sqrt(ss / static_cast<double>(v.size() - 1))};
}

}  // namespace

TEST(TestChipCli, RanksGiveTheSameBytesAndEveryCoverageRecomputes) {
  const auto dir = fresh_dir("ranks");
  auto r = run_cli(args(dir / "one"));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("test vectors: 8 of 200 training images"), std::string::npos) << r.output;
  // Three ranks for two or three items per phase: the extra rank waits and stops.
  r = run_shell(mpirun(3) + SPINBAYES_CLI_PATH " " + args(dir / "three"));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  for (const char* name : {"test_chip.json", "test_chip.csv", "vectors.csv", "test_chip.png"}) {
    EXPECT_EQ(spinbayes::file_bytes(dir / "one" / name), spinbayes::file_bytes(dir / "three" / name)) << name;
  }

  const json j = json::parse(spinbayes::file_bytes(dir / "one" / "test_chip.json"));
  const double k = j.at("k").get<double>();
  EXPECT_EQ(k, 3.0);
  // The vectors: 8 distinct training images, best first.
  const json& vectors = j.at("test_vectors");
  ASSERT_EQ(vectors.size(), 8u);
  std::set<int> images;
  for (std::size_t i = 0; i < vectors.size(); ++i) {
    const int image = vectors[i].at("training_image").get<int>();
    EXPECT_TRUE(image >= 0 && image < 200) << image;
    images.insert(image);
    const double mean = vectors[i].at("entropy_mean").get<double>(), sd = vectors[i].at("entropy_sd").get<double>();
    EXPECT_NEAR(vectors[i].at("repeatability").get<double>(), mean / (sd + 1e-3), 1e-9 * (1.0 + mean / (sd + 1e-3)));
    if (i > 0) {
      EXPECT_LE(vectors[i].at("repeatability").get<double>(), vectors[i - 1].at("repeatability").get<double>());
    }
  }
  EXPECT_EQ(images.size(), 8u);
  ASSERT_EQ(j.at("random_vectors").size(), 8u);

  for (const char* selection : {"ranked", "random"}) {
    const json& ref = j.at("reference").at(selection);
    const auto [mu, sigma] = moments(ref.at("statistic").get<std::vector<double>>());
    const json& at_k = ref.at("by_vectors").back();
    ASSERT_EQ(at_k.at("vectors").get<int>(), 8);
    EXPECT_NEAR(at_k.at("mu").get<double>(), mu, 1e-12);
    EXPECT_NEAR(at_k.at("sigma").get<double>(), sigma, 1e-12);
    // Every cell's coverage at K (and the false alarms) from its chips' statistics.
    std::vector<json> cells = {j.at("false_alarms")};
    for (const json& c : j.at("cells")) cells.push_back(c);
    for (const json& c : cells) {
      const json& s = c.at(selection);
      const std::vector<double> stats = s.at("statistic").get<std::vector<double>>();
      ASSERT_EQ(stats.size(), 6u);
      int outside = 0;
      for (double x : stats) outside += std::fabs(x - mu) > k * sigma;
      EXPECT_EQ(s.at("flagged").back().at("flagged").get<int>(), outside) << c.dump();
    }
  }
  // The fault-free hold-out changes nothing against itself; a dead tile of a two-layer array is seen.
  EXPECT_EQ(j.at("false_alarms").at("ranked").at("changed_outputs").get<double>(), 0.0);
  const json& dead = j.at("cells")[1];
  ASSERT_EQ(dead.at("fault").get<std::string>(), "dead_tile");
  EXPECT_GT(dead.at("ranked").at("flagged").back().at("flagged").get<int>(), 0);
  EXPECT_GT(dead.at("random").at("changed_outputs").get<double>(), 0.0);
  // The table: a header, the false alarms, then a row per cell.
  const std::string csv = spinbayes::file_bytes(dir / "one" / "test_chip.csv");
  EXPECT_EQ(std::count(csv.begin(), csv.end(), '\n'), 1 + 4 * 2 * 4);  // 4 rows of (ranked, random) x 4 vector counts
}

TEST(TestChipCli, AStoppedRunResumesToTheSameBytes) {
  const auto dir = fresh_dir("resume");
  ASSERT_EQ(run_cli(args(dir / "full")).exit_code, 0);
  // Stopped in the ranking, then in the campaign, then finished: only the missing chips are run.
  for (const char* stop : {" --stop-after 2", " --stop-after 9"}) {
    const auto r = run_cli(args(dir / "part", stop));
    ASSERT_EQ(r.exit_code, 0) << r.output;
    EXPECT_NE(r.output.find("stopped (--stop-after)"), std::string::npos) << r.output;
    EXPECT_FALSE(fs::exists(dir / "part" / "test_chip.json"));
  }
  EXPECT_EQ(std::distance(fs::directory_iterator(dir / "part" / "chips"), fs::directory_iterator{}), 11);
  ASSERT_EQ(run_cli(args(dir / "part")).exit_code, 0);
  for (const char* name : {"test_chip.json", "test_chip.csv", "vectors.csv", "test_chip.png"}) {
    EXPECT_EQ(spinbayes::file_bytes(dir / "full" / name), spinbayes::file_bytes(dir / "part" / name)) << name;
  }
  // Another configuration into the same directory, or a record of another test: refused as it is.
  expect_cli_error(run_cli(args(dir / "part", "--seed 2")), {"--out", "holds the chips of another test", "seed is 1 there, 2 here"});
  std::ofstream(dir / "full" / "chips" / "chip-3.json") << R"({"test":"0123456789abcdef","entropy":[],"predicted":[]})";
  std::filesystem::remove(dir / "full" / "test_chip.json");
  expect_cli_error(run_cli(args(dir / "full")), {"chip-3.json", "a chip of another test"});
}

TEST(TestChipCli, BadInputIsOneLineAndWritesNothing) {
  const auto dir = fresh_dir("bad");
  const auto out = dir / "out";
  const std::string model = "test-chip --model " + tiny_run().string() + " --quiet ";
  const std::string base = model + "--ranking-chips 2 --chips 2 --samples 2 ";
  const auto bad = [&](const std::string& extra, const std::vector<std::string>& parts) {
    expect_cli_error(run_cli(base + extra + " --out " + out.string()), parts);
    EXPECT_FALSE(fs::exists(out)) << extra;
  };
  bad("--faults stuck_cells", {"--faults", "unknown fault class 'stuck_cells'", "module_stuck_p"});
  bad("--faults module_stuck_p:0.9", {"--faults", "module_stuck_p: severity 0.9 is outside [1e-06, 0.5]"});
  bad("--faults dead_tile:0", {"--faults", "outside"});
  bad("--faults dead_tile:1.5", {"--faults", "not a whole number"});
  bad("--faults module_ic0:abc", {"--faults", "'abc' is not a number"});
  bad("--faults ,", {"--faults", "empty list"});
  bad("--vectors 201", {"--vectors", "201 test vectors are more than the run's 200 training images"});
  bad("--vectors 150%", {"--vectors", "at most 100%"});
  bad("--vectors 0", {"--vectors", "more than 0"});
  bad("--vectors ten", {"--vectors", "neither a count nor a percentage"});
  bad("--vectors 10 --candidates 5", {"--candidates", "fewer than the 10 test vectors"});
  bad("--vectors 10 --candidates 500", {"--candidates", "more than the run's 200 training images"});
  bad("--k 0", {"--k", "must be in (0, 100]"});
  bad("--k nan", {"--k"});
  for (const auto& [extra, parts] : std::vector<std::pair<std::string, std::vector<std::string>>>{
           {"--chips 1", {"--chips", "must be in 2.."}},
           {"--ranking-chips 1", {"--ranking-chips", "must be in 2..1000"}},
           {"--samples 1", {"--samples", "must be in 2..10000"}}}) {
    expect_cli_error(run_cli(model + extra + " --out " + out.string()), parts);
    EXPECT_FALSE(fs::exists(out)) << extra;
  }
  bad("--hw /nonexistent/hw.json", {"--hw", "neither a preset"});
  bad("--first-seed 18446744073709551615", {"--first-seed", "would pass"});
  expect_cli_error(run_cli("test-chip --model " + (dir / "missing").string() + " --out " + out.string()), {"missing"});
  EXPECT_FALSE(fs::exists(out));
  // A hardware config with faults (the reference would be faulty), or one the network's chip
  // cannot be built on (a pulse too short for p = 0.2): refused before --out exists.
  std::ofstream(dir / "faulty.json") << R"({"faults": {"dead_tiles": 4}})";
  bad("--hw " + (dir / "faulty.json").string(), {"--hw", "holds faults", "must be fault-free", "--faults"});
  std::ofstream(dir / "short.json") << R"({"dropout_module": {"pulse_width_ns": 0.01}})";
  bad("--hw " + (dir / "short.json").string() + " --faults dead_tile:1",
      {"--hw", "short.json", "pulse_width_ns", "needs I >= Ic0"});
  // Module faults on a network without dropout: there are no modules to break.
  const auto plain = dir / "plain";
  ASSERT_EQ(run_cli("train --model mlp --width 16 --dropout none --epochs 1 --subset 200 --batch 50 --validation 100 "
                    "--threads 1 --quiet --out " + plain.string()).exit_code, 0);
  expect_cli_error(run_cli("test-chip --model " + plain.string() + " --faults module_stuck_p --out " + out.string()),
                   {"--faults", "module_stuck_p: the network has no dropout"});
  EXPECT_FALSE(fs::exists(out));
  // An output that is a link, or a file as --out: refused before any chip runs.
  fs::create_directories(out);
  std::ofstream(dir / "precious") << "keep";
  fs::create_symlink(dir / "precious", out / "test_chip.csv");
  expect_cli_error(run_cli(base + "--vectors 4 --faults dead_tile:1 --out " + out.string()),
                   {"--out", "test_chip.csv: is a symbolic link"});
  EXPECT_EQ(spinbayes::file_bytes(dir / "precious"), "keep");
  EXPECT_FALSE(fs::exists(out / "test_chip.json"));
  std::ofstream(dir / "file") << "x";
  expect_cli_error(run_cli(base + "--vectors 4 --faults dead_tile:1 --out " + (dir / "file").string()),
                   {"--out", "not a directory"});
}
