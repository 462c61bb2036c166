#pragma once
// The experiment's stages as they are stored and as they progress: each finished stage keeps its
// result in DIR/stages/<stage>.json together with the key of its inputs (fingerprints of the model
// IR and the configuration tables, T, seeds, image counts, ...), and a stage whose stored key equals
// the current one is not run again. Progress lines give each stage's estimated time and the ETA.
#include <chrono>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/fingerprint.h"

namespace spinbayes {

class StageCache {
 public:
  explicit StageCache(std::filesystem::path dir);

  // The result stored for `stage` under `key`, or null (none, another key, or unreadable).
  nlohmann::json stored(const std::string& stage, const nlohmann::json& key) const;

  // The stored result read as a Result; none where it does not read as one (it is then redone).
  template <class Result>
  std::optional<Result> stored_as(const std::string& stage, const nlohmann::json& key) const {
    const nlohmann::json result = stored(stage, key);
    if (result.is_null()) return std::nullopt;
    try {
      return result.get<Result>();
    } catch (const nlohmann::json::exception&) {
      return std::nullopt;
    }
  }

  // Writes DIR/stages/<stage>.json atomically: {"stage", "key", "result"}.
  void store(const std::string& stage, const nlohmann::json& key, const nlohmann::json& result) const;

 private:
  std::filesystem::path dir_;
};

// What a stage's time is estimated from: its multiply-accumulates and the kind of work that does them.
enum class Work { train, engine, chip };
struct WorkEstimate {
  Work kind = Work::engine;
  double macs = 0;
  double seconds() const;  // at the estimated rate of that kind of work
};

// Progress over the planned stages, addressed by their position in the plan: a line when a stage
// starts (with its estimate) and when it finishes (with the elapsed time and the ETA). As stages
// finish, the measured time per estimated second of each kind corrects the estimates of the rest.
class Progress {
 public:
  explicit Progress(bool quiet);

  // Appends the next stage of the plan; one that will be reused (`done`) adds nothing to the ETA.
  void plan(WorkEstimate work, bool done);
  void start(std::size_t stage, const std::string& what);
  void finish(std::size_t stage, const std::string& what, double seconds, bool cached);

  int stages_run() const { return run_; }
  int stages_cached() const { return cached_; }

 private:
  struct Planned {
    Work kind;
    double estimate;  // seconds
    bool done = false;
  };
  double correction(Work kind) const;
  double remaining() const;

  bool quiet_;
  std::chrono::steady_clock::time_point start_;
  std::vector<Planned> planned_;
  double measured_[3] = {0, 0, 0}, estimated_[3] = {0, 0, 0};
  int run_ = 0, cached_ = 0;
};

}  // namespace spinbayes
