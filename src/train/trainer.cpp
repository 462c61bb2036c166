// Training loop: Adam with a cosine learning-rate schedule, BinaryNet weight clipping, per-epoch
// atomic checkpoints and a resumable history. Every random draw is keyed by the run's seed.
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <numbers>
#include <optional>
#include <sstream>

#include "core/atomic_file.h"
#include "core/counter_rng.h"
#include "core/dir_lock.h"
#include "core/error.h"
#include "core/streams.h"
#include "model/dropout_mask.h"
#include "train/binary_net.h"
#include "train/export.h"
#include "train/run.h"

extern "C" void openblas_set_num_threads(int);

namespace spinbayes {

void configure_threads(int threads) {
  openblas_set_num_threads(1);
  at::set_num_threads(threads);
}

namespace {

using Clock = std::chrono::steady_clock;

std::string format_duration(double seconds) {
  const auto s = static_cast<long>(std::lround(std::max(0.0, seconds)));
  if (s >= 3600) return fmt::format("{}h{:02}m", s / 3600, (s / 60) % 60);
  if (s >= 60) return fmt::format("{}m{:02}s", s / 60, s % 60);
  return fmt::format("{}s", s);
}

// One progress line, redrawn in place on a terminal, printed every 25 % otherwise.
class Progress {
 public:
  explicit Progress(bool quiet) : quiet_(quiet), tty_(::isatty(STDERR_FILENO) != 0) {}
  void update(int epoch, int epochs, double fraction, double loss, double acc, double eta_seconds) {
    if (quiet_) return;
    const auto now = Clock::now();
    const int quarter = static_cast<int>(fraction * 4);
    if (tty_ ? (now - last_ < std::chrono::milliseconds(250) && fraction < 1.0) : quarter == last_quarter_) return;
    last_ = now;
    last_quarter_ = quarter;
    const int filled = static_cast<int>(fraction * 20);
    const std::string bar = std::string(static_cast<std::size_t>(filled), '#') + std::string(20 - filled, '.');
    std::fprintf(stderr, "%sepoch %d/%d [%s] %3.0f%%  loss %.4f  acc %5.2f%%  ETA %s%s", tty_ ? "\r" : "",
                 epoch, epochs, bar.c_str(), 100.0 * fraction, loss, 100.0 * acc,
                 format_duration(eta_seconds).c_str(), tty_ ? "   " : "\n");
    std::fflush(stderr);
  }
  void line(const std::string& text) {
    if (quiet_) return;
    std::fprintf(stderr, "%s%s\n", tty_ ? "\r" : "", text.c_str());
  }

 private:
  bool quiet_, tty_;
  Clock::time_point last_{};
  int last_quarter_ = -1;
};

torch::Tensor batch_tensor(const ImageSet& set, const std::vector<int>& order, int start, int count,
                           std::vector<std::int64_t>& ids, torch::Tensor& labels) {
  auto x = torch::empty({count, set.c, set.h, set.w});
  labels = torch::empty({count}, torch::kInt64);
  ids.resize(static_cast<std::size_t>(count));
  float* dst = x.data_ptr<float>();
  auto* lab = labels.data_ptr<std::int64_t>();
  const std::size_t size = set.image_size();
  for (int i = 0; i < count; ++i) {
    const int index = order[static_cast<std::size_t>(start + i)];
    std::copy_n(set.image(index), size, dst + static_cast<std::size_t>(i) * size);
    lab[i] = set.labels[static_cast<std::size_t>(index)];
    ids[static_cast<std::size_t>(i)] = index;
  }
  return x;
}

// Accuracy of a deterministic pass (dropout off, batch-norm running statistics).
double evaluate_accuracy(BinaryNet& net, const ImageSet& set) {
  if (set.n == 0) return 0.0;
  torch::NoGradGuard no_grad;
  net->eval();
  std::int64_t correct = 0;
  const int batch = 1000;
  for (int start = 0; start < set.n; start += batch) {
    const int count = std::min(batch, set.n - start);
    auto x = torch::from_blob(const_cast<float*>(set.image(start)), {count, set.c, set.h, set.w}, torch::kFloat32);
    const auto predicted = net->forward(x, MaskContext{}).argmax(1);
    const auto* p = predicted.data_ptr<std::int64_t>();
    for (int i = 0; i < count; ++i) correct += p[i] == set.labels[static_cast<std::size_t>(start + i)];
  }
  net->train();
  return static_cast<double>(correct) / set.n;
}

void save_checkpoint(const std::filesystem::path& path, BinaryNet& net, torch::optim::Adam& optimizer, int epoch,
                     const nlohmann::json& history) {
  torch::serialize::OutputArchive archive;
  net->save(archive);
  torch::serialize::OutputArchive optimizer_archive;
  optimizer.save(optimizer_archive);
  archive.write("optimizer", optimizer_archive);
  archive.write("epoch", torch::tensor(static_cast<std::int64_t>(epoch)));
  archive.write("history", c10::IValue(history.dump()));
  write_archive(archive, path);
}

// A run to start from must be the same network trained on the same schedule; only the dropout
// (kind, rate, layers) may differ.
void check_init_run(const TrainOptions& o, const TrainOptions& from) {
  TrainOptions same_dropout = o;
  same_dropout.spec.dropout = from.spec.dropout;
  same_dropout.spec.p = from.spec.p;
  same_dropout.spec.dropout_layers = from.spec.dropout_layers;
  same_dropout.init = from.init;
  const std::vector<std::string> differences = run_setting_differences(same_dropout, from);
  if (!differences.empty()) {
    std::string list;
    for (const auto& d : differences) list += (list.empty() ? "" : ", ") + d;
    throw Error("--init: " + printable(o.init.string()) + " is a run of another network or schedule: " + list);
  }
}

int load_checkpoint(const std::filesystem::path& path, BinaryNet& net, torch::optim::Adam& optimizer,
                    nlohmann::json& history) {
  if (!std::filesystem::is_regular_file(path)) throw Error(path.string() + ": not a regular file");
  try {
    torch::serialize::InputArchive archive;
    archive.load_from(path.string());
    net->load(archive);
    check_finite_tensors(*net, path.string());
    torch::serialize::InputArchive optimizer_archive;
    archive.read("optimizer", optimizer_archive);
    optimizer.load(optimizer_archive);
    for (const auto& [key, state] : optimizer.state()) {
      const auto& adam = static_cast<const torch::optim::AdamParamState&>(*state);
      check_finite_tensor(adam.exp_avg(), "optimizer.exp_avg", path.string());
      check_finite_tensor(adam.exp_avg_sq(), "optimizer.exp_avg_sq", path.string());
    }
    torch::Tensor epoch;
    archive.read("epoch", epoch);
    c10::IValue text;
    archive.read("history", text);
    history = nlohmann::json::parse(text.toStringRef());
    return static_cast<int>(epoch.item<std::int64_t>());
  } catch (const nlohmann::json::exception&) {
    throw Error(path.string() + ": corrupt training history");
  } catch (const Error&) {
    throw;
  } catch (const std::exception&) {  // c10::Error, and the archive reader's own parse errors
    throw Error(path.string() + ": corrupt or incompatible checkpoint");
  }
}

}  // namespace

// A failed run leaves no empty directory behind: its DirectoryLock removes the one it created.
TrainResult train_model(const TrainOptions& input_options) {
  if (!input_options.imported.empty()) {
    throw Error(input_options.out.string() + ": holds a network imported from " + input_options.imported +
                "; it has no training to resume (train into another --out)");
  }
  TrainOptions options = input_options;
  options.validate();
  configure_threads(options.threads);
  const auto checkpoint_path = options.out / "checkpoint.pt";
  // Held until the run returns: a second process given the same directory stops here, before it
  // looks at (or writes) anything in it.
  const DirectoryLock lock(options.out, "--out", "training run");
  const bool resuming = options.resume && std::filesystem::exists(checkpoint_path);
  if (!options.resume && std::filesystem::exists(checkpoint_path)) {
    throw Error(options.out.string() + ": already holds a trained run (use --resume or another --out)");
  }

  TrainingSplit data = load_training_split(options.paths, options);
  // Every step takes a whole batch (a last partial one is dropped): fewer images than one batch
  // would leave nothing to train on, and batch norm needs at least two.
  if (data.train.n < options.batch) {
    throw Error(fmt::format("training set: it holds {} images after the validation split ({} held out){}, "
                            "fewer than one batch of {}; lower --batch or train on more images",
                            data.train.n, options.validation,
                            options.subset > 0 ? fmt::format(" and --subset {}", options.subset) : std::string(),
                            options.batch));
  }
  {
    // The test split is what every command on the run evaluates: readable now, and of the
    // training images' shape, or the run would be one nothing can evaluate.
    const ImageSet test = load_data_split(options.data, options.paths, "test", 1);
    if (test.c != data.train.c || test.h != data.train.h || test.w != data.train.w) {
      throw Error(fmt::format("--data: the test images are {}x{}x{} and the training images {}x{}x{}", test.c, test.h,
                              test.w, data.train.c, data.train.h, data.train.w));
    }
  }
  std::optional<TrainOptions> init;  // the run this one starts from
  std::optional<DirectoryLock> init_lock;  // held while its checkpoint is read
  if (resuming) {
    const TrainOptions saved = load_run_config(options.out);
    const std::vector<std::string> differences = run_setting_differences(options, saved);
    if (!differences.empty()) {
      std::string list;
      for (const auto& d : differences) list += (list.empty() ? "" : ", ") + d;
      throw Error("--resume: " + options.out.string() + " holds a run trained with other settings: " + list +
                  "; resume with the run's settings or train into another --out");
    }
    options.spec = saved.spec;  // the architecture and normalization of the run being resumed
    options.init_epochs = saved.init_epochs;
  } else if (!options.init.empty()) {
    init = load_run_config(options.init);
    init_lock.emplace(options.init, "--init", "training run");
    check_init_run(options, *init);
    options.spec.input_mean = init->spec.input_mean;  // the same training images, so the same statistics
    options.spec.input_std = init->spec.input_std;
    options.spec.channels = init->spec.channels;
    options.spec.height = init->spec.height;
    options.spec.width_px = init->spec.width_px;
    options.spec.classes = init->spec.classes;
  } else {
    const int classes = std::max(class_count(options.data, data.train), class_count(options.data, data.validation));
    if (options.spec.architecture == "custom") {
      // A network file names its input shape and classes: the data set must have them.
      const ModelSpec& m = options.spec;
      if (m.channels != data.train.c || m.height != data.train.h || m.width_px != data.train.w || m.classes != classes) {
        throw Error(fmt::format("--model: the network file's input {}x{}x{} with {} classes does not fit the data set "
                                "{} ({}x{}x{}, {} classes)",
                                m.channels, m.height, m.width_px, m.classes, printable(options.data.spec()),
                                data.train.c, data.train.h, data.train.w, classes));
      }
    }
    options.spec.input_mean.clear();
    options.spec.input_std.clear();
    for (const PixelStatistics& stats : channel_statistics(data.train)) {
      options.spec.input_mean.push_back(static_cast<float>(stats.mean));
      options.spec.input_std.push_back(static_cast<float>(std::max(1e-6, stats.std)));
    }
    options.spec.classes = classes;
    options.spec.channels = data.train.c;
    options.spec.height = data.train.h;
    options.spec.width_px = data.train.w;
  }

  torch::manual_seed(options.seed);
  BinaryNet net(options.spec);
  torch::optim::Adam optimizer(net->parameters(), torch::optim::AdamOptions(options.lr));
  nlohmann::json history = nlohmann::json::array();
  int first_epoch = 0;
  if (resuming) {
    first_epoch = load_checkpoint(checkpoint_path, net, optimizer, history);
  } else if (init) {
    const auto from = options.init / "checkpoint.pt";
    if (!std::filesystem::exists(from)) throw Error("--init: " + printable(from.string()) + ": not found");
    first_epoch = load_checkpoint(from, net, optimizer, history);
    if (first_epoch < 1 || first_epoch >= options.epochs) {
      throw Error(fmt::format("--init: {} has finished {} of its {} epochs; a run can start from one that has "
                              "finished 1 to {}",
                              printable(options.init.string()), first_epoch, options.epochs, options.epochs - 1));
    }
    options.init_epochs = first_epoch;
    init_lock.reset();
  }
  save_run_config(options);
  net->train();

  const ImageSet& train = data.train;
  const int steps_per_epoch = std::max(1, train.n / options.batch);  // a last partial batch is dropped
  const long total_steps = static_cast<long>(steps_per_epoch) * options.epochs;
  const std::uint64_t mask_seed = stream_seed(options.seed, streams::kTrainMasks);
  // Cosine annealing from lr to 0 over the whole run, by optimizer step.
  const auto cosine_lr = [&](double step) { return options.lr * 0.5 * (1.0 + std::cos(std::numbers::pi * step / total_steps)); };
  Progress progress(options.quiet);
  TrainResult result;
  result.seconds = history.empty() ? 0.0 : history.back().value("seconds", 0.0);

  for (int epoch = first_epoch; epoch < options.epochs; ++epoch) {
    const auto epoch_start = Clock::now();
    // Fisher-Yates with a per-epoch stream: the order depends on (seed, epoch) only.
    std::vector<int> order(static_cast<std::size_t>(train.n));
    for (int i = 0; i < train.n; ++i) order[static_cast<std::size_t>(i)] = i;
    SplitMix64 shuffle_rng(hash_key(options.seed, streams::kShuffle, static_cast<std::uint64_t>(epoch)));
    for (int i = train.n - 1; i > 0; --i) {
      const auto j = static_cast<int>(shuffle_rng() % static_cast<std::uint64_t>(i + 1));
      std::swap(order[static_cast<std::size_t>(i)], order[static_cast<std::size_t>(j)]);
    }
    double loss_sum = 0.0;
    std::int64_t correct = 0, seen = 0;
    std::vector<std::int64_t> ids;
    for (int step = 0; step < steps_per_epoch; ++step) {
      const long global_step = static_cast<long>(epoch) * steps_per_epoch + step;
      const double lr = cosine_lr(static_cast<double>(global_step));
      for (auto& group : optimizer.param_groups()) {
        static_cast<torch::optim::AdamOptions&>(group.options()).lr(lr);
      }
      torch::Tensor labels;
      const auto x = batch_tensor(train, order, step * options.batch, options.batch, ids, labels);
      const MaskContext masks{true, mask_seed, static_cast<std::uint64_t>(epoch), ids.data()};
      const auto logits = net->forward(x, masks);
      const auto loss = torch::nn::functional::cross_entropy(logits, labels);
      optimizer.zero_grad();
      loss.backward();
      optimizer.step();
      net->clip_weights();

      loss_sum += loss.item<double>() * options.batch;
      correct += logits.argmax(1).eq(labels).sum().item<std::int64_t>();
      seen += options.batch;
      const double elapsed = std::chrono::duration<double>(Clock::now() - epoch_start).count();
      const double per_step = elapsed / (step + 1);
      const double eta = per_step * (static_cast<double>(total_steps) - global_step - 1);
      progress.update(epoch + 1, options.epochs, (step + 1.0) / steps_per_epoch, loss_sum / seen,
                      static_cast<double>(correct) / seen, eta);
    }
    const double validation_accuracy = evaluate_accuracy(net, data.validation);
    result.seconds += std::chrono::duration<double>(Clock::now() - epoch_start).count();
    history.push_back({{"epoch", epoch + 1},
                       {"loss", loss_sum / std::max<std::int64_t>(seen, 1)},
                       {"train_accuracy", static_cast<double>(correct) / std::max<std::int64_t>(seen, 1)},
                       {"validation_accuracy", validation_accuracy},
                       {"lr_end", cosine_lr((epoch + 1.0) * steps_per_epoch)},
                       {"seconds", result.seconds}});
    save_checkpoint(checkpoint_path, net, optimizer, epoch + 1, history);
    std::string lines;
    for (const auto& entry : history) lines += entry.dump() + "\n";
    write_file_atomic(options.out / "train.jsonl", lines);
    progress.line(fmt::format("epoch {}/{}: loss {:.4f}, train acc {:.2f}%, validation acc {:.2f}%, {}",
                              epoch + 1, options.epochs, history.back()["loss"].get<double>(),
                              100.0 * history.back()["train_accuracy"].get<double>(),
                              100.0 * validation_accuracy, format_duration(result.seconds)));
    if (options.stop_after_epochs > 0 && epoch + 1 - first_epoch >= options.stop_after_epochs) break;
  }
  export_run(options.out);  // the model IR the inference engine and hardware models read
  result.epochs = history.empty() ? 0 : history.back()["epoch"].get<int>();
  result.validation_accuracy = history.empty() ? 0.0 : history.back()["validation_accuracy"].get<double>();
  return result;
}

}  // namespace spinbayes
