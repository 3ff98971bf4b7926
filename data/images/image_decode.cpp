// Decoding to 8-bit RGB the way PIL's `Image.open(p).convert('RGB')` does: format by signature, one decoder per
// format (codecs.h), then gray replicated and alpha dropped.
#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <stdexcept>

#include "data/images/codecs.h"
#include "data/images/image.h"

namespace phantom::data {
namespace {

[[noreturn]] void fail(const std::string& name, const std::string& what) {
  throw std::runtime_error(name + ": " + what);
}

// libjpeg decodes a truncated JPEG with a warning and grey fill, so the decoder returns an image; PIL refuses it
// ("image file is truncated"). Walk the markers of the main image and require its EOI, so such files fail here
// too. Returns false when the stream ends before EOI. Bytes after EOI (appended previews, videos) are ignored.
bool jpeg_is_complete(const uint8_t* d, size_t n) {
  size_t i = 2;  // after SOI
  while (i + 1 < n) {
    if (d[i] != 0xFF) return true;  // not a marker where one must be: leave the verdict to the decoder
    uint8_t m = d[i + 1];
    if (m == 0xFF) { ++i; continue; }  // fill byte
    if (m == 0xD9) return true;        // EOI
    if (m == 0x01 || (m >= 0xD0 && m <= 0xD7)) { i += 2; continue; }  // TEM, RSTn: no length
    if (i + 3 >= n) return false;
    size_t len = (size_t(d[i + 2]) << 8) | d[i + 3];
    i += 2 + len;
    if (m == 0xDA) {  // SOS: entropy-coded data runs to the next marker other than FF00 stuffing and RSTn
      while (i + 1 < n && !(d[i] == 0xFF && d[i + 1] != 0x00 && !(d[i + 1] >= 0xD0 && d[i + 1] <= 0xD7))) ++i;
    }
  }
  return false;
}

// PIL decodes a PNG whose IEND chunk is missing (a common truncation that loses nothing); libpng refuses it. True when the data is a PNG that does not end in IEND.
constexpr uint8_t kPngSignature[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1A, '\n'};
constexpr uint8_t kPngIend[12] = {0, 0, 0, 0, 'I', 'E', 'N', 'D', 0xAE, 0x42, 0x60, 0x82};  // length, type, CRC
bool png_lacks_iend(const uint8_t* d, size_t n) {
  return n >= 8 && std::memcmp(d, kPngSignature, 8) == 0 && (n < 12 || std::memcmp(d + n - 12, kPngIend, 12) != 0);
}

}  // namespace

RgbImage decode_image(const uint8_t* data, size_t size, const std::string& name) {
  if (size == 0) fail(name, "empty image file (0 bytes)");
  const bool jpeg = size >= 3 && data[0] == 0xFF && data[1] == 0xD8 && data[2] == 0xFF;
  if (jpeg && !jpeg_is_complete(data, size)) fail(name, "truncated JPEG (no end-of-image marker)");

  std::vector<uint8_t> patched;
  if (png_lacks_iend(data, size)) {  // append the IEND chunk (a PNG cut inside its pixel data still fails)
    patched.assign(data, data + size);
    patched.insert(patched.end(), kPngIend, kPngIend + 12);
    data = patched.data();
    size = patched.size();
  }

  codecs::Samples m;
  try {
    if (jpeg) {
      m = codecs::decode_jpeg(data, size);
    } else if (size >= 8 && std::memcmp(data, kPngSignature, 8) == 0) {
      m = codecs::decode_png(data, size);
    } else if (size >= 12 && std::memcmp(data, "RIFF", 4) == 0 && std::memcmp(data + 8, "WEBP", 4) == 0) {
      m = codecs::decode_webp(data, size);
    } else if (size >= 2 && data[0] == 'B' && data[1] == 'M') {
      m = codecs::decode_bmp(data, size);
    } else {
      fail(name, "cannot decode image (not a JPEG, PNG, WebP or BMP file)");
    }
  } catch (const codecs::DecodeError& e) {
    fail(name, std::string("cannot decode image (") + e.what() + ")");
  }

  const int c = m.channels;
  RgbImage out(m.width, m.height);
  const uint8_t* s = m.data.data();
  uint8_t* t = out.pixels.data();
  for (size_t i = 0, n = size_t(m.width) * size_t(m.height); i < n; ++i, s += c, t += 3) {
    if (c <= 2) {  // gray (+ alpha): replicated, alpha dropped
      t[0] = t[1] = t[2] = s[0];
    } else {       // RGB(A): alpha dropped without compositing, as convert('RGB')
      t[0] = s[0], t[1] = s[1], t[2] = s[2];
    }
  }
  return out;
}

RgbImage load_image(const std::string& path) {
  if (std::filesystem::is_directory(path)) fail(path, "is a directory, not an image file");
  std::ifstream f(path, std::ios::binary | std::ios::ate);
  if (!f) fail(path, std::string("cannot open image file (") + std::strerror(errno) + ")");
  std::streamsize n = f.tellg();
  if (n < 0) fail(path, "cannot read image file");
  std::vector<uint8_t> bytes(static_cast<size_t>(n));
  f.seekg(0);
  if (n > 0 && !f.read(reinterpret_cast<char*>(bytes.data()), n)) fail(path, "cannot read image file");
  return decode_image(bytes.data(), bytes.size(), path);
}

}  // namespace phantom::data

namespace phantom::data::codecs {

void Samples::allocate(int w, int h, int c) {
  constexpr int64_t kMaxPixels = int64_t(1) << 30;
  if (w <= 0 || h <= 0 || int64_t(w) * int64_t(h) > kMaxPixels)
    throw DecodeError("bad image size " + std::to_string(w) + "x" + std::to_string(h) + " (at most 2^30 pixels)");
  width = w, height = h, channels = c;
  data.assign(size_t(w) * size_t(h) * size_t(c), 0);
}

}  // namespace phantom::data::codecs
