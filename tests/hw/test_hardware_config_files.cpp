// Hardware config files as bad input: every mistake is a one-line spinbayes::Error naming the file
// and the key, never a crash, and a file that loads reads back from its commented JSON unchanged.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <initializer_list>
#include <sstream>
#include <string>

#include "core/config.h"
#include "core/error.h"
#include "hw/hardware_config.h"

using namespace spinbayes;
namespace fs = std::filesystem;

namespace {

class ConfigFile : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("spinbayes-config-" + std::to_string(::getpid()));
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  std::string write(const std::string& text) {
    const auto path = dir_ / "hw.json";
    std::ofstream(path, std::ios::binary | std::ios::trunc) << text;
    return path.string();
  }

  // Loading `text` fails with one line that names the file and contains every part.
  void expect_rejected(const std::string& text, std::initializer_list<std::string> parts) {
    const std::string path = write(text);
    try {
      HardwareConfig::load(path);
      ADD_FAILURE() << "accepted: " << text;
    } catch (const Error& e) {
      const std::string message = e.what();
      EXPECT_EQ(message.find_first_of("\r\n"), std::string::npos) << message;
      EXPECT_NE(message.find(path), std::string::npos) << message;
      for (const auto& part : parts) EXPECT_NE(message.find(part), std::string::npos) << message << "\nlacks: " << part;
    }
  }

  fs::path dir_;
};


std::filesystem::path write_temp(const std::string& name, const std::string& text) {
  const auto path = std::filesystem::temp_directory_path() / ("spinbayes-hw-" + name);
  std::ofstream(path) << text;
  return path;
}

}  // namespace

TEST_F(ConfigFile, CommentsAndPartialFilesOverTheDefault) {
  const auto hw = HardwareConfig::load(write("// two keys\n{\"mtj\": {\"tmr\": 1.25 /* ratio */}, \"crossbar\": "
                                             "{\"tile_rows\": 256}}"));
  EXPECT_DOUBLE_EQ(hw.mtj.tmr, 1.25);
  EXPECT_EQ(hw.crossbar.tile_rows, 256);
  EXPECT_DOUBLE_EQ(hw.mtj.delta, HardwareConfig::defaults().mtj.delta);
}

TEST_F(ConfigFile, CommentedJsonReadsBackToTheSameValues) {
  HardwareConfig hw = HardwareConfig::ideal();
  hw.mtj.tmr = 2.5;
  hw.crossbar.tile_cols = 64;
  const std::string text = hw.table().to_commented_json();
  HardwareConfig again = HardwareConfig::load(write(text));
  EXPECT_EQ(again.table().to_commented_json(), text);
  EXPECT_DOUBLE_EQ(again.mtj.tmr, 2.5);
  EXPECT_EQ(again.crossbar.tile_cols, 64);
}

TEST_F(ConfigFile, UnknownKeysAndSections) {
  expect_rejected(R"({"mtj": {"tmr_ratio": 1.0}})", {"unknown key", "mtj.tmr_ratio"});
  expect_rejected(R"({"memristor": {"r": 1}})", {"unknown key", "memristor"});
  expect_rejected(R"({"tmr": 1.0})", {"unknown key", "tmr"});
  // A known section holding something else than an object is not an unknown key.
  expect_rejected(R"({"crossbar": null})", {"crossbar is a section: expected an object, got null"});
  expect_rejected(R"({"dropout_module": []})", {"dropout_module is a section: expected an object, got array"});
}

TEST_F(ConfigFile, OutOfRangeValues) {
  expect_rejected(R"({"faults": {"read_disturb": 0.75}})", {"faults.read_disturb", "out of range"});
  expect_rejected(R"({"mtj": {"temperature_k": -3}})", {"mtj.temperature_k", "out of range"});
  expect_rejected(R"({"crossbar": {"adc_bits": 64}})", {"crossbar.adc_bits", "out of range"});
  expect_rejected(R"({"crossbar": {"tile_rows": 4294967296}})", {"crossbar.tile_rows", "out of range"});
  expect_rejected(R"({"crossbar": {"tile_rows": 18446744073709551615}})", {"crossbar.tile_rows", "out of range"});
  expect_rejected(R"({"crossbar": {"tile_rows": 100}})", {"crossbar.tile_rows", "multiple of 64"});
  expect_rejected(R"({"dropout_module": {"write_current": "per_row"}})",
                  {"dropout_module.write_current", "per_row", "per_chip"});
}

TEST_F(ConfigFile, WrongTypes) {
  expect_rejected(R"({"crossbar": {"tile_rows": "128"}})", {"crossbar.tile_rows", "integer"});
  expect_rejected(R"({"crossbar": {"tile_rows": 128.5}})", {"crossbar.tile_rows", "integer"});
  expect_rejected(R"({"mtj": {"tmr": true}})", {"mtj.tmr", "number"});
  expect_rejected(R"({"mtj": {"tmr": null}})", {"mtj.tmr", "number"});
  expect_rejected(R"({"dropout_module": {"write_current": 1}})", {"dropout_module.write_current", "string"});
  expect_rejected(R"({"mtj": 1.5})", {"mtj is a section: expected an object, got number"});
  expect_rejected(R"([1, 2])", {"JSON object"});
}

TEST_F(ConfigFile, NotJson) {
  expect_rejected("", {"not valid JSON"});
  expect_rejected("{\"mtj\": {\"tmr\": 1.5,}}", {"not valid JSON"});
  expect_rejected("{\"mtj\": {\"tmr\": 1.5}", {"not valid JSON"});
  expect_rejected("\xff\xfe{}", {"not valid JSON"});
  // A number beyond the range of a double is the JSON library's out_of_range, not a parse error.
  expect_rejected(R"({"mtj": {"tmr": 1e400}})", {"not valid JSON (number overflow parsing '1e400')"});
  try {
    HardwareConfig::load(write(R"({"mtj": {"tmr": 1e400}})"));
  } catch (const Error& e) {
    EXPECT_EQ(std::string(e.what()).find("json.exception"), std::string::npos) << e.what();  // the library's tag
  }
}

// A key given twice would otherwise keep its last value silently.
TEST_F(ConfigFile, DuplicateKeys) {
  expect_rejected(R"({"mtj": {"tmr": 1.5, "tmr": 2.0}})", {"duplicate key 'tmr'"});
  expect_rejected(R"({"mtj": {"tmr": 1.5}, "mtj": {"tmr": 2.0}})", {"duplicate key 'mtj'"});
  // The same key once dotted and once nested, in either order: not one object's duplicate, but
  // the same setting twice.
  expect_rejected(R"({"mtj.delta": 30, "mtj": {"delta": 40}})", {"mtj.delta is given twice"});
  expect_rejected(R"({"crossbar": {"tile_rows": 128}, "crossbar.tile_rows": 64})", {"crossbar.tile_rows is given twice"});
}

TEST_F(ConfigFile, MessagesQuotingTheFileStayOnOneLine) {
  // Keys and words from the file are quoted with their control characters escaped.
  expect_rejected("{\"mtj\": {\"tmr\\nratio\": 1}}", {"unknown key", "mtj.tmr\\nratio"});
  expect_rejected(R"({"dropout_module": {"element_masks": "per\r\nrow"}})",
                  {"dropout_module.element_masks", "per\\r\\nrow"});
  // A hostile file's huge key or word is quoted by its head; bytes that are not UTF-8 where the
  // parser stopped, escaped.
  expect_rejected("{\"mtj\": {\"" + std::string(100000, 'k') + "\": 1}}", {"unknown key", "... (100004 bytes)"});
  expect_rejected(R"({"crossbar": {"column_calibration": ")" + std::string(100000, 'w') + "\"}}",
                  {"crossbar.column_calibration", "... (100000 bytes)"});
  expect_rejected("{\"mtj\": {\"delta\": 30}} \xff\xfe", {"not valid JSON", "\\xff"});
}

TEST_F(ConfigFile, MissingFileOrPreset) {
  try {
    HardwareConfig::load((dir_ / "nowhere.json").string());
    ADD_FAILURE() << "accepted a missing file";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("nowhere.json"), std::string::npos) << e.what();
  }
  EXPECT_EQ(HardwareConfig::load("ideal").crossbar.adc_bits, HardwareConfig::ideal().crossbar.adc_bits);
}

// The default is the chip with its circuit, and `wired` names the same config; `unwired` is the
// default with those circuit effects off and nothing else changed: every line of its commented
// JSON but those keys' equals the default's.
namespace {
// The six keys of the circuit: wires, access transistor, tile, calibration, trim DAC.
struct Circuit {
  double wire_ohm, access_ohm;
  int rows, cols;
  ColumnCalibration calibration;
  int trim_bits;
};
void expect_circuit(const HardwareConfig& hw, const Circuit& c, const char* name) {
  SCOPED_TRACE(name);
  EXPECT_EQ(hw.crossbar.wire_resistance_ohm, c.wire_ohm);
  EXPECT_EQ(hw.crossbar.access_resistance_ohm, c.access_ohm);
  EXPECT_EQ(hw.crossbar.tile_rows, c.rows);
  EXPECT_EQ(hw.crossbar.tile_cols, c.cols);
  EXPECT_EQ(hw.crossbar.column_calibration, c.calibration);
  EXPECT_EQ(hw.dropout_module.trim_dac_bits, c.trim_bits);
}
}  // namespace

TEST(HardwareConfigFile, UnwiredPresetIsTheDefaultWithoutItsCircuit) {
  HardwareConfig defaults = HardwareConfig::load("default");
  defaults.validate("default");
  expect_circuit(defaults, {0.14, 2000.0, 64, 32, ColumnCalibration::gain_offset, 6}, "default");
  for (const char* name : {"default", "wired", "unwired", "ideal"}) EXPECT_TRUE(HardwareConfig::is_preset(name)) << name;
  EXPECT_FALSE(HardwareConfig::is_preset("unwired.json"));
  EXPECT_EQ(HardwareConfig::load("wired").table().to_commented_json(), defaults.table().to_commented_json());

  HardwareConfig unwired = HardwareConfig::load("unwired");
  unwired.validate("unwired");
  expect_circuit(unwired, {0.0, 0.0, 128, 128, ColumnCalibration::none, 0}, "unwired");
  const auto lines = [](const std::string& text) {
    std::vector<std::string> out;
    std::istringstream in(text);
    for (std::string line; std::getline(in, line);) out.push_back(line);
    return out;
  };
  const std::vector<std::string> a = lines(unwired.table().to_commented_json()),
                                 b = lines(defaults.table().to_commented_json());
  ASSERT_EQ(a.size(), b.size());
  std::vector<std::string> changed;
  for (std::size_t i = 0; i < a.size(); ++i) {
    if (a[i] == b[i]) continue;
    const auto quote = a[i].find('"'), end = a[i].find('"', quote + 1);
    ASSERT_NE(end, std::string::npos) << a[i];
    changed.push_back(a[i].substr(quote + 1, end - quote - 1));
  }
  EXPECT_EQ(changed, (std::vector<std::string>{"tile_rows", "tile_cols", "access_resistance_ohm", "wire_resistance_ohm",
                                               "column_calibration", "trim_dac_bits"}));
  // The ideal preset has no circuit either: the chip computes the engine's results.
  const HardwareConfig ideal = HardwareConfig::ideal();
  EXPECT_EQ(ideal.crossbar.wire_resistance_ohm, 0.0);
  EXPECT_EQ(ideal.crossbar.access_resistance_ohm, 0.0);
  EXPECT_EQ(ideal.dropout_module.trim_dac_bits, 0);
}

TEST(HardwareConfigFile, DefaultRoundTripsThroughItsCommentedJson) {
  HardwareConfig hw = HardwareConfig::defaults();
  const std::string text = hw.table().to_commented_json();
  EXPECT_NE(text.find("Ikeda"), std::string::npos);  // sources travel with the values
  HardwareConfig changed = HardwareConfig::ideal();
  changed.table().apply_file(write_temp("roundtrip.json", text));
  EXPECT_EQ(changed.mtj.sigma_rp, hw.mtj.sigma_rp);
  EXPECT_EQ(changed.crossbar.adc_bits, hw.crossbar.adc_bits);
  EXPECT_EQ(changed.dropout_module.element_masks, hw.dropout_module.element_masks);
}

TEST(HardwareConfigFile, BadFilesGiveOneLineErrorsNamingTheKey) {
  const auto expect_error = [](const std::string& name, const std::string& text, const std::string& needle) {
    const auto path = write_temp(name, text);
    try {
      HardwareConfig::load(path.string());
      ADD_FAILURE() << name << " was accepted";
    } catch (const Error& e) {
      const std::string what = e.what();
      EXPECT_NE(what.find(needle), std::string::npos) << what;
      EXPECT_EQ(what.find('\n'), std::string::npos) << what;
    }
  };
  expect_error("unknown.json", R"({"mtj": {"tmr": 1.2, "colour": 3}})", "mtj.colour");
  expect_error("unknown-section.json", R"({"magnet": {"tmr": 1.2}})", "magnet");
  expect_error("range.json", R"({"crossbar": {"adc_bits": 40}})", "crossbar.adc_bits");
  expect_error("negative.json", R"({"mtj": {"ra_ohm_um2": -5}})", "mtj.ra_ohm_um2");
  expect_error("type.json", R"({"mtj": {"delta": "high"}})", "mtj.delta");
  expect_error("choice.json", R"({"dropout_module": {"write_current": "max"}})", "dropout_module.write_current");
  expect_error("tile.json", R"({"crossbar": {"tile_rows": 100}})", "crossbar.tile_rows");
  expect_error("json.json", R"({"mtj": {"tmr": 1.2,,}})", "not valid JSON");
  EXPECT_THROW(HardwareConfig::load("no-such-preset"), Error);
  // Comments are allowed, and a partial file keeps the other defaults.
  const auto ok = write_temp("ok.json", "// a hotter chip\n{\"mtj\": {\"temperature_k\": 350}}\n");
  const HardwareConfig hw = HardwareConfig::load(ok.string());
  EXPECT_EQ(hw.mtj.temperature_k, 350.0);
  EXPECT_EQ(hw.mtj.tmr, HardwareConfig::defaults().mtj.tmr);
}

// With the ideal preset the chip computes exactly what the engine computes, for every dropout kind.
