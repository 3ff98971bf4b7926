// Segment layouts (phantom/util/segment_layout.h): per-segment attention equals attention under the dense mask it
// replaces; packed SFT rows equal the padded batch; the shared-prefix PO row equals the naive layout without
// images and under activation checkpointing (with images: tests/test_trainer.cpp).
#include "tests/test_pch.h"

#include "data/collate.h"
#include "phantom/model/model.h"
#include "phantom/model/segment_attention.h"
#include "tests/tiny.h"
#include "trainers/recipe/losses.h"

using namespace phantom;
using phantom::test::grads_of;

namespace {

// The dense (L, L) mask a layout stands for: a segment's query sees its prefix and itself causally.
at::Tensor dense_mask(const SegmentLayout& layout, int64_t L) {
  const auto B = static_cast<int64_t>(layout.rows.size());
  auto m = torch::zeros({B, 1, L, L}, torch::kBool);
  for (int64_t b = 0; b < B; ++b) {
    int64_t end = 0;
    for (auto& g : layout.rows[static_cast<size_t>(b)]) {
      for (int64_t i = 0; i < g.length; ++i) {
        const int64_t t = g.start + i;
        for (int64_t j = 0; j < g.prefix_length; ++j) m[b][0][t][g.prefix_start + j] = true;
        for (int64_t j = g.start; j <= t; ++j) m[b][0][t][j] = true;
      }
      end = g.start + g.length;
    }
    for (int64_t t = end; t < L; ++t) m[b][0][t][t] = true;  // padding: itself (finite softmax), output unused
  }
  return m;
}

double max_diff(const at::Tensor& a, const at::Tensor& b) { return (a - b).abs().max().item<double>(); }

double max_grad_diff(const std::map<std::string, at::Tensor>& a, const std::map<std::string, at::Tensor>& b) {
  REQUIRE(!a.empty());
  REQUIRE(a.size() == b.size());
  double worst = 0;
  for (auto& [k, v] : a) worst = std::max(worst, max_diff(v, b.at(k)));
  return worst;
}

std::vector<int32_t> ids(int64_t n, int64_t seed) {
  std::vector<int32_t> v;
  for (int64_t i = 0; i < n; ++i) v.push_back(static_cast<int32_t>(10 + (seed * 31 + i * 7) % 54));
  return v;
}

// An SFT sample [sos, image tokens?, question | answer], the answer supervised.
data::EncodedConversation sft_sample(int64_t q_len, int64_t a_len, int64_t image_tokens, int64_t seed) {
  data::EncodedConversation c;
  c.ids = {7};
  for (int64_t i = 0; i < image_tokens; ++i) c.ids.push_back(5);
  auto q = ids(q_len, seed), a = ids(a_len, seed + 1000);
  c.ids.insert(c.ids.end(), q.begin(), q.end());
  c.labels.assign(c.ids.size(), data::kIgnore);
  c.ids.insert(c.ids.end(), a.begin(), a.end());
  c.labels.insert(c.labels.end(), a.begin(), a.end());
  return c;
}

}  // namespace

TEST_CASE("segments: per-segment attention equals SDPA under the dense mask (GQA, prefixes, packing, padding)") {
  torch::manual_seed(0);
  const int64_t L = 23;
  SegmentLayout layout;
  layout.rows = {
      {{0, 9, 0, 0}, {9, 4, 0, 9}, {13, 6, 0, 9}},  // prompt + two answers, 4 padding positions
      {{0, 5, 0, 0}, {5, 11, 0, 0}, {16, 7, 0, 0}},  // three packed samples, no padding
  };
  auto q = torch::randn({2, 4, L, 8}, torch::kDouble).requires_grad_(true);
  auto k = torch::randn({2, 2, L, 8}, torch::kDouble).requires_grad_(true);
  auto v = torch::randn({2, 2, L, 8}, torch::kDouble).requires_grad_(true);
  auto ours = segment_attention(q, k, v, layout, 0.3);
  auto ref = at::scaled_dot_product_attention(q, k, v, dense_mask(layout, L), 0.0, false, 0.3, /*enable_gqa=*/true);
  // Compare the real positions (padding outputs are unused: ours gives zeros there).
  auto real = torch::ones({2, 1, L, 1}, torch::kDouble);
  real.narrow(2, 19, 4).select(0, 0).zero_();
  CHECK(max_diff(ours * real, ref * real) < 1e-10);
  auto w = torch::randn_like(ref) * real;
  auto g_ours = torch::autograd::grad({(ours * w).sum()}, {q, k, v});
  auto g_ref = torch::autograd::grad({(ref * w).sum()}, {q, k, v});
  for (size_t i = 0; i < 3; ++i) CHECK(max_diff(g_ours[i], g_ref[i]) < 1e-10);

  // Malformed layouts are refused with the row and segment named.
  SegmentLayout gap;
  gap.rows = {{{0, 4, 0, 0}, {5, 3, 0, 0}}, {{0, 2, 0, 0}}};
  CHECK_THROWS_WITH(segment_attention(q, k, v, gap, 0.3), Catch::Contains("segment 1 of row 0"));
}

TEST_CASE("segments: packed SFT rows equal the padded batch in loss and gradients (images, Phantom, checkpointing)") {
  torch::manual_seed(1);
  PhantomModel model(test::tiny_vlm_config());  // Phantom gate, eta 0.3: the sos of each packed sample matters
  init_weights(*model, 0.2);
  const int64_t tpt = model->tokens_per_tile();
  std::vector<data::EncodedConversation> samples = {sft_sample(3, 4, tpt, 1), sft_sample(9, 2, 0, 2),
                                                    sft_sample(2, 7, tpt, 3), sft_sample(5, 3, 0, 4),
                                                    sft_sample(1, 12, tpt, 5)};
  std::vector<at::Tensor> pixels = {torch::randn({1, 3, 28, 28}), at::Tensor(), torch::randn({1, 3, 28, 28}),
                                    at::Tensor(), torch::randn({1, 3, 28, 28})};
  recipe::LossConfig lc{recipe::LossKind::sft, 2.0, 0.5, 1.0};
  auto padded = data::collate_sft(samples, pixels, 0);
  auto packed = data::collate_sft_packed(samples, pixels, 0, 2 * tpt + 16);
  REQUIRE(packed.input_ids.size(0) < padded.input_ids.size(0));  // several samples share a row
  CHECK(packed.num_tokens == padded.num_tokens);
  CHECK(packed.num_sft_tokens == padded.num_sft_tokens);
  CHECK(packed.num_slots < padded.num_slots);
  // Positions restart for every sample of a row.
  for (auto& g : packed.segments->rows[0]) CHECK(packed.positions[0][g.start].item<int64_t>() == 0);

  for (bool checkpointing : {false, true}) {
    INFO("activation checkpointing " << checkpointing);
    model->language_model->activation_checkpointing = checkpointing;
    model->train();
    auto run = [&](const data::Batch& b) {
      model->zero_grad();
      auto out = recipe::batch_loss(*model, b, lc, {b.num_sft_tokens, 0});
      out.loss.backward();
      return std::make_pair(out.loss.item<double>(), grads_of(*model));
    };
    auto [l_pad, g_pad] = run(padded);
    auto [l_pack, g_pack] = run(packed);
    CHECK(std::abs(l_pad - l_pack) < 1e-5);
    CHECK(max_grad_diff(g_pad, g_pack) < 1e-5);
  }
  // (eta 0.3: had a packed sample used its row's first sos instead of its own, the losses would differ.)
}

TEST_CASE("segments: shared-prefix PO equals the naive layout without images and under activation checkpointing") {
  torch::manual_seed(2);
  PhantomModel model(test::tiny_vlm_config());
  init_weights(*model, 0.2);
  model->language_model->activation_checkpointing = true;
  model->train();
  for (int64_t n_rej : {1, 3}) {
    INFO(n_rej << " rejected");
    std::vector<data::EncodedPreference> qs;
    for (int64_t s = 0; s < 3; ++s) {
      data::EncodedPreference p;
      p.prompt = {7};
      auto q = ids(5 + s, s);
      p.prompt.insert(p.prompt.end(), q.begin(), q.end());
      for (int64_t a = 0; a <= n_rej; ++a) p.answers.push_back(ids(2 + a + s, 50 * s + a));
      qs.push_back(p);
    }
    recipe::LossConfig lc{recipe::LossKind::po, 2.0, 0.5, 1.0};
    auto run = [&](bool shared) {
      model->zero_grad();
      auto b = data::collate_preference(qs, {}, 0, shared);
      if (shared) CHECK(b.segments);
      auto out = recipe::batch_loss(*model, b, lc, {b.num_sft_tokens, b.num_questions});
      out.loss.backward();
      return std::make_pair(out.loss.item<double>(), grads_of(*model));
    };
    auto [l_shared, g_shared] = run(true);
    auto [l_naive, g_naive] = run(false);
    CHECK(std::abs(l_shared - l_naive) < 1e-5);
    CHECK(max_grad_diff(g_shared, g_naive) < 1e-5);
  }
}
