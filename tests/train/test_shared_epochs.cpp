// Runs that start from another run's checkpoint (`train --init`): the models of a comparison can
// share their first epochs, trained once, and train the rest each with its own dropout.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <sstream>
#include <string>
#include <tuple>

#include <nlohmann/json.hpp>

#include "cli_runner.h"
#include "data/datasets.h"
#include "data/idx.h"
#include "data/image_set.h"

namespace fs = std::filesystem;
using nlohmann::json;
using spinbayes::run_cli;

namespace {

bool have_fashion_mnist() {
  return fs::exists(spinbayes::DataPaths::from_environment().fashion_mnist / "train-images-idx3-ubyte.gz");
}

std::string read_text(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

// train.jsonl's lines without the wall-clock field.
std::vector<json> history(const fs::path& run) {
  std::vector<json> lines;
  std::istringstream in(read_text(run / "train.jsonl"));
  std::string line;
  while (std::getline(in, line)) {
    json j = json::parse(line);
    j.erase("seconds");
    lines.push_back(j);
  }
  return lines;
}

class SharedEpochs : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    if (!have_fashion_mnist()) return;
    scratch_ = fs::temp_directory_path() / ("spinbayes-shared-epochs-" + std::to_string(::getpid()));
    fs::remove_all(scratch_);
    fs::create_directories(scratch_ / "data");
    const auto paths = spinbayes::DataPaths::from_environment();
    for (const auto& [split, prefix, count] : {std::tuple<std::string, std::string, int>{"train", "train", 2500},
                                                {"test", "t10k", 300}}) {
      const auto set = spinbayes::first_images(spinbayes::load_fashion_mnist(paths, split), count);
      spinbayes::save_idx_images(set, scratch_ / "data" / (prefix + "-images-idx3-ubyte"),
                                 scratch_ / "data" / (prefix + "-labels-idx1-ubyte"));
    }
    // The run trained straight through, and the first two of its three epochs as a run of their own.
    straight_ok_ = run_cli(train("spatial --p 0.2", "straight")).exit_code == 0;
    shared_ok_ = run_cli(train("spatial --p 0.2", "shared") + " --stop-after 2").exit_code == 0;
  }
  static void TearDownTestSuite() {
    if (!scratch_.empty()) fs::remove_all(scratch_);
  }
  void SetUp() override {
    if (!have_fashion_mnist()) GTEST_SKIP() << "Fashion-MNIST not installed";
    ASSERT_TRUE(straight_ok_ && shared_ok_);
  }
  static std::string train(const std::string& dropout, const std::string& out) {
    return "train --model mlp --width 32 --epochs 3 --subset 2000 --validation 100 --seed 5 --threads 1 --quiet "
           "--dropout " + dropout + " --fashion-mnist " + (scratch_ / "data").string() + " --out " +
           (scratch_ / out).string();
  }
  static fs::path scratch_;
  static bool straight_ok_, shared_ok_;
};
fs::path SharedEpochs::scratch_;
bool SharedEpochs::straight_ok_ = false, SharedEpochs::shared_ok_ = false;

}  // namespace

// Starting from the first two epochs with the same dropout is resuming them: the same weights,
// bit for bit, as the run trained straight through.
TEST_F(SharedEpochs, StartingFromARunWithItsOwnDropoutIsTheUninterruptedRun) {
  const auto r = run_cli(train("spatial --p 0.2", "same") + " --init " + (scratch_ / "shared").string());
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_TRUE(read_text(scratch_ / "same" / "model.sbir") == read_text(scratch_ / "straight" / "model.sbir"));
  EXPECT_EQ(history(scratch_ / "same"), history(scratch_ / "straight"));
  const json config = json::parse(read_text(scratch_ / "same" / "config.json"));
  EXPECT_EQ(config["training"]["init"], (scratch_ / "shared").string());
  EXPECT_EQ(config["training"]["init_epochs"], 2);
}

// With another dropout the run takes the two epochs as they are and trains the third with its own.
TEST_F(SharedEpochs, AnotherDropoutTrainsTheRemainingEpochs) {
  const auto r = run_cli(train("element --p 0.1", "element") + " --init " + (scratch_ / "shared").string());
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const std::vector<json> shared = history(scratch_ / "shared"), element = history(scratch_ / "element");
  ASSERT_EQ(shared.size(), 2u);
  ASSERT_EQ(element.size(), 3u);
  EXPECT_EQ(element[0], shared[0]);
  EXPECT_EQ(element[1], shared[1]);
  EXPECT_NE(element[2], history(scratch_ / "straight")[2]);
  const json config = json::parse(read_text(scratch_ / "element" / "config.json"));
  EXPECT_EQ(config["model"]["dropout"], "element");
  EXPECT_EQ(config["training"]["init_epochs"], 2);
  // A resumed run keeps where it started from.
  const auto again = run_cli(train("element --p 0.1", "element") + " --resume");
  EXPECT_EQ(again.exit_code, 0) << again.output;
  const auto moved = run_cli(train("element --p 0.1", "element") + " --resume --init " + (scratch_ / "straight").string());
  EXPECT_EQ(moved.exit_code, 1) << moved.output;
  EXPECT_NE(moved.output.find("--init"), std::string::npos) << moved.output;
}

TEST_F(SharedEpochs, RunsThatCannotBeStartedFromAreOneLineErrors) {
  struct Case {
    std::string command, cause;
  };
  const std::string shared = (scratch_ / "shared").string();
  const std::vector<Case> cases = {
      {train("spatial --p 0.2 --batch 50", "b") + " --init " + shared, "is a run of another network or schedule: --batch 50"},
      {train("none", "c").replace(train("none", "c").find("--width 32"), 10, "--width 16") + " --init " + shared,
       "--width 16 (the run has 32)"},
      {train("none", "d") + " --init " + (scratch_ / "straight").string(), "has finished 3 of its 3 epochs"},
      {train("none", "e") + " --init " + (scratch_ / "nowhere").string(), "config.json: not found"},
      {train("none", "f") + " --stop-after -1", "stop-after: must be >= 0"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.cause);
    const auto r = run_cli(c.command);
    EXPECT_EQ(r.exit_code, 1) << r.output;
    EXPECT_EQ(std::count(r.output.begin(), r.output.end(), '\n'), 1) << r.output;
    EXPECT_NE(r.output.find(c.cause), std::string::npos) << r.output;
  }
}
