#pragma once
// Reading a whole input file with errors that say what is wrong with it: missing, a directory,
// unreadable, too large, or a read error, each as one Error naming the path.
#include <cstdint>
#include <filesystem>
#include <string>

namespace spinbayes {

// The file's bytes. Throws Error("<path>: <cause>"). `max_bytes` bounds what is read, so that a
// device such as /dev/zero given as a config file cannot exhaust memory.
std::string read_file_bytes(const std::filesystem::path& path, std::uint64_t max_bytes = std::uint64_t{1} << 28);

}  // namespace spinbayes
