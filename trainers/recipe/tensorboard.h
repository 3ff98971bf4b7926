// TensorBoard event files, written directly: TFRecord framing (length, masked CRC32C) around hand-encoded
// `Event { wall_time, step, summary { value { tag, simple_value } } }` protobufs. Scalars are all we log, and
// this keeps protobuf (whose Debian build clashes with LibTorch's) out of the binary. Read back by the
// `tensorboard` Python package in tests.
#pragma once

#include <cstdint>
#include <fstream>
#include <map>
#include <string>

namespace phantom::recipe {

class TensorBoardWriter {
 public:
  // Creates DIR/events.out.tfevents.<time>.<host>.phantom
  explicit TensorBoardWriter(const std::string& dir);
  void scalars(int64_t step, const std::map<std::string, double>& values);
  void flush() { out_.flush(); }
  const std::string& path() const { return path_; }

 private:
  void record(const std::string& payload);
  std::ofstream out_;
  std::string path_;
};

uint32_t crc32c(const void* data, size_t n);

}  // namespace phantom::recipe
