#include "core/read_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "core/error.h"

namespace spinbayes {

std::string read_file_bytes(const std::filesystem::path& path, std::uint64_t max_bytes) {
  const std::string name = printable(path.string());
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) {
    if (errno == ENOENT) throw Error(name + ": not found");
    throw Error(name + ": cannot open: " + std::strerror(errno));
  }
  if (S_ISDIR(st.st_mode)) throw Error(name + ": is a directory, expected a file");
  if (S_ISBLK(st.st_mode) || S_ISSOCK(st.st_mode)) throw Error(name + ": is not a regular file");
  // A regular file's size is known: refuse it before reading (a sparse file of terabytes reads fast
  // but would fill memory up to the limit first).
  if (S_ISREG(st.st_mode) && static_cast<std::uint64_t>(st.st_size) > max_bytes) {
    throw Error(name + ": larger than " + std::to_string(max_bytes) + " bytes");
  }
  // O_NONBLOCK: a FIFO with no writer reads as empty instead of waiting forever.
  const int fd = ::open(path.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
  if (fd < 0) throw Error(name + ": cannot open: " + std::strerror(errno));
  ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) & ~O_NONBLOCK);
  std::string bytes;
  char buffer[1 << 16];
  std::string error;
  for (;;) {
    const ssize_t n = ::read(fd, buffer, sizeof buffer);
    if (n < 0) {
      if (errno == EINTR) continue;
      error = std::string("read error: ") + std::strerror(errno);
      break;
    }
    if (n == 0) break;
    if (bytes.size() + static_cast<std::size_t>(n) > max_bytes) {
      error = "larger than " + std::to_string(max_bytes) + " bytes";
      break;
    }
    bytes.append(buffer, static_cast<std::size_t>(n));
  }
  ::close(fd);
  if (!error.empty()) throw Error(name + ": " + error);
  return bytes;
}

}  // namespace spinbayes
