#include "train/run.h"

#include <fmt/format.h>

#include <climits>
#include <cstdint>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "core/atomic_file.h"
#include "core/dir_lock.h"
#include "core/error.h"
#include "core/read_file.h"

namespace spinbayes {

void TrainOptions::validate() const {
  spec.validate();
  if (imported.empty() ? epochs < 1 || epochs > 100000 : epochs != 0) {
    throw Error("epochs: must be " + std::string(imported.empty() ? ">= 1" : "0 for an imported network") + ", got " + std::to_string(epochs));
  }
  if (batch < 2 || batch > 65536) throw Error("batch: must be in 2..65536, got " + std::to_string(batch));
  if (!(lr > 0.0 && lr < 10.0)) throw Error("lr: must be in (0, 10), got " + std::to_string(lr));
  if (validation < 0) throw Error("validation: must be >= 0");
  if (subset < 0) throw Error("subset: must be >= 0");
  if (threads < 1 || threads > 256) throw Error("threads: must be in 1..256");
  if (stop_after_epochs < 0) throw Error("stop-after: must be >= 0");
}

void save_run_config(const TrainOptions& o) {
  nlohmann::json j = {
      {"format", "spinbayes-run"},
      {"version", 1},
      {"model", o.spec},
      {"training",
       {{"epochs", o.epochs}, {"batch", o.batch}, {"lr", o.lr}, {"seed", o.seed},
        {"validation", o.validation}, {"subset", o.subset}, {"threads", o.threads},
        {"init", o.init.string()}, {"init_epochs", o.init_epochs}, {"data", o.data.spec()}}}};
  if (!o.imported.empty()) j["training"]["imported"] = o.imported;
  write_file_atomic(o.out / "config.json", j.dump(2) + "\n");
  // A network of the user's own: its file too, so that `train --model DIR/network.json` trains it again.
  if (o.spec.architecture == "custom") {
    write_file_atomic(o.out / "network.json",
                      network_file_text(NetworkFile{.layers = o.spec.network,
                                                    .channels = o.spec.channels,
                                                    .height = o.spec.height,
                                                    .width = o.spec.width_px,
                                                    .classes = o.spec.classes}));
  }
}

TrainOptions load_run_config(const std::filesystem::path& dir) {
  const auto path = dir / "config.json";
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) {
    throw Error(printable(path.string()) + ": not found (not a training run directory?)");
  }
  const std::string text = read_file_bytes(path, std::uint64_t{1} << 20);
  TrainOptions o;
  try {
    const auto j = nlohmann::json::parse(text);
    if (j.value("format", "") != "spinbayes-run") throw Error("not a spinbayes run configuration");
    if (j.value("version", 0) != 1) throw Error("unsupported version");
    if (!j.contains("model") || !j.contains("training")) throw Error("missing 'model' or 'training'");
    o.spec = j.at("model").get<ModelSpec>();
    const auto& t = j.at("training");
    // nlohmann converts with a plain cast: 1e20 into an int would be undefined behaviour.
    const auto integer = [&](const char* key) {
      const auto& v = t.at(key);
      if (!v.is_number_integer() || (v.is_number_unsigned() ? v.get<std::uint64_t>() > INT_MAX
                                                             : v.get<std::int64_t>() < INT_MIN ||
                                                                   v.get<std::int64_t>() > INT_MAX)) {
        throw Error(std::string("training.") + key + " must be an integer that fits an int");
      }
      return v.get<int>();
    };
    o.epochs = integer("epochs");
    o.batch = integer("batch");
    o.lr = t.at("lr").get<double>();
    if (!t.at("seed").is_number_unsigned()) throw Error("training.seed must be a non-negative integer");
    o.seed = t.at("seed").get<std::uint64_t>();
    o.validation = integer("validation");
    o.subset = integer("subset");
    o.threads = integer("threads");
    // Runs trained from scratch before runs could start from another's checkpoint have neither key.
    if (t.contains("init")) {
      if (!t.at("init").is_string()) throw Error("training.init must be a string");
      o.init = t.at("init").get<std::string>();
    }
    if (t.contains("init_epochs")) o.init_epochs = integer("init_epochs");
    // Runs from before other data sets were read have no key: Fashion-MNIST.
    if (t.contains("data")) {
      if (!t.at("data").is_string()) throw Error("training.data must be a string");
      o.data = parse_data_set(t.at("data").get<std::string>(), "training.data");
    }
    if (t.contains("imported")) {
      if (!t.at("imported").is_string() || t.at("imported").get<std::string>().empty()) {
        throw Error("training.imported must be a non-empty string");
      }
      o.imported = t.at("imported").get<std::string>();
    }
    const bool init_ok = o.imported.empty() ? o.init_epochs >= 0 && o.init_epochs < o.epochs && o.init.empty() == (o.init_epochs == 0)
                                            : o.init_epochs == 0 && o.init.empty();
    if (!init_ok) {
      throw Error("training.init_epochs must be 0 without training.init and in 1..epochs-1 with it");
    }
  } catch (const nlohmann::json::exception& e) {
    throw Error(path.string() + ": corrupt configuration (" + std::string(e.what()).substr(0, 120) + ")");
  } catch (const Error& e) {
    throw Error(path.string() + ": " + e.what());
  }
  o.out = dir;
  o.validate();
  return o;
}

std::vector<std::filesystem::path> run_files(const std::filesystem::path& dir) {
  return {dir / "config.json", dir / "network.json", dir / "checkpoint.pt", dir / "train.jsonl",
          dir / "model.sbir", dir / "calibration.json", dir / DirectoryLock::kFileName};
}

std::vector<std::string> run_setting_differences(const TrainOptions& o, const TrainOptions& saved) {
  std::vector<std::string> out;
  const auto differ = [&](const char* option, const auto& mine, const auto& theirs) {
    if (mine != theirs) out.push_back(fmt::format("{} {} (the run has {})", option, mine, theirs));
  };
  differ("--model", printable(o.spec.architecture), printable(saved.spec.architecture));
  differ("--width", o.spec.effective_width(), saved.spec.effective_width());
  if (o.spec.architecture == saved.spec.architecture && o.spec.network != saved.spec.network) {
    out.push_back("--model (a network file with other layers than the run's)");
  }
  differ("--dropout", to_string(o.spec.dropout), to_string(saved.spec.dropout));
  differ("--p", o.spec.p, saved.spec.p);
  differ("--dropout-layers", printable(o.spec.dropout_layers), printable(saved.spec.dropout_layers));
  differ("--epochs", o.epochs, saved.epochs);
  differ("--batch", o.batch, saved.batch);
  differ("--lr", o.lr, saved.lr);
  differ("--seed", o.seed, saved.seed);
  differ("--validation", o.validation, saved.validation);
  differ("--subset", o.subset, saved.subset);
  differ("--init", printable(o.init.string()), printable(saved.init.string()));
  differ("--data", printable(o.data.spec()), printable(saved.data.spec()));
  return out;
}

TrainingSplit load_training_split(const DataPaths& paths, const TrainOptions& run) {
  return load_training_split(paths, run.data, run.validation, run.subset, run.seed);
}

TrainingSplit load_training_split(const DataPaths& paths, const DataSet& data, int validation, int subset,
                                  std::uint64_t seed) {
  const ImageSet full = load_data_split(data, paths, "train");
  if (validation >= full.n) throw Error("validation: must be smaller than the training set");
  auto [train, val] = split_train_validation(full, validation, seed);
  if (subset > 0) train = random_subset(train, subset, seed + 1);
  return {std::move(train), std::move(val)};
}

}  // namespace spinbayes
