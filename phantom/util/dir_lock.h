// One writer per directory: an exclusive flock on <dir>/.lock holding the owner's PID. Two trainers on the same run
// directory would interleave metrics.jsonl and delete each other's temporary checkpoints; the second one stops at
// once instead, naming the first. The lock goes away with the process (kill -9 included), so it is never stale.
#pragma once

#include <string>

namespace phantom::util {

class DirLock {
 public:
  // Locks `dir` (which must exist) or throws "<dir> is in use by process N (lock <dir>/.lock)".
  explicit DirLock(const std::string& dir);
  ~DirLock();
  DirLock(const DirLock&) = delete;
  DirLock& operator=(const DirLock&) = delete;

 private:
  int fd_ = -1;
};

}  // namespace phantom::util
