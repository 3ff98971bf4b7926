// The trainer's batch maker on real image files: tiles written once, straight into one pooled tensor that the
// collate passes on without a copy, equal to per-image preprocessing; pixel buffers reused only once a batch is
// gone; the image cache giving the same batches; the buffer pool on its own.
#include <cstring>
#include <mutex>

#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>

#include "data/annotations.h"
#include "data/chat_template.h"
#include "data/images/image.h"
#include "data/tensor_pool.h"
#include "data/tokenizers/tokenizer.h"
#include "tests/helpers.h"
#include "tests/tiny.h"
#include "trainers/recipe/batches.h"

using namespace phantom;
using phantom::test::TempDir;

namespace {

bool same_bits(const at::Tensor& a, const at::Tensor& b) {
  return a.sizes() == b.sizes() && a.is_contiguous() && b.is_contiguous() &&
         std::memcmp(a.data_ptr(), b.data_ptr(), size_t(a.nbytes())) == 0;
}

// Preference triples over photos of different shapes (different tile counts), and one file that is no image.
struct ImageSet {
  test::DemoDataDir demo{4};  // for its tokenizer
  TempDir t;
  std::string jsonl;
  std::vector<std::string> images = {"wide.png", "square.jpg", "bad.png", "tall.png"};
  ImageSet() {
    const std::vector<std::pair<int, int>> sizes = {{120, 40}, {30, 30}, {0, 0}, {50, 90}};
    std::string rows;
    for (size_t i = 0; i < images.size(); ++i) {
      if (sizes[i].first == 0) {
        t.file(images[i], "not an image");
      } else {
        cv::Mat m(sizes[i].second, sizes[i].first, CV_8UC3);
        cv::theRNG().state = i + 1;
        cv::randu(m, 0, 256);
        REQUIRE(cv::imwrite(t.str(images[i]), m));
      }
      rows += R"({"question": "What is in picture )" + std::to_string(i) + R"(?", "chosen": "a cat", "rejected": "a dog sitting", "image": ")" +
              images[i] + "\"}\n";
    }
    jsonl = t.file("train.jsonl", rows);
  }
};

struct Maker {
  recipe::RunConfig cfg;
  data::SampleSet samples;
  std::unique_ptr<data::Tokenizer> tok;
  std::unique_ptr<data::SampleEncoder> enc;
  data::TileOptions tiles;
  std::mutex mu;
  data::SkipCounts skipped;
  Maker(const ImageSet& s, int64_t cache_mb) {
    cfg.data.format = "preference";
    cfg.data.image_root = s.t.str();
    cfg.data.on_error = "skip";
    cfg.data.max_length = 100000;
    cfg.data.prefetch = 2;
    cfg.data.image_cache_mb = cache_mb;
    samples = data::SampleSet(data::read_annotations(s.jsonl, cfg.data, skipped), true);
    tok = data::load_tokenizer(s.demo.dir.str("data/tokenizer.json"));
    enc = std::make_unique<data::SampleEncoder>(*tok, data::ChatTemplate::by_name("chatml"),
                                                data::ImageTokens::from_tokenizer(*tok, 4));
    tiles.tile = 32;
  }
  recipe::BatchMaker make(bool shared_prefix) {
    return recipe::BatchMaker{cfg, samples, *enc, tiles, 0, true, shared_prefix, &mu, &skipped};
  }
  at::Tensor want(const std::vector<std::string>& files, const ImageSet& s) {
    std::vector<at::Tensor> parts;
    for (auto& f : files) parts.push_back(data::preprocess_image(data::load_image(s.t.str(f)), tiles));
    return torch::cat(parts, 0);
  }
};

}  // namespace

TEST_CASE("batches: tiles go straight into one pooled tensor, no copy, buffers reused once a batch is gone") {
  ImageSet s;
  Maker m(s, 0);
  auto maker = m.make(true);
  REQUIRE_FALSE(maker.image_cache);

  auto b = maker({0, 1, 2, 3});  // sample 2's image does not decode: skipped, its tiles never written
  CHECK(m.skipped.by_reason["unreadable image"] == 1);
  CHECK(b.sample_index.equal(torch::tensor({0, 1, 3}, torch::kInt64)));
  const at::Tensor want = m.want({"wide.png", "square.jpg", "tall.png"}, s);
  CHECK(same_bits(b.pixel_values, want));
  CHECK(maker.pixel_pool->allocations() == 1);
  // No second copy: the batch's tiles are the pool's buffer itself (the collate kept the per-sample views).
  void* first = b.pixel_values.data_ptr();

  // While a batch is held, the next one gets another buffer and leaves it alone.
  const at::Tensor kept = b.pixel_values.clone();
  auto b2 = maker({3, 1});
  CHECK(b2.pixel_values.data_ptr() != first);
  CHECK(maker.pixel_pool->allocations() == 2);
  CHECK(same_bits(b.pixel_values, kept));
  CHECK(same_bits(b2.pixel_values, m.want({"tall.png", "square.jpg"}, s)));

  // Once a batch and every view of it are gone, its buffer serves the next batch (no new pages).
  b = data::Batch{};
  auto b3 = maker({1, 0});
  CHECK(b3.pixel_values.data_ptr() == first);
  CHECK(maker.pixel_pool->allocations() == 2);
  CHECK(maker.pixel_pool->reuses() == 1);
  CHECK(same_bits(b3.pixel_values, m.want({"square.jpg", "wide.png"}, s)));

  // Copies of the maker (validation, the reference pass) share its pool.
  auto copy = maker;
  CHECK(copy.pixel_pool == maker.pixel_pool);

  // The naive layout: every (question, answer) row carries its question's tiles, the same bits.
  auto naive = m.make(false);
  auto bn = naive({0, 3});
  CHECK(same_bits(bn.pixel_values, m.want({"wide.png", "wide.png", "tall.png", "tall.png"}, s)));
}

TEST_CASE("batches: the image cache (data.image_cache_mb) gives the same batches, keyed per file") {
  ImageSet s;
  Maker m(s, 16);
  auto maker = m.make(true);
  REQUIRE(maker.image_cache);
  const at::Tensor want = m.want({"wide.png", "square.jpg", "tall.png"}, s);
  for (int pass = 0; pass < 3; ++pass) {
    INFO("pass " << pass);
    auto b = maker({0, 1, 2, 3});
    CHECK(same_bits(b.pixel_values, want));
  }
  const auto st = maker.image_cache->stats();
  CHECK(st.entries == 3);      // the undecodable file is never cached
  CHECK(st.hits == 2 * 3);     // passes 2 and 3
  CHECK(st.misses == 3 + 3);   // pass 1's three images, and the bad file in every pass
  CHECK(m.skipped.by_reason["unreadable image"] == 3);
}

TEST_CASE("batches: the tensor pool reuses a free buffer, grows a small one, never hands out one in use") {
  data::TensorPool pool(2);
  at::Tensor a = pool.empty({4, 3});
  void* pa = a.data_ptr();
  at::Tensor view = a.narrow(0, 1, 2);  // a view keeps the buffer in use
  a = at::Tensor();
  at::Tensor b = pool.empty({4, 3});
  CHECK(b.data_ptr() != pa);
  CHECK(pool.allocations() == 2);
  view = at::Tensor();
  at::Tensor c = pool.empty({2, 5});  // fits the free first buffer (12 + 3 headroom floats)
  CHECK(c.data_ptr() == pa);
  CHECK(c.sizes() == at::IntArrayRef({2, 5}));
  CHECK(c.is_contiguous());
  CHECK(pool.reuses() == 1);
  at::Tensor d = pool.empty({3});  // both buffers in use, the pool is full: a plain tensor
  CHECK(pool.allocations() == 3);
  CHECK(d.data_ptr() != pa);
  b = at::Tensor();
  c = at::Tensor();
  at::Tensor e = pool.empty({100});  // larger than every free buffer: one is replaced by a larger one
  CHECK(pool.allocations() == 4);
  e = at::Tensor();
  CHECK(pool.empty({100}).numel() == 100);
  CHECK(pool.reuses() == 2);
}
