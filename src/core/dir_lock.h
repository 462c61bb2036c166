#pragma once
// An exclusive lock on a directory that a run writes into (a training run, an experiment), so
// that a second process given the same directory stops at once with a one-line error instead of
// mixing its files with the first one's. The lock is flock(2) on DIR/.spinbayes.lock: the kernel
// drops it when the process ends, however it ends (kill -9 included), so it never goes stale.
// A directory the lock created is removed again when it is released holding nothing but the lock
// file and empty directories (a run that failed before writing anything), with the parents it
// created that are left empty: a failed run leaves no empty directory behind.
#include <filesystem>
#include <string>
#include <vector>

namespace spinbayes {

class DirectoryLock {
 public:
  // Creates `dir` if needed and locks it; throws Error("<option>: <dir>: ...") when another
  // process holds it or it cannot be created. `what` names the kind of run ("training run").
  DirectoryLock(const std::filesystem::path& dir, const std::string& option, const std::string& what);
  ~DirectoryLock();
  DirectoryLock(const DirectoryLock&) = delete;
  DirectoryLock& operator=(const DirectoryLock&) = delete;

  static constexpr const char* kFileName = ".spinbayes.lock";

 private:
  // The directory locked and those create_directories made for it, innermost first.
  std::filesystem::path dir_;
  std::vector<std::filesystem::path> created_;
  int fd_ = -1;
};

}  // namespace spinbayes
