// Export from a LibTorch checkpoint to the model IR: signs and batch norms read value for value,
// and a missing run or checkpoint named in the error.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <string>
#include <vector>

#include "core/error.h"
#include "model_ir_checks.h"
#include "train/binary_net.h"
#include "train/export.h"
#include "train/run.h"

using namespace spinbayes;
namespace fs = std::filesystem;

namespace {

class ModelIRExport : public ::testing::Test {
 protected:
  void SetUp() override {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    dir_ = fs::temp_directory_path() / ("spinbayes_test_export_" + std::to_string(::getpid()) + "_" + info->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  fs::path dir_;
};

}  // namespace

// LibTorch side: a network with known latent weights and batch-norm state, saved the way the trainer
// saves it, comes out of export_model_ir sign for sign and value for value.
TEST_F(ModelIRExport, ExportReadsSignsAndBatchNormFromTheCheckpoint) {
  const ModelSpec spec = small_spec("lenet", 4);
  torch::manual_seed(16);
  BinaryNet net(spec);
  {
    torch::NoGradGuard no_grad;
    for (auto& item : net->named_parameters()) {
      auto& value = item.value();
      if (item.key().ends_with("_weight")) {
        value.uniform_(-1.0, 1.0);
        value.view(-1)[3] = 0.0f;  // sign(0) = +1
        value.view(-1)[4] = -0.0f;  // -0 >= 0 too
      } else {
        value.normal_();  // batch-norm gamma and beta
      }
    }
    for (auto& item : net->named_buffers()) {
      if (item.key().ends_with("running_mean")) item.value().normal_(0.0, 5.0);
      if (item.key().ends_with("running_var")) item.value().uniform_(0.01, 3.0);
    }
  }
  TrainOptions options;
  options.spec = spec;
  options.out = dir_ / "run";
  save_run_config(options);
  torch::serialize::OutputArchive archive;
  net->save(archive);
  archive.save_to((options.out / "checkpoint.pt").string());

  const ModelIR ir = export_model_ir(options.out);
  expect_same_spec(ir.spec, spec);
  const auto params = net->named_parameters();
  const auto buffers = net->named_buffers();
  auto floats = [](const torch::Tensor& t) {
    const auto c = t.detach().contiguous();
    return std::vector<float>(c.data_ptr<float>(), c.data_ptr<float>() + c.numel());
  };
  ASSERT_EQ(ir.layers.size(), 4u);
  for (std::size_t i = 0; i < ir.layers.size(); ++i) {
    SCOPED_TRACE("layer " + std::to_string(i));
    const std::string name = "layer" + std::to_string(i);
    const BinaryLayerIR& l = ir.layers[i];
    const std::vector<float> latent = floats(params[name + "_weight"]);
    ASSERT_EQ(l.weights.size(), latent.size());
    for (std::size_t k = 0; k < latent.size(); ++k) {
      ASSERT_EQ(l.weights[k], latent[k] >= 0.0f ? 1 : -1) << "weight " << k << " = " << latent[k];
    }
    EXPECT_EQ(l.weights[3], 1);
    EXPECT_EQ(l.weights[4], 1);
    EXPECT_EQ(l.bn_mean, floats(buffers[name + "_bn.running_mean"]));
    EXPECT_EQ(l.bn_var, floats(buffers[name + "_bn.running_var"]));
    EXPECT_EQ(l.bn_gamma, floats(params[name + "_bn.weight"]));
    EXPECT_EQ(l.bn_beta, floats(params[name + "_bn.bias"]));
    EXPECT_EQ(l.bn_eps, 1e-5f);  // LibTorch's default
  }
  // Conv weights in LibTorch's (in_channel, ky, kx) order: layer 1's weight [2][3][4][1].
  const auto w = params["layer1_weight"];
  EXPECT_EQ(ir.layers[1].weights[2 * 100 + 3 * 25 + 4 * 5 + 1], w[2][3][4][1].item<float>() >= 0.0f ? 1 : -1);

  export_run(options.out);
  expect_same_ir(ir, load_model_ir(options.out / "model.sbir"));
}

TEST_F(ModelIRExport, ExportNamesTheMissingFile) {
  try {
    export_model_ir(dir_ / "no-run");
    ADD_FAILURE() << "exported a missing run";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("config.json"), std::string::npos) << e.what();
  }
  TrainOptions options;
  options.spec = small_spec("mlp", 16);
  options.out = dir_ / "untrained";
  save_run_config(options);
  try {
    export_run(options.out);
    ADD_FAILURE() << "exported a run without a checkpoint";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("checkpoint.pt: not found"), std::string::npos) << e.what();
  }
  EXPECT_FALSE(fs::exists(options.out / "model.sbir"));
}
