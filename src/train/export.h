#pragma once
// Export of a trained run into the model IR: the step between LibTorch training and every other
// backend. Torch-free header.
#include <filesystem>

#include "model/model_ir.h"

namespace spinbayes {

// Loads DIR/config.json and DIR/checkpoint.pt and returns the network as the IR: the sign of every
// latent weight (sign(0) = +1) and each layer's batch-norm running statistics, affine parameters
// and eps. Throws Error naming the file on failure.
ModelIR export_model_ir(const std::filesystem::path& run_dir);

// export_model_ir(DIR), written atomically to DIR/model.sbir.
void export_run(const std::filesystem::path& run_dir);

// A checkpoint of the IR's network for the LibTorch backend: latent weights equal to the signs,
// batch norms with the IR's statistics and affine parameters (which must use eps 1e-5, LibTorch's),
// so that a network imported from elsewhere runs as if trained here. Written atomically.
void save_checkpoint_of_ir(const ModelIR& ir, const std::filesystem::path& path);

// DIR/model.sbir, exported first when it is missing or older than DIR/checkpoint.pt.
std::filesystem::path ensure_model_ir(const std::filesystem::path& run_dir);

}  // namespace spinbayes
