// `spinbayes experiment`: a tiny run whose numbers equal what `spinbayes eval` and `spinbayes cost`
// print for the same models, that resumes after SIGKILL to the result of an uninterrupted run, and
// whose bad input ends in one line naming the option.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include "cli_runner.h"
#include "core/error.h"
#include "cost/cost_model.h"
#include "cli_child.h"
#include "onnx_builder.h"
#include "data/datasets.h"
#include "data/idx.h"
#include "data/image_set.h"
#include "eval/evaluation.h"
#include "eval/experiment_plan.h"
#include "eval/experiment_report.h"
#include "train/export.h"

namespace fs = std::filesystem;
using nlohmann::json;
using spinbayes::CliChild;
using spinbayes::wait_until;

namespace {

bool have_data() {
  const auto paths = spinbayes::DataPaths::from_environment();
  return fs::exists(paths.fashion_mnist / "train-images-idx3-ubyte.gz") &&
         fs::exists(paths.mnist_digits / "images-idx3-ubyte");
}

std::string read_file(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

// A tiny experiment: an MLP trained for two epochs on 1000 images, a few hundred test images, T = 3,
// one extra spatial model, a two-point sweep on one chip. One thread, so that tests side by side
// do not oversubscribe the cores.
std::vector<std::string> tiny_args(const fs::path& data, const fs::path& out) {
  return {"experiment",         "--out",          out.string(), "--fashion-mnist", data.string(),
          "--model",            "mlp",            "--width",    "64",              "--epochs",
          "2",                  "--train-subset", "1000",       "--validation",    "200",
          "--test-count",       "200",            "--chip-test-count", "100",      "--curve-test-count",
          "200",                "--ood-count",    "100",        "--samples",       "3",
          "--t-values",         "1,3",            "--extra-p",  "0.2",             "--sweep-values",
          "0,0.05",             "--sweep-chips",  "1",          "--sweep-test-count", "50",
          "--split-chips",      "2",              "--split-test-count", "60",
          "--threads",          "1",              "--seeds",    "1"};
}

std::string joined(const std::vector<std::string>& args) {
  std::string line;
  for (const auto& a : args) line += (line.empty() ? "" : " ") + a;
  return line;
}


// Drops what depends on the clock or the machine: every "seconds", and the run's own record.
void erase_timings(json& j) {
  if (j.is_object()) {
    j.erase("seconds");
    for (auto& [key, value] : j.items()) erase_timings(value);
  } else if (j.is_array()) {
    for (auto& value : j) erase_timings(value);
  }
}

json stable_results(const fs::path& out) {
  json j = json::parse(read_file(out / "results.json"));
  j.erase("run");
  erase_timings(j);
  return j;
}

std::vector<std::string> temporaries_in(const fs::path& dir) {
  std::vector<std::string> found;
  for (const auto& entry : fs::recursive_directory_iterator(dir)) {
    if (entry.path().filename().string().find(".tmp") != std::string::npos) found.push_back(entry.path().string());
  }
  return found;
}

const json& model_named(const json& results, const std::string& name) {
  for (const auto& m : results["models"]) {
    if (m["name"] == name) return m;
  }
  static const json none;
  ADD_FAILURE() << "no model " << name;
  return none;
}

// The report, the figures (each under 300 KB) and the results of a finished run.
void expect_report_figures_and_results(const fs::path& straight) {
  for (const char* file : {"report.md", "results.json", "figures/reliability.png", "figures/entropy.png",
                           "figures/t_axis.png", "figures/variation.png", "figures/energy.png",
                           "figures/quality_energy.png"}) {
    ASSERT_TRUE(fs::exists(straight / file)) << file;
    EXPECT_LT(fs::file_size(straight / file), 300u * 1024u) << file;
  }
  const json results = json::parse(read_file(straight / "results.json"));
  ASSERT_EQ(results["models"].size(), 4u);
  EXPECT_EQ(results["models"][0]["dropout"], "none");
  EXPECT_EQ(results["models"][1]["dropout"], "element");
  EXPECT_EQ(results["models"][2]["dropout"], "spatial");
  EXPECT_EQ(results["models"][3]["p"], 0.2);
  // Every model's temperature is fitted once and applied by each of its evaluations, which report
  // the figures at temperature 1 beside it.
  for (const json& m : results["models"]) {
    ASSERT_TRUE(m.contains("calibration")) << m["name"];
    const double temperature = m["calibration"]["applied"]["temperature"].get<double>();
    EXPECT_GT(temperature, 0.0);
    EXPECT_TRUE(fs::exists(straight / m["calibration"]["file"].get<std::string>()));
    for (const json& point : m["t_axis"]) {
      EXPECT_EQ(point["report"]["calibration"]["method"], "temperature");
      EXPECT_EQ(point["report"]["calibration"]["temperature"].get<double>(), temperature);
    }
    if (m["main"].get<bool>()) {
      EXPECT_EQ(m["chip"]["report"]["calibration"]["temperature"].get<double>(), temperature);
    }
  }
  const std::string report = read_file(straight / "report.md");
  // The answer comes first: the paper's claims beside this run's figures, before the models.
  const auto answer = report.find("## The answer"), models = report.find("## Models");
  ASSERT_NE(answer, std::string::npos);
  EXPECT_LT(answer, models);
  EXPECT_EQ(report.find("\n## "), answer - 1);
  for (const char* claim : {"| dropout modules per 3x3 layer, element / spatial | 9x |",
                            "| dropout-module energy per inference, element / spatial | 94.11x |"}) {
    EXPECT_NE(report.find(claim), std::string::npos) << claim;
  }
  EXPECT_NE(report.find("spinbayes eval --model"), std::string::npos);
  EXPECT_NE(report.find("spinbayes cost --model"), std::string::npos);
  EXPECT_NE(report.find("![Reliability diagrams](figures/reliability.png)"), std::string::npos);
  EXPECT_TRUE(temporaries_in(straight).empty());
}

class Experiment : public ::testing::Test {
 protected:
  // One data set and one uninterrupted run shared by the tests.
  static void SetUpTestSuite() {
    if (!have_data()) return;
    scratch_ = fs::temp_directory_path() / ("spinbayes-experiment-" + std::to_string(::getpid()));
    fs::remove_all(scratch_);
    fs::create_directories(scratch_ / "data");
    // The first 1200 training and 200 test images, uncompressed: the run trains rather than decompresses.
    const auto paths = spinbayes::DataPaths::from_environment();
    for (const auto& [split, prefix, count] :
         {std::tuple<std::string, std::string, int>{"train", "train", 1200}, {"test", "t10k", 200}}) {
      const auto set = spinbayes::first_images(spinbayes::load_fashion_mnist(paths, split), count);
      spinbayes::save_idx_images(set, scratch_ / "data" / (prefix + "-images-idx3-ubyte"),
                                 scratch_ / "data" / (prefix + "-labels-idx1-ubyte"));
    }
    straight_ = scratch_ / "straight";
    CliChild run(tiny_args(scratch_ / "data", straight_), scratch_ / "straight.log");
    straight_ok_ = run.succeeded();
  }
  static void TearDownTestSuite() {
    if (!scratch_.empty()) fs::remove_all(scratch_);
  }
  void SetUp() override {
    if (!have_data()) GTEST_SKIP() << "Fashion-MNIST or the MNIST digits not installed";
    ASSERT_TRUE(straight_ok_) << read_file(scratch_ / "straight.log");
  }
  static fs::path scratch_, straight_;
  static bool straight_ok_;
};
fs::path Experiment::scratch_, Experiment::straight_;
bool Experiment::straight_ok_ = false;

}  // namespace

// The report, the figures (each under 300 KB) and the results are there; and (the acceptance) each
// number is what `spinbayes eval` / `spinbayes cost` print for the same model.
TEST_F(Experiment, NumbersEqualTheEvalAndCostCommandsAndTheLibrary) {
  expect_report_figures_and_results(straight_);
  const json results = json::parse(read_file(straight_ / "results.json"));
  const json& spatial = model_named(results, "mlp64-spatial");
  auto without_timing = [](json j) {
    j.erase("seconds");
    return j;
  };
  for (const char* where : {"software", "chip"}) {
    const auto out = scratch_ / (std::string(where) + ".json");
    const auto args = spatial[where]["command"].get<std::vector<std::string>>();
    const auto r = spinbayes::run_cli(joined(args) + " --threads 1 --json " + out.string());
    ASSERT_EQ(r.exit_code, 0) << r.output;
    EXPECT_EQ(without_timing(json::parse(read_file(out))), without_timing(spatial[where]["report"])) << where;
  }
  // The uncertainty split: what `eval --backend cim --chips K` prints, masks + chips = total.
  for (const char* name : {"mlp64-element", "mlp64-spatial"}) {
    const json& split = model_named(results, name)["split"];
    ASSERT_TRUE(split.is_object()) << name;
    const auto out = scratch_ / "split.json";
    const auto r = spinbayes::run_cli(joined(split["command"].get<std::vector<std::string>>()) + " --threads 1 --json " +
                                      out.string());
    ASSERT_EQ(r.exit_code, 0) << r.output;
    const json u = json::parse(read_file(out))["uncertainty_split"];
    EXPECT_EQ(u["chips"], split["chips"]);
    for (const char* what : {"total", "masks", "chips"}) {
      EXPECT_EQ(u["variance"][what], split[std::string("variance_") + what]) << name << " " << what;
      EXPECT_EQ(u["mutual_information"][what], split[std::string("mi_") + what]) << name << " " << what;
    }
    EXPECT_NEAR(split["variance_masks"].get<double>() + split["variance_chips"].get<double>(),
                split["variance_total"].get<double>(), 1e-9);
    EXPECT_GT(split["variance_chips"].get<double>(), 0.0) << "default chips differ from one another";
  }
  EXPECT_FALSE(model_named(results, "mlp64-none").contains("split"));
  EXPECT_NE(read_file(straight_ / "report.md").find("## How much of the uncertainty is the hardware's"), std::string::npos);
  {
    const auto out = scratch_ / "cost.json";
    const auto args = spatial["cost"]["command"].get<std::vector<std::string>>();
    const auto r = spinbayes::run_cli(joined(args) + " --json " + out.string());
    ASSERT_EQ(r.exit_code, 0) << r.output;
    EXPECT_EQ(json::parse(read_file(out)), spatial["cost"]["report"]);
  }
  // The library calls behind them, for the element model.
  const json& element = model_named(results, "mlp64-element");
  spinbayes::EvalOptions e;
  e.model = element["dir"].get<std::string>();
  e.samples = 3;
  e.ood = {"mnist", "gaussian", "rotate90"};
  e.test_count = 200;
  e.ood_count = 100;
  e.threads = 1;
  e.paths.fashion_mnist = scratch_ / "data";
  e.calibration = spinbayes::CalibrationMode::temperature;
  e.calibration_file = straight_ / element["calibration"]["file"].get<std::string>();
  EXPECT_EQ(without_timing(spinbayes::report_json(spinbayes::evaluate(e))),
            without_timing(element["software"]["report"]));
  spinbayes::CostOptions c;
  c.model_ir = spinbayes::ensure_model_ir(element["dir"].get<std::string>());
  c.samples = 3;
  EXPECT_EQ(spinbayes::cost_json(spinbayes::run_cost(c)), element["cost"]["report"]);
}

// results.json reads back into the typed results unchanged, and report.md is drawn from them alone.
TEST_F(Experiment, ResultsReadBackAndTheReportComesFromThemAlone) {
  const json written = json::parse(read_file(straight_ / "results.json"));
  const auto results = written.get<spinbayes::ExperimentResults>();
  EXPECT_EQ(json(results), written);
  EXPECT_EQ(spinbayes::experiment_report_markdown(results), read_file(straight_ / "report.md"));
}

// Killed with SIGKILL in training and again between stages, then run to the end: the same results
// as the uninterrupted run, finished stages not redone, no temporary file left.
TEST_F(Experiment, KilledAndRunAgainMatchesAnUninterruptedRun) {
  const auto out = scratch_ / "killed";
  const auto log = scratch_ / "killed.log";
  const auto args = tiny_args(scratch_ / "data", out);
  {
    CliChild run(args, log);
    ASSERT_TRUE(wait_until(run, [&] { return fs::exists(out / "models" / "mlp64-element" / "checkpoint.pt"); }))
        << read_file(log);
    ASSERT_TRUE(run.kill());
  }
  {
    CliChild run(args, log);
    ASSERT_TRUE(wait_until(run, [&] { return fs::exists(out / "stages" / "sweep-mlp64-spatial.json"); }))
        << read_file(log);
    ASSERT_TRUE(run.kill());
  }
  EXPECT_FALSE(fs::exists(out / "results.json"));
  const auto before = read_file(log).size();
  {
    CliChild run(args, log);
    ASSERT_TRUE(run.succeeded()) << read_file(log);
  }
  const std::string last = read_file(log).substr(before);
  EXPECT_NE(last.find("evaluate mlp64-spatial in software (T = 3): cached"), std::string::npos) << last;
  EXPECT_EQ(last.find("train mlp64-element"), last.find("train mlp64-element (MC-Dropout (element), 2 epochs): cached"))
      << last;

  std::string straight = stable_results(straight_).dump(1), resumed = stable_results(out).dump(1);
  for (std::size_t at = straight.find(straight_.string()); at != std::string::npos;
       at = straight.find(straight_.string(), at)) {
    straight.replace(at, straight_.string().size(), out.string());
  }
  EXPECT_EQ(straight, resumed);
  EXPECT_EQ(temporaries_in(out), std::vector<std::string>{});
}

// With shared epochs the first one is trained once, without dropout, and every model starts from
// it: each model's history begins with the shared run's, and its configuration says so.
TEST_F(Experiment, SharedEpochsAreTrainedOnceAndEveryModelStartsFromThem) {
  const auto out = scratch_ / "shared";
  auto args = tiny_args(scratch_ / "data", out);
  args.insert(args.end(), {"--shared-epochs", "1"});
  CliChild run(args, scratch_ / "shared.log");
  ASSERT_TRUE(run.succeeded()) << read_file(scratch_ / "shared.log");
  const fs::path shared = out / "models" / "mlp64-shared1of2";
  const auto first_line = [](const fs::path& run_dir) {
    json line = json::parse(read_file(run_dir / "train.jsonl").substr(0, read_file(run_dir / "train.jsonl").find('\n')));
    line.erase("seconds");
    return line;
  };
  const std::string shared_history = read_file(shared / "train.jsonl");
  EXPECT_EQ(std::count(shared_history.begin(), shared_history.end(), '\n'), 1);
  const json results = json::parse(read_file(out / "results.json"));
  EXPECT_EQ(results["settings"]["shared_epochs"], 1);
  for (const json& m : results["models"]) {
    const fs::path dir = m["dir"].get<std::string>();
    const json config = json::parse(read_file(dir / "config.json"));
    EXPECT_EQ(config["training"]["init"], shared.string()) << dir;
    EXPECT_EQ(config["training"]["init_epochs"], 1) << dir;
    EXPECT_EQ(first_line(dir), first_line(shared)) << dir;
    EXPECT_EQ(m["training"]["epochs"], 2);
  }
  EXPECT_NE(read_file(out / "report.md").find("The first 1 of the 2 epochs were trained once"), std::string::npos);
}

// `--model FILE.json`: every model trains the network file's graph (here a residual block),
// named after the file, and the report names the file.
TEST_F(Experiment, NetworkFileRunsEveryStage) {
  const fs::path file = scratch_ / "tiny-res.json";
  std::ofstream(file) << R"({"input": "1x28x28", "classes": 10, "layers": [
      {"type": "conv", "out": 8, "kernel": 3, "stride": 2, "padding": 1},
      {"type": "residual", "branch": [{"type": "conv", "out": 8, "kernel": 3, "padding": 1},
                                      {"type": "conv", "out": 8, "kernel": 3, "padding": 1}],
       "shortcut": "identity"},
      {"type": "maxpool"}, {"type": "flatten"}, {"type": "linear", "out": 10}]})";
  std::vector<std::string> args = tiny_args(scratch_ / "data", scratch_ / "file-run");
  const auto model = std::find(args.begin(), args.end(), "--model");
  args.erase(model, model + 4);  // --model mlp --width 64
  args.insert(args.end(), {"--model", file.string(), "--quiet"});
  CliChild run(args, scratch_ / "file-run.log");
  ASSERT_TRUE(run.succeeded()) << read_file(scratch_ / "file-run.log");
  const json results = json::parse(read_file(scratch_ / "file-run" / "results.json"));
  ASSERT_EQ(results["models"].size(), 4u);
  EXPECT_EQ(results["models"][2]["name"], "tiny-res-spatial");
  EXPECT_EQ(results["settings"]["architecture"], "custom");
  EXPECT_EQ(results["settings"]["network_file"], fs::absolute(file).string());
  const json config = json::parse(read_file(scratch_ / "file-run" / "models" / "tiny-res-spatial" / "config.json"));
  EXPECT_EQ(config["model"]["architecture"], "custom");
  ASSERT_EQ(config["model"]["network"].size(), 5u);
  EXPECT_EQ(config["model"]["network"][1]["type"], "residual");
  const std::string report = read_file(scratch_ / "file-run" / "report.md");
  EXPECT_NE(report.find("network file `tiny-res.json`"), std::string::npos);
  EXPECT_NE(report.find("spinbayes train --model " + fs::absolute(file).string()), std::string::npos);

  // The same runs given as directories: each kept its network file, and the report's command
  // trains that file again.
  const fs::path models = scratch_ / "file-run" / "models";
  std::vector<std::string> given = tiny_args(scratch_ / "data", scratch_ / "file-given");
  for (const char* option : {"--model", "--width", "--epochs", "--train-subset", "--validation", "--extra-p"}) {
    const auto at = std::find(given.begin(), given.end(), option);
    given.erase(at, at + 2);
  }
  given.insert(given.end(), {"--runs", (models / "tiny-res-none").string() + "," + (models / "tiny-res-element").string() +
                                          "," + (models / "tiny-res-spatial").string(),
                             "--quiet"});
  CliChild again(given, scratch_ / "file-given.log");
  ASSERT_TRUE(again.succeeded()) << read_file(scratch_ / "file-given.log");
  const std::string given_report = read_file(scratch_ / "file-given" / "report.md");
  EXPECT_NE(given_report.find("spinbayes train --model " + (models / "tiny-res-spatial" / "network.json").string()),
            std::string::npos);
  EXPECT_EQ(given_report.find("(its model.network)"), std::string::npos);
}

// Runs given as directories are compared as they are: the straight run's own models, given back,
// give its numbers to the last digit, and nothing is trained.
TEST_F(Experiment, RunsGivenAsDirectoriesAreComparedAsTheyAre) {
  const fs::path models = straight_ / "models";
  std::vector<std::string> args = tiny_args(scratch_ / "data", scratch_ / "given");
  for (const char* option : {"--model", "--width", "--epochs", "--train-subset", "--validation", "--extra-p"}) {
    const auto at = std::find(args.begin(), args.end(), option);
    args.erase(at, at + 2);
  }
  args.insert(args.end(), {"--runs", (models / "mlp64-none").string() + "," + (models / "mlp64-element").string() + "," +
                                         (models / "mlp64-spatial").string(),
                           "--quiet"});
  const auto train_jsonl_time = fs::last_write_time(models / "mlp64-spatial" / "train.jsonl");
  CliChild run(args, scratch_ / "given.log");
  ASSERT_TRUE(run.succeeded()) << read_file(scratch_ / "given.log");
  EXPECT_EQ(fs::last_write_time(models / "mlp64-spatial" / "train.jsonl"), train_jsonl_time);  // not trained again
  // The same numbers; only the experiment's own directory differs in the file names they quote.
  std::string text = read_file(scratch_ / "given" / "results.json");
  for (std::size_t at; (at = text.find((scratch_ / "given").string() + "/")) != std::string::npos;) {
    text.replace(at, (scratch_ / "given").string().size(), straight_.string());
  }
  json given = json::parse(text);
  json straight = json::parse(read_file(straight_ / "results.json"));
  erase_timings(given);
  erase_timings(straight);
  ASSERT_EQ(given["models"].size(), 3u);
  for (std::size_t m = 0; m < 3; ++m) {
    for (const char* part : {"software", "chip", "calibration", "cost", "model_ir", "name", "t_axis", "variation"}) {
      EXPECT_EQ(given["models"][m][part], straight["models"][m][part]) << m << " " << part;
    }
  }
  EXPECT_EQ(given["settings"]["runs"].size(), 3u);
  EXPECT_NE(read_file(scratch_ / "given" / "report.md").find("Given as run directories (`--runs`)"), std::string::npos);
  // The runs must be a deterministic, an element and a spatial model, in that order.
  std::vector<std::string> swapped = args;
  const auto runs = std::find(swapped.begin(), swapped.end(), "--runs");
  runs[1] = (models / "mlp64-spatial").string() + "," + (models / "mlp64-element").string() + "," + (models / "mlp64-none").string();
  const auto out = std::find(swapped.begin(), swapped.end(), "--out");
  out[1] = (scratch_ / "swapped").string();
  CliChild bad(swapped, scratch_ / "swapped.log");
  EXPECT_FALSE(bad.succeeded());
  EXPECT_NE(read_file(scratch_ / "swapped.log").find("spinbayes: error: --runs: " + (models / "mlp64-spatial").string() +
                                                     ": a model with spatial dropout, given as the deterministic model"),
            std::string::npos)
      << read_file(scratch_ / "swapped.log");
}

// Networks imported from ONNX are compared as given too: nothing is trained, and the report says
// where each came from.
TEST_F(Experiment, ImportedRunsAreComparedWithoutTraining) {
  // A binary MLP as PyTorch exports it: 784 -> 32 (BN, sign) -> 10 (BN).
  spinbayes::test::OnnxBuilder b(1, 28, 28);
  spinbayes::test::Lcg rng(4);
  const std::string hidden = b.node("Sign", {spinbayes::test::linear_bn(b, rng, b.node("Flatten", {"image"}), "fc1", 784, 32)});
  b.output(spinbayes::test::linear_bn(b, rng, hidden, "fc2", 32, 10));
  const fs::path onnx = scratch_ / "mlp.onnx";
  std::ofstream(onnx, std::ios::binary) << b.bytes();
  std::string runs;
  for (const std::string kind : {"none", "element", "spatial"}) {
    std::vector<std::string> import = {"import", onnx.string(), "--out", (scratch_ / ("imported-" + kind)).string(),
                                       "--dropout", kind, "--validation", "200", "--fashion-mnist",
                                       (scratch_ / "data").string()};
    if (kind != "none") import.insert(import.end(), {"--p", "0.2"});
    CliChild run(import, scratch_ / "import.log");
    ASSERT_TRUE(run.succeeded()) << read_file(scratch_ / "import.log");
    runs += (runs.empty() ? "" : ",") + (scratch_ / ("imported-" + kind)).string();
  }
  std::vector<std::string> args = tiny_args(scratch_ / "data", scratch_ / "imported");
  for (const char* option : {"--model", "--width", "--epochs", "--train-subset", "--validation", "--extra-p"}) {
    const auto at = std::find(args.begin(), args.end(), option);
    args.erase(at, at + 2);
  }
  args.insert(args.end(), {"--runs", runs, "--quiet"});
  CliChild run(args, scratch_ / "imported.log");
  ASSERT_TRUE(run.succeeded()) << read_file(scratch_ / "imported.log");
  const json results = json::parse(read_file(scratch_ / "imported" / "results.json"));
  ASSERT_EQ(results["models"].size(), 3u);
  EXPECT_EQ(results["models"][1]["training"]["imported"], fs::absolute(onnx).string());
  EXPECT_EQ(results["models"][2]["p"], 0.2);
  EXPECT_FALSE(fs::exists(scratch_ / "imported-spatial" / "train.jsonl"));
  const std::string report = read_file(scratch_ / "imported" / "report.md");
  EXPECT_NE(report.find("imported from `mlp.onnx`"), std::string::npos);
  EXPECT_NE(report.find("spinbayes import " + fs::absolute(onnx).string()), std::string::npos);
}

// --seeds 2: each seed a whole experiment in OUT/seed-<s> (seed 1 reusing the straight run's models,
// seed 2 training its own, named -s2), and the aggregate recomputed here from the per-seed JSON:
// every value, its spread, and every paired comparison with its t and exact sign-flip p.
TEST_F(Experiment, SeedsAreWholeExperimentsAndTheirAggregateIsRecomputedFromThem) {
  const fs::path models = scratch_ / "seed-models", multi = scratch_ / "seeds";
  fs::copy(straight_ / "models", models, fs::copy_options::recursive);
  std::vector<std::string> args = tiny_args(scratch_ / "data", multi);
  args.back() = "2";  // --seeds 2
  args.insert(args.end(), {"--models", models.string()});
  {
    CliChild run(args, scratch_ / "seeds.log");
    ASSERT_TRUE(run.succeeded()) << read_file(scratch_ / "seeds.log");
  }
  for (const char* name : {"mlp64-none-s2", "mlp64-element-s2", "mlp64-spatial-s2", "mlp64-spatial-p0.2-s2"}) {
    ASSERT_TRUE(fs::exists(models / name / "model.sbir")) << name;
    EXPECT_EQ(json::parse(read_file(models / name / "config.json"))["training"]["seed"], 2) << name;
  }
  const json all = json::parse(read_file(multi / "results.json"));
  ASSERT_EQ(all["seeds"], json({1, 2}));
  std::vector<json> per_seed;
  for (const char* dir : {"seed-1", "seed-2"}) {
    expect_report_figures_and_results(multi / dir);
    per_seed.push_back(json::parse(read_file(multi / dir / "results.json")));
  }
  // Seed 1 is the straight run again: its models reused, its numbers the same.
  const json straight = json::parse(read_file(straight_ / "results.json"));
  for (std::size_t m = 0; m < 3; ++m) {
    EXPECT_EQ(per_seed[0]["models"][m]["software"]["report"]["accuracy"], straight["models"][m]["software"]["report"]["accuracy"]);
    EXPECT_EQ(per_seed[0]["models"][m]["chip"]["report"]["nll"], straight["models"][m]["chip"]["report"]["nll"]);
  }
  EXPECT_EQ(per_seed[1]["models"][2]["training"]["settings"]["seed"], 2);
  EXPECT_NE(per_seed[1]["models"][2]["software"]["report"]["accuracy"], per_seed[0]["models"][2]["software"]["report"]["accuracy"]);

  // Every aggregated figure against the per-seed files.
  const std::map<std::string, std::size_t> index = {{"deterministic", 0}, {"element", 1}, {"spatial", 2}};
  auto per_seed_value = [&](std::size_t s, const std::string& model, const std::string& where, const std::string& metric) {
    const json& m = per_seed[s]["models"][index.at(model)];
    if (where == "calibration") return m["calibration"]["applied"]["temperature"].get<double>();
    if (where == "training") return m["training"][metric].get<double>();
    if (where == "cost") {
      const json& c = m["cost"]["report"];
      if (metric == "energy_pj") return c["schemes"][m["cost"]["scheme"].get<std::string>()]["energy_pj"]["total"].get<double>();
      if (metric == "module_energy_pj") return c["schemes"][m["cost"]["scheme"].get<std::string>()]["energy_pj"]["modules"].get<double>();
      return c["ratios"][metric].get<double>();
    }
    const json& r = m[where]["report"];
    if (metric == "nll_t1") return r["calibration"]["uncalibrated"]["nll"].get<double>();
    if (metric == "ece_t1") return r["calibration"]["uncalibrated"]["ece"].get<double>();
    if (metric.rfind("auroc.", 0) == 0) return r["ood"][metric.substr(6)]["auroc"].get<double>();
    return r[metric].get<double>();
  };
  std::size_t checked = 0;
  for (const json& v : all["values"]) {
    const std::string model = v["model"], where = v["where"], metric = v["metric"];
    ASSERT_EQ(v["values"].size(), 2u);
    const double a = per_seed_value(0, model, where, metric), b = per_seed_value(1, model, where, metric);
    EXPECT_EQ(v["values"][0].get<double>(), a) << model << " " << where << " " << metric;
    EXPECT_EQ(v["values"][1].get<double>(), b) << model << " " << where << " " << metric;
    EXPECT_NEAR(v["spread"]["mean"].get<double>(), (a + b) / 2, 1e-12);
    EXPECT_NEAR(v["spread"]["sd"].get<double>(), std::fabs(a - b) / std::sqrt(2.0), 1e-12);
    EXPECT_EQ(v["spread"]["min"].get<double>(), std::min(a, b));
    EXPECT_EQ(v["spread"]["max"].get<double>(), std::max(a, b));
    ++checked;
  }
  // Per model: software and chip, each 6 figures and an AUROC per OOD set; temperature; training's 2; cost.
  EXPECT_GE(checked, 3u * (2u * (6u + 3u) + 1u + 2u + 2u));
  auto find_value = [&](const std::string& model, const std::string& where, const std::string& metric) {
    for (const json& v : all["values"]) {
      if (v["model"] == model && v["where"] == where && v["metric"] == metric) return v["values"];
    }
    ADD_FAILURE() << model << " " << where << " " << metric;
    return json::array({0, 0});
  };
  EXPECT_EQ(all["comparisons"].size(), 2u * 6u * 3u);  // where x (accuracy, NLL, ECE, 3 AUROCs) x pairs
  const double pi = std::acos(-1.0);
  for (const json& c : all["comparisons"]) {
    const json a = find_value(c["a"], c["where"], c["metric"]), b = find_value(c["b"], c["where"], c["metric"]);
    const double d0 = per_seed_value(0, c["a"], c["where"], c["metric"]) - per_seed_value(0, c["b"], c["where"], c["metric"]);
    const double d1 = per_seed_value(1, c["a"], c["where"], c["metric"]) - per_seed_value(1, c["b"], c["where"], c["metric"]);
    EXPECT_EQ(c["differences"][0].get<double>(), d0);
    EXPECT_EQ(c["differences"][1].get<double>(), d1);
    EXPECT_NEAR(c["mean"].get<double>(), (d0 + d1) / 2, 1e-12);
    EXPECT_EQ(c["a_above_b"].get<int>(), (d0 > 0) + (d1 > 0));
    EXPECT_EQ(c["a_below_b"].get<int>(), (d0 < 0) + (d1 < 0));
    // Two seeds: 4 sign assignments; when the differences share a sign only 2 reach the mean.
    EXPECT_EQ(c["p_sign_flip"].get<double>(), (d0 > 0) == (d1 > 0) && d0 != 0 && d1 != 0 ? 0.5 : 1.0) << c;
    if (d0 != d1) {
      const double t = (d0 + d1) / 2 / (std::fabs(d0 - d1) / std::sqrt(2.0) / std::sqrt(2.0));
      EXPECT_NEAR(c["t"].get<double>(), t, 1e-9 * std::fabs(t));
      EXPECT_NEAR(c["p_t"].get<double>(), 1 - 2 / pi * std::atan(std::fabs(t)), 1e-9);  // Cauchy: df = 1
    }
  }
  const std::string report = read_file(multi / "report.md");
  for (const char* part : {"## The answer", "## Findings, seed by seed", "## Paired comparisons", "## Per seed",
                           "(seed-2/report.md)", "![The spread over the seeds](figures/seeds_quality.png)",
                           "spinbayes experiment --seeds 1 --seed 2 --out"}) {
    EXPECT_NE(report.find(part), std::string::npos) << part;
  }
  for (const char* figure : {"figures/seeds_quality.png", "figures/seeds_t_axis.png"}) {
    ASSERT_TRUE(fs::exists(multi / figure)) << figure;
    EXPECT_GT(fs::file_size(multi / figure), 10000u) << figure;
  }
  EXPECT_TRUE(temporaries_in(multi).empty());

  // Under mpirun the seeds are spread over the ranks (the models trained above reused, so both
  // seeds' evaluations run at once): every figure the same as one process's.
  const fs::path ranked = scratch_ / "seeds-ranked";
  std::vector<std::string> ranked_args = tiny_args(scratch_ / "data", ranked);
  ranked_args.back() = "2";
  ranked_args.insert(ranked_args.end(), {"--models", models.string()});
  const spinbayes::CliResult r = spinbayes::run_shell("mpirun --allow-run-as-root --oversubscribe -np 2 " SPINBAYES_CLI_PATH " " +
                                joined(ranked_args) + " 2>&1");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const auto same_as_one_process = [&](const fs::path& one, const fs::path& two) {
    json a = stable_results(one), b = stable_results(two);
    a.erase("runs");  // which stages each found cached, and their commands' --out
    b.erase("runs");
    std::string one_text = a.dump(1);
    for (std::size_t at = one_text.find(multi.string()); at != std::string::npos;
         at = one_text.find(multi.string(), at + ranked.string().size())) {
      one_text.replace(at, multi.string().size(), ranked.string());
    }
    EXPECT_EQ(one_text, b.dump(1)) << one << " and " << two;
  };
  same_as_one_process(multi, ranked);
  same_as_one_process(multi / "seed-1", ranked / "seed-1");
  same_as_one_process(multi / "seed-2", ranked / "seed-2");
  EXPECT_TRUE(fs::exists(ranked / "report.md"));
  EXPECT_TRUE(temporaries_in(ranked).empty());
  // One seed is one process's work.
  const spinbayes::CliResult one = spinbayes::run_shell("mpirun --allow-run-as-root --oversubscribe -np 2 " SPINBAYES_CLI_PATH " " +
                                  joined(tiny_args(scratch_ / "data", scratch_ / "one-seed-ranked")) + " 2>&1");
  EXPECT_NE(one.exit_code, 0);
  EXPECT_NE(one.output.find("spinbayes: error: --seeds: mpirun spreads the seeds over its 2 ranks"), std::string::npos)
      << one.output;
  EXPECT_EQ(one.output.find("spinbayes: error"), one.output.rfind("spinbayes: error")) << one.output;
}

TEST(ExperimentInput, BadInputIsOneLineNamingTheOption) {
  const auto dir = fs::temp_directory_path() / ("spinbayes-experiment-bad-" + std::to_string(::getpid()));
  fs::create_directories(dir);
  std::ofstream(dir / "file") << "not a directory";
  const std::string net = R"("layers": [{"type": "conv", "out": 4, "kernel": 3, "padding": 1}, {"type": "flatten"},
                                         {"type": "linear", "out": 10}]})";
  std::ofstream(dir / "net.json") << R"({"input": "1x28x28", "classes": 10, )" << net;
  std::ofstream(dir / "color.json") << R"({"input": "3x32x32", "classes": 10, )" << net;
  std::ofstream(dir / "own.json") << R"({"input": "1x28x28", "classes": 10, "layers": [
      {"type": "conv", "out": 4, "kernel": 3}, {"type": "conv", "out": 4, "kernel": 3, "dropout": {"kind": "none"}},
      {"type": "flatten"}, {"type": "linear", "out": 10}]})";
  ASSERT_EQ(::mkfifo((dir / "fifo.json").c_str(), 0600), 0);  // nobody writes it: reading would wait
  std::ofstream(dir / "bad.json") << R"({"input": "1x28x28", "classes": 10, "layers": [{"type": "flatten"},
      {"type": "conv", "out": 4, "kernel": 3}, {"type": "linear", "out": 10}]})";
  const std::string out = " --out " + (dir / "out").string();
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"experiment --ood svhn" + out, "--ood: unknown OOD set 'svhn'"},
      {"experiment --runs a,b" + out, "--runs: give 3 run directories (deterministic, element, spatial), got 2"},
      {"experiment --runs a,b,c --epochs 3" + out, "--epochs: the runs give it; not with --runs"},
      {"experiment --seeds 0" + out, "--seeds: must be in 1..20, got 0"},
      {"experiment --seeds 21" + out, "--seeds: must be in 1..20, got 21"},
      {"experiment --seeds x" + out, "--seeds: could not convert 'x'"},
      {"experiment --seed 18446744073709551615 --seeds 2" + out, "--seed: 18446744073709551615 + 2 seeds overflows 64 bits"},
      {"experiment --runs " + (dir / "none").string() + ",b,c" + out, (dir / "none" / "config.json").string() + ": not found"},
      {"experiment --samples 0" + out, "--samples: must be in 1..10000, got 0"},
      {"experiment --epochs 3 --shared-epochs 3" + out, "--shared-epochs: must be in 0..2, got 3"},
      {"experiment --p 1" + out, "--p: dropout probability must be in (0, 1), got 1"},
      {"experiment --t-values 1,x" + out, "--t-values: 'x' is not a number"},
      {"experiment --sweep-values 0,0.9" + out, "--sweep-values: mtj.sigma_rp = 0.9 is out of range"},
      {"experiment --hw ''" + out, "--hw: empty (default, wired, unwired, ideal or a config file)"},
      {"experiment --hw " + (dir / "no-hw.json").string() + out, "--hw: '" + (dir / "no-hw.json").string() + "' is neither a preset"},
      {"experiment --out " + (dir / "file").string(), "--out: '" + (dir / "file").string() + "' exists and is not a directory"},
      {"experiment --model " + (dir / "missing.json").string() + out,
       "--model: '" + (dir / "missing.json").string() + "' is neither a zoo network"},
      {"experiment --model " + (dir / "net.json").string() + " --width 8" + out,
       "--width: a network file gives every size; drop --width"},
      {"experiment --model " + (dir / "color.json").string() + out,
       "--model: " + fs::absolute(dir / "color.json").string() +
           ": the network reads 3x32x32 images into 10 classes; the experiment runs on Fashion-MNIST (1x28x28, 10 classes)"},
      {"experiment --model " + (dir / "own.json").string() + out,
       "--model: " + fs::absolute(dir / "own.json").string() + ": layer 2 sets its own dropout site; the experiment"},
      {"experiment --model " + (dir / "fifo.json").string() + out,
       (dir / "fifo.json").string() + ": not a regular file (a network file is read from disk, whole)"},
      {"experiment --model " + (dir / "bad.json").string() + out,
       (dir / "bad.json").string() + ": layer 2 (conv): a convolution cannot follow a flatten"},
  };
  for (const auto& [args, message] : cases) {
    const auto r = spinbayes::run_cli(args);
    EXPECT_EQ(r.exit_code, 1) << args << "\n" << r.output;
    EXPECT_NE(r.output.find("spinbayes: error: " + message), std::string::npos) << args << "\n" << r.output;
    EXPECT_EQ(std::count(r.output.begin(), r.output.end(), '\n'), 1) << r.output;
  }
  if (have_data()) {
    const auto r = spinbayes::run_cli("experiment --ood idx:" + (dir / "missing.idx").string() + out);
    EXPECT_EQ(r.exit_code, 1) << r.output;
    EXPECT_NE(r.output.find("--ood: idx:"), std::string::npos) << r.output;
    EXPECT_NE(r.output.find("missing.idx"), std::string::npos) << r.output;
    EXPECT_EQ(std::count(r.output.begin(), r.output.end(), '\n'), 1) << r.output;
    EXPECT_FALSE(fs::exists(dir / "out")) << "a failed start leaves no output directory";
  }
  fs::remove_all(dir);
}

// `experiment --hw` reaches every chip evaluation, the uncertainty split, the sweep and the prices,
// in their options, their commands and the key their stored results are found by; software stages
// keep their keys (a cached software result serves another chip).
TEST(ExperimentPlan, HardwareReachesEveryChipStageSweepAndPrice) {
  using spinbayes::StageKind;
  auto o = spinbayes::ExperimentOptions::quick_run();
  const auto plain = spinbayes::plan_experiment(o);
  o.hardware = "wired";
  o.validate();
  const auto wired = spinbayes::plan_experiment(o);
  ASSERT_EQ(plain.stages.size(), wired.stages.size());
  int chip_stages = 0, prices = 0, sweeps = 0;
  const auto has_hw = [](const std::vector<std::string>& c) {
    for (std::size_t i = 0; i + 1 < c.size(); ++i) {
      if (c[i] == "--hw") return c[i + 1] == "wired";
    }
    return false;
  };
  for (std::size_t i = 0; i < wired.stages.size(); ++i) {
    const auto& a = plain.stages[i];
    const auto& b = wired.stages[i];
    ASSERT_EQ(a.name, b.name);
    const bool chip = b.kind == StageKind::chip_eval || b.kind == StageKind::split;
    if (chip) {
      ++chip_stages;
      EXPECT_EQ(b.eval.hardware, "wired") << b.name;
      EXPECT_TRUE(has_hw(b.command)) << b.name;
    }
    if (b.kind == StageKind::sweep) {
      ++sweeps;
      EXPECT_EQ(b.sweep.eval.hardware, "wired") << b.name;
      EXPECT_TRUE(has_hw(b.command)) << b.name;
    }
    if (b.kind == StageKind::cost) {
      ++prices;
      EXPECT_TRUE(has_hw(b.command)) << b.name;
      EXPECT_FALSE(has_hw(a.command)) << a.name << ": the default is not spelled out";
    }
    if (chip || b.kind == StageKind::sweep || b.kind == StageKind::cost) {
      EXPECT_NE(a.inputs, b.inputs) << b.name;
    } else {
      EXPECT_EQ(a.inputs, b.inputs) << b.name;
    }
  }
  EXPECT_EQ(chip_stages, 5);  // three chip evaluations and two splits
  EXPECT_GE(prices, 3);
  EXPECT_EQ(sweeps, 3);  // one per main model
  o.hardware = "";
  EXPECT_THROW(o.validate(), spinbayes::Error);
  o.hardware = "no-such-file.json";
  EXPECT_THROW(o.validate(), spinbayes::Error);
}

// One list of stages, each named once and after its model's training; models found by role; the
// main software evaluation doubles as the T axis's point at the main T; extra rates get no sweep.
TEST(ExperimentPlan, EachStageOnceAfterItsTrainingModelsByRole) {
  using spinbayes::ModelRole;
  using spinbayes::StageKind;
  auto o = spinbayes::ExperimentOptions::quick_run();
  o.extra_p = {0.2};
  o.samples = 3;
  o.t_values = {1, 3, 10};
  o.curve_test_count = o.test_count;
  const auto plan = spinbayes::plan_experiment(o);
  ASSERT_EQ(plan.models.size(), 4u);
  EXPECT_EQ(plan.model(ModelRole::spatial).name, "vgg16-spatial");
  EXPECT_EQ(plan.model(ModelRole::extra_spatial).name, "vgg16-spatial-p0.2");
  EXPECT_EQ(plan.model(ModelRole::deterministic).train.spec.dropout, spinbayes::DropoutKind::none);

  std::set<std::string> names;
  std::vector<bool> trained(plan.models.size());
  std::vector<std::string> t_axis;
  for (const auto& s : plan.stages) {
    EXPECT_TRUE(names.insert(s.name).second) << s.name;
    if (s.kind == StageKind::train_shared) {
      EXPECT_EQ(&s, &plan.stages.front()) << "the shared epochs come before every model's stages";
      continue;
    }
    if (s.kind == StageKind::train) {
      trained[s.model] = true;
    } else {
      EXPECT_TRUE(trained[s.model]) << s.name;
    }
    if (plan.models[s.model].role == ModelRole::spatial && (s.kind == StageKind::curve_point || s.on_t_axis)) {
      t_axis.push_back(s.name);
    }
  }
  EXPECT_EQ(t_axis, (std::vector<std::string>{"eval-vgg16-spatial-engine", "curve-vgg16-spatial-T1",
                                              "curve-vgg16-spatial-T10"}));
  EXPECT_EQ(names.count("curve-vgg16-none-T1"), 1u);
  EXPECT_EQ(names.count("curve-vgg16-none-T10"), 0u);  // no dropout: one point serves every T
  EXPECT_EQ(names.count("sweep-vgg16-spatial"), 1u);
  EXPECT_EQ(names.count("sweep-vgg16-spatial-p0.2"), 0u);
  // The uncertainty split: the main MC models only.
  EXPECT_EQ(names.count("split-vgg16-spatial"), 1u);
  EXPECT_EQ(names.count("split-vgg16-element"), 1u);
  EXPECT_EQ(names.count("split-vgg16-none"), 0u);
  EXPECT_EQ(names.count("split-vgg16-spatial-p0.2"), 0u);
  // The quick run's models share their first epochs: one run of them, which every model starts from.
  ASSERT_TRUE(plan.shared.has_value());
  EXPECT_EQ(names.count("train-" + plan.shared->name), 1u);
  for (const auto& m : plan.models) {
    EXPECT_EQ(m.train.init, plan.shared->dir) << m.name;
    EXPECT_EQ(m.train.init_epochs, o.shared_epochs) << m.name;
  }
}
