// Writes the fuzz seed corpus: small valid files of every format the fuzz targets read, and a few
// near-valid ones (one field off). Usage: make_fuzz_seeds DIR (writes DIR/<target>/<seed>).
#include <unistd.h>
#include <zlib.h>

#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "cost/technology.h"
#include "population/chip_record.h"
#include "population/field_test.h"
#include "uncertainty/calibration.h"
#include "data/idx.h"
#include "data/npy.h"
#include "hw/hardware_config.h"
#include "model/model_ir.h"
#include "model/model_spec.h"
#include "onnx_builder.h"

namespace fs = std::filesystem;
using namespace spinbayes;

namespace {

std::string read_all(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

void write(const fs::path& path, const std::string& bytes) {
  fs::create_directories(path.parent_path());
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  if (!out) throw Error(path.string() + ": cannot write");
}

std::string idx_bytes(const fs::path& scratch, const std::vector<std::uint32_t>& dims,
                      const std::vector<std::uint8_t>& data) {
  write_idx(scratch, dims, data);
  return read_all(scratch);
}

std::string gzip(const std::string& bytes) {
  z_stream z{};
  if (deflateInit2(&z, 9, Z_DEFLATED, 16 + 15, 8, Z_DEFAULT_STRATEGY) != Z_OK) throw Error("deflateInit2 failed");
  std::string out(deflateBound(&z, bytes.size()), '\0');
  z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(bytes.data()));
  z.avail_in = static_cast<uInt>(bytes.size());
  z.next_out = reinterpret_cast<Bytef*>(out.data());
  z.avail_out = static_cast<uInt>(out.size());
  const int code = deflate(&z, Z_FINISH);
  out.resize(z.total_out);
  deflateEnd(&z);
  if (code != Z_STREAM_END) throw Error("deflate failed");
  return out;
}

std::vector<std::uint8_t> ramp(std::size_t n) {
  std::vector<std::uint8_t> v(n);
  for (std::size_t i = 0; i < n; ++i) v[i] = static_cast<std::uint8_t>(i * 37 % 256);
  return v;
}

void idx_seeds(const fs::path& dir, const fs::path& scratch) {
  const std::string images = idx_bytes(scratch, {2, 4, 4}, ramp(32));
  const std::string labels = idx_bytes(scratch, {2}, {3, 7});
  write(dir / "images-3d", images);
  write(dir / "images-3d-with-labels", images + labels);
  write(dir / "images-4d-with-labels", idx_bytes(scratch, {2, 3, 2, 2}, ramp(24)) + labels);
  write(dir / "images-gzip-with-labels", gzip(images) + gzip(labels));
  write(dir / "labels-1d", labels);
  write(dir / "truncated", images.substr(0, images.size() - 5));
  write(dir / "label-count-mismatch", images + idx_bytes(scratch, {3}, {1, 2, 3}));
  // Found by fuzzing: a short file whose header announces 1 x 46340 x 46340 bytes.
  const std::string huge = idx_bytes(scratch, {1, 1, 1}, {9});
  write(dir / "huge-claim", huge.substr(0, 4) + std::string("\0\0\0\x01\0\0\xb5\x04\0\0\xb5\x04", 12) + "ten bytes!");
}

void cifar_seeds(const fs::path& dir) {
  std::string record(3073, '\0');
  record[0] = 6;
  for (std::size_t i = 1; i < record.size(); ++i) record[i] = static_cast<char>(i * 13 % 256);
  write(dir / "one-record", record);
  std::string bad_label = record;
  bad_label[0] = 10;
  write(dir / "label-10", bad_label);
  write(dir / "partial-record", record.substr(0, 1000));
}

void mnist_json_seeds(const fs::path& dir) {
  std::string image = "{\"data\": [";
  for (int i = 0; i < 784; ++i) image += (i == 0 ? "" : ",") + std::string(i % 7 == 0 ? "0.5" : "0");
  image += "]}";
  write(dir / "one-image", image);
  write(dir / "two-files", image + "\n---\n" + image);
  write(dir / "empty-data", "{\"data\": []}");
  std::string out_of_range = "{\"data\": [1.5";
  for (int i = 1; i < 784; ++i) out_of_range += ",0";
  write(dir / "value-out-of-range", out_of_range + "]}");
  write(dir / "not-json", "{\"data\": [0, 0,");
  write(dir / "number-overflow", "{\"data\": [0, 1e400]}");  // found by fuzzing
}

ModelIR tiny_model(const std::string& architecture, int width, int side, DropoutKind dropout, int channels = 1) {
  ModelIR ir;
  ir.spec.architecture = architecture;
  ir.spec.width = width;
  ir.spec.dropout = dropout;
  ir.spec.p = dropout == DropoutKind::none ? 0.0 : 0.25;
  ir.spec.channels = channels;
  ir.spec.height = ir.spec.width_px = side;
  ir.spec.input_mean.assign(static_cast<std::size_t>(channels), 0.25f);
  ir.spec.input_std.assign(static_cast<std::size_t>(channels), 0.5f);
  if (channels > 1) ir.spec.input_mean[1] = 0.375f;
  int k = 0;
  for (const LayerSpec& l : build_layers(ir.spec)) {
    BinaryLayerIR layer;
    layer.shape = l;
    const auto out = static_cast<std::size_t>(l.out_channels);
    layer.weights.resize(out * static_cast<std::size_t>(layer.fan_in()));
    for (auto& w : layer.weights) w = (++k % 3 == 0) ? -1 : 1;
    for (std::size_t c = 0; c < out; ++c) {
      layer.bn_mean.push_back(0.5f * static_cast<float>(c));
      layer.bn_var.push_back(1.0f + static_cast<float>(c));
      layer.bn_gamma.push_back(c % 2 == 0 ? 1.0f : -0.5f);
      layer.bn_beta.push_back(0.125f);
    }
    ir.layers.push_back(std::move(layer));
  }
  return ir;
}

void model_ir_seeds(const fs::path& whole, const fs::path& payload, const fs::path& scratch) {
  struct Seed {
    std::string name;
    ModelIR ir;
  };
  const Seed seeds[] = {{"mlp", tiny_model("mlp", 2, 8, DropoutKind::spatial)},
                        {"resnet20", tiny_model("resnet20", 1, 8, DropoutKind::spatial)},
                        {"lenet", tiny_model("lenet", 1, 28, DropoutKind::element)},
                        {"vgg-small", tiny_model("vgg-small", 1, 8, DropoutKind::none)},
                        {"vgg-small-color", tiny_model("vgg-small", 1, 8, DropoutKind::spatial, 3)}};
  for (const auto& seed : seeds) {
    save_model_ir(seed.ir, scratch);
    const std::string file = read_all(scratch);
    write(whole / seed.name, file);
    write(payload / seed.name, file.substr(16, file.size() - 20));  // header 16 bytes, CRC 4
  }
  // Found by fuzzing: spec values that do not fit their field, a newline in a name.
  save_model_ir(seeds[0].ir, scratch);
  const std::string payload_text = read_all(scratch).substr(16);
  const std::uint32_t json_bytes = static_cast<std::uint8_t>(payload_text[0]) |
                                   static_cast<std::uint32_t>(static_cast<std::uint8_t>(payload_text[1])) << 8;
  const std::string json = payload_text.substr(4, json_bytes);
  const std::string layers = payload_text.substr(4 + json_bytes, payload_text.size() - 4 - json_bytes - 4);
  const auto with_spec = [&](const std::string& from, const std::string& to) {
    std::string spec = json;
    spec.replace(spec.find(from), from.size(), to);
    std::string out;
    for (int i = 0; i < 4; ++i) out.push_back(static_cast<char>((spec.size() >> (8 * i)) & 0xFF));
    return out + spec + layers;
  };
  write(payload / "float-width", with_spec("\"width\":2", "\"width\":1e20"));
  write(payload / "newline-in-architecture", with_spec("\"architecture\":\"mlp\"", "\"architecture\":\"ml\\np\""));
}

void technology_seeds(const fs::path& dir) {
  write(dir / "default", Technology::defaults().table().to_commented_json());
  write(dir / "partial", "// energies only\n{\"module\": {\"write_pj\": 0.25, \"read_fj\": 5},\n"
                         " \"adc\": {\"columns_per_adc\": 8} /* shared ADCs */}\n");
  write(dir / "negative", "{\"crossbar\": {\"cell_read_fj\": -1}}");
  write(dir / "unknown-key", "{\"dram\": {\"read_pj\": 20}}");
  write(dir / "wrong-type", "{\"digital\": {\"mac_lanes\": 64.5}}");
  write(dir / "empty-object", "{}");  // found by fuzzing: flattens to the root pointer ""
  write(dir / "flat-read", "{\"module\": {\"read_current_ua\": 30, \"read_ap_fj\": 0}}");  // one state given
  write(dir / "supply-conditional", "{\"supply\": {\"vdd_v\": 1.0}, \"module\": {\"reset\": \"conditional\", "
                                    "\"trim_dac_bits\": 4}, \"wire\": {\"gate_ff\": 0.2}}");
}

void hardware_config_seeds(const fs::path& dir) {
  write(dir / "default", HardwareConfig::defaults().table().to_commented_json());
  write(dir / "ideal", HardwareConfig::ideal().table().to_commented_json());
  write(dir / "wired", HardwareConfig::wired().table().to_commented_json());
  write(dir / "unwired", HardwareConfig::unwired().table().to_commented_json());
  write(dir / "partial", "// a few keys over the default\n{\"mtj\": {\"tmr\": 1.2, \"delta\": 60},\n"
                         " /* tiles */ \"crossbar\": {\"tile_rows\": 256, \"adc_bits\": 6},\n"
                         " \"dropout_module\": {\"write_current\": \"per_module\"}}\n");
  write(dir / "out-of-range", "{\"faults\": {\"read_disturb\": 0.75}}");
  write(dir / "device-physics", "{\"mtj\": {\"temperature_k\": 360, \"ic0_temp_coeff_per_k\": 0.002, "
                                "\"switching_exponent\": 2, \"delta_ic0_correlation\": 0.8},\n"
                                " \"dropout_module\": {\"trim_dac_bits\": 5, \"trim_range_ua\": 12, "
                                "\"write_noise_relative\": 0.01, \"supply_noise_relative\": 0.02}}\n");
  write(dir / "crossbar-wires", "{\"crossbar\": {\"wire_resistance_ohm\": 1.75, \"column_calibration\": "
                                "\"gain_offset\", \"tile_rows\": 64, \"tile_cols\": 24}}\n");
  write(dir / "reference-error", "{\"crossbar\": {\"reference_error_relative\": 0.02, \"tile_rows\": 64, "
                                 "\"wire_resistance_ohm\": 0.5}}\n");
  write(dir / "reset-never-works", "{\"dropout_module\": {\"reset_pulse_ns\": 0.01}, \"faults\": "
                                   "{\"module_ic0_drift\": 0.5, \"module_delta_drift\": 0.5}}\n");
  write(dir / "section-not-object", "{\"crossbar\": null}");
  write(dir / "subnormal-wires", "{\"crossbar\": {\"wire_resistance_ohm\": 1e-310}}");
  write(dir / "unknown-key", "{\"mtj\": {\"tmr_ratio\": 1.0}}");
  write(dir / "wrong-type", "{\"crossbar\": {\"tile_rows\": \"128\"}}");
  // Found by fuzzing: a number beyond double range, a newline in an unknown key.
  write(dir / "number-overflow", "{\"mtj\": {\"tmr\": 1e400}}");
  write(dir / "newline-in-key", "{\"mtj\": {\"tmr\\nratio\": 1}}");
  // One key set twice through a dotted and a nested path.
  write(dir / "dotted-and-nested", "{\"mtj.delta\": 30, \"mtj\": {\"delta\": 40}}");
}

void calibration_seeds(const fs::path& dir) {
  CalibrationRecord record;
  record.model_ir = "9f2c61e0a4b3d587";
  record.mc = FittedTemperature{0.7, 20, 1, 5000, 0.41, 0.37, 0.066, 0.014};
  record.deterministic = FittedTemperature{0.87, 1, 1, 5000, 0.41, 0.40, 0.022, 0.012};
  write(dir / "both", calibration_json(record));
  record.mc.reset();
  write(dir / "deterministic-only", calibration_json(record));
  write(dir / "negative-temperature", "{\"format\": \"spinbayes-calibration\", \"version\": 1, \"model_ir\": \"x\", "
                                      "\"deterministic\": {\"temperature\": -1}}");
  write(dir / "number-overflow", "{\"format\": \"spinbayes-calibration\", \"version\": 1, \"model_ir\": \"x\", "
                                 "\"mc\": {\"temperature\": 1e400}}");
}

void chip_record_seeds(const fs::path& dir) {
  ChipRecord record;
  record.population = "9f2c61e0a4b3d587";
  record.chip_seed = 7;
  record.metrics = {{"accuracy", 0.894}, {"ece", 0.021}, {"auroc.mnist", 0.87}, {"detected_pct.mnist", 48.7}};
  write(dir / "chip", chip_record_json(record));
  record.software = true;
  write(dir / "software", chip_record_json(record));
  write(dir / "manifest", population_manifest_json(R"({"model_ir":"9f2c61e0a4b3d587","samples":10,"ood":["mnist"]})"));
  write(dir / "seed-overflow", "{\"format\":\"spinbayes-chip\",\"version\":1,\"population\":\"p\",\"chip\":"
                               "18446744073709551616,\"metrics\":{}}");
}

void yield_spec_seeds(const fs::path& dir) {
  write(dir / "three", "accuracy>=0.89,ece<=0.05,auroc.mnist>0.9");
  write(dir / "blanks", " nll < 0.4 , accuracy>1e-3");
  write(dir / "unknown", "auroc.gaussian>=0.9");
}

void chip_output_seeds(const fs::path& dir) {
  const ChipOutput c{{0.25, 1e-9, 2.302585092994046}, {3, 0, 9}};
  write(dir / "record", chip_output_json(c, "9f2c61e0a4b3d587"));
  write(dir / "other-test", chip_output_json(c, "0123456789abcdef"));
  write(dir / "short", R"({"test":"9f2c61e0a4b3d587","entropy":[0.1],"predicted":[1]})");
}

void data_set_seeds(const fs::path& dir) {
  write(dir / "fashion", "fashion-mnist");
  write(dir / "cifar", "cifar10:/data/cifar-10-batches-bin");
  write(dir / "idx", "idx:train-images,train-labels,t10k-images,t10k-labels");
  write(dir / "relative", "cifar10:../x/./y");
  write(dir / "shape", "3x32x32");
}

void network_file_seeds(const fs::path& dir) {
  for (const char* zoo : {"resnet20", "vgg-small", "mlp"}) {
    nlohmann::json file{{"input", "3x32x32"}, {"classes", 10}, {"layers", network_to_json(zoo_network(zoo, 4, 10))}};
    write(dir / zoo, file.dump(1));
  }
  write(dir / "residual", R"({"input": "1x28x28", "classes": 10, "layers": [
  {"type": "conv", "out": 6, "kernel": 3, "padding": 1}, {"type": "maxpool"},
  {"type": "residual", "shortcut": "identity", "branch": [{"type": "conv", "out": 6, "kernel": 3, "padding": 1}]},
  {"type": "residual", "shortcut": "downsample", "branch": [{"type": "conv", "out": 12, "kernel": 1, "stride": 2}]},
  {"type": "flatten"}, {"type": "linear", "out": 10}]})");
  write(dir / "own-sites", R"({"input": "1x28x28", "classes": 10, "layers": [
  {"type": "conv", "out": 6, "kernel": 3, "padding": 1},
  {"type": "residual", "shortcut": "identity", "branch": [
    {"type": "conv", "out": 6, "kernel": 3, "padding": 1, "dropout": {"kind": "element", "p": 0.3}}]},
  {"type": "conv", "out": 6, "kernel": 3, "dropout": {"kind": "none"}},
  {"type": "flatten"}, {"type": "linear", "out": 10, "dropout": {"kind": "spatial"}}]})");
  write(dir / "mismatch", R"({"input": "1x28x28", "classes": 10, "layers": [{"type": "conv", "out": 4, "kernel": 3},
  {"type": "residual", "shortcut": "identity", "branch": [{"type": "conv", "out": 8, "kernel": 3, "stride": 2}]},
  {"type": "flatten"}, {"type": "linear", "out": 10}]})");
}

void onnx_seeds(const fs::path& dir) {
  write(dir / "residual", test::residual_onnx(1).bytes());
  // A plain chain as PyTorch writes it without normalization: conv + pool, linear with bias.
  test::OnnxBuilder b(1, 8, 8);
  test::Lcg rng(2);
  std::string x = b.node("MaxPool", {b.node("Sign", {test::conv_bn(b, rng, "image", "c1", 1, 2, 3, 1, 1, test::WeightForm::plus_minus_one)})},
                         {test::OnnxBuilder::ints("kernel_shape", {2, 2}), test::OnnxBuilder::ints("strides", {2, 2})});
  x = b.node("Reshape", {x, b.init_int64("shape", {-1, 32})});
  b.output(b.node("Gemm", {x, b.init("fc.weight", {3, 32}, rng.signs(96)), b.init("fc.bias", {3}, {0.5f, 0.0f, -0.5f})},
                  {test::OnnxBuilder::integer("transB", 1)}));
  write(dir / "chain", b.bytes());
}

void npy_seeds(const fs::path& dir) {
  write(dir / "images", npy_bytes({2, 1, 3, 3}, std::vector<float>(18, 0.5f)));
  write(dir / "vector", npy_bytes({4}, {0.0f, 1.0f, -2.5f, 3.0f}));
  // float64, version 2.0 (a 4-byte header length)
  std::string header = "{'descr': '<f8', 'fortran_order': False, 'shape': (2,), }";
  header.append(128 - 12 - header.size() - 1, ' ');
  header += '\n';
  std::string v2 = std::string("\x93NUMPY\x02\x00", 8);
  for (int i = 0; i < 4; ++i) v2 += static_cast<char>((header.size() >> (8 * i)) & 0xff);
  v2 += header;
  const double values[2] = {0.25, -1.0};
  v2.append(reinterpret_cast<const char*>(values), sizeof values);
  write(dir / "float64-v2", v2);
  write(dir / "empty", npy_bytes({0}, {}));  // no values: the writer must not copy from a null pointer
}

void fault_list_seeds(const fs::path& dir) {
  write(dir / "cells", "module_stuck_p:0.05,dead_tile,tmr_drift:-0.2");
  write(dir / "all", "all");
  write(dir / "share", "0.2%");
  write(dir / "count", "110");
  write(dir / "out-of-range", "adc_gain:0.7,sense_offset:1e9");
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s DIR\n", argv[0]);
    return 2;
  }
  try {
    const fs::path dir = argv[1];
    const fs::path scratch = fs::temp_directory_path() / ("spinbayes-seeds-" + std::to_string(::getpid()));
    fs::create_directories(scratch);
    idx_seeds(dir / "idx", scratch / "file");
    cifar_seeds(dir / "cifar");
    mnist_json_seeds(dir / "mnist_json");
    model_ir_seeds(dir / "model_ir", dir / "model_ir_payload", scratch / "file");
    hardware_config_seeds(dir / "hardware_config");
    technology_seeds(dir / "technology");
    calibration_seeds(dir / "calibration");
    chip_record_seeds(dir / "chip_record");
    yield_spec_seeds(dir / "yield_spec");
    fault_list_seeds(dir / "fault_list");
    data_set_seeds(dir / "data_set");
    network_file_seeds(dir / "network_file");
    chip_output_seeds(dir / "chip_output");
    onnx_seeds(dir / "onnx");
    npy_seeds(dir / "npy");
    fs::remove_all(scratch);
  } catch (const Error& e) {
    std::fprintf(stderr, "make_fuzz_seeds: %s\n", e.what());
    return 1;
  }
  return 0;
}
