// The command line on bad input: a one-line error naming the cause and a non-zero exit, never a
// crash. Runs the real `spinbayes` binary.
#include <gtest/gtest.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "cli_runner.h"
#include "data/idx.h"

using spinbayes::CliResult;
using spinbayes::run_cli;

namespace {

// A failed run: exit code 1 (not a signal), exactly one line, mentioning `cause`.
void expect_one_line_error(const CliResult& r, const std::string& cause) {
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_EQ(std::count(r.output.begin(), r.output.end(), '\n'), 1) << r.output;
  EXPECT_NE(r.output.find("error"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find(cause), std::string::npos) << "expected '" << cause << "' in: " << r.output;
}

// Valid labels, so that the images file is the one that fails.
void write_labels(const std::filesystem::path& dir) {
  spinbayes::write_idx(dir / "train-labels-idx1-ubyte", {10}, std::vector<std::uint8_t>(10, 1));
}

std::filesystem::path fresh_dir(const std::string& name) {
  const auto dir = std::filesystem::temp_directory_path() / ("spinbayes-cli-" + name);
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  return dir;
}

}  // namespace

TEST(Cli, MissingDataSetNamesTheFile) {
  const auto dir = fresh_dir("missing");
  const auto r = run_cli("train --model mlp --epochs 1 --out " + (dir / "run").string() +
                         " --fashion-mnist " + (dir / "nowhere").string());
  expect_one_line_error(r, "train-images-idx3-ubyte");
  EXPECT_NE(r.output.find("dataset-fashion-mnist"), std::string::npos);
  EXPECT_FALSE(std::filesystem::exists(dir / "run" / "checkpoint.pt"));
  std::filesystem::remove_all(dir);
}

TEST(Cli, CorruptIdxIsRejected) {
  const auto dir = fresh_dir("corrupt");
  write_labels(dir);
  std::ofstream(dir / "train-images-idx3-ubyte") << "this is not an IDX file at all";
  const auto r = run_cli("train --model mlp --epochs 1 --out " + (dir / "run").string() + " --fashion-mnist " +
                         dir.string());
  expect_one_line_error(r, "train-images-idx3-ubyte");
  std::filesystem::remove_all(dir);
}

TEST(Cli, TruncatedIdxIsRejected) {
  const auto dir = fresh_dir("truncated");
  write_labels(dir);
  // A valid header announcing 10 images of 28 x 28, but only 100 bytes of pixels.
  std::vector<std::uint8_t> bytes = {0, 0, 8, 3, 0, 0, 0, 10, 0, 0, 0, 28, 0, 0, 0, 28};
  bytes.resize(bytes.size() + 100, 7);
  std::ofstream(dir / "train-images-idx3-ubyte", std::ios::binary)
      .write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
  const auto r = run_cli("train --model mlp --epochs 1 --out " + (dir / "run").string() + " --fashion-mnist " +
                         dir.string());
  expect_one_line_error(r, "truncated");
  std::filesystem::remove_all(dir);
}

TEST(Cli, UnknownModelIsRejected) {
  const auto dir = fresh_dir("model");
  const auto r = run_cli("train --model resnet50 --out " + (dir / "run").string());
  expect_one_line_error(r, "resnet50");
  std::filesystem::remove_all(dir);
}

TEST(Cli, UnknownOodSetIsRejected) {
  const auto r = run_cli("eval --model /nonexistent --ood mnist,svhn");
  expect_one_line_error(r, "svhn");
}

TEST(Cli, DropoutProbabilityOutsideRangeIsRejected) {
  const auto dir = fresh_dir("p");
  for (const char* p : {"1", "1.5", "-0.1"}) {
    const auto r = run_cli(std::string("train --model mlp --p=") + p + " --out " + (dir / "run").string());
    expect_one_line_error(r, "p:");
  }
  std::filesystem::remove_all(dir);
}

TEST(Cli, MissingRunDirectoryIsRejected) {
  const auto r = run_cli("eval --model /nonexistent/run --ood gaussian");
  expect_one_line_error(r, "config.json");
}

TEST(Cli, UnknownDropoutKindAndScoreAreRejected) {
  const auto dir = fresh_dir("kind");
  expect_one_line_error(run_cli("train --model mlp --dropout gaussian --out " + (dir / "run").string()), "gaussian");
  expect_one_line_error(run_cli("eval --model /nonexistent --score variance"), "variance");
  std::filesystem::remove_all(dir);
}

namespace {

// A small trained run shared by the engine tests below (trained once per test process; ctest runs
// tests in parallel processes, hence the process id in the name).
const std::filesystem::path& tiny_run() {
  static const std::filesystem::path dir = [] {
    auto d = fresh_dir("tiny-run-" + std::to_string(::getpid())) / "run";
    const auto r = run_cli("train --model lenet --width 4 --dropout spatial --p 0.2 --epochs 1 --subset 300 "
                           "--validation 100 --quiet --out " + d.string());
    EXPECT_EQ(r.exit_code, 0) << r.output;
    return d;
  }();
  return dir;
}

std::string read_file(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

void write_file(const std::filesystem::path& path, const std::string& bytes) {
  std::ofstream(path, std::ios::binary | std::ios::trunc) << bytes;
}

}  // namespace

TEST(Cli, TrainWritesTheModelIrAndEngineEvalReadsIt) {
  const auto& run = tiny_run();
  ASSERT_TRUE(std::filesystem::exists(run / "model.sbir"));
  const auto r = run_cli("eval --model " + run.string() + " --backend engine --samples 3 --test-count 50 "
                         "--ood gaussian --ood-count 20");
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("accuracy"), std::string::npos);
}

TEST(Cli, CorruptModelIrFilesAreRejected) {
  const auto dir = fresh_dir("corrupt-ir-" + std::to_string(::getpid()));
  const auto& run = tiny_run();
  const std::string good = read_file(run / "model.sbir");
  ASSERT_GT(good.size(), 64u);
  struct Case {
    std::string name, bytes, cause;
  };
  std::string bad_magic = good, bad_version = good, flipped = good;
  bad_magic[0] = 'X';
  bad_version[4] = 9;
  flipped[good.size() / 2] = static_cast<char>(flipped[good.size() / 2] ^ 0x40);
  const std::vector<Case> cases = {{"magic", bad_magic, "not a spinbayes model IR"},
                                   {"version", bad_version, "version"},
                                   {"checksum", flipped, "checksum"},
                                   {"truncated", good.substr(0, good.size() - 7), "model.sbir"},
                                   {"empty", "", "model.sbir"}};
  for (const auto& c : cases) {
    SCOPED_TRACE(c.name);
    const auto copy = dir / c.name;
    std::filesystem::create_directories(copy);
    std::filesystem::copy_file(run / "config.json", copy / "config.json");
    std::filesystem::copy_file(run / "checkpoint.pt", copy / "checkpoint.pt");
    write_file(copy / "model.sbir", c.bytes);  // newer than the checkpoint: used as it is
    const auto r = run_cli("eval --model " + copy.string() + " --backend engine --samples 2 --test-count 10 "
                           "--ood gaussian --ood-count 10");
    expect_one_line_error(r, c.cause);
  }
  std::filesystem::remove_all(dir);
}

TEST(Cli, EvalJsonIsTheSameWithOneAndTwoThreads) {
  const auto dir = fresh_dir("threads-" + std::to_string(::getpid()));
  // A second model with element dropout (one mask bit per input element rather than per channel)
  // in a fully connected network, beside the spatial-dropout LeNet.
  const auto element_run = dir / "element";
  const auto trained = run_cli("train --model mlp --width 48 --dropout element --p 0.2 --epochs 1 --subset 300 "
                               "--validation 100 --seed 4 --quiet --out " + element_run.string());
  ASSERT_EQ(trained.exit_code, 0) << trained.output;
  struct Case {
    std::filesystem::path run;
    std::string options;
  };
  const std::vector<Case> cases = {{tiny_run(), "--samples 4"},
                                   {tiny_run(), "--samples 3 --score mi --seed 9"},
                                   {element_run, "--samples 4"},
                                   {element_run, "--deterministic"}};
  for (const auto& c : cases) {
    for (const char* backend : {"engine", "torch", "cim"}) {
      SCOPED_TRACE(c.run.filename().string() + " " + c.options + " --backend " + backend);
      std::string outputs[2];
      for (int threads = 1; threads <= 2; ++threads) {
        const auto json = dir / (std::string(backend) + std::to_string(threads) + ".json");
        const auto r = run_cli("eval --model " + c.run.string() + " --backend " + backend + " " + c.options +
                               " --test-count 60 --ood gaussian,rotate90 --ood-count 30 --threads " +
                               std::to_string(threads) + " --json " + json.string());
        ASSERT_EQ(r.exit_code, 0) << r.output;
        auto text = read_file(json);
        // Everything but the wall-clock time must agree to the last digit.
        const auto at = text.find("\"seconds\"");
        ASSERT_NE(at, std::string::npos);
        text.erase(at, text.find('\n', at) - at);
        outputs[threads - 1] = text;
      }
      EXPECT_EQ(outputs[0], outputs[1]);
    }
  }
  std::filesystem::remove_all(dir);
}

// The bench's JSON on a small vgg-small: every figure present and consistent with the others, a
// 3x3 layer's MAC count from its shape, and the prefix-reuse points T = 1, 10, 50; on a small
// resnet20, its shortcut convolutions and their blocks.
TEST(Cli, BenchReportsEveryFigure) {
  const auto dir = fresh_dir("bench-" + std::to_string(::getpid()));
  const auto run = dir / "vgg";
  const auto trained = run_cli("train --model vgg-small --width 8 --dropout spatial --p 0.2 --epochs 1 --subset 200 "
                               "--validation 100 --quiet --out " + run.string());
  ASSERT_EQ(trained.exit_code, 0) << trained.output;
  const auto json = dir / "bench.json";
  const auto r = run_cli("bench --model " + run.string() + " --samples 2 --images 8 --json " + json.string());
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const nlohmann::json j = nlohmann::json::parse(read_file(json));
  for (const char* key : {"torch_samples_per_s", "engine_samples_per_s", "ratio", "engine_binary_macs_per_s",
                          "popcount_roof_macs_per_s"}) {
    ASSERT_TRUE(j.contains(key)) << key;
    EXPECT_GT(j[key].get<double>(), 0.0) << key;
  }
  EXPECT_NEAR(j["ratio"].get<double>(),
              j["engine_samples_per_s"].get<double>() / j["torch_samples_per_s"].get<double>(),
              1e-9 * j["ratio"].get<double>());
  const double roof = j["popcount_roof_macs_per_s"].get<double>();
  const auto& layers = j["conv3x3_layers"];
  ASSERT_EQ(layers.size(), 5u);  // vgg-small's binary 3x3 convolutions
  // Layer 1: 8 -> 8 channels on 28 x 28, 3 x 3 taps.
  EXPECT_EQ(layers[0]["macs_per_image"].get<long>(), 28L * 28 * 8 * 9 * 8);
  for (const auto& l : layers) {
    EXPECT_GT(l["macs_per_s"].get<double>(), 0.0);
    EXPECT_NEAR(l["roof_share"].get<double>(), l["macs_per_s"].get<double>() / roof, 1e-9);
  }
  std::vector<int> points;
  for (const auto& p : j["scaling"]) points.push_back(p["samples"].get<int>());
  EXPECT_EQ(points, (std::vector<int>{1, 10, 50}));
  expect_one_line_error(run_cli("bench --model " + run.string() + " --samples 0"), "samples");

  // With a chip: each binary layer's decisions per image and sample from its shape, its share of
  // analog decisions in [0, 1], and the total share their decision-weighted mean.
  const auto rc = run_cli("bench --model " + run.string() + " --samples 2 --images 8 --hw default --json " + json.string());
  ASSERT_EQ(rc.exit_code, 0) << rc.output;
  EXPECT_NE(rc.output.find("cim analog decisions by layer, with the mean bound"), std::string::npos) << rc.output;
  const nlohmann::json jc = nlohmann::json::parse(read_file(json));
  const auto& chip_layers = jc["cim"]["layers"];
  ASSERT_EQ(chip_layers.size(), 5u);
  EXPECT_EQ(chip_layers[0]["layer"].get<int>(), 1);
  EXPECT_EQ(chip_layers[0]["decisions_per_sample"].get<double>(), 28.0 * 28 * 8);  // 8 columns, 28 x 28 windows
  double decisions = 0, analog = 0;
  for (const auto& l : chip_layers) {
    const double share = l["analog_share"].get<double>();
    EXPECT_GE(share, 0.0);
    EXPECT_LE(share, 1.0);
    EXPECT_GT(l["systematic_bound_mean"].get<double>(), 0.0);  // the default chip's wires and calibration
    decisions += l["decisions_per_sample"].get<double>();
    analog += share * l["decisions_per_sample"].get<double>();
  }
  EXPECT_GT(analog, 0.0);
  EXPECT_NEAR(jc["cim"]["analog_share"].get<double>(), analog / decisions, 1e-12);

  // resnet20's two shortcut convolutions: each timed whole with its block's layers, its share of
  // the block in (0, 1), its rate from its own time.
  const auto resnet = dir / "resnet";
  ASSERT_EQ(run_cli("train --model resnet20 --width 4 --dropout spatial --p 0.2 --epochs 1 --subset 200 "
                    "--validation 100 --quiet --out " + resnet.string())
                .exit_code,
            0);
  const auto rr = run_cli("bench --model " + resnet.string() + " --samples 2 --images 8 --json " + json.string());
  ASSERT_EQ(rr.exit_code, 0) << rr.output;
  const nlohmann::json jr = nlohmann::json::parse(read_file(json));
  EXPECT_EQ(jr["conv3x3_layers"].size(), 18u);
  const auto& shortcuts = jr["shortcut_layers"];
  ASSERT_EQ(shortcuts.size(), 2u);
  EXPECT_EQ(shortcuts[0]["layer"].get<int>(), 7);
  EXPECT_EQ(shortcuts[0]["macs_per_image"].get<long>(), 14L * 14 * 8 * 4);  // 4 -> 8 channels, stride 2
  EXPECT_EQ(shortcuts[1]["macs_per_image"].get<long>(), 7L * 7 * 16 * 8);
  for (const auto& l : shortcuts) {
    const double seconds = l["seconds"].get<double>(), block = l["block_seconds"].get<double>();
    EXPECT_GT(seconds, 0.0);
    EXPECT_GT(block, seconds);
    EXPECT_NEAR(l["block_share"].get<double>(), seconds / block, 1e-12);
    EXPECT_NEAR(l["macs_per_s"].get<double>(), l["macs_per_image"].get<double>() * 8 * 2 / seconds,
                1e-9 * l["macs_per_s"].get<double>());
    EXPECT_NEAR(l["roof_share"].get<double>(), l["macs_per_s"].get<double>() / jr["popcount_roof_macs_per_s"].get<double>(),
                1e-9);
  }
  std::filesystem::remove_all(dir);
}

TEST(Cli, ExportNeedsATrainedRun) {
  const auto dir = fresh_dir("export");
  expect_one_line_error(run_cli("export --model " + dir.string()), "config.json");
  std::filesystem::remove_all(dir);
}
