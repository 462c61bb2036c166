// Atomic writes under SIGKILL: a writer killed at any moment leaves the target with its old or its
// new content, never a part; the temporary it was writing is removed by the next writer.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <thread>
#include <vector>

#include "core/atomic_file.h"
#include "core/error.h"

namespace fs = std::filesystem;

namespace {

std::string read_file(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

std::vector<std::string> temporaries_of(const fs::path& path) {
  std::vector<std::string> found;
  for (const auto& entry : fs::directory_iterator(path.parent_path())) {
    const std::string name = entry.path().filename().string();
    if (name.rfind(path.filename().string() + ".tmp.", 0) == 0) found.push_back(name);
  }
  return found;
}

class AtomicFile : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("spinbayes-atomic-" + std::to_string(::getpid()));
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  fs::path dir_;
};

}  // namespace

TEST_F(AtomicFile, WritesAndReplaces) {
  const auto path = dir_ / "sub" / "out.json";
  spinbayes::write_file_atomic(path, "first");
  EXPECT_EQ(read_file(path), "first");
  spinbayes::write_file_atomic(path, "second, longer");
  EXPECT_EQ(read_file(path), "second, longer");
  EXPECT_TRUE(temporaries_of(path).empty());
}

TEST_F(AtomicFile, KilledWriterLeavesOldOrNewContentNeverPart) {
  const auto path = dir_ / "big.bin";
  // 2 MB each, so that a kill often lands inside a write.
  const std::string contents[2] = {std::string(2 << 20, 'a'), std::string(2 << 20, 'b')};
  spinbayes::write_file_atomic(path, contents[0]);
  int interrupted_writes = 0;
  for (int round = 0; round < 8; ++round) {
    const pid_t child = ::fork();
    ASSERT_GE(child, 0);
    if (child == 0) {
      try {
        for (int i = 1;; ++i) spinbayes::write_file_atomic(path, contents[i % 2]);
      } catch (...) {
        ::_exit(1);
      }
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20 + 7 * round));
    ASSERT_EQ(::kill(child, SIGKILL), 0);
    int status = 0;
    ASSERT_EQ(::waitpid(child, &status, 0), child);
    ASSERT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);

    const std::string now = read_file(path);
    EXPECT_TRUE(now == contents[0] || now == contents[1]) << "round " << round << ": " << now.size() << " bytes";
    const auto left = temporaries_of(path);
    interrupted_writes += static_cast<int>(left.size());
    // The next write removes what the killed writer left behind.
    spinbayes::write_file_atomic(path, contents[round % 2]);
    EXPECT_TRUE(temporaries_of(path).empty());
    EXPECT_EQ(read_file(path), contents[round % 2]);
  }
  // Writes take most of the writer's time: some kills must have hit one.
  EXPECT_GT(interrupted_writes, 0);
}

TEST_F(AtomicFile, KeepsTheTemporariesOfLiveWriters) {
  const auto path = dir_ / "shared.json";
  const auto live = dir_ / ("shared.json.tmp." + std::to_string(::getppid()));  // a process that runs
  const auto other = dir_ / "shared.json.tmp.notapid";
  std::ofstream(live) << "being written";
  std::ofstream(other) << "not ours";
  spinbayes::write_file_atomic(path, "x");
  EXPECT_TRUE(fs::exists(live));
  EXPECT_TRUE(fs::exists(other));
}

TEST_F(AtomicFile, UnwritableTargetIsAnError) {
  std::ofstream(dir_ / "plain-file") << "a file, not a directory";
  EXPECT_THROW(spinbayes::write_file_atomic(dir_ / "plain-file" / "out.json", "y"), spinbayes::Error);
}
