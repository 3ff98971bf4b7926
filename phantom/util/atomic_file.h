// Writes that never leave a half-written file behind: write to a temporary sibling, fsync, rename.
#pragma once

#include <cstddef>
#include <string>

namespace phantom::util {

void write_file_atomic(const std::string& path, const std::string& content);

// Streaming variant for files too large to build in memory (checkpoints): write() pieces, then commit().
// Until commit() the data lives in a temporary sibling `path.tmp.<pid>.<n>`; destroying an uncommitted
// AtomicFile (an exception on the way) removes it and leaves any previous `path` untouched.
class AtomicFile {
 public:
  explicit AtomicFile(std::string path);
  ~AtomicFile();
  AtomicFile(const AtomicFile&) = delete;
  AtomicFile& operator=(const AtomicFile&) = delete;

  void write(const void* data, size_t n);
  void commit();  // fsync, close, rename over `path`, fsync the directory
  const std::string& path() const { return path_; }

 private:
  void abort() noexcept;
  std::string path_, tmp_;
  int fd_ = -1;
};

// fsync a directory so a rename inside it is durable.
void fsync_dir(const std::string& dir);

}  // namespace phantom::util
