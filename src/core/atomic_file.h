#pragma once
// Outputs are written to "<path>.tmp.<pid>" and renamed over the target only when complete,
// so an interrupted run never leaves a half-written file behind.
//
// Only a new path or a regular file is replaced that way. A symbolic link to a regular file has
// its target replaced (the link stays); a character device (/dev/null, a terminal) or a FIFO is
// written through, in place; a directory, a block device, a socket or a dangling link is refused.
// Every write error (a full disk, /dev/full) is an Error naming the path and the cause.
#include <filesystem>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace spinbayes {

// Writes `content` to `path` atomically (temporary file + rename). Throws Error on failure.
void write_file_atomic(const std::filesystem::path& path, std::string_view content);

// Writes several files all or none: each is staged in its temporary first, and only when every
// one is complete are they renamed (written through) into place. A failure leaves every target
// as it was.
void write_files_atomic(const std::vector<std::pair<std::filesystem::path, std::string>>& files);

// Throws Error("<option>: <path>: <cause>") now if `path` could never be written as an output:
// a directory, a block device, a socket, a dangling link, or a parent that is not a directory.
// Commands call it before their work, so that a bad output path does not fail at the end.
void check_output_path(const std::filesystem::path& path, const std::string& option);

// Throws Error("<option>: <path>: is the input <input>; ...") when `path` names one of `inputs`
// (the same file through a link, another spelling or a hard link): an output must never replace
// what the command reads, such as a run's own checkpoint.
void check_not_an_input(const std::filesystem::path& path, const std::vector<std::filesystem::path>& inputs,
                        const std::string& option);

}  // namespace spinbayes
