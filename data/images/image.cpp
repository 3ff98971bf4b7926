// InternVL's dynamic tiling as Phantom calls it (docs/paper.md, "Model"), the normalisation into the vision tower's input,
// and Phantom's side-by-side layout for several images in one question.
#include "data/images/image.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <stdexcept>
#include <string>

#include <torch/torch.h>

namespace phantom::data {

std::vector<Grid> candidate_grids(int min_num, int max_num) {
  if (min_num < 1 || max_num < min_num)
    throw std::runtime_error("tiling: need 1 <= min_num <= max_num, got " + std::to_string(min_num) + ", " +
                             std::to_string(max_num));
  std::vector<Grid> grids;
  for (int i = 1; i <= max_num; ++i)
    for (int j = 1; j <= max_num; ++j)
      if (i * j >= min_num && i * j <= max_num) grids.push_back({i, j});
  // Upstream sorts a Python set by product, so the order among equal products is the set's hash order. With
  // min_num = 1 it cannot change the result: two grids of one product tie only at the midpoint of their ratios,
  // where a third grid is strictly closer (docs/images.md; the tests compare with the Python code at those ties).
  std::stable_sort(grids.begin(), grids.end(),
                   [](const Grid& a, const Grid& b) { return a.cols * a.rows < b.cols * b.rows; });
  return grids;
}

Grid tile_grid(int width, int height, int max_num, int tile, int min_num) {
  if (width <= 0 || height <= 0 || tile <= 0)
    throw std::runtime_error("tiling: bad image size " + std::to_string(width) + "x" + std::to_string(height));
  // The same double arithmetic as find_closest_aspect_ratio, so exact ties resolve the same way.
  const double aspect = double(width) / double(height);
  const double area = double(width) * double(height);
  double best_diff = std::numeric_limits<double>::infinity();
  Grid best{1, 1};
  for (const Grid& g : candidate_grids(min_num, max_num)) {
    const double diff = std::abs(aspect - double(g.cols) / double(g.rows));
    if (diff < best_diff) {
      best_diff = diff;
      best = g;
    } else if (diff == best_diff && area > 0.5 * tile * tile * g.cols * g.rows) {
      best = g;  // a tie goes to the later (larger) grid when the image has the pixels for it
    }
  }
  return best;
}

std::vector<RgbImage> dynamic_preprocess(const RgbImage& image, const TileOptions& opt) {
  const Grid g = tile_grid(image.width, image.height, opt.max_num, opt.tile, opt.min_num);
  const RgbImage resized = resize_bicubic(image, opt.tile * g.cols, opt.tile * g.rows);
  std::vector<RgbImage> tiles;
  for (int i = 0; i < g.cols * g.rows; ++i)  // row-major
    tiles.push_back(crop(resized, (i % g.cols) * opt.tile, (i / g.cols) * opt.tile, opt.tile, opt.tile));
  if (opt.use_thumbnail && tiles.size() != 1) tiles.push_back(resize_bicubic(image, opt.tile, opt.tile));
  return tiles;
}

namespace {

// torchvision: ToTensor is `float(u8) / 255`, Normalize `(x - mean) / std`, all in float32. A table of the 256
// results per channel gives the same bits with two float divisions per value, not per pixel.
struct NormalizeLut {
  float v[3][256];
  NormalizeLut() {
    const float mean[3] = {0.485f, 0.456f, 0.406f};
    const float stdv[3] = {0.229f, 0.224f, 0.225f};
    for (int c = 0; c < 3; ++c)
      for (int i = 0; i < 256; ++i) v[c][i] = (float(i) / 255.0f - mean[c]) / stdv[c];
  }
};
const NormalizeLut& lut() {
  static const NormalizeLut table;
  return table;
}

// `count` pixels of an RGB row into the three planes of a CHW tile (HWC -> CHW).
inline void normalize_row(const uint8_t* p, size_t count, float* r, float* g, float* b, const NormalizeLut& t) {
  for (size_t i = 0; i < count; ++i, p += 3) {
    r[i] = t.v[0][p[0]];
    g[i] = t.v[1][p[1]];
    b[i] = t.v[2][p[2]];
  }
}

}  // namespace

void normalize_tiles_into(const uint8_t* tiles_u8, int64_t n, int tile, float* out) {
  const size_t plane = size_t(tile) * size_t(tile);
  const NormalizeLut& t = lut();
  for (int64_t i = 0; i < n; ++i, tiles_u8 += plane * 3, out += 3 * plane)
    normalize_row(tiles_u8, plane, out, out + plane, out + 2 * plane, t);
}

at::Tensor normalize_tiles(const std::vector<RgbImage>& tiles) {
  if (tiles.empty()) throw std::runtime_error("normalize_tiles: no tiles");
  const int s = tiles[0].width;
  at::Tensor out = torch::empty({int64_t(tiles.size()), 3, s, s}, torch::kFloat32);
  float* o = out.data_ptr<float>();
  const size_t plane = size_t(s) * s;
  for (const RgbImage& t : tiles) {
    if (t.width != s || t.height != s) throw std::runtime_error("normalize_tiles: tiles differ in size");
    normalize_tiles_into(t.pixels.data(), 1, s, o);
    o += 3 * plane;
  }
  return out;
}

int64_t tile_count(int width, int height, const TileOptions& opt) {
  const Grid g = tile_grid(width, height, opt.max_num, opt.tile, opt.min_num);
  const int64_t n = int64_t(g.cols) * g.rows;
  return n + (opt.use_thumbnail && n != 1 ? 1 : 0);
}

void preprocess_image_into(const RgbImage& image, const TileOptions& opt, float* out, uint8_t* tiles_u8) {
  const Grid g = tile_grid(image.width, image.height, opt.max_num, opt.tile, opt.min_num);
  const int S = opt.tile;
  const size_t plane = size_t(S) * S;
  const NormalizeLut& t = lut();
  // Row y of the image resized to the grid holds row y % S of the tiles (y / S) * cols + 0 .. cols - 1:
  // dynamic_preprocess's crops, row-major, without making them.
  auto to_tiles = [&](int first_tile, int cols) {
    return [&, first_tile, cols](int y, const uint8_t* row) {
      const int r = y / S, yy = y % S;
      for (int c = 0; c < cols; ++c) {
        const size_t tile = size_t(first_tile + r * cols + c);
        const uint8_t* p = row + size_t(c) * S * 3;
        float* o = out + tile * 3 * plane + size_t(yy) * S;
        normalize_row(p, size_t(S), o, o + plane, o + 2 * plane, t);
        if (tiles_u8) std::copy_n(p, size_t(S) * 3, tiles_u8 + (tile * plane + size_t(yy) * S) * 3);
      }
    };
  };
  resize_bicubic_rows(image, S * g.cols, S * g.rows, to_tiles(0, g.cols));
  const int n = g.cols * g.rows;
  if (opt.use_thumbnail && n != 1) resize_bicubic_rows(image, S, S, to_tiles(n, 1));
}

at::Tensor preprocess_image(const RgbImage& image, const TileOptions& opt) {
  at::Tensor out = torch::empty({tile_count(image.width, image.height, opt), 3, opt.tile, opt.tile}, torch::kFloat32);
  preprocess_image_into(image, opt, out.data_ptr<float>());
  return out;
}

RgbImage concat_horizontal(const std::vector<RgbImage>& images, int margin) {
  if (images.empty()) throw std::runtime_error("concat_horizontal: no images");
  int width = margin * int(images.size() - 1), height = 0;
  for (const RgbImage& im : images) {
    width += im.width;
    height = std::max(height, im.height);
  }
  RgbImage out(width, height);  // black
  int x = 0;
  for (const RgbImage& im : images) {
    const int y0 = (height - im.height) / 2;
    for (int r = 0; r < im.height; ++r) std::copy_n(im.row(r), size_t(im.width) * 3, out.row(y0 + r) + size_t(x) * 3);
    x += im.width + margin;
  }
  return out;
}

}  // namespace phantom::data
