// A user's own data set on the command line: color images in CIFAR-10's binary format train,
// evaluate in software and on the chip, and detect noise; bad data specs and files are one-line
// errors. Runs the real `spinbayes` binary.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <tuple>

#include <nlohmann/json.hpp>

#include "cli_runner.h"
#include "model/network.h"

using namespace spinbayes;

namespace {

// CIFAR-10 records of three classes told apart by their color: class k is bright in channel k,
// with per-record noise.
std::string cifar_batch(int records, unsigned seed) {
  std::string bytes;
  unsigned state = seed;
  const auto next = [&] { return state = state * 1664525u + 1013904223u; };
  for (int r = 0; r < records; ++r) {
    const int label = static_cast<int>(next() >> 16) % 3;
    bytes.push_back(static_cast<char>(label));
    for (int ch = 0; ch < 3; ++ch) {
      for (int i = 0; i < 1024; ++i) {
        const int base = ch == label ? 170 : 60;
        bytes.push_back(static_cast<char>(base + static_cast<int>(next() >> 24) % 60));
      }
    }
  }
  return bytes;
}

void write(const std::filesystem::path& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

nlohmann::json read_json(const std::filesystem::path& path) { return nlohmann::json::parse(file_bytes(path)); }

// One deterministic pass of LibTorch's graph and of the engine on the run's test images: the same
// accuracy, and the same NLL to float rounding.
void expect_torch_matches_engine(const std::filesystem::path& run, const std::filesystem::path& dir) {
  const std::string common = " --deterministic --ood none --validation-count -1 --threads 1 --json ";
  auto r = run_cli("eval --model " + run.string() + " --backend torch" + common + (dir / "torch.json").string());
  ASSERT_EQ(r.exit_code, 0) << r.output;
  r = run_cli("eval --model " + run.string() + " --backend engine" + common + (dir / "engine-deterministic.json").string());
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const nlohmann::json torch = read_json(dir / "torch.json"), engine = read_json(dir / "engine-deterministic.json");
  EXPECT_EQ(torch["accuracy"], engine["accuracy"]);
  EXPECT_NEAR(torch["nll"].get<double>(), engine["nll"].get<double>(), 1e-5);
}

// DIR/cifar with five training batches of 60 records and a test batch of 80: the path.
std::filesystem::path write_cifar_dir(const std::filesystem::path& dir) {
  const auto cifar = dir / "cifar";
  std::filesystem::create_directories(cifar);
  for (int b = 1; b <= 5; ++b) write(cifar / ("data_batch_" + std::to_string(b) + ".bin"), cifar_batch(60, b));
  write(cifar / "test_batch.bin", cifar_batch(80, 99));
  return cifar;
}

}  // namespace

TEST(DataCli, ColorImagesTrainEvaluateAndRunOnTheChip) {
  const auto dir = fresh_test_dir("data", "cifar");
  const auto cifar = write_cifar_dir(dir);
  const auto run = dir / "run";
  const std::string data = "--data cifar10:" + cifar.string();
  auto r = run_cli("train --model vgg-small --width 8 --dropout spatial --p 0.1 --epochs 2 --batch 50 "
                   "--validation 50 --threads 1 --quiet " + data + " --out " + run.string());
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const nlohmann::json config = read_json(run / "config.json");
  EXPECT_EQ(config["training"]["data"], "cifar10:" + cifar.string());
  const nlohmann::json& model = config["model"];
  EXPECT_EQ(model["channels"], 3);
  EXPECT_EQ(model["height"], 32);
  EXPECT_EQ(model["classes"], 10);  // CIFAR-10's, though these images hold three
  ASSERT_EQ(model["input_mean"].size(), 3u);
  EXPECT_NE(model["input_mean"][0], model["input_mean"][1]);

  // Software, the ideal chip and the default chip on the run's own data, with noise as OOD.
  const std::string common = "--samples 5 --ood gaussian,uniform --validation-count -1 --threads 1";
  r = run_cli("eval --model " + run.string() + " --backend engine " + common + " --json " + (dir / "engine.json").string());
  ASSERT_EQ(r.exit_code, 0) << r.output;
  r = run_cli("eval --model " + run.string() + " --backend cim --hw ideal " + common + " --json " + (dir / "ideal.json").string());
  ASSERT_EQ(r.exit_code, 0) << r.output;
  r = run_cli("eval --model " + run.string() + " --backend cim --hw default " + common + " --json " + (dir / "chip.json").string());
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const nlohmann::json engine = read_json(dir / "engine.json"), ideal = read_json(dir / "ideal.json"),
                       chip = read_json(dir / "chip.json");
  EXPECT_EQ(engine["data"], "cifar10:" + cifar.string());
  EXPECT_EQ(engine["test_images"], 80);
  EXPECT_GT(engine["accuracy"].get<double>(), 0.6);  // three colors, told apart after two epochs
  EXPECT_EQ(ideal["accuracy"], engine["accuracy"]);
  EXPECT_EQ(ideal["nll"], engine["nll"]);
  EXPECT_EQ(chip["test_images"], 80);
  for (const auto* report : {&engine, &chip}) {
    for (const char* set : {"gaussian", "uniform"}) {
      const double auroc = (*report)["ood"][set]["auroc"].get<double>();
      EXPECT_GE(auroc, 0.0);
      EXPECT_LE(auroc, 1.0);
      EXPECT_EQ((*report)["ood"][set]["images"], 80);
    }
  }
  // LibTorch's forward normalizes per channel as the engine does: the same deterministic predictions.
  expect_torch_matches_engine(run, dir);

  // Sets of another shape: one-line errors.
  expect_cli_error(run_cli("eval --model " + run.string() + " --ood mnist --samples 2 --validation-count -1"),
                   {"does not match the in-distribution shape 3x32x32"});
  expect_cli_error(run_cli("eval --model " + run.string() + " --data fashion-mnist --samples 2 --ood none"),
                   {"image shape 1x28x28 does not match the model's input 3x32x32"});
  // Resuming with another data set is refused.
  expect_cli_error(run_cli("train --resume --data fashion-mnist --quiet --out " + run.string()),
                   {"--data fashion-mnist (the run has cifar10:"});
  std::filesystem::remove_all(dir);
}

TEST(DataCli, BadDataSpecsAndFilesAreOneLineErrors) {
  const auto dir = fresh_test_dir("data", "bad");
  const std::string train = "train --model mlp --width 8 --epochs 1 --batch 10 --validation 10 --quiet --out " +
                            (dir / "run").string() + " ";
  expect_cli_error(run_cli(train + "--data cifar100:/x"), {"--data: unknown data set 'cifar100:/x'"});
  expect_cli_error(run_cli(train + "--data cifar10:"), {"--data: cifar10: needs the directory"});
  expect_cli_error(run_cli(train + "--data idx:a,b,c"), {"--data: idx: needs 4 files"});
  expect_cli_error(run_cli(train + "--data cifar10:" + (dir / "none").string()), {"data_batch_1.bin: CIFAR-10 batch file not found"});
  const auto cifar = dir / "cifar";
  std::filesystem::create_directories(cifar);
  for (int b = 1; b <= 5; ++b) write(cifar / ("data_batch_" + std::to_string(b) + ".bin"), cifar_batch(10, b));
  write(cifar / "data_batch_3.bin", cifar_batch(10, 3).substr(5));
  expect_cli_error(run_cli(train + "--data cifar10:" + cifar.string()), {"data_batch_3.bin: size", "not a whole number"});
  std::string bad_label = cifar_batch(10, 3);
  bad_label[3073 * 4] = 11;
  write(cifar / "data_batch_3.bin", bad_label);
  expect_cli_error(run_cli(train + "--data cifar10:" + cifar.string()), {"data_batch_3.bin: record 4 has label 11"});
  std::filesystem::remove(cifar / "data_batch_2.bin");
  std::filesystem::create_directory(cifar / "data_batch_2.bin");
  expect_cli_error(run_cli(train + "--data cifar10:" + cifar.string()), {"data_batch_2.bin: is a directory"});
  expect_cli_error(run_cli("eval --model " + tiny_spatial_run().string() + " --data idx:x,y"), {"--data: idx: needs 4 files"});
  // The test split is checked before training: a run nothing could evaluate is never written.
  const auto no_test = dir / "no-test";
  std::filesystem::create_directories(no_test);
  for (int b = 1; b <= 5; ++b) write(no_test / ("data_batch_" + std::to_string(b) + ".bin"), cifar_batch(10, b));
  expect_cli_error(run_cli(train + "--data cifar10:" + no_test.string()), {"test_batch.bin: CIFAR-10 batch file not found"});
  std::filesystem::create_directory(no_test / "test_batch.bin");
  expect_cli_error(run_cli(train + "--data cifar10:" + no_test.string()), {"test_batch.bin: is a directory"});
  EXPECT_FALSE(std::filesystem::exists(dir / "run" / "checkpoint.pt"));
  std::filesystem::remove_all(dir);
}

// A network file with residual blocks (an identity and a downsampling shortcut) on color images:
// trains, evaluates in software, on the ideal chip (bit for bit the engine) and on the default
// chip, detects noise, and is priced by `cost` from the run and from the file alone alike.
TEST(DataCli, ResidualNetworkFileTrainsEvaluatesAndRunsOnTheChip) {
  const auto dir = fresh_test_dir("data", "residual");
  const auto cifar = write_cifar_dir(dir);
  const auto network = dir / "net.json";
  write(network, R"({"input": "3x32x32", "classes": 10, "layers": [
    {"type": "conv", "out": 8, "kernel": 3, "padding": 1}, {"type": "maxpool"},
    {"type": "residual", "shortcut": "identity", "branch": [
      {"type": "conv", "out": 8, "kernel": 3, "padding": 1}, {"type": "conv", "out": 8, "kernel": 3, "padding": 1}]},
    {"type": "residual", "shortcut": "downsample", "branch": [
      {"type": "conv", "out": 16, "kernel": 3, "stride": 2, "padding": 1}, {"type": "conv", "out": 16, "kernel": 3, "padding": 1}]},
    {"type": "maxpool"}, {"type": "flatten"}, {"type": "linear", "out": 10}]})");
  const auto run = dir / "run";
  auto r = run_cli("train --model " + network.string() + " --dropout spatial --p 0.1 --epochs 2 --batch 50 "
                   "--validation 50 --threads 1 --quiet --data cifar10:" + cifar.string() + " --out " + run.string());
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const nlohmann::json config = read_json(run / "config.json");
  EXPECT_EQ(config["model"]["architecture"], "custom");
  EXPECT_EQ(config["model"]["network"].size(), 7u);
  // The run keeps its network file: the same network, input and classes.
  const NetworkFile kept = load_network_file((run / "network.json").string());
  const NetworkFile given = load_network_file(network.string());
  EXPECT_EQ(kept.layers, given.layers);
  EXPECT_EQ(std::tie(kept.channels, kept.height, kept.width, kept.classes),
            std::tie(given.channels, given.height, given.width, given.classes));

  const std::string common = "--samples 5 --ood gaussian --validation-count -1 --threads 1";
  for (const char* backend : {"engine", "cim --hw ideal", "cim --hw default"}) {
    r = run_cli("eval --model " + run.string() + " --backend " + backend + " " + common + " --json " +
                (dir / (std::string(backend).substr(0, 3) + std::to_string(std::string(backend).size()) + ".json")).string());
    ASSERT_EQ(r.exit_code, 0) << backend << "\n" << r.output;
  }
  const nlohmann::json engine = read_json(dir / "eng6.json"), ideal = read_json(dir / "cim14.json"),
                       chip = read_json(dir / "cim16.json");
  EXPECT_GT(engine["accuracy"].get<double>(), 0.6);
  EXPECT_EQ(ideal["accuracy"], engine["accuracy"]);
  EXPECT_EQ(ideal["nll"], engine["nll"]);
  EXPECT_GT(chip["accuracy"].get<double>(), 0.5);
  for (const auto* report : {&engine, &chip}) {
    const double auroc = (*report)["ood"]["gaussian"]["auroc"].get<double>();
    EXPECT_GE(auroc, 0.0);
    EXPECT_LE(auroc, 1.0);
  }
  // LibTorch's graph and the engine: the same deterministic predictions.
  expect_torch_matches_engine(run, dir);

  // The cost of the run and of the file without weights: the same layers, with the shortcut
  // convolution priced as a layer of its own.
  ASSERT_EQ(run_cli("cost --model " + run.string() + " --p 0.1 --json " + (dir / "run-cost.json").string()).exit_code, 0);
  r = run_cli("cost --model " + network.string() + " --p 0.1 --json " + (dir / "file-cost.json").string());
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const nlohmann::json from_run = read_json(dir / "run-cost.json"), from_file = read_json(dir / "file-cost.json");
  EXPECT_EQ(from_file["layers"], from_run["layers"]);
  EXPECT_EQ(from_file["schemes"], from_run["schemes"]);
  bool shortcut = false;
  for (const auto& l : from_file["layers"]) shortcut |= l["name"] == "sc1";
  EXPECT_TRUE(shortcut) << from_file["layers"].dump();

  // A file that does not fit the data, and bad files: one line naming the file and the layer.
  expect_cli_error(run_cli("train --model " + network.string() + " --epochs 1 --quiet --out " + (dir / "x").string()),
                   {"--model: the network file's input 3x32x32 with 10 classes does not fit the data set fashion-mnist"});
  write(network, R"({"input": "3x32x32", "classes": 10, "layers": [{"type": "conv", "out": 8, "kernel": 3},
    {"type": "residual", "shortcut": "identity", "branch": [{"type": "conv", "out": 8, "kernel": 3}]},
    {"type": "flatten"}, {"type": "linear", "out": 10}]})");
  expect_cli_error(run_cli("train --model " + network.string() + " --quiet --out " + (dir / "x").string()),
                   {network.string() + ": layer 2 (residual): the branch gives a 8x28x28 map, the identity shortcut 8x30x30"});
  expect_cli_error(run_cli("cost --model " + network.string()), {network.string() + ": layer 2 (residual)"});
  write(network, R"({"input": "3x32x32", "classes": 10, "layers": [{"type": "conv", "out": 8, "kernel": 3}, {"type": "dense", "out": 10}]})");
  expect_cli_error(run_cli("cost --model " + network.string()), {network.string() + ": layer 2: unknown layer type 'dense'"});
  expect_cli_error(run_cli("cost --model " + network.string() + " --input 3x32x32"), {"--input: a network file gives its own"});
  expect_cli_error(run_cli("train --model resnet --quiet --out " + (dir / "x").string()),
                   {"--model: 'resnet' is neither a zoo network"});
  expect_cli_error(run_cli("cost --model " + (dir / "none.json").string()), {"none.json' is neither a training run directory"});
  expect_cli_error(run_cli("cost --model /dev/null"), {"--model: /dev/null: not a regular file or a directory"});
  write(network, R"({"input": "1x28x28", "classes": 10, "layers": [{"type": "conv", "out": 4, "kernel": 3}, {"type": "flatten"}, {"type": "linear", "out": 10}]})");
  expect_cli_error(run_cli("train --model " + network.string() + " --width 8 --quiet --out " + (dir / "x").string()),
                   {"--width: a network file gives its own sizes"});
  EXPECT_FALSE(std::filesystem::exists(dir / "x"));
  std::filesystem::remove_all(dir);
}
