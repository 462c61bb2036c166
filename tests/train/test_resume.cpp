// Crash safety of training: `spinbayes train` killed with SIGKILL at any moment and started again
// with --resume ends with the same model, history and evaluation as a run never interrupted, and
// never leaves a half-written or temporary file behind. Runs the real binary as a child process.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <torch/serialize.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>
#include <nlohmann/json.hpp>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include "cli_child.h"
#include "data/datasets.h"
#include "data/idx.h"
#include "data/image_set.h"

namespace fs = std::filesystem;
using spinbayes::CliChild;
using spinbayes::wait_until;

namespace {

// The training command of every run here, without --fashion-mnist, --out and --resume: three
// epochs of about half a second each. One thread, so that tests running side by side do not
// oversubscribe the cores (spinning thread pools slow down many times over).
const std::vector<std::string> kTrain = {"train", "--model",      "mlp", "--epochs", "3",         "--subset",
                                         "6000",  "--validation", "100", "--seed",   "5",         "--threads",
                                         "1",     "--quiet"};

bool have_fashion_mnist() {
  return fs::exists(spinbayes::DataPaths::from_environment().fashion_mnist / "train-images-idx3-ubyte.gz");
}

fs::path fresh_dir(const std::string& name) {
  const auto dir = fs::temp_directory_path() / ("spinbayes-resume-" + name + "-" + std::to_string(::getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  return dir;
}

// The first 8000 training and 1000 test images of Fashion-MNIST, uncompressed, in `dir`: each
// command then spends its time training rather than decompressing the full set.
std::string small_fashion_mnist(const fs::path& dir) {
  const auto paths = spinbayes::DataPaths::from_environment();
  for (const auto& [split, prefix, count] : {std::tuple<std::string, std::string, int>{"train", "train", 8000},
                                              {"test", "t10k", 1000}}) {
    const auto set = spinbayes::first_images(spinbayes::load_fashion_mnist(paths, split), count);
    spinbayes::save_idx_images(set, dir / (prefix + "-images-idx3-ubyte"), dir / (prefix + "-labels-idx1-ubyte"));
  }
  return dir.string();
}

std::string read_file(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}


std::vector<std::string> with(std::vector<std::string> args, std::initializer_list<std::string> more) {
  args.insert(args.end(), more);
  return args;
}

int history_lines(const fs::path& run) {
  const std::string text = read_file(run / "train.jsonl");
  return static_cast<int>(std::count(text.begin(), text.end(), '\n'));
}

// train.jsonl without the wall-clock field.
std::string history_without_seconds(const fs::path& run) {
  std::istringstream in(read_file(run / "train.jsonl"));
  std::string line, out;
  while (std::getline(in, line)) {
    auto entry = nlohmann::json::parse(line);
    entry.erase("seconds");
    out += entry.dump() + "\n";
  }
  return out;
}

// Evaluation JSON of a run on both backends, without the wall-clock time and the run's path.
std::string evaluation_of(const fs::path& run, const std::string& data, const fs::path& scratch) {
  std::string out;
  for (const char* backend : {"engine", "torch"}) {
    const auto json = scratch / (run.filename().string() + "-" + backend + ".json");
    CliChild eval({"eval", "--model", run.string(), "--fashion-mnist", data, "--backend", backend, "--samples", "3",
                "--test-count", "200", "--ood", "gaussian,rotate90", "--ood-count", "50", "--threads", "1", "--json",
                json.string()},
               scratch / "eval.log");
    EXPECT_TRUE(eval.succeeded()) << read_file(scratch / "eval.log");
    auto j = nlohmann::json::parse(read_file(json));
    j.erase("seconds");
    j.erase("model_dir");
    j["calibration"].erase("file");  // the run's own calibration.json, in its own directory
    out += j.dump(1) + "\n";
  }
  return out;
}

std::vector<std::string> temporaries_in(const fs::path& dir) {
  std::vector<std::string> found;
  for (const auto& entry : fs::recursive_directory_iterator(dir)) {
    if (entry.path().filename().string().find(".tmp") != std::string::npos) found.push_back(entry.path().string());
  }
  return found;
}

// Every output file a killed run left is whole: the JSON files parse and the checkpoint loads.
void expect_outputs_whole(const fs::path& run) {
  if (fs::exists(run / "config.json")) {
    EXPECT_NO_THROW(nlohmann::json::parse(read_file(run / "config.json"))) << run / "config.json";
  }
  if (fs::exists(run / "train.jsonl")) {
    EXPECT_NO_THROW(history_without_seconds(run)) << run / "train.jsonl";
  }
  if (fs::exists(run / "checkpoint.pt")) {
    torch::serialize::InputArchive archive;
    EXPECT_NO_THROW(archive.load_from((run / "checkpoint.pt").string())) << run / "checkpoint.pt";
  }
}

// What the comparisons need from a finished run.
struct Outcome {
  std::string model_ir, config, history, evaluation;
};

Outcome outcome_of(const fs::path& run, const std::string& data, const fs::path& scratch) {
  return {read_file(run / "model.sbir"), read_file(run / "config.json"), history_without_seconds(run),
          evaluation_of(run, data, scratch)};
}

void expect_same_outcome(const Outcome& straight, const Outcome& resumed) {
  EXPECT_FALSE(straight.model_ir.empty());
  EXPECT_TRUE(straight.model_ir == resumed.model_ir) << "model.sbir differs";
  EXPECT_EQ(straight.config, resumed.config);
  EXPECT_EQ(straight.history, resumed.history);
  EXPECT_EQ(straight.evaluation, resumed.evaluation);
}

// The uninterrupted run.
Outcome uninterrupted(const std::string& data, const fs::path& scratch) {
  const auto run = scratch / "straight";
  CliChild train(with(kTrain, {"--fashion-mnist", data, "--out", run.string()}), scratch / "straight.log");
  EXPECT_TRUE(train.succeeded()) << read_file(scratch / "straight.log");
  EXPECT_EQ(history_lines(run), 3);
  EXPECT_TRUE(temporaries_in(run).empty());
  return outcome_of(run, data, scratch);
}

}  // namespace

TEST(Resume, KilledAfterEpochsThenResumedMatchesAnUninterruptedRun) {
  if (!have_fashion_mnist()) GTEST_SKIP() << "Fashion-MNIST not installed";
  const auto scratch = fresh_dir("epochs");
  const std::string data = small_fashion_mnist(scratch);
  const Outcome straight = uninterrupted(data, scratch);
  const auto run = scratch / "killed";
  const auto log = scratch / "killed.log";

  // Killed as soon as the first epoch's checkpoint is there ...
  {
    CliChild train(with(kTrain, {"--fashion-mnist", data, "--out", run.string()}), log);
    ASSERT_TRUE(wait_until(train, [&] { return fs::exists(run / "checkpoint.pt"); }))
        << "the run ended before its first checkpoint: " << read_file(log);
    ASSERT_TRUE(train.kill());
  }
  EXPECT_FALSE(fs::exists(run / "model.sbir"));  // it did not finish
  expect_outputs_whole(run);
  // ... resumed and killed again once the second epoch is recorded ...
  {
    CliChild train(with(kTrain, {"--fashion-mnist", data, "--out", run.string(), "--resume"}), log);
    ASSERT_TRUE(wait_until(train, [&] { return history_lines(run) >= 2; }))
        << "the resumed run ended before its second epoch: " << read_file(log);
    ASSERT_TRUE(train.kill());
  }
  EXPECT_FALSE(fs::exists(run / "model.sbir"));
  expect_outputs_whole(run);
  // ... and resumed to the end.
  {
    CliChild train(with(kTrain, {"--fashion-mnist", data, "--out", run.string(), "--resume"}), log);
    ASSERT_TRUE(train.succeeded()) << read_file(log);
  }
  EXPECT_EQ(history_lines(run), 3);
  expect_same_outcome(straight, outcome_of(run, data, scratch));
  EXPECT_EQ(temporaries_in(scratch), std::vector<std::string>{});
  fs::remove_all(scratch);
}

TEST(Resume, KilledWhileLoadingOrWritingThenRunAgainMatchesAnUninterruptedRun) {
  if (!have_fashion_mnist()) GTEST_SKIP() << "Fashion-MNIST not installed";
  const auto scratch = fresh_dir("writing");
  const std::string data = small_fashion_mnist(scratch);
  const Outcome straight = uninterrupted(data, scratch);
  const auto run = scratch / "killed";
  const auto log = scratch / "killed.log";
  const auto writing_checkpoint = [&] {
    std::error_code ec;
    for (const auto& entry : fs::directory_iterator(run, ec)) {
      if (entry.path().filename().string().rfind("checkpoint.pt.tmp.", 0) == 0) return true;
    }
    return false;
  };

  // The same command each time (--resume also starts a fresh run), killed at moments chosen by
  // what it has written so far: a random 0-300 ms after it has loaded the data (config.json is
  // written then), then twice while a checkpoint is being written (its temporary file is there;
  // or, should a write be too quick to catch, once the next epoch is recorded). Then it runs to
  // the end.
  std::mt19937 random(std::random_device{}());
  std::uniform_int_distribution<int> offset_ms(0, 300);
  int kills = 0, kills_inside_a_write = 0;
  for (int attempt = 0; attempt < 3; ++attempt) {
    CliChild train(with(kTrain, {"--fashion-mnist", data, "--out", run.string(), "--resume"}), log);
    const int lines = history_lines(run);
    bool reached = false;
    if (attempt == 0) {
      reached = wait_until(train, [&] { return fs::exists(run / "config.json"); });
      std::this_thread::sleep_for(std::chrono::milliseconds(offset_ms(random)));
    } else {
      reached = wait_until(train, [&] { return writing_checkpoint() || history_lines(run) > lines; });
      kills_inside_a_write += writing_checkpoint();
    }
    ASSERT_TRUE(reached) << "attempt " << attempt << " ended before it could be killed: " << read_file(log);
    ASSERT_TRUE(train.kill()) << "attempt " << attempt << " ended before it could be killed: " << read_file(log);
    ++kills;
    SCOPED_TRACE("after kill " + std::to_string(kills));
    expect_outputs_whole(run);
    EXPECT_FALSE(fs::exists(run / "model.sbir"));
  }
  {
    CliChild train(with(kTrain, {"--fashion-mnist", data, "--out", run.string(), "--resume"}), log);
    ASSERT_TRUE(train.succeeded()) << read_file(log);
  }
  RecordProperty("kills_inside_a_checkpoint_write", kills_inside_a_write);
  EXPECT_EQ(kills, 3);
  EXPECT_EQ(history_lines(run), 3);
  expect_same_outcome(straight, outcome_of(run, data, scratch));
  EXPECT_EQ(temporaries_in(scratch), std::vector<std::string>{});
  fs::remove_all(scratch);
}
