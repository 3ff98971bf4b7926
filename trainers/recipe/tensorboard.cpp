#include "trainers/recipe/tensorboard.h"

#include <unistd.h>

#include <chrono>
#include <cstring>
#include <filesystem>

namespace phantom::recipe {

uint32_t crc32c(const void* data, size_t n) {
  static uint32_t table[256];
  static bool init = false;
  if (!init) {
    for (uint32_t i = 0; i < 256; ++i) {
      uint32_t c = i;
      for (int k = 0; k < 8; ++k) c = (c & 1) ? 0x82F63B78u ^ (c >> 1) : c >> 1;  // Castagnoli, reflected
      table[i] = c;
    }
    init = true;
  }
  uint32_t crc = 0xFFFFFFFFu;
  auto p = static_cast<const uint8_t*>(data);
  for (size_t i = 0; i < n; ++i) crc = table[(crc ^ p[i]) & 0xFF] ^ (crc >> 8);
  return crc ^ 0xFFFFFFFFu;
}

namespace {

uint32_t masked(uint32_t crc) { return ((crc >> 15) | (crc << 17)) + 0xa282ead8u; }

void varint(std::string& s, uint64_t v) {
  while (v >= 0x80) s.push_back(static_cast<char>((v & 0x7F) | 0x80)), v >>= 7;
  s.push_back(static_cast<char>(v));
}
void key(std::string& s, int field, int wire) { varint(s, static_cast<uint64_t>(field << 3 | wire)); }
void bytes_field(std::string& s, int field, const std::string& b) {
  key(s, field, 2);
  varint(s, b.size());
  s += b;
}
template <class T>
void fixed(std::string& s, int field, int wire, T v) {
  key(s, field, wire);
  char buf[sizeof(T)];
  std::memcpy(buf, &v, sizeof(T));  // little-endian hosts (x86-64, aarch64)
  s.append(buf, sizeof(T));
}

double now() {
  using namespace std::chrono;
  return duration<double>(system_clock::now().time_since_epoch()).count();
}

}  // namespace

TensorBoardWriter::TensorBoardWriter(const std::string& dir) {
  std::filesystem::create_directories(dir);
  char host[256] = "host";
  gethostname(host, sizeof host - 1);
  path_ = dir + "/events.out.tfevents." + std::to_string(static_cast<long>(now())) + "." + host + ".phantom";
  out_.open(path_, std::ios::binary | std::ios::app);
  if (!out_) throw std::runtime_error("cannot create TensorBoard file " + path_);
  std::string ev;
  fixed<double>(ev, 1, 1, now());
  bytes_field(ev, 3, "brain.Event:2");  // file_version
  record(ev);
}

void TensorBoardWriter::record(const std::string& payload) {
  std::string header(8, '\0');
  const uint64_t len = payload.size();
  std::memcpy(header.data(), &len, 8);
  const uint32_t hcrc = masked(crc32c(header.data(), 8)), pcrc = masked(crc32c(payload.data(), payload.size()));
  out_.write(header.data(), 8);
  out_.write(reinterpret_cast<const char*>(&hcrc), 4);
  out_.write(payload.data(), static_cast<std::streamsize>(payload.size()));
  out_.write(reinterpret_cast<const char*>(&pcrc), 4);
}

void TensorBoardWriter::scalars(int64_t step, const std::map<std::string, double>& values) {
  std::string summary;
  for (auto& [tag, v] : values) {
    std::string value;
    bytes_field(value, 1, tag);
    fixed<float>(value, 2, 5, static_cast<float>(v));  // simple_value
    bytes_field(summary, 1, value);
  }
  std::string ev;
  fixed<double>(ev, 1, 1, now());
  key(ev, 2, 0);
  varint(ev, static_cast<uint64_t>(step));
  bytes_field(ev, 5, summary);
  record(ev);
}

}  // namespace phantom::recipe
