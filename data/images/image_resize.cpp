// PIL's bicubic resampling for 8-bit images, reproduced so our tiles carry the same bytes as Phantom's Python
// pipeline (Pillow's `Image.resize`, src/libImaging/Resample.c). What makes it differ from OpenCV's INTER_CUBIC:
//  - the cubic kernel uses a = -0.5 (OpenCV: -0.75);
//  - when shrinking, the kernel is stretched by the scale factor (support 2*scale), i.e. it antialiases;
//  - weights are normalised per output pixel, then rounded to 22-bit fixed point;
//  - two separable passes, horizontal then vertical, each rounding and clamping to uint8;
//  - a pass whose size does not change is skipped entirely (not an identity filter).
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <stdexcept>
#include <string>
#include <vector>

#include "data/images/image.h"

namespace phantom::data {
namespace {

constexpr int kPrecisionBits = 32 - 8 - 2;  // Pillow: 8 bits of result, 2 bits of headroom for overshoot

// Keys' cubic convolution kernel with a = -0.5, support 2 (same expression order as Pillow, for equal doubles).
double bicubic(double x) {
  constexpr double a = -0.5;
  if (x < 0.0) x = -x;
  if (x < 1.0) return ((a + 2.0) * x - (a + 3.0)) * x * x + 1;
  if (x < 2.0) return (((x - 5) * x + 8) * x - 4) * a;
  return 0.0;
}

// For each output position: the first input index, how many inputs it reads, and their fixed-point weights.
struct Taps {
  int stride = 0;              // weights per output position (Pillow's ksize)
  std::vector<int> first, count;
  std::vector<int32_t> weight; // out_size * stride
};

Taps precompute(int in_size, int out_size) {
  const double scale = double(in_size) / out_size;
  const double filterscale = std::max(scale, 1.0);  // shrinking widens the kernel: antialiasing
  const double support = 2.0 * filterscale;
  Taps t;
  t.stride = int(std::ceil(support)) * 2 + 1;
  t.first.resize(out_size);
  t.count.resize(out_size);
  t.weight.assign(size_t(out_size) * t.stride, 0);
  std::vector<double> w(t.stride);
  for (int xx = 0; xx < out_size; ++xx) {
    const double center = (xx + 0.5) * scale;
    const double ss = 1.0 / filterscale;
    int xmin = int(center - support + 0.5);  // truncation toward zero, as Pillow's (int) cast
    if (xmin < 0) xmin = 0;
    int xmax = int(center + support + 0.5);
    if (xmax > in_size) xmax = in_size;
    const int n = xmax - xmin;
    double sum = 0.0;
    for (int x = 0; x < n; ++x) {
      w[x] = bicubic((x + xmin - center + 0.5) * ss);
      sum += w[x];
    }
    int32_t* k = &t.weight[size_t(xx) * t.stride];
    for (int x = 0; x < n; ++x) {
      const double v = sum != 0.0 ? w[x] / sum : w[x];
      // round half away from zero into 22-bit fixed point
      k[x] = v < 0 ? int32_t(-0.5 + v * (1 << kPrecisionBits)) : int32_t(0.5 + v * (1 << kPrecisionBits));
    }
    t.first[xx] = xmin;
    t.count[xx] = n;
  }
  return t;
}

// Accumulators start at one half (rounding); the result is floor(acc / 2^22) clamped to [0, 255].
constexpr int32_t kHalf = 1 << (kPrecisionBits - 1);
inline uint8_t clip8(int32_t acc) {
  if (acc < 0) return 0;
  acc >>= kPrecisionBits;
  return acc > 255 ? 255 : uint8_t(acc);
}

// The two passes are most of the pipeline's CPU time: compiled with the vectoriser on, and with an AVX2 clone
// picked at load time where the CPU has it (the integer sums are exact, so every clone gives the same bytes).
#define PHANTOM_HOT_LOOP __attribute__((optimize("O3"), target_clones("avx2", "default")))

// Four int32 lanes: R, G, B and one unused lane, so a pixel's three channels are summed in one vector operation
// (the interleaved 3-channel layout and per-pixel tap counts keep the compiler from vectorising the scalar loop).
typedef int32_t v4i32 __attribute__((vector_size(16)));
typedef uint8_t v4u8 __attribute__((vector_size(4)));

typedef int32_t v8i32 __attribute__((vector_size(32)));
typedef uint8_t v8u8 __attribute__((vector_size(8)));

// One output pixel of the horizontal pass: R, G, B (and an unused lane) summed in one vector per tap.
static inline void horizontal_pixel(const uint8_t* src, uint8_t* dst, const Taps& t, int xx) {
  const int32_t* k = &t.weight[size_t(xx) * t.stride];
  const uint8_t* s = src + size_t(t.first[xx]) * 3;
  v4i32 acc = {kHalf, kHalf, kHalf, kHalf};
  for (int x = 0; x < t.count[xx]; ++x, s += 3) {
    v4u8 px;
    std::memcpy(&px, s, 4);
    acc += __builtin_convertvector(px, v4i32) * k[x];
  }
  dst[xx * 3 + 0] = clip8(acc[0]);
  dst[xx * 3 + 1] = clip8(acc[1]);
  dst[xx * 3 + 2] = clip8(acc[2]);
}

// One output row of the horizontal pass. `src` must be readable one byte past its last pixel (the 4th lane).
// Two neighbouring output pixels with the same tap count go through one 8-lane vector (AVX2 clone): the same
// integer sums, so the bytes are Pillow's.
PHANTOM_HOT_LOOP void horizontal_row(const uint8_t* src, uint8_t* dst, const Taps& t, int width) {
  int xx = 0;
  for (; xx + 1 < width; xx += 2) {
    const int n = t.count[xx];
    if (n != t.count[xx + 1]) {
      horizontal_pixel(src, dst, t, xx);
      horizontal_pixel(src, dst, t, xx + 1);
      continue;
    }
    const int32_t* ka = &t.weight[size_t(xx) * t.stride];
    const int32_t* kb = &t.weight[size_t(xx + 1) * t.stride];
    const uint8_t* sa = src + size_t(t.first[xx]) * 3;
    const uint8_t* sb = src + size_t(t.first[xx + 1]) * 3;
    v8i32 acc = {kHalf, kHalf, kHalf, kHalf, kHalf, kHalf, kHalf, kHalf};
    for (int x = 0; x < n; ++x, sa += 3, sb += 3) {
      v4u8 pa, pb;
      std::memcpy(&pa, sa, 4);
      std::memcpy(&pb, sb, 4);
      const v8u8 p = __builtin_shufflevector(pa, pb, 0, 1, 2, 3, 4, 5, 6, 7);
      const v8i32 w = {ka[x], ka[x], ka[x], ka[x], kb[x], kb[x], kb[x], kb[x]};
      acc += __builtin_convertvector(p, v8i32) * w;
    }
    dst[xx * 3 + 0] = clip8(acc[0]);
    dst[xx * 3 + 1] = clip8(acc[1]);
    dst[xx * 3 + 2] = clip8(acc[2]);
    dst[xx * 3 + 3] = clip8(acc[4]);
    dst[xx * 3 + 4] = clip8(acc[5]);
    dst[xx * 3 + 5] = clip8(acc[6]);
  }
  if (xx < width) horizontal_pixel(src, dst, t, xx);
}

// Horizontal pass into `out` (reshaped, its buffer reused).
void resample_horizontal(const RgbImage& in, int width, RgbImage& out) {
  const Taps t = precompute(in.width, width);
  out.width = width, out.height = in.height;
  out.pixels.resize(size_t(width) * size_t(in.height) * 3);
  thread_local std::vector<uint8_t> last;  // the last row, padded: the 4-byte loads read one byte past a pixel
  for (int y = 0; y < in.height; ++y) {
    const uint8_t* src = in.row(y);
    if (y == in.height - 1) {
      last.assign(src, src + size_t(in.width) * 3);
      last.push_back(0);
      src = last.data();
    }
    horizontal_row(src, out.row(y), t, width);
  }
}

PHANTOM_HOT_LOOP void vertical_row(const RgbImage& in, const Taps& t, int yy, int32_t* acc, uint8_t* dst) {
  const int n = in.width * 3;
  // Row by row over the taps (cache friendly); integer sums are exact, so the order does not change a bit.
  for (int i = 0; i < n; ++i) acc[i] = kHalf;
  const int32_t* k = &t.weight[size_t(yy) * t.stride];
  for (int y = 0; y < t.count[yy]; ++y) {
    const uint8_t* s = in.row(t.first[yy] + y);
    const int32_t ky = k[y];
    for (int i = 0; i < n; ++i) acc[i] += s[i] * ky;
  }
  for (int i = 0; i < n; ++i) dst[i] = clip8(acc[i]);
}

// Vertical pass, each output row handed to `sink`.
void resample_vertical(const RgbImage& in, int height, const RowSink& sink) {
  const Taps t = precompute(in.height, height);
  thread_local std::vector<int32_t> acc;
  thread_local std::vector<uint8_t> row;
  acc.resize(size_t(in.width) * 3);
  row.resize(size_t(in.width) * 3);
  for (int yy = 0; yy < height; ++yy) {
    vertical_row(in, t, yy, acc.data(), row.data());
    sink(yy, row.data());
  }
}

}  // namespace

void resize_bicubic_rows(const RgbImage& in, int width, int height, const RowSink& sink) {
  if (width <= 0 || height <= 0 || in.width <= 0 || in.height <= 0)
    throw std::runtime_error("resize_bicubic: empty size " + std::to_string(in.width) + "x" +
                             std::to_string(in.height) + " -> " + std::to_string(width) + "x" +
                             std::to_string(height));
  // Pillow resamples horizontally first, then vertically, skipping a pass whose size is unchanged.
  if (width == in.width && height == in.height) {
    for (int y = 0; y < height; ++y) sink(y, in.row(y));
    return;
  }
  if (width == in.width) return resample_vertical(in, height, sink);
  thread_local RgbImage h;  // the horizontal pass's output; its buffer is reused from image to image
  resample_horizontal(in, width, h);
  if (height == in.height) {
    for (int y = 0; y < height; ++y) sink(y, h.row(y));
    return;
  }
  resample_vertical(h, height, sink);
}

RgbImage resize_bicubic(const RgbImage& in, int width, int height) {
  RgbImage out(width > 0 && height > 0 ? width : 0, width > 0 && height > 0 ? height : 0);
  resize_bicubic_rows(in, width, height, [&](int y, const uint8_t* row) {
    std::copy_n(row, size_t(width) * 3, out.row(y));
  });
  return out;
}

RgbImage crop(const RgbImage& in, int x, int y, int w, int h) {
  if (x < 0 || y < 0 || w < 0 || h < 0 || x + w > in.width || y + h > in.height)
    throw std::runtime_error("crop: box outside the image");
  RgbImage out(w, h);
  for (int r = 0; r < h; ++r) std::copy_n(in.row(y + r) + size_t(x) * 3, size_t(w) * 3, out.row(r));
  return out;
}

}  // namespace phantom::data
