#include "phantom/safetensors.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "phantom/util/atomic_file.h"

namespace phantom::st {
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

struct DtypeInfo {
  const char* name;
  c10::ScalarType type;
  size_t bytes;
};
const DtypeInfo kDtypes[] = {
    {"F64", c10::kDouble, 8}, {"F32", c10::kFloat, 4},  {"F16", c10::kHalf, 2}, {"BF16", c10::kBFloat16, 2},
    {"I64", c10::kLong, 8},   {"I32", c10::kInt, 4},    {"I16", c10::kShort, 2}, {"I8", c10::kChar, 1},
    {"U8", c10::kByte, 1},    {"BOOL", c10::kBool, 1},
};

const DtypeInfo* by_name(const std::string& n) {
  for (auto& d : kDtypes)
    if (n == d.name) return &d;
  return nullptr;
}
const DtypeInfo* by_type(c10::ScalarType t) {
  for (auto& d : kDtypes)
    if (t == d.type) return &d;
  return nullptr;
}

[[noreturn]] void fail(const std::string& path, const std::string& what) {
  throw std::runtime_error(path + ": " + what);
}

}  // namespace

struct File::Mapping {
  void* addr = nullptr;
  size_t size = 0;
  ~Mapping() {
    if (addr && size) ::munmap(addr, size);
  }
};

File::File(const std::string& path) : path_(path), map_(std::make_shared<Mapping>()) {
  int fd = ::open(path.c_str(), O_RDONLY);
  if (fd < 0) fail(path, std::string("cannot open: ") + std::strerror(errno));
  struct stat sb {};
  if (::fstat(fd, &sb) != 0) {
    ::close(fd);
    fail(path, "cannot stat");
  }
  const auto size = static_cast<uint64_t>(sb.st_size);
  if (size < 8) {
    ::close(fd);
    fail(path, "truncated safetensors file (" + std::to_string(size) + " bytes, less than the 8-byte header length)");
  }
  void* addr = ::mmap(nullptr, size, PROT_READ, MAP_PRIVATE, fd, 0);
  ::close(fd);
  if (addr == MAP_FAILED) fail(path, std::string("cannot map: ") + std::strerror(errno));
  map_->addr = addr;
  map_->size = size;
  const auto* bytes = static_cast<const uint8_t*>(addr);
  uint64_t header_len = 0;
  for (int i = 7; i >= 0; --i) header_len = header_len << 8 | bytes[i];
  if (header_len > size - 8)
    fail(path, "header length " + std::to_string(header_len) + " exceeds the file size " + std::to_string(size) +
                   " (truncated or not a safetensors file)");
  json header;
  try {
    header = json::parse(bytes + 8, bytes + 8 + header_len);
  } catch (const json::exception& e) {
    fail(path, std::string("invalid JSON header: ") + e.what());
  }
  if (!header.is_object()) fail(path, "the header is not a JSON object");
  data_ = bytes + 8 + header_len;
  const uint64_t data_size = size - 8 - header_len;
  for (auto& [name, v] : header.items()) {
    if (name == "__metadata__") {
      if (v.is_object())
        for (auto& [k, m] : v.items())
          if (m.is_string()) metadata_[k] = m.get<std::string>();
      continue;
    }
    try {
      TensorInfo ti;
      ti.dtype = v.at("dtype").get<std::string>();
      ti.shape = v.at("shape").get<std::vector<int64_t>>();
      auto off = v.at("data_offsets").get<std::vector<uint64_t>>();
      if (off.size() != 2) fail(path, "tensor '" + name + "': data_offsets must have 2 entries");
      ti.begin = off[0], ti.end = off[1];
      const auto* dt = by_name(ti.dtype);
      if (!dt) fail(path, "tensor '" + name + "': unsupported dtype " + ti.dtype);
      uint64_t numel = 1;
      for (auto d : ti.shape) {
        if (d < 0) fail(path, "tensor '" + name + "': negative dimension");
        numel *= static_cast<uint64_t>(d);
      }
      if (ti.begin > ti.end || ti.end > data_size)
        fail(path, "tensor '" + name + "': data_offsets [" + std::to_string(ti.begin) + ", " + std::to_string(ti.end) +
                       ") outside the data section of " + std::to_string(data_size) + " bytes (truncated file?)");
      if (ti.end - ti.begin != numel * dt->bytes)
        fail(path, "tensor '" + name + "': " + std::to_string(ti.end - ti.begin) + " bytes for " +
                       std::to_string(numel) + " elements of " + ti.dtype);
      infos_[name] = std::move(ti);
    } catch (const json::exception& e) {
      fail(path, "tensor '" + name + "': malformed entry: " + e.what());
    }
  }
}

std::vector<std::string> File::names() const {
  std::vector<std::string> n;
  for (auto& kv : infos_) n.push_back(kv.first);
  return n;
}

const TensorInfo& File::info(const std::string& name) const {
  auto it = infos_.find(name);
  if (it == infos_.end()) fail(path_, "no tensor named '" + name + "'");
  return it->second;
}

at::Tensor File::get(const std::string& name) const {
  const auto& ti = info(name);
  const auto* dt = by_name(ti.dtype);
  auto keep = map_;
  auto* ptr = const_cast<uint8_t*>(data_ + ti.begin);
  auto opts = at::TensorOptions().dtype(dt->type);
  if (ti.end == ti.begin) return at::empty(ti.shape, opts);
  // Unaligned offsets are legal in the format; copy those (a view would fault or be slow on some types).
  if (reinterpret_cast<uintptr_t>(ptr) % dt->bytes != 0) {
    auto t = at::empty(ti.shape, opts);
    std::memcpy(t.data_ptr(), ptr, ti.end - ti.begin);
    return t;
  }
  return at::from_blob(ptr, ti.shape, [keep](void*) {}, opts);
}

std::map<std::string, at::Tensor> load(const std::string& path) {
  fs::path p(path);
  std::map<std::string, at::Tensor> out;
  auto read_file = [&](const fs::path& f) {
    File file(f.string());
    for (auto& n : file.names()) out[n] = file.get(n);
  };
  if (fs::is_directory(p)) {
    if (fs::exists(p / "model.safetensors.index.json")) p /= "model.safetensors.index.json";
    else if (fs::exists(p / "model.safetensors")) p /= "model.safetensors";
    else throw std::runtime_error(path + ": no model.safetensors or model.safetensors.index.json in the directory");
  }
  if (p.filename().string().size() > 5 && p.extension() == ".json") {
    std::ifstream in(p);
    if (!in) throw std::runtime_error(p.string() + ": cannot open");
    json idx;
    try {
      idx = json::parse(in);
    } catch (const json::exception& e) {
      throw std::runtime_error(p.string() + ": invalid JSON: " + e.what());
    }
    if (!idx.contains("weight_map") || !idx["weight_map"].is_object())
      throw std::runtime_error(p.string() + ": no weight_map");
    std::map<std::string, std::vector<std::string>> by_shard;
    for (auto& [name, shard] : idx["weight_map"].items()) by_shard[shard.get<std::string>()].push_back(name);
    for (auto& [shard, names] : by_shard) {
      const auto sp = p.parent_path() / shard;
      if (!fs::exists(sp)) throw std::runtime_error(p.string() + ": shard " + shard + " is missing");
      File file(sp.string());
      for (auto& n : names) {
        if (!file.contains(n)) throw std::runtime_error(sp.string() + ": tensor '" + n + "' listed in the index is absent");
        out[n] = file.get(n);
      }
    }
    return out;
  }
  read_file(p);
  return out;
}

namespace {

// Header + byte layout for a set of tensors (sorted by name, as the map already is).
std::string header_for(const std::map<std::string, at::Tensor>& tensors,
                       const std::map<std::string, std::string>& metadata, std::vector<at::Tensor>& contiguous) {
  json h = json::object();
  if (!metadata.empty()) h["__metadata__"] = metadata;
  uint64_t offset = 0;
  for (auto& [name, t] : tensors) {
    const auto* dt = by_type(t.scalar_type());
    if (!dt) throw std::runtime_error("safetensors: tensor '" + name + "' has an unsupported dtype");
    auto c = t.detach().to(at::kCPU).contiguous();
    const uint64_t n = static_cast<uint64_t>(c.numel()) * dt->bytes;
    h[name] = {{"dtype", dt->name}, {"shape", c.sizes().vec()}, {"data_offsets", {offset, offset + n}}};
    offset += n;
    contiguous.push_back(c);
  }
  std::string s = h.dump();
  s.append((8 - s.size() % 8) % 8, ' ');
  return s;
}

}  // namespace

void save(const std::string& path, const std::map<std::string, at::Tensor>& tensors,
          const std::map<std::string, std::string>& metadata) {
  std::vector<at::Tensor> data;
  const std::string header = header_for(tensors, metadata, data);
  const std::string tmp = path + ".tmp." + std::to_string(::getpid());
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    if (!out) throw std::runtime_error("cannot create " + tmp);
    uint64_t len = header.size();
    char lenb[8];
    for (int i = 0; i < 8; ++i) lenb[i] = static_cast<char>((len >> (8 * i)) & 0xFF);
    out.write(lenb, 8);
    out.write(header.data(), static_cast<std::streamsize>(header.size()));
    for (auto& t : data) out.write(static_cast<const char*>(t.data_ptr()), static_cast<std::streamsize>(t.nbytes()));
    out.flush();
    if (!out) {
      std::error_code ec;
      fs::remove(tmp, ec);
      throw std::runtime_error("cannot write " + tmp + " (disk full?)");
    }
  }
  int fd = ::open(tmp.c_str(), O_RDONLY);
  if (fd >= 0) ::fsync(fd), ::close(fd);
  if (::rename(tmp.c_str(), path.c_str()) != 0) throw std::runtime_error("cannot rename " + tmp + " to " + path);
  util::fsync_dir(fs::path(path).parent_path().string());
}

void save_sharded(const std::string& dir, const std::map<std::string, at::Tensor>& tensors, int64_t max_shard_bytes) {
  fs::create_directories(dir);
  int64_t total = 0;
  for (auto& kv : tensors) total += static_cast<int64_t>(kv.second.nbytes());
  if (max_shard_bytes <= 0 || total <= max_shard_bytes) {
    save((fs::path(dir) / "model.safetensors").string(), tensors);
    return;
  }
  std::vector<std::map<std::string, at::Tensor>> shards(1);
  int64_t cur = 0;
  for (auto& [name, t] : tensors) {
    const auto n = static_cast<int64_t>(t.nbytes());
    if (cur > 0 && cur + n > max_shard_bytes) shards.emplace_back(), cur = 0;
    shards.back()[name] = t;
    cur += n;
  }
  json weight_map = json::object();
  const size_t N = shards.size();
  for (size_t i = 0; i < N; ++i) {
    char name[64];
    std::snprintf(name, sizeof name, "model-%05zu-of-%05zu.safetensors", i + 1, N);
    save((fs::path(dir) / name).string(), shards[i]);
    for (auto& kv : shards[i]) weight_map[kv.first] = name;
  }
  json idx = {{"metadata", {{"total_size", total}}}, {"weight_map", weight_map}};
  util::write_file_atomic((fs::path(dir) / "model.safetensors.index.json").string(), idx.dump(2) + "\n");
}

}  // namespace phantom::st
