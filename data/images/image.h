// Images for the vision tower, exactly as Phantom's Python preprocessing makes them (docs/paper.md, "Model"): decode to 8-bit
// RGB like PIL's `Image.open(p).convert('RGB')`, InternVL's dynamic tiling with PIL's bicubic resampling,
// ImageNet normalisation. See docs/images.md for the decisions and the measured differences against PIL.
//
//   image_decode.cpp   decoding (codec_*.cpp: libjpeg-turbo, libpng, libwebp, BMP), conversion to RGB, errors
//   image_resize.cpp   PIL's resampling (bicubic), byte-exact
//   image.cpp          tile grid, dynamic_preprocess, normalisation, multi-image concatenation
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include <ATen/core/Tensor.h>

namespace phantom::data {

// An 8-bit RGB image: rows top to bottom, pixels R,G,B interleaved (PIL's "RGB" layout, numpy's HWC).
struct RgbImage {
  int width = 0;
  int height = 0;
  std::vector<uint8_t> pixels;  // height * width * 3

  RgbImage() = default;
  RgbImage(int w, int h) : width(w), height(h), pixels(size_t(w) * size_t(h) * 3, 0) {}
  uint8_t* row(int y) { return pixels.data() + size_t(y) * size_t(width) * 3; }
  const uint8_t* row(int y) const { return pixels.data() + size_t(y) * size_t(width) * 3; }
};

// ---- decoding (image_decode.cpp) -------------------------------------------------------------------------------
// JPEG, PNG, WebP, BMP. Grayscale is replicated to RGB, alpha is dropped
// without compositing (as PIL's convert('RGB')), 16-bit samples keep their high byte. Errors are one-line
// std::runtime_error naming the file: missing, empty, truncated or not an image.
RgbImage load_image(const std::string& path);
// The same from bytes in memory; `name` is what errors call the data (a path, an archive member).
RgbImage decode_image(const uint8_t* data, size_t size, const std::string& name);

// ---- resampling (image_resize.cpp) -----------------------------------------------------------------------------
// PIL's `Image.resize((width, height))` with its default filter for RGB images (BICUBIC): the same coefficient
// tables, 22-bit fixed point and per-pass rounding, so the bytes equal Pillow's. Same size: a copy.
RgbImage resize_bicubic(const RgbImage& in, int width, int height);

// The same resampling handing each output row (y, width * 3 bytes, valid during the call) to `sink` instead of
// building an image: the tiling writes rows straight into the batch tensor. Scratch buffers are per thread.
using RowSink = std::function<void(int y, const uint8_t* row)>;
void resize_bicubic_rows(const RgbImage& in, int width, int height, const RowSink& sink);

// PIL's `crop((x, y, x + w, y + h))` for a box inside the image.
RgbImage crop(const RgbImage& in, int x, int y, int w, int h);

// ---- tiling (image.cpp) ----------------------------------------------------------------------------------------
struct Grid {
  int cols = 1;  // tiles across (InternVL's ratio[0])
  int rows = 1;  // tiles down (ratio[1])
  bool operator==(const Grid& o) const { return cols == o.cols && rows == o.rows; }
};

// Grids with min_num <= cols*rows <= max_num, sorted by cols*rows (the order InternVL scans them in).
std::vector<Grid> candidate_grids(int min_num, int max_num);

// The grid InternVL's find_closest_aspect_ratio picks for a width x height image: the closest ratio cols/rows to
// width/height; on an exact tie a later grid wins when width*height > 0.5 * tile^2 * cols*rows.
Grid tile_grid(int width, int height, int max_num, int tile = 448, int min_num = 1);

struct TileOptions {
  int tile = 448;              // tile side (InternViT-300M-448px)
  int min_num = 1;
  int max_num = 6;             // Phantom: 6
  bool use_thumbnail = true;   // append the whole image as a tile when there are several
};

// InternVL's dynamic_preprocess: resize to (tile*cols, tile*rows), crop row-major, thumbnail last.
std::vector<RgbImage> dynamic_preprocess(const RgbImage& image, const TileOptions& opt = {});

// torchvision's ToTensor + Normalize(ImageNet mean, std) on tile-sized images: (n, 3, tile, tile) float32,
// bit-identical to the float32 arithmetic of the Python pipeline.
at::Tensor normalize_tiles(const std::vector<RgbImage>& tiles);

// dynamic_preprocess + normalize_tiles: what the vision tower gets for one image.
at::Tensor preprocess_image(const RgbImage& image, const TileOptions& opt = {});

// How many tiles dynamic_preprocess makes of a width x height image (the grid, + 1 for the thumbnail).
int64_t tile_count(int width, int height, const TileOptions& opt = {});

// preprocess_image into memory the caller owns, without intermediate tiles: the resized rows go through the
// normalisation straight into `out`, tile_count(...) * 3 * tile * tile floats (the same bits as preprocess_image).
// `tiles_u8`, when not null, also receives the 8-bit tiles (tile_count * tile * tile * 3, HWC): the image cache.
void preprocess_image_into(const RgbImage& image, const TileOptions& opt, float* out, uint8_t* tiles_u8 = nullptr);

// normalize_tiles from `n` 8-bit HWC tiles of side `tile` in one buffer (the image cache's entries) into `out`.
void normalize_tiles_into(const uint8_t* tiles_u8, int64_t n, int tile, float* out);

// Phantom's multi-image layout (docs/paper.md, "Model"): side by side, `margin` black pixels between, each image vertically
// centred (top offset (max_height - height) / 2, rounded down) on a black canvas.
RgbImage concat_horizontal(const std::vector<RgbImage>& images, int margin = 10);

}  // namespace phantom::data
