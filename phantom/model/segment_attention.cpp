#include "phantom/model/segment_attention.h"

#include <string>

namespace phantom {

void check_layout(const SegmentLayout& layout, int64_t B, int64_t L) {
  TORCH_CHECK(static_cast<int64_t>(layout.rows.size()) == B, "segment layout has ", layout.rows.size(),
              " rows for a batch of ", B);
  for (size_t r = 0; r < layout.rows.size(); ++r) {
    int64_t t = 0;
    for (size_t s = 0; s < layout.rows[r].size(); ++s) {
      const auto& g = layout.rows[r][s];
      TORCH_CHECK(g.start == t && g.length >= 0 && g.start + g.length <= L, "segment ", s, " of row ", r,
                  " is [", g.start, ", ", g.start + g.length, "): segments must follow each other from 0 within ",
                  L, " positions");
      TORCH_CHECK(g.prefix_length == 0 || (g.prefix_start >= 0 && g.prefix_start + g.prefix_length <= g.start),
                  "segment ", s, " of row ", r, ": its prefix must lie before it");
      t += g.length;
    }
  }
}

at::Tensor segment_attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                             const SegmentLayout& layout, double scale) {
  const int64_t B = q.size(0), H = q.size(1), L = q.size(2), Hk = k.size(1);
  check_layout(layout, B, L);
  const bool gqa = H != Hk;
  std::vector<at::Tensor> rows;
  rows.reserve(static_cast<size_t>(B));
  for (int64_t b = 0; b < B; ++b) {
    auto qb = q.narrow(0, b, 1), kb = k.narrow(0, b, 1), vb = v.narrow(0, b, 1);
    std::vector<at::Tensor> parts;
    int64_t t = 0;
    for (const auto& g : layout.rows[static_cast<size_t>(b)]) {
      if (g.length == 0) continue;
      auto qs = qb.narrow(2, g.start, g.length);
      auto ks = kb.narrow(2, g.start, g.length), vs = vb.narrow(2, g.start, g.length);
      if (g.prefix_length == 0) {
        parts.push_back(at::scaled_dot_product_attention(qs, ks, vs, std::nullopt, 0.0, /*is_causal=*/true, scale, gqa));
      } else {
        // [prefix | own] keys; the own part causal. Mask (length, prefix + length), true = may attend.
        auto kk = torch::cat({kb.narrow(2, g.prefix_start, g.prefix_length), ks}, 2);
        auto vv = torch::cat({vb.narrow(2, g.prefix_start, g.prefix_length), vs}, 2);
        auto opts = torch::TensorOptions().dtype(torch::kBool).device(q.device());
        auto own = torch::ones({g.length, g.length}, opts).tril();
        auto mask = torch::cat({torch::ones({g.length, g.prefix_length}, opts), own}, 1);
        parts.push_back(at::scaled_dot_product_attention(qs, kk, vv, mask, 0.0, false, scale, gqa));
      }
      t = g.start + g.length;
    }
    if (t < L) parts.push_back(torch::zeros({1, H, L - t, q.size(3)}, q.options()));
    rows.push_back(parts.size() == 1 ? parts[0] : torch::cat(parts, 2));
  }
  return B == 1 ? rows[0] : torch::cat(rows, 0);
}

std::pair<at::Tensor, at::Tensor> segment_sos(const SegmentLayout& layout, int64_t L, const c10::Device& device) {
  const auto B = static_cast<int64_t>(layout.rows.size());
  std::vector<std::vector<int64_t>> sos(static_cast<size_t>(B));
  auto slot = torch::zeros({B, L}, torch::kInt64);
  auto sl = slot.accessor<int64_t, 2>();
  int64_t S = 1;
  for (int64_t b = 0; b < B; ++b) {
    auto& row = sos[static_cast<size_t>(b)];
    std::vector<int64_t> slot_of_start;  // slot of the sequence starting at each segment start
    for (const auto& g : layout.rows[static_cast<size_t>(b)]) {
      int64_t s;
      if (g.prefix_length == 0) {
        s = static_cast<int64_t>(row.size());
        row.push_back(g.start);
      } else {
        // The sequence the prefix belongs to: the last sequence started at or before the prefix's start.
        s = 0;
        for (size_t i = 0; i < row.size(); ++i)
          if (row[i] <= g.prefix_start) s = static_cast<int64_t>(i);
      }
      for (int64_t t = g.start; t < g.start + g.length; ++t) sl[b][t] = s;
    }
    S = std::max<int64_t>(S, static_cast<int64_t>(row.size()));
  }
  auto pos = torch::zeros({B, S}, torch::kInt64);
  auto ps = pos.accessor<int64_t, 2>();
  for (int64_t b = 0; b < B; ++b)
    for (size_t i = 0; i < sos[static_cast<size_t>(b)].size(); ++i) ps[b][static_cast<int64_t>(i)] = sos[static_cast<size_t>(b)][i];
  return {pos.to(device), slot.to(device)};
}

at::Tensor segment_positions(const SegmentLayout& layout, int64_t L, const c10::Device& device) {
  const auto B = static_cast<int64_t>(layout.rows.size());
  auto pos = torch::zeros({B, L}, torch::kInt64);
  auto p = pos.accessor<int64_t, 2>();
  for (int64_t b = 0; b < B; ++b)
    for (const auto& g : layout.rows[static_cast<size_t>(b)])
      for (int64_t i = 0; i < g.length; ++i) p[b][g.start + i] = (g.prefix_length ? g.prefix_length : 0) + i;
  return pos.to(device);
}

}  // namespace phantom
