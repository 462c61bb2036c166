#pragma once
// A short name for some bytes: FNV-1a (64 bit) as 16 hex digits. What stage keys, calibration
// files and chip populations keep of their inputs; a name for a configuration, not a defence
// against forgery.
#include <filesystem>
#include <string>
#include <string_view>

namespace spinbayes {

std::string fingerprint(std::string_view bytes);
std::string file_fingerprint(const std::filesystem::path& path);  // of the file's bytes

}  // namespace spinbayes
