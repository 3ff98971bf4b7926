// Writes that never leave a half-written file behind: write to a temporary sibling, fsync, rename.
#pragma once

#include <string>

namespace phantom::util {

void write_file_atomic(const std::string& path, const std::string& content);

// fsync a directory so a rename inside it is durable.
void fsync_dir(const std::string& dir);

}  // namespace phantom::util
