// Reading input files without hanging or crashing on what is not a regular file: a FIFO would block a reader
// forever, a directory or a device is no data file, and a symlink loop makes std::filesystem throw a bare
// "filesystem error" with no context. Every problem comes back as one phrase the caller puts next to its own
// "where" (a config key, a sample's file:line).
#pragma once

#include <cstdint>
#include <string>

namespace phantom::util {

// Empty when `path` names (after symlinks) a regular file this process can open; otherwise what is wrong:
// "not found", "is a directory", "is a FIFO (named pipe), not a regular file", "symlink loop (...)", ...
std::string file_problem(const std::string& path);

// "" or why `name` cannot be one component of a path we create (a run name, a stage name): it must be non-empty,
// valid UTF-8 with no control characters, hold no '/' or '\\', and not be "." or "..". Checked where the name is
// read, so that an empty run name never writes into the output directory itself.
std::string path_name_problem(const std::string& name);

// Throws std::runtime_error("<what> <path>: <problem>") unless file_problem(path) is empty.
void require_regular_file(const std::string& path, const std::string& what);

// The whole content of a regular file. The open never blocks (O_NONBLOCK, then fstat refuses anything but a
// regular file, so a FIFO swapped in after a check cannot hang us), and files over `max_bytes` are refused.
// Errors: std::runtime_error("<path>: <problem>").
std::string read_regular_file(const std::string& path, uint64_t max_bytes = uint64_t(1) << 36);

}  // namespace phantom::util
