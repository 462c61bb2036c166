#include "eval/chip_test.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <limits>
#include <memory>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "core/dir_lock.h"
#include "core/atomic_file.h"
#include "core/error.h"
#include "core/fingerprint.h"
#include "core/read_file.h"
#include "core/plot.h"
#include "core/streams.h"
#include "eval/population.h"
#include "hw/chip.h"
#include "hw/hardware_config.h"
#include "model/model_ir.h"
#include "population/chip_record.h"
#include "train/export.h"
#include "train/run.h"
#include "uncertainty/metrics.h"

namespace spinbayes {

namespace fs = std::filesystem;
using nlohmann::json;

void TestChipOptions::validate() const {
  if (model.empty()) throw Error("--model: empty path");
  HardwareConfig::require_source(hardware);
  if (samples < 2 || samples > 10000) throw Error(fmt::format("--samples: must be in 2..10000, got {}", samples));
  if (chips < 2 || chips > kMaxChips) throw Error(fmt::format("--chips: must be in 2..{}, got {}", kMaxChips, chips));
  if (ranking_chips < 2 || ranking_chips > 1000) {
    throw Error(fmt::format("--ranking-chips: must be in 2..1000, got {}", ranking_chips));
  }
  if (candidates < 0) throw Error(fmt::format("--candidates: must be >= 0, got {}", candidates));
  if (!(k > 0.0) || !std::isfinite(k) || k > 100.0) throw Error(fmt::format("--k: must be in (0, 100], got {}", k));
  if (threads < 1 || threads > 256) throw Error(fmt::format("--threads: must be in 1..256, got {}", threads));
  const std::uint64_t span = 2 * static_cast<std::uint64_t>(chips) + static_cast<std::uint64_t>(ranking_chips) - 1;
  if (first_seed > std::numeric_limits<std::uint64_t>::max() - span) {
    throw Error("--first-seed: the chips' seeds would pass 18446744073709551615");
  }
  if (out.empty()) throw Error("--out: empty path");
  if (stop_after < 0) throw Error(fmt::format("--stop-after: must be >= 0, got {}", stop_after));
  parse_fault_list(faults);
}

namespace {

// What every computing rank holds: the network, the chips' base config, the fault cells, and the
// candidate images.
struct Setup {
  std::filesystem::path ir_path;
  std::shared_ptr<const ModelIR> ir;
  HardwareConfig hw;
  std::vector<FaultCell> cells;
  int training_images = 0, vectors = 0;
  std::string data;  // data_identity of the run's data set
  std::vector<int> candidates;  // training image indices, in draw order
  ImageSet candidate_images;
};

// The reference chips must be fault-free: a fault in --hw would be in every chip, the reference's
// included, and a cell's severity would replace it rather than add to it.
void check_fault_free(const HardwareConfig& hw, const std::string& source) {
  const HardwareConfig clean = [&] {
    HardwareConfig h = hw;
    h.faults = FaultParams{};
    return h;
  }();
  if (HardwareConfig(hw).table().to_commented_json() == HardwareConfig(clean).table().to_commented_json()) return;
  throw Error("--hw: " + printable(source) + " holds faults (faults.* not 0); the reference chips of a test must be "
              "fault-free: inject faults with --faults");
}

// `root`: rank 0, before any chip is handed out, which checks what the other ranks then take as given.
Setup load_setup(const TestChipOptions& o, bool root) {
  Setup s;
  s.cells = parse_fault_list(o.faults);
  s.hw = HardwareConfig::load(o.hardware);
  check_fault_free(s.hw, o.hardware);
  const TrainOptions run = load_run_config(o.model);
  if (root) {
    // Not while a training run writes the model (its checkpoint, and the model IR exported from it).
    const DirectoryLock lock(o.model, "--model", "training run or calibration");
    s.ir_path = ensure_model_ir(o.model);
  } else {
    s.ir_path = ensure_model_ir(o.model);
  }
  s.ir = std::make_shared<const ModelIR>(load_model_ir(s.ir_path));
  // The chip can be built for this network (a config can be valid and still not fit it, such as a
  // pulse too short for the dropout rate); a fault cell changes nothing that could stop it.
  for (const FaultCell& c : s.cells) {
    if (c.fault.rfind("module_", 0) == 0 && !s.ir->spec.has_dropout()) {
      throw Error("--faults: " + c.fault + ": the network has no dropout, so its chip has no dropout modules");
    }
  }
  if (root) {
    try {
      for (const FaultCell& c : s.cells) with_fault(s.hw, c);  // each cell's config is valid
      const Chip base(*s.ir, s.hw, o.first_seed);
    } catch (const Error& e) {
      throw Error("--hw: " + printable(o.hardware) + ": " + e.what());
    }
  }
  const ImageSet train = load_training_split(o.paths, run).train;
  s.data = data_identity(run.data, o.paths);
  s.training_images = train.n;
  s.vectors = parse_vector_count(o.vectors, train.n);
  const int m = o.candidates > 0 ? o.candidates : std::min(train.n, 10 * s.vectors);
  if (m > train.n) throw Error(fmt::format("--candidates: {} are more than the run's {} training images", m, train.n));
  if (m < s.vectors) throw Error(fmt::format("--candidates: {} are fewer than the {} test vectors", m, s.vectors));
  // The first m of a seeded Fisher-Yates permutation, one counter-based draw per position.
  std::vector<int> order(static_cast<std::size_t>(train.n));
  for (int i = 0; i < train.n; ++i) order[static_cast<std::size_t>(i)] = i;
  for (int i = 0; i < m; ++i) {
    const double u = uniform_at(o.seed, streams::kTestCandidates, static_cast<std::uint64_t>(i));
    const int j = i + std::min(train.n - i - 1, static_cast<int>(u * (train.n - i)));
    std::swap(order[static_cast<std::size_t>(i)], order[static_cast<std::size_t>(j)]);
  }
  s.candidates.assign(order.begin(), order.begin() + m);
  s.candidate_images = select_images(train, s.candidates);
  return s;
}

ChipOutput run_chip(const Setup& s, const HardwareConfig& hw, std::uint64_t chip_seed, const ImageSet& images,
                    const TestChipOptions& o) {
  const Chip chip(*s.ir, hw, chip_seed);
  const PredictiveSummary summary =
      summarize(chip.predict(images, o.samples, hash_key(o.seed, streams::kTestMasks, chip_seed), true));
  return {summary.entropy, summary.predicted};
}

// Between ranks: a record without the test's fingerprint, which rank 0 alone knows.
std::string encode(const ChipOutput& c) { return chip_output_json(c, ""); }
ChipOutput decode(const std::string& bytes, std::size_t n) { return parse_chip_output(bytes, "", n, "test-chip: a rank's chip"); }

// The chips a test has finished, a file each (DIR/chips/ranking-R.json, DIR/chips/chip-I.json),
// written atomically as they arrive, beside DIR/test.json naming the configuration (its identity
// and fingerprint, which every record carries): a run that stops resumes from them, and a DIR of
// another configuration is refused. Rank 0 only.
class RecordStore {
 public:
  void open(const fs::path& dir, const std::string& identity) {
    dir_ = dir;
    identity_ = identity;
    key_ = fingerprint(identity);
    const fs::path manifest = dir / "test.json";
    std::error_code ec;
    if (fs::is_symlink(fs::symlink_status(manifest, ec))) {
      throw Error("--out: " + manifest.string() + ": is a symbolic link; a chip test writes only its own files");
    }
    if (fs::exists(fs::symlink_status(manifest, ec))) {
      if (const std::string difference = manifest_difference(manifest, identity_); !difference.empty()) {
        throw Error("--out: " + dir.string() + " holds the chips of another test (" + difference +
                    "); give another --out, or remove it");
      }
    } else {
      manifest_pending_ = true;  // written with the first record
    }
    fs::create_directories(dir / "chips", ec);
    if (ec || !fs::is_directory(dir / "chips")) {
      throw Error("--out: " + (dir / "chips").string() + ": " + (ec ? ec.message() : std::string("not a directory")));
    }
  }

  // A stored chip of `n` images, or nothing.
  std::optional<ChipOutput> load(const std::string& name, std::size_t n) const {
    const fs::path file = dir_ / "chips" / name;
    std::error_code ec;
    if (!fs::exists(fs::symlink_status(file, ec))) return std::nullopt;
    try {
      return parse_chip_output(read_file_bytes(file, 1 << 26), key_, n, file.string());
    } catch (const Error& e) {
      throw Error(std::string(e.what()) + "; remove it or give another --out");
    }
  }

  void save(const std::string& name, const ChipOutput& output) {
    if (manifest_pending_) {
      write_file_atomic(dir_ / "test.json", population_manifest_json(identity_));
      manifest_pending_ = false;
    }
    write_file_atomic(dir_ / "chips" / name, chip_output_json(output, key_) + "\n");
  }

 private:
  fs::path dir_;
  std::string identity_, key_;
  bool manifest_pending_ = false;
};

// What the chips of a test are computed from: two runs of the same identity compute the same chips.
std::string test_identity(const TestChipOptions& o, const Setup& s) {
  json cells = json::array();
  for (const FaultCell& c : s.cells) cells.push_back({c.fault, c.severity});
  return json{{"model_ir", file_fingerprint(s.ir_path)},
              {"hardware_config", fingerprint(HardwareConfig(s.hw).table().to_commented_json())},
              {"vectors", s.vectors},
              {"candidates", s.candidates.size()},
              {"ranking_chips", o.ranking_chips},
              {"faults", cells},
              {"chips", o.chips},
              {"first_seed", o.first_seed},
              {"samples", o.samples},
              {"seed", o.seed},
              {"random_baseline", o.random_baseline},
              {"data", s.data}}
      .dump();
}

double seconds_since(std::chrono::steady_clock::time_point t) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
}

// Phase 1: the candidates on the ranking chips.
class RankingWork final : public WorkItems {
 public:
  RankingWork(const TestChipOptions& o, std::unique_ptr<Setup>& setup, RecordStore& records, int& budget)
      : o_(o), setup_(setup), records_(records), budget_(budget) {}
  static std::string name(std::size_t item) { return fmt::format("ranking-{}.json", item); }
  std::vector<std::size_t> plan() override {
    // The inputs first: a bad one leaves no output directory behind.
    if (!setup_) setup_ = std::make_unique<Setup>(load_setup(o_, true));
    if (o_.checks) o_.checks();
    records_.open(o_.out, test_identity(o_, *setup_));
    outputs_.assign(static_cast<std::size_t>(o_.ranking_chips), {});
    std::vector<std::size_t> items;
    for (std::size_t i = 0; i < outputs_.size(); ++i) {
      if (auto stored = records_.load(name(i), setup_->candidates.size())) {
        outputs_[i] = std::move(*stored);
      } else {
        items.push_back(i);
      }
    }
    start_ = std::chrono::steady_clock::now();
    return items;
  }
  void prepare() override {
    if (!setup_) setup_ = std::make_unique<Setup>(load_setup(o_, false));
  }
  std::string compute(std::size_t item) override {
    const std::uint64_t seed = o_.first_seed + 2 * static_cast<std::uint64_t>(o_.chips) + item;
    return encode(run_chip(*setup_, setup_->hw, seed, setup_->candidate_images, o_));
  }
  bool store(std::size_t item, const std::string& result) override {
    outputs_[item] = decode(result, setup_->candidates.size());
    records_.save(name(item), outputs_[item]);
    --budget_;
    if (o_.progress) {
      std::fprintf(stderr, "ranking chip %zu of %d: %zu candidates  [%.1f s]\n", item + 1, o_.ranking_chips,
                   setup_->candidates.size(), seconds_since(start_));
    }
    return budget_ > 0;
  }
  const std::vector<ChipOutput>& outputs() const { return outputs_; }
  bool complete() const {
    return std::all_of(outputs_.begin(), outputs_.end(), [](const ChipOutput& c) { return !c.entropy.empty(); });
  }

 private:
  const TestChipOptions& o_;
  std::unique_ptr<Setup>& setup_;
  RecordStore& records_;
  int& budget_;
  std::vector<ChipOutput> outputs_;
  std::chrono::steady_clock::time_point start_;
};

// Phase 2: reference, hold-out and every fault cell on the test vectors.
class CampaignWork final : public WorkItems {
 public:
  CampaignWork(const TestChipOptions& o, std::unique_ptr<Setup>& setup, const std::vector<int>& positions,
               RecordStore& records, int& budget)
      : o_(o), setup_(setup), positions_(positions), records_(records), budget_(budget) {}
  static std::string name(std::size_t item) { return fmt::format("chip-{}.json", item); }
  std::vector<std::size_t> plan() override {
    outputs_.assign(items(), {});
    std::vector<std::size_t> todo;
    for (std::size_t i = 0; i < outputs_.size(); ++i) {
      if (auto stored = records_.load(name(i), positions_.size())) {
        outputs_[i] = std::move(*stored);
        ++stored_;
      } else {
        todo.push_back(i);
      }
    }
    start_ = std::chrono::steady_clock::now();
    if (budget_ <= 0) return {};
    return todo;
  }
  void prepare() override {
    if (!setup_) setup_ = std::make_unique<Setup>(load_setup(o_, false));
    vectors_ = select_images(setup_->candidate_images, positions_);
    configs_.clear();
    for (const FaultCell& c : setup_->cells) configs_.push_back(with_fault(setup_->hw, c));
  }
  std::string compute(std::size_t item) override {
    const std::size_t n = static_cast<std::size_t>(o_.chips), group = item / n, j = item % n;
    const std::uint64_t seed = o_.first_seed + (group == 0 ? j : n + j);
    const HardwareConfig& hw = group < 2 ? setup_->hw : configs_[group - 2];
    return encode(run_chip(*setup_, hw, seed, vectors_, o_));
  }
  bool store(std::size_t item, const std::string& result) override {
    outputs_[item] = decode(result, positions_.size());
    records_.save(name(item), outputs_[item]);
    ++stored_;
    --budget_;
    if (o_.progress && (stored_ % 25 == 0 || stored_ == items())) {
      const double t = seconds_since(start_);
      std::fprintf(stderr, "chips %zu of %zu  [%.0f s, about %.0f s to go]\n", stored_, items(), t,
                   t / static_cast<double>(stored_) * static_cast<double>(items() - stored_));
    }
    return budget_ > 0;
  }
  const std::vector<ChipOutput>& outputs() const { return outputs_; }
  bool complete() const { return stored_ == items(); }

 private:
  std::size_t items() const { return static_cast<std::size_t>(o_.chips) * (2 + setup_->cells.size()); }
  const TestChipOptions& o_;
  std::unique_ptr<Setup>& setup_;
  std::vector<int> positions_;
  RecordStore& records_;
  int& budget_;
  ImageSet vectors_;
  std::vector<HardwareConfig> configs_;
  std::vector<ChipOutput> outputs_;
  std::size_t stored_ = 0;
  std::chrono::steady_clock::time_point start_;
};

double share_correct(const std::vector<int>& predicted, const std::vector<std::int32_t>& labels) {
  int right = 0;
  for (std::size_t i = 0; i < predicted.size(); ++i) right += predicted[i] == labels[i];
  return static_cast<double>(right) / static_cast<double>(predicted.size());
}

}  // namespace

TestChipResult run_test_chip(const TestChipOptions& o, const Ranks& ranks) {
  o.validate();
  configure_threads(o.threads);
  const auto start = std::chrono::steady_clock::now();
  std::unique_ptr<Setup> setup;
  RecordStore records;
  int budget = o.stop_after > 0 ? o.stop_after : std::numeric_limits<int>::max();
  RankingWork ranking(o, setup, records, budget);
  const Distribution first = distribute(ranks, ranking);

  // Rank 0 ranks the candidates and tells every rank which are the vectors ("" if it failed,
  // "stop" after --stop-after).
  TestChipResult r;
  std::string chosen;
  std::exception_ptr failure;
  if (ranks.root() && !ranking.complete()) {
    chosen = "stop";
  } else if (ranks.root()) {
    try {
      std::vector<std::vector<double>> entropy;
      for (const ChipOutput& c : ranking.outputs()) entropy.push_back(c.entropy);
      const std::vector<VectorRank> all = rank_by_repeatability(entropy);
      std::vector<int> positions;
      for (int i = 0; i < setup->vectors; ++i) {
        VectorRank v = all[static_cast<std::size_t>(i)];
        positions.push_back(v.candidate);
        v.candidate = setup->candidates[static_cast<std::size_t>(v.candidate)];
        r.ranking.push_back(v);
      }
      chosen = json(positions).dump();
    } catch (...) {
      failure = std::current_exception();
    }
  }
  chosen = ranks.broadcast(chosen);
  if (failure) std::rethrow_exception(failure);
  if (chosen.empty()) throw FailedElsewhere{};
  if (chosen == "stop") {
    r.complete = false;
    return r;
  }
  const std::vector<int> positions = json::parse(chosen).get<std::vector<int>>();

  // The baseline: the first K candidates of the seeded draw, a random sample of the training images.
  std::vector<int> campaign_positions = positions;
  if (o.random_baseline) {
    for (int i = 0; i < static_cast<int>(positions.size()); ++i) campaign_positions.push_back(i);
  }
  CampaignWork campaign(o, setup, campaign_positions, records, budget);
  const Distribution second = distribute(ranks, campaign);
  if (!ranks.root()) return {};
  if (!campaign.complete()) {
    r.complete = false;
    return r;
  }

  r.model_dir = o.model.string();
  r.hardware = o.hardware;
  r.samples = o.samples;
  r.training_images = setup->training_images;
  r.candidates = static_cast<int>(setup->candidates.size());
  r.ranking_chips = o.ranking_chips;
  r.vectors = setup->vectors;
  r.chips = o.chips;
  r.k = o.k;
  r.seed = o.seed;
  r.first_seed = o.first_seed;
  r.counts = vector_counts(r.vectors);
  if (o.random_baseline) {
    for (int i = 0; i < r.vectors; ++i) r.random_vectors.push_back(setup->candidates[static_cast<std::size_t>(i)]);
  }
  r.distribution = second;
  r.distribution.seconds += first.seconds;
  for (std::size_t i = 0; i < r.distribution.ranks.size() && i < first.ranks.size(); ++i) {
    r.distribution.ranks[i].items += first.ranks[i].items;
    r.distribution.ranks[i].busy_seconds += first.ranks[i].busy_seconds;
  }

  // Each chip ran the ranked vectors, then (with the baseline) the first K candidates.
  const auto n = static_cast<std::size_t>(o.chips), k = static_cast<std::size_t>(r.vectors);
  const auto& out = campaign.outputs();
  const auto group = [&](std::size_t g) {
    return std::vector<ChipOutput>(out.begin() + static_cast<std::ptrdiff_t>(g * n),
                                   out.begin() + static_cast<std::ptrdiff_t>((g + 1) * n));
  };
  // One selection's slice of a chip's output.
  const auto slice = [&](const ChipOutput& c, std::size_t first) {
    return ChipOutput{std::vector<double>(c.entropy.begin() + static_cast<std::ptrdiff_t>(first),
                                          c.entropy.begin() + static_cast<std::ptrdiff_t>(first + k)),
                      std::vector<int>(c.predicted.begin() + static_cast<std::ptrdiff_t>(first),
                                       c.predicted.begin() + static_cast<std::ptrdiff_t>(first + k))};
  };
  std::vector<std::int32_t> all_labels;
  for (int p : campaign_positions) all_labels.push_back(setup->candidate_images.labels[static_cast<std::size_t>(p)]);
  const std::vector<ChipOutput> reference = group(0), holdout = group(1);

  const auto fit = [&](std::size_t first) {
    SelectionReference ref;
    const std::vector<std::int32_t> labels(all_labels.begin() + static_cast<std::ptrdiff_t>(first),
                                           all_labels.begin() + static_cast<std::ptrdiff_t>(first + k));
    for (int count : r.counts) {
      std::vector<double> stats;
      for (const ChipOutput& c : reference) stats.push_back(test_statistic(slice(c, first).entropy, count));
      ref.by_count.push_back(fit_reference(stats));
    }
    for (const ChipOutput& c : reference) {
      ref.statistic.push_back(test_statistic(slice(c, first).entropy, r.vectors));
      ref.accuracy += share_correct(slice(c, first).predicted, labels) / static_cast<double>(n);
    }
    return ref;
  };
  const auto select = [&](const std::vector<ChipOutput>& chips, std::size_t first, const SelectionReference& ref) {
    SelectionResult s;
    const std::vector<std::int32_t> labels(all_labels.begin() + static_cast<std::ptrdiff_t>(first),
                                           all_labels.begin() + static_cast<std::ptrdiff_t>(first + k));
    s.flagged.assign(r.counts.size(), 0);
    for (std::size_t j = 0; j < chips.size(); ++j) {
      const ChipOutput c = slice(chips[j], first), twin = slice(holdout[j], first);
      for (std::size_t q = 0; q < r.counts.size(); ++q) {
        s.flagged[q] += flagged(test_statistic(c.entropy, r.counts[q]), ref.by_count[q], o.k);
      }
      s.statistic.push_back(test_statistic(c.entropy, r.vectors));
      s.accuracy += share_correct(c.predicted, labels) / static_cast<double>(chips.size());
      int changed = 0;
      for (std::size_t i = 0; i < k; ++i) changed += c.predicted[i] != twin.predicted[i];
      s.changed_outputs += static_cast<double>(changed) / static_cast<double>(k * chips.size());
      s.chips_changed += changed > 0;
    }
    return s;
  };
  r.reference = fit(0);
  if (o.random_baseline) r.reference_random = fit(k);
  const auto evaluate_cell = [&](const std::vector<ChipOutput>& chips, const FaultCell& cell) {
    FaultCellResult c;
    c.cell = cell;
    c.unit = cell.fault.empty() ? "" : fault_class(cell.fault).unit;
    c.chips = static_cast<int>(chips.size());
    c.ranked = select(chips, 0, r.reference);
    if (o.random_baseline) c.random = select(chips, k, *r.reference_random);
    return c;
  };
  r.fault_free = evaluate_cell(holdout, FaultCell{});
  for (std::size_t g = 0; g < setup->cells.size(); ++g) r.cells.push_back(evaluate_cell(group(g + 2), setup->cells[g]));
  r.seconds = seconds_since(start);
  return r;
}

namespace {
json selection_json(const TestChipResult& r, const SelectionResult& s, int chips) {
  json coverage = json::array();
  for (std::size_t q = 0; q < r.counts.size(); ++q) {
    const BinomialInterval ci = clopper_pearson(s.flagged[q], chips);
    coverage.push_back({{"vectors", r.counts[q]},
                        {"flagged", s.flagged[q]},
                        {"share", static_cast<double>(s.flagged[q]) / chips},
                        {"ci95", {ci.low, ci.high}}});
  }
  return json{{"flagged", coverage},
              {"statistic", s.statistic},
              {"accuracy_on_vectors", s.accuracy},
              {"changed_outputs", s.changed_outputs},
              {"chips_with_changed_outputs", s.chips_changed}};
}

json cell_json(const TestChipResult& r, const FaultCellResult& c) {
  json j = {{"chips", c.chips}, {"ranked", selection_json(r, c.ranked, c.chips)}};
  if (c.random) j["random"] = selection_json(r, *c.random, c.chips);
  if (!c.cell.fault.empty()) {
    j["fault"] = c.cell.fault;
    j["severity"] = c.cell.severity;
    j["unit"] = c.unit;
    j["key"] = fault_class(c.cell.fault).key;
  }
  return j;
}

json reference_json(const TestChipResult& r, const SelectionReference& ref) {
  json by = json::array();
  for (std::size_t q = 0; q < r.counts.size(); ++q) {
    by.push_back({{"vectors", r.counts[q]}, {"mu", ref.by_count[q].mu}, {"sigma", ref.by_count[q].sigma}});
  }
  return json{{"chips", r.chips}, {"by_vectors", by}, {"statistic", ref.statistic}, {"accuracy_on_vectors", ref.accuracy}};
}
}  // namespace

json test_chip_json(const TestChipResult& r) {
  json vectors = json::array();
  for (const VectorRank& v : r.ranking) {
    vectors.push_back({{"training_image", v.candidate}, {"entropy_mean", v.mean}, {"entropy_sd", v.sd}, {"repeatability", v.score}});
  }
  json cells = json::array();
  for (const FaultCellResult& c : r.cells) cells.push_back(cell_json(r, c));
  json reference = {{"ranked", reference_json(r, r.reference)}};
  if (r.reference_random) reference["random"] = reference_json(r, *r.reference_random);
  json j{{"model_dir", r.model_dir},
         {"hardware", r.hardware},
         {"samples", r.samples},
         {"seed", r.seed},
         {"first_seed", r.first_seed},
         {"statistic", "mean predictive entropy over the test vectors (nats)"},
         {"rule", fmt::format("flagged when the statistic leaves mu +- {:g} sigma of the reference chips", r.k)},
         {"k", r.k},
         {"selection",
          {{"rule", "repeatability = mean / (sd + 1e-3) of an image's predictive entropy over the ranking chips"},
           {"training_images", r.training_images},
           {"candidates", r.candidates},
           {"ranking_chips", r.ranking_chips},
           {"vectors", r.vectors},
           {"vectors_pct_of_training", 100.0 * r.vectors / r.training_images}}},
         {"chips_per_set", r.chips},
         {"reference", reference},
         {"false_alarms", cell_json(r, r.fault_free)},
         {"cells", cells},
         {"test_vectors", vectors}};
  if (!r.random_vectors.empty()) j["random_vectors"] = r.random_vectors;
  return j;
}

std::string test_chip_csv(const TestChipResult& r) {
  std::string out =
      "fault,severity,unit,selection,vectors,chips,flagged,share,ci_low,ci_high,changed_outputs,accuracy_on_vectors\n";
  const auto rows = [&](const FaultCellResult& c, const SelectionResult& s, const char* selection) {
    for (std::size_t q = 0; q < r.counts.size(); ++q) {
      const BinomialInterval ci = clopper_pearson(s.flagged[q], c.chips);
      out += fmt::format("{},{},{},{},{},{},{},{:.4f},{:.4f},{:.4f},{:.4f},{:.4f}\n",
                         c.cell.fault.empty() ? "none" : c.cell.fault,
                         c.cell.fault.empty() ? std::string() : fmt::format("{:g}", c.cell.severity), c.unit, selection,
                         r.counts[q], c.chips, s.flagged[q], static_cast<double>(s.flagged[q]) / c.chips, ci.low, ci.high,
                         s.changed_outputs, s.accuracy);
    }
  };
  for (const FaultCellResult* c : [&] {
         std::vector<const FaultCellResult*> all = {&r.fault_free};
         for (const auto& cell : r.cells) all.push_back(&cell);
         return all;
       }()) {
    rows(*c, c->ranked, "ranked");
    if (c->random) rows(*c, *c->random, "random");
  }
  return out;
}

std::string vectors_csv(const TestChipResult& r) {
  std::string out = "rank,training_image,entropy_mean,entropy_sd,repeatability\n";
  for (std::size_t i = 0; i < r.ranking.size(); ++i) {
    const VectorRank& v = r.ranking[i];
    out += fmt::format("{},{},{:.6g},{:.6g},{:.6g}\n", i + 1, v.candidate, v.mean, v.sd, v.score);
  }
  return out;
}

std::string test_chip_table(const TestChipResult& r) {
  const std::size_t last = r.counts.size() - 1;
  const bool random = r.reference_random.has_value();
  const auto pct = [&](int flagged, int chips) { return 100.0 * flagged / chips; };
  std::string out = fmt::format(
      "test vectors: {} of {} training images ({:.2f} %), ranked from {} candidates on {} fault-free chips; T = {}\n"
      "reference: {} fault-free chips, statistic mu = {:.5f}, sigma = {:.5f} nats; flagged outside mu +- {:g} sigma\n"
      "false alarms: {} of {} fault-free hold-out chips ({:.1f} %)",
      r.vectors, r.training_images, 100.0 * r.vectors / r.training_images, r.candidates, r.ranking_chips, r.samples,
      r.chips, r.reference.by_count[last].mu, r.reference.by_count[last].sigma, r.k, r.fault_free.ranked.flagged[last],
      r.fault_free.chips, pct(r.fault_free.ranked.flagged[last], r.fault_free.chips));
  if (random) {
    out += fmt::format("; with {} random vectors {} ({:.1f} %)", r.vectors, r.fault_free.random->flagged[last],
                       pct(r.fault_free.random->flagged[last], r.fault_free.chips));
  }
  out += "\n\n";
  out += fmt::format("{:<16} {:>9} {:<24} {:>9} {:>15}{} {:>9} {:>9}\n", "fault", "severity", "unit", "coverage",
                     "95 % interval", random ? fmt::format(" {:>9}", "random") : "", "changed", "accuracy");
  for (const FaultCellResult& c : r.cells) {
    const BinomialInterval ci = clopper_pearson(c.ranked.flagged[last], c.chips);
    // Changed outputs and accuracy on the random vectors when there are any: a sample of the data,
    // where the ranked vectors are the uncertain images.
    const SelectionResult& shown = random ? *c.random : c.ranked;
    out += fmt::format("{:<16} {:>9g} {:<24} {:>8.1f}% {:>6.1f}-{:>5.1f} %{} {:>8.2f}% {:>8.2f}%\n", c.cell.fault,
                       c.cell.severity, c.unit, pct(c.ranked.flagged[last], c.chips), 100.0 * ci.low, 100.0 * ci.high,
                       random ? fmt::format(" {:>8.1f}%", pct(c.random->flagged[last], c.chips)) : "",
                       100.0 * shown.changed_outputs, 100.0 * shown.accuracy);
  }
  out += fmt::format("(changed: share of {} predictions the fault changed against the same chip without it; accuracy "
                     "there, fault-free {:.2f} %)\n",
                     random ? "the random vectors'" : "the vectors'",
                     100.0 * (random ? r.fault_free.random->accuracy : r.fault_free.ranked.accuracy));
  return out;
}

std::string test_chip_plot_png(const TestChipResult& r) {
  // One panel per severity rank (mild, moderate, severe as listed per class), a line per class;
  // the false-alarm rate dashed in each.
  std::vector<std::string> classes;
  for (const FaultCellResult& c : r.cells) {
    if (std::find(classes.begin(), classes.end(), c.cell.fault) == classes.end()) classes.push_back(c.cell.fault);
  }
  std::vector<std::pair<std::string, std::string>> data;
  std::string fa;
  for (std::size_t q = 0; q < r.counts.size(); ++q) {
    fa += fmt::format("{} {:.6f}\n", r.counts[q], 100.0 * r.fault_free.ranked.flagged[q] / r.fault_free.chips);
  }
  data.emplace_back("false_alarms.dat", fa);
  int panels = 1;
  std::vector<std::string> panel_plots(3);
  for (std::size_t ci = 0; ci < classes.size(); ++ci) {
    int rank = 0;
    for (const FaultCellResult& c : r.cells) {
      if (c.cell.fault != classes[ci]) continue;
      const std::string file = fmt::format("c{}_{}.dat", ci, rank);
      std::string rows;
      for (std::size_t q = 0; q < r.counts.size(); ++q) {
        rows += fmt::format("{} {:.6f}\n", r.counts[q], 100.0 * c.ranked.flagged[q] / c.chips);
      }
      data.emplace_back(file, rows);
      const int panel = std::min(rank, 2);
      panels = std::max(panels, panel + 1);
      std::string& p = panel_plots[static_cast<std::size_t>(panel)];
      p += fmt::format("{}'{}' using 1:2 with linespoints lw 2 dt 1 lc {} pt {} title '{}'", p.empty() ? "" : ", ", file,
                       ci + 1, ci % 12 + 1, gnuplot_escaped(c.cell.fault));
      ++rank;
    }
  }
  std::string script = fmt::format(
      "set terminal pngcairo noenhanced size {},600 font 'sans,10'\nset output 'out.png'\nset multiplot layout 1,{}\n"
      "set logscale x 2\nset xlabel 'test vectors (best first)'\nset ylabel 'chips flagged (%)'\nset yrange [-2:102]\n"
      "set grid\nset key below font 'sans,8' maxrows 6\n",
      480 * panels, panels);
  const char* names[3] = {"mildest severity", "middle severity", "most severe"};
  for (int p = 0; p < panels; ++p) {
    script += fmt::format("set title '{} (false alarms dashed)'\nplot {}, 'false_alarms.dat' using 1:2 with lines lw 2 dt 2 "
                          "lc rgb 'black' title 'fault-free'\n",
                          panels == 1 ? "coverage" : names[p], panel_plots[static_cast<std::size_t>(p)]);
  }
  script += "unset multiplot\n";
  return render_plot_png(script, data, "--out");
}

}  // namespace spinbayes
