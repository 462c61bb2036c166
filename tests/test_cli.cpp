// The command line on bad input: a one-line error naming the cause and a non-zero exit, never a
// crash. Runs the real `spinbayes` binary.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>

#include "data/idx.h"

namespace {

struct CliResult {
  int exit_code = -1;
  std::string output;  // stdout and stderr together
};

CliResult run_cli(const std::string& args) {
  const std::string command = std::string(SPINBAYES_CLI_PATH) + " " + args + " 2>&1";
  CliResult r;
  FILE* pipe = ::popen(command.c_str(), "r");
  if (pipe == nullptr) return r;
  char buffer[4096];
  std::size_t n;
  while ((n = std::fread(buffer, 1, sizeof buffer, pipe)) > 0) r.output.append(buffer, n);
  const int status = ::pclose(pipe);
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  return r;
}

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
