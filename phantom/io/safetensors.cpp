// safetensors reader/writer; the format and what we check are described in phantom/io/safetensors.h and
// docs/checkpoints.md. Every problem with a file becomes a one-line std::runtime_error "path: problem".
#include "phantom/io/safetensors.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <regex>
#include <set>
#include <stdexcept>

#include "phantom/util/atomic_file.h"

namespace phantom::st {
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

// Python's library refuses headers over 100 MB; so do we (a corrupt length must not make us parse garbage).
constexpr uint64_t kMaxHeader = 100'000'000;

[[noreturn]] void fail(const std::string& path, const std::string& msg) { throw std::runtime_error(path + ": " + msg); }

// A name as a JSON string: quoted, escaped, always one line.
std::string quote(const std::string& s) { return json(s).dump(-1, ' ', false, json::error_handler_t::replace); }

// The dtypes in the order of the Rust library's enum: the writer sorts by it (descending) to match its output,
// which also keeps every tensor aligned to its element size once the header is padded to 8 bytes.
struct Dtype {
  const char* name;
  at::ScalarType type;
};
const Dtype kDtypes[] = {
    {"BOOL", at::kBool},
    {"U8", at::kByte},
    {"I8", at::kChar},
    {"F8_E5M2", at::kFloat8_e5m2},
    {"F8_E4M3", at::kFloat8_e4m3fn},
    {"I16", at::kShort},
    {"U16", at::kUInt16},
    {"F16", at::kHalf},
    {"BF16", at::kBFloat16},
    {"I32", at::kInt},
    {"U32", at::kUInt32},
    {"F32", at::kFloat},
    {"F64", at::kDouble},
    {"I64", at::kLong},
    {"U64", at::kUInt64},
};

int dtype_rank(at::ScalarType t) {
  for (size_t i = 0; i < std::size(kDtypes); i++)
    if (kDtypes[i].type == t) return static_cast<int>(i);
  return -1;
}

std::string shape_str(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); i++) s += (i ? "," : "") + std::to_string(shape[i]);
  return s + "]";
}

// Reads one tensor entry of the header, checking types and that numel * element size does not overflow.
TensorInfo parse_entry(const std::string& path, const std::string& name, const json& e) {
  const std::string where = path + ": tensor " + quote(name);
  if (!e.is_object()) throw std::runtime_error(where + " is not a JSON object");
  auto dt = e.find("dtype");
  auto sh = e.find("shape");
  auto off = e.find("data_offsets");
  if (dt == e.end() || !dt->is_string()) throw std::runtime_error(where + " has no string \"dtype\"");
  if (sh == e.end() || !sh->is_array()) throw std::runtime_error(where + " has no array \"shape\"");
  if (off == e.end() || !off->is_array() || off->size() != 2 || !(*off)[0].is_number_unsigned() ||
      !(*off)[1].is_number_unsigned())
    throw std::runtime_error(where + " needs \"data_offsets\" as two non-negative integers");
  TensorInfo info;
  const std::string dname = dt->get<std::string>();
  const int rank = [&] {
    for (size_t i = 0; i < std::size(kDtypes); i++)
      if (dname == kDtypes[i].name) return static_cast<int>(i);
    return -1;
  }();
  if (rank < 0) throw std::runtime_error(where + " has unknown dtype " + quote(dname));
  info.dtype = kDtypes[rank].type;
  uint64_t numel = 1;
  for (const auto& d : *sh) {
    if (!d.is_number_unsigned() || d.get<uint64_t>() > static_cast<uint64_t>(INT64_MAX))
      throw std::runtime_error(where + " has a shape entry that is not a non-negative integer: " + sh->dump());
    const uint64_t v = d.get<uint64_t>();
    info.shape.push_back(static_cast<int64_t>(v));
    if (__builtin_mul_overflow(numel, v, &numel))
      throw std::runtime_error(where + " shape " + sh->dump() + " overflows");
  }
  uint64_t nbytes = 0;
  if (__builtin_mul_overflow(numel, static_cast<uint64_t>(c10::elementSize(info.dtype)), &nbytes))
    throw std::runtime_error(where + " shape " + sh->dump() + " overflows");
  info.begin = (*off)[0].get<uint64_t>();
  info.end = (*off)[1].get<uint64_t>();
  if (info.begin > info.end)
    throw std::runtime_error(where + " data_offsets " + off->dump() + " end before they begin");
  if (info.end - info.begin != nbytes)
    throw std::runtime_error(where + " data_offsets " + off->dump() + " span " + std::to_string(info.end - info.begin) +
                             " bytes but " + dname + " " + shape_str(info.shape) + " needs " + std::to_string(nbytes));
  return info;
}

}  // namespace

std::string dtype_name(at::ScalarType t) {
  const int r = dtype_rank(t);
  if (r < 0) throw std::runtime_error(std::string("safetensors cannot store dtype ") + c10::toString(t));
  return kDtypes[r].name;
}

at::ScalarType dtype_from_name(const std::string& name) {
  for (const auto& d : kDtypes)
    if (name == d.name) return d.type;
  throw std::runtime_error("unknown safetensors dtype " + quote(name));
}

// ---- reading ----------------------------------------------------------------------------------------------------

// The whole file mapped private and writable: pages are shared with the page cache until written, and a write
// (an in-place op on a returned tensor) copies the page instead of faulting or changing the file.
struct File::Mapping {
  void* addr = nullptr;
  size_t size = 0;
  ~Mapping() {
    if (addr) ::munmap(addr, size);
  }
};

File::File(const std::string& path) : path_(path) {
  static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "safetensors data is little-endian");
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) fail(path, std::string("cannot open: ") + std::strerror(errno));
  struct stat st {};
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    fail(path, "not a regular file");
  }
  const uint64_t size = static_cast<uint64_t>(st.st_size);
  if (size < 8) {
    ::close(fd);
    fail(path, size == 0 ? "file is empty"
                         : "file is " + std::to_string(size) + " bytes, shorter than the 8-byte header length");
  }
  map_ = std::make_shared<Mapping>();
  void* addr = ::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
  const int err = errno;
  ::close(fd);  // the mapping keeps the file alive
  if (addr == MAP_FAILED) fail(path, std::string("cannot mmap: ") + std::strerror(err));
  map_->addr = addr;
  map_->size = size;
  const auto* bytes = static_cast<const uint8_t*>(addr);

  uint64_t n = 0;  // header length, little-endian
  for (int i = 7; i >= 0; i--) n = (n << 8) | bytes[i];
  if (n > size - 8) fail(path, "header length " + std::to_string(n) + " exceeds file size " + std::to_string(size));
  if (n > kMaxHeader) fail(path, "header length " + std::to_string(n) + " is over the 100 MB limit");
  json header;
  try {
    header = json::parse(bytes + 8, bytes + 8 + n);
  } catch (const json::exception& e) {  // parse errors and out-of-range numbers (1e309) alike
    fail(path, std::string("header is not valid JSON (") + e.what() + ")");
  }
  if (!header.is_object()) fail(path, "header is not a JSON object");

  for (const auto& [key, value] : header.items()) {
    if (key == "__metadata__") {
      if (!value.is_object()) fail(path, "__metadata__ is not a JSON object");
      for (const auto& [k, v] : value.items()) {
        if (!v.is_string()) fail(path, "__metadata__ value of " + quote(k) + " is not a string");
        metadata_[k] = v.get<std::string>();
      }
      continue;
    }
    tensors_[key] = parse_entry(path, key, value);
  }

  // The tensors must tile the data section exactly, as Python's reader requires: no overlap (two names
  // aliasing bytes), no holes, nothing trailing.
  const uint64_t data_size = size - 8 - n;
  std::vector<std::pair<const std::string*, const TensorInfo*>> order;
  for (const auto& [name, info] : tensors_) order.emplace_back(&name, &info);
  std::sort(order.begin(), order.end(), [](const auto& a, const auto& b) {
    return std::make_pair(a.second->begin, a.second->end) < std::make_pair(b.second->begin, b.second->end);
  });
  uint64_t pos = 0;
  for (const auto& [name, info] : order) {
    const std::string where = "tensor " + quote(*name) + " data_offsets [" + std::to_string(info->begin) + "," +
                              std::to_string(info->end) + "]";
    if (info->end > data_size)
      fail(path, where + " exceed the data section of " + std::to_string(data_size) + " bytes (file truncated?)");
    if (info->begin < pos) fail(path, where + " overlap another tensor");
    if (info->begin > pos)
      fail(path, where + " leave a gap of " + std::to_string(info->begin - pos) + " bytes before it");
    pos = info->end;
  }
  if (pos != data_size)
    fail(path, std::to_string(data_size - pos) + " bytes after the last tensor are not covered by the header");
  data_ = bytes + 8 + n;
}

std::vector<std::string> File::names() const {
  std::vector<std::string> out;
  for (const auto& kv : tensors_) out.push_back(kv.first);
  return out;
}

const TensorInfo& File::info(const std::string& name) const {
  auto it = tensors_.find(name);
  if (it == tensors_.end()) fail(path_, "no tensor " + quote(name));
  return it->second;
}

at::Tensor File::get(const std::string& name) const {
  const TensorInfo& ti = info(name);
  const auto opts = at::TensorOptions().dtype(ti.dtype);
  const size_t nbytes = ti.end - ti.begin;
  if (nbytes == 0) return at::empty(ti.shape, opts);
  uint8_t* p = const_cast<uint8_t*>(data_ + ti.begin);  // writable: the mapping is copy-on-write
  // A bool byte other than 0/1 is undefined behaviour in C++ kernels; refuse it here instead.
  if (ti.dtype == at::kBool && std::any_of(p, p + nbytes, [](uint8_t b) { return b > 1; }))
    fail(path_, "tensor " + quote(name) + " is BOOL but holds bytes other than 0 and 1");
  if (reinterpret_cast<uintptr_t>(p) % c10::elementSize(ti.dtype) != 0) {
    // Only files from other writers (header not padded to 8) get here; kernels expect aligned data.
    at::Tensor t = at::empty(ti.shape, opts);
    std::memcpy(t.data_ptr(), p, nbytes);
    return t;
  }
  auto release = [keep = map_](void*) {};  // the tensor's deleter holds the mapping alive
  return at::from_blob(p, ti.shape, release, opts);
}

// ---- sharded checkpoints ------------------------------------------------------------------------------------------

namespace {

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// What a directory holds: the index if any, else model.safetensors, else its only *.safetensors.
std::string resolve_dir(const std::string& dir) {
  const fs::path d(dir);
  std::error_code ec;
  if (fs::exists(d / "model.safetensors.index.json", ec)) return (d / "model.safetensors.index.json").string();
  if (fs::exists(d / "model.safetensors", ec)) return (d / "model.safetensors").string();
  std::vector<std::string> index, single;
  for (const auto& e : fs::directory_iterator(d, ec)) {
    const std::string name = e.path().filename().string();
    if (ends_with(name, ".safetensors.index.json")) index.push_back(e.path().string());
    if (ends_with(name, ".safetensors")) single.push_back(e.path().string());
  }
  if (ec) fail(dir, "cannot list directory: " + ec.message());
  if (index.size() == 1) return index[0];
  if (index.empty() && single.size() == 1) return single[0];
  fail(dir, "no model.safetensors.index.json or model.safetensors, and " + std::to_string(index.size()) +
                " *.safetensors.index.json / " + std::to_string(single.size()) + " *.safetensors files to choose from");
}

}  // namespace

Checkpoint::Checkpoint(const std::string& path) : path_(path) {
  std::error_code ec;
  std::string p = fs::is_directory(path, ec) ? resolve_dir(path) : path;

  if (!ends_with(p, ".index.json")) {
    files_.push_back(std::make_unique<File>(p));
    for (const auto& name : files_[0]->names()) where_[name] = 0;
  } else {
    std::ifstream in(p, std::ios::binary);
    if (!in) fail(p, std::string("cannot open: ") + std::strerror(errno));
    const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    json index;
    try {
      index = json::parse(text);
    } catch (const json::exception& e) {  // parse errors and out-of-range numbers (1e309) alike
      fail(p, std::string("not valid JSON (") + e.what() + ")");
    }
    auto wm = index.is_object() ? index.find("weight_map") : index.end();
    if (wm == index.end() || !wm->is_object()) fail(p, "no \"weight_map\" object");
    // Group by shard first so files_ is in shard order (model-00001 first) whatever the index order.
    std::map<std::string, std::vector<std::string>> by_shard;
    for (const auto& [name, shard] : wm->items()) {
      if (!shard.is_string()) fail(p, "weight_map entry " + quote(name) + " is not a string");
      by_shard[shard.get<std::string>()].push_back(name);
    }
    const fs::path dir = fs::path(p).parent_path();
    for (const auto& [shard, names] : by_shard) {
      const fs::path shard_path = dir / shard;
      if (!fs::exists(shard_path, ec))
        fail(p, "shard " + quote(shard) + " (listed for tensor " + quote(names[0]) +
                    ") is missing: " + shard_path.string());
      try {
        files_.push_back(std::make_unique<File>(shard_path.string()));
      } catch (const std::exception& e) {  // the shard's own error, said to come from this index
        fail(p, "shard " + quote(shard) + " (listed for tensor " + quote(names[0]) + "): " + e.what());
      }
      for (const auto& name : names) {
        if (!files_.back()->contains(name))
          fail(p,
               "tensor " + quote(name) + " is listed in shard " + quote(shard) + " but that shard does not contain it");
        where_[name] = files_.size() - 1;
      }
    }
    size_t unlisted = 0;
    for (const auto& f : files_)
      for (const auto& name : f->names()) unlisted += where_.count(name) == 0;
    if (unlisted) log::warn("{}: {} tensors in the shards are not in the weight_map; ignored", p, unlisted);
  }
  for (const auto& f : files_) metadata_.insert(f->metadata().begin(), f->metadata().end());
  log::debug("{}: {} tensors in {} file(s)", path, where_.size(), files_.size());
}

std::vector<std::string> Checkpoint::names() const {
  std::vector<std::string> out;
  for (const auto& kv : where_) out.push_back(kv.first);
  return out;
}

const File& Checkpoint::file_of(const std::string& name) const {
  auto it = where_.find(name);
  if (it == where_.end()) fail(path_, "no tensor " + quote(name));
  return *files_[it->second];
}

const TensorInfo& Checkpoint::info(const std::string& name) const { return file_of(name).info(name); }
at::Tensor Checkpoint::get(const std::string& name) const { return file_of(name).get(name); }

// ---- writing --------------------------------------------------------------------------------------------------

namespace {

struct Entry {
  const std::string* name;
  const at::Tensor* tensor;
  int rank;
  uint64_t nbytes;
};

std::vector<Entry> prepare(const std::string& path, const Named& tensors) {
  std::vector<Entry> entries;
  std::set<std::string> seen;
  for (const auto& [name, t] : tensors) {
    if (!t.defined()) fail(path, "tensor " + quote(name) + " is undefined");
    if (name == "__metadata__") fail(path, "\"__metadata__\" cannot be a tensor name");
    if (!seen.insert(name).second) fail(path, "tensor " + quote(name) + " given twice");
    if (t.layout() != at::kStrided)
      fail(path, "tensor " + quote(name) + " is not dense (layout " + c10::toString(t.layout()) + ")");
    const int rank = dtype_rank(t.scalar_type());
    if (rank < 0)
      fail(path, "tensor " + quote(name) + " has dtype " + c10::toString(t.scalar_type()) +
                     ", which safetensors cannot store");
    entries.push_back({&name, &t, rank, static_cast<uint64_t>(t.numel()) * t.element_size()});
  }
  // Python's order: larger element sizes first, then by name (byte order).
  std::sort(entries.begin(), entries.end(),
            [](const Entry& a, const Entry& b) { return a.rank != b.rank ? a.rank > b.rank : *a.name < *b.name; });
  return entries;
}

// The header bytes exactly as the Rust library writes them: compact JSON, __metadata__ first, tensors in data
// order with keys dtype/shape/data_offsets, padded with spaces to a multiple of 8.
std::string header_json(const std::string& path, const std::vector<Entry>& entries, const Metadata& metadata) {
  nlohmann::ordered_json h = nlohmann::ordered_json::object();
  if (!metadata.empty()) h["__metadata__"] = metadata;
  uint64_t off = 0;
  for (const auto& e : entries) {
    nlohmann::ordered_json info = nlohmann::ordered_json::object();
    info["dtype"] = kDtypes[e.rank].name;
    info["shape"] = e.tensor->sizes().vec();
    info["data_offsets"] = nlohmann::ordered_json::array({off, off + e.nbytes});
    h[*e.name] = std::move(info);
    off += e.nbytes;
  }
  std::string s;
  try {
    s = h.dump();
  } catch (const nlohmann::json::type_error&) {
    fail(path, "a tensor name or metadata string is not valid UTF-8");
  }
  s.append((8 - s.size() % 8) % 8, ' ');
  return s;
}

void write_file(const std::string& path, const std::vector<Entry>& entries, const Metadata& metadata) {
  const std::string header = header_json(path, entries, metadata);
  util::AtomicFile f(path);
  uint8_t len[8];
  for (int i = 0; i < 8; i++) len[i] = static_cast<uint8_t>(static_cast<uint64_t>(header.size()) >> (8 * i));
  f.write(len, 8);
  f.write(header.data(), header.size());
  for (const auto& e : entries) {
    if (e.nbytes == 0) continue;
    // One tensor at a time on the host: a GPU model is never copied whole.
    at::Tensor c;
    try {
      c = e.tensor->detach().to(at::kCPU).contiguous();
    } catch (const c10::Error& err) {
      fail(path, "tensor " + quote(*e.name) + " cannot be copied to the CPU: " + err.what_without_backtrace());
    }
    f.write(c.data_ptr(), e.nbytes);
  }
  f.commit();
}

}  // namespace

void save(const std::string& path, const Named& tensors, const Metadata& metadata) {
  write_file(path, prepare(path, tensors), metadata);
}

std::vector<std::string> save_sharded(const std::string& dir, const Named& tensors, uint64_t max_shard_bytes,
                                      const Metadata& metadata, const std::string& prefix) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) fail(dir, "cannot create directory: " + ec.message());
  const fs::path d(dir);
  const std::string single = prefix + ".safetensors", index_name = prefix + ".safetensors.index.json";

  // Split exactly like huggingface_hub (so shards match its output): in the given order, a tensor that would
  // overflow the current shard closes it; a tensor larger than the limit goes to a shard of its own at once.
  std::vector<Named> shards;
  Named current;
  uint64_t current_bytes = 0, total = 0;
  for (const auto& nt : tensors) {
    const uint64_t n = nt.second.defined() ? static_cast<uint64_t>(nt.second.numel()) * nt.second.element_size() : 0;
    total += n;
    if (n > max_shard_bytes) {
      shards.push_back({nt});
      continue;
    }
    if (current_bytes + n > max_shard_bytes) {
      shards.push_back(std::move(current));
      current.clear();
      current_bytes = 0;
    }
    current.push_back(nt);
    current_bytes += n;
  }
  if (!current.empty() || shards.empty()) shards.push_back(std::move(current));

  // Checks all names before anything is written (duplicates may straddle shards).
  prepare((d / (shards.size() == 1 ? single : index_name)).string(), tensors);

  std::vector<std::string> written;
  std::set<std::string> keep;
  if (shards.size() == 1) {
    save((d / single).string(), shards[0], metadata);
    written.push_back((d / single).string());
    keep.insert(single);
  } else {
    json weight_map = json::object();
    char name[64];
    for (size_t i = 0; i < shards.size(); i++) {
      std::snprintf(name, sizeof name, "-%05zu-of-%05zu.safetensors", i + 1, shards.size());
      const std::string shard = prefix + name;
      save((d / shard).string(), shards[i], metadata);
      for (const auto& nt : shards[i]) weight_map[nt.first] = shard;
      written.push_back((d / shard).string());
      keep.insert(shard);
    }
    const json index = {{"metadata", {{"total_size", total}}}, {"weight_map", weight_map}};
    util::write_file_atomic((d / index_name).string(), index.dump(2) + "\n");  // like transformers
    written.push_back((d / index_name).string());
    keep.insert(index_name);
  }
  // Remove what an earlier save with this prefix left behind, so a directory open cannot find stale files.
  const std::regex stale(std::regex_replace(prefix, std::regex(R"([.^$|()\[\]{}*+?\\])"), R"(\$&)") +
                         R"((-\d{5}-of-\d{5}\.safetensors|\.safetensors|\.safetensors\.index\.json))");
  for (const auto& e : fs::directory_iterator(d, ec)) {
    const std::string name = e.path().filename().string();
    if (!keep.count(name) && std::regex_match(name, stale)) fs::remove(e.path(), ec);
  }
  return written;
}

}  // namespace phantom::st
