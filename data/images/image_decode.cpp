// Decoding to 8-bit RGB the way PIL's `Image.open(p).convert('RGB')` does: format by signature, one decoder per
// format (codecs.h), then gray replicated and alpha dropped.
#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <stdexcept>

#include "data/images/codecs.h"
#include "data/images/image.h"
#include "data/images/image_limits.h"
#include "phantom/util/files.h"
#include "phantom/util/parse.h"

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

// Width and height from the header, without decoding: PNG (IHDR), JPEG (the first SOFn), GIF, BMP, WebP
// (VP8, VP8L, VP8X). False when the format is none of these or the header is cut short; the pixel cap is then
// checked after decoding instead.
uint32_t be16(const uint8_t* p) { return (uint32_t(p[0]) << 8) | p[1]; }
uint32_t be32(const uint8_t* p) { return (be16(p) << 16) | be16(p + 2); }
uint32_t le16(const uint8_t* p) { return (uint32_t(p[1]) << 8) | p[0]; }
uint32_t le24(const uint8_t* p) { return le16(p) | (uint32_t(p[2]) << 16); }
uint32_t le32(const uint8_t* p) { return le16(p) | (le16(p + 2) << 16); }

bool header_size(const uint8_t* d, size_t n, uint64_t& w, uint64_t& h) {
  if (n >= 24 && std::memcmp(d, kPngSignature, 8) == 0 && std::memcmp(d + 12, "IHDR", 4) == 0) {
    w = be32(d + 16), h = be32(d + 20);
    return true;
  }
  if (n >= 4 && d[0] == 0xFF && d[1] == 0xD8) {
    size_t i = 2;
    while (i + 9 < n) {
      if (d[i] != 0xFF) return false;
      const uint8_t m = d[i + 1];
      if (m == 0xFF) { ++i; continue; }
      if (m == 0x01 || (m >= 0xD0 && m <= 0xD9)) { i += 2; continue; }
      if (m >= 0xC0 && m <= 0xCF && m != 0xC4 && m != 0xC8 && m != 0xCC) {  // SOFn: P, Y, X
        h = be16(d + i + 5), w = be16(d + i + 7);
        return true;
      }
      i += 2 + be16(d + i + 2);
    }
    return false;
  }
  if (n >= 10 && (std::memcmp(d, "GIF87a", 6) == 0 || std::memcmp(d, "GIF89a", 6) == 0)) {
    w = le16(d + 6), h = le16(d + 8);
    return true;
  }
  if (n >= 26 && d[0] == 'B' && d[1] == 'M') {
    const int32_t bw = static_cast<int32_t>(le32(d + 18)), bh = static_cast<int32_t>(le32(d + 22));
    w = static_cast<uint64_t>(bw < 0 ? -int64_t(bw) : bw), h = static_cast<uint64_t>(bh < 0 ? -int64_t(bh) : bh);
    return true;
  }
  if (n >= 30 && std::memcmp(d, "RIFF", 4) == 0 && std::memcmp(d + 8, "WEBP", 4) == 0) {
    if (std::memcmp(d + 12, "VP8X", 4) == 0) {
      w = le24(d + 24) + 1, h = le24(d + 27) + 1;
      return true;
    }
    if (std::memcmp(d + 12, "VP8L", 4) == 0 && n >= 25) {
      const uint32_t bits = le32(d + 21);
      w = (bits & 0x3FFF) + 1, h = ((bits >> 14) & 0x3FFF) + 1;
      return true;
    }
    if (std::memcmp(d + 12, "VP8 ", 4) == 0) {
      w = le16(d + 26) & 0x3FFF, h = le16(d + 28) & 0x3FFF;
      return true;
    }
  }
  return false;
}

std::atomic<int64_t> g_max_pixels{-1};  // -1: not decided yet (environment, then default)

void check_pixels(const std::string& name, uint64_t w, uint64_t h) {
  const int64_t cap = max_image_pixels();
  if (cap > 0 && w * h > static_cast<uint64_t>(cap))
    fail(name, "image too large: " + std::to_string(w) + "x" + std::to_string(h) + " = " + std::to_string(w * h) +
                   " pixels, over the limit of " + std::to_string(cap) +
                   " (a decompression bomb?); raise PHANTOM_MAX_IMAGE_PIXELS if the image is genuine");
}

}  // namespace

void set_max_image_pixels(int64_t n) { g_max_pixels.store(n); }

int64_t max_image_pixels() {
  int64_t n = g_max_pixels.load();
  if (n >= 0) return n;
  n = kDefaultMaxImagePixels;
  if (const char* env = std::getenv("PHANTOM_MAX_IMAGE_PIXELS"); env && *env) {
    int64_t v = 0;
    if (!util::parse_int(env, v) || v < 0)
      throw std::runtime_error(std::string("PHANTOM_MAX_IMAGE_PIXELS='") + env +
                               "': expected a non-negative decimal integer (0: no limit)");
    n = v;
  }
  g_max_pixels.store(n);
  return n;
}

RgbImage decode_image(const uint8_t* data, size_t size, const std::string& name) {
  if (size == 0) fail(name, "empty image file (0 bytes)");
  const bool jpeg = size >= 3 && data[0] == 0xFF && data[1] == 0xD8 && data[2] == 0xFF;
  if (jpeg && !jpeg_is_complete(data, size)) fail(name, "truncated JPEG (no end-of-image marker)");

  // Decompression bombs: a 1 MB PNG can declare 20000x20000 pixels (1.2 GB decoded). Refuse from the header.
  if (uint64_t w = 0, h = 0; header_size(data, size, w, h)) check_pixels(name, w, h);

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
  check_pixels(name, uint64_t(m.width), uint64_t(m.height));  // in case the header was not read above

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
  std::string bytes;
  try {
    bytes = util::read_regular_file(path, uint64_t(std::numeric_limits<int>::max()));  // never blocks on a FIFO
  } catch (const std::runtime_error& e) {
    std::string why = e.what();
    if (why.rfind(path + ": ", 0) == 0) why = why.substr(path.size() + 2);
    fail(path, why);
  }
  return decode_image(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size(), path);
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
