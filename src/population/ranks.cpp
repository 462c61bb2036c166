#include "population/ranks.h"

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <exception>
#include <mutex>
#include <new>
#include <string_view>
#include <thread>
#include <utility>

#include "core/error.h"

#ifdef SPINBAYES_HAVE_MPI
#include <mpi.h>
#endif

namespace spinbayes {

namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

const char* environment(const char* name) {
  const char* value = std::getenv(name);
  return value != nullptr && *value != '\0' ? value : nullptr;
}

bool launched_by_mpi() {
  return environment("OMPI_COMM_WORLD_SIZE") != nullptr || environment("PMIX_RANK") != nullptr ||
         environment("PMI_RANK") != nullptr;
}

Distribution distribute_here(WorkItems& work) {
  const auto start = Clock::now();
  Distribution d;
  d.ranks.resize(1);
  const std::vector<std::size_t> items = work.plan();
  if (!items.empty()) {
    work.prepare();
    for (const std::size_t item : items) {
      const std::string result = work.compute(item);
      ++d.ranks[0].items;
      if (!work.store(item, result)) break;
    }
  }
  d.seconds = d.ranks[0].busy_seconds = d.ranks[0].finished_at = seconds_since(start);
  return d;
}

}  // namespace

int launched_ranks() {
  for (const char* name : {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "SLURM_NTASKS"}) {
    if (const char* value = environment(name); value != nullptr && launched_by_mpi()) {
      const int n = std::atoi(value);
      if (n > 0) return n;
    }
  }
  return 1;
}

int launched_rank() {
  if (!launched_by_mpi()) return 0;
  for (const char* name : {"OMPI_COMM_WORLD_RANK", "PMIX_RANK", "PMI_RANK"}) {
    if (const char* value = environment(name); value != nullptr) return std::atoi(value);
  }
  return 0;
}

#ifndef SPINBAYES_HAVE_MPI

Ranks::Ranks(FromLauncher) {
  if (launched_ranks() > 1) {
    throw Error("mpirun: this build of spinbayes has no MPI (install libopenmpi-dev and rebuild; scripts/setup.sh does)");
  }
}
Ranks::~Ranks() = default;

std::string Ranks::broadcast(const std::string& bytes) const { return bytes; }

Distribution distribute(const Ranks&, WorkItems& work) { return distribute_here(work); }

#else

Ranks::Ranks(FromLauncher) {
  if (!launched_by_mpi()) return;
  int provided = 0;
  // Only the main thread calls MPI; rank 0 computes on a second thread that never does.
  if (MPI_Init_thread(nullptr, nullptr, MPI_THREAD_FUNNELED, &provided) != MPI_SUCCESS) {
    throw Error("mpirun: MPI_Init_thread failed");
  }
  initialized_ = true;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank_);
  MPI_Comm_size(MPI_COMM_WORLD, &size_);
  if (provided < MPI_THREAD_FUNNELED) throw Error("mpirun: the MPI library offers no MPI_THREAD_FUNNELED");
}

Ranks::~Ranks() {
  if (initialized_) MPI_Finalize();
}

std::string Ranks::broadcast(const std::string& bytes) const {
  if (size_ == 1) return bytes;
  auto size = static_cast<std::uint64_t>(bytes.size());
  MPI_Bcast(&size, 1, MPI_UINT64_T, 0, MPI_COMM_WORLD);
  std::string out = root() ? bytes : std::string(static_cast<std::size_t>(size), '\0');
  // In pieces that fit an int count.
  for (std::uint64_t at = 0; at < size; at += 1u << 30) {
    const auto n = static_cast<int>(std::min<std::uint64_t>(size - at, 1u << 30));
    MPI_Bcast(out.data() + at, n, MPI_CHAR, 0, MPI_COMM_WORLD);
  }
  return out;
}

namespace {

// The message of whatever an item threw, on one line.
std::string message_of(std::exception_ptr failure) {
  try {
    std::rethrow_exception(failure);
  } catch (const std::bad_alloc&) {
    return "out of memory";
  } catch (const std::exception& e) {
    std::string what = e.what();
    return what.substr(0, what.find('\n'));
  } catch (...) {
    return "unknown failure";
  }
}

// Messages between rank 0 and the others.
enum Tag : int {
  kReady = 1,   // rank -> 0: ready for an item
  kResult = 2,  // rank -> 0: item (8 bytes), busy seconds (8 bytes), then the result
  kFailed = 3,  // rank -> 0: the error message
  kWork = 4,    // 0 -> rank: the item (8 bytes)
  kStop = 5,    // 0 -> rank: one byte, 1 when the run failed
};

void send(int to, Tag tag, const std::string& bytes) {
  MPI_Send(bytes.data(), static_cast<int>(bytes.size()), MPI_CHAR, to, tag, MPI_COMM_WORLD);
}

// Waits for the next message from `from` (MPI_ANY_SOURCE: anyone) without spinning a core: a
// blocking receive would busy-poll, taking the core from the computing thread beside it.
bool poll(int from, int& source, int& tag, std::string& bytes) {
  int flag = 0;
  MPI_Status status;
  MPI_Iprobe(from, MPI_ANY_TAG, MPI_COMM_WORLD, &flag, &status);
  if (flag == 0) return false;
  int count = 0;
  MPI_Get_count(&status, MPI_CHAR, &count);
  bytes.assign(static_cast<std::size_t>(count), '\0');
  MPI_Recv(bytes.data(), count, MPI_CHAR, status.MPI_SOURCE, status.MPI_TAG, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
  source = status.MPI_SOURCE;
  tag = status.MPI_TAG;
  return true;
}

// Between polls. An item takes seconds, so a few milliseconds of latency cost nothing, while
// frequent wake-ups would preempt rank 0's computing thread on its core.
void nap() { std::this_thread::sleep_for(std::chrono::milliseconds(4)); }

template <class T>
std::string bytes_of(const T& value) {
  return std::string(reinterpret_cast<const char*>(&value), sizeof value);
}

template <class T>
T value_at(const std::string& bytes, std::size_t offset) {
  T value{};
  if (bytes.size() >= offset + sizeof value) std::memcpy(&value, bytes.data() + offset, sizeof value);
  return value;
}

Distribution distribute_root(const Ranks& ranks, WorkItems& work) {
  const auto start = Clock::now();
  Distribution d;
  d.ranks.resize(static_cast<std::size_t>(ranks.size()));

  std::mutex mutex;  // guards the fields below it
  std::deque<std::size_t> queue;
  std::deque<std::pair<std::size_t, std::string>> local_results;
  std::string error;
  bool local_done = true;
  double local_busy = 0, local_finished = 0;

  const auto fail = [&](const std::string& message) {
    std::lock_guard<std::mutex> lock(mutex);
    if (error.empty()) error = message;
    queue.clear();
  };

  try {
    const std::vector<std::size_t> items = work.plan();
    queue.assign(items.begin(), items.end());
  } catch (...) {
    fail(message_of(std::current_exception()));
  }

  // Rank 0 computes too, on a thread of its own, while this one talks to the others.
  std::thread local;
  if (!queue.empty()) {
    local_done = false;
    local = std::thread([&] {
      try {
        bool prepared = false;
        for (;;) {
          std::size_t item = 0;
          {
            std::lock_guard<std::mutex> lock(mutex);
            if (queue.empty()) break;
            item = queue.front();
            queue.pop_front();
          }
          const auto t = Clock::now();
          if (!prepared) work.prepare(), prepared = true;
          std::string result = work.compute(item);
          std::lock_guard<std::mutex> lock(mutex);
          local_busy += seconds_since(t);
          local_results.emplace_back(item, std::move(result));
        }
      } catch (...) {
        fail(message_of(std::current_exception()));
      }
      std::lock_guard<std::mutex> lock(mutex);
      local_done = true;
      local_finished = seconds_since(start);
    });
  }

  const auto store = [&](std::size_t item, const std::string& result) {
    try {
      if (!work.store(item, result)) {
        std::lock_guard<std::mutex> lock(mutex);
        queue.clear();
      }
    } catch (...) {
      fail(message_of(std::current_exception()));
    }
  };

  int remote_active = ranks.size() - 1;
  std::string bytes;
  for (;;) {
    std::deque<std::pair<std::size_t, std::string>> arrived;
    bool done = false;
    {
      std::lock_guard<std::mutex> lock(mutex);
      arrived.swap(local_results);
      done = local_done;
    }
    for (const auto& [item, result] : arrived) {
      ++d.ranks[0].items;
      store(item, result);
    }
    if (remote_active == 0 && done && arrived.empty()) break;

    int source = 0, tag = 0;
    if (!poll(MPI_ANY_SOURCE, source, tag, bytes)) {
      if (arrived.empty()) nap();
      continue;
    }
    RankActivity& activity = d.ranks[static_cast<std::size_t>(source)];
    if (tag == kResult) {
      ++activity.items;
      activity.busy_seconds += value_at<double>(bytes, 8);
      activity.finished_at = seconds_since(start);
      store(static_cast<std::size_t>(value_at<std::uint64_t>(bytes, 0)), bytes.substr(16));
    } else if (tag == kFailed) {
      fail(bytes + " (on rank " + std::to_string(source) + ")");  // the field first, as every error line
    }
    // The reply: the next item, or stop.
    std::size_t item = 0;
    bool next = false;
    std::string failed;
    {
      std::lock_guard<std::mutex> lock(mutex);
      if (!queue.empty()) {
        item = queue.front();
        queue.pop_front();
        next = true;
      }
      failed = error;
    }
    if (next) {
      send(source, kWork, bytes_of(static_cast<std::uint64_t>(item)));
    } else {
      send(source, kStop, std::string(1, failed.empty() ? '\0' : '\1'));
      if (activity.finished_at == 0) activity.finished_at = seconds_since(start);
      --remote_active;
    }
  }
  if (local.joinable()) local.join();
  d.ranks[0].busy_seconds = local_busy;
  d.ranks[0].finished_at = local_finished > 0 ? local_finished : seconds_since(start);
  d.seconds = seconds_since(start);
  if (!error.empty()) throw Error(error);
  return d;
}

Distribution distribute_worker(WorkItems& work) {
  send(0, kReady, std::string());
  bool prepared = false;
  std::string bytes;
  for (;;) {
    int source = 0, tag = 0;
    if (!poll(0, source, tag, bytes)) {
      nap();
      continue;
    }
    if (tag == kStop) {
      if (!bytes.empty() && bytes[0] != '\0') throw FailedElsewhere{};
      return {};
    }
    const auto item = static_cast<std::size_t>(value_at<std::uint64_t>(bytes, 0));
    const auto t = Clock::now();
    try {
      if (!prepared) work.prepare(), prepared = true;
      const std::string result = work.compute(item);
      send(0, kResult, bytes_of(static_cast<std::uint64_t>(item)) + bytes_of(seconds_since(t)) + result);
    } catch (...) {
      send(0, kFailed, message_of(std::current_exception()));
    }
  }
}

}  // namespace

Distribution distribute(const Ranks& ranks, WorkItems& work) {
  if (ranks.size() == 1) return distribute_here(work);
  return ranks.root() ? distribute_root(ranks, work) : distribute_worker(work);
}

#endif

}  // namespace spinbayes
