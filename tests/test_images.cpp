// Image preprocessing against the Python stack Phantom was trained with (PIL + numpy, tests/tools/
// image_reference.py): tile grids, PIL's bicubic resampling, decoding of every format, the final normalised tiles,
// the multi-image layout, and errors for bad files; tiles written in place and the image cache against the
// step-by-step functions.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <set>

#include <nlohmann/json.hpp>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include "data/images/image.h"
#include "data/images/tile_batch.h"
#include "phantom/util/logf.h"
#include "tests/helpers.h"

using namespace phantom::data;
using nlohmann::json;
using phantom::test::TempDir;

namespace {

// Runs the reference tool: `image_reference.py <command> <out>`.
void run_reference(const std::string& command, const std::string& out) {
  const std::string tool = phantom::test::source_path("tests/tools/image_reference.py");
  const std::string cmd = std::string(PHANTOM_PYTHON) + " " + tool + " " + command + " " + out;
  INFO(cmd);
  REQUIRE(std::system(cmd.c_str()) == 0);
}

std::vector<uint8_t> read_bytes(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  REQUIRE(f);
  return {std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>()};
}

json read_json(const std::string& path) { return json::parse(std::ifstream(path)); }

RgbImage read_raw(const std::string& path, int w, int h) {
  RgbImage im(w, h);
  im.pixels = read_bytes(path);
  REQUIRE(im.pixels.size() == size_t(w) * h * 3);
  return im;
}

// Absolute differences of two equally long arrays: mean, max, how many differ.
struct Diff {
  double sum = 0, max = 0;
  size_t n = 0, differ = 0;
  template <class T>
  void add(const T* a, const T* b, size_t count) {
    for (size_t i = 0; i < count; ++i) {
      const double d = std::abs(double(a[i]) - double(b[i]));
      sum += d;
      max = std::max(max, d);
      differ += d != 0;
    }
    n += count;
  }
  double mean() const { return n ? sum / double(n) : 0.0; }
  std::string str() const {
    return fmt::format("mean {:.3g} max {:.3g} ({} of {} values differ)", mean(), max, differ, n);
  }
};

bool lossy(const std::string& file) {
  return file.find(".jpg") != std::string::npos || file == "lossy.webp";
}

// How far our decode may be from PIL's, in uint8 levels. Measured: 0 everywhere (CMYK JPEG included: we convert
// with PIL's own formula). The lossy bounds leave room for other libjpeg-turbo/libwebp builds than the ones
// measured (docs/images.md); lossless formats must be exact.
struct Tolerance {
  double max, mean;
};
Tolerance decode_tolerance(const std::string& file) {
  if (lossy(file)) return {8, 0.05};
  return {0, 0};
}

}  // namespace

TEST_CASE("image: tile grids equal InternVL's find_closest_aspect_ratio, exact ties included") {
  // hand-checked cases first: 448-multiples, and the (1,1)-vs-(2,2) tie of square images at 0.5*448^2*4 pixels
  CHECK(tile_grid(448, 448, 6) == Grid{1, 1});
  CHECK(tile_grid(896, 448, 6) == Grid{2, 1});
  CHECK(tile_grid(448, 1344, 6) == Grid{1, 3});
  CHECK(tile_grid(1344, 896, 6) == Grid{3, 2});
  CHECK(tile_grid(633, 633, 6) == Grid{1, 1});  // 400689 pixels <= 401408
  CHECK(tile_grid(634, 634, 6) == Grid{2, 2});  // 401956 pixels >  401408
  CHECK(tile_grid(5000, 10, 6) == Grid{6, 1});
  CHECK_THROWS_WITH(tile_grid(0, 10, 6), Catch::Contains("bad image size"));

  TempDir t;
  run_reference("grids", t.str("grids.json"));
  const json ref = read_json(t.str("grids.json"));
  for (auto& [max_num, grids] : ref["candidates"].items()) {  // the same set, sorted by product
    std::set<std::pair<int, int>> want, got;
    std::vector<int> products;
    for (auto& g : grids) want.insert({g[0].get<int>(), g[1].get<int>()});
    for (const Grid& g : candidate_grids(1, std::stoi(max_num))) {
      got.insert({g.cols, g.rows});
      products.push_back(g.cols * g.rows);
    }
    CHECK(got == want);
    CHECK(std::is_sorted(products.begin(), products.end()));
  }
  size_t mismatches = 0;
  for (auto& c : ref["cases"]) {
    const Grid g = tile_grid(c["w"], c["h"], c["max_num"], ref["tile"]);
    if (g.cols != c["grid"][0] || g.rows != c["grid"][1]) {
      if (++mismatches <= 10)
        FAIL_CHECK(fmt::format("{}x{} max_num {}: ours {}x{}, InternVL {}", int(c["w"]), int(c["h"]),
                               int(c["max_num"]), g.cols, g.rows, c["grid"].dump()));
    }
  }
  phantom::log::info("tile grids: {} sizes compared with the Python reference, {} mismatches", ref["cases"].size(),
                     mismatches);
  CHECK(mismatches == 0);
}

TEST_CASE("image: bicubic resize is byte-exact with PIL's Image.resize") {
  TempDir t;
  run_reference("resize", t.str());
  const json ref = read_json(t.str("manifest.json"));
  Diff ours, opencv;
  size_t exact = 0;
  for (auto& c : ref["cases"]) {
    const RgbImage src = read_raw(t.str(c["src"]), c["w"], c["h"]);
    const RgbImage want = read_raw(t.str(c["dst"]), c["tw"], c["th"]);
    const RgbImage got = resize_bicubic(src, c["tw"], c["th"]);
    REQUIRE(got.width == want.width);
    REQUIRE(got.height == want.height);
    Diff d;
    d.add(got.pixels.data(), want.pixels.data(), got.pixels.size());
    ours.add(got.pixels.data(), want.pixels.data(), got.pixels.size());
    exact += d.max == 0;
    if (d.max > 0) FAIL_CHECK(fmt::format("{}x{} -> {}x{}: {}", int(c["w"]), int(c["h"]), int(c["tw"]),
                                          int(c["th"]), d.str()));
    // For the record: what OpenCV's INTER_CUBIC (a = -0.75, no antialiasing) would have given instead.
    cv::Mat s(src.height, src.width, CV_8UC3, const_cast<uint8_t*>(src.pixels.data())), o;
    cv::resize(s, o, cv::Size(c["tw"], c["th"]), 0, 0, cv::INTER_CUBIC);
    opencv.add(o.ptr<uint8_t>(), want.pixels.data(), want.pixels.size());
  }
  phantom::log::info("resize vs PIL over {} size pairs ({} byte-exact): {}", ref["cases"].size(), exact, ours.str());
  phantom::log::info("(OpenCV INTER_CUBIC vs PIL, for comparison: {})", opencv.str());
  CHECK(ours.max == 0);
}

TEST_CASE("image: decoding matches PIL's Image.open(p).convert('RGB') for every format") {
  TempDir t;
  run_reference("files", t.str());
  const json ref = read_json(t.str("manifest.json"));
  for (auto& f : ref["files"]) {
    const std::string file = f["file"];
    const RgbImage got = load_image(t.str(file));
    const RgbImage want = read_raw(t.str(f["decoded"]), f["w"], f["h"]);
    REQUIRE(got.width == want.width);
    REQUIRE(got.height == want.height);
    Diff d;
    d.add(got.pixels.data(), want.pixels.data(), got.pixels.size());
    phantom::log::info("decode {:<16} PIL mode {:<5} {}", file, std::string(f["pil_mode"]), d.str());
    if (f["decoded"] != f["pil_decoded"]) {  // a deliberate deviation (16-bit grayscale): how far from PIL
      const RgbImage pil = read_raw(t.str(f["pil_decoded"]), f["w"], f["h"]);
      Diff p;
      p.add(got.pixels.data(), pil.pixels.data(), got.pixels.size());
      phantom::log::info("       {:<16} vs PIL's own (clipped) decode: {}", file, p.str());
    }
    INFO(file << ": " << d.str());
    CHECK(d.max <= decode_tolerance(file).max);
    CHECK(d.mean() <= decode_tolerance(file).mean);
  }
}

TEST_CASE("image: preprocessed tiles match the PIL + numpy pipeline") {
  TempDir t;
  run_reference("files", t.str());
  const json ref = read_json(t.str("manifest.json"));
  Diff lossless_all, lossy_all;
  for (auto& f : ref["files"]) {
    const std::string file = f["file"];
    TileOptions opt;
    opt.tile = f["tile"];
    opt.max_num = f["max_num"];
    const at::Tensor got = preprocess_image(load_image(t.str(file)), opt);
    const Grid g = tile_grid(f["w"], f["h"], opt.max_num, opt.tile);
    CHECK(g == Grid{f["grid"][0], f["grid"][1]});
    const int64_t n = f["n_tiles"];
    REQUIRE(got.sizes() == at::IntArrayRef({n, 3, opt.tile, opt.tile}));
    REQUIRE(got.scalar_type() == at::kFloat);
    const std::vector<uint8_t> raw = read_bytes(t.str(f["tensor"]));
    REQUIRE(raw.size() == size_t(got.numel()) * sizeof(float));
    const float* want = reinterpret_cast<const float*>(raw.data());
    Diff d;
    d.add(got.data_ptr<float>(), want, size_t(got.numel()));
    (lossy(file) ? lossy_all : lossless_all).add(got.data_ptr<float>(), want, size_t(got.numel()));
    phantom::log::info("tiles  {:<16} {}x{} grid {}x{} + {} -> {}", file, int(f["w"]), int(f["h"]), g.cols,
                       g.rows, n - g.cols * g.rows, d.str());
    INFO(file << ": " << d.str());
    // Exact where the decode is; else a level of input difference may become two after the bicubic's
    // negative lobes. One uint8 level is 1/255/std ~ 0.0175 after normalisation.
    const Tolerance tol = decode_tolerance(file);
    CHECK(d.max <= (tol.max == 0 ? 0.0 : (tol.max + 1) / 255 / 0.224 + 1e-5));
    CHECK(d.mean() <= tol.mean / 255 / 0.224 + 1e-7);
  }
  phantom::log::info("tiles, lossless formats: {}", lossless_all.str());
  phantom::log::info("tiles, JPEG and lossy WebP: {}", lossy_all.str());
}

TEST_CASE("image: several images side by side, 10-px black margin, vertically centred") {
  TempDir t;
  run_reference("concat", t.str());
  const json ref = read_json(t.str("manifest.json"));
  std::vector<RgbImage> parts;
  for (auto& p : ref["parts"]) parts.push_back(read_raw(t.str(p["file"]), p["w"], p["h"]));
  const RgbImage got = concat_horizontal(parts, ref["margin"]);
  const RgbImage want = read_raw(t.str(ref["file"]), ref["w"], ref["h"]);
  REQUIRE(got.width == want.width);
  REQUIRE(got.height == want.height);
  CHECK(got.pixels == want.pixels);
  CHECK(concat_horizontal({parts[0]}).pixels == parts[0].pixels);
  CHECK_THROWS_WITH(concat_horizontal({}), Catch::Contains("no images"));
}

TEST_CASE("image: bad files give one-line errors naming the file") {
  TempDir t;
  cv::Mat m(40, 60, CV_8UC3, cv::Scalar(10, 200, 30));
  cv::randu(m, 0, 255);
  auto encoded = [&](const std::string& ext) {
    std::vector<uint8_t> b;
    REQUIRE(cv::imencode(ext, m, b));
    return std::string(b.begin(), b.end());
  };
  const std::string png = encoded(".png"), jpg = encoded(".jpg"), webp = encoded(".webp"), bmp = encoded(".bmp");
  REQUIRE(load_image(t.file("ok.png", png)).width == 60);  // the encoded images themselves are fine
  REQUIRE(load_image(t.file("ok.jpg", jpg)).height == 40);
  // what PIL accepts, we accept: bytes after a JPEG's end-of-image marker, a PNG without its IEND chunk
  CHECK(load_image(t.file("trailing.jpg", jpg + std::string("\0\xff\xda junk", 8))).width == 60);
  CHECK(load_image(t.file("no_iend.png", png.substr(0, png.size() - 12))).width == 60);

  const std::vector<std::pair<std::string, std::string>> bad = {
      {t.str("missing.png"), "cannot open"},
      {t.file("empty.jpg", ""), "empty image file"},
      {t.file("notes.png", "this is a text file, not an image\n"), "cannot decode"},
      {t.file("cut.png", png.substr(0, png.size() / 2)), "cannot decode"},
      {t.file("cut.jpg", jpg.substr(0, jpg.size() / 2)), "truncated JPEG"},
      {t.file("no_eoi.jpg", jpg.substr(0, jpg.size() - 2)), "truncated JPEG"},
      {t.file("cut.webp", webp.substr(0, webp.size() / 2)), "cannot decode"},
      {t.file("cut.bmp", bmp.substr(0, bmp.size() / 2)), "cannot decode"},
      {t.file("header_only.png", png.substr(0, 40)), "cannot decode"},
      {t.str(), "is a directory"},
  };
  for (const auto& [path, what] : bad) {
    INFO(path);
    std::string msg;
    try {
      load_image(path);
    } catch (const std::runtime_error& e) {
      msg = e.what();
    }
    phantom::log::info("error: {}", msg);
    CHECK(msg.find(path + ": ") == 0);
    CHECK(msg.find(what) != std::string::npos);
    CHECK(msg.find('\n') == std::string::npos);
  }
}

namespace {

// A random RGB image (smooth enough that the bicubic lobes overshoot and clamp somewhere).
RgbImage random_image(int w, int h, int seed) {
  cv::Mat m(h, w, CV_8UC3);
  cv::theRNG().state = uint64_t(seed) + 1;
  cv::randu(m, 0, 256);
  RgbImage im(w, h);
  std::copy_n(m.ptr<uint8_t>(), im.pixels.size(), im.pixels.data());
  return im;
}

std::string write_png(const TempDir& t, const std::string& name, const RgbImage& im) {
  cv::Mat m(im.height, im.width, CV_8UC3, const_cast<uint8_t*>(im.pixels.data())), bgr;
  cv::cvtColor(m, bgr, cv::COLOR_RGB2BGR);
  const std::string path = t.str(name);
  REQUIRE(cv::imwrite(path, bgr));
  return path;
}

// The tiles as the step-by-step functions make them: resize, crop each tile, thumbnail, then normalise.
at::Tensor tiles_step_by_step(const RgbImage& im, const TileOptions& opt) {
  return normalize_tiles(dynamic_preprocess(im, opt));
}

bool same_bits(const at::Tensor& a, const at::Tensor& b) {
  return a.sizes() == b.sizes() && std::memcmp(a.data_ptr(), b.data_ptr(), size_t(a.nbytes())) == 0;
}

}  // namespace

TEST_CASE("image: tiles written in place have the bits of resize + crop + normalise") {
  // Sizes that take every path of the resampler: both passes, width unchanged (vertical only), height unchanged
  // (horizontal only), nothing to resize, a 1x1 grid (no thumbnail), odd and tiny sizes, up- and downscaling.
  struct Case {
    int w, h, tile, max_num;
    bool thumb;
  };
  for (auto c : {Case{1600, 900, 448, 6, true}, Case{96, 50, 32, 6, true}, Case{64, 45, 32, 6, true},
                 Case{37, 32, 32, 6, true}, Case{32, 32, 32, 6, true}, Case{31, 97, 32, 6, true},
                 Case{5, 3, 32, 12, true}, Case{300, 200, 64, 6, false}, Case{640, 481, 64, 1, true}}) {
    INFO(c.w << "x" << c.h << " tile " << c.tile << " max " << c.max_num << " thumbnail " << c.thumb);
    TileOptions opt;
    opt.tile = c.tile, opt.max_num = c.max_num, opt.use_thumbnail = c.thumb;
    const RgbImage im = random_image(c.w, c.h, c.w * 7 + c.h);
    const at::Tensor want = tiles_step_by_step(im, opt);
    CHECK(tile_count(c.w, c.h, opt) == want.size(0));
    CHECK(same_bits(preprocess_image(im, opt), want));
    // Into caller memory between two guard regions that must stay untouched; with the 8-bit copy for the cache.
    const int64_t n = want.numel();
    std::vector<float> buf(size_t(n) + 64, -7.f);
    std::vector<uint8_t> u8(size_t(want.size(0)) * c.tile * c.tile * 3);
    preprocess_image_into(im, opt, buf.data() + 32, u8.data());
    CHECK(std::memcmp(buf.data() + 32, want.data_ptr<float>(), size_t(n) * sizeof(float)) == 0);
    CHECK(std::all_of(buf.begin(), buf.begin() + 32, [](float v) { return v == -7.f; }));
    CHECK(std::all_of(buf.end() - 32, buf.end(), [](float v) { return v == -7.f; }));
    std::vector<float> again(static_cast<size_t>(n));
    normalize_tiles_into(u8.data(), want.size(0), c.tile, again.data());
    CHECK(std::memcmp(again.data(), want.data_ptr<float>(), size_t(n) * sizeof(float)) == 0);
  }
  // The resampler on its own still equals the step-by-step crop of its output (both passes, one row at a time).
  const RgbImage im = random_image(200, 120, 3);
  const RgbImage r = resize_bicubic(im, 64, 96);
  std::vector<uint8_t> rows(size_t(64) * 96 * 3);
  resize_bicubic_rows(im, 64, 96, [&](int y, const uint8_t* row) { std::copy_n(row, 64 * 3, rows.data() + size_t(y) * 64 * 3); });
  CHECK(rows == r.pixels);
}

TEST_CASE("image: a batch of images tiled into one buffer, and the cache keys on file, mtime and tiling") {
  TempDir t;
  TileOptions opt;
  opt.tile = 32;
  const std::vector<RgbImage> ims = {random_image(100, 40, 1), random_image(30, 30, 2), random_image(50, 90, 3)};
  std::vector<std::string> paths;
  for (size_t i = 0; i < ims.size(); ++i) paths.push_back(write_png(t, "im" + std::to_string(i) + ".png", ims[i]));
  std::vector<at::Tensor> parts;
  for (auto& im : ims) parts.push_back(preprocess_image(im, opt));
  const at::Tensor want = torch::cat(parts, 0);

  auto tile_all = [&](ImageCache* cache, const TileOptions& o) {
    TileBatch b(o, cache);
    int64_t n = 0;
    for (auto& p : paths) n += b.add(p);
    // A skipped sample's image is dropped again.
    const size_t before = b.size();
    b.add(paths[0]);
    b.truncate(before);
    REQUIRE(n == b.total_tiles());
    at::Tensor out = torch::full({n, 3, o.tile, o.tile}, -7.f);
    b.write(out.data_ptr<float>());
    return out;
  };
  CHECK(same_bits(tile_all(nullptr, opt), want));
  CHECK_THROWS_WITH(TileBatch(opt).add(t.str("missing.png")), Catch::Contains(t.str("missing.png") + ": cannot open"));

  ImageCache cache(64 << 20);
  CHECK(same_bits(tile_all(&cache, opt), want));  // fills the cache
  auto s = cache.stats();
  CHECK(s.misses == 4);  // 3 images + the dropped one
  CHECK(s.entries == 3);
  CHECK(s.bytes == size_t(want.size(0)) * 32 * 32 * 3);
  CHECK(same_bits(tile_all(&cache, opt), want));  // every image from the cache, same bits
  CHECK(cache.stats().hits == 4);

  // Another tiling is another key.
  TileOptions no_thumb = opt;
  no_thumb.use_thumbnail = false;
  const at::Tensor nt = tile_all(&cache, no_thumb);
  CHECK(cache.stats().hits == 4);
  CHECK(nt.size(0) == want.size(0) - 2);  // two of the three images have several tiles
  // An edited file (new mtime) is a miss and gives the new image's tiles.
  const RgbImage edited = random_image(100, 40, 9);
  write_png(t, "im0.png", edited);
  std::filesystem::last_write_time(paths[0], std::filesystem::last_write_time(paths[0]) + std::chrono::seconds(10));
  const auto hits = cache.stats().hits;
  const at::Tensor e = tile_all(&cache, opt);
  CHECK(cache.stats().hits == hits + 2);  // the two others
  CHECK(same_bits(e.narrow(0, 0, parts[0].size(0)), preprocess_image(edited, opt)));
  CHECK(same_bits(e.narrow(0, parts[0].size(0), want.size(0) - parts[0].size(0)), want.narrow(0, parts[0].size(0), want.size(0) - parts[0].size(0))));

  // Least recently used first out; an entry over the whole budget is not kept.
  const size_t one = size_t(parts[1].size(0)) * 32 * 32 * 3;
  ImageCache small(one * 2);
  auto entry = [&](size_t bytes) {
    auto c = std::make_shared<CachedTiles>();
    c->count = 1, c->bytes.assign(bytes, 1);
    return c;
  };
  small.put("a", entry(one)), small.put("b", entry(one));
  CHECK(small.get("a"));  // a is now the most recent
  small.put("c", entry(one));
  CHECK(small.get("a"));
  CHECK_FALSE(small.get("b"));
  small.put("huge", entry(one * 3));
  CHECK_FALSE(small.get("huge"));
  CHECK(small.stats().bytes == 2 * one);
}
