#pragma once
// Outputs are written to "<path>.tmp.<pid>" and renamed over the target only when complete,
// so an interrupted run never leaves a half-written file behind.
#include <filesystem>
#include <string_view>

namespace spinbayes {

// Writes `content` to `path` atomically (temporary file + rename). Throws Error on failure.
void write_file_atomic(const std::filesystem::path& path, std::string_view content);

// A temporary path beside `path` for writers that need a file name (e.g. a serializer);
// call commit_atomic() once the temporary file is complete. It first removes the temporaries of
// `path` that processes no longer running left behind (a run killed while writing).
std::filesystem::path temporary_path_for(const std::filesystem::path& path);
void commit_atomic(const std::filesystem::path& temporary, const std::filesystem::path& path);

}  // namespace spinbayes
