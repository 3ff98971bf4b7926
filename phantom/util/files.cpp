#include "phantom/util/files.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <stdexcept>

namespace phantom::util {

static std::string kind_problem(mode_t mode) {
  if (S_ISREG(mode)) return "";
  if (S_ISDIR(mode)) return "is a directory, not a file";
  if (S_ISFIFO(mode)) return "is a FIFO (named pipe), not a regular file";
  if (S_ISSOCK(mode)) return "is a socket, not a regular file";
  if (S_ISCHR(mode) || S_ISBLK(mode)) return "is a device, not a regular file";
  return "is not a regular file";
}

static std::string errno_problem(int err) {
  if (err == ENOENT) return "not found";
  if (err == ELOOP) return std::string("symlink loop (") + std::strerror(err) + ")";
  if (err == ENOTDIR) return "not found (a parent is not a directory)";
  return std::strerror(err);
}

std::string file_problem(const std::string& path) {
  if (path.empty()) return "empty path";
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return errno_problem(errno);
  std::string kind = kind_problem(st.st_mode);
  if (!kind.empty()) return kind;
  if (::access(path.c_str(), R_OK) != 0) return errno_problem(errno);
  return "";
}

void require_regular_file(const std::string& path, const std::string& what) {
  const std::string p = file_problem(path);
  if (!p.empty()) throw std::runtime_error(what + " " + path + ": " + p);
}

std::string read_regular_file(const std::string& path, uint64_t max_bytes) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) throw std::runtime_error(path + ": cannot open (" + errno_problem(errno) + ")");
  struct Closer {
    int fd;
    ~Closer() { ::close(fd); }
  } closer{fd};
  struct stat st {};
  if (::fstat(fd, &st) != 0) throw std::runtime_error(path + ": cannot stat (" + std::strerror(errno) + ")");
  const std::string kind = kind_problem(st.st_mode);
  if (!kind.empty()) throw std::runtime_error(path + ": " + kind);
  if (static_cast<uint64_t>(st.st_size) > max_bytes)
    throw std::runtime_error(path + ": file too large (" + std::to_string(st.st_size) + " bytes, limit " +
                             std::to_string(max_bytes) + ")");
  std::string out(static_cast<size_t>(st.st_size), '\0');
  size_t got = 0;
  while (got < out.size()) {
    const ssize_t r = ::read(fd, out.data() + got, out.size() - got);
    if (r < 0) {
      if (errno == EINTR) continue;
      throw std::runtime_error(path + ": read error (" + std::string(std::strerror(errno)) + ")");
    }
    if (r == 0) break;  // shrank while reading
    got += static_cast<size_t>(r);
  }
  out.resize(got);
  return out;
}

std::string path_name_problem(const std::string& name) {
  if (name.empty()) return "empty";
  if (name == "." || name == "..") return "'" + name + "' is not a name";
  for (size_t i = 0; i < name.size();) {
    const auto c = static_cast<unsigned char>(name[i]);
    if (c == '/' || c == '\\') return "holds a path separator '" + std::string(1, static_cast<char>(c)) + "'";
    if (c < 0x20 || c == 0x7F) return "holds the control byte " + std::to_string(c) + " at offset " + std::to_string(i);
    size_t len = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
    bool ok = len > 0 && i + len <= name.size() && !(len == 2 && c < 0xC2) && !(len == 4 && c > 0xF4);
    for (size_t k = 1; ok && k < len; ++k) ok = (static_cast<unsigned char>(name[i + k]) & 0xC0) == 0x80;
    if (ok && len == 3) {  // no overlong forms, no surrogates
      const auto c1 = static_cast<unsigned char>(name[i + 1]);
      ok = !(c == 0xE0 && c1 < 0xA0) && !(c == 0xED && c1 > 0x9F);
    }
    if (ok && len == 4) {
      const auto c1 = static_cast<unsigned char>(name[i + 1]);
      ok = !(c == 0xF0 && c1 < 0x90) && !(c == 0xF4 && c1 > 0x8F);
    }
    if (!ok) return "is not valid UTF-8 (byte " + std::to_string(c) + " at offset " + std::to_string(i) + ")";
    if (len == 2 && c == 0xC2 && static_cast<unsigned char>(name[i + 1]) < 0xA0)  // C1 controls U+0080..9F
      return "holds a control character at offset " + std::to_string(i);
    i += len;
  }
  return "";
}

}  // namespace phantom::util
