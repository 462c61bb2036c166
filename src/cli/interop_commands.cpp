#include "cli/interop_commands.h"

#include <cstdio>
#include <system_error>

#include <fmt/format.h>

#include "cli/arguments.h"
#include "core/atomic_file.h"
#include "core/dir_lock.h"
#include "core/error.h"
#include "data/npy.h"
#include "eval/evaluation.h"
#include "hw/chip.h"
#include "hw/hardware_config.h"
#include "interop/onnx_import.h"
#include "train/export.h"
#include "train/run.h"

namespace spinbayes {

std::unique_ptr<ImportCommand> add_import_command(CLI::App& app) {
  auto c = std::make_unique<ImportCommand>();
  auto* cmd = app.add_subcommand(
      "import", "Import a binary network from ONNX (torch.onnx.export of a network with sign() on weights and "
                "activations) into a run directory that eval, bench, sweep, cost and predict read");
  c->app = cmd;
  cmd->add_option("model", c->onnx, "The ONNX file")->required();
  cmd->add_option("--out", c->out, "Run directory to create")->required();
  cmd->add_option("--dropout", c->dropout, "Dropout on the chip and in the engine: none, element, spatial")->capture_default_str();
  cmd->add_option("--p", c->p, "Dropout probability in (0, 1)")->capture_default_str();
  cmd->add_option("--dropout-layers", c->dropout_layers, "all | last:N | i,j,k (layers from 1)")->capture_default_str();
  cmd->add_option("--data", c->data, "The data set the network is for (eval's default): fashion-mnist, mnist, cifar10:DIR, idx:...")
      ->capture_default_str();
  cmd->add_option("--validation", c->validation,
                  "Training images held out (seeded by --seed) for calibration and the OOD threshold, as train's")
      ->capture_default_str();
  cmd->add_option("--seed", c->seed, "Seed of that split")->check(seed_value())->capture_default_str();
  cmd->add_option("--fashion-mnist", c->paths.fashion_mnist, "Directory with the Fashion-MNIST IDX files")->capture_default_str();
  cmd->add_option("--digits", c->paths.mnist_digits, "Directory with the MNIST digits as IDX")->capture_default_str();
  return c;
}

void run_import_command(const ImportCommand& c) {
  ImportDropout dropout;
  dropout.kind = parse_dropout_kind(c.dropout);
  dropout.p = c.p;
  dropout.layers = c.dropout_layers;
  if (dropout.kind == DropoutKind::none && c.app->count("--p") > 0 && c.p != 0.0) {
    throw Error("--p: given without --dropout element or spatial");
  }
  if (dropout.kind == DropoutKind::none && c.app->count("--dropout-layers") > 0) {
    throw Error("--dropout-layers: given without --dropout element or spatial");
  }
  if (dropout.kind != DropoutKind::none && !(c.p > 0.0 && c.p < 1.0)) {
    throw Error(fmt::format("--p: dropout {} needs a probability in (0, 1), got {:g}", c.dropout, c.p));
  }
  std::vector<std::string> warnings;
  const ModelIR ir = import_onnx_file(c.onnx, dropout, &warnings);
  for (const auto& w : warnings) std::fprintf(stderr, "spinbayes: warning: %s\n", w.c_str());

  TrainOptions run;
  run.spec = ir.spec;
  run.data = parse_data_set(c.data, "--data");
  run.epochs = 0;
  run.validation = c.validation;
  run.seed = c.seed;
  run.imported = std::filesystem::absolute(c.onnx).lexically_normal().string();
  run.out = c.out;
  run.validate();
  // The data set's test split is what eval reads: of the network's input shape, or the run would
  // be one nothing can evaluate.
  const ImageSet test = load_data_split(run.data, c.paths, "test", 1);
  if (test.c != ir.spec.channels || test.h != ir.spec.height || test.w != ir.spec.width_px) {
    throw Error(fmt::format("--data: its images are {}x{}x{}, the network's input {}x{}x{}", test.c, test.h, test.w,
                            ir.spec.channels, ir.spec.height, ir.spec.width_px));
  }
  if (ir.spec.classes < 10 && run.data.kind != DataSet::Kind::idx) {
    throw Error(fmt::format("--data: a data set of 10 classes, the network gives {} logits", ir.spec.classes));
  }

  const DirectoryLock lock(c.out, "--out", "imported run");
  std::error_code ec;
  for (const auto& file : {c.out / "config.json", c.out / "checkpoint.pt", c.out / "model.sbir"}) {
    if (std::filesystem::exists(file, ec)) {
      throw Error(printable_head(c.out.string()) + ": already holds a run (" + file.filename().string() +
                  "); import into another --out");
    }
  }
  // A new or empty directory (the lock aside): a run is never mixed into other files.
  for (const auto& entry : std::filesystem::directory_iterator(c.out, ec)) {
    if (entry.path().filename() != DirectoryLock::kFileName) {
      throw Error("--out: " + printable_head(c.out.string()) + " is not empty (" + printable_head(entry.path().filename().string()) +
                  "); import into a new directory");
    }
  }
  // The configuration last: until it is written the directory is not a run. A failure (a full
  // disk) takes back what was written, so the import can be run again.
  try {
    save_checkpoint_of_ir(ir, c.out / "checkpoint.pt");
    save_model_ir(ir, c.out / "model.sbir");
    save_run_config(run);
  } catch (...) {
    for (const char* name : {"checkpoint.pt", "model.sbir", "config.json"}) std::filesystem::remove(c.out / name, ec);
    throw;
  }
  int convs = 0, linears = 0;
  for (const auto& l : ir.layers) (l.shape.kind == LayerSpec::Kind::conv ? convs : linears)++;
  std::printf("imported %s: %s, %d binary layers (%d convolutions, %d linear), %s dropout%s\n",
              printable_head(c.onnx.string()).c_str(), network_description(ir.spec).c_str(), convs + linears, convs, linears,
              to_string(ir.spec.dropout).c_str(), ir.spec.dropout == DropoutKind::none ? "" : fmt::format(" p={:g}", ir.spec.p).c_str());
  std::printf("wrote %s\n", c.out.c_str());
}

std::unique_ptr<PredictCommand> add_predict_command(CLI::App& app) {
  auto c = std::make_unique<PredictCommand>();
  auto* cmd = app.add_subcommand("predict",
                                 "Monte Carlo class probabilities (or logits) of images from a .npy array, on the engine "
                                 "or a simulated chip, into a .npy array of samples x images x classes");
  c->app = cmd;
  cmd->add_option("--model", c->model, "Run directory (trained or imported)")->required();
  cmd->add_option("--images", c->images, "float32 or float64 .npy of N x C x H x W pixels, as the data sets give them ([0, 1])")
      ->required();
  cmd->add_option("--out", c->out, "Output .npy (float32, T x N x classes)")->required();
  cmd->add_option("--backend", c->backend, "engine (bit-packed XNOR-popcount) | cim (simulated chip)")->capture_default_str();
  cmd->add_option("--hw", c->hardware, "cim: hardware config file, or a preset: default, wired, unwired, ideal")->capture_default_str();
  cmd->add_option("--chip-seed", c->chip_seed, "cim: seed of the simulated chip's device variation")
      ->check(seed_value())
      ->capture_default_str();
  cmd->add_option("--samples", c->samples, "Monte Carlo samples T (1 without dropout)")->capture_default_str();
  cmd->add_option("--seed", c->seed, "Seed of the masks")->check(seed_value())->capture_default_str();
  cmd->add_option("--threads", c->threads)->capture_default_str();
  cmd->add_flag("--logits", c->logits, "Write the logits instead of the probabilities");
  cmd->add_flag("--no-dropout", c->no_dropout, "One deterministic pass, dropout off");
  return c;
}

void run_predict_command(const PredictCommand& c) {
  const Backend backend = parse_backend(c.backend);
  if (backend == Backend::torch) throw Error("--backend: predict runs on engine or cim");
  HardwareConfig::require_source(c.hardware);
  refuse_without_chip(*c.app, backend == Backend::cim, {"--hw", "--chip-seed"});
  if (c.samples < 1 || c.samples > 100000) throw Error(fmt::format("--samples: must be in 1..100000, got {}", c.samples));
  if (c.threads < 1 || c.threads > 1024) throw Error(fmt::format("--threads: must be in 1..1024, got {}", c.threads));
  check_output_path(c.out, "--out");
  auto inputs = run_files(c.model);
  inputs.push_back(c.images);
  check_not_an_input(c.out, inputs, "--out");
  load_run_config(c.model);  // a run directory, its configuration readable
  const ModelIR ir = load_model_ir(ensure_model_ir(c.model));

  const NpyArray array = read_npy(c.images);
  const std::string name = printable_head(c.images.string());
  if (array.shape.size() != 4) {
    throw Error(fmt::format("{}: an array of rank {}, expected 4 (N x C x H x W)", name, array.shape.size()));
  }
  if (array.shape[0] < 1 || array.shape[0] > 10000000) throw Error(name + ": needs 1..10^7 images");
  ImageSet images;
  images.name = name;
  images.n = static_cast<int>(array.shape[0]);
  if (array.shape[1] > 4096 || array.shape[2] > 4096 || array.shape[3] > 4096) throw Error(name + ": an image dimension over 4096");
  images.c = static_cast<int>(array.shape[1]);
  images.h = static_cast<int>(array.shape[2]);
  images.w = static_cast<int>(array.shape[3]);
  ir.spec.check_input(name, images.c, images.h, images.w);
  images.pixels = array.values;

  configure_threads(c.threads);
  McPredictions mc;
  std::vector<float> logits;
  const bool dropout = !c.no_dropout;
  if (backend == Backend::engine) {
    mc = Engine(ir).predict(images, c.samples, c.seed, dropout, nullptr, &logits);
  } else {
    const Chip chip(ir, HardwareConfig::load(c.hardware), c.chip_seed);
    mc = chip.predict(images, c.samples, c.seed, dropout, nullptr, &logits);
  }
  const std::vector<std::int64_t> shape{mc.samples, mc.inputs, mc.classes};
  write_file_atomic(c.out, npy_bytes(shape, c.logits ? logits : mc.probs));
  std::printf("wrote %s: %s of %d images x %d samples x %d classes (%s)\n", printable_head(c.out.string()).c_str(),
              c.logits ? "logits" : "probabilities", mc.inputs, mc.samples, mc.classes, to_string(backend).c_str());
}

}  // namespace spinbayes
