// Temperature scaling through the command line: `train` fits and stores the run's temperatures,
// `eval` applies them on every backend (the chip too) without moving a prediction, and a bad
// calibration file is a one-line error.
#include <gtest/gtest.h>
#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "cli_runner.h"

using spinbayes::CliResult;
using spinbayes::run_cli;
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

std::string read_text(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

void write_text(const fs::path& path, const std::string& text) { std::ofstream(path, std::ios::trunc) << text; }

void expect_one_line_error(const CliResult& r, const std::string& cause) {
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_EQ(std::count(r.output.begin(), r.output.end(), '\n'), 1) << r.output;
  EXPECT_EQ(r.output.rfind("spinbayes: error: ", 0), 0u) << r.output;
  EXPECT_NE(r.output.find(cause), std::string::npos) << "expected '" << cause << "' in: " << r.output;
}

const fs::path& scratch() {
  static const fs::path dir = [] {
    const auto d = fs::temp_directory_path() / ("spinbayes-calibration-cli-" + std::to_string(::getpid()));
    fs::remove_all(d);
    fs::create_directories(d);
    return d;
  }();
  return dir;
}

// A small spatial-dropout run, trained once per test process.
const fs::path& tiny_run() {
  static const fs::path dir = [] {
    const auto d = scratch() / "run";
    const auto r = run_cli("train --model lenet --width 4 --dropout spatial --p 0.2 --epochs 1 --subset 300 "
                           "--validation 200 --quiet --out " + d.string());
    EXPECT_EQ(r.exit_code, 0) << r.output;
    EXPECT_NE(r.output.find("wrote " + (d / "calibration.json").string()), std::string::npos) << r.output;
    return d;
  }();
  return dir;
}

json eval_json(const fs::path& run, const std::string& options) {
  const auto out = scratch() / "eval.json";
  fs::remove(out);
  const auto r = run_cli("eval --model " + run.string() + " --samples 4 --test-count 150 --ood gaussian --ood-count 40 " +
                         options + " --json " + out.string());
  EXPECT_EQ(r.exit_code, 0) << options << "\n" << r.output;
  return r.exit_code == 0 ? json::parse(read_text(out)) : json::object();
}

}  // namespace

TEST(CalibrationCli, TrainStoresTemperaturesThatEveryBackendApplies) {
  const json record = json::parse(read_text(tiny_run() / "calibration.json"));
  ASSERT_EQ(record.at("format"), "spinbayes-calibration");
  const double mc = record.at("mc").at("temperature").get<double>();
  const double one_pass = record.at("deterministic").at("temperature").get<double>();
  EXPECT_EQ(record.at("mc").at("samples"), 20);
  EXPECT_EQ(record.at("mc").at("validation_images"), 200);
  EXPECT_LE(record.at("mc").at("nll_after").get<double>(), record.at("mc").at("nll_before").get<double>());
  EXPECT_NE(mc, 1.0);

  const json plain = eval_json(tiny_run(), "--calibration none");
  const json scaled = eval_json(tiny_run(), "");
  ASSERT_FALSE(plain.empty() || scaled.empty());
  EXPECT_EQ(plain.at("calibration").at("method"), "none");
  EXPECT_EQ(plain.at("calibration").at("temperature"), 1.0);
  EXPECT_EQ(scaled.at("calibration").at("method"), "temperature");
  EXPECT_EQ(scaled.at("calibration").at("temperature").get<double>(), mc);
  // The same passes: the predictions, so the accuracy, do not move; the figures at temperature 1
  // are the uncalibrated run's; the NLL at the fitted temperature differs.
  EXPECT_EQ(scaled.at("accuracy"), plain.at("accuracy"));
  EXPECT_EQ(scaled.at("calibration").at("uncalibrated").at("nll"), plain.at("nll"));
  EXPECT_EQ(scaled.at("calibration").at("uncalibrated").at("ece"), plain.at("ece"));
  EXPECT_NE(scaled.at("nll"), plain.at("nll"));
  EXPECT_EQ(scaled.at("mean_mutual_information"), plain.at("mean_mutual_information"));

  // The chip reads the same file: the ideal chip gives the engine's figures bit for bit, the
  // default one applies the same temperature to its own passes.
  const json ideal = eval_json(tiny_run(), "--backend cim --hw ideal");
  EXPECT_EQ(ideal.at("calibration").at("temperature").get<double>(), mc);
  for (const char* key : {"accuracy", "nll", "ece", "brier"}) EXPECT_EQ(ideal.at(key), scaled.at(key)) << key;
  const json chip = eval_json(tiny_run(), "--backend cim");
  EXPECT_EQ(chip.at("calibration").at("temperature").get<double>(), mc);
  const json torch = eval_json(tiny_run(), "--backend torch");
  EXPECT_EQ(torch.at("calibration").at("temperature").get<double>(), mc);
  EXPECT_EQ(torch.at("accuracy"), scaled.at("accuracy"));

  // One pass with dropout off has a temperature of its own.
  const json deterministic = eval_json(tiny_run(), "--deterministic");
  EXPECT_EQ(deterministic.at("calibration").at("temperature").get<double>(), one_pass);
}

TEST(CalibrationCli, CalibrateWritesWhereAskedAndEvalReadsIt) {
  const auto file = scratch() / "t5.json";
  const auto r = run_cli("calibrate --model " + tiny_run().string() + " --samples 5 --seed 3 --out " + file.string());
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const json record = json::parse(read_text(file));
  EXPECT_EQ(record.at("mc").at("samples"), 5);
  EXPECT_EQ(record.at("mc").at("seed"), 3);
  const json e = eval_json(tiny_run(), "--calibration-file " + file.string());
  EXPECT_EQ(e.at("calibration").at("temperature"), record.at("mc").at("temperature"));
  EXPECT_EQ(e.at("calibration").at("file"), file.string());
}

TEST(CalibrationCli, BadCalibrationFilesAreOneLineErrors) {
  const fs::path copy = scratch() / "copy";
  fs::remove_all(copy);
  fs::create_directories(copy);
  for (const char* name : {"config.json", "checkpoint.pt", "model.sbir"}) fs::copy_file(tiny_run() / name, copy / name);
  const std::string good = read_text(tiny_run() / "calibration.json");
  const auto replaced = [&](const std::string& from, const std::string& to) {
    std::string t = good;
    const auto at = t.find(from);
    EXPECT_NE(at, std::string::npos) << from;
    return at == std::string::npos ? t : t.replace(at, from.size(), to);
  };
  const json record = json::parse(good);
  const std::string temperature = "\"temperature\": " + record.at("mc").at("temperature").dump();
  struct Case {
    std::string text, cause;
  };
  const std::vector<Case> cases = {
      {replaced(temperature, "\"temperature\": -2"), "mc.temperature: must be in [0.05, 20]"},
      {replaced(temperature, "\"temperature\": 0"), "mc.temperature: must be in [0.05, 20]"},
      {replaced(temperature, "\"temperature\": 1e308"), "mc.temperature: must be in [0.05, 20]"},
      {replaced(temperature, "\"temperature\": 1e-320"), "mc.temperature: must be in [0.05, 20]"},
      {good + std::string(1, '\0') + "garbage", "holds a NUL byte"},
      {replaced(temperature, "\"temperature\": 1e400"), "not valid JSON"},
      {replaced(temperature, "\"temperature\": null"), "mc.temperature: must be a number"},
      {replaced(record.at("model_ir").dump(), "\"0000000000000000\""), "fitted for another model IR"},
      {good.substr(0, good.size() / 2), "not valid JSON"},
      {"", "not valid JSON"},
  };
  const std::string eval = "eval --model " + copy.string() + " --samples 2 --test-count 20 --ood gaussian --ood-count 10";
  for (const Case& c : cases) {
    SCOPED_TRACE(c.cause);
    write_text(copy / "calibration.json", c.text);
    const auto r = run_cli(eval);
    expect_one_line_error(r, "calibration.json");
    EXPECT_NE(r.output.find(c.cause), std::string::npos) << r.output;
  }
  fs::remove(copy / "calibration.json");
  fs::create_directory(copy / "calibration.json");  // not a regular file
  expect_one_line_error(run_cli(eval), "calibration.json");
  fs::remove(copy / "calibration.json");
  // Without a file: no temperature by default, an error when one is asked for.
  EXPECT_EQ(run_cli(eval).exit_code, 0);
  expect_one_line_error(run_cli(eval + " --calibration temperature"), "not found");
  expect_one_line_error(run_cli(eval + " --calibration-file " + (copy / "nowhere.json").string()), "nowhere.json: not found");
  expect_one_line_error(run_cli(eval + " --calibration platt"), "--calibration: unknown method 'platt'");
  expect_one_line_error(run_cli("calibrate --model " + copy.string() + " --samples 1"), "--samples: must be in 2..10000");

  const fs::path no_validation = scratch() / "no-validation";
  const auto trained = run_cli("train --model mlp --width 8 --dropout element --p 0.2 --epochs 1 --subset 200 "
                               "--validation 0 --quiet --out " + no_validation.string());
  ASSERT_EQ(trained.exit_code, 0) << trained.output;
  EXPECT_FALSE(fs::exists(no_validation / "calibration.json"));
  expect_one_line_error(run_cli("calibrate --model " + no_validation.string()), "held out no validation images");
}

// What the hostile-input review found: outputs onto the run's own files, fits on a handful of
// images, empty paths, a dangling default file, and a calibration racing a training run.
TEST(CalibrationCli, OutputsNeverReplaceTheRunsFilesAndOtherHostileInput) {
  const fs::path copy = scratch() / "hostile";
  fs::remove_all(copy);
  fs::create_directories(copy);
  for (const char* name : {"config.json", "checkpoint.pt", "model.sbir", "train.jsonl", "calibration.json"}) {
    fs::copy_file(tiny_run() / name, copy / name);
  }
  const std::string checkpoint = read_text(copy / "checkpoint.pt");
  const std::string run = copy.string();
  const std::string eval = "eval --model " + run + " --samples 2 --test-count 20 --ood gaussian --ood-count 10";
  fs::create_symlink(copy / "config.json", scratch() / "link-to-config.json");
  const std::vector<std::pair<std::string, std::string>> cases = {
      {eval + " --json " + run + "/checkpoint.pt", "--json: " + run + "/checkpoint.pt: is the input"},
      {eval + " --json " + run + "/calibration.json", "is the input"},
      {eval + " --json " + (scratch() / "link-to-config.json").string(), "is the input " + run + "/config.json"},
      {"calibrate --model " + run + " --out " + run + "/model.sbir", "--out: " + run + "/model.sbir: is the input"},
      {"cost --model " + run + " --json " + run + "/train.jsonl", "--json: " + run + "/train.jsonl: is the input"},
      {"calibrate --model " + run + " --validation-count 20", "--validation-count: a temperature fitted on 20 images is noise"},
      {"calibrate --model " + run + " --validation-count 5000", "the run held out 200 validation images, fewer than the 5000"},
      {"calibrate --model " + run + " --out ''", "--out: empty path"},
      {eval + " --calibration-file ''", "--calibration-file: empty path"},
      {eval + " --calibration none --calibration-file " + run + "/calibration.json", "given with --calibration none"},
      {"train --model mlp --epochs 1 --init '' --out " + (scratch() / "x").string(), "--init: empty path"},
  };
  for (const auto& [command, cause] : cases) {
    SCOPED_TRACE(command);
    expect_one_line_error(run_cli(command), cause);
  }
  EXPECT_TRUE(read_text(copy / "checkpoint.pt") == checkpoint);
  EXPECT_TRUE(json::parse(read_text(copy / "config.json")).is_object());

  // A dangling link where the run's calibration.json would be is an error, not "no calibration".
  fs::rename(copy / "calibration.json", copy / "moved.json");
  fs::create_symlink(copy / "nowhere.json", copy / "calibration.json");
  expect_one_line_error(run_cli(eval), "calibration.json");
  fs::remove(copy / "calibration.json");
  fs::rename(copy / "moved.json", copy / "calibration.json");

  // A calibration takes the run's lock, as training does.
  {
    const int fd = ::open((copy / ".spinbayes.lock").c_str(), O_CREAT | O_RDWR, 0644);
    ASSERT_GE(fd, 0);
    ASSERT_EQ(::flock(fd, LOCK_EX | LOCK_NB), 0);
    expect_one_line_error(run_cli("calibrate --model " + run), "is writing into this directory");
    ::close(fd);
  }
  EXPECT_EQ(run_cli("calibrate --model " + run + " --samples 3").exit_code, 0);
}
