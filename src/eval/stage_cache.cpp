#include "eval/stage_cache.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <iterator>

#include <fmt/format.h>

#include "core/atomic_file.h"
#include "core/error.h"
#include "core/read_file.h"

namespace spinbayes {

namespace fs = std::filesystem;
using nlohmann::json;

// ---- the store ----------------------------------------------------------------------------------

StageCache::StageCache(fs::path dir) : dir_(std::move(dir)) { fs::create_directories(dir_); }

json StageCache::stored(const std::string& stage, const json& key) const {
  const fs::path file = dir_ / (stage + ".json");
  if (!fs::exists(file)) return json();
  try {
    json entry = json::parse(read_file_bytes(file));
    if (entry.value("key", json()) == key && entry.contains("result")) return entry["result"];
  } catch (const json::exception&) {
    // An unreadable entry is recomputed.
  }
  return json();
}

void StageCache::store(const std::string& stage, const json& key, const json& result) const {
  write_file_atomic(dir_ / (stage + ".json"), json{{"stage", stage}, {"key", key}, {"result", result}}.dump(1) + "\n");
}

// ---- progress and ETA ---------------------------------------------------------------------------

namespace {

// Estimated rates in multiply-accumulates per second of training, engine evaluation and chip
// evaluation, calibrated once on vgg-small width 32 with spatial dropout on the 2-core development
// machine. Progress corrects them by what the finished stages measured.
constexpr double kEstimatedMacsPerSecond[] = {2.1e10, 2.6e11, 3.9e10};

double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

std::string duration_text(double seconds) {
  const long s = std::lround(std::max(0.0, seconds));
  if (s < 60) return fmt::format("{}s", s);
  if (s < 3600) return fmt::format("{}m{:02}s", s / 60, s % 60);
  return fmt::format("{}h{:02}m", s / 3600, (s % 3600) / 60);
}

}  // namespace

double WorkEstimate::seconds() const { return macs / kEstimatedMacsPerSecond[static_cast<int>(kind)]; }

Progress::Progress(bool quiet) : quiet_(quiet), start_(std::chrono::steady_clock::now()) {}

void Progress::plan(WorkEstimate work, bool done) { planned_.push_back({work.kind, done ? 0.0 : work.seconds()}); }

void Progress::start(std::size_t stage, const std::string& what) {
  if (quiet_) return;
  const Planned& p = planned_.at(stage);
  std::fprintf(stderr, "[%2zu/%zu] %s (estimate %s) ...\n", stage + 1, planned_.size(), what.c_str(),
               duration_text(p.estimate * correction(p.kind)).c_str());
}

void Progress::finish(std::size_t stage, const std::string& what, double seconds, bool cached) {
  Planned& p = planned_.at(stage);
  p.done = true;
  if (!cached) {
    measured_[static_cast<int>(p.kind)] += seconds;
    estimated_[static_cast<int>(p.kind)] += p.estimate;
  }
  cached ? ++cached_ : ++run_;
  if (quiet_) return;
  std::fprintf(stderr, "[%2zu/%zu] %s: %s   elapsed %s, ETA %s\n", stage + 1, planned_.size(), what.c_str(),
               cached ? "cached" : fmt::format("done in {:.1f} s", seconds).c_str(),
               duration_text(seconds_since(start_)).c_str(), duration_text(remaining()).c_str());
}

// Measured over estimated time: of this kind when measured, else of all kinds.
double Progress::correction(Work kind) const {
  const int k = static_cast<int>(kind);
  if (estimated_[k] > 1.0) return measured_[k] / estimated_[k];
  const double m = measured_[0] + measured_[1] + measured_[2], e = estimated_[0] + estimated_[1] + estimated_[2];
  return e > 1.0 ? m / e : 1.0;
}

double Progress::remaining() const {
  double seconds = 0;
  for (const auto& p : planned_) {
    if (!p.done) seconds += p.estimate * correction(p.kind);
  }
  return seconds;
}

}  // namespace spinbayes
