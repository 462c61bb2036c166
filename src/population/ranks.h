#pragma once
// The processes of one run: every rank of MPI_COMM_WORLD when the command was started by an MPI
// launcher (mpirun, mpiexec, srun), or this process alone. distribute() spreads independent work
// items over them: rank 0 hands the items out one at a time to whichever rank asks (dynamic
// assignment, so a slow rank takes fewer), runs items itself on a second thread, and receives
// every result; the other ranks only compute. What a run writes therefore depends only on the
// items' results, never on how many ranks, threads or hosts computed them.
#include <cstddef>
#include <string>
#include <vector>

namespace spinbayes {

// The number of processes the launcher started, read from its environment (OpenMPI's
// OMPI_COMM_WORLD_SIZE, PMIx or PMI), whether or not this build has MPI: 1 when not launched.
int launched_ranks();
// This process's rank as the launcher's environment gives it (0 when not launched).
int launched_rank();

// MPI initialized for the lifetime of the object when the process was launched by an MPI launcher
// (and finalized after); otherwise a single rank. One per process.
class Ranks {
 public:
  struct FromLauncher {};
  Ranks() = default;  // this process alone
  // Every rank the launcher started (MPI_Init here), or this process alone when not launched.
  explicit Ranks(FromLauncher);
  ~Ranks();
  Ranks(const Ranks&) = delete;
  Ranks& operator=(const Ranks&) = delete;

  // Rank 0's `bytes` on every rank (what the others pass is ignored). Every rank must call it.
  std::string broadcast(const std::string& bytes) const;

  int rank() const { return rank_; }
  int size() const { return size_; }
  bool root() const { return rank_ == 0; }

 private:
  int rank_ = 0, size_ = 1;
  bool initialized_ = false;
};

// The work of distribute(). plan() and store() run on rank 0 only; prepare() and compute() on every
// rank that computes (rank 0's computing thread included), each compute() after that rank's
// prepare(). Any of them may throw: the run then stops handing out items and every rank returns,
// rank 0 with the error.
class WorkItems {
 public:
  virtual ~WorkItems() = default;
  // The items still to compute, in the order to hand them out (rank 0, before any is handed out).
  virtual std::vector<std::size_t> plan() = 0;
  // Loads what every item needs (the model, the images), once per computing rank.
  virtual void prepare() = 0;
  // One item's result as bytes.
  virtual std::string compute(std::size_t item) = 0;
  // Takes one item's result (rank 0, one call at a time, in the order results arrive). False: hand
  // out no more items (those being computed are still stored).
  virtual bool store(std::size_t item, const std::string& result) = 0;
};

struct RankActivity {
  int items = 0;
  double busy_seconds = 0;   // in prepare() and compute()
  double finished_at = 0;    // seconds from the start when its last result arrived (or it stopped)
};

struct Distribution {
  double seconds = 0;                // the whole run, on rank 0
  std::vector<RankActivity> ranks;   // rank 0 only
};

// Thrown on a rank other than 0 when the run failed: rank 0 reports the error, so that the
// command prints one line, not one per rank.
struct FailedElsewhere {};

// Runs `work` over the ranks; with one rank, plan, prepare, compute and store in turn on this
// thread. Throws on rank 0 when any rank failed (the first error, " (on rank R)" appended for a rank
// other than 0), FailedElsewhere on the other ranks.
Distribution distribute(const Ranks& ranks, WorkItems& work);

}  // namespace spinbayes
