#pragma once
// A `spinbayes` child process (SPINBAYES_CLI_PATH) for kill-and-resume tests: start it, poll it,
// SIGKILL it mid-run.
#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <functional>
#include <string>
#include <thread>
#include <vector>

namespace spinbayes {

class CliChild {
 public:
  // Starts `spinbayes args...` with its stdout and stderr appended to `log`.
  CliChild(const std::vector<std::string>& args, const std::filesystem::path& log) {
    std::vector<std::string> all = {SPINBAYES_CLI_PATH};
    all.insert(all.end(), args.begin(), args.end());
    std::vector<char*> argv;
    for (auto& a : all) argv.push_back(a.data());
    argv.push_back(nullptr);
    const int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
    pid_ = ::fork();
    if (pid_ == 0) {
      ::dup2(fd, 1);
      ::dup2(fd, 2);
      ::execv(argv[0], argv.data());
      ::_exit(127);
    }
    ::close(fd);
  }
  CliChild(const CliChild&) = delete;
  CliChild& operator=(const CliChild&) = delete;
  ~CliChild() {
    if (pid_ > 0 && !reaped_) {
      ::kill(pid_, SIGKILL);
      wait();
    }
  }

  bool running() {
    if (reaped_) return false;
    if (::waitpid(pid_, &status_, WNOHANG) == pid_) reaped_ = true;
    return !reaped_;
  }
  int wait() {
    if (!reaped_ && ::waitpid(pid_, &status_, 0) == pid_) reaped_ = true;
    return status_;
  }
  // Kills with SIGKILL; true if the child was still running, i.e. the kill interrupted it.
  bool kill() {
    if (!running()) return false;
    ::kill(pid_, SIGKILL);
    wait();
    return WIFSIGNALED(status_) && WTERMSIG(status_) == SIGKILL;
  }
  bool succeeded() { return wait() == 0 && WIFEXITED(status_) && WEXITSTATUS(status_) == 0; }

 private:
  pid_t pid_ = -1;
  int status_ = 0;
  bool reaped_ = false;
};

// Polls until `condition` holds or the child ends; true if it held while the child still ran.
inline bool wait_until(CliChild& child, const std::function<bool()>& condition, double timeout_s = 300) {
  const auto start = std::chrono::steady_clock::now();
  while (std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count() < timeout_s) {
    if (condition()) return child.running();
    if (!child.running()) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  return false;
}

}  // namespace spinbayes
