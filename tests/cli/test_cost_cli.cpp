// `spinbayes cost` end to end: the table, JSON and plot of a network, and one-line errors.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>

#include <nlohmann/json.hpp>

#include "cli_runner.h"
#include "cost_fixtures.h"
#include "core/error.h"
#include "cost/cost_model.h"
#include "cost/technology.h"
#include "hw/mapping.h"
#include "model/model_ir.h"
#include "model/model_spec.h"

using namespace spinbayes;
using namespace spinbayes::testing;
namespace fs = std::filesystem;

namespace {

// A run directory holding only a model IR (all weights +1, unit batch norms): the cost model
// reads the architecture, not the weights.
fs::path ir_only_run(const fs::path& dir, const ModelSpec& spec) {
  ModelIR ir;
  ir.spec = spec;
  for (const LayerSpec& l : build_layers(spec)) {
    BinaryLayerIR layer;
    layer.shape = l;
    layer.weights.assign(static_cast<std::size_t>(l.out_channels) * layer.fan_in(), 1);
    layer.bn_mean.assign(static_cast<std::size_t>(l.out_channels), 0.0f);
    layer.bn_var.assign(static_cast<std::size_t>(l.out_channels), 1.0f);
    layer.bn_gamma.assign(static_cast<std::size_t>(l.out_channels), 1.0f);
    layer.bn_beta.assign(static_cast<std::size_t>(l.out_channels), 0.0f);
    ir.layers.push_back(std::move(layer));
  }
  fs::create_directories(dir);
  save_model_ir(ir, dir / "model.sbir");
  return dir;
}

}  // namespace

TEST(CostCli, WritesTableJsonWithRatiosAndPlot) {
  const auto dir = fresh_dir("cli");
  const ModelSpec spec = spec_of("vgg-small", 8, "all", DropoutKind::element, 0.2);
  const auto run = ir_only_run(dir / "run", spec);
  const bool gnuplot = std::system("command -v gnuplot >/dev/null 2>&1") == 0;
  const std::string plot = gnuplot ? " --plot " + (dir / "cost.png").string() : "";
  const auto r = run_cli("cost --model " + run.string() + " --samples 6 --json " + (dir / "cost.json").string() + plot);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("conv2"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("element / spatial"), std::string::npos) << r.output;

  const nlohmann::json j = nlohmann::json::parse(read_file(dir / "cost.json"));
  const HardwareConfig hw = HardwareConfig::defaults();
  // The modules' write current, and the energies derived from it, follow the model's p = 0.2.
  const CostReport expected = cost_report(spec, hw, Technology::defaults(hw, 0.2), 6);
  ASSERT_TRUE(j.at("ratios").contains("modules_element_over_spatial"));
  ASSERT_TRUE(j.at("ratios").contains("dropout_energy_element_over_spatial"));
  EXPECT_DOUBLE_EQ(j["ratios"]["modules_element_over_spatial"].get<double>(), expected.modules_element_over_spatial());
  EXPECT_NEAR(j["ratios"]["dropout_energy_element_over_spatial"].get<double>(),
              expected.dropout_energy_element_over_spatial(), 1e-9 * expected.dropout_energy_element_over_spatial());
  EXPECT_EQ(j["samples"], 6);
  EXPECT_EQ(j["p"], 0.2);
  ASSERT_EQ(j["layers"].size(), expected.mapping.size());
  EXPECT_EQ(j["layers"][1]["ratios"]["modules_element_over_spatial"], 9.0);
  EXPECT_TRUE(j["layers"][0]["ratios"]["modules_element_over_spatial"].is_null());  // no dropout on conv1
  for (const char* scheme : {"none", "element", "spatial", "layer"}) {
    ASSERT_TRUE(j["schemes"].contains(scheme)) << scheme;
    EXPECT_GT(j["schemes"][scheme]["energy_pj"]["total"].get<double>(), 0.0);
    EXPECT_GT(j["schemes"][scheme]["latency_ns"].get<double>(), 0.0);
    EXPECT_GT(j["schemes"][scheme]["area_um2"]["total"].get<double>(), 0.0);
  }
  EXPECT_EQ(j["technology"]["module"]["write_pj"], Technology::defaults(hw, 0.2).module.write_pj);
  EXPECT_NE(Technology::defaults(hw, 0.2).module.write_pj, Technology::defaults(hw, 0.1).module.write_pj);
  if (gnuplot) {
    const std::string png = read_file(dir / "cost.png");
    ASSERT_GT(png.size(), 1000u);
    EXPECT_EQ(png.substr(1, 3), "PNG");
  }
  fs::remove_all(dir);
}

TEST(CostCli, BadTechnologyFileIsAOneLineError) {
  const auto dir = fresh_dir("cli-errors");
  const auto run = ir_only_run(dir / "run", spec_of("lenet", 4));
  write_file(dir / "tech.json", R"({"adc": {"conversion_pj": -1}})");
  for (const auto& [args, cause] : std::vector<std::pair<std::string, std::string>>{
           {" --tech " + (dir / "tech.json").string(), "adc.conversion_pj"},
           {" --tech nowhere.json", "nowhere.json"},
           {" --samples 0", "samples"},
           {" --p 1.5", "p:"},
           {" --p -0.2", "p:"},
           {" --json " + (dir / "tech.json" / "cost.json").string(), "cost.json"}}) {
    SCOPED_TRACE(args);
    const auto r = run_cli("cost --model " + run.string() + args);
    EXPECT_EQ(r.exit_code, 1) << r.output;
    // One error line (stdout, where the table may already be, comes through the pipe separately).
    const auto start = r.output.find("spinbayes: error:");
    ASSERT_NE(start, std::string::npos) << r.output;
    EXPECT_EQ(r.output.find("error:", start + 17), std::string::npos) << r.output;
    const std::string line = r.output.substr(start, r.output.find('\n', start) - start);
    EXPECT_NE(line.find(cause), std::string::npos) << line;
  }
  fs::remove_all(dir);
}

// A zoo network priced without a run: the same figures as a run of that topology (the weights
// never enter the counts), on any input shape.
TEST(CostCli, ZooNetworkWithoutWeightsCostsAsARunOfItsTopology) {
  const auto dir = fresh_dir("cli-topology");
  ModelSpec spec = spec_of("vgg-small", 8, "all", DropoutKind::spatial, 0.15);
  spec.channels = 3;
  spec.height = spec.width_px = 32;
  spec.input_mean.assign(3, 0.0f);
  spec.input_std.assign(3, 1.0f);
  const auto run = ir_only_run(dir / "run", spec);
  ASSERT_EQ(run_cli("cost --model " + run.string() + " --json " + (dir / "run.json").string()).exit_code, 0);
  const auto r = run_cli("cost --model vgg-small --width 8 --input 3x32x32 --p 0.15 --json " + (dir / "zoo.json").string());
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("on 3x32x32 images, no weights"), std::string::npos) << r.output;
  nlohmann::json from_run = nlohmann::json::parse(read_file(dir / "run.json"));
  nlohmann::json from_zoo = nlohmann::json::parse(read_file(dir / "zoo.json"));
  EXPECT_EQ(from_zoo["untrained"], true);
  EXPECT_EQ(from_run["untrained"], false);
  EXPECT_EQ(from_zoo["layers"], from_run["layers"]);
  EXPECT_EQ(from_zoo["schemes"], from_run["schemes"]);
  EXPECT_EQ(from_zoo["ratios"], from_run["ratios"]);
  EXPECT_EQ(from_zoo["layers"][0]["rows"], 27);  // 3x3 taps on 3 channels

  expect_cli_error(run_cli("cost --model vgg-small --input 3x32"), {"--input: expected CxHxW"});
  expect_cli_error(run_cli("cost --model vgg-small --input 0x32x32"), {"--input: expected CxHxW"});
  expect_cli_error(run_cli("cost --model lenet --input 1x8x8"), {"layer 3 (conv): a 5x5 kernel does not fit the 32x2x2 map"});
  expect_cli_error(run_cli("cost --model vgg-small --classes 1"), {"classes in 2..10000"});
  expect_cli_error(run_cli("cost --model " + run.string() + " --width 4"), {"--width: only for a zoo network"});
  expect_cli_error(run_cli("cost --model resnet7"), {"resnet7"});
  // Every --p out of range in one message; an empty output path is not "no output".
  for (const char* p : {"1", "inf", "nan", "-0.1"}) {
    expect_cli_error(run_cli(std::string("cost --model vgg-small --p ") + p),
                     {"--p: dropout probability must be in (0, 1) (0: the model's)"});
  }
  expect_cli_error(run_cli("cost --model vgg-small --json ''"), {"--json: empty path"});
  expect_cli_error(run_cli("cost --model vgg-small --plot ''"), {"--plot: empty path"});
  fs::remove_all(dir);
}

// Every accounting's ratio recomputes from the per-event energies and the counts `cost --json`
// prints, and the technology's own per-event energies from the currents, times and supply it
// prints; the table names the paper's ratio beside them.
TEST(CostCli, AccountingsRecomputeFromWhatJsonPrints) {
  const auto dir = fresh_dir("cli-accountings");
  write_file(dir / "tech.json", R"({"supply": {"vdd_v": 0.8}})");
  const auto r = run_cli("cost --model vgg-small --input 1x28x28 --width 8 --p 0.1 --samples 4 --tech " +
                         (dir / "tech.json").string() + " --json " + (dir / "cost.json").string());
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("94.11x"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("conditional reset"), std::string::npos) << r.output;
  const nlohmann::json j = nlohmann::json::parse(read_file(dir / "cost.json"));
  EXPECT_EQ(j["paper_element_over_spatial"], 94.11);
  const nlohmann::json& module = j["technology"]["module"];
  EXPECT_EQ(j["technology"]["supply"]["vdd_v"], 0.8);
  // V [V] x I [uA] x t [ns] = fJ.
  EXPECT_NEAR(module["write_pj"].get<double>() * 1e3,
              0.8 * module["write_current_ua"].get<double>() * module["write_ns"].get<double>(), 1e-9);
  EXPECT_NEAR(module["reset_pj"].get<double>() * 1e3,
              0.8 * module["reset_current_ua"].get<double>() * module["reset_ns"].get<double>(), 1e-9);
  ASSERT_GE(j["accountings"].size(), 8u);
  for (const nlohmann::json& a : j["accountings"]) {
    SCOPED_TRACE(a["name"].get<std::string>());
    const auto energy = [&a](const nlohmann::json& n) {
      return n["module_resets"].get<double>() * a["reset_pj"].get<double>() +
             n["module_writes"].get<double>() * a["write_pj"].get<double>() +
             n["module_reads"].get<double>() * a["read_fj"].get<double>() * 1e-3;
    };
    const double el = energy(a["element_events"]), sp = energy(a["spatial_events"]);
    EXPECT_NEAR(a["element_pj"].get<double>(), el, 1e-9 * el);
    EXPECT_NEAR(a["ratio"].get<double>(), el / sp, 1e-9 * el / sp);
  }
  EXPECT_NEAR(j["accountings"][0]["ratio"].get<double>(),
              j["ratios"]["dropout_energy_element_over_spatial"].get<double>(), 1e-9);
  bool module_write = false;
  for (const nlohmann::json& e : j["event_energies"]) {
    if (e["event"] != "module write") continue;
    module_write = true;
    EXPECT_LT(e["mtj_fj"].get<double>(), e["energy_fj"].get<double>());
  }
  EXPECT_TRUE(module_write);
  fs::remove_all(dir);
}
