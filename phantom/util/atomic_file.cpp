#include "phantom/util/atomic_file.h"

#include <fcntl.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <stdexcept>

namespace phantom::util {
namespace fs = std::filesystem;

static std::runtime_error io_error(const std::string& what, const std::string& path) {
  return std::runtime_error(what + " " + path + ": " + std::strerror(errno));
}

void fsync_dir(const std::string& dir) {
  int fd = ::open(dir.empty() ? "." : dir.c_str(), O_RDONLY | O_DIRECTORY);
  if (fd < 0) return;
  ::fsync(fd);
  ::close(fd);
}

AtomicFile::AtomicFile(std::string path) : path_(std::move(path)) {
  // pid + counter: distinct temporaries for concurrent writers, in this process or another.
  static std::atomic<unsigned> counter{0};
  tmp_ = path_ + ".tmp." + std::to_string(::getpid()) + "." + std::to_string(counter++);
  fd_ = ::open(tmp_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd_ < 0) throw io_error("cannot create", tmp_);
}

AtomicFile::~AtomicFile() { abort(); }

void AtomicFile::abort() noexcept {
  if (fd_ < 0) return;
  ::close(fd_);
  ::unlink(tmp_.c_str());
  fd_ = -1;
}

void AtomicFile::write(const void* data, size_t n) {
  if (fd_ < 0) throw std::runtime_error("write to closed file " + path_);
  const char* p = static_cast<const char*>(data);
  while (n > 0) {
    ssize_t w = ::write(fd_, p, n);
    if (w < 0) {
      if (errno == EINTR) continue;
      auto err = io_error("cannot write", tmp_);
      abort();
      throw err;
    }
    p += w;
    n -= static_cast<size_t>(w);
  }
}

void AtomicFile::commit() {
  if (fd_ < 0) throw std::runtime_error("commit of closed file " + path_);
  const int fd = fd_;
  fd_ = -1;
  bool ok = ::fsync(fd) == 0;
  ok = ::close(fd) == 0 && ok;  // close even when fsync failed
  if (!ok) {
    auto err = io_error("cannot flush", tmp_);
    ::unlink(tmp_.c_str());
    throw err;
  }
  if (::rename(tmp_.c_str(), path_.c_str()) != 0) {
    auto err = io_error("cannot rename into", path_);
    ::unlink(tmp_.c_str());
    throw err;
  }
  fsync_dir(fs::path(path_).parent_path().string());
}

void write_file_atomic(const std::string& path, const std::string& content) {
  AtomicFile f(path);
  f.write(content.data(), content.size());
  f.commit();
}

}  // namespace phantom::util
