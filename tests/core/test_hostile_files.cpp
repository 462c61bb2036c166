// Files that are not what a command expects: outputs onto devices, FIFOs, links and directories;
// several outputs written all or none; directory locks; input files that are directories; IDX files
// that are FIFOs or announce more than is read.
#include <gtest/gtest.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>
#include <zlib.h>

#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/atomic_file.h"
#include "core/config.h"
#include "core/dir_lock.h"
#include "core/error.h"
#include "error_checks.h"
#include "core/read_file.h"
#include "data/idx.h"
#include "hw/hardware_config.h"

namespace fs = std::filesystem;
using namespace spinbayes;
using spinbayes::testing::expect_error;

namespace {

std::string read_file(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

std::vector<std::string> names_in(const fs::path& dir) {
  std::vector<std::string> names;
  for (const auto& entry : fs::directory_iterator(dir)) names.push_back(entry.path().filename().string());
  return names;
}

class Hardening : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("spinbayes-hardening-" + std::to_string(::getpid()) + "-" +
                                        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  fs::path dir_;
};

}  // namespace

// ---- outputs that are not regular files --------------------------------------------------------

TEST_F(Hardening, OutputOntoACharacterDeviceWritesThroughAndKeepsTheDevice) {
  const fs::path node = dir_ / "null";
  if (::mknod(node.c_str(), S_IFCHR | 0666, makedev(1, 3)) != 0) GTEST_SKIP() << "mknod needs root";
  write_file_atomic(node, "{}\n");
  EXPECT_TRUE(fs::is_character_file(fs::symlink_status(node))) << "the device node was replaced";
  EXPECT_EQ(names_in(dir_), std::vector<std::string>{"null"}) << "a temporary was left beside the device";
}

TEST_F(Hardening, OutputOntoAFullDeviceIsAWriteError) {
  const fs::path node = dir_ / "full";
  if (::mknod(node.c_str(), S_IFCHR | 0666, makedev(1, 7)) != 0) GTEST_SKIP() << "mknod needs root";
  expect_error([&] { write_file_atomic(node, std::string(100000, 'x')); }, {node.string(), "No space left"});
  EXPECT_TRUE(fs::is_character_file(fs::symlink_status(node)));
}

TEST_F(Hardening, OutputOntoAFifoWritesThroughOrFailsWithoutAReader) {
  const fs::path fifo = dir_ / "fifo";
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0666), 0);
  // Nobody reads: an error, not a wait forever, and the FIFO stays.
  expect_error([&] { write_file_atomic(fifo, "data"); }, {fifo.string(), "FIFO"});
  EXPECT_TRUE(fs::is_fifo(fs::symlink_status(fifo)));
  // With a reader the bytes go through the FIFO.
  const int reader = ::open(fifo.c_str(), O_RDONLY | O_NONBLOCK);
  ASSERT_GE(reader, 0);
  write_file_atomic(fifo, "through");
  char buffer[16] = {};
  EXPECT_EQ(::read(reader, buffer, sizeof buffer), 7);
  EXPECT_EQ(std::string(buffer), "through");
  ::close(reader);
  EXPECT_TRUE(fs::is_fifo(fs::symlink_status(fifo)));
  EXPECT_EQ(names_in(dir_), std::vector<std::string>{"fifo"});
}

TEST_F(Hardening, OutputThroughASymlinkReplacesItsTargetAndKeepsTheLink) {
  const fs::path target = dir_ / "target.json", link = dir_ / "link.json";
  std::ofstream(target) << "old";
  fs::create_symlink(target, link);
  write_file_atomic(link, "new");
  EXPECT_TRUE(fs::is_symlink(fs::symlink_status(link)));
  EXPECT_EQ(read_file(target), "new");
  // A link to a device writes through to the device; the link stays.
  const fs::path fifo = dir_ / "fifo", fifo_link = dir_ / "fifo-link";
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0666), 0);
  fs::create_symlink(fifo, fifo_link);
  expect_error([&] { write_file_atomic(fifo_link, "x"); }, {"FIFO"});
  EXPECT_TRUE(fs::is_symlink(fs::symlink_status(fifo_link)));
  EXPECT_TRUE(fs::is_fifo(fs::symlink_status(fifo)));
}

TEST_F(Hardening, OutputOntoADirectoryOrADanglingLinkIsRefused) {
  fs::create_directories(dir_ / "sub");
  expect_error([&] { write_file_atomic(dir_ / "sub", "x"); }, {"sub", "is a directory"});
  EXPECT_TRUE(fs::is_directory(dir_ / "sub"));
  fs::create_symlink(dir_ / "nowhere", dir_ / "dangling");
  expect_error([&] { write_file_atomic(dir_ / "dangling", "x"); }, {"dangling", "dangling"});
  EXPECT_FALSE(fs::exists(dir_ / "nowhere"));
  expect_error([&] { check_output_path(dir_ / "sub", "--json"); }, {"--json", "is a directory"});
  std::ofstream(dir_ / "file") << "x";
  expect_error([&] { check_output_path(dir_ / "file" / "out.json", "--json"); }, {"--json", "not a directory"});
  EXPECT_NO_THROW(check_output_path(dir_ / "new" / "out.json", "--json"));
}

TEST_F(Hardening, SeveralOutputsAreWrittenAllOrNone) {
  std::ofstream(dir_ / "a.csv") << "old a";
  fs::create_directories(dir_ / "b.png");  // the second output cannot be written
  expect_error([&] { write_files_atomic({{dir_ / "a.csv", "new a"}, {dir_ / "b.png", "new b"}}); }, {"b.png"});
  EXPECT_EQ(read_file(dir_ / "a.csv"), "old a") << "the first file was written though the second failed";
  auto names = names_in(dir_);
  std::sort(names.begin(), names.end());
  EXPECT_EQ(names, (std::vector<std::string>{"a.csv", "b.png"})) << "a temporary was left behind";
  // A device that fails is written before any file is renamed into place.
  const fs::path full = dir_ / "full";
  if (::mknod(full.c_str(), S_IFCHR | 0666, makedev(1, 7)) == 0) {
    expect_error([&] { write_files_atomic({{dir_ / "a.csv", "new a"}, {full, "plot"}}); }, {"No space left"});
    EXPECT_EQ(read_file(dir_ / "a.csv"), "old a") << "the file was renamed though the device failed";
    fs::remove(full);
  }
  write_files_atomic({{dir_ / "a.csv", "new a"}, {dir_ / "c.png", "new c"}});
  EXPECT_EQ(read_file(dir_ / "a.csv"), "new a");
  EXPECT_EQ(read_file(dir_ / "c.png"), "new c");
}

// ---- inputs that are not regular files ---------------------------------------------------------

TEST_F(Hardening, ReadingADirectoryOrAMissingFileSaysSo) {
  expect_error([&] { read_file_bytes(dir_); }, {dir_.string(), "is a directory"});
  expect_error([&] { read_file_bytes(dir_ / "missing.json"); }, {"missing.json", "not found"});
  fs::create_directories(dir_ / "hw.json");
  expect_error([&] { HardwareConfig::load((dir_ / "hw.json").string()); }, {"hw.json", "is a directory"});
  ConfigTable table;
  double x = 0;
  table.number("x", x, 0, 1, "", "");
  expect_error([&] { table.apply_file(dir_ / "hw.json"); }, {"is a directory"});
}

TEST_F(Hardening, AnIdxFifoIsRefusedInsteadOfWaitingForAWriter) {
  const fs::path fifo = dir_ / "images-idx3-ubyte";
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0666), 0);
  expect_error([&] { load_idx_images(fifo); }, {fifo.string(), "not a regular file"});
}

// ---- locks ---------------------------------------------------------------------------------------

TEST_F(Hardening, ADirectoryLockExcludesASecondHolderUntilReleased) {
  const fs::path run = dir_ / "run";
  {
    const DirectoryLock first(run, "--out", "training run");
    expect_error([&] { DirectoryLock second(run, "--out", "training run"); },
                 {"--out", run.string(), "another training run"});
  }
  EXPECT_NO_THROW(DirectoryLock again(run, "--out", "training run"));
  std::ofstream(dir_ / "plain") << "x";
  expect_error([&] { DirectoryLock lock(dir_ / "plain", "--out", "experiment"); }, {"not a directory"});
}

// A run that fails before writing anything leaves no directory behind: the lock removes what it
// created (with the parents it created) when only empty directories and its lock file are there,
// and keeps a directory with any file in it, or one it did not create.
TEST_F(Hardening, ADirectoryLockRemovesTheEmptyDirectoriesItCreated) {
  const fs::path parent = dir_ / "new", run = parent / "deeper" / "run";
  { const DirectoryLock lock(run, "--out", "experiment"); }
  EXPECT_FALSE(fs::exists(parent));
  { const DirectoryLock lock(run.string() + "/", "--out", "experiment"); }  // "run/" names the same
  EXPECT_FALSE(fs::exists(parent));
  {
    const DirectoryLock lock(run, "--out", "experiment");
    fs::create_directories(run / "stages" / "empty");
    fs::create_directories(run / "figures");
  }
  EXPECT_FALSE(fs::exists(parent));  // empty subdirectories are nothing written
  {
    const DirectoryLock lock(run, "--out", "experiment");
    fs::create_directories(run / "stages");
    std::ofstream(run / "stages" / "one.json") << "{}";
  }
  EXPECT_TRUE(fs::exists(run / "stages" / "one.json"));
  EXPECT_TRUE(fs::exists(run / DirectoryLock::kFileName));
  fs::remove_all(run / "stages");
  { const DirectoryLock lock(run, "--out", "experiment"); }
  EXPECT_TRUE(fs::is_directory(run));  // there before the lock: left as it was
  // A parent that something else wrote into while the lock was held stays, with what it holds.
  const fs::path other = dir_ / "other", inner = other / "run";
  {
    const DirectoryLock lock(inner, "--out", "experiment");
    std::ofstream(other / "note") << "x";
  }
  EXPECT_FALSE(fs::exists(inner));
  EXPECT_TRUE(fs::exists(other / "note"));
  // After a release that removed the directory, the next lock makes it again and excludes others.
  {
    std::optional<DirectoryLock> first(std::in_place, run / "x", "--out", "experiment");
    first.reset();
    const DirectoryLock second(run / "x", "--out", "experiment");
    expect_error([&] { DirectoryLock third(run / "x", "--out", "experiment"); }, {"another experiment"});
  }
}

// ---- IDX files announcing more than is read ------------------------------------------------------

TEST_F(Hardening, AGzipIdxAnnouncingMillionsOfImagesIsReadOnlyAsFarAsAsked) {
  // The header announces 2,000,000 images of 28 x 28 (1.5 GB); the stream holds 20.
  const std::uint32_t announced = 2000000;
  std::string bytes = {0, 0, 8, 3};
  for (const std::uint32_t d : {announced, 28u, 28u}) {
    for (int shift = 24; shift >= 0; shift -= 8) bytes.push_back(static_cast<char>((d >> shift) & 0xFF));
  }
  bytes += std::string(20 * 28 * 28, '\x40');
  const fs::path path = dir_ / "bomb-idx3-ubyte.gz";
  gzFile out = gzopen(path.c_str(), "wb");
  ASSERT_NE(out, nullptr);
  ASSERT_EQ(gzwrite(out, bytes.data(), static_cast<unsigned>(bytes.size())), static_cast<int>(bytes.size()));
  gzclose(out);

  const ImageSet few = load_idx_images(path, {}, 10);
  EXPECT_EQ(few.n, 10);
  EXPECT_EQ(few.pixels.size(), 10u * 28 * 28);
  // All of it: the file is named, and the memory taken follows the 20 images there.
  expect_error([&] { load_idx_images(path); }, {path.string(), "truncated"});
  const IdxArray array = read_idx(path, 5);
  EXPECT_EQ(array.dims, (std::vector<std::uint32_t>{5, 28, 28}));
  EXPECT_EQ(array.data.size(), 5u * 28 * 28);
}
