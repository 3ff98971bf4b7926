#include "phantom/model/attention.h"

#include <cmath>

#include "phantom/model/segment_attention.h"

namespace phantom {
namespace F = torch::nn::functional;

PhantomMode parse_phantom_mode(const std::string& s) {
  if (s == "off") return PhantomMode::off;
  if (s == "sum") return PhantomMode::sum;
  if (s == "mean") return PhantomMode::mean;
  if (s == "gate") return PhantomMode::gate;
  throw std::runtime_error("unknown Phantom mode '" + s + "' (expected off | sum | mean | gate)");
}

XAttentionImpl::XAttentionImpl(int64_t d) : head_dim(d) {
  auto lin = [&](const char* name) {
    return register_module(name, Linear(d, d, false));
  };
  linear_q = lin("linear_q");
  linear_k = lin("linear_k");
  linear_v = lin("linear_v");
  linear_o = lin("linear_o");
}

// Rows b of x (B, L, H, D) at index[b]: index (B,) -> (B, 1, H, D); (B, S) -> (B, S, H, D).
static at::Tensor gather_positions(const at::Tensor& x, const at::Tensor& index) {
  const int64_t S = index.dim() == 1 ? 1 : index.size(1);
  auto idx = index.reshape({x.size(0), S, 1, 1}).expand({x.size(0), S, x.size(2), x.size(3)});
  return x.gather(1, idx);
}

at::Tensor XAttentionImpl::forward(const at::Tensor& x, const at::Tensor& s, const at::Tensor& slot) {
  auto q = exact_gelu(linear_q(x));                 // (B, L, H, D)
  auto k = exact_gelu(linear_k(s));                 // (B, 1 | S, Hs, D)
  auto v = exact_gelu(linear_v(s));                 // (B, 1 | S, Hs, D)
  const double root_d = std::sqrt(static_cast<double>(head_dim));
  at::Tensor y;
  if (!slot.defined() && s.size(1) == 1) {
    // One sos per row: every position attends over the same Hs vectors, so all L x H queries of a row go through
    // one GEMM (B, L*H, D) x (B, D, Hs) instead of L tiny broadcast ones.
    const int64_t B = x.size(0), L = x.size(1), H = x.size(2), D = x.size(3);
    auto kf = k.squeeze(1), vf = v.squeeze(1);                                          // (B, Hs, D)
    auto scores = torch::bmm(q.reshape({B, L * H, D}), kf.transpose(1, 2)) / root_d;    // (B, L*H, Hs)
    y = torch::bmm(torch::softmax(scores, -1), vf).view({B, L, H, D});
  } else {
    if (slot.defined()) k = gather_positions(k, slot), v = gather_positions(v, slot);  // (B, L, Hs, D)
    auto scores = torch::matmul(q, k.transpose(-2, -1)) / root_d;  // (B, L, H, Hs)
    y = torch::matmul(torch::softmax(scores, -1), v);             // (B, L, H, D)
  }
  return exact_gelu(linear_o(y));
}

void KVCache::select(const at::Tensor& index) {
  for (auto& l : layers) {
    for (at::Tensor* t : {&l.k, &l.v, &l.q_s, &l.k_s, &l.v_s})
      if (t->defined()) *t = t->index_select(0, index);
  }
  if (valid.defined()) valid = valid.index_select(0, index);
}

at::Tensor causal_padding_mask(const at::Tensor& valid, int64_t past, int64_t L) {
  const int64_t T = valid.size(1);
  auto opts = torch::TensorOptions().dtype(torch::kInt64).device(valid.device());
  auto qpos = torch::arange(past, past + L, opts).view({L, 1});
  auto kpos = torch::arange(0, T, opts).view({1, T});
  auto causal = kpos.le(qpos);                                   // (L, T)
  auto mask = causal.unsqueeze(0) & valid.view({-1, 1, T});      // (B, L, T)
  auto self = kpos.eq(qpos).unsqueeze(0);                        // a query always sees itself
  mask = mask | (self & mask.any(-1, true).logical_not());
  return mask.unsqueeze(1);
}

DecoderAttentionImpl::DecoderAttentionImpl(const LlmConfig& cfg, PhantomMode mode_, double eta_)
    : num_heads(cfg.num_heads), num_kv_heads(cfg.num_kv_heads), head_dim(cfg.head_dim()), mode(mode_), eta(eta_) {
  const int64_t C = cfg.hidden_size, D = head_dim;
  qkv_proj = register_module(
      "qkv_proj", Linear(C, (num_heads + 2 * num_kv_heads) * D, cfg.attention_bias));
  // InternLM2's `bias` covers wo as well as wqkv; Qwen2's q/k/v bias does not reach o_proj.
  o_proj = register_module("o_proj", Linear(num_heads * D, C, cfg.family == "internlm2" && cfg.attention_bias));
  if (mode != PhantomMode::off) {
    xattn_query_phantom = register_module("xattn_query_phantom", XAttention(D));
    xattn_key_phantom = register_module("xattn_key_phantom", XAttention(D));
    xattn_value_phantom = register_module("xattn_value_phantom", XAttention(D));
    if (mode == PhantomMode::gate) {
      gating_phantom_1 = register_module("gating_phantom_1", Linear(D, 1));
      gating_phantom_2 = register_module("gating_phantom_2", Linear(D, 1));
    }
  }
}

at::Tensor DecoderAttentionImpl::forward(const at::Tensor& h, const AttentionInputs& in, const Rope& rope,
                                         LayerCache* cache) {
  const int64_t B = h.size(0), L = h.size(1), H = num_heads, Hk = num_kv_heads, D = head_dim;
  auto qkv = qkv_proj(h);
  auto q = qkv.narrow(-1, 0, H * D).view({B, L, H, D});
  auto k = qkv.narrow(-1, H * D, Hk * D).view({B, L, Hk, D});
  auto v = qkv.narrow(-1, (H + Hk) * D, Hk * D).view({B, L, Hk, D});
  auto [cos, sin] = rope.cos_sin(in.positions, in.rope_seq_len, q.scalar_type());
  q = Rope::apply(q, cos, sin);
  k = Rope::apply(k, cos, sin);

  if (mode != PhantomMode::off) {
    at::Tensor q_s, k_s, v_s;
    if (cache && cache->q_s.defined()) {
      q_s = cache->q_s, k_s = cache->k_s, v_s = cache->v_s;
    } else {
      TORCH_CHECK(in.sos_index.defined(), "Phantom attention needs the sos index of each sequence");
      q_s = gather_positions(q, in.sos_index);
      k_s = gather_positions(k, in.sos_index);
      v_s = gather_positions(v, in.sos_index);
      if (cache) cache->q_s = q_s, cache->k_s = k_s, cache->v_s = v_s;
    }
    auto q_star = eta * xattn_query_phantom(q, q_s, in.sos_slot);
    auto k_star = eta * xattn_key_phantom(k, k_s, in.sos_slot);
    auto v_star = v + eta * xattn_value_phantom(v, v_s, in.sos_slot);
    q = torch::cat({q, q_star}, -1);
    k = torch::cat({k, k_star}, -1);
    v = torch::cat({v, v_star}, -1);
  }

  // (B, heads, L, Dk) for SDPA; the cache stores this layout.
  q = q.transpose(1, 2);
  k = k.transpose(1, 2);
  v = v.transpose(1, 2);
  if (cache) {
    if (cache->k.defined()) {
      k = torch::cat({cache->k, k}, 2);
      v = torch::cat({cache->v, v}, 2);
    }
    cache->k = k, cache->v = v;
  }
  const double scale = 1.0 / std::sqrt(static_cast<double>(D));  // the ORIGINAL scale, even at head dim 2D
  at::Tensor o2;
  if (in.segments) {
    TORCH_CHECK(!cache, "segment layouts (packed rows, shared prefixes) are for training, without a KV cache");
    o2 = segment_attention(q, k, v, *in.segments, scale);
  } else {
  const bool plain_causal = !in.mask.defined() && k.size(2) == L;
  o2 = at::scaled_dot_product_attention(q, k, v, in.mask.defined() ? std::optional<at::Tensor>(in.mask) : std::nullopt,
                                        0.0, plain_causal, scale, /*enable_gqa=*/H != Hk);
  }
  o2 = o2.transpose(1, 2);  // (B, L, H, Dk)

  at::Tensor o;
  switch (mode) {
    case PhantomMode::off:
      o = o2;
      break;
    case PhantomMode::sum:
      o = o2.narrow(-1, 0, D) + o2.narrow(-1, D, D);
      break;
    case PhantomMode::mean:
      o = 0.5 * (o2.narrow(-1, 0, D) + o2.narrow(-1, D, D));
      break;
    case PhantomMode::gate: {
      auto a = o2.narrow(-1, 0, D), b = o2.narrow(-1, D, D);
      auto w = torch::sigmoid(gating_phantom_1(a) - gating_phantom_2(b));  // = e^f / (e^f + e^g)
      o = w * a + (1 - w) * b;
      break;
    }
  }
  return o_proj(o.reshape({B, L, H * D}));
}

}  // namespace phantom
