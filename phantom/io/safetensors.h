// safetensors checkpoints: read (mmap, zero-copy, fully validated), write (atomic, byte-identical to Python's
// safetensors.torch.save_file for the same tensors), and HF-style sharding with model.safetensors.index.json.
//
// Format: u64 little-endian header length N, N bytes of JSON {"name": {"dtype", "shape", "data_offsets": [b, e]},
// "__metadata__": {str: str}}, then the data section; offsets are relative to the data section, which the
// tensors cover exactly (no holes, no overlaps). See docs/checkpoints.md.
#pragma once

#include <ATen/Tensor.h>

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace phantom::st {

using Metadata = std::map<std::string, std::string>;
using Named = std::vector<std::pair<std::string, at::Tensor>>;

// "F32" <-> at::kFloat, etc. BOOL U8 I8 F8_E5M2 F8_E4M3 I16 U16 F16 BF16 I32 U32 F32 F64 I64 U64.
std::string dtype_name(at::ScalarType t);                 // throws for types safetensors cannot store (complex, ...)
at::ScalarType dtype_from_name(const std::string& name);  // throws for unknown names

struct TensorInfo {
  at::ScalarType dtype;
  std::vector<int64_t> shape;
  uint64_t begin = 0, end = 0;  // byte range within the data section
};

// One .safetensors file, memory-mapped. Tensors returned by get() view the mapping and keep it alive.
class File {
 public:
  explicit File(const std::string& path);  // validates the whole header; throws "path: problem"
  const std::string& path() const { return path_; }
  std::vector<std::string> names() const;  // sorted
  bool contains(const std::string& name) const { return tensors_.count(name) != 0; }
  const TensorInfo& info(const std::string& name) const;
  // Zero-copy CPU tensor in the file's dtype (a copy only if the data is misaligned for the dtype). The pages
  // are mapped copy-on-write: in-place ops on the result are allowed and never reach the file.
  at::Tensor get(const std::string& name) const;
  const Metadata& metadata() const { return metadata_; }

 private:
  struct Mapping;
  std::string path_;
  std::shared_ptr<Mapping> map_;
  const uint8_t* data_ = nullptr;  // start of the data section inside the mapping
  std::map<std::string, TensorInfo> tensors_;
  Metadata metadata_;
};

// A whole checkpoint: a single .safetensors file, a *.safetensors.index.json, or a directory holding either
// (index first, then model.safetensors, then a lone *.safetensors). All shards are opened and checked against
// the index up front.
class Checkpoint {
 public:
  explicit Checkpoint(const std::string& path);
  std::vector<std::string> names() const;  // sorted
  bool contains(const std::string& name) const { return where_.count(name) != 0; }
  const TensorInfo& info(const std::string& name) const;
  at::Tensor get(const std::string& name) const;
  const File& file_of(const std::string& name) const;
  const std::vector<std::unique_ptr<File>>& files() const { return files_; }
  // The shards' __metadata__ merged (the first shard wins on conflicting keys).
  const Metadata& metadata() const { return metadata_; }

 private:
  std::string path_;
  std::vector<std::unique_ptr<File>> files_;
  std::map<std::string, size_t> where_;  // tensor name -> index in files_
  Metadata metadata_;
};

// Writes one file atomically: tensors (any device, any layout) are written contiguous, in their dtype, one at a
// time, so memory stays bounded. Names must be unique and not "__metadata__". The order given does not matter
// (the file's order is Python's); from a std::map: save(path, Named(m.begin(), m.end())).
void save(const std::string& path, const Named& tensors, const Metadata& metadata = {});

// HF layout in `dir`: `<prefix>.safetensors` when everything fits in max_shard_bytes, else
// `<prefix>-00001-of-0000K.safetensors` shards split as huggingface_hub splits (in the given order; an oversized
// tensor gets a shard of its own) and `<prefix>.safetensors.index.json` ({"metadata": {"total_size"},
// "weight_map"}), written last. Every file carries `metadata`. Stale files of an earlier save with the same prefix
// are removed afterwards. Returns the paths written (the index last).
std::vector<std::string> save_sharded(const std::string& dir, const Named& tensors, uint64_t max_shard_bytes,
                                      const Metadata& metadata = {}, const std::string& prefix = "model");

}  // namespace phantom::st
