// BMP, our own reader (libjpeg/libpng/libwebp have no BMP counterpart and the format is small): Windows headers
// (40-124 bytes) and OS/2 core headers, 1/4/8-bit palettes, 16/24/32-bit pixels, uncompressed or with bit masks,
// bottom-up or top-down. RLE and embedded JPEG/PNG are refused. Channels scale as PIL's unpackers do
// (5-bit 0..31 -> v * 255 / 31); 32-bit alpha is dropped like any alpha.
#include <cstdint>
#include <string>

#include "data/images/codecs.h"

namespace phantom::data::codecs {
namespace {

uint32_t u16(const uint8_t* p) { return uint32_t(p[0]) | uint32_t(p[1]) << 8; }
uint32_t u32(const uint8_t* p) { return u16(p) | u16(p + 2) << 16; }

// One channel from a bit mask: (pixel & mask) >> shift, scaled to 0..255.
struct Channel {
  uint32_t mask = 0, shift = 0, max = 0;
  explicit Channel(uint32_t m = 0) : mask(m) {
    if (!m) return;
    while (!((m >> shift) & 1)) ++shift;
    max = m >> shift;
  }
  uint8_t operator()(uint32_t px) const { return max ? uint8_t(((px & mask) >> shift) * 255 / max) : 0; }
};

}  // namespace

Samples decode_bmp(const uint8_t* d, size_t n) {
  if (n < 26) throw DecodeError("BMP: truncated header");
  const uint32_t offset = u32(d + 10), hsize = u32(d + 14);
  const bool core = hsize == 12;
  if (!core && (hsize < 40 || hsize > 124)) throw DecodeError("BMP: unknown header size " + std::to_string(hsize));
  if (n < 14 + size_t(hsize)) throw DecodeError("BMP: truncated header");
  const uint8_t* h = d + 14;
  int64_t width = core ? int64_t(u16(h + 4)) : int64_t(int32_t(u32(h + 4)));
  int64_t height = core ? int64_t(u16(h + 6)) : int64_t(int32_t(u32(h + 8)));
  const uint32_t bpp = core ? u16(h + 10) : u16(h + 14);
  const uint32_t compression = core ? 0 : u32(h + 16);
  const bool top_down = height < 0;
  if (top_down) height = -height;
  if (width <= 0 || height <= 0 || width > INT32_MAX || height > INT32_MAX)
    throw DecodeError("BMP: bad size " + std::to_string(width) + "x" + std::to_string(height));
  if (compression != 0 && compression != 3 && compression != 6)
    throw DecodeError("BMP: compression " + std::to_string(compression) + " (RLE, JPEG, PNG) is not supported");
  if (bpp != 1 && bpp != 4 && bpp != 8 && bpp != 16 && bpp != 24 && bpp != 32)
    throw DecodeError("BMP: " + std::to_string(bpp) + " bits per pixel is not supported");

  // Masks: in the header from 52 bytes on, else after a 40-byte header when compression says so.
  Channel r, g, b;
  if (compression == 3 || compression == 6) {
    if (bpp != 16 && bpp != 32) throw DecodeError("BMP: bit masks need 16 or 32 bits per pixel");
    const uint8_t* m = hsize >= 52 ? h + 40 : h + hsize;
    if (m + 12 > d + n) throw DecodeError("BMP: truncated header");
    r = Channel(u32(m)), g = Channel(u32(m + 4)), b = Channel(u32(m + 8));
  } else if (bpp == 16) {
    r = Channel(0x7C00), g = Channel(0x03E0), b = Channel(0x001F);  // x1r5g5b5
  }

  // Palette (BGR + a reserved byte; 3 bytes in core headers) between the headers and the pixels.
  std::vector<uint8_t> palette;  // RGB triples
  if (bpp <= 8) {
    const size_t entry = core ? 3 : 4;
    size_t count = core ? 0 : u32(h + 32);
    if (count == 0 || count > (1u << bpp)) count = size_t(1) << bpp;
    const size_t start = 14 + size_t(hsize) + (compression == 3 && hsize == 40 ? 12 : 0);
    if (start + count * entry > n) throw DecodeError("BMP: truncated palette");
    palette.assign(3 * (size_t(1) << bpp), 0);  // indices past `count` read black
    for (size_t i = 0; i < count; ++i) {
      const uint8_t* e = d + start + i * entry;
      palette[3 * i] = e[2], palette[3 * i + 1] = e[1], palette[3 * i + 2] = e[0];
    }
  }

  const size_t stride = (size_t(width) * bpp + 31) / 32 * 4;
  if (offset > n || stride * size_t(height) > n - offset) throw DecodeError("BMP: truncated pixel data");
  Samples out;
  out.allocate(int(width), int(height), 3);
  for (int64_t y = 0; y < height; ++y) {
    const uint8_t* s = d + offset + stride * size_t(top_down ? y : height - 1 - y);
    uint8_t* t = out.data.data() + size_t(y) * size_t(width) * 3;
    for (int64_t x = 0; x < width; ++x, t += 3) {
      if (bpp <= 8) {
        const size_t bit = size_t(x) * bpp;
        const uint32_t idx = (s[bit / 8] >> (8 - bpp - bit % 8)) & ((1u << bpp) - 1);
        const uint8_t* c = palette.data() + 3 * size_t(idx);
        t[0] = c[0], t[1] = c[1], t[2] = c[2];
      } else if (bpp == 24 || (bpp == 32 && compression == 0)) {
        const uint8_t* p = s + size_t(x) * (bpp / 8);
        t[0] = p[2], t[1] = p[1], t[2] = p[0];
      } else {
        const uint32_t px = bpp == 16 ? u16(s + 2 * size_t(x)) : u32(s + 4 * size_t(x));
        t[0] = r(px), t[1] = g(px), t[2] = b(px);
      }
    }
  }
  return out;
}

}  // namespace phantom::data::codecs
