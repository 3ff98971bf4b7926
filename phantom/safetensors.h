// safetensors files: an 8-byte little-endian header length, a JSON header {name: {dtype, shape, data_offsets}},
// then raw little-endian tensor bytes. Hand-written because no C++ safetensors library is packaged in Debian or
// PyPI, and the format is this small. Reading maps the file (tensors are zero-copy views kept alive by the
// mapping); everything in the header is validated against the file size before any byte is touched.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace phantom::st {

struct TensorInfo {
  std::string dtype;  // "F32", "BF16", ...
  std::vector<int64_t> shape;
  uint64_t begin = 0, end = 0;  // byte range inside the data section
};

class File {
 public:
  // Throws std::runtime_error naming `path` on any problem (missing, truncated, bad header, bad offsets).
  explicit File(const std::string& path);
  const std::string& path() const { return path_; }
  std::vector<std::string> names() const;
  bool contains(const std::string& name) const { return infos_.count(name) > 0; }
  const TensorInfo& info(const std::string& name) const;
  // A CPU tensor viewing the mapped bytes, in the file's dtype. Keeps the mapping alive.
  at::Tensor get(const std::string& name) const;
  const std::map<std::string, std::string>& metadata() const { return metadata_; }

 private:
  struct Mapping;
  std::string path_;
  std::shared_ptr<Mapping> map_;
  const uint8_t* data_ = nullptr;  // start of the data section
  std::map<std::string, TensorInfo> infos_;
  std::map<std::string, std::string> metadata_;
};

// Every tensor of a file, a directory (model.safetensors or model.safetensors.index.json), or an index file.
std::map<std::string, at::Tensor> load(const std::string& path);

// Writes tensors (any device/dtype supported; stored as they are) atomically: temporary file, fsync, rename.
// Keys are written sorted and the header is padded with spaces to a multiple of 8 bytes, as Python's
// safetensors does, so identical tensors give identical files.
void save(const std::string& path, const std::map<std::string, at::Tensor>& tensors,
          const std::map<std::string, std::string>& metadata = {});

// HF sharding: model-00001-of-0000N.safetensors + model.safetensors.index.json when the total exceeds
// max_shard_bytes (> 0); otherwise a single model.safetensors.
void save_sharded(const std::string& dir, const std::map<std::string, at::Tensor>& tensors, int64_t max_shard_bytes);

}  // namespace phantom::st
