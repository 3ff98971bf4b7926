// InternVL's dynamic tiling as Phantom calls it (SPEC §1.4), the normalisation into the vision tower's input,
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

at::Tensor normalize_tiles(const std::vector<RgbImage>& tiles) {
  if (tiles.empty()) throw std::runtime_error("normalize_tiles: no tiles");
  const int s = tiles[0].width;
  // torchvision: ToTensor is `float(u8) / 255`, Normalize `(x - mean) / std`, all in float32. A table of the 256
  // results per channel gives the same bits with two float divisions per value, not per pixel.
  const float mean[3] = {0.485f, 0.456f, 0.406f};
  const float stdv[3] = {0.229f, 0.224f, 0.225f};
  float lut[3][256];
  for (int c = 0; c < 3; ++c)
    for (int v = 0; v < 256; ++v) lut[c][v] = (float(v) / 255.0f - mean[c]) / stdv[c];

  at::Tensor out = torch::empty({int64_t(tiles.size()), 3, s, s}, torch::kFloat32);
  float* o = out.data_ptr<float>();
  const size_t plane = size_t(s) * s;
  for (const RgbImage& t : tiles) {
    if (t.width != s || t.height != s) throw std::runtime_error("normalize_tiles: tiles differ in size");
    const uint8_t* p = t.pixels.data();
    for (size_t i = 0; i < plane; ++i, p += 3) {  // HWC -> CHW
      o[i] = lut[0][p[0]];
      o[plane + i] = lut[1][p[1]];
      o[2 * plane + i] = lut[2][p[2]];
    }
    o += 3 * plane;
  }
  return out;
}

at::Tensor preprocess_image(const RgbImage& image, const TileOptions& opt) {
  return normalize_tiles(dynamic_preprocess(image, opt));
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
