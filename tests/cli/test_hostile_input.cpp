// The command line against hostile input: training sets smaller than a batch, outputs onto
// devices and full disks, settings that compute NaN, non-finite checkpoints, two runs into one
// directory, resumes with other settings, single-pass mutual information, CLI11's own errors, and
// errors that came late or misleading. Each failure must be one line "spinbayes: error: ...",
// exit 1, and leave no half-written or clobbered file. Runs the real `spinbayes` binary.
#include <gtest/gtest.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include "cli/arguments.h"
#include "cli_runner.h"
#include "core/dir_lock.h"
#include "data/idx.h"
#include "train/binary_net.h"
#include "train/run.h"

namespace fs = std::filesystem;
using spinbayes::CliResult;
using spinbayes::run_cli;

namespace {

void expect_one_line_error(const CliResult& r, const std::vector<std::string>& parts) { spinbayes::expect_cli_error(r, parts); }

fs::path fresh_dir(const std::string& name) { return spinbayes::fresh_test_dir("hcli", name); }

std::string read_file(const fs::path& path) { return spinbayes::file_bytes(path); }

std::vector<std::string> temporaries_in(const fs::path& dir) {
  std::vector<std::string> found;
  for (const auto& entry : fs::recursive_directory_iterator(dir)) {
    if (entry.path().filename().string().find(".tmp.") != std::string::npos) found.push_back(entry.path().string());
  }
  return found;
}

const std::string kTiny = "--model mlp --width 16 --dropout spatial --p 0.2 --epochs 1 --subset 200 --batch 50 "
                          "--validation 100 --threads 1 --quiet";

// One small trained run per test process.
const fs::path& tiny_run() {
  static const fs::path dir = [] {
    const auto d = fresh_dir("tiny") / "run";
    const auto r = run_cli("train " + kTiny + " --out " + d.string());
    EXPECT_EQ(r.exit_code, 0) << r.output;
    return d;
  }();
  return dir;
}

const std::string kQuickEval = " --samples 2 --test-count 40 --ood-count 20 --ood gaussian --threads 1";

}  // namespace

// ---- 1: training sets smaller than a batch --------------------------------------------------------

TEST(HardeningCli, TrainingSetsSmallerThanABatchAreRefused) {
  const auto dir = fresh_dir("small");
  expect_one_line_error(run_cli("train --model mlp --width 16 --subset 1 --validation 100 --epochs 1 --quiet --out " +
                                (dir / "a").string()),
                        {"training set", "--subset 1", "fewer than one batch of 100"});
  EXPECT_FALSE(fs::exists(dir / "a" / "checkpoint.pt"));
  expect_one_line_error(run_cli("train --model mlp --width 16 --subset 99 --validation 100 --epochs 1 --quiet --out " +
                                (dir / "b").string()),
                        {"99 images", "fewer than one batch"});
  // A training file of 5 images.
  const auto data = dir / "five";
  spinbayes::write_idx(data / "train-images-idx3-ubyte", {5, 28, 28}, std::vector<std::uint8_t>(5 * 28 * 28, 9));
  spinbayes::write_idx(data / "train-labels-idx1-ubyte", {5}, std::vector<std::uint8_t>(5, 1));
  expect_one_line_error(run_cli("train --model mlp --width 16 --validation 0 --epochs 1 --quiet --fashion-mnist " +
                                data.string() + " --out " + (dir / "c").string()),
                        {"5 images", "fewer than one batch"});
  expect_one_line_error(run_cli("experiment --quick --train-subset 50 --quiet --out " + (dir / "x").string()),
                        {"--train-subset", "fewer than one batch"});
  fs::remove_all(dir);
}

// ---- 2: outputs that are devices, FIFOs and links ----------------------------------------------

TEST(HardeningCli, JsonOntoADeviceNodeWritesThroughAndAFullOneFails) {
  const auto dir = fresh_dir("devices");
  const auto null_node = dir / "null", full_node = dir / "full";
  if (::mknod(null_node.c_str(), S_IFCHR | 0666, makedev(1, 3)) != 0 ||
      ::mknod(full_node.c_str(), S_IFCHR | 0666, makedev(1, 7)) != 0) {
    GTEST_SKIP() << "mknod needs root";
  }
  const auto& run = tiny_run();
  auto r = run_cli("cost --model " + run.string() + " --json " + null_node.string());
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_TRUE(fs::is_character_file(fs::symlink_status(null_node)));
  // The table goes to stdout too; the error is one line of its own.
  r = run_cli("cost --model " + run.string() + " --json " + full_node.string());
  EXPECT_EQ(r.exit_code, 1) << r.output;
  const std::string error = "spinbayes: error: " + full_node.string() + ": write failed: No space left on device\n";
  EXPECT_NE(r.output.find(error), std::string::npos) << r.output;
  EXPECT_EQ(r.output.find("error"), r.output.find(error) + 11) << "more than one error: " << r.output;
  EXPECT_TRUE(fs::is_character_file(fs::symlink_status(full_node)));
  EXPECT_TRUE(temporaries_in(dir).empty());
  fs::remove_all(dir);
}

// ---- 3: a full disk during training -------------------------------------------------------------

TEST(HardeningCli, AFullDiskDuringTrainingIsOneLineAndLeavesNoTemporary) {
  const auto dir = fresh_dir("full-disk");
  const auto mount_point = dir / "small";
  fs::create_directories(mount_point);
  if (::mount("tmpfs", mount_point.c_str(), "tmpfs", 0, "size=200k") != 0) GTEST_SKIP() << "cannot mount a tmpfs";
  const auto r = run_cli("train --model mlp --width 64 --dropout spatial --epochs 1 --subset 200 --batch 50 "
                         "--validation 100 --threads 1 --quiet --out " + (mount_point / "run").string());
  expect_one_line_error(r, {"No space left on device"});
  EXPECT_TRUE(temporaries_in(mount_point).empty()) << temporaries_in(mount_point).front();
  ::umount(mount_point.c_str());
  fs::remove_all(dir);
}

// ---- 5: non-finite weights in a checkpoint -------------------------------------------------------

TEST(HardeningCli, NonFiniteWeightsInACheckpointAreRejected) {
  const auto dir = fresh_dir("nan");
  const auto run = dir / "run";
  fs::copy(tiny_run(), run, fs::copy_options::recursive);
  fs::remove(run / "model.sbir");
  {
    // The checkpoint's first weight set to NaN, everything else as trained.
    torch::serialize::InputArchive in;
    in.load_from((run / "checkpoint.pt").string());
    spinbayes::BinaryNet net(spinbayes::load_run_config(run).spec);
    net->load(in);
    torch::NoGradGuard no_grad;
    net->parameters().front().view(-1)[3] = std::numeric_limits<float>::quiet_NaN();
    torch::serialize::OutputArchive out;
    net->save(out);
    out.save_to((run / "checkpoint.pt").string());
  }
  expect_one_line_error(run_cli("export --model " + run.string()), {"checkpoint.pt", "non-finite"});
  EXPECT_FALSE(fs::exists(run / "model.sbir"));
  expect_one_line_error(run_cli("eval --backend torch --model " + run.string() + kQuickEval),
                        {"checkpoint.pt", "non-finite"});
  fs::remove_all(dir);
}

// ---- 6: two runs into one directory --------------------------------------------------------------

TEST(HardeningCli, ASecondRunIntoALockedDirectoryStopsAtOnce) {
  const auto dir = fresh_dir("lock");
  const spinbayes::DirectoryLock held(dir / "run", "--out", "training run");
  expect_one_line_error(run_cli("train " + kTiny + " --out " + (dir / "run").string()),
                        {"--out", "another training run"});
  EXPECT_FALSE(fs::exists(dir / "run" / "config.json")) << "the second run wrote into the locked directory";
  const spinbayes::DirectoryLock experiment(dir / "exp", "--out", "experiment");
  expect_one_line_error(run_cli("experiment --quick --quiet --out " + (dir / "exp").string()),
                        {"--out", "another experiment"});
  fs::remove_all(dir);
}

// ---- 8: integer hardware parameters in a sweep --------------------------------------------------

TEST(HardeningCli, IntegerHardwareParametersCanBeSwept) {
  const auto dir = fresh_dir("sweep-int");
  const auto r = run_cli("sweep --model " + tiny_run().string() + " --param crossbar.adc_bits --values 4,8 --chips 1 "
                         "--samples 2 --test-count 40 --threads 1 --ood gaussian --out " + (dir / "s").string());
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const std::string csv = read_file(dir / "s.csv");
  EXPECT_NE(csv.find("crossbar.adc_bits,4,1,"), std::string::npos) << csv;
  EXPECT_NE(csv.find("crossbar.adc_bits,8,1,"), std::string::npos) << csv;
  expect_one_line_error(run_cli("sweep --model " + tiny_run().string() +
                                " --param crossbar.tile_rows --values 100 --out " + (dir / "t").string()),
                        {"crossbar.tile_rows", "multiple of 64"});
  expect_one_line_error(run_cli("sweep --model " + tiny_run().string() +
                                " --param crossbar.adc_bits --values 8.5 --out " + (dir / "t").string()),
                        {"crossbar.adc_bits", "integer"});
  fs::remove_all(dir);
}

// ---- 4: settings in range that compute NaN --------------------------------------------------------

TEST(HardeningCli, AOneBitAdcIsRefusedNotReportedAsNaN) {
  const auto dir = fresh_dir("adc");
  std::ofstream(dir / "hw.json") << R"({"crossbar":{"adc_bits":1}})";
  const auto r = run_cli("eval --backend cim --hw " + (dir / "hw.json").string() + " --model " +
                         tiny_run().string() + kQuickEval + " --json " + (dir / "out.json").string());
  expect_one_line_error(r, {"crossbar.adc_bits", "out of range"});
  EXPECT_EQ(r.output.find("nan"), std::string::npos);
  EXPECT_FALSE(fs::exists(dir / "out.json"));
  fs::remove_all(dir);
}

TEST(HardeningCli, ADegenerateButComputableAdcRunsWithAWarning) {
  const auto dir = fresh_dir("adc2");
  std::ofstream(dir / "hw.json") << R"({"crossbar":{"adc_bits":2}})";
  const auto r = run_cli("eval --backend cim --hw " + (dir / "hw.json").string() + " --model " + tiny_run().string() +
                         kQuickEval + " --json " + (dir / "out.json").string());
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("spinbayes: warning: --hw " + (dir / "hw.json").string() + ": crossbar.adc_bits = 2 leaves 1"),
            std::string::npos) << r.output;
  const auto j = nlohmann::json::parse(read_file(dir / "out.json"));
  EXPECT_TRUE(j.at("nll").is_number() && std::isfinite(j.at("nll").get<double>())) << j.dump();
  const auto fine = run_cli("eval --backend cim --hw default --model " + tiny_run().string() + kQuickEval);
  EXPECT_EQ(fine.output.find("warning"), std::string::npos) << fine.output;
  fs::remove_all(dir);
}

// ---- 9: resume with other settings ------------------------------------------------------------------

TEST(HardeningCli, ResumeWithOtherSettingsIsRefusedListingThem) {
  const auto dir = fresh_dir("resume");
  const auto run = dir / "run";
  fs::copy(tiny_run(), run, fs::copy_options::recursive);
  const std::string config = read_file(run / "config.json"), history = read_file(run / "train.jsonl");
  const auto r = run_cli("train --resume --epochs 3 --lr 0.01 --quiet --out " + run.string());
  expect_one_line_error(r, {"--resume", "--epochs 3 (the run has 1)", "--lr 0.01"});
  expect_one_line_error(run_cli("train --resume --model lenet --batch 20 --dropout none --quiet --out " + run.string()),
                        {"--model lenet (the run has mlp)", "--batch 20", "--dropout none"});
  EXPECT_EQ(read_file(run / "config.json"), config) << "config.json was rewritten";
  EXPECT_EQ(read_file(run / "train.jsonl"), history);
  // The same settings (or none) resume a finished run as it was.
  const auto same = run_cli("train --resume --epochs 1 --threads 1 --quiet --out " + run.string());
  EXPECT_EQ(same.exit_code, 0) << same.output;
  fs::remove_all(dir);
}

// ---- 10: mutual information from a single pass -----------------------------------------------------

TEST(HardeningCli, MutualInformationFromASinglePassIsRefused) {
  const auto& run = tiny_run();
  expect_one_line_error(run_cli("eval --score mi --deterministic --model " + run.string() + kQuickEval),
                        {"mutual information", "--deterministic", "--score entropy"});
  expect_one_line_error(run_cli("eval --score mi --model " + run.string() +
                                " --samples 1 --test-count 40 --ood-count 20 --ood gaussian"),
                        {"mutual information", "--samples 1"});
  const auto ok = run_cli("eval --score mi --model " + run.string() + kQuickEval);
  EXPECT_EQ(ok.exit_code, 0) << ok.output;
}

// ---- 11: the command line's own errors --------------------------------------------------------------

TEST(HardeningCli, CommandLineErrorsAreOneLineWithExitOne) {
  expect_one_line_error(run_cli("trian --model x"), {"unknown subcommand 'trian'", "train"});
  expect_one_line_error(run_cli("train --out /tmp/x --frobnicate 3"), {"--frobnicate"});
  expect_one_line_error(run_cli("train --out /tmp/x --epochs 1 --epochs 2"), {"--epochs"});
  expect_one_line_error(run_cli("train --out /tmp/x --epochs many"), {"--epochs: could not convert 'many'"});
  expect_one_line_error(run_cli("hw --p abc"), {"--p: could not convert 'abc'"});
  expect_one_line_error(run_cli("train --out /tmp/x --model \"$(printf 'a\\nb')\""), {"a\\nb"});
  expect_one_line_error(run_cli("eval --model x --samples \"$(printf '3\\n4')\""), {"--samples"});
  expect_one_line_error(run_cli("sweep --model x --param mtj.sigma_rp --values \"$(printf '0.1,zz\\ny')\""),
                        {"--values", "'zz\\ny' is not a number"});
  expect_one_line_error(run_cli("experiment --quick --extra-p nan --out /tmp/x"), {"--extra-p", "not a finite number"});
  expect_one_line_error(run_cli(""), {"subcommand"});
  // Seeds are unsigned 64-bit: -1 is not wrapped to 2^64 - 1, nor 2^64 saturated.
  expect_one_line_error(run_cli("train --model mlp --out /tmp/x --seed -1"), {"--seed", "'-1' is not a whole number"});
  expect_one_line_error(run_cli("eval --model x --chip-seed 18446744073709551616"), {"--chip-seed", "not a whole number"});
  // The chip's options with another backend are an error, not ignored.
  expect_one_line_error(run_cli("eval --model x --hw wired"), {"--hw", "only with --backend cim"});
  expect_one_line_error(run_cli("eval --model x --backend torch --chip-seed 2"), {"--chip-seed", "only with --backend cim"});
  const auto help = run_cli("train --help");
  EXPECT_EQ(help.exit_code, 0);
  EXPECT_NE(help.output.find("--epochs"), std::string::npos);
}

TEST(HardeningCli, NumbersAreParsedByOneStrictHelper) {
  EXPECT_EQ(spinbayes::parse_number("--values", "0.25"), 0.25);
  EXPECT_EQ(spinbayes::parse_number("--values", "+8"), 8.0);
  EXPECT_EQ(spinbayes::parse_number("--values", "-1e-3"), -1e-3);
  for (const char* bad : {"", " 1", "1 ", "0x10", "1,", "nan", "inf", "1e999", "--1", "+-1", "1\n"}) {
    EXPECT_THROW(spinbayes::parse_number("--values", bad), spinbayes::Error) << bad;
  }
  EXPECT_EQ(spinbayes::parse_number_list("--values", "1,,2"), (std::vector<double>{1, 2}));
  EXPECT_TRUE(spinbayes::valid_utf8("caf\xc3\xa9"));
  EXPECT_FALSE(spinbayes::valid_utf8("caf\xe9"));
  EXPECT_FALSE(spinbayes::valid_utf8("\xc0\xaf"));    // overlong
  EXPECT_FALSE(spinbayes::valid_utf8("\xed\xa0\x80"));  // surrogate
  EXPECT_FALSE(spinbayes::valid_utf8("\xe2\x82"));      // cut short
}

// ---- 12: late or misleading errors ------------------------------------------------------------------

TEST(HardeningCli, NonUtf8ArgumentsFailBeforeAnyWork) {
  const auto r = run_cli("eval --model \"$(printf '/tmp/caf\\351')\"" + kQuickEval);
  expect_one_line_error(r, {"not valid UTF-8", "\\xe9"});
}

TEST(HardeningCli, ConfigFilesThatAreDirectoriesSaySo) {
  const auto dir = fresh_dir("dirs");
  fs::create_directories(dir / "run" / "config.json");
  expect_one_line_error(run_cli("eval --model " + (dir / "run").string()), {"config.json", "is a directory"});
  fs::create_directories(dir / "hw.json");
  expect_one_line_error(run_cli("hw --hw " + (dir / "hw.json").string()), {"hw.json", "is a directory"});
  std::ofstream(dir / "models") << "a file";
  expect_one_line_error(run_cli("experiment --quick --quiet --models " + (dir / "models").string() + " --out " +
                                (dir / "exp").string()),
                        {"--models", "not a directory"});
  fs::remove_all(dir);
}

// A path the system cannot look at (a loop of links, a name too long) and an empty --hw or
// --tech: one line naming the option, from every command that takes them.
TEST(HardeningCli, HardwareAndTechnologyPathsTheSystemCannotReadAreOneLine) {
  const auto dir = fresh_dir("paths");
  fs::create_symlink(dir / "b", dir / "a");
  fs::create_symlink(dir / "a", dir / "b");
  const std::string loop = (dir / "a").string(), long_name = (dir / std::string(300, 'n')).string();
  for (const std::string& command : {std::string("hw"), std::string("cost --model vgg-small"), std::string("bench --model x")}) {
    SCOPED_TRACE(command);
    expect_one_line_error(run_cli(command + " --hw " + loop), {"--hw: " + loop + ": Too many levels of symbolic links"});
    expect_one_line_error(run_cli(command + " --hw " + long_name), {"--hw: ", "... (", "File name too long"});
    expect_one_line_error(run_cli(command + " --hw ''"), {"--hw: empty (default, wired, unwired, ideal or a config file)"});
  }
  expect_one_line_error(run_cli("cost --model vgg-small --tech " + loop), {"--tech: " + loop + ": Too many levels"});
  expect_one_line_error(run_cli("cost --model vgg-small --tech ''"), {"--tech: empty"});
  // Inputs read elsewhere through the file system's own errors: the path first.
  expect_one_line_error(run_cli("predict --model " + tiny_run().string() + " --images " + loop + " --out " + (dir / "o.npy").string()),
                        {loop + ": ", "Too many levels of symbolic links"});
  fs::remove_all(dir);
}

// `hw` checks a config as the commands that build a chip from it do: one whose modules cannot
// reach p fails there too, with the same line.
TEST(HardeningCli, HwRefusesAConfigNoChipCanBeBuiltFrom) {
  const auto dir = fresh_dir("hw-check");
  const fs::path file = dir / "short-pulse.json";
  std::ofstream(file) << R"({"dropout_module": {"pulse_width_ns": 0.01}})";
  const std::string cause = "dropout_module.pulse_width_ns: p = 0.1 in 0.01 ns needs I >= Ic0";
  expect_one_line_error(run_cli("hw --hw " + file.string()), {cause});
  expect_one_line_error(run_cli("cost --model vgg-small --hw " + file.string()), {cause});
  fs::remove_all(dir);
}

TEST(HardeningCli, CommandsWritingTwoFilesWriteBothOrNeither) {
  const auto dir = fresh_dir("two-files");
  const auto& run = tiny_run();
  fs::create_directories(dir / "plot.png");
  auto r = run_cli("cost --model " + run.string() + " --json " + (dir / "cost.json").string() + " --plot " +
                   (dir / "plot.png").string());
  expect_one_line_error(r, {"--plot", "is a directory"});
  EXPECT_FALSE(fs::exists(dir / "cost.json"));
  fs::create_directories(dir / "s.png");
  r = run_cli("sweep --model " + run.string() + " --param mtj.sigma_rp --values 0 --chips 1 --samples 2 "
              "--test-count 40 --ood gaussian --threads 1 --out " + (dir / "s").string());
  expect_one_line_error(r, {"s.png", "is a directory"});
  EXPECT_FALSE(fs::exists(dir / "s.csv"));
  EXPECT_TRUE(temporaries_in(dir).empty());
  fs::remove_all(dir);
}

TEST(HardeningCli, EvalJsonRecordsItsSeed) {
  const auto dir = fresh_dir("seed");
  const auto r = run_cli("eval --model " + tiny_run().string() + kQuickEval + " --seed 77 --json " +
                         (dir / "e.json").string());
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const auto j = nlohmann::json::parse(read_file(dir / "e.json"));
  EXPECT_EQ(j.at("seed").get<std::uint64_t>(), 77u);
  fs::remove_all(dir);
}

// ---- 7: decompression bombs through the command line --------------------------------------------------

TEST(HardeningCli, AGzipOodIdxAnnouncingMillionsOfImagesIsReadOnlyAsFarAsAsked) {
  const auto dir = fresh_dir("bomb");
  // A gzip stream announcing 2,000,000 images of 28 x 28 (1.5 GB, 6 GB as floats) that holds 50.
  std::string bytes = {0, 0, 8, 3, 0, 0x1e, static_cast<char>(0x84), static_cast<char>(0x80), 0, 0, 0, 28, 0, 0, 0, 28};
  bytes += std::string(50 * 28 * 28, static_cast<char>(128));
  const auto path = dir / "many-idx3-ubyte.gz";
  gzFile out = gzopen(path.c_str(), "wb");
  ASSERT_NE(out, nullptr);
  gzwrite(out, bytes.data(), static_cast<unsigned>(bytes.size()));
  gzclose(out);
  const std::string ood = " --ood idx:" + path.string();
  // --ood-count 20 reads 20 images and succeeds.
  const auto ok = run_cli("eval --model " + tiny_run().string() + " --samples 2 --test-count 40 --ood-count 20" + ood);
  EXPECT_EQ(ok.exit_code, 0) << ok.output;
  // As many as the test images (100) is more than the stream holds: an error naming the file.
  expect_one_line_error(run_cli("eval --model " + tiny_run().string() + " --samples 2 --test-count 100" + ood),
                        {"many-idx3-ubyte.gz", "truncated"});
  fs::remove_all(dir);
}
