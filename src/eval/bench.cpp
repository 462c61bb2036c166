#include "eval/bench.h"

#include <omp.h>

#include <chrono>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "engine/bgemm.h"
#include "engine/engine.h"
#include "hw/cell_array.h"
#include "hw/chip.h"
#include "popcount_roof.h"
#include "train/export.h"
#include "train/run.h"
#include "train/torch_model.h"

namespace spinbayes {

namespace {

template <typename F>
double seconds_of(F&& f) {
  const auto start = std::chrono::steady_clock::now();
  f();
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

// Best of `repeats` timings: the least disturbed by whatever else the machine does.
template <typename F>
double best_seconds(int repeats, F&& f) {
  double best = 1e300;
  for (int r = 0; r < repeats; ++r) best = std::min(best, seconds_of(f));
  return best;
}

}  // namespace

BenchReport run_bench(const BenchOptions& o) {
  if (o.samples < 1) throw Error("samples: must be >= 1");
  if (o.images < 1) throw Error("images: must be >= 1");
  configure_threads(o.threads);
  const TorchModel torch_model = TorchModel::load(o.model);
  const ModelIR ir = load_model_ir(ensure_model_ir(o.model));
  const Engine engine(ir);
  const ModelSpec& spec = engine.spec();
  if (!spec.has_dropout()) throw Error(o.model.string() + ": bench needs a model trained with dropout");

  const ImageSet images = load_data_split(load_run_config(o.model).data, o.paths, "test", o.images);
  spec.check_input(images.name, images.c, images.h, images.w);

  BenchReport r;
  r.architecture = spec.architecture;
  r.width = spec.effective_width();
  r.network = network_description(spec);
  r.dropout = to_string(spec.dropout);
  r.dropout_layers = spec.dropout_layers;
  r.images = images.n;
  r.samples = o.samples;
  r.threads = o.threads;
  r.kernel = bgemm_kernel_name();

  // Torch and engine on the same images and samples.
  const double work = static_cast<double>(images.n) * o.samples;
  const double torch_s = best_seconds(2, [&] { torch_model.predict(images, o.samples, o.seed, true); });
  const double engine_s = best_seconds(3, [&] { engine.predict(images, o.samples, o.seed, true); });
  r.torch_samples_per_s = work / torch_s;
  r.engine_samples_per_s = work / engine_s;
  r.ratio = r.engine_samples_per_s / r.torch_samples_per_s;
  if (!o.hardware.empty()) {
    // The chip: its construction (device draws) timed apart from the Monte Carlo run.
    std::unique_ptr<Chip> chip;
    const HardwareConfig hw = HardwareConfig::load(o.hardware);
    r.cim_setup_seconds = seconds_of([&] { chip = std::make_unique<Chip>(ir, hw, 1); });
    Ledger ledger;
    const double cim_s = best_seconds(2, [&] { chip->predict(images, o.samples, o.seed, true, &ledger); });
    const LayerEvents total = ledger.total();
    r.cim_analog_share = total.simulated_decisions > 0
                             ? static_cast<double>(total.analog_decisions) / static_cast<double>(total.simulated_decisions)
                             : 0.0;
    // The ledger holds every timed run: per image and sample over all of them.
    const double passes = static_cast<double>(ledger.images) * ledger.samples;
    for (int i = 0; i < static_cast<int>(ledger.layers.size()); ++i) {
      const LayerEvents& e = ledger.layers[static_cast<std::size_t>(i)];
      if (e.simulated_decisions == 0) continue;
      const CellArray& cells = chip->array(i).cells();
      double bound = 0.0;
      for (int j = 0; j < cells.cols(); ++j) bound += cells.systematic_bound(j) / cells.cols();
      r.cim_layers.push_back({i, static_cast<double>(e.simulated_decisions) / passes,
                              static_cast<double>(e.analog_decisions) / static_cast<double>(e.simulated_decisions), bound});
    }
    r.hardware = o.hardware;
    r.cim_samples_per_s = work / cim_s;
    r.cim_time_over_engine = cim_s / engine_s;
    if (hw.crossbar.wire_resistance_ohm > 0.0) {
      // IR drop's own cost: the same chip without wires.
      HardwareConfig wireless = hw;
      wireless.crossbar.wire_resistance_ohm = 0.0;
      const Chip plain(ir, wireless, 1);
      const double plain_s = best_seconds(2, [&] { plain.predict(images, o.samples, o.seed, true); });
      r.cim_without_wires_samples_per_s = work / plain_s;
      r.ir_drop_time_factor = cim_s / plain_s;
    }
  }

  // Binary MACs the engine executed: the prefix once per image, the suffix once per sample.
  const auto& layers = engine.layers();
  for (int i = 0; i < static_cast<int>(layers.size()); ++i) {
    const auto& l = layers[static_cast<std::size_t>(i)];
    if (l.shape.real_input) continue;
    (i < engine.first_dropout_layer() ? r.prefix_macs : r.suffix_macs) += l.shape.macs();
  }
  r.engine_binary_macs_per_s =
      (static_cast<double>(r.prefix_macs) * images.n + static_cast<double>(r.suffix_macs) * work) / engine_s;
  r.popcount_roof_macs_per_s = measure_popcount_roof(o.roof_seconds, o.threads);

  // Each 3x3 convolution alone, masks included, for every image and sample of the run (each sample
  // its own masks), parallel over images as predict() runs it, each thread keeping its patch and
  // dot buffers from call to call as predict() does.
  // maps[i][k]: map k of image i's pass (k = the prefix's end first), as the engine keeps them.
  const int first = engine.first_dropout_layer();
  std::vector<std::vector<BinaryMap>> maps(static_cast<std::size_t>(images.n), std::vector<BinaryMap>(layers.size() + 1));
#pragma omp parallel for schedule(dynamic, 8)
  for (int i = 0; i < images.n; ++i) maps[static_cast<std::size_t>(i)][static_cast<std::size_t>(first)] = engine.run_prefix(images.image(i));
  for (int index = first; index < static_cast<int>(layers.size()); ++index) {
    const auto& l = layers[static_cast<std::size_t>(index)];
    if (l.shape.output) break;
    const auto source = static_cast<std::size_t>(l.shape.source);
    if (l.shape.shortcut_conv) {
      LayerBench b;  // timed whole, with its block, below
      b.layer = index;
      b.macs = l.shape.macs();
      r.shortcuts.push_back(b);
    } else if (l.shape.kind == LayerSpec::Kind::conv && l.shape.kernel == 3) {
      const double s = best_seconds(3, [&] {
#pragma omp parallel
        {
          LayerScratch scratch;
#pragma omp for schedule(dynamic, 8)
          for (int i = 0; i < images.n; ++i) {
            for (int sample = 0; sample < o.samples; ++sample)
              engine.layer_dots(maps[static_cast<std::size_t>(i)][source],
                                MaskKey{o.seed, static_cast<std::uint64_t>(i), static_cast<std::uint64_t>(sample), index},
                                true, scratch);
          }
        }
      });
      LayerBench b;
      b.layer = index;
      b.macs = l.shape.macs();
      b.seconds = s;
      b.macs_per_s = static_cast<double>(b.macs) * images.n * o.samples / s;
      b.roof_share = b.macs_per_s / r.popcount_roof_macs_per_s;
      r.conv3x3.push_back(b);
    }
#pragma omp parallel for schedule(dynamic, 8)
    for (int i = 0; i < images.n; ++i) {
      auto& m = maps[static_cast<std::size_t>(i)];
      const BinaryMap* shortcut = l.shape.shortcut >= 0 ? &m[static_cast<std::size_t>(l.shape.shortcut)] : nullptr;
      m[static_cast<std::size_t>(index) + 1] =
          engine.layer_output(index, engine.layer_dots(m[source], MaskKey{0, 0, 0, index}, false).data(), false, shortcut);
    }
  }
  // A shortcut convolution's block: it and the layers up to the one that adds its map, each timed
  // whole as a pass runs it (dots and sense decisions; a 1x1 layer's made in its convolution's
  // pass where the engine fuses them), on the maps above.
  const auto whole_layer_seconds = [&](int index) {
    const LayerSpec& l = layers[static_cast<std::size_t>(index)].shape;
    const auto source = static_cast<std::size_t>(l.source);
    return best_seconds(3, [&] {
#pragma omp parallel
      {
        LayerScratch scratch;
#pragma omp for schedule(dynamic, 8)
        for (int i = 0; i < images.n; ++i) {
          const auto& m = maps[static_cast<std::size_t>(i)];
          const BinaryMap* shortcut = l.shortcut >= 0 ? &m[static_cast<std::size_t>(l.shortcut)] : nullptr;
          for (int sample = 0; sample < o.samples; ++sample)
            engine.hidden_layer(m[source],
                                MaskKey{o.seed, static_cast<std::uint64_t>(i), static_cast<std::uint64_t>(sample), index},
                                true, shortcut, scratch);
        }
      }
    });
  };
  for (LayerBench& b : r.shortcuts) {
    const double own = whole_layer_seconds(b.layer);
    double block = own;
    for (std::size_t k = static_cast<std::size_t>(b.layer) + 1; k < layers.size(); ++k) {
      if (layers[k].shape.output) break;
      block += whole_layer_seconds(static_cast<int>(k));
      if (layers[k].shape.shortcut == b.layer + 1) break;
    }
    // The shortcut's rate as the engine runs it: the whole layer (its decisions fused where the
    // engine fuses them), not its dots alone.
    b.seconds = own;
    b.macs_per_s = static_cast<double>(b.macs) * images.n * o.samples / own;
    b.roof_share = b.macs_per_s / r.popcount_roof_macs_per_s;
    b.block_seconds = block;
    b.block_share = block > 0 ? own / block : 0.0;
  }

  // Prefix reuse: time(T) against prefix + T x suffix. The prefix (layers before the first dropout
  // site) is timed alone; one sample's suffix is what T = 1 adds to it.
  r.prefix_seconds = best_seconds(3, [&] {
#pragma omp parallel for schedule(dynamic, 8)
    for (int i = 0; i < images.n; ++i) maps[static_cast<std::size_t>(i)][static_cast<std::size_t>(first)] = engine.run_prefix(images.image(i));
  });
  double suffix_seconds = 0;
  for (const int t : o.scaling_samples) {
    ScalingPoint p;
    p.samples = t;
    p.seconds = best_seconds(2, [&] { engine.predict(images, t, o.seed, true); });
    if (r.scaling.empty()) suffix_seconds = (p.seconds - r.prefix_seconds) / t;
    p.predicted_seconds = r.prefix_seconds + t * suffix_seconds;
    r.scaling.push_back(p);
  }
  return r;
}

nlohmann::json bench_json(const BenchReport& r) {
  nlohmann::json layers = nlohmann::json::array(), scaling = nlohmann::json::array();
  for (const auto& l : r.conv3x3) {
    layers.push_back({{"layer", l.layer}, {"macs_per_image", l.macs}, {"macs_per_s", l.macs_per_s},
                      {"roof_share", l.roof_share}});
  }
  for (const auto& p : r.scaling) {
    scaling.push_back({{"samples", p.samples}, {"seconds", p.seconds}, {"predicted_seconds", p.predicted_seconds}});
  }
  nlohmann::json shortcuts = nlohmann::json::array();
  for (const auto& l : r.shortcuts) {
    shortcuts.push_back({{"layer", l.layer}, {"macs_per_image", l.macs}, {"macs_per_s", l.macs_per_s},
                         {"roof_share", l.roof_share}, {"seconds", l.seconds}, {"block_seconds", l.block_seconds},
                         {"block_share", l.block_share}});
  }
  nlohmann::json j = {{"model", {{"architecture", r.architecture}, {"width", r.width}, {"dropout", r.dropout},
                     {"dropout_layers", r.dropout_layers}}},
          {"images", r.images},
          {"samples", r.samples},
          {"threads", r.threads},
          {"kernel", r.kernel},
          {"torch_samples_per_s", r.torch_samples_per_s},
          {"engine_samples_per_s", r.engine_samples_per_s},
          {"ratio", r.ratio},
          {"engine_binary_macs_per_s", r.engine_binary_macs_per_s},
          {"popcount_roof_macs_per_s", r.popcount_roof_macs_per_s},
          {"conv3x3_layers", layers},
          {"shortcut_layers", shortcuts},
          {"prefix_macs_per_image", r.prefix_macs},
          {"suffix_macs_per_sample", r.suffix_macs},
          {"prefix_seconds", r.prefix_seconds},
          {"scaling", scaling}};
  if (!r.hardware.empty()) {
    j["cim"] = {{"hardware", r.hardware},
                {"samples_per_s", r.cim_samples_per_s},
                {"time_over_engine", r.cim_time_over_engine},
                {"setup_seconds", r.cim_setup_seconds},
                {"analog_share", r.cim_analog_share}};
    j["cim"]["layers"] = nlohmann::json::array();
    for (const auto& l : r.cim_layers) {
      j["cim"]["layers"].push_back({{"layer", l.layer},
                                    {"decisions_per_sample", l.decisions},
                                    {"analog_share", l.analog_share},
                                    {"systematic_bound_mean", l.systematic_bound}});
    }
    if (r.ir_drop_time_factor > 0.0) {
      j["cim"]["without_wires_samples_per_s"] = r.cim_without_wires_samples_per_s;
      j["cim"]["ir_drop_time_factor"] = r.ir_drop_time_factor;
    }
  }
  return j;
}

std::string bench_table(const BenchReport& r) {
  std::string out = fmt::format("{}, {} dropout on {}; {} images x T = {}, {} threads, kernel {}\n",
                                r.network, r.dropout, r.dropout_layers, r.images, r.samples,
                                r.threads, r.kernel);
  out += fmt::format("  LibTorch  {:10.0f} images x samples / s\n", r.torch_samples_per_s);
  out += fmt::format("  engine    {:10.0f} images x samples / s   ({:.1f}x LibTorch)\n", r.engine_samples_per_s,
                     r.ratio);
  if (!r.hardware.empty()) {
    out += fmt::format("  cim       {:10.0f} images x samples / s   ({:.2f}x the engine's time; hardware {}, "
                       "chip set up in {:.2f} s; {:.1f} % of decisions through the analog sum)\n",
                       r.cim_samples_per_s, r.cim_time_over_engine, r.hardware, r.cim_setup_seconds,
                       100.0 * r.cim_analog_share);
    std::string shares;
    for (const auto& l : r.cim_layers) {
      shares += fmt::format("{}layer {}: {:.1f} % (bound {:.1f})", shares.empty() ? "" : ", ", l.layer,
                            100.0 * l.analog_share, l.systematic_bound);
    }
    if (!shares.empty()) {
      out += "  cim analog decisions by layer, with the mean bound on its columns' systematic part in dot units: " +
             shares + "\n";
    }
    if (r.ir_drop_time_factor > 0.0) {
      out += fmt::format("  no wires  {:10.0f} images x samples / s   (the same chip without IR drop: IR drop takes {:.2f}x "
                         "its time)\n",
                         r.cim_without_wires_samples_per_s, r.ir_drop_time_factor);
    }
  }
  out += fmt::format("  engine    {:10.1f} G binary MAC/s; popcount roof {:.1f} G binary MAC/s ({:.0f} %)\n",
                     r.engine_binary_macs_per_s / 1e9, r.popcount_roof_macs_per_s / 1e9,
                     100.0 * r.engine_binary_macs_per_s / r.popcount_roof_macs_per_s);
  for (const auto& l : r.conv3x3) {
    out += fmt::format("  layer {} (3x3 conv, {:.1f} M MAC/image): {:.1f} G binary MAC/s, {:.0f} % of the roof\n",
                       l.layer, l.macs / 1e6, l.macs_per_s / 1e9, 100.0 * l.roof_share);
  }
  for (const auto& l : r.shortcuts) {
    out += fmt::format("  layer {} (1x1 shortcut conv, {:.2f} M MAC/image): {:.1f} G binary MAC/s, {:.0f} % of the roof, "
                       "{:.1f} % of its block's time (layers whole: dots and decisions)\n",
                       l.layer, l.macs / 1e6, l.macs_per_s / 1e9, 100.0 * l.roof_share, 100.0 * l.block_share);
  }
  out += fmt::format("  prefix reuse: {:.2f} M MAC once per image ({:.3f} s for all images), {:.2f} M MAC per sample\n",
                     r.prefix_macs / 1e6, r.prefix_seconds, r.suffix_macs / 1e6);
  for (const auto& p : r.scaling) {
    out += fmt::format("    T = {:3}: {:8.3f} s   (prefix + T x suffix of T = 1: {:8.3f} s; measured/predicted {:.2f})\n",
                       p.samples, p.seconds, p.predicted_seconds, p.seconds / p.predicted_seconds);
  }
  return out;
}

}  // namespace spinbayes
