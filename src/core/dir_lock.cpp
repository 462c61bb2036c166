#include "core/dir_lock.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <vector>

#include "core/error.h"

namespace spinbayes {

namespace {

// Whether `dir` holds nothing but directories that hold nothing (at any depth), and at its top a
// file named `lock_file`.
bool holds_nothing(const std::filesystem::path& dir, const char* lock_file) {
  std::error_code ec;
  for (std::filesystem::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    const std::filesystem::file_status status = it->symlink_status(ec);
    if (ec) return false;
    if (lock_file != nullptr && it->path().filename() == lock_file && std::filesystem::is_regular_file(status)) continue;
    if (!std::filesystem::is_directory(status) || !holds_nothing(it->path(), nullptr)) return false;
  }
  return !ec;
}

// Removes the empty directories under `dir`, deepest first, then `dir` itself, each with rmdir
// alone: one that something else wrote into meanwhile is not empty and stays, with what it holds.
void remove_empty_directories(const std::filesystem::path& dir) {
  std::error_code ec;
  std::vector<std::filesystem::path> subdirectories;
  for (std::filesystem::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    if (it->symlink_status(ec).type() == std::filesystem::file_type::directory) subdirectories.push_back(it->path());
  }
  for (const std::filesystem::path& sub : subdirectories) remove_empty_directories(sub);
  std::filesystem::remove(dir, ec);  // rmdir: fails on a directory that is not empty
}

}  // namespace

DirectoryLock::DirectoryLock(const std::filesystem::path& dir, const std::string& option, const std::string& what)
    : dir_(dir.has_filename() ? dir : dir.parent_path()) {  // "out/" is "out"
  if (dir.empty()) throw Error(option + ": must not be empty");
  const std::string name = option + ": " + printable(dir.string());
  const auto path = dir / kFileName;
  // A holder that releases an empty directory removes it with its lock file: a process that
  // opened the file before then locks a file no longer there, and opens the path again.
  for (int attempt = 0;; ++attempt) {
    std::error_code ec;
    if (std::filesystem::exists(dir, ec) && !std::filesystem::is_directory(dir, ec)) {
      throw Error(option + ": '" + printable(dir.string()) + "' exists and is not a directory");
    }
    created_.clear();
    // Only names that are directories of their own: the walk stops at '.' and '..', so that
    // what is removed later is never a directory reached another way.
    for (std::filesystem::path p = dir_; !p.empty() && !std::filesystem::exists(p, ec); p = p.parent_path()) {
      if (p.filename() == "." || p.filename() == ".." || p == p.parent_path()) break;
      created_.push_back(p);
    }
    std::filesystem::create_directories(dir, ec);
    if (ec == std::errc::no_such_file_or_directory && attempt < 100) continue;  // a parent removed meanwhile
    if (ec) throw Error(name + ": cannot create the directory: " + ec.message());
    fd_ = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0644);
    if (fd_ < 0 && errno == ENOENT && attempt < 100) continue;  // a releasing holder removed the directory
    if (fd_ < 0) throw Error(name + ": cannot create its lock file: " + std::strerror(errno));
    if (::flock(fd_, LOCK_EX | LOCK_NB) != 0) {
      const int error = errno;
      ::close(fd_);
      fd_ = -1;
      if (error == EWOULDBLOCK) throw Error(name + ": another " + what + " is writing into this directory");
      throw Error(name + ": cannot lock: " + std::strerror(error));
    }
    struct stat locked {}, named {};
    if (::fstat(fd_, &locked) == 0 && ::stat(path.c_str(), &named) == 0 && locked.st_dev == named.st_dev &&
        locked.st_ino == named.st_ino) {
      return;
    }
    ::close(fd_);
    fd_ = -1;
    if (attempt == 100) throw Error(name + ": cannot lock: its lock file keeps being removed");
  }
}

DirectoryLock::~DirectoryLock() {
  if (fd_ < 0) return;
  // Still holding the lock: remove what this lock created if the run wrote nothing into it. Only
  // the lock file is unlinked; directories go by rmdir, so that whatever another process writes
  // there meanwhile stays (a waiting process sees the lock file gone and opens the path again).
  std::error_code ec;
  if (!created_.empty() && holds_nothing(dir_, kFileName)) {
    std::filesystem::remove(dir_ / kFileName, ec);
    remove_empty_directories(dir_);
    for (std::size_t i = 1; i < created_.size(); ++i) {
      if (!std::filesystem::remove(created_[i], ec)) break;  // rmdir; not empty or not there: stop
    }
  }
  ::close(fd_);
}

}  // namespace spinbayes
