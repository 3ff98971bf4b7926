// Decoding to 8-bit RGB with OpenCV, converted the way PIL's `Image.open(p).convert('RGB')` converts.
#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <stdexcept>

#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>

#include "data/images/image.h"

namespace phantom::data {
namespace {

[[noreturn]] void fail(const std::string& name, const std::string& what) {
  throw std::runtime_error(name + ": " + what);
}

// libjpeg decodes a truncated JPEG with a warning and grey fill, so OpenCV returns an image; PIL refuses it
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

// PIL decodes a PNG whose IEND chunk is missing (a common truncation that loses nothing); libpng, through
// OpenCV, refuses it. True when the data is a PNG that does not end in IEND.
constexpr uint8_t kPngSignature[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1A, '\n'};
constexpr uint8_t kPngIend[12] = {0, 0, 0, 0, 'I', 'E', 'N', 'D', 0xAE, 0x42, 0x60, 0x82};  // length, type, CRC
bool png_lacks_iend(const uint8_t* d, size_t n) {
  return n >= 8 && std::memcmp(d, kPngSignature, 8) == 0 && (n < 12 || std::memcmp(d + n - 12, kPngIend, 12) != 0);
}

}  // namespace

RgbImage decode_image(const uint8_t* data, size_t size, const std::string& name) {
  if (size == 0) fail(name, "empty image file (0 bytes)");
  if (size > size_t(std::numeric_limits<int>::max())) fail(name, "image file too large (over 2 GiB)");
  if (size >= 3 && data[0] == 0xFF && data[1] == 0xD8 && data[2] == 0xFF && !jpeg_is_complete(data, size))
    fail(name, "truncated JPEG (no end-of-image marker)");

  std::vector<uint8_t> patched;
  if (png_lacks_iend(data, size)) {  // append the IEND chunk (a PNG cut inside its pixel data still fails)
    patched.assign(data, data + size);
    patched.insert(patched.end(), kPngIend, kPngIend + 12);
    data = patched.data();
    size = patched.size();
  }

  cv::Mat m;
  try {
    // IMREAD_UNCHANGED: keep alpha and 16-bit samples so the conversion below is ours (PIL's), and ignore EXIF
    // orientation as PIL's Image.open does.
    m = cv::imdecode(cv::Mat(1, int(size), CV_8U, const_cast<uint8_t*>(data)), cv::IMREAD_UNCHANGED);
  } catch (const cv::Exception& e) {  // e.g. more pixels than OpenCV's limit (CV_IO_MAX_IMAGE_PIXELS)
    std::string why = e.err;
    std::replace(why.begin(), why.end(), '\n', ' ');
    fail(name, "cannot decode image (" + why + ")");
  }
  if (m.empty()) fail(name, "cannot decode image (corrupt, truncated, or not JPEG/PNG/WebP/BMP)");

  // 16-bit samples: keep the high byte, as PIL does for 16-bit RGB(A) PNGs. (PIL clips 16-bit grayscale to 255
  // instead, which whitens nearly every pixel; we deliberately do not copy that, see docs/images.md.)
  if (m.depth() == CV_16U) {
    cv::Mat m8(m.size(), CV_MAKETYPE(CV_8U, m.channels()));  // (convertTo would round, not take the high byte)
    for (int y = 0; y < m.rows; ++y) {
      const uint16_t* s = m.ptr<uint16_t>(y);
      uint8_t* t = m8.ptr<uint8_t>(y);
      for (int x = 0; x < m.cols * m.channels(); ++x) t[x] = uint8_t(s[x] >> 8);
    }
    m = m8;
  } else if (m.depth() != CV_8U) {
    fail(name, "unsupported sample type (only 8- and 16-bit images)");
  }

  const int c = m.channels();
  if (c != 1 && c != 2 && c != 3 && c != 4) fail(name, "unsupported channel count " + std::to_string(c));
  RgbImage out(m.cols, m.rows);
  for (int y = 0; y < m.rows; ++y) {
    const uint8_t* s = m.ptr<uint8_t>(y);
    uint8_t* t = out.row(y);
    for (int x = 0; x < m.cols; ++x, s += c, t += 3) {
      if (c <= 2) {  // gray (+ alpha): replicated, alpha dropped
        t[0] = t[1] = t[2] = s[0];
      } else {       // OpenCV's BGR(A) to RGB; alpha dropped without compositing, as convert('RGB')
        t[0] = s[2], t[1] = s[1], t[2] = s[0];
      }
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
