// Decoder self-attention with the Phantom dimension (docs/paper.md, "Phantom dimension"), GQA, RoPE and a KV cache.
//
//   q, k, v  = split(qkv_proj(h));  q, k = RoPE(q, k)
//   q* = η·Xq(q, q_sos)   k* = η·Xk(k, k_sos)   v* = v + η·Xv(v, v_sos)        (X: attention over the head axis)
//   o2 = attention(cat(q,q*), cat(k,k*), cat(v,v*)) at head dim 2D with the ORIGINAL scale 1/sqrt(D)
//   o  = w·o2[..,:D] + (1−w)·o2[..,D:],  w = sigmoid(f(ō) − g(õ))  → o_proj
#pragma once

#include <torch/torch.h>

#include <vector>

#include "phantom/model/layers.h"
#include "phantom/model/model_config.h"
#include "phantom/util/segment_layout.h"

namespace phantom {

enum class PhantomMode { off, sum, mean, gate };
PhantomMode parse_phantom_mode(const std::string& s);

// The paper's MHCA: four bias-free Linear(D, D) shared across heads; every position attends over the heads of the
// sos token. x (B, L, H, D), s (B, 1, Hs, D) -> (B, L, H, D). Packed rows hold several sequences: s is then
// (B, S, Hs, D), one sos per sequence, and `slot` (B, L) names each position's sequence.
struct XAttentionImpl : torch::nn::Module {
  explicit XAttentionImpl(int64_t head_dim);
  at::Tensor forward(const at::Tensor& x, const at::Tensor& s, const at::Tensor& slot = {});
  Linear linear_q{nullptr}, linear_k{nullptr}, linear_v{nullptr}, linear_o{nullptr};
  int64_t head_dim;
};
TORCH_MODULE(XAttention);

// Per-layer cache. k and v hold the attention inputs of every past position: the original k/v and, with Phantom
// on, k*/v* concatenated on the last axis (B, Hk, T, D or 2D); XAttn is position-wise given the sos vectors, so
// a decode step computes k*/v* for its new position only. The sos vectors are per sequence, kept here (not in
// the module) so batches and beams are independent.
struct LayerCache {
  at::Tensor k, v;           // (B, Hk, T, Dk)
  at::Tensor q_s, k_s, v_s;  // (B, 1, H|Hk, D): q, k, v at the sos position, taken at prefill
};

struct KVCache {
  std::vector<LayerCache> layers;
  at::Tensor valid;  // (B, T) bool: which cached positions are real tokens (left padding is not)
  int64_t length() const { return valid.defined() ? valid.size(1) : 0; }
  // Keeps rows `index` (B') of every tensor: beam search reorders and expands with it.
  void select(const at::Tensor& index);
};

// What one attention call sees besides the hidden states.
struct AttentionInputs {
  at::Tensor positions;  // (B, L) int64 RoPE positions
  at::Tensor mask;       // (B, 1, L, Lk) bool, true = may attend; undefined = plain causal over [cache | new]
  at::Tensor sos_index;  // (B,) int64 index of the sos token within this call's L (prefill / training);
                         // (B, S) with sos_slot: the sos of each sequence of a packed row
  at::Tensor sos_slot;   // (B, L) int64 sequence of each position (packed rows); undefined = one sequence per row
  // Rows holding several sequences or a shared prefix: attention per segment (phantom/model/segment_attention.h), no
  // mask. Training only (no cache).
  std::shared_ptr<const SegmentLayout> segments;
  int64_t rope_seq_len = 0;  // max position + 1 of the whole sequence (dynamic RoPE / longrope)
};

struct DecoderAttentionImpl : torch::nn::Module {
  DecoderAttentionImpl(const LlmConfig& cfg, PhantomMode mode, double eta);
  // h (B, L, C). With `cache`, the new k/v are appended and attention covers [cache | new].
  at::Tensor forward(const at::Tensor& h, const AttentionInputs& in, const Rope& rope, LayerCache* cache);

  Linear qkv_proj{nullptr}, o_proj{nullptr};
  XAttention xattn_query_phantom{nullptr}, xattn_key_phantom{nullptr}, xattn_value_phantom{nullptr};
  Linear gating_phantom_1{nullptr}, gating_phantom_2{nullptr};
  int64_t num_heads, num_kv_heads, head_dim;
  PhantomMode mode;
  double eta;
};
TORCH_MODULE(DecoderAttention);

// Causal + padding mask (B, 1, L, T) for queries at cache offset `past` over keys [0, T), given which keys are
// real (`valid`, (B, T)). Rows with no valid key (queries on left padding) attend to themselves only, so the
// softmax stays finite; their outputs are never used.
at::Tensor causal_padding_mask(const at::Tensor& valid, int64_t past, int64_t L);

}  // namespace phantom
