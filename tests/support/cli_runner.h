#pragma once
// Runs the real `spinbayes` binary (SPINBAYES_CLI_PATH) for tests of the command line.
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

namespace spinbayes {

struct CliResult {
  int exit_code = -1;
  std::string output;  // stdout and stderr together
};

// A shell command line, its stdout and stderr together.
inline CliResult run_shell(const std::string& command_line) {
  const std::string command = command_line + " 2>&1";
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

inline CliResult run_cli(const std::string& args) { return run_shell(std::string(SPINBAYES_CLI_PATH) + " " + args); }

// A new empty directory for one test of this process: <tmp>/spinbayes-<prefix>-<name>-<pid>.
inline std::filesystem::path fresh_test_dir(const std::string& prefix, const std::string& name) {
  const auto dir = std::filesystem::temp_directory_path() /
                   ("spinbayes-" + prefix + "-" + name + "-" + std::to_string(::getpid()));
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  return dir;
}

inline std::string file_bytes(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

// A tiny trained run (mlp width 16, spatial dropout p = 0.2, one epoch on 200 images, 100 held
// out), trained once per test process.
inline const std::filesystem::path& tiny_spatial_run() {
  static const std::filesystem::path dir = [] {
    const auto d = fresh_test_dir("tiny", "run") / "run";
    const auto r = run_cli("train --model mlp --width 16 --dropout spatial --p 0.2 --epochs 1 --subset 200 --batch 50 "
                           "--validation 100 --threads 1 --quiet --out " + d.string());
    EXPECT_EQ(r.exit_code, 0) << r.output;
    return d;
  }();
  return dir;
}

// The command failed with exit status 1 and printed exactly one line, the error, holding `parts`.
inline void expect_cli_error(const CliResult& r, const std::vector<std::string>& parts) {
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_EQ(std::count(r.output.begin(), r.output.end(), '\n'), 1) << r.output;
  EXPECT_EQ(r.output.rfind("spinbayes: error: ", 0), 0u) << r.output;
  for (const auto& part : parts) EXPECT_NE(r.output.find(part), std::string::npos) << "'" << part << "' not in: " << r.output;
}

}  // namespace spinbayes
