#include "core/dir_lock.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "core/error.h"

namespace spinbayes {

DirectoryLock::DirectoryLock(const std::filesystem::path& dir, const std::string& option, const std::string& what) {
  if (dir.empty()) throw Error(option + ": must not be empty");
  const std::string name = option + ": " + printable(dir.string());
  std::error_code ec;
  if (std::filesystem::exists(dir, ec) && !std::filesystem::is_directory(dir, ec)) {
    throw Error(option + ": '" + printable(dir.string()) + "' exists and is not a directory");
  }
  std::filesystem::create_directories(dir, ec);
  if (ec) throw Error(name + ": cannot create the directory: " + ec.message());
  const auto path = dir / kFileName;
  fd_ = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0644);
  if (fd_ < 0) throw Error(name + ": cannot create its lock file: " + std::strerror(errno));
  if (::flock(fd_, LOCK_EX | LOCK_NB) != 0) {
    const int error = errno;
    ::close(fd_);
    fd_ = -1;
    if (error == EWOULDBLOCK) throw Error(name + ": another " + what + " is writing into this directory");
    throw Error(name + ": cannot lock: " + std::strerror(error));
  }
}

DirectoryLock::~DirectoryLock() {
  if (fd_ >= 0) ::close(fd_);
}

}  // namespace spinbayes
