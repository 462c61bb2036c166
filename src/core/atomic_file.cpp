#include "core/atomic_file.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <string>

#include "core/error.h"

namespace spinbayes {

namespace {

namespace fs = std::filesystem;

[[noreturn]] void fail(const fs::path& path, const std::string& what) {
  throw Error(printable(path.string()) + ": " + what);
}

// Where an output goes: replaced atomically at `path` (a new path or a regular file, links
// resolved), or written through in place (a character device or a FIFO).
struct Target {
  fs::path path;
  bool through = false;
};

Target resolve_output(const fs::path& path) {
  if (path.empty()) throw Error("output path is empty");
  struct stat st {};
  if (::lstat(path.c_str(), &st) != 0) {
    if (errno == ENOENT) return {path, false};
    if (errno == ENOTDIR) fail(path, "cannot write: a parent of it is not a directory");
    fail(path, std::string("cannot write: ") + std::strerror(errno));
  }
  if (S_ISREG(st.st_mode)) return {path, false};
  if (S_ISLNK(st.st_mode)) {
    if (::stat(path.c_str(), &st) != 0) {
      if (errno == ENOENT) fail(path, "is a dangling symbolic link; refusing to write through it");
      fail(path, std::string("cannot write: ") + std::strerror(errno));
    }
    if (S_ISREG(st.st_mode)) {
      std::error_code ec;
      const fs::path target = fs::canonical(path, ec);
      if (ec) fail(path, "cannot resolve the symbolic link: " + ec.message());
      return {target, false};
    }
  }
  if (S_ISDIR(st.st_mode)) fail(path, "is a directory");
  if (S_ISBLK(st.st_mode)) fail(path, "is a block device; refusing to write to it");
  if (S_ISSOCK(st.st_mode)) fail(path, "is a socket; cannot write to it");
  if (S_ISCHR(st.st_mode) || S_ISFIFO(st.st_mode)) return {path, true};
  fail(path, "is not a regular file");
}

void write_all(int fd, std::string_view content, const fs::path& path) {
  std::size_t done = 0;
  while (done < content.size()) {
    const ssize_t n = ::write(fd, content.data() + done, content.size() - done);
    if (n < 0) {
      if (errno == EINTR) continue;
      fail(path, std::string("write failed: ") + std::strerror(errno));
    }
    if (n == 0) fail(path, "write failed: no progress");
    done += static_cast<std::size_t>(n);
  }
}

// Writes in place to a character device or a FIFO. SIGPIPE is held back while it writes, so that
// a reader going away is an error (EPIPE) rather than the end of the process.
void write_through(const fs::path& path, std::string_view content) {
  sigset_t pipe_signal, old_mask;
  sigemptyset(&pipe_signal);
  sigaddset(&pipe_signal, SIGPIPE);
  ::pthread_sigmask(SIG_BLOCK, &pipe_signal, &old_mask);
  std::string error;
  // O_NONBLOCK so that a FIFO nobody reads fails (ENXIO) instead of waiting forever.
  const int fd = ::open(path.c_str(), O_WRONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
  if (fd < 0) {
    error = errno == ENXIO ? "is a FIFO that nobody reads" : std::string("cannot open for writing: ") + std::strerror(errno);
  } else {
    ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) & ~O_NONBLOCK);
    try {
      write_all(fd, content, path);
    } catch (const Error& e) {
      error = e.what();
    }
    if (::close(fd) != 0 && error.empty()) error = printable(path.string()) + ": write failed: " + std::strerror(errno);
  }
  const timespec no_wait{};
  while (::sigtimedwait(&pipe_signal, nullptr, &no_wait) == SIGPIPE) {
  }
  ::pthread_sigmask(SIG_SETMASK, &old_mask, nullptr);
  if (!error.empty()) {
    if (error.rfind(printable(path.string()) + ": ", 0) == 0) throw Error(error);
    fail(path, error);
  }
}

// Removes "<path>.tmp.<pid>" files whose process is gone (kill(pid, 0) fails with ESRCH).
void remove_stale_temporaries(const fs::path& path) {
  const fs::path dir = path.has_parent_path() ? path.parent_path() : ".";
  const std::string prefix = path.filename().string() + ".tmp.";
  std::error_code ec;
  for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    const std::string name = it->path().filename().string();
    if (name.size() <= prefix.size() || name.compare(0, prefix.size(), prefix) != 0) continue;
    const std::string digits = name.substr(prefix.size());
    if (digits.size() > 9 || digits.find_first_not_of("0123456789") != std::string::npos) continue;
    const auto pid = static_cast<pid_t>(std::stol(digits));
    if (pid > 0 && pid != ::getpid() && ::kill(pid, 0) != 0 && errno == ESRCH) {
      std::error_code ignored;
      fs::remove(it->path(), ignored);
    }
  }
}

fs::path temporary_beside(const fs::path& target) {
  remove_stale_temporaries(target);
  fs::path tmp = target;
  tmp += ".tmp." + std::to_string(::getpid());
  return tmp;
}

// Writes a complete temporary file (created afresh, never through a link left at its name).
void write_temporary(const fs::path& tmp, std::string_view content, const fs::path& path) {
  ::unlink(tmp.c_str());
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0666);
  if (fd < 0) fail(path, std::string("cannot open for writing: ") + std::strerror(errno));
  std::string error;
  try {
    write_all(fd, content, path);
    if (::fsync(fd) != 0) error = std::string("write failed: ") + std::strerror(errno);
  } catch (const Error& e) {
    error = e.what();
  }
  if (::close(fd) != 0 && error.empty()) error = std::string("write failed: ") + std::strerror(errno);
  if (!error.empty()) {
    ::unlink(tmp.c_str());
    if (error.rfind(printable(path.string()) + ": ", 0) == 0) throw Error(error);
    fail(path, error);
  }
}

void make_parent_directories(const fs::path& path) {
  if (!path.has_parent_path()) return;
  std::error_code ec;
  fs::create_directories(path.parent_path(), ec);
  if (ec) fail(path, "cannot create its directory: " + ec.message());
}

struct Staged {
  fs::path path;  // as given
  Target target;
  fs::path tmp;  // empty when written through
};

Staged stage(const fs::path& path, std::string_view content) {
  Staged s{path, resolve_output(path), {}};
  if (s.target.through) return s;
  make_parent_directories(s.target.path);
  s.tmp = temporary_beside(s.target.path);
  write_temporary(s.tmp, content, path);
  return s;
}

void commit(const Staged& s, std::string_view content) {
  if (s.target.through) {
    write_through(s.target.path, content);
    return;
  }
  std::error_code ec;
  fs::rename(s.tmp, s.target.path, ec);
  if (ec) {
    fs::remove(s.tmp, ec);
    fail(s.path, "cannot write (rename failed: " + ec.message() + ")");
  }
}

}  // namespace

void write_file_atomic(const std::filesystem::path& path, std::string_view content) {
  commit(stage(path, content), content);
}

void write_files_atomic(const std::vector<std::pair<std::filesystem::path, std::string>>& files) {
  std::vector<Staged> staged;
  try {
    for (const auto& [path, content] : files) staged.push_back(stage(path, content));
  } catch (...) {
    for (const Staged& s : staged) {
      if (!s.tmp.empty()) ::unlink(s.tmp.c_str());
    }
    throw;
  }
  // What is written through (a device, a FIFO) can fail and cannot be taken back, so it goes
  // first; the renames, which replace regular files, follow once it has succeeded.
  std::vector<std::size_t> order;
  for (std::size_t i = 0; i < staged.size(); ++i) {
    if (staged[i].target.through) order.push_back(i);
  }
  for (std::size_t i = 0; i < staged.size(); ++i) {
    if (!staged[i].target.through) order.push_back(i);
  }
  for (std::size_t k = 0; k < order.size(); ++k) {
    try {
      commit(staged[order[k]], files[order[k]].second);
    } catch (...) {
      for (std::size_t j = k + 1; j < order.size(); ++j) {
        if (!staged[order[j]].tmp.empty()) ::unlink(staged[order[j]].tmp.c_str());
      }
      throw;
    }
  }
}

void check_output_path(const std::filesystem::path& path, const std::string& option) {
  try {
    const Target target = resolve_output(path);
    if (target.through) return;
    // The nearest existing ancestor must be a directory we may write into.
    fs::path dir = target.path.has_parent_path() ? target.path.parent_path() : fs::path(".");
    std::error_code ec;
    while (!fs::exists(dir, ec) && dir.has_parent_path() && dir != dir.parent_path()) dir = dir.parent_path();
    if (fs::exists(dir, ec) && !fs::is_directory(dir, ec)) fail(path, printable(dir.string()) + " is not a directory");
    if (fs::is_directory(dir, ec) && ::access(dir.c_str(), W_OK) != 0) {
      fail(path, "cannot write into " + printable(dir.string()) + ": " + std::strerror(errno));
    }
  } catch (const Error& e) {
    throw Error(option + ": " + e.what());
  }
}

void check_not_an_input(const std::filesystem::path& path, const std::vector<std::filesystem::path>& inputs,
                        const std::string& option) {
  std::error_code ec;
  for (const auto& input : inputs) {
    if (fs::equivalent(path, input, ec) && !ec) {
      throw Error(option + ": " + printable(path.string()) + ": is the input " + printable(input.string()) +
                  ", which this command reads; write the output elsewhere");
    }
  }
}

}  // namespace spinbayes
